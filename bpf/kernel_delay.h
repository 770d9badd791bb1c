/* SPDX-License-Identifier: GPL-2.0 */
/* Records shared by the BPF programs and user space (the skeleton generates
 * the Rust twins of these structs, so both sides read one definition). */
#ifndef __KERNEL_DELAY_H
#define __KERNEL_DELAY_H

#define TASK_COMM_LEN 16

enum event_kind {
	EVENT_SYSCALL = 1,
	EVENT_SWITCH = 2,	/* a CPU went from one thread to another */
	EVENT_WAKEUP = 4,	/* became runnable */
	EVENT_THREAD_NEW = 5,	/* created, runnable for the first time */
	EVENT_SOFTIRQ = 6,	/* a softirq ran in the thread's context */
	EVENT_HARDIRQ = 7,	/* a device IRQ handler interrupted the thread */
	EVENT_IRQ_VECTOR = 8,	/* an x86 system vector interrupted the thread */
	EVENT_THREAD_EXIT = 9,	/* the thread exited */
	EVENT_EXEC = 10,	/* a thread that is not the leader exec'd: it takes the leader's id */
	EVENT_PROCESS_NEW = 11,	/* a traced process forked a process, traced too */
	EVENT_SLOW_CALL = 12,	/* a completed call past the event threshold */
	EVENT_LONG_SYSCALL = 13,	/* a call of 2^32 ns or more */
	/* Sample headers: records staged on one CPU, in the order they were
	 * made, or records sent at once. */
	EVENT_BATCH = 14,
	EVENT_DIRECT = 15,
	/* A sample of no records that wakes the reader at once: the stop
	 * trigger closed a window. */
	EVENT_WINDOW = 16,
	/* The name of a task that is not traced, the first time in the
	 * window a switch or a wakeup names it. */
	EVENT_TASK_NAME = 17,
	/* A switch between a traced thread and a task that is not traced nor
	 * the idle task: a switch_event with its untraced side. */
	EVENT_SWITCH_OTHER = 18,
	/* Woken by an interrupt: a wakeup_event with the interrupt. */
	EVENT_WAKEUP_IRQ = 19,
	/* A slow call with its user stack: a slow_call_event, then a
	 * user_stack_copy and the bytes copied (sent at once: too large for
	 * a batch). */
	EVENT_SLOW_CALL_STACK = 20,
	/* Where a traced thread left its CPU (--off-cpu-stacks): an
	 * offcpu_stack_event, sent at once just before its switch and with
	 * its time; EVENT_OFFCPU_STACK_COPY is followed by a user_stack_copy
	 * and the bytes copied. */
	EVENT_OFFCPU_STACK = 21,
	EVENT_OFFCPU_STACK_COPY = 22,
};

/* Sampling windows, opened and closed by triggers (--start-trigger,
 * --stop-trigger) or by user space, shared through .bss. */
enum window_state {
	WINDOW_CLOSED = 0,	/* nothing is recorded */
	WINDOW_OPEN = 1,
};

/* What closed a window. */
enum window_closer {
	CLOSED_BY_USER = 0,	/* user space: a signal, the target's exit */
	CLOSED_BY_STOP_TRIGGER = 1,
	CLOSED_BY_LENGTH = 2,	/* --duration after it opened */
};

/* Window number `opened` is pending from its opening until user space has
 * gathered its records and sets `taken` to its number: meanwhile no other
 * opens, and a start trigger that fires counts as missed. The first
 * trigger to see a state changes it; triggers that fire at once on two
 * CPUs both write their time, a few nanoseconds apart (5.10's BPF has no
 * compare-and-exchange to pick one). Times are written before the state
 * and the number that publish them. */
struct window {
	__u32 state;		/* enum window_state */
	__u32 closed_by;	/* enum window_closer */
	__u64 open_ns;
	__u64 close_ns;
	__u64 opened;		/* windows opened so far */
	__u64 taken;		/* written by user space */
	/* Start triggers that fired while a window was pending. */
	__u64 missed;
	/* User space takes more windows (set once it is ready, cleared after
	 * the last): a start trigger before or after is no missed window. */
	__u32 armed;
	__u32 pad;
};

/* Why a record could not be delivered, or a call not be timed: one
 * counter each. A completed call the ring buffer has no room for goes to
 * the spill map, and an exit to the exit map: they are not lost. */
enum lost_cause {
	LOST_RINGBUF_FULL,	/* a scheduler, interrupt or exec record */
	LOST_SYSCALL_MAP_FULL,	/* a call's entry found no room: not timed */
	LOST_SPILL_MAP_FULL,	/* a completed call found room in neither */
	LOST_EXIT_MAP_FULL,	/* an exit found room in neither */
	LOST_SYSCALL_EVENT,	/* a slow call's event (the call itself is spilled) */
	LOST_OFFCPU_STACK,	/* where a thread left its CPU (--off-cpu-stacks) */
	LOST_CAUSES,
};

/* x86 system vectors, in the order user space names them. */
enum irq_vector {
	VECTOR_LOCAL_TIMER,
	VECTOR_RESCHEDULE,
	VECTOR_CALL_FUNCTION,
	VECTOR_CALL_FUNCTION_SINGLE,
	VECTOR_IRQ_WORK,
	VECTOR_THERMAL_APIC,
	VECTOR_X86_PLATFORM_IPI,
	VECTOR_ERROR_APIC,
	VECTOR_SPURIOUS_APIC,
};

#define IRQ_NAME_LEN 32
/* Softirq vectors (HI .. RCU); a constant, as it has been since 2.6. An
 * enum rather than a macro, so that the skeleton gives it to user space. */
enum softirq_vectors {
	SOFTIRQ_VECTORS = 10,
};

/* What a thread leaving the CPU goes on to do. */
enum switch_out_state {
	OUT_READY = 0,		/* preempted: still runnable */
	OUT_SLEEPING = 1,	/* interruptible sleep (S) */
	OUT_BLOCKED = 2,	/* uninterruptible sleep (D) */
	OUT_STOPPED = 3,	/* job control or ptrace stop (T, t) */
	OUT_DEAD = 4,		/* its last switch */
};

/* Every ring-buffer sample starts with a sample_header, then records one
 * after another, each starting with its kind (16 bits). Times are signed
 * offsets (ns) from the header's base: a staged record is made less than
 * MAX_STAGED_NS after its batch's first, and 32 bits take half the
 * bytes that the ring buffer and its reader pay for. A record made by the
 * thread running on the CPU (a call, its exit, an interrupt charged to it)
 * does not name it: the header names the thread running when the first
 * record was made, and a switch (or an exec) names the next one. */
struct sample_header {
	__u16 kind;	/* EVENT_BATCH, EVENT_DIRECT or EVENT_WINDOW */
	__u16 cpu;
	__u32 tid;	/* running when the first record was made, traced or not */
	__u64 base_ns;
};

/* A completed call of the running thread. One that took 2^32 ns (4.3 s) or
 * more is an EVENT_LONG_SYSCALL: duration_high follows. */
struct syscall_event {
	__u16 kind;
	__u16 err;	/* the errno it failed with; 0 when it did not fail */
	__s32 nr;
	__s32 exit_at;
	__u32 duration_ns;	/* the low 32 bits */
	__u32 duration_high;	/* EVENT_LONG_SYSCALL only */
};

/* What else a context switch tells (switch_event.flags). */
enum switch_flags {
	/* The thread leaving is inside a system call: the time until it
	 * returns belongs to that call. */
	SWITCH_PREV_IN_CALL = 1,
	/* The CPU was idle before the thread got it: the thread's wait for
	 * it was the CPU waking up, not other tasks. */
	SWITCH_NEXT_AFTER_IDLE = 2,
	/* The thread leaving (the running one) is traced. */
	SWITCH_PREV_TRACED = 4,
};

/* A call that took at least the event threshold (--syscall-events): the
 * call's record, and where it was made from. It replaces the call's
 * syscall_event. */
struct slow_call_event {
	__u16 kind;
	__u16 err;	/* as in syscall_event */
	__s32 nr;
	__s32 exit_at;
	__u32 pid;	/* its process */
	__u64 duration_ns;
	__s64 ret;	/* what it returned */
	/* An id in the stack map, or -errno when it could not be recorded
	 * (NO_STACK: none was asked for): where the thread first waited in
	 * the call, else where the call returned. */
	__s32 kernel_stack;
	__u32 pad;
	/* The process's address space (see address_spaces); 0: unknown. */
	__u64 address_space;
};

/* Where a traced thread left its CPU (--off-cpu-stacks). */
struct offcpu_stack_event {
	__u16 kind;
	__u8 state;		/* enum switch_out_state: ready, sleeping or blocked */
	__u8 pad;
	__s32 at;		/* the switch's time */
	__u32 tid;
	__u32 pid;
	__s32 kernel_stack;	/* as in slow_call_event */
	__u32 pad2;
	__u64 address_space;
};

/* The user registers an unwinder starts from, as the call entered. */
struct user_regs {
	__u64 ip;
	__u64 sp;
	__u64 fp;	/* rbp on x86_64, x29 on arm64 */
	__u64 lr;	/* x30 on arm64; 0 on x86_64 */
};

/* The user stack is copied in pages: MAX_USER_STACK_PAGES at most
 * (--user-stack-size, and the page the stack pointer is in). */
enum user_stack_limits {
	USER_STACK_PAGE = 4096,
	MAX_USER_STACK_PAGES = 17,
};

/* The top of a thread's user stack, for an unwinder in user space (perf
 * and samply unwind such copies with the binaries' CFI): whole pages from
 * the one holding the stack pointer up, until one cannot be read. */
struct user_stack_copy {
	struct user_regs regs;
	__u64 start;	/* the user address of the first byte copied */
	__u32 len;	/* bytes copied (0: none could be read) */
	__u32 pad;
};

/* A stack id that stands for no stack taken. */
enum stack_id {
	NO_STACK = -1,
};
/* Frames per stack in the stack map (the kernel's PERF_MAX_STACK_DEPTH). */
enum stack_depth {
	MAX_STACK_DEPTH = 127,
};
/* Processes whose address spaces are told apart at once. */
enum address_space_limit {
	MAX_ADDRESS_SPACES = 4096,
};

/* A traced thread off its CPU as the window opens (--off-cpu-stacks), as
 * a task iterator reports it: the stacks it left its CPU with before the
 * window could see it leave. With has_user_stack, a user_stack_copy and
 * the bytes copied follow. */
struct offcpu_at_open {
	__u32 size;		/* bytes of this report, with what follows */
	__u8 state;		/* enum switch_out_state: sleeping or blocked */
	__u8 has_user_stack;
	__u16 kernel_frames;	/* frames in kernel[], innermost first */
	__u32 tid;
	__u32 pid;
	__u64 ts_ns;		/* when its state was read */
	__u64 address_space;
	__u64 kernel[MAX_STACK_DEPTH];
};

/* A task iterator writes each task's report whole into a buffer of 8
 * pages: the user stack copied as the window opens is that much shorter
 * than --user-stack-size may be. */
enum at_open_limits {
	AT_OPEN_USER_STACK_PAGES = 7,
};

/* A context switch that involves a traced thread: the running thread
 * leaves the CPU (when SWITCH_PREV_TRACED), next_tid gets it. The side
 * that is not traced, if any, is the idle task; an EVENT_SWITCH_OTHER
 * names it instead: the task that had the CPU before a traced thread got
 * it, or the one that takes it from a traced thread. */
struct switch_event {
	__u16 kind;
	__u8 prev_state;	/* enum switch_out_state */
	__u8 flags;		/* enum switch_flags */
	__s32 at;
	__u32 next_tid;		/* 0 when not traced */
	__u32 other_tid;	/* EVENT_SWITCH_OTHER only */
	__u32 other_pid;	/* EVENT_SWITCH_OTHER only */
};

/* The interrupt that woke a thread (EVENT_WAKEUP_IRQ). */
enum waking_irq {
	WAKING_HARDIRQ = 1,	/* a device IRQ handler: irq is its number */
	WAKING_VECTOR = 2,	/* an x86 system vector: irq is enum irq_vector */
	WAKING_SOFTIRQ = 3,	/* a softirq: irq is its vector */
};

/* A traced thread is woken. Recorded at sched_waking (--wakers), in the
 * waker's context: by the thread running there (EVENT_WAKEUP), or by an
 * interrupt (EVENT_WAKEUP_IRQ); else at sched_wakeup, by no one named
 * (EVENT_WAKEUP). */
struct wakeup_event {
	__u16 kind;
	__u16 waking_irq;	/* enum waking_irq; EVENT_WAKEUP_IRQ only */
	__s32 at;
	__u32 tid;
	__u32 irq;	/* EVENT_WAKEUP_IRQ only */
};

/* A task that is not traced, as a switch or a wakeup names it. */
struct task_name_event {
	__u16 kind;
	__u16 kernel_thread;
	__s32 at;
	__u32 tid;
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

/* A task, by thread and process id. */
struct task_ids {
	__u32 tid;
	__u32 pid;
};

/* The tasks named in the ring buffer already: by thread id, the task's
 * start time and the window it was named in. */
enum named_task_limit {
	NAMED_TASKS = 4096,
};
struct named_task {
	__u64 start_ns;
	__u64 window;
};
/* A new thread: its task start time tells its spilled calls and kept exit
 * apart from those of an earlier thread with the same id. */
struct thread_new_event {
	__u16 kind;
	__u16 pad;
	__s32 at;
	__u32 tid;
	__u32 pid;	/* its process */
	__u64 start_ns;	/* task_struct.start_time (CLOCK_MONOTONIC) */
};

/* The running thread exited. */
struct thread_exit_event {
	__u16 kind;
	__u16 process_exited;	/* it was the process's last thread */
	__s32 at;
	__u32 pid;	/* its process */
	char comm[TASK_COMM_LEN];	/* its name outlives it here, not in /proc */
};

/* A process forked by a traced one (followed forks). */
struct process_new_event {
	__u16 kind;
	__u16 pad;
	__s32 at;
	__u32 pid;
	__u32 ppid;
};

/* De-threading exec: thread old_tid now has the leader's id, tid, and is
 * the running thread. */
struct exec_event {
	__u16 kind;
	__u16 pad;
	__s32 at;
	__u32 tid;
	__u32 old_tid;
};

/* Interrupt time charged to the running thread. A softirq's time excludes
 * the hard IRQs that interrupted it (they are charged as such). */
struct irq_event {
	__u16 kind;
	__u16 pad;
	__s32 exit_at;
	__s32 id;	/* softirq vector, IRQ number, or enum irq_vector */
	__u32 pad2;
	__u64 duration_ns;
	char name[IRQ_NAME_LEN];	/* device IRQ handler */
};

/* System-wide softirq time on one CPU, to show what ran outside the
 * target's threads (ksoftirqd above all). */
struct softirq_totals {
	__u64 count[SOFTIRQ_VECTORS];
	__u64 ns[SOFTIRQ_VECTORS];
	__u64 ksoftirqd_count[SOFTIRQ_VECTORS];
	__u64 ksoftirqd_ns[SOFTIRQ_VECTORS];
	__u64 target_ran;	/* a thread of the target ran on this CPU */
};

/* One thread, told apart from an earlier one with the same id. */
struct thread_key {
	__u32 tid;
	__u32 pad;
	__u64 start_ns;
};

/* Completed calls the ring buffer had no room for, per thread and call:
 * exact count, total, min and max (no percentiles). */
struct spill_key {
	struct thread_key thread;
	__s32 nr;
	__s32 err;	/* as in syscall_event */
};

struct spill_value {
	__u64 count;
	__u64 total_ns;
	__u64 min_ns;
	__u64 max_ns;
};

/* An exit the ring buffer had no room for. */
struct kept_exit {
	__u64 ts_ns;
	char comm[TASK_COMM_LEN];
	__u32 pid;
	__u32 process_exited;
};

/* Records staged on one CPU before they go to the ring buffer, one after
 * another (what a CPU running traced threads records: their calls, context
 * switches, and the wakeups they make): a record costs a copy into memory
 * of its own CPU, and the ring buffer one operation per batch. Each CPU's
 * batches come in the order they were made, but the CPUs' interleave: user
 * space merges them by time, holding records until no staged record can be
 * older. */
#define BATCH_BYTES 4096

/* A batch is sent once its first record is this old (checked when a
 * record is staged and at every timer interrupt), or when its CPU stops
 * running traced threads. An enum, so that user space gets it. */
enum staging {
	MAX_STAGED_NS = 5000000,
};

struct record_batch {
	__u32 len;	/* bytes staged, the header included */
	__u32 busy;	/* a program is staging (nested ones go direct) */
	__u8 data[BATCH_BYTES];	/* a sample_header, then records */
};

/* A call a traced thread is in when the window closes, as the task
 * iterator reports it (user space can look task storage up one task at a
 * time, by pidfd, but not walk it). */
struct call_in_flight {
	__u32 tid;
	__u32 pad;
	__s64 nr;
	__u64 enter_ns;
};

/* Per-thread system call in flight; enter_ns == 0 means none. */
struct syscall_start {
	__u64 enter_ns;
	__s64 nr;
	/* With --syscall-events: the kernel stack where it first waited (a
	 * stack id or -errno), once kernel_stack_taken is set. */
	__s32 kernel_stack;
	__u32 kernel_stack_taken;
};

#endif /* __KERNEL_DELAY_H */
