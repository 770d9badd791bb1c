//! A window's measurement, from its aggregation and what its close says:
//! the one way a report's inputs come together, live and from a recording.

use crate::collect::Collected;
use crate::model::aggregate::{Aggregator, Setup};
use crate::recording::WindowEnd;
use crate::report::{Header, Measurement, SyscallEvents};
use crate::symbols::symbolize::StackNamer;

/// The window opened with `header` and set up as `setup`, aggregated in
/// `aggregator`, closed as `end` says; its stacks named by `namer`.
pub fn assemble(
    header: Header,
    setup: &Setup,
    mut aggregator: Aggregator,
    end: &WindowEnd,
    namer: &mut StackNamer<'_>,
) -> Collected {
    let syscall_events = setup.slow_call_cap.map(|limit| {
        let (calls, not_listed) = aggregator.take_slow_calls();
        SyscallEvents {
            calls: namer.calls(calls),
            limit,
            not_listed,
        }
    });
    if setup.offcpu_stacks {
        namer.offcpu(aggregator.offcpu_stacks());
    }
    let events = aggregator.events();
    let (threads, processes, tasks) = aggregator.into_parts();
    let measurement = Measurement {
        header,
        kernel: end.kernel.clone(),
        end: end.end,
        stop_reason: end.stop_reason,
        events,
        lost: end.lost,
        spilled_calls: end.spilled_calls,
        warnings: end.warnings.clone(),
        skipped_tracepoints: end.skipped_tracepoints.clone(),
        softirqs_system: end.softirqs_system.clone(),
        syscall_events,
        window: end.window.clone(),
        names: end.names.clone(),
        processes,
        tasks,
        wakers: setup.wakers,
    };
    Collected {
        measurement,
        threads,
    }
}
