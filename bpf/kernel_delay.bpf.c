// SPDX-License-Identifier: GPL-2.0
/* kernel-delay: system call latency of one process's threads.
 * Every completed call becomes one ring-buffer record; user space aggregates. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "kernel_delay.h"

/* Set by user space before load. */
const volatile pid_t targ_tgid = 0;
/* Pending bytes above which a record wakes the reader: below it the reader
 * drains on its own timer, which is what keeps per-record cost low. */
const volatile __u64 wakeup_bytes = 0;

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
