//! Turns the stream of trace records into per-thread, per-syscall
//! distributions, keeping only what happened inside the sampling window.

use std::collections::HashMap;

use crate::irq::HardIrq;
use crate::sched::{SchedEvent, Timeline};
use crate::stats::Distribution;

/// One decoded ring-buffer record (timestamps are CLOCK_MONOTONIC ns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Syscall {
        tid: u32,
        nr: i64,
        enter_ns: u64,
        exit_ns: u64,
    },
    Sched {
        tid: u32,
        ts_ns: u64,
        event: SchedEvent,
    },
    /// Interrupt time charged to the thread it interrupted.
    Irq {
        tid: u32,
        exit_ns: u64,
        duration_ns: u64,
        source: IrqSource,
    },
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

#[derive(Default)]
pub struct ThreadActivity {
    pub syscalls: HashMap<i64, Distribution>,
    pub in_flight: Vec<InFlight>,
    /// A call the thread was still in at the end that began before the
    /// window (no entry for it was seen).
    pub in_call_since_before: Option<i64>,
    /// None when the scheduler said nothing about the thread.
    pub timeline: Option<Timeline>,
    /// By softirq vector.
    pub softirqs: HashMap<u32, Distribution>,
    pub hardirqs: HashMap<HardIrq, Distribution>,
    /// Name at exit, and whether the exit came before the window closed.
    pub exit: Option<ThreadExit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadExit {
    pub ts_ns: u64,
    pub comm: [u8; 16],
    pub in_window: bool,
}

pub struct Aggregator {
    start_ns: u64,
    /// Known once the window is closed; records drained after that may
    /// describe calls that ended too late to count.
    end_ns: u64,
    events: u64,
    threads: HashMap<u32, ThreadActivity>,
}

impl Aggregator {
    pub fn new(start_ns: u64) -> Self {
        Self {
            start_ns,
            end_ns: u64::MAX,
            events: 0,
            threads: HashMap::new(),
        }
    }

    pub fn close(&mut self, end_ns: u64) {
        self.end_ns = end_ns;
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn ingest(&mut self, record: Record) {
        self.events += 1;
        match record {
            Record::Syscall {
                tid,
                nr,
                enter_ns,
                exit_ns,
            } => {
                if enter_ns < self.start_ns || enter_ns > self.end_ns {
                    return; // entered while probes were still attaching, or after the window
                }
                let thread = self.threads.entry(tid).or_default();
                if exit_ns > self.end_ns {
                    thread.in_flight.push(InFlight { nr, enter_ns });
                } else {
                    let duration = exit_ns.saturating_sub(enter_ns);
                    thread.syscalls.entry(nr).or_default().record(duration);
                }
            }
            Record::Sched { tid, ts_ns, event } => {
                if ts_ns > self.end_ns {
                    return;
                }
                let start_ns = self.start_ns;
                self.threads
                    .entry(tid)
                    .or_default()
                    .timeline
                    .get_or_insert_with(|| Timeline::new(start_ns))
                    .apply(ts_ns, event);
            }
            Record::Irq {
                tid,
                exit_ns,
                duration_ns,
                source,
            } => {
                let entered = exit_ns.saturating_sub(duration_ns);
                if entered < self.start_ns || exit_ns > self.end_ns {
                    return;
                }
                let thread = self.threads.entry(tid).or_default();
                let series = match source {
                    IrqSource::Softirq(vec) => thread.softirqs.entry(vec).or_default(),
                    IrqSource::Hard(irq) => thread.hardirqs.entry(irq).or_default(),
                };
                series.record(duration_ns);
            }
        }
    }

    /// The call /proc says `tid` was in when the window closed: unless an
    /// entry was seen for it, it began before the window.
    pub fn add_call_in_progress(&mut self, tid: u32, nr: i64) {
        let thread = self.threads.entry(tid).or_default();
        if thread.in_flight.is_empty() {
            thread.in_call_since_before = Some(nr);
        }
    }

    /// A thread that exited, with the name it had then.
    pub fn add_exit(&mut self, tid: u32, ts_ns: u64, comm: [u8; 16]) {
        let in_window = ts_ns <= self.end_ns;
        self.threads.entry(tid).or_default().exit = Some(ThreadExit {
            ts_ns,
            comm,
            in_window,
        });
    }

    /// A call still in the tracer's start map when the window closed.
    pub fn add_in_flight(&mut self, tid: u32, call: InFlight) {
        if call.enter_ns >= self.start_ns && call.enter_ns <= self.end_ns {
            self.threads.entry(tid).or_default().in_flight.push(call);
        }
    }

    pub fn into_threads(self) -> HashMap<u32, ThreadActivity> {
        self.threads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(tid: u32, nr: i64, enter_ns: u64, exit_ns: u64) -> Record {
        Record::Syscall {
            tid,
            nr,
            enter_ns,
            exit_ns,
        }
    }

    #[test]
    fn aggregates_per_thread_and_syscall() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(call(7, 0, 1_100, 1_300));
        agg.ingest(call(7, 0, 1_400, 1_500));
        agg.ingest(call(7, 1, 1_600, 1_650));
        agg.ingest(call(8, 0, 1_700, 2_700));
        agg.close(10_000);
        assert_eq!(agg.events(), 4);
        let threads = agg.into_threads();
        let read7 = threads[&7].syscalls[&0].summary();
        assert_eq!(
            (read7.count, read7.total_ns, read7.min_ns, read7.max_ns),
            (2, 300, 100, 200)
        );
        assert_eq!(threads[&7].syscalls[&1].summary().count, 1);
        assert_eq!(threads[&8].syscalls[&0].summary().total_ns, 1_000);
    }

    #[test]
    fn calls_entered_before_the_window_are_dropped() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(call(7, 0, 900, 1_100));
        assert!(agg.into_threads().is_empty());
    }

    #[test]
    fn calls_ending_after_the_window_are_in_flight() {
        let mut agg = Aggregator::new(1_000);
        agg.close(2_000);
        agg.ingest(call(7, 0, 1_500, 2_500));
        agg.ingest(call(7, 0, 2_100, 2_200)); // entirely after the window
        agg.add_in_flight(
            7,
            InFlight {
                nr: 23,
                enter_ns: 1_900,
            },
        );
        agg.add_in_flight(
            7,
            InFlight {
                nr: 23,
                enter_ns: 2_001,
            },
        );
        let threads = agg.into_threads();
        assert!(threads[&7].syscalls.is_empty());
        assert_eq!(
            threads[&7].in_flight,
            vec![
                InFlight {
                    nr: 0,
                    enter_ns: 1_500
                },
                InFlight {
                    nr: 23,
                    enter_ns: 1_900
                }
            ]
        );
    }

    #[test]
    fn sched_events_feed_the_thread_timeline_until_the_end() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(Record::Sched {
            tid: 7,
            ts_ns: 2_000,
            event: SchedEvent::SwitchIn,
        });
        agg.close(5_000);
        agg.ingest(Record::Sched {
            tid: 7,
            ts_ns: 6_000,
            event: SchedEvent::SwitchOut(crate::sched::Departure::Sleep),
        });
        let threads = agg.into_threads();
        let timeline = threads.into_values().next().unwrap().timeline.unwrap();
        let (stats, time) = timeline.finish(5_000, None, None);
        assert_eq!(
            (time.ready_ns, time.running_ns, time.sleeping_ns),
            (1_000, 3_000, 0)
        );
        assert_eq!(stats.run.count, 0);
    }

    #[test]
    fn interrupts_inside_the_window_are_charged_per_source() {
        let mut agg = Aggregator::new(1_000);
        let net_rx = IrqSource::Softirq(3);
        let timer = IrqSource::Hard(HardIrq::Vector(0));
        let disk = IrqSource::Hard(HardIrq::Line {
            irq: 24,
            handler: b"virtio0".to_vec(),
        });
        for (exit_ns, duration_ns, source) in [
            (1_500, 100, net_rx.clone()),
            (1_900, 300, net_rx.clone()),
            (1_050, 100, net_rx.clone()), // entered before the window
            (2_000, 50, timer.clone()),
            (2_100, 70, disk.clone()),
        ] {
            agg.ingest(Record::Irq {
                tid: 7,
                exit_ns,
                duration_ns,
                source,
            });
        }
        agg.close(5_000);
        agg.ingest(Record::Irq {
            tid: 7,
            exit_ns: 9_000,
            duration_ns: 10,
            source: disk.clone(),
        });
        let threads = agg.into_threads();
        let thread = &threads[&7];
        let rx = thread.softirqs[&3].summary();
        assert_eq!((rx.count, rx.total_ns, rx.max_ns), (2, 400, 300));
        assert_eq!(thread.hardirqs[&HardIrq::Vector(0)].summary().total_ns, 50);
        let IrqSource::Hard(disk) = disk else {
            unreachable!()
        };
        assert_eq!(thread.hardirqs[&disk].summary().count, 1);
    }

    #[test]
    fn a_call_in_progress_without_an_entry_began_before_the_window() {
        let mut agg = Aggregator::new(1_000);
        agg.close(2_000);
        agg.add_in_flight(
            7,
            InFlight {
                nr: 0,
                enter_ns: 1_500,
            },
        );
        agg.add_call_in_progress(7, 0);
        agg.add_call_in_progress(8, 7);
        let threads = agg.into_threads();
        assert_eq!(threads[&7].in_call_since_before, None);
        assert_eq!(threads[&8].in_call_since_before, Some(7));
    }

    #[test]
    fn thread_exits_keep_their_name_and_window() {
        let mut agg = Aggregator::new(1_000);
        let comm = *b"worker\0\0\0\0\0\0\0\0\0\0";
        agg.close(2_000);
        agg.add_exit(9, 1_500, comm);
        agg.add_exit(10, 2_500, comm);
        let threads = agg.into_threads();
        assert_eq!(threads[&9].exit.unwrap().comm, comm);
        assert!(threads[&9].exit.unwrap().in_window);
        assert!(!threads[&10].exit.unwrap().in_window);
    }
}
