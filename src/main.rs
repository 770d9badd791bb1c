//! kernel-delay: where the threads of the traced processes spend their time
//! in the kernel, traced with eBPF.

mod cli;
mod clock;
mod collect;
mod generate;
mod kernel;
mod model;
mod output;
mod perfetto;
mod processes;
mod recording;
mod report;
mod sanitize;
mod signals;
mod symbols;
mod thousands;

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::error::ErrorKind;

use cli::{Cli, TargetSpec};
use collect::{Collected, Sink};
use kernel::libbpf_errors;
use output::{Layout, Output, ReaderGone};
use processes::cgroup::Cgroups;
use processes::procfs;
use processes::Target;
use report::Header;
use report::Report;

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
    if let Some(what) = cli.generate {
        return match generate::write(what, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => failed(&anyhow::Error::new(err).context("writing it failed")),
        };
    }
    if let Some(cli::Subcommand::Report(args)) = &cli.subcommand {
        return match report_recording(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => failed(&err),
        };
    }
    match run(&cli) {
        Ok(code) => code,
        Err(err) => failed(&err),
    }
}

/// `kernel-delay report FILE`: the recording's windows, reported again.
fn report_recording(args: &cli::ReportArgs) -> Result<()> {
    let shown = &args.shown;
    let output = Output::new(shown.json, shown.view(), shown.output.as_deref())?
        .with_stack_files(args.folded.as_deref(), args.flamegraph.as_deref())?;
    let mut reporter = Reporter {
        output,
        reported: 0,
        notes: Vec::new(),
    };
    let mut perfetto = args
        .perfetto
        .as_deref()
        .map(perfetto::PerfettoTrace::create)
        .transpose()?;
    let cut_short = collect::replay(&args.file, &mut reporter, perfetto.as_mut())?;
    reporter.output.finish()?;
    perfetto.map(perfetto::PerfettoTrace::finish).transpose()?;
    match cut_short {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Says why kernel-delay failed; the exit status for it.
fn failed(err: &anyhow::Error) -> ExitCode {
    if err.is::<ReaderGone>() {
        // As SIGPIPE would end it, but without dying before the report.
        return ExitCode::from(128 + 13);
    }
    if let Some(signal) = err.downcast_ref::<signals::BeforeTracing>() {
        eprintln!("kernel-delay: {signal}");
        return ExitCode::from(signal.exit_status());
    }
    eprintln!(
        "kernel-delay: {}",
        libbpf_errors::in_words(&format!("{err:#}"))
    );
    ExitCode::FAILURE
}

fn run(cli: &Cli) -> Result<ExitCode> {
    signals::install()?;
    if procfs::in_nested_pid_namespace() {
        bail!(
            "this is a PID namespace of its own (a container?), and the kernel's tracepoints \
             use the host's process ids: run kernel-delay in the host's PID namespace \
             (e.g. docker run --pid=host)"
        );
    }
    // Before anything opens a file: a closed standard output would take
    // its descriptor.
    let output = Output::new(
        cli.shown.json,
        cli.shown.view(),
        cli.shown.output.as_deref(),
    )?
    .with_stack_files(cli.folded.as_deref(), cli.flamegraph.as_deref())?;
    let mut target = match cli.target() {
        TargetSpec::Running {
            pids,
            names,
            cgroups,
        } => {
            let cgroups = (!cgroups.is_empty())
                .then(|| Cgroups::open(&cgroups))
                .transpose()?;
            Target::existing(processes::with_named(pids, &names)?, cgroups)?
        }
        TargetSpec::Command(command) => Target::launch(&command)?,
    };
    let mut reporter = Reporter {
        output,
        reported: 0,
        notes: cli.notes(),
    };
    let collected = match collect::collect(cli, &mut target, &mut reporter) {
        // Tracing never began: the command (if any) never ran.
        Err(err) if !target.released() => return Err(err),
        collected => collected,
    };
    let Reporter {
        output, reported, ..
    } = reporter;
    let reported = match collected {
        Ok(failure) => finish_reports(output, reported, cli, failure),
        // Reports made are put in place, whatever failed after them (the
        // recording, say).
        Err(err) if reported > 0 => output.finish().and(Err(err)),
        Err(err) => Err(err),
    };

    // A launched command keeps running after a --duration window: wait for
    // it (said at once why kernel-delay fails, if it does) and exit as it
    // did.
    let failure = reported.err().map(|err| failed(&err));
    let command = target.wait()?;
    Ok(match (failure, command) {
        (Some(failure), _) => failure,
        (None, Some(code)) => ExitCode::from(code),
        (None, None) => ExitCode::SUCCESS,
    })
}

/// Puts the `reported` reports in `output` in place (a note if there was
/// none of a windowed run); `failure`, what ended tracing early, if it did.
fn finish_reports(
    output: Output,
    reported: usize,
    cli: &Cli,
    failure: Option<anyhow::Error>,
) -> Result<()> {
    if reported == 0 && cli.window_plan().is_some() {
        output.note("# No window was sampled")?;
    }
    output.finish()?;
    match failure {
        Some(err) => {
            Err(err.context("tracing stopped early; the report covers the window until then"))
        }
        None => Ok(()),
    }
}

/// The reports of the windows, written as they close.
struct Reporter {
    output: Output,
    reported: usize,
    /// Said once, on standard error, after the start line.
    notes: Vec<&'static str>,
}

impl Sink for Reporter {
    fn announce(&mut self, header: &Header) -> Result<()> {
        self.output.announce(header)?;
        for note in self.notes.drain(..) {
            eprintln!("kernel-delay: note: {note}");
        }
        Ok(())
    }

    fn report(&mut self, window: Collected, layout: Layout) -> Result<()> {
        let Collected {
            measurement,
            threads,
        } = window;
        let report = Report::build(&measurement, threads);
        self.reported += 1;
        self.output
            .write(&report, &measurement.header, &measurement.end, layout)
    }

    fn note(&mut self, line: &str) -> Result<()> {
        self.output.note(line)
    }
}
