//! What /proc tells about the target: its threads and their names.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;

use crate::model::sched::ThreadState;

/// The process (thread group) that thread `tid` belongs to.
pub fn thread_group(tid: u32) -> io::Result<u32> {
    parse_tgid(&fs::read_to_string(format!("/proc/{tid}/status"))?)
}

fn parse_tgid(status: &str) -> io::Result<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Tgid in status"))
}

/// Whether any thread of `pid` is still alive (not a zombie): a process
/// whose main thread exited lives on in its other threads.
pub fn has_live_thread(pid: u32) -> bool {
    !live_threads(pid).is_empty()
}

/// The parent of process `pid`.
pub fn parent(pid: u32) -> Option<u32> {
    parse_ppid(&fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// The fourth field of a stat line, after the name and the state.
fn parse_ppid(stat: &[u8]) -> Option<u32> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let fields = std::str::from_utf8(stat.get(close + 2..)?).ok()?;
    fields.split(' ').nth(1)?.parse().ok()
}

/// The processes named `name` (their main thread's name, which the
/// kernel keeps to 15 bytes: compared with as much of `name`).
pub fn processes_named(name: &str) -> Vec<u32> {
    let wanted = &name.as_bytes()[..name.len().min(15)];
    let mut pids: Vec<u32> = numbered_entries("/proc")
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.strip_suffix(b"\n").unwrap_or(&comm) == wanted)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The running descendants of `pids` (children, theirs, and so on), from
/// one reading of /proc; linear in the processes there, so that following
/// the forks of pid 1 on a busy host starts at once.
pub fn descendants(pids: &[u32]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in numbered_entries("/proc") {
        if let Some(ppid) = parent(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut seen: HashSet<u32> = pids.iter().copied().collect();
    let mut found = Vec::new();
    let mut frontier = pids.to_vec();
    while let Some(parent) = frontier.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            if seen.insert(child) {
                found.push(child);
                frontier.push(child);
            }
        }
    }
    found
}

/// The inode of the initial PID namespace (PROC_PID_INIT_INO), fixed since
/// Linux 3.8.
const INIT_PID_NAMESPACE: &str = "pid:[4026531836]";

/// Whether we run in a PID namespace of our own (a container, say): the
/// BPF programs see the host's process ids, not the ones /proc shows here.
pub fn in_nested_pid_namespace() -> bool {
    fs::read_link("/proc/self/ns/pid").is_ok_and(|ns| ns.as_os_str() != INIT_PID_NAMESPACE)
}

/// What /proc says about one live thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Raw bytes, untrusted.
    pub name: Vec<u8>,
    pub state: Option<ThreadState>,
}

/// Each thread of `pid` that is alive: a zombie (a main thread that
/// exited before the others) has no time to account.
pub fn live_threads(pid: u32) -> HashMap<u32, ThreadInfo> {
    per_thread(pid, "stat", |read| {
        let stat = read.ok()?;
        let (name, letter) = parse_stat(&stat)?;
        (letter != b'Z' && letter != b'X').then(|| ThreadInfo {
            name: name.to_vec(),
            state: ThreadState::from_proc_letter(letter as char),
        })
    })
}

/// The live threads of each process of `pids`: thread id -> (its process,
/// what /proc says).
pub fn live_threads_of(pids: &[u32]) -> HashMap<u32, (u32, ThreadInfo)> {
    pids.iter()
        .flat_map(|&pid| {
            live_threads(pid)
                .into_iter()
                .map(move |(tid, thread)| (tid, (pid, thread)))
        })
        .collect()
}

/// The system call each thread of the processes `pids` is in.
pub fn thread_syscalls_of(pids: &[u32]) -> io::Result<HashMap<u32, i64>> {
    let mut calls = HashMap::new();
    for &pid in pids {
        calls.extend(thread_syscalls(pid)?);
    }
    Ok(calls)
}

/// The system call each thread of `pid` is in, for those in one (the
/// file says `running`, or -1, otherwise). Err when the files cannot be
/// read for lack of privilege (they need ptrace access to the target).
fn thread_syscalls(pid: u32) -> io::Result<HashMap<u32, i64>> {
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

/// The name and state letter of a stat line: the name is in parentheses
/// and may itself contain `)`.
fn parse_stat(stat: &[u8]) -> Option<(&[u8], u8)> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let letter = *stat.get(close + 2)?;
    Some((stat.get(open + 1..close)?, letter))
}

/// Reads /proc/PID/task/TID/`file` for every thread (a thread may exit
/// between the listing and the read: `parse` sees the error).
fn per_thread<T>(
    pid: u32,
    file: &str,
    mut parse: impl FnMut(io::Result<Vec<u8>>) -> Option<T>,
) -> HashMap<u32, T> {
    numbered_entries(&format!("/proc/{pid}/task"))
        .filter_map(|tid| {
            let content = fs::read(format!("/proc/{pid}/task/{tid}/{file}"));
            Some((tid, parse(content)?))
        })
        .collect()
}

/// The numbered entries of directory `dir` (processes in /proc, threads in
/// a task directory); none when it cannot be read.
fn numbered_entries(dir: &str) -> impl Iterator<Item = u32> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
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
    fn parses_the_thread_group() {
        let text =
            "Name:\tbash\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1234\nNgid:\t0\nPid:\t1240\n";
        assert_eq!(parse_tgid(text).unwrap(), 1234);
        assert!(parse_tgid("Name:\tx\n").is_err());
    }

    #[test]
    fn parses_the_parent_after_a_tricky_name() {
        assert_eq!(parse_ppid(b"42 (a) b) S 17 42 42 0"), Some(17));
        assert_eq!(parse_ppid(b"42 (x) S"), None);
    }

    #[test]
    fn finds_processes_by_name() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        // Named "sleep" once it has exec'd: until then, after this test.
        let found = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            processes_named("sleep").contains(&child.id())
        });
        assert!(found);
        assert!(
            !processes_named("slee").contains(&child.id()),
            "exactly, not a prefix"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(processes_named("no such process name").is_empty());
    }

    #[test]
    fn finds_its_own_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert_eq!(parent(child.id()), Some(me));
        assert!(descendants(&[me]).contains(&child.id()));
        assert!(!descendants(&[me]).contains(&me));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_process_lives_while_a_thread_does() {
        assert!(has_live_thread(std::process::id()));
        assert!(!has_live_thread(u32::MAX));
    }

    #[test]
    fn lists_own_threads() {
        let me = std::process::id();
        let threads = live_threads(me);
        assert!(threads.contains_key(&me), "{threads:?}");
        assert!(threads.values().all(|t| !t.name.is_empty()));
    }

    #[test]
    fn parses_the_name_and_state_after_a_tricky_name() {
        assert_eq!(parse_stat(b"42 (a) b) S 1 42"), Some((&b"a) b"[..], b'S')));
        assert_eq!(parse_stat(b"42 (x) D 1"), Some((&b"x"[..], b'D')));
        assert_eq!(parse_stat(b"42 (x)"), None);
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
        // Listing /proc/PID/task can skip a thread while other test
        // threads come and go: it must be listed running at least once.
        let seen: Vec<Option<ThreadState>> = (0..20)
            .map(|_| {
                live_threads(std::process::id())
                    .get(&tid)
                    .and_then(|t| t.state)
            })
            .collect();
        assert!(seen.contains(&Some(ThreadState::Running)), "{seen:?}");
        assert!(seen.iter().flatten().all(|s| *s == ThreadState::Running));
    }

    #[test]
    fn the_tests_run_in_the_initial_pid_namespace() {
        // As CI and the development machines do; a container would not.
        assert!(!in_nested_pid_namespace());
    }

    #[test]
    fn missing_process_has_no_threads() {
        assert!(live_threads(u32::MAX).is_empty());
    }
}
