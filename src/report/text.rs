//! The text report, in the layout of Open vSwitch's kernel_delay.py.

use std::cmp::Reverse;
use std::fmt::Write as _;
use std::io;

use time::OffsetDateTime;

use comfy_table::Table;

use super::offcpu;
use super::summary::{self, process_line};
use super::table::new_table;
use super::units::{human_ns, percent};
use super::view::View;
use super::{
    events, log2_hist, CallTimes, Header, Report, StopReason, SyscallEventReport, SyscallReport,
    ThreadReport, ThreadSummary, WindowInfo,
};
use crate::clock::{hms, rfc3339};
use crate::kernel::irq::SystemSoftirqs;
use crate::kernel::syscall_names::is_poll_family;
use crate::model::sched::{ThreadState, TimeBudget};
use crate::model::stats::Stats;
use crate::sanitize::sanitize;
use crate::thousands::thousands;

/// Resource tables start under the THREAD column.
const INDENT: &str = "          ";
/// Histograms a little further in, under their table.
const HIST_INDENT: &str = "            ";

/// The lines printed as tracing begins, or as a window opens (at
/// `trigger_ns`, when its start trigger opened it): as the Open vSwitch
/// tool prints them.
pub fn render_header(header: &Header, trigger_ns: Option<u64>) -> String {
    let start = match (trigger_ns, &header.start_trigger) {
        (Some(ns), _) => format!("# Start sampling (trigger@{ns})"),
        (None, Some(trigger)) => format!("# Waiting for the start trigger {trigger}"),
        (None, None) => "# Start sampling".to_string(),
    };
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
    let cgroups = match header.cgroups.as_slice() {
        [] => String::new(),
        dirs => format!(", and those that join cgroup {}", dirs.join(", ")),
    };
    format!(
        "{start} @{} ({} UTC)\n# Monitoring PID: {}{forks}{cgroups}, Duration: {}\n",
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
    pub view: &'a View,
}

/// Everything after the header: the summary, then each thread's details
/// in the same order.
pub fn write_body(report: &Report, frame: &Frame, out: &mut impl io::Write) -> io::Result<()> {
    let view = frame.view;
    let ranked = ranked(report, view.top);
    let summaries: Vec<&ThreadSummary> = report.threads.summaries().collect();
    let shown: Vec<&ThreadSummary> = ranked.iter().map(|&i| summaries[i]).collect();
    let mut text = render_preamble(report, frame);
    summary::render(
        &mut text,
        report,
        &shown,
        report.threads.len() - ranked.len(),
    );
    text.push_str("TID        THREAD           <RESOURCE SPECIFIC>\n");
    text.push_str("---------- ---------------- ----------------------------------------------------------------------------\n");
    out.write_all(text.as_bytes())?;
    // Threads come grouped by process: each group under its process line.
    // Each row is made as it is written.
    let mut shown = None;
    for &index in &ranked {
        let thread = summaries[index];
        if !view.chosen(thread.tid, &thread.comm) {
            continue;
        }
        let mut text = String::new();
        if shown != Some(thread.pid) {
            shown = Some(thread.pid);
            let _ = writeln!(text, "{}", process_line(report, thread.pid));
        }
        render_thread(&mut text, &report.threads.row(index), view);
        out.write_all(text.as_bytes())?;
    }
    let mut text = String::new();
    if let (None, Some(filter)) = (shown, &view.threads) {
        let among = if ranked.len() < summaries.len() {
            " among the --top threads"
        } else {
            ""
        };
        let _ = writeln!(
            text,
            "(no thread matches --threads {}{among})",
            sanitize(filter.to_string().as_bytes())
        );
    }
    render_system_softirqs(&mut text, &report.softirqs_system);
    if let Some(calls) = &report.syscall_events {
        let shown: Vec<&SyscallEventReport> = calls
            .iter()
            .filter(|call| view.chosen(call.tid, &call.comm))
            .collect();
        events::render(&mut text, &shown);
        if let (Some(limit), Some(not_listed)) = (
            report.syscall_events_limit,
            report.syscall_events_not_listed,
        ) {
            events::render_not_listed(&mut text, not_listed, limit);
        }
    }
    out.write_all(text.as_bytes())
}

pub fn write(report: &Report, frame: &Frame, out: &mut impl io::Write) -> io::Result<()> {
    let trigger_ns = report
        .window
        .as_ref()
        .filter(|window| window.start_trigger.is_some())
        .map(|window| window.open_ns);
    out.write_all(render_header(frame.header, trigger_ns).as_bytes())?;
    write_body(report, frame, out)
}

/// The indices of the report's threads, in its order; with `top`, only
/// the `top` with the most kernel delay.
fn ranked(report: &Report, top: Option<usize>) -> Vec<usize> {
    let all = report.threads.len();
    let Some(top) = top.filter(|&top| top < all) else {
        return (0..all).collect();
    };
    let delays: Vec<u64> = report
        .threads
        .summaries()
        .map(|t| t.kernel_delay_ns)
        .collect();
    let mut worst: Vec<usize> = (0..all).collect();
    worst.sort_by_key(|&i| Reverse(delays[i]));
    worst.truncate(top);
    worst.sort_unstable();
    worst
}

/// The lines about the whole window, before the summary.
fn render_preamble(report: &Report, frame: &Frame) -> String {
    let mut out = String::new();
    let stop = match (&report.window, report.stop_reason) {
        (Some(window), StopReason::StopTrigger) => {
            format!("# Stop sampling (trigger@{})", window.close_ns)
        }
        _ => "# Stop sampling".to_string(),
    };
    let _ = writeln!(
        out,
        "{stop} @{} ({} UTC), after {} seconds ({})",
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
    if let Some(window) = &report.window {
        render_window(&mut out, window);
    }
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
    out
}

/// What opened and closed a triggered window, and its length.
fn render_window(out: &mut String, window: &WindowInfo) {
    let triggers: Vec<String> = [
        ("start", &window.start_trigger, window.open_ns),
        ("stop", &window.stop_trigger, window.close_ns),
    ]
    .into_iter()
    .filter_map(|(which, trigger, ns)| {
        let trigger = trigger.as_ref()?;
        Some(format!("{which} trigger {trigger} at {} ns", thousands(ns)))
    })
    .collect();
    if triggers.is_empty() {
        return;
    }
    let _ = writeln!(out, "# {}", triggers.join(", "));
    let _ = writeln!(
        out,
        "# Triggered sample dump, stop-start delta {} ns",
        thousands(window.close_ns.saturating_sub(window.open_ns))
    );
    if window.missed_windows > 0 {
        let _ = writeln!(
            out,
            "# Missed windows: {} (the start trigger fired while a window was closed and its \
             records not yet gathered)",
            thousands(window.missed_windows)
        );
    }
}

/// Nothing completed in the window: no call, no stretch, no interrupt.
fn is_idle(thread: &ThreadReport) -> bool {
    let sched = &thread.sched;
    thread.syscalls.is_empty()
        && thread.softirqs.is_empty()
        && thread.hardirqs.is_empty()
        && [
            &sched.stats.run,
            &sched.stats.ready,
            &sched.stats.sleep,
            &sched.stats.block,
            &sched.stats.stopped,
        ]
        .iter()
        .all(|stats| stats.count == 0)
}

fn render_thread(out: &mut String, thread: &ThreadReport, view: &View) {
    if is_idle(thread) && !view.all {
        render_idle_thread(out, thread);
        return;
    }
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
        render_syscalls(out, &thread.syscalls, view);
    }
    if thread.poll_intervals.count > 0 || view.all {
        render_long_poll(out, &thread.poll_intervals);
    }
    render_sched(out, thread, view);
    render_interrupts(out, thread, view);
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

/// One line: where its time went, and the call it is in.
fn render_idle_thread(out: &mut String, thread: &ThreadReport) {
    let time = &thread.time;
    let parts: Vec<String> = ThreadState::ALL
        .iter()
        .zip(time.parts())
        .filter(|&(_, ns)| ns > 0)
        .map(|(state, ns)| format!("{} {}", state.name(), percent(ns, time.observed_ns)))
        .collect();
    let mut line = format!(
        "{:<10} {:<16} idle: nothing completed in {} ({})",
        thread.tid,
        thread.comm,
        human_ns(time.observed_ns),
        parts.join(", ")
    );
    if let Some(call) = thread.unfinished.first() {
        let _ = write!(line, "; in {} ({})", call.name, call.since().phrase());
    }
    if let Some((state, at)) = offcpu::longest_wait(thread) {
        let _ = write!(line, "; {state} most in {at}");
    }
    let _ = writeln!(out, "{line}");
}

/// The call table (the Open vSwitch tool's, with errors and p90), its
/// totals, and where the calls' time went by thread state.
fn render_syscalls(out: &mut String, syscalls: &[SyscallReport], view: &View) {
    indent_table(out, syscall_table(syscalls));
    let mut by_state = CallTimes::default();
    for s in syscalls {
        by_state.times.accumulate(&s.by_state.times);
    }
    let _ = writeln!(
        out,
        "{INDENT} Not asleep in calls: {} ns = on CPU {} + ready {} + blocked {}",
        thousands(by_state.not_asleep_ns()),
        thousands(by_state.times.running_ns),
        thousands(by_state.times.ready_ns()),
        thousands(by_state.times.blocked_ns)
    );
    let spilled: u64 = syscalls.iter().map(|s| s.spilled).sum();
    if spilled > 0 {
        let _ = writeln!(
            out,
            "{INDENT} ({} of these calls went to the kernel's spill map: counted in COUNT, ERRORS, TOTAL, MIN and MAX, not in percentiles or the split by state)",
            thousands(spilled)
        );
    }
    // Calls that ran on the CPU from entry to return have nothing to split.
    let left_cpu: Vec<&SyscallReport> = syscalls
        .iter()
        .filter(|s| view.all || s.by_state.times.running_ns < s.stats.total_ns)
        .collect();
    if !left_cpu.is_empty() {
        let _ = writeln!(
            out,
            "{INDENT} [SYSCALL TIME BY THREAD STATE]{}",
            if view.all {
                ""
            } else {
                " (calls that left the CPU)"
            }
        );
        let mut table = new_table(&[
            "NAME",
            "ON CPU ns",
            "READY ns",
            "BUSY CPU ns",
            "IDLE CPU ns",
            "SLEEPING ns",
            "BLOCKED ns",
            "STOPPED ns",
        ]);
        for s in left_cpu {
            let t = &s.by_state.times;
            table.add_row(row(
                [s.name.clone()],
                [
                    t.running_ns,
                    t.ready_ns(),
                    t.ready_busy_cpu_ns,
                    t.ready_idle_cpu_ns,
                    t.sleeping_ns,
                    t.blocked_ns,
                    t.stopped_ns,
                ],
            ));
        }
        indent_table(out, table);
    }
    if view.histogram {
        let _ = writeln!(out, "{INDENT} [SYSCALL LATENCY HISTOGRAMS]");
        for s in syscalls {
            let _ = writeln!(out, "{INDENT} {} ({}):", s.name, s.nr);
            log2_hist::render(out, HIST_INDENT, &s.stats.hist);
        }
    }
}

/// The columns of a latency series: COUNT, TOTAL, MIN, AVG, P50, P90, P99,
/// MAX.
const STATS_COLUMNS: [&str; 7] = [
    "TOTAL ns", "MIN ns", "AVG ns", "P50 ns", "P90 ns", "P99 ns", "MAX ns",
];

fn stats_figures(stats: &Stats) -> [u64; 7] {
    [
        stats.total_ns,
        stats.min_ns,
        stats.mean_ns,
        stats.p50_ns,
        stats.p90_ns,
        stats.p99_ns,
        stats.max_ns,
    ]
}

/// A table of one series per row: `lead` columns, the count column, then
/// the statistics.
fn stats_table(lead: &[&str], count: &str) -> Table {
    let header: Vec<&str> = lead
        .iter()
        .copied()
        .chain([count])
        .chain(STATS_COLUMNS)
        .collect();
    new_table(&header)
}

/// Each event-loop iteration: from a poll-family call's return to the
/// next one's entry (the Open vSwitch tool's section, with percentiles).
fn render_long_poll(out: &mut String, intervals: &Stats) {
    let _ = writeln!(out, "{INDENT} [LONG POLL STATISTICS]");
    let mut table = stats_table(&[], "COUNT");
    table.add_row(stats_row(intervals));
    indent_table(out, table);
}

fn render_sched(out: &mut String, thread: &ThreadReport, view: &View) {
    let sched = &thread.sched;
    // The count's name is the Open vSwitch tool's: STOP_CNT for stops.
    for (title, count, stats, histogram) in [
        ("RUN", "SCHED_CNT", &sched.stats.run, false),
        ("READY", "SCHED_CNT", &sched.stats.ready, true),
        ("SLEEP", "SCHED_CNT", &sched.stats.sleep, true),
        ("BLOCKED", "SCHED_CNT", &sched.stats.block, true),
        ("STOPPED", "STOP_CNT", &sched.stats.stopped, false),
    ] {
        if stats.count == 0 && !view.all {
            continue;
        }
        let _ = writeln!(out, "{INDENT} [THREAD {title} STATISTICS]");
        if title == "READY" {
            // Split by what the CPU did meanwhile: ran others, or idled.
            let mut table = stats_table(&["WAITING"], count);
            for (label, part) in [
                ("all", stats),
                ("behind others", &sched.stats.ready_busy_cpu),
                ("for idle CPU", &sched.stats.ready_idle_cpu),
            ] {
                table.add_row(series_row(label, part));
            }
            indent_table(out, table);
        } else {
            let mut table = stats_table(&[], count);
            table.add_row(stats_row(stats));
            indent_table(out, table);
        }
        if histogram && view.histogram {
            log2_hist::render(out, HIST_INDENT, &stats.hist);
        }
    }
    render_attribution(out, thread, view);
    offcpu::render(out, INDENT, thread);
    let _ = writeln!(out, "{INDENT} {}", time_budget(thread.tid, &thread.time));
}

/// Rows of an attribution section shown by name; the rest are summed.
const SHOWN: usize = 5;

/// Who the thread waited behind, was preempted by and woken by.
fn render_attribution(out: &mut String, thread: &ThreadReport, view: &View) {
    let attributed = &thread.sched.attributed;
    let id = |id: Option<u32>| id.map_or_else(|| "-".to_string(), |id| id.to_string());
    let behind = &attributed.ready_behind;
    if !behind.is_empty() || view.all {
        let _ = writeln!(
            out,
            "{INDENT} [READY BEHIND] the task that ran before it got the CPU"
        );
        let mut table = new_table(&["TASK", "TID", "PID", "COUNT", "WAITED ns", "SHARE"]);
        let whole = thread.time.times.ready_busy_cpu_ns;
        for (label, tid, pid, count, ns) in shown(behind, |s| {
            (s.label(), id(s.tid), id(s.pid), s.count, s.ns.unwrap_or(0))
        }) {
            let share = percent(ns, whole);
            table.add_row(vec![
                label,
                tid,
                pid,
                thousands(count),
                thousands(ns),
                share,
            ]);
        }
        indent_table(out, table);
    }
    let preempted = &attributed.preempted_by;
    if !preempted.is_empty() || view.all {
        let _ = writeln!(out, "{INDENT} [PREEMPTED BY]");
        let mut table = new_table(&["TASK", "TID", "PID", "COUNT"]);
        for (label, tid, pid, count, _) in
            shown(preempted, |s| (s.label(), id(s.tid), id(s.pid), s.count, 0))
        {
            table.add_row(vec![label, tid, pid, thousands(count)]);
        }
        indent_table(out, table);
    }
    let woken = attributed.woken_by.as_deref().unwrap_or_default();
    if !woken.is_empty() || (view.all && attributed.woken_by.is_some()) {
        let _ = writeln!(out, "{INDENT} [WOKEN BY]");
        let mut table = new_table(&["WAKER", "TID", "PID", "COUNT", "ENDED WAITS ns"]);
        for (label, tid, pid, count, ns) in shown(woken, |w| {
            let label = match &w.irq {
                Some(irq) => format!("{irq} [interrupt]"),
                None => w.comm.clone().unwrap_or_default(),
            };
            (label, id(w.tid), id(w.pid), w.count, w.ended_ns)
        }) {
            table.add_row(vec![label, tid, pid, thousands(count), thousands(ns)]);
        }
        indent_table(out, table);
    }
}

/// The first [`SHOWN`] of `rows` as `fields` make them, then one
/// `(others)` row of the rest's count and time.
fn shown<R>(
    rows: &[R],
    fields: impl Fn(&R) -> (String, String, String, u64, u64),
) -> Vec<(String, String, String, u64, u64)> {
    let mut shown: Vec<_> = rows.iter().take(SHOWN).map(&fields).collect();
    if rows.len() > SHOWN {
        let (count, ns) = rows[SHOWN..]
            .iter()
            .map(&fields)
            .fold((0, 0), |(c, n), (_, _, _, count, ns)| (c + count, n + ns));
        shown.push(("(others)".to_string(), "-".into(), "-".into(), count, ns));
    }
    shown
}

/// The count, then the statistics of `stats`.
fn stats_row(stats: &Stats) -> Vec<String> {
    std::iter::once(stats.count)
        .chain(stats_figures(stats))
        .map(thousands)
        .collect()
}

/// `label`, then [`stats_row`].
fn series_row(label: &str, stats: &Stats) -> Vec<String> {
    std::iter::once(label.to_string())
        .chain(stats_row(stats))
        .collect()
}

/// Hard, then soft, as the Open vSwitch tool orders them.
fn render_interrupts(out: &mut String, thread: &ThreadReport, view: &View) {
    if !thread.hardirqs.is_empty() || view.all {
        let _ = writeln!(out, "{INDENT} [HARD IRQ STATISTICS]");
        let rows = thread.hardirqs.iter().map(|h| {
            let irq = h.irq.map_or_else(|| "-".to_string(), |irq| irq.to_string());
            (h.name.clone(), irq, &h.stats)
        });
        render_irq_table(out, "IRQ", rows);
    }
    if !thread.softirqs.is_empty() || view.all {
        let _ = writeln!(out, "{INDENT} [SOFT IRQ STATISTICS]");
        let rows = thread
            .softirqs
            .iter()
            .map(|s| (s.name.clone(), s.vec.to_string(), &s.stats));
        render_irq_table(out, "VECT_NR", rows);
    }
}

/// NAME, id, COUNT, TOTAL, P50, P90, P99, MAX, and a `TOTAL:` row.
fn render_irq_table<'a>(
    out: &mut String,
    id_column: &str,
    rows: impl Iterator<Item = (String, String, &'a Stats)>,
) {
    let mut table = new_table(&[
        "NAME", id_column, "COUNT", "TOTAL ns", "P50 ns", "P90 ns", "P99 ns", "MAX ns",
    ]);
    let (mut count, mut total) = (0u64, 0u64);
    for (name, id, stats) in rows {
        table.add_row(row(
            [name, id],
            [
                stats.count,
                stats.total_ns,
                stats.p50_ns,
                stats.p90_ns,
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

/// `TIME BUDGET (tid N): observed N ns = running N (P%) + ready N (P%:
/// busy CPU N, idle CPU N) + ... + stopped N (P%)`
fn time_budget(tid: u32, time: &TimeBudget) -> String {
    let parts: Vec<String> = ThreadState::ALL
        .iter()
        .zip(time.parts())
        .map(|(state, ns)| {
            let split = match state {
                ThreadState::Ready => format!(
                    ": busy CPU {}, idle CPU {}",
                    thousands(time.times.ready_busy_cpu_ns),
                    thousands(time.times.ready_idle_cpu_ns)
                ),
                _ => String::new(),
            };
            format!(
                "{} {} ({}{split})",
                state.name(),
                thousands(ns),
                percent(ns, time.observed_ns)
            )
        })
        .collect();
    format!(
        "TIME BUDGET (tid {tid}): observed {} ns = {}",
        thousands(time.observed_ns),
        parts.join(" + ")
    )
}

fn syscall_table(syscalls: &[SyscallReport]) -> Table {
    let mut table = stats_table(&["NAME", "NUMBER", "COUNT"], "ERRORS");
    let (mut count, mut total) = (0u64, 0u64);
    for s in syscalls {
        let st = &s.stats;
        let errors = match s.top_errno() {
            Some((name, _)) => format!("{} {name}", thousands(s.errors)),
            None => "0".to_string(),
        };
        let lead = [
            s.name.clone(),
            s.nr.to_string(),
            thousands(st.count),
            errors,
        ];
        table.add_row(row(lead, stats_figures(st)));
        if !is_poll_family(&s.name) {
            count += st.count;
            total = total.saturating_add(st.total_ns);
        }
    }
    table.add_row(vec![
        "TOTAL( - poll):".to_string(),
        String::new(),
        thousands(count),
        String::new(),
        thousands(total),
    ]);
    table
}

/// A table row: text cells, then figures with thousands separators.
fn row<const T: usize, const N: usize>(text: [String; T], figures: [u64; N]) -> Vec<String> {
    text.into_iter().chain(figures.map(thousands)).collect()
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
    use crate::model::sched::StateTimes;
    use crate::report::tests::{rendered, row_of, sample, sample_report};
    use crate::report::view::ThreadFilter;
    use time::macros::datetime;

    #[test]
    fn budget_line() {
        let time = TimeBudget {
            observed_ns: 2_000,
            times: StateTimes {
                running_ns: 1_000,
                ready_busy_cpu_ns: 400,
                ready_idle_cpu_ns: 100,
                sleeping_ns: 500,
                blocked_ns: 0,
                stopped_ns: 0,
            },
        };
        assert_eq!(
            time_budget(7, &time),
            "TIME BUDGET (tid 7): observed 2,000 ns = running 1,000 (50.0%) + ready 500 (25.0%: busy CPU 400, idle CPU 100) + sleeping 500 (25.0%) + blocked 0 (0.0%) + stopped 0 (0.0%)"
        );
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
        render_with(report, &View::default())
    }

    fn render_with(report: &Report, view: &View) -> String {
        let (_, header, end) = sample();
        let frame = Frame {
            header: &header,
            end: end.wall,
            dumped: datetime!(2026-11-26 10:00:04 UTC),
            view,
        };
        rendered(report, |report, out| write(report, &frame, out))
    }

    /// The details of `row` alone, as `view` shows them.
    fn detail(row: &ThreadReport, view: &View) -> String {
        let mut out = String::new();
        render_thread(&mut out, row, view);
        out
    }

    #[test]
    fn warnings_and_new_threads_are_shown() {
        let mut report = sample_report();
        report.warnings = vec!["something to know".into()];
        let text = render(&report);
        assert!(text.contains("\n# WARNING: something to know\n"), "{text}");
        assert!(
            text.contains("(thread created and exited during the window)"),
            "{text}"
        );
        let mut worker = row_of(&report, 101);
        worker.syscalls[0].spilled = 1;
        let text = detail(&worker, &View::default());
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
        // The summary: processes by their worst thread, each with its
        // verdict, then its threads worst first.
        assert!(lines[6].starts_with("# SUMMARY: threads worst first by kernel delay"));
        assert!(lines[7].starts_with(
            "PROCESS 200 (child), parent 100, forked and exited during the window: thread 200 \
             (child) waited for a CPU 100.0% of its time"
        ));
        assert!(lines[8].split_whitespace().eq([
            "TID", "THREAD", "OBSERVED", "RUNNING", "READY", "BUSY", "CPU", "IDLE", "CPU",
            "SLEEPING", "BLOCKED", "IRQ", "KERNEL", "DELAY", "MOST", "TIME", "IN"
        ]));
        assert!(
            lines[9].trim_start().starts_with("200  child    1.00 ms"),
            "{}",
            lines[9]
        );
        assert!(lines[10].starts_with(
            "PROCESS 100 (demo), parent 1: thread 101 (worker): interrupts took 0.0% of its CPU time"
        ));
        let tids: Vec<&str> = lines[12..15]
            .iter()
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(tids, ["101", "100", "102"]);
        // The details, in the same order.
        assert!(lines[15].starts_with("TID        THREAD           <RESOURCE SPECIFIC>"));
        assert_eq!(
            lines[17],
            "PROCESS 200 (child), parent 100, forked and exited during the window"
        );
        assert!(lines[18].starts_with("200        child"));
        let demo = lines
            .iter()
            .position(|l| l.starts_with("PROCESS 100"))
            .unwrap();
        let details: Vec<&str> = lines[demo..]
            .iter()
            .filter(|l| l.starts_with("10"))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(details, ["101", "100", "102"]);
        assert!(text.contains("101        worker           [SYSCALL STATISTICS]"));
        assert!(text.contains("102        short\\x1b[2J     [SYSCALL STATISTICS]"));
        // Nothing completed: one line.
        assert!(text.contains(
            "\n100        demo             idle: nothing completed in 3.000 s (running 100.0%)\n"
        ));
        assert!(
            !text.contains('\x1b'),
            "terminal escapes must not reach the output"
        );
    }

    #[test]
    fn empty_sections_are_left_out_unless_all_are_asked_for() {
        let compact = render(&sample_report());
        let all = render_with(
            &sample_report(),
            &View {
                all: true,
                ..View::default()
            },
        );
        for title in ["RUN", "READY", "SLEEP", "BLOCKED", "STOPPED"] {
            let section = format!("[THREAD {title} STATISTICS]");
            assert!(!compact.contains(&section), "{title}");
            assert!(all.contains(&section), "{title}");
        }
        assert!(all.contains("100        demo             [SYSCALL STATISTICS]"));
        assert!(!compact.contains("[SYSCALL TIME BY THREAD STATE]"));
        assert!(all.contains("[SYSCALL TIME BY THREAD STATE]\n"));
        assert!(all.lines().count() > compact.lines().count() + 40);
    }

    #[test]
    fn top_and_thread_filters_choose_what_is_shown() {
        let view = |threads: Option<ThreadFilter>, top: Option<usize>| View {
            threads,
            top,
            ..View::default()
        };
        let detailed = |text: &str| -> Vec<u32> {
            let details = &text[text.find("<RESOURCE SPECIFIC>").unwrap()..];
            // Thread lines start at the margin, tables are indented.
            details
                .lines()
                .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
                .filter_map(|l| l.split_whitespace().next()?.parse().ok())
                .collect()
        };
        let top = render_with(&sample_report(), &view(None, Some(2)));
        assert_eq!(detailed(&top), [200, 101]);
        assert!(top.contains("  (2 more threads with less delay: see --top)\n"));
        assert!(!top.contains("  102  short"));
        let by_id = render_with(
            &sample_report(),
            &view(Some(ThreadFilter::Tids(vec![102, 100])), None),
        );
        assert_eq!(detailed(&by_id), [100, 102]);
        assert!(by_id.contains("  200  child"), "the summary lists all");
        let by_name = regex_lite::Regex::new("^(wor|chi)").unwrap();
        let by_name = render_with(
            &sample_report(),
            &view(Some(ThreadFilter::Name(by_name)), None),
        );
        assert_eq!(detailed(&by_name), [200, 101]);
        assert!(!by_name.contains("no thread matches"));
        let nothing = regex_lite::Regex::new("^nginx").unwrap();
        let nothing = render_with(
            &sample_report(),
            &view(Some(ThreadFilter::Name(nothing)), None),
        );
        assert!(detailed(&nothing).is_empty());
        assert!(nothing.contains("\n(no thread matches --threads ^nginx)\n"));
        let not_in_top = render_with(
            &sample_report(),
            &view(Some(ThreadFilter::Tids(vec![100, 102])), Some(1)),
        );
        assert!(
            not_in_top.contains("(no thread matches --threads 100,102 among the --top threads)")
        );
    }

    #[test]
    fn histograms_when_asked_for() {
        let mut worker = row_of(&sample_report(), 101);
        worker.sched.stats.ready = Stats {
            count: 1,
            hist: vec![[1_024, 2_047, 1]],
            ..Stats::default()
        };
        let plain = detail(&worker, &View::default());
        let text = detail(
            &worker,
            &View {
                histogram: true,
                ..View::default()
            },
        );
        assert!(!plain.contains("distribution"));
        assert!(text.contains("[SYSCALL LATENCY HISTOGRAMS]\n           read (0):\n"));
        let bar = |text: &str, range: &str| {
            text.lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .any(|l| l == format!("{range} : 1 |****************************************|"))
        };
        let read = &text[text.find("read (0):").unwrap()..];
        assert!(bar(read, "64 -> 127"), "{read}");
        let ready = &text[text.find("[THREAD READY STATISTICS]").unwrap()..];
        assert!(bar(ready, "1024 -> 2047"), "{ready}");
    }

    #[test]
    fn rows_are_aggregated_and_totalled() {
        let full = render_with(
            &sample_report(),
            &View {
                all: true,
                ..View::default()
            },
        );
        let text = &full[full.find("101        worker").unwrap()..];
        let row = |name: &str| {
            text.lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .unwrap_or_else(|| panic!("no {name} row in\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        // COUNT, ERRORS (with the errno most failed with), TOTAL, ..., P90
        assert_eq!(
            row("read")[..6],
            ["read", "0", "2", "1", "EBADF", "3,493,811"]
        );
        assert_eq!(row("read")[10], "3,493,711", "p90");
        assert_eq!(row("getppid")[..5], ["getppid", "110", "1", "0", "500"]);
        // Sorted by total: read before poll before getppid.
        let pos = |needle: &str| text.find(needle).unwrap();
        assert!(pos(" read ") < pos(" poll ") && pos(" poll ") < pos(" getppid "));
        // poll (nr 7) is left out of the total.
        assert_eq!(
            row("TOTAL(")[..5],
            ["TOTAL(", "-", "poll):", "3", "3,494,311"]
        );
        assert!(text.contains(
            "Not asleep in calls: 3,554,311 ns = on CPU 3,554,311 + ready 0 + blocked 0"
        ));
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
        assert!(text.contains("TIME BUDGET (tid 101): observed 3,000,000,000 ns = running "));
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
