//! The sampling window: reads the ring buffer until the window ends.

use std::time::{Duration, Instant};

use anyhow::Result;
use libbpf_rs::RingBuffer;

use crate::report::StopReason;
use crate::signals;
use crate::target::Target;
use crate::tracer::drain;

/// How often the ring buffer is read when the kernel does not wake us:
/// short enough to end the window on time, long enough to batch records.
const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

/// Reads records until the deadline, a signal, or the target's exit.
pub fn run_window(
    ring: &RingBuffer<'_>,
    target: &Target,
    deadline: Option<Instant>,
) -> Result<StopReason> {
    loop {
        if let Some(signal) = signals::take() {
            target.forward(signal);
            return Ok(StopReason::Interrupted);
        }
        if target.has_exited() {
            return Ok(StopReason::TargetExited);
        }
        let timeout = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(DRAIN_INTERVAL),
                _ => return Ok(StopReason::Duration),
            },
            None => DRAIN_INTERVAL,
        };
        drain(ring, timeout)?;
    }
}
