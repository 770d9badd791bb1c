//! The records the BPF programs send through the ring buffer (the structs
//! of bpf/kernel_delay.h), decoded into what the aggregation reads.

use serde::{Deserialize, Serialize};
use std::mem::size_of;
use std::rc::Rc;

use crate::kernel::irq::HardIrq;
use crate::kernel::skel::types::{
    event_kind, exec_event, irq_event, offcpu_at_open, offcpu_stack_event, process_new_event,
    sample_header, slow_call_event, stack_id, switch_event, switch_flags, switch_out_state,
    syscall_event, task_name_event, thread_exit_event, thread_new_event, user_stack_copy,
    wakeup_event, waking_irq,
};

/// One decoded record (timestamps are CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    Syscall {
        tid: u32,
        nr: i64,
        /// The errno it failed with; 0 when it did not fail.
        errno: u32,
        enter_ns: u64,
        exit_ns: u64,
    },
    /// A call that took at least the event threshold (--syscall-events):
    /// rare, and boxed so that the common records stay small.
    SlowCall(Box<SlowCall>),
    /// Where a traced thread left its CPU (--off-cpu-stacks): just before
    /// its switch, with the switch's time.
    OffCpuStack(Box<OffCpuStack>),
    /// A CPU went from thread `out` (traced) to thread `into` (traced), at
    /// `ts_ns`.
    Switch {
        ts_ns: u64,
        out: Option<Leaving>,
        into: Option<Arriving>,
    },
    /// Thread `tid` became runnable, woken by `waker`.
    Wakeup { tid: u32, ts_ns: u64, waker: Waker },
    /// The name of a task that is not traced, as the records that follow
    /// name it.
    TaskName {
        task: Task,
        ts_ns: u64,
        kernel_thread: bool,
        comm: [u8; 16],
    },
    /// A thread of process `pid` was created; `start_ns` is its task start
    /// time.
    ThreadNew {
        tid: u32,
        pid: u32,
        ts_ns: u64,
        start_ns: u64,
    },
    /// A thread of process `pid` exited: the process too when it was the
    /// last one.
    ThreadExit {
        tid: u32,
        pid: u32,
        ts_ns: u64,
        comm: [u8; 16],
        process_exited: bool,
    },
    /// Process `ppid` forked process `pid`, which is traced too.
    ProcessNew { pid: u32, ppid: u32, ts_ns: u64 },
    /// Thread `old_tid` exec'd and took the leader's id, `tid`.
    Exec { tid: u32, old_tid: u32, ts_ns: u64 },
    /// Interrupt time charged to the thread it interrupted.
    Irq {
        tid: u32,
        exit_ns: u64,
        duration_ns: u64,
        source: IrqSource,
    },
}

impl Record {
    /// When it was made (a call's return): the order records are
    /// aggregated in.
    pub fn time_ns(&self) -> u64 {
        match self {
            Record::Syscall { exit_ns, .. } | Record::Irq { exit_ns, .. } => *exit_ns,
            Record::SlowCall(call) => call.exit_ns,
            Record::OffCpuStack(stack) => stack.ts_ns,
            Record::Switch { ts_ns, .. }
            | Record::Wakeup { ts_ns, .. }
            | Record::TaskName { ts_ns, .. }
            | Record::ThreadNew { ts_ns, .. }
            | Record::ThreadExit { ts_ns, .. }
            | Record::ProcessNew { ts_ns, .. }
            | Record::Exec { ts_ns, .. } => *ts_ns,
        }
    }

    /// The address space (process, and the programs' number) and user
    /// stack of a record that took one.
    pub fn user_stack_mut(&mut self) -> Option<((u32, u64), &mut UserStack)> {
        match self {
            Record::SlowCall(call) => Some(((call.pid, call.address_space), &mut call.user_stack)),
            Record::OffCpuStack(stack) => {
                Some(((stack.pid, stack.address_space), &mut stack.user_stack))
            }
            _ => None,
        }
    }

    /// Made on its CPU by a traced thread running there; not a wakeup, a
    /// new thread, a new process or a name, which the thread that makes
    /// them (any task, or an interrupt, for a wakeup or a name sent at
    /// once) may make anywhere.
    pub fn made_by_running_thread(&self) -> bool {
        !matches!(
            self,
            Record::Wakeup { .. }
                | Record::TaskName { .. }
                | Record::ThreadNew { .. }
                | Record::ProcessNew { .. }
        )
    }
}

/// A stack id that stands for no stack taken (none was asked for).
pub const NO_STACK: i32 = stack_id::NO_STACK.0 as i32;

/// One slow call, the id of its kernel stack in the kernel's stack map
/// (negative: NO_STACK, or the errno that kept it from being recorded),
/// and its user stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowCall {
    pub tid: u32,
    pub pid: u32,
    pub nr: i64,
    /// The errno it failed with; 0 when it did not fail.
    pub errno: u32,
    pub enter_ns: u64,
    pub exit_ns: u64,
    pub ret: i64,
    pub kernel_stack: i32,
    pub user_stack: UserStack,
    /// Its process's address space, as the programs number them (0:
    /// unknown).
    pub address_space: u64,
}

/// Where a traced thread left its CPU, and in which state (ready:
/// preempted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffCpuStack {
    pub tid: u32,
    pub pid: u32,
    pub ts_ns: u64,
    pub departure: Departure,
    /// Off its CPU as the window opened (a task iterator's report, read at
    /// `ts_ns`), rather than leaving it at `ts_ns`.
    pub at_open: bool,
    pub kernel_stack: KernelStack,
    pub user_stack: UserStack,
    /// Its process's address space, as the programs number them.
    pub address_space: u64,
}

/// A kernel stack as the programs took it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KernelStack {
    /// An id in the kernel's stack map, or -errno (or NO_STACK).
    Id(i32),
    /// Its addresses, innermost first (a task iterator's, read from
    /// another task).
    Frames(Rc<[u64]>),
}

/// Why an unwinder's walk of a user stack ended before its outermost
/// frame.
pub const COPY_ENDED: &str = "the stack copy ended here: raise --user-stack-size for deeper stacks";
pub const TOO_DEEP: &str = "the stack goes on: the first 127 frames are kept";
pub const LEFT_THE_STACK: &str =
    "the walk left the stack here (a function with neither call frame information nor a frame pointer)";

/// Why a walk was cut, if it was. An alias: serde's derive would take an
/// `Option<&str>` it sees for one to borrow from its input.
pub type Cut = Option<&'static str>;

/// Why a walk was cut, as a recording keeps it (--record): by number.
pub mod cut_reason {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{COPY_ENDED, LEFT_THE_STACK, TOO_DEEP};

    const REASONS: [&str; 3] = [COPY_ENDED, TOO_DEEP, LEFT_THE_STACK];

    pub fn serialize<S: Serializer>(cut: &Option<&'static str>, out: S) -> Result<S::Ok, S::Error> {
        let index = cut.map(|reason| REASONS.iter().position(|known| *known == reason));
        match index {
            Some(None) => Err(serde::ser::Error::custom("a cut reason of no number")),
            Some(Some(index)) => out.serialize_some(&(index as u8)),
            None => out.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        input: D,
    ) -> Result<Option<&'static str>, D::Error> {
        Option::<u8>::deserialize(input)?
            .map(|index| {
                REASONS
                    .get(usize::from(index))
                    .copied()
                    .ok_or_else(|| D::Error::custom(format!("no cut reason number {index}")))
            })
            .transpose()
    }
}

/// A slow call's user stack, or an off-CPU one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserStack {
    /// None was taken (stacks were not asked for).
    NotTaken,
    /// The copy the programs took, to be unwound.
    Copied(Box<StackCopy>),
    /// Unwound: the instruction pointer, then return addresses; and why
    /// the walk ended before the stack's outermost frame, if it did.
    Unwound {
        addresses: Rc<[u64]>,
        #[serde(with = "cut_reason")]
        cut: Cut,
    },
}

/// The top of a thread's user stack as the programs copied it, with the
/// registers an unwinder starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackCopy {
    pub ip: u64,
    pub sp: u64,
    /// The frame pointer register (rbp, x29).
    pub fp: u64,
    /// The link register (x30 on arm64; 0 on x86_64).
    pub lr: u64,
    /// The user address of `bytes[0]`.
    pub start: u64,
    pub bytes: Vec<u8>,
}

/// A task a record names: its thread id (0: the idle task), and its
/// process when the record carries it (a task that is not traced; a
/// traced thread's process is known).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Task {
    pub tid: u32,
    pub pid: Option<u32>,
}

/// The traced thread a context switch takes off its CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaving {
    pub tid: u32,
    pub departure: Departure,
    /// It is inside a system call.
    pub in_call: bool,
    /// The task that gets the CPU (its preemptor, when it is still ready).
    pub next: Task,
}

/// The traced thread a context switch gives the CPU to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arriving {
    pub tid: u32,
    /// The CPU was idle before: the thread waited for it to wake up.
    pub after_idle: bool,
    /// The task that had the CPU until then.
    pub prev: Task,
}

/// What woke a thread: the context its wakeup ran in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Waker {
    Task(Task),
    /// An interrupt (a device IRQ's handler name is not known here).
    Interrupt(IrqSource),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IrqSource {
    Softirq(u32),
    Hard(HardIrq),
}

/// A thread's exit: when, and its last name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadExit {
    pub ts_ns: u64,
    pub comm: [u8; 16],
}

/// An exit the kernel kept in its map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptExit {
    pub exit: ThreadExit,
    pub pid: u32,
    pub process_exited: bool,
}

/// Completed calls of one thread, number and errno, known by their totals
/// only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpilledCalls {
    pub count: u64,
    pub total_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// 0: they did not fail.
    pub errno: u32,
}

/// A system call that was entered inside the window and had not returned
/// when the window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub nr: i64,
    pub enter_ns: u64,
}

fn departure(state: switch_out_state) -> Option<Departure> {
    Some(match state {
        switch_out_state::OUT_READY => Departure::Ready,
        switch_out_state::OUT_SLEEPING => Departure::Sleeping,
        switch_out_state::OUT_BLOCKED => Departure::Blocked,
        switch_out_state::OUT_STOPPED => Departure::Stopped,
        switch_out_state::OUT_DEAD => Departure::Dead,
        _ => return None,
    })
}

/// The interrupt that woke the thread of wakeup `e`; None for a kind this
/// version does not know.
fn wake_irq_source(e: &wakeup_event) -> Option<IrqSource> {
    Some(match waking_irq(u32::from(e.waking_irq)) {
        waking_irq::WAKING_HARDIRQ => IrqSource::Hard(HardIrq::Line {
            irq: e.irq as i32,
            handler: Vec::new(),
        }),
        waking_irq::WAKING_VECTOR => IrqSource::Hard(HardIrq::Vector(e.irq)),
        waking_irq::WAKING_SOFTIRQ => IrqSource::Softirq(e.irq),
        _ => return None,
    })
}

/// A kernel `char[]` (signed on x86) as bytes.
pub fn comm_bytes(comm: &[i8; 16]) -> [u8; 16] {
    comm.map(|c| c as u8)
}

/// One ring-buffer sample (or the batch a CPU still holds when tracing
/// stops): a sample_header, then records one after another.
pub struct Sample<'a> {
    pub origin: Origin,
    pub records: Records<'a>,
}

/// The state a thread left its CPU in (enum switch_out_state of
/// bpf/kernel_delay.h, named as the states of the time budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Departure {
    /// Preempted, or yielded: still runnable.
    Ready,
    Sleeping,
    Blocked,
    Stopped,
    /// Its last switch.
    Dead,
}

/// Where a sample's records were made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub cpu: u32,
    /// Staged on that CPU in the order they were made (a batch), rather
    /// than sent at once.
    pub staged: bool,
}

impl Origin {
    /// The CPU of a batch; None for records sent at once.
    pub fn batch_cpu(self) -> Option<u32> {
        self.staged.then_some(self.cpu)
    }
}

/// The sample in `data`, wherever it lies in memory (records are read
/// from unaligned copies). Empty when it has no header this version knows.
pub fn decode_sample(data: &[u8]) -> Sample<'_> {
    let header: sample_header = read_record(data);
    let staged = match event_kind(u32::from(header.kind)) {
        event_kind::EVENT_BATCH => true,
        event_kind::EVENT_DIRECT => false,
        _ => {
            return Sample {
                origin: Origin::default(),
                records: Records::default(),
            }
        }
    };
    Sample {
        origin: Origin {
            cpu: u32::from(header.cpu),
            staged,
        },
        records: Records {
            data,
            offset: size_of::<sample_header>().min(data.len()),
            base_ns: header.base_ns,
            running: header.tid,
        },
    }
}

/// A sample's records, decoded in order.
#[derive(Default)]
pub struct Records<'a> {
    data: &'a [u8],
    offset: usize,
    /// The times' origin.
    base_ns: u64,
    /// The thread running on the CPU: the one a call or an exit is of.
    running: u32,
}

impl Records<'_> {
    fn time(&self, at: i32) -> u64 {
        self.base_ns.wrapping_add_signed(i64::from(at))
    }

    /// The record in `data`, whose kind is `kind`.
    fn decode(&mut self, kind: event_kind, data: &[u8]) -> Option<Record> {
        Some(match kind {
            event_kind::EVENT_SYSCALL | event_kind::EVENT_LONG_SYSCALL => {
                // A short call's missing high half reads as zero.
                let e: syscall_event = read_record(data);
                let exit_ns = self.time(e.exit_at);
                let duration = u64::from(e.duration_high) << 32 | u64::from(e.duration_ns);
                Record::Syscall {
                    tid: self.running,
                    nr: i64::from(e.nr),
                    errno: u32::from(e.err),
                    enter_ns: exit_ns.saturating_sub(duration),
                    exit_ns,
                }
            }
            event_kind::EVENT_SLOW_CALL | event_kind::EVENT_SLOW_CALL_STACK => {
                let e: slow_call_event = read_record(data);
                let exit_ns = self.time(e.exit_at);
                let user_stack = if kind == event_kind::EVENT_SLOW_CALL_STACK {
                    UserStack::Copied(Box::new(stack_copy(&data[size_of::<slow_call_event>()..])))
                } else {
                    UserStack::NotTaken
                };
                Record::SlowCall(Box::new(SlowCall {
                    tid: self.running,
                    pid: e.pid,
                    nr: i64::from(e.nr),
                    errno: u32::from(e.err),
                    enter_ns: exit_ns.saturating_sub(e.duration_ns),
                    exit_ns,
                    ret: e.ret,
                    kernel_stack: e.kernel_stack,
                    user_stack,
                    address_space: e.address_space,
                }))
            }
            event_kind::EVENT_OFFCPU_STACK | event_kind::EVENT_OFFCPU_STACK_COPY => {
                let e: offcpu_stack_event = read_record(data);
                let user_stack = if kind == event_kind::EVENT_OFFCPU_STACK_COPY {
                    UserStack::Copied(Box::new(stack_copy(
                        &data[size_of::<offcpu_stack_event>()..],
                    )))
                } else {
                    UserStack::NotTaken
                };
                Record::OffCpuStack(Box::new(OffCpuStack {
                    tid: e.tid,
                    pid: e.pid,
                    ts_ns: self.time(e.at),
                    departure: departure(switch_out_state(u32::from(e.state)))?,
                    at_open: false,
                    kernel_stack: KernelStack::Id(e.kernel_stack),
                    user_stack,
                    address_space: e.address_space,
                }))
            }
            event_kind::EVENT_SWITCH | event_kind::EVENT_SWITCH_OTHER => {
                let e: switch_event = read_record(data);
                let flag = |flag: switch_flags| u32::from(e.flags) & flag.0 != 0;
                let prev_traced = flag(switch_flags::SWITCH_PREV_TRACED);
                // The side that is not traced: the idle task unless named.
                let other = Task {
                    tid: e.other_tid,
                    pid: Some(e.other_pid),
                };
                let out = match prev_traced {
                    false => None,
                    true => Some(Leaving {
                        tid: self.running,
                        departure: departure(switch_out_state(u32::from(e.prev_state)))?,
                        in_call: flag(switch_flags::SWITCH_PREV_IN_CALL),
                        next: match e.next_tid {
                            0 => other,
                            tid => Task { tid, pid: None },
                        },
                    }),
                };
                let into = (e.next_tid != 0).then_some(Arriving {
                    tid: e.next_tid,
                    after_idle: flag(switch_flags::SWITCH_NEXT_AFTER_IDLE),
                    prev: match prev_traced {
                        true => Task {
                            tid: self.running,
                            pid: None,
                        },
                        false => other,
                    },
                });
                self.running = match e.next_tid {
                    0 => other.tid,
                    tid => tid,
                };
                Record::Switch {
                    ts_ns: self.time(e.at),
                    out,
                    into,
                }
            }
            event_kind::EVENT_WAKEUP => {
                let e: wakeup_event = read_record(data);
                Record::Wakeup {
                    tid: e.tid,
                    ts_ns: self.time(e.at),
                    waker: Waker::Task(Task {
                        tid: self.running,
                        pid: None,
                    }),
                }
            }
            event_kind::EVENT_WAKEUP_IRQ => {
                let e: wakeup_event = read_record(data);
                Record::Wakeup {
                    tid: e.tid,
                    ts_ns: self.time(e.at),
                    waker: Waker::Interrupt(wake_irq_source(&e)?),
                }
            }
            event_kind::EVENT_TASK_NAME => {
                let e: task_name_event = read_record(data);
                Record::TaskName {
                    task: Task {
                        tid: e.tid,
                        pid: Some(e.pid),
                    },
                    ts_ns: self.time(e.at),
                    kernel_thread: e.kernel_thread != 0,
                    comm: comm_bytes(&e.comm),
                }
            }
            event_kind::EVENT_THREAD_NEW => {
                let e: thread_new_event = read_record(data);
                Record::ThreadNew {
                    tid: e.tid,
                    pid: e.pid,
                    ts_ns: self.time(e.at),
                    start_ns: e.start_ns,
                }
            }
            event_kind::EVENT_THREAD_EXIT => {
                let e: thread_exit_event = read_record(data);
                Record::ThreadExit {
                    tid: self.running,
                    pid: e.pid,
                    ts_ns: self.time(e.at),
                    comm: comm_bytes(&e.comm),
                    process_exited: e.process_exited != 0,
                }
            }
            event_kind::EVENT_PROCESS_NEW => {
                let e: process_new_event = read_record(data);
                Record::ProcessNew {
                    pid: e.pid,
                    ppid: e.ppid,
                    ts_ns: self.time(e.at),
                }
            }
            event_kind::EVENT_EXEC => {
                let e: exec_event = read_record(data);
                self.running = e.tid;
                Record::Exec {
                    tid: e.tid,
                    old_tid: e.old_tid,
                    ts_ns: self.time(e.at),
                }
            }
            event_kind::EVENT_SOFTIRQ
            | event_kind::EVENT_HARDIRQ
            | event_kind::EVENT_IRQ_VECTOR => {
                let e: irq_event = read_record(data);
                let source = match kind {
                    event_kind::EVENT_SOFTIRQ => IrqSource::Softirq(e.id as u32),
                    event_kind::EVENT_HARDIRQ => IrqSource::Hard(HardIrq::Line {
                        irq: e.id,
                        handler: e
                            .name
                            .iter()
                            .map(|&c| c as u8)
                            .take_while(|&c| c != 0)
                            .collect(),
                    }),
                    _ => IrqSource::Hard(HardIrq::Vector(e.id as u32)),
                };
                Record::Irq {
                    tid: self.running,
                    exit_ns: self.time(e.exit_at),
                    duration_ns: e.duration_ns,
                    source,
                }
            }
            _ => return None,
        })
    }
}

impl Iterator for Records<'_> {
    type Item = Record;

    /// Stops at the end, or at a kind this version does not know (its size
    /// is unknown too), or a record cut short.
    fn next(&mut self) -> Option<Record> {
        let rest = self.data.get(self.offset..)?;
        let kind = event_kind(u32::from(u16::from_ne_bytes(
            rest.get(..2)?.try_into().ok()?,
        )));
        let size = record_size(kind, rest.len())?;
        let record = self.decode(kind, rest.get(..size)?)?;
        self.offset += size;
        Some(record)
    }
}

/// The record of type `T` at the start of `data`, read from any alignment;
/// bytes past the end of `data` read as zero.
fn read_record<T: plain::Plain + Default>(data: &[u8]) -> T {
    let mut record = T::default();
    // SAFETY: the record types are plain C structs of integers and byte
    // arrays: any bytes make a valid value.
    let bytes = unsafe { plain::as_mut_bytes(&mut record) };
    let len = bytes.len().min(data.len());
    bytes[..len].copy_from_slice(&data[..len]);
    record
}

/// The stack copy in `data` (a user_stack_copy and the bytes copied).
fn stack_copy(data: &[u8]) -> StackCopy {
    let copy: user_stack_copy = read_record(data);
    let bytes = data.get(size_of::<user_stack_copy>()..).unwrap_or_default();
    let len = bytes.len().min(copy.len as usize);
    StackCopy {
        ip: copy.regs.ip,
        sp: copy.regs.sp,
        fp: copy.regs.fp,
        lr: copy.regs.lr,
        start: copy.start,
        bytes: bytes[..len].to_vec(),
    }
}

/// The report of a thread off its CPU as the window opened at the start
/// of `data` (what the task iterator offcpu_at_open writes), and its size;
/// None when `data` holds no whole report.
pub fn decode_offcpu_at_open(data: &[u8]) -> Option<(Record, usize)> {
    let header_size = size_of::<offcpu_at_open>();
    let e: offcpu_at_open = read_record(data.get(..header_size)?);
    let size = e.size as usize;
    let report = data.get(..size.max(header_size))?;
    let frames = e.kernel.len().min(usize::from(e.kernel_frames));
    let user_stack = match e.has_user_stack {
        0 => UserStack::NotTaken,
        _ => UserStack::Copied(Box::new(stack_copy(&report[header_size..]))),
    };
    let record = Record::OffCpuStack(Box::new(OffCpuStack {
        tid: e.tid,
        pid: e.pid,
        ts_ns: e.ts_ns,
        departure: departure(switch_out_state(u32::from(e.state)))?,
        at_open: true,
        kernel_stack: KernelStack::Frames(e.kernel[..frames].into()),
        user_stack,
        address_space: e.address_space,
    }));
    Some((record, report.len()))
}

/// The size of a record of `kind`, with `rest` bytes left in its sample.
fn record_size(kind: event_kind, rest: usize) -> Option<usize> {
    Some(match kind {
        // Alone in its sample, with as many pages of stack as were asked.
        event_kind::EVENT_SLOW_CALL_STACK => {
            rest.max(size_of::<slow_call_event>() + size_of::<user_stack_copy>())
        }
        event_kind::EVENT_OFFCPU_STACK_COPY => {
            rest.max(size_of::<offcpu_stack_event>() + size_of::<user_stack_copy>())
        }
        event_kind::EVENT_OFFCPU_STACK => size_of::<offcpu_stack_event>(),
        event_kind::EVENT_SYSCALL => std::mem::offset_of!(syscall_event, duration_high),
        event_kind::EVENT_LONG_SYSCALL => size_of::<syscall_event>(),
        event_kind::EVENT_SLOW_CALL => size_of::<slow_call_event>(),
        event_kind::EVENT_SWITCH => std::mem::offset_of!(switch_event, other_tid),
        event_kind::EVENT_SWITCH_OTHER => size_of::<switch_event>(),
        event_kind::EVENT_WAKEUP => std::mem::offset_of!(wakeup_event, irq),
        event_kind::EVENT_WAKEUP_IRQ => size_of::<wakeup_event>(),
        event_kind::EVENT_TASK_NAME => size_of::<task_name_event>(),
        event_kind::EVENT_THREAD_NEW => size_of::<thread_new_event>(),
        event_kind::EVENT_THREAD_EXIT => size_of::<thread_exit_event>(),
        event_kind::EVENT_EXEC => size_of::<exec_event>(),
        event_kind::EVENT_PROCESS_NEW => size_of::<process_new_event>(),
        event_kind::EVENT_SOFTIRQ | event_kind::EVENT_HARDIRQ | event_kind::EVENT_IRQ_VECTOR => {
            size_of::<irq_event>()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T>(record: &T) -> Vec<u8> {
        // SAFETY: the record types are C structs of integers laid out with
        // no padding, so every byte is initialised.
        unsafe { plain::as_bytes(record) }.to_vec()
    }

    fn header(kind: event_kind, cpu: u16, tid: u32, base_ns: u64) -> Vec<u8> {
        bytes(&sample_header {
            kind: kind.0 as u16,
            cpu,
            tid,
            base_ns,
        })
    }

    /// The base time of the samples below (10 s).
    const BASE: u64 = 10_000_000_000;

    /// The records of a sample sent at once by thread `running` with base
    /// time BASE: `records` after the header, at an odd place in memory.
    fn decode_direct(running: u32, records: &[Vec<u8>]) -> Vec<Record> {
        let mut sample = vec![0u8; 3];
        sample.extend(header(event_kind::EVENT_DIRECT, 1, running, BASE));
        for record in records {
            sample.extend(record);
        }
        let decoded = decode_sample(&sample[3..]);
        assert_eq!(
            decoded.origin,
            Origin {
                cpu: 1,
                staged: false
            }
        );
        assert_eq!(decoded.origin.batch_cpu(), None);
        decoded.records.collect()
    }

    /// `record`, sent at once by thread 42, is `want`.
    fn decodes_to<T>(record: &T, want: Record) {
        assert_eq!(decode_direct(42, &[bytes(record)]), vec![want]);
    }

    /// A record's bytes, as long as its kind says: the short kinds end
    /// before their last fields.
    fn short(mut record: Vec<u8>, len: usize) -> Vec<u8> {
        record.truncate(len);
        record
    }

    /// An EVENT_SWITCH: both sides traced, or the untraced one idle.
    fn switch_bytes(e: &switch_event) -> Vec<u8> {
        short(bytes(e), std::mem::offset_of!(switch_event, other_tid))
    }

    fn switch_decodes_to(e: &switch_event, want: Record) {
        assert_eq!(decode_direct(42, &[switch_bytes(e)]), vec![want]);
    }

    fn call(nr: i32, exit_at: i32, duration_ns: u32) -> Vec<u8> {
        let mut call = bytes(&syscall_event {
            kind: event_kind::EVENT_SYSCALL.0 as u16,
            nr,
            exit_at,
            duration_ns,
            ..Default::default()
        });
        call.truncate(std::mem::offset_of!(syscall_event, duration_high));
        call
    }

    /// A switch; as an EVENT_SWITCH_OTHER, its untraced side is task 77 of
    /// process 76.
    fn switch(flags: switch_flags, at: i32, next_tid: u32) -> switch_event {
        switch_event {
            kind: event_kind::EVENT_SWITCH.0 as u16,
            prev_state: switch_out_state::OUT_SLEEPING.0 as u8,
            flags: flags.0 as u8,
            at,
            next_tid,
            other_tid: 77,
            other_pid: 76,
        }
    }

    fn switch_other(flags: switch_flags, at: i32, next_tid: u32) -> switch_event {
        switch_event {
            kind: event_kind::EVENT_SWITCH_OTHER.0 as u16,
            ..switch(flags, at, next_tid)
        }
    }

    const IDLE: Task = Task {
        tid: 0,
        pid: Some(0),
    };

    /// A traced thread, whose process the record does not carry.
    fn traced(tid: u32) -> Task {
        Task { tid, pid: None }
    }

    const UNTRACED: Task = Task {
        tid: 77,
        pid: Some(76),
    };

    #[test]
    fn a_batch_is_records_of_the_running_thread_one_after_another() {
        let wakeup = wakeup_event {
            kind: event_kind::EVENT_WAKEUP.0 as u16,
            at: 5,
            tid: 3,
            ..Default::default()
        };
        let mut batch = vec![0u8; 1]; // lies at an odd place in memory
        batch.extend(header(event_kind::EVENT_BATCH, 7, 1, 1_000));
        batch.extend(call(0, 10, 4));
        batch.extend(short(
            bytes(&wakeup),
            std::mem::offset_of!(wakeup_event, irq),
        ));
        // Thread 1 leaves the CPU to thread 2, whose call follows.
        batch.extend(switch_bytes(&switch(
            switch_flags::SWITCH_PREV_TRACED,
            20,
            2,
        )));
        batch.extend(call(1, 30, 6));
        let sample = decode_sample(&batch[1..]);
        assert_eq!(sample.origin.batch_cpu(), Some(7));
        let records: Vec<Record> = sample.records.collect();
        let call_of = |tid, nr, enter_ns, exit_ns| Record::Syscall {
            tid,
            nr,
            errno: 0,
            enter_ns,
            exit_ns,
        };
        assert_eq!(
            records,
            vec![
                call_of(1, 0, 1_006, 1_010),
                Record::Wakeup {
                    tid: 3,
                    ts_ns: 1_005,
                    waker: Waker::Task(traced(1)),
                },
                Record::Switch {
                    ts_ns: 1_020,
                    out: Some(Leaving {
                        tid: 1,
                        departure: Departure::Sleeping,
                        in_call: false,
                        next: traced(2),
                    }),
                    into: Some(Arriving {
                        tid: 2,
                        after_idle: false,
                        prev: traced(1),
                    }),
                },
                call_of(2, 1, 1_024, 1_030),
            ]
        );
        // A record cut short ends the batch.
        assert_eq!(decode_sample(&batch[1..batch.len() - 1]).records.count(), 3);
        // No header, or one this version does not know: nothing.
        assert_eq!(decode_sample(&[]).records.count(), 0);
        assert_eq!(decode_sample(&batch[1..8]).records.count(), 0);
        let mut unknown = batch[1..].to_vec();
        unknown[0] = 99;
        assert_eq!(decode_sample(&unknown).records.count(), 0);
    }

    #[test]
    fn only_records_of_others_can_be_made_away_from_the_traced_threads() {
        let wakeup = Record::Wakeup {
            tid: 1,
            ts_ns: 0,
            waker: Waker::Interrupt(IrqSource::Softirq(1)),
        };
        let name = Record::TaskName {
            task: UNTRACED,
            ts_ns: 0,
            kernel_thread: false,
            comm: [0; 16],
        };
        let call = Record::Syscall {
            tid: 1,
            nr: 0,
            errno: 0,
            enter_ns: 0,
            exit_ns: 0,
        };
        let switch = Record::Switch {
            ts_ns: 0,
            out: None,
            into: Some(Arriving {
                tid: 1,
                after_idle: true,
                prev: traced(0),
            }),
        };
        assert!(!wakeup.made_by_running_thread());
        assert!(!name.made_by_running_thread());
        assert!(call.made_by_running_thread());
        assert!(switch.made_by_running_thread());
    }

    #[test]
    fn syscall_records() {
        let mut failed = call(110, -3, 70);
        failed[2..4].copy_from_slice(&9u16.to_ne_bytes());
        assert_eq!(
            decode_direct(42, &[failed]),
            vec![Record::Syscall {
                tid: 42,
                nr: 110,
                errno: 9,
                enter_ns: BASE - 73,
                exit_ns: BASE - 3,
            }]
        );
        // 5 s: the high half of the duration follows.
        let long = syscall_event {
            kind: event_kind::EVENT_LONG_SYSCALL.0 as u16,
            nr: 7,
            exit_at: 0,
            duration_ns: 705_032_704,
            duration_high: 1,
            ..Default::default()
        };
        assert_eq!(
            decode_direct(42, &[bytes(&long), call(0, 1, 1)]),
            vec![
                Record::Syscall {
                    tid: 42,
                    nr: 7,
                    errno: 0,
                    enter_ns: BASE - 5_000_000_000,
                    exit_ns: BASE,
                },
                Record::Syscall {
                    tid: 42,
                    nr: 0,
                    errno: 0,
                    enter_ns: BASE,
                    exit_ns: BASE + 1,
                },
            ]
        );
    }

    fn slow_call(kind: event_kind) -> slow_call_event {
        slow_call_event {
            kind: kind.0 as u16,
            err: 4,
            nr: 230,
            exit_at: 1_000,
            pid: 40,
            duration_ns: 5_000_000,
            ret: -4,
            kernel_stack: 7,
            pad: 0,
            address_space: 3,
        }
    }

    fn slow_call_with(user_stack: UserStack) -> Record {
        Record::SlowCall(Box::new(SlowCall {
            tid: 42,
            pid: 40,
            nr: 230,
            errno: 4,
            enter_ns: BASE + 1_000 - 5_000_000,
            exit_ns: BASE + 1_000,
            ret: -4,
            kernel_stack: 7,
            user_stack,
            address_space: 3,
        }))
    }

    #[test]
    fn slow_call_record() {
        decodes_to(
            &slow_call(event_kind::EVENT_SLOW_CALL),
            slow_call_with(UserStack::NotTaken),
        );
    }

    #[test]
    fn slow_call_with_its_user_stack() {
        let mut copy = user_stack_copy::default();
        copy.regs.ip = 0x401234;
        copy.regs.sp = 0x7ffd_0000_1f00;
        copy.regs.fp = 0x7ffd_0000_1f80;
        copy.start = 0x7ffd_0000_1000;
        // Two pages asked, one read: the bytes past `len` are not stack.
        copy.len = 4096;
        let stack: Vec<u8> = (0..8192).map(|i| (i % 251) as u8).collect();
        let sample = [
            bytes(&slow_call(event_kind::EVENT_SLOW_CALL_STACK)),
            bytes(&copy),
            stack.clone(),
        ]
        .concat();
        let want = slow_call_with(UserStack::Copied(Box::new(StackCopy {
            ip: 0x401234,
            sp: 0x7ffd_0000_1f00,
            fp: 0x7ffd_0000_1f80,
            lr: 0,
            start: 0x7ffd_0000_1000,
            bytes: stack[..4096].to_vec(),
        })));
        assert_eq!(decode_direct(42, std::slice::from_ref(&sample)), vec![want]);
        // Cut before its copy's header ends: not a record.
        let cut = sample[..size_of::<slow_call_event>() + 8].to_vec();
        assert_eq!(decode_direct(42, &[cut]), vec![]);
    }

    #[test]
    fn reports_of_threads_off_their_cpu_as_the_window_opens() {
        let mut blocked = offcpu_at_open {
            state: switch_out_state::OUT_BLOCKED.0 as u8,
            kernel_frames: 2,
            tid: 42,
            pid: 40,
            ts_ns: BASE,
            address_space: 3,
            ..Default::default()
        };
        blocked.kernel[..3].copy_from_slice(&[0xffff_1000, 0xffff_2000, 0xffff_3000]);
        blocked.size = size_of::<offcpu_at_open>() as u32;
        let mut sleeping = blocked;
        sleeping.state = switch_out_state::OUT_SLEEPING.0 as u8;
        sleeping.has_user_stack = 1;
        let copy = user_stack_copy {
            start: 0x7ffd_0000_1000,
            len: 4096,
            ..Default::default()
        };
        let stack = vec![7; 4096];
        sleeping.size += (size_of::<user_stack_copy>() + stack.len()) as u32;
        let stream = [
            bytes(&blocked),
            bytes(&sleeping),
            bytes(&copy),
            stack.clone(),
        ]
        .concat();
        let want = |departure, user_stack| {
            Record::OffCpuStack(Box::new(OffCpuStack {
                tid: 42,
                pid: 40,
                ts_ns: BASE,
                departure,
                at_open: true,
                kernel_stack: KernelStack::Frames(Rc::from([0xffff_1000, 0xffff_2000])),
                user_stack,
                address_space: 3,
            }))
        };
        let (first, size) = decode_offcpu_at_open(&stream).expect("a report");
        assert_eq!(first, want(Departure::Blocked, UserStack::NotTaken));
        let (second, rest) = decode_offcpu_at_open(&stream[size..]).expect("a report");
        let copied = StackCopy {
            ip: 0,
            sp: 0,
            fp: 0,
            lr: 0,
            start: 0x7ffd_0000_1000,
            bytes: stack,
        };
        assert_eq!(
            second,
            want(Departure::Sleeping, UserStack::Copied(Box::new(copied)))
        );
        assert_eq!(size + rest, stream.len());
        // A report not whole yet: the next read brings the rest.
        assert_eq!(decode_offcpu_at_open(&stream[size..stream.len() - 1]), None);
        assert_eq!(decode_offcpu_at_open(&stream[..10]), None);
    }

    #[test]
    fn switches_and_wakeups() {
        let mut e = switch(switch_flags::SWITCH_PREV_TRACED, 5, 8);
        for (state, departure) in [
            (switch_out_state::OUT_READY, Departure::Ready),
            (switch_out_state::OUT_SLEEPING, Departure::Sleeping),
            (switch_out_state::OUT_BLOCKED, Departure::Blocked),
            (switch_out_state::OUT_STOPPED, Departure::Stopped),
            (switch_out_state::OUT_DEAD, Departure::Dead),
        ] {
            e.prev_state = state.0 as u8;
            switch_decodes_to(
                &e,
                Record::Switch {
                    ts_ns: BASE + 5,
                    out: Some(Leaving {
                        tid: 42,
                        departure,
                        in_call: false,
                        next: traced(8),
                    }),
                    into: Some(Arriving {
                        tid: 8,
                        after_idle: false,
                        prev: traced(42),
                    }),
                },
            );
        }
        e.flags |=
            (switch_flags::SWITCH_PREV_IN_CALL.0 | switch_flags::SWITCH_NEXT_AFTER_IDLE.0) as u8;
        switch_decodes_to(
            &e,
            Record::Switch {
                ts_ns: BASE + 5,
                out: Some(Leaving {
                    tid: 42,
                    departure: Departure::Dead,
                    in_call: true,
                    next: traced(8),
                }),
                into: Some(Arriving {
                    tid: 8,
                    after_idle: true,
                    prev: traced(42),
                }),
            },
        );
        e.prev_state = 99;
        assert_eq!(
            decode_direct(42, &[switch_bytes(&e)]),
            vec![],
            "an unknown state is no guess"
        );
        // Only one side traced: an untraced task leaves, or gets the CPU,
        // and is named; or the idle task does, unnamed.
        let into = switch_other(switch_flags(0), 5, 8);
        let out = switch_other(switch_flags::SWITCH_PREV_TRACED, 5, 0);
        assert_eq!(
            decode_direct(42, &[bytes(&into), bytes(&out)]),
            vec![
                Record::Switch {
                    ts_ns: BASE + 5,
                    out: None,
                    into: Some(Arriving {
                        tid: 8,
                        after_idle: false,
                        prev: UNTRACED,
                    }),
                },
                Record::Switch {
                    ts_ns: BASE + 5,
                    out: Some(Leaving {
                        tid: 8,
                        departure: Departure::Sleeping,
                        in_call: false,
                        next: UNTRACED,
                    }),
                    into: None,
                },
            ]
        );
        let from_idle = switch(switch_flags::SWITCH_NEXT_AFTER_IDLE, 5, 8);
        let to_idle = switch(switch_flags::SWITCH_PREV_TRACED, 5, 0);
        assert_eq!(
            decode_direct(42, &[switch_bytes(&from_idle), switch_bytes(&to_idle)]),
            vec![
                Record::Switch {
                    ts_ns: BASE + 5,
                    out: None,
                    into: Some(Arriving {
                        tid: 8,
                        after_idle: true,
                        prev: IDLE,
                    }),
                },
                Record::Switch {
                    ts_ns: BASE + 5,
                    out: Some(Leaving {
                        tid: 8,
                        departure: Departure::Sleeping,
                        in_call: false,
                        next: IDLE,
                    }),
                    into: None,
                },
            ]
        );
        // Woken by the thread running (the one the sample names), or by
        // an interrupt.
        let by_task = wakeup_event {
            kind: event_kind::EVENT_WAKEUP.0 as u16,
            at: 9,
            tid: 7,
            ..Default::default()
        };
        assert_eq!(
            decode_direct(
                42,
                &[short(
                    bytes(&by_task),
                    std::mem::offset_of!(wakeup_event, irq)
                )]
            ),
            vec![Record::Wakeup {
                tid: 7,
                ts_ns: BASE + 9,
                waker: Waker::Task(traced(42)),
            }]
        );
        let mut wakeup = wakeup_event {
            kind: event_kind::EVENT_WAKEUP_IRQ.0 as u16,
            waking_irq: 0,
            at: 9,
            tid: 7,
            irq: 3,
        };
        for (kind, source) in [
            (
                waking_irq::WAKING_HARDIRQ,
                IrqSource::Hard(HardIrq::Line {
                    irq: 3,
                    handler: Vec::new(),
                }),
            ),
            (
                waking_irq::WAKING_VECTOR,
                IrqSource::Hard(HardIrq::Vector(3)),
            ),
            (waking_irq::WAKING_SOFTIRQ, IrqSource::Softirq(3)),
        ] {
            wakeup.waking_irq = kind.0 as u16;
            decodes_to(
                &wakeup,
                Record::Wakeup {
                    tid: 7,
                    ts_ns: BASE + 9,
                    waker: Waker::Interrupt(source),
                },
            );
        }
        wakeup.waking_irq = 99;
        assert_eq!(
            decode_direct(42, &[bytes(&wakeup)]),
            vec![],
            "an unknown interrupt is no guess"
        );
        let mut comm = [0i8; 16];
        for (c, b) in comm.iter_mut().zip(b"kworker/0:1") {
            *c = *b as i8;
        }
        let name = task_name_event {
            kind: event_kind::EVENT_TASK_NAME.0 as u16,
            kernel_thread: 1,
            at: 9,
            tid: 77,
            pid: 76,
            comm,
        };
        let mut expected = [0u8; 16];
        expected[..11].copy_from_slice(b"kworker/0:1");
        decodes_to(
            &name,
            Record::TaskName {
                task: UNTRACED,
                ts_ns: BASE + 9,
                kernel_thread: true,
                comm: expected,
            },
        );
    }

    #[test]
    fn thread_records() {
        let new = thread_new_event {
            kind: event_kind::EVENT_THREAD_NEW.0 as u16,
            at: 20,
            tid: 8,
            pid: 7,
            start_ns: 15,
            ..Default::default()
        };
        decodes_to(
            &new,
            Record::ThreadNew {
                tid: 8,
                pid: 7,
                ts_ns: BASE + 20,
                start_ns: 15,
            },
        );
        let mut exit = thread_exit_event {
            kind: event_kind::EVENT_THREAD_EXIT.0 as u16,
            process_exited: 1,
            at: 30,
            pid: 7,
            ..Default::default()
        };
        exit.comm[..3].copy_from_slice(&[b'a' as i8, b'b' as i8, -1]);
        let mut comm = [0u8; 16];
        comm[..3].copy_from_slice(b"ab\xff");
        decodes_to(
            &exit,
            Record::ThreadExit {
                tid: 42,
                pid: 7,
                ts_ns: BASE + 30,
                comm,
                process_exited: true,
            },
        );
        let fork = process_new_event {
            kind: event_kind::EVENT_PROCESS_NEW.0 as u16,
            at: 50,
            pid: 9,
            ppid: 7,
            ..Default::default()
        };
        decodes_to(
            &fork,
            Record::ProcessNew {
                pid: 9,
                ppid: 7,
                ts_ns: BASE + 50,
            },
        );
        // After an exec, the running thread has its new id.
        let exec = exec_event {
            kind: event_kind::EVENT_EXEC.0 as u16,
            at: 40,
            tid: 100,
            old_tid: 105,
            ..Default::default()
        };
        assert_eq!(
            decode_direct(105, &[bytes(&exec), call(59, 41, 1)]),
            vec![
                Record::Exec {
                    tid: 100,
                    old_tid: 105,
                    ts_ns: BASE + 40,
                },
                Record::Syscall {
                    tid: 100,
                    nr: 59,
                    errno: 0,
                    enter_ns: BASE + 40,
                    exit_ns: BASE + 41,
                },
            ]
        );
    }

    #[test]
    fn irq_records() {
        let mut e = irq_event {
            kind: event_kind::EVENT_HARDIRQ.0 as u16,
            exit_at: 100,
            duration_ns: 30,
            id: 24,
            ..Default::default()
        };
        for (i, b) in b"virtio0-input.0".iter().enumerate() {
            e.name[i] = *b as _;
        }
        let handler = b"virtio0-input.0".to_vec();
        for (kind, id, source) in [
            (
                event_kind::EVENT_HARDIRQ,
                24,
                IrqSource::Hard(HardIrq::Line { irq: 24, handler }),
            ),
            (
                event_kind::EVENT_IRQ_VECTOR,
                0,
                IrqSource::Hard(HardIrq::Vector(0)),
            ),
            (event_kind::EVENT_SOFTIRQ, 3, IrqSource::Softirq(3)),
        ] {
            e.kind = kind.0 as u16;
            e.id = id;
            decodes_to(
                &e,
                Record::Irq {
                    tid: 42,
                    exit_ns: BASE + 100,
                    duration_ns: 30,
                    source,
                },
            );
        }
    }

    #[test]
    fn unknown_or_short_records_end_the_sample() {
        assert_eq!(decode_direct(42, &[]), vec![]);
        assert_eq!(decode_direct(42, &[vec![1]]), vec![]);
        assert_eq!(decode_direct(42, &[99u16.to_ne_bytes().to_vec()]), vec![]);
        // A call with too few bytes for the record.
        let mut short = call(0, 0, 0);
        short.truncate(15);
        assert_eq!(decode_direct(42, &[short]), vec![]);
    }
}
