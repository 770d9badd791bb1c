//! --perfetto FILE, live and from `kernel-delay report`: the trace read
//! with the Perfetto project's own protobuf classes (PyPI's `perfetto`,
//! set up by `make test`) has, per thread, state slices that add up to the
//! report's budget to the nanosecond, a system call slice per call the
//! report counts, ready slices whose holders add up to the report's
//! ready_behind, wakeups (--wakers) that end the report's waits, and the
//! report's names.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::*;

/// The Python with the `perfetto` package: `make test` makes it.
fn perfetto_python() -> PathBuf {
    let python = std::env::var_os("PERFETTO_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/perfetto-venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "{}: no Python with PyPI's perfetto package (make test sets it up)",
        python.display()
    );
    python
}

/// tests/perfetto/summarize.py's summary of the trace at `path`.
fn summary(path: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/perfetto/summarize.py");
    let output = Command::new(perfetto_python())
        .arg(script)
        .arg(path)
        .output()
        .expect("running summarize.py");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("summarize.py prints JSON")
}

/// Checks the trace's summary against the report's threads.
fn agrees_with_the_report(summary: &Value, report: &Value) {
    assert_eq!(summary["unpaired"], serde_json::json!([]), "{summary}");
    assert_eq!(field(report, "spilled_calls"), 0, "every call a record");
    for process in report["processes"].as_array().unwrap() {
        let pid = process["pid"].to_string();
        assert_eq!(summary["processes"][&pid], process["comm"], "{summary}");
    }
    let traced = summary["threads"].as_array().unwrap();
    for thread in report["threads"].as_array().unwrap() {
        let tid = &thread["tid"];
        let track = traced
            .iter()
            .find(|track| &track["tid"] == tid)
            .unwrap_or_else(|| panic!("no track for thread {tid}: {summary}"));
        assert_eq!(track["name"], thread["comm"], "{track}");
        assert_eq!(track["pid"], thread["pid"], "{track}");
        for state in [
            "running",
            "ready_busy_cpu",
            "ready_idle_cpu",
            "sleeping",
            "blocked",
            "stopped",
        ] {
            let sliced = track["state"][state].as_u64().unwrap_or(0);
            let budget = field(&thread["time"], &format!("{state}_ns"));
            assert_eq!(sliced, budget, "thread {tid}, {state}: {track}");
        }
        for call in thread["syscalls"].as_array().unwrap() {
            let name = call["name"].as_str().unwrap();
            let sliced = track["calls"][name].as_u64().unwrap_or(0);
            assert_eq!(
                sliced,
                field(call, "count"),
                "thread {tid}, {name}: {track}"
            );
        }
        let counted: u64 = thread["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|call| field(call, "count"))
            .sum();
        let sliced: u64 = track["calls"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(sliced, counted, "thread {tid}: {track}");
        // Its slow calls (--syscall-events), an instant each.
        let mut slow = serde_json::Map::new();
        for event in report["syscall_events"].as_array().into_iter().flatten() {
            if &event["tid"] == tid {
                let name = format!("slow {}", event["name"].as_str().unwrap());
                let n = slow.get(&name).and_then(Value::as_u64).unwrap_or(0);
                slow.insert(name, (n + 1).into());
            }
        }
        let mut instants = track["instants"].as_object().unwrap().clone();
        instants.remove("wakeup");
        assert_eq!(
            Value::Object(instants),
            Value::Object(slow),
            "thread {tid}: {track}"
        );
        agrees_on_attribution(track, thread);
    }
}

/// Checks a thread's ready slices against its attribution in the report:
/// the time behind each task to the ns; per waker, the wakeups that ended
/// a wait (the report also counts those of a runnable thread) and the
/// time asleep or blocked they ended, to the ns.
fn agrees_on_attribution(track: &Value, thread: &Value) {
    let key = |row: &Value| match &row["tid"] {
        Value::Null => row["comm"].as_str().unwrap().to_string(),
        tid => tid.to_string(),
    };
    let behind = track["behind"].as_object().unwrap();
    let rows = thread["sched"]["ready_behind"].as_array().unwrap();
    for row in rows.iter().filter(|row| row["comm"] != "(others)") {
        let sliced = behind.get(&key(row)).and_then(Value::as_u64).unwrap_or(0);
        assert_eq!(sliced, field(row, "ns"), "behind {row}: {track}");
    }
    if rows.iter().all(|row| row["comm"] != "(others)") {
        assert_eq!(behind.len(), rows.len(), "{track} {thread}");
    }
    let woken_by = track["woken_by"].as_object().unwrap();
    let Some(rows) = thread["sched"]["woken_by"].as_array() else {
        assert!(woken_by.is_empty(), "woken_by without --wakers: {track}");
        return;
    };
    for row in rows.iter().filter(|row| row["tid"].is_u64()) {
        let sliced = &woken_by.get(&key(row));
        let count = sliced.map_or(0, |w| field(w, "count"));
        let ended = sliced.map_or(0, |w| field(w, "ended_ns"));
        assert!(count <= field(row, "count"), "woken by {row}: {track}");
        assert_eq!(ended, field(row, "ended_ns"), "woken by {row}: {track}");
    }
    let began: u64 = woken_by.values().map(|w| field(w, "count")).sum();
    assert!(began <= field(&thread["sched"], "wakeups"), "{track}");
}

#[test]
fn a_perfetto_trace_adds_up_to_the_report_live_and_from_a_recording() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let forks = format!("echo 'fork 2 20' | {WORKLOAD} serve");
    let slow_sleep = c_workload_built("slow_sleep", dir.path(), &["-g", "-O2"]);
    // A sleeper woken by a timer and its spinning sibling, on one CPU.
    let crowded = format!("echo 'crowded-sleep 300 1' | {WORKLOAD} serve");
    let runs: [&[&str]; 4] = [
        &["--wakers", "--", WORKLOAD, "pingpong", "3000"],
        &["--wakers", "--", "taskset", "-c", "0", "sh", "-c", &crowded],
        &["--", "sh", "-c", &forks],
        // Slow calls, with their stacks.
        &["-s", "4000000", "--", slow_sleep.to_str().unwrap(), "10"],
    ];
    for args in runs {
        let (trace, recording) = (dir.path().join("live.pftrace"), dir.path().join("run.kd"));
        let files = [
            "--perfetto",
            trace.to_str().unwrap(),
            "--record",
            recording.to_str().unwrap(),
        ];
        let (output, report) = launch(&[&files[..], args].concat());
        assert!(output.status.success(), "{args:?}: {output:?}");
        let traced = summary(&trace);
        agrees_with_the_report(&traced, &report);
        assert_eq!(traced["bad_flows"], serde_json::json!([]), "{args:?}");
        // CLOCK_MONOTONIC (3), the records' clock, is the trace's.
        let clock = serde_json::json!({"primary": 3, "clocks": [3]});
        assert_eq!(traced["clock"], clock, "{args:?}");
        if args.contains(&"pingpong") {
            // Each woken by the other, traced: an arrow from its track.
            assert!(field(&traced, "flows") >= 2_000, "{traced}");
        }
        if args.contains(&"taskset") {
            let sleeper = threads_named(&report, "sleeper")[0].clone();
            let rows = sleeper["sched"]["ready_behind"].as_array().unwrap();
            assert!(rows.iter().any(|row| row["comm"] == "spinner"), "{sleeper}");
        }
        if args.contains(&"-s") {
            let events = report["syscall_events"].as_array().expect("syscall_events");
            assert_eq!(events.len(), 10, "the ten sleeps");
            // Each instant's arguments: its duration, its stacks named.
            let slow: Vec<&Value> = traced["threads"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|thread| thread["slow"].as_array().unwrap())
                .collect();
            assert_eq!(slow.len(), 10, "{traced}");
            for call in slow {
                assert!(field(call, "duration_ns") >= 4_000_000, "{call}");
                let user = call["user_stack"].as_str().unwrap();
                assert!(user.contains("kd_slow_sleep"), "{call}");
                let kernel = call["kernel_stack"].as_str().unwrap();
                assert!(kernel.contains("nanosleep"), "{call}");
            }
        }
        // The same trace from the recording.
        let replayed = dir.path().join("replayed.pftrace");
        let output = run_tool(&[
            "report",
            recording.to_str().unwrap(),
            "-o",
            "/dev/null",
            "--perfetto",
            replayed.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{args:?}: {output:?}");
        assert_eq!(summary(&replayed), traced, "{args:?}");
    }
}
