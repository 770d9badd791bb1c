#!/usr/bin/env bash
# Shared by check-static.sh and check-image.sh: KERNEL_DELAY traces
# `KD_WORKLOAD run 5000 0` on this machine's kernel (as root) and counts
# exactly 5000 getppid() calls, none lost. Prints one line saying so, or
# what went wrong on stderr, and exits non-zero.
# Usage: scripts/check-trace.sh KERNEL_DELAY KD_WORKLOAD
set -euo pipefail
kernel_delay=${1:?usage: check-trace.sh KERNEL_DELAY KD_WORKLOAD}
workload=${2:?usage: check-trace.sh KERNEL_DELAY KD_WORKLOAD}
report=$(mktemp)
trap 'rm -f "$report"' EXIT
if ! "$kernel_delay" --json -o "$report" -- "$workload" run 5000 0 >/dev/null 2>&1; then
    echo "$kernel_delay could not trace $workload on $(uname -r)" >&2
    exit 1
fi
python3 - "$report" <<'PY' || { echo "wrong report from $kernel_delay on $(uname -r)" >&2; exit 1; }
import json, sys
report = json.load(open(sys.argv[1]))
calls = sum(s["count"] for t in report["threads"] for s in t["syscalls"] if s["name"] == "getppid")
assert calls == 5000 and report["lost_events"] == 0, (calls, report["lost_events"])
PY
echo "traced 5000 getppid() exactly on $(uname -r)"
