//! The records the BPF programs send through the ring buffer (the structs
//! of bpf/kernel_delay.h), decoded into what the aggregation reads.

use crate::irq::HardIrq;
use crate::sched::Departure;
use crate::skel::types::{
    batch_header, event_kind, exec_event, irq_event, process_new_event, slow_call_event, stack_id,
    switch_event, switch_flags, switch_out_state, syscall_event, thread_exit_event,
    thread_new_event, wakeup_event,
};

/// One decoded record (timestamps are CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Syscall {
        tid: u32,
        nr: i64,
        /// The errno it failed with; 0 when it did not fail.
        errno: u32,
        enter_ns: u64,
        exit_ns: u64,
    },
    /// A call that took at least the event threshold (--syscall-events).
    SlowCall(SlowCall),
    /// A CPU went from thread `out` (traced) to thread `into` (traced), at
    /// `ts_ns`.
    Switch {
        ts_ns: u64,
        out: Option<Leaving>,
        into: Option<Arriving>,
    },
    /// Thread `tid` became runnable.
    Wakeup { tid: u32, ts_ns: u64 },
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
            Record::Switch { ts_ns, .. }
            | Record::Wakeup { ts_ns, .. }
            | Record::ThreadNew { ts_ns, .. }
            | Record::ThreadExit { ts_ns, .. }
            | Record::ProcessNew { ts_ns, .. }
            | Record::Exec { ts_ns, .. } => *ts_ns,
        }
    }
}

/// A stack id that stands for no stack taken (none was asked for).
pub const NO_STACK: i32 = stack_id::NO_STACK.0 as i32;

/// One slow call, and the ids of its stacks in the kernel's stack map
/// (negative: NO_STACK, or the errno that kept it from being recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    pub user_stack: i32,
}

/// The traced thread a context switch takes off its CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaving {
    pub tid: u32,
    pub departure: Departure,
    /// It is inside a system call.
    pub in_call: bool,
}

/// The traced thread a context switch gives the CPU to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arriving {
    pub tid: u32,
    /// The CPU was idle before: the thread waited for it to wake up.
    pub after_idle: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IrqSource {
    Softirq(u32),
    Hard(HardIrq),
}

/// A system call that was entered inside the window and had not returned
/// when the window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// A kernel `char[]` (signed on x86) as bytes.
pub fn comm_bytes(comm: &[i8; 16]) -> [u8; 16] {
    comm.map(|c| c as u8)
}

/// One ring-buffer sample: a record sent at once, or a batch staged on
/// one CPU (a batch_header, then records one after another, each a
/// multiple of 8 bytes, so that all stay aligned).
pub struct Sample<'a> {
    /// The CPU of a batch.
    pub cpu: Option<u32>,
    pub records: Records<'a>,
}

pub fn decode_sample(data: &[u8]) -> Sample<'_> {
    let (cpu, offset) = match plain::from_bytes::<batch_header>(data) {
        Ok(header) if event_kind(header.kind) == event_kind::EVENT_BATCH => {
            (Some(header.cpu), std::mem::size_of::<batch_header>())
        }
        _ => (None, 0),
    };
    Sample {
        cpu,
        records: Records { data, offset },
    }
}

pub struct Records<'a> {
    data: &'a [u8],
    offset: usize,
}

impl Iterator for Records<'_> {
    type Item = Record;

    /// Stops at the end, or at a kind this version does not know (its size
    /// is unknown too).
    fn next(&mut self) -> Option<Record> {
        let rest = self.data.get(self.offset..)?;
        let kind = event_kind(u32::from_ne_bytes(rest.get(..4)?.try_into().ok()?));
        let size = record_size(kind)?;
        let record = decode(rest.get(..size)?)?;
        self.offset += size;
        Some(record)
    }
}

/// The sample in `data` wherever it lies in memory: decoded from a copy
/// aligned as the record structs need (the ring buffer's samples are).
pub fn decode_unaligned(data: &[u8]) -> (Option<u32>, Vec<Record>) {
    with_aligned_copy(data, |aligned| {
        let sample = decode_sample(aligned);
        (sample.cpu, sample.records.collect())
    })
}

/// `read` applied to a copy of `data` that starts on an 8-byte boundary.
fn with_aligned_copy<T>(data: &[u8], read: impl FnOnce(&[u8]) -> T) -> T {
    let mut words = vec![0u64; data.len().div_ceil(8)];
    // SAFETY: u64s are plain; the byte view covers exactly the allocation.
    let buffer = unsafe { plain::as_mut_bytes(&mut words[..]) };
    buffer[..data.len()].copy_from_slice(data);
    read(&buffer[..data.len()])
}

/// The size of a record of `kind`.
fn record_size(kind: event_kind) -> Option<usize> {
    use std::mem::size_of;
    Some(match kind {
        event_kind::EVENT_SYSCALL => size_of::<syscall_event>(),
        event_kind::EVENT_SLOW_CALL => size_of::<slow_call_event>(),
        event_kind::EVENT_SWITCH => size_of::<switch_event>(),
        event_kind::EVENT_WAKEUP => size_of::<wakeup_event>(),
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

/// The record in `data`; None for a kind or size this version does not know.
fn decode(data: &[u8]) -> Option<Record> {
    let kind = event_kind(u32::from_ne_bytes(data.get(..4)?.try_into().ok()?));
    Some(match kind {
        event_kind::EVENT_SYSCALL => {
            let e: &syscall_event = plain::from_bytes(data).ok()?;
            Record::Syscall {
                tid: e.tid,
                nr: i64::from(e.nr),
                errno: e.err.max(0) as u32,
                enter_ns: e.enter_ns,
                exit_ns: e.exit_ns,
            }
        }
        event_kind::EVENT_SLOW_CALL => {
            let e: &slow_call_event = plain::from_bytes(data).ok()?;
            Record::SlowCall(SlowCall {
                tid: e.tid,
                pid: e.pid,
                nr: i64::from(e.nr),
                errno: e.err.max(0) as u32,
                enter_ns: e.enter_ns,
                exit_ns: e.exit_ns,
                ret: e.ret,
                kernel_stack: e.kernel_stack,
                user_stack: e.user_stack,
            })
        }
        event_kind::EVENT_SWITCH => {
            let e: &switch_event = plain::from_bytes(data).ok()?;
            let flag = |flag: switch_flags| e.flags & flag.0 as u16 != 0;
            let out = match e.prev_tid {
                0 => None,
                tid => Some(Leaving {
                    tid,
                    departure: departure(switch_out_state(u32::from(e.prev_state)))?,
                    in_call: flag(switch_flags::SWITCH_PREV_IN_CALL),
                }),
            };
            let into = (e.next_tid != 0).then_some(Arriving {
                tid: e.next_tid,
                after_idle: flag(switch_flags::SWITCH_NEXT_AFTER_IDLE),
            });
            Record::Switch {
                ts_ns: e.ts_ns,
                out,
                into,
            }
        }
        event_kind::EVENT_WAKEUP => {
            let e: &wakeup_event = plain::from_bytes(data).ok()?;
            Record::Wakeup {
                tid: e.tid,
                ts_ns: e.ts_ns,
            }
        }
        event_kind::EVENT_THREAD_NEW => {
            let e: &thread_new_event = plain::from_bytes(data).ok()?;
            Record::ThreadNew {
                tid: e.tid,
                pid: e.pid,
                ts_ns: e.ts_ns,
                start_ns: e.start_ns,
            }
        }
        event_kind::EVENT_THREAD_EXIT => {
            let e: &thread_exit_event = plain::from_bytes(data).ok()?;
            Record::ThreadExit {
                tid: e.tid,
                pid: e.pid,
                ts_ns: e.ts_ns,
                comm: comm_bytes(&e.comm),
                process_exited: e.process_exited != 0,
            }
        }
        event_kind::EVENT_PROCESS_NEW => {
            let e: &process_new_event = plain::from_bytes(data).ok()?;
            Record::ProcessNew {
                pid: e.pid,
                ppid: e.ppid,
                ts_ns: e.ts_ns,
            }
        }
        event_kind::EVENT_EXEC => {
            let e: &exec_event = plain::from_bytes(data).ok()?;
            Record::Exec {
                tid: e.tid,
                old_tid: e.old_tid,
                ts_ns: e.ts_ns,
            }
        }
        event_kind::EVENT_SOFTIRQ | event_kind::EVENT_HARDIRQ | event_kind::EVENT_IRQ_VECTOR => {
            let e: &irq_event = plain::from_bytes(data).ok()?;
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
                tid: e.tid,
                exit_ns: e.exit_ns,
                duration_ns: e.duration_ns,
                source,
            }
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

    /// `record`, decoded from an 8-aligned copy as the ring buffer hands
    /// records out, is `want`.
    fn decodes_to<T>(record: &T, want: Record) {
        assert_eq!(decode_aligned(&bytes(record)), Some(want));
    }

    /// Decodes one record from an 8-aligned copy, as the ring buffer hands
    /// records out.
    fn decode_aligned(data: &[u8]) -> Option<Record> {
        with_aligned_copy(data, decode)
    }

    #[test]
    fn a_batch_is_records_one_after_another() {
        let call = |tid: u32| syscall_event {
            kind: event_kind::EVENT_SYSCALL.0,
            tid,
            nr: 110,
            err: 0,
            enter_ns: 1_000,
            exit_ns: 1_070,
        };
        let wakeup = wakeup_event {
            kind: event_kind::EVENT_WAKEUP.0,
            tid: 3,
            ts_ns: 9,
        };
        let header = batch_header {
            kind: event_kind::EVENT_BATCH.0,
            cpu: 7,
        };
        let mut batch = vec![0u8; 4]; // lies at an odd place in memory
        batch.extend(bytes(&header));
        batch.extend(bytes(&call(1)));
        batch.extend(bytes(&wakeup));
        batch.extend(bytes(&call(2)));
        let (cpu, records) = decode_unaligned(&batch[4..]);
        assert_eq!(cpu, Some(7));
        let tids: Vec<u32> = records
            .into_iter()
            .map(|record| match record {
                Record::Syscall { tid, .. } | Record::Wakeup { tid, .. } => tid,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(tids, vec![1, 3, 2]);
        // A record cut short ends the batch.
        assert_eq!(decode_unaligned(&batch[4..batch.len() - 8]).1.len(), 2);
        // A record sent at once: no CPU.
        assert_eq!(
            decode_unaligned(&bytes(&wakeup)),
            (None, vec![Record::Wakeup { tid: 3, ts_ns: 9 }])
        );
        assert_eq!(decode_unaligned(&[]), (None, vec![]));
    }

    #[test]
    fn syscall_record() {
        let e = syscall_event {
            kind: event_kind::EVENT_SYSCALL.0,
            tid: 42,
            nr: 110,
            err: 9,
            enter_ns: 1_000,
            exit_ns: 1_070,
        };
        decodes_to(
            &e,
            Record::Syscall {
                tid: 42,
                nr: 110,
                errno: 9,
                enter_ns: 1_000,
                exit_ns: 1_070,
            },
        );
    }

    #[test]
    fn slow_call_record() {
        let e = slow_call_event {
            kind: event_kind::EVENT_SLOW_CALL.0,
            tid: 42,
            nr: 230,
            err: 4,
            enter_ns: 1_000,
            exit_ns: 5_001_000,
            ret: -4,
            pid: 40,
            kernel_stack: 7,
            user_stack: -17,
            pad: 0,
        };
        decodes_to(
            &e,
            Record::SlowCall(SlowCall {
                tid: 42,
                pid: 40,
                nr: 230,
                errno: 4,
                enter_ns: 1_000,
                exit_ns: 5_001_000,
                ret: -4,
                kernel_stack: 7,
                user_stack: -17,
            }),
        );
    }

    #[test]
    fn switches_and_wakeups() {
        let mut e = switch_event {
            kind: event_kind::EVENT_SWITCH.0,
            prev_tid: 7,
            ts_ns: 5,
            next_tid: 8,
            ..Default::default()
        };
        for (state, departure) in [
            (switch_out_state::OUT_READY, Departure::Ready),
            (switch_out_state::OUT_SLEEPING, Departure::Sleeping),
            (switch_out_state::OUT_BLOCKED, Departure::Blocked),
            (switch_out_state::OUT_STOPPED, Departure::Stopped),
            (switch_out_state::OUT_DEAD, Departure::Dead),
        ] {
            e.prev_state = state.0 as u16;
            decodes_to(
                &e,
                Record::Switch {
                    ts_ns: 5,
                    out: Some(Leaving {
                        tid: 7,
                        departure,
                        in_call: false,
                    }),
                    into: Some(Arriving {
                        tid: 8,
                        after_idle: false,
                    }),
                },
            );
        }
        e.flags =
            (switch_flags::SWITCH_PREV_IN_CALL.0 | switch_flags::SWITCH_NEXT_AFTER_IDLE.0) as u16;
        decodes_to(
            &e,
            Record::Switch {
                ts_ns: 5,
                out: Some(Leaving {
                    tid: 7,
                    departure: Departure::Dead,
                    in_call: true,
                }),
                into: Some(Arriving {
                    tid: 8,
                    after_idle: true,
                }),
            },
        );
        e.flags = 0;
        e.prev_state = 99;
        assert_eq!(
            decode_aligned(&bytes(&e)),
            None,
            "an unknown state is no guess"
        );
        // Only one side traced.
        e.prev_tid = 0;
        decodes_to(
            &e,
            Record::Switch {
                ts_ns: 5,
                out: None,
                into: Some(Arriving {
                    tid: 8,
                    after_idle: false,
                }),
            },
        );
        let wakeup = wakeup_event {
            kind: event_kind::EVENT_WAKEUP.0,
            tid: 7,
            ts_ns: 9,
        };
        decodes_to(&wakeup, Record::Wakeup { tid: 7, ts_ns: 9 });
    }

    #[test]
    fn thread_records() {
        let new = thread_new_event {
            kind: event_kind::EVENT_THREAD_NEW.0,
            tid: 8,
            ts_ns: 20,
            start_ns: 15,
            pid: 7,
            pad: 0,
        };
        decodes_to(
            &new,
            Record::ThreadNew {
                tid: 8,
                pid: 7,
                ts_ns: 20,
                start_ns: 15,
            },
        );
        let mut exit = thread_exit_event {
            kind: event_kind::EVENT_THREAD_EXIT.0,
            tid: 8,
            ts_ns: 30,
            pid: 7,
            process_exited: 1,
            ..Default::default()
        };
        exit.comm[..3].copy_from_slice(&[b'a' as i8, b'b' as i8, -1]);
        let mut comm = [0u8; 16];
        comm[..3].copy_from_slice(b"ab\xff");
        decodes_to(
            &exit,
            Record::ThreadExit {
                tid: 8,
                pid: 7,
                ts_ns: 30,
                comm,
                process_exited: true,
            },
        );
        let fork = process_new_event {
            kind: event_kind::EVENT_PROCESS_NEW.0,
            pid: 9,
            ts_ns: 50,
            ppid: 7,
            pad: 0,
        };
        decodes_to(
            &fork,
            Record::ProcessNew {
                pid: 9,
                ppid: 7,
                ts_ns: 50,
            },
        );
        let exec = exec_event {
            kind: event_kind::EVENT_EXEC.0,
            tid: 100,
            ts_ns: 40,
            old_tid: 105,
            pad: 0,
        };
        decodes_to(
            &exec,
            Record::Exec {
                tid: 100,
                old_tid: 105,
                ts_ns: 40,
            },
        );
    }

    #[test]
    fn irq_records() {
        let mut e = irq_event {
            kind: event_kind::EVENT_HARDIRQ.0,
            tid: 9,
            exit_ns: 100,
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
            e.kind = kind.0;
            e.id = id;
            decodes_to(
                &e,
                Record::Irq {
                    tid: 9,
                    exit_ns: 100,
                    duration_ns: 30,
                    source,
                },
            );
        }
    }

    #[test]
    fn unknown_or_short_records_are_skipped() {
        assert_eq!(decode_aligned(&[]), None);
        assert_eq!(decode_aligned(&[1, 0]), None);
        assert_eq!(decode_aligned(&99u32.to_ne_bytes()), None);
        // A syscall kind with too few bytes for the record.
        let mut short = bytes(&syscall_event {
            kind: event_kind::EVENT_SYSCALL.0,
            ..Default::default()
        });
        short.truncate(16);
        assert_eq!(decode_aligned(&short), None);
    }
}
