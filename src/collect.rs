//! The sampling window: opens it (attaches the probes), reads the ring
//! buffer until it ends, closes it, and gathers everything the report is
//! built from.

use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use anyhow::Result;
use libbpf_rs::RingBuffer;

use crate::aggregate::{Aggregator, ThreadActivity};
use crate::cli::Cli;
use crate::output::Output;
use crate::records::Record;
use crate::report::{Header, Measurement, StopReason, ThreadNames};
use crate::symbolize::{self, AddressSpaces};
use crate::target::Target;
use crate::thousands::thousands;
use crate::tracer::{drain, Filter, Tracer};
use crate::{clock, irq, priority, procfs, sanitize, signals};

/// How often the ring buffer is read when the kernel does not wake us:
/// short enough to end the window on time, long enough to batch records.
const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

/// What one window measured.
pub struct Collected {
    pub measurement: Measurement,
    pub threads: Vec<ThreadActivity>,
    /// Why tracing stopped early, if it failed mid-window: what was
    /// measured until then is still reported.
    pub failure: Option<anyhow::Error>,
}

/// Traces `target` for one window. Errors before the window opens are
/// returned; a failure inside it ends the window early.
pub fn collect(cli: &Cli, target: &mut Target, output: &mut Output) -> Result<Collected> {
    let given = target.pids();
    let follow_forks = cli.follows_forks();
    let mut storage = MaybeUninit::uninit();
    let mut tracer = Tracer::attach(
        &mut storage,
        &Filter::new(&given, follow_forks),
        cli.ringbuf_bytes(),
        cli.events(),
        cli.verbose,
    )?;
    signals::install()?;
    let traced = traced_from_the_start(&mut tracer, target, follow_forks);
    // Read once the probes are attached: a thread that changes state after
    // this read is seen doing so. (Read before, a thread on its way to
    // sleep was taken for running all window.)
    let at_start = procfs::live_threads_of(&traced);
    // Once the programs are loaded: the verifier's work is no urgent work.
    let mut warnings = Vec::new();
    if let Err(err) = priority::raise() {
        warnings.push(priority::warning(&err));
    }
    let start = clock::now();
    let softirqs_at_start = tracer.softirq_totals();
    let deadline = cli.window().map(|window| Instant::now() + window);
    let header = Header {
        processes: given
            .iter()
            .map(|&pid| (pid, sanitize::sanitize(&target.comm(pid))))
            .collect(),
        follow_forks,
        start,
        requested: cli.window(),
    };

    let aggregator = RefCell::new(Aggregator::new(start.mono_ns));
    for &pid in &traced {
        aggregator
            .borrow_mut()
            .add_listed_process(pid, procfs::parent(pid));
    }
    // A slow call's process has its memory map read while it lives.
    let spaces = RefCell::new(AddressSpaces::default());
    let ring = tracer.ring_buffer(|record| {
        if let Record::SlowCall(call) = &record {
            spaces.borrow_mut().note(call.pid);
        }
        aggregator.borrow_mut().ingest(record)
    })?;
    output.announce(&header)?;
    target.release()?;

    // A launched command's window ends with it; given processes' when they
    // and the processes they forked have all exited.
    let forks_gone = || target.is_launched() || aggregator.borrow().forked_processes_alive() == 0;
    let (stop_reason, failure) = match read_until_the_end(&ring, target, deadline, forks_gone) {
        Ok(reason) => (reason, None),
        Err(err) => (StopReason::Failed, Some(err)),
    };
    let end = clock::now();
    let alive = aggregator.borrow().processes_alive();
    let at_end = procfs::live_threads_of(&alive);
    let calls_at_end = procfs::thread_syscalls_of(&alive);
    let softirqs_system =
        irq::SystemSoftirqs::between(&softirqs_at_start, &tracer.softirq_totals());
    aggregator.borrow_mut().close(end.mono_ns);
    tracer.detach();
    let drained = drain(&ring, Duration::ZERO);
    drop(ring);
    priority::lower();
    let failure = failure.or(drained.err());

    let mut aggregator = aggregator.into_inner();
    for record in tracer.staged_records() {
        aggregator.ingest(record);
    }
    for (tid, call) in tracer.in_flight() {
        aggregator.add_in_flight(tid, call);
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
    for (tid, start_ns, exit) in tracer.kept_exits() {
        aggregator.add_kept_exit(tid, start_ns, exit);
    }
    let spilled = tracer.spilled_calls();
    let spilled_calls = spilled.iter().map(|(_, _, _, calls)| calls.count).sum();
    for (tid, start_ns, nr, calls) in spilled {
        aggregator.add_spilled(tid, start_ns, nr, calls);
    }
    let lost = tracer.lost();
    warnings.extend(lost.warnings(spilled_calls));
    let syscall_events = cli.events().map(|_| {
        let calls = aggregator.take_slow_calls();
        symbolize::symbolize(calls, |id| tracer.stack(id), &mut spaces.borrow_mut())
    });
    let stacks_missed = tracer.stacks_missed();
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
    let names_at_start = if target.is_launched() {
        HashMap::new() // still our own fork, not yet the command
    } else {
        names(at_start)
    };
    let events = aggregator.events();
    let (threads, processes) = aggregator.into_parts();
    let measurement = Measurement {
        header,
        kernel: procfs::kernel_release(),
        end,
        stop_reason,
        events,
        lost,
        spilled_calls,
        warnings,
        skipped_tracepoints: tracer.skipped.clone(),
        softirqs_system,
        syscall_events,
        names: ThreadNames {
            at_start: names_at_start,
            at_end: names(at_end),
            states_at_start,
        },
        processes,
    };
    Ok(Collected {
        measurement,
        threads,
        failure,
    })
}

/// The processes traced from the start: those given and, following forks
/// of running processes, their descendants (added to the traced set; read
/// twice, for the children forked while /proc was read).
fn traced_from_the_start(tracer: &mut Tracer<'_>, target: &Target, follow_forks: bool) -> Vec<u32> {
    let mut traced = target.pids();
    if follow_forks && !target.is_launched() {
        for _ in 0..2 {
            for pid in procfs::descendants(&traced) {
                tracer.trace_process(pid);
                traced.push(pid);
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

/// Reads records until the deadline, a signal, or the target's exit (and,
/// as `forks_gone` says, that of the processes it forked).
fn read_until_the_end(
    ring: &RingBuffer<'_>,
    target: &Target,
    deadline: Option<Instant>,
    forks_gone: impl Fn() -> bool,
) -> Result<StopReason> {
    loop {
        if let Some(signal) = signals::take() {
            target.forward(signal);
            return Ok(StopReason::Interrupted);
        }
        if target.has_exited() && forks_gone() {
            return Ok(StopReason::TargetExited);
        }
        let timeout = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(DRAIN_INTERVAL),
                _ => return Ok(StopReason::Duration),
            },
            None => DRAIN_INTERVAL,
        };
        drain(ring, timeout)?;
    }
}
