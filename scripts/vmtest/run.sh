#!/usr/bin/env bash
# `make vmtest`: runs vmtest itself (danobi/vmtest, the pinned version
# below) on the committed vmtest.toml, as a user's CI would: its kernel-mode
# target boots the kernel scripts/vmtest/kernel.sh builds, its image-mode
# target the Debian image scripts/vmtest/image.sh builds, and each traces
# kd-workload with the static kernel-delay into a JSON report that
# scripts/vmtest/check.py then checks on the host. Prints the time of each
# step; exits 1 if a target or a check failed. With --prepare, only
# installs vmtest and builds the kernel and the image (all cached).
#
# vmtest asks QEMU for KVM whenever /dev/kvm exists. Where QEMU cannot use
# it (this project's CI machines: "failed to set MSR 0x10a"), vmtest runs in
# a mount namespace whose /dev has no kvm node, so that it emulates (TCG).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
who="vmtest"
# shellcheck source=scripts/vmtest/common.sh
. scripts/vmtest/common.sh

vmtest_version=0.18.0
vmtest=$cache/vmtest-$vmtest_version/bin/vmtest
work=$root/target/vmtest
bin_dir=$root/target/x86_64-unknown-linux-musl/release

times=()
timed() {
    local name=$1 start=$SECONDS
    shift
    "$@"
    times+=("$name: $((SECONDS - start)) s")
}

if [[ ${1:-} != --prepare ]]; then
    for bin in kernel-delay kd-workload; do
        [[ -x $bin_dir/$bin ]] || die "$bin_dir/$bin is missing: run make build"
    done
fi
for tool in qemu-system-x86_64 qemu-ga mmdebstrap extlinux unshare; do
    command -v "$tool" >/dev/null || die "$tool is missing (make vmtest installs it)"
done
mkdir -p "$work"

install_vmtest() {
    if [[ -x $vmtest ]]; then
        say "vmtest $vmtest_version: $vmtest"
        return
    fi
    say "cargo install vmtest $vmtest_version"
    cargo install --quiet --locked --version "$vmtest_version" --root "$cache/vmtest-$vmtest_version" vmtest
}
# What downloads first (the image's packages, vmtest's crates), the
# kernel's long build last: .ci/run stops this step while it measures
# timing, which a download could not sit through.
timed "image" scripts/vmtest/image.sh
timed "vmtest $vmtest_version" install_vmtest
timed "kernel" scripts/vmtest/kernel.sh
[[ ${1:-} != --prepare ]] || {
    printf 'vmtest: %s\n' "${times[@]}"
    exit 0
}

# Can QEMU use KVM here? The kernel, booted with KVM, panics at once (no
# root) and QEMU exits; where KVM cannot run a guest, QEMU aborts.
kvm_works() {
    [[ -e /dev/kvm ]] || return 1
    # (In a shell of its own: QEMU's abort is that shell's to tell, in the log.)
    bash -c 'timeout 60 qemu-system-x86_64 -enable-kvm -cpu host -m 256M -display none \
        -nodefaults -no-reboot -serial none -kernel "$1" -append panic=-1
        exit $?' kvm-probe "$work/bzImage" >"$work/kvm-probe.log" 2>&1
}

# vmtest with $@, its /dev without kvm if QEMU cannot use it.
run_vmtest() {
    if [[ ! -e /dev/kvm ]] || kvm_works; then
        "$vmtest" "$@"
        return
    fi
    say "QEMU cannot use /dev/kvm here ($(grep -m1 -i 'error\|fail' "$work/kvm-probe.log" || echo "probe failed")): vmtest runs under TCG, /dev/kvm hidden from it"
    local dev=$work/dev
    mkdir -p "$dev"
    local status=0
    unshare --mount --propagation private bash -euc '
        dev=$1
        shift
        mount -t tmpfs -o mode=755 kd-vmtest-dev "$dev"
        cp -a /dev/. "$dev/" 2>/dev/null || true
        rm -f "$dev/kvm"
        for sub in pts shm mqueue; do
            if mountpoint -q "/dev/$sub"; then
                mkdir -p "$dev/$sub"
                mount --rbind "/dev/$sub" "$dev/$sub"
            fi
        done
        mount --move "$dev" /dev
        exec "$@"
    ' vmtest-without-kvm "$dev" "$vmtest" "$@" || status=$?
    rmdir "$dev"
    return "$status"
}

rm -f "$work"/kernel-mode.json "$work"/image-mode.json
status=0
VMTEST_NO_UI=1 timed "vmtest.toml's targets" run_vmtest -c "$root/vmtest.toml" || status=$?
[[ $status -eq 0 ]] || say "vmtest: $status target(s) failed"
timed "check" python3 scripts/vmtest/check.py \
    "$work/kernel-mode.json" "$(cat "$work/kernel-release")" \
    "$work/image-mode.json" "$(cat "$work/image-kernel")" || status=1
printf 'vmtest: %s\n' "${times[@]}"
exit $((status != 0))
