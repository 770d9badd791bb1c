#!/usr/bin/env bash
# Builds the disk image vmtest.toml's image-mode target boots: Debian 12
# from Debian's packages (mmdebstrap): its own kernel (linux-image-amd64,
# 6.1, with BTF), systemd, and qemu-guest-agent, which vmtest talks to; an
# ext4 file system filling the raw disk, booted by extlinux (BIOS). Cached
# outside the clone, under $KERNEL_DELAY_CACHE (default
# /var/cache/kernel-delay), keyed by this script. vmtest writes to the
# image it boots, so target/vmtest/debian-12-amd64.raw is a fresh (sparse)
# copy of the cached one each time; its kernel's release goes in
# target/vmtest/image-kernel. Prints the build's time (or that it was
# cached).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

who="vmtest image"
# shellcheck source=scripts/vmtest/common.sh
. scripts/vmtest/common.sh

key=$(sha256sum scripts/vmtest/image.sh | cut -c1-12)
built=$cache/debian-12-amd64-$key
packages=systemd-sysv,udev,kmod,qemu-guest-agent,linux-image-amd64,initramfs-tools
mkdir -p "$root/target/vmtest"

if [[ -s $built/disk.raw ]]; then
    say "cached: $built (built in $(cat "$built/build-seconds") s)"
else
    start=$SECONDS
    work=$cache/image-build
    tree=$work/tree
    mnt=$work/mnt
    cleanup() {
        mountpoint -q "$mnt" && umount "$mnt"
        rm -rf "$work"
    }
    trap cleanup EXIT
    rm -rf "$work" && mkdir -p "$work" "$mnt"
    say "mmdebstrap bookworm ($packages)"
    mmdebstrap --quiet --variant=apt --include="$packages" bookworm "$tree" \
        http://deb.debian.org/debian "deb http://deb.debian.org/debian-security bookworm-security main"
    kver=$(basename "$(echo "$tree"/boot/vmlinuz-*)")
    kver=${kver#vmlinuz-}
    grep -q '^CONFIG_DEBUG_INFO_BTF=y' "$tree/boot/config-$kver" || die "$kver has no BTF"
    echo kd-vmtest >"$tree/etc/hostname"
    echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' >"$tree/etc/fstab"
    mkdir -p "$tree/boot/extlinux"
    cat >"$tree/boot/extlinux/extlinux.conf" <<CONF
DEFAULT debian
TIMEOUT 1
LABEL debian
    LINUX /boot/vmlinuz-$kver
    INITRD /boot/initrd.img-$kver
    APPEND root=/dev/vda rw console=ttyS0,115200
CONF
    rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*
    # The file system is the whole disk: extlinux's boot sector is its
    # first, which the BIOS loads.
    truncate -s 2G "$work/disk.raw"
    mkfs.ext4 -q -F -L root -d "$tree" "$work/disk.raw"
    mount -o loop "$work/disk.raw" "$mnt"
    extlinux --install "$mnt/boot/extlinux" 2>/dev/null
    umount "$mnt"
    mkdir -p "$built.new"
    mv "$work/disk.raw" "$built.new/disk.raw"
    echo "$kver" >"$built.new/kernel"
    echo $((SECONDS - start)) >"$built.new/build-seconds"
    rm -rf "$built" && mv "$built.new" "$built"
    say "built $built (Linux $kver) in $(cat "$built/build-seconds") s"
fi
cp --sparse=always "$built/disk.raw" "$root/target/vmtest/debian-12-amd64.raw"
cp "$built/kernel" "$root/target/vmtest/image-kernel"
