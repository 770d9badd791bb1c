// SPDX-License-Identifier: GPL-2.0
/* The floors kernel-delay's cost is measured against (make bench): its
 * system call and scheduler hooks with nothing in them, with only the
 * filter on the traced process, and with only what any design that times
 * each call and each scheduler stretch must do: the filter, two clock
 * reads per call with the start in task-local storage, a clock read per
 * scheduler event, the sums in a per-CPU counter, and no output at all. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

enum floor {
	FLOOR_EMPTY,
	FLOOR_FILTER,
	FLOOR_TIMING,
};

const volatile int level = FLOOR_EMPTY;
const volatile pid_t targ_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sums SEC(".maps");

static __always_inline bool traced(__u32 tgid)
{
	return tgid == (__u32)targ_tgid;
}

static __always_inline void add(__u64 ns)
{
	__u32 zero = 0;
	__u64 *sum = bpf_map_lookup_elem(&sums, &zero);

	if (sum)
		*sum += ns;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter)
{
	__u64 *start;

	if (level == FLOOR_EMPTY || !traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	if (level == FLOOR_TIMING) {
		start = bpf_task_storage_get(&starts, bpf_get_current_task_btf(), 0,
					     BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (start)
			*start = bpf_ktime_get_ns();
	}
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit)
{
	__u64 *start;

	if (level == FLOOR_EMPTY || !traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	if (level == FLOOR_TIMING) {
		start = bpf_task_storage_get(&starts, bpf_get_current_task_btf(), 0, 0);
		if (start && *start)
			add(bpf_ktime_get_ns() - *start);
	}
	return 0;
}

static __always_inline void sched_event(struct task_struct *task)
{
	if (level != FLOOR_EMPTY && traced(task->tgid) && level == FLOOR_TIMING)
		add(bpf_ktime_get_ns());
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	sched_event(prev);
	sched_event(next);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *task)
{
	sched_event(task);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *task)
{
	sched_event(task);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
