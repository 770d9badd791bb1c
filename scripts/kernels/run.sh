#!/usr/bin/env bash
# `make kernels`: proves the static kernel-delay on other kernels and on
# another architecture. For each Debian kernel package it downloads the
# package (apt-get download, cached under target/kernels), boots its vmlinuz
# under QEMU (TCG: no KVM needed) with an initramfs holding busybox,
# kernel-delay, kd-workload and scripts/kernels/init, and checks what the guest
# reports (scripts/kernels/checks.py). amd64 kernels boot in qemu-system-x86_64 with
# the x86_64 binaries, arm64 kernels in qemu-system-aarch64 (-M virt) with
# the aarch64 ones. Prints one "PASS <kernel> (<arch>: ...)" or
# "FAIL <kernel> (<arch>: ...): reason" line per kernel and exits 1 if any
# failed.
#
# Usage: scripts/kernels/run.sh [[SUITE:]PACKAGE...]
#   PACKAGE: a linux-image package, either a meta package, resolved to the
#   concrete one it currently depends on, or a concrete one such as
#   linux-image-6.1.0-50-amd64. Its name ends in its architecture (Debian's
#   flavours: -amd64, -cloud-amd64, -arm64, ...). SUITE: another Debian
#   release to take it from (e.g. bullseye). Packages of another release or
#   architecture come through apt configurations of their own
#   (scripts/debian-packages.sh): the machine's apt sources are not touched.
#   Default: linux-image-amd64 (bookworm's 6.1), linux-image-6.12-amd64
#   (6.12 from bookworm-security), bullseye:linux-image-amd64 (Debian 11's
#   5.10), linux-image-arm64 and linux-image-6.12-arm64 (the same two for
#   arm64).
# Environment: BIN_DIR, BIN_DIR_AARCH64 (the static binaries; default
#   target/x86_64-unknown-linux-musl/release and
#   target/cross/aarch64-unknown-linux-musl/release), KERNELS_TIMEOUT (seconds
#   per boot, default 300 on amd64, 600 on arm64: a boot and its checks
#   take 20-60 s, but emulation on a host whose CPUs are busy elsewhere is
#   several times slower, and arm64's slower still).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$root/target/kernels

say() { echo "kernels: $*"; }
die() {
    echo "kernels: $*" >&2
    exit 1
}
# shellcheck source=scripts/debian-packages.sh
. scripts/debian-packages.sh

[[ $(uname -m) == x86_64 ]] || die "boots kernels with x86_64 builds of QEMU and binaries: x86_64 hosts only"
for tool in python3 file apt-get dpkg-deb xz; do
    command -v "$tool" >/dev/null || die "$tool is missing (make kernels installs it)"
done
[[ $# -gt 0 ]] || set -- linux-image-amd64 linux-image-6.12-amd64 bullseye:linux-image-amd64 \
    linux-image-arm64 linux-image-6.12-arm64

is_static() { file -L "$1" | grep -Eq 'statically linked|static-pie linked'; }

# ---- architectures -------------------------------------------------------------

# What differs between the guests, by Debian architecture: the emulator and
# its machine, the console, the port the guest writes its data to (a second
# serial port on x86; on arm64's virt machine, which has one UART, a virtio
# console), the kernel modules that port needs where Debian builds its
# drivers as modules, and the binaries.
arch_setup() {
    arch=$1
    case $arch in
        amd64)
            machine=x86_64
            # Single-threaded TCG (both architectures): with one host thread
            # per vCPU, a vCPU can run kernel text another vCPU is patching
            # (attaching a tracepoint does): here it died on a stale int3.
            qemu_cmd=(qemu-system-x86_64 -accel tcg,thread=single -cpu max)
            console=ttyS0
            data_port=ttyS1
            data_args() { echo -serial "file:$1"; }
            data_modules=()
            bin_dir=${BIN_DIR:-$root/target/x86_64-unknown-linux-musl/release}
            boot_timeout=${KERNELS_TIMEOUT:-300}
            ;;
        arm64)
            machine=aarch64
            # -cpu max with the cheap pointer-authentication algorithm: the
            # architected one (QARMA) is slow to emulate. Single-threaded
            # TCG, as on amd64: with a host thread per vCPU, two loaded runs
            # each lost every context switch of one CPU for one
            # kernel-delay run (seemingly that vCPU went on running the
            # tracepoint's call site as it was before attaching patched it).
            qemu_cmd=(qemu-system-aarch64 -M virt -accel tcg,thread=single -cpu max,pauth-impdef=on)
            console=ttyAMA0
            # A virtio serial port, not a console (hvc0): the console's node
            # exists before its port is ready, and opening it early fails
            # with ENODEV; a serial port's node appears with the port.
            data_port=virtio:kd.data
            data_args() {
                echo -device virtio-serial-pci -chardev "file,id=data,path=$1" -device virtserialport,chardev=data,name=kd.data
            }
            # Dependencies first; those built into a kernel are not in its
            # package and are skipped.
            data_modules=(virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console)
            bin_dir=${BIN_DIR_AARCH64:-$root/target/cross/aarch64-unknown-linux-musl/release}
            boot_timeout=${KERNELS_TIMEOUT:-600}
            ;;
        *) return 1 ;;
    esac
}

# The architecture a kernel package is built for, from its name.
package_arch() {
    case $1 in
        *-amd64) echo amd64 ;;
        *-arm64) echo arm64 ;;
        *) return 1 ;;
    esac
}

# A static busybox for the guest: the machine's own for amd64, the
# busybox-static package of the machine's release for another architecture
# (downloaded and unpacked, not installed).
busybox_for() {
    local arch=$1 dir=$work/busybox/$1
    if [[ $arch == "$debian_host_arch" ]]; then
        command -v busybox || return 1
        return 0
    fi
    if [[ ! -x $dir/bin/busybox ]]; then
        rm -rf "$dir" && mkdir -p "$dir/deb"
        (
            APT_CONFIG=$(debian_apt "$debian_host_suite" "$arch")
            export APT_CONFIG
            say "downloading busybox-static:$arch" >&2
            debian_download busybox-static "$dir/deb" >&2
        ) || return 1
        dpkg-deb -x "$dir"/deb/*.deb "$dir"
    fi
    echo "$dir/bin/busybox"
}

# ---- kernels ----------------------------------------------------------------

# Puts vmlinuz, config, the package version and the data port's modules
# (modules/N-NAME.ko, decompressed, N their load order) in
# target/kernels/kernels/KVER/.
fetch() {
    local package=$1 kver=$2 dir=$work/kernels/$2 tmp deb n=0 module path wanted=()
    [[ -s $dir/vmlinuz && -s $dir/version && -s $dir/arch ]] && return 0
    tmp=$work/download
    rm -rf "$tmp" && mkdir -p "$tmp/tree"
    say "downloading $package"
    debian_download "$package" "$tmp" || return 1
    deb=$(echo "$tmp"/*.deb)
    rm -rf "$dir.new" && mkdir -p "$dir.new/modules"
    for module in "${data_modules[@]}"; do
        wanted+=("*/modules/$kver/*/$module.ko*")
    done
    dpkg-deb --fsys-tarfile "$deb" |
        tar -x -C "$tmp/tree" --wildcards "./boot/vmlinuz-$kver" "./boot/config-$kver" "${wanted[@]}" 2>/dev/null
    # (tar fails on the modules a kernel has built in: they are not there.)
    [[ -s $tmp/tree/boot/vmlinuz-$kver && -s $tmp/tree/boot/config-$kver ]] || return 1
    mv "$tmp/tree/boot/vmlinuz-$kver" "$dir.new/vmlinuz"
    mv "$tmp/tree/boot/config-$kver" "$dir.new/config"
    for module in "${data_modules[@]}"; do
        n=$((n + 1))
        path=$(find "$tmp/tree" -name "$module.ko*" | head -1)
        [[ -n $path ]] || continue
        case $path in
            *.ko.xz) xz -dc "$path" ;;
            *.ko) cat "$path" ;;
            *) return 1 ;;
        esac >"$dir.new/modules/$n-$module.ko"
    done
    dpkg-deb -f "$deb" Version >"$dir.new/version"
    echo "$arch" >"$dir.new/arch"
    rm -rf "$dir" "$tmp" && mv "$dir.new" "$dir"
}

# ---- initramfs: one per architecture, plus each kernel's modules ---------------

# Builds target/scripts/kernels/initramfs-ARCH.cpio.gz (of the current arch_setup).
build_initramfs() {
    local tree=$work/initramfs-$arch busybox bin
    busybox=$(busybox_for "$arch") || die "no static busybox for $arch"
    is_static "$busybox" || die "$busybox is not static: install busybox-static"
    for bin in kernel-delay kd-workload; do
        [[ -x $bin_dir/$bin ]] || die "$bin_dir/$bin is missing: run $([[ $machine == x86_64 ]] && echo make static || echo make static-aarch64)"
        is_static "$bin_dir/$bin" || die "$bin_dir/$bin is not static"
        file -L "$bin_dir/$bin" | grep -q "${machine/_/-}" || die "$bin_dir/$bin is not built for $machine"
    done
    rm -rf "$tree"
    mkdir -p "$tree"/{bin,dev,proc,sys,tmp}
    cp "$busybox" "$tree/bin/busybox"
    ln -s busybox "$tree/bin/sh"
    cp "$bin_dir/kernel-delay" "$bin_dir/kd-workload" "$tree/"
    cp scripts/kernels/init "$tree/init"
    chmod 755 "$tree/init"
    python3 scripts/kernels/checks.py commands >"$tree/commands"
    cpio_gz "$tree" >"$work/initramfs-$arch.cpio.gz"
}

# The directory $1 as a gzip'ed newc cpio archive, on stdout.
cpio_gz() {
    (cd "$1" && find . | LC_ALL=C sort | busybox cpio -o -H newc 2>/dev/null) | gzip -1
}

# The initrd for KVER: its architecture's initramfs, then (the kernel
# unpacks concatenated archives in turn) its modules under /modules.
initrd_for() {
    local kver=$1 dir=$work/kernels/$1 initrd=$work/initrd-$1
    cp "$work/initramfs-$arch.cpio.gz" "$initrd"
    if compgen -G "$dir/modules/*.ko" >/dev/null; then
        rm -rf "$work/modules-tree" && mkdir -p "$work/modules-tree"
        cp -r "$dir/modules" "$work/modules-tree/modules"
        cpio_gz "$work/modules-tree" >>"$initrd"
        rm -rf "$work/modules-tree"
    fi
    echo "$initrd"
}

# ---- boot and check ----------------------------------------------------------

# Boots KVER once; the guest writes to $logs/KVER.data.
qemu() {
    local kver=$1 dir=$work/kernels/$1 logs=$work/logs
    rm -f "$logs/$kver.console" "$logs/$kver.data"
    # shellcheck disable=SC2046 # data_args prints separate arguments
    timeout "$boot_timeout" "${qemu_cmd[@]}" -smp 2 -m 1G \
        -display none -monitor none -nic none -no-reboot \
        -serial "file:$logs/$kver.console" $(data_args "$logs/$kver.data") \
        -kernel "$dir/vmlinuz" -initrd "$(initrd_for "$kver")" \
        -append "console=$console panic=-1 kd_data=$data_port" \
        >"$logs/$kver.qemu" 2>&1
}

# Boots KVER and checks; prints its PASS/FAIL line; returns 1 on FAIL.
boot() {
    local kver=$1 logs=$work/logs start elapsed status=0 note
    mkdir -p "$logs"
    rm -f "$logs/$kver.console.first"
    start=$(date +%s%N)
    qemu "$kver" || status=$?
    note="$machine: Debian $(cat "$work/kernels/$kver/version")"
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
    [[ $status -ne 124 ]] || note="$note, timed out after ${boot_timeout} s"
    if python3 scripts/kernels/checks.py verify "$logs/$kver.data" "$kver" "$work/kernels/$kver/config" "$note"; then
        return 0
    fi
    echo "  console: $logs/$kver.console, guest data: $logs/$kver.data; console tail:"
    tail -n 15 "$logs/$kver.console" | tr -d '\r' | sed 's/^/  | /'
    return 1
}

failed=0
kernels=()
for spec in "$@"; do
    package=${spec#*:}
    suite=$debian_host_suite
    [[ $spec != *:* ]] || suite=${spec%%:*}
    if ! arch_setup "$(package_arch "$package")"; then
        echo "FAIL $spec: not an amd64 or arm64 kernel package (its name ends in neither)"
        failed=1
        continue
    fi
    unset APT_CONFIG
    apt_config=$(debian_apt "$suite" "$arch")
    [[ -z $apt_config ]] || export APT_CONFIG=$apt_config
    if ! debian_resolve "$package"; then
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
unset APT_CONFIG

# One initramfs per architecture among the kernels, then the boots.
built=()
for kver in "${kernels[@]}"; do
    arch_setup "$(cat "$work/kernels/$kver/arch")"
    command -v "${qemu_cmd[0]}" >/dev/null || die "${qemu_cmd[0]} is missing (make kernels installs it)"
    if [[ " ${built[*]} " != *" $arch "* ]]; then
        build_initramfs
        say "initramfs for $arch: $(du -h "$work/initramfs-$arch.cpio.gz" | cut -f1)" \
            "($(python3 scripts/kernels/checks.py commands | paste -sd, -))"
        built+=("$arch")
    fi
    boot "$kver" || failed=1
done
exit "$failed"
