//! Where a thread waited (--off-cpu-stacks): each stretch asleep, blocked,
//! or ready after a preemption, charged in full to the stacks the thread
//! left its CPU with. Charged where the time budget is spent (the
//! timeline's one place), so that per state the stacks add up to the
//! budget's time to the nanosecond; a stretch whose switch out was not
//! seen (the thread was off its CPU when the window opened) or whose
//! stacks were lost has a row of its own.

use std::cell::OnceCell;
use std::rc::Rc;

use crate::kernel::records::{Departure, KernelStack, UserStack};
use crate::model::attribution::Tallies;
use crate::model::sched::ThreadState;

/// The stacks a thread left its CPU with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftWith {
    pub kernel_stack: KernelStack,
    /// The process and its address space, as the programs number them.
    pub space: (u32, u64),
    /// Unwound already (or not taken).
    pub user_stack: UserStack,
    /// Its frames by name, once the window has closed (while the kernel's
    /// stack map still holds its kernel stack).
    pub names: OnceCell<Rc<StackNames>>,
}

/// A kernel and a user stack by name, innermost frame first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackNames {
    pub kernel: Rc<[String]>,
    pub user: Rc<[String]>,
    /// Why the user stack ends before its outermost frame, if it does.
    pub user_cut: Option<&'static str>,
}

/// What a stretch off the CPU is charged to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaving {
    Stacks(Rc<LeftWith>),
    /// Off its CPU when the window opened: its switch out is not in it.
    BeforeWindow,
    /// The record of where it left was lost (the ring buffer was full).
    NotRecorded,
}

/// Off-CPU time by stacks, per state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffCpuStacks {
    pub sleeping: Tallies<Leaving>,
    pub blocked: Tallies<Leaving>,
    /// Ready after a preemption, until it got a CPU back.
    pub preempted: Tallies<Leaving>,
}

/// A thread's off-CPU stacks as its timeline plays.
#[derive(Debug, Clone, Default)]
pub struct OffCpuTimeline {
    /// The stacks recorded for the switch out at this time, not applied
    /// yet (the record comes just before its switch).
    pending: Option<(u64, Rc<LeftWith>)>,
    /// The state the thread left its CPU in, and with what.
    leaving: Option<(ThreadState, Leaving)>,
    pub stacks: OffCpuStacks,
}

impl OffCpuTimeline {
    /// The stacks its time is or will be charged to: those of the
    /// stretches it has ended, and the one it is in.
    pub fn stacks_charged(&self) -> impl Iterator<Item = &Rc<LeftWith>> {
        let stacks = &self.stacks;
        let ended = [&stacks.sleeping, &stacks.blocked, &stacks.preempted]
            .into_iter()
            .flat_map(|tallies| tallies.entries())
            .filter_map(|(key, _)| key.as_ref());
        ended
            .chain(self.leaving.as_ref().map(|(_, leaving)| leaving))
            .filter_map(|leaving| match leaving {
                Leaving::Stacks(left) => Some(left),
                _ => None,
            })
    }

    /// The stacks of the switch out at `ts_ns`.
    pub fn recorded(&mut self, ts_ns: u64, left: LeftWith) {
        self.pending = Some((ts_ns, Rc::new(left)));
    }

    /// The thread has been off its CPU in `state` since before the
    /// window, having left it with `left`: what that stretch is charged to.
    pub fn off_at_open(&mut self, state: ThreadState, left: LeftWith) {
        self.leaving = Some((state, Leaving::Stacks(Rc::new(left))));
    }

    /// The thread left its CPU at `ts_ns`, in `departure`.
    pub fn switched_out(&mut self, ts_ns: u64, departure: Departure) {
        let state = match departure {
            Departure::Ready => ThreadState::Ready,
            Departure::Sleeping => ThreadState::Sleeping,
            Departure::Blocked => ThreadState::Blocked,
            Departure::Stopped | Departure::Dead => {
                self.leaving = None;
                return;
            }
        };
        let leaving = match self.pending.take() {
            Some((at, left)) if at == ts_ns => Leaving::Stacks(left),
            _ => Leaving::NotRecorded,
        };
        self.leaving = Some((state, leaving));
    }

    /// The stretch off the CPU ended (woken, or given a CPU back).
    pub fn back(&mut self) {
        self.leaving = None;
    }

    /// `ns` spent in `state` (ready: after an idle CPU or not, which does
    /// not matter here): charged to where the thread left its CPU.
    pub fn spend(&mut self, state: ThreadState, ns: u64) {
        let (left_in, leaving) = match &self.leaving {
            Some((left_in, leaving)) => (Some(*left_in), leaving.clone()),
            None => (None, Leaving::BeforeWindow),
        };
        let charged = || match left_in == Some(state) {
            true => leaving.clone(),
            false => Leaving::BeforeWindow,
        };
        match state {
            ThreadState::Sleeping => self.stacks.sleeping.add(charged(), ns),
            ThreadState::Blocked => self.stacks.blocked.add(charged(), ns),
            // Ready after a wakeup, a birth, or a sleep cut short is not
            // off the CPU by a preemption.
            ThreadState::Ready if left_in == Some(ThreadState::Ready) => {
                self.stacks.preempted.add(leaving, ns)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn left(kernel_stack: i32) -> LeftWith {
        LeftWith {
            kernel_stack: KernelStack::Id(kernel_stack),
            space: (1, 2),
            user_stack: UserStack::NotTaken,
            names: OnceCell::new(),
        }
    }

    #[test]
    fn a_stretch_is_charged_to_the_stacks_of_its_switch_out() {
        let mut timeline = OffCpuTimeline::default();
        // Asleep when the window opened.
        timeline.spend(ThreadState::Sleeping, 7);
        timeline.recorded(100, left(3));
        timeline.switched_out(100, Departure::Sleeping);
        timeline.spend(ThreadState::Sleeping, 50);
        timeline.back();
        // Ready after the wakeup: not a preemption.
        timeline.spend(ThreadState::Ready, 5);
        // Preempted, its stacks lost.
        timeline.switched_out(200, Departure::Ready);
        timeline.spend(ThreadState::Ready, 9);
        timeline.back();
        let stacks = &timeline.stacks;
        assert_eq!(
            stacks
                .sleeping
                .entries()
                .iter()
                .map(|(k, t)| (k.clone(), t.ns))
                .collect::<Vec<_>>(),
            [
                (Some(Leaving::BeforeWindow), 7),
                (Some(Leaving::Stacks(Rc::new(left(3)))), 50)
            ]
        );
        assert_eq!(
            stacks
                .preempted
                .entries()
                .iter()
                .map(|(k, t)| (k.clone(), t.ns))
                .collect::<Vec<_>>(),
            [(Some(Leaving::NotRecorded), 9)]
        );
        assert!(stacks.blocked.entries().is_empty());
    }
}
