//! What the end-to-end tests share: kd-workload driven command by command,
//! kernel-delay started and stopped, its JSON report read, bpftrace as an
//! independent count.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// The binary under test: this build's (`make test`: the static binary
/// that ships).
pub const TOOL: &str = env!("CARGO_BIN_EXE_kernel-delay");

/// The test workload, built beside the tool (`cargo build`: it is a default
/// member of the workspace).
pub const WORKLOAD: &str = env!("KD_WORKLOAD");

/// The system call kd-workload's epoll_wait() makes: musl's wrapper (the
/// static workload `make test` runs) calls epoll_pwait, glibc's epoll_wait.
pub const EPOLL_WAIT: &str = if cfg!(target_env = "musl") {
    "epoll_pwait"
} else {
    "epoll_wait"
};

/// Far above what any step takes, even on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Whether the tests run as root (they load BPF programs).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Says once, on the terminal (past the test harness's capture), that the
/// end-to-end tests were skipped.
pub fn note_skipped() {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "e2e: not root: the end-to-end tests are skipped (they load BPF programs; make test \
             runs them as root)"
        );
    });
}

/// The first line of each end-to-end test: without root, the test is
/// skipped (it returns), and the run says so.
macro_rules! needs_root {
    () => {
        if !$crate::harness::is_root() {
            $crate::harness::note_skipped();
            return;
        }
    };
}

pub fn require_root() {
    assert!(
        is_root(),
        "the end-to-end tests load BPF programs: run them as root (make test)"
    );
}

/// `kd-workload serve`: runs one command at a time, read from its stdin.
pub struct Workload {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Workload {
    pub fn start() -> Self {
        let mut command = Command::new(WORKLOAD);
        command.arg("serve");
        Self::start_with(command)
    }

    /// `kd-workload serve`, all its threads on CPU `cpu`.
    pub fn start_on_cpu(cpu: usize) -> Self {
        Self::start_under(&["taskset", "-c", &cpu.to_string()])
    }

    /// `kd-workload serve` run by `wrapper` (a command that execs it).
    pub fn start_under(wrapper: &[&str]) -> Self {
        let mut command = Command::new(wrapper[0]);
        command.args(&wrapper[1..]).args([WORKLOAD, "serve"]);
        Self::start_with(command)
    }

    /// `kd-workload serve` as a child of a shell, whose pid `pid()` is.
    pub fn start_under_shell() -> Self {
        let mut command = Command::new("sh");
        command.args(["-c", &format!("{WORKLOAD} serve; true")]);
        Self::start_with(command)
    }

    fn start_with(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting kd-workload (built by `cargo build --release`)");
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("reading kd-workload");
        line.trim_end().to_string()
    }

    pub fn expect_line(&mut self, want: &str) {
        assert_eq!(self.read_line(), want);
    }

    /// Starts one command; its output is read line by line.
    pub fn send(&mut self, command: &str) {
        writeln!(self.stdin.as_ref().unwrap(), "{command}").expect("writing kd-workload");
    }

    /// Runs one command, waits until it is done, returns what it printed.
    pub fn run(&mut self, command: &str) -> Vec<String> {
        self.send(command);
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
    pub fn finish(&mut self) {
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

/// A process of a test, killed when dropped whatever the test's outcome.
pub struct KilledOnDrop(pub Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running kernel-delay whose JSON report goes to stdout.
pub struct Trace {
    pub child: Child,
}

impl Trace {
    /// Starts tracing and returns once the window has begun.
    pub fn start(args: &[&str]) -> Self {
        let mut command = Command::new(TOOL);
        command.args(args);
        Self::spawn(command)
    }

    /// Traces `workload` for at most `seconds`.
    pub fn of(workload: &Workload, seconds: &str) -> Self {
        Self::of_with(workload, seconds, &[])
    }

    /// The same, with the options `extra`.
    pub fn of_with(workload: &Workload, seconds: &str, extra: &[&str]) -> Self {
        let pid = workload.pid().to_string();
        Self::start(&[&["--pid", &pid, "--duration", seconds], extra].concat())
    }

    /// `command` runs kernel-delay (possibly through a wrapper).
    pub fn spawn(mut command: Command) -> Self {
        command.arg("--json");
        Self::begin(command)
    }

    /// Starts tracing with a text report to `out`.
    pub fn start_text(args: &[&str], out: &std::path::Path) -> Self {
        let mut command = Command::new(TOOL);
        command.args(args).arg("-o").arg(out);
        Self::begin(command)
    }

    /// Runs `command` and returns once its start line (on stderr: the
    /// report does not go to a terminal) says the window has begun.
    fn begin(mut command: Command) -> Self {
        require_root();
        let mut child = command
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
            first.starts_with("# Start sampling @")
                || first.starts_with("# Waiting for the start trigger "),
            "unexpected first line: {first:?}"
        );
        Trace { child }
    }

    /// Ctrl-C: the window ends and the report comes.
    pub fn interrupt(self) -> Value {
        self.stop(Signal::SIGINT)
    }

    pub fn stop(self, signal: Signal) -> Value {
        self.signal(signal);
        self.report()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }

    pub fn report(self) -> Value {
        let output = self.finish();
        let report = serde_json::from_slice(&output.stdout).expect("the report is JSON");
        assert_budgets_add_up(&report);
        report
    }

    /// Waits for the end of a successful run.
    pub fn finish(self) -> Output {
        let output = wait_with_timeout(self.child);
        assert!(
            output.status.success(),
            "kernel-delay failed: {:?}",
            output.status
        );
        output
    }
}

/// Runs `command` in a fresh kd-workload, traced from before it starts
/// until it is done (Ctrl-C then): what it printed, and the report.
pub fn traced(command: &str) -> (Vec<String>, Value) {
    traced_with(&[], command)
}

/// The same, traced with the options `extra`.
pub fn traced_with(extra: &[&str], command: &str) -> (Vec<String>, Value) {
    let mut workload = Workload::start();
    let trace = Trace::of_with(&workload, "300", extra);
    let printed = workload.run(command);
    (printed, trace.interrupt())
}

pub fn wait_with_timeout(child: Child) -> Output {
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

pub fn threads_named<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .filter(|t| t["comm"] == name)
        .collect()
}

pub fn only_thread<'a>(report: &'a Value, name: &str) -> &'a Value {
    let found = threads_named(report, name);
    assert_eq!(found.len(), 1, "want one thread {name:?} in {report:#}");
    found[0]
}

pub fn syscall<'a>(thread: &'a Value, name: &str) -> Option<&'a Value> {
    thread["syscalls"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

pub fn count(thread: &Value, name: &str) -> u64 {
    syscall(thread, name).map_or(0, |s| s["count"].as_u64().unwrap())
}

pub fn field(value: &Value, key: &str) -> u64 {
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
}

pub const MS: u64 = 1_000_000;

/// The sum of `value`'s fields `keys`.
fn sum(value: &Value, keys: &[&str]) -> u64 {
    keys.iter().map(|key| field(value, key)).sum()
}

/// Every thread's time budget adds up to its observed time, to the ns, and
/// no thread is observed for longer than the window; its ready time is its
/// two parts, the time behind others its holders' shares, its wakeups its
/// wakers' counts; each of its calls' time adds up by thread state, and
/// their histogram holds every sampled call.
pub fn assert_budgets_add_up(report: &Value) {
    let window = field(report, "duration_ns");
    for thread in report["threads"].as_array().unwrap() {
        let time = &thread["time"];
        let parts = sum(
            time,
            &[
                "running_ns",
                "ready_ns",
                "sleeping_ns",
                "blocked_ns",
                "stopped_ns",
            ],
        );
        assert_eq!(parts, field(time, "observed_ns"), "{thread}");
        assert!(field(time, "observed_ns") <= window, "{thread}");
        let ready = sum(time, &["ready_busy_cpu_ns", "ready_idle_cpu_ns"]);
        assert_eq!(ready, field(time, "ready_ns"), "{thread}");
        // Who it waited behind: every ns of its time ready behind others;
        // what woke it: every wakeup.
        let sched = &thread["sched"];
        let total = |list: &str, key: &str| -> u64 {
            let rows = sched[list].as_array().unwrap();
            rows.iter().map(|row| field(row, key)).sum()
        };
        assert_eq!(
            total("ready_behind", "ns"),
            field(time, "ready_busy_cpu_ns"),
            "{thread}"
        );
        if sched["woken_by"].is_array() {
            let woken = total("woken_by", "count");
            assert_eq!(woken, field(sched, "wakeups"), "{thread}");
        }
        // Where it waited (--off-cpu-stacks): every ns asleep and blocked.
        if let Some(stacks) = thread["offcpu_stacks"].as_array() {
            for (state, budget) in [("sleeping", "sleeping_ns"), ("blocked", "blocked_ns")] {
                let charged: u64 = stacks
                    .iter()
                    .filter(|row| row["state"] == state)
                    .map(|row| field(row, "ns"))
                    .sum();
                assert_eq!(charged, field(time, budget), "{state}: {thread}");
            }
        }
        for call in thread["syscalls"].as_array().unwrap() {
            if field(call, "spilled") > 0 {
                continue; // known by their totals only
            }
            let by_state = sum(
                call,
                &[
                    "oncpu_ns",
                    "ready_ns",
                    "sleeping_ns",
                    "blocked_ns",
                    "stopped_ns",
                ],
            );
            assert_eq!(by_state, field(call, "total_ns"), "{call}");
            let ready = sum(call, &["ready_busy_cpu_ns", "ready_idle_cpu_ns"]);
            assert_eq!(ready, field(call, "ready_ns"), "{call}");
            let in_hist: u64 = call["hist"]
                .as_array()
                .unwrap()
                .iter()
                .map(|bucket| bucket[2].as_u64().unwrap())
                .sum();
            assert_eq!(in_hist, field(call, "count"), "{call}");
            let errnos: u64 = call["errnos"]
                .as_object()
                .unwrap()
                .values()
                .map(|n| n.as_u64().unwrap())
                .sum();
            assert_eq!(errnos, field(call, "errors"), "{call}");
        }
    }
}

/// A share of a thread's observed time.
pub fn fraction(thread: &Value, part: &str) -> f64 {
    field(&thread["time"], part) as f64 / field(&thread["time"], "observed_ns") as f64
}

/// A thread's /proc schedstat, as kd-workload prints it.
pub struct Schedstat {
    pub tid: u64,
    pub run_ns: u64,
    pub wait_ns: u64,
    /// The times it was given a CPU.
    pub timeslices: u64,
}

/// The "schedstat TID RUN_NS WAIT_NS TIMESLICES" lines kd-workload prints.
pub fn schedstats(lines: &[String]) -> Vec<Schedstat> {
    lines
        .iter()
        .filter_map(|line| {
            let fields: Vec<u64> = line
                .strip_prefix("schedstat ")?
                .split(' ')
                .map(|f| f.parse().unwrap())
                .collect();
            Some(Schedstat {
                tid: fields[0],
                run_ns: fields[1],
                wait_ns: fields[2],
                timeslices: fields[3],
            })
        })
        .collect()
}

pub fn thread_by_tid(report: &Value, tid: u64) -> &Value {
    report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tid"] == tid)
        .unwrap_or_else(|| panic!("no thread {tid} in {report:#}"))
}

/// Runs kernel-delay in launch mode with `args` and a JSON report to a
/// file: its output, and the report (whose budgets must add up).
pub fn launch(args: &[&str]) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let output = run_tool(&[&["--json", "-o", out.to_str().unwrap()], args].concat());
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_budgets_add_up(&report);
    (output, report)
}

/// Runs kernel-delay with `args` to its end, as root.
pub fn run_tool(args: &[&str]) -> Output {
    require_root();
    let child = Command::new(TOOL)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_timeout(child)
}

pub fn refused(args: &[&str]) -> String {
    let mut command = Command::new(TOOL);
    command.args(args);
    refused_by(command)
}

/// Runs kernel-delay (possibly through a wrapper), which must fail with one
/// clear line on stderr and nothing on stdout.
pub fn refused_by(mut command: Command) -> String {
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

/// bpftrace, as an independent count of what kernel-delay counts.
pub struct Bpftrace {
    child: Child,
    lines: mpsc::Receiver<String>,
}

/// Mounts tracefs where the tools that read tracepoint formats from it
/// (bpftrace, perf) look, unless it is there.
pub fn mount_tracefs() {
    if !std::path::Path::new("/sys/kernel/tracing/events").exists() {
        let status = Command::new("mount")
            .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
            .status()
            .expect("mount");
        assert!(status.success(), "mounting tracefs failed");
    }
}

impl Bpftrace {
    /// Starts `program` and returns once its probes are attached.
    pub fn start(program: &str) -> Self {
        // bpftrace reads tracepoint formats from tracefs (kernel-delay does not).
        mount_tracefs();
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
    pub fn stop(mut self) -> Vec<String> {
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

/// tests/workload/NAME.c built with frame pointers and debug info into
/// `dir`.
pub fn c_workload(name: &str, dir: &std::path::Path) -> std::path::PathBuf {
    c_workload_built(name, dir, &["-g", "-O1", "-fno-omit-frame-pointer"])
}

/// tests/workload/NAME.c compiled with `flags` into a folder of `dir`
/// named after them, as NAME (its threads' name).
pub fn c_workload_built(name: &str, dir: &std::path::Path, flags: &[&str]) -> std::path::PathBuf {
    let source = format!("{}/tests/workload/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let folder = dir.join(flags.concat());
    std::fs::create_dir_all(&folder).expect("a folder for the build");
    let binary = folder.join(name);
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(compiler)
        .args(flags)
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .status()
        .expect("running the C compiler");
    assert!(status.success(), "building {source} failed");
    binary
}

/// The count bpftrace printed for `tid` (`@[TID]: N`).
pub fn bpftrace_count(printed: &[String], tid: u64) -> u64 {
    counted(printed, tid)
        .unwrap_or_else(|| panic!("bpftrace counted nothing for {tid}: {printed:?}"))
}

/// The same where counting nothing is an answer.
pub fn bpftrace_count_or_zero(printed: &[String], tid: u64) -> u64 {
    counted(printed, tid).unwrap_or(0)
}

fn counted(printed: &[String], tid: u64) -> Option<u64> {
    printed
        .iter()
        .find_map(|line| line.strip_prefix(&format!("@[{tid}]: "))?.parse().ok())
}
