# Sourced by scripts/vmtest/*.sh, which set $who first: their messages, and
# the cache of what only a fresh machine builds (vmtest, the kernel, the
# image), outside the clone.
say() { echo "$who: $*"; }
die() {
    echo "$who: $*" >&2
    exit 1
}
cache=${KERNEL_DELAY_CACHE:-/var/cache/kernel-delay}/vmtest
