//! Where a thread's time went: a state machine over its scheduler events.
//! It yields the stretches that began and ended inside the window (for the
//! statistics) and a budget that adds up, to the nanosecond, to the time the
//! thread was observed.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

use crate::kernel::records::{Departure, Waker};
use crate::model::attribution::{Attribution, Holder};
use crate::model::offcpu::{LeftWith, OffCpuStacks, OffCpuTimeline};
use crate::model::stats::{Distribution, Stats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThreadState {
    Running,
    /// Runnable, waiting for a CPU: the scheduling delay.
    Ready,
    /// Interruptible sleep (S).
    Sleeping,
    /// Uninterruptible sleep (D), usually I/O.
    Blocked,
    /// Stopped by a signal or a tracer (T, t).
    Stopped,
}

const STATES: usize = 5;

impl ThreadState {
    /// Every state, in the order of the time budget's parts.
    pub const ALL: [ThreadState; STATES] = [
        ThreadState::Running,
        ThreadState::Ready,
        ThreadState::Sleeping,
        ThreadState::Blocked,
        ThreadState::Stopped,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The word for time spent in this state (`running`, ... as in the
    /// JSON budget's `running_ns`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ThreadState::Running => "running",
            ThreadState::Ready => "ready",
            ThreadState::Sleeping => "sleeping",
            ThreadState::Blocked => "blocked",
            ThreadState::Stopped => "stopped",
        }
    }

    fn is_off_cpu_wait(self) -> bool {
        matches!(
            self,
            ThreadState::Sleeping | ThreadState::Blocked | ThreadState::Stopped
        )
    }

    /// The state letter of /proc/PID/stat.
    pub fn from_proc_letter(letter: char) -> Option<Self> {
        match letter {
            'R' => Some(ThreadState::Running),
            'S' | 'I' => Some(ThreadState::Sleeping),
            'D' => Some(ThreadState::Blocked),
            'T' | 't' => Some(ThreadState::Stopped),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedEvent {
    /// Got a CPU from task `prev`; `after_idle`: the CPU was idle before.
    SwitchIn { after_idle: bool, prev: u32 },
    /// Left its CPU to task `next`; `in_call`: inside a system call.
    SwitchOut {
        departure: Departure,
        in_call: bool,
        next: u32,
    },
    /// Woken, by what it names, if asked (--wakers).
    Wakeup(Option<Waker>),
    /// Newly created and runnable.
    WakeupNew,
}

/// Time by state, the time ready split by what the CPU the thread was
/// waiting for did meanwhile: ran other tasks, or was idle and woke up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateTimes {
    pub running_ns: u64,
    pub ready_busy_cpu_ns: u64,
    pub ready_idle_cpu_ns: u64,
    pub sleeping_ns: u64,
    pub blocked_ns: u64,
    pub stopped_ns: u64,
}

impl StateTimes {
    /// `ns` in `state`; a stretch ready ended `after_idle` or not.
    fn add(&mut self, state: ThreadState, after_idle: bool, ns: u64) {
        let part = match state {
            ThreadState::Running => &mut self.running_ns,
            ThreadState::Ready if after_idle => &mut self.ready_idle_cpu_ns,
            ThreadState::Ready => &mut self.ready_busy_cpu_ns,
            ThreadState::Sleeping => &mut self.sleeping_ns,
            ThreadState::Blocked => &mut self.blocked_ns,
            ThreadState::Stopped => &mut self.stopped_ns,
        };
        *part = part.saturating_add(ns);
    }

    pub fn ready_ns(&self) -> u64 {
        self.ready_busy_cpu_ns + self.ready_idle_cpu_ns
    }

    pub fn total_ns(&self) -> u64 {
        self.running_ns + self.ready_ns() + self.sleeping_ns + self.blocked_ns + self.stopped_ns
    }

    /// Adds `other`, part by part.
    pub fn accumulate(&mut self, other: &StateTimes) {
        for (state, after_idle, ns) in other.parts() {
            self.add(state, after_idle, ns);
        }
    }

    /// Writes its fields into a JSON object, the time on the CPU named
    /// `running`, ready also as the sum of its two parts.
    pub fn serialize_fields<S: SerializeStruct>(
        &self,
        running: &'static str,
        out: &mut S,
    ) -> Result<(), S::Error> {
        out.serialize_field(running, &self.running_ns)?;
        out.serialize_field("ready_ns", &self.ready_ns())?;
        // Waiting while the CPU ran other tasks (CPU contention), and while
        // it came out of idle (wake-up latency).
        out.serialize_field("ready_busy_cpu_ns", &self.ready_busy_cpu_ns)?;
        out.serialize_field("ready_idle_cpu_ns", &self.ready_idle_cpu_ns)?;
        out.serialize_field("sleeping_ns", &self.sleeping_ns)?;
        out.serialize_field("blocked_ns", &self.blocked_ns)?;
        out.serialize_field("stopped_ns", &self.stopped_ns)
    }

    fn parts(&self) -> [(ThreadState, bool, u64); 6] {
        [
            (ThreadState::Running, false, self.running_ns),
            (ThreadState::Ready, false, self.ready_busy_cpu_ns),
            (ThreadState::Ready, true, self.ready_idle_cpu_ns),
            (ThreadState::Sleeping, false, self.sleeping_ns),
            (ThreadState::Blocked, false, self.blocked_ns),
            (ThreadState::Stopped, false, self.stopped_ns),
        ]
    }
}

/// The statistics sections: completed stretches in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SchedStats {
    pub run: Stats,
    pub ready: Stats,
    /// The stretches ready that ended with the CPU leaving another task.
    pub ready_busy_cpu: Stats,
    /// ... and those that ended with the CPU leaving idle.
    pub ready_idle_cpu: Stats,
    pub sleep: Stats,
    pub block: Stats,
    pub stopped: Stats,
}

/// All of the observed time, split by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeBudget {
    pub observed_ns: u64,
    pub times: StateTimes,
}

impl TimeBudget {
    /// The parts in the order of [`ThreadState::ALL`].
    pub fn parts(&self) -> [u64; STATES] {
        let t = &self.times;
        [
            t.running_ns,
            t.ready_ns(),
            t.sleeping_ns,
            t.blocked_ns,
            t.stopped_ns,
        ]
    }
}

/// Its JSON: `observed_ns`, then the times, named after
/// [`ThreadState::name`] (`running_ns`...).
impl Serialize for TimeBudget {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("TimeBudget", 8)?;
        out.serialize_field("observed_ns", &self.observed_ns)?;
        self.times.serialize_fields("running_ns", &mut out)?;
        out.end()
    }
}

/// A system call the thread left its CPU in: its time off the CPU so far.
#[derive(Debug, Clone)]
struct CallOffCpu {
    /// When the thread first left the CPU in it.
    since_ns: u64,
    times: StateTimes,
}

/// One thread's scheduler history within the window [start, end].
#[derive(Debug, Clone)]
pub struct Timeline {
    window_start: u64,
    /// None until an event tells.
    state: Option<ThreadState>,
    /// Start of the current stretch.
    since_ns: u64,
    /// Whether the current stretch began with an event in the window, so
    /// that its length, once it ends, is a complete stretch.
    since_event: bool,
    /// Set when the thread was created inside the window.
    born_ns: Option<u64>,
    /// Set when the thread's last switch was seen.
    died_ns: Option<u64>,
    budget: StateTimes,
    /// Complete stretches by state; those ready that ended with the CPU
    /// leaving another task (busy), the idle ones apart.
    stretches: [Distribution; STATES],
    ready_after_idle: Distribution,
    /// Boxed: a thread is in few calls that leave the CPU at a time, and
    /// thousands of threads hold a timeline.
    call: Option<Box<CallOffCpu>>,
    /// Boxed, and made at the first wait or wakeup it tells about.
    attribution: Option<Box<Attribution>>,
    /// With --off-cpu-stacks.
    offcpu: Option<Box<OffCpuTimeline>>,
    /// With --perfetto: the stretches closed, not yet taken.
    closed: Option<Vec<Stretch>>,
}

/// A stretch of a thread's time in one state, [start_ns, end_ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    pub state: ThreadState,
    /// Ready: waiting for an idle CPU to wake, not behind other tasks.
    pub after_idle: bool,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Ready behind other tasks: the task charged with it.
    pub holder: Option<Holder>,
}

impl Timeline {
    pub fn new(window_start: u64) -> Self {
        Timeline {
            window_start,
            state: None,
            since_ns: window_start,
            since_event: false,
            born_ns: None,
            died_ns: None,
            budget: StateTimes::default(),
            stretches: Default::default(),
            ready_after_idle: Distribution::default(),
            call: None,
            attribution: None,
            offcpu: None,
            closed: None,
        }
    }

    /// Keeps each stretch as it closes, to be taken (--perfetto).
    pub fn keep_stretches(&mut self) {
        self.closed.get_or_insert_with(Vec::new);
    }

    /// The stretches closed since the last take.
    pub fn take_stretches(&mut self) -> Vec<Stretch> {
        self.closed.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Charges its time off the CPU to where it left it (--off-cpu-stacks).
    pub fn track_offcpu_stacks(&mut self) {
        self.offcpu.get_or_insert_with(Box::default);
    }

    /// Where it left its CPU so far (--off-cpu-stacks).
    pub fn offcpu(&self) -> Option<&OffCpuTimeline> {
        self.offcpu.as_deref()
    }

    /// The stacks of its switch out at `ts_ns`, which comes next.
    pub fn left_with(&mut self, ts_ns: u64, left: LeftWith) {
        if let Some(offcpu) = self.offcpu.as_mut() {
            offcpu.recorded(ts_ns, left);
        }
    }

    /// It has been off its CPU since before the window, leaving it in
    /// `departure` with `left`, as a task iterator read at `ts_ns`: unless
    /// an event since the window opened says otherwise, that is the state
    /// the window opened in, and where the stretch is charged.
    pub fn off_at_open(&mut self, ts_ns: u64, departure: Departure, left: LeftWith) {
        if self.since_event || self.died_ns.is_some() || ts_ns < self.window_start {
            return;
        }
        let Some(state) = departure_state(departure) else {
            return;
        };
        let state = *self.state.get_or_insert(state);
        if let Some(offcpu) = self.offcpu.as_mut() {
            offcpu.off_at_open(state, left);
        }
    }

    pub fn apply(&mut self, ts_ns: u64, event: SchedEvent) {
        if self.died_ns.is_some() {
            return;
        }
        if ts_ns < self.window_start {
            self.learn_state_before_window(event);
            return;
        }
        // Per-thread events are serialised by the scheduler; guard anyway.
        let ts = ts_ns.max(self.since_ns);
        match event {
            SchedEvent::WakeupNew if self.state.is_none() && !self.since_event => {
                self.born_ns = Some(ts);
                self.begin(ts, ThreadState::Ready);
            }
            SchedEvent::WakeupNew => {
                self.runnable(ts);
            }
            SchedEvent::Wakeup(waker) => {
                let ended_ns = self.runnable(ts);
                let attribution = self.attribution();
                attribution.wakeups += 1;
                if let Some(waker) = waker {
                    attribution.woken_by.add(waker, ended_ns);
                }
            }
            SchedEvent::SwitchIn { after_idle, prev } => {
                // Switched in without a wakeup seen: it was runnable all
                // along (e.g. a sleep cut short by a pending signal).
                let was = match self.state {
                    Some(ThreadState::Running) => ThreadState::Running,
                    _ => ThreadState::Ready,
                };
                self.close(ts, was, after_idle, Holder::Task(prev));
                if let Some(offcpu) = self.offcpu.as_mut() {
                    offcpu.back();
                }
                self.begin(ts, ThreadState::Running);
            }
            SchedEvent::SwitchOut {
                departure,
                in_call,
                next,
            } => {
                // Ready before it: its switch in was not recorded.
                let state = self.state.unwrap_or(ThreadState::Running);
                self.close(ts, state, false, Holder::Unseen);
                if departure == Departure::Ready {
                    self.attribution().preempted_by.add(next, 0);
                }
                // A call whose return was not seen (its record lost) ends
                // here at the latest.
                if !in_call {
                    self.call = None;
                } else if self.call.is_none() {
                    self.call = Some(Box::new(CallOffCpu {
                        since_ns: ts,
                        times: StateTimes::default(),
                    }));
                }
                if let Some(offcpu) = self.offcpu.as_mut() {
                    offcpu.switched_out(ts_ns, departure);
                }
                match departure_state(departure) {
                    Some(next) => self.begin(ts, next),
                    None => self.died_ns = Some(ts),
                }
            }
        }
    }

    /// Runnable from `ts` (woken, or a new thread): it ends a wait, unless
    /// the thread was runnable already. The time asleep or blocked it
    /// ended.
    fn runnable(&mut self, ts: u64) -> u64 {
        let waited = match self.state {
            Some(ThreadState::Running | ThreadState::Ready) => return 0,
            // A first event that is a wakeup means it was asleep.
            waiting => waiting.unwrap_or(ThreadState::Sleeping),
        };
        let ended_ns = match waited {
            ThreadState::Sleeping | ThreadState::Blocked => ts - self.since_ns,
            _ => 0,
        };
        self.close(ts, waited, false, Holder::Unseen);
        if let Some(offcpu) = self.offcpu.as_mut() {
            offcpu.back();
        }
        self.begin(ts, ThreadState::Ready);
        ended_ns
    }

    fn attribution(&mut self) -> &mut Attribution {
        self.attribution.get_or_insert_with(Box::default)
    }

    /// `ns` spent in `state` (ready: after the CPU idled, or behind
    /// `holder`): the budget, and the holder's share of it, in one place
    /// so that the shares add up to the budget's time ready behind others.
    fn spend(&mut self, state: ThreadState, after_idle: bool, ns: u64, holder: Holder) {
        self.budget.add(state, after_idle, ns);
        if let Some(offcpu) = self.offcpu.as_mut() {
            offcpu.spend(state, ns);
        }
        if state == ThreadState::Ready && !after_idle {
            self.attribution().ready_behind.add(holder, ns);
        }
    }

    /// The call entered at `enter_ns` returned at `exit_ns`: its time by
    /// state, adding up to its duration. The thread runs when a call
    /// returns, so all but its time off the CPU was on it.
    pub fn call_returned(&mut self, enter_ns: u64, exit_ns: u64) -> StateTimes {
        let duration = exit_ns.saturating_sub(enter_ns);
        let mut times = match self.call.take() {
            Some(call) if call.since_ns >= enter_ns && call.times.total_ns() <= duration => {
                call.times
            }
            _ => StateTimes::default(), // never left the CPU in it
        };
        times.running_ns = duration - times.total_ns();
        times
    }

    /// Events from while the probes were attaching only tell the state the
    /// window starts in.
    fn learn_state_before_window(&mut self, event: SchedEvent) {
        self.state = match event {
            SchedEvent::SwitchIn { .. } => Some(ThreadState::Running),
            SchedEvent::SwitchOut { departure, .. } => match departure_state(departure) {
                Some(state) => Some(state),
                None => {
                    self.died_ns = Some(self.window_start);
                    None
                }
            },
            SchedEvent::Wakeup(_) | SchedEvent::WakeupNew => match self.state {
                Some(s) if !s.is_off_cpu_wait() => Some(s),
                _ => Some(ThreadState::Ready),
            },
        };
    }

    /// Ends the current stretch, in `state`, at `ts`; a stretch ready ends
    /// `after_idle` or not, behind `holder`.
    fn close(&mut self, ts: u64, state: ThreadState, after_idle: bool, holder: Holder) {
        let elapsed = ts - self.since_ns;
        self.spend(state, after_idle, elapsed, holder);
        if let Some(closed) = self.closed.as_mut() {
            closed.push(Stretch {
                state,
                after_idle,
                start_ns: self.since_ns,
                end_ns: ts,
                holder: (state == ThreadState::Ready && !after_idle).then_some(holder),
            });
        }
        if self.since_event {
            match state {
                ThreadState::Ready if after_idle => self.ready_after_idle.record(elapsed),
                _ => self.stretches[state.index()].record(elapsed),
            }
        }
        if let Some(call) = self.call.as_mut().filter(|_| state != ThreadState::Running) {
            call.times.add(state, after_idle, elapsed);
        }
    }

    fn begin(&mut self, ts: u64, state: ThreadState) {
        self.state = Some(state);
        self.since_ns = ts;
        self.since_event = true;
    }

    /// The stretch the thread is in as the window closes at `end_ns`
    /// (`exit_ns`, `state_at_start`: as for finish); None if its last
    /// switch was seen.
    pub fn last_stretch(
        &self,
        end_ns: u64,
        exit_ns: Option<u64>,
        state_at_start: Option<ThreadState>,
    ) -> Option<Stretch> {
        if self.died_ns.is_some() {
            return None;
        }
        let end = exit_ns
            .unwrap_or(end_ns)
            .clamp(self.since_ns, end_ns.max(self.since_ns));
        let state = self
            .state
            .or(state_at_start)
            .unwrap_or(ThreadState::Running);
        Some(Stretch {
            state,
            after_idle: false,
            start_ns: self.since_ns,
            end_ns: end,
            holder: (state == ThreadState::Ready).then_some(Holder::StillReady),
        })
    }

    /// Closes the window at `end_ns`. `exit_ns`: when the thread exited, if
    /// its last switch was not seen. `state_at_start`: what /proc said, for
    /// a thread that had no event at all. A stretch ready still open counts
    /// as waiting behind other tasks.
    pub fn finish(
        mut self,
        end_ns: u64,
        exit_ns: Option<u64>,
        state_at_start: Option<ThreadState>,
    ) -> (SchedStats, TimeBudget, Attribution, Option<OffCpuStacks>) {
        let end = match self.last_stretch(end_ns, exit_ns, state_at_start) {
            Some(last) => {
                let ns = last.end_ns - last.start_ns;
                self.spend(last.state, false, ns, Holder::StillReady);
                last.end_ns
            }
            None => self.died_ns.unwrap_or(end_ns),
        };
        let begin = self.born_ns.unwrap_or(self.window_start);
        let time = TimeBudget {
            observed_ns: end.saturating_sub(begin),
            times: self.budget,
        };
        let [run, ready_busy_cpu, sleep, block, stopped] =
            self.stretches.each_ref().map(Distribution::summary);
        let ready_idle_cpu = self.ready_after_idle.summary();
        let ready = self.stretches[ThreadState::Ready.index()]
            .merged(&self.ready_after_idle)
            .summary();
        (
            SchedStats {
                run,
                ready,
                ready_busy_cpu,
                ready_idle_cpu,
                sleep,
                block,
                stopped,
            },
            time,
            self.attribution.map(|a| *a).unwrap_or_default(),
            self.offcpu.map(|offcpu| offcpu.stacks),
        )
    }
}

fn departure_state(departure: Departure) -> Option<ThreadState> {
    match departure {
        Departure::Ready => Some(ThreadState::Ready),
        Departure::Sleeping => Some(ThreadState::Sleeping),
        Departure::Blocked => Some(ThreadState::Blocked),
        Departure::Stopped => Some(ThreadState::Stopped),
        Departure::Dead => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::records::IrqSource;
    use Departure::*;
    use SchedEvent::*;

    /// The task the CPU goes to or comes from.
    const OTHER: u32 = 99;

    /// Switched in from another task.
    const IN: SchedEvent = SwitchIn {
        after_idle: false,
        prev: OTHER,
    };

    const WAKEUP: SchedEvent = Wakeup(Some(Waker::Interrupt(IrqSource::Softirq(1))));

    /// Switched out outside any system call.
    fn out(departure: Departure) -> SchedEvent {
        SwitchOut {
            departure,
            in_call: false,
            next: OTHER,
        }
    }

    const START: u64 = 1_000;
    const END: u64 = 101_000;

    fn run(events: &[(u64, SchedEvent)]) -> (SchedStats, TimeBudget) {
        run_with(events, None, None)
    }

    fn run_with(
        events: &[(u64, SchedEvent)],
        exit: Option<u64>,
        at_start: Option<ThreadState>,
    ) -> (SchedStats, TimeBudget) {
        let mut timeline = Timeline::new(START);
        for (ts, event) in events {
            timeline.apply(*ts, event.clone());
        }
        let (stats, time, attribution, _) = timeline.finish(END, exit, at_start);
        assert_eq!(
            time.parts().iter().sum::<u64>(),
            time.observed_ns,
            "budget must add up: {time:?}"
        );
        assert_eq!(
            attribution.ready_behind.total().ns,
            time.times.ready_busy_cpu_ns,
            "the holders' shares must add up: {attribution:?}"
        );
        (stats, time)
    }

    #[test]
    fn waits_are_charged_to_the_task_before_and_wakeups_to_their_waker() {
        use crate::model::attribution::Tally;
        let timer = Waker::Interrupt(IrqSource::Softirq(1));
        let into = |prev| SwitchIn {
            after_idle: false,
            prev,
        };
        let mut timeline = Timeline::new(START);
        timeline.apply(2_000, into(5)); // ready since the start
        timeline.apply(
            3_000,
            SwitchOut {
                departure: Sleeping,
                in_call: false,
                next: 6,
            },
        );
        timeline.apply(10_000, Wakeup(Some(timer.clone())));
        timeline.apply(12_000, into(6));
        timeline.apply(
            13_000,
            SwitchOut {
                departure: Ready,
                in_call: false,
                next: 7,
            },
        );
        timeline.apply(14_000, into(7));
        let (_, time, attribution, _) = timeline.finish(END, None, None);
        let tally = |count, ns| Tally { count, ns };
        assert_eq!(
            attribution.ready_behind.entries(),
            [
                (Some(Holder::Task(5)), tally(1, 1_000)),
                (Some(Holder::Task(6)), tally(1, 2_000)),
                (Some(Holder::Task(7)), tally(1, 1_000)),
            ]
        );
        assert_eq!(time.times.ready_busy_cpu_ns, 4_000);
        assert_eq!(attribution.preempted_by.entries(), [(Some(7), tally(1, 0))]);
        assert_eq!(
            attribution.woken_by.entries(),
            [(Some(timer), tally(1, 7_000))]
        );
        assert_eq!(attribution.wakeups, 1);
    }

    #[test]
    fn no_event_is_attributed_by_the_state_at_start() {
        let (stats, time) = run_with(&[], None, Some(ThreadState::Sleeping));
        assert_eq!(time.observed_ns, 100_000);
        assert_eq!(time.times.sleeping_ns, 100_000);
        assert_eq!(stats, SchedStats::default());
        let (_, time) = run_with(&[], None, Some(ThreadState::Blocked));
        assert_eq!(time.times.blocked_ns, 100_000);
    }

    #[test]
    fn first_event_tells_what_came_before() {
        // Switched out first: it was running.
        let (stats, time) = run(&[(3_000, out(Sleeping))]);
        assert_eq!(
            (time.times.running_ns, time.times.sleeping_ns),
            (2_000, 98_000)
        );
        assert_eq!(stats.run.count, 0, "partial stretches are not statistics");
        // Switched in first, no wakeup: it was ready.
        let (_, time) = run(&[(4_000, IN)]);
        assert_eq!(
            (time.times.ready_ns(), time.times.running_ns),
            (3_000, 97_000)
        );
        // Woken first: it was asleep.
        let (_, time) = run(&[(5_000, WAKEUP), (6_000, IN)]);
        assert_eq!(
            (
                time.times.sleeping_ns,
                time.times.ready_ns(),
                time.times.running_ns
            ),
            (4_000, 1_000, 95_000)
        );
    }

    #[test]
    fn complete_stretches_become_statistics() {
        let (stats, time) = run(&[
            (2_000, IN),
            (12_000, out(Ready)),
            (15_000, IN),
            (25_000, out(Sleeping)),
            (45_000, WAKEUP),
            (46_000, IN),
            (50_000, out(Blocked)),
            (70_000, WAKEUP),
            (71_000, IN),
        ]);
        assert_eq!((stats.run.count, stats.run.total_ns), (3, 24_000));
        assert_eq!((stats.ready.count, stats.ready.total_ns), (3, 5_000));
        assert_eq!((stats.sleep.count, stats.sleep.total_ns), (1, 20_000));
        assert_eq!((stats.block.count, stats.block.total_ns), (1, 20_000));
        assert_eq!(
            time,
            TimeBudget {
                observed_ns: 100_000,
                times: StateTimes {
                    running_ns: 24_000 + 30_000,
                    ready_busy_cpu_ns: 1_000 + 5_000,
                    ready_idle_cpu_ns: 0,
                    sleeping_ns: 20_000,
                    blocked_ns: 20_000,
                    stopped_ns: 0,
                },
            }
        );
    }

    #[test]
    fn kept_stretches_name_the_task_each_wait_for_a_busy_cpu_was_behind() {
        let mut timeline = Timeline::new(0);
        timeline.keep_stretches();
        for (ts, event) in [
            (10, IN),
            (20, out(Sleeping)),
            (30, WAKEUP),
            (
                40,
                SwitchIn {
                    after_idle: true,
                    prev: 0,
                },
            ),
            (50, out(Ready)),
        ] {
            timeline.apply(ts, event);
        }
        let stretch = |state, after_idle, start_ns, end_ns, holder| Stretch {
            state,
            after_idle,
            start_ns,
            end_ns,
            holder,
        };
        let (ready, running) = (ThreadState::Ready, ThreadState::Running);
        assert_eq!(
            timeline.take_stretches(),
            [
                stretch(ready, false, 0, 10, Some(Holder::Task(OTHER))),
                stretch(running, false, 10, 20, None),
                stretch(ThreadState::Sleeping, false, 20, 30, None),
                stretch(ready, true, 30, 40, None),
                stretch(running, false, 40, 50, None),
            ]
        );
        assert!(timeline.take_stretches().is_empty(), "taken once");
        assert_eq!(
            timeline.last_stretch(60, None, None),
            Some(stretch(ready, false, 50, 60, Some(Holder::StillReady)))
        );
    }

    #[test]
    fn stopped_then_continued() {
        let (stats, time) = run(&[
            (2_000, IN),
            (3_000, out(Stopped)),
            (53_000, WAKEUP),
            (54_000, IN),
        ]);
        assert_eq!((stats.stopped.count, stats.stopped.total_ns), (1, 50_000));
        assert_eq!(time.times.stopped_ns, 50_000);
    }

    #[test]
    fn switched_in_after_a_sleep_without_wakeup_was_ready() {
        let (stats, time) = run(&[(2_000, IN), (3_000, out(Sleeping)), (4_000, IN)]);
        assert_eq!((stats.ready.count, stats.ready.total_ns), (1, 1_000));
        assert_eq!(time.times.sleeping_ns, 0);
    }

    #[test]
    fn wakeups_of_runnable_threads_change_nothing() {
        let (stats, time) = run(&[
            (2_000, IN),
            (3_000, WAKEUP),
            (4_000, out(Ready)),
            (5_000, WAKEUP),
            (6_000, IN),
        ]);
        assert_eq!((stats.run.count, stats.run.total_ns), (1, 2_000));
        assert_eq!((stats.ready.count, stats.ready.total_ns), (1, 2_000));
        assert_eq!(time.times.running_ns, 2_000 + 95_000);
    }

    #[test]
    fn born_and_dead_inside_the_window() {
        let (stats, time) = run(&[
            (10_000, WakeupNew),
            (12_000, IN),
            (20_000, out(Dead)),
            (30_000, IN),
        ]);
        assert_eq!(time.observed_ns, 10_000);
        assert_eq!(
            (time.times.ready_ns(), time.times.running_ns),
            (2_000, 8_000)
        );
        assert_eq!((stats.ready.count, stats.run.count), (1, 1));
    }

    #[test]
    fn exit_without_its_last_switch_ends_at_the_exit() {
        let (_, time) = run_with(&[(2_000, IN)], Some(50_000), None);
        assert_eq!(time.observed_ns, 49_000);
        assert_eq!(
            (time.times.ready_ns(), time.times.running_ns),
            (1_000, 48_000)
        );
    }

    #[test]
    fn events_before_the_window_set_the_starting_state() {
        let (stats, time) = run(&[
            (500, IN),
            (900, out(Blocked)),
            (11_000, WAKEUP),
            (11_500, IN),
        ]);
        assert_eq!(
            (
                time.times.blocked_ns,
                time.times.ready_ns(),
                time.times.running_ns
            ),
            (10_000, 500, 89_500)
        );
        assert_eq!(stats.block.count, 0, "began before the window");
        assert_eq!(stats.ready.count, 1);
    }

    #[test]
    fn out_of_order_timestamps_cannot_break_the_budget() {
        let (_, time) = run(&[(5_000, IN), (4_000, out(Ready)), (6_000, IN)]);
        assert_eq!(time.observed_ns, 100_000);
    }

    #[test]
    fn budget_parts_are_named_after_the_states() {
        let budget = serde_json::to_value(TimeBudget::default()).unwrap();
        for state in ThreadState::ALL {
            let key = format!("{}_ns", state.name());
            assert!(budget.get(&key).is_some(), "no {key} in {budget}");
        }
        assert_eq!(
            budget.as_object().unwrap().len(),
            STATES + 3,
            "and observed_ns, and the two parts of ready"
        );
    }

    #[test]
    fn ready_time_is_split_by_what_the_cpu_did() {
        let after_idle = SwitchIn {
            after_idle: true,
            prev: 0,
        };
        let (stats, time) = run(&[
            (2_000, IN),
            (3_000, out(Sleeping)),
            (10_000, WAKEUP),
            (10_400, after_idle), // woke an idle CPU: 400
            (20_000, out(Ready)),
            (23_000, IN), // behind another task: 3,000
            (30_000, out(Sleeping)),
            (40_000, WAKEUP),
            (41_000, IN), // 1,000
            (50_000, out(Sleeping)),
            (60_000, WAKEUP), // ready until the end: counted as busy
        ]);
        assert_eq!(
            (time.times.ready_busy_cpu_ns, time.times.ready_idle_cpu_ns),
            (1_000 + 3_000 + 1_000 + 41_000, 400)
        );
        assert_eq!(
            time.times.ready_ns(),
            time.times.ready_busy_cpu_ns + time.times.ready_idle_cpu_ns
        );
        assert_eq!(
            (stats.ready_busy_cpu.count, stats.ready_busy_cpu.total_ns),
            (2, 4_000)
        );
        assert_eq!(
            (stats.ready_idle_cpu.count, stats.ready_idle_cpu.total_ns),
            (1, 400)
        );
        assert_eq!(stats.ready.count, 3);
    }

    /// A call from `enter` to `exit` in which the thread left its CPU at
    /// `left` and came back at `back` (woken at `woken`).
    fn call_split(enter: u64, left: u64, woken: u64, back: u64, exit: u64) -> StateTimes {
        let mut timeline = Timeline::new(START);
        timeline.apply(1_500, IN);
        timeline.apply(
            left,
            SwitchOut {
                departure: Blocked,
                in_call: true,
                next: OTHER,
            },
        );
        timeline.apply(woken, WAKEUP);
        timeline.apply(
            back,
            SwitchIn {
                after_idle: true,
                prev: 0,
            },
        );
        timeline.call_returned(enter, exit)
    }

    #[test]
    fn a_calls_time_is_split_by_state_to_the_nanosecond() {
        let times = call_split(2_000, 2_500, 9_500, 9_700, 10_000);
        assert_eq!(
            times,
            StateTimes {
                running_ns: 500 + 300,
                ready_busy_cpu_ns: 0,
                ready_idle_cpu_ns: 200,
                sleeping_ns: 0,
                blocked_ns: 7_000,
                stopped_ns: 0,
            }
        );
        assert_eq!(times.total_ns(), 8_000);
    }

    fn stacks_by_state(timeline: Timeline, end_ns: u64) -> Vec<(&'static str, bool, u64)> {
        let (_, _, _, stacks) = timeline.finish(end_ns, None, None);
        let stacks = stacks.expect("off-CPU stacks");
        [("sleeping", stacks.sleeping), ("blocked", stacks.blocked)]
            .into_iter()
            .flat_map(|(state, tallies)| {
                tallies
                    .entries()
                    .iter()
                    .map(|(key, tally)| {
                        let known = matches!(key, Some(crate::model::offcpu::Leaving::Stacks(_)));
                        (state, known, tally.ns)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn left_at_open() -> LeftWith {
        LeftWith {
            kernel_stack: crate::kernel::records::KernelStack::Frames(std::rc::Rc::from([1, 2])),
            space: (1, 2),
            user_stack: crate::kernel::records::UserStack::NotTaken,
            names: std::cell::OnceCell::new(),
        }
    }

    #[test]
    fn a_stretch_begun_before_the_window_is_charged_to_its_stacks_as_it_opened() {
        // Blocked all along: the report tells the state the window opened
        // in, and where.
        let mut timeline = Timeline::new(START);
        timeline.track_offcpu_stacks();
        timeline.off_at_open(START + 10, Blocked, left_at_open());
        assert_eq!(stacks_by_state(timeline, 5_000), [("blocked", true, 4_000)]);

        // Woken after the report: the stretch up to the wakeup is its.
        let mut timeline = Timeline::new(START);
        timeline.track_offcpu_stacks();
        timeline.off_at_open(START + 10, Sleeping, left_at_open());
        timeline.apply(3_000, WAKEUP);
        timeline.apply(3_100, IN);
        assert_eq!(
            stacks_by_state(timeline, 5_000),
            [("sleeping", true, 2_000)]
        );

        // Woken before the report was read: the report is of a later
        // stretch (or stale), and the first stretch's stacks are unknown.
        let mut timeline = Timeline::new(START);
        timeline.track_offcpu_stacks();
        timeline.apply(1_500, WAKEUP);
        timeline.apply(1_600, IN);
        timeline.apply(1_700, out(Sleeping));
        timeline.off_at_open(1_800, Sleeping, left_at_open());
        assert_eq!(
            stacks_by_state(timeline, 5_000),
            [("sleeping", false, 500), ("sleeping", false, 3_300)]
        );
    }

    #[test]
    fn a_call_that_never_left_the_cpu_was_on_it() {
        let mut timeline = Timeline::new(START);
        timeline.apply(1_500, IN);
        timeline.apply(2_500, out(Ready)); // outside any call
        timeline.apply(2_600, IN);
        let times = timeline.call_returned(3_000, 3_900);
        assert_eq!((times.running_ns, times.total_ns()), (900, 900));
    }

    #[test]
    fn time_off_cpu_of_an_earlier_call_is_not_this_ones() {
        // The earlier call's return was lost: its time off the CPU began
        // before this call's entry.
        let mut timeline = Timeline::new(START);
        timeline.apply(1_500, IN);
        timeline.apply(
            2_000,
            SwitchOut {
                departure: Sleeping,
                in_call: true,
                next: OTHER,
            },
        );
        timeline.apply(3_000, WAKEUP);
        timeline.apply(3_100, IN);
        let times = timeline.call_returned(4_000, 4_500);
        assert_eq!((times.running_ns, times.sleeping_ns), (500, 0));
    }

    #[test]
    fn proc_letters() {
        assert_eq!(
            ThreadState::from_proc_letter('S'),
            Some(ThreadState::Sleeping)
        );
        assert_eq!(
            ThreadState::from_proc_letter('D'),
            Some(ThreadState::Blocked)
        );
        assert_eq!(
            ThreadState::from_proc_letter('t'),
            Some(ThreadState::Stopped)
        );
        assert_eq!(
            ThreadState::from_proc_letter('R'),
            Some(ThreadState::Running)
        );
        assert_eq!(ThreadState::from_proc_letter('Z'), None);
    }
}
