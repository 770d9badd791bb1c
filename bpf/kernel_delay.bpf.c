// SPDX-License-Identifier: GPL-2.0
/* kernel-delay: where the traced processes' threads spend their time in
 * the kernel: system calls, scheduler states, and the interrupts that hit
 * them. Every completed call, state change or interrupt becomes one
 * record, staged on its CPU or sent at once through the ring buffer; user
 * space aggregates. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/usdt.bpf.h>
#include "kernel_delay.h"
#include "irq_nesting.h"
#include "core_fixes.bpf.h"

/* The largest errno a system call returns (negated), as in linux/err.h. */
#define MAX_ERRNO 4095

/* Set by user space before load: the one process traced, or 0 when a set
 * of processes is (traced_pids). A single target costs other
 * processes one comparison; the verifier drops the other branch. */
const volatile pid_t targ_tgid = 0;
/* Processes forked by traced ones are traced too. */
const volatile bool follow_forks = false;
/* Length of traced_pids: pid_max. */
const volatile __u32 pid_limit = 0;

/* The set of traced processes when targ_tgid is 0: a byte per process id
 * (an array lookup and a test; bytes, not bits, so that concurrent forks
 * need no atomic read-modify-write). Resized by user space to pid_limit. */
__u8 traced_pids[1] SEC(".data.traced_pids");
/* log2 of the pending bytes (a quarter of the buffer) whose every multiple
 * a record crosses wakes the reader early: between them the reader drains
 * on its own timer, which is what keeps the per-record cost low. */
const volatile __u32 wakeup_shift = 31;
/* sched_switch has its prev_state argument (5.18+), sched_process_exit its
 * group_dead (6.16+): set from kernel BTF. */
const volatile bool has_prev_state = false;
const volatile bool exit_has_group_dead = false;
/* The kernel keeps task-local storage for tracing programs (5.13+): each
 * thread's call lives with the thread (a few pointer loads away). Older
 * kernels: in the thread map, a hash by thread id. Set from kernel BTF. */
const volatile bool task_storage = false;
/* The thread that reads the ring buffer (kernel-delay's own). */
const volatile __u32 reader_tid = 0;
/* Windows (triggers, repeated samples): records are made only while one
 * is open, each straight to the ring buffer (a staged record could stay
 * on its CPU past the window's close). */
const volatile bool windowed = false;
/* A window's length at most (--duration; 0: until closed otherwise), and
 * the pause between the close of one and the opening of the next. */
const volatile __u64 window_ns = 0;
const volatile __u64 interval_ns = 0;
/* rt_sigreturn's number on this architecture (set by user space). */
const volatile __s64 sigreturn_nr = -1;
/* --syscall-events: calls that take at least event_min_ns become events,
 * with their stacks when capture_stacks: the kernel stack, and
 * user_stack_pages pages of the user stack from the stack pointer's (a
 * poll-family call only unless skip_poll_events: its numbers are poll_nrs,
 * -1 for none). */
const volatile bool syscall_events = false;
const volatile __u64 event_min_ns = 0;
const volatile bool capture_stacks = false;
const volatile __u32 user_stack_pages = 0;
/* --off-cpu-stacks: each switch of a traced thread off its CPU asleep,
 * blocked or preempted sends where it left it (the stacks as for slow
 * calls; the user stack where tracing programs have bpf_task_pt_regs). */
const volatile bool offcpu_stacks = false;
const volatile bool skip_poll_events = false;
#define POLL_NRS 8
const volatile __s32 poll_nrs[POLL_NRS] = { -1, -1, -1, -1, -1, -1, -1, -1 };

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20); /* resized by user space */
} events SEC(".maps");

/* The call each thread is in, with task storage. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct syscall_start);
} task_calls SEC(".maps");

/* The call each thread is in, without (the other map is not created).
 * Sized by user space so that every thread the kernel can have fits;
 * allocated as threads make calls, not up front. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct syscall_start);
} syscall_starts SEC(".maps");

/* Records staged per CPU while it runs traced threads: their calls, the
 * switches between them, the wakeups they make, their exec's. A batch is
 * sent when full, when its first record is MAX_STAGED_NS old, and when the
 * CPU switches to a thread that is not traced (or idles), or one exits;
 * user space puts records from different CPUs back in time order. Records
 * made elsewhere (interrupts, new threads and processes, exits, wakeups by
 * untraced tasks) go straight to the ring buffer. What is staged when
 * tracing stops, user space reads here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct record_batch);
} batches SEC(".maps");

/* Where a completed call goes when the ring buffer is full: its statistics
 * stay exact, only its percentiles are missing. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct spill_key);
	__type(value, struct spill_value);
} spilled_calls SEC(".maps");

/* Where an exit goes when the ring buffer is full. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct thread_key);
	__type(value, struct kept_exit);
} kept_exits SEC(".maps");

/* Interrupt entry times, per CPU: an entry and its exit always run on the
 * same CPU, and only a hard IRQ can nest inside a softirq. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct irq_cpu_state);
} irq_cpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct softirq_totals);
} softirq_cpu SEC(".maps");

/* The stacks of slow calls (--stack-trace-size entries, resized by user
 * space; a stack seen again takes no room). */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

/* The address space each process with slow calls is in, by process id
 * (--syscall-events with stacks): a new id after each exec, and for a new
 * process that reuses an id. LRU: a process evicted gets a new id, which
 * only makes user space read its memory map again. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_ADDRESS_SPACES);
	__type(key, __u32);
	__type(value, __u64);
} address_spaces SEC(".maps");

/* Tasks that are not traced whose names are in the ring buffer already
 * (see name_task). LRU: one evicted is named again. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NAMED_TASKS);
	__type(key, __u32);
	__type(value, struct named_task);
} named_tasks SEC(".maps");

/* Per CPU, the task the reader last took the CPU from (tid 0: the idle
 * task): a traced thread that got the CPU after the reader waited behind
 * that task, and only the reader's few microseconds behind the reader. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct task_ids);
} reader_took SEC(".maps");

/* Records that could not be delivered, by enum lost_cause. */
__u64 lost[LOST_CAUSES] = {};
/* The window, when windowed. */
struct window window = {};
/* Stacks of events that could not be recorded (map full, collisions). */
__u64 stacks_missed = 0;

/* Unused instances: they make the skeleton generate the record types. */
struct syscall_event _syscall_event = {};
struct switch_event _switch_event = {};
struct wakeup_event _wakeup_event = {};
struct thread_new_event _thread_new_event = {};
struct thread_exit_event _thread_exit_event = {};
struct exec_event _exec_event = {};
struct process_new_event _process_new_event = {};
struct slow_call_event _slow_call_event = {};
struct sample_header _sample_header = {};
struct call_in_flight _call_in_flight = {};
struct irq_event _irq_event = {};
struct task_name_event _task_name_event = {};
/* ... and the enums user space matches on. */
enum event_kind _event_kind = 0;
enum switch_out_state _switch_out_state = 0;
enum switch_flags _switch_flags = 0;
enum waking_irq _waking_irq = 0;
enum lost_cause _lost_cause = 0;
enum irq_vector _irq_vector = 0;
enum softirq_vectors _softirq_vectors = 0;
enum stack_depth _stack_depth = 0;
enum staging _staging = 0;
enum stack_id _stack_id = 0;
enum user_stack_limits _user_stack_limits = 0;
struct user_stack_copy _user_stack_copy = {};
struct offcpu_stack_event _offcpu_stack_event = {};
struct offcpu_at_open _offcpu_at_open = {};
enum at_open_limits _at_open_limits = 0;
enum address_space_limit _address_space_limit = 0;
enum window_state _window_state = 0;
enum window_closer _window_closer = 0;

/* The call the current thread (`tid`) is in; `flags` creates its storage.
 * Not call_of(bpf_get_current_task_btf()): that helper (5.11+) must stay in
 * the branch the verifier drops on older kernels. */
static __always_inline struct syscall_start *current_call(__u32 tid, __u64 flags)
{
	if (task_storage)
		return bpf_task_storage_get(&task_calls, bpf_get_current_task_btf(), 0, flags);
	return bpf_map_lookup_elem(&syscall_starts, &tid);
}

/* The call `task` is in. */
static __always_inline struct syscall_start *call_of(struct task_struct *task)
{
	__u32 tid = task->pid;

	if (task_storage)
		return bpf_task_storage_get(&task_calls, task, 0, 0);
	return bpf_map_lookup_elem(&syscall_starts, &tid);
}

static __always_inline bool is_traced(__u32 tgid)
{
	if (targ_tgid)
		return tgid == (__u32)targ_tgid;
	return tgid < pid_limit && traced_pids[tgid];
}

static __always_inline void set_traced(__u32 tgid, __u8 traced)
{
	if (tgid < pid_limit)
		traced_pids[tgid] = traced;
}

static __always_inline bool is_target(__u64 pid_tgid)
{
	return is_traced(pid_tgid >> 32);
}

#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

/* Whether the window that opened at `open_ns` has outlived --duration at
 * `now`: it is closed then, whether or not its state says so yet. */
static __always_inline bool past_length(__u64 open_ns, __u64 now)
{
	return window_ns && now - open_ns >= window_ns;
}

/* Whether records are made now: always, or while a window is open. */
static __always_inline bool recording(void)
{
	if (!windowed)
		return true;
	if (READ_ONCE(window.state) != WINDOW_OPEN)
		return false;
	return !window_ns || !past_length(READ_ONCE(window.open_ns), bpf_ktime_get_ns());
}

/* Whether a call that entered at `enter_ns` and returns now, after its
 * window closed, belongs to that window (not yet taken by user space):
 * its report shows it unfinished. */
static __always_inline bool in_pending_window(__u64 enter_ns)
{
	return READ_ONCE(window.opened) != READ_ONCE(window.taken) &&
	       enter_ns >= READ_ONCE(window.open_ns);
}

static __always_inline void count_lost(enum lost_cause cause)
{
	__sync_fetch_and_add(&lost[cause], 1);
}

/* The current thread, told apart from an earlier one with its id (read
 * only when the ring buffer is full). */
static __always_inline struct thread_key current_thread(__u32 tid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct thread_key key = { .tid = tid };

	key.start_ns = BPF_CORE_READ(task, start_time);
	return key;
}

/* Bytes a record of `size` takes in the ring buffer. */
static __always_inline __u64 ring_bytes(__u64 size)
{
	return ((size + 7) & ~7ULL) + BPF_RINGBUF_HDR_SZ;
}

/* Only a record that takes the pending data past a mark wakes the reader:
 * waking it for every record above a mark would interrupt the CPU once per
 * record while a reader that fell behind catches up. A mark missed in a
 * race with another CPU is caught at the next one, or by the timer. */
static __always_inline __u64 wakeup_flags(__u64 pending_before, __u64 pending_after)
{
	if ((pending_before >> wakeup_shift) != (pending_after >> wakeup_shift))
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* Commits a reserved sample of `size` bytes. */
static __always_inline void submit(void *sample, __u64 size)
{
	__u64 pending = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 taken = ring_bytes(size);

	bpf_ringbuf_submit(sample, wakeup_flags(pending > taken ? pending - taken : 0, pending));
}

/* Starts a sample: records after the header are made by the thread running
 * now, at offsets from `now`. */
static __always_inline void start_sample(struct sample_header *header, __u16 kind, __u64 now)
{
	header->kind = kind;
	header->cpu = bpf_get_smp_processor_id();
	header->tid = (__u32)bpf_get_current_pid_tgid();
	header->base_ns = now;
}

static __always_inline struct record_batch *this_cpu_batch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&batches, &zero);
}

/* Sends the records staged on this CPU to the ring buffer; false when it
 * is full (they stay staged, and go with the next flush or at the end).
 * Call with the batch busy, so that an interrupt does not stage meanwhile. */
static __always_inline bool flush_batch(struct record_batch *batch)
{
	__u32 len = batch->len;
	__u64 pending;

	if (!len)
		return true;
	if (len > BATCH_BYTES)
		len = BATCH_BYTES;
	pending = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (bpf_ringbuf_output(&events, batch->data, len,
			       wakeup_flags(pending, pending + ring_bytes(len))))
		return false;
	batch->len = 0;
	return true;
}

/* Whether a batch (with records) has waited long enough at `now`. */
static __always_inline bool stale(struct record_batch *batch, __u64 now)
{
	struct sample_header *header = (struct sample_header *)batch->data;

	return (__s64)(now - header->base_ns) >= MAX_STAGED_NS;
}

/* Sends this CPU's batch (only if stale when `only_stale`). Nested in a
 * program that is staging (an interrupt), it leaves the batch alone. */
static __always_inline void flush_this_cpu(bool only_stale)
{
	struct record_batch *batch = this_cpu_batch();

	if (!batch || !batch->len || batch->busy)
		return;
	if (only_stale && !stale(batch, bpf_ktime_get_ns()))
		return;
	batch->busy = 1;
	flush_batch(batch);
	batch->busy = 0;
}

/* The largest record staged (a slow call's). */
#define MAX_STAGED_RECORD sizeof(struct slow_call_event)

/* Where a record goes: staged in a batch (busy while it is written), or
 * alone in a sample of its own reserved in the ring buffer. */
struct record_place {
	struct record_batch *batch;
	struct sample_header *sample;
	__u32 size;
};

/* Room for a record of `size` bytes made at `now`: at the end of this
 * CPU's batch when `stage` (the batch is sent first when full or stale),
 * else, or nested in a program that is staging, in a sample of its own.
 * NULL when the ring buffer has no room: the batch waits, and so must the
 * record. `*at` is the record's time, as an offset from its sample's base. */
static __always_inline void *record_start(struct record_place *place, __u32 size, __u64 now,
					  bool stage, __s32 *at)
{
	struct record_batch *staged = NULL;
	struct sample_header *header;
	__u32 len;

	place->batch = NULL;
	place->size = sizeof(*header) + size;
	*at = 0;
	if (!windowed && stage)
		staged = this_cpu_batch();
	if (!staged || staged->busy) {
		header = bpf_ringbuf_reserve(&events, sizeof(*header) + size, 0);
		place->sample = header;
		if (!header)
			return NULL;
		start_sample(header, EVENT_DIRECT, now);
		return header + 1;
	}
	staged->busy = 1;
	len = staged->len;
	/* Full when the largest record would not fit, whatever this one's
	 * size: once a record could not be staged (the ring buffer was full),
	 * none goes after it, so that a lost switch or exec leaves no record
	 * of a thread in a batch that names another as running. */
	if (len && (len > BATCH_BYTES - MAX_STAGED_RECORD || stale(staged, now))) {
		if (!flush_batch(staged)) {
			staged->busy = 0;
			return NULL;
		}
		len = 0;
	}
	header = (struct sample_header *)staged->data;
	if (!len) {
		start_sample(header, EVENT_BATCH, now);
		len = sizeof(*header);
	}
	*at = (__s32)(now - header->base_ns);
	staged->len = len + size;
	place->batch = staged;
	return staged->data + len;
}

/* The record of record_start() is written: let it go. */
static __always_inline void record_end(struct record_place *place)
{
	if (place->batch)
		place->batch->busy = 0;
	else
		submit(place->sample, place->size);
}

/* record_start() for a record that has no refuge when the ring buffer has
 * no room (not a call, which is spilled): it is counted as lost. */
static __always_inline void *record_or_lost(struct record_place *place, __u32 size, __u64 now,
					    bool stage, __s32 *at)
{
	void *record = record_start(place, size, now, stage, at);

	if (!record)
		count_lost(LOST_RINGBUF_FULL);
	return record;
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

static __always_inline struct irq_cpu_state *irq_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&irq_cpu, &zero);
}

static __always_inline void mark_target_cpu(void)
{
	__u32 zero = 0;
	struct softirq_totals *totals = bpf_map_lookup_elem(&softirq_cpu, &zero);

	if (totals)
		totals->target_ran = 1;
}

/* Records that name `task`, which is not traced, follow its name the
 * first time in the window (or since it left named_tasks). Read with
 * CO-RE: `task` may be a plain pointer (the current task on old kernels). */
static __always_inline void name_task(struct task_struct *task, __u64 now, bool stage)
{
	__u32 tid = BPF_CORE_READ(task, pid);
	struct named_task *named, fresh = {
		.start_ns = BPF_CORE_READ(task, start_time),
		.window = READ_ONCE(window.opened),
	};
	struct task_name_event *e;
	struct record_place place;
	__s32 at;

	if (!tid)
		return; /* the idle task, named by user space */
	named = bpf_map_lookup_elem(&named_tasks, &tid);
	if (named && named->start_ns == fresh.start_ns && named->window == fresh.window)
		return;
	e = record_or_lost(&place, sizeof(*e), now, stage, &at);
	if (!e)
		return;
	e->kind = EVENT_TASK_NAME;
	e->kernel_thread = is_kernel_thread(task);
	e->at = at;
	e->tid = tid;
	e->pid = BPF_CORE_READ(task, tgid);
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	record_end(&place);
	bpf_map_update_elem(&named_tasks, &tid, &fresh, BPF_ANY);
}

/* Raw context: the fourth argument exists only on 5.18+, and reading it
 * must stay in a branch the verifier prunes on older kernels. */
/* The current task's kernel stack into the stack map; a failure is
 * counted. */
static __always_inline __s32 take_kernel_stack(void *ctx)
{
	__s32 id;

	if (!capture_stacks)
		return NO_STACK;
	id = bpf_get_stackid(ctx, &stacks, 0);
	if (id < 0)
		__sync_fetch_and_add(&stacks_missed, 1);
	return id;
}

/* The id of the address space process `pid` is in; 0 if none could be
 * given. A new one is the time it is given: with the process id, unique
 * (a counter would need an atomic that returns the old value, which 5.10
 * refuses anywhere in the object). */
static __always_inline __u64 address_space(__u32 pid)
{
	__u64 *id = bpf_map_lookup_elem(&address_spaces, &pid), fresh;

	if (id)
		return *id;
	fresh = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&address_spaces, &pid, &fresh, BPF_NOEXIST)) {
		/* Another thread of the process gave it one meanwhile. */
		id = bpf_map_lookup_elem(&address_spaces, &pid);
		return id ? *id : 0;
	}
	return fresh;
}

/* The user registers at the call's entry, where an unwinder starts. */
static __always_inline void read_user_regs(struct user_regs *out, struct pt_regs *regs)
{
#if defined(__TARGET_ARCH_arm64)
	out->ip = regs->pc;
	out->sp = regs->sp;
	out->fp = regs->regs[29];
	out->lr = regs->regs[30];
#else
	out->ip = regs->ip;
	out->sp = regs->sp;
	out->fp = regs->bp;
	out->lr = 0;
#endif
}

/* Copies a user stack into `bytes` after the registers an unwinder starts
 * from (`regs`): whole pages from the stack pointer's up, until `max_pages`
 * or user_stack_pages are or one cannot be read (past the stack's top, or
 * not in memory: neither helper faults pages in). The current task's when
 * `task` is NULL, from any program; else `task`'s, from a sleepable one
 * (bpf_copy_from_user_task, 5.18). */
static __always_inline void copy_user_stack(struct user_stack_copy *copy, __u8 *bytes,
					    struct pt_regs *regs, struct task_struct *task,
					    __u32 max_pages)
{
	__u64 start;
	__u32 i;
	long err;

	read_user_regs(&copy->regs, regs);
	copy->pad = 0;
	start = copy->regs.sp & ~(__u64)(USER_STACK_PAGE - 1);
	copy->start = start;
	copy->len = 0;
	for (i = 0; i < max_pages; i++) {
		__u8 *to = bytes + i * USER_STACK_PAGE;
		void *from = (void *)(start + i * USER_STACK_PAGE);

		if (i >= user_stack_pages)
			break;
		if (task)
			err = bpf_copy_from_user_task(to, USER_STACK_PAGE, from, task, 0);
		else
			err = bpf_probe_read_user(to, USER_STACK_PAGE, from);
		if (err)
			break;
		copy->len += USER_STACK_PAGE;
	}
}

/* Where traced thread `prev` leaves its CPU, in `out` (enum
 * switch_out_state), at `now`: sent at once, before the switch's record
 * (the reader takes records of one time sent at once first). */
static __always_inline void emit_offcpu_stack(void *ctx, struct task_struct *prev, __u8 out,
					      __u64 now)
{
	bool user_stack = user_stack_pages &&
			  bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs);
	__u32 size = sizeof(struct offcpu_stack_event);
	struct offcpu_stack_event *e;
	struct user_stack_copy *copy;
	struct record_place place;
	__s32 at;

	if (user_stack)
		size += sizeof(*copy) + user_stack_pages * USER_STACK_PAGE;
	e = record_start(&place, size, now, false, &at);
	if (!e) {
		count_lost(LOST_OFFCPU_STACK);
		return;
	}
	e->kind = user_stack ? EVENT_OFFCPU_STACK_COPY : EVENT_OFFCPU_STACK;
	e->state = out;
	e->pad = 0;
	e->at = at;
	e->tid = prev->pid;
	e->pid = prev->tgid;
	e->kernel_stack = take_kernel_stack(ctx);
	e->pad2 = 0;
	e->address_space = address_space(prev->tgid);
	if (user_stack) {
		copy = (struct user_stack_copy *)(e + 1);
		copy_user_stack(copy, (__u8 *)(copy + 1), (struct pt_regs *)bpf_task_pt_regs(prev),
				NULL, MAX_USER_STACK_PAGES);
	}
	record_end(&place);
}

SEC("tp_btf/sched_switch")
int sched_switch(__u64 *ctx)
{
	bool preempt = (bool)ctx[0];
	struct task_struct *prev = (struct task_struct *)ctx[1];
	struct task_struct *next = (struct task_struct *)ctx[2];
	bool prev_traced = is_traced(prev->tgid), next_traced = is_traced(next->tgid);
	struct task_struct *other = NULL;
	__u32 other_tid = 0, other_pid = 0, zero = 0;
	struct syscall_start *start;
	struct task_ids *took;
	struct record_place place;
	struct switch_event *e;
	unsigned int state;
	__u8 out = 0;
	__u64 now;
	__s32 at;

	if (reader_tid && next->pid == reader_tid && recording()) {
		took = bpf_map_lookup_elem(&reader_took, &zero);
		if (took) {
			took->tid = prev->pid;
			took->pid = prev->tgid;
			if (!prev_traced)
				name_task(prev, bpf_ktime_get_ns(), false);
		}
	}
	if ((!prev_traced && !next_traced) || !recording())
		return 0;
	if (next_traced)
		mark_target_cpu();
	now = bpf_ktime_get_ns();
	/* Who had the CPU before a traced thread, or takes it from one,
	 * when it is neither traced nor the idle task; for the reader, the
	 * task it had taken the CPU from. */
	if (!prev_traced && prev->pid)
		other = prev;
	else if (!next_traced && next->pid)
		other = next;
	if (other) {
		other_tid = other->pid;
		other_pid = other->tgid;
	}
	if (other == prev && reader_tid && other_tid == reader_tid) {
		took = bpf_map_lookup_elem(&reader_took, &zero);
		if (took && took->tid) {
			other_tid = took->tid;
			other_pid = took->pid;
			other = NULL; /* named when the reader took its CPU */
		}
	}
	if (other)
		name_task(other, now, true);
	if (prev_traced) {
		/* A preempted task is still runnable whatever its state says. */
		if (preempt)
			state = 0;
		else if (has_prev_state)
			state = (unsigned int)ctx[3];
		else
			state = task_state(prev);
		out = switch_out_state(state);
		if (offcpu_stacks && out <= OUT_BLOCKED)
			emit_offcpu_stack(ctx, prev, out, now);
	}
	if (other_tid) {
		e = record_or_lost(&place, sizeof(*e), now, true, &at);
		if (!e)
			return 0;
		e->kind = EVENT_SWITCH_OTHER;
		e->other_tid = other_tid;
		e->other_pid = other_pid;
	} else {
		e = record_or_lost(&place, offsetof(struct switch_event, other_tid), now, true, &at);
		if (!e)
			return 0;
		e->kind = EVENT_SWITCH;
	}
	e->at = at;
	e->prev_state = 0;
	e->flags = 0;
	if (prev_traced) {
		e->flags |= SWITCH_PREV_TRACED;
		e->prev_state = out;
		start = call_of(prev);
		if (start && start->enter_ns) {
			e->flags |= SWITCH_PREV_IN_CALL;
			/* Where it waits: the stack that says why a call was slow. */
			if (capture_stacks && !preempt && !start->kernel_stack_taken) {
				start->kernel_stack = bpf_get_stackid(ctx, &stacks, 0);
				start->kernel_stack_taken = 1;
			}
		}
	}
	e->next_tid = 0;
	if (next_traced) {
		e->next_tid = next->pid;
		/* The idle task is the only one with id 0 (one per CPU). */
		if (!prev->pid)
			e->flags |= SWITCH_NEXT_AFTER_IDLE;
	}
	/* The CPU leaves the traced threads: what they did here goes now. */
	if (!next_traced && place.batch)
		flush_batch(place.batch);
	record_end(&place);
	return 0;
}

/* Longer than any interrupt handler runs: a start older than this is one
 * whose exit was not seen (it ended before its exit program was attached,
 * the entry's already was), not what runs now. (A softirq whose exit was
 * missed is cleared by the next softirq on its CPU: the timer's, soon.) */
#define IRQ_RUNS_AT_MOST_NS (100 * 1000 * 1000ULL)

/* Whether what started at `start` (0: nothing) still runs at `now`. */
static __always_inline bool running(__u64 start, __u64 now)
{
	return start && now - start < IRQ_RUNS_AT_MOST_NS;
}

/* A traced thread is woken: its wait for a CPU starts. `in_waker` (at
 * sched_waking, with --wakers): recorded in the waker's context, with what
 * woke it: the device IRQ, x86 vector or softirq that runs here, else the
 * thread running here (never the task an interrupt landed on). Else (at
 * sched_wakeup) where the wakeup completes: on the wakee's CPU after an
 * IPI, for a wakeup queued to it, in no context of the waker's. */
static __always_inline int record_wakeup(struct task_struct *task, bool in_waker)
{
	struct irq_cpu_state *irq;
	struct record_place place;
	struct wakeup_event *e;
	__u32 by_irq = 0, id = 0;
	__u64 now, pid_tgid;
	__s32 at;

	if (!is_traced(task->tgid) || !recording())
		return 0;
	now = bpf_ktime_get_ns();
	pid_tgid = bpf_get_current_pid_tgid();
	if (in_waker) {
		irq = irq_state();
		if (irq && running(irq->hardirq_start, now)) {
			by_irq = WAKING_HARDIRQ;
			id = irq->hardirq;
		} else if (irq && running(irq->vector_start, now)) {
			by_irq = WAKING_VECTOR;
			id = irq->vector;
		} else if (irq && irq->in_softirq) {
			by_irq = WAKING_SOFTIRQ;
			id = irq->softirq_vec;
		} else if (!is_target(pid_tgid)) {
			name_task((struct task_struct *)bpf_get_current_task(), now, false);
		}
	}
	/* Staged only by a traced waker: a CPU that runs no traced thread
	 * may idle, and nothing would send its batch. */
	e = record_or_lost(&place, by_irq ? sizeof(*e) : offsetof(struct wakeup_event, irq), now,
			   is_target(pid_tgid), &at);
	if (!e)
		return 0;
	e->kind = by_irq ? EVENT_WAKEUP_IRQ : EVENT_WAKEUP;
	e->waking_irq = by_irq;
	e->at = at;
	e->tid = task->pid;
	if (by_irq)
		e->irq = id;
	record_end(&place);
	return 0;
}

/* One of the two is loaded: sched_waking with --wakers (each wakeup costs
 * more there), else sched_wakeup. */
SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *task)
{
	return record_wakeup(task, false);
}

SEC("tp_btf/sched_waking")
int BPF_PROG(sched_waking, struct task_struct *task)
{
	return record_wakeup(task, true);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *task)
{
	struct record_place place;
	struct thread_new_event *e;
	__s32 at;

	if (!is_traced(task->tgid) || !recording())
		return 0;
	e = record_or_lost(&place, sizeof(*e), bpf_ktime_get_ns(), false, &at);
	if (!e)
		return 0;
	e->kind = EVENT_THREAD_NEW;
	e->pad = 0;
	e->at = at;
	e->tid = task->pid;
	e->pid = task->tgid;
	e->start_ns = task->start_time;
	record_end(&place);
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
	start = current_call(tid, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (start) {
		start->nr = id;
		if (capture_stacks)
			start->kernel_stack_taken = 0;
		start->enter_ns = bpf_ktime_get_ns();
		return 0;
	}
	if (task_storage) {
		count_lost(LOST_SYSCALL_MAP_FULL);
		return 0;
	}
	fresh.nr = id;
	fresh.kernel_stack = NO_STACK;
	fresh.kernel_stack_taken = 0;
	fresh.enter_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&syscall_starts, &tid, &fresh, BPF_NOEXIST))
		count_lost(LOST_SYSCALL_MAP_FULL);
	return 0;
}

/* The errno of call `nr` that returned `ret`; 0 when it did not fail.
 * rt_sigreturn returns the register it restores: the interrupted call's
 * -EINTR, counted on that call already, or whatever user code held. */
static __always_inline __s32 call_errno(__s64 nr, long ret)
{
	if (nr == sigreturn_nr)
		return 0;
	return ret < 0 && ret >= -MAX_ERRNO ? (__s32)-ret : 0;
}

/* A completed call the ring buffer had no room for. Only the thread itself
 * updates its entries, one call at a time: no atomics needed. */
static __always_inline void spill_call(__u32 tid, __s32 nr, __s32 err, __u64 duration)
{
	struct spill_key key = { .thread = current_thread(tid), .nr = nr, .err = err };
	struct spill_value *spilled, first = {
		.count = 1, .total_ns = duration, .min_ns = duration, .max_ns = duration,
	};

	spilled = bpf_map_lookup_elem(&spilled_calls, &key);
	if (!spilled) {
		if (bpf_map_update_elem(&spilled_calls, &key, &first, BPF_NOEXIST))
			count_lost(LOST_SPILL_MAP_FULL);
		return;
	}
	spilled->count++;
	spilled->total_ns += duration;
	if (duration < spilled->min_ns)
		spilled->min_ns = duration;
	if (duration > spilled->max_ns)
		spilled->max_ns = duration;
}

/* Whether call `nr` is one of the poll family (--skip-syscall-poll-events). */
static __always_inline bool is_poll_family(__s32 nr)
{
	for (int i = 0; i < POLL_NRS; i++)
		if (poll_nrs[i] == nr)
			return true;
	return false;
}

static __always_inline bool is_event(__s32 nr, __u64 duration)
{
	return syscall_events && duration >= event_min_ns &&
	       !(skip_poll_events && is_poll_family(nr));
}

/* The event of a slow call, in place of its syscall_event, with its user
 * stack when stacks are captured; false when the ring buffer has no room
 * (the call is then spilled, its event lost). */
static __always_inline bool emit_slow_call(void *ctx, struct pt_regs *regs, __u32 pid,
					   struct syscall_start *start, long ret, __u64 now)
{
	bool user_stack = capture_stacks && user_stack_pages;
	__u32 size = sizeof(struct slow_call_event);
	struct user_stack_copy *copy;
	struct slow_call_event *e;
	struct record_place place;
	__s32 kernel_stack, at;

	/* Taken before the record is started: nothing else stages meanwhile. */
	if (!start->kernel_stack_taken)
		kernel_stack = take_kernel_stack(ctx);
	else if ((kernel_stack = start->kernel_stack) < 0 && capture_stacks)
		__sync_fetch_and_add(&stacks_missed, 1);
	/* Too large for a batch: a record with a stack goes at once. */
	if (user_stack)
		size += sizeof(*copy) + user_stack_pages * USER_STACK_PAGE;
	e = record_start(&place, size, now, !user_stack, &at);
	if (!e) {
		count_lost(LOST_SYSCALL_EVENT);
		return false;
	}
	e->kind = user_stack ? EVENT_SLOW_CALL_STACK : EVENT_SLOW_CALL;
	e->err = call_errno(start->nr, ret);
	e->nr = start->nr;
	e->exit_at = at;
	e->pid = pid;
	e->duration_ns = now - start->enter_ns;
	e->ret = ret;
	e->kernel_stack = kernel_stack;
	e->pad = 0;
	e->address_space = capture_stacks ? address_space(pid) : 0;
	if (user_stack) {
		copy = (struct user_stack_copy *)(e + 1);
		copy_user_stack(copy, (__u8 *)(copy + 1), regs, NULL, MAX_USER_STACK_PAGES);
	}
	record_end(&place);
	return true;
}

/* The record of a completed call that took `duration` (a long one: 2^32 ns
 * or more); false when the ring buffer has no room. */
static __always_inline bool emit_call(struct syscall_start *start, long ret, __u64 now,
				      __u64 duration, bool long_call)
{
	__u32 size = long_call ? sizeof(struct syscall_event)
			       : offsetof(struct syscall_event, duration_high);
	struct record_place place;
	struct syscall_event *e;
	__s32 at;

	e = record_start(&place, size, now, true, &at);
	if (!e)
		return false;
	e->kind = long_call ? EVENT_LONG_SYSCALL : EVENT_SYSCALL;
	e->err = call_errno(start->nr, ret);
	e->nr = start->nr;
	e->exit_at = at;
	e->duration_ns = (__u32)duration;
	if (long_call)
		e->duration_high = duration >> 32;
	record_end(&place);
	return true;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct syscall_start *start;
	__u64 now, duration;

	if (!is_target(pid_tgid))
		return 0;

	start = current_call(tid, 0);
	if (!start || !start->enter_ns)
		return 0; /* entered before tracing began */
	if (!recording() && !in_pending_window(start->enter_ns)) {
		start->enter_ns = 0;
		return 0;
	}

	now = bpf_ktime_get_ns();
	duration = now - start->enter_ns;
	if (is_event(start->nr, duration)) {
		if (!emit_slow_call(ctx, regs, pid_tgid >> 32, start, ret, now))
			spill_call(tid, start->nr, call_errno(start->nr, ret), duration);
		start->enter_ns = 0;
		return 0;
	}
	/* Each size a constant, as the ring buffer and the verifier want. */
	if (!(duration >> 32 ? emit_call(start, ret, now, duration, true)
			     : emit_call(start, ret, now, duration, false)))
		spill_call(tid, start->nr, call_errno(start->nr, ret), duration);
	start->enter_ns = 0;
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, pid = pid_tgid >> 32;
	struct syscall_start *start;
	struct thread_exit_event *e;
	struct record_place place;
	struct thread_key key;
	struct kept_exit kept;
	bool process_exited;
	__u64 now;
	__s32 at;

	if (!is_target(pid_tgid))
		return 0;
	/* The kernel's own answer where it passes it (6.16+): threads that
	 * exit together can all read signal->live as 0 by now. */
	if (exit_has_group_dead)
		process_exited = (bool)ctx[1];
	else
		process_exited = last_thread(task);

	/* exit() and exit_group() never return: forget their start. Its calls
	 * go before its exit, ahead of any later thread with its id. */
	if (task_storage) {
		start = current_call(tid, 0);
		if (start)
			start->enter_ns = 0;
	} else {
		bpf_map_delete_elem(&syscall_starts, &tid);
	}
	flush_this_cpu(false);
	/* The process stays in the set (its siblings may still be exiting):
	 * a process that reuses its id has its byte written at its fork. */
	if (!recording())
		return 0;

	now = bpf_ktime_get_ns();
	e = record_start(&place, sizeof(*e), now, false, &at);
	if (e) {
		e->kind = EVENT_THREAD_EXIT;
		e->process_exited = process_exited;
		e->at = at;
		e->pid = pid;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		record_end(&place);
		return 0;
	}
	key = current_thread(tid);
	kept.ts_ns = now;
	bpf_get_current_comm(kept.comm, sizeof(kept.comm));
	kept.pid = pid;
	kept.process_exited = process_exited;
	if (bpf_map_update_elem(&kept_exits, &key, &kept, BPF_ANY))
		count_lost(LOST_EXIT_MAP_FULL);
	return 0;
}

/* fork() by a traced process, followed: the child is traced from its first
 * instruction (this runs before it is first woken). Threads (clone with
 * CLONE_THREAD) share the parent's process id and need nothing. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 pid = child->tgid;
	struct process_new_event *e;
	struct record_place place;
	__s32 at;

	if (pid == parent->tgid || targ_tgid)
		return 0;
	/* A process with a reused id is not the one that had it. */
	if (capture_stacks)
		bpf_map_delete_elem(&address_spaces, &pid);
	/* Every new process: one that reuses the id of a traced process that
	 * exited is not traced unless its parent is. */
	if (!follow_forks || !is_traced(parent->tgid)) {
		set_traced(pid, 0);
		return 0;
	}
	set_traced(pid, 1);
	if (!recording())
		return 0;

	e = record_or_lost(&place, sizeof(*e), bpf_ktime_get_ns(), false, &at);
	if (!e)
		return 0;
	e->kind = EVENT_PROCESS_NEW;
	e->pad = 0;
	e->at = at;
	e->pid = pid;
	e->ppid = parent->tgid;
	record_end(&place);
	return 0;
}

/* exec() from a thread that is not the leader: the kernel gives it the
 * leader's id (the leader has exited), and its call to execve returns
 * under that id. Staged: the records after it in its batch are the
 * thread's under its new id. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *task, pid_t old_pid)
{
	__u32 tid = task->pid, old_tid = old_pid;
	struct syscall_start *start;
	struct record_place place;
	struct exec_event *e;
	__u64 now;
	__s32 at;

	if (!is_traced(task->tgid))
		return 0;
	/* A new program: its stacks are read in a new memory map. */
	if (capture_stacks)
		bpf_map_delete_elem(&address_spaces, &tid);
	if (tid == old_tid)
		return 0;
	/* Task storage goes with the task; the thread map is by id. */
	start = task_storage ? NULL : bpf_map_lookup_elem(&syscall_starts, &old_tid);
	if (start) {
		if (bpf_map_update_elem(&syscall_starts, &tid, start, BPF_ANY))
			count_lost(LOST_SYSCALL_MAP_FULL);
		bpf_map_delete_elem(&syscall_starts, &old_tid);
	}
	if (!recording())
		return 0;
	now = bpf_ktime_get_ns();
	e = record_or_lost(&place, sizeof(*e), now, true, &at);
	if (!e)
		return 0;
	e->kind = EVENT_EXEC;
	e->pad = 0;
	e->at = at;
	e->tid = tid;
	e->old_tid = old_tid;
	record_end(&place);
	return 0;
}

/* Interrupts: charged to the current task when it is one of the target's. */

static __always_inline void emit_irq(__u32 kind, __s32 id, __u64 exit_ns, __u64 duration_ns,
				     const char *name)
{
	struct record_place place;
	struct irq_event *e;
	__s32 at;

	if (!is_target(bpf_get_current_pid_tgid()) || !recording())
		return;
	mark_target_cpu();
	e = record_or_lost(&place, sizeof(*e), exit_ns, false, &at);
	if (!e)
		return;
	e->kind = kind;
	e->pad = 0;
	e->exit_at = at;
	e->pad2 = 0;
	e->duration_ns = duration_ns;
	e->id = id;
	if (name)
		bpf_probe_read_kernel_str(e->name, sizeof(e->name), name);
	else
		e->name[0] = 0;
	record_end(&place);
}

/* ksoftirqd/N: a kernel thread of that name. */
static __always_inline bool is_ksoftirqd(void)
{
	struct task_struct *current = (struct task_struct *)bpf_get_current_task();
	char comm[TASK_COMM_LEN];

	if (!is_kernel_thread(current))
		return false;
	bpf_get_current_comm(comm, sizeof(comm));
	return comm[0] == 'k' && comm[1] == 's' && comm[2] == 'o' && comm[3] == 'f' &&
	       comm[4] == 't' && comm[5] == 'i' && comm[6] == 'r' && comm[7] == 'q' &&
	       comm[8] == 'd' && comm[9] == '/';
}

SEC("tp_btf/softirq_entry")
int BPF_PROG(softirq_entry, unsigned int vec)
{
	struct irq_cpu_state *state = irq_state();

	if (state && vec < SOFTIRQ_VECTORS)
		softirq_entered(state, vec, bpf_ktime_get_ns());
	return 0;
}

SEC("tp_btf/softirq_exit")
int BPF_PROG(softirq_exit, unsigned int vec)
{
	struct irq_cpu_state *state = irq_state();
	struct softirq_totals *totals;
	__u64 now, duration;
	__u32 zero = 0;

	if (!state || vec >= SOFTIRQ_VECTORS)
		return 0;
	now = bpf_ktime_get_ns();
	duration = softirq_exited(state, vec, now);
	if (!duration)
		return 0; /* entered before tracing began */

	totals = bpf_map_lookup_elem(&softirq_cpu, &zero);
	if (totals) {
		totals->count[vec]++;
		totals->ns[vec] += duration;
		if (is_ksoftirqd()) {
			totals->ksoftirqd_count[vec]++;
			totals->ksoftirqd_ns[vec] += duration;
		}
	}
	emit_irq(EVENT_SOFTIRQ, vec, now, duration, NULL);
	return 0;
}

SEC("tp_btf/irq_handler_entry")
int BPF_PROG(irq_handler_entry, int irq, struct irqaction *action)
{
	struct irq_cpu_state *state = irq_state();

	if (state) {
		state->hardirq = irq;
		state->hardirq_start = bpf_ktime_get_ns();
	}
	return 0;
}

SEC("tp_btf/irq_handler_exit")
int BPF_PROG(irq_handler_exit, int irq, struct irqaction *action, int ret)
{
	struct irq_cpu_state *state = irq_state();
	__u64 now, duration;

	if (!state)
		return 0;
	now = bpf_ktime_get_ns();
	duration = hardirq_exited(state, &state->hardirq_start, now);
	/* ret == IRQ_NONE: the handler found nothing to do on a shared line */
	if (duration && ret)
		emit_irq(EVENT_HARDIRQ, irq, now, duration, action->name);
	return 0;
}

/* Every timer interrupt: a batch that has waited long enough goes, even
 * while its CPU runs a traced thread that records nothing for a while. */
SEC("tp_btf/hrtimer_expire_entry")
int BPF_PROG(hrtimer_expire_entry)
{
	flush_this_cpu(true);
	return 0;
}

/* With task storage: the calls traced threads are in, for user space to
 * read when the window closes (run through a task iterator). */
SEC("iter/task")
int calls_in_flight(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct call_in_flight call = {};
	struct syscall_start *start;

	if (!task || !is_traced(task->tgid))
		return 0;
	start = bpf_task_storage_get(&task_calls, task, 0, 0);
	if (!start || !start->enter_ns)
		return 0;
	call.tid = task->pid;
	call.nr = start->nr;
	call.enter_ns = start->enter_ns;
	bpf_seq_write(ctx->meta->seq, &call, sizeof(call));
	return 0;
}

/* A report of offcpu_at_open, built here: larger than a BPF stack. One
 * is enough: the reader runs the iterator, one task at a time. */
struct offcpu_at_open_buf {
	struct offcpu_at_open e;
	struct user_stack_copy copy;
	__u8 bytes[AT_OPEN_USER_STACK_PAGES * USER_STACK_PAGE];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct offcpu_at_open_buf);
} at_open_buf SEC(".maps");

/* --off-cpu-stacks: a traced thread asleep or blocked as the window opens
 * left its CPU before the window could see it: its stacks now (the user
 * stack with `user`, from a sleepable program). The time is read last: a
 * switch the window records before it makes the report stale. */
static __always_inline int report_offcpu_at_open(struct bpf_iter__task *ctx, bool user)
{
	struct task_struct *task = ctx->task;
	struct offcpu_at_open_buf *buf;
	__u32 out, zero = 0;
	__u64 size;
	long len;

	if (!task || !is_traced(task->tgid))
		return 0;
	if (bpf_core_field_exists(task->on_cpu) && BPF_CORE_READ(task, on_cpu))
		return 0;
	out = switch_out_state(task_state(task));
	if (out != OUT_SLEEPING && out != OUT_BLOCKED)
		return 0;
	buf = bpf_map_lookup_elem(&at_open_buf, &zero);
	if (!buf)
		return 0;
	buf->e.state = out;
	buf->e.tid = task->pid;
	buf->e.pid = task->tgid;
	buf->e.address_space = address_space(task->tgid);
	len = bpf_get_task_stack(task, buf->e.kernel, sizeof(buf->e.kernel), 0);
	buf->e.kernel_frames = len > 0 ? len / sizeof(__u64) : 0;
	buf->e.has_user_stack = 0;
	size = sizeof(buf->e);
	if (user && user_stack_pages) {
		copy_user_stack(&buf->copy, buf->bytes, (struct pt_regs *)bpf_task_pt_regs(task),
				task, AT_OPEN_USER_STACK_PAGES);
		buf->e.has_user_stack = 1;
		size += sizeof(buf->copy) + buf->copy.len;
	}
	buf->e.ts_ns = bpf_ktime_get_ns();
	buf->e.size = size;
	if (size > sizeof(*buf))
		return 0;
	bpf_seq_write(ctx->meta->seq, buf, size);
	return 0;
}

/* Kernel stacks only (5.9 onwards: bpf_get_task_stack). */
SEC("iter/task")
int offcpu_at_open(struct bpf_iter__task *ctx)
{
	return report_offcpu_at_open(ctx, false);
}

/* With user stacks (5.18 onwards). */
SEC("iter.s/task")
int offcpu_at_open_user(struct bpf_iter__task *ctx)
{
	return report_offcpu_at_open(ctx, true);
}

/* Triggers: a probe in a traced process opens or closes the window. */

/* Wakes the reader now, not at its next look: the window closed, and the
 * sooner its records are gathered, the sooner the next can open. (Not as
 * one opens: woken then, the reader would compete with the traced threads
 * in the window.) If the buffer is full, it wakes by itself. */
static __always_inline void wake_reader(void)
{
	struct sample_header header = { .kind = EVENT_WINDOW };

	bpf_ringbuf_output(&events, &header, sizeof(header), BPF_RB_FORCE_WAKEUP);
}

/* Opens the next window, unless one is pending (counted as missed, but
 * for a start inside an open window) or the pause after the last one is
 * not over. */
static __always_inline void start_window(void)
{
	__u64 now = bpf_ktime_get_ns(), opened = READ_ONCE(window.opened);

	if (!READ_ONCE(window.armed))
		return;
	if (opened != READ_ONCE(window.taken)) {
		if (READ_ONCE(window.state) != WINDOW_OPEN ||
		    past_length(READ_ONCE(window.open_ns), now))
			__sync_fetch_and_add(&window.missed, 1);
		return;
	}
	if (opened && now - READ_ONCE(window.close_ns) < interval_ns)
		return;
	WRITE_ONCE(window.open_ns, now);
	WRITE_ONCE(window.state, WINDOW_OPEN);
	WRITE_ONCE(window.opened, opened + 1);
}

/* Closes the open window now, or where --duration ended it. */
static __always_inline void stop_window(void)
{
	__u64 now = bpf_ktime_get_ns(), open_ns = READ_ONCE(window.open_ns);

	if (READ_ONCE(window.state) != WINDOW_OPEN)
		return;
	if (past_length(open_ns, now)) {
		WRITE_ONCE(window.close_ns, open_ns + window_ns);
		WRITE_ONCE(window.closed_by, CLOSED_BY_LENGTH);
	} else {
		WRITE_ONCE(window.close_ns, now);
		WRITE_ONCE(window.closed_by, CLOSED_BY_STOP_TRIGGER);
	}
	WRITE_ONCE(window.state, WINDOW_CLOSED);
	wake_reader();
}

static __always_inline int trigger(bool start)
{
	if (!is_target(bpf_get_current_pid_tgid()))
		return 0;
	if (start)
		start_window();
	else
		stop_window();
	return 0;
}

/* Attached by user space to what the user names: a uprobe, uretprobe,
 * kprobe or kretprobe (one program type), a USDT probe, or a tracepoint
 * (raw: no tracefs needed). */
#define TRIGGER_PROGS(sec, suffix)					\
	SEC(sec)							\
	int start_trigger##suffix(void *ctx)				\
	{								\
		return trigger(true);					\
	}								\
	SEC(sec)							\
	int stop_trigger##suffix(void *ctx)				\
	{								\
		return trigger(false);					\
	}

TRIGGER_PROGS("kprobe", )
TRIGGER_PROGS("usdt", _usdt)
TRIGGER_PROGS("raw_tp", _tp)

#if defined(__TARGET_ARCH_x86)
/* x86 system vectors (timer tick, IPIs): the irq_vectors tracepoints. User
 * space leaves out those the running kernel does not have. */

static __always_inline int vector_entry(enum irq_vector id)
{
	struct irq_cpu_state *state = irq_state();

	if (state) {
		state->vector = id;
		state->vector_start = bpf_ktime_get_ns();
	}
	return 0;
}

static __always_inline int vector_exit(enum irq_vector id)
{
	struct irq_cpu_state *state = irq_state();
	__u64 now, duration;

	if (!state)
		return 0;
	now = bpf_ktime_get_ns();
	duration = hardirq_exited(state, &state->vector_start, now);
	if (duration)
		emit_irq(EVENT_IRQ_VECTOR, id, now, duration, NULL);
	return 0;
}

#define IRQ_VECTOR_PROGS(tp, id)					\
	SEC("tp_btf/" #tp "_entry")					\
	int BPF_PROG(tp##_entry, int vector)				\
	{								\
		return vector_entry(id);					\
	}								\
	SEC("tp_btf/" #tp "_exit")					\
	int BPF_PROG(tp##_exit, int vector)				\
	{								\
		return vector_exit(id);					\
	}

IRQ_VECTOR_PROGS(local_timer, VECTOR_LOCAL_TIMER)
IRQ_VECTOR_PROGS(reschedule, VECTOR_RESCHEDULE)
IRQ_VECTOR_PROGS(call_function, VECTOR_CALL_FUNCTION)
IRQ_VECTOR_PROGS(call_function_single, VECTOR_CALL_FUNCTION_SINGLE)
IRQ_VECTOR_PROGS(irq_work, VECTOR_IRQ_WORK)
IRQ_VECTOR_PROGS(thermal_apic, VECTOR_THERMAL_APIC)
IRQ_VECTOR_PROGS(x86_platform_ipi, VECTOR_X86_PLATFORM_IPI)
IRQ_VECTOR_PROGS(error_apic, VECTOR_ERROR_APIC)
IRQ_VECTOR_PROGS(spurious_apic, VECTOR_SPURIOUS_APIC)
#endif

char LICENSE[] SEC("license") = "GPL";
