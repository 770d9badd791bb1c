//! --perfetto FILE: the windows as a Perfetto trace (protobuf, as the
//! Perfetto UI and trace_processor read it; the schema of Perfetto v51,
//! encoded by wire.rs). A track per traced thread, under its
//! process, with its system calls as slices (their errno and their time by
//! state as arguments); under it a track "state" whose slices are the
//! stretches the time budget adds up (running, ready_busy_cpu,
//! ready_idle_cpu, sleeping, blocked, stopped: the budget's names), and a
//! track "interrupts" with the interrupts that ran while it had the CPU.
//! A stretch ready behind other tasks names the task it is charged to
//! (`behind`), one that began with a wakeup (--wakers) what woke the
//! thread (`woken_by`), with a flow from the waker's track when the waker
//! is traced. Written as the window runs: memory stays bounded.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

mod schema;
mod wire;

use schema::{
    clock_snapshot, debug_annotation, interned_data, process_descriptor, thread_descriptor, trace,
    trace_packet, track_descriptor, track_event,
};
use wire::Message;

use crate::collect::Collected;
use crate::kernel::irq;
use crate::kernel::records::{IrqSource, Waker};
use crate::kernel::syscall_names;
use crate::model::attribution::Holder;
use crate::model::sched::{StateTimes, Stretch, ThreadState, Timeline};
use crate::model::seen::Seen;
use crate::output::StreamedFile;
use crate::recording::ThreadsSeen;
use crate::report::{state_at_start, ThreadEntry};

/// The one sequence of packets this writer makes.
const SEQUENCE: u32 = 1;
const MONOTONIC: u32 = clock_snapshot::BUILTIN_CLOCK_MONOTONIC;

/// Track uuids: a kind in the high bits, a thread or process id below.
const THREAD: u64 = 1 << 32;
const STATE: u64 = 2 << 32;
const INTERRUPTS: u64 = 3 << 32;
const PROCESS: u64 = 4 << 32;
/// Encoded slice events written at a time.
const EVENTS_BATCH: usize = 64 << 10;

pub struct PerfettoTrace {
    file: StreamedFile,
    /// Threads whose tracks are described, with their name.
    threads: HashMap<u32, String>,
    processes: HashSet<u32>,
    /// What /proc said of the window's threads as it opened: names and
    /// processes, for the tracks first described before the window ends.
    opened: ThreadsSeen,
    /// The tasks not traced that the window's records named, sanitised.
    others: HashMap<u32, String>,
    /// Per thread, its last wakeup: until the stretch it began is written.
    woken: HashMap<u32, Woken>,
    /// The flows from a waker's track to the thread it woke, so far.
    flows: u64,
    /// Slice and argument names, each written once with a number that
    /// stands for it after (the trace's interned data).
    names: HashMap<String, u64>,
    arguments: HashMap<&'static str, u64>,
    /// Slice begins and ends encoded, not yet written.
    events: Vec<u8>,
}

impl PerfettoTrace {
    /// Checks `path` can be written (before anything is traced), and
    /// starts the trace: its clock is CLOCK_MONOTONIC, the records'.
    pub fn create(path: &Path) -> Result<Self> {
        let mut trace = PerfettoTrace {
            file: StreamedFile::create(path)?,
            threads: HashMap::new(),
            processes: HashSet::new(),
            opened: ThreadsSeen::default(),
            others: HashMap::new(),
            woken: HashMap::new(),
            flows: 0,
            names: HashMap::new(),
            arguments: HashMap::new(),
            events: Vec::with_capacity(EVENTS_BATCH + 256),
        };
        let clock = Message::new()
            .uint(clock_snapshot::CLOCK_ID, MONOTONIC.into())
            .uint(clock_snapshot::TIMESTAMP, crate::clock::monotonic_ns());
        let snapshot = Message::new()
            .message(clock_snapshot::CLOCKS, &clock)
            .uint(clock_snapshot::PRIMARY_TRACE_CLOCK, MONOTONIC.into());
        let packet = Message::new()
            .message(trace_packet::CLOCK_SNAPSHOT, &snapshot)
            .uint(trace_packet::TRUSTED_PACKET_SEQUENCE_ID, SEQUENCE.into())
            .uint(
                trace_packet::SEQUENCE_FLAGS,
                trace_packet::SEQ_INCREMENTAL_STATE_CLEARED,
            );
        trace.write(&packet)?;
        Ok(trace)
    }

    /// A window opened: what /proc said of its threads.
    pub fn window_opened(&mut self, threads: &ThreadsSeen) {
        self.opened.clone_from(threads);
        self.others.clear();
        self.woken.clear();
    }

    /// Writes what the window's aggregation saw happen.
    pub fn seen(&mut self, seen: Vec<Seen>) -> Result<()> {
        for event in seen {
            match event {
                Seen::Stretch { tid, pid, stretch } => {
                    self.describe(tid, pid, None)?;
                    self.stretch(tid, &stretch)?;
                }
                Seen::Call {
                    tid,
                    pid,
                    nr,
                    errno,
                    enter_ns,
                    exit_ns,
                    times,
                } => {
                    self.describe(tid, pid, None)?;
                    let name = syscall_names::name(nr);
                    let args = call_arguments(errno, &times, exit_ns - enter_ns);
                    let track = THREAD | u64::from(tid);
                    self.slice(track, &name, enter_ns, exit_ns, &args, None)?;
                }
                Seen::Interrupt {
                    tid,
                    pid,
                    source,
                    start_ns,
                    end_ns,
                } => {
                    self.describe(tid, pid, None)?;
                    let name = interrupt_name(&source);
                    let track = INTERRUPTS | u64::from(tid);
                    self.slice(track, &name, start_ns, end_ns, &[], None)?;
                }
                Seen::Wakeup {
                    tid,
                    ts_ns,
                    waker,
                    waker_traced,
                } => {
                    let woken = Woken {
                        ts_ns,
                        waker,
                        waker_traced,
                    };
                    self.woken.insert(tid, woken);
                }
                Seen::TaskNamed { task, comm } => {
                    self.others
                        .insert(task.tid, crate::sanitize::sanitize(&comm));
                }
            }
        }
        Ok(())
    }

    /// The window closed: each thread's last stretch (the one it was in as
    /// the window closed), and its tracks named as the report names it.
    pub fn window_closed(&mut self, collected: &Collected) -> Result<()> {
        let m = &collected.measurement;
        let window = (m.header.start.mono_ns, m.end.mono_ns);
        let only_process = m.only_process();
        for activity in &collected.threads {
            let (pid, comm) = ThreadEntry::identity(activity, &m.names, window, only_process);
            let tid = activity.tid;
            let exit_ns = activity
                .exit
                .filter(|exit| exit.ts_ns <= window.1)
                .map(|exit| exit.ts_ns);
            let state = state_at_start(activity, &m.names);
            let last = match &activity.timeline {
                Some(timeline) => timeline.last_stretch(window.1, exit_ns, state),
                None => Timeline::new(window.0).last_stretch(window.1, exit_ns, state),
            };
            // Named again if it was described already: now the report's
            // names are known.
            match self.threads.contains_key(&tid) {
                true => self.thread_descriptor(tid, pid, &comm)?,
                false => self.describe(tid, pid, Some(&comm))?,
            }
            if let Some(last) = last {
                self.stretch(tid, &last)?;
            }
        }
        // The slow calls (--syscall-events), named as the window closed:
        // an instant as each returned, with its stacks.
        for slow in m.syscall_events.iter().flat_map(|events| &events.calls) {
            let call = &slow.call;
            self.describe(call.tid, Some(call.pid), None)?;
            let duration_ns = call.exit_ns.saturating_sub(call.enter_ns);
            let mut args = vec![
                Argument::int("duration_ns", duration_ns as i64),
                Argument::text("kernel_stack", slow.kernel_stack.join("\n")),
                Argument::text("user_stack", slow.user_stack.join("\n")),
            ];
            if let Some(cut) = slow.user_stack_cut {
                args.push(Argument::text("user_stack_cut", cut.to_string()));
            }
            let name = format!("slow {}", syscall_names::name(call.nr));
            let track = THREAD | u64::from(call.tid);
            let instant = track_event::TYPE_INSTANT;
            self.named_event(instant, track, &name, call.exit_ns, &args, None)?;
        }
        Ok(())
    }

    /// Puts the trace in place.
    pub fn finish(mut self) -> Result<()> {
        self.write_events()?;
        self.file.finish("the Perfetto trace")
    }

    /// Describes thread `tid`'s tracks, once: named `name`, else as /proc
    /// named it when the window opened, until the window's end names it.
    fn describe(&mut self, tid: u32, pid: Option<u32>, name: Option<&str>) -> Result<()> {
        if self.threads.contains_key(&tid) {
            return Ok(());
        }
        let name = match (name, self.opened.names.get(&tid)) {
            (Some(name), _) => name.to_string(),
            (None, Some(name)) => crate::sanitize::sanitize(name),
            (None, None) => format!("thread {tid}"),
        };
        let pid = pid.or(self.opened.pids.get(&tid).copied());
        self.thread_descriptor(tid, pid, &name)?;
        for (kind, name) in [(STATE, "state"), (INTERRUPTS, "interrupts")] {
            let track = Message::new()
                .uint(track_descriptor::UUID, kind | u64::from(tid))
                .uint(track_descriptor::PARENT_UUID, THREAD | u64::from(tid))
                .text(track_descriptor::NAME, name);
            self.descriptor(&track)?;
        }
        Ok(())
    }

    /// Describes thread `tid` of process `pid` as `name`; its process too,
    /// the first time, and named after it if it is the main thread (as ps
    /// names a process).
    fn thread_descriptor(&mut self, tid: u32, pid: Option<u32>, name: &str) -> Result<()> {
        if let Some(pid) = pid {
            let main = pid == tid;
            if self.processes.insert(pid) || main {
                let mut process = Message::new().int(process_descriptor::PID, pid.into());
                if main {
                    process = process.text(process_descriptor::PROCESS_NAME, name);
                }
                let track = Message::new()
                    .uint(track_descriptor::UUID, PROCESS | u64::from(pid))
                    .message(track_descriptor::PROCESS, &process);
                self.descriptor(&track)?;
            }
        }
        let mut thread = Message::new().int(thread_descriptor::TID, tid.into());
        if let Some(pid) = pid {
            thread = thread.int(thread_descriptor::PID, pid.into());
        }
        let thread = thread.text(thread_descriptor::THREAD_NAME, name);
        let track = Message::new()
            .uint(track_descriptor::UUID, THREAD | u64::from(tid))
            .message(track_descriptor::THREAD, &thread);
        self.threads.insert(tid, name.to_string());
        self.descriptor(&track)
    }

    fn descriptor(&mut self, track: &Message) -> Result<()> {
        let packet = Message::new()
            .message(trace_packet::TRACK_DESCRIPTOR, track)
            .uint(trace_packet::TRUSTED_PACKET_SEQUENCE_ID, SEQUENCE.into());
        self.write(&packet)
    }

    /// A stretch of thread `tid`'s time on its "state" track: ready, with
    /// what it waited behind and, if a wakeup began it, what woke it (a
    /// flow from the waker's track, where it is traced, to it).
    fn stretch(&mut self, tid: u32, stretch: &Stretch) -> Result<()> {
        let name = match (stretch.state, stretch.after_idle) {
            (ThreadState::Ready, true) => "ready_idle_cpu",
            (ThreadState::Ready, false) => "ready_busy_cpu",
            (state, _) => state.name(),
        };
        let mut args = Vec::new();
        if let Some(holder) = stretch.holder {
            self.holder_arguments(holder, &mut args);
        }
        let mut flow = None;
        // A wakeup that ended a wait began the thread's next stretch.
        let woken = self
            .woken
            .remove(&tid)
            .filter(|woken| woken.ts_ns == stretch.start_ns)
            .filter(|_| stretch.state == ThreadState::Ready);
        if let Some(woken) = woken {
            flow = self.waker_arguments(&woken, &mut args)?;
        }
        let track = STATE | u64::from(tid);
        let (start, end) = (stretch.start_ns, stretch.end_ns);
        self.slice(track, name, start, end, &args, flow.map(Flow::Ends))
    }

    /// `behind`: the task a stretch ready is charged to, with its ids.
    fn holder_arguments(&self, holder: Holder, args: &mut Vec<Argument>) {
        let name = match holder {
            Holder::Task(tid) => {
                args.push(Argument::int("behind_tid", i64::from(tid)));
                self.task_name(tid)
            }
            Holder::StillReady => "(still ready at the window's end)".to_string(),
            Holder::Unseen => "(switch not recorded)".to_string(),
        };
        args.push(Argument::text("behind", name));
    }

    /// `woken_by`: what woke the thread, with its ids; a traced waker gets
    /// an instant "wakeup" on its track as the flow's start. The flow's id.
    fn waker_arguments(&mut self, woken: &Woken, args: &mut Vec<Argument>) -> Result<Option<u64>> {
        let task = match &woken.waker {
            Waker::Task(task) => task,
            Waker::Interrupt(source) => {
                args.push(Argument::text("woken_by", interrupt_name(source)));
                return Ok(None);
            }
        };
        args.push(Argument::text("woken_by", self.task_name(task.tid)));
        args.push(Argument::int("woken_by_tid", i64::from(task.tid)));
        if !woken.waker_traced {
            return Ok(None);
        }
        self.flows += 1;
        let flow = self.flows;
        self.describe(task.tid, task.pid, None)?;
        let track = THREAD | u64::from(task.tid);
        let start = Some(Flow::Starts(flow));
        let instant = track_event::TYPE_INSTANT;
        self.named_event(instant, track, "wakeup", woken.ts_ns, &[], start)?;
        Ok(Some(flow))
    }

    /// A task's name: as its track is named if it is traced, else as a
    /// record named it.
    fn task_name(&self, tid: u32) -> String {
        if tid == 0 {
            return "(idle)".to_string();
        }
        if let Some(name) = self.threads.get(&tid) {
            return name.clone();
        }
        if let Some(name) = self.opened.names.get(&tid) {
            return crate::sanitize::sanitize(name);
        }
        match self.others.get(&tid) {
            Some(name) => name.clone(),
            None => "(name not recorded)".to_string(),
        }
    }

    /// A slice [start_ns, end_ns] on `track`, with `args`, and `flow`.
    fn slice(
        &mut self,
        track: u64,
        name: &str,
        start_ns: u64,
        end_ns: u64,
        args: &[Argument],
        flow: Option<Flow>,
    ) -> Result<()> {
        let fast = (args.is_empty() && flow.is_none())
            .then(|| self.names.get(name).copied())
            .flatten();
        if let Some(iid) = fast {
            self.slice_event(start_ns, track_event::TYPE_SLICE_BEGIN, track, Some(iid));
        } else {
            let begin = track_event::TYPE_SLICE_BEGIN;
            self.named_event(begin, track, name, start_ns, args, flow)?;
        }
        self.slice_event(end_ns, track_event::TYPE_SLICE_END, track, None);
        self.flush_events()
    }

    /// A begin or an end, after the events pending.
    fn slice_event(&mut self, ts_ns: u64, kind: u64, track: u64, name_iid: Option<u64>) {
        let flags = trace_packet::SEQ_NEEDS_INCREMENTAL_STATE;
        let events = &mut self.events;
        wire::slice_event(
            events, ts_ns, MONOTONIC, SEQUENCE, flags, kind, track, name_iid,
        );
    }

    /// Writes the pending events once they are many.
    fn flush_events(&mut self) -> Result<()> {
        if self.events.len() < EVENTS_BATCH {
            return Ok(());
        }
        self.write_events()
    }

    fn write_events(&mut self) -> Result<()> {
        let written = self.file.out().write_all(&self.events);
        self.events.clear();
        written.context("writing the Perfetto trace failed")
    }

    /// An event of `kind` (a slice's begin, an instant) named `name`, with
    /// `args` and `flow`, its names interned in the same packet the first
    /// time (a begin whose name is known and that has neither goes through
    /// wire::slice_event).
    fn named_event(
        &mut self,
        kind: u64,
        track: u64,
        name: &str,
        ts_ns: u64,
        args: &[Argument],
        flow: Option<Flow>,
    ) -> Result<()> {
        let mut interned = Message::new();
        let name_iid = self.name(name, &mut interned);
        let mut event = Message::new()
            .uint(track_event::TYPE, kind)
            .uint(track_event::TRACK_UUID, track)
            .uint(track_event::NAME_IID, name_iid);
        for argument in args {
            let name_iid = self.argument(argument.name, &mut interned);
            let annotation = Message::new().uint(debug_annotation::NAME_IID, name_iid);
            let annotation = match &argument.value {
                Value::Int(value) => annotation.int(debug_annotation::INT_VALUE, *value),
                Value::Text(value) => annotation.text(debug_annotation::STRING_VALUE, value),
            };
            event = event.message(track_event::DEBUG_ANNOTATIONS, &annotation);
        }
        event = match flow {
            Some(Flow::Starts(id)) => event.fixed64(track_event::FLOW_IDS, id),
            Some(Flow::Ends(id)) => event.fixed64(track_event::TERMINATING_FLOW_IDS, id),
            None => event,
        };
        let mut packet = Message::new()
            .uint(trace_packet::TIMESTAMP, ts_ns)
            .uint(trace_packet::TIMESTAMP_CLOCK_ID, MONOTONIC.into())
            .uint(trace_packet::TRUSTED_PACKET_SEQUENCE_ID, SEQUENCE.into())
            .uint(
                trace_packet::SEQUENCE_FLAGS,
                trace_packet::SEQ_NEEDS_INCREMENTAL_STATE,
            );
        if !interned.encoded().is_empty() {
            packet = packet.message(trace_packet::INTERNED_DATA, &interned);
        }
        let packet = packet.message(trace_packet::TRACK_EVENT, &event);
        self.write(&packet)
    }

    /// The number standing for slice name `name`; added to `interned`
    /// (an InternedData) the first time.
    fn name(&mut self, name: &str, interned: &mut Message) -> u64 {
        if let Some(&iid) = self.names.get(name) {
            return iid;
        }
        let iid = self.names.len() as u64 + 1;
        self.names.insert(name.to_string(), iid);
        intern(interned, interned_data::EVENT_NAMES, iid, name);
        iid
    }

    /// The number standing for argument name `name`, as for `name`.
    fn argument(&mut self, name: &'static str, interned: &mut Message) -> u64 {
        if let Some(&iid) = self.arguments.get(name) {
            return iid;
        }
        let iid = self.arguments.len() as u64 + 1;
        self.arguments.insert(name, iid);
        intern(interned, interned_data::DEBUG_ANNOTATION_NAMES, iid, name);
        iid
    }

    /// Appends `packet` (a TracePacket) to the trace, after the events
    /// pending: the file is a Trace message, whose field 1 repeats a packet
    /// each.
    fn write(&mut self, packet: &Message) -> Result<()> {
        self.write_events()?;
        let framed = Message::new().message(trace::PACKET, packet);
        self.file
            .out()
            .write_all(framed.encoded())
            .context("writing the Perfetto trace failed")
    }
}

/// Adds to `interned` (an InternedData), in its field `field`, the name
/// `name` under number `iid` (an EventName, a DebugAnnotationName).
fn intern(interned: &mut Message, field: u32, iid: u64, name: &str) {
    let entry = Message::new()
        .uint(interned_data::IID, iid)
        .text(interned_data::NAME, name);
    *interned = std::mem::take(interned).message(field, &entry);
}

/// A thread's last wakeup, with what woke it.
struct Woken {
    ts_ns: u64,
    waker: Waker,
    waker_traced: bool,
}

/// An event's part in a flow (an arrow between tracks), by the flow's id.
#[derive(Clone, Copy)]
enum Flow {
    Starts(u64),
    Ends(u64),
}

/// A slice's argument.
struct Argument {
    name: &'static str,
    value: Value,
}

impl Argument {
    fn int(name: &'static str, value: i64) -> Self {
        let value = Value::Int(value);
        Argument { name, value }
    }

    fn text(name: &'static str, value: String) -> Self {
        let value = Value::Text(value);
        Argument { name, value }
    }
}

enum Value {
    Int(i64),
    Text(String),
}

/// A call's arguments: its errno if it failed; its time by state if it
/// left its CPU (a call that did not was on it all along: its slice says
/// how long).
fn call_arguments(errno: u32, times: &StateTimes, duration_ns: u64) -> Vec<Argument> {
    let mut args = Vec::new();
    if errno != 0 {
        args.push(Argument::text("errno", syscall_names::errno_name(errno)));
    }
    if times.running_ns != duration_ns {
        for (name, ns) in [
            ("running_ns", times.running_ns),
            ("ready_busy_cpu_ns", times.ready_busy_cpu_ns),
            ("ready_idle_cpu_ns", times.ready_idle_cpu_ns),
            ("sleeping_ns", times.sleeping_ns),
            ("blocked_ns", times.blocked_ns),
            ("stopped_ns", times.stopped_ns),
        ] {
            if ns > 0 {
                args.push(Argument::int(name, ns as i64));
            }
        }
    }
    args
}

fn interrupt_name(source: &IrqSource) -> String {
    match source {
        IrqSource::Softirq(vec) => format!("softirq {}", irq::softirq_name(*vec)),
        // A wakeup's record does not name the handler.
        IrqSource::Hard(irq::HardIrq::Line { irq, handler }) if handler.is_empty() => {
            format!("irq {irq}")
        }
        IrqSource::Hard(irq::HardIrq::Line { irq, handler }) => {
            format!("irq {irq} {}", crate::sanitize::sanitize(handler))
        }
        IrqSource::Hard(irq::HardIrq::Vector(id)) => irq::vector_name(*id),
    }
}
