//! Why threads waited: the tasks that held their CPU while they were
//! ready, and what woke them, against workloads whose answer is known.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::*;

/// The last CPU, which the busy loops and the workload share.
fn last_cpu() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) - 1
}

/// A busy loop in a process of its own (a shell, `sh`) on `cpu`, killed
/// when dropped, whatever the test's outcome.
struct BusyLoop(KilledOnDrop);

impl BusyLoop {
    fn on(cpu: usize) -> Self {
        let child = Command::new("taskset")
            .args(["-c", &cpu.to_string(), "sh", "-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .spawn()
            .expect("starting a busy loop");
        BusyLoop(KilledOnDrop(child))
    }

    fn pid(&self) -> u64 {
        u64::from(self.0 .0.id())
    }
}

fn rows<'a>(thread: &'a Value, list: &str) -> &'a Vec<Value> {
    thread["sched"][list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list}: {thread}"))
}

/// The time `thread` waited behind tasks of process `pid`.
fn behind_process(thread: &Value, pid: u64) -> u64 {
    let of_pid = |row: &&Value| row["pid"].as_u64() == Some(pid);
    rows(thread, "ready_behind")
        .iter()
        .filter(of_pid)
        .map(|row| field(row, "ns"))
        .sum()
}

/// The wakeups of `thread` that `keep` says are its waker's.
fn woken_by(thread: &Value, keep: impl Fn(&Value) -> bool) -> u64 {
    rows(thread, "woken_by")
        .iter()
        .filter(|row| keep(row))
        .map(|row| field(row, "count"))
        .sum()
}

/// A sleeper sharing its CPU with the caller's busy loops, traced: the
/// report, and bpftrace's own account of the time it waited behind each
/// task, by process id (from its creation, wakeup or preemption to its
/// switch in, charged to the task switched out then). At nice 19, each of
/// its wakeups waits out a loop's turn.
fn sleeper_beside_busy_loops() -> (Value, Vec<String>) {
    let cpu = last_cpu().to_string();
    let mut workload = Workload::start_under(&["nice", "-n", "19", "taskset", "-c", &cpu]);
    // The threads the workload creates (the sleeper), by thread id: a new
    // thread is named only once it runs.
    let independent = Bpftrace::start(&format!(
        r#"tracepoint:sched:sched_process_fork /args->parent_pid == {pid}/ {{
            @new[args->child_pid] = 1;
        }}
        tracepoint:sched:sched_wakeup,tracepoint:sched:sched_wakeup_new /@new[args->pid]/ {{
            @start[args->pid] = nsecs;
        }}
        tracepoint:sched:sched_switch /@new[args->prev_pid] && (args->prev_state & 0xff) == 0/ {{
            @start[args->prev_pid] = nsecs;
        }}
        tracepoint:sched:sched_switch /@new[args->next_pid] && @start[args->next_pid]/ {{
            @[args->prev_pid] = sum(nsecs - @start[args->next_pid]);
            delete(@start[args->next_pid]);
        }}
        END {{ clear(@start); clear(@new); }}"#,
        pid = workload.pid()
    ));
    let trace = Trace::of(&workload, "300");
    workload.run("sleep 500 1");
    let report = trace.interrupt();
    let printed = independent.stop();
    (report, printed)
}

/// kernel-delay's time behind `pid` agrees with bpftrace's.
fn agrees_with_bpftrace(thread: &Value, printed: &[String], pid: u64) {
    let ours = behind_process(thread, pid) as f64;
    let theirs = bpftrace_count(printed, pid) as f64;
    assert!(
        (ours - theirs).abs() <= 0.05 * theirs + MS as f64,
        "{ours} ns behind {pid}, bpftrace {theirs}: {thread}"
    );
}

#[test]
fn a_sleeper_waits_behind_the_busy_process_on_its_cpu() {
    needs_root!();
    let busy = [BusyLoop::on(last_cpu())];
    let (report, printed) = sleeper_beside_busy_loops();
    let sleeper = only_thread(&report, "sleeper");
    agrees_with_bpftrace(sleeper, &printed, busy[0].pid());
    let row = rows(sleeper, "ready_behind")
        .iter()
        .find(|row| row["pid"].as_u64() == Some(busy[0].pid()))
        .unwrap_or_else(|| panic!("not behind the busy loop: {sleeper}"));
    assert_eq!(row["tid"].as_u64(), Some(busy[0].pid()));
    assert_eq!(row["comm"], "sh");
    assert_eq!(row["same_process"], false);
    assert_eq!(row["kernel_thread"], false);
    // Its wakeups found the CPU busy with the loop.
    assert!(field(row, "count") >= 50, "{sleeper}");
}

#[test]
fn two_busy_processes_on_its_cpu_share_its_wait() {
    needs_root!();
    let busy = [BusyLoop::on(last_cpu()), BusyLoop::on(last_cpu())];
    let (report, printed) = sleeper_beside_busy_loops();
    let sleeper = only_thread(&report, "sleeper");
    let behind = busy.map(|loop_| {
        agrees_with_bpftrace(sleeper, &printed, loop_.pid());
        behind_process(sleeper, loop_.pid()) as f64
    });
    let share = behind[0] / (behind[0] + behind[1]);
    assert!((0.25..=0.75).contains(&share), "{share}: {sleeper}");
}

#[test]
fn a_sleeper_waits_behind_its_own_spinning_sibling() {
    needs_root!();
    let mut workload = Workload::start_on_cpu(last_cpu());
    let trace = Trace::of(&workload, "300");
    workload.run("crowded-sleep 300 1");
    let report = trace.interrupt();
    let sleeper = only_thread(&report, "sleeper");
    let spinner = only_thread(&report, "spinner");
    let sibling = rows(sleeper, "ready_behind")
        .iter()
        .find(|row| row["tid"] == spinner["tid"])
        .unwrap_or_else(|| panic!("not behind the spinner: {sleeper}"));
    assert_eq!(sibling["same_process"], true, "{sleeper}");
    assert_eq!(sibling["pid"], sleeper["pid"], "{sleeper}");
    assert!(field(sibling, "count") >= 50, "{sleeper}");
    // The sleeper, woken, takes the CPU from the spinner.
    let preempted = rows(spinner, "preempted_by");
    let by_sleeper = preempted
        .iter()
        .find(|row| row["tid"] == sleeper["tid"])
        .unwrap_or_else(|| panic!("{spinner}"));
    assert!(field(by_sleeper, "count") >= 100, "{spinner}");
}

/// Checks that each thread of `tids` was woken by the one before it (the
/// first by the last) for at least 99 % of its wakeups.
fn each_woken_by_the_one_before(report: &Value, tids: &[u64]) {
    for (i, &tid) in tids.iter().enumerate() {
        let before = tids[(i + tids.len() - 1) % tids.len()];
        let thread = thread_by_tid(report, tid);
        let wakeups = field(&thread["sched"], "wakeups");
        assert!(wakeups >= 1_000, "{thread}");
        let by_it = woken_by(thread, |row| row["tid"].as_u64() == Some(before));
        assert!(
            by_it as f64 >= 0.99 * wakeups as f64,
            "{by_it} of {wakeups} by {before}: {thread}"
        );
    }
}

#[test]
fn ping_pong_threads_are_woken_by_each_other() {
    needs_root!();
    let (_, report) = launch(&["--wakers", "--", WORKLOAD, "pingpong", "20000"]);
    let tids: Vec<u64> = threads_named(&report, "kd-workload")
        .iter()
        .map(|t| field(t, "tid"))
        .collect();
    assert_eq!(tids.len(), 2, "{report}");
    each_woken_by_the_one_before(&report, &tids);
}

#[test]
fn threads_on_any_cpu_are_woken_by_the_one_that_wrote_to_them() {
    needs_root!();
    // relay-I reads from relay-(I-1): its waker, on whichever CPU, even
    // when the wakeup itself runs on the sleeper's idle CPU.
    let (printed, report) = traced_with(&["--wakers"], "relay 3000");
    assert_eq!(schedstats(&printed).len(), 4, "{printed:?}");
    let tids: Vec<u64> = (0..4)
        .map(|i| field(only_thread(&report, &format!("relay-{i}")), "tid"))
        .collect();
    each_woken_by_the_one_before(&report, &tids);
}

#[test]
fn wakers_are_named_only_when_asked() {
    needs_root!();
    let (_, report) = traced("sleep 20 1");
    let sleeper = only_thread(&report, "sleeper");
    assert!(sleeper["sched"]["woken_by"].is_null(), "{sleeper}");
    assert!(field(&sleeper["sched"], "wakeups") >= 18, "{sleeper}");
}

#[test]
fn a_sleep_is_ended_by_the_timer_interrupt() {
    needs_root!();
    let (_, report) = traced_with(&["--wakers"], "sleep 200 2");
    let sleeper = only_thread(&report, "sleeper");
    let wakeups = field(&sleeper["sched"], "wakeups");
    // 200 sleeps; on a busy machine the kernel may end one without a
    // sched_wakeup (bpftrace counts the same).
    assert!(wakeups >= 180, "{sleeper}");
    let by_interrupts = woken_by(sleeper, |row| row["irq"].is_string());
    assert!(
        by_interrupts as f64 >= 0.9 * wakeups as f64,
        "{by_interrupts} of {wakeups}: {sleeper}"
    );
    for row in rows(sleeper, "woken_by") {
        if row["irq"].is_string() {
            assert!(row["tid"].is_null() && row["comm"].is_null(), "{row}");
        }
    }
    // The time asleep those wakeups ended: each about 2 ms.
    let ended: u64 = rows(sleeper, "woken_by")
        .iter()
        .map(|row| field(row, "ended_ns"))
        .sum();
    assert!(ended >= 180 * 2 * MS, "{sleeper}");
    assert!(ended <= field(&sleeper["time"], "sleeping_ns"), "{sleeper}");
}

#[test]
fn a_udp_receiver_is_woken_by_net_rx_or_its_sender() {
    needs_root!();
    let mut workload = Workload::start();
    let trace = Trace::of_with(&workload, "300", &["--wakers"]);
    workload.send("udp-receive 300");
    let port = workload.read_line();
    let port = port.strip_prefix("port ").expect("the receiver's port");
    let sender = Command::new(WORKLOAD)
        .args(["udp-send", port, "300"])
        .spawn()
        .expect("starting the sender");
    let sender_pid = u64::from(sender.id());
    assert!(wait_with_timeout(sender).status.success());
    workload.expect_line("done");
    let report = trace.interrupt();
    let receiver = only_thread(&report, "udp-receiver");
    let wakeups = field(&receiver["sched"], "wakeups");
    assert!(wakeups >= 250, "{receiver}");
    let known = woken_by(receiver, |row| {
        row["irq"] == "NET_RX" || row["pid"].as_u64() == Some(sender_pid)
    });
    assert!(
        known as f64 >= 0.95 * wakeups as f64,
        "{known} of {wakeups} by NET_RX or {sender_pid}: {receiver}"
    );
}
