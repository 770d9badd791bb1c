//! The text report, in the layout of Open vSwitch's kernel_delay.py.

use std::fmt::Write as _;
use std::io;

use time::OffsetDateTime;

use comfy_table::{presets, CellAlignment, Table};

use super::{Header, Report, SyscallReport, ThreadReport};
use crate::clock::{hms, rfc3339};
use crate::irq::SystemSoftirqs;
use crate::sched::{ThreadState, TimeBudget};
use crate::stats::Stats;
use crate::syscall_names::is_poll_family;
use crate::thousands::thousands;

/// Resource tables start under the THREAD column.
const INDENT: &str = "          ";

/// The lines printed when the window opens.
pub fn render_header(header: &Header) -> String {
    let duration = match header.requested {
        Some(d) => format!("{} seconds", seconds(d.as_secs_f64())),
        None => "until the command exits".to_string(),
    };
    let pids: Vec<String> = header
        .processes
        .iter()
        .map(|(pid, comm)| format!("{pid} ({comm})"))
        .collect();
    let forks = match (header.follow_forks, pids.len()) {
        (false, _) => "",
        (true, 1) => " and the processes it forks",
        (true, _) => " and the processes they fork",
    };
    format!(
        "# Start sampling @{} ({} UTC)\n# Monitoring PID: {}{forks}, Duration: {}\n",
        rfc3339(header.start.wall),
        hms(header.start.wall),
        pids.join(", "),
        duration
    )
}

/// What the text report shows around the report itself.
pub struct Frame<'a> {
    /// The lines printed when the window opened.
    pub header: &'a Header,
    /// When the window closed, and when the report was made.
    pub end: OffsetDateTime,
    pub dumped: OffsetDateTime,
}

/// Everything after the header, one thread at a time.
pub fn write_body(report: &Report, frame: &Frame, out: &mut impl io::Write) -> io::Result<()> {
    out.write_all(render_preamble(report, frame).as_bytes())?;
    // Threads come grouped by process: each group under its process line.
    let mut shown = None;
    for thread in &report.threads {
        let mut text = String::new();
        if shown != Some(thread.pid) {
            shown = Some(thread.pid);
            render_process(&mut text, report, thread.pid);
        }
        render_thread(&mut text, thread);
        out.write_all(text.as_bytes())?;
    }
    let mut text = String::new();
    render_system_softirqs(&mut text, &report.softirqs_system);
    out.write_all(text.as_bytes())
}

pub fn write(report: &Report, frame: &Frame, out: &mut impl io::Write) -> io::Result<()> {
    out.write_all(render_header(frame.header).as_bytes())?;
    write_body(report, frame, out)
}

/// The lines about the whole window, down to the table heading.
fn render_preamble(report: &Report, frame: &Frame) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Stop sampling @{} ({} UTC), after {} seconds ({})",
        report.end,
        hms(frame.end),
        seconds(report.duration_ns as f64 / 1e9),
        report.stop_reason.describe()
    );
    let dumped = frame.dumped;
    let _ = writeln!(
        out,
        "# Sample dump @{} ({} UTC)",
        rfc3339(dumped),
        hms(dumped)
    );
    let _ = writeln!(
        out,
        "# Total events captured: {}, lost: {}",
        thousands(report.events),
        thousands(report.lost_events)
    );
    for warning in &report.warnings {
        let _ = writeln!(out, "# WARNING: {warning}");
    }
    if !report.skipped_tracepoints.is_empty() {
        let _ = writeln!(
            out,
            "# Not traced (no such tracepoint in this kernel): {}",
            report.skipped_tracepoints.join(", ")
        );
    }
    out.push_str("TID        THREAD           <RESOURCE SPECIFIC>\n");
    out.push_str("---------- ---------------- ----------------------------------------------------------------------------\n");
    out
}

/// The line before a process's threads: `PROCESS 1234 (nginx), parent 1`.
fn render_process(out: &mut String, report: &Report, pid: Option<u32>) {
    let Some(process) = pid.and_then(|pid| report.processes.iter().find(|p| p.pid == pid)) else {
        let _ = writeln!(out, "PROCESS ? (threads whose process is not known)");
        return;
    };
    let _ = write!(out, "PROCESS {} ({})", process.pid, process.comm);
    if let Some(ppid) = process.ppid {
        let _ = write!(out, ", parent {ppid}");
    }
    let lifetime = match (process.forked, process.exited) {
        (true, true) => ", forked and exited during the window",
        (true, false) => ", forked during the window",
        (false, true) => ", exited during the window",
        (false, false) => "",
    };
    let _ = writeln!(out, "{lifetime}");
}

fn render_thread(out: &mut String, thread: &ThreadReport) {
    let _ = writeln!(
        out,
        "{:<10} {:<16} [SYSCALL STATISTICS]",
        thread.tid, thread.comm
    );
    let lifetime = match (thread.created, thread.exited) {
        (true, true) => "(thread created and exited during the window)",
        (true, false) => "(thread created during the window)",
        (false, true) => "(thread exited during the window)",
        (false, false) => "",
    };
    if !lifetime.is_empty() {
        let _ = writeln!(out, "{INDENT} {lifetime}");
    }
    if thread.syscalls.is_empty() {
        let _ = writeln!(out, "{INDENT} (no system call completed in the window)");
    } else {
        indent_table(out, syscall_table(&thread.syscalls));
        let spilled: u64 = thread.syscalls.iter().map(|s| s.spilled).sum();
        if spilled > 0 {
            let _ = writeln!(
                out,
                "{INDENT} ({} of these calls went to the kernel's spill map: counted in COUNT, TOTAL, MIN and MAX, not in percentiles)",
                thousands(spilled)
            );
        }
    }
    if thread.poll_intervals.count > 0 {
        render_long_poll(out, &thread.poll_intervals);
    }
    render_sched(out, thread);
    render_interrupts(out, thread);
    if !thread.unfinished.is_empty() {
        let _ = writeln!(out, "{INDENT} [UNFINISHED SYSCALLS]");
        let mut table = new_table(&["NAME", "NUMBER", "ELAPSED ns"]);
        for call in &thread.unfinished {
            // Entered before the window: at least this long.
            let at_least = if call.entered_before_window { ">" } else { "" };
            table.add_row(vec![
                call.name.clone(),
                call.nr.to_string(),
                format!("{at_least}{}", thousands(call.elapsed_ns)),
            ]);
        }
        indent_table(out, table);
    }
}

/// Each event-loop iteration: from a poll-family call's return to the
/// next one's entry (the Open vSwitch tool's section, with percentiles).
fn render_long_poll(out: &mut String, intervals: &Stats) {
    let _ = writeln!(out, "{INDENT} [LONG POLL STATISTICS]");
    let mut table = new_table(&[
        "COUNT", "TOTAL ns", "MIN ns", "AVG ns", "P50 ns", "P90 ns", "P99 ns", "MAX ns",
    ]);
    table.add_row(
        [
            intervals.count,
            intervals.total_ns,
            intervals.min_ns,
            intervals.mean_ns,
            intervals.p50_ns,
            intervals.p90_ns,
            intervals.p99_ns,
            intervals.max_ns,
        ]
        .map(thousands),
    );
    indent_table(out, table);
}

fn render_sched(out: &mut String, thread: &ThreadReport) {
    let sched = &thread.sched;
    // The count's name is the Open vSwitch tool's: STOP_CNT for stops.
    for (title, count, stats) in [
        ("RUN", "SCHED_CNT", &sched.run),
        ("READY", "SCHED_CNT", &sched.ready),
        ("SLEEP", "SCHED_CNT", &sched.sleep),
        ("BLOCKED", "SCHED_CNT", &sched.block),
        ("STOPPED", "STOP_CNT", &sched.stopped),
    ] {
        let _ = writeln!(out, "{INDENT} [THREAD {title} STATISTICS]");
        let mut table = new_table(&[
            count, "TOTAL ns", "MIN ns", "AVG ns", "P50 ns", "P99 ns", "MAX ns",
        ]);
        table.add_row(
            [
                stats.count,
                stats.total_ns,
                stats.min_ns,
                stats.mean_ns,
                stats.p50_ns,
                stats.p99_ns,
                stats.max_ns,
            ]
            .map(thousands),
        );
        indent_table(out, table);
    }
    let _ = writeln!(out, "{INDENT} {}", time_budget(&thread.time));
}

/// Hard, then soft, as the Open vSwitch tool orders them.
fn render_interrupts(out: &mut String, thread: &ThreadReport) {
    let _ = writeln!(out, "{INDENT} [HARD IRQ STATISTICS]");
    let rows = thread.hardirqs.iter().map(|h| {
        let irq = h.irq.map_or_else(|| "-".to_string(), |irq| irq.to_string());
        (h.name.clone(), irq, &h.stats)
    });
    render_irq_table(out, "IRQ", rows);
    let _ = writeln!(out, "{INDENT} [SOFT IRQ STATISTICS]");
    let rows = thread
        .softirqs
        .iter()
        .map(|s| (s.name.clone(), s.vec.to_string(), &s.stats));
    render_irq_table(out, "VECT_NR", rows);
}

/// NAME, id, COUNT, TOTAL, P50, P99, MAX, and a `TOTAL:` row.
fn render_irq_table<'a>(
    out: &mut String,
    id_column: &str,
    rows: impl Iterator<Item = (String, String, &'a Stats)>,
) {
    let mut table = new_table(&[
        "NAME", id_column, "COUNT", "TOTAL ns", "P50 ns", "P99 ns", "MAX ns",
    ]);
    let (mut count, mut total) = (0u64, 0u64);
    for (name, id, stats) in rows {
        table.add_row(row(
            [name, id],
            [
                stats.count,
                stats.total_ns,
                stats.p50_ns,
                stats.p99_ns,
                stats.max_ns,
            ],
        ));
        count += stats.count;
        total = total.saturating_add(stats.total_ns);
    }
    if count == 0 {
        let _ = writeln!(out, "{INDENT} (none)");
        return;
    }
    table.add_row(row(["TOTAL:".to_string(), String::new()], [count, total]));
    indent_table(out, table);
}

fn render_system_softirqs(out: &mut String, system: &SystemSoftirqs) {
    let cpus: Vec<String> = system.cpus.iter().map(usize::to_string).collect();
    let _ = writeln!(
        out,
        "[SYSTEM-WIDE SOFT IRQ STATISTICS] on CPU {} (where the target ran), in any task's context; \
         ksoftirqd's share is charged to no thread above",
        if cpus.is_empty() { "-".to_string() } else { cpus.join(",") }
    );
    if system.vectors.is_empty() {
        let _ = writeln!(out, "{INDENT} (none)");
        return;
    }
    let mut table = new_table(&[
        "NAME",
        "VECT_NR",
        "COUNT",
        "TOTAL ns",
        "KSOFTIRQD COUNT",
        "KSOFTIRQD ns",
    ]);
    for v in &system.vectors {
        table.add_row(row(
            [v.name.clone(), v.vec.to_string()],
            [v.count, v.total_ns, v.ksoftirqd_count, v.ksoftirqd_ns],
        ));
    }
    indent_table(out, table);
}

/// `TIME BUDGET: observed N ns = running N (P%) + ready ... + stopped N (P%)`
fn time_budget(time: &TimeBudget) -> String {
    let parts: Vec<String> = ThreadState::ALL
        .iter()
        .zip(time.parts())
        .map(|(state, ns)| {
            format!(
                "{} {} ({})",
                state.name(),
                thousands(ns),
                percent(ns, time.observed_ns)
            )
        })
        .collect();
    format!(
        "TIME BUDGET: observed {} ns = {}",
        thousands(time.observed_ns),
        parts.join(" + ")
    )
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_string();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

fn syscall_table(syscalls: &[SyscallReport]) -> Table {
    let mut table = new_table(&[
        "NAME", "NUMBER", "COUNT", "TOTAL ns", "MIN ns", "AVG ns", "P50 ns", "P99 ns", "MAX ns",
    ]);
    let (mut count, mut total) = (0u64, 0u64);
    for s in syscalls {
        let st = &s.stats;
        table.add_row(row(
            [s.name.clone(), s.nr.to_string()],
            [
                st.count,
                st.total_ns,
                st.min_ns,
                st.mean_ns,
                st.p50_ns,
                st.p99_ns,
                st.max_ns,
            ],
        ));
        if !is_poll_family(&s.name) {
            count += st.count;
            total = total.saturating_add(st.total_ns);
        }
    }
    table.add_row(row(
        ["TOTAL( - poll):".to_string(), String::new()],
        [count, total],
    ));
    table
}

/// A table row: text cells, then figures with thousands separators.
fn row<const T: usize, const N: usize>(text: [String; T], figures: [u64; N]) -> Vec<String> {
    text.into_iter().chain(figures.map(thousands)).collect()
}

/// A borderless table, first column left-aligned, the numbers right-aligned.
fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_header(header.to_vec());
    for column in table.column_iter_mut().skip(1) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    table
}

fn indent_table(out: &mut String, table: Table) {
    for line in table.lines() {
        let _ = writeln!(out, "{INDENT}{}", line.trim_end());
    }
}

/// Seconds without trailing zeros: `10`, `0.5`, `2.125`.
fn seconds(s: f64) -> String {
    let text = format!("{s:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{rendered, sample, sample_report};
    use time::macros::datetime;

    #[test]
    fn budget_line() {
        let time = TimeBudget {
            observed_ns: 2_000,
            running_ns: 1_000,
            ready_ns: 500,
            sleeping_ns: 500,
            blocked_ns: 0,
            stopped_ns: 0,
        };
        assert_eq!(
            time_budget(&time),
            "TIME BUDGET: observed 2,000 ns = running 1,000 (50.0%) + ready 500 (25.0%) + sleeping 500 (25.0%) + blocked 0 (0.0%) + stopped 0 (0.0%)"
        );
        assert_eq!(percent(1, 0), "-");
    }

    #[test]
    fn seconds_are_trimmed() {
        assert_eq!(seconds(10.0), "10");
        assert_eq!(seconds(0.5), "0.5");
        assert_eq!(seconds(2.1254), "2.125");
    }

    /// The sample report in text, framed as it would be at its end, made
    /// a second later.
    fn render(report: &Report) -> String {
        let (_, header, end) = sample();
        let frame = Frame {
            header: &header,
            end: end.wall,
            dumped: datetime!(2026-11-26 10:00:04 UTC),
        };
        rendered(report, |report, out| write(report, &frame, out))
    }

    #[test]
    fn warnings_and_new_threads_are_shown() {
        let mut report = sample_report();
        report.warnings = vec!["something to know".into()];
        report.threads[1].created = true;
        report.threads[2].syscalls[0].spilled = 1;
        let text = render(&report);
        assert!(text.contains("\n# WARNING: something to know\n"), "{text}");
        assert!(
            text.contains("(thread created and exited during the window)"),
            "{text}"
        );
        assert!(
            text.contains("(1 of these calls went to the kernel's spill map"),
            "{text}"
        );
    }

    #[test]
    fn layout() {
        let text = render(&sample_report());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "# Start sampling @2026-11-26T10:00:00.000000000Z (10:00:00 UTC)"
        );
        assert_eq!(
            lines[1],
            "# Monitoring PID: 100 (demo) and the processes it forks, Duration: 3 seconds"
        );
        assert!(lines[2].starts_with(
            "# Stop sampling @2026-11-26T10:00:03.000000000Z (10:00:03 UTC), after 3 seconds"
        ));
        assert_eq!(
            lines[3],
            "# Sample dump @2026-11-26T10:00:04.000000000Z (10:00:04 UTC)"
        );
        assert_eq!(lines[4], "# Total events captured: 16, lost: 0");
        assert!(lines[5].starts_with("# Not traced (no such tracepoint in this kernel): "));
        assert!(lines[6].starts_with("TID        THREAD           <RESOURCE SPECIFIC>"));
        assert_eq!(lines[8], "PROCESS 100 (demo), parent 1");
        assert!(lines[9].starts_with("100        demo"));
        let child = lines
            .iter()
            .position(|l| l.starts_with("PROCESS 200"))
            .expect("the forked process's line");
        assert_eq!(
            lines[child],
            "PROCESS 200 (child), parent 100, forked and exited during the window"
        );
        assert!(lines[child + 1].starts_with("200        child"));
        assert!(text.contains("101        worker           [SYSCALL STATISTICS]"));
        assert!(text.contains("102        short\\x1b[2J     [SYSCALL STATISTICS]"));
        assert!(
            !text.contains('\x1b'),
            "terminal escapes must not reach the output"
        );
    }

    #[test]
    fn rows_are_aggregated_and_totalled() {
        let full = render(&sample_report());
        let text = &full[full.find("101        worker").unwrap()..];
        let row = |name: &str| {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no {name} row in\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(row("read")[..4], ["read", "0", "2", "3,493,811"]);
        assert_eq!(row("getppid")[..4], ["getppid", "110", "1", "500"]);
        // Sorted by total: read before poll before getppid.
        let pos = |needle: &str| text.find(needle).unwrap();
        assert!(pos(" read ") < pos(" poll ") && pos(" poll ") < pos(" getppid "));
        // poll (nr 7) is left out of the total.
        assert_eq!(row("TOTAL(")[..4], ["TOTAL(", "-", "poll):", "3"]);
        assert!(text.contains("3,494,311"));
        assert!(text.contains("[UNFINISHED SYSCALLS]"));
        let long_poll = text
            .find("[LONG POLL STATISTICS]")
            .expect("a LONG POLL section");
        assert!(long_poll < text.find("[THREAD RUN STATISTICS]").unwrap());
        let long_poll_row: Vec<&str> = text[long_poll..]
            .lines()
            .nth(2)
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            long_poll_row,
            ["1", "100,000", "100,000", "100,000", "100,000", "100,000", "100,000", "100,000"]
        );
        assert!(text.contains("STOP_CNT"));
        assert!(
            text.find("[HARD IRQ STATISTICS]").unwrap()
                < text.find("[SOFT IRQ STATISTICS]").unwrap()
        );
        for title in ["RUN", "READY", "SLEEP", "BLOCKED", "STOPPED"] {
            assert!(
                text.contains(&format!("[THREAD {title} STATISTICS]")),
                "{title}"
            );
        }
        assert!(text.contains("TIME BUDGET: observed 3,000,000,000 ns = running "));
        assert_eq!(row("NET_RX")[..4], ["NET_RX", "3", "2", "6,000"]);
        assert_eq!(row("LOCAL_TIMER")[..4], ["LOCAL_TIMER", "-", "1", "3,000"]);
        assert_eq!(
            row("virtio0-input.0")[..4],
            ["virtio0-input.0", "24", "1", "1,500"]
        );
        let softirq_total = text[text.find("[SOFT IRQ STATISTICS]").unwrap()..]
            .lines()
            .find(|l| l.trim_start().starts_with("TOTAL:"))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>();
        assert_eq!(softirq_total, ["TOTAL:", "3", "15,000"]);
        assert!(
            full.contains("# Not traced (no such tracepoint in this kernel): thermal_apic_entry")
        );
        let system = &full[full
            .find("[SYSTEM-WIDE SOFT IRQ STATISTICS] on CPU 0,1")
            .unwrap()..];
        assert!(system
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["NET_RX", "3", "10", "20,000", "4", "8,000"]));
    }
}
