//! Puts records back in the order they were made. A CPU running traced
//! threads sends its records in batches, so a thread's records made on two
//! CPUs (or a wakeup made on another) can arrive in either order. A batch
//! waits in the kernel at most MAX_STAGED_NS (bpf/kernel_delay.h) and a
//! timer tick more; records are held here until they are older than that,
//! with room to spare, and then released in time order.

use crate::records::Record;
use crate::skel::types::staging;

/// How long a record is held: the kernel's bound on staging (10 ms), a
/// timer tick (up to 10 ms at HZ=100), and the reader's own delay.
pub const HOLD_NS: u64 = 5 * staging::MAX_STAGED_NS.0 as u64;

#[derive(Debug, Default)]
pub struct Reorder {
    /// Records not yet released, each with its time.
    pending: Vec<(u64, Record)>,
    /// The time of the newest record released.
    released_ns: u64,
    /// Records that arrived after a newer one was released: held too
    /// briefly (a CPU kept them staged while the ring buffer was full).
    late: u64,
}

impl Reorder {
    pub fn push(&mut self, record: Record) {
        let time = record.time_ns();
        if time < self.released_ns {
            self.late += 1;
        }
        self.pending.push((time, record));
    }

    /// Hands `sink` the records made before `horizon_ns`, oldest first
    /// (records made at the same time in the order they arrived).
    pub fn release_before(&mut self, horizon_ns: u64, mut sink: impl FnMut(Record)) {
        // Stable, and quick on what it mostly is: sorted runs (the
        // records held, and each batch).
        self.pending.sort_by_key(|(time, _)| *time);
        let ready = self.pending.partition_point(|(time, _)| *time < horizon_ns);
        if let Some(&(newest, _)) = ready.checked_sub(1).and_then(|i| self.pending.get(i)) {
            self.released_ns = self.released_ns.max(newest);
        }
        self.pending
            .drain(..ready)
            .for_each(|(_, record)| sink(record));
    }

    pub fn release_all(&mut self, sink: impl FnMut(Record)) {
        self.release_before(u64::MAX, sink);
    }

    /// Forgets the records made before `start_ns` (stragglers of a
    /// previous window).
    pub fn discard_before(&mut self, start_ns: u64) {
        self.pending.retain(|(time, _)| *time >= start_ns);
    }

    /// Records that arrived late since the last call.
    pub fn take_late(&mut self) -> u64 {
        std::mem::take(&mut self.late)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wakeup(tid: u32, ts_ns: u64) -> Record {
        Record::Wakeup { tid, ts_ns }
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
            reorder.push(wakeup(1, ts));
        }
        for ts in [10, 20, 45] {
            reorder.push(wakeup(2, ts));
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
        reorder.push(wakeup(1, 10));
        reorder.push(wakeup(1, 30));
        assert_eq!(released(&mut reorder, 30), [wakeup(1, 10)]);
        reorder.push(wakeup(2, 20));
        assert_eq!(released(&mut reorder, 31), [wakeup(2, 20), wakeup(1, 30)]);
    }

    #[test]
    fn same_time_keeps_arrival_order() {
        let mut reorder = Reorder::default();
        reorder.push(wakeup(2, 10));
        reorder.push(wakeup(1, 10));
        assert_eq!(released(&mut reorder, 11), [wakeup(2, 10), wakeup(1, 10)]);
    }

    #[test]
    fn a_record_older_than_one_released_is_late_but_kept() {
        let mut reorder = Reorder::default();
        reorder.push(wakeup(1, 50));
        assert_eq!(released(&mut reorder, 60), [wakeup(1, 50)]);
        reorder.push(wakeup(1, 40));
        reorder.push(wakeup(1, 55));
        assert_eq!(reorder.take_late(), 1);
        assert_eq!(reorder.take_late(), 0);
        let mut all = Vec::new();
        reorder.release_all(|record| all.push(record));
        assert_eq!(all, [wakeup(1, 40), wakeup(1, 55)]);
    }

    #[test]
    fn stragglers_of_a_previous_window_are_dropped() {
        let mut reorder = Reorder::default();
        reorder.push(wakeup(1, 5));
        reorder.push(wakeup(1, 15));
        reorder.discard_before(10);
        assert_eq!(released(&mut reorder, 100), [wakeup(1, 15)]);
    }
}
