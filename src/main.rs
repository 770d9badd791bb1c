//! kernel-delay: where the threads of one process spend their time in the
//! kernel, traced with eBPF.

mod aggregate;
mod cli;
mod clock;
mod collect;
mod irq;
mod output;
mod procfs;
mod records;
mod report;
mod sanitize;
mod sched;
mod signals;
mod skel;
mod stats;
mod syscall_names;
mod target;
mod tracer;

use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::error::ErrorKind;

use aggregate::Aggregator;
use cli::{Cli, TargetSpec};
use output::Output;
use report::{Header, Measurement, Report, StopReason, ThreadNames};
use target::Target;
use tracer::Tracer;

fn main() -> ExitCode {
    let cli = match cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("kernel-delay: {} (see --help)", cli::one_line(&err));
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("kernel-delay: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    if procfs::in_nested_pid_namespace() {
        bail!(
            "this is a PID namespace of its own (a container?), and the kernel's tracepoints \
             use the host's process ids: run kernel-delay in the host's PID namespace \
             (e.g. docker run --pid=host)"
        );
    }
    let mut output = Output::new(cli.json, cli.output.as_deref())?;
    let mut target = match cli.target() {
        TargetSpec::Pid(pid) => Target::existing(pid)?,
        TargetSpec::Command(command) => Target::launch(&command)?,
    };
    let pid = target.pid();
    let names_at_start = if target.is_launched() {
        HashMap::new() // still our own fork, not yet the command
    } else {
        procfs::thread_names(pid)
    };
    let states_at_start = procfs::thread_states(pid);

    let mut storage = MaybeUninit::uninit();
    let mut tracer = Tracer::attach(&mut storage, pid, cli.ringbuf_mb << 20, cli.verbose)?;
    signals::install()?;
    let start = clock::now();
    let softirqs_at_start = tracer.softirq_totals();
    let deadline = cli.window().map(|window| Instant::now() + window);
    let header = Header {
        pid,
        comm: sanitize::sanitize(&target.comm()),
        start,
        requested: cli.window(),
    };

    let aggregator = RefCell::new(Aggregator::new(start.mono_ns));
    let ring = tracer.ring_buffer(|record| aggregator.borrow_mut().ingest(record))?;
    output.announce(&header)?;
    target.release()?;

    // A failure mid-window still reports what was measured until then.
    let (stop_reason, failure) = match collect::run_window(&ring, &target, deadline) {
        Ok(reason) => (reason, None),
        Err(err) => (StopReason::Failed, Some(err)),
    };
    let end = clock::now();
    let names_at_end = procfs::thread_names(pid);
    let calls_at_end = procfs::thread_syscalls(pid);
    let softirqs_system =
        irq::SystemSoftirqs::between(&softirqs_at_start, &tracer.softirq_totals());
    aggregator.borrow_mut().close(end.mono_ns);
    tracer.detach();
    tracer::drain(&ring, Duration::ZERO)?;
    drop(ring);

    let mut aggregator = aggregator.into_inner();
    for (tid, call) in tracer.in_flight() {
        aggregator.add_in_flight(tid, call);
    }
    for (tid, nr) in calls_at_end {
        aggregator.add_call_in_progress(tid, nr);
    }
    for (tid, (ts_ns, comm)) in tracer.thread_exits() {
        aggregator.add_exit(tid, ts_ns, comm);
    }
    let measurement = Measurement {
        header,
        kernel: procfs::kernel_release(),
        end,
        stop_reason,
        events: aggregator.events(),
        lost_events: tracer.lost_events(),
        skipped_tracepoints: tracer.skipped.clone(),
        softirqs_system,
        names: ThreadNames {
            at_start: names_at_start,
            at_end: names_at_end,
            states_at_start,
        },
    };
    output.write(&Report::build(measurement, aggregator.into_threads()))?;
    if let Some(err) = failure {
        return Err(err.context("tracing stopped early; the report covers the window until then"));
    }

    // A launched command keeps running after a --duration window: wait for
    // it and exit as it did.
    Ok(match target.wait()? {
        Some(code) => ExitCode::from(code),
        None => ExitCode::SUCCESS,
    })
}
