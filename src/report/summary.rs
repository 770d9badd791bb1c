//! The text report's opening: one line per thread, worst first, and for
//! each process a one-line verdict on where its worst thread's delay came
//! from.

use std::fmt::Write as _;

use comfy_table::CellAlignment;

use super::attribution::TaskShare;
use super::table::new_table;
use super::units::{human_ns, percent};
use super::{Report, ThreadSummary};

/// Appends the summary of `threads` (in the report's order: by process,
/// the worst first); `left_out`: threads of the report not among them.
pub fn render(out: &mut String, report: &Report, threads: &[&ThreadSummary], left_out: usize) {
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

fn summary_row(thread: &ThreadSummary) -> Vec<String> {
    let time = &thread.time;
    let share = |ns: u64| percent(ns, time.observed_ns);
    let most = thread.top_call.as_ref().map_or_else(
        || "-".to_string(),
        |call| match call.unfinished {
            None => format!("{} {}", call.name, human_ns(call.ns)),
            Some(unfinished) => format!(
                "{} {} ({})",
                call.name,
                human_ns(call.ns),
                unfinished.phrase()
            ),
        },
    );
    vec![
        thread.tid.to_string(),
        thread.comm.clone(),
        human_ns(time.observed_ns),
        share(time.times.running_ns),
        share(time.times.ready_ns()),
        share(time.times.ready_busy_cpu_ns),
        share(time.times.ready_idle_cpu_ns),
        share(time.times.sleeping_ns),
        share(time.times.blocked_ns),
        human_ns(thread.irq_ns),
        human_ns(thread.kernel_delay_ns),
        most,
    ]
}

/// `PROCESS 1234 (nginx), parent 1`, and what happened to it.
pub fn process_line(report: &Report, pid: Option<u32>) -> String {
    let Some(process) = pid.and_then(|pid| report.processes.iter().find(|p| p.pid == pid)) else {
        return "PROCESS ? (threads whose process is not known)".to_string();
    };
    let mut line = format!("PROCESS {} ({})", process.pid, process.comm);
    if let Some(ppid) = process.ppid {
        let _ = write!(line, ", parent {ppid}");
    }
    line.push_str(match (process.forked, process.exited) {
        (true, true) => ", forked and exited during the window",
        (true, false) => ", forked during the window",
        (false, true) => ", exited during the window",
        (false, false) => "",
    });
    line
}

/// The tasks a thread waited behind, each with its share of the time
/// `behind_ns`, up to the next clause: `: spinner [same process] 96.0%,
/// kworker/0:1 3.0%;`, or `,` when there are none.
fn holders(main: &[TaskShare], behind_ns: u64) -> String {
    let named: Vec<String> = main
        .iter()
        .filter(|holder| holder.ns.unwrap_or(0) > 0)
        .map(|holder| {
            let ns = holder.ns.unwrap_or(0);
            format!("{} {}", holder.label(), percent(ns, behind_ns))
        })
        .collect();
    match named.is_empty() {
        true => ",".to_string(),
        false => format!(": {};", named.join(", ")),
    }
}

/// What the delay of a process's worst thread came from: waiting for a
/// CPU or blocked, whichever is larger, and interrupts.
pub fn verdict(worst: &ThreadSummary) -> String {
    let time = &worst.time;
    let irq = worst.irq_ns;
    if worst.kernel_delay_ns == 0 {
        return "no thread waited for a CPU, blocked, or was interrupted".to_string();
    }
    let who = format!("thread {} ({})", worst.tid, worst.comm);
    let share = |ns: u64| percent(ns, time.observed_ns);
    let p99 = |p99: Option<u64>| match p99 {
        None => String::new(),
        Some(p99) => format!(", p99 {}", human_ns(p99)),
    };
    let mut clauses = Vec::new();
    if time.times.ready_ns() > 0 && time.times.ready_ns() >= time.times.blocked_ns {
        clauses.push(format!(
            "{who} waited for a CPU {} of its time (behind other tasks {}{} for an idle CPU \
             to wake {}){}",
            share(time.times.ready_ns()),
            share(time.times.ready_busy_cpu_ns),
            holders(&worst.main_holders, time.times.ready_busy_cpu_ns),
            share(time.times.ready_idle_cpu_ns),
            p99(worst.ready_p99_ns)
        ));
    } else if time.times.blocked_ns > 0 {
        let most_in = match (&worst.most_blocked_in, &worst.blocked_at) {
            (Some(call), Some(at)) => format!(", most of it in {call} <- {at}"),
            (Some(call), None) => format!(", most of it in {call}"),
            (None, Some(at)) => format!(", most of it in {at}"),
            (None, None) => String::new(),
        };
        clauses.push(format!(
            "{who} was blocked (D) {} of its time{}{most_in}",
            share(time.times.blocked_ns),
            p99(worst.block_p99_ns)
        ));
    }
    if irq > 0 {
        let subject = if clauses.is_empty() { &who } else { "" };
        let sep = if clauses.is_empty() { ": " } else { "" };
        clauses.push(format!(
            "{subject}{sep}interrupts took {} of its CPU time",
            percent(irq, time.times.running_ns)
        ));
    }
    clauses.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sched::{StateTimes, TimeBudget};
    use crate::report::threads::{TopCall, Unfinished};

    fn worker() -> ThreadSummary {
        ThreadSummary {
            tid: 101,
            pid: Some(100),
            comm: "worker".into(),
            exited: false,
            time: TimeBudget {
                observed_ns: 1_000,
                times: StateTimes {
                    running_ns: 500,
                    ready_busy_cpu_ns: 150,
                    ready_idle_cpu_ns: 40,
                    sleeping_ns: 300,
                    blocked_ns: 10,
                    stopped_ns: 0,
                },
            },
            irq_ns: 15,
            kernel_delay_ns: 215,
            ready_p99_ns: Some(1_400_000),
            block_p99_ns: None,
            top_call: Some(TopCall {
                name: "read".into(),
                ns: 700,
                unfinished: None,
            }),
            most_blocked_in: Some("fsync".into()),
            blocked_at: None,
            main_holders: Vec::new(),
        }
    }

    #[test]
    fn verdict_names_the_larger_delay_and_interrupts() {
        let mut thread = worker();
        assert_eq!(
            verdict(&thread),
            "thread 101 (worker) waited for a CPU 19.0% of its time (behind other tasks 15.0%, \
             for an idle CPU to wake 4.0%), p99 1.40 ms; interrupts took 3.0% of its CPU time"
        );
        thread.time.times.ready_busy_cpu_ns = 0;
        thread.time.times.ready_idle_cpu_ns = 0;
        assert_eq!(
            verdict(&thread),
            "thread 101 (worker) was blocked (D) 1.0% of its time, most of it in fsync; \
             interrupts took 3.0% of its CPU time"
        );
        // With --off-cpu-stacks, where in the kernel.
        thread.blocked_at = Some("jbd2_log_wait_commit".into());
        assert_eq!(
            verdict(&thread),
            "thread 101 (worker) was blocked (D) 1.0% of its time, most of it in fsync <- \
             jbd2_log_wait_commit; interrupts took 3.0% of its CPU time"
        );
        thread.time.times.blocked_ns = 0;
        assert_eq!(
            verdict(&thread),
            "thread 101 (worker): interrupts took 3.0% of its CPU time"
        );
        thread.kernel_delay_ns = 0;
        assert_eq!(
            verdict(&thread),
            "no thread waited for a CPU, blocked, or was interrupted"
        );
    }

    #[test]
    fn an_idle_thread_is_most_in_the_call_its_details_name() {
        let mut idle = worker();
        idle.top_call = Some(TopCall {
            name: "rt_sigsuspend".into(),
            ns: 1_000_000_000,
            unfinished: Some(Unfinished::SinceBeforeTheWindow),
        });
        assert_eq!(
            summary_row(&idle)[11],
            "rt_sigsuspend 1.000 s (since before the window)"
        );
    }

    #[test]
    fn a_line_per_thread() {
        let row = summary_row(&worker());
        assert_eq!(
            row,
            [
                "101",
                "worker",
                "1.00 us",
                "50.0%",
                "19.0%",
                "15.0%",
                "4.0%",
                "30.0%",
                "1.0%",
                "15 ns",
                "215 ns",
                "read 700 ns"
            ]
        );
    }
}
