//! What /proc tells about the target: its threads and their names.

use std::collections::HashMap;
use std::fs;
use std::io;

use crate::sched::ThreadState;

/// Fields of /proc/PID/status that decide whether PID can be traced.
#[derive(Debug, PartialEq, Eq)]
pub struct ProcessStatus {
    pub tgid: u32,
    pub zombie: bool,
}

pub fn process_status(pid: u32) -> io::Result<ProcessStatus> {
    parse_status(&fs::read_to_string(format!("/proc/{pid}/status"))?)
}

fn parse_status(text: &str) -> io::Result<ProcessStatus> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let tgid = field("Tgid")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Tgid in status"))?;
    let zombie = field("State").is_some_and(|s| s.starts_with('Z') || s.starts_with('X'));
    Ok(ProcessStatus { tgid, zombie })
}

/// The inode of the initial PID namespace (PROC_PID_INIT_INO), fixed since
/// Linux 3.8.
const INIT_PID_NAMESPACE: &str = "pid:[4026531836]";

/// Whether we run in a PID namespace of our own (a container, say): the
/// BPF programs see the host's process ids, not the ones /proc shows here.
pub fn in_nested_pid_namespace() -> bool {
    fs::read_link("/proc/self/ns/pid").is_ok_and(|ns| ns.as_os_str() != INIT_PID_NAMESPACE)
}

/// Name of each live thread of `pid` (raw bytes, untrusted).
pub fn thread_names(pid: u32) -> HashMap<u32, Vec<u8>> {
    per_thread(pid, "comm", |read| {
        let mut comm = read.ok()?;
        if comm.last() == Some(&b'\n') {
            comm.pop();
        }
        Some(comm)
    })
}

/// Scheduling state of each live thread of `pid`.
pub fn thread_states(pid: u32) -> HashMap<u32, ThreadState> {
    per_thread(pid, "stat", |read| parse_stat_state(&read.ok()?))
}

/// The system call each thread of `pid` is in, for those in one (the
/// file says `running`, or -1, otherwise). Err when the files cannot be
/// read for lack of privilege (they need ptrace access to the target).
pub fn thread_syscalls(pid: u32) -> io::Result<HashMap<u32, i64>> {
    let mut denied = None;
    let calls = per_thread(pid, "syscall", |read| match read {
        Ok(text) => parse_syscall(&text),
        Err(err) => {
            if matches!(err.kind(), io::ErrorKind::PermissionDenied) {
                denied = Some(err);
            }
            None
        }
    });
    match denied {
        Some(err) => Err(err),
        None => Ok(calls),
    }
}

fn parse_syscall(text: &[u8]) -> Option<i64> {
    let first = text.split(|&b| b == b' ' || b == b'\n').next()?;
    let nr: i64 = std::str::from_utf8(first).ok()?.parse().ok()?;
    (nr >= 0).then_some(nr)
}

/// The state letter follows the name, which is in parentheses and may
/// itself contain `)`.
fn parse_stat_state(stat: &[u8]) -> Option<ThreadState> {
    let after_name = stat.iter().rposition(|&b| b == b')')?;
    let letter = *stat.get(after_name + 2)?;
    ThreadState::from_proc_letter(letter as char)
}

/// Reads /proc/PID/task/TID/`file` for every thread (a thread may exit
/// between the listing and the read: `parse` sees the error).
fn per_thread<T>(
    pid: u32,
    file: &str,
    mut parse: impl FnMut(io::Result<Vec<u8>>) -> Option<T>,
) -> HashMap<u32, T> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    tasks
        .filter_map(|entry| {
            let tid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let content = fs::read(format!("/proc/{pid}/task/{tid}/{file}"));
            Some((tid, parse(content)?))
        })
        .collect()
}

/// The running kernel's release, e.g. `6.18.44`.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text =
            "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1234\nNgid:\t0\nPid:\t1240\n";
        assert_eq!(
            parse_status(text).unwrap(),
            ProcessStatus {
                tgid: 1234,
                zombie: false
            }
        );
        let zombie = "State:\tZ (zombie)\nTgid:\t7\n";
        assert_eq!(
            parse_status(zombie).unwrap(),
            ProcessStatus {
                tgid: 7,
                zombie: true
            }
        );
        assert!(parse_status("Name:\tx\n").is_err());
    }

    #[test]
    fn lists_own_threads() {
        let me = std::process::id();
        let names = thread_names(me);
        assert!(names.contains_key(&me), "{names:?}");
        assert!(names.values().all(|n| !n.ends_with(b"\n")));
    }

    #[test]
    fn parses_the_state_after_a_tricky_name() {
        assert_eq!(
            parse_stat_state(b"42 (a) b) S 1 42"),
            Some(ThreadState::Sleeping)
        );
        assert_eq!(parse_stat_state(b"42 (x) D 1"), Some(ThreadState::Blocked));
        assert_eq!(parse_stat_state(b"42 (x)"), None);
    }

    #[test]
    fn parses_the_current_syscall() {
        assert_eq!(
            parse_syscall(b"0 0x3 0x7ffd 0x1 0x0 0x0 0x0 0x7ffd 0x7f12\n"),
            Some(0)
        );
        assert_eq!(parse_syscall(b"270 0xfb 0x7ffd\n"), Some(270));
        assert_eq!(parse_syscall(b"running\n"), None);
        assert_eq!(parse_syscall(b"-1 0x7ffd 0x7f12\n"), None);
    }

    #[test]
    fn own_thread_is_running() {
        let tid = nix::unistd::gettid().as_raw() as u32;
        let states = thread_states(std::process::id());
        assert_eq!(states.get(&tid), Some(&ThreadState::Running));
    }

    #[test]
    fn the_tests_run_in_the_initial_pid_namespace() {
        // As CI and the development machines do; a container would not.
        assert!(!in_nested_pid_namespace());
    }

    #[test]
    fn missing_process_has_no_threads() {
        assert!(thread_names(u32::MAX).is_empty());
    }
}
