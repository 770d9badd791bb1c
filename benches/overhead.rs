//! `make bench`: what kernel-delay adds to a traced thread's work, what its
//! reader takes from a target that saturates the CPUs, and the memory it
//! holds. Each workload runs untraced and under kernel-delay (launch
//! mode), alternately, and the medians are compared. Needs root. A
//! benchmark, not a test: it asserts nothing.

use std::io::Read;
use std::process::{Command, Stdio};

use nix::libc;

const TOOL: &str = env!("CARGO_BIN_EXE_kernel-delay");
const WORKLOAD: &str = env!("CARGO_BIN_EXE_kd-workload");
const ROUNDS: usize = 5;
const REPORT: &str = "/tmp/kernel-delay-bench.json";

/// Starts kernel-delay with its report in REPORT.
const TRACED: [&str; 5] = [TOOL, "--json", "-o", REPORT, "--"];
/// The same, with the reader kept at normal priority (no CAP_SYS_NICE).
const TRACED_NORMAL_PRIORITY: [&str; 8] = [
    "setpriv",
    "--inh-caps=-sys_nice",
    "--bounding-set=-sys_nice",
    TOOL,
    "--json",
    "-o",
    REPORT,
    "--",
];

/// What one run of a kd-workload timing mode measured.
struct Run {
    /// Wall ns per iteration, as the workload printed it.
    ns: f64,
    /// CPU seconds of the process `prefix` started (with the workload).
    cpu_s: f64,
    /// CPU seconds of the workload alone, as it printed them.
    workload_cpu_s: f64,
    /// Peak resident memory of the process `prefix` started, KiB.
    peak_kib: i64,
}

/// Runs `kd-workload MODE ARGS` through `prefix`.
#[allow(clippy::zombie_processes)] // reaped by wait4, which Clippy does not know
fn run(prefix: &[&str], workload: &[&str]) -> Run {
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.push(WORKLOAD);
    argv.extend(workload);
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running the workload");
    let mut printed = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut printed)
        .expect("reading the workload");
    // wait4 rather than Child::wait: it also tells the CPU time and peak RSS.
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain integers; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; pid is our child, not yet reaped.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let succeeded = reaped == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(succeeded, "{argv:?} failed");
    let fields: Vec<f64> = printed
        .split_whitespace()
        .map(|f| f.parse().expect("kd-workload prints numbers"))
        .collect();
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Run {
        ns: fields[0],
        cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        workload_cpu_s: fields[1],
        peak_kib: usage.ru_maxrss,
    }
}

/// lost_events of the last traced run's report. Read off its head, not
/// parsed whole: a child's peak RSS starts from ours (the kernel counts
/// the parent's memory in a vforked child until exec), so this process
/// must stay small.
fn lost_events() -> u64 {
    let mut head = String::new();
    std::fs::File::open(REPORT)
        .expect("the report")
        .take(64 << 10)
        .read_to_string(&mut head)
        .expect("reading the report");
    let value = head
        .split("\"lost_events\": ")
        .nth(1)
        .expect("lost_events in the report");
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a count")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn row(label: &str, ns: f64, note: &str) {
    println!("  {label:<32} {ns:>10.1}{note}");
}

/// One thread's system calls, and a round trip's calls, wakeups and
/// context switches: the cost added per event.
fn per_event_cost() -> i64 {
    let loops: [(&[&str], &str); 2] = [
        (
            &["loop", "5000000"],
            "getppid() in a tight loop, ns per call",
        ),
        (
            &["pingpong", "200000"],
            "pipe ping-pong between two threads, ns per round trip",
        ),
    ];
    let mut peak_kib = 0;
    for (workload, what) in loops {
        let (mut plain, mut traced) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            plain.push(run(&[], workload).ns);
            let traced_run = run(&TRACED, workload);
            traced.push(traced_run.ns);
            peak_kib = peak_kib.max(traced_run.peak_kib);
        }
        let (plain, traced) = (median(plain), median(traced));
        println!();
        println!("{what} ({} iterations)", workload[1]);
        row("untraced", plain, "");
        row("traced by kernel-delay", traced, "");
        row("added by tracing", traced - plain, "");
    }
    peak_kib
}

/// 5,000 threads making 1,000 calls each at once: the target alone keeps
/// both CPUs busy, and the reader must take its share to keep up.
fn saturated_target() {
    let workload: &[&str] = &["crowd", "5000", "1000"];
    let mut plain = Vec::new();
    let mut traced: [(Vec<f64>, Vec<f64>, u64); 2] = Default::default();
    let prefixes: [&[&str]; 2] = [&TRACED, &TRACED_NORMAL_PRIORITY];
    for _ in 0..ROUNDS {
        plain.push(run(&[], workload).ns);
        for (prefix, (ns, reader_cpu, lost)) in prefixes.iter().zip(traced.iter_mut()) {
            let traced_run = run(prefix, workload);
            ns.push(traced_run.ns);
            reader_cpu.push(traced_run.cpu_s - traced_run.workload_cpu_s);
            *lost += lost_events();
        }
    }
    let plain = median(plain);
    println!();
    println!("5,000 threads x 1,000 getppid() at once, both CPUs saturated by the target:");
    println!("wall ns per call; the reader's CPU seconds; lost records in all {ROUNDS} rounds");
    row("untraced", plain, "");
    for ((ns, reader_cpu, lost), label) in traced.into_iter().zip([
        "traced, reader SCHED_FIFO",
        "traced, reader at normal priority",
    ]) {
        let note = format!("   reader {:.2} s CPU, lost {lost}", median(reader_cpu));
        row(label, median(ns), &note);
    }
}

/// Peak memory for many short-lived threads, and what each one adds.
fn memory_per_thread(baseline_kib: i64) {
    println!();
    println!("kernel-delay peak resident memory (16 MiB ring buffer, mapped twice)");
    println!(
        "  {:<32} {:>7.1} MiB",
        "one busy thread",
        baseline_kib as f64 / 1024.0
    );
    let mut peaks = Vec::new();
    for threads in [10_000, 40_000] {
        let threads_arg = threads.to_string();
        let peak = run(&TRACED, &["churn", &threads_arg, "100"]).peak_kib;
        peaks.push((threads, peak));
        let label = format!("{threads} threads x 100 calls");
        println!("  {label:<32} {:>7.1} MiB", peak as f64 / 1024.0);
    }
    let [(few, few_kib), (many, many_kib)] = [peaks[0], peaks[1]];
    let per_thread = (many_kib - few_kib) as f64 * 1024.0 / f64::from(many - few);
    println!("  {:<32} {per_thread:>7.0} bytes", "each thread adds");
}

fn main() {
    println!("median of {ROUNDS} rounds, untraced and traced alternately");
    let peak_kib = per_event_cost();
    saturated_target();
    memory_per_thread(peak_kib);
    let _ = std::fs::remove_file(REPORT);
}
