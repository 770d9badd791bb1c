//! The report: what was measured, per thread, in the form both renderers
//! (text and JSON) read.

mod attribution;
mod events;
pub mod flamegraph;
pub mod folded;
pub mod json;
mod log2_hist;
mod offcpu;
mod summary;
mod table;
pub mod text;
mod threads;
mod units;
pub mod view;

use attribution::{Attributed, Directory};
pub use threads::{state_at_start, ThreadEntry, ThreadSummary, Threads};

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

use crate::clock::{rfc3339, Timestamp};
use crate::kernel::irq::SystemSoftirqs;
use crate::kernel::loss::Lost;
use crate::kernel::syscall_names;
use crate::model::aggregate::{ProcessActivity, ThreadActivity};
use crate::model::attribution::Tasks;
use crate::model::sched::{SchedStats, StateTimes, ThreadState, TimeBudget};
use crate::model::stats::Stats;
use crate::symbols::symbolize::SymbolizedCall;

pub const SCHEMA: &str = "kernel-delay/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The requested duration elapsed.
    Duration,
    /// SIGINT or SIGTERM.
    Interrupted,
    TargetExited,
    /// The stop trigger fired.
    StopTrigger,
    /// Reading the trace failed.
    Failed,
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Duration => "duration elapsed",
            StopReason::Interrupted => "interrupted",
            StopReason::TargetExited => "target exited",
            StopReason::StopTrigger => "stop trigger",
            StopReason::Failed => "tracing failed",
        }
    }
}

/// What is known when the window opens; printed before the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// The processes given, or the launched command's, with their names.
    pub processes: Vec<(u32, String)>,
    /// The processes they fork are traced too.
    pub follow_forks: bool,
    /// With --cgroup: the directories whose processes are traced.
    pub cgroups: Vec<String>,
    pub start: Timestamp,
    /// None: until the launched command exits.
    pub requested: Option<Duration>,
    /// The trigger that opens each window, when one does.
    pub start_trigger: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    /// The first process given (or the launched command's).
    pub pid: u32,
    pub comm: String,
    pub kernel: String,
    pub start: String,
    pub end: String,
    pub duration_ns: u64,
    pub stop_reason: StopReason,
    pub events: u64,
    /// The sum of `lost`.
    pub lost_events: u64,
    pub lost: Lost,
    /// Completed calls kept in the kernel's spill map (ring buffer full):
    /// counted exactly, left out of percentiles.
    pub spilled_calls: u64,
    /// What the reader should know to read the figures right.
    pub warnings: Vec<String>,
    /// Optional tracepoints this kernel lacks (what they see is not counted).
    pub skipped_tracepoints: Vec<String>,
    /// With --cgroup: the directories whose processes were traced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<String>,
    /// Every process traced: those given, and those they forked; the one
    /// with the worst thread (see `kernel_delay_ns`) first.
    pub processes: Vec<ProcessReport>,
    /// Grouped by process, in the order of `processes`; in each, the
    /// worst first. Each row is made as it is written.
    pub threads: Threads,
    /// All softirq time on the CPUs the target ran on, whoever it ran for.
    pub softirqs_system: SystemSoftirqs,
    /// With --syscall-events: each call that took at least the threshold,
    /// by entry time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall_events: Option<Vec<SyscallEventReport>>,
    /// With --syscall-events: how many it lists at most
    /// (--max-syscall-events), and how many more there were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall_events_limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall_events_not_listed: Option<u64>,
    /// For triggered or repeated windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowInfo>,
}

/// A window of triggered or repeated samples: when it opened and closed
/// (CLOCK_MONOTONIC ns, the kernel's timestamps of the triggers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowInfo {
    /// Windows opened in the run so far, this one included (skipped ones
    /// too).
    pub number: u64,
    pub start_trigger: Option<String>,
    pub stop_trigger: Option<String>,
    pub open_ns: u64,
    pub close_ns: u64,
    /// Start triggers that fired while this window or the one before was
    /// closed and its records not yet gathered: windows not sampled.
    pub missed_windows: u64,
}

/// One slow call (--syscall-events), its stacks innermost frame first.
#[derive(Debug, Serialize)]
pub struct SyscallEventReport {
    pub tid: u32,
    pub pid: u32,
    pub comm: String,
    pub nr: i64,
    pub name: String,
    pub entry_ns: u64,
    pub exit_ns: u64,
    pub duration_ns: u64,
    pub ret: i64,
    /// The errno's name when the call failed.
    pub errno: Option<String>,
    /// Shared by the calls with the same stack.
    pub kernel_stack: Rc<[String]>,
    pub user_stack: Rc<[String]>,
    /// Why the user stack ends before its outermost frame (the copy
    /// ended, or the walk left the stack), if it does: the frames found
    /// are shown, none guessed after.
    pub user_stack_cut: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub ppid: Option<u32>,
    /// Its main thread's name.
    pub comm: String,
    /// Forked by a traced process during the window.
    pub forked: bool,
    pub exited: bool,
}

#[derive(Debug, Serialize)]
pub struct ThreadReport {
    pub tid: u32,
    /// Its process (null when no record or /proc listing told).
    pub pid: Option<u32>,
    pub comm: String,
    /// Created during the window (a thread id can come back: each thread
    /// that had it is a row).
    pub created: bool,
    pub exited: bool,
    /// What the ranking goes by: time ready, blocked, and taken by
    /// interrupts, the delays the kernel is answerable for.
    pub kernel_delay_ns: u64,
    pub syscalls: Vec<SyscallReport>,
    /// LONG POLL: from each poll-family call's return to the next one's
    /// entry, the iterations of the thread's event loop.
    pub poll_intervals: Stats,
    /// Calls entered in the window that had not returned when it closed.
    pub unfinished: Vec<UnfinishedSyscall>,
    pub sched: SchedReport,
    pub time: TimeBudget,
    pub softirqs: Vec<SoftirqReport>,
    pub hardirqs: Vec<HardirqReport>,
    /// With --off-cpu-stacks: its time off the CPU by where it left it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offcpu_stacks: Option<Vec<offcpu::OffCpuStackReport>>,
}

/// A thread's scheduling: its stretches by state, and who it waited
/// behind and was woken by.
#[derive(Debug, Serialize)]
pub struct SchedReport {
    #[serde(flatten)]
    pub stats: SchedStats,
    #[serde(flatten)]
    pub attributed: Attributed,
}

#[derive(Debug, Serialize)]
pub struct SoftirqReport {
    pub vec: u32,
    pub name: String,
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Debug, Serialize)]
pub struct HardirqReport {
    /// None for a system vector.
    pub irq: Option<i32>,
    pub name: String,
    #[serde(flatten)]
    pub stats: Stats,
}

#[derive(Debug, Serialize)]
pub struct SyscallReport {
    pub nr: i64,
    pub name: String,
    #[serde(flatten)]
    pub stats: Stats,
    /// Of `count`, the calls kept in the kernel's spill map: in count,
    /// total, min and max, not in the percentiles or the split by state.
    pub spilled: u64,
    /// Calls that failed, and how many with each errno.
    pub errors: u64,
    pub errnos: BTreeMap<String, u64>,
    #[serde(flatten)]
    pub by_state: CallTimes,
}

impl SyscallReport {
    /// The errno most calls failed with, and how many.
    pub fn top_errno(&self) -> Option<(&str, u64)> {
        self.errnos
            .iter()
            .max_by_key(|&(name, &count)| (count, Reverse(name)))
            .map(|(name, &count)| (name.as_str(), count))
    }
}

/// Where the calls' time went, by the thread's state while in them: the
/// parts add up to `total_ns` (less the spilled calls'). Its JSON names
/// the time on the CPU `oncpu_ns`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallTimes {
    pub times: StateTimes,
}

impl Serialize for CallTimes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("CallTimes", 7)?;
        self.times.serialize_fields("oncpu_ns", &mut out)?;
        out.end()
    }
}

impl CallTimes {
    /// Time in calls not spent asleep: on the CPU, waiting for it, or
    /// blocked (D): the part of a call's time that is the kernel's.
    pub fn not_asleep_ns(&self) -> u64 {
        self.times.running_ns + self.times.ready_ns() + self.times.blocked_ns
    }
}

#[derive(Debug, Serialize)]
pub struct UnfinishedSyscall {
    pub nr: i64,
    pub name: String,
    /// From entry (or, for a call entered before the window, from the
    /// window's start: a lower bound) to the end of the window.
    pub elapsed_ns: u64,
    pub entered_before_window: bool,
}

/// What /proc said about the threads at the start and the end of the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ThreadNames {
    pub at_start: HashMap<u32, Vec<u8>>,
    pub at_end: HashMap<u32, Vec<u8>>,
    /// For threads the scheduler says nothing about in the window.
    pub states_at_start: HashMap<u32, ThreadState>,
}

/// The slow calls of a window (--syscall-events).
pub struct SyscallEvents {
    /// The first `limit`, by entry time.
    pub calls: Vec<SymbolizedCall>,
    pub limit: usize,
    /// Those past the limit, counted.
    pub not_listed: u64,
}

/// Everything the report is built from, besides the per-thread activity.
pub struct Measurement {
    pub header: Header,
    pub kernel: String,
    pub end: Timestamp,
    pub stop_reason: StopReason,
    pub events: u64,
    pub lost: Lost,
    pub spilled_calls: u64,
    pub warnings: Vec<String>,
    pub skipped_tracepoints: Vec<String>,
    pub softirqs_system: SystemSoftirqs,
    /// With --syscall-events: the slow calls, by entry time.
    pub syscall_events: Option<SyscallEvents>,
    /// For triggered or repeated windows: what opened and closed this one.
    pub window: Option<WindowInfo>,
    pub names: ThreadNames,
    pub processes: Vec<ProcessActivity>,
    /// The tasks that are not traced that the records named.
    pub tasks: Tasks,
    /// The wakeups name their wakers (--wakers).
    pub wakers: bool,
}

impl Measurement {
    /// The process of a thread whose process nothing told: the only one,
    /// if there is only one.
    pub fn only_process(&self) -> Option<u32> {
        match self.processes.as_slice() {
            [only] => Some(only.pid),
            _ => None,
        }
    }
}

impl Report {
    pub fn build(m: &Measurement, activity: Vec<ThreadActivity>) -> Report {
        let window = (m.header.start.mono_ns, m.end.mono_ns);
        let only_process = m.only_process();
        let identities: Vec<(Option<u32>, String)> = activity
            .iter()
            .map(|thread| ThreadEntry::identity(thread, &m.names, window, only_process))
            .collect();
        // Later threads with an id are newer: they name it.
        let directory = Directory::new(
            activity
                .iter()
                .zip(&identities)
                .map(|(thread, identity)| (thread.tid, identity.clone()))
                .collect(),
            m.tasks.clone(),
            m.wakers,
        );
        let mut entries: Vec<ThreadEntry> = activity
            .into_iter()
            .zip(identities)
            .map(|(thread, identity)| {
                ThreadEntry::new(thread, identity, &m.names, window, &directory)
            })
            .collect();
        let mut processes: Vec<ProcessReport> = m
            .processes
            .iter()
            .map(|process| process_report(process, &entries, &m.header, window.1))
            .collect();
        // The process with the worst thread first (a pid that came back
        // ranks as its worst), then the order they were seen; in each, the
        // worst thread first.
        let mut worst: HashMap<Option<u32>, u64> = HashMap::new();
        for thread in entries.iter().map(|e| &e.summary) {
            let delay = worst.entry(thread.pid).or_default();
            *delay = (*delay).max(thread.kernel_delay_ns);
        }
        let worst_of = |pid: u32| worst.get(&Some(pid)).copied().unwrap_or(0);
        processes.sort_by_key(|process| Reverse(worst_of(process.pid)));
        let mut ranks: HashMap<u32, usize> = HashMap::new();
        for (rank, process) in processes.iter().enumerate() {
            ranks.entry(process.pid).or_insert(rank);
        }
        let rank = |pid: Option<u32>| {
            pid.and_then(|pid| ranks.get(&pid).copied())
                .unwrap_or(usize::MAX)
        };
        entries.sort_by_key(|e| {
            let t = &e.summary;
            (rank(t.pid), Reverse(t.kernel_delay_ns), t.tid)
        });
        let threads = Threads::new(entries, window, directory);

        let (pid, comm) = m.header.processes[0].clone();
        let comm = processes
            .iter()
            .find(|p| p.pid == pid)
            .map_or(comm, |p| p.comm.clone());
        let syscall_events = m.syscall_events.as_ref().map(|events| {
            // Each thread's name: the first live one's where an id came
            // back, else the first's.
            let mut names: HashMap<u32, (bool, &str)> = HashMap::new();
            for thread in threads.summaries() {
                let seen = (thread.exited, thread.comm.as_str());
                let name = names.entry(thread.tid).or_insert(seen);
                if name.0 && !thread.exited {
                    *name = seen;
                }
            }
            events
                .calls
                .iter()
                .map(|call| {
                    let comm = names.get(&call.call.tid).map_or("?", |&(_, comm)| comm);
                    event_report(call, comm)
                })
                .collect()
        });
        Report {
            schema: SCHEMA,
            pid,
            comm,
            kernel: m.kernel.clone(),
            start: rfc3339(m.header.start.wall),
            end: rfc3339(m.end.wall),
            duration_ns: m.end.mono_ns.saturating_sub(m.header.start.mono_ns),
            stop_reason: m.stop_reason,
            events: m.events,
            lost_events: m.lost.total(),
            lost: m.lost,
            spilled_calls: m.spilled_calls,
            warnings: m.warnings.clone(),
            skipped_tracepoints: m.skipped_tracepoints.clone(),
            cgroups: m.header.cgroups.clone(),
            processes,
            threads,
            softirqs_system: m.softirqs_system.clone(),
            syscall_events_limit: m.syscall_events.as_ref().map(|events| events.limit),
            syscall_events_not_listed: m.syscall_events.as_ref().map(|events| events.not_listed),
            syscall_events,
            window: m.window.clone(),
        }
    }
}

/// A slow call, named after its thread (the row with its id that was
/// alive when the call returned).
fn event_report(symbolized: &SymbolizedCall, comm: &str) -> SyscallEventReport {
    let call = &symbolized.call;
    SyscallEventReport {
        tid: call.tid,
        pid: call.pid,
        comm: comm.to_string(),
        nr: call.nr,
        name: syscall_names::name(call.nr),
        entry_ns: call.enter_ns,
        exit_ns: call.exit_ns,
        duration_ns: call.exit_ns.saturating_sub(call.enter_ns),
        ret: call.ret,
        errno: (call.errno != 0).then(|| syscall_names::errno_name(call.errno)),
        kernel_stack: Rc::clone(&symbolized.kernel_stack),
        user_stack: Rc::clone(&symbolized.user_stack),
        user_stack_cut: symbolized.user_stack_cut,
    }
}

/// A process, named after its main thread as ps shows it (the live one,
/// when a de-threading exec gave its id to another), else as it was named
/// when the window opened.
fn process_report(
    process: &ProcessActivity,
    threads: &[ThreadEntry],
    header: &Header,
    end_ns: u64,
) -> ProcessReport {
    let main_threads = || {
        threads
            .iter()
            .map(|e| &e.summary)
            .filter(|t| t.tid == process.pid && t.pid == Some(process.pid))
    };
    let comm = main_threads()
        .find(|t| !t.exited)
        .or_else(|| main_threads().next())
        .map(|t| t.comm.clone())
        .or_else(|| {
            let given = header.processes.iter().find(|(pid, _)| *pid == process.pid);
            given.map(|(_, comm)| comm.clone())
        })
        .unwrap_or_else(|| "?".to_string());
    ProcessReport {
        pid: process.pid,
        ppid: process.ppid,
        comm,
        forked: process.forked_ns.is_some(),
        exited: process.exit_ns.is_some_and(|ts| ts <= end_ns),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernel::irq::HardIrq;
    use crate::kernel::records::{InFlight, IrqSource, Record};
    use crate::model::aggregate::{Aggregator, Input};
    use time::macros::datetime;

    /// What `write` writes of `report`, as text.
    pub fn rendered(
        report: &Report,
        write: impl Fn(&Report, &mut Vec<u8>) -> std::io::Result<()>,
    ) -> String {
        let mut out = Vec::new();
        write(report, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A report, and the header and end the text report frames it with.
    pub fn sample() -> (Report, Header, Timestamp) {
        let mut agg = Aggregator::new(1_000_000);
        agg.apply(Input::ListedProcess {
            pid: 100,
            ppid: Some(1),
        });
        for (nr, enter, exit) in [
            (0, 1_000_100, 4_493_811),
            (0, 1_000_200, 1_000_300),
            (7, 2_000_000, 2_050_000),
            (7, 2_150_000, 2_160_000), // poll again: one loop iteration of 100 us
            (110, 3_000_000, 3_000_500),
        ] {
            agg.apply(Input::Record(Record::Syscall {
                tid: 101,
                nr,
                // The short read failed.
                errno: if exit == 1_000_300 { 9 } else { 0 },
                enter_ns: enter,
                exit_ns: exit,
            }));
        }
        agg.apply(Input::Record(Record::Syscall {
            tid: 102,
            nr: 1,
            errno: 0,
            enter_ns: 4_000_000,
            exit_ns: 4_010_000,
        }));
        for (exit_ns, duration_ns, source) in [
            (5_000_000, 2_000, IrqSource::Softirq(3)),
            (6_000_000, 4_000, IrqSource::Softirq(3)),
            (7_000_000, 9_000, IrqSource::Softirq(9)),
            (8_000_000, 3_000, IrqSource::Hard(HardIrq::Vector(0))),
            (
                9_000_000,
                1_500,
                IrqSource::Hard(HardIrq::Line {
                    irq: 24,
                    handler: b"virtio0-input.0".to_vec(),
                }),
            ),
        ] {
            agg.apply(Input::Record(Record::Irq {
                tid: 101,
                exit_ns,
                duration_ns,
                source,
            }));
        }
        agg.apply(Input::Record(Record::ThreadExit {
            tid: 102,
            pid: 100,
            ts_ns: 5_000_000,
            comm: *b"short\x1b[2J\0\0\0\0\0\0\0",
            process_exited: false,
        }));
        // Process 100 forks 200, which makes one call and exits.
        agg.apply(Input::Record(Record::ProcessNew {
            pid: 200,
            ppid: 100,
            ts_ns: 6_000_000,
        }));
        agg.apply(Input::Record(Record::ThreadNew {
            tid: 200,
            pid: 200,
            ts_ns: 6_000_100,
            start_ns: 6_000_050,
        }));
        agg.apply(Input::Record(Record::Syscall {
            tid: 200,
            nr: 110,
            errno: 0,
            enter_ns: 6_100_000,
            exit_ns: 6_100_500,
        }));
        agg.apply(Input::Record(Record::ThreadExit {
            tid: 200,
            pid: 200,
            ts_ns: 7_000_000,
            comm: *b"child\0\0\0\0\0\0\0\0\0\0\0",
            process_exited: true,
        }));
        agg.apply(Input::Close {
            end_ns: 3_001_000_000,
        });
        agg.apply(Input::InFlight {
            tid: 101,
            call: InFlight {
                nr: 0,
                enter_ns: 2_001_000_000,
            },
        });
        let mut names = ThreadNames::default();
        for tid in [100, 101] {
            agg.apply(Input::ListedThread { tid, pid: 100 });
        }
        names.at_start.insert(100, b"demo".to_vec());
        names.at_start.insert(101, b"worker".to_vec());
        names.at_end.insert(100, b"demo".to_vec());
        names.at_end.insert(101, b"worker".to_vec());
        let start = Timestamp {
            mono_ns: 1_000_000,
            wall: datetime!(2026-11-26 10:00:00 UTC),
        };
        let end = Timestamp {
            mono_ns: 3_001_000_000,
            wall: datetime!(2026-11-26 10:00:03 UTC),
        };
        let m = Measurement {
            header: Header {
                processes: vec![(100, "demo".into())],
                follow_forks: true,
                cgroups: vec![],
                start,
                requested: Some(Duration::from_secs(3)),
                start_trigger: None,
            },
            kernel: "6.18.44".into(),
            end,
            stop_reason: StopReason::Duration,
            events: agg.events(),
            lost: Lost::default(),
            spilled_calls: 0,
            warnings: Vec::new(),
            skipped_tracepoints: vec!["thermal_apic_entry".into()],
            softirqs_system: SystemSoftirqs {
                cpus: vec![0, 1],
                vectors: vec![crate::kernel::irq::SystemSoftirq {
                    vec: 3,
                    name: "NET_RX".into(),
                    count: 10,
                    total_ns: 20_000,
                    ksoftirqd_count: 4,
                    ksoftirqd_ns: 8_000,
                }],
            },
            syscall_events: None,
            window: None,
            names,
            processes: Vec::new(),
            tasks: Tasks::default(),
            wakers: true,
        };
        let (threads, processes, tasks) = agg.into_parts();
        let m = Measurement {
            processes,
            tasks,
            ..m
        };
        (Report::build(&m, threads), m.header, m.end)
    }

    pub fn sample_report() -> Report {
        sample().0
    }

    /// The report's rows, in its order.
    pub fn rows(report: &Report) -> Vec<ThreadReport> {
        (0..report.threads.len())
            .map(|i| report.threads.row(i))
            .collect()
    }

    /// The row of thread `tid`.
    pub fn row_of(report: &Report, tid: u32) -> ThreadReport {
        rows(report).into_iter().find(|t| t.tid == tid).unwrap()
    }

    #[test]
    fn processes_and_threads_worst_first_with_idle_ones_kept() {
        let r = sample_report();
        let rows = rows(&r);
        let names: Vec<(Option<u32>, &str, u32)> = rows
            .iter()
            .map(|t| (t.pid, t.comm.as_str(), t.tid))
            .collect();
        assert_eq!(
            names,
            vec![
                (Some(200), "child", 200),
                (Some(100), "worker", 101),
                (Some(100), "demo", 100),
                (Some(100), "short\\x1b[2J", 102),
            ]
        );
        // The child was ready from its creation to its exit; the worker's
        // interrupts took 19,500 ns; the others waited for nothing.
        let delays: Vec<u64> = rows.iter().map(|t| t.kernel_delay_ns).collect();
        assert_eq!(delays, vec![999_900, 19_500, 0, 0]);
        let summaries: Vec<u64> = r.threads.summaries().map(|t| t.kernel_delay_ns).collect();
        assert_eq!(summaries, delays);
        assert!(rows[2].syscalls.is_empty());
        assert_eq!(r.comm, "demo");
    }

    #[test]
    fn processes_named_after_their_main_thread() {
        let r = sample_report();
        let processes: Vec<(u32, Option<u32>, &str, bool, bool)> = r
            .processes
            .iter()
            .map(|p| (p.pid, p.ppid, p.comm.as_str(), p.forked, p.exited))
            .collect();
        assert_eq!(
            processes,
            vec![
                (200, Some(100), "child", true, true),
                (100, Some(1), "demo", false, false)
            ]
        );
    }

    #[test]
    fn interrupts_sorted_by_total_and_named() {
        let r = sample_report();
        let worker = row_of(&r, 101);
        let soft: Vec<(&str, u64, u64)> = worker
            .softirqs
            .iter()
            .map(|s| (s.name.as_str(), s.stats.count, s.stats.total_ns))
            .collect();
        assert_eq!(soft, vec![("RCU", 1, 9_000), ("NET_RX", 2, 6_000)]);
        let hard: Vec<(Option<i32>, &str)> = worker
            .hardirqs
            .iter()
            .map(|h| (h.irq, h.name.as_str()))
            .collect();
        assert_eq!(
            hard,
            vec![(None, "LOCAL_TIMER"), (Some(24), "virtio0-input.0")]
        );
    }

    #[test]
    fn exited_thread_keeps_its_name() {
        let r = sample_report();
        let short = row_of(&r, 102);
        assert!(short.exited);
        assert!(!row_of(&r, 101).exited);
    }

    #[test]
    fn syscalls_sorted_by_total_and_named() {
        let r = sample_report();
        let worker = row_of(&r, 101);
        let rows: Vec<(i64, u64)> = worker
            .syscalls
            .iter()
            .map(|s| (s.nr, s.stats.count))
            .collect();
        assert_eq!(rows, vec![(0, 2), (7, 2), (110, 1)]);
        let poll = &worker.poll_intervals;
        assert_eq!(
            (poll.count, poll.min_ns, poll.max_ns),
            (1, 100_000, 100_000)
        );
        assert_eq!(worker.syscalls[0].stats.total_ns, 3_493_711 + 100);
        assert_eq!(worker.unfinished.len(), 1);
        assert_eq!(worker.unfinished[0].elapsed_ns, 1_000_000_000);
        assert_eq!(r.duration_ns, 3_000_000_000);
    }

    #[test]
    fn the_summary_names_an_unfinished_call_that_took_longest() {
        let r = sample_report();
        let worker = r.threads.summaries().find(|t| t.tid == 101).unwrap();
        let unfinished = &row_of(&r, 101).unfinished[0];
        let top = worker.top_call.as_ref().unwrap();
        assert_eq!(
            (top.name.as_str(), top.ns, top.unfinished),
            (
                unfinished.name.as_str(),
                1_000_000_000,
                Some(unfinished.since())
            )
        );
        let demo = r.threads.summaries().find(|t| t.tid == 100).unwrap();
        assert_eq!(demo.top_call, None, "no call at all");
    }
}
