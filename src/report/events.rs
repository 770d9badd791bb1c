//! The text report's `# SYSCALL EVENTS:` section (--syscall-events): each
//! slow call on a line, in time order, its kernel and user stacks under
//! it, as the Open vSwitch tool lists them.

use std::fmt::Write as _;

use super::SyscallEventReport;
use crate::thousands::thousands;

pub fn render(out: &mut String, events: &[&SyscallEventReport]) {
    let _ = writeln!(out, "# SYSCALL EVENTS:");
    let _ = writeln!(
        out,
        "{:<20} {:<20} {:<10} {:<16} {:>12}  SYSCALL",
        "ENTRY (ns)", "EXIT (ns)", "TID", "THREAD", "DELTA (us)"
    );
    let _ = writeln!(
        out,
        "{} {} {} {} {}  {}",
        "-".repeat(20),
        "-".repeat(20),
        "-".repeat(10),
        "-".repeat(16),
        "-".repeat(12),
        "-".repeat(20)
    );
    if events.is_empty() {
        let _ = writeln!(out, "(no system call took that long)");
    }
    for event in events {
        let failed = match &event.errno {
            Some(errno) => format!(" (failed: {errno})"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<20} {:<20} {:<10} {:<16} {:>12}  {}{failed}",
            event.entry_ns,
            event.exit_ns,
            event.tid,
            event.comm,
            micros(event.duration_ns),
            event.name
        );
        render_stacks(
            out,
            "",
            [&event.kernel_stack, &event.user_stack],
            event.user_stack_cut,
        );
    }
}

/// A kernel and a user stack under `indent`, a frame a line, and why the
/// user stack was cut if it was.
pub fn render_stacks(
    out: &mut String,
    indent: &str,
    [kernel, user]: [&[String]; 2],
    user_cut: Option<&str>,
) {
    for (title, frames) in [("kernel stack", kernel), ("user stack", user)] {
        if frames.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{indent}  {title}:");
        for frame in frames {
            let _ = writeln!(out, "{indent}    {frame}");
        }
    }
    if let Some(why) = user_cut {
        let _ = writeln!(out, "{indent}    [cut: {why}]");
    }
}

/// The line under the section when calls past --max-syscall-events were
/// left out.
pub fn render_not_listed(out: &mut String, not_listed: u64, limit: usize) {
    if not_listed > 0 {
        let _ = writeln!(
            out,
            "# {} more slow calls not listed (--max-syscall-events {}): counted in the tables above",
            thousands(not_listed),
            thousands(limit as u64)
        );
    }
}

/// Nanoseconds as microseconds with one decimal: `5,001.2`.
fn micros(ns: u64) -> String {
    format!("{}.{}", thousands(ns / 1_000), ns % 1_000 / 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(errno: Option<&str>) -> SyscallEventReport {
        SyscallEventReport {
            tid: 7,
            pid: 5,
            comm: "worker".into(),
            nr: 230,
            name: "clock_nanosleep".into(),
            entry_ns: 1_000,
            exit_ns: 5_001_234,
            duration_ns: 5_000_234,
            ret: 0,
            errno: errno.map(str::to_string),
            kernel_stack: vec!["do_nanosleep+0x6e [kernel]".to_string()].into(),
            user_stack: vec!["kd_slow_sleep+0x1c (slow.c:9) [/tmp/slow]".to_string()].into(),
            user_stack_cut: errno.map(|_| "the stack copy ended here"),
        }
    }

    #[test]
    fn a_line_per_call_and_its_stacks_under_it() {
        let mut out = String::new();
        render(&mut out, &[&event(None), &event(Some("EINTR"))]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "# SYSCALL EVENTS:");
        assert!(lines[1].starts_with("ENTRY (ns)"));
        let row: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "1000",
                "5001234",
                "7",
                "worker",
                "5,000.2",
                "clock_nanosleep"
            ]
        );
        assert_eq!(lines[4], "  kernel stack:");
        assert_eq!(lines[5], "    do_nanosleep+0x6e [kernel]");
        assert_eq!(lines[6], "  user stack:");
        assert_eq!(lines[7], "    kd_slow_sleep+0x1c (slow.c:9) [/tmp/slow]");
        assert!(lines[8].ends_with("clock_nanosleep (failed: EINTR)"));
        assert_eq!(lines[13], "    [cut: the stack copy ended here]");
        let mut none = String::new();
        render(&mut none, &[]);
        assert!(none.ends_with("(no system call took that long)\n"));
    }
}
