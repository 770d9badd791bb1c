//! --record FILE and `kernel-delay report FILE`: a recording reports what
//! the live run reported (JSON byte for byte), with any report option and
//! without root; a file that is not a whole recording says so.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::*;

/// A run of kernel-delay with `args`, its report in `live` and its
/// recording in `dir`/run.kd: the recording's path.
fn record(dir: &Path, live: &[&str], args: &[&str]) -> PathBuf {
    let recording = dir.join("run.kd");
    let output = run_tool(&[live, &["--record", recording.to_str().unwrap()], args].concat());
    assert!(output.status.success(), "{output:?}");
    recording
}

/// `kernel-delay report ARGS`, as root or through `prefix`.
fn report(prefix: &[&str], args: &[&str]) -> Output {
    let mut command = match prefix {
        [] => Command::new(TOOL),
        [first, rest @ ..] => {
            let mut command = Command::new(first);
            command.args(rest).arg(TOOL);
            command
        }
    };
    command
        .arg("report")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    wait_with_timeout(command.spawn().expect("starting kernel-delay report"))
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn a_recording_reports_what_the_live_run_reported() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let slow_sleep = c_workload_built("slow_sleep", dir.path(), &["-g", "-O2"]);
    let forks = format!("echo 'fork 3 50' | {WORKLOAD} serve");
    let triggered = c_workload("triggered", dir.path());
    let runs: [&[&str]; 6] = [
        &["--", WORKLOAD, "run", "3000", "0"],
        &["--", WORKLOAD, "pingpong", "20000"],
        &["--", "sh", "-c", &forks],
        // Stacks, named as the window closed, and wakers.
        &[
            "--wakers",
            "-s",
            "4000000",
            "--off-cpu-stacks",
            "--",
            slow_sleep.to_str().unwrap(),
            "10",
        ],
        // Three windows, one report a line: the target outlives them by
        // far (a target that exits cuts the window it is in short, and no
        // window opens after it).
        &[
            "--sample-count",
            "3",
            "--duration",
            "0.2",
            "--",
            WORKLOAD,
            "demo",
            "3",
        ],
        // Three windows, each opened and closed by the target (a 50 ms
        // sleep between probes begin and end, 50 ms apart).
        &[
            "--sample-count",
            "0",
            "--start-trigger",
            "up:begin",
            "--stop-trigger",
            "up:end",
            "--",
            triggered.to_str().unwrap(),
            "3",
            "50",
            "50",
        ],
    ];
    for args in runs {
        let live = dir.path().join("live.json");
        let recording = record(dir.path(), &["--json", "-o", live.to_str().unwrap()], args);
        let replay = dir.path().join("replay.json");
        let output = report(
            &[],
            &[
                recording.to_str().unwrap(),
                "--json",
                "-o",
                replay.to_str().unwrap(),
            ],
        );
        assert!(output.status.success(), "{args:?}: {output:?}");
        let (live, replay) = (text(&live), text(&replay));
        assert!(live == replay, "{args:?}: the reports differ");
        let reports: Vec<Value> = match args.contains(&"--sample-count") {
            true => live
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            false => vec![serde_json::from_str(&live).unwrap()],
        };
        for report in &reports {
            assert_budgets_add_up(report);
            assert!(field(report, "events") > 0, "{args:?}: nothing recorded");
        }
        // A window that closed before the reader looked may be missed
        // (counted in the next report's missed_windows).
        let missed: u64 = reports
            .iter()
            .map(|r| r["window"]["missed_windows"].as_u64().unwrap_or(0))
            .sum();
        let windows = if args.contains(&"--sample-count") {
            3
        } else {
            1
        };
        let ends: Vec<_> = reports.iter().map(|r| &r["stop_reason"]).collect();
        assert_eq!(
            reports.len() as u64 + missed,
            windows,
            "{args:?}: windows ended by {ends:?}"
        );
        if args.contains(&"--start-trigger") {
            for report in &reports {
                assert_eq!(report["stop_reason"], "stop_trigger", "{report}");
            }
        }
    }
}

#[test]
fn a_recording_is_reported_with_any_options_and_without_root() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.txt");
    let options = ["--histogram", "--top", "2", "--threads", "spinner|sleeper"];
    let recording = record(
        dir.path(),
        &[&["-o", live.to_str().unwrap()][..], &options].concat(),
        &["--", WORKLOAD, "demo", "1"],
    );
    // Anyone may read it: the report needs no privilege.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&recording, std::fs::Permissions::from_mode(0o644)).unwrap();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let output = report(
        &nobody,
        &[&[recording.to_str().unwrap()][..], &options].concat(),
    );
    assert!(output.status.success(), "{output:?}");
    // The same text, but for the time it was rendered.
    let rendered = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| !line.starts_with("# Sample dump @"))
            .map(str::to_string)
            .collect()
    };
    let replay = String::from_utf8(output.stdout).unwrap();
    assert_eq!(rendered(&replay), rendered(&text(&live)));
    assert!(replay.contains("[THREAD READY STATISTICS]") && replay.contains(" -> "));
}

#[test]
fn files_that_are_not_whole_recordings_say_so() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.json");
    let recording = record(
        dir.path(),
        &["--json", "-o", live.to_str().unwrap()],
        &["--", WORKLOAD, "pingpong", "50000"],
    );
    let bytes = std::fs::read(&recording).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let mut future = bytes.clone();
    future[8..12].copy_from_slice(&3u32.to_le_bytes());
    // Refused at once: one line, nothing reported.
    for (path, says) in [
        (write("empty.kd", b""), "is empty"),
        (
            write("text.kd", b"not a recording\n"),
            "is not a kernel-delay recording",
        ),
        (write("future.kd", &future), "format 3"),
        (dir.path().join("missing.kd"), "cannot read"),
    ] {
        let output = report(&[], &[path.to_str().unwrap(), "--json"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(output.stdout.is_empty(), "{path:?}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{path:?}: {stderr}");
    }
    // Cut in the middle, or damaged there: what it holds, and why no more.
    let mut damaged = bytes.clone();
    let middle = bytes.len() / 2;
    for byte in &mut damaged[middle..middle + 64] {
        *byte ^= 0x5a;
    }
    for (path, says) in [
        (write("cut.kd", &bytes[..middle]), "cut short"),
        (write("damaged.kd", &damaged), "damaged"),
    ] {
        let output = report(&[], &[path.to_str().unwrap(), "--json"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{path:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let held: Value = serde_json::from_slice(&output.stdout).expect("what it held, as JSON");
        assert_budgets_add_up(&held);
        assert_eq!(held["stop_reason"], "failed");
        assert!(
            held["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("cut short")),
            "{}",
            held["warnings"]
        );
    }
}

#[test]
fn a_recording_killed_mid_window_reports_what_it_holds() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("killed.kd");
    let mut workload = Workload::start();
    let pid = workload.pid().to_string();
    let trace = Trace::start(&[
        "--pid",
        &pid,
        "--duration",
        "300",
        "--record",
        recording.to_str().unwrap(),
    ]);
    workload.run("burst 3000");
    // Past the recording's flush interval: the calls are in the file.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    trace.signal(Signal::SIGKILL);
    let _ = wait_with_timeout(trace.child);
    let output = report(&[], &[recording.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cut short"), "{stderr}");
    let held: Value = serde_json::from_slice(&output.stdout).expect("what it held, as JSON");
    assert_budgets_add_up(&held);
    let burst = only_thread(&held, "burst");
    assert_eq!(count(burst, "getppid"), 3000, "{burst:#}");
    let main = thread_by_tid(&held, u64::from(workload.pid()));
    assert_eq!(main["comm"], "kd-workload", "named as the window opened");
}

#[test]
fn a_recording_that_cannot_be_written_is_said_and_the_report_still_made() {
    needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.json");
    let output = run_tool(&[
        "--json",
        "-o",
        live.to_str().unwrap(),
        "--record",
        "/dev/full",
        "--",
        WORKLOAD,
        "run",
        "1000",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let report: Value = serde_json::from_str(&text(&live)).unwrap();
    let main = only_thread(&report, "kd-workload");
    assert_eq!(count(main, "getppid"), 1000);
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("/dev/full stopped here")),
        "{}",
        report["warnings"]
    );
    // A link is replaced by nothing: refused before tracing.
    let link = dir.path().join("link.kd");
    std::os::unix::fs::symlink(dir.path().join("target.kd"), &link).unwrap();
    let message = refused(&["--record", link.to_str().unwrap(), "--", "true"]);
    assert!(message.contains("symbolic link"), "{message}");
    assert!(!dir.path().join("target.kd").exists());
}
