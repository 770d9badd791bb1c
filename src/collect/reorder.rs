//! Puts records back in the order they were made. A CPU running traced
//! threads sends its records in batches, so a thread's records made on two
//! CPUs (or a wakeup made on another) can arrive in either order. Each
//! CPU's records come in order, and a batch waits in the kernel at most
//! MAX_STAGED_NS (bpf/kernel_delay.h) and a timer tick more: records are
//! queued by CPU, held until they are older than that with room to spare,
//! and released merged in time order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::kernel::records::Record;
use crate::kernel::skel::types::staging;
use crate::thousands::thousands;

/// How long a record is held: the kernel's bound on staging (5 ms), a
/// timer tick (up to 10 ms at HZ=100), and the reader's own delay.
pub const HOLD_NS: u64 = 5 * staging::MAX_STAGED_NS.0 as u64;

/// Records from one source, oldest first.
type Queue = VecDeque<Record>;

#[derive(Debug, Default)]
pub struct Reorder {
    /// Records sent at once first, then those staged on CPU 0, 1, ...
    queues: Vec<Queue>,
    /// The time of the newest record released.
    released_ns: u64,
    /// Records that arrived after a newer one was released: held too
    /// briefly (a CPU kept them staged while the ring buffer was full).
    late: u64,
}

impl Reorder {
    /// A record, and the CPU whose batch it came in (None: sent at once).
    pub fn push(&mut self, cpu: Option<u32>, record: Record) {
        let time = record.time_ns();
        if time < self.released_ns {
            self.late += 1;
        }
        let index = cpu.map_or(0, |cpu| cpu as usize + 1);
        if index >= self.queues.len() {
            self.queues.resize_with(index + 1, Queue::default);
        }
        let queue = &mut self.queues[index];
        // Nearly always the newest of its queue; not always: a record
        // staged by an interrupt in the middle of another, or two sent at
        // once from two CPUs.
        if queue.back().is_none_or(|newest| newest.time_ns() <= time) {
            queue.push_back(record);
        } else {
            let at = queue.partition_point(|queued| queued.time_ns() <= time);
            queue.insert(at, record);
        }
    }

    /// Hands `sink` the records made before `horizon_ns`, oldest first
    /// (those made at the same time in the order they arrived, from one
    /// source).
    pub fn release_before(&mut self, horizon_ns: u64, mut sink: impl FnMut(Record)) {
        let head = |queue: &Queue| queue.front().map(Record::time_ns);
        let mut heads: BinaryHeap<Reverse<(u64, usize)>> = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(index, queue)| Some(Reverse((head(queue)?, index))))
            .filter(|Reverse((time, _))| *time < horizon_ns)
            .collect();
        while let Some(Reverse((time, index))) = heads.pop() {
            let queue = &mut self.queues[index];
            if let Some(record) = queue.pop_front() {
                self.released_ns = self.released_ns.max(time);
                sink(record);
            }
            if let Some(next) = head(queue).filter(|next| *next < horizon_ns) {
                heads.push(Reverse((next, index)));
            }
        }
    }

    /// Releases everything, and the queues' memory: the report is made
    /// next.
    pub fn release_all(&mut self, sink: impl FnMut(Record)) {
        self.release_before(u64::MAX, sink);
        self.queues = Vec::new();
    }

    /// Forgets the records made before `start_ns` (stragglers of a
    /// previous window).
    pub fn discard_before(&mut self, start_ns: u64) {
        for queue in &mut self.queues {
            queue.retain(|record| record.time_ns() >= start_ns);
        }
    }

    /// Records that arrived late since the last call.
    fn take_late(&mut self) -> u64 {
        std::mem::take(&mut self.late)
    }

    /// The report's line on the records that arrived late since the last
    /// call, if any did.
    pub fn late_warning(&mut self) -> Option<String> {
        let late = self.take_late();
        (late > 0).then(|| {
            format!(
                "{} records reached kernel-delay more than {} ms after they were made and were \
                 aggregated out of order (a CPU held them that long: the ring buffer was full, or \
                 the CPU stalled), so their threads' scheduler figures may be slightly off; if \
                 records were lost too, try a larger --ringbuf-mb",
                thousands(late),
                HOLD_NS / 1_000_000
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::records::{IrqSource, Waker};

    fn wakeup(tid: u32, ts_ns: u64) -> Record {
        Record::Wakeup {
            tid,
            ts_ns,
            waker: Waker::Interrupt(IrqSource::Softirq(1)),
        }
    }

    fn released(reorder: &mut Reorder, horizon_ns: u64) -> Vec<Record> {
        let mut out = Vec::new();
        reorder.release_before(horizon_ns, |record| out.push(record));
        out
    }

    #[test]
    fn batches_from_two_cpus_come_out_in_time_order() {
        let mut reorder = Reorder::default();
        // CPU 1's batch arrives first, CPU 0's older one second.
        for ts in [30, 40, 50] {
            reorder.push(Some(1), wakeup(1, ts));
        }
        for ts in [10, 20, 45] {
            reorder.push(Some(0), wakeup(2, ts));
        }
        let times: Vec<u64> = released(&mut reorder, 100)
            .iter()
            .map(Record::time_ns)
            .collect();
        assert_eq!(times, [10, 20, 30, 40, 45, 50]);
        assert_eq!(reorder.take_late(), 0);
    }

    #[test]
    fn records_are_held_until_the_horizon_passes_them() {
        let mut reorder = Reorder::default();
        reorder.push(Some(0), wakeup(1, 10));
        reorder.push(Some(0), wakeup(1, 30));
        assert_eq!(released(&mut reorder, 30), [wakeup(1, 10)]);
        reorder.push(Some(1), wakeup(2, 20));
        assert_eq!(released(&mut reorder, 31), [wakeup(2, 20), wakeup(1, 30)]);
    }

    #[test]
    fn same_time_keeps_arrival_order() {
        let mut reorder = Reorder::default();
        reorder.push(None, wakeup(2, 10));
        reorder.push(None, wakeup(1, 10));
        reorder.push(Some(3), wakeup(3, 10));
        reorder.push(Some(3), wakeup(4, 10));
        assert_eq!(
            released(&mut reorder, 11),
            [wakeup(2, 10), wakeup(1, 10), wakeup(3, 10), wakeup(4, 10)]
        );
    }

    #[test]
    fn a_record_older_than_the_newest_of_its_queue_goes_before_it() {
        // An interrupt staged its wakeup while the call it interrupted,
        // timed just before, had yet to be staged.
        let mut reorder = Reorder::default();
        reorder.push(Some(0), wakeup(1, 10));
        reorder.push(Some(0), wakeup(2, 30));
        reorder.push(Some(0), wakeup(3, 20));
        reorder.push(Some(0), wakeup(4, 30));
        assert_eq!(
            released(&mut reorder, 100),
            [wakeup(1, 10), wakeup(3, 20), wakeup(2, 30), wakeup(4, 30)]
        );
    }

    #[test]
    fn a_record_older_than_one_released_is_late_but_kept() {
        let mut reorder = Reorder::default();
        reorder.push(Some(0), wakeup(1, 50));
        assert_eq!(released(&mut reorder, 60), [wakeup(1, 50)]);
        reorder.push(Some(1), wakeup(1, 40));
        reorder.push(Some(1), wakeup(1, 55));
        let warning = reorder.late_warning().expect("a late record");
        assert!(warning.starts_with("1 records reached"), "{warning}");
        assert_eq!(reorder.late_warning(), None);
        let mut all = Vec::new();
        reorder.release_all(|record| all.push(record));
        assert_eq!(all, [wakeup(1, 40), wakeup(1, 55)]);
    }

    #[test]
    fn stragglers_of_a_previous_window_are_dropped() {
        let mut reorder = Reorder::default();
        reorder.push(Some(0), wakeup(1, 5));
        reorder.push(None, wakeup(1, 15));
        reorder.discard_before(10);
        assert_eq!(released(&mut reorder, 100), [wakeup(1, 15)]);
    }
}
