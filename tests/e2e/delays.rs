//! Where each thread's delay came from: ready time split by what the CPU
//! did, each call's time by thread state, failed calls by errno, and a
//! text report that puts the worst threads first.

use serde_json::{json, Value};

use crate::harness::*;

/// A share of a thread's time ready.
fn share_of_ready(thread: &Value, part: &str) -> f64 {
    field(&thread["time"], part) as f64 / field(&thread["time"], "ready_ns") as f64
}

#[test]
fn waits_that_end_on_an_idle_cpu_are_told_apart_as_bpftrace_sees_them() {
    needs_root!();
    // A thread that naps 1 ms at a time: alone on the machine, it is woken
    // on an idle CPU nearly every time (296 of 302 here); on a busy one,
    // less often. Either way each wait that ended with the CPU leaving the
    // idle task is one bpftrace sees.
    let mut workload = Workload::start();
    let independent = Bpftrace::start(
        "tracepoint:sched:sched_switch /args->prev_pid == 0 && args->next_comm == \"sleeper\"/ \
         { @[args->next_pid] = count(); }",
    );
    let trace = Trace::of(&workload, "300");
    workload.run("sleep 300 1");
    let report = trace.interrupt();
    let counted_by_bpftrace = independent.stop();
    let sleeper = only_thread(&report, "sleeper");
    let sched = &sleeper["sched"];
    let (idle, busy) = (
        field(&sched["ready_idle_cpu"], "count"),
        field(&sched["ready_busy_cpu"], "count"),
    );
    assert_eq!(idle + busy, field(&sched["ready"], "count"));
    // A nap's wakeup can come while the thread is still on its CPU: then
    // it does not wait at all.
    assert!(idle + busy >= 150, "{sleeper}");
    // On a busy machine no CPU may be idle when the sleeper wakes: then
    // bpftrace counts nothing, and so must kernel-delay.
    let theirs = bpftrace_count_or_zero(&counted_by_bpftrace, field(sleeper, "tid"));
    assert!(
        idle.abs_diff(theirs) <= 2 + theirs / 50,
        "kernel-delay {idle} idle-CPU waits vs bpftrace {theirs}"
    );
    assert_eq!(
        field(&sleeper["time"], "ready_idle_cpu_ns") > 0,
        theirs > 0,
        "{sleeper}"
    );
}

#[test]
fn threads_sharing_a_cpu_wait_behind_each_other_as_schedstat_says() {
    needs_root!();
    let (printed, report) = traced("spin 2 3000");
    let kernel_accounts = schedstats(&printed);
    assert_eq!(kernel_accounts.len(), 2, "{printed:?}");
    for Schedstat { tid, wait_ns, .. } in kernel_accounts {
        let spinner = thread_by_tid(&report, tid);
        let busy = share_of_ready(spinner, "ready_busy_cpu_ns");
        assert!(busy >= 0.95, "busy-CPU share of ready {busy}: {spinner}");
        // Contention dominates: the busy-CPU part is the kernel's
        // run-queue wait.
        let observed = field(&spinner["time"], "observed_ns") as f64;
        let busy_ready = field(&spinner["time"], "ready_busy_cpu_ns") as f64 / observed;
        let kernel_wait = wait_ns as f64 / observed;
        assert!(
            (busy_ready - kernel_wait).abs() < 0.02,
            "busy-CPU ready {busy_ready} vs schedstat wait {kernel_wait}"
        );
    }
}

#[test]
fn a_sleep_call_is_asleep() {
    needs_root!();
    let (_, report) = traced("sleep 100 2");
    let sleeper = only_thread(&report, "sleeper");
    let nanosleep = syscall(sleeper, "clock_nanosleep").expect("clock_nanosleep");
    assert_eq!(field(nanosleep, "count"), 100);
    // Asleep for at least what was asked (less the few microseconds from
    // arming the timer to leaving the CPU); the rest of the call is on the
    // CPU or waiting for it (on a quiet machine, 99 % asleep).
    let asleep = field(nanosleep, "sleeping_ns");
    assert!(asleep >= 100 * 19 * MS / 10, "{nanosleep}");
    let awake = field(nanosleep, "oncpu_ns") + field(nanosleep, "ready_ns");
    assert_eq!(asleep + awake, field(nanosleep, "total_ns"), "{nanosleep}");
    assert_eq!(field(nanosleep, "blocked_ns"), 0, "{nanosleep}");
    assert_eq!(field(nanosleep, "errors"), 0);
}

#[test]
fn a_call_of_more_than_two_to_the_32_nanoseconds_is_timed_whole() {
    needs_root!();
    // A record's duration is 32 bits unless the call took 2^32 ns (4.29 s)
    // or more: 4.4 s would read as 0.1 s if its high half were lost.
    let (_, report) = traced("sleep 1 4400");
    let nanosleep =
        syscall(only_thread(&report, "sleeper"), "clock_nanosleep").expect("clock_nanosleep");
    assert_eq!(field(nanosleep, "count"), 1);
    let total = field(nanosleep, "total_ns");
    assert!((4_400 * MS..5_400 * MS).contains(&total), "{nanosleep}");
    assert_eq!(field(nanosleep, "max_ns"), total, "{nanosleep}");
    assert!(field(nanosleep, "sleeping_ns") >= 4_390 * MS, "{nanosleep}");
}

#[test]
fn a_call_that_spins_in_the_kernel_waits_for_the_cpu_inside_it() {
    needs_root!();
    // Two threads on one CPU, each in read() from /dev/zero nearly all the
    // time: the kernel hands the CPU over from inside the call.
    let (_, report) = traced("spin-read 2 2000");
    for spinner in threads_named(&report, "spin-0")
        .into_iter()
        .chain(threads_named(&report, "spin-1"))
    {
        let read = syscall(spinner, "read").expect("read");
        let in_read = field(read, "ready_ns") as f64;
        let ready = field(&spinner["time"], "ready_ns") as f64;
        assert!(
            in_read > 0.5 * ready,
            "ready in read {in_read} of {ready}: {spinner}"
        );
        assert!(field(read, "ready_busy_cpu_ns") > 0, "{read}");
        assert_eq!(field(read, "sleeping_ns"), 0, "{read}");
    }
}

#[test]
fn a_call_waiting_for_the_disk_is_blocked() {
    needs_root!();
    let (_, report) = traced("fsync 200");
    let syncer = only_thread(&report, "syncer");
    let fsync = syscall(syncer, "fsync").expect("fsync");
    assert_eq!(field(fsync, "count"), 200);
    assert!(field(fsync, "blocked_ns") > 0, "{fsync}");
}

#[test]
fn time_blocked_is_charged_to_where_the_thread_blocked() {
    needs_root!();
    // Every report's stacks add up to its blocked time (the harness
    // checks); here, where: most of it under fsync_writes' fsync().
    let (_, report) = traced_with(&["--off-cpu-stacks"], "fsync 100");
    let syncer = only_thread(&report, "syncer");
    let blocked = field(&syncer["time"], "blocked_ns");
    assert!(blocked > 0, "{syncer}");
    let in_fsync: u64 = syncer["offcpu_stacks"]
        .as_array()
        .expect("offcpu_stacks")
        .iter()
        .filter(|row| row["state"] == "blocked")
        .filter(|row| {
            let user = row["user"].as_array().unwrap();
            user.iter()
                .any(|f| f.as_str().unwrap().contains("fsync_writes"))
        })
        .map(|row| field(row, "ns"))
        .sum();
    assert!(
        in_fsync * 100 >= blocked * 80,
        "{in_fsync} of {blocked}: {syncer:#}"
    );
}

#[test]
fn the_verdict_names_where_in_the_kernel_a_thread_blocked() {
    needs_root!();
    let mut workload = Workload::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.txt");
    let pid = workload.pid().to_string();
    let trace = Trace::start_text(
        &["--pid", &pid, "--duration", "300", "--off-cpu-stacks"],
        &out,
    );
    workload.run("fsync 100");
    trace.signal(nix::sys::signal::Signal::SIGINT);
    trace.finish();
    let text = std::fs::read_to_string(&out).unwrap();
    let verdict = text
        .lines()
        .find(|line| line.starts_with(&format!("PROCESS {pid} ")))
        .expect("a verdict");
    // "... was blocked (D) 71.4% of its time, p99 326 us, most of it in
    // fsync <- blkdev_issue_flush": a kernel function, not the scheduler.
    let (_, at) = verdict
        .split_once("most of it in fsync <- ")
        .unwrap_or_else(|| panic!("{verdict}"));
    let function = at.split(';').next().unwrap();
    assert!(
        verdict.contains("(syncer) was blocked (D) ") && !function.is_empty(),
        "{verdict}"
    );
    assert!(!function.contains("schedule"), "{verdict}");
    assert!(
        text.lines()
            .any(|line| line.trim().starts_with(&format!("{function}+0x"))),
        "{function} is in no stack: {text}"
    );
}

#[test]
fn failed_calls_are_counted_by_errno() {
    needs_root!();
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "300");
    workload.run("badfd 1000");
    workload.run("burst 500");
    let report = trace.interrupt();
    let read = syscall(only_thread(&report, "bad-reader"), "read").expect("read");
    assert_eq!(field(read, "count"), 1_000);
    assert_eq!(field(read, "errors"), 1_000);
    assert_eq!(read["errnos"], json!({ "EBADF": 1_000 }));
    let getppid = syscall(only_thread(&report, "burst"), "getppid").expect("getppid");
    assert_eq!(
        (field(getppid, "count"), field(getppid, "errors")),
        (500, 0)
    );
    assert_eq!(getppid["errnos"], json!({}));
}

#[test]
fn a_signal_handler_returning_is_not_an_error_of_rt_sigreturn() {
    needs_root!();
    let mut workload = Workload::start();
    let trace = Trace::of(&workload, "300");
    workload.run("signals 200");
    let report = trace.interrupt();
    let thread = only_thread(&report, "signalled");
    // The wait the signal interrupted failed, once each, with the code the
    // kernel turns into EINTR for the caller as the handler is called...
    let wait = syscall(thread, "rt_sigsuspend").expect("rt_sigsuspend");
    assert_eq!(field(wait, "count"), 200);
    assert_eq!(wait["errnos"], json!({ "ERESTARTNOHAND": 200 }));
    // ... and the handler's return restored that -EINTR into the register
    // rt_sigreturn returns: not an error of its own (strace -c counts it).
    let sigreturn = syscall(thread, "rt_sigreturn").expect("rt_sigreturn");
    assert_eq!(field(sigreturn, "count"), 200);
    assert_eq!(field(sigreturn, "errors"), 0, "{sigreturn}");
    assert_eq!(sigreturn["errnos"], json!({}));
}

#[test]
fn the_worst_threads_come_first_and_idle_ones_take_a_line() {
    needs_root!();
    let mut workload = Workload::start();
    workload.run("idle 50");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.txt");
    let pid = workload.pid().to_string();
    let trace = Trace::start_text(&["--pid", &pid, "--duration", "300"], &out);
    workload.run("spin 2 1500");
    trace.signal(nix::sys::signal::Signal::SIGINT);
    let output = trace.finish();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(output.stdout.is_empty());
    let lines: Vec<&str> = text.lines().collect();

    // The summary: the spinners first.
    let summary = lines
        .iter()
        .position(|l| l.starts_with("# SUMMARY"))
        .expect("a summary");
    assert!(lines[summary + 1].starts_with(&format!("PROCESS {pid} (kd-workload)")));
    assert!(
        lines[summary + 1].contains(": thread "),
        "a verdict: {}",
        lines[summary + 1]
    );
    assert!(
        lines[summary + 1].contains(" waited for a CPU "),
        "{}",
        lines[summary + 1]
    );
    let names = |rows: &[&str]| -> Vec<String> {
        rows.iter()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .collect()
    };
    let ranked = names(&lines[summary + 3..summary + 3 + 52 + 1]);
    assert_eq!(ranked.len(), 53, "{text}");
    let mut first_two = ranked[..2].to_vec();
    first_two.sort();
    assert_eq!(first_two, ["spin-0", "spin-1"], "{text}");
    assert_eq!(ranked.iter().filter(|n| *n == "idler").count(), 50);
    // An idler's summary row names the call its detail line names.
    let idler_rows = lines[summary + 3..summary + 3 + 53]
        .iter()
        .filter(|l| l.split_whitespace().nth(1) == Some("idler"));
    for row in idler_rows {
        assert!(row.contains(" futex "), "{row}");
        assert!(row.ends_with("(since before the window)"), "{row}");
    }

    // The details, in the same order; an idle thread is one line.
    let details = lines
        .iter()
        .position(|l| l.contains("<RESOURCE SPECIFIC>"))
        .expect("the details");
    let detailed: Vec<&str> = lines[details..]
        .iter()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .copied()
        .collect();
    let mut first_two: Vec<&str> = detailed[..2]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    first_two.sort();
    assert_eq!(first_two, ["spin-0", "spin-1"]);
    let idle_lines: Vec<&&str> = detailed.iter().filter(|l| l.contains(" idler ")).collect();
    assert_eq!(idle_lines.len(), 50);
    for line in idle_lines {
        assert!(line.contains("idle: nothing completed in"), "{line}");
        assert!(
            line.contains("; in futex (since before the window)"),
            "{line}"
        );
    }
    // Two spinners and the main thread in detail, 50 one-liners: short
    // (every section of every thread would be some 1,500 lines).
    assert!(lines.len() < 300, "{} lines:\n{text}", lines.len());
}

#[test]
fn threads_are_chosen_by_name_and_a_choice_of_none_says_so() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let details = |filter: &str| -> String {
        let out = dir.path().join("report.txt");
        let out = out.to_str().unwrap();
        let output = run_tool(&[
            "--threads",
            filter,
            "-o",
            out,
            "--",
            WORKLOAD,
            "run",
            "10",
            "0",
        ]);
        assert!(output.status.success(), "{output:?}");
        let text = std::fs::read_to_string(out).unwrap();
        let at = text.find("<RESOURCE SPECIFIC>").expect("the details");
        text[at..].to_string()
    };
    let chosen = details("^kd-work");
    assert!(
        chosen.contains(" kd-workload      [SYSCALL STATISTICS]"),
        "{chosen}"
    );
    assert!(!chosen.contains("no thread matches"), "{chosen}");
    let none = details("^nginx");
    assert!(!none.contains("[SYSCALL STATISTICS]"), "{none}");
    assert!(
        none.contains("\n(no thread matches --threads ^nginx)\n"),
        "{none}"
    );
}
