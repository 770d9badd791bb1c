//! Scheduling: where each thread's time went, against the kernel's own
//! /proc schedstat.

use std::process::Command;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::*;

#[test]
fn two_threads_sharing_one_cpu_each_wait_half_the_time() {
    needs_root!();
    let (printed, report) = traced("spin 2 3000");
    let kernel_accounts = schedstats(&printed);
    assert_eq!(kernel_accounts.len(), 2, "{printed:?}");
    for Schedstat {
        tid,
        run_ns,
        wait_ns,
        ..
    } in kernel_accounts
    {
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
    needs_root!();
    let (_, report) = traced("sleep 25 40");
    let sleeper = only_thread(&report, "sleeper");
    let sleeping = fraction(sleeper, "sleeping_ns");
    assert!(sleeping > 0.95, "sleeping {sleeping}: {sleeper}");
    let sleeps = &sleeper["sched"]["sleep"];
    assert!(field(sleeps, "count") >= 25, "{sleeper}");
    assert!(field(sleeps, "p50_ns") >= 40 * MS, "{sleeper}");
}

#[test]
fn a_thread_blocked_in_read_all_window_is_reported_asleep() {
    needs_root!();
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
    needs_root!();
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
    needs_root!();
    let (printed, report) = traced("fsync 500");
    let Schedstat {
        tid,
        run_ns,
        wait_ns,
        ..
    } = schedstats(&printed)[0];
    let syncer = thread_by_tid(&report, tid);
    assert_eq!(syncer["comm"], "syncer");
    assert!(field(&syncer["time"], "blocked_ns") > 0, "{syncer}");
    assert!(field(&syncer["sched"]["block"], "count") > 0, "{syncer}");
    // On a CPU or waiting for one, together, as the kernel counts it. (The
    // kernel splits the two differently when it wakes an idle CPU: it
    // counts the CPU's wake-up latency as running.) The thread reads its
    // schedstat just before it exits, and kernel-delay follows it to its
    // exit: on a loaded machine that last stretch can wait for a CPU for
    // milliseconds, so kernel-delay may count more, never less.
    let on_or_waiting = field(&syncer["time"], "running_ns") + field(&syncer["time"], "ready_ns");
    let kernel = run_ns + wait_ns;
    let observed = field(&syncer["time"], "observed_ns") as f64;
    let gap = (on_or_waiting as f64 - kernel as f64) / observed;
    assert!(
        (-0.02..0.10).contains(&gap),
        "{on_or_waiting} vs schedstat {kernel} over {observed}"
    );
}

#[test]
fn threads_handed_between_cpus_are_accounted_as_schedstat_says() {
    needs_root!();
    // Four threads pass two bytes around, each spinning 20 us with one:
    // the CPUs switch from one to another and wake each other's, so that a
    // thread's records come from both CPUs' batches, in either order.
    let laps = 3_000;
    let (printed, report) = traced(&format!("relay {laps}"));
    let kernel_accounts = schedstats(&printed);
    assert_eq!(kernel_accounts.len(), 4, "{printed:?}");
    for kernel in kernel_accounts {
        let relay = thread_by_tid(&report, kernel.tid);
        assert_eq!(
            field(syscall(relay, "write").expect("write"), "count"),
            laps
        );
        // The ring's reads, and those of /proc/thread-self/schedstat.
        let reads = field(syscall(relay, "read").expect("read"), "count");
        assert!((laps..laps + 4).contains(&reads), "{reads} reads");
        // Every time the thread got a CPU (give or take two: it may get
        // one after reading its schedstat, and the two counts disagree by
        // one now and then, with records in order or not).
        let runs = field(&relay["sched"]["run"], "count");
        assert!(
            runs.abs_diff(kernel.timeslices) <= 2,
            "{runs} runs, schedstat {} timeslices: {relay}",
            kernel.timeslices
        );
        // Each switch is seen a few microseconds apart from where the
        // kernel's accounts change hands (some 3 us here, on a VM).
        let slack_ns = 10 * MS + runs * 5_000;
        let running = field(&relay["time"], "running_ns");
        assert!(
            running.abs_diff(kernel.run_ns) < slack_ns,
            "running {running} vs schedstat {}: {relay}",
            kernel.run_ns
        );
        let time = &relay["time"];
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
        assert_eq!(parts, field(time, "observed_ns"), "{relay}");
        // Most reads find the ring empty and sleep (fewer when the four
        // threads get both CPUs at once: 1,479 of 3,000 seen).
        assert!(
            field(&relay["sched"]["sleep"], "count") >= laps / 4,
            "{relay}"
        );
    }
    assert!(
        report["warnings"].as_array().is_none_or(Vec::is_empty),
        "{report}"
    );
}

#[test]
fn a_thread_computing_without_calls_does_not_hold_back_its_records() {
    needs_root!();
    // The poller makes one call, then computes 100 ms without any, alone
    // on CPU 1 (kernel-delay and the burst on CPU 0): the batch its call
    // was staged in goes at a timer interrupt, not when the thread next
    // leaves the CPU, so that none of its records comes after newer ones
    // (the burst's) were aggregated. Without the timer's part, every run
    // here had such records.
    let mut poller = Workload::start_on_cpu(1);
    let mut burst = Workload::start_on_cpu(0);
    let pids = format!("{},{}", poller.pid(), burst.pid());
    let mut command = Command::new("taskset");
    command.args(["-c", "0", TOOL, "--pid", &pids, "--duration", "300"]);
    let trace = Trace::spawn(command);
    thread::scope(|scope| {
        scope.spawn(|| poller.run("poll 20 100"));
        burst.run("burst 3000000");
    });
    let report = trace.interrupt();
    assert_eq!(count(only_thread(&report, "poller"), "poll"), 20);
    assert_eq!(count(only_thread(&report, "burst"), "getppid"), 3_000_000);
    assert!(
        report["warnings"].as_array().is_none_or(Vec::is_empty),
        "{report}"
    );
}
