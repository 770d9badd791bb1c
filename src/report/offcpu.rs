//! Where each thread waited (--off-cpu-stacks): its time asleep, blocked
//! and ready after a preemption by the stacks it left its CPU with, the
//! longest first, as JSON rows and as the text's [OFF-CPU STACKS].

use std::collections::HashMap;
use std::fmt::Write;
use std::rc::Rc;

use serde::Serialize;

use crate::model::attribution::{Tallies, Tally};
use crate::model::offcpu::{Leaving, OffCpuStacks};
use crate::report::folded::function_of;
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

/// A row by what it shows: state, kernel and user frames, cut.
type RowKey = (
    &'static str,
    Rc<[String]>,
    Rc<[String]>,
    Option<&'static str>,
);

/// The rows of `stacks`, the longest first.
pub fn rows(stacks: &OffCpuStacks) -> Vec<OffCpuStackReport> {
    let states: [(&'static str, &Tallies<Leaving>); 3] = [
        ("sleeping", &stacks.sleeping),
        ("blocked", &stacks.blocked),
        ("preempted", &stacks.preempted),
    ];
    // Stacks that differ only where no name tells them apart (the
    // tracing machinery's frames, left out) are one row.
    let mut rows: Vec<OffCpuStackReport> = Vec::new();
    let mut index: HashMap<RowKey, usize> = HashMap::new();
    for (state, tallies) in states {
        for (key, tally) in tallies.entries() {
            let new = row(state, key.as_ref(), *tally);
            let named = (
                state,
                Rc::clone(&new.kernel),
                Rc::clone(&new.user),
                new.user_stack_cut,
            );
            match index.get(&named) {
                Some(&at) => {
                    rows[at].ns += new.ns;
                    rows[at].count += new.count;
                }
                None => {
                    index.insert(named, rows.len());
                    rows.push(new);
                }
            }
        }
    }
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

/// Where in the kernel `rows` spent the most time in `state`: the
/// function their innermost kernel frame that is not the scheduler's own
/// (schedule(), generic waits) is in, by time summed over the rows.
pub fn waited_at<'r>(rows: &'r [OffCpuStackReport], state: &str) -> Option<&'r str> {
    let mut by_function: Vec<(&str, u64)> = Vec::new();
    for row in rows.iter().filter(|row| row.state == state) {
        let Some(function) = row
            .kernel
            .iter()
            .map(|frame| function_of(frame))
            .find(|function| !function.starts_with('[') && !is_plumbing(function))
        else {
            continue;
        };
        match by_function.iter_mut().find(|(known, _)| *known == function) {
            Some((_, ns)) => *ns += row.ns,
            None => by_function.push((function, row.ns)),
        }
    }
    by_function
        .into_iter()
        .max_by_key(|&(_, ns)| ns)
        .map(|(function, _)| function)
}

/// The state `thread` spent the longest off its CPU in, by stacks, and
/// where in the kernel (--off-cpu-stacks).
pub fn longest_wait(thread: &ThreadReport) -> Option<(&'static str, &str)> {
    let rows = thread.offcpu_stacks.as_deref()?;
    let state = rows.iter().max_by_key(|row| row.ns)?.state;
    Some((state, waited_at(rows, state)?))
}

/// A function at the top of waits of every kind: the scheduler's, and
/// the generic waits that name no cause.
fn is_plumbing(function: &str) -> bool {
    [
        "__schedule",
        "schedule",
        "io_schedule",
        "preempt_schedule",
        "__cond_resched",
        "wait_for_completion",
        "__wait_for_common",
        "do_wait_for_common",
        "bit_wait",
        "__wait_on_bit",
        "out_of_line_wait_on_bit",
        "submit_bio_wait",
    ]
    .iter()
    .any(|prefix| function.starts_with(prefix))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &'static str, ns: u64, kernel: &[&str]) -> OffCpuStackReport {
        OffCpuStackReport {
            state,
            ns,
            count: 1,
            kernel: kernel.iter().map(|frame| frame.to_string()).collect(),
            user: Rc::from([]),
            user_stack_cut: None,
        }
    }

    #[test]
    fn stacks_that_read_the_same_are_one_row() {
        use crate::kernel::records::{KernelStack, UserStack};
        use crate::model::offcpu::{LeftWith, StackNames};
        use std::cell::OnceCell;
        let names = Rc::new(StackNames {
            kernel: Rc::from(["do_nanosleep+0x5e [kernel]".to_string()]),
            user: Rc::from(["main+0x40 [/bin/x]".to_string()]),
            user_cut: None,
        });
        // Two kernel stacks the tracing machinery's frames told apart.
        let left = |id| {
            let left = LeftWith {
                kernel_stack: KernelStack::Id(id),
                space: (1, 2),
                user_stack: UserStack::NotTaken,
                names: OnceCell::new(),
            };
            let _ = left.names.set(Rc::clone(&names));
            Leaving::Stacks(Rc::new(left))
        };
        let mut stacks = OffCpuStacks::default();
        stacks.sleeping.add(left(1), 30);
        stacks.sleeping.add(left(2), 20);
        stacks.sleeping.add(left(2), 5);
        stacks.blocked.add(left(1), 7);
        let rows = rows(&stacks);
        let shown: Vec<(&str, u64, u64)> = rows
            .iter()
            .map(|row| (row.state, row.ns, row.count))
            .collect();
        assert_eq!(shown, [("sleeping", 55, 3), ("blocked", 7, 1)]);
    }

    #[test]
    fn a_wait_is_where_the_scheduler_was_called_from() {
        let rows = [
            row(
                "blocked",
                30,
                &[
                    "__schedule+0x628 [kernel]",
                    "schedule+0x23 [kernel]",
                    "io_schedule+0x46 [kernel]",
                    "folio_wait_bit_common+0x13d [kernel]",
                ],
            ),
            row(
                "blocked",
                70,
                &[
                    "__schedule+0x628 [kernel]",
                    "schedule+0x23 [kernel]",
                    "jbd2_log_wait_commit+0xd5 [jbd2]",
                    "ext4_sync_file+0x1e5 [ext4]",
                ],
            ),
            row("sleeping", 500, &["anon_pipe_read+0x393 [kernel]"]),
            row(
                "preempted",
                9,
                &["[not recorded: the ring buffer was full]"],
            ),
        ];
        assert_eq!(waited_at(&rows, "blocked"), Some("jbd2_log_wait_commit"));
        // Summed over the rows: two places in one function outweigh one.
        let flushes = [
            row(
                "blocked",
                40,
                &[
                    "schedule_timeout+0xb6 [kernel]",
                    "io_schedule_timeout+0x51 [kernel]",
                    "wait_for_completion_io_timeout+0x7f [kernel]",
                    "submit_bio_wait+0x74 [kernel]",
                    "blkdev_issue_flush+0x7c [kernel]",
                ],
            ),
            row("blocked", 40, &["blkdev_issue_flush+0x90 [kernel]"]),
        ];
        let rows: Vec<OffCpuStackReport> = rows.into_iter().chain(flushes).collect();
        assert_eq!(waited_at(&rows, "blocked"), Some("blkdev_issue_flush"));
        assert_eq!(waited_at(&rows, "sleeping"), Some("anon_pipe_read"));
        assert_eq!(waited_at(&rows, "preempted"), None);
    }
}
