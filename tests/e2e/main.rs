//! End-to-end tests: the real kernel-delay, as root, against workloads with
//! a known answer, checked through its JSON report. One module per topic.
//! Each begins with `needs_root!()`: run by another user, it is skipped,
//! and the run says so once.

#[macro_use]
mod harness;

mod attribution;
mod delays;
mod events;
mod input;
mod irq;
mod ovs;
mod perfetto;
mod processes;
mod recording;
mod sched;
mod servers;
mod signals;
mod syscalls;
mod threads;
mod triggers;
mod window;
