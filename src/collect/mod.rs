//! The sampling windows: attaches the probes, opens each window (at once,
//! or when the start trigger fires), reads the ring buffer until it closes
//! (at --duration, on the stop trigger, Ctrl-C or the target's exit), and
//! gathers everything its report is built from.

mod assemble;
mod intake;
mod placement;
mod priority;
mod reorder;
mod replay;
mod session;

use std::mem::MaybeUninit;

use anyhow::Result;

use crate::cli::Cli;
use crate::clock;
use crate::kernel::tracer::{user_stack_copy_bytes, Filter, Options, Tracer, WindowPlan};
use crate::model::aggregate::ThreadActivity;
use crate::output::Layout;
use crate::perfetto::PerfettoTrace;
use crate::processes::cgroup::Cgroups;
use crate::processes::{procfs, Target};
use crate::recording::write::Recorder;
use crate::recording::{Message, Run};
use crate::report::{Header, Measurement};
use crate::sanitize::sanitize;
use crate::signals;
use crate::symbols::address_space::AddressSpaces;
use crate::symbols::unwind::Unwinders;
use crate::thousands::thousands;
use intake::Intake;
use placement::Placement;
use reorder::Reorder;
pub use replay::replay;
use session::Session;

/// What one window measured.
pub struct Collected {
    pub measurement: Measurement,
    pub threads: Vec<ThreadActivity>,
}

/// Where the windows go, as they close.
pub trait Sink {
    /// The probes are attached: tracing has begun.
    fn announce(&mut self, header: &Header) -> Result<()>;
    /// A window closed: its report, laid out as `layout` says.
    fn report(&mut self, window: Collected, layout: Layout) -> Result<()>;
    /// A line about the windows (one skipped).
    fn note(&mut self, line: &str) -> Result<()>;
}

/// Traces `target`, one window or several, each handed to `sink` as it
/// closes. Errors before tracing begins are returned; a failure while
/// reading ends the window early (its report is still made) and comes back
/// as Ok(Some(failure)).
pub fn collect(
    cli: &Cli,
    target: &mut Target,
    sink: &mut dyn Sink,
) -> Result<Option<anyhow::Error>> {
    let given = target.pids();
    let follow_forks = cli.follows_forks();
    let plan = cli.window_plan();
    // Checked before anything is traced; put in place at the end.
    let perfetto = cli
        .perfetto
        .as_deref()
        .map(PerfettoTrace::create)
        .transpose()?;
    let mut storage = MaybeUninit::uninit();
    let mut tracer = Tracer::attach(
        &mut storage,
        &Filter::new(&given, follow_forks),
        &Options {
            ringbuf_bytes: cli.ringbuf_bytes(),
            events: cli.events(),
            stacks: cli.stacks(),
            offcpu_stacks: cli.off_cpu_stacks,
            plan: plan.as_ref(),
            executable: target.executable(),
            verbose: cli.verbose(),
            wakers: cli.wakers,
        },
    )?;
    // A signal while the probes were attaching (handled since the start).
    if let Some(received) = signals::take() {
        return Err(signals::BeforeTracing(received).into());
    }
    let traced = traced_from_the_start(&mut tracer, target, follow_forks);
    // Once the programs are loaded: the verifier's work is no urgent work.
    let mut warnings = Vec::new();
    // At normal priority, the kernel itself keeps the reader off busy CPUs.
    let placement = match priority::raise() {
        Ok(()) => Placement::new(),
        Err(err) => {
            warnings.push(priority::warning(&err));
            None
        }
    };
    let header = Header {
        processes: given
            .iter()
            .map(|&pid| (pid, sanitize(&target.comm(pid))))
            .collect(),
        follow_forks,
        cgroups: target
            .cgroups()
            .map(Cgroups::names)
            .unwrap_or_default()
            .iter()
            .map(|name| sanitize(name.as_bytes()))
            .collect(),
        start: clock::now(),
        requested: cli.window_length(),
        start_trigger: cli.start_trigger.as_ref().map(ToString::to_string),
    };
    let intake = Intake {
        reorder: Reorder::default(),
        placement,
        spaces: AddressSpaces::new(Box::new(tracer.address_spaces()?)),
        unwinders: Unwinders::new(user_stack_copy_bytes(cli.stacks().user_stack_bytes)),
    };
    let (ring, intake) = intake.connect(&tracer)?;
    // A launched command's stacks, read as it waits in our fork, are
    // unwound once it goes on: it does not wait for that.
    let mut held = Vec::new();
    if plan.is_none() && cli.off_cpu_stacks {
        // The one window is open: read before a launched command goes on.
        let launched = target.is_launched();
        warnings.extend(session::read_offcpu_at_open(&tracer, |mut record| {
            let mut intake = intake.borrow_mut();
            match launched {
                true => {
                    intake.note_space(&mut record);
                    held.push(record);
                }
                false => intake.receive_read(record),
            }
        }));
    }
    // Made once tracing can begin: a run that fails before leaves no file.
    let recorder = match cli.record.as_deref() {
        Some(path) => {
            let mut recorder = Recorder::create(path)?;
            recorder.write(&Message::Run(Run {
                tool: env!("CARGO_PKG_VERSION").to_string(),
                kernel: procfs::kernel_release(),
                arguments: std::env::args().collect(),
                start: header.start,
            }));
            Some(recorder)
        }
        None => None,
    };
    sink.announce(&header)?;
    target.release()?;
    for record in held {
        intake.borrow_mut().receive_read(record);
    }
    let mut session = Session::new(cli, plan.as_ref(), target, tracer, ring, intake, traced)
        .recording_to(recorder, perfetto);

    let Some(plan) = plan.as_ref() else {
        // One window, from now: the probes are all there is to open it.
        let (collected, failure) = session.measure_window(header, Layout::Only, warnings)?;
        session.record(&Message::Reported);
        let recorder = session.take_recorder();
        let perfetto = session.take_perfetto();
        // The ring buffer (mapped twice) and the maps go before the report
        // is made: the report's memory peak is then its own.
        drop(session);
        let finished = recorder.map(Recorder::finish).transpose();
        sink.report(collected, Layout::Only)?;
        finished?;
        perfetto?.map(PerfettoTrace::finish).transpose()?;
        return Ok(failure);
    };
    let measured = windows(&mut session, plan, &header, &warnings, sink);
    let finished = session.take_recorder().map(Recorder::finish).transpose();
    let traced = session
        .take_perfetto()
        .and_then(|perfetto| perfetto.map(PerfettoTrace::finish).transpose());
    let failure = measured?;
    finished?;
    traced?;
    Ok(failure)
}

/// The windows of `plan`, each reported to `sink` as it closes, until the
/// last, a signal or the target's exit; the failure that ended one, if
/// reading failed.
fn windows(
    session: &mut Session<'_, '_>,
    plan: &WindowPlan,
    header: &Header,
    warnings: &[String],
    sink: &mut dyn Sink,
) -> Result<Option<anyhow::Error>> {
    let layout = match plan.count {
        1 => Layout::Triggered,
        _ => Layout::OneOfMany,
    };
    loop {
        let Some(opened) = session.open()? else {
            return Ok(None); // interrupted, or the target is gone
        };
        let window_header = Header {
            start: opened,
            ..header.clone()
        };
        let (collected, failure) =
            session.measure_window(window_header, layout, warnings.to_vec())?;
        let info = collected
            .measurement
            .window
            .as_ref()
            .expect("a window's report");
        let delta = info.close_ns.saturating_sub(info.open_ns);
        if plan.skips(delta) {
            let note = format!("# Sample dump skipped, delta {} ns", thousands(delta));
            session.record(&Message::Note(note.clone()));
            sink.note(&note)?;
        } else {
            session.record(&Message::Reported);
            // The reader's priority is for reading: the report is made at
            // normal priority, as the one window's is.
            priority::lower();
            let written = sink.report(collected, layout);
            let _ = priority::raise(); // refused already, said in the first report
            written?;
            session.reported();
        }
        if session.is_over() {
            return Ok(failure);
        }
        // A start trigger keeps the pause itself (from the close).
        if plan.start.is_none() && !session.pause(plan.interval)? {
            return Ok(None);
        }
    }
}

/// The processes traced from the start: those given and, following forks
/// of running processes, their descendants (added to the traced set; read
/// twice, for the children forked while /proc was read).
fn traced_from_the_start(tracer: &mut Tracer<'_>, target: &Target, follow_forks: bool) -> Vec<u32> {
    let mut traced = target.pids();
    if follow_forks && !target.is_launched() {
        for _ in 0..2 {
            for pid in procfs::descendants(&traced) {
                if tracer.trace_process(pid) {
                    traced.push(pid);
                }
            }
        }
    }
    traced
}
