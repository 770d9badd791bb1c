//! The attribution of a thread's waits, named: the tasks its CPU ran
//! while it was ready, those that preempted it, and what woke it, worst
//! first, the top [`LISTED`] and one row for the rest.

use std::collections::HashMap;

use serde::Serialize;

use crate::kernel::irq::{self, HardIrq};
use crate::kernel::records::{IrqSource, Waker};
use crate::model::attribution::{Attribution, Holder, Tallies, Tally, Tasks};
use crate::sanitize::sanitize;

/// Rows listed by name; the rest are summed in one.
pub const LISTED: usize = 10;

/// A task's share of a thread's waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskShare {
    /// Null for a row that stands for no one task.
    pub tid: Option<u32>,
    pub pid: Option<u32>,
    pub comm: String,
    pub kernel_thread: bool,
    /// One of the thread's own process's threads.
    pub same_process: bool,
    /// Time ready behind it (not in `preempted_by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns: Option<u64>,
    pub count: u64,
}

impl TaskShare {
    /// Its name, marked when it is one of the thread's own process or a
    /// kernel thread.
    pub fn label(&self) -> String {
        let mark = match (self.same_process, self.kernel_thread) {
            (true, _) => " [same process]",
            (false, true) => " [kernel thread]",
            (false, false) => "",
        };
        format!("{}{mark}", self.comm)
    }
}

/// What woke a thread, how often, and the time asleep or blocked those
/// wakeups ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WakerShare {
    /// Null for an interrupt.
    pub tid: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The interrupt: soft IRQ or x86 vector name, or device IRQ handler.
    pub irq: Option<String>,
    pub count: u64,
    pub ended_ns: u64,
}

/// The attribution sections of one thread's `sched`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attributed {
    /// Wakeups in the window: `woken_by` adds up to it.
    pub wakeups: u64,
    /// Adds up to the thread's `ready_busy_cpu_ns`.
    pub ready_behind: Vec<TaskShare>,
    pub preempted_by: Vec<TaskShare>,
    /// With --wakers; adds up to `wakeups`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub woken_by: Option<Vec<WakerShare>>,
}

/// Who the tasks the records name are: traced threads by the report's
/// names, the others by the names the programs sent.
#[derive(Debug, Default)]
pub struct Directory {
    /// Traced threads: process and escaped name.
    traced: HashMap<u32, (Option<u32>, String)>,
    tasks: Tasks,
    /// The wakeups name their wakers (--wakers).
    wakers: bool,
    /// Device IRQ handler names, by IRQ number, read when first asked.
    handlers: std::cell::RefCell<HashMap<i32, String>>,
}

impl Directory {
    pub fn new(traced: HashMap<u32, (Option<u32>, String)>, tasks: Tasks, wakers: bool) -> Self {
        Directory {
            traced,
            tasks,
            wakers,
            handlers: Default::default(),
        }
    }

    /// Thread `tid`'s process, name, and whether it is a kernel thread.
    fn task(&self, tid: u32) -> (Option<u32>, String, bool) {
        if tid == 0 {
            return (Some(0), "(idle)".to_string(), true);
        }
        if let Some((pid, comm)) = self.traced.get(&tid) {
            return (*pid, comm.clone(), false);
        }
        match self.tasks.get(tid) {
            Some(info) => (
                info.pid,
                info.comm
                    .map_or_else(|| "(name not recorded)".to_string(), |c| sanitize(&c)),
                info.kernel_thread,
            ),
            None => (None, "(name not recorded)".to_string(), false),
        }
    }

    /// The name of an interrupt.
    fn interrupt(&self, source: &IrqSource) -> String {
        match source {
            IrqSource::Softirq(vec) => irq::softirq_name(*vec),
            IrqSource::Hard(HardIrq::Vector(id)) => irq::vector_name(*id),
            IrqSource::Hard(HardIrq::Line { irq, .. }) => self
                .handlers
                .borrow_mut()
                .entry(*irq)
                .or_insert_with(|| handler_name(*irq))
                .clone(),
        }
    }

    /// The named attribution of a thread of process `pid`.
    pub fn attributed(&self, attribution: &Attribution, pid: Option<u32>) -> Attributed {
        let share = |tid: u32, tally: Tally, ns: Option<u64>| {
            let (task_pid, comm, kernel_thread) = self.task(tid);
            TaskShare {
                tid: Some(tid),
                pid: task_pid,
                comm,
                kernel_thread,
                same_process: pid.is_some() && task_pid == pid,
                ns,
                count: tally.count,
            }
        };
        let unnamed = |comm: &str, tally: Tally, ns: Option<u64>| TaskShare {
            tid: None,
            pid: None,
            comm: comm.to_string(),
            kernel_thread: false,
            same_process: false,
            ns,
            count: tally.count,
        };
        let ready_behind = listed(
            &attribution.ready_behind,
            |tally| (tally.ns, tally.count),
            |holder, tally| match holder {
                Some(Holder::Task(tid)) => share(*tid, tally, Some(tally.ns)),
                Some(Holder::StillReady) => {
                    unnamed("(still ready at the window's end)", tally, Some(tally.ns))
                }
                Some(Holder::Unseen) => unnamed("(switch not recorded)", tally, Some(tally.ns)),
                None => unnamed("(others)", tally, Some(tally.ns)),
            },
        );
        let preempted_by = listed(
            &attribution.preempted_by,
            |tally| (tally.count, 0),
            |tid, tally| match tid {
                Some(tid) => share(*tid, tally, None),
                None => unnamed("(others)", tally, None),
            },
        );
        let woken_by = self.wakers.then(|| {
            listed(
                &attribution.woken_by,
                |tally| (tally.count, tally.ns),
                |waker, tally| {
                    let (tid, irq, comm) = match waker {
                        Some(Waker::Task(task)) => (Some(task.tid), None, None),
                        Some(Waker::Interrupt(source)) => {
                            (None, Some(self.interrupt(source)), None)
                        }
                        None => (None, None, Some("(others)")),
                    };
                    let (pid, comm) = match tid {
                        Some(tid) => {
                            let (pid, comm, _) = self.task(tid);
                            (pid, Some(comm))
                        }
                        None => (None, comm.map(str::to_string)),
                    };
                    WakerShare {
                        tid,
                        pid,
                        comm,
                        irq,
                        count: tally.count,
                        ended_ns: tally.ns,
                    }
                },
            )
        });
        Attributed {
            wakeups: attribution.wakeups,
            ready_behind,
            preempted_by,
            woken_by,
        }
    }
}

/// The rows of `tallies`, the largest `order` first, the first [`LISTED`]
/// by key and the rest (and what the model summed already) in one row
/// made from key None.
fn listed<K, R>(
    tallies: &Tallies<K>,
    order: impl Fn(&Tally) -> (u64, u64),
    row: impl Fn(Option<&K>, Tally) -> R,
) -> Vec<R> {
    let mut keyed: Vec<(&K, Tally)> = Vec::new();
    let mut rest = Tally::default();
    for (key, tally) in tallies.entries() {
        match key {
            Some(key) => keyed.push((key, *tally)),
            None => rest = rest + *tally,
        }
    }
    keyed.sort_by_key(|(_, tally)| std::cmp::Reverse(order(tally)));
    for (_, tally) in keyed.iter().skip(LISTED) {
        rest = rest + *tally;
    }
    let mut rows: Vec<R> = keyed
        .into_iter()
        .take(LISTED)
        .map(|(key, tally)| row(Some(key), tally))
        .collect();
    if rest.count > 0 {
        rows.push(row(None, rest));
    }
    rows
}

/// A device IRQ's handler names, from /proc/irq/N/ (a directory per
/// handler), or "IRQ N".
fn handler_name(irq: i32) -> String {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/irq/{irq}"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| sanitize(entry.file_name().as_encoded_bytes()))
        .collect();
    names.sort();
    match names.is_empty() {
        true => format!("IRQ {irq}"),
        false => names.join(","),
    }
}
