//! The report's threads: each thread's activity is kept until its row is
//! written, and its row is made then and dropped after, so that a report
//! of tens of thousands of threads never holds them all as rows. What the
//! summary and the ranking need is taken up front.

use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::attribution::{Directory, TaskShare};
use super::offcpu;
use super::{
    CallTimes, HardirqReport, SchedReport, SoftirqReport, SyscallReport, ThreadNames, ThreadReport,
    UnfinishedSyscall,
};
use crate::kernel::irq::{self, HardIrq};
use crate::kernel::syscall_names;
use crate::model::aggregate::ThreadActivity;
use crate::model::sched::{ThreadState, TimeBudget, Timeline};
use crate::model::stats::{Distribution, Stats};
use crate::sanitize::sanitize;

/// What the summary and the ranking read of a thread.
#[derive(Debug, Clone)]
pub struct ThreadSummary {
    pub tid: u32,
    pub pid: Option<u32>,
    pub comm: String,
    pub exited: bool,
    pub time: TimeBudget,
    /// Interrupt time charged to it.
    pub irq_ns: u64,
    /// Ready + blocked + interrupt time: the ranking.
    pub kernel_delay_ns: u64,
    /// p99 of its complete stretches ready and blocked, if any.
    pub ready_p99_ns: Option<u64>,
    pub block_p99_ns: Option<u64>,
    /// The call with the most time in the window, completed or not.
    pub top_call: Option<TopCall>,
    /// The call with the most time blocked in it.
    pub most_blocked_in: Option<String>,
    /// With --off-cpu-stacks: the kernel function it was blocked in the
    /// longest.
    pub blocked_at: Option<String>,
    /// The tasks it waited behind most while ready, worst first.
    pub main_holders: Vec<TaskShare>,
}

/// Holders the summary names.
const MAIN_HOLDERS: usize = 2;

impl ThreadSummary {
    fn of(row: &ThreadReport) -> Self {
        let p99 = |stats: &Stats| (stats.count > 0).then_some(stats.p99_ns);
        ThreadSummary {
            tid: row.tid,
            pid: row.pid,
            comm: row.comm.clone(),
            exited: row.exited,
            time: row.time,
            irq_ns: irq_ns(&row.softirqs, &row.hardirqs),
            kernel_delay_ns: row.kernel_delay_ns,
            ready_p99_ns: p99(&row.sched.stats.ready),
            block_p99_ns: p99(&row.sched.stats.block),
            top_call: TopCall::of(row),
            most_blocked_in: row
                .syscalls
                .iter()
                .filter(|call| call.by_state.times.blocked_ns > 0)
                .max_by_key(|call| call.by_state.times.blocked_ns)
                .map(|call| call.name.clone()),
            blocked_at: row
                .offcpu_stacks
                .as_deref()
                .and_then(|rows| offcpu::waited_at(rows, "blocked"))
                .map(str::to_string),
            main_holders: row
                .sched
                .attributed
                .ready_behind
                .iter()
                .take(MAIN_HOLDERS)
                .cloned()
                .collect(),
        }
    }
}

/// The call a thread spent the most time in during the window: a completed
/// call's total, or the time in the window of a call it had not finished
/// (an idle thread's only call is one such).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopCall {
    pub name: String,
    pub ns: u64,
    /// Not finished when the window closed: `ns` is its time so far.
    pub unfinished: Option<Unfinished>,
}

/// A call not finished when the window closed, entered before the window
/// (its time in the window is a lower bound) or in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    SinceBeforeTheWindow,
    InTheWindow,
}

impl TopCall {
    fn of(row: &ThreadReport) -> Option<Self> {
        // Completed calls are sorted by total, unfinished ones by elapsed.
        let completed = row.syscalls.first().map(|call| TopCall {
            name: call.name.clone(),
            ns: call.stats.total_ns,
            unfinished: None,
        });
        let unfinished = row.unfinished.first().map(|call| TopCall {
            name: call.name.clone(),
            ns: call.elapsed_ns,
            unfinished: Some(call.since()),
        });
        match (completed, unfinished) {
            (Some(done), Some(open)) if open.ns > done.ns => Some(open),
            (Some(done), _) => Some(done),
            (None, open) => open,
        }
    }
}

impl UnfinishedSyscall {
    pub fn since(&self) -> Unfinished {
        if self.entered_before_window {
            Unfinished::SinceBeforeTheWindow
        } else {
            Unfinished::InTheWindow
        }
    }
}

impl Unfinished {
    /// As the thread's details say it.
    pub fn phrase(self) -> &'static str {
        match self {
            Unfinished::SinceBeforeTheWindow => "since before the window",
            Unfinished::InTheWindow => "unfinished",
        }
    }
}

/// What /proc said of the state of the thread that did `activity`, if it
/// was alive as the window opened: for a thread the scheduler said
/// nothing about.
pub fn state_at_start(activity: &ThreadActivity, names: &ThreadNames) -> Option<ThreadState> {
    activity
        .alive_at_start()
        .then(|| names.states_at_start.get(&activity.tid).copied())
        .flatten()
}

/// One thread: its activity, and what is known of it besides.
#[derive(Debug)]
pub struct ThreadEntry {
    activity: ThreadActivity,
    /// Its process, once a record, /proc, or the only process told.
    pid: Option<u32>,
    /// Its name, escaped.
    comm: String,
    /// What /proc said, for a thread the scheduler said nothing about.
    state_at_start: Option<ThreadState>,
    pub summary: ThreadSummary,
}

impl ThreadEntry {
    /// The process and escaped name of the thread that did `activity`.
    pub fn identity(
        activity: &ThreadActivity,
        names: &ThreadNames,
        window: (u64, u64),
        only_process: Option<u32>,
    ) -> (Option<u32>, String) {
        let tid = activity.tid;
        let exited = activity.exit.filter(|e| e.ts_ns <= window.1);
        let alive_at_start = activity.alive_at_start();
        // The newest name wins: at the end of the window, else at exit,
        // else at the start. /proc speaks of the thread alive with that id
        // then.
        let at_end = (activity.newest && exited.is_none())
            .then(|| names.at_end.get(&tid))
            .flatten();
        let at_start = alive_at_start.then(|| names.at_start.get(&tid)).flatten();
        let raw_name = at_end
            .map(Vec::as_slice)
            .or(activity.exit.as_ref().map(|e| e.comm.as_slice()))
            .or(at_start.map(Vec::as_slice))
            .unwrap_or(b"?");
        (activity.pid.or(only_process), sanitize(raw_name))
    }

    /// `identity`: what [`Self::identity`] says of it.
    pub fn new(
        activity: ThreadActivity,
        (pid, comm): (Option<u32>, String),
        names: &ThreadNames,
        window: (u64, u64),
        directory: &Directory,
    ) -> Self {
        let state_at_start = state_at_start(&activity, names);
        let summary = ThreadSummary::of(&thread_report(
            &activity,
            pid,
            &comm,
            state_at_start,
            window,
            directory,
        ));
        ThreadEntry {
            activity,
            pid,
            comm,
            state_at_start,
            summary,
        }
    }

    /// Its row of the report.
    fn row(&self, window: (u64, u64), directory: &Directory) -> ThreadReport {
        thread_report(
            &self.activity,
            self.pid,
            &self.comm,
            self.state_at_start,
            window,
            directory,
        )
    }
}

/// The row of a thread that did `activity`.
fn thread_report(
    activity: &ThreadActivity,
    pid: Option<u32>,
    comm: &str,
    state_at_start: Option<ThreadState>,
    (start_ns, end_ns): (u64, u64),
    directory: &Directory,
) -> ThreadReport {
    let exit = activity.exit.filter(|e| e.ts_ns <= end_ns);
    let syscalls = rows_by_total(
        activity.syscalls.iter(),
        |calls| &calls.durations,
        |&nr, calls, stats| SyscallReport {
            nr,
            name: syscall_names::name(nr),
            stats,
            spilled: calls.durations.unsampled(),
            errors: calls.errors(),
            errnos: calls
                .errnos()
                .iter()
                .map(|&(errno, count)| (syscall_names::errno_name(errno), count))
                .collect(),
            by_state: CallTimes {
                times: calls.by_state(),
            },
        },
    );

    let mut unfinished: Vec<UnfinishedSyscall> = activity
        .in_flight
        .iter()
        .map(|call| UnfinishedSyscall {
            nr: call.nr,
            name: syscall_names::name(call.nr),
            elapsed_ns: end_ns.saturating_sub(call.enter_ns),
            entered_before_window: false,
        })
        .chain(activity.in_call_since_before.map(|nr| UnfinishedSyscall {
            nr,
            name: syscall_names::name(nr),
            elapsed_ns: end_ns.saturating_sub(start_ns),
            entered_before_window: true,
        }))
        .collect();
    unfinished.sort_by_key(|call| std::cmp::Reverse(call.elapsed_ns));

    let (stats, time, attribution, offcpu_stacks) = activity
        .timeline
        .clone()
        .unwrap_or_else(|| Timeline::new(start_ns))
        .finish(end_ns, exit.map(|e| e.ts_ns), state_at_start);
    let sched = SchedReport {
        stats,
        attributed: directory.attributed(&attribution, pid),
    };
    let softirqs = rows_by_total(
        activity.softirqs.iter(),
        |dist| dist,
        |&vec, _, stats| SoftirqReport {
            vec,
            name: irq::softirq_name(vec),
            stats,
        },
    );
    let hardirqs = rows_by_total(
        activity.hardirqs.iter(),
        |dist| dist,
        |source, _, stats| {
            let (irq, name) = match source {
                HardIrq::Line { irq, handler } => (Some(*irq), sanitize(handler)),
                HardIrq::Vector(id) => (None, irq::vector_name(*id)),
            };
            HardirqReport { irq, name, stats }
        },
    );

    ThreadReport {
        tid: activity.tid,
        pid,
        comm: comm.to_string(),
        kernel_delay_ns: time.times.ready_ns()
            + time.times.blocked_ns
            + irq_ns(&softirqs, &hardirqs),
        poll_intervals: activity.poll_intervals.summary(),
        created: activity.born.is_some_and(|b| b.ts_ns >= start_ns),
        exited: exit.is_some(),
        syscalls,
        unfinished,
        sched,
        time,
        softirqs,
        hardirqs,
        offcpu_stacks: offcpu_stacks.as_ref().map(offcpu::rows),
    }
}

/// Interrupt time in all.
fn irq_ns(softirqs: &[SoftirqReport], hardirqs: &[HardirqReport]) -> u64 {
    let soft = softirqs.iter().map(|s| s.stats.total_ns);
    let hard = hardirqs.iter().map(|h| h.stats.total_ns);
    soft.chain(hard).fold(0, u64::saturating_add)
}

/// The report's threads, in the report's order.
#[derive(Debug)]
pub struct Threads {
    entries: Vec<ThreadEntry>,
    window: (u64, u64),
    directory: Directory,
}

impl Threads {
    pub fn new(entries: Vec<ThreadEntry>, window: (u64, u64), directory: Directory) -> Self {
        Threads {
            entries,
            window,
            directory,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn summaries(&self) -> impl Iterator<Item = &ThreadSummary> {
        self.entries.iter().map(|entry| &entry.summary)
    }

    /// The row of thread `index`, made now.
    pub fn row(&self, index: usize) -> ThreadReport {
        self.entries[index].row(self.window, &self.directory)
    }
}

/// A JSON array of the rows, each made as it is written.
impl Serialize for Threads {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut rows = serializer.serialize_seq(Some(self.len()))?;
        for index in 0..self.len() {
            rows.serialize_element(&self.row(index))?;
        }
        rows.end()
    }
}

/// One report row per series, the largest total first (ties by key).
fn rows_by_total<'a, K: Ord + 'a, V: 'a, R>(
    series: impl Iterator<Item = (&'a K, &'a V)>,
    durations: impl Fn(&V) -> &Distribution,
    row: impl Fn(&K, &V, Stats) -> R,
) -> Vec<R> {
    let mut summaries: Vec<(&K, &V, Stats)> = series
        .map(|(key, value)| (key, value, durations(value).summary()))
        .collect();
    summaries.sort_by(|(ka, _, a), (kb, _, b)| b.total_ns.cmp(&a.total_ns).then(ka.cmp(kb)));
    summaries
        .into_iter()
        .map(|(key, dist, stats)| row(key, dist, stats))
        .collect()
}
