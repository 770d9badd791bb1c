//! Signals: every one that would end kernel-delay ends the window with its
//! report instead; one before tracing began is one line; no temporary
//! file is ever left beside the report.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::libc;
use serde_json::Value;

use crate::harness::*;

/// The names in `dir`, hidden ones too.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// kernel-delay tracing `--pid 1` into `out`, with its stderr piped.
fn tracing_into(out: &Path) -> Child {
    require_root();
    Command::new(TOOL)
        .args(["--json", "--pid", "1", "--duration", "60", "-o"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `pid` catches SIGINT (its handlers are installed).
fn wait_for_handlers(pid: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (libc::SIGINT - 1)) != 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no signal handler installed");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Waits until the start line is on `child`'s stderr (read on, so that
/// later lines find a reader).
fn wait_for_start(child: &mut Child) {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("# Start sampling @"), "{first}");
    std::thread::spawn(move || lines.for_each(drop));
}

fn send(child: &Child, signal: libc::c_int) {
    // SAFETY: a plain system call.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

#[test]
fn every_signal_that_would_end_it_ends_the_window_with_its_report() {
    needs_root!();
    for signal in [
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGXCPU,
        libc::SIGRTMIN() + 1,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("report.json");
        let mut child = tracing_into(&out);
        wait_for_start(&mut child);
        send(&child, signal);
        let output = wait_with_timeout(child);
        assert!(output.status.success(), "signal {signal}: {output:?}");
        let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(report["stop_reason"], "interrupted", "signal {signal}");
        assert_eq!(entries(dir.path()), ["report.json"], "signal {signal}");
    }
}

#[test]
fn a_signal_before_tracing_began_is_one_line_and_leaves_nothing() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let child = tracing_into(&out);
    // Handlers are installed first thing; the probes take much longer.
    wait_for_handlers(child.id());
    send(&child, libc::SIGINT);
    let output = wait_with_timeout(child);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.starts_with("# Start sampling") {
        // The probes were attached already (a fast machine): a report.
        assert!(output.status.success(), "{output:?}");
        assert_eq!(entries(dir.path()), ["report.json"]);
        return;
    }
    assert_eq!(output.status.code(), Some(130), "{output:?}");
    assert_eq!(
        stderr.trim_end(),
        "kernel-delay: SIGINT before tracing began: nothing was measured"
    );
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn the_report_goes_where_named_at_the_start_and_nothing_is_left_anywhere() {
    needs_root!();
    // The output's directory is moved and a symbolic link to another put
    // in its place while tracing.
    let top = tempfile::tempdir().unwrap();
    let named = top.path().join("out");
    let elsewhere = top.path().join("elsewhere");
    std::fs::create_dir(&named).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    let mut child = tracing_into(&named.join("report.json"));
    wait_for_start(&mut child);
    let moved = top.path().join("moved");
    std::fs::rename(&named, &moved).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &named).unwrap();
    send(&child, libc::SIGTERM);
    let output = wait_with_timeout(child);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(entries(&moved), ["report.json"]);
    assert!(entries(&elsewhere).is_empty());
    assert_eq!(entries(top.path()), ["elsewhere", "moved", "out"]);
}
