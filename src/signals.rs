//! Signals that would end kernel-delay end the window instead, so that
//! what was measured is still reported: SIGINT, SIGTERM and every other
//! whose default action ends a process (SIGPIPE aside: a reader gone is
//! seen when the report is written). A signal before tracing has begun
//! ends kernel-delay with one line.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::Result;
use nix::libc;
use nix::sys::signal::Signal;

static RECEIVED: AtomicI32 = AtomicI32::new(0);
static FROM_TERMINAL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t.
    let code = unsafe { (*info).si_code };
    FROM_TERMINAL.store(code == libc::SI_KERNEL, Ordering::SeqCst);
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// The signals whose default action ends the process, SIGPIPE aside.
fn ending() -> impl Iterator<Item = libc::c_int> {
    [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
    ]
    .into_iter()
    .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
}

/// Installs the handler: first thing, so that no signal kills kernel-delay
/// before its report. Without SA_RESTART, so that a blocking wait returns
/// at once with EINTR.
pub fn install() -> Result<()> {
    for signal in ending() {
        // SAFETY: plain data; the handler only stores to atomics.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO;
        // SAFETY: a valid sigaction for a catchable signal; the old one is
        // not asked for.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// A signal that was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub number: libc::c_int,
    /// Sent by the terminal to its foreground process group (Ctrl-C,
    /// Ctrl-\, a hangup): a launched command in it has it too.
    pub from_terminal: bool,
}

impl Received {
    /// The signal to pass on to a launched command, as a shell would:
    /// those that ask a program to stop, unless the command got it already.
    pub fn forwarded(self) -> Option<Signal> {
        let signal = Signal::try_from(self.number).ok()?;
        let stop = matches!(
            signal,
            Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP | Signal::SIGQUIT
        );
        (stop && !self.from_terminal).then_some(signal)
    }
}

/// The signal received since the last call, if any.
pub fn take() -> Option<Received> {
    match RECEIVED.swap(0, Ordering::SeqCst) {
        0 => None,
        number => Some(Received {
            number,
            from_terminal: FROM_TERMINAL.load(Ordering::SeqCst),
        }),
    }
}

/// A signal came before tracing began: nothing was measured.
#[derive(Debug)]
pub struct BeforeTracing(pub Received);

impl BeforeTracing {
    /// The exit status of a process it would have ended.
    pub fn exit_status(&self) -> u8 {
        128 + self.0.number as u8
    }
}

impl fmt::Display for BeforeTracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Signal::try_from(self.0.number).map_or_else(
            |_| format!("signal {}", self.0.number),
            |signal| signal.as_str().to_string(),
        );
        write!(f, "{name} before tracing began: nothing was measured")
    }
}

impl std::error::Error for BeforeTracing {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_are_passed_on_unless_the_terminal_sent_them() {
        let received = |number, from_terminal| Received {
            number,
            from_terminal,
        };
        assert_eq!(
            received(libc::SIGINT, false).forwarded(),
            Some(Signal::SIGINT)
        );
        assert_eq!(received(libc::SIGINT, true).forwarded(), None);
        assert_eq!(received(libc::SIGUSR1, false).forwarded(), None);
        assert_eq!(received(libc::SIGRTMIN(), false).forwarded(), None);
        assert_eq!(
            BeforeTracing(received(libc::SIGHUP, false)).to_string(),
            "SIGHUP before tracing began: nothing was measured"
        );
        assert_eq!(
            BeforeTracing(received(libc::SIGHUP, false)).exit_status(),
            129
        );
    }
}
