//! Decodes the ring-buffer records the BPF programs send (the structs of
//! bpf/kernel_delay.h) into what the aggregation reads.

use crate::aggregate::{IrqSource, Record};
use crate::irq::HardIrq;
use crate::sched::{Departure, SchedEvent};
use crate::skel::types::{irq_event, sched_event, syscall_event};

// enum event_kind and enum switch_out_state of bpf/kernel_delay.h
const EVENT_SYSCALL: u32 = 1;
const EVENT_SWITCH_IN: u32 = 2;
const EVENT_SWITCH_OUT: u32 = 3;
const EVENT_WAKEUP: u32 = 4;
const EVENT_WAKEUP_NEW: u32 = 5;
const EVENT_SOFTIRQ: u32 = 6;
const EVENT_HARDIRQ: u32 = 7;
const EVENT_IRQ_VECTOR: u32 = 8;
const DEPARTURES: [Departure; 5] = [
    Departure::Preempted,
    Departure::Sleep,
    Departure::Block,
    Departure::Stop,
    Departure::Exit,
];

/// The record in `data`; None for a kind or size this version does not know.
pub fn decode(data: &[u8]) -> Option<Record> {
    let kind = u32::from_ne_bytes(data.get(..4)?.try_into().ok()?);
    match kind {
        EVENT_SYSCALL => {
            let e: &syscall_event = plain::from_bytes(data).ok()?;
            Some(Record::Syscall {
                tid: e.tid,
                nr: e.nr,
                enter_ns: e.enter_ns,
                exit_ns: e.exit_ns,
            })
        }
        EVENT_SWITCH_IN | EVENT_SWITCH_OUT | EVENT_WAKEUP | EVENT_WAKEUP_NEW => {
            let e: &sched_event = plain::from_bytes(data).ok()?;
            let event = match kind {
                EVENT_SWITCH_IN => SchedEvent::SwitchIn,
                EVENT_SWITCH_OUT => SchedEvent::SwitchOut(*DEPARTURES.get(e.state as usize)?),
                EVENT_WAKEUP => SchedEvent::Wakeup,
                _ => SchedEvent::WakeupNew,
            };
            Some(Record::Sched {
                tid: e.tid,
                ts_ns: e.ts_ns,
                event,
            })
        }
        EVENT_SOFTIRQ | EVENT_HARDIRQ | EVENT_IRQ_VECTOR => {
            let e: &irq_event = plain::from_bytes(data).ok()?;
            let source = match kind {
                EVENT_SOFTIRQ => IrqSource::Softirq(e.id as u32),
                EVENT_HARDIRQ => IrqSource::Hard(HardIrq::Line {
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
            Some(Record::Irq {
                tid: e.tid,
                exit_ns: e.exit_ns,
                duration_ns: e.duration_ns,
                source,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T>(record: &T) -> Vec<u8> {
        // SAFETY: the record types are C structs of integers laid out with
        // no padding, so every byte is initialised.
        unsafe { plain::as_bytes(record) }.to_vec()
    }

    /// Decodes from an 8-aligned copy, as the ring buffer hands records out.
    fn decode_aligned(data: &[u8]) -> Option<Record> {
        let mut words = vec![0u64; data.len().div_ceil(8)];
        // SAFETY: u64s are plain; the slice covers exactly the allocation.
        let buffer = unsafe { plain::as_mut_bytes(&mut words[..]) };
        buffer[..data.len()].copy_from_slice(data);
        decode(&buffer[..data.len()])
    }

    #[test]
    fn syscall_record() {
        let e = syscall_event {
            kind: EVENT_SYSCALL,
            tid: 42,
            nr: 110,
            enter_ns: 1_000,
            exit_ns: 1_070,
        };
        assert_eq!(
            decode_aligned(&bytes(&e)),
            Some(Record::Syscall {
                tid: 42,
                nr: 110,
                enter_ns: 1_000,
                exit_ns: 1_070
            })
        );
    }

    #[test]
    fn switch_out_states() {
        let mut e = sched_event {
            kind: EVENT_SWITCH_OUT,
            tid: 7,
            ts_ns: 5,
            ..Default::default()
        };
        for (state, departure) in DEPARTURES.iter().enumerate() {
            e.state = state as u32;
            assert_eq!(
                decode_aligned(&bytes(&e)),
                Some(Record::Sched {
                    tid: 7,
                    ts_ns: 5,
                    event: SchedEvent::SwitchOut(*departure)
                })
            );
        }
        e.state = 99;
        assert_eq!(
            decode_aligned(&bytes(&e)),
            None,
            "an unknown state is no guess"
        );
        e.kind = EVENT_WAKEUP_NEW;
        assert_eq!(
            decode_aligned(&bytes(&e)),
            Some(Record::Sched {
                tid: 7,
                ts_ns: 5,
                event: SchedEvent::WakeupNew
            })
        );
    }

    #[test]
    fn irq_records() {
        let mut e = irq_event {
            kind: EVENT_HARDIRQ,
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
                EVENT_HARDIRQ,
                24,
                IrqSource::Hard(HardIrq::Line { irq: 24, handler }),
            ),
            (EVENT_IRQ_VECTOR, 0, IrqSource::Hard(HardIrq::Vector(0))),
            (EVENT_SOFTIRQ, 3, IrqSource::Softirq(3)),
        ] {
            e.kind = kind;
            e.id = id;
            assert_eq!(
                decode_aligned(&bytes(&e)),
                Some(Record::Irq {
                    tid: 9,
                    exit_ns: 100,
                    duration_ns: 30,
                    source
                })
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
            kind: EVENT_SYSCALL,
            ..Default::default()
        });
        short.truncate(16);
        assert_eq!(decode_aligned(&short), None);
    }
}
