//! Loads, attaches and detaches the BPF programs, and reads their maps.

use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use libbpf_rs::btf::types::{Enum, FuncProto, Struct, Typedef};
use libbpf_rs::btf::Btf;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{
    ErrorKind, Iter, Link, MapCore, MapFlags, MapHandle, OpenObject, PrintLevel, RingBuffer,
    RingBufferBuilder,
};

use crate::kernel::loss::Lost;
use crate::kernel::records::{
    comm_bytes, decode_offcpu_at_open, decode_sample, InFlight, KeptExit, Origin, Record,
    SpilledCalls, ThreadExit,
};
use crate::kernel::skel::types::{
    call_in_flight, kept_exit, lost_cause, record_batch, softirq_totals, spill_key, spill_value,
    syscall_start, thread_key, user_stack_limits, window_closer, window_state,
};
use crate::kernel::skel::{KernelDelayLinks, KernelDelaySkel, KernelDelaySkelBuilder};
use crate::kernel::syscall_names;
use crate::kernel::trigger::{self, Trigger};

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Tracepoints every supported kernel has; the others (x86 irq_vectors,
/// hrtimer_expire_entry) are attached where they exist.
const REQUIRED_TRACEPOINTS: [&str; 13] = [
    "sys_enter",
    "sys_exit",
    "sched_switch",
    "sched_wakeup",
    "sched_waking",
    "sched_wakeup_new",
    "sched_process_exit",
    "sched_process_exec",
    "sched_process_fork",
    "softirq_entry",
    "softirq_exit",
    "irq_handler_entry",
    "irq_handler_exit",
];

/// Which processes the programs trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// One process, whose forks are not followed: the cheapest test for
    /// every other process on the machine (one comparison).
    One(u32),
    /// A set of processes (an array lookup and a test for every other
    /// process), which the kernel grows as they fork when `follow_forks`.
    Set { pids: Vec<u32>, follow_forks: bool },
}

impl Filter {
    pub fn new(pids: &[u32], follow_forks: bool) -> Self {
        match pids {
            [pid] if !follow_forks => Filter::One(*pid),
            _ => Filter::Set {
                pids: pids.to_vec(),
                follow_forks,
            },
        }
    }
}

/// How the windows open, close and repeat: on triggers, or one after
/// another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPlan {
    pub start: Option<Trigger>,
    pub stop: Option<Trigger>,
    /// Windows shorter than this are skipped.
    pub min_delta_ns: u64,
    /// A window's length at most (--duration); None: until the stop
    /// trigger, or the command's exit.
    pub length: Option<Duration>,
    /// Reports to make; 0: until interrupted.
    pub count: u64,
    pub interval: Duration,
}

impl WindowPlan {
    /// Whether a window of `length_ns` is skipped (--trigger-delta).
    pub fn skips(&self, length_ns: u64) -> bool {
        length_ns < self.min_delta_ns
    }
}

/// --syscall-events and its companions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventOptions {
    /// Calls that take at least this long are events.
    pub min_ns: u64,
    /// Leave the poll family out.
    pub skip_poll: bool,
    /// Slow calls listed a window at most.
    pub max_events: usize,
}

/// The stacks of slow calls and of switches off the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackOptions {
    /// Room for distinct kernel stacks; 0: no stacks, user stacks neither.
    pub traces: u32,
    /// User stack copied above the stack pointer, in bytes (a multiple of
    /// the page).
    pub user_stack_bytes: u32,
}

/// How to load and attach.
pub struct Options<'a> {
    pub ringbuf_bytes: u32,
    pub events: Option<EventOptions>,
    pub stacks: StackOptions,
    /// Where traced threads leave their CPUs (--off-cpu-stacks).
    pub offcpu_stacks: bool,
    /// Triggered or repeated windows.
    pub plan: Option<&'a WindowPlan>,
    /// The target's executable, where triggers are looked for by default.
    pub executable: &'a Path,
    pub verbose: bool,
    /// Record wakeups where the wakers run, naming them (--wakers).
    pub wakers: bool,
}

/// The window as the programs see it (struct window of kernel_delay.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    pub state: window_state,
    pub closed_by: window_closer,
    pub open_ns: u64,
    pub close_ns: u64,
    /// Windows opened so far: the number of the last.
    pub opened: u64,
    /// The number of the last window user space took.
    pub taken: u64,
    /// Start triggers that fired while a window was pending.
    pub missed: u64,
}

pub struct Tracer<'obj> {
    skel: KernelDelaySkel<'obj>,
    /// The triggers' probes, attached before the programs.
    trigger_links: Vec<Link>,
    /// Optional tracepoints this kernel does not have.
    pub skipped: Vec<String>,
    /// Length of the traced-process set (0 for a single process).
    pid_limit: u32,
    /// Each thread's call is in task storage, not in the thread map.
    task_storage: bool,
    /// A window's length at most, as the programs have it (0: none).
    window_ns: u64,
}

impl<'obj> Tracer<'obj> {
    /// Loads the programs for the processes of `filter` and attaches them:
    /// tracing has begun when this returns.
    pub fn attach(
        storage: &'obj mut MaybeUninit<OpenObject>,
        filter: &Filter,
        options: &Options<'_>,
    ) -> Result<Self> {
        let Options {
            ringbuf_bytes,
            events,
            stacks,
            offcpu_stacks,
            plan,
            executable,
            verbose,
            wakers,
        } = *options;
        if !Path::new(KERNEL_BTF).exists() {
            bail!(
                "this kernel has no BTF ({KERNEL_BTF} is missing): kernel-delay needs Linux >= 5.8 built with CONFIG_DEBUG_INFO_BTF=y"
            );
        }
        libbpf_rs::set_print(verbose.then_some((PrintLevel::Debug, print_libbpf as _)));
        let btf = Btf::from_vmlinux().context("reading the kernel's BTF failed")?;

        let mut open = KernelDelaySkelBuilder::default()
            .open(storage)
            .context("opening the BPF object failed")?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .expect("the BPF object has read-only data");
        let pid_limit = match filter {
            Filter::One(pid) => {
                rodata.targ_tgid = *pid as i32;
                0
            }
            Filter::Set { follow_forks, .. } => {
                rodata.follow_forks = *follow_forks;
                sysctl("pid_max").unwrap_or(PID_MAX_LIMIT)
            }
        };
        rodata.pid_limit = pid_limit;
        // Wake the reader early at each quarter of the buffer pending.
        rodata.wakeup_shift = (ringbuf_bytes / 4).trailing_zeros();
        rodata.has_prev_state = tracepoint_arguments(&btf, "sched_switch") >= 4;
        rodata.exit_has_group_dead = tracepoint_arguments(&btf, "sched_process_exit") >= 2;
        let task_storage = has_task_storage_for_tracing(&btf);
        rodata.task_storage = task_storage;
        // The session reads the ring buffer on the main thread.
        rodata.reader_tid = std::process::id();
        rodata.windowed = plan.is_some();
        let window_ns = plan.and_then(|w| w.length).map_or(0, |length| {
            u64::try_from(length.as_nanos()).unwrap_or(u64::MAX)
        });
        rodata.window_ns = window_ns;
        rodata.interval_ns = plan.map_or(0, |w| {
            u64::try_from(w.interval.as_nanos()).unwrap_or(u64::MAX)
        });
        rodata.sigreturn_nr = syscall_names::SIGRETURN;
        if let Some(events) = events {
            rodata.syscall_events = true;
            rodata.event_min_ns = events.min_ns;
            rodata.skip_poll_events = events.skip_poll;
            let numbers = syscall_names::poll_family_numbers();
            for (slot, &nr) in rodata.poll_nrs.iter_mut().zip(numbers) {
                *slot = nr as i32;
            }
        }
        rodata.offcpu_stacks = offcpu_stacks;
        let stack_traces = match events.is_some() || offcpu_stacks {
            true => stacks.traces,
            false => 0,
        };
        rodata.capture_stacks = stack_traces > 0;
        if rodata.capture_stacks {
            rodata.user_stack_pages = user_stack_pages(stacks.user_stack_bytes);
        }
        open.maps
            .stacks
            .set_max_entries(stack_traces.max(1))
            .context("sizing the stack map failed")?;
        open.maps
            .events
            .set_max_entries(ringbuf_bytes)
            .context("sizing the ring buffer failed")?;
        // One home for the call each thread is in, the other not created.
        open.maps
            .syscall_starts
            .set_max_entries(max_threads())
            .context("sizing the thread map failed")?;
        open.maps.syscall_starts.set_autocreate(!task_storage)?;
        open.maps.task_calls.set_autocreate(task_storage)?;
        open.progs.calls_in_flight.set_autoload(task_storage);
        open.progs.calls_in_flight.set_autoattach(false);
        // Threads off their CPU as a window opens: kernel stacks from 5.9,
        // user stacks too from 5.18 (a sleepable iterator).
        let at_open_user = rodata.user_stack_pages > 0 && has_helper(&btf, "copy_from_user_task");
        let at_open = offcpu_stacks && has_helper(&btf, "get_task_stack");
        open.progs
            .offcpu_at_open
            .set_autoload(at_open && !at_open_user);
        open.progs
            .offcpu_at_open_user
            .set_autoload(at_open && at_open_user);
        open.progs.offcpu_at_open.set_autoattach(false);
        open.progs.offcpu_at_open_user.set_autoattach(false);
        open.progs.sched_waking.set_autoload(wakers);
        open.progs.sched_wakeup.set_autoload(!wakers);
        open.maps
            .data_traced_pids
            .set_value_size(pid_limit.max(1))
            .context("sizing the set of traced processes failed")?;
        let skipped = leave_out_missing_tracepoints(open.open_object_mut(), &btf)?;
        let probe = |trigger: Option<&Trigger>| trigger::needs(trigger.map(|t| &t.probe));
        let (start_probe, start_usdt, start_tp) = probe(plan.and_then(|w| w.start.as_ref()));
        let (stop_probe, stop_usdt, stop_tp) = probe(plan.and_then(|w| w.stop.as_ref()));
        let progs = &mut open.progs;
        for (prog, used) in [
            (&mut progs.start_trigger, start_probe),
            (&mut progs.start_trigger_usdt, start_usdt),
            (&mut progs.start_trigger_tp, start_tp),
            (&mut progs.stop_trigger, stop_probe),
            (&mut progs.stop_trigger_usdt, stop_usdt),
            (&mut progs.stop_trigger_tp, stop_tp),
        ] {
            prog.set_autoload(used);
            prog.set_autoattach(false);
        }

        let skel = open
            .load()
            .map_err(explain)
            .context("loading the BPF programs failed")?;
        let mut tracer = Tracer {
            skel,
            trigger_links: Vec::new(),
            skipped,
            pid_limit,
            task_storage,
            window_ns,
        };
        // Before the programs: a trigger that does not exist fails with
        // nothing attached.
        if let Some(plan) = plan {
            let progs = &tracer.skel.progs;
            let start = trigger::Programs {
                probe: &progs.start_trigger,
                usdt: &progs.start_trigger_usdt,
                tracepoint: &progs.start_trigger_tp,
            };
            let stop = trigger::Programs {
                probe: &progs.stop_trigger,
                usdt: &progs.stop_trigger_usdt,
                tracepoint: &progs.stop_trigger_tp,
            };
            let mut links = Vec::new();
            for (trigger, programs) in [(&plan.start, start), (&plan.stop, stop)] {
                if let Some(trigger) = trigger {
                    links.push(trigger::attach(trigger, &programs, executable, &btf)?);
                }
            }
            tracer.trigger_links = links;
        }
        if let Filter::Set { pids, .. } = filter {
            for pid in pids {
                tracer.trace_process(*pid);
            }
        }
        tracer
            .skel
            .attach()
            .map_err(explain)
            .context("attaching the BPF programs failed")?;
        Ok(tracer)
    }

    /// Adds process `pid` to the traced set (a running descendant of a
    /// traced process, found in /proc, or a process that joined a traced
    /// cgroup); false when it cannot be traced.
    pub fn trace_process(&mut self, pid: u32) -> bool {
        // Never kernel-delay itself, whatever the target holds (the v2
        // root cgroup, a shell it was started from with -f).
        if pid >= self.pid_limit || pid == std::process::id() {
            return false;
        }
        let set = self
            .skel
            .maps
            .data_traced_pids_data
            .as_deref_mut()
            .expect("the set of traced processes is mapped");
        // SAFETY: the map's memory is pid_limit bytes (sized before load),
        // shared with the BPF programs, which read and write single bytes.
        unsafe {
            let base = std::ptr::from_mut(set).cast::<u8>();
            std::ptr::write_volatile(base.add(pid as usize), 1);
        }
        true
    }

    /// A ring buffer that hands each decoded record to `on_record`, with
    /// where it was made.
    pub fn ring_buffer<'cb>(
        &self,
        mut on_record: impl FnMut(Origin, Record) + 'cb,
    ) -> Result<RingBuffer<'cb>> {
        let mut builder = RingBufferBuilder::new();
        builder.add(&self.skel.maps.events, move |data: &[u8]| {
            let sample = decode_sample(data);
            for record in sample.records {
                on_record(sample.origin, record);
            }
            0
        })?;
        Ok(builder.build()?)
    }

    /// Stops tracing: no record is produced after this returns.
    pub fn detach(&mut self) {
        close_links(std::mem::take(&mut self.trigger_links));
        self.skel.links = KernelDelayLinks::default();
    }

    /// The programs' .bss, mapped into our memory: to read from.
    fn bss(&self) -> *const crate::kernel::skel::types::bss {
        let bss = self.skel.maps.bss_data.as_deref();
        std::ptr::from_ref(bss.expect("the BPF object has a .bss"))
    }

    /// The window's fields in the .bss, to write to.
    fn window_mut(&mut self) -> *mut crate::kernel::skel::types::window {
        let bss = self.skel.maps.bss_data.as_deref_mut();
        &raw mut bss.expect("the BPF object has a .bss").window
    }

    /// The window, as the programs see it.
    pub fn window_state(&self) -> WindowState {
        // SAFETY: valid, aligned fields of the mmapped .bss, which the
        // programs update behind our back: read volatile. The programs
        // write a window's times before the state and the number that
        // publish them, so those are read first: read after, a new number
        // could come with the last window's opening time.
        unsafe {
            let window = &raw const (*self.bss()).window;
            let opened = std::ptr::read_volatile(&raw const (*window).opened);
            let state = window_state(std::ptr::read_volatile(&raw const (*window).state));
            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
            WindowState {
                state,
                closed_by: window_closer(std::ptr::read_volatile(&raw const (*window).closed_by)),
                open_ns: std::ptr::read_volatile(&raw const (*window).open_ns),
                close_ns: std::ptr::read_volatile(&raw const (*window).close_ns),
                opened,
                taken: std::ptr::read_volatile(&raw const (*window).taken),
                missed: std::ptr::read_volatile(&raw const (*window).missed),
            }
        }
    }

    /// Lets the start trigger open windows (`armed`), or no more.
    pub fn arm_windows(&mut self, armed: bool) {
        let window = self.window_mut();
        // SAFETY: a valid, aligned field of the mmapped .bss, ours to
        // write (the programs only read it).
        unsafe { std::ptr::write_volatile(&raw mut (*window).armed, u32::from(armed)) };
    }

    /// Opens the next window at `now_ns` (without a start trigger).
    pub fn open_window(&mut self, now_ns: u64) {
        let opened = self.window_state().opened;
        let window = self.window_mut();
        // SAFETY: valid, aligned fields of the mmapped .bss; without a
        // start trigger only user space opens windows. The time goes
        // before the state and the number that publish it.
        unsafe {
            std::ptr::write_volatile(&raw mut (*window).open_ns, now_ns);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            std::ptr::write_volatile(&raw mut (*window).state, window_state::WINDOW_OPEN.0);
            std::ptr::write_volatile(&raw mut (*window).opened, opened + 1);
        }
    }

    /// Closes the open window at `now_ns`, or where its length ended it;
    /// a window the stop trigger closed stays as it closed.
    pub fn close_window(&mut self, now_ns: u64) {
        let state = self.window_state();
        if state.state != window_state::WINDOW_OPEN {
            return;
        }
        let (close_ns, closed_by) = match self.window_ns {
            length if length != 0 && now_ns.saturating_sub(state.open_ns) >= length => {
                (state.open_ns + length, window_closer::CLOSED_BY_LENGTH)
            }
            _ => (now_ns, window_closer::CLOSED_BY_USER),
        };
        let window = self.window_mut();
        // SAFETY: valid, aligned fields of the mmapped .bss. A stop
        // trigger that fires meanwhile writes a close time too, a few
        // nanoseconds from ours: either is the window's end.
        unsafe {
            std::ptr::write_volatile(&raw mut (*window).close_ns, close_ns);
            std::ptr::write_volatile(&raw mut (*window).closed_by, closed_by.0);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            std::ptr::write_volatile(&raw mut (*window).state, window_state::WINDOW_CLOSED.0);
        }
    }

    /// User space is done with window number `number`: the start trigger
    /// may open the next.
    pub fn take_window(&mut self, number: u64) {
        let window = self.window_mut();
        // SAFETY: a valid, aligned field of the mmapped .bss, written only
        // by user space.
        unsafe {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            std::ptr::write_volatile(&raw mut (*window).taken, number);
        }
    }

    /// What the kernel side could not deliver, by cause.
    pub fn lost(&self) -> Lost {
        // SAFETY: a valid, aligned field of the mmapped .bss, which BPF
        // programs update behind our back.
        let lost = unsafe { std::ptr::read_volatile(&raw const (*self.bss()).lost) };
        let cause = |cause: lost_cause| lost[cause.0 as usize];
        Lost {
            ring_buffer_full: cause(lost_cause::LOST_RINGBUF_FULL),
            thread_map_full: cause(lost_cause::LOST_SYSCALL_MAP_FULL),
            spill_map_full: cause(lost_cause::LOST_SPILL_MAP_FULL),
            exit_map_full: cause(lost_cause::LOST_EXIT_MAP_FULL),
            syscall_events: cause(lost_cause::LOST_SYSCALL_EVENT),
            offcpu_stacks: cause(lost_cause::LOST_OFFCPU_STACK),
        }
    }

    /// The frames of stack `id` of the stack map, innermost first.
    pub fn stack(&self, id: i32) -> Option<Vec<u64>> {
        let key = u32::try_from(id).ok()?.to_ne_bytes();
        let value = self.skel.maps.stacks.lookup(&key, MapFlags::ANY).ok()??;
        Some(
            value
                .chunks_exact(8)
                .map(|frame| u64::from_ne_bytes(frame.try_into().expect("8 bytes")))
                .take_while(|&address| address != 0)
                .collect(),
        )
    }

    /// Looks up the address space a process is in now, as the programs
    /// number them (--syscall-events with stacks).
    pub fn address_spaces(&self) -> Result<impl Fn(u32) -> Option<u64>> {
        let map = MapHandle::try_from(&self.skel.maps.address_spaces)?;
        Ok(move |pid: u32| {
            let value = map.lookup(&pid.to_ne_bytes(), MapFlags::ANY).ok()??;
            Some(u64::from_ne_bytes(value.try_into().ok()?))
        })
    }

    /// Stacks of events the kernel could not record (map full, collisions).
    pub fn stacks_missed(&self) -> u64 {
        // SAFETY: a valid, aligned field of the mmapped .bss.
        unsafe { std::ptr::read_volatile(&raw const (*self.bss()).stacks_missed) }
    }

    /// Per program loaded, the runs the kernel skipped because the program
    /// was already running on that CPU (bpf_prog_info's recursion_misses,
    /// 5.12+; always 0 before): whatever those runs would have recorded
    /// is missing.
    pub fn programs_skipped(&self) -> Vec<(String, u64)> {
        self.skel
            .object()
            .progs()
            .filter(|prog| prog.autoload())
            .filter_map(|prog| {
                let name = prog.name().to_string_lossy().into_owned();
                Some((name, recursion_misses(prog.as_fd())?))
            })
            .collect()
    }

    /// System calls entered and not yet returned, per thread id.
    pub fn in_flight(&self) -> Result<Vec<(u32, InFlight)>> {
        let calls = if self.task_storage {
            self.calls_in_task_storage()?
        } else {
            map_entries(
                &self.skel.maps.syscall_starts,
                |tid: &u32, start: &syscall_start| {
                    let call = InFlight {
                        nr: start.nr,
                        enter_ns: start.enter_ns,
                    };
                    (*tid, call)
                },
            )
        };
        Ok(calls
            .into_iter()
            .filter(|(_, call)| call.enter_ns != 0)
            .collect())
    }

    /// The calls in task storage, as the task iterator reports them.
    fn calls_in_task_storage(&self) -> Result<Vec<(u32, InFlight)>> {
        let link = self.skel.progs.calls_in_flight.attach()?;
        let mut bytes = Vec::new();
        Iter::new(&link)?.read_to_end(&mut bytes)?;
        Ok(bytes
            .chunks_exact(std::mem::size_of::<call_in_flight>())
            .filter_map(copy_from_bytes::<call_in_flight>)
            .map(|call| {
                let in_flight = InFlight {
                    nr: call.nr,
                    enter_ns: call.enter_ns,
                };
                (call.tid, in_flight)
            })
            .collect())
    }

    /// Where each traced thread that is off its CPU now left it
    /// (--off-cpu-stacks), one report at a time to `each`, as the task
    /// iterator writes them. Nothing on kernels before 5.9.
    pub fn offcpu_at_open(&self, mut each: impl FnMut(Record)) -> Result<()> {
        let progs = &self.skel.progs;
        let prog = match (
            progs.offcpu_at_open_user.autoload(),
            progs.offcpu_at_open.autoload(),
        ) {
            (true, _) => &progs.offcpu_at_open_user,
            (_, true) => &progs.offcpu_at_open,
            _ => return Ok(()),
        };
        let link = prog.attach()?;
        let mut iter = Iter::new(&link)?;
        // Each report is whole in one read (the iterator's buffer holds it).
        let mut bytes = Vec::new();
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let read = iter.read(&mut chunk)?;
            if read == 0 {
                return Ok(());
            }
            bytes.extend_from_slice(&chunk[..read]);
            let mut used = 0;
            while let Some((record, size)) = decode_offcpu_at_open(&bytes[used..]) {
                each(record);
                used += size;
            }
            bytes.drain(..used);
        }
    }

    /// The records still staged on each CPU, with the CPU (read once
    /// tracing has stopped).
    pub fn staged_records(&self) -> Vec<(Option<u32>, Record)> {
        per_cpu::<record_batch>(&self.skel.maps.batches)
            .into_iter()
            .flatten()
            .flat_map(|batch| {
                let len = (batch.len as usize).min(batch.data.len());
                let sample = decode_sample(&batch.data[..len]);
                let cpu = sample.origin.batch_cpu();
                sample
                    .records
                    .map(move |record| (cpu, record))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Each CPU's softirq counters since attach (index = CPU).
    pub fn softirq_totals(&self) -> Vec<softirq_totals> {
        per_cpu::<softirq_totals>(&self.skel.maps.softirq_cpu)
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect()
    }

    /// Completed calls kept in the spill map, ring buffer full: (thread,
    /// task start time, call number, totals).
    pub fn spilled_calls(&self) -> Vec<(u32, u64, i64, SpilledCalls)> {
        map_entries(
            &self.skel.maps.spilled_calls,
            |key: &spill_key, value: &spill_value| {
                (
                    key.thread.tid,
                    key.thread.start_ns,
                    i64::from(key.nr),
                    SpilledCalls {
                        count: value.count,
                        total_ns: value.total_ns,
                        min_ns: value.min_ns,
                        max_ns: value.max_ns,
                        errno: key.err.max(0) as u32,
                    },
                )
            },
        )
    }

    /// Empties the maps of spilled calls and kept exits (read for a window
    /// that closed: the next starts from nothing).
    pub fn clear_kept(&self) {
        for map in [&self.skel.maps.spilled_calls, &self.skel.maps.kept_exits] {
            for key in map.keys().collect::<Vec<_>>() {
                let _ = map.delete(&key);
            }
        }
    }

    /// Exits kept in their map, ring buffer full: (thread, task start
    /// time, exit).
    pub fn kept_exits(&self) -> Vec<(u32, u64, KeptExit)> {
        map_entries(
            &self.skel.maps.kept_exits,
            |key: &thread_key, kept: &kept_exit| {
                let exit = ThreadExit {
                    ts_ns: kept.ts_ns,
                    comm: comm_bytes(&kept.comm),
                };
                let kept = KeptExit {
                    exit,
                    pid: kept.pid,
                    process_exited: kept.process_exited != 0,
                };
                (key.tid, key.start_ns, kept)
            },
        )
    }
}

impl Drop for Tracer<'_> {
    fn drop(&mut self) {
        close_links(std::mem::take(&mut self.trigger_links));
    }
}

/// The runs of program `fd` the kernel skipped; None when it cannot say.
fn recursion_misses(fd: BorrowedFd<'_>) -> Option<u64> {
    let mut info = libbpf_rs::libbpf_sys::bpf_prog_info::default();
    let mut len = size_of_val(&info) as u32;
    // SAFETY: `info` is a writable bpf_prog_info of `len` bytes, all zero
    // (the kernel requires the bytes it does not know to be zero, and
    // writes at most `len`); its pointer fields are null, so the kernel
    // fills in no arrays; `fd` is a loaded program's, borrowed for the call.
    let ret = unsafe {
        libbpf_rs::libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len)
    };
    (ret == 0).then_some(info.recursion_misses)
}

/// Closes `links` at once, each on a thread of its own: closing a uprobe
/// waits for RCU grace periods (uprobe_unregister_sync), which the kernel
/// then shares between them instead of waiting for each in turn.
/// Pages the programs copy to hold `bytes` of user stack above the stack
/// pointer: its own page (from its start) and those above.
fn user_stack_pages(bytes: u32) -> u32 {
    bytes / user_stack_limits::USER_STACK_PAGE.0 + 1
}

/// The bytes of a whole copy of `bytes` of user stack.
pub fn user_stack_copy_bytes(bytes: u32) -> usize {
    user_stack_pages(bytes) as usize * user_stack_limits::USER_STACK_PAGE.0 as usize
}

fn close_links(links: Vec<Link>) {
    std::thread::scope(|scope| {
        for link in links {
            scope.spawn(move || drop(link));
        }
    });
}

/// The kernel's largest pid_max on 64-bit machines.
const PID_MAX_LIMIT: u32 = 1 << 22;

/// /proc/sys/kernel/NAME, a number.
fn sysctl(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Room in the thread map for every thread the kernel can have: no more
/// than thread ids (pid_max) nor threads (threads-max). The map takes
/// memory as threads make calls, plus 16 bytes per slot for its table.
fn max_threads() -> u32 {
    [sysctl("pid_max"), sysctl("threads-max")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(PID_MAX_LIMIT)
        .clamp(1 << 10, PID_MAX_LIMIT)
}

/// Whether tracing programs can keep task-local storage (5.13+: the same
/// change gave task_struct its own pointer to it).
fn has_task_storage_for_tracing(btf: &Btf<'_>) -> bool {
    btf.type_by_name::<Struct>("task_struct")
        .is_some_and(|task| {
            task.iter()
                .any(|member| member.name.is_some_and(|name| name == "bpf_storage"))
        })
}

/// Whether the kernel has BPF helper `name` (bpf_`name`), from its BTF.
fn has_helper(btf: &Btf<'_>, name: &str) -> bool {
    let wanted = format!("BPF_FUNC_{name}");
    btf.type_by_name::<Enum>("bpf_func_id")
        .is_some_and(|helpers| {
            helpers
                .iter()
                .any(|helper| helper.name.is_some_and(|n| n == wanted.as_str()))
        })
}

/// How many arguments tracepoint `name` passes its programs (beside the
/// context), from kernel BTF: newer kernels add some.
fn tracepoint_arguments(btf: &Btf<'_>, name: &str) -> usize {
    btf.type_by_name::<Typedef>(&format!("btf_trace_{name}"))
        .and_then(|typedef| typedef.next_type()) // pointer
        .and_then(|pointer| pointer.next_type()) // prototype
        .and_then(|proto| FuncProto::try_from(proto).ok())
        .map_or(0, |proto| proto.len().saturating_sub(1))
}

/// Turns off the programs whose tracepoint the kernel lacks, and names them.
fn leave_out_missing_tracepoints(object: &mut OpenObject, btf: &Btf<'_>) -> Result<Vec<String>> {
    let mut skipped = Vec::new();
    for mut prog in object.progs_mut() {
        let section = prog.section().to_string_lossy().into_owned();
        let Some(tracepoint) = section.strip_prefix("tp_btf/") else {
            continue;
        };
        if btf
            .type_by_name::<Typedef>(&format!("btf_trace_{tracepoint}"))
            .is_some()
        {
            continue;
        }
        if REQUIRED_TRACEPOINTS.contains(&tracepoint) {
            bail!("this kernel has no {tracepoint} tracepoint: kernel-delay needs Linux >= 5.8");
        }
        prog.set_autoload(false);
        skipped.push(tracepoint.to_string());
    }
    Ok(skipped)
}

/// Reads every entry of a hash map, converting each with `convert`.
fn map_entries<K: plain::Plain, V: plain::Plain, T>(
    map: &dyn MapCore,
    convert: impl Fn(&K, &V) -> T,
) -> Vec<T> {
    map.keys()
        .filter_map(|key| {
            let value = map.lookup(&key, MapFlags::ANY).ok()??;
            let key = copy_from_bytes::<K>(&key)?;
            let value = copy_from_bytes::<V>(&value)?;
            Some(convert(&key, &value))
        })
        .collect()
}

/// Each CPU's value of the one-entry per-CPU array `map` (index = CPU).
fn per_cpu<T: plain::Plain>(map: &dyn MapCore) -> Vec<Option<T>> {
    map.lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)
        .ok()
        .flatten()
        .unwrap_or_default()
        .iter()
        .map(|bytes| copy_from_bytes::<T>(bytes))
        .collect()
}

/// A copy of the struct at the start of `bytes`, which need not be aligned
/// for it (a per-CPU value may be padded beyond it).
fn copy_from_bytes<T: plain::Plain>(bytes: &[u8]) -> Option<T> {
    let size = std::mem::size_of::<T>();
    let bytes = bytes.get(..size)?;
    let mut value = MaybeUninit::<T>::uninit();
    // SAFETY: T is plain (any bytes are a valid value), and exactly
    // size_of::<T>() bytes are copied into it.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), value.as_mut_ptr().cast::<u8>(), size);
        Some(value.assume_init())
    }
}

/// Waits up to `timeout` for the kernel to wake us, then reads every
/// pending record (the programs wake the reader only when the pending data
/// crosses a quarter of the buffer, so reading after a plain timeout is the
/// normal case).
pub fn drain(ring: &RingBuffer<'_>, timeout: Duration) -> Result<()> {
    ring_result(ring.poll_raw(timeout))?;
    read_pending(ring)
}

/// Reads every pending record, without waiting.
pub fn read_pending(ring: &RingBuffer<'_>) -> Result<()> {
    ring_result(ring.consume_raw())
}

/// A ring-buffer call's return value: a negative errno is a failure, but
/// for a signal (which ends the window elsewhere).
fn ring_result(ret: i32) -> Result<()> {
    if ret < 0 && ret != -nix::libc::EINTR {
        bail!(
            "reading the ring buffer failed: {}",
            nix::errno::Errno::from_raw(-ret)
        );
    }
    Ok(())
}

/// Adds the usual cause to errors users hit.
fn explain(err: libbpf_rs::Error) -> anyhow::Error {
    let hint = match err.kind() {
        ErrorKind::PermissionDenied => {
            Some("permission denied: run as root (or with CAP_BPF and CAP_PERFMON)")
        }
        ErrorKind::NotFound => {
            Some("a tracepoint is missing: kernel-delay needs Linux >= 5.8 with BTF")
        }
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::Error::new(err).context(hint),
        None => err.into(),
    }
}

fn print_libbpf(_level: PrintLevel, message: String) {
    eprint!("{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The atomic instructions' mode (BPF_STX | BPF_ATOMIC, any size).
    const BPF_STX: u8 = 0x03;
    const BPF_ATOMIC: u8 = 0xc0;

    #[test]
    fn no_atomic_returns_a_value_for_5_10() {
        // 5.10's verifier refuses, anywhere in the object, an atomic whose
        // imm is not a plain add (a fetch, an exchange): every program
        // would fail to load there.
        let mut storage = MaybeUninit::uninit();
        let open = KernelDelaySkelBuilder::default()
            .open(&mut storage)
            .unwrap();
        let mut atomics = 0;
        for prog in open.open_object().progs() {
            for insn in prog.insns() {
                if insn.code & 0x07 == BPF_STX && insn.code & 0xe0 == BPF_ATOMIC {
                    atomics += 1;
                    assert_eq!(insn.imm, 0, "a fetching atomic in {:?}", prog.name());
                }
            }
        }
        assert!(atomics > 0, "the counters are atomic adds");
    }
}
