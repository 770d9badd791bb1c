//! `kernel-delay report FILE`: the windows of a recording, aggregated again
//! from what they took in and reported to a sink as the live run reported
//! them. A recording cut short (a run killed) reports the windows it holds,
//! the last one up to its last record, and says so.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

use crate::clock::Timestamp;
use crate::collect::assemble::assemble;
use crate::collect::{Collected, Sink};
use crate::model::aggregate::{Aggregator, Input, Setup};
use crate::output::Layout;
use crate::perfetto::PerfettoTrace;
use crate::recording::read::{Next, Playback};
use crate::recording::{Message, ThreadsSeen, WindowEnd};
use crate::report::{Header, StopReason, ThreadNames};
use crate::symbols::symbolize::StackNamer;

/// A window read so far.
struct Open {
    header: Header,
    setup: Setup,
    layout: Layout,
    aggregator: Aggregator,
    /// The newest time it took in.
    newest_ns: u64,
    /// What /proc said of its threads as it opened.
    seen: ThreadsSeen,
}

/// Reports the recording at `path` to `sink`: an error when it cannot be
/// (nothing reported); what went wrong past what it reported, if it was
/// cut short or damaged.
pub fn replay(
    path: &Path,
    sink: &mut dyn Sink,
    mut perfetto: Option<&mut PerfettoTrace>,
) -> Result<Option<anyhow::Error>> {
    let shown = path.display();
    let mut playback = Playback::open(path)?;
    let kernel = match playback.next() {
        Next::Message(Message::Run(run)) => run.kernel,
        Next::Message(_) => bail!("{shown} is damaged: it does not begin with its run"),
        Next::Eof => bail!("{shown} holds nothing: the run that made it ended before tracing"),
        Next::Damaged(why) => bail!("{shown} is damaged: {why}"),
    };
    let mut open: Option<Open> = None;
    let mut closed: Option<(Collected, Layout)> = None;
    let why = loop {
        let why = match playback.next() {
            Next::Message(Message::Window {
                header,
                setup,
                layout,
            }) => {
                if let Some((collected, layout)) = closed.take() {
                    // Closed, never reported: the run ended in between.
                    sink.report(collected, layout)?;
                }
                // The one window's header came with the start line.
                if layout == Layout::Only {
                    sink.announce(&header)?;
                }
                let mut aggregator = Aggregator::set_up(setup);
                if perfetto.is_some() {
                    aggregator.observe();
                }
                open = Some(Open {
                    newest_ns: header.start.mono_ns,
                    seen: ThreadsSeen::default(),
                    aggregator,
                    header,
                    setup,
                    layout,
                });
                continue;
            }
            Next::Message(Message::Opened(seen)) => match open.as_mut() {
                Some(window) => {
                    if let Some(perfetto) = perfetto.as_deref_mut() {
                        perfetto.window_opened(&seen);
                    }
                    window.seen = seen;
                    continue;
                }
                None => "threads seen outside any window".to_string(),
            },
            Next::Message(Message::Input(input)) => match open.as_mut() {
                Some(window) => {
                    if let Input::Record(record) = &input {
                        window.newest_ns = window.newest_ns.max(record.time_ns());
                    }
                    window.aggregator.apply(input);
                    if let Some(perfetto) = perfetto.as_deref_mut() {
                        perfetto.seen(window.aggregator.take_seen())?;
                    }
                    continue;
                }
                None => "an input outside any window".to_string(),
            },
            Next::Message(Message::WindowEnd(mut end)) => {
                let Some(window) = open.take() else {
                    break "a window's end without its start".to_string();
                };
                let mut namer = StackNamer::recorded(std::mem::take(&mut end.stacks));
                let collected = assemble(
                    window.header,
                    &window.setup,
                    window.aggregator,
                    &end,
                    &mut namer,
                );
                if let Some(perfetto) = perfetto.as_deref_mut() {
                    perfetto.window_closed(&collected)?;
                }
                closed = Some((collected, window.layout));
                continue;
            }
            Next::Message(Message::Reported) => {
                let Some((collected, layout)) = closed.take() else {
                    break "a report of no window".to_string();
                };
                sink.report(collected, layout)?;
                continue;
            }
            Next::Message(Message::Note(line)) => {
                closed = None;
                sink.note(&line)?;
                continue;
            }
            Next::Message(Message::End) => return Ok(None),
            Next::Message(Message::Run(_)) => "a second run in it".to_string(),
            Next::Eof => "it ends before the run did".to_string(),
            Next::Damaged(why) => why,
        };
        break why;
    };
    // Cut short or damaged: what it holds, then why it holds no more.
    if let Some((collected, layout)) = closed.take() {
        sink.report(collected, layout)?;
    }
    if let Some(window) = open.take() {
        let layout = window.layout;
        let collected = cut_short(window, &kernel, &why);
        if let Some(perfetto) = perfetto {
            perfetto.window_closed(&collected)?;
        }
        sink.report(collected, layout)?;
    }
    Ok(Some(anyhow!(
        "{shown} was cut short or is damaged: {why}; what it held is reported"
    )))
}

/// What a window whose end the recording does not hold measured, up to
/// its last record: said in its warnings.
fn cut_short(mut window: Open, kernel: &str, why: &str) -> Collected {
    let end_ns = window.newest_ns;
    window.aggregator.apply(Input::Close { end_ns });
    let start = window.header.start;
    let elapsed = time::Duration::nanoseconds(end_ns.saturating_sub(start.mono_ns) as i64);
    let end = WindowEnd {
        kernel: kernel.to_string(),
        end: Timestamp {
            mono_ns: end_ns,
            wall: start.wall + elapsed,
        },
        stop_reason: StopReason::Failed,
        lost: Default::default(),
        spilled_calls: 0,
        warnings: vec![format!(
            "the recording was cut short ({why}): this window is reported up to its last \
             record, without what its close would have added (calls in progress, losses, \
             the names /proc gave as it closed, the names of its stacks)"
        )],
        skipped_tracepoints: Vec::new(),
        softirqs_system: Default::default(),
        window: None,
        names: ThreadNames {
            at_start: window.seen.names,
            at_end: HashMap::new(),
            states_at_start: window.seen.states,
        },
        stacks: Default::default(),
    };
    let mut namer = StackNamer::recorded(Default::default());
    assemble(
        window.header,
        &window.setup,
        window.aggregator,
        &end,
        &mut namer,
    )
}
