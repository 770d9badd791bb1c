//! Bad input and hostile environments: one clear line, a non-zero exit,
//! nothing destroyed.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn bad_input_gets_one_clear_line() {
    needs_root!();
    require_root();
    assert!(refused(&["--pid", "2147483647"]).contains("no process with pid 2147483647"));
    assert!(refused(&["--pid", "x"]).contains("--pid"));
    for duration in ["0", "-1", "1e-300", "1e19", "9.3e18"] {
        let err = refused(&["--pid", "1", "--duration", duration]);
        assert!(
            err.contains("from 0.001 to 31536000 seconds"),
            "{duration}: {err}"
        );
    }
    assert!(refused(&["--pid", "-1"]).contains("invalid value '-1' for '--pid <PID>'"));
    assert!(refused(&["--", "/no/such/program"]).contains("/no/such/program"));
    assert!(refused(&["--pid", "1", "-o", "/no/such/dir/report"]).contains("/no/such/dir/report"));
    assert!(refused(&[]).contains("nothing to trace"));
}

#[test]
fn libbpf_error_codes_are_words() {
    needs_root!();
    // libbpf fails with its own code (4001) on a file that is not ELF.
    let err = refused(&["--start-trigger", "up:main@/etc/passwd", "--", "true"]);
    assert!(!err.contains("Unknown error"), "{err}");
    assert!(err.contains("ELF"), "{err}");
}

#[test]
fn inside_a_pid_namespace_it_says_so() {
    needs_root!();
    require_root();
    // Its pid 1 is not the host's: tracing it would silently see nothing.
    let mut command = Command::new("unshare");
    command.args([
        "--pid",
        "--fork",
        "--mount-proc",
        TOOL,
        "--pid",
        "1",
        "--duration",
        "0.1",
    ]);
    assert!(refused_by(command).contains("PID namespace"));
}

#[test]
fn without_privileges_it_says_so() {
    needs_root!();
    require_root();
    let workload = Workload::start();
    // Drop to nobody: no CAP_BPF, no CAP_PERFMON.
    let mut command = Command::new("setpriv");
    command.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        TOOL,
        "--pid",
    ]);
    command.arg(workload.pid().to_string());
    assert!(refused_by(command).contains("run as root"));
}

#[test]
fn a_failed_run_never_destroys_the_report_file() {
    needs_root!();
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    fs::write(&report, "OLD").unwrap();
    let path = report.to_str().unwrap();
    assert!(refused(&["--pid", "2147483647", "--json", "-o", path]).contains("no process"));
    assert!(refused(&["--json", "-o", path, "--", "/no/such/program"]).contains("/no/such"));
    assert!(refused(&["--json", "-o", path]).contains("nothing to trace"));
    assert_eq!(fs::read_to_string(&report).unwrap(), "OLD");
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left behind: {left:?}");
}

#[test]
fn a_symlink_at_the_report_path_is_replaced_not_followed() {
    needs_root!();
    // A world-writable, sticky directory, as /tmp is: another user could
    // plant a link to a file of root's there.
    let shared = tempfile::tempdir().unwrap();
    fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let private = tempfile::tempdir().unwrap();
    let victim = private.path().join("precious");
    fs::write(&victim, "PRECIOUS").unwrap();
    let link = shared.path().join("report.json");
    symlink(&victim, &link).unwrap();

    let output = run_tool(&[
        "--json",
        "-o",
        link.to_str().unwrap(),
        "--",
        WORKLOAD,
        "run",
        "10",
        "0",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "PRECIOUS");
    assert!(
        fs::symlink_metadata(&link).unwrap().is_file(),
        "the link was replaced"
    );
    let report: serde_json::Value = serde_json::from_slice(&fs::read(&link).unwrap()).unwrap();
    assert_eq!(count(only_thread(&report, "kd-workload"), "getppid"), 10);
}

#[test]
fn an_output_that_cannot_take_a_report_fails_before_the_window() {
    needs_root!();
    let workload = Workload::start();
    let pid = workload.pid().to_string();
    let begun = Instant::now();
    let err = refused(&["--pid", &pid, "--duration", "120", "-o", "/proc/version"]);
    assert!(err.contains("/proc/version"), "{err}");
    assert!(
        begun.elapsed() < Duration::from_secs(60),
        "it waited for the window"
    );
    let err = refused(&["--pid", &pid, "--duration", "120", "-o", "/tmp"]);
    assert!(err.contains("/tmp") && err.contains("directory"), "{err}");
}

#[test]
fn a_write_error_says_what_was_being_written() {
    needs_root!();
    let workload = Workload::start();
    let pid = workload.pid().to_string();
    let output = run_tool(&["--pid", &pid, "--duration", "0.1", "-o", "/dev/full"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let last = stderr.lines().last().unwrap();
    assert_eq!(
        last,
        "kernel-delay: writing the report to /dev/full failed: No space left on device (os error 28)"
    );
    // A launched command still runs to its end: kernel-delay waits for it,
    // then fails.
    let begun = Instant::now();
    let output = run_tool(&[
        "--duration",
        "0.2",
        "-o",
        "/dev/full",
        "--",
        "sh",
        "-c",
        "sleep 1; exit 3",
    ]);
    assert!(begun.elapsed() >= Duration::from_secs(1));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("/dev/full failed"));
}

#[test]
fn it_will_not_trace_itself() {
    needs_root!();
    require_root();
    let mut command = Command::new("sh");
    command.args(["-c", &format!("exec {TOOL} --pid $$ --duration 1")]);
    assert!(refused_by(command).contains("kernel-delay itself"));
}

#[test]
fn a_closed_standard_output_is_an_error_before_the_window() {
    needs_root!();
    let workload = Workload::start();
    let mut command = Command::new("sh");
    command.args([
        "-c",
        &format!("exec {TOOL} --pid {} --duration 1 >&-", workload.pid()),
    ]);
    let output = command.stderr(Stdio::piped()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "kernel-delay: standard output is closed: give -o FILE for the report\n"
    );
}

/// kernel-delay with its standard output on a pipe nobody reads.
fn with_reader_gone(args: &[&str]) -> std::process::Output {
    require_root();
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    drop(read_end);
    let child = Command::new(TOOL)
        .args(args)
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_timeout(child)
}

#[test]
fn a_reader_that_goes_away_ends_it_quietly_wherever_it_writes() {
    needs_root!();
    let workload = Workload::start();
    let pid = workload.pid().to_string();
    // The text report's start line, then the JSON report, find no reader:
    // 141 (128 + SIGPIPE) both times, as a shell shows a tool killed by
    // SIGPIPE, and nothing on stderr but the JSON mode's start line.
    let text = with_reader_gone(&["--pid", &pid, "--duration", "0.1"]);
    assert_eq!(text.status.code(), Some(141), "{text:?}");
    assert_eq!(text.stderr, b"");
    let json = with_reader_gone(&["--pid", &pid, "--duration", "0.1", "--json"]);
    assert_eq!(json.status.code(), Some(141), "{json:?}");
    let stderr = String::from_utf8(json.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("# Start sampling @"), "{stderr}");
    assert_eq!(json.status.signal(), None);
}

#[test]
fn the_launched_command_starts_with_default_signals_and_priority() {
    needs_root!();
    let (output, _) = launch(&["--", "cat", "/proc/self/status", "/proc/self/stat"]);
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let status_field = |name: &str| {
        printed
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {printed}"))
            .trim()
            .to_string()
    };
    // Nothing ignored (Rust's runtime ignores SIGPIPE), nothing blocked.
    assert_eq!(status_field("SigIgn:"), "0000000000000000");
    assert_eq!(status_field("SigBlk:"), "0000000000000000");
    // SCHED_OTHER (policy 0, field 41 of stat), not the reader's SCHED_FIFO.
    let stat = printed.lines().last().unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let policy = after_name.split(' ').nth(38).unwrap();
    assert_eq!(policy, "0", "{stat}");
}

#[test]
fn with_only_cap_bpf_and_cap_perfmon_the_report_says_what_it_cannot_see() {
    needs_root!();
    let workload = Workload::start();
    // nobody, with the capabilities to trace and no more: the target is
    // root's, so its /proc/PID/task/TID/syscall is unreadable, and the
    // reader may not take real-time priority.
    let shared = tempfile::tempdir().unwrap();
    fs::set_permissions(shared.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let out = shared.path().join("report.json");
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+bpf,+perfmon",
            "--ambient-caps=+bpf,+perfmon",
            TOOL,
            "--json",
            "--duration",
            "0.5",
            "-o",
            out.to_str().unwrap(),
            "--pid",
            &workload.pid().to_string(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("calls in progress since before the window are not shown"),
        "{warnings}"
    );
    assert!(
        warnings.contains("/syscall could not be read"),
        "{warnings}"
    );
    assert!(
        warnings.contains("normal priority") && warnings.contains("CAP_SYS_NICE"),
        "{warnings}"
    );
    // The main thread waits in read() all along, which it cannot know.
    let main = only_thread(&report, "kd-workload");
    assert_eq!(main["unfinished"], serde_json::json!([]), "{main}");
}
