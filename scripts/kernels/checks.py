#!/usr/bin/env python3
"""The checks of `make kernels`, one list for the guest and the host.

    checks.py commands
        the kd-workload commands the guest runs, one a line (scripts/kernels/run.sh
        puts them in the initramfs as /commands)
    checks.py verify DATA KERNEL CONFIG [NOTE]
        reads what the guest wrote to its data port (DATA), runs every check
        against it and the kernel's build configuration (CONFIG, the
        package's /boot/config-*) and prints one line, "PASS KERNEL (NOTE;
        checks)" or "FAIL KERNEL (NOTE): what went wrong"; exits 1 on FAIL

Each check is a function registered with @check(name, workload_command).
The guest traces one `kd-workload serve` session that runs the commands of
all checks in order, so a new check is one more function here, with the
command that gives it a known answer (kd-workload serve's command list is in
tests/workload/main.rs).

TCG is slow and its clock is coarse, so time ranges are wide; counts are
exact. The checks are the same on every architecture; where the kernels
differ (the timer interrupt), a table says how.
"""

import json
import sys

MS = 1_000_000
CHECKS = []


class Failed(Exception):
    pass


def check(name, command=None):
    def register(function):
        CHECKS.append((name, command, function))
        return function

    return register


def expect(condition, message):
    if not condition:
        raise Failed(message)


class Run:
    """What one boot reported: single values and framed files."""

    def __init__(self, path, kernel, config):
        self.kernel = kernel
        self.config = {}
        with open(config, encoding="utf-8") as lines:
            for line in lines:
                key, equals, value = line.strip().partition("=")
                if equals and key.startswith("CONFIG_"):
                    self.config[key] = value
        self.values = {}
        self.files = {}
        current = None
        with open(path, encoding="utf-8", errors="replace") as data:
            for line in data:
                line = line.replace("\r", "").rstrip("\n")
                if current is not None:
                    if line == f"@@end {current}":
                        current = None
                    else:
                        self.files[current].append(line)
                elif line.startswith("@@begin "):
                    current = line[len("@@begin ") :]
                    self.files[current] = []
                elif line.startswith("@@ "):
                    key, _, value = line[3:].partition(" ")
                    self.values[key] = value
        self._report = None

    def lines(self, name):
        return [line for line in self.files.get(name, []) if line]

    @property
    def report(self):
        if self._report is None:
            text = "\n".join(self.files.get("report", []))
            expect(text.strip(), "no JSON report")
            try:
                self._report = json.loads(text)
            except json.JSONDecodeError as error:
                raise Failed(f"the report is not JSON: {error}") from None
        return self._report

    def side_report(self, name):
        """The report of one of the guest's other runs (NAME_exit,
        NAME_stderr, NAME_report): it exited 0 and wrote JSON."""
        status = self.values.get(f"{name}_exit")
        expect(status == "0", f"exit status {status}: {self.lines(name + '_stderr')}")
        text = "\n".join(self.files.get(f"{name}_report", []))
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise Failed(f"the {name} report is not JSON: {error}") from None

    def warnings(self):
        """The warnings of every report that parses, by report: what the
        tool said went wrong, shown beside a failure."""
        said = {}
        decoder = json.JSONDecoder()
        for name in ["report"] + [f for f in self.files if f.endswith("_report")]:
            # One report, or one a line (--sample-count): each window's.
            text, at, window = "\n".join(self.files[name]), 0, 0
            while True:
                while at < len(text) and text[at].isspace():
                    at += 1
                if at == len(text):
                    break
                try:
                    report, at = decoder.raw_decode(text, at)
                except json.JSONDecodeError:
                    break
                window += 1
                warnings = report.get("warnings") if isinstance(report, dict) else None
                if warnings:
                    said[f"{name} {window}"] = warnings
        return said

    def interrupts(self, name):
        """A /proc/interrupts snapshot (interrupts_before or _after) as
        {first field: (per-CPU counts, other fields)}."""
        lines = self.lines(name)
        expect(lines, f"no {name}")
        cpus = len(lines[0].split())
        table = {}
        for line in lines[1:]:
            fields = line.split()
            counts = fields[1 : 1 + cpus]
            if all(count.isdigit() for count in counts):
                table[fields[0]] = ([int(count) for count in counts], fields[1 + cpus :])
        return table

    def threads(self, comm):
        return [t for t in self.report["threads"] if t["comm"] == comm]

    def only_thread(self, comm):
        threads = self.threads(comm)
        expect(len(threads) == 1, f"{len(threads)} threads named {comm!r}, not 1")
        return threads[0]


def fraction(thread, part):
    return thread["time"][part] / thread["time"]["observed_ns"]


def syscall_count(thread, names):
    return sum(s["count"] for s in thread["syscalls"] if s["name"] in names)


@check("kernel")
def booted_the_kernel(run):
    booted = run.values.get("kernel")
    expect(booted == run.kernel, f"booted {booted!r}, expected {run.kernel}")


@check("no-btf")
def no_btf_is_one_clear_line(run):
    """Without /sys/kernel/btf/vmlinux: one line on stderr, a non-zero exit,
    and the command is not run untraced."""
    status = run.values.get("nobtf_exit")
    expect(status not in (None, "0"), f"exit status {status} without BTF")
    stderr = run.lines("nobtf_stderr")
    expect(
        len(stderr) == 1 and "no BTF" in stderr[0] and "/sys/kernel/btf/vmlinux" in stderr[0],
        f"stderr without BTF was {stderr!r}",
    )
    expect(not run.lines("nobtf_stdout"), f"the command ran: {run.lines('nobtf_stdout')!r}")


@check("attach")
def attaches_and_reports(run):
    status = run.values.get("exit")
    expect(status == "0", f"kernel-delay exit status {status}: {run.lines('kernel_delay_stderr')}")
    report = run.report
    expect(report["schema"] == "kernel-delay/1", f"schema {report['schema']}")
    expect(report["kernel"] == run.kernel, f"report says kernel {report['kernel']}")
    expect(report["stop_reason"] == "target_exited", f"stop_reason {report['stop_reason']}")
    expect(report["lost_events"] == 0, f"{report['lost_events']} events lost")
    skipped = report["skipped_tracepoints"]
    expect(not skipped, f"tracepoints not attached: {skipped}")
    said = run.lines("workload_stdout")
    commands = [command for _, command, _ in CHECKS if command]
    expect(
        said.count("ready") == 1 and said.count("done") == len(commands),
        f"the workload said {said!r}",
    )
    # Every thread's budget adds up to its observed time, to the ns, and
    # its time behind others to the tasks it waited behind.
    for thread in report["threads"]:
        time = thread["time"]
        parts = sum(time[p] for p in ("running_ns", "ready_ns", "sleeping_ns", "blocked_ns", "stopped_ns"))
        expect(parts == time["observed_ns"], f"{thread['comm']}: parts {parts} != observed {time['observed_ns']}")
        expect(time["observed_ns"] <= report["duration_ns"], f"{thread['comm']} observed beyond the window")
        behind = sum(row["ns"] for row in thread["sched"]["ready_behind"])
        expect(behind == time["ready_busy_cpu_ns"], f"{thread['comm']}: behind {behind} != {time['ready_busy_cpu_ns']}")


BURST = 100_000


@check("burst", f"burst {BURST}")
def exact_syscall_count(run):
    calls = syscall_count(run.only_thread("burst"), {"getppid"})
    expect(calls == BURST, f"getppid counted {calls} times, not {BURST}")


SLEEPS, SLEEP_MS = 10, 20


@check("sleep", f"sleep {SLEEPS} {SLEEP_MS}")
def sleep_latency(run):
    sleeper = run.only_thread("sleeper")
    # Rust's thread::sleep is nanosleep(3), which libcs implement with
    # either system call.
    sleeps = [s for s in sleeper["syscalls"] if s["name"] in ("nanosleep", "clock_nanosleep")]
    expect(
        len(sleeps) == 1 and sleeps[0]["count"] == SLEEPS,
        f"sleep calls {[(s['name'], s['count']) for s in sleeps]}, not {SLEEPS}",
    )
    p50 = sleeps[0]["p50_ns"]
    expect(SLEEP_MS * MS <= p50 <= 500 * MS, f"sleep p50 {p50 / MS:.1f} ms, not {SLEEP_MS}..500 ms")
    expect(sleeper["sched"]["sleep"]["count"] >= SLEEPS, f"{sleeper['sched']['sleep']['count']} sleeps")
    sleeping = fraction(sleeper, "sleeping_ns")
    expect(sleeping > 0.7, f"sleeper asleep {sleeping:.0%} of its time")


SPINNERS, SPIN_MS = 2, 2000


@check("syscall-event")
def slow_sleeps_are_events_with_their_kernel_stack(run):
    """The guest traces with --syscall-events 15 ms (scripts/kernels/init): each of
    the sleeper's sleeps is an event whose kernel stack shows where it
    slept, symbolized from the guest's kallsyms, and whose user stack,
    unwound from kd-workload's call frame information (it has no frame
    pointers), reaches the Rust thread's start (musl's own thread start,
    past it, has no call frame information: the walk may stop there)."""
    events = [
        e
        for e in run.report.get("syscall_events", [])
        if e["comm"] == "sleeper" and e["name"] in ("nanosleep", "clock_nanosleep")
    ]
    expect(len(events) == SLEEPS, f"{len(events)} sleep events, not {SLEEPS}")
    for event in events:
        expect(event["duration_ns"] >= 15 * MS, f"an event of {event['duration_ns']} ns")
        stack = event["kernel_stack"]
        expect(
            any("nanosleep+" in frame for frame in stack),
            f"no nanosleep frame in the kernel stack {stack}",
        )
        user = event["user_stack"]
        expect(
            any("__rust_begin_short_backtrace" in frame for frame in user)
            and any("thread_start" in frame for frame in user),
            f"the user stack does not reach the thread's start: {user}",
        )


@check("kprobe-trigger")
def kprobe_triggers_open_and_close_a_window(run):
    """scripts/kernels/init traces `sleep 3 30` with --start-trigger
    k:hrtimer_nanosleep --stop-trigger kr:hrtimer_nanosleep: the window is
    the first sleep, from the kernel function's entry to its return."""
    report = run.side_report("kprobe")
    window = report.get("window") or {}
    expect(window.get("start_trigger") == "k:hrtimer_nanosleep", f"window {window}")
    expect(report["stop_reason"] == "stop_trigger", f"stop reason {report['stop_reason']}")
    length = window["close_ns"] - window["open_ns"]
    expect(25 * MS <= length <= 500 * MS, f"a window of {length / MS:.1f} ms for a 30 ms sleep")


@check("wakers")
def wakers_are_named(run):
    """scripts/kernels/init traces `sleep 10 20` with --wakers: the sleeper's
    wakeups are named, most by the timer interrupt (whose name depends on
    the architecture: LOCAL_TIMER, or arm64's timer IRQ handler), and add up
    to its wakeups; its waits behind other tasks add up to its time ready
    behind them."""
    report = run.side_report("wakers")
    sleepers = [t for t in report["threads"] if t["comm"] == "sleeper"]
    expect(len(sleepers) == 1, f"{len(sleepers)} sleeper threads")
    sched = sleepers[0]["sched"]
    woken_by = sched.get("woken_by")
    expect(woken_by is not None, "no woken_by with --wakers")
    counted = sum(row["count"] for row in woken_by)
    expect(counted == sched["wakeups"], f"woken_by counts {counted}, wakeups {sched['wakeups']}")
    by_irq = sum(row["count"] for row in woken_by if row["irq"])
    expect(by_irq >= 8, f"{by_irq} of 10 sleeps ended by an interrupt: {woken_by}")
    behind = sum(row["ns"] for row in sched["ready_behind"])
    ready = sleepers[0]["time"]["ready_busy_cpu_ns"]
    expect(behind == ready, f"ready behind {behind} ns, ready behind others {ready} ns")


@check("offcpu")
def sleeps_are_charged_to_where_they_slept(run):
    """scripts/kernels/init traces `sleep 10 20` with --off-cpu-stacks: the
    sleeper's stacks add up to its sleeping and blocked time, nearly all its
    sleep is in nanosleep's kernel stack, and, where tracing programs read
    user registers (5.15 and later), under the Rust thread's frames; the
    command's wait before the window has its stacks (the task iterator)."""
    status = run.values.get("offcpu_exit")
    expect(status == "0", f"exit status {status}: {run.lines('offcpu_stderr')}")
    report = run.side_report("offcpu")
    sleepers = [t for t in report["threads"] if t["comm"] == "sleeper"]
    expect(len(sleepers) == 1, f"{len(sleepers)} sleeper threads")
    sleeper = sleepers[0]
    stacks = sleeper.get("offcpu_stacks")
    expect(stacks is not None, "no offcpu_stacks with --off-cpu-stacks")
    for state, budget in (("sleeping", "sleeping_ns"), ("blocked", "blocked_ns")):
        charged = sum(row["ns"] for row in stacks if row["state"] == state)
        expect(charged == sleeper["time"][budget], f"{state}: {charged} ns charged, {sleeper['time'][budget]} in the budget")
    in_nanosleep = [
        row for row in stacks
        if row["state"] == "sleeping" and any("nanosleep" in frame for frame in row["kernel"])
    ]
    slept = sum(row["ns"] for row in in_nanosleep)
    expect(slept * 10 >= sleeper["time"]["sleeping_ns"] * 9, f"{slept} ns of sleep in nanosleep: {stacks}")
    major, minor = (int(part) for part in run.kernel.split(".")[:2])
    if (major, minor) >= (5, 15):
        expect(
            all(any("thread_start" in frame for frame in row["user"]) for row in in_nanosleep),
            f"user stacks without the thread's start: {in_nanosleep}",
        )
    # The command waited in kernel-delay's fork, reading a pipe, from before
    # the window until the probes were attached: the task iterator's stacks
    # (kernel stacks from 5.9, user stacks too from 5.18).
    main = [t for t in report["threads"] if t["tid"] == report["pid"]]
    expect(len(main) == 1, f"{len(main)} main threads")
    waits = [
        row for row in main[0].get("offcpu_stacks", [])
        if any("pipe_read" in frame for frame in row["kernel"])
    ]
    expect(len(waits) >= 1, f"no wait in pipe_read: {main[0].get('offcpu_stacks')}")
    if (major, minor) >= (5, 18):
        expect(all(row["user"] for row in waits), f"no user stack: {waits}")


@check("uprobe-trigger")
def uprobe_triggers_with_stacks_open_every_window(run):
    """scripts/kernels/init traces `probed 3 30 2000` with --syscall-events 20 ms,
    --sample-count 3, --start-trigger up:kd_probe_point and --stop-trigger
    ur:kd_probe_point: three windows, each one call of the function (three
    getppid() and a 30 ms sleep), the sleep an event with its stacks (the
    kernel's names nanosleep, the user stack the probed function)."""
    status = run.values.get("uprobe_exit")
    expect(status == "0", f"exit status {status}: {run.lines('uprobe_stderr')}")
    lines = run.files.get("uprobe_report", [])
    try:
        reports = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as error:
        raise Failed(f"the uprobe reports are not JSON lines: {error}") from None
    expect(len(reports) == 3, f"{len(reports)} windows reported, not 3")
    for report in reports:
        window = report.get("window") or {}
        expect(report["stop_reason"] == "stop_trigger", f"stop reason {report['stop_reason']}")
        expect(window.get("missed_windows") == 0, f"window {window}")
        probed = [t for t in report["threads"] if t["comm"] == "probed"]
        expect(len(probed) == 1, f"{len(probed)} probed threads")
        calls = {s["name"]: s["count"] for s in probed[0]["syscalls"]}
        expect(calls.get("getppid") == 3, f"calls in the window: {calls}")
        sleeps = [e for e in report.get("syscall_events", []) if e["comm"] == "probed"]
        expect(len(sleeps) == 1, f"{len(sleeps)} slow calls in the window")
        kernel, user = sleeps[0]["kernel_stack"], sleeps[0]["user_stack"]
        expect(any("nanosleep" in frame for frame in kernel), f"kernel stack {kernel}")
        expect(any("kd_probe_point" in frame for frame in user), f"user stack {user}")


@check("shared-cpu", f"spin {SPINNERS} {SPIN_MS}")
def ready_time_on_a_shared_cpu(run):
    """Two threads pinned to one CPU: each waits (ready) while the other
    runs, as the kernel's own /proc/TID/schedstat says too."""
    accounts = [line.split() for line in run.lines("workload_stdout") if line.startswith("schedstat ")]
    expect(len(accounts) == SPINNERS, f"{len(accounts)} schedstat lines, not {SPINNERS}")
    threads = {t["tid"]: t for t in run.report["threads"]}
    for _, tid, run_ns, wait_ns, _timeslices in accounts:
        spinner = threads.get(int(tid))
        expect(spinner is not None, f"spinner {tid} not in the report")
        name = f"{spinner['comm']} ({tid})"
        expect(spinner["exited"], f"{name} did not exit")
        observed = spinner["time"]["observed_ns"]
        expect(observed >= 0.95 * SPIN_MS * MS, f"{name} observed {observed / MS:.0f} ms")
        running, ready = fraction(spinner, "running_ns"), fraction(spinner, "ready_ns")
        expect(ready > 0.2, f"{name} ready {ready:.0%}, not > 20%")
        expect(running > 0.2, f"{name} running {running:.0%}, not > 20%")
        expect(running + ready > 0.97, f"{name} running + ready {running + ready:.0%}")
        for ours, theirs, what in ((running, int(run_ns), "running"), (ready, int(wait_ns), "ready")):
            expect(
                abs(ours - theirs / observed) < 0.05,
                f"{name} {what} {ours:.1%}, schedstat says {theirs / observed:.1%}",
            )


# The timer tick, as each architecture's kernel reports it: on x86 the
# local APIC timer, a system vector (the report's LOCAL_TIMER, no IRQ
# number; "LOC:" in /proc/interrupts); on arm64 the architected timer, a
# per-CPU device IRQ line named arch_timer.
TIMERS = {
    "x86_64": {"name": "LOCAL_TIMER", "device_irq": False, "line": lambda key, rest: key == "LOC:"},
    "aarch64": {"name": "arch_timer", "device_irq": True, "line": lambda key, rest: rest[-1:] == ["arch_timer"]},
}


@check("timer-irq")
def timer_ticks_on_the_spinners(run):
    """The shared-cpu spinners keep the last CPU busy: the periodic tick
    (CONFIG_HZ a second) interrupts them at least about HZ times a second
    of their running time, and they cannot have seen more timer interrupts
    than the kernel counted on that CPU over the session
    (/proc/interrupts). No bound from HZ above: the same timer interrupt
    also fires for the CPU's other high-resolution timers (other tasks'
    sleeps and timeouts), more of them when the emulating host is busy (a
    clean-clone CI run on arm64 6.1 saw 338 a second at HZ 250)."""
    machine = run.values.get("machine")
    expect(machine in TIMERS, f"no timer known for machine {machine!r}")
    timer = TIMERS[machine]
    spinners = [t for t in run.report["threads"] if t["comm"].startswith("spin-")]
    expect(len(spinners) == SPINNERS, f"{len(spinners)} spinners, not {SPINNERS}")
    ticks = [h for t in spinners for h in t["hardirqs"] if h["name"] == timer["name"]]
    count = sum(h["count"] for h in ticks)
    running_s = sum(t["time"]["running_ns"] for t in spinners) / 1e9
    hz = int(run.config.get("CONFIG_HZ", 0))
    expect(hz > 0, "the kernel's configuration has no CONFIG_HZ")
    expect(
        0.5 * hz * running_s <= count,
        f"{count} {timer['name']} interrupts on the spinners in {running_s:.2f} s running, HZ={hz}",
    )
    before, after = run.interrupts("interrupts_before"), run.interrupts("interrupts_after")
    lines = [key for key, (_, rest) in after.items() if timer["line"](key, rest)]
    expect(len(lines) == 1, f"timer lines in /proc/interrupts: {lines}")
    key = lines[0]
    last = len(after[key][0]) - 1
    kernel = after[key][0][last] - before.get(key, ([0] * (last + 1), []))[0][last]
    expect(count <= kernel, f"{count} {timer['name']} on the spinners, {kernel} on CPU {last} in /proc/interrupts")
    # A device IRQ is reported with its number, as /proc/interrupts has it;
    # a system vector has none.
    numbers = {h["irq"] for h in ticks}
    wanted = {int(key.rstrip(":"))} if timer["device_irq"] else {None}
    expect(numbers == wanted, f"{timer['name']} reported as IRQ {numbers}, /proc/interrupts says {key}")


DATAGRAMS = 5_000


@check("softirq", f"udp {DATAGRAMS}")
def net_rx_charged_to_the_sender(run):
    """Loopback UDP: the receive path, the NET_RX soft IRQ, runs in the
    sending thread's context and is charged to it, unless the kernel hands
    it to ksoftirqd (it does when soft IRQs keep coming, more so on a busy
    emulating host). The guest has no network card: kernel-delay's count of
    NET_RX on the CPUs the workload ran on (softirqs_system) is nearly all
    of the kernel's own (/proc/softirqs over the session, which holds the
    window), never more; what did not run in ksoftirqd ran in the sender;
    and kernel-delay sees NET_RX in ksoftirqd only if ksoftirqd ran in the
    session (its schedstat run time, read by the guest)."""
    sender = run.only_thread("udp-sender")
    net_rx = [s for s in sender["softirqs"] if s["name"] == "NET_RX"]
    count = sum(s["count"] for s in net_rx)
    kernel = int(run.values["net_rx_after"]) - int(run.values["net_rx_before"])
    ksoftirqd_ran_ns = int(run.values["ksoftirqd_after"]) - int(run.values["ksoftirqd_before"])
    system = [v for v in run.report["softirqs_system"]["vectors"] if v["name"] == "NET_RX"]
    seen = sum(v["count"] for v in system)
    deferred = sum(v["ksoftirqd_count"] for v in system)
    expect(kernel >= DATAGRAMS // 5, f"NET_RX {kernel} times in /proc/softirqs for {DATAGRAMS} datagrams")
    expect(
        0.9 * kernel <= seen <= kernel,
        f"NET_RX {seen} times in softirqs_system, {kernel} in /proc/softirqs",
    )
    expect(
        0.9 * (seen - deferred) <= count <= seen - deferred,
        f"NET_RX {count} times on udp-sender, {seen} in all, {deferred} of them in ksoftirqd",
    )
    expect(
        deferred == 0 or ksoftirqd_ran_ns > 0,
        f"NET_RX {deferred} times in ksoftirqd, which did not run (schedstat)",
    )
    expect(all(s["total_ns"] > 0 for s in net_rx), "NET_RX took no time")
    for thread in run.threads("kd-workload"):
        expect(
            not any(s["name"] == "NET_RX" for s in thread["softirqs"]),
            "NET_RX charged to the idle main thread",
        )


CHILDREN, CHILD_CALLS = 3, 500


@check("fork", f"fork {CHILDREN} {CHILD_CALLS}")
def forked_children_traced(run):
    """Launch mode follows forks: each child process the workload forks is
    traced from its first instruction, under its own pid."""
    children = [int(line.split()[1]) for line in run.lines("workload_stdout") if line.startswith("child ")]
    expect(len(children) == CHILDREN, f"{len(children)} children said, not {CHILDREN}")
    processes = {p["pid"]: p for p in run.report["processes"]}
    for child in children:
        process = processes.get(child)
        expect(process is not None, f"child {child} not among the processes")
        expect(process["ppid"] == run.report["pid"], f"child {child}'s parent {process['ppid']}")
        expect(process["forked"] and process["exited"], f"child {child}: {process}")
        calls = sum(syscall_count(t, {"getppid"}) for t in run.report["threads"] if t["pid"] == child)
        expect(calls == CHILD_CALLS, f"child {child} made {calls} getppid, not {CHILD_CALLS}")


@check("complete")
def no_program_run_skipped(run):
    """No report says that the kernel skipped runs of one of kernel-delay's
    programs (its own count, 5.12+): what they would have recorded is
    missing."""
    incomplete = [
        report
        for report, warnings in run.warnings().items()
        if any("the kernel skipped" in w for w in warnings)
    ]
    expect(not incomplete, f"records missing in {', '.join(incomplete)} (their warnings below)")


def verify(path, kernel, config, note):
    label = f"{kernel} ({note})" if note else kernel
    try:
        run = Run(path, kernel, config)
    except OSError as error:
        print(f"FAIL {label}: cannot read {error.filename}: {error.strerror}")
        return 1
    details = f"{note}; " if note else ""
    if run.values.get("finished") != "yes":
        print(f"FAIL {label}: the guest did not finish (no output, crash or timeout)")
        return 1
    failures = []
    for name, _, function in CHECKS:
        try:
            function(run)
        except Failed as failure:
            failures.append(f"{name}: {failure}")
        except (KeyError, TypeError, ValueError) as error:
            failures.append(f"{name}: malformed report ({error!r})")
    if failures:
        warnings = run.warnings()
        if warnings:
            failures.append(f"the reports' warnings: {warnings}")
        print(f"FAIL {label}: " + "; ".join(failures))
        return 1
    names = ", ".join(name for name, _, _ in CHECKS)
    print(f"PASS {kernel} ({details}checks: {names})")
    return 0


def main(argv):
    if argv[1:2] == ["commands"]:
        for _, command, _ in CHECKS:
            if command:
                print(command)
        return 0
    if argv[1:2] == ["verify"] and len(argv) in (5, 6):
        return verify(argv[2], argv[3], argv[4], argv[5] if len(argv) == 6 else "")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
