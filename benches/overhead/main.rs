//! `make bench`: what kernel-delay costs, against floors measured in the
//! same run. Each workload (kd-workload, started first and told to go once
//! its tracer is attached) runs untraced, under the bench's own floor BPF
//! objects on the same hooks (empty; the filter only; only what any
//! per-call timing must do), and under kernel-delay as a traced process
//! and as an untraced one while kernel-delay traces others, with one target
//! and with a set of two. Rounds alternate through all of them; medians are
//! compared. Then: a target that saturates the CPUs, and the memory for
//! many short-lived threads. Needs root. A benchmark, not a test: it
//! asserts nothing.

mod floors;
mod server;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use floors::{Floor, Level};

const TOOL: &str = env!("CARGO_BIN_EXE_kernel-delay");
const WORKLOAD: &str = env!("KD_WORKLOAD");
const ROUNDS: usize = 5;
const REPORT: &str = "/tmp/kernel-delay-bench.json";
/// Keeps kernel-delay's reader at normal priority (no CAP_SYS_NICE).
const NORMAL_PRIORITY: [&str; 3] = [
    "setpriv",
    "--inh-caps=-sys_nice",
    "--bounding-set=-sys_nice",
];

/// What kernel-delay is asked to trace, besides or instead of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Targets {
    /// The workload alone (one target: a rodata comparison).
    Workload,
    /// The workload and an idle process (a set).
    WorkloadAndOther,
    /// An idle process, not the workload.
    Other,
    /// Two idle processes, not the workload (a set).
    TwoOthers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracing {
    Untraced,
    Floor(Level),
    KernelDelay(Targets),
    /// kernel-delay on the workload alone, with these options.
    KernelDelayWith(&'static [&'static str]),
}

const VARIANTS: [(Tracing, &str); 8] = [
    (Tracing::Untraced, "untraced"),
    (Tracing::Floor(Level::Empty), "floor: empty hooks"),
    (Tracing::Floor(Level::Filter), "floor: filter only"),
    (Tracing::Floor(Level::Timing), "floor: timing only"),
    (Tracing::KernelDelay(Targets::Workload), "kernel-delay"),
    (
        Tracing::KernelDelay(Targets::WorkloadAndOther),
        "kernel-delay, one of two targets",
    ),
    (
        Tracing::KernelDelay(Targets::Other),
        "untraced, kernel-delay on another",
    ),
    (
        Tracing::KernelDelay(Targets::TwoOthers),
        "untraced, kernel-delay on two others",
    ),
];

/// Idle processes for kernel-delay to trace instead of the workload.
struct Others {
    children: [Child; 2],
}

impl Others {
    fn start() -> Self {
        let sleeper = || {
            Command::new("sleep")
                .arg("3600")
                .spawn()
                .expect("starting sleep")
        };
        Others {
            children: [sleeper(), sleeper()],
        }
    }

    fn pids(&self) -> [u32; 2] {
        self.children.each_ref().map(Child::id)
    }
}

impl Drop for Others {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one run measured.
#[derive(Debug, Default, Clone, Copy)]
struct Run {
    /// Wall ns per iteration, as the workload printed it.
    ns: f64,
    /// kernel-delay's own CPU seconds from the workload's start to its own
    /// end (not loading its programs), and its peak resident KiB.
    tool_cpu_s: f64,
    tool_peak_kib: i64,
    /// Records kernel-delay lost, and those it counted.
    lost: u64,
    events: u64,
}

/// A running kernel-delay, stopped with SIGINT.
struct Tool {
    child: Child,
    /// Its CPU seconds when the workload was told to go.
    cpu_at_go: f64,
}

impl Tool {
    fn start(prefix: &[&str], options: &[&str], pids: &[u32]) -> Tool {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.extend([TOOL, "--json", "-o", REPORT, "--duration", "3600"]);
        argv.extend(options);
        argv.push("--pid");
        let joined = pids.join(",");
        argv.push(&joined);
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kernel-delay");
        let mut start = String::new();
        BufReader::new(child.stderr.take().expect("piped"))
            .read_line(&mut start)
            .expect("reading kernel-delay");
        assert!(start.starts_with("# Start sampling"), "{start}");
        Tool {
            child,
            cpu_at_go: 0.0,
        }
    }

    /// Its CPU seconds so far, all its threads (the scheduler's account).
    fn cpu_seconds_so_far(&self) -> f64 {
        let tasks = format!("/proc/{}/task", self.child.id());
        let ns: u64 = std::fs::read_dir(tasks)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        ns as f64 / 1e9
    }

    /// Ends the window: (CPU seconds, peak KiB, lost records, records).
    #[allow(clippy::zombie_processes)] // reaped by wait4
    fn stop(self) -> (f64, i64, u64, u64) {
        let pid = self.child.id() as libc::pid_t;
        kill(Pid::from_raw(pid), Signal::SIGINT).expect("stopping kernel-delay");
        let usage = reap(pid);
        (
            cpu_seconds(&usage) - self.cpu_at_go,
            usage.ru_maxrss,
            reported("lost_events"),
            reported("events"),
        )
    }
}

/// Waits for child `pid`: its resource usage (wait4 also tells CPU time
/// and peak RSS). A vforked child's peak RSS starts from its parent's, so
/// the bench keeps itself small.
fn reap(pid: libc::pid_t) -> libc::rusage {
    let mut status = 0;
    // SAFETY: rusage is plain integers; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; pid is our child, not yet reaped.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert!(
        reaped == pid && libc::WIFEXITED(status),
        "child {pid} failed"
    );
    usage
}

fn cpu_seconds(usage: &libc::rusage) -> f64 {
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// A count at the head of the last report (`events`, `lost_events`), read
/// off its head, not parsed whole (that would make this process, and so
/// its children's peak, large).
fn reported(key: &str) -> u64 {
    let mut head = String::new();
    std::fs::File::open(REPORT)
        .expect("the report")
        .take(64 << 10)
        .read_to_string(&mut head)
        .expect("reading the report");
    let value = head
        .split(&format!("\"{key}\": "))
        .nth(1)
        .unwrap_or_else(|| panic!("{key} in the report"));
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a count")
}

/// What one run has attached: a floor, kernel-delay, or nothing.
struct Attached {
    floor: Option<Floor>,
    tool: Option<Tool>,
}

impl Attached {
    /// Attaches `tracing` for process `pid` (kernel-delay started through
    /// `prefix`), and returns once it is tracing.
    fn to(tracing: Tracing, prefix: &[&str], others: &Others, pid: u32) -> Attached {
        let [one, two] = others.pids();
        let mut attached = Attached {
            floor: None,
            tool: None,
        };
        match tracing {
            Tracing::Untraced => {}
            Tracing::Floor(level) => attached.floor = Some(Floor::attach(level, pid)),
            Tracing::KernelDelay(targets) => {
                let pids = match targets {
                    Targets::Workload => vec![pid],
                    Targets::WorkloadAndOther => vec![pid, one],
                    Targets::Other => vec![one],
                    Targets::TwoOthers => vec![one, two],
                };
                attached.tool = Some(Tool::start(prefix, &[], &pids));
            }
            Tracing::KernelDelayWith(options) => {
                attached.tool = Some(Tool::start(prefix, options, &[pid]));
            }
        }
        attached
    }

    /// The workload is told to go now.
    fn going(&mut self) {
        if let Some(tool) = self.tool.as_mut() {
            tool.cpu_at_go = tool.cpu_seconds_so_far();
        }
    }

    /// Detaches; what kernel-delay measured of itself, if it ran.
    fn detach(self, measured: &mut Run) {
        drop(self.floor);
        if let Some(tool) = self.tool {
            (
                measured.tool_cpu_s,
                measured.tool_peak_kib,
                measured.lost,
                measured.events,
            ) = tool.stop();
        }
    }
}

/// Runs `kd-workload MODE ARGS` under `tracing` (kernel-delay started
/// through `prefix`).
#[allow(clippy::zombie_processes)] // reaped by wait4
fn run(tracing: Tracing, prefix: &[&str], others: &Others, workload: &[&str]) -> Run {
    let mut child = Command::new(WORKLOAD)
        .arg("wait")
        .args(workload)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running the workload");
    let pid = child.id();
    let mut attached = Attached::to(tracing, prefix, others, pid);
    attached.going();
    writeln!(child.stdin.take().expect("piped"), "go").expect("starting the workload");
    let mut printed = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut printed)
        .expect("reading the workload");
    reap(pid as libc::pid_t);
    let mut measured = Run {
        ns: printed
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse().ok())
            .expect("kd-workload prints ns per iteration"),
        ..Run::default()
    };
    attached.detach(&mut measured);
    measured
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The cost of each variant per iteration, untraced first; and the two
/// ratios the project holds itself to.
fn costs_against_floors(others: &Others) {
    let loops: [(&[&str], &str); 2] = [
        (
            &["loop", "2000000"],
            "getppid() in a tight loop, ns per call",
        ),
        (
            &["pingpong", "100000"],
            "pipe ping-pong between two threads on one CPU, ns per round trip",
        ),
    ];
    for (workload, what) in loops {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
        for round in 0..ROUNDS {
            // Each round starts with another variant: what runs after what
            // (a floor's detaching, say) weighs on none more than others.
            for i in (0..VARIANTS.len()).map(|i| (i + round) % VARIANTS.len()) {
                samples[i].push(run(VARIANTS[i].0, &[], others, workload).ns);
            }
        }
        let medians: Vec<f64> = samples.into_iter().map(median).collect();
        let untraced = medians[0];
        let adds = |tracing: Tracing| {
            let i = VARIANTS
                .iter()
                .position(|(v, _)| *v == tracing)
                .expect("a variant");
            medians[i] - untraced
        };
        println!();
        println!("{what} ({} iterations)", workload[1]);
        println!("  {:<40} {:>10} {:>10}", "", "median", "adds");
        for ((_, label), median) in VARIANTS.iter().zip(&medians) {
            println!("  {label:<40} {median:>10.1} {:>10.1}", median - untraced);
        }
        let timing = adds(Tracing::Floor(Level::Timing));
        let filter = adds(Tracing::Floor(Level::Filter));
        println!(
            "  kernel-delay adds {:.2}x what timing alone adds ({:.2}x with a set of targets); target <= 1.10",
            adds(Tracing::KernelDelay(Targets::Workload)) / timing,
            adds(Tracing::KernelDelay(Targets::WorkloadAndOther)) / timing
        );
        println!(
            "  an untraced process pays {:.2}x the filter floor ({:.2}x when kernel-delay traces a set); target <= 1.10",
            adds(Tracing::KernelDelay(Targets::Other)) / filter,
            adds(Tracing::KernelDelay(Targets::TwoOthers)) / filter
        );
    }
}

/// 5,000 threads making 1,000 calls each at once: the target alone keeps
/// both CPUs busy, and the reader must take its share to keep up.
fn saturated_target(others: &Others) {
    let workload: &[&str] = &["crowd", "5000", "1000"];
    let tracing = Tracing::KernelDelay(Targets::Workload);
    let prefixes: [(&[&str], &str); 2] = [
        (&[], "traced, reader SCHED_FIFO"),
        (&NORMAL_PRIORITY, "traced, reader at normal priority"),
    ];
    let mut plain = Vec::new();
    let mut traced: [(Vec<f64>, Vec<f64>, u64); 2] = Default::default();
    for _ in 0..ROUNDS {
        plain.push(run(Tracing::Untraced, &[], others, workload).ns);
        for ((prefix, _), (ns, reader_cpu, lost)) in prefixes.iter().zip(traced.iter_mut()) {
            let measured = run(tracing, prefix, others, workload);
            ns.push(measured.ns);
            reader_cpu.push(measured.tool_cpu_s);
            *lost += measured.lost;
        }
    }
    println!();
    println!("5,000 threads x 1,000 getppid() at once, both CPUs saturated by the target:");
    println!("wall ns per call; kernel-delay's CPU seconds; lost records in all {ROUNDS} rounds");
    println!("  {:<40} {:>10.1}", "untraced", median(plain));
    for ((ns, reader_cpu, lost), (_, label)) in traced.into_iter().zip(prefixes) {
        println!(
            "  {label:<40} {:>10.1}   reader {:.2} s CPU, lost {lost}",
            median(ns),
            median(reader_cpu)
        );
    }
}

/// A measure of what stacks cost: `variants` (kernel-delay alone, then
/// the events without stacks, then with them) run `command` with `few`
/// and `many` iterations. kernel-delay's CPU per event is the difference
/// between the two lengths, without what it spends once (reading each
/// file's call frame information, symbolizing the few distinct stacks).
struct StackCost {
    title: &'static str,
    command: &'static str,
    few: u32,
    many: u32,
    /// Events (slow calls, switches out) per iteration.
    events_per_iteration: u32,
    event: &'static str,
    variants: [(Tracing, &'static str); 3],
}

fn stack_cost(others: &Others, cost: &StackCost) {
    let variants = &cost.variants;
    // [variant][loop length] -> samples
    let mut ns = vec![[Vec::new(), Vec::new()]; variants.len()];
    let mut cpu = vec![[Vec::new(), Vec::new()]; variants.len()];
    let mut lost = 0;
    for round in 0..ROUNDS {
        for i in (0..variants.len()).map(|i| (i + round) % variants.len()) {
            for (j, iterations) in [cost.few, cost.many].into_iter().enumerate() {
                let iterations = iterations.to_string();
                let measured = run(variants[i].0, &[], others, &[cost.command, &iterations]);
                ns[i][j].push(measured.ns);
                cpu[i][j].push(measured.tool_cpu_s);
                lost += measured.lost;
            }
        }
    }
    let median_of = |samples: &[Vec<f64>; 2], j: usize| median(samples[j].clone());
    let events = f64::from((cost.many - cost.few) * cost.events_per_iteration);
    let per_event_us = |i: usize| (median_of(&cpu[i], 1) - median_of(&cpu[i], 0)) / events * 1e6;
    println!();
    println!(
        "{} ({} iterations; kernel-delay's CPU per {} from {} iterations against {})",
        cost.title, cost.many, cost.event, cost.few, cost.many
    );
    for (i, (_, label)) in variants.iter().enumerate() {
        println!(
            "  {label:<40} {:>10.1}   {:>6.2} us",
            median_of(&ns[i], 1),
            per_event_us(i)
        );
    }
    let per_iteration = f64::from(cost.events_per_iteration);
    println!(
        "  the stacks add {:.0} ns to each {} in the traced threads and {:.1} us of kernel-delay's CPU; lost records in all {ROUNDS} rounds: {lost}",
        (median_of(&ns[2], 1) - median_of(&ns[1], 1)) / per_iteration,
        cost.event,
        per_event_us(2) - per_event_us(1)
    );
}

/// What a slow call's stacks cost (--syscall-events): every call of a
/// getppid() loop an event, without stacks and with them (the kernel
/// stack's id, and the user stack copied to be unwound).
const SLOW_CALL_STACKS: StackCost = StackCost {
    title: "slow calls (--syscall-events 0: every call an event), getppid(): ns per call",
    command: "loop",
    few: 2_000,
    many: 20_000,
    events_per_iteration: 1,
    event: "slow call",
    // Room for every event with its copy (the reader unwinds slower than
    // the loop makes them): nothing lost.
    variants: [
        (Tracing::KernelDelay(Targets::Workload), "kernel-delay"),
        (
            Tracing::KernelDelayWith(&[
                "-s",
                "0",
                "--stack-trace-size",
                "0",
                "--ringbuf-mb",
                "1024",
            ]),
            "every call an event, no stacks",
        ),
        (
            Tracing::KernelDelayWith(&["-s", "0", "--ringbuf-mb", "1024"]),
            "every call an event, with its stacks",
        ),
    ],
};

/// What --off-cpu-stacks costs: each of the ping-pong's two threads
/// leaves its CPU once a round trip, taking its stacks there.
const OFF_CPU_STACKS: StackCost = StackCost {
    title: "off-CPU stacks (--off-cpu-stacks), pipe ping-pong: ns per round trip",
    command: "pingpong",
    few: 2_000,
    many: 20_000,
    events_per_iteration: 2,
    event: "switch out",
    variants: [
        (Tracing::KernelDelay(Targets::Workload), "kernel-delay"),
        (
            Tracing::KernelDelayWith(&["--ringbuf-mb", "256"]),
            "kernel-delay, the same ring buffer",
        ),
        (
            Tracing::KernelDelayWith(&["--off-cpu-stacks", "--ringbuf-mb", "256"]),
            "--off-cpu-stacks",
        ),
    ],
};

/// What --record and --perfetto cost: the bytes they write a record, and
/// kernel-delay's CPU a record with them and without (a getppid() loop: a
/// record a call).
fn recording_cost(others: &Others) {
    const RECORDING: &str = "/tmp/kernel-delay-bench.out";
    let variants: [(Tracing, &str); 3] = [
        (Tracing::KernelDelay(Targets::Workload), "kernel-delay"),
        (
            Tracing::KernelDelayWith(&["--record", RECORDING]),
            "kernel-delay --record",
        ),
        (
            Tracing::KernelDelayWith(&["--perfetto", RECORDING]),
            "kernel-delay --perfetto",
        ),
    ];
    let workload = ["loop", "3000000"];
    // [variant] -> (ns per call, CPU ns per record, bytes per record)
    let mut samples = vec![(Vec::new(), Vec::new(), Vec::new()); variants.len()];
    let mut lost = 0;
    for round in 0..ROUNDS {
        for i in (0..variants.len()).map(|i| (i + round) % variants.len()) {
            let _ = std::fs::remove_file(RECORDING);
            let measured = run(variants[i].0, &[], others, &workload);
            let records = measured.events.max(1) as f64;
            let bytes = std::fs::metadata(RECORDING).map_or(0, |m| m.len());
            samples[i].0.push(measured.ns);
            samples[i].1.push(measured.tool_cpu_s * 1e9 / records);
            samples[i].2.push(bytes as f64 / records);
            lost += measured.lost;
        }
    }
    let _ = std::fs::remove_file(RECORDING);
    println!();
    println!(
        "--record and --perfetto, {} getppid() (a record each): ns per call; kernel-delay's CPU per record; bytes written per record",
        workload[1]
    );
    for ((ns, cpu, bytes), (_, label)) in samples.into_iter().zip(variants) {
        println!(
            "  {label:<40} {:>10.1} {:>8.1} ns {:>8.2} B",
            median(ns),
            median(cpu),
            median(bytes)
        );
    }
    println!("  lost records in all {ROUNDS} rounds: {lost}");
}

/// Peak memory for many short-lived threads, and what each one adds.
fn memory_per_thread(others: &Others) {
    println!();
    println!("kernel-delay peak resident memory (16 MiB ring buffer, mapped twice)");
    let tracing = Tracing::KernelDelay(Targets::Workload);
    let mut peaks = Vec::new();
    for (threads, calls) in [(1, 1_000_000), (10_000, 100), (40_000, 100)] {
        let (threads_arg, calls_arg) = (threads.to_string(), calls.to_string());
        let peak = run(tracing, &[], others, &["churn", &threads_arg, &calls_arg]).tool_peak_kib;
        peaks.push((threads, peak));
        let label = format!("{threads} threads x {calls} calls");
        println!("  {label:<40} {:>7.1} MiB", peak as f64 / 1024.0);
    }
    let [_, (few, few_kib), (many, many_kib)] = [peaks[0], peaks[1], peaks[2]];
    let per_thread = (many_kib - few_kib) as f64 * 1024.0 / f64::from(many - few);
    println!("  {:<40} {per_thread:>7.0} bytes", "each thread adds");
}

fn main() {
    let others = Others::start();
    println!(
        "median of {ROUNDS} rounds, the variants in turn in each round (a different one first)"
    );
    costs_against_floors(&others);
    server::requests_per_second(&others);
    stack_cost(&others, &SLOW_CALL_STACKS);
    stack_cost(&others, &OFF_CPU_STACKS);
    recording_cost(&others);
    saturated_target(&others);
    memory_per_thread(&others);
    let _ = std::fs::remove_file(REPORT);
}
