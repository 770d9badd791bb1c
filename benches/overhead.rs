//! `make bench`: what kernel-delay adds to each system call of a traced
//! thread, and the memory it takes. One thread calls getppid() in a tight
//! loop, untraced and then under kernel-delay (launch mode), alternately;
//! medians are compared. Needs root. A benchmark, not a test: it asserts
//! nothing.

use std::io::Read;
use std::process::{Command, Stdio};

use nix::libc;

const TOOL: &str = env!("CARGO_BIN_EXE_kernel-delay");
const WORKLOAD: &str = env!("CARGO_BIN_EXE_kd-workload");
const CALLS: &str = "5000000";
const ROUNDS: usize = 5;

/// Mean ns per call printed by `kd-workload loop`, run through `prefix`,
/// and the peak resident memory (KiB) of the process `prefix` starts.
#[allow(clippy::zombie_processes)] // reaped by wait4, which Clippy does not know
fn ns_per_call(prefix: &[&str]) -> (f64, i64) {
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend([WORKLOAD, "loop", CALLS]);
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
        .expect("kd-workload loop prints ns per call");
    (ns, usage.ru_maxrss)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let traced_prefix = [TOOL, "--output", "/dev/null", "--"];
    let (mut plain, mut traced, mut peak_kib) = (Vec::new(), Vec::new(), 0);
    for _ in 0..ROUNDS {
        plain.push(ns_per_call(&[]).0);
        let (ns, kib) = ns_per_call(&traced_prefix);
        traced.push(ns);
        peak_kib = peak_kib.max(kib);
    }
    let (plain, traced) = (median(plain), median(traced));
    println!("getppid() in a tight loop, {CALLS} calls, median of {ROUNDS} rounds");
    println!("{:<28} {:>12}", "", "ns per call");
    println!("{:<28} {:>12.1}", "untraced", plain);
    println!("{:<28} {:>12.1}", "traced by kernel-delay", traced);
    println!("{:<28} {:>12.1}", "added by tracing", traced - plain);
    println!(
        "kernel-delay peak resident memory: {:.1} MiB (with its default 16 MiB ring buffer)",
        peak_kib as f64 / 1024.0
    );
}
