//! Loads, attaches and detaches the BPF programs, and decodes what they send.

use std::mem::MaybeUninit;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use libbpf_rs::btf::types::{FuncProto, Typedef};
use libbpf_rs::btf::Btf;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{
    ErrorKind, MapCore, MapFlags, OpenObject, PrintLevel, RingBuffer, RingBufferBuilder,
};

use crate::aggregate::{InFlight, Record};
use crate::sched::{Departure, SchedEvent};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/kernel_delay.skel.rs"));
}
use skel::types::{sched_event, syscall_event, syscall_start, thread_exit};
use skel::{KernelDelayLinks, KernelDelaySkel, KernelDelaySkelBuilder};

// SAFETY: plain C structs of integers and byte arrays, any bit pattern valid.
unsafe impl plain::Plain for syscall_event {}
unsafe impl plain::Plain for sched_event {}
unsafe impl plain::Plain for thread_exit {}
unsafe impl plain::Plain for syscall_start {}

// enum event_kind and enum switch_out_state of bpf/kernel_delay.h
const EVENT_SYSCALL: u32 = 1;
const EVENT_SWITCH_IN: u32 = 2;
const EVENT_SWITCH_OUT: u32 = 3;
const EVENT_WAKEUP: u32 = 4;
const EVENT_WAKEUP_NEW: u32 = 5;
const DEPARTURES: [Departure; 5] = [
    Departure::Preempted,
    Departure::Sleep,
    Departure::Block,
    Departure::Stop,
    Departure::Exit,
];

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

pub struct Tracer<'obj> {
    skel: KernelDelaySkel<'obj>,
}

impl<'obj> Tracer<'obj> {
    /// Loads the programs for process `tgid` and attaches them: tracing
    /// has begun when this returns.
    pub fn attach(
        storage: &'obj mut MaybeUninit<OpenObject>,
        tgid: u32,
        ringbuf_bytes: u32,
        verbose: bool,
    ) -> Result<Self> {
        if !Path::new(KERNEL_BTF).exists() {
            bail!(
                "this kernel has no BTF ({KERNEL_BTF} is missing): kernel-delay needs Linux >= 5.8 built with CONFIG_DEBUG_INFO_BTF=y"
            );
        }
        libbpf_rs::set_print(verbose.then_some((PrintLevel::Debug, print_libbpf as _)));

        let mut open = KernelDelaySkelBuilder::default()
            .open(storage)
            .context("opening the BPF object failed")?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .expect("the BPF object has read-only data");
        rodata.targ_tgid = tgid as i32;
        // Wake the reader early only when a quarter of the buffer is pending.
        rodata.wakeup_bytes = u64::from(ringbuf_bytes / 4);
        rodata.has_prev_state = sched_switch_has_prev_state();
        open.maps
            .events
            .set_max_entries(ringbuf_bytes)
            .context("sizing the ring buffer failed")?;

        let skel = open
            .load()
            .map_err(explain)
            .context("loading the BPF programs failed")?;
        let mut tracer = Tracer { skel };
        tracer
            .skel
            .attach()
            .map_err(explain)
            .context("attaching the BPF programs failed")?;
        Ok(tracer)
    }

    /// A ring buffer that hands each decoded record to `on_record`.
    pub fn ring_buffer<'cb>(
        &self,
        mut on_record: impl FnMut(Record) + 'cb,
    ) -> Result<RingBuffer<'cb>> {
        let mut builder = RingBufferBuilder::new();
        builder.add(&self.skel.maps.events, move |data: &[u8]| {
            if let Some(record) = decode(data) {
                on_record(record);
            }
            0
        })?;
        Ok(builder.build()?)
    }

    /// Stops tracing: no record is produced after this returns.
    pub fn detach(&mut self) {
        self.skel.links = KernelDelayLinks::default();
    }

    /// Records the kernel side could not deliver.
    pub fn lost_events(&self) -> u64 {
        let bss = self
            .skel
            .maps
            .bss_data
            .as_deref()
            .expect("the BPF object has a .bss");
        // SAFETY: a valid, aligned field of the mmapped .bss, which BPF
        // programs update behind our back.
        unsafe { std::ptr::read_volatile(&bss.lost_events) }
    }

    /// System calls entered and not yet returned, per thread id.
    pub fn in_flight(&self) -> Vec<(u32, InFlight)> {
        thread_entries(&self.skel.maps.syscall_starts, |start: &syscall_start| {
            (start.enter_ns != 0).then_some(InFlight {
                nr: start.nr,
                enter_ns: start.enter_ns,
            })
        })
    }

    /// Threads that exited while traced: (tid, exit time, name).
    pub fn thread_exits(&self) -> Vec<(u32, (u64, [u8; 16]))> {
        thread_entries(&self.skel.maps.thread_exits, |exit: &thread_exit| {
            Some((exit.ts_ns, exit.comm.map(|c| c as u8)))
        })
    }
}

/// Whether the kernel's sched_switch tracepoint passes the state the
/// previous task leaves in (5.18+); older ones make us read it from the task.
fn sched_switch_has_prev_state() -> bool {
    let Ok(btf) = Btf::from_vmlinux() else {
        return false;
    };
    btf.type_by_name::<Typedef>("btf_trace_sched_switch")
        .and_then(|typedef| typedef.next_type()) // pointer
        .and_then(|pointer| pointer.next_type()) // prototype
        .and_then(|proto| FuncProto::try_from(proto).ok())
        .is_some_and(|proto| proto.len() >= 5)
}

/// Reads a tid-keyed map, converting each value with `convert`.
fn thread_entries<V: plain::Plain, T>(
    map: &dyn MapCore,
    convert: impl Fn(&V) -> Option<T>,
) -> Vec<(u32, T)> {
    map.keys()
        .filter_map(|key| {
            let value = map.lookup(&key, MapFlags::ANY).ok()??;
            let tid = u32::from_ne_bytes(key.as_slice().try_into().ok()?);
            Some((tid, convert(plain::from_bytes(&value).ok()?)?))
        })
        .collect()
}

/// Waits up to `timeout` for the kernel to wake us, then reads every
/// pending record (the programs wake the reader only when the buffer fills
/// up, so reading after a plain timeout is the normal case).
pub fn drain(ring: &RingBuffer<'_>, timeout: Duration) -> Result<()> {
    let polled = ring.poll_raw(timeout);
    if polled < 0 && polled != -nix::libc::EINTR {
        bail!(
            "reading the ring buffer failed: {}",
            nix::errno::Errno::from_raw(-polled)
        );
    }
    let consumed = ring.consume_raw();
    if consumed < 0 && consumed != -nix::libc::EINTR {
        bail!(
            "reading the ring buffer failed: {}",
            nix::errno::Errno::from_raw(-consumed)
        );
    }
    Ok(())
}

fn decode(data: &[u8]) -> Option<Record> {
    let kind = u32::from_ne_bytes(data.get(..4)?.try_into().ok()?);
    match kind {
        EVENT_SYSCALL => {
            let e: &syscall_event = plain::from_bytes(data).ok()?;
            Some(Record::Syscall {
                tid: e.tid,
                nr: e.nr,
                enter_ns: e.enter_ns,
                exit_ns: e.exit_ns,
            })
        }
        EVENT_SWITCH_IN | EVENT_SWITCH_OUT | EVENT_WAKEUP | EVENT_WAKEUP_NEW => {
            let e: &sched_event = plain::from_bytes(data).ok()?;
            let event = match kind {
                EVENT_SWITCH_IN => SchedEvent::SwitchIn,
                EVENT_SWITCH_OUT => SchedEvent::SwitchOut(*DEPARTURES.get(e.state as usize)?),
                EVENT_WAKEUP => SchedEvent::Wakeup,
                _ => SchedEvent::WakeupNew,
            };
            Some(Record::Sched {
                tid: e.tid,
                ts_ns: e.ts_ns,
                event,
            })
        }
        _ => None,
    }
}

/// Adds the usual cause to errors users hit.
fn explain(err: libbpf_rs::Error) -> anyhow::Error {
    let hint = match err.kind() {
        ErrorKind::PermissionDenied => {
            Some("permission denied: run as root (or with CAP_BPF and CAP_PERFMON)")
        }
        ErrorKind::NotFound => {
            Some("a tracepoint is missing: kernel-delay needs Linux >= 5.8 with BTF")
        }
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::Error::new(err).context(hint),
        None => err.into(),
    }
}

fn print_libbpf(_level: PrintLevel, message: String) {
    eprint!("libbpf: {message}");
}
