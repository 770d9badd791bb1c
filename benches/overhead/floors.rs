//! The floors kernel-delay's cost is measured against: the bench's own BPF
//! object (benches/bpf/floors.bpf.c) on the same hooks, loaded at one of
//! its levels for one process.

use std::mem::MaybeUninit;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::OpenObject;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/floors.skel.rs"));
}

use skel::{FloorsSkel, FloorsSkelBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The hooks, returning at once: what every process pays for them.
    Empty = 0,
    /// Only the comparison with the traced process.
    Filter = 1,
    /// What any per-call timing must do, no output.
    Timing = 2,
}

/// A floor attached for process `pid`; detached when dropped.
pub struct Floor {
    _skel: FloorsSkel<'static>,
}

impl Floor {
    pub fn attach(level: Level, pid: u32) -> Floor {
        // One object per floor for the life of the bench: leaked, small.
        let storage = Box::leak(Box::new(MaybeUninit::<OpenObject>::uninit()));
        let mut open = FloorsSkelBuilder::default()
            .open(storage)
            .expect("opening the floor object");
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .expect("the floor object has read-only data");
        rodata.level = level as i32;
        rodata.targ_tgid = pid as i32;
        let mut skel = open.load().expect("loading the floor object");
        skel.attach().expect("attaching the floor object");
        Floor { _skel: skel }
    }
}
