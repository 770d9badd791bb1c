//! --syscall-events: slow calls one by one, with their kernel and user
//! stacks symbolized, against a workload whose calls and code are known.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::*;

fn slow_sleep(dir: &Path) -> PathBuf {
    c_workload("slow_sleep", dir)
}

/// The user frames from kd_slow_sleep on, once those above it are checked
/// to be libc's nanosleep (a wrapper without a frame pointer).
fn from_kd_slow_sleep(user: &[String]) -> &[String] {
    let at = user
        .iter()
        .position(|f| f.starts_with("kd_slow_sleep+0x"))
        .unwrap_or_else(|| panic!("no kd_slow_sleep frame: {user:?}"));
    assert!(
        at > 0
            && user[..at]
                .iter()
                .all(|f| f.contains("nanosleep") && f.contains("libc.so")),
        "{user:?}"
    );
    &user[at..]
}

fn events<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["syscall_events"]
        .as_array()
        .expect("syscall_events")
        .iter()
        .filter(|e| e["name"] == name)
        .collect()
}

fn frames(event: &Value, stack: &str) -> Vec<String> {
    event[stack]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn slow_sleeps_are_listed_with_where_they_slept_and_were_called_from() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    // With frame pointers, and without any: the same frames, from the
    // call frame information.
    for flags in [
        ["-g", "-O2", "-fno-omit-frame-pointer"],
        ["-g", "-O2", "-fomit-frame-pointer"],
    ] {
        let binary = c_workload_built("slow_sleep", dir.path(), &flags);
        let (_, report) = launch(&[
            "--syscall-events",
            "4000000",
            "--",
            binary.to_str().unwrap(),
            "20",
        ]);
        let sleeps = events(&report, "clock_nanosleep");
        assert_eq!(sleeps.len(), 20, "{:#}", report["syscall_events"]);
        let all = report["syscall_events"].as_array().unwrap();
        for event in all {
            assert!(
                field(event, "duration_ns") >= 4 * MS,
                "under the threshold: {event}"
            );
        }
        let entries: Vec<u64> = all.iter().map(|e| field(e, "entry_ns")).collect();
        assert!(entries.windows(2).all(|w| w[0] <= w[1]), "in time order");
        let thread = only_thread(&report, "slow_sleep");
        assert_eq!(
            count(thread, "clock_nanosleep"),
            20,
            "the statistics stay whole"
        );
        for sleep in sleeps {
            let duration = field(sleep, "duration_ns");
            assert!((5 * MS..500 * MS).contains(&duration), "{sleep}");
            assert_eq!(field(sleep, "exit_ns") - field(sleep, "entry_ns"), duration);
            assert_eq!(
                (sleep["tid"].clone(), sleep["ret"].as_i64()),
                (thread["tid"].clone(), Some(0))
            );
            assert_eq!(sleep["comm"], "slow_sleep");
            let all = frames(sleep, "user_stack");
            let user = from_kd_slow_sleep(&all);
            assert!(user[0].contains("(slow_sleep.c:"), "{user:?}");
            assert!(
                user[0].ends_with(&format!("[{}]", binary.display())),
                "{user:?}"
            );
            assert!(user[1].starts_with("main+0x"), "{user:?}");
            assert!(sleep["user_stack_cut"].is_null(), "{sleep}");
            let kernel = frames(sleep, "kernel_stack");
            assert!(
                kernel
                    .iter()
                    .any(|f| f.starts_with("do_nanosleep+") || f.starts_with("hrtimer_nanosleep+")),
                "{kernel:?}"
            );
            assert!(kernel.iter().all(|f| f.ends_with("[kernel]")), "{kernel:?}");
            assert!(
                !kernel[0].starts_with("bpf_"),
                "the tracer's own frames: {kernel:?}"
            );
        }
    }
}

#[test]
fn time_asleep_is_charged_to_where_the_thread_slept() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let binary = c_workload_built(
        "slow_sleep",
        dir.path(),
        &["-g", "-O2", "-fomit-frame-pointer"],
    );
    // Every report's stacks add up to its sleeping and blocked time (the
    // harness checks); here, where: nearly all of the 20 sleeps' time is
    // in nanosleep, under kd_slow_sleep.
    let (_, report) = launch(&["--off-cpu-stacks", "--", binary.to_str().unwrap(), "20"]);
    let thread = only_thread(&report, "slow_sleep");
    let stacks = thread["offcpu_stacks"].as_array().expect("offcpu_stacks");
    let in_nanosleep: u64 = stacks
        .iter()
        .filter(|row| row["state"] == "sleeping")
        .filter(|row| {
            let kernel = frames(row, "kernel");
            let user = frames(row, "user");
            kernel.iter().any(|f| f.starts_with("do_nanosleep+"))
                && !from_kd_slow_sleep(&user).is_empty()
        })
        .map(|row| field(row, "ns"))
        .sum();
    let sleeping = field(&thread["time"], "sleeping_ns");
    assert!(in_nanosleep >= 100 * MS, "{in_nanosleep} ns: {stacks:#?}");
    assert!(
        in_nanosleep * 100 >= sleeping * 95,
        "{in_nanosleep} of {sleeping}: {stacks:#?}"
    );
    // The rows of one place are one row: 20 sleeps, counted.
    let rows: Vec<&Value> = stacks
        .iter()
        .filter(|row| {
            frames(row, "user")
                .iter()
                .any(|f| f.starts_with("kd_slow_sleep+"))
        })
        .collect();
    assert_eq!(rows.len(), 1, "{stacks:#?}");
    assert_eq!(field(rows[0], "count"), 20);
}

#[test]
fn a_thread_asleep_since_before_the_window_is_charged_to_where_it_sleeps() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let binary = c_workload_built(
        "pipe_wait",
        dir.path(),
        &["-g", "-O2", "-fomit-frame-pointer"],
    );
    let mut child = Command::new(&binary)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting pipe_wait");
    let stdout = child.stdout.take().unwrap();
    let reader = KilledOnDrop(child);
    let mut said = String::new();
    BufReader::new(stdout).read_line(&mut said).unwrap();
    assert_eq!(said, "reading\n");
    // It reads the empty pipe from now on, and never leaves it: no switch
    // in the window says where it waits, the task iterator does.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = reader.0.id().to_string();
    let report = Trace::start(&["--pid", &pid, "--duration", "0.5", "--off-cpu-stacks"]).report();
    let thread = only_thread(&report, "pipe_wait");
    let sleeping = field(&thread["time"], "sleeping_ns");
    assert_eq!(
        sleeping,
        field(&thread["time"], "observed_ns"),
        "{thread:#}"
    );
    let stacks = thread["offcpu_stacks"].as_array().expect("offcpu_stacks");
    assert_eq!(stacks.len(), 1, "{stacks:#?}");
    let row = &stacks[0];
    assert_eq!(row["state"], "sleeping");
    assert_eq!((field(row, "ns"), field(row, "count")), (sleeping, 1));
    let kernel = frames(row, "kernel");
    assert!(
        kernel.iter().any(|f| f.contains("pipe_read+")),
        "{kernel:?}"
    );
    let user = frames(row, "user");
    let at = user
        .iter()
        .position(|f| f.starts_with("kd_pipe_reader+0x") && f.contains("(pipe_wait.c:"))
        .unwrap_or_else(|| panic!("no kd_pipe_reader frame: {user:?}"));
    assert!(
        at > 0 && user[..at].iter().all(|f| f.contains("libc.so")),
        "{user:?}"
    );
    assert!(user[at + 1].starts_with("main+0x"), "{user:?}");
    assert!(row["user_stack_cut"].is_null(), "{row}");
}

#[test]
fn folded_stacks_and_the_flame_graph_add_up_to_the_report() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let binary = c_workload_built("slow_sleep", dir.path(), &["-g", "-O2"]);
    let (folded, graph) = (
        dir.path().join("stacks.folded"),
        dir.path().join("stacks.svg"),
    );
    let (_, report) = launch(&[
        "--off-cpu-stacks",
        "--folded",
        folded.to_str().unwrap(),
        "--flamegraph",
        graph.to_str().unwrap(),
        "--",
        binary.to_str().unwrap(),
        "20",
    ]);
    // process-PID;thread-TID;[state];frames... NS, per thread and state
    // adding up to the report's rows.
    let mut folded_ns = std::collections::BTreeMap::new();
    let text = std::fs::read_to_string(&folded).unwrap();
    for line in text.lines() {
        let (stack, ns) = line.rsplit_once(' ').expect("a value");
        let ns: u64 = ns.parse().unwrap_or_else(|_| panic!("{line}"));
        let frames: Vec<&str> = stack.split(';').collect();
        assert!(frames.len() >= 4 && ns > 0, "{line}");
        let tid = frames[1].rsplit_once('-').expect("thread-TID").1;
        let state = frames[2].trim_matches(|c| c == '[' || c == ']');
        *folded_ns
            .entry((tid.to_string(), state.to_string()))
            .or_insert(0) += ns;
    }
    let mut json_ns = std::collections::BTreeMap::new();
    for thread in report["threads"].as_array().unwrap() {
        for row in thread["offcpu_stacks"].as_array().unwrap() {
            let key = (
                thread["tid"].to_string(),
                row["state"].as_str().unwrap().to_string(),
            );
            *json_ns.entry(key).or_insert(0) += field(row, "ns");
        }
    }
    json_ns.retain(|_, ns| *ns > 0);
    assert_eq!(folded_ns, json_ns, "{text}");
    assert!(
        text.lines()
            .any(|line| line.contains(";main;kd_slow_sleep;") && line.contains(";do_nanosleep;")),
        "{text}"
    );
    // A well-formed SVG whose frames name those functions.
    let svg = std::fs::read_to_string(&graph).unwrap();
    let mut reader = quick_xml::Reader::from_str(&svg);
    let mut titles = Vec::new();
    let mut in_title = false;
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|err| panic!("not XML: {err}"))
        {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(tag) => in_title = tag.name().as_ref() == b"title",
            quick_xml::events::Event::Text(text) if in_title => {
                titles.push(String::from_utf8_lossy(&text).into_owned());
            }
            _ => {}
        }
    }
    for function in ["kd_slow_sleep", "do_nanosleep", "[sleeping]"] {
        assert!(
            titles
                .iter()
                .any(|title| title.starts_with(&format!("{function} ("))),
            "{function}: {titles:?}"
        );
    }
}

#[test]
fn code_with_only_debug_frame_is_unwound_compressed_or_not() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    // Without asynchronous unwind tables the program's functions are in
    // .debug_frame only (.eh_frame holds the C runtime's).
    for compress in ["-gz=none", "-gz=zlib"] {
        let flags = [
            "-g",
            "-O2",
            "-fomit-frame-pointer",
            "-fno-asynchronous-unwind-tables",
            compress,
        ];
        let binary = c_workload_built("slow_sleep", dir.path(), &flags);
        for all in user_stacks_of_sleeps(&[binary.to_str().unwrap(), "3"]) {
            let user = from_kd_slow_sleep(&all);
            assert!(user[1].starts_with("main+0x"), "{compress}: {all:?}");
        }
    }
}

#[test]
fn a_stack_deeper_than_the_copy_is_cut_where_the_copy_ends() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let binary = c_workload_built("slow_sleep", dir.path(), &["-g", "-O2"]);
    // 100 frames of kd_deep, 256 bytes and more each: over 25 KiB.
    let run = |size: &str| {
        let (_, report) = launch(&[
            "--syscall-events",
            "4000000",
            "--user-stack-size",
            size,
            "--",
            binary.to_str().unwrap(),
            "5",
            "100",
        ]);
        let sleeps: Vec<Value> = events(&report, "clock_nanosleep")
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(sleeps.len(), 5, "{size}");
        sleeps
    };
    for sleep in run("4096") {
        let all = frames(&sleep, "user_stack");
        let user = from_kd_slow_sleep(&all);
        assert!(
            user[1..].iter().all(|f| f.starts_with("kd_deep+0x")),
            "{all:?}"
        );
        assert!((2..60).contains(&user.len()), "{all:?}");
        assert_eq!(
            sleep["user_stack_cut"],
            "the stack copy ended here: raise --user-stack-size for deeper stacks"
        );
    }
    for sleep in run("65536") {
        let all = frames(&sleep, "user_stack");
        let user = from_kd_slow_sleep(&all);
        let deep = user.iter().filter(|f| f.starts_with("kd_deep+0x")).count();
        assert_eq!(deep, 101, "{all:?}");
        assert!(user[102].starts_with("main+0x"), "{all:?}");
        assert!(sleep["user_stack_cut"].is_null(), "{sleep}");
    }
}

#[test]
fn the_text_report_lists_the_events_under_their_heading() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let binary = slow_sleep(dir.path());
    let out = dir.path().join("report.txt");
    let output = run_tool(&[
        "-o",
        out.to_str().unwrap(),
        "--syscall-events",
        "4000000",
        "--",
        binary.to_str().unwrap(),
        "20",
    ]);
    assert!(output.status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let events = &text[text.find("# SYSCALL EVENTS:\n").expect("the section")..];
    let lines: Vec<&str> = events.lines().collect();
    assert!(lines[1].starts_with("ENTRY (ns)"));
    let calls = lines
        .iter()
        .filter(|l| l.ends_with("  clock_nanosleep"))
        .count();
    assert_eq!(calls, 20, "{events}");
    assert_eq!(
        lines.iter().filter(|l| **l == "  kernel stack:").count(),
        20
    );
    assert!(lines
        .iter()
        .any(|l| l.trim_start().starts_with("kd_slow_sleep+0x")));
}

#[test]
fn poll_waits_are_events_unless_left_out_and_stacks_can_be_off() {
    needs_root!();
    // 50 epoll_wait() of 1 ms each: all past a 0.5 ms threshold.
    for (options, want) in [
        (&[][..], 50),
        (&["--skip-syscall-poll-events"][..], 0),
        (&["--stack-trace-size", "0"][..], 50),
    ] {
        let mut workload = Workload::start();
        let pid = workload.pid().to_string();
        let args = [
            &[
                "--pid",
                &pid,
                "--duration",
                "300",
                "--syscall-events",
                "500000",
            ][..],
            options,
        ]
        .concat();
        let trace = Trace::start(&args);
        workload.run("epoll 50 0");
        let report = trace.interrupt();
        let waits = events(&report, EPOLL_WAIT);
        assert_eq!(waits.len(), want, "{options:?}");
        assert_eq!(count(only_thread(&report, "epoller"), EPOLL_WAIT), 50);
        for wait in waits {
            let no_stacks = options.contains(&"--stack-trace-size");
            assert_eq!(frames(wait, "kernel_stack").is_empty(), no_stacks, "{wait}");
            assert_eq!(frames(wait, "user_stack").is_empty(), no_stacks, "{wait}");
        }
        assert!(
            report["warnings"].as_array().unwrap().is_empty(),
            "{}",
            report["warnings"]
        );
    }
}

#[test]
fn without_the_option_there_are_no_events() {
    needs_root!();
    let (_, report) = traced("sleep 3 5");
    assert!(report.get("syscall_events").is_none());
}

/// The user frames of the clock_nanosleep events of a --syscall-events run
/// of `command`.
fn user_stacks_of_sleeps(command: &[&str]) -> Vec<Vec<String>> {
    let (_, report) = launch(&[&["--syscall-events", "4000000", "--"], command].concat());
    events(&report, "clock_nanosleep")
        .iter()
        .map(|event| frames(event, "user_stack"))
        .collect()
}

#[test]
fn a_process_that_execs_after_its_first_slow_call_is_symbolized_in_its_new_program() {
    needs_root!();
    // The shell waits 50 ms (a slow call), then becomes slow_sleep.
    let dir = tempfile::tempdir().unwrap();
    let binary = slow_sleep(dir.path());
    let script = format!("sleep 0.05; exec {} 20", binary.display());
    let (_, report) = launch(&["--syscall-events", "4000000", "--", "sh", "-c", &script]);
    let sleeps: Vec<&Value> = events(&report, "clock_nanosleep")
        .into_iter()
        .filter(|e| e["comm"] == "slow_sleep" && field(e, "duration_ns") < 40 * MS)
        .collect();
    assert_eq!(sleeps.len(), 20, "{:#}", report["syscall_events"]);
    for sleep in sleeps {
        from_kd_slow_sleep(&frames(sleep, "user_stack"));
    }
    // The shell's own wait, in the program it left: named from the
    // shell's map if it was read in time, else said not to be; never
    // looked up in the new program's map.
    let wait = &events(&report, "wait4")[0];
    let user = frames(wait, "user_stack");
    let not_read = user
        .iter()
        .all(|f| f.ends_with("before its memory map was read]"));
    assert!(not_read || user[0].contains("wait4"), "{user:?}");
}

#[test]
fn a_binary_replaced_while_traced_is_symbolized_as_the_one_that_ran() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let binary = slow_sleep(dir.path());
    // Another program, renamed over the binary while it runs.
    let other = c_workload("triggered", dir.path());
    let trace = std::thread::spawn({
        let binary = binary.clone();
        move || {
            let (_, report) = launch(&[
                "--syscall-events",
                "4000000",
                "--",
                binary.to_str().unwrap(),
                "60",
            ]);
            report
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(150));
    std::fs::rename(&other, &binary).unwrap();
    let report = trace.join().unwrap();
    let sleeps = events(&report, "clock_nanosleep");
    assert_eq!(sleeps.len(), 60);
    for sleep in sleeps {
        let all = frames(sleep, "user_stack");
        assert!(
            from_kd_slow_sleep(&all)[1].starts_with("main+0x"),
            "{all:?}"
        );
    }
}

#[test]
fn zstd_compressed_and_broken_dwarf_still_name_the_functions() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let binary = slow_sleep(dir.path());
    let path = binary.to_str().unwrap();
    let objcopy = |args: &[&str]| {
        let status = std::process::Command::new("objcopy")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "objcopy {args:?}");
    };
    // zstd: names, files and lines, as uncompressed.
    let zstd = dir.path().join("zstd");
    objcopy(&[
        "--compress-debug-sections=zstd",
        path,
        zstd.to_str().unwrap(),
    ]);
    for all in user_stacks_of_sleeps(&[zstd.to_str().unwrap(), "5"]) {
        assert!(
            from_kd_slow_sleep(&all)[0].contains("(slow_sleep.c:"),
            "{all:?}"
        );
    }
    // A unit length that no unit has: names from the symbol table.
    let info = dir.path().join("debug_info");
    objcopy(&[
        "--dump-section",
        &format!(".debug_info={}", info.display()),
        path,
    ]);
    let mut bytes = std::fs::read(&info).unwrap();
    bytes[..4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    std::fs::write(&info, bytes).unwrap();
    let broken = dir.path().join("broken");
    objcopy(&[
        "--update-section",
        &format!(".debug_info={}", info.display()),
        path,
        broken.to_str().unwrap(),
    ]);
    let stacks = user_stacks_of_sleeps(&[broken.to_str().unwrap(), "5"]);
    assert_eq!(stacks.len(), 5);
    for all in stacks {
        assert!(
            from_kd_slow_sleep(&all)[1].starts_with("main+0x"),
            "{all:?}"
        );
    }
}

#[test]
#[cfg(target_arch = "x86_64")]
fn a_frame_pointer_walk_that_leaves_the_code_is_cut_not_padded_with_junk() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let binary = c_workload("junk_frame_pointer", dir.path());
    for mode in ["text", "data"] {
        let (_, report) = launch(&[
            "--syscall-events",
            "4000000",
            "--",
            binary.to_str().unwrap(),
            "40",
            mode,
        ]);
        let sleeps = events(&report, "nanosleep");
        assert_eq!(sleeps.len(), 40, "{mode}");
        for sleep in sleeps {
            let user = frames(sleep, "user_stack");
            assert_eq!(user.len(), 1, "{mode}: {user:?}");
            assert!(user[0].starts_with("main+0x"), "{mode}: {user:?}");
            let cut = sleep["user_stack_cut"].as_str().unwrap_or_default();
            assert!(cut.starts_with("the walk left the stack"), "{mode}: {cut}");
        }
    }
}

#[test]
fn every_call_an_event_keeps_the_first_ones_and_counts_the_rest() {
    needs_root!();
    let (_, report) = launch(&[
        "--syscall-events",
        "--max-syscall-events",
        "1000",
        "--",
        WORKLOAD,
        "run",
        "5000",
        "0",
    ]);
    let listed = report["syscall_events"].as_array().unwrap().len() as u64;
    assert_eq!(listed, 1000);
    assert_eq!(field(&report, "syscall_events_limit"), 1000);
    let calls: u64 = report["threads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["syscalls"].as_array().unwrap())
        .map(|s| field(s, "count"))
        .sum();
    assert!(calls > 5000, "{calls}");
    assert_eq!(listed + field(&report, "syscall_events_not_listed"), calls);
}
