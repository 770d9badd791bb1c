/* SPDX-License-Identifier: GPL-2.0 */
/* What differs between the kernels kernel-delay runs on (5.8 onwards), in
 * one place, as libbpf-tools' core_fixes.bpf.h does: each difference names
 * the release that made it. CO-RE resolves the field reads at load time;
 * what BTF alone cannot tell (a tracepoint's argument list) user space
 * reads from the kernel's BTF and passes in read-only data. */
#ifndef __CORE_FIXES_BPF_H
#define __CORE_FIXES_BPF_H

#include <bpf/bpf_core_read.h>

/* include/linux/sched.h: task states and flags are macros, not in BTF. */
#define TASK_UNINTERRUPTIBLE	0x0002
#define __TASK_STOPPED		0x0004
#define __TASK_TRACED		0x0008
#define TASK_DEAD		0x0080
#define TASK_NOLOAD		0x0400
#define TASK_RTLOCK_WAIT	0x1000	/* 5.15: sleeping on an rtmutex-based lock (PREEMPT_RT) */
#define PF_KTHREAD		0x00200000

/* 5.14 ("sched: Change task_struct::state") renamed task_struct.state to
 * __state, and made it unsigned int. */
struct task_struct___pre_5_14 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline unsigned int task_state(struct task_struct *task)
{
	if (bpf_core_field_exists(task->__state))
		return BPF_CORE_READ(task, __state);
	return BPF_CORE_READ((struct task_struct___pre_5_14 *)task, state);
}

/* sched_switch passes the state the previous task leaves in as its fourth
 * argument from 5.18 ("sched/tracing: Don't re-read p->state when emitting
 * sched_switch event"); before, it must be read from the task, which is
 * what the tracepoint itself did. User space finds which from the
 * kernel's BTF (btf_trace_sched_switch) and sets has_prev_state. */

/* Whether `task` is a kernel thread: its name, which any thread can set,
 * does not say. */
static __always_inline bool is_kernel_thread(struct task_struct *task)
{
	return BPF_CORE_READ(task, flags) & PF_KTHREAD;
}

/* Whether `task`, exiting, is the last thread of its process: do_exit()
 * counts live threads down before the sched_process_exit tracepoint (all
 * supported kernels). Threads that exit together may all read 0 here:
 * user space takes the latest of their exits as the process's. */
static __always_inline bool last_thread(struct task_struct *task)
{
	return BPF_CORE_READ(task, signal, live.counter) == 0;
}

#endif /* __CORE_FIXES_BPF_H */
