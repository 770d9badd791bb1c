//! The text report's opening: one line per thread, worst first, and for
//! each process a one-line verdict on where its worst thread's delay came
//! from.

use std::fmt::Write as _;

use comfy_table::CellAlignment;

use super::text::{new_table, process_line};
use super::units::{human_ns, percent};
use super::{Report, ThreadReport};

/// Appends the summary of `threads` (in the report's order: by process,
/// the worst first); `left_out`: threads of the report not among them.
pub fn render(out: &mut String, report: &Report, threads: &[&ThreadReport], left_out: usize) {
    let _ = writeln!(
        out,
        "# SUMMARY: threads worst first by kernel delay = time ready (waiting for a CPU) \
         + blocked (D) + taken by interrupts"
    );
    let mut rest = threads;
    while let Some(first) = rest.first() {
        let group = rest.iter().take_while(|t| t.pid == first.pid).count();
        let (threads, next) = rest.split_at(group);
        let _ = writeln!(
            out,
            "{}: {}",
            process_line(report, first.pid),
            verdict(first)
        );
        let mut table = new_table(&[
            "TID",
            "THREAD",
            "OBSERVED",
            "RUNNING",
            "READY",
            "BUSY CPU",
            "IDLE CPU",
            "SLEEPING",
            "BLOCKED",
            "IRQ",
            "KERNEL DELAY",
            "MOST TIME IN",
        ]);
        for column in [1, 11] {
            if let Some(column) = table.column_mut(column) {
                column.set_cell_alignment(CellAlignment::Left);
            }
        }
        for thread in threads {
            table.add_row(summary_row(thread));
        }
        for line in table.lines() {
            let _ = writeln!(out, "  {}", line.trim_end());
        }
        rest = next;
    }
    if left_out > 0 {
        let _ = writeln!(
            out,
            "  ({left_out} more threads with less delay: see --top)"
        );
    }
}

fn summary_row(thread: &ThreadReport) -> Vec<String> {
    let time = &thread.time;
    let share = |ns: u64| percent(ns, time.observed_ns);
    let most = thread.syscalls.first().map_or_else(
        || "-".to_string(),
        |s| format!("{} {}", s.name, human_ns(s.stats.total_ns)),
    );
    vec![
        thread.tid.to_string(),
        thread.comm.clone(),
        human_ns(time.observed_ns),
        share(time.running_ns),
        share(time.ready_ns),
        share(time.ready_busy_cpu_ns),
        share(time.ready_idle_cpu_ns),
        share(time.sleeping_ns),
        share(time.blocked_ns),
        human_ns(irq_ns(thread)),
        human_ns(thread.kernel_delay_ns),
        most,
    ]
}

/// Interrupt time charged to the thread.
fn irq_ns(thread: &ThreadReport) -> u64 {
    let soft = thread.softirqs.iter().map(|s| s.stats.total_ns);
    let hard = thread.hardirqs.iter().map(|h| h.stats.total_ns);
    soft.chain(hard).fold(0, u64::saturating_add)
}

/// What the delay of a process's worst thread came from: waiting for a
/// CPU or blocked, whichever is larger, and interrupts.
pub fn verdict(worst: &ThreadReport) -> String {
    let time = &worst.time;
    let irq = irq_ns(worst);
    if worst.kernel_delay_ns == 0 {
        return "no thread waited for a CPU, blocked, or was interrupted".to_string();
    }
    let who = format!("thread {} ({})", worst.tid, worst.comm);
    let share = |ns: u64| percent(ns, time.observed_ns);
    let p99 = |count: u64, p99: u64| match count {
        0 => String::new(),
        _ => format!(", p99 {}", human_ns(p99)),
    };
    let mut clauses = Vec::new();
    if time.ready_ns > 0 && time.ready_ns >= time.blocked_ns {
        clauses.push(format!(
            "{who} waited for a CPU {} of its time (behind other tasks {}, for an idle CPU \
             to wake {}){}",
            share(time.ready_ns),
            share(time.ready_busy_cpu_ns),
            share(time.ready_idle_cpu_ns),
            p99(worst.sched.ready.count, worst.sched.ready.p99_ns)
        ));
    } else if time.blocked_ns > 0 {
        let most_in = worst
            .syscalls
            .iter()
            .filter(|s| s.by_state.blocked_ns > 0)
            .max_by_key(|s| s.by_state.blocked_ns)
            .map_or_else(String::new, |s| format!(", most of it in {}", s.name));
        clauses.push(format!(
            "{who} was blocked (D) {} of its time{}{most_in}",
            share(time.blocked_ns),
            p99(worst.sched.block.count, worst.sched.block.p99_ns)
        ));
    }
    if irq > 0 {
        let subject = if clauses.is_empty() { &who } else { "" };
        let sep = if clauses.is_empty() { ": " } else { "" };
        clauses.push(format!(
            "{subject}{sep}interrupts took {} of its CPU time",
            percent(irq, time.running_ns)
        ));
    }
    clauses.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_report;

    #[test]
    fn verdict_names_the_larger_delay_and_interrupts() {
        let mut thread = sample_report()
            .threads
            .into_iter()
            .find(|t| t.tid == 101)
            .unwrap();
        thread.time.observed_ns = 1_000;
        thread.time.running_ns = 500;
        thread.time.ready_ns = 190;
        thread.time.ready_busy_cpu_ns = 150;
        thread.time.ready_idle_cpu_ns = 40;
        thread.time.blocked_ns = 10;
        thread.kernel_delay_ns = 1;
        let verdict = verdict(&thread);
        assert!(
            verdict.starts_with(
                "thread 101 (worker) waited for a CPU 19.0% of its time (behind other tasks 15.0%, \
                 for an idle CPU to wake 4.0%)"
            ),
            "{verdict}"
        );
        // 19,500 ns of interrupts against 500 ns running: a made-up thread.
        assert!(
            verdict.ends_with("; interrupts took 3900.0% of its CPU time"),
            "{verdict}"
        );

        thread.time.ready_ns = 0;
        thread.syscalls[0].by_state.blocked_ns = 10;
        let verdict = super::verdict(&thread);
        assert!(
            verdict.starts_with(
                "thread 101 (worker) was blocked (D) 1.0% of its time, most of it in read;"
            ),
            "{verdict}"
        );
        thread.kernel_delay_ns = 0;
        assert_eq!(
            super::verdict(&thread),
            "no thread waited for a CPU, blocked, or was interrupted"
        );
    }
}
