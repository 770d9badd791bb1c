//! The kernel side: the BPF programs loaded and attached, the triggers
//! they fire on, and what they send and keep, decoded.

pub mod irq;
pub mod libbpf_errors;
pub mod loss;
pub mod records;
pub mod skel;
pub mod syscall_names;
pub mod tracer;
pub mod trigger;
