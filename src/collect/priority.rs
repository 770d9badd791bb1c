//! The reader's scheduling priority. When the target's threads saturate
//! the CPUs, a reader at normal priority gets one turn in thousands and the
//! ring buffer fills up; at real-time priority (SCHED_FIFO 1, above every
//! normal task, below every real-time one) it drains whenever it wakes.

use std::io;

use nix::libc;

/// Low: the reader must preempt normal tasks, not the target's real-time
/// threads if it has any.
const READER_PRIORITY: libc::c_int = 1;

/// Raises the calling thread to SCHED_FIFO; a process it forks afterwards
/// starts at normal priority. Err (with why) when not permitted.
pub fn raise() -> io::Result<()> {
    set(
        libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK,
        READER_PRIORITY,
    )
}

/// Back to normal priority, once the window is closed and drained: the
/// report is no urgent work.
pub fn lower() {
    let _ = set(libc::SCHED_OTHER, 0);
}

/// The system call itself: musl's sched_setscheduler() is a stub that
/// fails with ENOSYS (POSIX wants it per process, Linux does it per
/// thread), which the static binary would report as refused.
fn set(policy: libc::c_int, priority: libc::c_int) -> io::Result<()> {
    // SAFETY: plain integers (musl's has more fields than glibc's; the
    // kernel reads only the first).
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority;
    // SAFETY: sched_setscheduler(2) on the calling thread (0) with a valid
    // pointer to a sched_param that outlives the call.
    let done = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0 as libc::pid_t,
            policy,
            &raw const param,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The report's line when the reader stayed at normal priority.
pub fn warning(err: &io::Error) -> String {
    format!(
        "the reader ran at normal priority (real-time priority refused: {err}; it needs \
         CAP_SYS_NICE): if the target saturates the CPUs, records may be lost"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's policy, by the system call: musl's
    /// sched_getscheduler() is a stub, as its sched_setscheduler() is.
    fn policy() -> libc::c_int {
        // SAFETY: sched_getscheduler(2) on the calling thread (0), no pointer.
        let policy = unsafe { libc::syscall(libc::SYS_sched_getscheduler, 0 as libc::pid_t) };
        libc::c_int::try_from(policy).expect("a policy or -1")
    }

    #[test]
    fn raised_and_lowered_or_refused_for_lack_of_privilege() {
        // As root (make test): raised, whatever the libc; otherwise EPERM,
        // never ENOSYS.
        match raise() {
            Ok(()) => {
                assert_eq!(policy() & !libc::SCHED_RESET_ON_FORK, libc::SCHED_FIFO);
                lower();
                assert_eq!(policy(), libc::SCHED_OTHER);
            }
            Err(err) => assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}"),
        }
    }

    #[test]
    fn warning_says_why() {
        let line = warning(&io::Error::from_raw_os_error(libc::EPERM));
        assert!(line.contains("Operation not permitted"), "{line}");
        assert!(line.contains("CAP_SYS_NICE"));
    }
}
