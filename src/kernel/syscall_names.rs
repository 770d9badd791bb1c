//! System call names for the architecture the tool runs on.

use std::sync::OnceLock;

use syscalls::Sysno;

/// The poll-style waits that `TOTAL( - poll)` leaves out: time a thread
/// spends there is idle waiting, not kernel work.
const POLL_FAMILY: [&str; 7] = [
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
];

/// rt_sigreturn's number on this architecture: the value it returns is the
/// register it restores, not an error of its own.
pub const SIGRETURN: i64 = Sysno::rt_sigreturn as i64;

/// Name of system call `nr`, or `syscall_<nr>` when the table has none.
pub fn name(nr: i64) -> String {
    usize::try_from(nr)
        .ok()
        .and_then(Sysno::new)
        .map(|sysno| sysno.name().to_string())
        .unwrap_or_else(|| format!("syscall_{nr}"))
}

/// The kernel's own codes (include/linux/errno.h) that a call returns
/// where the tracepoint sees them, before signal delivery turns them into
/// EINTR or restarts the call (strace shows them too).
const KERNEL_ERRNOS: [(u32, &str); 5] = [
    (512, "ERESTARTSYS"),
    (513, "ERESTARTNOINTR"),
    (514, "ERESTARTNOHAND"),
    (515, "ENOIOCTLCMD"),
    (516, "ERESTART_RESTARTBLOCK"),
];

/// Name of errno `errno` (`EAGAIN`), or `errno_<n>` when unknown.
pub fn errno_name(errno: u32) -> String {
    if let Some((_, name)) = KERNEL_ERRNOS.iter().find(|(n, _)| *n == errno) {
        return (*name).to_string();
    }
    match nix::errno::Errno::from_raw(errno as i32) {
        nix::errno::Errno::UnknownErrno => format!("errno_{errno}"),
        known => format!("{known:?}"),
    }
}

pub fn is_poll_family(name: &str) -> bool {
    POLL_FAMILY.contains(&name)
}

/// Whether call `nr` is one of the poll family: looked up once, then a few
/// integer comparisons for every call the aggregation sees.
pub fn is_poll_family_nr(nr: i64) -> bool {
    poll_family_numbers().contains(&nr)
}

/// The numbers of the poll family on this architecture.
pub fn poll_family_numbers() -> &'static [i64] {
    static NUMBERS: OnceLock<Vec<i64>> = OnceLock::new();
    NUMBERS.get_or_init(|| {
        Sysno::iter()
            .filter(|sysno| is_poll_family(sysno.name()))
            .map(|sysno| sysno.id() as i64)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_numbers() {
        assert_eq!(name(0), "read");
        assert_eq!(name(1), "write");
        assert_eq!(name(110), "getppid");
        assert_eq!(name(230), "clock_nanosleep");
        assert_eq!(name(441), "epoll_pwait2");
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn aarch64_numbers() {
        assert_eq!(name(63), "read");
        assert_eq!(name(173), "getppid");
    }

    #[test]
    fn unknown_numbers_never_panic() {
        assert_eq!(name(-1), "syscall_-1");
        assert_eq!(name(4_294_967_285), "syscall_4294967285");
        assert_eq!(name(100_000), "syscall_100000");
        assert_eq!(name(i64::MIN), format!("syscall_{}", i64::MIN));
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(9), "EBADF");
        assert_eq!(errno_name(11), "EAGAIN");
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(4_000), "errno_4000");
        assert_eq!(errno_name(514), "ERESTARTNOHAND");
    }

    #[test]
    fn poll_family() {
        for waiting in POLL_FAMILY {
            assert!(is_poll_family(waiting));
        }
        assert!(!is_poll_family("read"));
        assert!(!is_poll_family("nanosleep"));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn poll_family_by_number() {
        // poll, select, epoll_wait, pselect6, ppoll, epoll_pwait, epoll_pwait2
        for nr in [7, 23, 232, 270, 271, 281, 441] {
            assert!(is_poll_family_nr(nr), "{nr}");
        }
        assert!(!is_poll_family_nr(0));
        assert!(!is_poll_family_nr(-1));
    }
}
