#!/usr/bin/env bash
# Builds kernel-delay and kd-workload as fully static musl binaries
# (static-pie): target/<arch>-unknown-linux-musl/release/. Run by
# `make static`, which first installs the packages and the Rust target.
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
#    which libbpf needs, and vmtest/musl/argp.h, a declarations-only header
#    for elfutils' lib/color.c (see that file).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
arch=$(uname -m)
target=$arch-unknown-linux-musl

include=$root/target/musl-include
mkdir -p "$include"
ln -sfn /usr/include/linux "$include/linux"
ln -sfn "/usr/include/$arch-linux-gnu/asm" "$include/asm"
ln -sfn /usr/include/asm-generic "$include/asm-generic"
ln -sfn "$root/vmtest/musl/argp.h" "$include/argp.h"

# cc (and so libbpf-sys) reads CFLAGS_<target triple with underscores>.
cflags_var=CFLAGS_${target//-/_}
env ac_cv_search_argp_parse='none required' \
    ac_cv_search_fts_close='none required' \
    ac_cv_search__obstack_free='none required' \
    "$cflags_var=-I$include" \
    cargo build --release --features vendored --target "$target" \
        --bin kernel-delay --bin kd-workload
