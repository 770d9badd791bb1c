//! Turns the stream of trace records into what each thread did inside the
//! sampling window: its system calls (per call, and the event-loop
//! iterations between poll-family calls), its scheduler timeline, and the
//! interrupts charged to it; and the processes traced. A thread id that
//! exits and comes back is a new thread with its own activity: the
//! kernel's thread-creation record starts it.

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::kernel::irq::HardIrq;
use crate::kernel::records::{
    Departure, InFlight, IrqSource, KeptExit, OffCpuStack, Record, SlowCall, SpilledCalls,
    ThreadExit, Waker,
};
use crate::kernel::syscall_names::is_poll_family_nr;
use crate::model::attribution::Tasks;
use crate::model::offcpu::{LeftWith, OffCpuTimeline};
use crate::model::sched::{SchedEvent, StateTimes, Timeline};
use crate::model::seen::Seen;
use crate::model::stats::Distribution;
use std::cell::OnceCell;
use std::rc::Rc;

/// What one thread did in the window.
#[derive(Debug)]
pub struct ThreadActivity {
    pub tid: u32,
    /// Its process, once a record or /proc has told.
    pub pid: Option<u32>,
    /// Set when the thread was created while traced.
    pub born: Option<Birth>,
    pub syscalls: SyscallTable,
    /// From the return of one poll-family call to the entry of the next:
    /// the iterations of the thread's event loop (LONG POLL).
    pub poll_intervals: Distribution,
    /// When its last poll-family call inside the window returned.
    last_poll_exit: Option<u64>,
    pub in_flight: Vec<InFlight>,
    /// A call the thread was still in at the end that began before the
    /// window (no entry for it was seen).
    pub in_call_since_before: Option<i64>,
    /// None when the scheduler said nothing about the thread.
    pub timeline: Option<Timeline>,
    /// By softirq vector.
    pub softirqs: FxHashMap<u32, Distribution>,
    pub hardirqs: FxHashMap<HardIrq, Distribution>,
    pub exit: Option<ThreadExit>,
    /// The thread that had this id before, if it was seen.
    previous: Option<usize>,
    /// Whether this is the newest thread with its id (set when the
    /// aggregator hands its threads over).
    pub newest: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Birth {
    pub ts_ns: u64,
    /// The task's start time: tells this thread's entries in the kernel's
    /// spill maps from those of another thread with the same id.
    pub start_ns: u64,
}

/// A process traced in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessActivity {
    pub pid: u32,
    pub ppid: Option<u32>,
    /// Set when a traced process forked it during tracing.
    pub forked_ns: Option<u64>,
    /// When its last thread exited.
    pub exit_ns: Option<u64>,
}

impl ThreadActivity {
    fn new(tid: u32, born: Option<Birth>) -> Self {
        ThreadActivity {
            tid,
            pid: None,
            born,
            syscalls: SyscallTable::default(),
            poll_intervals: Distribution::default(),
            last_poll_exit: None,
            in_flight: Vec::new(),
            in_call_since_before: None,
            timeline: None,
            softirqs: FxHashMap::default(),
            hardirqs: FxHashMap::default(),
            exit: None,
            previous: None,
            newest: false,
        }
    }

    /// Whether the thread was alive when tracing began (so that what /proc
    /// said then is about it).
    pub fn alive_at_start(&self) -> bool {
        self.born.is_none() && self.previous.is_none()
    }

    /// A poll-family call entered at `enter_ns` (inside the window) that
    /// returned at `exit_ns` (None: not before the window closed) ends the
    /// event-loop iteration that began with the previous one's return. The
    /// iteration before the first and after the last are not whole.
    fn poll_called(&mut self, enter_ns: u64, exit_ns: Option<u64>) {
        if let Some(previous) = self.last_poll_exit {
            self.poll_intervals
                .record(enter_ns.saturating_sub(previous));
        }
        self.last_poll_exit = exit_ns;
    }

    /// Its timeline, made at its first scheduler event (charging its time
    /// off the CPU to stacks when `offcpu_stacks`).
    fn timeline(&mut self, window_start: u64, keeping: Keeping) -> &mut Timeline {
        self.timeline.get_or_insert_with(|| {
            let mut timeline = Timeline::new(window_start);
            if keeping.offcpu_stacks {
                timeline.track_offcpu_stacks();
            }
            if keeping.stretches {
                timeline.keep_stretches();
            }
            timeline
        })
    }
}

/// What a thread's timeline keeps besides its budget.
#[derive(Debug, Clone, Copy)]
struct Keeping {
    /// Where it left its CPU (--off-cpu-stacks).
    offcpu_stacks: bool,
    /// Its stretches, to be taken (--perfetto).
    stretches: bool,
}

/// One thread's calls of one number.
#[derive(Debug, Clone, Default)]
pub struct SyscallCalls {
    pub durations: Distribution,
    /// Of the calls' time (those the spill map kept aside: it knows their
    /// totals only), what was on the CPU.
    oncpu_ns: u64,
    /// What few calls have, allocated at the first: most rows never
    /// leave the CPU nor fail, and thousands of threads hold a dozen rows.
    extras: Option<Box<CallExtras>>,
}

#[derive(Debug, Clone, Default)]
struct CallExtras {
    /// Time off the CPU (its running_ns stays 0).
    off_cpu: StateTimes,
    /// (errno, calls that failed with it), sorted by errno.
    errnos: Vec<(u32, u64)>,
}

impl SyscallCalls {
    /// A call returned after `times`, with `errno` (0: it did not fail).
    fn returned(&mut self, times: &StateTimes, errno: u32) {
        self.durations.record(times.total_ns());
        self.oncpu_ns += times.running_ns;
        let off_cpu = StateTimes {
            running_ns: 0,
            ..*times
        };
        if off_cpu != StateTimes::default() {
            self.extras().off_cpu.accumulate(&off_cpu);
        }
        self.failed(errno, 1);
    }

    fn extras(&mut self) -> &mut CallExtras {
        self.extras.get_or_insert_with(Box::default)
    }

    fn failed(&mut self, errno: u32, count: u64) {
        if errno == 0 || count == 0 {
            return;
        }
        let errnos = &mut self.extras().errnos;
        match errnos.binary_search_by_key(&errno, |&(e, _)| e) {
            Ok(i) => errnos[i].1 += count,
            Err(i) => errnos.insert(i, (errno, count)),
        }
    }

    /// The calls' time by thread state (spilled calls left out).
    pub fn by_state(&self) -> StateTimes {
        let off_cpu = self.extras.as_ref().map(|e| e.off_cpu).unwrap_or_default();
        StateTimes {
            running_ns: self.oncpu_ns,
            ..off_cpu
        }
    }

    /// (errno, calls that failed with it), sorted by errno.
    pub fn errnos(&self) -> &[(u32, u64)] {
        self.extras.as_ref().map_or(&[], |e| &e.errnos)
    }

    /// How many calls failed.
    pub fn errors(&self) -> u64 {
        self.errnos().iter().map(|&(_, n)| n).sum()
    }
}

/// One thread's system calls by number, sorted: a thread uses a few dozen
/// at most, and a sorted list costs less than a hash map per thread.
#[derive(Debug, Clone, Default)]
pub struct SyscallTable(Vec<(i64, SyscallCalls)>);

impl SyscallTable {
    pub fn entry(&mut self, nr: i64) -> &mut SyscallCalls {
        let i = match self.0.binary_search_by_key(&nr, |&(n, _)| n) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (nr, SyscallCalls::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&i64, &SyscallCalls)> {
        self.0.iter().map(|(nr, calls)| (nr, calls))
    }
}

pub struct Aggregator {
    start_ns: u64,
    /// Known once the window is closed; records drained after that may
    /// describe calls that ended too late to count.
    end_ns: u64,
    events: u64,
    /// Every thread seen, in order of first sight.
    threads: Vec<ThreadActivity>,
    /// Thread id -> the newest thread with it.
    newest: FxHashMap<u32, usize>,
    /// The ids exec'ing threads left for their leader's, with no thread
    /// since: /proc may have listed one as the window opened.
    left_by_exec: FxHashSet<u32>,
    /// Threads known only from the kernel's spill maps (their creation
    /// record was lost), by id and task start time.
    unseen: FxHashMap<(u32, u64), usize>,
    /// Every process traced, in order of first sight; a process id that
    /// comes back (forks past pid_max) is a new process.
    processes: Vec<ProcessActivity>,
    /// Process id -> the newest process with it.
    newest_process: FxHashMap<u32, usize>,
    /// Slow calls inside the window (--syscall-events), in arrival order.
    slow_calls: Vec<SlowCall>,
    /// How many are kept, and those past it, counted.
    slow_call_cap: usize,
    slow_calls_not_listed: u64,
    /// The tasks that are not traced that the records name.
    tasks: Tasks,
    /// The wakeups name their wakers (--wakers).
    wakers: bool,
    /// Time off the CPU is charged to stacks (--off-cpu-stacks).
    offcpu_stacks: bool,
    /// With --perfetto: what it saw happen, not yet taken.
    seen: Option<Vec<Seen>>,
}

/// How a window's aggregation is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    pub start_ns: u64,
    /// The wakeups were recorded where their wakers ran (--wakers): what
    /// they name woke the threads.
    pub wakers: bool,
    /// The records say where threads left their CPUs (--off-cpu-stacks):
    /// their time off it is charged to those stacks.
    pub offcpu_stacks: bool,
    /// The first slow calls kept; those after are only counted.
    pub slow_call_cap: Option<usize>,
}

/// What an aggregation takes in, besides how it is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A record, in time order.
    Record(Record),
    /// A process traced from the start, with its parent as /proc says.
    ListedProcess { pid: u32, ppid: Option<u32> },
    /// A thread of process `pid` that /proc listed: reported even if it
    /// did nothing.
    ListedThread { tid: u32, pid: u32 },
    /// The window closed at `end_ns`.
    Close { end_ns: u64 },
    /// A call still in the tracer's start map when the window closed.
    InFlight { tid: u32, call: InFlight },
    /// The call /proc says `tid` was in when the window closed.
    CallInProgress { tid: u32, nr: i64 },
    /// An exit the kernel kept in its map, ring buffer full.
    KeptExit {
        tid: u32,
        start_ns: u64,
        exit: KeptExit,
    },
    /// Calls the kernel kept in its spill map, ring buffer full.
    Spilled {
        tid: u32,
        start_ns: u64,
        nr: i64,
        calls: SpilledCalls,
    },
}

impl Aggregator {
    pub fn new(start_ns: u64) -> Self {
        Self {
            start_ns,
            end_ns: u64::MAX,
            events: 0,
            threads: Vec::new(),
            newest: FxHashMap::default(),
            left_by_exec: FxHashSet::default(),
            unseen: FxHashMap::default(),
            processes: Vec::new(),
            newest_process: FxHashMap::default(),
            slow_calls: Vec::new(),
            slow_call_cap: usize::MAX,
            slow_calls_not_listed: 0,
            tasks: Tasks::default(),
            wakers: false,
            offcpu_stacks: false,
            seen: None,
        }
    }

    /// An aggregation set up as `setup` says.
    pub fn set_up(setup: Setup) -> Self {
        let mut aggregator = Aggregator::new(setup.start_ns);
        aggregator.wakers = setup.wakers;
        aggregator.offcpu_stacks = setup.offcpu_stacks;
        aggregator.slow_call_cap = setup.slow_call_cap.unwrap_or(usize::MAX);
        aggregator
    }

    /// Takes in `input`: every input comes this way, so that what a
    /// recording keeps of them makes the same aggregation again.
    pub fn apply(&mut self, input: Input) {
        match input {
            Input::Record(record) => self.ingest(record),
            Input::ListedProcess { pid, ppid } => self.add_listed_process(pid, ppid),
            Input::ListedThread { tid, pid } => self.add_listed_thread(tid, pid),
            Input::Close { end_ns } => self.end_ns = end_ns,
            Input::InFlight { tid, call } => self.add_in_flight(tid, call),
            Input::CallInProgress { tid, nr } => self.add_call_in_progress(tid, nr),
            Input::KeptExit {
                tid,
                start_ns,
                exit,
            } => self.add_kept_exit(tid, start_ns, exit),
            Input::Spilled {
                tid,
                start_ns,
                nr,
                calls,
            } => self.add_spilled(tid, start_ns, nr, calls),
        }
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// The newest thread with id `tid`, seen for the first time if need be.
    fn thread(&mut self, tid: u32) -> &mut ThreadActivity {
        let index = self.thread_index(tid);
        &mut self.threads[index]
    }

    fn thread_index(&mut self, tid: u32) -> usize {
        match self.newest.get(&tid) {
            Some(&index) => index,
            None => self.add_thread(tid, None),
        }
    }

    /// A new thread with id `tid`, which becomes the newest with it.
    fn add_thread(&mut self, tid: u32, born: Option<Birth>) -> usize {
        let index = self.threads.len();
        self.threads.push(ThreadActivity::new(tid, born));
        self.make_newest(tid, index);
        index
    }

    /// Thread `index` now holds id `tid`, after the thread that had it.
    fn make_newest(&mut self, tid: u32, index: usize) {
        self.left_by_exec.remove(&tid);
        let previous = self.newest.insert(tid, index);
        let thread = &mut self.threads[index];
        thread.tid = tid;
        thread.previous = previous;
    }

    /// The thread a last switch of `tid` is about: a thread's exit record
    /// comes before its last switch, which, after a de-threading exec, can
    /// come after the exec'ing thread took the id.
    fn dying(&mut self, tid: u32) -> &mut ThreadActivity {
        let newest = self.thread_index(tid);
        let index = match self.threads[newest].previous {
            Some(previous)
                if self.threads[newest].exit.is_none() && self.threads[previous].exit.is_some() =>
            {
                previous
            }
            _ => newest,
        };
        &mut self.threads[index]
    }

    fn ingest(&mut self, record: Record) {
        self.events += 1;
        let window_start = self.start_ns;
        match record {
            Record::Syscall {
                tid,
                nr,
                errno,
                enter_ns,
                exit_ns,
            } => self.call(tid, nr, errno, enter_ns, exit_ns),
            Record::SlowCall(call) => {
                self.call(call.tid, call.nr, call.errno, call.enter_ns, call.exit_ns);
                if call.enter_ns >= self.start_ns && call.exit_ns <= self.end_ns {
                    if self.slow_calls.len() < self.slow_call_cap {
                        self.slow_calls.push(*call);
                    } else {
                        self.slow_calls_not_listed += 1;
                    }
                }
            }
            Record::OffCpuStack(stack) => {
                if stack.ts_ns > self.end_ns {
                    return;
                }
                let OffCpuStack {
                    tid,
                    pid,
                    ts_ns,
                    departure,
                    at_open,
                    kernel_stack,
                    user_stack,
                    address_space,
                } = *stack;
                let keeping = self.keeping();
                let left = LeftWith {
                    kernel_stack,
                    space: (pid, address_space),
                    user_stack,
                    names: OnceCell::new(),
                };
                let timeline = self.thread(tid).timeline(window_start, keeping);
                match at_open {
                    true => timeline.off_at_open(ts_ns, departure, left),
                    false => timeline.left_with(ts_ns, left),
                }
            }
            Record::Switch { ts_ns, out, into } => {
                if let Some(out) = out {
                    self.tasks.note(out.next);
                    let event = SchedEvent::SwitchOut {
                        departure: out.departure,
                        in_call: out.in_call,
                        next: out.next.tid,
                    };
                    self.sched(out.tid, ts_ns, event);
                }
                if let Some(into) = into {
                    self.tasks.note(into.prev);
                    let event = SchedEvent::SwitchIn {
                        after_idle: into.after_idle,
                        prev: into.prev.tid,
                    };
                    self.sched(into.tid, ts_ns, event);
                }
            }
            Record::Wakeup { tid, ts_ns, waker } => {
                let waker = self.wakers.then_some(waker);
                if let Some(Waker::Task(task)) = waker {
                    self.tasks.note(task);
                }
                self.sched(tid, ts_ns, SchedEvent::Wakeup(waker));
            }
            Record::TaskName {
                task,
                comm,
                kernel_thread,
                ..
            } => {
                if let Some(seen) = self.seen.as_mut() {
                    seen.push(Seen::TaskNamed { task, comm });
                }
                self.tasks.name(task, comm, kernel_thread);
            }
            Record::ThreadNew {
                tid,
                pid,
                ts_ns,
                start_ns,
            } => {
                if ts_ns > self.end_ns {
                    return;
                }
                let index = self.add_thread(tid, Some(Birth { ts_ns, start_ns }));
                let keeping = self.keeping();
                let thread = &mut self.threads[index];
                thread.pid = Some(pid);
                thread
                    .timeline(window_start, keeping)
                    .apply(ts_ns, SchedEvent::WakeupNew);
            }
            Record::ThreadExit {
                tid,
                pid,
                ts_ns,
                comm,
                process_exited,
            } => {
                let thread = self.thread(tid);
                thread.exit = Some(ThreadExit { ts_ns, comm });
                thread.pid.get_or_insert(pid);
                if process_exited {
                    // Before 6.16, threads exiting together may each say
                    // they were the last: the process ended with the
                    // latest.
                    let process = self.process(pid);
                    process.exit_ns = process.exit_ns.max(Some(ts_ns));
                }
            }
            Record::ProcessNew { pid, ppid, ts_ns } => {
                if ts_ns <= self.end_ns {
                    self.process_forked(pid, ppid, ts_ns);
                }
            }
            Record::Exec { tid, old_tid, .. } => {
                // The exec'ing thread goes on under the leader's id, which
                // is its process's.
                self.left_by_exec.insert(old_tid);
                let index = match self.newest.remove(&old_tid) {
                    Some(index) => {
                        self.make_newest(tid, index);
                        index
                    }
                    None => self.add_thread(tid, None),
                };
                self.threads[index].pid = Some(tid);
            }
            Record::Irq {
                tid,
                exit_ns,
                duration_ns,
                source,
            } => {
                let entered = exit_ns.saturating_sub(duration_ns);
                if entered < self.start_ns || exit_ns > self.end_ns {
                    return;
                }
                let thread = self.thread(tid);
                let pid = thread.pid;
                let series = match &source {
                    IrqSource::Softirq(vec) => thread.softirqs.entry(*vec).or_default(),
                    IrqSource::Hard(irq) => thread.hardirqs.entry(irq.clone()).or_default(),
                };
                series.record(duration_ns);
                if let Some(seen) = self.seen.as_mut() {
                    seen.push(Seen::Interrupt {
                        tid,
                        pid,
                        source,
                        start_ns: entered,
                        end_ns: exit_ns,
                    });
                }
            }
        }
    }

    /// A call of thread `tid` that returned (or, past the window's end,
    /// is unfinished).
    fn call(&mut self, tid: u32, nr: i64, errno: u32, enter_ns: u64, exit_ns: u64) {
        if enter_ns < self.start_ns || enter_ns > self.end_ns {
            return; // entered while probes were still attaching, or after the window
        }
        let end_ns = self.end_ns;
        let thread = self.thread(tid);
        let finished = exit_ns <= end_ns;
        let mut returned = None;
        if finished {
            let by_state = match thread.timeline.as_mut() {
                Some(timeline) => timeline.call_returned(enter_ns, exit_ns),
                // The scheduler never moved it: on the CPU throughout.
                None => StateTimes {
                    running_ns: exit_ns.saturating_sub(enter_ns),
                    ..StateTimes::default()
                },
            };
            thread.syscalls.entry(nr).returned(&by_state, errno);
            returned = Some((thread.pid, by_state));
        } else {
            thread.in_flight.push(InFlight { nr, enter_ns });
        }
        if is_poll_family_nr(nr) {
            thread.poll_called(enter_ns, finished.then_some(exit_ns));
        }
        if let (Some(seen), Some((pid, times))) = (self.seen.as_mut(), returned) {
            seen.push(Seen::Call {
                tid,
                pid,
                nr,
                errno,
                enter_ns,
                exit_ns,
                times,
            });
        }
    }

    /// A scheduler event of thread `tid`, inside the window.
    fn sched(&mut self, tid: u32, ts_ns: u64, event: SchedEvent) {
        if ts_ns > self.end_ns {
            return;
        }
        let (window_start, keeping) = (self.start_ns, self.keeping());
        let waker = match &event {
            SchedEvent::Wakeup(Some(waker)) if self.seen.is_some() => Some(waker.clone()),
            _ => None,
        };
        let waker_traced = match &waker {
            Some(Waker::Task(task)) => self.newest.contains_key(&task.tid),
            _ => false,
        };
        let thread = match event {
            SchedEvent::SwitchOut {
                departure: Departure::Dead,
                ..
            } => self.dying(tid),
            _ => self.thread(tid),
        };
        let pid = thread.pid;
        let timeline = thread.timeline(window_start, keeping);
        timeline.apply(ts_ns, event);
        let stretches = timeline.take_stretches();
        if let Some(seen) = self.seen.as_mut() {
            // A wakeup that ended a wait (the stretch closed) began the
            // stretch ready after it.
            let began = waker.filter(|_| !stretches.is_empty());
            seen.extend(
                stretches
                    .into_iter()
                    .map(|stretch| Seen::Stretch { tid, pid, stretch }),
            );
            if let Some(waker) = began {
                seen.push(Seen::Wakeup {
                    tid,
                    ts_ns,
                    waker,
                    waker_traced,
                });
            }
        }
    }

    fn keeping(&self) -> Keeping {
        Keeping {
            offcpu_stacks: self.offcpu_stacks,
            stretches: self.seen.is_some(),
        }
    }

    /// Keeps what it sees happen to the threads, to be taken (--perfetto).
    pub fn observe(&mut self) {
        self.seen.get_or_insert_with(Vec::new);
    }

    /// What it saw happen since the last take.
    pub fn take_seen(&mut self) -> Vec<Seen> {
        self.seen.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A thread of process `pid` that /proc listed: reported even if it
    /// did nothing.
    fn add_listed_thread(&mut self, tid: u32, pid: u32) {
        // Listed as the window opened, then gone by its exec: its
        // activity is under the leader's id now.
        if self.left_by_exec.contains(&tid) {
            return;
        }
        self.thread(tid).pid.get_or_insert(pid);
    }

    /// The newest process with id `pid`, seen for the first time if need be.
    fn process(&mut self, pid: u32) -> &mut ProcessActivity {
        let index = match self.newest_process.get(&pid) {
            Some(&index) => index,
            None => self.add_process(pid, None, None),
        };
        &mut self.processes[index]
    }

    /// A process traced from the start, with its parent as /proc says.
    fn add_listed_process(&mut self, pid: u32, ppid: Option<u32>) {
        let process = self.process(pid);
        process.ppid = process.ppid.or(ppid);
    }

    /// A fork's record. The process may be listed already: a look at
    /// --cgroup's directories can find it before its record is read (an
    /// entry neither forked nor exited): that entry is this process.
    fn process_forked(&mut self, pid: u32, ppid: u32, ts_ns: u64) {
        let listed = self
            .newest_process
            .get(&pid)
            .map(|&index| &mut self.processes[index])
            .filter(|process| process.forked_ns.is_none() && process.exit_ns.is_none());
        match listed {
            Some(process) => {
                process.ppid = Some(ppid);
                process.forked_ns = Some(ts_ns);
            }
            None => {
                self.add_process(pid, Some(ppid), Some(ts_ns));
            }
        }
    }

    fn add_process(&mut self, pid: u32, ppid: Option<u32>, forked_ns: Option<u64>) -> usize {
        let index = self.processes.len();
        self.processes.push(ProcessActivity {
            pid,
            ppid,
            forked_ns,
            exit_ns: None,
        });
        self.newest_process.insert(pid, index);
        index
    }

    /// The processes not seen to exit.
    pub fn processes_alive(&self) -> Vec<u32> {
        self.processes
            .iter()
            .filter(|p| p.exit_ns.is_none())
            .map(|p| p.pid)
            .collect()
    }

    /// How many processes forked during tracing are still alive.
    pub fn forked_processes_alive(&self) -> usize {
        self.processes
            .iter()
            .filter(|p| p.forked_ns.is_some() && p.exit_ns.is_none())
            .count()
    }

    /// The call /proc says `tid` was in when the window closed: unless an
    /// entry was seen for it, it began before the window.
    fn add_call_in_progress(&mut self, tid: u32, nr: i64) {
        let thread = self.thread(tid);
        if thread.in_flight.is_empty() {
            thread.in_call_since_before = Some(nr);
        }
    }

    /// A call still in the tracer's start map when the window closed,
    /// unless its record, made as it returned since, said so already.
    fn add_in_flight(&mut self, tid: u32, call: InFlight) {
        if call.enter_ns >= self.start_ns && call.enter_ns <= self.end_ns {
            let thread = self.thread(tid);
            if thread.in_flight.contains(&call) {
                return;
            }
            thread.in_flight.push(call);
            if is_poll_family_nr(call.nr) {
                thread.poll_called(call.enter_ns, None);
            }
        }
    }

    /// The thread with id `tid` whose task started at `start_ns`: the one
    /// created with that start time, else the one alive when tracing began.
    fn thread_started(&mut self, tid: u32, start_ns: u64) -> &mut ThreadActivity {
        let mut candidate = self.newest.get(&tid).copied();
        let mut alive_at_start = None;
        while let Some(index) = candidate {
            let thread = &self.threads[index];
            match thread.born {
                Some(born) if born.start_ns == start_ns => return &mut self.threads[index],
                None if thread.previous.is_none() => alive_at_start = Some(index),
                _ => {}
            }
            candidate = thread.previous;
        }
        let index = match alive_at_start {
            Some(index) if start_ns < self.start_ns => index,
            // Its creation record was lost: a thread of its own.
            _ => *self.unseen.entry((tid, start_ns)).or_insert_with(|| {
                self.threads.push(ThreadActivity::new(tid, None));
                self.threads.len() - 1
            }),
        };
        &mut self.threads[index]
    }

    /// Calls the kernel kept in its spill map, ring buffer full: (thread,
    /// task start time, call) with their exact count, total, min and max.
    fn add_spilled(&mut self, tid: u32, start_ns: u64, nr: i64, spilled: SpilledCalls) {
        let SpilledCalls {
            count,
            total_ns,
            min_ns,
            max_ns,
            errno,
        } = spilled;
        let calls = self.thread_started(tid, start_ns).syscalls.entry(nr);
        calls
            .durations
            .add_unsampled(count, total_ns, min_ns, max_ns);
        calls.failed(errno, count);
    }

    /// An exit the kernel kept in its map, ring buffer full.
    fn add_kept_exit(&mut self, tid: u32, start_ns: u64, exit: KeptExit) {
        let KeptExit {
            exit,
            pid,
            process_exited,
        } = exit;
        let thread = self.thread_started(tid, start_ns);
        thread.exit = Some(exit);
        thread.pid.get_or_insert(pid);
        if process_exited {
            self.process(pid).exit_ns = Some(exit.ts_ns);
        }
    }

    /// The stacks the threads left their CPUs with, that their time off
    /// it is charged to (--off-cpu-stacks).
    pub fn offcpu_stacks(&self) -> impl Iterator<Item = &Rc<LeftWith>> {
        self.threads
            .iter()
            .filter_map(|thread| thread.timeline.as_ref()?.offcpu())
            .flat_map(OffCpuTimeline::stacks_charged)
    }

    /// The slow calls kept in the window (--syscall-events), by entry
    /// time, and how many more there were.
    pub fn take_slow_calls(&mut self) -> (Vec<SlowCall>, u64) {
        let mut calls = std::mem::take(&mut self.slow_calls);
        calls.sort_by_key(|call| (call.enter_ns, call.tid));
        (calls, self.slow_calls_not_listed)
    }

    /// The threads and the processes seen.
    pub fn into_parts(mut self) -> (Vec<ThreadActivity>, Vec<ProcessActivity>, Tasks) {
        for &index in self.newest.values() {
            self.threads[index].newest = true;
        }
        (self.threads, self.processes, self.tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::records::{Arriving, Leaving, Task};

    fn call(tid: u32, nr: i64, enter_ns: u64, exit_ns: u64) -> Record {
        Record::Syscall {
            tid,
            nr,
            errno: 0,
            enter_ns,
            exit_ns,
        }
    }

    /// A thread of process 1.
    fn new_thread(tid: u32, ts_ns: u64) -> Record {
        Record::ThreadNew {
            tid,
            pid: 1,
            ts_ns,
            start_ns: ts_ns - 1,
        }
    }

    fn exit(tid: u32, ts_ns: u64, name: &[u8]) -> Record {
        let mut comm = [0u8; 16];
        comm[..name.len()].copy_from_slice(name);
        Record::ThreadExit {
            tid,
            pid: 1,
            ts_ns,
            comm,
            process_exited: false,
        }
    }

    fn switch_in(tid: u32, ts_ns: u64) -> Record {
        Record::Switch {
            ts_ns,
            out: None,
            into: Some(Arriving {
                tid,
                after_idle: false,
                prev: Task { tid: 0, pid: None },
            }),
        }
    }

    /// Thread `tid` leaves its CPU, `in_call` or not.
    fn switch_out(tid: u32, ts_ns: u64, departure: Departure, in_call: bool) -> Record {
        Record::Switch {
            ts_ns,
            out: Some(Leaving {
                tid,
                departure,
                in_call,
                next: Task { tid: 0, pid: None },
            }),
            into: None,
        }
    }

    fn by_tid(threads: &[ThreadActivity], tid: u32) -> Vec<&ThreadActivity> {
        threads.iter().filter(|t| t.tid == tid).collect()
    }

    fn count(thread: &ThreadActivity, nr: i64) -> u64 {
        thread
            .syscalls
            .iter()
            .find(|(&n, _)| n == nr)
            .map_or(0, |(_, calls)| calls.durations.summary().count)
    }

    #[test]
    fn aggregates_per_thread_and_syscall() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(call(7, 0, 1_100, 1_300));
        agg.ingest(call(7, 0, 1_400, 1_500));
        agg.ingest(call(7, 1, 1_600, 1_650));
        agg.ingest(call(8, 0, 1_700, 2_700));
        agg.apply(Input::Close { end_ns: 10_000 });
        assert_eq!(agg.events(), 4);
        let threads = agg.into_parts().0;
        let seven = by_tid(&threads, 7)[0];
        let read7 = seven.syscalls.iter().next().unwrap().1.durations.summary();
        assert_eq!(
            (read7.count, read7.total_ns, read7.min_ns, read7.max_ns),
            (2, 300, 100, 200)
        );
        assert_eq!(count(seven, 1), 1);
        assert_eq!(
            by_tid(&threads, 8)[0]
                .syscalls
                .iter()
                .next()
                .unwrap()
                .1
                .durations
                .summary()
                .total_ns,
            1_000
        );
        assert!(seven.alive_at_start() && seven.newest);
    }

    #[test]
    fn calls_entered_before_the_window_are_dropped() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(call(7, 0, 900, 1_100));
        assert!(agg.into_parts().0.is_empty());
    }

    #[test]
    fn calls_ending_after_the_window_are_in_flight() {
        let mut agg = Aggregator::new(1_000);
        agg.apply(Input::Close { end_ns: 2_000 });
        agg.ingest(call(7, 0, 1_500, 2_500));
        agg.ingest(call(7, 0, 2_100, 2_200)); // entirely after the window
        agg.add_in_flight(
            7,
            InFlight {
                nr: 23,
                enter_ns: 1_900,
            },
        );
        agg.add_in_flight(
            7,
            InFlight {
                nr: 23,
                enter_ns: 2_001,
            },
        );
        let threads = agg.into_parts().0;
        assert_eq!(threads[0].syscalls.iter().count(), 0);
        assert_eq!(
            threads[0].in_flight,
            vec![
                InFlight {
                    nr: 0,
                    enter_ns: 1_500
                },
                InFlight {
                    nr: 23,
                    enter_ns: 1_900
                }
            ]
        );
    }

    #[test]
    fn sched_events_feed_the_thread_timeline_until_the_end() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(switch_in(7, 2_000));
        agg.apply(Input::Close { end_ns: 5_000 });
        agg.ingest(switch_out(7, 6_000, Departure::Sleeping, false));
        let threads = agg.into_parts().0;
        let timeline = threads[0].timeline.clone().unwrap();
        let (stats, time, _, _) = timeline.finish(5_000, None, None);
        assert_eq!(
            (
                time.times.ready_ns(),
                time.times.running_ns,
                time.times.sleeping_ns
            ),
            (1_000, 3_000, 0)
        );
        assert_eq!(stats.run.count, 0);
    }

    #[test]
    fn interrupts_inside_the_window_are_charged_per_source() {
        let mut agg = Aggregator::new(1_000);
        let net_rx = IrqSource::Softirq(3);
        let timer = IrqSource::Hard(HardIrq::Vector(0));
        let disk = IrqSource::Hard(HardIrq::Line {
            irq: 24,
            handler: b"virtio0".to_vec(),
        });
        for (exit_ns, duration_ns, source) in [
            (1_500, 100, net_rx.clone()),
            (1_900, 300, net_rx.clone()),
            (1_050, 100, net_rx.clone()), // entered before the window
            (2_000, 50, timer.clone()),
            (2_100, 70, disk.clone()),
        ] {
            agg.ingest(Record::Irq {
                tid: 7,
                exit_ns,
                duration_ns,
                source,
            });
        }
        agg.apply(Input::Close { end_ns: 5_000 });
        agg.ingest(Record::Irq {
            tid: 7,
            exit_ns: 9_000,
            duration_ns: 10,
            source: disk.clone(),
        });
        let threads = agg.into_parts().0;
        let thread = &threads[0];
        let rx = thread.softirqs[&3].summary();
        assert_eq!((rx.count, rx.total_ns, rx.max_ns), (2, 400, 300));
        assert_eq!(thread.hardirqs[&HardIrq::Vector(0)].summary().total_ns, 50);
        let IrqSource::Hard(disk) = disk else {
            unreachable!()
        };
        assert_eq!(thread.hardirqs[&disk].summary().count, 1);
    }

    #[test]
    fn a_call_in_progress_without_an_entry_began_before_the_window() {
        let mut agg = Aggregator::new(1_000);
        agg.apply(Input::Close { end_ns: 2_000 });
        agg.add_in_flight(
            7,
            InFlight {
                nr: 0,
                enter_ns: 1_500,
            },
        );
        agg.add_call_in_progress(7, 0);
        agg.add_call_in_progress(8, 7);
        let threads = agg.into_parts().0;
        assert_eq!(by_tid(&threads, 7)[0].in_call_since_before, None);
        assert_eq!(by_tid(&threads, 8)[0].in_call_since_before, Some(7));
    }

    #[test]
    fn a_reused_thread_id_is_a_new_thread() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(new_thread(9, 1_100));
        agg.ingest(call(9, 110, 1_200, 1_300));
        agg.ingest(exit(9, 1_400, b"first"));
        agg.ingest(switch_out(9, 1_450, Departure::Dead, false));
        agg.ingest(new_thread(9, 2_000));
        agg.ingest(call(9, 110, 2_100, 2_150));
        agg.ingest(call(9, 110, 2_200, 2_250));
        agg.apply(Input::Close { end_ns: 5_000 });
        agg.add_listed_thread(9, 1);
        let threads = agg.into_parts().0;
        let nines = by_tid(&threads, 9);
        assert_eq!(nines.len(), 2);
        assert_eq!((count(nines[0], 110), count(nines[1], 110)), (1, 2));
        assert_eq!(&nines[0].exit.unwrap().comm[..5], b"first");
        assert!(nines[1].exit.is_none());
        assert!(!nines[0].newest && nines[1].newest);
        assert!(!nines[0].alive_at_start() && !nines[1].alive_at_start());
        let (_, first, _, _) = nines[0].timeline.clone().unwrap().finish(5_000, None, None);
        assert_eq!(
            first.observed_ns, 350,
            "born at 1,100, last switch at 1,450"
        );
    }

    #[test]
    fn a_thread_that_execs_takes_the_leaders_id() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(call(100, 0, 1_100, 1_200));
        agg.ingest(call(105, 1, 1_150, 1_250));
        // 105 calls execve; the leader exits, then 105 becomes 100.
        agg.ingest(exit(100, 1_300, b"leader"));
        agg.ingest(Record::Exec {
            tid: 100,
            old_tid: 105,
            ts_ns: 1_350,
        });
        // The old leader's last switch can come after the exec.
        agg.ingest(switch_out(100, 1_360, Departure::Dead, false));
        agg.ingest(call(100, 59, 1_140, 1_400)); // execve returns as 100
        agg.apply(Input::Close { end_ns: 5_000 });
        // /proc listed both as the window opened.
        for tid in [100, 105] {
            agg.apply(Input::ListedThread { tid, pid: 100 });
        }
        let threads = agg.into_parts().0;
        assert!(by_tid(&threads, 105).is_empty(), "no phantom row");
        let hundreds = by_tid(&threads, 100);
        assert_eq!(hundreds.len(), 2);
        let (leader, execd) = (hundreds[0], hundreds[1]);
        assert_eq!((count(leader, 0), count(leader, 59)), (1, 0));
        assert_eq!((count(execd, 1), count(execd, 59)), (1, 1));
        assert!(leader.exit.is_some() && execd.exit.is_none());
        assert!(leader.timeline.is_some(), "its last switch");
        assert!(execd.timeline.is_none());
        assert!(execd.newest && !leader.newest);
    }

    #[test]
    fn spilled_calls_and_kept_exits_find_their_thread() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(call(9, 110, 1_100, 1_200)); // alive before the window
        agg.ingest(exit(9, 1_300, b"old"));
        agg.ingest(new_thread(9, 2_000)); // start time 1,999
        agg.apply(Input::Close { end_ns: 5_000 });
        let spilled = SpilledCalls {
            count: 10,
            total_ns: 1_000,
            min_ns: 50,
            max_ns: 300,
            errno: 0,
        };
        agg.add_spilled(9, 500, 110, spilled);
        agg.add_spilled(9, 1_999, 110, spilled);
        agg.add_spilled(9, 1_999, 110, spilled);
        let kept = ThreadExit {
            ts_ns: 3_000,
            comm: *b"young\0\0\0\0\0\0\0\0\0\0\0",
        };
        agg.add_kept_exit(
            9,
            1_999,
            KeptExit {
                exit: kept,
                pid: 1,
                process_exited: true,
            },
        );
        // A thread whose creation record was lost.
        agg.add_spilled(9, 4_000, 110, spilled);
        agg.add_spilled(9, 4_000, 0, spilled);
        let (threads, processes, _) = agg.into_parts();
        let nines = by_tid(&threads, 9);
        assert_eq!(nines.len(), 3);
        assert_eq!(count(nines[0], 110), 11);
        assert_eq!(count(nines[1], 110), 20);
        assert_eq!(nines[1].exit, Some(kept));
        assert_eq!(nines[1].pid, Some(1));
        assert_eq!(processes.len(), 1);
        assert_eq!((processes[0].pid, processes[0].exit_ns), (1, Some(3_000)));
        assert_eq!((count(nines[2], 110), count(nines[2], 0)), (10, 10));
        assert_eq!(
            nines[1]
                .syscalls
                .iter()
                .next()
                .unwrap()
                .1
                .durations
                .unsampled(),
            20
        );
    }

    #[test]
    fn a_fork_found_by_a_cgroup_scan_before_its_record_is_listed_once() {
        let mut agg = Aggregator::new(1_000);
        agg.add_listed_process(1, Some(0));
        // The scan finds 2 (gone already: no parent in /proc), then its
        // fork record is read.
        agg.add_listed_process(2, None);
        agg.ingest(Record::ProcessNew {
            pid: 2,
            ppid: 1,
            ts_ns: 1_100,
        });
        // A later process with the id of one that exited is another.
        agg.ingest(Record::ThreadExit {
            tid: 2,
            pid: 2,
            ts_ns: 1_200,
            comm: [0; 16],
            process_exited: true,
        });
        agg.ingest(Record::ProcessNew {
            pid: 2,
            ppid: 1,
            ts_ns: 1_300,
        });
        let (_, processes, _) = agg.into_parts();
        let twos: Vec<_> = processes.iter().filter(|p| p.pid == 2).collect();
        assert_eq!(twos.len(), 2, "{processes:?}");
        assert_eq!(
            (twos[0].ppid, twos[0].forked_ns, twos[0].exit_ns),
            (Some(1), Some(1_100), Some(1_200))
        );
        assert_eq!((twos[1].forked_ns, twos[1].exit_ns), (Some(1_300), None));
    }

    #[test]
    fn processes_forked_and_exited_are_tracked() {
        let mut agg = Aggregator::new(1_000);
        agg.add_listed_process(1, Some(0));
        agg.add_listed_thread(1, 1);
        agg.ingest(Record::ProcessNew {
            pid: 2,
            ppid: 1,
            ts_ns: 1_100,
        });
        agg.ingest(Record::ThreadNew {
            tid: 2,
            pid: 2,
            ts_ns: 1_110,
            start_ns: 1_105,
        });
        assert_eq!(agg.forked_processes_alive(), 1);
        assert_eq!(agg.processes_alive(), vec![1, 2]);
        agg.ingest(Record::ThreadExit {
            tid: 2,
            pid: 2,
            ts_ns: 1_500,
            comm: [0; 16],
            process_exited: true,
        });
        assert_eq!(agg.forked_processes_alive(), 0);
        assert_eq!(agg.processes_alive(), vec![1]);
        let (threads, processes, _) = agg.into_parts();
        assert_eq!(
            processes,
            vec![
                ProcessActivity {
                    pid: 1,
                    ppid: Some(0),
                    forked_ns: None,
                    exit_ns: None
                },
                ProcessActivity {
                    pid: 2,
                    ppid: Some(1),
                    forked_ns: Some(1_100),
                    exit_ns: Some(1_500)
                }
            ]
        );
        let pids: Vec<(u32, Option<u32>)> = threads.iter().map(|t| (t.tid, t.pid)).collect();
        assert_eq!(pids, vec![(1, Some(1)), (2, Some(2))]);
    }

    #[test]
    fn one_switch_record_moves_both_threads() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(switch_in(7, 1_100));
        agg.ingest(Record::Switch {
            ts_ns: 1_500,
            out: Some(Leaving {
                tid: 7,
                departure: Departure::Ready,
                in_call: false,
                next: Task { tid: 8, pid: None },
            }),
            into: Some(Arriving {
                tid: 8,
                after_idle: true,
                prev: Task { tid: 7, pid: None },
            }),
        });
        agg.apply(Input::Close { end_ns: 2_000 });
        let threads = agg.into_parts().0;
        let budget = |tid: u32| {
            let thread = by_tid(&threads, tid)[0];
            thread.timeline.clone().unwrap().finish(2_000, None, None).1
        };
        let (seven, eight) = (budget(7), budget(8));
        assert_eq!((seven.times.running_ns, seven.times.ready_ns()), (400, 600));
        assert_eq!((eight.times.ready_ns(), eight.times.running_ns), (500, 500));
        assert_eq!(eight.times.ready_idle_cpu_ns, 500);
    }

    #[test]
    fn calls_are_split_by_state_and_their_errors_counted() {
        let mut agg = Aggregator::new(1_000);
        agg.ingest(switch_in(7, 1_100));
        // read: on CPU 1,200-1,300, asleep until 2,000, ready until 2,100,
        // on CPU until its return at 2,150.
        agg.ingest(switch_out(7, 1_300, Departure::Sleeping, true));
        agg.ingest(Record::Wakeup {
            tid: 7,
            ts_ns: 2_000,
            waker: Waker::Interrupt(IrqSource::Softirq(1)),
        });
        agg.ingest(switch_in(7, 2_100));
        agg.ingest(call(7, 0, 1_200, 2_150));
        for (errno, enter) in [(11, 2_200), (11, 2_300), (9, 2_400), (0, 2_500)] {
            agg.ingest(Record::Syscall {
                tid: 7,
                nr: 0,
                errno,
                enter_ns: enter,
                exit_ns: enter + 10,
            });
        }
        agg.apply(Input::Close { end_ns: 5_000 });
        agg.add_spilled(
            7,
            500,
            0,
            SpilledCalls {
                count: 5,
                total_ns: 50,
                min_ns: 10,
                max_ns: 10,
                errno: 11,
            },
        );
        let threads = agg.into_parts().0;
        let (_, read) = threads[0].syscalls.iter().next().unwrap();
        assert_eq!(
            read.by_state(),
            StateTimes {
                running_ns: 100 + 50 + 40,
                ready_busy_cpu_ns: 100,
                sleeping_ns: 700,
                ..StateTimes::default()
            }
        );
        assert_eq!(read.durations.summary().total_ns, 950 + 40 + 50);
        assert_eq!(read.errnos(), [(9, 1), (11, 7)]);
        assert_eq!(read.errors(), 8);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn event_loop_iterations_between_polls() {
        const POLL: i64 = 7;
        const EPOLL_WAIT: i64 = 232;
        let mut agg = Aggregator::new(1_000);
        agg.ingest(call(7, POLL, 900, 1_100)); // entered before the window
        agg.ingest(call(7, POLL, 1_200, 1_300)); // the first in the window
        agg.ingest(call(7, 0, 1_400, 1_500)); // work between polls
        agg.ingest(call(7, EPOLL_WAIT, 2_300, 2_400)); // 1,000 after 1,300
        agg.ingest(call(7, POLL, 2_900, 3_000)); // 500
        agg.apply(Input::Close { end_ns: 10_000 });
        agg.ingest(call(7, POLL, 9_000, 11_000)); // unfinished: 6,000
        agg.add_in_flight(
            8,
            InFlight {
                nr: POLL,
                enter_ns: 9_500,
            },
        );
        let threads = agg.into_parts().0;
        let seven = by_tid(&threads, 7)[0].poll_intervals.summary();
        assert_eq!(
            (seven.count, seven.min_ns, seven.max_ns, seven.total_ns),
            (3, 500, 6_000, 7_500)
        );
        // One poll, no whole iteration.
        assert_eq!(by_tid(&threads, 8)[0].poll_intervals.summary().count, 0);
    }
}
