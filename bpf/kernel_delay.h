/* SPDX-License-Identifier: GPL-2.0 */
/* Records shared by the BPF programs and user space (the skeleton generates
 * the Rust twins of these structs, so both sides read one definition). */
#ifndef __KERNEL_DELAY_H
#define __KERNEL_DELAY_H

#define TASK_COMM_LEN 16

/* Upper bound on threads of the target tracked at once, and on threads
 * exiting during one window. */
#define MAX_THREADS 32768

enum event_kind {
	EVENT_SYSCALL = 1,
};

/* Every ring-buffer record starts with its kind. */
struct syscall_event {
	__u32 kind;
	__u32 tid;
	__s64 nr;
	__u64 enter_ns;
	__u64 exit_ns;
};

/* A thread that exited: its name outlives it here, not in /proc. */
struct thread_exit {
	__u64 ts_ns;
	char comm[TASK_COMM_LEN];
};

/* Per-thread system call in flight; enter_ns == 0 means none. */
struct syscall_start {
	__u64 enter_ns;
	__s64 nr;
};

#endif /* __KERNEL_DELAY_H */
