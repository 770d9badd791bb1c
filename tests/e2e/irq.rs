//! Interrupts charged to the thread they interrupted, against bpftrace.

use std::process::Command;

use serde_json::Value;

use crate::harness::*;

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
    needs_root!();
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
    needs_root!();
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
    let tid = schedstats(&printed)[0].tid;
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
