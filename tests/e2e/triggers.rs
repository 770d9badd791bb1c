//! Windows that open and close on the target's own events: uprobes,
//! uretprobes, USDT probes and tracepoints as triggers, windows of any
//! length each reported or counted as missed, short windows skipped, and
//! repeated samples.

use serde_json::Value;

use crate::harness::*;

/// The report of `kernel-delay --json ARGS -- triggered ROUNDS LENGTHS`.
fn triggered(args: &[&str], rounds: &str, lengths: &str) -> (std::process::Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let binary = c_workload("triggered", dir.path());
    let command = [binary.to_str().unwrap(), rounds, lengths];
    launch(&[args, &["--"], &command[..]].concat())
}

/// The reports (one a window) of `kernel-delay --json --sample-count 0
/// ARGS -- triggered ROUNDS LENGTHS PAUSE`, and what the run printed.
fn triggered_windows(
    args: &[&str],
    rounds: &str,
    lengths: &str,
    pause: &str,
) -> (std::process::Output, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let binary = c_workload("triggered", dir.path());
    let out = dir.path().join("reports.jsonl");
    let command = [binary.to_str().unwrap(), rounds, lengths, pause];
    let options = ["--json", "-o", out.to_str().unwrap(), "--sample-count", "0"];
    let output = run_tool(&[&options[..], args, &["--"], &command[..]].concat());
    assert!(output.status.success(), "{output:?}");
    let reports: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON report a line"))
        .collect();
    for report in &reports {
        assert_budgets_add_up(report);
    }
    (output, reports)
}

/// The windows reported and those counted as missed.
fn reported_and_missed(reports: &[Value]) -> (u64, u64) {
    let missed = reports
        .iter()
        .map(|r| field(&r["window"], "missed_windows"))
        .sum();
    (reports.len() as u64, missed)
}

/// The window's length, and the calls counted in it (name, count).
fn window_and_calls(report: &Value) -> (u64, Vec<(String, u64)>) {
    let window = &report["window"];
    let length = field(window, "close_ns") - field(window, "open_ns");
    assert_eq!(length, field(report, "duration_ns"));
    let calls = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["syscalls"].as_array().unwrap())
        .map(|s| (s["name"].as_str().unwrap().to_string(), field(s, "count")))
        .collect();
    (length, calls)
}

/// The length of a window around a sleep of `ms` milliseconds: at least
/// the sleep, and not much more (its wake-up, on a busy machine).
fn about(ns: u64, ms: u64) -> bool {
    (ms * MS..(ms + 100) * MS).contains(&ns)
}

#[test]
fn function_probes_open_and_close_the_window_around_the_sleep() {
    needs_root!();
    for (start, stop) in [("up:begin", "up:end"), ("ur:begin", "uprobe:end")] {
        let (_, report) = triggered(
            &["--start-trigger", start, "--stop-trigger", stop],
            "1",
            "200",
        );
        let (length, calls) = window_and_calls(&report);
        assert!(about(length, 200), "{start}..{stop}: window of {length} ns");
        assert_eq!(
            calls,
            [("clock_nanosleep".to_string(), 1)],
            "{start}..{stop}"
        );
        assert_eq!(report["stop_reason"], "stop_trigger");
        assert_eq!(report["window"]["start_trigger"], start);
    }
}

#[test]
fn windows_of_a_millisecond_are_each_reported_or_counted_as_missed() {
    needs_root!();
    // 20 windows of a 1 ms sleep, 20 ms apart: a window closed before the
    // reader looked is still reported, and the next one opens.
    let (_, reports) = triggered_windows(
        &["--start-trigger", "up:begin", "--stop-trigger", "up:end"],
        "20",
        "1",
        "20",
    );
    let (reported, missed) = reported_and_missed(&reports);
    assert_eq!(reported + missed, 20, "every window reported or missed");
    assert!(reported >= 2, "later windows are reported too: {reported}");
    let mut numbers = Vec::new();
    for report in &reports {
        let (length, calls) = window_and_calls(report);
        assert!((MS..500 * MS).contains(&length), "window of {length} ns");
        assert_eq!(calls, [("clock_nanosleep".to_string(), 1)]);
        assert_eq!(report["stop_reason"], "stop_trigger");
        numbers.push(field(&report["window"], "number"));
    }
    assert_eq!(numbers, (1..=reported).collect::<Vec<_>>());
}

#[test]
fn windows_faster_than_reports_are_counted_as_missed() {
    needs_root!();
    // 20,000 windows back to back, each around one call: far more than
    // reports can be made for (a reader may keep up with the first few
    // thousand).
    let (_, reports) = triggered_windows(
        &["--start-trigger", "up:begin", "--stop-trigger", "up:end"],
        "20000",
        "0",
        "0",
    );
    let (reported, missed) = reported_and_missed(&reports);
    assert_eq!(reported + missed, 20_000, "every window reported or missed");
    assert!(
        missed > 0 && reported > 0,
        "{reported} reported, {missed} missed"
    );
    for report in &reports {
        let (_, calls) = window_and_calls(report);
        assert_eq!(calls, [("clock_nanosleep".to_string(), 1)]);
    }
}

#[test]
fn a_window_of_a_millisecond_after_the_start_trigger_lasts_exactly_that() {
    needs_root!();
    // Each 1 ms window opens at begin() and ends inside its 5 ms sleep:
    // the sleep is shown unfinished.
    let (_, reports) = triggered_windows(
        &["--start-trigger", "up:begin", "--duration", "0.001"],
        "3",
        "5",
        "20",
    );
    let (reported, missed) = reported_and_missed(&reports);
    assert_eq!((reported, missed), (3, 0));
    for report in &reports {
        let (length, calls) = window_and_calls(report);
        assert_eq!(length, MS, "exactly --duration");
        assert_eq!(report["stop_reason"], "duration");
        assert!(calls.is_empty(), "{calls:?}");
        // The workload's one thread (named only if it still lived when
        // the window was gathered: the last exits right after).
        let threads = report["threads"].as_array().unwrap();
        assert_eq!(threads.len(), 1, "{report:#}");
        let unfinished = &threads[0]["unfinished"];
        assert_eq!(unfinished[0]["name"], "clock_nanosleep", "{report:#}");
    }
}

#[test]
fn a_uprobe_and_a_uretprobe_on_one_function_with_stacks_open_every_window() {
    needs_root!();
    // kd-workload's kd_probe_point(): three getppid() and a 30 ms sleep,
    // three times, 0.3 s apart (time for each report, its stacks
    // symbolized); slow calls listed with their stacks.
    let mut workload = Workload::start();
    let pid = workload.pid().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports.jsonl");
    let trace = Trace::start_text(
        &[
            "--pid",
            &pid,
            "--json",
            "--syscall-events",
            "20000000",
            "--sample-count",
            "3",
            "--start-trigger",
            "up:kd_probe_point",
            "--stop-trigger",
            "ur:kd_probe_point",
        ],
        &out,
    );
    workload.run("probed 3 30 300");
    let output = trace.finish();
    assert!(output.status.success(), "{output:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let reports: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), 3, "{text}");
    for report in &reports {
        assert_eq!(report["stop_reason"], "stop_trigger");
        assert_eq!(field(&report["window"], "missed_windows"), 0);
        assert_eq!(count(only_thread(report, "probed"), "getppid"), 3);
        let sleeps = report["syscall_events"].as_array().unwrap();
        assert_eq!(sleeps.len(), 1, "{sleeps:?}");
        let kernel = sleeps[0]["kernel_stack"].to_string();
        assert!(kernel.contains("nanosleep"), "{kernel}");
        assert!(!sleeps[0]["user_stack"].as_array().unwrap().is_empty());
    }
}

#[test]
fn usdt_probes_open_and_close_the_window_around_the_sleep() {
    needs_root!();
    let (_, report) = triggered(
        &[
            "--start-trigger",
            "u:kd:begin",
            "--stop-trigger",
            "usdt:kd:end",
        ],
        "1",
        "150",
    );
    let (length, calls) = window_and_calls(&report);
    assert!(about(length, 150), "window of {length} ns");
    assert_eq!(calls, [("clock_nanosleep".to_string(), 1)]);
    // bpftrace's form, the file first.
    let dir = tempfile::tempdir().unwrap();
    let binary = c_workload("triggered", dir.path());
    let binary = binary.to_str().unwrap();
    let start = format!("u:{binary}:kd:begin");
    let (_, report) = launch(&[
        "--start-trigger",
        &start,
        "--stop-trigger",
        "u:kd:end",
        "--",
        binary,
        "1",
        "150",
    ]);
    let (length, calls) = window_and_calls(&report);
    assert!(about(length, 150), "window of {length} ns");
    assert_eq!(calls, [("clock_nanosleep".to_string(), 1)]);
}

#[test]
fn a_tracepoint_opens_the_window_for_its_duration() {
    needs_root!();
    // The workload renames itself (task:task_rename) before its rounds;
    // a raw tracepoint needs no tracefs.
    let (_, report) = triggered(
        &["--start-trigger", "t:task:task_rename", "--duration", "0.1"],
        "10",
        "30",
    );
    let (length, calls) = window_and_calls(&report);
    assert!(
        (100 * MS..150 * MS).contains(&length),
        "window of {length} ns"
    );
    assert_eq!(report["stop_reason"], "duration");
    let sleeps: u64 = calls
        .iter()
        .filter(|(name, _)| name == "clock_nanosleep")
        .map(|(_, n)| n)
        .sum();
    assert!((1..=4).contains(&sleeps), "{calls:?}");
}

#[test]
fn windows_shorter_than_the_trigger_delta_are_skipped() {
    needs_root!();
    let (output, report) = triggered(
        &[
            "--start-trigger",
            "up:begin",
            "--stop-trigger",
            "up:end",
            "--trigger-delta",
            "150000000",
        ],
        "2",
        "50,200",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("# Sample dump skipped, delta 5"),
        "{stderr}"
    );
    let (length, calls) = window_and_calls(&report);
    assert!(about(length, 200), "window of {length} ns");
    assert_eq!(calls, [("clock_nanosleep".to_string(), 1)]);
}

#[test]
fn repeated_samples_are_one_report_a_line_each_its_own_window() {
    needs_root!();
    let mut workload = Workload::start();
    let pid = workload.pid().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports.jsonl");
    let args = [
        "--pid",
        &pid,
        "--json",
        "--sample-count",
        "3",
        "--sample-interval",
        "0.2",
        "--duration",
        "0.3",
    ];
    let trace = Trace::start_text(&args, &out);
    // 10 ms sleeps for 2 s: the three windows and the pauses fall inside.
    workload.run("sleep 200 10");
    let output = trace.finish();
    assert!(output.status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let reports: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON report a line"))
        .collect();
    assert_eq!(reports.len(), 3, "{text}");
    let mut previous_close = 0;
    for report in &reports {
        assert_budgets_add_up(report);
        let (length, _) = window_and_calls(report);
        assert!(
            (300 * MS..400 * MS).contains(&length),
            "window of {length} ns"
        );
        let open = field(&report["window"], "open_ns");
        assert!(open >= previous_close + 200 * MS, "windows 0.2 s apart");
        previous_close = field(&report["window"], "close_ns");
        let sleeps = count(only_thread(report, "sleeper"), "clock_nanosleep");
        assert!(
            (20..=30).contains(&sleeps),
            "{sleeps} sleeps of 10 ms in 0.3 s"
        );
    }
}

#[test]
fn a_trigger_that_does_not_exist_is_a_clear_error_before_tracing() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let binary = c_workload("triggered", dir.path());
    let binary = binary.to_str().unwrap();
    for (args, says) in [
        (
            ["--start-trigger", "up:no_such_function"],
            "no function no_such_function in",
        ),
        (
            ["--start-trigger", "u:kd:no_such_probe"],
            "no USDT probe kd:no_such_probe in",
        ),
        (
            ["--stop-trigger", "t:sched:no_such_event"],
            "this kernel has no tracepoint sched:no_such_event",
        ),
        (
            ["--start-trigger", "bogus"],
            "a trigger is u:PROVIDER:PROBE",
        ),
        (["--start-trigger", "up::"], "a trigger is u:PROVIDER:PROBE"),
        (
            ["--start-trigger", "u:/bin/true:begin"],
            "a trigger is u:PROVIDER:PROBE[@PATH] or u:PATH:PROVIDER:PROBE",
        ),
        (
            ["--trigger-delta", "1000"],
            "--trigger-delta needs --start-trigger or --stop-trigger",
        ),
    ] {
        let err = refused(&[&args[..], &["--", binary, "1", "10"]].concat());
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let err = refused(&[
        "--start-trigger",
        "up:begin",
        "--duration",
        "0.1",
        "--trigger-delta",
        "200000000",
        "--",
        binary,
    ]);
    assert!(
        err.contains(
            "--trigger-delta 200000000 can never be met: a window lasts at most 100000000 ns"
        ),
        "{err}"
    );
    if !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        let err = refused(&["--start-trigger", "k:do_sys_openat2", "--", binary]);
        assert!(err.contains("this kernel has no kprobes"), "{err}");
    }
}
