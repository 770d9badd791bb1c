// SPDX-License-Identifier: GPL-2.0
/* kernel-delay: system call latency of one process's threads.
 * Every completed call becomes one ring-buffer record; user space aggregates. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "kernel_delay.h"

/* include/linux/sched.h task states (macros, so not in vmlinux.h) */
#define TASK_UNINTERRUPTIBLE	0x0002
#define __TASK_STOPPED		0x0004
#define __TASK_TRACED		0x0008
#define TASK_DEAD		0x0080
#define TASK_NOLOAD		0x0400
#define TASK_RTLOCK_WAIT	0x1000

/* Set by user space before load. */
const volatile pid_t targ_tgid = 0;
/* Pending bytes above which a record wakes the reader: below it the reader
 * drains on its own timer, which is what keeps per-record cost low. */
const volatile __u64 wakeup_bytes = 0;
/* sched_switch has its prev_state argument (5.18+): set from kernel BTF. */
const volatile bool has_prev_state = false;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20); /* resized by user space */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u32);
	__type(value, struct syscall_start);
} syscall_starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_THREADS);
	__type(key, __u32);
	__type(value, struct thread_exit);
} thread_exits SEC(".maps");

/* Records that could not be delivered (ring buffer full, start map full). */
__u64 lost_events = 0;

/* Unused instances: they make the skeleton generate the record types. */
struct syscall_event _syscall_event = {};
struct sched_event _sched_event = {};

/* Kernels before 5.14 call the task state `state`, later ones `__state`. */
struct task_struct___pre_5_14 {
	long state;
} __attribute__((preserve_access_index));



static __always_inline bool is_target(__u64 pid_tgid)
{
	return (pid_t)(pid_tgid >> 32) == targ_tgid;
}

static __always_inline void count_lost(void)
{
	__sync_fetch_and_add(&lost_events, 1);
}

static __always_inline void submit(void *record)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(record, flags);
}

static __always_inline void emit_sched(__u32 kind, __u32 tid, __u32 state)
{
	struct sched_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_lost();
		return;
	}
	e->kind = kind;
	e->tid = tid;
	e->ts_ns = bpf_ktime_get_ns();
	e->state = state;
	e->pad = 0;
	submit(e);
}

static __always_inline unsigned int task_state(struct task_struct *task)
{
	if (bpf_core_field_exists(task->__state))
		return BPF_CORE_READ(task, __state);
	return BPF_CORE_READ((struct task_struct___pre_5_14 *)task, state);
}

static __always_inline __u32 switch_out_state(unsigned int state)
{
	if (state & TASK_DEAD)
		return OUT_DEAD;
	if (state & (__TASK_STOPPED | __TASK_TRACED))
		return OUT_STOPPED;
	/* TASK_IDLE (D without load) is how kernel threads idle: a sleep. */
	if ((state & (TASK_UNINTERRUPTIBLE | TASK_RTLOCK_WAIT)) && !(state & TASK_NOLOAD))
		return OUT_BLOCKED;
	return state ? OUT_SLEEPING : OUT_READY;
}

/* Raw context: the fourth argument exists only on 5.18+, and reading it
 * must stay in a branch the verifier prunes on older kernels. */
SEC("tp_btf/sched_switch")
int sched_switch(__u64 *ctx)
{
	bool preempt = (bool)ctx[0];
	struct task_struct *prev = (struct task_struct *)ctx[1];
	struct task_struct *next = (struct task_struct *)ctx[2];
	unsigned int state;

	if (prev->tgid == targ_tgid) {
		/* A preempted task is still runnable whatever its state says. */
		if (preempt)
			state = 0;
		else if (has_prev_state)
			state = (unsigned int)ctx[3];
		else
			state = task_state(prev);
		emit_sched(EVENT_SWITCH_OUT, prev->pid, switch_out_state(state));
	}
	if (next->tgid == targ_tgid)
		emit_sched(EVENT_SWITCH_IN, next->pid, 0);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *task)
{
	if (task->tgid == targ_tgid)
		emit_sched(EVENT_WAKEUP, task->pid, 0);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *task)
{
	if (task->tgid == targ_tgid)
		emit_sched(EVENT_WAKEUP_NEW, task->pid, 0);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct syscall_start *start, fresh;

	if (!is_target(pid_tgid))
		return 0;

	/* Update in place: cheaper than a map update on every call. */
	start = bpf_map_lookup_elem(&syscall_starts, &tid);
	if (start) {
		start->nr = id;
		start->enter_ns = bpf_ktime_get_ns();
		return 0;
	}
	fresh.nr = id;
	fresh.enter_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&syscall_starts, &tid, &fresh, BPF_NOEXIST))
		count_lost();
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct syscall_start *start;
	struct syscall_event *e;
	__u64 now;

	if (!is_target(pid_tgid))
		return 0;

	start = bpf_map_lookup_elem(&syscall_starts, &tid);
	if (!start || !start->enter_ns)
		return 0; /* entered before tracing began */

	now = bpf_ktime_get_ns();
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
	} else {
		e->kind = EVENT_SYSCALL;
		e->tid = tid;
		e->nr = start->nr;
		e->enter_ns = start->enter_ns;
		e->exit_ns = now;
		submit(e);
	}
	start->enter_ns = 0;
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct thread_exit exit = {};

	if (!is_target(pid_tgid))
		return 0;

	/* exit() and exit_group() never return: forget their start. */
	bpf_map_delete_elem(&syscall_starts, &tid);

	exit.ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(exit.comm, sizeof(exit.comm));
	if (bpf_map_update_elem(&thread_exits, &tid, &exit, BPF_ANY))
		count_lost();
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
