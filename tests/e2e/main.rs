//! End-to-end tests: the real kernel-delay, as root, against workloads with
//! a known answer, checked through its JSON report. One module per topic.

mod delays;
mod events;
mod harness;
mod input;
mod irq;
mod ovs;
mod processes;
mod sched;
mod signals;
mod syscalls;
mod threads;
mod triggers;
mod window;
