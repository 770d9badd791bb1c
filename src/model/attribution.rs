//! Why a thread waited: the tasks that held the CPU while it was ready,
//! those that preempted it, and what woke it. Each list is bounded per
//! thread: past [`DISTINCT`] entries, the rest add up in one, so that sums
//! stay exact whatever the machine runs.

use rustc_hash::FxHashMap;

use crate::kernel::records::{Task, Waker};

/// Distinct entries a list keeps for one thread before it sums the rest.
pub const DISTINCT: usize = 64;

/// How many, and how long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub ns: u64,
}

impl std::ops::Add for Tally {
    type Output = Tally;

    fn add(self, other: Tally) -> Tally {
        Tally {
            count: self.count + other.count,
            ns: self.ns.saturating_add(other.ns),
        }
    }
}

/// Tallies by key, in the order first seen; `None` sums the keys past
/// [`DISTINCT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tallies<K> {
    entries: Vec<(Option<K>, Tally)>,
}

impl<K> Default for Tallies<K> {
    fn default() -> Self {
        Tallies {
            entries: Vec::new(),
        }
    }
}

impl<K> Tallies<K> {
    pub fn entries(&self) -> &[(Option<K>, Tally)] {
        &self.entries
    }

    #[cfg(test)]
    pub fn total(&self) -> Tally {
        self.entries
            .iter()
            .fold(Tally::default(), |sum, (_, tally)| sum + *tally)
    }
}

impl<K: PartialEq> Tallies<K> {
    pub fn add(&mut self, key: K, ns: u64) {
        let index = match self
            .entries
            .iter()
            .position(|(k, _)| k.as_ref() == Some(&key))
        {
            Some(index) => index,
            None if self.entries.len() < DISTINCT => {
                self.entries.push((Some(key), Tally::default()));
                self.entries.len() - 1
            }
            None => match self.entries.iter().position(|(k, _)| k.is_none()) {
                Some(index) => index,
                None => {
                    self.entries.push((None, Tally::default()));
                    self.entries.len() - 1
                }
            },
        };
        let tally = &mut self.entries[index].1;
        tally.count += 1;
        tally.ns = tally.ns.saturating_add(ns);
    }
}

/// What a stretch ready, waiting while the CPU ran other tasks, is charged
/// to: the task switched out just before the thread got the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// By thread id.
    Task(u32),
    /// The window closed while the thread was still ready.
    StillReady,
    /// The switch that gave it the CPU was not recorded.
    Unseen,
}

/// One thread's attribution over the window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// Wakeups in the window.
    pub wakeups: u64,
    /// Time ready behind other tasks, by holder: adds up to the thread's
    /// `ready_busy_cpu_ns`.
    pub ready_behind: Tallies<Holder>,
    /// Preemptions (left the CPU still runnable), by the task that got
    /// the CPU.
    pub preempted_by: Tallies<u32>,
    /// Wakeups by waker (--wakers), with the time asleep or blocked each
    /// ended.
    pub woken_by: Tallies<Waker>,
}

/// What a task that is not traced is, as the records name it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskInfo {
    pub pid: Option<u32>,
    /// Its name, if a record named it (raw, untrusted).
    pub comm: Option<[u8; 16]>,
    pub kernel_thread: bool,
}

/// The tasks that are not traced that the window's records named, by
/// thread id: as many as the window's records name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tasks {
    by_tid: FxHashMap<u32, TaskInfo>,
}

impl Tasks {
    /// `task` is named by a record; `pid` when the record carries it.
    pub fn note(&mut self, task: Task) {
        if let Some(pid) = task.pid {
            self.by_tid.entry(task.tid).or_default().pid = Some(pid);
        }
    }

    pub fn name(&mut self, task: Task, comm: [u8; 16], kernel_thread: bool) {
        let info = self.by_tid.entry(task.tid).or_default();
        info.pid = task.pid.or(info.pid);
        info.comm = Some(comm);
        info.kernel_thread = kernel_thread;
    }

    pub fn get(&self, tid: u32) -> Option<&TaskInfo> {
        self.by_tid.get(&tid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_past_the_distinct_limit_add_up_in_one_entry() {
        let mut tallies = Tallies::default();
        for key in 0..DISTINCT as u32 + 10 {
            tallies.add(key, 5);
            tallies.add(key, 1);
        }
        let entries = tallies.entries();
        assert_eq!(entries.len(), DISTINCT + 1);
        assert_eq!(entries[0], (Some(0), Tally { count: 2, ns: 6 }));
        assert_eq!(entries[DISTINCT], (None, Tally { count: 20, ns: 60 }));
        assert_eq!(
            tallies.total(),
            Tally {
                count: 2 * (DISTINCT as u64 + 10),
                ns: 6 * (DISTINCT as u64 + 10)
            }
        );
    }
}
