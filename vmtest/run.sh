#!/usr/bin/env bash
# `make vmtest`: proves the static kernel-delay on other kernels. For each
# Debian kernel package it downloads the package (apt-get download, cached
# under target/vmtest), boots its vmlinuz under QEMU (TCG: no KVM needed)
# with an initramfs holding busybox, kernel-delay, kd-workload and
# vmtest/init, and checks what the guest reports (vmtest/checks.py).
# Prints one "PASS <kernel>" or "FAIL <kernel>: reason" line per kernel and
# exits 1 if any failed.
#
# Usage: vmtest/run.sh [[SUITE:]PACKAGE...]
#   PACKAGE: a linux-image package, either a meta package, resolved to the
#   concrete one it currently depends on, or a concrete one such as
#   linux-image-6.1.0-50-amd64. SUITE: another Debian release to take it
#   from (e.g. bullseye), through an apt configuration of its own under
#   target/vmtest/apt/SUITE: the machine's apt sources are not touched.
#   Default: linux-image-amd64 (bookworm's 6.1), linux-image-6.12-amd64
#   (6.12 from bookworm-security) and bullseye:linux-image-amd64 (Debian
#   11's 5.10).
# Environment: BIN_DIR (the static binaries; default
#   target/x86_64-unknown-linux-musl/release), VMTEST_TIMEOUT (seconds per
#   boot, default 120).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin_dir=${BIN_DIR:-$root/target/x86_64-unknown-linux-musl/release}
timeout=${VMTEST_TIMEOUT:-120}
work=$root/target/vmtest

say() { echo "vmtest: $*"; }
die() {
    echo "vmtest: $*" >&2
    exit 1
}
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

[[ $(uname -m) == x86_64 ]] || die "boots amd64 kernels with qemu-system-x86_64: x86_64 hosts only"
for tool in qemu-system-x86_64 busybox python3 file apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || die "$tool is missing (make vmtest installs it)"
done
busybox=$(command -v busybox)
file -L "$busybox" | grep -Eq 'statically linked|static-pie linked' ||
    die "$busybox is not static: install busybox-static"
for bin in kernel-delay kd-workload; do
    [[ -x $bin_dir/$bin ]] || die "$bin_dir/$bin is missing: run make static"
    file -L "$bin_dir/$bin" | grep -Eq 'statically linked|static-pie linked' ||
        die "$bin_dir/$bin is not static"
done
[[ $# -gt 0 ]] || set -- linux-image-amd64 linux-image-6.12-amd64 bullseye:linux-image-amd64

# ---- kernels ----------------------------------------------------------------

# Another Debian release's packages: an apt configuration of its own
# (sources, lists and cache under target/vmtest/apt/SUITE), for the apt
# commands below through APT_CONFIG. Signed by Debian's archive keyring.
private_apt() {
    local suite=$1 dir=$work/apt/$1
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    cat >"$dir/sources.list" <<SOURCES
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $suite-security main
SOURCES
    cat >"$dir/apt.conf" <<CONF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State::Lists "$dir/lists";
Dir::Cache "$dir/cache";
CONF
    echo "$dir/apt.conf"
}

updated=()
apt_update() {
    local key=${APT_CONFIG:-default}
    [[ " ${updated[*]} " != *" $key "* ]] || return 1
    say "apt-get update${APT_CONFIG:+ ($APT_CONFIG)}" >&2
    as_root env ${APT_CONFIG:+APT_CONFIG=$APT_CONFIG} apt-get update -qq
    updated+=("$key")
}

# Sets $resolved to the concrete linux-image package that a meta package
# depends on now (mirror versions move); a package that is not a meta
# package stands for itself.
resolve() {
    local package=$1 candidate depends
    candidate=$(apt-cache policy "$package" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [[ -z $candidate || $candidate == "(none)" ]]; then
        apt_update || return 1
        candidate=$(apt-cache policy "$package" 2>/dev/null | sed -n 's/^ *Candidate: //p')
        [[ -n $candidate && $candidate != "(none)" ]] || return 1
    fi
    depends=$(apt-cache show "$package=$candidate" |
        sed -n 's/^Depends: \(linux-image-[0-9][^ ,]*\).*/\1/p' | head -1)
    resolved=${depends:-$package}
}

# Puts vmlinuz, config and the package version in target/vmtest/kernels/KVER/.
fetch() {
    local package=$1 kver=$2 dir=$work/kernels/$2 tmp deb
    [[ -s $dir/vmlinuz && -s $dir/version ]] && return 0
    tmp=$work/download
    rm -rf "$tmp" && mkdir -p "$tmp"
    say "downloading $package"
    # As root, apt would hand the download to its sandbox user _apt, which
    # cannot write here.
    local apt_opts=()
    [[ $(id -u) -ne 0 ]] || apt_opts=(-o APT::Sandbox::User=root)
    if ! (cd "$tmp" && apt-get download -qq "${apt_opts[@]}" "$package"); then
        apt_update || return 1
        (cd "$tmp" && apt-get download -qq "${apt_opts[@]}" "$package") || return 1
    fi
    deb=$(echo "$tmp"/*.deb)
    mkdir -p "$dir.new"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "./boot/vmlinuz-$kver" "./boot/config-$kver"
    mv "$tmp/boot/vmlinuz-$kver" "$dir.new/vmlinuz"
    mv "$tmp/boot/config-$kver" "$dir.new/config"
    dpkg-deb -f "$deb" Version >"$dir.new/version"
    rm -rf "$dir" "$tmp" && mv "$dir.new" "$dir"
}

# ---- initramfs (one for all kernels) ----------------------------------------

initramfs=$work/initramfs.cpio.gz
build_initramfs() {
    local tree=$work/initramfs
    rm -rf "$tree"
    mkdir -p "$tree"/{bin,dev,proc,sys,tmp}
    cp "$busybox" "$tree/bin/busybox"
    ln -s busybox "$tree/bin/sh"
    cp "$bin_dir/kernel-delay" "$bin_dir/kd-workload" "$tree/"
    cp vmtest/init "$tree/init"
    chmod 755 "$tree/init"
    python3 vmtest/checks.py commands >"$tree/commands"
    (cd "$tree" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$initramfs"
}

# ---- boot and check ----------------------------------------------------------

# Boots KVER once; the guest writes to $logs/KVER.data. Single-threaded
# TCG: with one host thread per vCPU, a vCPU can run kernel text another
# vCPU is patching (attaching a tracepoint does) and die on a stale int3.
qemu() {
    local kver=$1 dir=$work/kernels/$1 logs=$work/logs
    rm -f "$logs/$kver.console" "$logs/$kver.data"
    timeout "$timeout" qemu-system-x86_64 \
        -accel tcg,thread=single -cpu max -smp 2 -m 1G \
        -display none -monitor none -nic none -no-reboot \
        -serial "file:$logs/$kver.console" -serial "file:$logs/$kver.data" \
        -kernel "$dir/vmlinuz" -initrd "$initramfs" \
        -append 'console=ttyS0 panic=-1' \
        >"$logs/$kver.qemu" 2>&1
}

# Boots KVER and checks; prints its PASS/FAIL line; returns 1 on FAIL.
boot() {
    local kver=$1 logs=$work/logs start elapsed status=0 note
    mkdir -p "$logs"
    rm -f "$logs/$kver.console.first"
    start=$(date +%s%N)
    qemu "$kver" || status=$?
    note="Debian $(cat "$work/kernels/$kver/version")"
    # Under TCG on a busy host, a kernel can trip over its own boot-time
    # code patching (an int3 Oops before user space starts): that says
    # nothing about kernel-delay, so such a boot is tried once more. A crash
    # once /init has run is never retried.
    if ! grep -q '^@@ kernel ' "$logs/$kver.data" 2>/dev/null; then
        say "$kver: the guest never reached /init (qemu status $status); booting it again"
        mv "$logs/$kver.console" "$logs/$kver.console.first" 2>/dev/null || true
        start=$(date +%s%N)
        status=0
        qemu "$kver" || status=$?
        note="$note, second boot"
    fi
    elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
    note="$note, $((elapsed / 1000)).$(( (elapsed % 1000) / 100 )) s"
    [[ $status -ne 124 ]] || note="$note, timed out after ${timeout} s"
    if python3 vmtest/checks.py verify "$logs/$kver.data" "$kver" "$note"; then
        return 0
    fi
    echo "  console: $logs/$kver.console, guest data: $logs/$kver.data; console tail:"
    tail -n 15 "$logs/$kver.console" | tr -d '\r' | sed 's/^/  | /'
    return 1
}

build_initramfs
say "initramfs $(du -h "$initramfs" | cut -f1) ($(python3 vmtest/checks.py commands | paste -sd, -))"
failed=0
kernels=()
for spec in "$@"; do
    package=${spec#*:}
    unset APT_CONFIG
    [[ $spec != *:* ]] || export APT_CONFIG=$(private_apt "${spec%%:*}")
    if ! resolve "$package"; then
        echo "FAIL $spec: no such package in the apt sources"
        failed=1
        continue
    fi
    kver=${resolved#linux-image-}
    if ! fetch "$resolved" "$kver"; then
        echo "FAIL $kver: could not download $resolved"
        failed=1
        continue
    fi
    grep -q '^CONFIG_DEBUG_INFO_BTF=y' "$work/kernels/$kver/config" ||
        say "note: $kver is built without BTF: kernel-delay cannot trace there"
    kernels+=("$kver")
done
for kver in "${kernels[@]}"; do
    boot "$kver" || failed=1
done
exit "$failed"
