//! Where each thread waited (--off-cpu-stacks): its time asleep, blocked
//! and ready after a preemption by the stacks it left its CPU with, the
//! longest first, as JSON rows and as the text's [OFF-CPU STACKS].

use std::fmt::Write;
use std::rc::Rc;

use serde::Serialize;

use crate::model::attribution::{Tallies, Tally};
use crate::model::offcpu::{Leaving, OffCpuStacks};
use crate::report::{events, ThreadReport};
use crate::thousands::thousands;

/// Time off the CPU charged to one pair of stacks, in one state.
#[derive(Debug, Serialize)]
pub struct OffCpuStackReport {
    /// sleeping, blocked or preempted.
    pub state: &'static str,
    pub ns: u64,
    /// Stretches.
    pub count: u64,
    /// Innermost frame first, as in syscall_events.
    pub kernel: Rc<[String]>,
    pub user: Rc<[String]>,
    /// Why the user stack ends before its outermost frame, if it does.
    pub user_stack_cut: Option<&'static str>,
}

/// The rows of `stacks`, the longest first.
pub fn rows(stacks: &OffCpuStacks) -> Vec<OffCpuStackReport> {
    let states: [(&'static str, &Tallies<Leaving>); 3] = [
        ("sleeping", &stacks.sleeping),
        ("blocked", &stacks.blocked),
        ("preempted", &stacks.preempted),
    ];
    let mut rows: Vec<OffCpuStackReport> = states
        .into_iter()
        .flat_map(|(state, tallies)| {
            tallies
                .entries()
                .iter()
                .map(move |(key, tally)| row(state, key.as_ref(), *tally))
        })
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.ns));
    rows
}

fn row(state: &'static str, key: Option<&Leaving>, tally: Tally) -> OffCpuStackReport {
    let said = |what: &str| -> Rc<[String]> { Rc::from([what.to_string()]) };
    let (kernel, user, user_stack_cut) = match key {
        Some(Leaving::Stacks(left)) => match left.names.get() {
            Some(names) => (
                Rc::clone(&names.kernel),
                Rc::clone(&names.user),
                names.user_cut,
            ),
            None => (said("[not named]"), Rc::from([]), None),
        },
        Some(Leaving::BeforeWindow) => (
            said("[off the CPU when the window opened: where is not known]"),
            Rc::from([]),
            None,
        ),
        Some(Leaving::NotRecorded) => (
            said("[not recorded: the ring buffer was full]"),
            Rc::from([]),
            None,
        ),
        None => (said("[other stacks]"), Rc::from([]), None),
    };
    OffCpuStackReport {
        state,
        ns: tally.ns,
        count: tally.count,
        kernel,
        user,
        user_stack_cut,
    }
}

/// Rows shown by name in the text; the rest are summed.
const SHOWN: usize = 5;

/// The text's [OFF-CPU STACKS] of `thread`, if it has any.
pub fn render(out: &mut String, indent: &str, thread: &ThreadReport) {
    let Some(rows) = thread.offcpu_stacks.as_deref() else {
        return;
    };
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "{indent} [OFF-CPU STACKS] where it left its CPU, the longest first"
    );
    for row in rows.iter().take(SHOWN) {
        let _ = writeln!(
            out,
            "{indent}   {} {} ns in {} stretches",
            row.state,
            thousands(row.ns),
            thousands(row.count)
        );
        let under = format!("{indent}   ");
        events::render_stacks(out, &under, [&row.kernel, &row.user], row.user_stack_cut);
    }
    if rows.len() > SHOWN {
        let rest = &rows[SHOWN..];
        let ns = rest.iter().map(|row| row.ns).sum::<u64>();
        let _ = writeln!(
            out,
            "{indent}   (others) {} ns in {} rows",
            thousands(ns),
            thousands(rest.len() as u64)
        );
    }
}
