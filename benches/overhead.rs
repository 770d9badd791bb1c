//! `make bench`: what kernel-delay adds to a traced thread's work, and the
//! memory it takes. Two loops, each untraced and then under kernel-delay
//! (launch mode), alternately, medians compared: one thread calling
//! getppid() (a system call), and two threads passing a byte back and forth
//! over pipes (system calls, wakeups and context switches). Needs root. A
//! benchmark, not a test: it asserts nothing.

use std::io::Read;
use std::process::{Command, Stdio};

use nix::libc;

const TOOL: &str = env!("CARGO_BIN_EXE_kernel-delay");
const WORKLOAD: &str = env!("CARGO_BIN_EXE_kd-workload");
const ROUNDS: usize = 5;

/// The loops: kd-workload's arguments, and what one iteration is.
const LOOPS: [(&str, &str, &str); 2] = [
    ("loop", "5000000", "getppid() in a tight loop, ns per call"),
    (
        "pingpong",
        "200000",
        "pipe ping-pong between two threads, ns per round trip",
    ),
];

/// Mean ns per iteration printed by `kd-workload LOOP N`, run through
/// `prefix`, and the peak resident memory (KiB) of the process `prefix` starts.
#[allow(clippy::zombie_processes)] // reaped by wait4, which Clippy does not know
fn ns_per_iteration(prefix: &[&str], workload: &[&str]) -> (f64, i64) {
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.push(WORKLOAD);
    argv.extend(workload);
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("running the loop");
    let mut printed = String::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_string(&mut printed)
        .expect("reading the loop");
    // wait4 rather than Child::wait: it also tells the peak RSS.
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain integers; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to locals; pid is our child, not yet reaped.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let succeeded = reaped == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(succeeded, "{argv:?} failed");
    let ns = printed
        .trim()
        .parse()
        .expect("kd-workload prints ns per iteration");
    (ns, usage.ru_maxrss)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let traced_prefix = [TOOL, "--output", "/dev/null", "--"];
    let mut peak_kib = 0;
    println!("median of {ROUNDS} rounds, untraced and traced alternately");
    for (mode, iterations, what) in LOOPS {
        let (mut plain, mut traced) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            plain.push(ns_per_iteration(&[], &[mode, iterations]).0);
            let (ns, kib) = ns_per_iteration(&traced_prefix, &[mode, iterations]);
            traced.push(ns);
            peak_kib = peak_kib.max(kib);
        }
        let (plain, traced) = (median(plain), median(traced));
        println!();
        println!("{what} ({iterations} iterations)");
        println!("  {:<26} {:>10.1}", "untraced", plain);
        println!("  {:<26} {:>10.1}", "traced by kernel-delay", traced);
        println!("  {:<26} {:>10.1}", "added by tracing", traced - plain);
    }
    println!();
    println!(
        "kernel-delay peak resident memory: {:.1} MiB (with its default 16 MiB ring buffer)",
        peak_kib as f64 / 1024.0
    );
}
