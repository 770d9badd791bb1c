//! The window: its ends (duration, signals, the target's exit), launch
//! mode, and the text layout.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::harness::*;

#[test]
fn ctrl_c_ends_the_window_early_with_a_report() {
    needs_root!();
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "600");
    workload.run("burst 10");
    let begun = Instant::now();
    let report = trace.interrupt();
    assert!(begun.elapsed() < Duration::from_secs(30));
    assert_eq!(report["stop_reason"], "interrupted");
    assert!(field(&report, "duration_ns") < 60_000 * MS);
    assert_eq!(count(only_thread(&report, "burst"), "getppid"), 10);
}

#[test]
fn sigterm_ends_the_window_early_with_a_report() {
    needs_root!();
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "600");
    workload.run("burst 20");
    let report = trace.stop(Signal::SIGTERM);
    assert_eq!(report["stop_reason"], "interrupted");
    assert_eq!(count(only_thread(&report, "burst"), "getppid"), 20);
}

#[test]
fn launch_mode_reports_after_the_window_and_waits_for_the_command() {
    needs_root!();
    let begun = Instant::now();
    let (output, report) = launch(&["--duration", "0.3", "--", "sh", "-c", "sleep 1.5; exit 7"]);
    // It waited for the command and exited as it did.
    assert_eq!(output.status.code(), Some(7));
    assert!(begun.elapsed() >= Duration::from_millis(1_400));
    assert_eq!(report["stop_reason"], "duration");
    assert!(
        field(&report, "duration_ns") < 1_400 * MS,
        "{}",
        report["duration_ns"]
    );
}

#[test]
fn the_window_ends_after_the_duration() {
    needs_root!();
    let workload = Workload::start();
    let report = Trace::of(&workload, "0.5").report();
    assert_eq!(report["stop_reason"], "duration");
    let duration = field(&report, "duration_ns");
    assert!((500 * MS..20_000 * MS).contains(&duration), "{duration}");
    // Idle the whole window, and still reported.
    let main = only_thread(&report, "kd-workload");
    assert_eq!(main["exited"], false);
    assert_eq!(main["syscalls"].as_array().unwrap().len(), 0);
    // It waited in read() from before the window to its end.
    let unfinished = main["unfinished"].as_array().unwrap();
    assert_eq!(unfinished.len(), 1, "{main}");
    assert_eq!(unfinished[0]["name"], "read");
    assert_eq!(unfinished[0]["entered_before_window"], true);
    assert_eq!(field(&unfinished[0], "elapsed_ns"), duration);
}

#[test]
fn the_window_ends_when_the_target_exits() {
    needs_root!();
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "600");
    workload.run("burst 77");
    workload.finish();
    let report = trace.report();
    assert_eq!(report["stop_reason"], "target_exited");
    assert_eq!(only_thread(&report, "kd-workload")["exited"], true);
    assert_eq!(count(only_thread(&report, "burst"), "getppid"), 77);
}

#[test]
fn launch_mode_traces_the_command_until_it_exits() {
    needs_root!();
    let (output, report) = launch(&["--", WORKLOAD, "run", "5000", "3"]);
    // The command's output passes through and its exit code comes back.
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "workload finished\n"
    );
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("# Start sampling @"), "{stderr}");
    assert_eq!(report["stop_reason"], "target_exited");
    assert_eq!(report["comm"], "kd-workload");
    let main = only_thread(&report, "kd-workload");
    assert_eq!(field(main, "tid"), field(&report, "pid"));
    assert_eq!(main["exited"], true);
    // Traced from before exec: the exec itself and every call after it.
    assert_eq!(count(main, "getppid"), 5000);
    assert!(count(main, "execve") >= 1, "{main}");
}

#[test]
fn the_text_report_has_the_classic_layout() {
    needs_root!();
    require_root();
    let output = wait_with_timeout(
        Command::new(TOOL)
            .args(["--", WORKLOAD, "run", "1234", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("# Start sampling @"), "{text}");
    assert!(lines[1].starts_with("# Monitoring PID: "), "{text}");
    assert!(text.contains("\n# Stop sampling @"), "{text}");
    assert!(text.contains("\n# Total events captured: "), "{text}");
    assert!(text.contains("[SYSCALL STATISTICS]"), "{text}");
    let getppid: Vec<&str> = lines
        .iter()
        .find(|l| l.trim_start().starts_with("getppid "))
        .expect("a getppid row")
        .split_whitespace()
        .collect();
    assert_eq!(getppid[..3], ["getppid", "110", "1,234"]);
    assert!(lines
        .iter()
        .any(|l| l.trim_start().starts_with("TOTAL( - poll):")));
}
