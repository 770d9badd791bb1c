#!/usr/bin/env python3
"""Checks the reports vmtest.toml's targets wrote: each is kernel-delay's
JSON of kd-workload's 1000 getppid() calls, traced on the kernel it names.

usage: check.py REPORT KERNEL_PREFIX [REPORT KERNEL_PREFIX ...]

Per report: made on a kernel whose release starts with KERNEL_PREFIX (the
guest's, not the host's); nothing lost; the worker thread made exactly
1000 getppid() calls; every thread's time budget adds up to the time it
was observed. Prints one PASS or FAIL line per report; exits 1 if any
failed.
"""
import json
import sys

STATES = ("running", "ready_busy_cpu", "ready_idle_cpu", "sleeping", "blocked", "stopped")


def problems(report, kernel_prefix):
    if not report["kernel"].startswith(kernel_prefix):
        yield f"traced on {report['kernel']}, not {kernel_prefix}*"
    if report["lost_events"]:
        yield f"{report['lost_events']} events lost"
    getppid = [
        call["count"]
        for thread in report["threads"]
        for call in thread["syscalls"]
        if call["name"] == "getppid"
    ]
    if getppid != [1000]:
        yield f"getppid() counts {getppid}, not [1000]"
    for thread in report["threads"]:
        time = thread["time"]
        spent = sum(time[f"{state}_ns"] for state in STATES)
        if spent != time["observed_ns"]:
            yield f"thread {thread['tid']}: {spent} ns by state of {time['observed_ns']} observed"


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        raise SystemExit(__doc__)
    failed = False
    for path, kernel_prefix in zip(argv[::2], argv[1::2]):
        try:
            with open(path) as f:
                report = json.load(f)
            found = list(problems(report, kernel_prefix))
        except (OSError, ValueError, KeyError) as err:
            found = [f"no report: {err}"]
        if found:
            failed = True
            print(f"FAIL {path}: " + "; ".join(found))
        else:
            print(f"PASS {path}: kernel {report['kernel']}, 1000 getppid(), {report['events']} events, 0 lost")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
