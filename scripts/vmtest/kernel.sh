#!/usr/bin/env bash
# Builds the kernel vmtest.toml's kernel-mode target boots: Debian's
# linux-source-6.12 (the newest long-term kernel Debian 12 carries), x86_64
# allnoconfig with scripts/vmtest/kernel.config forced (vmtest's built-in
# virtio and 9p, BTF, what kernel-delay traces): small, to build quickly.
# The build is cached outside the clone, under $KERNEL_DELAY_CACHE (default
# /var/cache/kernel-delay), keyed by the source package's version and the
# fragment: only a fresh machine, or a changed fragment, pays for it. Links
# target/vmtest/bzImage to it, puts its release in
# target/vmtest/kernel-release, and prints the build's time (or that it was
# cached).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

who="vmtest kernel"
# shellcheck source=scripts/vmtest/common.sh
. scripts/vmtest/common.sh

source_package=linux-source-6.12
fragment=scripts/vmtest/kernel.config

version=$(dpkg-query -W -f '${Version}' "$source_package" 2>/dev/null) ||
    die "$source_package is not installed (make vmtest installs it)"
key=$(sha256sum "$fragment" | cut -c1-12)
built=$cache/linux-$version-$key
mkdir -p "$root/target/vmtest"

if [[ -s $built/bzImage ]]; then
    say "cached: $built (built in $(cat "$built/build-seconds") s)"
else
    tarball=$(echo /usr/src/linux-source-6.12.tar.*)
    [[ -f $tarball ]] || die "no source tarball in /usr/src"
    work=$cache/build
    rm -rf "$work" && mkdir -p "$work"
    start=$SECONDS
    say "unpacking $tarball"
    tar -xf "$tarball" -C "$work" --strip-components=1
    (
        cd "$work"
        make -s ARCH=x86_64 allnoconfig KCONFIG_ALLCONFIG="$root/$fragment"
        # Every option the fragment sets must have held: a dependency left
        # unmet drops an option silently.
        missing=$(grep -E '^CONFIG_[A-Z0-9_]+=y' "$root/$fragment" | while read -r line; do
            grep -qx "$line" .config || echo "${line%=y}"
        done)
        [[ -z $missing ]] || die "not set by allnoconfig (a dependency missing?):" $missing
        say "building Linux $version with $(nproc) jobs"
        make -s ARCH=x86_64 -j"$(nproc)" bzImage
        make -s ARCH=x86_64 kernelrelease >release
    )
    mkdir -p "$built.new"
    cp "$work/arch/x86/boot/bzImage" "$work/.config" "$work/release" "$built.new/"
    echo $((SECONDS - start)) >"$built.new/build-seconds"
    rm -rf "$built" "$work" && mv "$built.new" "$built"
    say "built $built in $(cat "$built/build-seconds") s"
fi
ln -sfn "$built/bzImage" "$root/target/vmtest/bzImage"
cp "$built/release" "$root/target/vmtest/kernel-release"
