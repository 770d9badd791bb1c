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

fn set(policy: libc::c_int, priority: libc::c_int) -> io::Result<()> {
    // SAFETY: plain integers (musl's has more fields than glibc's).
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority;
    // SAFETY: plain system call on the calling thread with a valid pointer.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } == 0 {
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

    #[test]
    fn warning_says_why() {
        let line = warning(&io::Error::from_raw_os_error(libc::EPERM));
        assert!(line.contains("Operation not permitted"), "{line}");
        assert!(line.contains("CAP_SYS_NICE"));
    }
}
