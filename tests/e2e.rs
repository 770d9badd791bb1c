//! End-to-end tests: the real kernel-delay, as root, against workloads with
//! a known answer, checked through its JSON report.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const TOOL: &str = env!("CARGO_BIN_EXE_kernel-delay");
const WORKLOAD: &str = env!("CARGO_BIN_EXE_kd-workload");
/// Far above what any step takes, even on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests load BPF programs: run them as root (make test)"
    );
}

/// `kd-workload serve`: runs one command at a time, read from its stdin.
struct Workload {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Workload {
    fn start() -> Self {
        let mut child = Command::new(WORKLOAD)
            .arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting kd-workload");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut workload = Workload {
            child,
            stdin,
            stdout,
        };
        workload.expect_line("ready");
        workload
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn expect_line(&mut self, want: &str) {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("reading kd-workload");
        assert_eq!(line.trim_end(), want);
    }

    /// Runs one command and waits until it is done.
    fn run(&mut self, command: &str) {
        writeln!(self.stdin.as_ref().unwrap(), "{command}").expect("writing kd-workload");
        self.expect_line("done");
    }

    /// Closes its input: the workload exits.
    fn finish(&mut self) {
        self.stdin = None;
        self.child.wait().expect("kd-workload exit");
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running kernel-delay whose JSON report goes to stdout.
struct Trace {
    child: Child,
}

impl Trace {
    /// Starts tracing and returns once the window has begun.
    fn start(args: &[&str]) -> Self {
        require_root();
        let mut child = Command::new(TOOL)
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kernel-delay");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (started, begun) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = stderr.lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = started.send(first);
            for line in lines.map_while(Result::ok) {
                eprintln!("kernel-delay: {line}");
            }
        });
        let first = begun
            .recv_timeout(PATIENCE)
            .expect("kernel-delay did not start");
        assert!(
            first.starts_with("# Start sampling @"),
            "unexpected first line: {first:?}"
        );
        Trace { child }
    }

    /// Ctrl-C: the window ends and the report comes.
    fn interrupt(self) -> Value {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT).unwrap();
        self.report()
    }

    fn report(self) -> Value {
        let output = wait_with_timeout(self.child);
        assert!(
            output.status.success(),
            "kernel-delay failed: {:?}",
            output.status
        );
        serde_json::from_slice(&output.stdout).expect("the report is JSON")
    }
}

fn wait_with_timeout(child: Child) -> Output {
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("waiting for kernel-delay"),
        Err(_) => {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            panic!("kernel-delay did not finish within {PATIENCE:?}");
        }
    }
}

fn threads_named<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter(|t| t["comm"] == name)
        .collect()
}

fn only_thread<'a>(report: &'a Value, name: &str) -> &'a Value {
    let found = threads_named(report, name);
    assert_eq!(found.len(), 1, "want one thread {name:?} in {report:#}");
    found[0]
}

fn syscall<'a>(thread: &'a Value, name: &str) -> Option<&'a Value> {
    thread["syscalls"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

fn count(thread: &Value, name: &str) -> u64 {
    syscall(thread, name).map_or(0, |s| s["count"].as_u64().unwrap())
}

fn field(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
}

const MS: u64 = 1_000_000;

#[test]
fn counts_exactly_the_calls_made_in_the_window() {
    let mut workload = Workload::start();
    let trace = Trace::start(&["--pid", &workload.pid().to_string(), "--duration", "60"]);
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
    let mut workload = Workload::start();
    let trace = Trace::start(&["--pid", &workload.pid().to_string(), "--duration", "120"]);
    workload.run("burst 3000000");
    let report = trace.interrupt();
    assert_eq!(report["lost_events"], 0);
    assert_eq!(count(only_thread(&report, "burst"), "getppid"), 3_000_000);
    assert!(field(&report, "events") >= 3_000_000);
}

#[test]
fn events_that_do_not_fit_are_counted_as_lost() {
    let mut workload = Workload::start();
    let trace = Trace::start(&[
        "--pid",
        &workload.pid().to_string(),
        "--duration",
        "60",
        "--ringbuf-mb",
        "1",
    ]);
    // A stopped reader cannot drain: a 1 MiB buffer holds ~26,000 records.
    let tool = Pid::from_raw(trace.child.id() as i32);
    kill(tool, Signal::SIGSTOP).unwrap();
    workload.run("burst 100000");
    kill(tool, Signal::SIGCONT).unwrap();
    let report = trace.interrupt();
    let counted = count(only_thread(&report, "burst"), "getppid");
    let lost = field(&report, "lost_events");
    assert!(
        lost > 0 && counted < 100_000,
        "lost {lost}, counted {counted}"
    );
    // Every call is either counted or accounted for as lost.
    assert!(counted + lost >= 100_000, "lost {lost}, counted {counted}");
}

#[test]
fn sleeps_of_known_length() {
    let mut workload = Workload::start();
    let trace = Trace::start(&["--pid", &workload.pid().to_string(), "--duration", "60"]);
    workload.run("sleep 25 20");
    let report = trace.interrupt();
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
fn ctrl_c_ends_the_window_early_with_a_report() {
    let mut workload = Workload::start();
    let trace = Trace::start(&["--pid", &workload.pid().to_string(), "--duration", "600"]);
    workload.run("burst 10");
    let begun = Instant::now();
    let report = trace.interrupt();
    assert!(begun.elapsed() < Duration::from_secs(30));
    assert_eq!(report["stop_reason"], "interrupted");
    assert!(field(&report, "duration_ns") < 60_000 * MS);
    assert_eq!(count(only_thread(&report, "burst"), "getppid"), 10);
}

#[test]
fn the_window_ends_after_the_duration() {
    let workload = Workload::start();
    let report =
        Trace::start(&["--pid", &workload.pid().to_string(), "--duration", "0.5"]).report();
    assert_eq!(report["stop_reason"], "duration");
    let duration = field(&report, "duration_ns");
    assert!((500 * MS..20_000 * MS).contains(&duration), "{duration}");
    // Idle the whole window, and still reported.
    let main = only_thread(&report, "kd-workload");
    assert_eq!(main["exited"], false);
    assert_eq!(main["syscalls"].as_array().unwrap().len(), 0);
    assert_eq!(main["unfinished"].as_array().unwrap().len(), 0);
}

#[test]
fn the_window_ends_when_the_target_exits() {
    let mut workload = Workload::start();
    let trace = Trace::start(&["--pid", &workload.pid().to_string(), "--duration", "600"]);
    workload.run("burst 77");
    workload.finish();
    let report = trace.report();
    assert_eq!(report["stop_reason"], "target_exited");
    assert_eq!(only_thread(&report, "kd-workload")["exited"], true);
    assert_eq!(count(only_thread(&report, "burst"), "getppid"), 77);
}

#[test]
fn a_call_in_progress_when_the_window_closes_is_unfinished() {
    let mut workload = Workload::start();
    let trace = Trace::start(&["--pid", &workload.pid().to_string(), "--duration", "60"]);
    // The main thread goes back to read() its next command and stays there.
    workload.run("burst 1");
    thread::sleep(Duration::from_millis(300));
    let report = trace.interrupt();
    let main = only_thread(&report, "kd-workload");
    let unfinished = main["unfinished"].as_array().unwrap();
    assert_eq!(unfinished.len(), 1, "{main}");
    assert_eq!(unfinished[0]["name"], "read");
    assert!(field(&unfinished[0], "elapsed_ns") >= 250 * MS, "{main}");
}

#[test]
fn launch_mode_traces_the_command_until_it_exits() {
    require_root();
    let dir = std::env::temp_dir().join(format!("kd-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("report.json");
    let child = Command::new(TOOL)
        .args(["--json", "-o"])
        .arg(&out)
        .args(["--", WORKLOAD, "run", "5000", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_timeout(child);
    // The command's output passes through and its exit code comes back.
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "workload finished\n"
    );
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("# Start sampling @"), "{stderr}");

    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
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

fn refused(args: &[&str]) -> String {
    let output = Command::new(TOOL).args(args).output().unwrap();
    assert!(!output.status.success(), "{args:?} must fail");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line for {args:?}: {stderr:?}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
    stderr
}

#[test]
fn bad_input_gets_one_clear_line() {
    require_root();
    assert!(refused(&["--pid", "2147483647"]).contains("no process with pid 2147483647"));
    assert!(refused(&["--pid", "x"]).contains("--pid"));
    assert!(refused(&["--pid", "1", "--duration", "0"]).contains("more than 0"));
    assert!(refused(&["--", "/no/such/program"]).contains("/no/such/program"));
    assert!(refused(&["--pid", "1", "-o", "/no/such/dir/report"]).contains("/no/such/dir/report"));
    assert!(refused(&[]).contains("nothing to trace"));
}
