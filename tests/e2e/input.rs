//! Bad input and hostile environments: one clear line, a non-zero exit,
//! nothing destroyed.

use std::process::Command;

use crate::harness::*;

#[test]
fn bad_input_gets_one_clear_line() {
    require_root();
    assert!(refused(&["--pid", "2147483647"]).contains("no process with pid 2147483647"));
    assert!(refused(&["--pid", "x"]).contains("--pid"));
    assert!(refused(&["--pid", "1", "--duration", "0"]).contains("more than 0"));
    assert!(refused(&["--", "/no/such/program"]).contains("/no/such/program"));
    assert!(refused(&["--pid", "1", "-o", "/no/such/dir/report"]).contains("/no/such/dir/report"));
    assert!(refused(&[]).contains("nothing to trace"));
}

#[test]
fn inside_a_pid_namespace_it_says_so() {
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
