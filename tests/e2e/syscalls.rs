//! System calls: exact counts, durations of known length, calls unfinished
//! at the end, and calls the ring buffer had no room for.

use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::harness::*;

#[test]
fn counts_exactly_the_calls_made_in_the_window() {
    needs_root!();
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "60");
    workload.run("burst 1000");
    workload.run("burst 2345");
    let report = trace.interrupt();

    assert_eq!(report["schema"], "kernel-delay/1");
    assert_eq!(field(&report, "pid"), u64::from(workload.pid()));
    assert_eq!(report["comm"], "kd-workload");
    assert_eq!(report["lost_events"], 0);
    // Each burst ran on its own thread, created and gone inside the window.
    let mut bursts: Vec<u64> = threads_named(&report, "burst")
        .iter()
        .map(|t| {
            assert_eq!(t["exited"], true, "{t}");
            count(t, "getppid")
        })
        .collect();
    bursts.sort_unstable();
    assert_eq!(bursts, vec![1000, 2345]);
    // The main thread, alive throughout, made none and read the commands.
    let main = only_thread(&report, "kd-workload");
    assert_eq!(field(main, "tid"), u64::from(workload.pid()));
    assert_eq!(main["exited"], false);
    assert_eq!(count(main, "getppid"), 0);
    assert!(count(main, "read") >= 1, "{main}");
    let getppid = syscall(threads_named(&report, "burst")[0], "getppid").unwrap();
    assert_eq!(getppid["nr"], 110);
    let (min, p50, max) = (
        field(getppid, "min_ns"),
        field(getppid, "p50_ns"),
        field(getppid, "max_ns"),
    );
    assert!(min > 0 && min <= p50 && p50 <= max, "{getppid}");
}

#[test]
fn a_burst_of_three_million_calls_is_counted_exactly_with_nothing_lost() {
    needs_root!();
    let (_, report) = traced("burst 3000000");
    assert_eq!(report["lost_events"], 0);
    assert_eq!(count(only_thread(&report, "burst"), "getppid"), 3_000_000);
    assert!(field(&report, "events") >= 3_000_000);
}

/// Runs `command` in a fresh kd-workload traced through a 1 MiB ring
/// buffer whose reader is stopped meanwhile (it cannot drain): what the
/// workload printed, and the report.
fn traced_with_reader_stopped(command: &str) -> (Vec<String>, Value) {
    let mut workload = Workload::start();
    let trace = Trace::start(&[
        "--pid",
        &workload.pid().to_string(),
        "--duration",
        "60",
        "--ringbuf-mb",
        "1",
    ]);
    let tool = Pid::from_raw(trace.child.id() as i32);
    kill(tool, Signal::SIGSTOP).unwrap();
    let printed = workload.run(command);
    kill(tool, Signal::SIGCONT).unwrap();
    (printed, trace.interrupt())
}

#[test]
fn calls_the_ring_buffer_has_no_room_for_are_still_counted_exactly() {
    needs_root!();
    // A 1 MiB buffer holds ~65,000 calls.
    let (_, report) = traced_with_reader_stopped("burst 200000");

    // The calls that found no room went to the kernel's spill map: exact
    // in count, total, min and max.
    let burst = only_thread(&report, "burst");
    assert_eq!(burst["exited"], true, "its exit was kept too: {burst}");
    let getppid = syscall(burst, "getppid").unwrap();
    assert_eq!(field(getppid, "count"), 200_000);
    let spilled = field(getppid, "spilled");
    assert!((100_000..200_000).contains(&spilled), "{getppid}");
    assert!(field(&report, "spilled_calls") >= spilled);
    let (min, p50, max) = (
        field(getppid, "min_ns"),
        field(getppid, "p50_ns"),
        field(getppid, "max_ns"),
    );
    assert!(min > 0 && min <= p50 && p50 <= max, "{getppid}");

    // Scheduler records have no such refuge: lost, by cause, and said so.
    let lost = &report["lost"];
    let ring_full = field(lost, "ring_buffer_full");
    assert!(ring_full > 0, "{lost}");
    let causes: u64 = [
        "ring_buffer_full",
        "thread_map_full",
        "spill_map_full",
        "exit_map_full",
    ]
    .iter()
    .map(|cause| field(lost, cause))
    .sum();
    assert_eq!(field(&report, "lost_events"), causes);
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("ring buffer was full") && warnings.contains("--ringbuf-mb"),
        "{warnings}"
    );
    assert!(warnings.contains("spill map"), "{warnings}");
}

#[test]
fn each_thread_keeps_its_own_calls_when_the_ring_buffer_overflows() {
    needs_root!();
    // Four threads hand both CPUs to one another while the reader is
    // stopped: the ring buffer fills, switches are lost and calls spill.
    // A call's record names no thread (it is the running one's, which the
    // switch before it names): a lost switch must not file the next
    // thread's calls under the thread before it.
    let laps = 20_000;
    let (printed, report) = traced_with_reader_stopped(&format!("relay {laps}"));

    assert!(field(&report["lost"], "ring_buffer_full") > 0, "{report}");
    let relays = schedstats(&printed);
    assert_eq!(relays.len(), 4, "{printed:?}");
    // All four first, so that a failure shows where calls went.
    let writes: Vec<u64> = relays
        .iter()
        .map(|relay| count(thread_by_tid(&report, relay.tid), "write"))
        .collect();
    let rows: Vec<(&Value, &Value)> = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (&t["tid"], &t["comm"]))
        .collect();
    assert_eq!(
        writes, [laps; 4],
        "rows {rows:?}; lost {}; warnings {}",
        report["lost"], report["warnings"]
    );
    for relay in relays {
        let thread = thread_by_tid(&report, relay.tid);
        // And the reads of its /proc/thread-self/schedstat.
        let reads = count(thread, "read");
        assert!((laps..laps + 4).contains(&reads), "{reads} reads: {thread}");
    }
}

#[test]
fn sleeps_of_known_length() {
    needs_root!();
    let (_, report) = traced("sleep 25 20");
    let sleeper = only_thread(&report, "sleeper");
    let sleeps = syscall(sleeper, "clock_nanosleep").expect("clock_nanosleep row");
    assert_eq!(field(sleeps, "count"), 25);
    // Never shorter than asked; generous above for a busy machine.
    assert!(field(sleeps, "min_ns") >= 20 * MS, "{sleeps}");
    for key in ["p50_ns", "p90_ns", "mean_ns"] {
        let v = field(sleeps, key);
        assert!((20 * MS..120 * MS).contains(&v), "{key} = {v}: {sleeps}");
    }
    let total = field(sleeps, "total_ns");
    assert!((500 * MS..3_000 * MS).contains(&total), "{sleeps}");
    assert!(field(sleeps, "max_ns") >= field(sleeps, "p99_ns"));
}

#[test]
fn a_call_in_progress_when_the_window_closes_is_unfinished() {
    needs_root!();
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "60");
    // The main thread goes back to read() its next command and stays there.
    workload.run("burst 1");
    thread::sleep(Duration::from_millis(300));
    let report = trace.interrupt();
    let main = only_thread(&report, "kd-workload");
    let unfinished = main["unfinished"].as_array().unwrap();
    assert_eq!(unfinished.len(), 1, "{main}");
    assert_eq!(unfinished[0]["name"], "read");
    assert_eq!(unfinished[0]["entered_before_window"], false);
    assert!(field(&unfinished[0], "elapsed_ns") >= 250 * MS, "{main}");
}
