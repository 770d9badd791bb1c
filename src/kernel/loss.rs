//! What the kernel side could not deliver, by cause, and what to do about
//! each: the report names the real cause and the real remedy.

use serde::{Deserialize, Serialize};

use crate::thousands::thousands;

/// Counted by the BPF programs (enum lost_cause of bpf/kernel_delay.h).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    /// Scheduler, interrupt and exec records: the ring buffer was full.
    pub ring_buffer_full: u64,
    /// Calls that could not be timed: no room in the thread map.
    pub thread_map_full: u64,
    /// Completed calls that found no room in the ring buffer nor in the
    /// spill map.
    pub spill_map_full: u64,
    /// Exits (the thread's name) that found no room in either.
    pub exit_map_full: u64,
    /// Slow calls' events (--syscall-events): the ring buffer was full
    /// (the calls themselves went to the spill map).
    pub syscall_events: u64,
    /// Where threads left their CPUs (--off-cpu-stacks): the ring buffer
    /// was full (their time is charged to a row that says so).
    pub offcpu_stacks: u64,
}

impl Lost {
    /// What was lost since the counters read `earlier`.
    pub fn since(&self, earlier: &Lost) -> Lost {
        Lost {
            ring_buffer_full: self.ring_buffer_full - earlier.ring_buffer_full,
            thread_map_full: self.thread_map_full - earlier.thread_map_full,
            spill_map_full: self.spill_map_full - earlier.spill_map_full,
            exit_map_full: self.exit_map_full - earlier.exit_map_full,
            syscall_events: self.syscall_events - earlier.syscall_events,
            offcpu_stacks: self.offcpu_stacks - earlier.offcpu_stacks,
        }
    }

    pub fn total(&self) -> u64 {
        self.ring_buffer_full
            + self.thread_map_full
            + self.spill_map_full
            + self.exit_map_full
            + self.syscall_events
            + self.offcpu_stacks
    }

    /// One line per cause that lost something, and one for the calls that
    /// went to the spill map (not lost, but left out of percentiles).
    pub fn warnings(&self, spilled_calls: u64) -> Vec<String> {
        let mut lines = Vec::new();
        if self.ring_buffer_full > 0 {
            lines.push(format!(
                "{} scheduler and interrupt records were lost: the ring buffer was full (the \
                 reader fell behind), so scheduling and interrupt figures are too low; try a \
                 larger --ringbuf-mb",
                thousands(self.ring_buffer_full)
            ));
        }
        if self.spill_map_full > 0 {
            lines.push(format!(
                "{} system calls were lost: the ring buffer was full and so was the kernel's \
                 spill map, so system call counts are too low; try a larger --ringbuf-mb",
                thousands(self.spill_map_full)
            ));
        }
        if self.thread_map_full > 0 {
            lines.push(format!(
                "{} system calls were not timed: the kernel could not allocate their entry in \
                 the thread map (memory is short)",
                thousands(self.thread_map_full)
            ));
        }
        if self.exit_map_full > 0 {
            lines.push(format!(
                "{} exited threads lost their name and exit time: the ring buffer was full and \
                 so was the kernel's exit map; try a larger --ringbuf-mb",
                thousands(self.exit_map_full)
            ));
        }
        if self.syscall_events > 0 {
            lines.push(format!(
                "{} slow system calls are missing from the SYSCALL EVENTS: the ring buffer was \
                 full (their statistics are kept); try a larger --ringbuf-mb or a higher \
                 --syscall-events threshold",
                thousands(self.syscall_events)
            ));
        }
        if self.offcpu_stacks > 0 {
            lines.push(format!(
                "{} switches off the CPU lost their stacks: the ring buffer was full (their time \
                 is in the OFF-CPU STACKS rows \"not recorded\"); try a larger --ringbuf-mb",
                thousands(self.offcpu_stacks)
            ));
        }
        if spilled_calls > 0 {
            lines.push(format!(
                "{} system calls found the ring buffer full and were kept in the kernel's \
                 spill map: their counts, totals, min and max are exact, their percentiles \
                 leave those calls out, and the two LONG POLL iterations around such a call \
                 of the poll family count as one",
                thousands(spilled_calls)
            ));
        }
        lines
    }
}

/// The line saying that the kernel skipped `runs` runs of program
/// `program` (it was already running on that CPU: the kernel runs a
/// tracing program once per CPU at a time), and what is missing.
pub fn skipped_runs_warning(program: &str, runs: u64) -> String {
    let missing = match program {
        "sched_switch" => {
            "context switches are missing, so scheduler figures are wrong, and calls made \
             after a skipped switch may be charged to the thread that ran before"
        }
        "sys_enter" | "sys_exit" => "system calls are missing, so their counts are too low",
        "sched_wakeup" | "sched_waking" | "sched_wakeup_new" => {
            "wakeups are missing, so scheduler figures are wrong"
        }
        "sched_process_exit" | "sched_process_fork" | "sched_process_exec" => {
            "thread exits, forks or execs are missing, so threads and processes may be wrong"
        }
        trigger if trigger.starts_with("start_trigger") || trigger.starts_with("stop_trigger") => {
            "trigger hits are missing, so windows may have opened or closed late"
        }
        // Soft IRQs, device IRQs, the timer's hrtimer and the x86 vectors.
        irq if irq.ends_with("_entry") || irq.ends_with("_exit") => {
            "interrupts are missing, so their figures are too low"
        }
        _ => "what it records is missing",
    };
    format!(
        "the kernel skipped {} runs of kernel-delay's BPF program {program} (it was already \
         running on that CPU): {missing}",
        thousands(runs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_lost_says_nothing() {
        assert_eq!(Lost::default().total(), 0);
        assert!(Lost::default().warnings(0).is_empty());
    }

    #[test]
    fn each_cause_names_its_remedy() {
        let lost = Lost {
            ring_buffer_full: 1_500,
            thread_map_full: 2,
            spill_map_full: 3,
            exit_map_full: 4,
            syscall_events: 5,
            offcpu_stacks: 6,
        };
        assert_eq!(lost.total(), 1_520);
        let lines = lost.warnings(70);
        assert_eq!(lines.len(), 7);
        assert!(lines[0].starts_with(
            "1,500 scheduler and interrupt records were lost: the ring buffer was full"
        ));
        assert!(lines[0].ends_with("try a larger --ringbuf-mb"));
        assert!(lines[1].contains("spill map"));
        assert!(lines[2].contains("thread map") && !lines[2].contains("--ringbuf-mb"));
        assert!(lines[3].contains("exit map"));
        assert!(lines[4].starts_with("5 slow system calls are missing from the SYSCALL EVENTS"));
        assert!(lines[5].starts_with("6 switches off the CPU lost their stacks"));
        assert!(lines[6].starts_with("70 system calls found the ring buffer full"));
        assert!(lines[6].contains("LONG POLL"));
    }

    #[test]
    fn skipped_runs_name_the_program_and_what_is_missing() {
        let line = skipped_runs_warning("sched_switch", 1_234);
        assert!(line.starts_with(
            "the kernel skipped 1,234 runs of kernel-delay's BPF program sched_switch"
        ));
        assert!(line.contains("context switches"));
        assert!(skipped_runs_warning("sys_exit", 1).contains("system calls"));
        assert!(skipped_runs_warning("start_trigger_usdt", 1).contains("trigger hits"));
        assert!(skipped_runs_warning("local_timer_entry", 1).contains("interrupts"));
        assert!(skipped_runs_warning("sched_process_exit", 1).contains("exits"));
        assert!(skipped_runs_warning("calls_in_flight", 1).ends_with("what it records is missing"));
    }
}
