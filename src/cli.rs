//! Command-line options.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Parser, ValueEnum};

use crate::kernel::tracer::{EventOptions, StackOptions, WindowPlan};
use crate::kernel::trigger::{self, Trigger};
use crate::model::aggregate::Setup;
use crate::report::view::{ThreadFilter, View};

/// Where processes' threads spend their time in the kernel (eBPF)
#[derive(Parser, Debug)]
#[command(
    name = "kernel-delay",
    version,
    long_about = LONG_ABOUT,
    after_help = examples_help(),
    // What takes stacks: the options that shape them need one.
    group(clap::ArgGroup::new("stack_takers").args(["syscall_events", "off_cpu_stacks"]).multiple(true)),
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Trace every thread of the running process PID; a comma-separated
    /// list, and repeatable.
    #[arg(
        short,
        long,
        value_name = "PID",
        value_parser = parse_pid,
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub pid: Vec<u32>,

    /// Trace every process named NAME (exactly, as `pgrep -x`: the first 15
    /// bytes, the kernel's limit); a comma-separated list, and repeatable.
    #[arg(short = 'n', long, value_name = "NAME", value_delimiter = ',')]
    pub comm: Vec<String>,

    /// Trace every process in cgroup directory PATH and the cgroups below
    /// it (a container, a systemd service: a full path, or one under the
    /// cgroup v2 mount), and the processes they fork; processes that join
    /// it later are traced from when they are found (within 0.1 s).
    /// Repeatable.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<PathBuf>,

    /// Trace the processes the traced ones fork during the window, from
    /// their first instruction, and (with --pid) their descendants alive at
    /// the start [default with a COMMAND].
    #[arg(short, long, overrides_with = "no_follow_forks")]
    pub follow_forks: bool,

    /// Trace the COMMAND's own process only, not the processes it forks.
    #[arg(long, overrides_with = "follow_forks")]
    pub no_follow_forks: bool,

    /// Length of the sampling window in seconds; fractions allowed
    /// [default: 10 with --pid, until COMMAND exits otherwise].
    #[arg(
        short,
        long,
        visible_alias = "sample-time",
        value_name = "SECONDS",
        value_parser = parse_duration,
        allow_negative_numbers = true
    )]
    pub duration: Option<Duration>,

    #[command(flatten)]
    pub shown: Shown,

    /// Also record the windows to FILE as they run (zstd-compressed):
    /// `kernel-delay report FILE` reports them again, with any report
    /// options, on any host, without root.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Also write the windows to FILE as a Perfetto trace (open it in the
    /// Perfetto UI): per thread its system calls, its states over time
    /// and its interrupts, as slices.
    #[arg(long, value_name = "FILE")]
    pub perfetto: Option<PathBuf>,

    #[command(subcommand)]
    pub subcommand: Option<Subcommand>,

    /// Size of the ring buffer between the kernel and kernel-delay, in MiB
    /// (a power of two) [default: 16].
    #[arg(
        long,
        value_name = "MiB",
        value_parser = parse_ringbuf_mb,
        allow_negative_numbers = true,
        conflicts_with = "buffer_page_count"
    )]
    pub ringbuf_mb: Option<u32>,

    /// The ring buffer's size in pages, rounded up to a power of two (the
    /// Open vSwitch tool's option; --ringbuf-mb in MiB).
    #[arg(
        long,
        value_name = "PAGES",
        value_parser = parse_page_count,
        allow_negative_numbers = true
    )]
    pub buffer_page_count: Option<u32>,

    /// After the statistics, list each system call that took at least NS
    /// nanoseconds (every call when NS is left out), with its kernel and
    /// user stacks, symbolized (the Open vSwitch tool's option).
    #[arg(
        short = 's',
        long,
        value_name = "NS",
        num_args = 0..=1,
        default_missing_value = "0",
        value_parser = parse_event_threshold
    )]
    pub syscall_events: Option<u64>,

    /// Leave the poll family (poll, select, epoll_wait...) out of
    /// --syscall-events.
    #[arg(long, requires = "syscall_events")]
    pub skip_syscall_poll_events: bool,

    /// How many distinct stacks --syscall-events can record (0: none).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_STACK_TRACES,
        value_parser = parse_stack_trace_size
    )]
    pub stack_trace_size: u32,

    /// How much of each slow call's user stack --syscall-events copies to
    /// unwind, in bytes above the stack pointer (a multiple of 4096, from
    /// 4096 to 65536): deeper frames are cut, and the stack says so.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = DEFAULT_USER_STACK_SIZE,
        value_parser = parse_user_stack_size,
        requires = "stack_takers"
    )]
    pub user_stack_size: u32,

    /// How many slow calls --syscall-events lists a window at most (the
    /// first ones); those past it are counted, not kept: memory stays
    /// bounded whatever the rate.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_MAX_SYSCALL_EVENTS,
        requires = "syscall_events"
    )]
    pub max_syscall_events: usize,

    /// Charge each thread's time asleep, blocked, or ready after a
    /// preemption to the kernel and user stacks it left its CPU with
    /// (offcpu_stacks): a stack copy at each such switch, microseconds
    /// each.
    #[arg(long)]
    pub off_cpu_stacks: bool,

    /// Write that time by stack (--off-cpu-stacks), of every window, to
    /// FILE as collapsed stacks, as Brendan Gregg's flame graph tools read
    /// them: process-PID;thread-TID;[state];user frames;kernel frames NS.
    #[arg(long, value_name = "FILE", requires = "off_cpu_stacks")]
    pub folded: Option<PathBuf>,

    /// Draw that time by stack (--off-cpu-stacks), of every window, as an
    /// interactive SVG flame graph in FILE.
    #[arg(long, value_name = "FILE", requires = "off_cpu_stacks")]
    pub flamegraph: Option<PathBuf>,

    /// Also name what woke each thread (woken_by): a task, or an interrupt.
    /// Wakeups are then recorded where the wakers run, which costs each
    /// wakeup of a traced thread some 60 ns more.
    #[arg(long)]
    pub wakers: bool,

    /// Open the window when this probe fires in a traced process:
    /// u:PROVIDER:PROBE (USDT), up:FUNCTION / ur:FUNCTION (uprobe,
    /// uretprobe; FUNCTION@PATH in a library), t:SYSTEM:EVENT (tracepoint),
    /// k:FUNCTION / kr:FUNCTION (kprobe, kretprobe). The window then lasts
    /// --duration, or until the stop trigger.
    #[arg(long, value_name = "SPEC", value_parser = trigger::parse)]
    pub start_trigger: Option<Trigger>,

    /// Close the window when this probe fires in a traced process (the
    /// same SPEC); without a start trigger, the window opens at once.
    #[arg(long, value_name = "SPEC", value_parser = trigger::parse)]
    pub stop_trigger: Option<Trigger>,

    /// Skip (and wait for the next) windows shorter than NS nanoseconds.
    #[arg(long, value_name = "NS", value_parser = parse_event_threshold)]
    pub trigger_delta: Option<u64>,

    /// How many windows to report, one report each (0: until
    /// interrupted); with more than one, JSON is one report per line.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub sample_count: u64,

    /// Pause between windows, in seconds [default: 0].
    #[arg(
        long,
        value_name = "SECONDS",
        value_parser = parse_interval,
        allow_negative_numbers = true
    )]
    pub sample_interval: Option<Duration>,

    /// Show libbpf's messages while loading.
    #[arg(short, long)]
    pub verbose: bool,

    /// The Open vSwitch tool's debug flags: any LEVEL but 0 (default 63,
    /// its 0x3f) shows libbpf's messages while loading, as --verbose.
    #[arg(
        short = 'D',
        long,
        value_name = "LEVEL",
        num_args = 0..=1,
        default_missing_value = "63"
    )]
    pub debug: Option<u32>,

    /// Accepted for the Open vSwitch tool's command lines: kernel-delay
    /// collects no upcall statistics (ovs-vswitchd's own USDT probes),
    /// so there are none to skip.
    #[arg(long)]
    pub skip_upcall_stats: bool,

    /// Write the man page or a shell's completions to standard output, and
    /// exit (`make install` installs them).
    #[arg(long, value_name = "WHAT", exclusive = true)]
    pub generate: Option<Generated>,

    /// Command to start and trace from its first instruction (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// What the man page's DESCRIPTION and --help say first.
const LONG_ABOUT: &str = "Where the threads of processes spend their time in the kernel, \
traced with eBPF: for each thread, its system calls (counts, errors, percentiles, and where \
each call's time went: on a CPU, waiting for one, asleep, blocked), its scheduling (running, \
waiting for a CPU behind other tasks or for an idle one to wake, sleeping, blocked, stopped: \
a time budget that adds up to the window), and the interrupts that took its CPU time. The \
report opens with a summary, worst thread first, and a verdict per process.";

/// (command, what it does): --help lists the commands, the man page both.
pub const EXAMPLES: [(&str, &str); 7] = [
    (
        "sudo kernel-delay --pid 1234",
        "Trace every thread of process 1234 for 10 seconds.",
    ),
    (
        "sudo kernel-delay --pid 1234,1240 --duration 2.5 --json",
        "Two processes for 2.5 seconds, the report in JSON.",
    ),
    (
        "sudo kernel-delay --pid 1234 --follow-forks",
        "Process 1234, its descendants, and the processes they fork.",
    ),
    (
        "sudo kernel-delay -o report.txt -- ./my-program --its-args",
        "Start a command and trace it, and what it forks, until it exits.",
    ),
    (
        "sudo kernel-delay --pid 1234 --syscall-events 5000000",
        "List each call that took 5 ms or more, with its stacks.",
    ),
    (
        "sudo kernel-delay --pid 1234 --start-trigger up:begin --stop-trigger ur:end",
        "A window from each call of the target's function begin() to the return of end().",
    ),
    (
        "sudo kernel-delay --pid 1234 --sample-count 0 --duration 1 --json",
        "A report a second, one JSON line each, until interrupted.",
    ),
];

fn examples_help() -> String {
    let commands: Vec<String> = EXAMPLES
        .iter()
        .map(|(command, _)| format!("  {command}"))
        .collect();
    format!("Examples:\n{}", commands.join("\n"))
}

pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// A window shorter than this measures mostly the probes being attached.
const MIN_DURATION: Duration = Duration::from_millis(1);
/// A year: longer windows are a typo, and would overflow the clock's sums.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Distinct stacks --syscall-events records by default, as the Open
/// vSwitch tool; each entry holds up to 127 frames (1 KiB).
const DEFAULT_STACK_TRACES: u32 = 4096;
const DEFAULT_USER_STACK_SIZE: u32 = 16384;
/// The programs copy the stack pointer's page and this many bytes above.
const MAX_USER_STACK_SIZE: u32 = 65536;
const MAX_STACK_TRACES: u32 = 1 << 20;

/// Page size of the ring buffer's --buffer-page-count.
const PAGE_BYTES: u32 = 4096;
const DEFAULT_MAX_SYSCALL_EVENTS: usize = 100_000;
const DEFAULT_RINGBUF_MB: u32 = 16;
const MAX_RINGBUF_MB: u32 = 1024;

/// What --generate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Generated {
    /// The man page (section 8), in roff.
    Man,
    /// Completions for bash.
    Bash,
    /// Completions for zsh.
    Zsh,
    /// Completions for fish.
    Fish,
}

#[derive(clap::Subcommand, Debug)]
pub enum Subcommand {
    /// Report a recording (--record FILE) again: the report the live run
    /// gives with the same options. No root needed.
    Report(ReportArgs),
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The recording.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    #[command(flatten)]
    pub shown: Shown,

    /// Write the time off the CPU by stack of every window (recorded with
    /// --off-cpu-stacks) to FILE as collapsed stacks.
    #[arg(long, value_name = "FILE")]
    pub folded: Option<PathBuf>,

    /// Draw it as an interactive SVG flame graph in FILE.
    #[arg(long, value_name = "FILE")]
    pub flamegraph: Option<PathBuf>,

    /// Write the windows to FILE as a Perfetto trace.
    #[arg(long, value_name = "FILE")]
    pub perfetto: Option<PathBuf>,
}

/// How a report is shown: live, and from a recording.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Shown {
    /// Print the report as JSON (schema kernel-delay/1).
    #[arg(long)]
    pub json: bool,

    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Text report: show every section and row, also those where nothing
    /// happened (by default an idle thread is one line, and empty
    /// sections are left out).
    #[arg(long)]
    pub all: bool,

    /// Text report: add log2 latency histograms (as bcc's tools print
    /// them) of each system call, and of the stretches ready, asleep and
    /// blocked. The JSON report always has them (`hist`).
    #[arg(long)]
    pub histogram: bool,

    /// Text report: details of these threads only: a comma-separated list
    /// of thread ids, or a regular expression their names match (the
    /// summary still lists all).
    #[arg(long, value_name = "REGEX|TID,...", value_parser = parse_thread_filter)]
    pub threads: Option<ThreadFilter>,

    /// Text report: the N threads with the most kernel delay only.
    #[arg(long, value_name = "N", value_parser = parse_top)]
    pub top: Option<usize>,
}

impl Shown {
    /// What the text report shows.
    pub fn view(&self) -> View {
        View {
            all: self.all,
            histogram: self.histogram,
            threads: self.threads.clone(),
            top: self.top,
        }
    }
}

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Running processes: by pid, each once, in the order given, and by
    /// name.
    Running {
        pids: Vec<u32>,
        names: Vec<String>,
        cgroups: Vec<PathBuf>,
    },
    Command(Vec<OsString>),
}

impl Cli {
    pub fn target(&self) -> TargetSpec {
        if !self.traces_running_processes() {
            return TargetSpec::Command(self.command.clone());
        }
        let mut pids = self.pid.clone();
        let mut seen = std::collections::HashSet::new();
        pids.retain(|pid| seen.insert(*pid));
        TargetSpec::Running {
            pids,
            names: self.comm.clone(),
            cgroups: self.cgroup.clone(),
        }
    }

    fn traces_running_processes(&self) -> bool {
        !self.pid.is_empty() || !self.comm.is_empty() || !self.cgroup.is_empty()
    }

    /// Whether processes forked by the traced ones are traced: asked for
    /// with --pid or --comm, always with --cgroup (a fork stays in its
    /// cgroup), by default with a command.
    pub fn follows_forks(&self) -> bool {
        if self.traces_running_processes() {
            self.follow_forks || !self.cgroup.is_empty()
        } else {
            !self.no_follow_forks
        }
    }

    /// --duration, or its default with --pid; None: until the launched
    /// command exits.
    fn duration_or_default(&self) -> Option<Duration> {
        match (self.duration, self.traces_running_processes()) {
            (Some(d), _) => Some(d),
            (None, true) => Some(DEFAULT_DURATION),
            (None, false) => None,
        }
    }

    /// Triggered or repeated windows; None for one window, opened at once.
    pub fn window_plan(&self) -> Option<WindowPlan> {
        let plan = WindowPlan {
            start: self.start_trigger.clone(),
            stop: self.stop_trigger.clone(),
            min_delta_ns: self.trigger_delta.unwrap_or(0),
            length: self.window_length(),
            count: self.sample_count,
            interval: self.sample_interval.unwrap_or(Duration::ZERO),
        };
        let plain = plan.start.is_none() && plan.stop.is_none() && plan.count == 1;
        (!plain).then_some(plan)
    }

    /// How long a window lasts at most: --duration, or by default 10 s
    /// with --pid (until the command exits otherwise), unless a stop
    /// trigger is to close it.
    pub fn window_length(&self) -> Option<Duration> {
        match (self.duration, &self.stop_trigger) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => self.duration_or_default(),
        }
    }

    /// Refuses window options that can never take effect.
    fn check_windows(&self) -> Result<(), clap::Error> {
        let Some(delta_ns) = self.trigger_delta else {
            return Ok(());
        };
        if self.start_trigger.is_none() && self.stop_trigger.is_none() {
            return Err(usage_error(
                "--trigger-delta needs --start-trigger or --stop-trigger: it skips windows that \
                 the triggers make short",
            ));
        }
        match self.window_length() {
            Some(length) if u128::from(delta_ns) > length.as_nanos() => Err(usage_error(&format!(
                "--trigger-delta {delta_ns} can never be met: a window lasts at most {} ns \
                 (--duration)",
                length.as_nanos()
            ))),
            _ => Ok(()),
        }
    }

    /// What --syscall-events asks for; None without it.
    /// How a window that opens at `start_ns` is aggregated.
    pub fn setup(&self, start_ns: u64) -> Setup {
        Setup {
            start_ns,
            wakers: self.wakers,
            offcpu_stacks: self.off_cpu_stacks,
            slow_call_cap: self.events().map(|events| events.max_events),
        }
    }

    pub fn events(&self) -> Option<EventOptions> {
        Some(EventOptions {
            min_ns: self.syscall_events?,
            skip_poll: self.skip_syscall_poll_events,
            max_events: self.max_syscall_events,
        })
    }

    /// The stacks of slow calls and of switches off the CPU.
    pub fn stacks(&self) -> StackOptions {
        StackOptions {
            traces: self.stack_trace_size,
            user_stack_bytes: self.user_stack_size,
        }
    }

    /// Whether libbpf's messages are shown (--verbose, or -D with a
    /// non-zero level).
    pub fn verbose(&self) -> bool {
        self.verbose || self.debug.is_some_and(|level| level != 0)
    }

    /// Lines to say once, as the window begins, about options accepted
    /// but without effect.
    pub fn notes(&self) -> Vec<&'static str> {
        let mut notes = Vec::new();
        if self.skip_upcall_stats {
            notes.push(
                "--skip-upcall-stats: kernel-delay collects no upcall statistics (the Open \
                 vSwitch tool reads them from ovs-vswitchd's USDT probes): nothing to skip",
            );
        }
        notes
    }

    /// The ring buffer's size in bytes.
    pub fn ringbuf_bytes(&self) -> u32 {
        match (self.buffer_page_count, self.ringbuf_mb) {
            (Some(pages), _) => pages * PAGE_BYTES,
            (None, mb) => mb.unwrap_or(DEFAULT_RINGBUF_MB) << 20,
        }
    }
}

/// Parses the command line. Usage errors come back as one line of text.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = Cli::try_parse_from(args)?;
    if cli.generate.is_some() || cli.subcommand.is_some() {
        return Ok(cli);
    }
    match (cli.traces_running_processes(), cli.command.is_empty()) {
        (true, false) => Err(usage_error(
            "give either --pid/--comm/--cgroup or a command after --, not both",
        )),
        (false, true) => Err(usage_error(
            "nothing to trace: give --pid PID, --comm NAME, --cgroup PATH or a command after --",
        )),
        _ => {
            cli.check_windows()?;
            Ok(cli)
        }
    }
}

fn usage_error(message: &str) -> clap::Error {
    clap::Error::raw(ErrorKind::ArgumentConflict, message)
}

/// The first paragraph of a clap error on one line, without its `error: `
/// prefix (a missing argument is named on the lines under the first).
pub fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    match paragraph.join(" ").trim_start_matches("error: ") {
        "" => "invalid arguments".to_string(),
        line => line.to_string(),
    }
}

fn parse_pid(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(pid) if pid > 0 && pid <= i32::MAX as u32 => Ok(pid),
        _ => Err("a process id is a positive integer".to_string()),
    }
}

/// Thread ids if it is a list of numbers, else a regular expression.
fn parse_thread_filter(text: &str) -> Result<ThreadFilter, String> {
    let tids: Result<Vec<u32>, _> = text.split(',').map(|t| t.trim().parse::<u32>()).collect();
    match tids {
        Ok(tids) => Ok(ThreadFilter::Tids(tids)),
        Err(_) => regex_lite::Regex::new(text)
            .map(ThreadFilter::Name)
            .map_err(|err| {
                let reason = err.to_string();
                let first = reason.lines().last().unwrap_or("invalid").trim();
                format!("neither thread ids nor a valid regular expression ({first})")
            }),
    }
}

fn parse_event_threshold(text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .map_err(|_| "the event threshold is a number of nanoseconds".to_string())
}

fn parse_stack_trace_size(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n <= MAX_STACK_TRACES => Ok(n),
        _ => Err(format!(
            "the stack trace size is a number of stacks from 0 to {MAX_STACK_TRACES}"
        )),
    }
}

fn parse_user_stack_size(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n % 4096 == 0 && (4096..=MAX_USER_STACK_SIZE).contains(&n) => Ok(n),
        _ => Err(format!(
            "the user stack size is a number of bytes, a multiple of 4096 from 4096 to {MAX_USER_STACK_SIZE}"
        )),
    }
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| "an interval is a number of seconds".to_string())?;
    match Duration::try_from_secs_f64(seconds) {
        Ok(interval) if interval <= MAX_DURATION => Ok(interval),
        _ => Err(format!(
            "the interval must be from 0 to {} seconds (365 days)",
            MAX_DURATION.as_secs()
        )),
    }
}

fn parse_top(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("--top takes a positive number of threads".to_string()),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| "a duration is a number of seconds".to_string())?;
    let range = || {
        format!(
            "the duration must be from {} to {} seconds (365 days)",
            MIN_DURATION.as_secs_f64(),
            MAX_DURATION.as_secs()
        )
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if (MIN_DURATION..=MAX_DURATION).contains(&duration) => Ok(duration),
        _ => Err(range()),
    }
}

fn parse_ringbuf_mb(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(mb) if mb.is_power_of_two() && mb <= MAX_RINGBUF_MB => Ok(mb),
        _ => Err("the ring buffer size is a power of two from 1 to 1024 MiB".to_string()),
    }
}

/// Pages, rounded up to a power of two, as the Open vSwitch tool does.
fn parse_page_count(text: &str) -> Result<u32, String> {
    let max_pages = (MAX_RINGBUF_MB << 20) / PAGE_BYTES;
    match text.parse::<u32>() {
        Ok(pages) if pages > 0 && pages <= max_pages => Ok(pages.next_power_of_two()),
        _ => Err(format!(
            "the page count is from 1 to {max_pages} (1024 MiB of 4 KiB pages)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        parse_from(std::iter::once("kernel-delay").chain(args.iter().copied()))
            .map_err(|e| one_line(&e))
    }

    #[test]
    fn pid_with_default_window() {
        let cli = parse(&["--pid", "42"]).unwrap();
        assert_eq!(
            cli.target(),
            TargetSpec::Running {
                pids: vec![42],
                names: vec![],
                cgroups: vec![]
            }
        );
        assert!(!cli.follows_forks());
        assert_eq!(cli.duration_or_default(), Some(Duration::from_secs(10)));
        assert!(!cli.shown.json);
        assert_eq!(cli.ringbuf_bytes(), 16 << 20);
    }

    #[test]
    fn fractional_duration() {
        let cli = parse(&["-p", "42", "-d", "0.5", "--json", "-o", "r.json"]).unwrap();
        assert_eq!(cli.duration_or_default(), Some(Duration::from_millis(500)));
        assert!(cli.shown.json);
        assert_eq!(cli.shown.output, Some(PathBuf::from("r.json")));
    }

    #[test]
    fn sample_time_is_the_open_vswitch_name_of_duration() {
        let cli = parse(&["--pid", "42", "--sample-time", "0.25"]).unwrap();
        assert_eq!(cli.duration_or_default(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn several_pids_as_a_list_and_repeated_each_once() {
        let cli = parse(&["-p", "42,43", "--pid", "44", "-p", "42", "-f"]).unwrap();
        assert_eq!(
            cli.target(),
            TargetSpec::Running {
                pids: vec![42, 43, 44],
                names: vec![],
                cgroups: vec![]
            }
        );
        assert!(cli.follows_forks());
    }

    #[test]
    fn processes_of_a_cgroup_and_their_forks() {
        let cli = parse(&["--cgroup", "system.slice/nginx.service", "-d", "2"]).unwrap();
        assert_eq!(
            cli.target(),
            TargetSpec::Running {
                pids: vec![],
                names: vec![],
                cgroups: vec!["system.slice/nginx.service".into()]
            }
        );
        assert!(cli.follows_forks());
        let err = parse(&["--cgroup", "x", "--", "ls"]).unwrap_err();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn processes_by_name() {
        let cli = parse(&["--comm", "nginx,redis-server", "-n", "postgres"]).unwrap();
        assert_eq!(
            cli.target(),
            TargetSpec::Running {
                pids: vec![],
                names: vec!["nginx".into(), "redis-server".into(), "postgres".into()],
                cgroups: vec![]
            }
        );
        assert_eq!(cli.duration_or_default(), Some(DEFAULT_DURATION));
        assert!(!cli.follows_forks());
        let err = parse(&["-n", "x", "--", "ls"]).unwrap_err();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn the_open_vswitch_names() {
        let cli = parse(&["-p", "1", "--buffer-page-count", "1000", "-D"]).unwrap();
        assert_eq!(
            cli.ringbuf_bytes(),
            1024 * 4096,
            "1,000 pages round up to 1,024"
        );
        assert!(cli.verbose());
        assert!(parse(&["-p", "1", "--debug"]).unwrap().verbose());
        assert!(parse(&["-p", "1", "-D", "4"]).unwrap().verbose());
        assert!(!parse(&["-p", "1", "-D", "0"]).unwrap().verbose());
        assert!(!parse(&["-p", "1"]).unwrap().verbose());
        assert!(parse(&["-p", "1", "-v"]).unwrap().verbose());
        // A level is optional: what follows is not taken for one.
        let cli = parse(&["-D", "--", "ls"]).unwrap();
        assert!(cli.verbose());
        assert_eq!(cli.command, ["ls"]);
        assert!(parse(&["-p", "1", "-D", "x"]).is_err());
        let cli = parse(&["-p", "1", "--skip-upcall-stats"]).unwrap();
        assert_eq!(cli.notes().len(), 1);
        assert!(cli.notes()[0].contains("no upcall statistics"));
        assert!(parse(&["-p", "1"]).unwrap().notes().is_empty());
        assert_eq!(
            parse(&["-p", "1", "--ringbuf-mb", "2"])
                .unwrap()
                .ringbuf_bytes(),
            2 << 20
        );
        for bad in ["0", "-1", "262145", "x"] {
            let err = parse(&["-p", "1", "--buffer-page-count", bad]).unwrap_err();
            assert!(err.contains("page count"), "{bad}: {err}");
        }
        let err = parse(&["-p", "1", "--ringbuf-mb", "2", "--buffer-page-count", "8"]).unwrap_err();
        assert!(err.contains("cannot be used with"), "{err}");
    }

    #[test]
    fn a_command_follows_forks_unless_told_not_to() {
        assert!(parse(&["--", "sh"]).unwrap().follows_forks());
        assert!(!parse(&["--no-follow-forks", "--", "sh"])
            .unwrap()
            .follows_forks());
        assert!(!parse(&["-f", "--no-follow-forks", "--", "sh"])
            .unwrap()
            .follows_forks());
    }

    #[test]
    fn command_runs_until_exit_unless_bounded() {
        let cli = parse(&["--", "sleep", "1"]).unwrap();
        assert_eq!(
            cli.target(),
            TargetSpec::Command(vec!["sleep".into(), "1".into()])
        );
        assert_eq!(cli.duration_or_default(), None);
        let cli = parse(&["--duration", "2", "--", "ls", "-l"]).unwrap();
        assert_eq!(cli.duration_or_default(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn syscall_events_with_or_without_a_threshold() {
        let events = |args: &[&str]| parse(&[&["--pid", "1"], args].concat()).unwrap().events();
        assert_eq!(events(&[]), None);
        let all = events(&["--syscall-events"]).unwrap();
        assert_eq!((all.min_ns, all.skip_poll), (0, false));
        let slow = events(&[
            "-s",
            "4000000",
            "--skip-syscall-poll-events",
            "--stack-trace-size",
            "0",
        ]);
        assert_eq!(
            slow,
            Some(EventOptions {
                min_ns: 4_000_000,
                skip_poll: true,
                max_events: 100_000,
            })
        );
        // The command after -- is not taken for a threshold.
        let cli = parse(&["--syscall-events", "--", "ls"]).unwrap();
        assert_eq!(cli.events().map(|e| e.min_ns), Some(0));
        assert_eq!(cli.command, ["ls"]);
    }

    #[test]
    fn triggers_and_repeated_windows() {
        let cli = parse(&["--pid", "1"]).unwrap();
        assert_eq!(cli.window_plan(), None);
        let cli = parse(&[
            "--pid",
            "1",
            "--start-trigger",
            "up:begin",
            "--stop-trigger",
            "ur:end",
            "--trigger-delta",
            "1000",
        ])
        .unwrap();
        let windows = cli.window_plan().unwrap();
        assert_eq!(windows.start.unwrap().spec, "up:begin");
        assert_eq!((windows.min_delta_ns, windows.count), (1_000, 1));
        assert_eq!(cli.window_length(), None, "the stop trigger closes it");
        let cli = parse(&[
            "--pid",
            "1",
            "--sample-count",
            "3",
            "--sample-interval",
            "0.2",
            "--duration",
            "0.3",
        ])
        .unwrap();
        let windows = cli.window_plan().unwrap();
        assert_eq!(
            (windows.count, windows.interval),
            (3, Duration::from_millis(200))
        );
        assert_eq!(cli.window_length(), Some(Duration::from_millis(300)));
        let start_only = parse(&[
            "--pid",
            "1",
            "--start-trigger",
            "t:sched:sched_process_exec",
        ]);
        assert_eq!(
            start_only.unwrap().window_length(),
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn threads_by_id_or_by_name() {
        let filter = |arg: &str| {
            parse(&["--pid", "1", "--threads", arg])
                .unwrap()
                .shown
                .threads
                .unwrap()
        };
        let ids = filter("12,34");
        assert!(ids.matches(34, "x") && !ids.matches(3, "12"));
        let names = filter("^worker-[0-9]+$");
        assert!(names.matches(1, "worker-7") && !names.matches(7, "main"));
        // A name made of digits is asked for as ids.
        assert!(matches!(filter("7"), ThreadFilter::Tids(_)));
        let cli = parse(&["--pid", "1", "--top", "3", "--all", "--histogram"]).unwrap();
        assert_eq!(
            (cli.shown.top, cli.shown.all, cli.shown.histogram),
            (Some(3), true, true)
        );
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for args in [
            &["--pid", "0"][..],
            &["--pid", "-3"],
            &["--pid", "abc"],
            &["--pid", "1", "--duration", "0"],
            &["--pid", "1", "--duration", "-1"],
            &["--pid", "1", "--duration", "NaN"],
            &["--pid", "1", "--duration", "1e300"],
            &["--pid", "1", "--duration", "1e19"],
            &["--pid", "1", "--duration", "9.3e18"],
            &["--pid", "1", "--duration", "1e-300"],
            &["--pid", "1", "--duration", "inf"],
            &["--pid", "-1"],
            &["--pid", "1,,2"],
            &["--pid", "1,x"],
            &["--pid", "1", "--ringbuf-mb", "-1"],
            &["--pid", "1", "--ringbuf-mb", "3"],
            &["--pid", "1", "--threads", "work(er"],
            &["--pid", "1", "--top", "0"],
            &["--pid", "1", "--syscall-events", "-5"],
            &["--pid", "1", "--syscall-events", "5ms"],
            &["--pid", "1", "--stack-trace-size", "99999999"],
            &["--pid", "1", "--user-stack-size", "0"],
            &["--pid", "1", "--user-stack-size", "5000"],
            &["--pid", "1", "--user-stack-size", "69632"],
            &["--pid", "1", "--user-stack-size", "8192"],
            &["--pid", "1", "--skip-syscall-poll-events"],
            &["--pid", "1", "--start-trigger", "begin"],
            &["--pid", "1", "--stop-trigger", "x:y"],
            &["--pid", "1", "--sample-count", "-1"],
            &["--pid", "1", "--sample-interval", "-1"],
            &["--pid", "1", "--trigger-delta", "1ms"],
            &["--pid", "1", "--top", "-2"],
            &[],
            &["--pid", "1", "--", "ls"],
            &["--bogus"],
        ] {
            let err = parse(args).expect_err(&format!("{args:?} must be refused"));
            assert!(!err.contains('\n') && !err.is_empty(), "{args:?}: {err:?}");
            assert!(!err.starts_with("error:"), "{err}");
        }
    }

    #[test]
    fn an_option_without_the_one_it_needs_names_it() {
        for option in ["--skip-syscall-poll-events", "--user-stack-size=8192"] {
            let err = parse(&["--pid", "1", option]).unwrap_err();
            assert!(err.contains("--syscall-events [<NS>]"), "{err}");
        }
    }

    #[test]
    fn out_of_range_values_say_what_is_allowed() {
        for duration in ["0", "-1", "1e-300", "1e19", "31536001"] {
            let err = parse(&["--pid", "1", "--duration", duration]).unwrap_err();
            assert!(
                err.contains("from 0.001 to 31536000 seconds"),
                "{duration}: {err}"
            );
        }
        let err = parse(&["--pid", "-1"]).unwrap_err();
        assert!(
            err.contains("'-1'") && err.contains("positive integer"),
            "{err}"
        );
        assert_eq!(
            parse(&["--pid", "1", "-d", "31536000"])
                .unwrap()
                .duration_or_default(),
            Some(MAX_DURATION)
        );
        assert_eq!(
            parse(&["--pid", "1", "-d", "0.001"])
                .unwrap()
                .duration_or_default(),
            Some(MIN_DURATION)
        );
    }
}
