#!/usr/bin/env bash
# `make vmlinux-arm64`: regenerates vmlinux/arm64/vmlinux.h, the CO-RE
# header for aarch64 builds, on any machine: from the BTF of Debian's arm64
# kernel (linux-image-arm64 of this machine's Debian release, downloaded,
# not installed). CO-RE relocates field offsets at load time, so one
# kernel's types serve all kernels with BTF.
#
# Debian's arm64 vmlinuz is a raw Image, not an ELF file; bpftool cannot
# read BTF from it, so scripts/vmlinux/btf-from-image.py copies the BTF out first.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
say() { echo "vmlinux-arm64: $*"; }
# shellcheck source=scripts/debian-packages.sh
. scripts/debian-packages.sh

work=$root/target/vmlinux-arm64
rm -rf "$work" && mkdir -p "$work/deb"
APT_CONFIG=$(debian_apt "$debian_host_suite" arm64)
export APT_CONFIG
debian_resolve linux-image-arm64 || { echo "vmlinux-arm64: no linux-image-arm64" >&2; exit 1; }
say "downloading $resolved"
debian_download "$resolved" "$work/deb"
kver=${resolved#linux-image-}
dpkg-deb --fsys-tarfile "$work"/deb/*.deb | tar -x -C "$work" "./boot/vmlinuz-$kver"
python3 scripts/vmlinux/btf-from-image.py "$work/boot/vmlinuz-$kver" "$work/btf"
mkdir -p vmlinux/arm64
bpftool btf dump file "$work/btf" format c >vmlinux/arm64/vmlinux.h
say "vmlinux/arm64/vmlinux.h from $kver ($(wc -l <vmlinux/arm64/vmlinux.h) lines)"
rm -rf "$work"
