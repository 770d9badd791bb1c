//! Where the reader runs. At real-time priority it preempts whatever runs
//! on its CPU, and the kernel wakes it on the CPU it last ran on: were that
//! a CPU the traced threads use, it would delay them (the very delay the
//! report measures) at every read. So the reader moves itself to the CPU
//! where they made the fewest records lately.

use nix::libc;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// Reads over which records are counted (~0.1 s) before counting afresh.
const READS_PER_WINDOW: u32 = 10;

pub struct Placement {
    /// The CPUs the reader may use, as it was started.
    allowed: Vec<usize>,
    /// Records traced threads made on each CPU since counting began.
    records: Vec<u64>,
    reads: u32,
}

impl Placement {
    /// None when the reader's CPUs cannot be read.
    pub fn new() -> Option<Self> {
        let set = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let allowed: Vec<usize> = (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect();
        Some(Placement {
            records: vec![0; allowed.last()? + 1],
            allowed,
            reads: 0,
        })
    }

    /// A record a traced thread made on `cpu` arrived.
    pub fn note(&mut self, cpu: u32) {
        if let Some(count) = self.records.get_mut(cpu as usize) {
            *count += 1;
        }
    }

    /// After a read: moves the reader as soon as another CPU has clearly
    /// had fewer traced records than its own since counting began (a
    /// reader started on the traced threads' CPU would otherwise preempt
    /// them at every read of its first window).
    pub fn review(&mut self) {
        self.reads += 1;
        // SAFETY: no arguments; -1 on failure.
        let current = usize::try_from(unsafe { libc::sched_getcpu() });
        let better = current
            .ok()
            .and_then(|current| better_cpu(&self.allowed, &self.records, current));
        if let Some(cpu) = better {
            let mut set = CpuSet::new();
            // Failing (the CPU went offline, a cpuset changed) leaves the
            // reader where it is: a later review tries again.
            if set.set(cpu).is_ok() {
                let _ = sched_setaffinity(Pid::from_raw(0), &set);
            }
        }
        if better.is_some() || self.reads >= READS_PER_WINDOW {
            self.reads = 0;
            self.records.fill(0);
        }
    }
}

/// The CPU among `allowed` with the fewest `records`, if the reader (on
/// `current`) should move there: its own CPU had more than twice as
/// many, and enough to matter.
fn better_cpu(allowed: &[usize], records: &[u64], current: usize) -> Option<usize> {
    /// Fewer records than this in a review (~0.1 s): not worth a move. A
    /// thread that only sleeps and wakes a few hundred times a second
    /// counts: behind the reader, its waits would be the reader's.
    const NOTICEABLE: u64 = 100;
    let count = |cpu: usize| records.get(cpu).copied().unwrap_or(0);
    let best = allowed.iter().copied().min_by_key(|&cpu| count(cpu))?;
    let own = count(current);
    (own > NOTICEABLE && own > 2 * count(best)).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_to_the_cpu_the_traced_threads_leave_alone() {
        // Both traced threads on CPU 1 (a ping-pong), CPU 0 idle.
        assert_eq!(better_cpu(&[0, 1], &[0, 140_000], 1), Some(0));
        assert_eq!(better_cpu(&[0, 1], &[0, 140_000], 0), None);
    }

    #[test]
    fn stays_when_all_cpus_are_alike_or_quiet() {
        // Traced threads on every CPU: moving would not help.
        assert_eq!(better_cpu(&[0, 1], &[90_000, 110_000], 0), None);
        assert_eq!(better_cpu(&[0, 1], &[90_000, 110_000], 1), None);
        // Too few records to matter.
        assert_eq!(better_cpu(&[0, 1], &[0, 50], 1), None);
    }

    #[test]
    fn only_cpus_it_may_use() {
        assert_eq!(
            better_cpu(&[1, 2, 3], &[0, 50_000, 9_000, 20_000], 1),
            Some(2)
        );
    }
}
