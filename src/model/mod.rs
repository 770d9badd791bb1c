//! What each traced thread did in a window, built from the records:
//! system calls, scheduling states and interrupts, with their statistics.

pub mod aggregate;
pub mod attribution;
pub mod histogram;
pub mod offcpu;
pub mod sched;
pub mod seen;
pub mod stats;
