//! The sampling windows: attaches the probes, opens each window (at once,
//! or when the start trigger fires), reads the ring buffer until it closes
//! (at --duration, on the stop trigger, Ctrl-C or the target's exit), and
//! gathers everything its report is built from.

mod placement;
mod priority;
mod reorder;

use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use anyhow::Result;
use blazesym::symbolize::Symbolizer;
use libbpf_rs::RingBuffer;

use self::placement::Placement;
use self::reorder::{Reorder, HOLD_NS};
use crate::cli::Cli;
use crate::clock::{self, Timestamp};
use crate::kernel::irq;
use crate::kernel::loss::Lost;
use crate::kernel::records::Record;
use crate::kernel::skel::types::{window_closer, window_state};
use crate::kernel::tracer::{drain, read_pending, Filter, Options, Tracer, Windows};
use crate::model::aggregate::{Aggregator, ThreadActivity};
use crate::output::Layout;
use crate::processes::cgroup::Cgroups;
use crate::processes::procfs;
use crate::processes::Target;
use crate::report::{Header, Measurement, StopReason, SyscallEvents, ThreadNames, WindowInfo};
use crate::symbols::address_space::AddressSpaces;
use crate::symbols::symbolize;
use crate::thousands::thousands;
use crate::{sanitize, signals};

/// How often the ring buffer is read when the kernel does not wake us:
/// short enough to end the window on time, long enough to batch records.
const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

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
    let windows = cli.windows();
    let events = cli.events();
    let mut storage = MaybeUninit::uninit();
    let mut tracer = Tracer::attach(
        &mut storage,
        &Filter::new(&given, follow_forks),
        &Options {
            ringbuf_bytes: cli.ringbuf_bytes(),
            events,
            windows: windows.as_ref(),
            executable: target.executable(),
            verbose: cli.verbose(),
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
        Ok(()) => RefCell::new(Placement::new()),
        Err(err) => {
            warnings.push(priority::warning(&err));
            RefCell::new(None)
        }
    };
    let header = Header {
        processes: given
            .iter()
            .map(|&pid| (pid, sanitize::sanitize(&target.comm(pid))))
            .collect(),
        follow_forks,
        cgroups: target
            .cgroups()
            .map(Cgroups::names)
            .unwrap_or_default()
            .iter()
            .map(|name| sanitize::sanitize(name.as_bytes()))
            .collect(),
        start: clock::now(),
        requested: cli.window_cap(),
        start_trigger: cli.start_trigger.as_ref().map(ToString::to_string),
    };
    let aggregator = RefCell::new(Aggregator::new(header.start.mono_ns));
    let reorder = RefCell::new(Reorder::default());
    // A slow call's address space has its memory map read at its first.
    let spaces = RefCell::new(AddressSpaces::new(Box::new(tracer.address_spaces()?)));
    let ring = tracer.ring_buffer(|origin, record| {
        if let Record::SlowCall(call) = &record {
            spaces.borrow_mut().note(call.pid, call.address_space);
        }
        // Where the traced threads run (records sent at once count too:
        // in a window opened by triggers, all are).
        if origin.staged || record.made_by_running_thread() {
            if let Some(placement) = placement.borrow_mut().as_mut() {
                placement.note(origin.cpu);
            }
        }
        reorder.borrow_mut().push(origin.batch_cpu(), record)
    })?;
    sink.announce(&header)?;
    target.release()?;

    let mut session = Session {
        cli,
        windows: windows.as_ref(),
        tracer: &mut tracer,
        ring: &ring,
        target,
        aggregator: &aggregator,
        reorder: &reorder,
        placement: &placement,
        spaces: &spaces,
        symbolizer: Symbolizer::new(),
        alive: traced,
        lost: Lost::default(),
        stacks_missed: 0,
        missed_windows: 0,
        over: false,
        reported: 0,
    };
    let Some(windows) = windows.as_ref() else {
        // One window, from now: the probes are all there is to open it.
        let (collected, failure) = session.window(header, warnings, None)?;
        // The ring buffer (mapped twice) and the maps go before the report
        // is made: the report's memory peak is then its own.
        drop(session);
        drop(ring);
        drop(tracer);
        sink.report(collected, Layout::Only)?;
        return Ok(failure);
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
            session.window(window_header, warnings.clone(), Some(windows))?;
        let info = collected
            .measurement
            .window
            .as_ref()
            .expect("a window's report");
        let delta = info.close_ns.saturating_sub(info.open_ns);
        if windows.skips(delta) {
            sink.note(&format!(
                "# Sample dump skipped, delta {} ns",
                thousands(delta)
            ))?;
        } else {
            let layout = match windows.count {
                1 => Layout::Triggered,
                _ => Layout::OneOfMany,
            };
            // The reader's priority is for reading: the report is made at
            // normal priority, as the one window's is.
            priority::lower();
            let written = sink.report(collected, layout);
            let _ = priority::raise(); // refused already, said in the first report
            written?;
            session.reported += 1;
        }
        if session.over {
            return Ok(failure);
        }
        // A start trigger keeps the pause itself (from the close).
        if windows.start.is_none() && !session.pause(windows.interval)? {
            return Ok(None);
        }
    }
}

/// What stays the same from one window to the next.
struct Session<'a, 'obj, 'cb> {
    cli: &'a Cli,
    windows: Option<&'a Windows>,
    tracer: &'a mut Tracer<'obj>,
    ring: &'a RingBuffer<'cb>,
    target: &'a Target,
    aggregator: &'a RefCell<Aggregator>,
    /// Records as they arrive, until the aggregator can have them in
    /// order.
    reorder: &'a RefCell<Reorder>,
    placement: &'a RefCell<Option<Placement>>,
    spaces: &'a RefCell<AddressSpaces>,
    /// The files read for symbols, kept from one window to the next.
    symbolizer: Symbolizer,
    /// The traced processes alive at the last window's end.
    alive: Vec<u32>,
    /// The loss counters, stacks missed and start triggers missed at the
    /// last window's end (the kernel's counters only grow).
    lost: Lost,
    stacks_missed: u64,
    missed_windows: u64,
    /// The last window is taken: a signal, the target's exit or a
    /// failure ended it, or it makes the last report asked for.
    over: bool,
    /// Reports made.
    reported: u64,
}

impl Session<'_, '_, '_> {
    /// Opens the next window at once, or waits for the start trigger to
    /// open it: when it opened. None when a signal or the
    /// target's exit comes first.
    fn open(&mut self) -> Result<Option<Timestamp>> {
        let start_trigger = self.windows.is_some_and(|w| w.start.is_some());
        if !start_trigger {
            let now = clock::now();
            self.tracer.open_window(now.mono_ns);
            return Ok(Some(now));
        }
        self.tracer.arm_windows(true);
        loop {
            let window = self.tracer.window();
            if window.opened != window.taken {
                return Ok(Some(clock::at(window.open_ns)));
            }
            if self.interrupted() {
                return Ok(None);
            }
            drain(self.ring, DRAIN_INTERVAL)?;
        }
    }

    /// Reads the window that opened at `header.start` until it closes, and
    /// gathers its measurement; and the failure that ended it, if reading
    /// failed.
    fn window(
        &mut self,
        header: Header,
        mut warnings: Vec<String>,
        windows: Option<&Windows>,
    ) -> Result<(Collected, Option<anyhow::Error>)> {
        let start_ns = header.start.mono_ns;
        *self.aggregator.borrow_mut() = Aggregator::new(start_ns);
        if let Some(events) = self.cli.events() {
            self.aggregator
                .borrow_mut()
                .limit_slow_calls(events.max_events);
        }
        // Records from while the probes were attaching tell the state the
        // one window starts in; between windows, only stragglers come.
        if windows.is_some() {
            self.reorder.borrow_mut().discard_before(start_ns);
        }
        for &pid in &self.alive {
            self.aggregator
                .borrow_mut()
                .add_listed_process(pid, procfs::parent(pid));
        }
        // Read once the window is open: a thread that changes state after
        // this read is seen doing so.
        let at_start = procfs::live_threads_of(&self.alive);
        let softirqs_at_start = self.tracer.softirq_totals();
        let deadline_ns = self
            .cli
            .window_cap()
            .map(|cap| start_ns.saturating_add(u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX)));

        let read = self.read_until_the_end(deadline_ns, windows.is_some());
        let (mut stop_reason, failure) = match read {
            Ok(reason) => (reason, None),
            Err(err) => (StopReason::Failed, Some(err)),
        };
        self.over = matches!(
            stop_reason,
            StopReason::Interrupted | StopReason::TargetExited
        );
        let end = match windows {
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
        let alive = self.aggregator.borrow().processes_alive();
        let at_end = procfs::live_threads_of(&alive);
        let calls_at_end = procfs::thread_syscalls_of(&alive);
        let softirqs_system =
            irq::SystemSoftirqs::between(&softirqs_at_start, &self.tracer.softirq_totals());
        self.aggregator.borrow_mut().close(end.mono_ns);
        if windows.is_none() {
            self.tracer.detach();
        }
        // Calls still in progress, before the ring buffer is read: one
        // that returns meanwhile is in both (a window's call is recorded
        // until the window is taken), and counted once.
        let in_flight = self.tracer.in_flight();
        // What the kernel sent before the close (one window: before the
        // probes went; several: records go straight to the ring buffer).
        let drained = drain(self.ring, Duration::ZERO);
        let failure = failure.or(drained.err());
        if windows.is_none() {
            priority::lower();
        }

        let mut aggregator = std::mem::replace(
            &mut *self.aggregator.borrow_mut(),
            Aggregator::new(u64::MAX),
        );
        let mut reorder = self.reorder.borrow_mut();
        for (cpu, record) in self.tracer.staged_records() {
            reorder.push(cpu, record);
        }
        reorder.release_all(|record| aggregator.ingest(record));
        warnings.extend(reorder.late_warning());
        drop(reorder);
        match in_flight {
            Ok(calls) => {
                for (tid, call) in calls {
                    aggregator.add_in_flight(tid, call);
                }
            }
            Err(err) => warnings.push(format!(
                "calls not finished when the window closed are not shown: they could not be \
                 read ({err})"
            )),
        }
        match calls_at_end {
            Ok(calls) => {
                for (tid, nr) in calls {
                    aggregator.add_call_in_progress(tid, nr);
                }
            }
            Err(err) => warnings.push(format!(
                "calls in progress since before the window are not shown: /proc/PID/task/TID/syscall \
                 could not be read ({err}; it needs CAP_SYS_PTRACE or the target's user)"
            )),
        }
        for (&tid, (pid, _)) in at_start.iter().chain(&at_end) {
            aggregator.add_listed_thread(tid, *pid);
        }
        // The kernel's maps of exits and calls the ring buffer had no room
        // for: this window's since the last one's were taken out.
        for (tid, start_ns, exit) in self.tracer.kept_exits() {
            aggregator.add_kept_exit(tid, start_ns, exit);
        }
        let spilled = self.tracer.spilled_calls();
        let spilled_calls = spilled.iter().map(|(_, _, _, calls)| calls.count).sum();
        for (tid, start_ns, nr, calls) in spilled {
            aggregator.add_spilled(tid, start_ns, nr, calls);
        }
        if windows.is_some() {
            self.tracer.clear_kept();
        }
        let lost_so_far = self.tracer.lost();
        let lost = lost_so_far.since(&self.lost);
        self.lost = lost_so_far;
        let window = windows.map(|windows| {
            self.take(windows, &failure, end.mono_ns.saturating_sub(start_ns));
            let state = self.tracer.window();
            let missed = state.missed - self.missed_windows;
            self.missed_windows = state.missed;
            WindowInfo {
                number: state.taken,
                start_trigger: windows.start.as_ref().map(ToString::to_string),
                stop_trigger: windows.stop.as_ref().map(ToString::to_string),
                open_ns: start_ns,
                close_ns: end.mono_ns,
                missed_windows: missed,
            }
        });
        warnings.extend(lost.warnings(spilled_calls));
        let syscall_events = self.cli.events().map(|events| {
            let (calls, not_listed) = aggregator.take_slow_calls();
            SyscallEvents {
                calls: symbolize::symbolize(
                    &self.symbolizer,
                    calls,
                    |id| self.tracer.stack(id),
                    &mut self.spaces.borrow_mut(),
                ),
                limit: events.max_events,
                not_listed,
            }
        });
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

        let states_at_start = at_start
            .iter()
            .filter_map(|(&tid, (_, thread))| Some((tid, thread.state?)))
            .collect();
        let names_at_start = if self.target.is_launched() && windows.is_none() {
            HashMap::new() // still our own fork, not yet the command
        } else {
            names(at_start)
        };
        let events = aggregator.events();
        let (threads, processes) = aggregator.into_parts();
        self.alive = alive;
        let measurement = Measurement {
            header,
            kernel: procfs::kernel_release(),
            end,
            stop_reason,
            events,
            lost,
            spilled_calls,
            warnings,
            skipped_tracepoints: self.tracer.skipped.clone(),
            softirqs_system,
            syscall_events,
            window,
            names: ThreadNames {
                at_start: names_at_start,
                at_end: names(at_end),
                states_at_start,
            },
            processes,
        };
        Ok((
            Collected {
                measurement,
                threads,
            },
            failure,
        ))
    }

    /// Reads what the ring buffer holds (waiting up to `timeout` for it),
    /// and aggregates the records old enough that none made before them
    /// can still be on its way.
    fn read(&mut self, timeout: Duration) -> Result<()> {
        let waited = drain(self.ring, timeout);
        // What was made before the horizon is in the ring buffer now.
        let horizon_ns = clock::monotonic_ns().saturating_sub(HOLD_NS);
        let drained = waited.and_then(|()| read_pending(self.ring));
        let mut aggregator = self.aggregator.borrow_mut();
        self.reorder
            .borrow_mut()
            .release_before(horizon_ns, |record| aggregator.ingest(record));
        // Processes moved into a traced cgroup (not forked by a traced
        // process: those are traced already).
        for pid in self
            .target
            .cgroups()
            .map(Cgroups::joined)
            .unwrap_or_default()
        {
            if self.tracer.trace_process(pid) {
                aggregator.add_listed_process(pid, procfs::parent(pid));
            }
        }
        if let Some(placement) = self.placement.borrow_mut().as_mut() {
            placement.review();
        }
        drained
    }

    /// A launched command's window ends with it; given processes' when
    /// they and the processes they forked have all exited.
    fn target_gone(&self) -> bool {
        self.target.has_exited()
            && (self.target.is_launched() || self.aggregator.borrow().forked_processes_alive() == 0)
    }

    /// Takes the window, whose records are gathered, from the programs:
    /// the start trigger may open the next while its report is made, if
    /// there is to be one (`failure` and a signal or the target's exit end
    /// the session, as the last report does). Start triggers missed until
    /// then are this window's.
    fn take(&mut self, windows: &Windows, failure: &Option<anyhow::Error>, length_ns: u64) {
        let reports = self.reported + u64::from(!windows.skips(length_ns));
        if failure.is_some() || (windows.count != 0 && reports >= windows.count) {
            self.over = true;
        }
        if self.over {
            self.tracer.arm_windows(false);
        }
        let number = self.tracer.window().opened;
        self.tracer.take_window(number);
    }

    /// Reads records until the deadline (CLOCK_MONOTONIC ns), a signal,
    /// the target's exit (and that of the processes it forked), or, with
    /// `windows`, the programs' close (the stop trigger).
    fn read_until_the_end(
        &mut self,
        deadline_ns: Option<u64>,
        windows: bool,
    ) -> Result<StopReason> {
        loop {
            if let Some(signal) = signals::take() {
                self.target.forward(signal);
                return Ok(StopReason::Interrupted);
            }
            if windows && self.tracer.window().state == window_state::WINDOW_CLOSED {
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
        let window = self.tracer.window();
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
    fn pause(&mut self, interval: Duration) -> Result<bool> {
        let until = Instant::now() + interval;
        loop {
            if self.interrupted() {
                return Ok(false);
            }
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return Ok(true);
            };
            drain(self.ring, left.min(DRAIN_INTERVAL))?;
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

fn names(threads: HashMap<u32, (u32, procfs::ThreadInfo)>) -> HashMap<u32, Vec<u8>> {
    threads
        .into_iter()
        .map(|(tid, (_, thread))| (tid, thread.name))
        .collect()
}
