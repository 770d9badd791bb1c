#!/usr/bin/env bash
# Builds kernel-delay and kd-workload as fully static musl binaries
# (static-pie): target/<arch>-unknown-linux-musl/release/. Run by
# `make static` (ARCH: this machine's) and `make static-aarch64` (ARCH
# aarch64, cross-built on an x86_64 machine), which first install the
# packages and the Rust target.
#
# Usage: scripts/static/build.sh [ARCH]
#
# libbpf, libelf and zlib come from the sources bundled in libbpf-sys (the
# crate feature `vendored`): Debian ships them built for glibc only. Two
# things make elfutils (libelf) build against musl:
#  - autoconf cache variables: elfutils' configure insists on argp, fts and
#    obstack libraries, which musl lacks and which only elfutils' own
#    command-line tools use, never libelf. Preset results ('none required')
#    skip those checks.
#  - an include directory for musl-gcc, which by design does not search
#    /usr/include: the kernel's UAPI headers (linux/, asm/, asm-generic/),
#    which libbpf needs, and scripts/static/musl/argp.h, a declarations-only header
#    for elfutils' lib/color.c (see that file).
#
# Cross-building for aarch64 uses Debian's packages only: the cross gcc
# (gcc-aarch64-linux-gnu, a glibc toolchain, installed by the Makefile) is
# turned into a musl one by the specs file of arm64 musl-dev, exactly as
# musl-gcc does natively. musl-dev:arm64 (libc, crt files, headers) and
# linux-libc-dev:arm64 (the UAPI headers, asm/ for arm64) are downloaded and
# unpacked as a sysroot under target/sysroot/aarch64, never installed. Rust
# links with its own musl crt files and libc (self-contained), through the
# cross gcc.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
host=$(uname -m)
arch=${1:-$host}
target=$arch-unknown-linux-musl
say() { echo "build-static: $*"; }
die() {
    echo "build-static: $*" >&2
    exit 1
}

include=$root/target/musl-include/$arch
mkdir -p "$include"
ln -sfn "$root/scripts/static/musl/argp.h" "$include/argp.h"
# Environment of the cargo build below, and the C compiler's flags.
build_env=()
cflags="-I$include"

if [[ $arch == "$host" ]]; then
    ln -sfn /usr/include/linux "$include/linux"
    ln -sfn "/usr/include/$arch-linux-gnu/asm" "$include/asm"
    ln -sfn /usr/include/asm-generic "$include/asm-generic"
elif [[ $arch == aarch64 && $host == x86_64 ]]; then
    command -v aarch64-linux-gnu-gcc >/dev/null ||
        die "aarch64-linux-gnu-gcc is missing (make static-aarch64 installs gcc-aarch64-linux-gnu)"
    sysroot=$root/target/sysroot/aarch64
    if [[ ! -f $sysroot/.complete ]]; then
        # shellcheck source=scripts/debian-packages.sh
        . scripts/debian-packages.sh
        rm -rf "$sysroot" && mkdir -p "$sysroot/debs"
        APT_CONFIG=$(debian_apt "$debian_host_suite" arm64)
        export APT_CONFIG
        for package in musl-dev linux-libc-dev; do
            say "downloading $package:arm64"
            debian_download "$package" "$sysroot/debs" || die "could not download $package:arm64"
        done
        for deb in "$sysroot"/debs/*.deb; do
            dpkg-deb -x "$deb" "$sysroot"
        done
        unset APT_CONFIG
        touch "$sysroot/.complete"
    fi
    # musl-dev's specs file and wrapper name absolute paths under /usr:
    # pointed into the sysroot instead.
    specs=$sysroot/musl-gcc.specs
    sed "s|/usr/|$sysroot/usr/|g" "$sysroot/usr/lib/aarch64-linux-musl/musl-gcc.specs" >"$specs"
    cc=$sysroot/aarch64-linux-musl-gcc
    printf '#!/bin/sh\nexec aarch64-linux-gnu-gcc "$@" -specs "%s"\n' "$specs" >"$cc"
    chmod 755 "$cc"
    ln -sfn "$sysroot/usr/include/linux" "$include/linux"
    ln -sfn "$sysroot/usr/include/aarch64-linux-gnu/asm" "$include/asm"
    ln -sfn "$sysroot/usr/include/asm-generic" "$include/asm-generic"
    # cc (libbpf-sys' C compiler) reads CC_/AR_<triple>; zlib's configure,
    # elfutils' and libbpf's makefiles read AR and RANLIB (the machine's own
    # ar cannot index aarch64 objects; the cross ar's generic ELF reader
    # indexes the x86-64 objects of the build scripts' own libbpf too).
    # Rust links through the cross gcc.
    triple=${target//-/_}
    build_env=(
        "CC_$triple=$cc"
        "AR_$triple=aarch64-linux-gnu-ar"
        AR=aarch64-linux-gnu-ar
        RANLIB=aarch64-linux-gnu-ranlib
        "CARGO_TARGET_${triple^^}_LINKER=aarch64-linux-gnu-gcc"
    )
    # Debian's gcc makes atomics calls into libgcc (outline atomics, which
    # pick LSE instructions at run time); Rust links no libgcc. Inline
    # atomics run on every ARMv8 CPU.
    cflags="$cflags -mno-outline-atomics"
else
    die "cannot build for $arch on $host (only natively, or aarch64 on x86_64)"
fi

# cc (and so libbpf-sys) reads CFLAGS_<target triple with underscores>.
cflags_var=CFLAGS_${target//-/_}
env "${build_env[@]}" \
    ac_cv_search_argp_parse='none required' \
    ac_cv_search_fts_close='none required' \
    ac_cv_search__obstack_free='none required' \
    "$cflags_var=$cflags" \
    cargo build --release --features kernel-delay/vendored --target "$target" \
        --package kernel-delay --package kd-workload
