//! `make bench`: what kernel-delay adds to each system call of a traced
//! thread. One thread calls getppid() in a tight loop, untraced and then
//! under kernel-delay (launch mode), alternately; medians are compared.
//! Needs root. A benchmark, not a test: it asserts nothing.

use std::process::Command;

const TOOL: &str = env!("CARGO_BIN_EXE_kernel-delay");
const WORKLOAD: &str = env!("CARGO_BIN_EXE_kd-workload");
const CALLS: &str = "5000000";
const ROUNDS: usize = 5;

/// Mean ns per call printed by `kd-workload loop`, run through `prefix`.
fn ns_per_call(prefix: &[&str]) -> f64 {
    let mut argv: Vec<&str> = prefix.to_vec();
    argv.extend([WORKLOAD, "loop", CALLS]);
    let output = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .expect("running the loop");
    assert!(
        output.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("kd-workload loop prints ns per call")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let traced_prefix = [TOOL, "--output", "/dev/null", "--"];
    let (mut plain, mut traced) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        plain.push(ns_per_call(&[]));
        traced.push(ns_per_call(&traced_prefix));
    }
    let (plain, traced) = (median(plain), median(traced));
    println!("getppid() in a tight loop, {CALLS} calls, median of {ROUNDS} rounds");
    println!("{:<28} {:>12}", "", "ns per call");
    println!("{:<28} {:>12.1}", "untraced", plain);
    println!("{:<28} {:>12.1}", "traced by kernel-delay", traced);
    println!("{:<28} {:>12.1}", "added by tracing", traced - plain);
}
