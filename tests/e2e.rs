//! End-to-end tests: the real kernel-delay, as root, against workloads with
//! a known answer, checked through its JSON report.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
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

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("reading kd-workload");
        line.trim_end().to_string()
    }

    fn expect_line(&mut self, want: &str) {
        assert_eq!(self.read_line(), want);
    }

    /// Runs one command, waits until it is done, returns what it printed.
    fn run(&mut self, command: &str) -> Vec<String> {
        writeln!(self.stdin.as_ref().unwrap(), "{command}").expect("writing kd-workload");
        let mut printed = Vec::new();
        loop {
            match self.read_line() {
                line if line == "done" => return printed,
                line if line.is_empty() => panic!("kd-workload ended during {command:?}"),
                line => printed.push(line),
            }
        }
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
        let mut command = Command::new(TOOL);
        command.args(args);
        Self::spawn(command)
    }

    /// Traces `workload` for at most `seconds`.
    fn of(workload: &Workload, seconds: &str) -> Self {
        Self::start(&["--pid", &workload.pid().to_string(), "--duration", seconds])
    }

    /// `command` runs kernel-delay (possibly through a wrapper).
    fn spawn(mut command: Command) -> Self {
        require_root();
        let mut child = command
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
        self.stop(Signal::SIGINT)
    }

    fn stop(self, signal: Signal) -> Value {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
        self.report()
    }

    fn report(self) -> Value {
        let output = wait_with_timeout(self.child);
        assert!(
            output.status.success(),
            "kernel-delay failed: {:?}",
            output.status
        );
        let report = serde_json::from_slice(&output.stdout).expect("the report is JSON");
        assert_budgets_add_up(&report);
        report
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

/// Every thread's time budget adds up to its observed time, to the ns, and
/// no thread is observed for longer than the window.
fn assert_budgets_add_up(report: &Value) {
    let window = field(report, "duration_ns");
    for thread in report["threads"].as_array().unwrap() {
        let time = &thread["time"];
        let parts: u64 = [
            "running_ns",
            "ready_ns",
            "sleeping_ns",
            "blocked_ns",
            "stopped_ns",
        ]
        .iter()
        .map(|part| field(time, part))
        .sum();
        assert_eq!(parts, field(time, "observed_ns"), "{thread}");
        assert!(field(time, "observed_ns") <= window, "{thread}");
    }
}

/// A share of a thread's observed time.
fn fraction(thread: &Value, part: &str) -> f64 {
    field(&thread["time"], part) as f64 / field(&thread["time"], "observed_ns") as f64
}

/// The "schedstat TID RUN_NS WAIT_NS" lines kd-workload prints.
fn schedstats(lines: &[String]) -> Vec<(u64, u64, u64)> {
    lines
        .iter()
        .filter_map(|line| {
            let fields: Vec<u64> = line
                .strip_prefix("schedstat ")?
                .split(' ')
                .map(|f| f.parse().unwrap())
                .collect();
            Some((fields[0], fields[1], fields[2]))
        })
        .collect()
}

fn thread_by_tid(report: &Value, tid: u64) -> &Value {
    report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("no thread {tid} in {report:#}"))
}

#[test]
fn counts_exactly_the_calls_made_in_the_window() {
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
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "120");
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
    let trace = Trace::of(&workload, "60");
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
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "600");
    workload.run("burst 20");
    let report = trace.stop(Signal::SIGTERM);
    assert_eq!(report["stop_reason"], "interrupted");
    assert_eq!(count(only_thread(&report, "burst"), "getppid"), 20);
}

/// Runs kernel-delay in launch mode with `args` and a JSON report to a
/// file: its output, and the report (whose budgets must add up).
fn launch(args: &[&str]) -> (Output, Value) {
    require_root();
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("kd-e2e-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("report.json");
    let child = Command::new(TOOL)
        .args(["--json", "-o"])
        .arg(&out)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_timeout(child);
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_budgets_add_up(&report);
    (output, report)
}

#[test]
fn launch_mode_reports_after_the_window_and_waits_for_the_command() {
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
fn a_call_in_progress_when_the_window_closes_is_unfinished() {
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

#[test]
fn launch_mode_traces_the_command_until_it_exits() {
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
    let mut command = Command::new(TOOL);
    command.args(args);
    refused_by(command)
}

/// Runs kernel-delay (possibly through a wrapper), which must fail with one
/// clear line on stderr and nothing on stdout.
fn refused_by(mut command: Command) -> String {
    let output = command.output().unwrap();
    assert!(!output.status.success(), "{command:?} must fail");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line for {command:?}: {stderr:?}"
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

#[test]
fn inside_a_pid_namespace_it_says_so() {
    require_root();
    // Its pid 1 is not the host's: tracing it would silently see nothing.
    let mut command = Command::new("unshare");
    command.args([
        "--pid",
        "--fork",
        "--mount-proc",
        TOOL,
        "--pid",
        "1",
        "--duration",
        "0.1",
    ]);
    assert!(refused_by(command).contains("PID namespace"));
}

#[test]
fn without_privileges_it_says_so() {
    require_root();
    let workload = Workload::start();
    // Drop to nobody: no CAP_BPF, no CAP_PERFMON.
    let mut command = Command::new("setpriv");
    command.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        TOOL,
        "--pid",
    ]);
    command.arg(workload.pid().to_string());
    assert!(refused_by(command).contains("run as root"));
}

#[test]
fn two_threads_sharing_one_cpu_each_wait_half_the_time() {
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "60");
    let printed = workload.run("spin 2 3000");
    let report = trace.interrupt();
    let kernel_accounts = schedstats(&printed);
    assert_eq!(kernel_accounts.len(), 2, "{printed:?}");
    for (tid, run_ns, wait_ns) in kernel_accounts {
        let spinner = thread_by_tid(&report, tid);
        assert_eq!(spinner["exited"], true);
        let observed = field(&spinner["time"], "observed_ns") as f64;
        // Created and gone inside the window: observed for its whole life,
        // the span /proc/TID/schedstat covers too.
        assert!(observed > 2_900.0 * MS as f64, "{spinner}");
        // Half each on an otherwise idle CPU; other load can only add
        // waiting, and a spinner never sleeps.
        let (running, ready) = (
            fraction(spinner, "running_ns"),
            fraction(spinner, "ready_ns"),
        );
        assert!(
            (0.2..0.65).contains(&running),
            "running {running}: {spinner}"
        );
        assert!((0.35..0.8).contains(&ready), "ready {ready}: {spinner}");
        assert!(running + ready > 0.99, "{spinner}");
        let (kernel_running, kernel_ready) = (run_ns as f64 / observed, wait_ns as f64 / observed);
        assert!(
            (running - kernel_running).abs() < 0.02,
            "running {running} vs schedstat {kernel_running}"
        );
        assert!(
            (ready - kernel_ready).abs() < 0.02,
            "ready {ready} vs schedstat {kernel_ready}"
        );
        let ready_stretches = &spinner["sched"]["ready"];
        assert!(field(ready_stretches, "count") > 50, "{spinner}");
        assert!(field(ready_stretches, "max_ns") >= field(ready_stretches, "p50_ns"));
        assert_eq!(field(&spinner["sched"]["sleep"], "count"), 0, "{spinner}");
    }
}

#[test]
fn a_sleeping_thread_is_sleeping() {
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "60");
    workload.run("sleep 25 40");
    let report = trace.interrupt();
    let sleeper = only_thread(&report, "sleeper");
    let sleeping = fraction(sleeper, "sleeping_ns");
    assert!(sleeping > 0.95, "sleeping {sleeping}: {sleeper}");
    let sleeps = &sleeper["sched"]["sleep"];
    assert!(field(sleeps, "count") >= 25, "{sleeper}");
    assert!(field(sleeps, "p50_ns") >= 40 * MS, "{sleeper}");
}

#[test]
fn a_thread_blocked_in_read_all_window_is_reported_asleep() {
    let workload = Workload::start();
    // Nothing to read: the main thread waits in read() on its stdin pipe.
    let report = Trace::of(&workload, "1").report();
    let main = only_thread(&report, "kd-workload");
    assert_eq!(
        field(&main["time"], "observed_ns"),
        field(&report, "duration_ns")
    );
    assert_eq!(
        field(&main["time"], "sleeping_ns"),
        field(&report, "duration_ns"),
        "{main}"
    );
    assert_eq!(
        field(&main["sched"]["sleep"], "count"),
        0,
        "a stretch longer than the window is no statistic"
    );
}

#[test]
fn a_stopped_process_is_stopped() {
    let workload = Workload::start();
    let trace = Trace::of(&workload, "60");
    let target = Pid::from_raw(workload.pid() as i32);
    kill(target, Signal::SIGSTOP).unwrap();
    thread::sleep(Duration::from_secs(1));
    kill(target, Signal::SIGCONT).unwrap();
    thread::sleep(Duration::from_millis(200));
    let report = trace.interrupt();
    let main = only_thread(&report, "kd-workload");
    let stopped = field(&main["time"], "stopped_ns");
    assert!((950 * MS..3_000 * MS).contains(&stopped), "{main}");
    let stretches = &main["sched"]["stopped"];
    assert_eq!(field(stretches, "count"), 1, "{main}");
    assert_eq!(field(stretches, "total_ns"), stopped);
}

#[test]
fn waiting_for_the_disk_is_blocked_time() {
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "60");
    let printed = workload.run("fsync 100");
    let report = trace.interrupt();
    let (tid, run_ns, wait_ns) = schedstats(&printed)[0];
    let syncer = thread_by_tid(&report, tid);
    assert_eq!(syncer["comm"], "syncer");
    assert!(field(&syncer["time"], "blocked_ns") > 0, "{syncer}");
    assert!(field(&syncer["sched"]["block"], "count") > 0, "{syncer}");
    // On a CPU or waiting for one, together, as the kernel counts it. (The
    // kernel splits the two differently when it wakes an idle CPU: it
    // counts the CPU's wake-up latency as running.)
    let on_or_waiting = field(&syncer["time"], "running_ns") + field(&syncer["time"], "ready_ns");
    let kernel = run_ns + wait_ns;
    let observed = field(&syncer["time"], "observed_ns");
    let gap = on_or_waiting.abs_diff(kernel) as f64 / observed as f64;
    assert!(
        gap < 0.05,
        "{on_or_waiting} vs schedstat {kernel} over {observed}"
    );
}

/// bpftrace, as an independent count of what kernel-delay counts.
struct Bpftrace {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Bpftrace {
    /// Starts `program` and returns once its probes are attached.
    fn start(program: &str) -> Self {
        // bpftrace reads tracepoint formats from tracefs (kernel-delay does not).
        if !std::path::Path::new("/sys/kernel/tracing/events").exists() {
            let status = Command::new("mount")
                .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
                .status()
                .expect("mount");
            assert!(status.success(), "mounting tracefs failed");
        }
        let mut child = Command::new("bpftrace")
            .args([
                "-B",
                "none",
                "-e",
                &format!("BEGIN {{ printf(\"ready\\n\"); }} {program}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting bpftrace (apt-get install bpftrace)");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = send.send(line.trim().to_string());
            }
        });
        let bpftrace = Bpftrace { child, lines };
        loop {
            match bpftrace.lines.recv_timeout(PATIENCE) {
                Ok(line) if line == "ready" => return bpftrace,
                Ok(_) => continue,
                Err(_) => panic!("bpftrace did not start"),
            }
        }
    }

    /// Stops it; returns the map lines it printed (`@[a, b]: n`).
    fn stop(mut self) -> Vec<String> {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT).unwrap();
        let mut printed = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            printed.push(line);
        }
        self.child.wait().unwrap();
        printed
    }
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The count bpftrace printed for `tid` (`@[TID]: N`).
fn bpftrace_count(printed: &[String], tid: u64) -> u64 {
    printed
        .iter()
        .find_map(|line| line.strip_prefix(&format!("@[{tid}]: "))?.parse().ok())
        .unwrap_or_else(|| panic!("bpftrace counted nothing for {tid}: {printed:?}"))
}

fn softirq<'a>(thread: &'a Value, name: &str) -> Option<&'a Value> {
    thread["softirqs"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

fn hardirq<'a>(thread: &'a Value, name: &str) -> Option<&'a Value> {
    thread["hardirqs"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

#[test]
fn net_rx_of_loopback_udp_is_charged_to_the_sender() {
    let mut workload = Workload::start();
    let pid = workload.pid();
    let independent = Bpftrace::start(&format!(
        "tracepoint:irq:softirq_entry /pid == {pid} && args->vec == 3/ {{ @[tid] = count(); }}"
    ));
    let trace = Trace::start(&["--pid", &pid.to_string(), "--duration", "60"]);
    workload.run("udp 5000");
    let report = trace.interrupt();
    let counted_by_bpftrace = independent.stop();

    let sender = only_thread(&report, "udp-sender");
    let net_rx = softirq(sender, "NET_RX").unwrap_or_else(|| panic!("no NET_RX in {sender}"));
    assert_eq!(net_rx["vec"], 3);
    let count = field(net_rx, "count");
    assert!(count >= 1_000, "{net_rx}");
    assert!(field(net_rx, "total_ns") > 0 && field(net_rx, "max_ns") >= field(net_rx, "p50_ns"));
    // The main thread only waited meanwhile.
    assert!(softirq(only_thread(&report, "kd-workload"), "NET_RX").is_none());

    let theirs = bpftrace_count(&counted_by_bpftrace, field(sender, "tid"));
    let gap = count.abs_diff(theirs) as f64 / theirs as f64;
    assert!(gap <= 0.05, "kernel-delay {count} vs bpftrace {theirs}");
}

/// CONFIG_HZ of the running kernel, from its config (250 when unknown).
fn config_hz() -> u64 {
    let config = Command::new("sh")
        .args([
            "-c",
            "zcat /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r) 2>/dev/null",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&config.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("CONFIG_HZ=")?.parse().ok())
        .unwrap_or(250)
}

#[test]
fn a_spinning_thread_takes_the_timer_tick() {
    let mut workload = Workload::start();
    // The spinner runs alone on the last CPU; kernel-delay keeps off it so
    // that its own timers do not land there.
    let mut tool = Command::new("taskset");
    tool.args([
        "-c",
        "0",
        TOOL,
        "--pid",
        &workload.pid().to_string(),
        "--duration",
        "60",
    ]);
    let pid = workload.pid();
    let independent = Bpftrace::start(&format!(
        "tracepoint:irq_vectors:local_timer_entry /pid == {pid}/ {{ @[tid] = count(); }}"
    ));
    let trace = Trace::spawn(tool);
    let printed = workload.run("spin 1 3000");
    let report = trace.interrupt();
    let counted_by_bpftrace = independent.stop();
    let (tid, _, _) = schedstats(&printed)[0];
    let spinner = thread_by_tid(&report, tid);
    let timer =
        hardirq(spinner, "LOCAL_TIMER").unwrap_or_else(|| panic!("no LOCAL_TIMER in {spinner}"));
    assert_eq!(timer["irq"], Value::Null);
    let running_s = field(&spinner["time"], "running_ns") as f64 / 1e9;
    let expected = config_hz() as f64 * running_s;
    let ticks = field(timer, "count") as f64;
    let theirs = bpftrace_count(&counted_by_bpftrace, tid) as f64;
    assert!(
        (ticks - theirs).abs() <= 0.05 * theirs,
        "kernel-delay {ticks} vs bpftrace {theirs}"
    );
    // The tick fires HZ times a second on a busy CPU. More than that only
    // when other tasks' timers fire on this CPU, which bpftrace then sees
    // too (on a quiet machine: 751-754 ticks for 750 expected).
    let context = format!(
        "{ticks} ticks in {running_s:.2} s running, HZ {}",
        config_hz()
    );
    assert!(ticks >= 0.8 * expected, "{context}");
    assert!(
        ticks <= 1.2 * expected || theirs > 1.2 * expected,
        "{context}"
    );
    // Each a few microseconds.
    let mean = field(timer, "mean_ns");
    assert!((200..100_000).contains(&mean), "{timer}");
}
