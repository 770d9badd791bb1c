#!/usr/bin/env bash
# The test for `make static` and `make static-aarch64`: the binaries are
# static and they run. Binaries for another architecture (aarch64 on an
# x86_64 machine) run under qemu-user (qemu-aarch64-static, called directly:
# binfmt_misc may be unavailable); they cannot trace this machine's kernel,
# `make kernels` boots arm64 kernels for that.
# Usage: scripts/static/check.sh DIR   (DIR holds kernel-delay and kd-workload)
set -euo pipefail
dir=${1:?usage: check-static.sh DIR}
fail() { echo "check-static: FAIL: $*" >&2; exit 1; }

machine=$(LC_ALL=C readelf -h "$dir/kernel-delay" | sed -n 's/^ *Machine: *//p')
case $machine in
    *X86-64*) arch=x86_64 ;;
    *AArch64*) arch=aarch64 ;;
    *) fail "kernel-delay is built for an unknown machine: $machine" ;;
esac
run=()
if [[ $arch != "$(uname -m)" ]]; then
    run=("qemu-$arch-static")
    command -v "${run[0]}" >/dev/null || fail "${run[0]} is missing (install qemu-user-static)"
fi

for bin in kernel-delay kd-workload; do
    out=$(file -L "$dir/$bin")
    echo "$out"
    case $out in
        *"static-pie linked"* | *"statically linked"*) ;;
        *) fail "$bin is not static" ;;
    esac
    # No program interpreter: nothing for a dynamic loader to find.
    if LC_ALL=C readelf -l "$dir/$bin" | grep -q 'Requesting program interpreter'; then
        fail "$bin has a program interpreter"
    fi
done
# Size in bytes and MiB, as documented in docs/building.md.
size=$(stat -c %s "$dir/kernel-delay")
awk -v s="$size" 'BEGIN { printf "kernel-delay: %d bytes (%.1f MiB)\n", s, s / 1048576 }'

version=$("${run[@]}" "$dir/kernel-delay" --version) || fail "kernel-delay --version failed"
[[ $version == "kernel-delay "* ]] || fail "unexpected --version output: $version"
echo "$version"
set +e
"${run[@]}" "$dir/kd-workload" run 10 7 >/dev/null
code=$?
set -e
[[ $code -eq 7 ]] || fail "kd-workload run 10 7 exited $code, not 7"

# Root on a kernel with BTF: trace for real on this machine's kernel too
# (`make test` runs every end-to-end test with this same binary).
if [[ ${#run[@]} -eq 0 && $(id -u) -eq 0 && -e /sys/kernel/btf/vmlinux ]]; then
    "$(dirname "$0")/../check-trace.sh" "$dir/kernel-delay" "$dir/kd-workload" || fail "see above"
fi
echo "check-static: OK ($arch)"
