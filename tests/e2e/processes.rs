//! Several processes at once, and the processes they fork.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// The rows of process `pid`.
fn threads_of(report: &Value, pid: u64) -> Vec<&Value> {
    report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["pid"] == pid)
        .collect()
}

fn process(report: &Value, pid: u64) -> Option<&Value> {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
}

/// The getppid() calls of process `pid`, all its threads.
fn getppid_of(report: &Value, pid: u64) -> u64 {
    threads_of(report, pid)
        .iter()
        .map(|t| count(t, "getppid"))
        .sum()
}

#[test]
fn several_processes_are_traced_at_once_each_exactly() {
    needs_root!();
    let mut first = Workload::start();
    let mut second = Workload::start();
    let pids = format!("{},{}", first.pid(), second.pid());
    let trace = Trace::start(&["--pid", &pids, "--duration", "300"]);
    first.run("burst 1000");
    second.run("burst 2345");
    let report = trace.interrupt();
    for (workload, calls) in [(&first, 1000), (&second, 2345)] {
        let pid = u64::from(workload.pid());
        assert_eq!(getppid_of(&report, pid), calls, "{report:#}");
        let burst = threads_of(&report, pid)
            .into_iter()
            .find(|t| t["comm"] == "burst")
            .unwrap_or_else(|| panic!("no burst thread of {pid}"));
        assert_eq!(count(burst, "getppid"), calls);
        let listed = process(&report, pid).unwrap();
        assert_eq!(listed["comm"], "kd-workload");
        assert_eq!(
            (&listed["forked"], &listed["exited"]),
            (&Value::Bool(false), &Value::Bool(false))
        );
    }
    assert_eq!(report["processes"].as_array().unwrap().len(), 2);
    assert_eq!(field(&report, "pid"), u64::from(first.pid()));
}

#[test]
fn a_launched_shell_is_traced_with_the_command_it_forks() {
    needs_root!();
    let script = format!("{WORKLOAD} run 7000 0; true");
    let (output, report) = launch(&["--", "sh", "-c", &script]);
    assert!(output.status.success(), "{output:?}");
    let shell = field(&report, "pid");
    let child = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["comm"] == "kd-workload")
        .unwrap_or_else(|| panic!("no forked process in {report:#}"));
    assert_eq!(field(child, "ppid"), shell);
    assert_eq!(
        (&child["forked"], &child["exited"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    let child = field(child, "pid");
    assert_eq!(getppid_of(&report, child), 7000);
    let main = threads_of(&report, child)[0];
    assert_eq!(
        (field(main, "tid"), &main["comm"]),
        (child, &Value::from("kd-workload"))
    );
    assert!(
        count(main, "execve") >= 1,
        "traced from before its exec: {main}"
    );

    // Not followed: the shell alone, none of the child's calls.
    let (_, report) = launch(&["--no-follow-forks", "--", "sh", "-c", &script]);
    assert_eq!(
        report["processes"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );
    for thread in report["threads"].as_array().unwrap() {
        assert!(count(thread, "getppid") < 7000, "{thread}");
    }
}

/// The children kd-workload reported forking ("child PID").
fn children(printed: &[String]) -> Vec<u64> {
    printed
        .iter()
        .filter_map(|line| line.strip_prefix("child ")?.parse().ok())
        .collect()
}

#[test]
fn follow_forks_traces_the_children_forked_during_the_window() {
    needs_root!();
    let mut workload = Workload::start();
    let parent = u64::from(workload.pid());
    let trace = Trace::start(&["--pid", &parent.to_string(), "-f", "--duration", "300"]);
    let printed = workload.run("fork 3 500");
    let report = trace.interrupt();
    let forked = children(&printed);
    assert_eq!(forked.len(), 3);
    for child in forked {
        assert_eq!(getppid_of(&report, child), 500, "{report:#}");
        let listed = process(&report, child).unwrap();
        assert_eq!(field(listed, "ppid"), parent);
        // Gone before the window closed, and still reported.
        assert_eq!(
            (&listed["forked"], &listed["exited"]),
            (&Value::Bool(true), &Value::Bool(true))
        );
        assert_eq!(threads_of(&report, child)[0]["exited"], true);
    }

    // Without -f, the parent alone.
    let trace = Trace::start(&["--pid", &parent.to_string(), "--duration", "300"]);
    let printed = workload.run("fork 3 500");
    let report = trace.interrupt();
    for child in children(&printed) {
        assert!(threads_of(&report, child).is_empty(), "{report:#}");
        assert!(process(&report, child).is_none());
    }
}

#[test]
fn follow_forks_includes_the_descendants_running_at_the_start() {
    needs_root!();
    let mut workload = Workload::start_under_shell();
    let shell = workload.pid().to_string();
    let trace = Trace::start(&["--pid", &shell, "-f", "--duration", "300"]);
    workload.run("burst 1000");
    let report = trace.interrupt();
    let burst = only_thread(&report, "burst");
    let server = field(burst, "pid");
    assert_ne!(server, u64::from(workload.pid()));
    assert_eq!(count(burst, "getppid"), 1000);
    let listed = process(&report, server).unwrap();
    assert_eq!(field(listed, "ppid"), u64::from(workload.pid()));
    assert_eq!(listed["forked"], false, "it ran before the window");

    let trace = Trace::start(&["--pid", &shell, "--duration", "300"]);
    workload.run("burst 1000");
    let report = trace.interrupt();
    assert!(threads_named(&report, "burst").is_empty(), "{report:#}");
}

#[test]
fn the_window_ends_when_the_last_traced_process_has_exited() {
    needs_root!();
    require_root();
    // The shell leaves a child behind it that lives on for 1.5 s.
    let mut shell = Command::new("sh")
        .args(["-c", "read go; sleep 1.5 & sleep 0.2"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let trace = Trace::start(&["--pid", &shell.id().to_string(), "-f", "--duration", "60"]);
    let begun = Instant::now();
    writeln!(shell.stdin.take().unwrap(), "go").unwrap();
    shell.wait().unwrap();
    let report = trace.report();
    assert!(
        begun.elapsed() >= Duration::from_millis(1_400),
        "it ended with the shell"
    );
    assert_eq!(report["stop_reason"], "target_exited");
    let processes = report["processes"].as_array().unwrap();
    assert!(
        processes.len() >= 3,
        "the shell and its two sleeps: {report:#}"
    );
    assert!(processes.iter().all(|p| p["exited"] == true), "{report:#}");
}

/// A cgroup v2 directory of its own for a test; its processes are moved
/// back to the root cgroup and it is removed when dropped, failed test or
/// not.
struct TestCgroup {
    dir: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl TestCgroup {
    /// `name`: the test's, so that tests running at once each have theirs.
    fn new(name: &str) -> Self {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = mountinfo
            .lines()
            .find_map(|line| {
                let (fields, after) = line.split_once(" - ")?;
                after
                    .starts_with("cgroup2 ")
                    .then(|| fields.split(' ').nth(4).map(std::path::PathBuf::from))?
            })
            .expect("a cgroup v2 hierarchy mounted");
        let dir = root.join(format!("kernel-delay-test-{}-{name}", std::process::id()));
        std::fs::create_dir(&dir).expect("creating a test cgroup");
        TestCgroup { dir, root }
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).expect("joining the cgroup");
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.lines() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
            }
        }
        // A process just killed may take a moment to leave it.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn a_cgroup_is_traced_with_the_processes_that_join_it() {
    needs_root!();
    // Dropped last: the workloads are gone by then.
    let cgroup = TestCgroup::new("join");
    let mut inside = Workload::start();
    cgroup.add(inside.pid());
    let mut outside = Workload::start();
    let dir = cgroup.dir.display().to_string();
    let trace = Trace::start(&["--cgroup", &dir, "--duration", "300"]);
    // Moved in after the start: found by the next look at the cgroup.
    let mut joined = Workload::start();
    cgroup.add(joined.pid());
    std::thread::sleep(Duration::from_millis(500));
    inside.run("burst 1000");
    joined.run("burst 700");
    outside.run("burst 500");
    let report = trace.interrupt();
    assert_eq!(
        getppid_of(&report, u64::from(inside.pid())),
        1000,
        "{report:#}"
    );
    assert_eq!(
        getppid_of(&report, u64::from(joined.pid())),
        700,
        "{report:#}"
    );
    assert!(threads_of(&report, u64::from(outside.pid())).is_empty());
    assert_eq!(report["cgroups"], serde_json::json!([dir]));
    assert!(process(&report, u64::from(joined.pid())).is_some());
}

#[test]
fn a_cgroup_that_is_not_one_is_refused() {
    needs_root!();
    let err = refused(&["--cgroup", "/proc/self", "--duration", "1"]);
    assert!(err.contains("not a cgroup directory"), "{err}");
    let cgroup = TestCgroup::new("empty");
    let err = refused(&[
        "--cgroup",
        &cgroup.dir.display().to_string(),
        "--duration",
        "1",
    ]);
    assert!(err.contains("no process is in cgroup"), "{err}");
}

#[test]
fn a_fork_storm_in_a_cgroup_lists_each_process_once_with_its_parent() {
    needs_root!();
    // Children of a few milliseconds each, one after another: each look
    // at the cgroup finds one alive whose fork record is not read yet.
    // Still one entry each, with its parent and its exit.
    let cgroup = TestCgroup::new("storm");
    let mut workload = Workload::start();
    let parent = u64::from(workload.pid());
    cgroup.add(workload.pid());
    let dir = cgroup.dir.display().to_string();
    let trace = Trace::start(&["--cgroup", &dir, "--duration", "300"]);
    let printed = workload.run("fork 300 20000");
    let report = trace.interrupt();
    let forked = children(&printed);
    assert_eq!(forked.len(), 300);
    let processes = report["processes"].as_array().unwrap();
    for child in &forked {
        let entries: Vec<&Value> = processes.iter().filter(|p| p["pid"] == *child).collect();
        assert_eq!(entries.len(), 1, "process {child}: {entries:?}");
        let entry = entries[0];
        assert_eq!(field(entry, "ppid"), parent, "{entry}");
        assert_eq!(
            (&entry["forked"], &entry["exited"]),
            (&Value::Bool(true), &Value::Bool(true)),
            "{entry}"
        );
    }
    assert_eq!(
        processes.len(),
        forked.len() + 1,
        "the workload and its children"
    );
}

#[test]
fn kernel_delay_in_the_traced_cgroup_does_not_trace_itself() {
    needs_root!();
    let cgroup = TestCgroup::new("self");
    let mut workload = Workload::start();
    cgroup.add(workload.pid());
    let dir = cgroup.dir.display().to_string();
    // A shell that joins the cgroup and runs kernel-delay, a descendant
    // of a traced process in the cgroup (the --json that Trace adds is the
    // shell's $0).
    let mut command = Command::new("sh");
    command.args([
        "-c",
        &format!("echo $$ > {dir}/cgroup.procs && {TOOL} --json --cgroup {dir} --duration 1"),
    ]);
    let trace = Trace::spawn(command);
    let shell = u64::from(trace.child.id());
    workload.run("burst 300");
    let report = trace.report();
    assert_eq!(getppid_of(&report, u64::from(workload.pid())), 300);
    assert!(process(&report, shell).is_some(), "{report:#}");
    let own: Vec<&Value> = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["comm"] == "kernel-delay")
        .collect();
    assert!(own.is_empty(), "{own:?}");
    assert_eq!(
        report["processes"].as_array().unwrap().len(),
        2,
        "{report:#}"
    );
}

#[test]
fn cgroup_dot_is_the_current_directory() {
    needs_root!();
    let cgroup = TestCgroup::new("dot");
    let mut workload = Workload::start();
    cgroup.add(workload.pid());
    let mut command = Command::new(TOOL);
    command
        .args(["--cgroup", ".", "--duration", "300"])
        .current_dir(&cgroup.dir);
    let trace = Trace::spawn(command);
    workload.run("burst 200");
    let report = trace.interrupt();
    assert_eq!(getppid_of(&report, u64::from(workload.pid())), 200);
    assert_eq!(
        report["cgroups"],
        serde_json::json!([cgroup.dir.display().to_string()])
    );
    // Elsewhere than in a cgroup file system: refused.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut command = Command::new(TOOL);
    command
        .args(["--cgroup", ".", "--duration", "1"])
        .current_dir(elsewhere.path());
    let err = refused_by(command);
    assert!(err.contains("not a cgroup directory"), "{err}");
}
