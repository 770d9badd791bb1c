//! Threads at scale and in odd lives: thousands at once, ids that come
//! back, exec from a thread that is not the leader, a leader that left.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// Rows of threads named `name`, and their getppid() counts.
fn getppid_counts(report: &Value, name: &str) -> Vec<u64> {
    threads_named(report, name)
        .iter()
        .map(|t| count(t, "getppid"))
        .collect()
}

#[test]
fn five_thousand_threads_at_once_are_counted_exactly_with_nothing_lost() {
    needs_root!();
    // Both CPUs saturated by the target itself: the reader's real-time
    // priority keeps it draining.
    let (_, report) = traced("threads 5000 1000");
    assert_eq!(report["lost_events"], 0, "{}", report["lost"]);
    let counts = getppid_counts(&report, "crowd");
    assert_eq!(counts.len(), 5000);
    assert!(counts.iter().all(|&n| n == 1000), "every thread made 1,000");
    assert_eq!(report["warnings"], serde_json::json!([]));
}

/// Sets kernel.pid_max for a test and puts it back when dropped, even
/// when the test fails.
struct PidMax {
    saved: String,
}

const PID_MAX: &str = "/proc/sys/kernel/pid_max";

impl PidMax {
    /// The pid_max to churn through: the current one, or, where that is
    /// too large to wrap around quickly, the smallest that stays above
    /// every pid in use. None when pids in use are too high for that.
    fn small() -> (Self, Option<u64>) {
        let saved = fs::read_to_string(PID_MAX).unwrap().trim().to_string();
        let current: u64 = saved.parse().unwrap();
        let guard = PidMax { saved };
        const QUICK: u64 = 65_536;
        if current <= QUICK {
            return (guard, Some(current));
        }
        let lowered = (highest_pid_in_use() + 1).max(32_768);
        if lowered > QUICK {
            return (guard, None);
        }
        fs::write(PID_MAX, lowered.to_string()).unwrap();
        (guard, Some(lowered))
    }
}

impl Drop for PidMax {
    fn drop(&mut self) {
        fs::write(PID_MAX, &self.saved).expect("restoring kernel.pid_max");
    }
}

/// The highest process or thread id in use.
fn highest_pid_in_use() -> u64 {
    let ids = |dir: &Path| -> Vec<u64> {
        fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    ids(Path::new("/proc"))
        .into_iter()
        .flat_map(|pid| ids(&Path::new("/proc").join(pid.to_string()).join("task")))
        .max()
        .unwrap_or(0)
}

#[test]
fn a_thread_id_that_comes_back_is_a_new_thread() {
    needs_root!();
    require_root();
    let (_pid_max, pid_max) = PidMax::small();
    let Some(pid_max) = pid_max else {
        eprintln!("NOTE: pids in use are too high to make thread ids come back quickly: not run");
        return;
    };
    // More threads than there are ids: ids are handed out in a cycle, so
    // some of the first threads' ids come back for the last ones.
    let threads = pid_max + 2_000;
    let (_, report) = traced(&format!("churn {threads} 10"));
    assert_eq!(report["lost_events"], 0, "{}", report["lost"]);
    let churned = threads_named(&report, "churn");
    assert_eq!(churned.len() as u64, threads);
    let mut rows_per_tid = std::collections::HashMap::new();
    for thread in &churned {
        assert_eq!(
            count(thread, "getppid"),
            10,
            "never two threads in one row: {thread}"
        );
        assert_eq!(
            (&thread["created"], &thread["exited"]),
            (&Value::Bool(true), &Value::Bool(true))
        );
        *rows_per_tid.entry(field(thread, "tid")).or_insert(0) += 1;
    }
    let reused = rows_per_tid.values().filter(|&&rows| rows > 1).count();
    assert!(reused > 0, "no thread id came back in {threads} threads");
}

#[test]
fn exec_from_a_thread_other_than_the_leader_is_counted_under_its_new_id() {
    needs_root!();
    let (output, report) = launch(&["--", WORKLOAD, "exec-from-thread", "500"]);
    assert!(output.status.success(), "{output:?}");
    let pid = field(&report, "pid");
    // The exec'ing thread took the process id; its execve returned there.
    let rows: Vec<&Value> = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| field(t, "tid") == pid)
        .collect();
    let execd = rows
        .iter()
        .find(|t| count(t, "getppid") == 500)
        .unwrap_or_else(|| panic!("no row of the exec'd program in {report:#}"));
    assert_eq!(count(execd, "execve"), 1, "{execd}");
    // No row is left under the exec'ing thread's old id, and no execve is
    // left unfinished.
    for thread in report["threads"].as_array().unwrap() {
        assert_ne!(thread["comm"], "execer", "a phantom row: {thread}");
        assert_ne!(thread["comm"], "?", "a phantom row: {thread}");
        assert_eq!(thread["unfinished"], serde_json::json!([]), "{thread}");
    }
    assert_eq!(
        rows.len(),
        2,
        "the old leader and the exec'd thread: {rows:?}"
    );
}

/// Waits until the main thread of `child` has exited (a zombie).
fn wait_for_zombie_leader(child: &Child) {
    let stat = format!("/proc/{}/stat", child.id());
    let begun = Instant::now();
    while !fs::read_to_string(&stat).unwrap().contains(") Z ") {
        assert!(begun.elapsed() < PATIENCE, "the main thread did not exit");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_process_whose_main_thread_exited_is_still_traced() {
    needs_root!();
    require_root();
    let mut leaderless = Command::new(WORKLOAD)
        .args(["leaderless", "20000"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_zombie_leader(&leaderless);
    let report =
        Trace::start(&["--pid", &leaderless.id().to_string(), "--duration", "0.5"]).report();
    let _ = leaderless.kill();
    let _ = leaderless.wait();
    let worker = only_thread(&report, "worker");
    assert!(count(worker, "getppid") >= 5, "{worker}");
    // The main thread is gone: no time to account for it.
    assert_eq!(report["threads"].as_array().unwrap().len(), 1, "{report:#}");
}

#[test]
fn threads_exiting_together_each_keep_their_exit_and_calls() {
    needs_root!();
    // exit_group() with 60 threads asleep: they exit at once on both CPUs,
    // several of them seeing the process's last thread gone. Three runs.
    for _ in 0..3 {
        let (_, report) = launch(&["--", WORKLOAD, "exit-together", "60", "100"]);
        let leavers = threads_named(&report, "leaver");
        assert_eq!(leavers.len(), 60, "{report:#}");
        for leaver in &leavers {
            assert_eq!(count(leaver, "getppid"), 100, "{leaver}");
            assert_eq!(leaver["exited"], true, "{leaver}");
        }
        let processes = report["processes"].as_array().unwrap();
        assert_eq!(processes.len(), 1, "{processes:?}");
        assert_eq!(processes[0]["exited"], true);
    }
}
