//! One window after another: opens each, reads the ring buffer until it
//! closes, and gathers its measurement from the records, the programs'
//! maps and /proc.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Result;
use blazesym::symbolize::Symbolizer;
use libbpf_rs::RingBuffer;

use crate::cli::Cli;
use crate::clock::{self, Timestamp};
use crate::collect::assemble::assemble;
use crate::collect::intake::Intake;
use crate::collect::priority;
use crate::collect::reorder::HOLD_NS;
use crate::collect::Collected;
use crate::kernel::irq::SystemSoftirqs;
use crate::kernel::loss::{skipped_runs_warning, Lost};
use crate::kernel::records::{InFlight, Record};
use crate::kernel::skel::types::{softirq_totals, window_closer, window_state};
use crate::kernel::tracer::{drain, read_pending, Tracer, WindowPlan};
use crate::model::aggregate::{Aggregator, Input, Setup};
use crate::output::Layout;
use crate::perfetto::PerfettoTrace;
use crate::processes::cgroup::Cgroups;
use crate::processes::procfs::{self, ThreadInfo};
use crate::processes::Target;
use crate::recording::write::Recorder;
use crate::recording::{Message, ThreadsSeen, WindowEnd};
use crate::report::{Header, StopReason, ThreadNames, WindowInfo};
use crate::signals;
use crate::symbols::symbolize::StackNamer;
use crate::thousands::thousands;

/// How often the ring buffer is read when the kernel does not wake us:
/// short enough to end the window on time, long enough to batch records.
const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

/// Threads by tid: their process and what /proc said of them.
type Threads = HashMap<u32, (u32, ThreadInfo)>;

/// What stays the same from one window to the next.
pub struct Session<'a, 'obj> {
    cli: &'a Cli,
    plan: Option<&'a WindowPlan>,
    target: &'a Target,
    /// Before the tracer: the ring buffer goes first.
    ring: RingBuffer<'static>,
    intake: Rc<RefCell<Intake>>,
    tracer: Tracer<'obj>,
    /// The window being read, and how it was set up.
    aggregator: Aggregator,
    setup: Setup,
    /// With --record: what the windows take in, as they take it.
    recorder: Option<Recorder>,
    /// With --perfetto: what the windows see happen, as they see it; and
    /// the first failure to write it.
    perfetto: Option<PerfettoTrace>,
    perfetto_failure: Option<anyhow::Error>,
    /// The files read for symbols, kept from one window to the next.
    symbolizer: Symbolizer,
    /// The traced processes alive at the last window's end.
    alive: Vec<u32>,
    /// The loss counters, stacks missed and start triggers missed at the
    /// last window's end (the kernel's counters only grow).
    lost: Lost,
    stacks_missed: u64,
    missed_windows: u64,
    /// Runs of each program the kernel skipped, by the last window's end.
    programs_skipped: HashMap<String, u64>,
    /// When the last window closed (0: none did).
    last_close_ns: u64,
    /// The last window is taken: a signal, the target's exit or a
    /// failure ended it, or it makes the last report asked for.
    over: bool,
    /// Reports made.
    reported: u64,
}

/// Read as the window opens, to be compared with its end.
struct Opening {
    start_ns: u64,
    threads: Threads,
    softirqs: Vec<softirq_totals>,
    /// What /proc said of the threads: their names, and their states.
    seen: ThreadsSeen,
}

/// Read as the window closes.
struct Closing {
    end: Timestamp,
    stop_reason: StopReason,
    failure: Option<anyhow::Error>,
    /// The traced processes still alive, and their threads.
    alive: Vec<u32>,
    threads: Threads,
    /// The system call each thread is in, by /proc.
    calls_in_progress: std::io::Result<HashMap<u32, i64>>,
    softirqs_system: SystemSoftirqs,
}

impl<'a, 'obj> Session<'a, 'obj> {
    pub fn new(
        cli: &'a Cli,
        plan: Option<&'a WindowPlan>,
        target: &'a Target,
        tracer: Tracer<'obj>,
        ring: RingBuffer<'static>,
        intake: Rc<RefCell<Intake>>,
        traced: Vec<u32>,
    ) -> Self {
        Session {
            cli,
            plan,
            target,
            ring,
            intake,
            tracer,
            aggregator: Aggregator::new(u64::MAX),
            setup: cli.setup(u64::MAX),
            recorder: None,
            perfetto: None,
            perfetto_failure: None,
            symbolizer: Symbolizer::new(),
            alive: traced,
            lost: Lost::default(),
            stacks_missed: 0,
            missed_windows: 0,
            programs_skipped: HashMap::new(),
            over: false,
            reported: 0,
            last_close_ns: 0,
        }
    }

    /// Records what the windows take in to `recorder` (--record), and
    /// what they see happen to `perfetto`.
    pub fn recording_to(
        mut self,
        recorder: Option<Recorder>,
        perfetto: Option<PerfettoTrace>,
    ) -> Self {
        self.recorder = recorder;
        self.perfetto = perfetto;
        self
    }

    /// The Perfetto trace to be finished when the run ends, or why it
    /// cannot be.
    pub fn take_perfetto(&mut self) -> Result<Option<PerfettoTrace>> {
        match self.perfetto_failure.take() {
            Some(err) => Err(err),
            None => Ok(self.perfetto.take()),
        }
    }

    /// Writes what the window's aggregation saw since the last time.
    fn trace_seen(&mut self) {
        let Some(perfetto) = self.perfetto.as_mut() else {
            return;
        };
        if let Err(err) = perfetto.seen(self.aggregator.take_seen()) {
            self.perfetto = None;
            self.perfetto_failure = Some(err);
        }
    }

    /// Counts a report made of the window just measured.
    pub fn reported(&mut self) {
        self.reported += 1;
    }

    /// Whether the window just measured is the last.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Opens the next window at once, or waits for the start trigger to
    /// open it: when it opened. None when a signal or the
    /// target's exit comes first.
    pub fn open(&mut self) -> Result<Option<Timestamp>> {
        let start_trigger = self.plan.is_some_and(|plan| plan.start.is_some());
        if !start_trigger {
            let now = clock::now();
            self.tracer.open_window(now.mono_ns);
            return Ok(Some(now));
        }
        self.tracer.arm_windows(true);
        loop {
            let window = self.tracer.window_state();
            // Where stores are not seen in order (arm64), the new number
            // may be seen before the new opening time: the last window's,
            // which opened before the last close.
            if window.opened != window.taken && window.open_ns >= self.last_close_ns {
                return Ok(Some(clock::at(window.open_ns)));
            }
            if window.opened != window.taken {
                std::hint::spin_loop();
                continue;
            }
            if self.interrupted() {
                return Ok(None);
            }
            drain(&self.ring, DRAIN_INTERVAL)?;
        }
    }

    /// Reads the window that opened at `header.start` until it closes, and
    /// gathers its measurement (to be reported laid out as `layout`); and
    /// the failure that ended it, if reading failed.
    pub fn measure_window(
        &mut self,
        header: Header,
        layout: Layout,
        mut warnings: Vec<String>,
    ) -> Result<(Collected, Option<anyhow::Error>)> {
        let opening = self.begin(&header, layout);
        // The one window's were read as it opened.
        if self.plan.is_some() && self.cli.off_cpu_stacks {
            let intake = &self.intake;
            warnings.extend(read_offcpu_at_open(&self.tracer, |record| {
                intake.borrow_mut().receive_read(record);
            }));
        }
        let deadline_ns = self.cli.window_length().map(|length| {
            let length_ns = u64::try_from(length.as_nanos()).unwrap_or(u64::MAX);
            opening.start_ns.saturating_add(length_ns)
        });
        let read = self.read_until_the_end(deadline_ns);
        let (closing, in_flight) = self.end(read, &opening);
        self.gather(&opening, &closing, in_flight, &mut warnings);
        let spilled = self.tracer.spilled_calls();
        let spilled_calls = spilled.iter().map(|(_, _, _, calls)| calls.count).sum();
        for (tid, start_ns, nr, calls) in spilled {
            self.feed(Input::Spilled {
                tid,
                start_ns,
                nr,
                calls,
            });
        }
        if self.plan.is_some() {
            self.tracer.clear_kept();
        }
        let lost = self.losses(spilled_calls, &mut warnings);
        let window = self
            .plan
            .map(|plan| self.window_info(plan, &opening, &closing));
        warnings.extend(self.recorder.as_mut().and_then(Recorder::take_failure));
        self.trace_seen();

        self.alive = closing.alive;
        let mut end = WindowEnd {
            kernel: procfs::kernel_release(),
            end: closing.end,
            stop_reason: closing.stop_reason,
            lost,
            spilled_calls,
            warnings,
            skipped_tracepoints: self.tracer.skipped.clone(),
            softirqs_system: closing.softirqs_system,
            window,
            names: ThreadNames {
                at_start: opening.seen.names,
                at_end: names(&closing.threads),
                states_at_start: opening.seen.states,
            },
            stacks: Default::default(),
        };
        // Stacks are named while the kernel's stack map holds them.
        let aggregator = std::mem::replace(&mut self.aggregator, Aggregator::new(u64::MAX));
        let mut intake = self.intake.borrow_mut();
        let tracer = &self.tracer;
        let stack = |id| tracer.stack(id);
        let mut namer = StackNamer::new(&self.symbolizer, &stack, &mut intake.spaces);
        let collected = assemble(header, &self.setup, aggregator, &end, &mut namer);
        end.stacks = namer.into_table();
        drop(intake);
        if let Some(perfetto) = self.perfetto.as_mut() {
            if let Err(err) = perfetto.window_closed(&collected) {
                self.perfetto = None;
                self.perfetto_failure = Some(err);
            }
        }
        self.record(&Message::WindowEnd(Box::new(end)));
        Ok((collected, closing.failure))
    }

    /// Writes `message` to the recording, if there is one.
    pub fn record(&mut self, message: &Message) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.write(message);
        }
    }

    /// The recording, to be finished when the run ends.
    pub fn take_recorder(&mut self) -> Option<Recorder> {
        self.recorder.take()
    }

    /// Takes `input` into the window's aggregation, and the recording.
    fn feed(&mut self, input: Input) {
        feed(&mut self.aggregator, &mut self.recorder, input);
    }

    /// A new aggregation for the window that opened with `header`, to be
    /// reported laid out as `layout`; and what the window opens with.
    fn begin(&mut self, header: &Header, layout: Layout) -> Opening {
        let start_ns = header.start.mono_ns;
        self.setup = self.cli.setup(start_ns);
        self.aggregator = Aggregator::set_up(self.setup);
        if self.perfetto.is_some() {
            self.aggregator.observe();
        }
        self.record(&Message::Window {
            header: header.clone(),
            setup: self.setup,
            layout,
        });
        // Records from while the probes were attaching tell the state the
        // one window starts in; between windows, only stragglers come.
        if self.plan.is_some() {
            self.intake.borrow_mut().reorder.discard_before(start_ns);
        }
        for pid in self.alive.clone() {
            let ppid = procfs::parent(pid);
            self.feed(Input::ListedProcess { pid, ppid });
        }
        // Read once the window is open: a thread that changes state after
        // this read is seen doing so.
        let threads = procfs::live_threads_of(&self.alive);
        let seen = ThreadsSeen {
            names: if self.target.is_launched() && self.plan.is_none() {
                HashMap::new() // still our own fork, not yet the command
            } else {
                names(&threads)
            },
            states: threads
                .iter()
                .filter_map(|(&tid, (_, thread))| Some((tid, thread.state?)))
                .collect(),
            pids: threads.iter().map(|(&tid, (pid, _))| (tid, *pid)).collect(),
        };
        self.record(&Message::Opened(seen.clone()));
        if let Some(perfetto) = self.perfetto.as_mut() {
            perfetto.window_opened(&seen);
        }
        Opening {
            start_ns,
            threads,
            softirqs: self.tracer.softirq_totals(),
            seen,
        }
    }

    /// Closes the window that `read` ended, and reads what it closes with,
    /// and the calls the programs say are in progress; with one window,
    /// the probes go.
    fn end(
        &mut self,
        read: Result<StopReason>,
        opening: &Opening,
    ) -> (Closing, Result<Vec<(u32, InFlight)>>) {
        let (mut stop_reason, failure) = match read {
            Ok(reason) => (reason, None),
            Err(err) => (StopReason::Failed, Some(err)),
        };
        self.over = matches!(
            stop_reason,
            StopReason::Interrupted | StopReason::TargetExited
        );
        let end = match self.plan {
            None => clock::now(),
            Some(_) => {
                let (end, closed_by) = self.close();
                // The programs tell which came first, the stop trigger
                // or the window's length.
                match closed_by {
                    window_closer::CLOSED_BY_STOP_TRIGGER => stop_reason = StopReason::StopTrigger,
                    window_closer::CLOSED_BY_LENGTH => stop_reason = StopReason::Duration,
                    _ => {}
                }
                end
            }
        };
        let alive = self.aggregator.processes_alive();
        let threads = procfs::live_threads_of(&alive);
        let calls_in_progress = procfs::thread_syscalls_of(&alive);
        let softirqs_system =
            SystemSoftirqs::between(&opening.softirqs, &self.tracer.softirq_totals());
        self.feed(Input::Close {
            end_ns: end.mono_ns,
        });
        if self.plan.is_none() {
            self.tracer.detach();
        }
        // Calls still in progress, before the ring buffer is read: one
        // that returns meanwhile is in both (a window's call is recorded
        // until the window is taken), and counted once.
        let in_flight = self.tracer.in_flight();
        // What the kernel sent before the close (one window: before the
        // probes went; several: records go straight to the ring buffer).
        let drained = drain(&self.ring, Duration::ZERO);
        if self.plan.is_none() {
            priority::lower();
        }
        let closing = Closing {
            end,
            stop_reason,
            failure: failure.or(drained.err()),
            alive,
            threads,
            calls_in_progress,
            softirqs_system,
        };
        (closing, in_flight)
    }

    /// Completes the window's aggregation with the records still queued
    /// and staged, the calls in progress (`in_flight`, and /proc's), the
    /// threads /proc listed and the exits the programs kept; what could not
    /// be read is said in `warnings`.
    fn gather(
        &mut self,
        opening: &Opening,
        closing: &Closing,
        in_flight: Result<Vec<(u32, InFlight)>>,
        warnings: &mut Vec<String>,
    ) {
        let mut intake = self.intake.borrow_mut();
        for (cpu, record) in self.tracer.staged_records() {
            intake.reorder.push(cpu, record);
        }
        let (aggregator, recorder) = (&mut self.aggregator, &mut self.recorder);
        intake
            .reorder
            .release_all(|record| feed(aggregator, recorder, Input::Record(record)));
        warnings.extend(intake.reorder.late_warning());
        drop(intake);
        match in_flight {
            Ok(calls) => {
                for (tid, call) in calls {
                    self.feed(Input::InFlight { tid, call });
                }
            }
            Err(err) => warnings.push(format!(
                "calls not finished when the window closed are not shown: they could not be \
                 read ({err})"
            )),
        }
        match &closing.calls_in_progress {
            Ok(calls) => {
                for (&tid, &nr) in calls {
                    self.feed(Input::CallInProgress { tid, nr });
                }
            }
            Err(err) => warnings.push(format!(
                "calls in progress since before the window are not shown: /proc/PID/task/TID/syscall \
                 could not be read ({err}; it needs CAP_SYS_PTRACE or the target's user)"
            )),
        }
        for (&tid, (pid, _)) in opening.threads.iter().chain(&closing.threads) {
            self.feed(Input::ListedThread { tid, pid: *pid });
        }
        // The kernel's maps of exits and calls the ring buffer had no room
        // for: this window's since the last one's were taken out.
        for (tid, start_ns, exit) in self.tracer.kept_exits() {
            self.feed(Input::KeptExit {
                tid,
                start_ns,
                exit,
            });
        }
    }

    /// What the kernel side lost since the last window, with the
    /// warnings that say so (`spilled_calls`: calls kept in the spill map).
    fn losses(&mut self, spilled_calls: u64, warnings: &mut Vec<String>) -> Lost {
        let lost_so_far = self.tracer.lost();
        let lost = lost_so_far.since(&self.lost);
        self.lost = lost_so_far;
        warnings.extend(lost.warnings(spilled_calls));
        let stacks_missed_so_far = self.tracer.stacks_missed();
        let stacks_missed = stacks_missed_so_far - self.stacks_missed;
        self.stacks_missed = stacks_missed_so_far;
        if stacks_missed > 0 {
            warnings.push(format!(
                "{} stacks of slow calls could not be recorded (the stack map was full, or two \
                 stacks collided in it): raise --stack-trace-size",
                thousands(stacks_missed)
            ));
        }
        for (program, skipped_so_far) in self.tracer.programs_skipped() {
            let before = self
                .programs_skipped
                .insert(program.clone(), skipped_so_far);
            let skipped = skipped_so_far - before.unwrap_or(0);
            if skipped > 0 {
                warnings.push(skipped_runs_warning(&program, skipped));
            }
        }
        lost
    }

    /// Takes the window from the programs, and says what opened and
    /// closed it.
    fn window_info(
        &mut self,
        plan: &WindowPlan,
        opening: &Opening,
        closing: &Closing,
    ) -> WindowInfo {
        let length_ns = closing.end.mono_ns.saturating_sub(opening.start_ns);
        self.take(plan, &closing.failure, length_ns);
        let state = self.tracer.window_state();
        let missed = state.missed - self.missed_windows;
        self.missed_windows = state.missed;
        WindowInfo {
            number: state.taken,
            start_trigger: plan.start.as_ref().map(ToString::to_string),
            stop_trigger: plan.stop.as_ref().map(ToString::to_string),
            open_ns: opening.start_ns,
            close_ns: closing.end.mono_ns,
            missed_windows: missed,
        }
    }

    /// Reads what the ring buffer holds (waiting up to `timeout` for it),
    /// and aggregates the records old enough that none made before them
    /// can still be on its way.
    fn read(&mut self, timeout: Duration) -> Result<()> {
        let waited = drain(&self.ring, timeout);
        // What was made before the horizon is in the ring buffer now.
        let horizon_ns = clock::monotonic_ns().saturating_sub(HOLD_NS);
        let drained = waited.and_then(|()| read_pending(&self.ring));
        let mut intake = self.intake.borrow_mut();
        let (aggregator, recorder) = (&mut self.aggregator, &mut self.recorder);
        intake.reorder.release_before(horizon_ns, |record| {
            feed(aggregator, recorder, Input::Record(record));
        });
        // Processes moved into a traced cgroup (not forked by a traced
        // process: those are traced already).
        for pid in self
            .target
            .cgroups()
            .map(Cgroups::joined)
            .unwrap_or_default()
        {
            if self.tracer.trace_process(pid) {
                let ppid = procfs::parent(pid);
                feed(
                    &mut self.aggregator,
                    &mut self.recorder,
                    Input::ListedProcess { pid, ppid },
                );
            }
        }
        if let Some(placement) = intake.placement.as_mut() {
            placement.review();
        }
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.flush_if_due();
        }
        drop(intake);
        self.trace_seen();
        drained
    }

    /// A launched command's window ends with it; given processes' when
    /// they and the processes they forked have all exited.
    fn target_gone(&self) -> bool {
        self.target.has_exited()
            && (self.target.is_launched() || self.aggregator.forked_processes_alive() == 0)
    }

    /// Takes the window, whose records are gathered, from the programs:
    /// the start trigger may open the next while its report is made, if
    /// there is to be one (`failure` and a signal or the target's exit end
    /// the session, as the last report does). Start triggers missed until
    /// then are this window's.
    fn take(&mut self, plan: &WindowPlan, failure: &Option<anyhow::Error>, length_ns: u64) {
        let reports = self.reported + u64::from(!plan.skips(length_ns));
        if failure.is_some() || (plan.count != 0 && reports >= plan.count) {
            self.over = true;
        }
        if self.over {
            self.tracer.arm_windows(false);
        }
        let number = self.tracer.window_state().opened;
        self.tracer.take_window(number);
    }

    /// Reads records until the deadline (CLOCK_MONOTONIC ns), a signal,
    /// the target's exit (and that of the processes it forked), or, with
    /// a window plan, the programs' close (the stop trigger).
    fn read_until_the_end(&mut self, deadline_ns: Option<u64>) -> Result<StopReason> {
        loop {
            if let Some(signal) = signals::take() {
                self.target.forward(signal);
                return Ok(StopReason::Interrupted);
            }
            if self.plan.is_some()
                && self.tracer.window_state().state == window_state::WINDOW_CLOSED
            {
                return Ok(StopReason::StopTrigger);
            }
            if self.target_gone() {
                return Ok(StopReason::TargetExited);
            }
            let timeout = match deadline_ns {
                Some(deadline_ns) => match deadline_ns.checked_sub(clock::monotonic_ns()) {
                    Some(left) if left > 0 => Duration::from_nanos(left).min(DRAIN_INTERVAL),
                    _ => return Ok(StopReason::Duration),
                },
                None => DRAIN_INTERVAL,
            };
            self.read(timeout)?;
        }
    }

    /// Closes the window now (at its length's end when that has passed),
    /// unless the programs closed it: when, and what closed it.
    fn close(&mut self) -> (Timestamp, window_closer) {
        self.tracer.close_window(clock::monotonic_ns());
        // As in open(): a closing time from before the window opened is
        // the last window's, the new one not seen yet.
        let window = loop {
            let window = self.tracer.window_state();
            if window.close_ns >= window.open_ns {
                break window;
            }
            std::hint::spin_loop();
        };
        self.last_close_ns = window.close_ns;
        (clock::at(window.close_ns), window.closed_by)
    }

    /// Whether Ctrl-C (passed on to a launched command) or the target's
    /// exit ends the session between windows.
    fn interrupted(&self) -> bool {
        if let Some(signal) = signals::take() {
            self.target.forward(signal);
            return true;
        }
        self.target.has_exited()
    }

    /// Waits `interval` between windows (nothing is recorded meanwhile);
    /// false when Ctrl-C or the target's exit ends it.
    pub fn pause(&mut self, interval: Duration) -> Result<bool> {
        let until = Instant::now() + interval;
        loop {
            if self.interrupted() {
                return Ok(false);
            }
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return Ok(true);
            };
            drain(&self.ring, left.min(DRAIN_INTERVAL))?;
        }
    }
}

fn names(threads: &Threads) -> HashMap<u32, Vec<u8>> {
    threads
        .iter()
        .map(|(&tid, (_, thread))| (tid, thread.name.clone()))
        .collect()
}

/// Where the threads off their CPU now (since before the window opened)
/// left it (--off-cpu-stacks), each to `each`: the switches recorded from
/// now on tell the rest. A warning if that could not be read.
pub fn read_offcpu_at_open(tracer: &Tracer<'_>, each: impl FnMut(Record)) -> Option<String> {
    tracer.offcpu_at_open(each).err().map(|err| {
        format!(
            "where threads off their CPU as the window opened left it could not be read: {err:#}"
        )
    })
}

/// Takes `input` into `aggregator`, and into the recording if there is one.
fn feed(aggregator: &mut Aggregator, recorder: &mut Option<Recorder>, input: Input) {
    if let Some(recorder) = recorder.as_mut() {
        recorder.write_input(&input);
    }
    aggregator.apply(input);
}
