//! What an Open vSwitch user reaches for: LONG POLL, the Open vSwitch
//! tool's option names, and targets by name.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::harness::*;

fn poll_intervals(thread: &Value) -> &Value {
    &thread["poll_intervals"]
}

/// Runs an event loop of `polls` calls to `call`, each followed by 2 ms of
/// work, on thread `name`: its LONG POLL row (the report with it). Between
/// `polls` calls, `polls - 1` whole iterations: not the one before the
/// first call, nor the one after the last.
fn event_loop(command: &str, name: &str, call: &str, polls: u64) -> (Value, Value) {
    let (_, report) = traced(command);
    let thread = only_thread(&report, name);
    assert_eq!(count(thread, call), polls);
    let intervals = poll_intervals(thread).clone();
    assert_eq!(field(&intervals, "count"), polls - 1, "{thread}");
    assert!(field(&intervals, "min_ns") >= 2 * MS, "{intervals}");
    (report, intervals)
}

#[test]
fn long_poll_is_each_iteration_of_a_poll_loop() {
    needs_root!();
    // poll() returns at once, then 2 ms of work.
    let (_, intervals) = event_loop("poll 50 2", "poller", "poll", 50);
    assert!(field(&intervals, "max_ns") < 500 * MS, "{intervals}");
    assert!(field(&intervals, "total_ns") >= 49 * 2 * MS);
    let (p50, p90) = (field(&intervals, "p50_ns"), field(&intervals, "p90_ns"));
    assert!(2 * MS <= p50 && p50 <= p90, "{intervals}");
}

#[test]
fn long_poll_covers_epoll_servers_too() {
    needs_root!();
    // epoll_wait() times out after 1 ms, then 2 ms of work.
    let (report, _) = event_loop("epoll 20 2", "epoller", EPOLL_WAIT, 20);
    // A thread that never polls has no iterations.
    let main = only_thread(&report, "kd-workload");
    assert_eq!(field(poll_intervals(main), "count"), 0);
}

/// `kd-workload serve` under a name of its own (a symbolic link's name is
/// what exec gives the process).
fn named_workload(dir: &std::path::Path, name: &str) -> Child {
    let link = dir.join(name);
    if !link.exists() {
        std::os::unix::fs::symlink(WORKLOAD, &link).unwrap();
    }
    Command::new(&link)
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn processes_are_found_by_name() {
    needs_root!();
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("kdw-{}", std::process::id() % 100_000);
    let mut first = named_workload(dir.path(), &name);
    let mut second = named_workload(dir.path(), &name);
    let mut other = named_workload(dir.path(), "kdw-other");
    // Both of the name, not the other one.
    let report = Trace::start(&["--comm", &name, "--duration", "0.5"]).report();
    let mut pids: Vec<u64> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| field(p, "pid"))
        .collect();
    pids.sort_unstable();
    let mut want = vec![u64::from(first.id()), u64::from(second.id())];
    want.sort_unstable();
    assert_eq!(pids, want, "{report:#}");
    assert_eq!(report["comm"], name.as_str());

    let report = Trace::start(&["-n", "kdw-other", "--duration", "0.5"]).report();
    assert_eq!(field(&report, "pid"), u64::from(other.id()));

    let err = refused(&["--comm", "kdw-no-such-name", "--duration", "0.5"]);
    assert!(
        err.contains("no process is named \"kdw-no-such-name\""),
        "{err}"
    );
    for child in [&mut first, &mut second, &mut other] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn buffer_page_count_sizes_the_ring_buffer_in_pages() {
    needs_root!();
    let workload = Workload::start();
    let trace = Trace::start(&[
        "--pid",
        &workload.pid().to_string(),
        "--duration",
        "60",
        "--buffer-page-count",
        "1000",
    ]);
    // The ring buffer among this kernel-delay's own maps (others may run
    // on the machine): BPF_MAP_TYPE_RINGBUF is map type 27.
    let fds = format!("/proc/{}/fdinfo", trace.child.id());
    let ring_sizes: Vec<u64> = std::fs::read_dir(&fds)
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter(|info| {
            info.lines()
                .any(|l| l.split_whitespace().eq(["map_type:", "27"]))
        })
        .filter_map(|info| {
            let line = info.lines().find(|l| l.starts_with("max_entries:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .collect();
    // 1,000 pages rounded up to 1,024, of 4 KiB.
    assert_eq!(ring_sizes, [1024 * 4096]);
    trace.interrupt();
}

#[test]
fn the_open_vswitch_debug_and_upcall_options_are_accepted() {
    needs_root!();
    // -D takes an optional level; --skip-upcall-stats has nothing to skip,
    // and says so once.
    for debug in [&["-D"][..], &["--debug", "63"], &["-D", "0"]] {
        let args = [
            debug,
            &["--skip-upcall-stats", "--", WORKLOAD, "run", "5", "0"],
        ]
        .concat();
        let (output, report) = launch(&args);
        assert_eq!(count(only_thread(&report, "kd-workload"), "getppid"), 5);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let notes = stderr.matches("--skip-upcall-stats").count();
        assert_eq!(notes, 1, "{stderr}");
        assert!(stderr.contains("no upcall statistics"), "{stderr}");
        // libbpf's messages with any level but 0.
        let libbpf = stderr.contains("libbpf: ");
        assert_eq!(libbpf, debug != ["-D", "0"], "{debug:?}: {stderr}");
    }
}
