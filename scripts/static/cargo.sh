#!/usr/bin/env bash
# Runs a cargo command for a fully static musl target: the build of the
# binaries that ship (static-pie kernel-delay and kd-workload under
# target/<arch>-unknown-linux-musl/release/), and the lint, tests, install
# and benchmark of those same binaries. `make build` and `make static`
# (ARCH: this machine's), `make static-aarch64` (ARCH aarch64, cross-built
# on an x86_64 machine), `make lint`, `make test`, `make bench` run it after
# installing the packages and the Rust target. Every command gets the same
# target, feature and environment, so cargo builds each crate once for all
# of them.
#
# Usage: scripts/static/cargo.sh ARCH COMMAND [ARGS...]
#   runs `cargo COMMAND --target ARCH-unknown-linux-musl --features
#   kernel-delay/vendored ARGS...`; a cross build (aarch64 on x86_64) in
#   the target directory target/cross (its own: the cross build's
#   environment would otherwise make cargo rebuild the build scripts, which
#   both share, at each switch).
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
[[ $# -ge 2 ]] || {
    echo "usage: scripts/static/cargo.sh ARCH COMMAND [ARGS...]" >&2
    exit 2
}
arch=$1
command=$2
shift 2
target=$arch-unknown-linux-musl
say() { echo "static: $*"; }
die() {
    echo "static: $*" >&2
    exit 1
}

include=$root/target/musl-include/$arch
mkdir -p "$include"
ln -sfn "$root/scripts/static/musl/argp.h" "$include/argp.h"
# Environment of the cargo command below, and the C compiler's flags.
build_env=()
target_dir=()
cflags="-I$include"

triple=${target//-/_}
if [[ $arch == "$host" ]]; then
    ln -sfn /usr/include/linux "$include/linux"
    ln -sfn "/usr/include/$arch-linux-gnu/asm" "$include/asm"
    ln -sfn /usr/include/asm-generic "$include/asm-generic"
    # cargo test and cargo bench run the static binaries with the library
    # path of the build scripts' outputs, where libbpf-sys leaves its
    # musl-built libelf.so: the programs the tests start (bpftrace, perf,
    # nginx: glibc's) would load it. Static binaries need no library path.
    build_env=("CARGO_TARGET_${triple^^}_RUNNER=env -u LD_LIBRARY_PATH")
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
    target_dir=(--target-dir "$root/target/cross")
else
    die "cannot build for $arch on $host (only natively, or aarch64 on x86_64)"
fi

# cc (and so libbpf-sys) reads CFLAGS_<target triple with underscores>.
exec env "${build_env[@]}" \
    ac_cv_search_argp_parse='none required' \
    ac_cv_search_fts_close='none required' \
    ac_cv_search__obstack_free='none required' \
    "CFLAGS_$triple=$cflags" \
    cargo "$command" --target "$target" --features kernel-delay/vendored "${target_dir[@]}" "$@"
