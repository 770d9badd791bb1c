#!/usr/bin/env bash
# `make image`: the multi-architecture container image. Builds the
# Containerfile (FROM scratch, the static binary as entrypoint) once per
# architecture with podman, from the static binaries of `make static` and
# `make static-aarch64`, into a manifest list localhost/kernel-delay:latest
# in podman's local store, and saves the list with both images as an OCI
# archive, target/image/kernel-delay.oci.tar (tag latest). Nothing runs
# inside the images while building (no RUN), so the arm64 one needs no
# emulation. Then checks them (scripts/image/check.sh).
#
# Builds are reproducible (--timestamp 0): the same binary gives the same
# image, so rebuilding does not pile up copies in the store.
set -euo pipefail
cd "$(dirname "$0")/../.."
image=localhost/kernel-delay:latest
out=target/image
context=$out/context
die() {
    echo "image: $*" >&2
    exit 1
}

command -v podman >/dev/null || die "podman is missing (make image installs it)"
rm -rf "$context"
# Debian architecture -> the static binary's directory (aarch64's is
# cross-built: scripts/static/cargo.sh).
for pair in amd64:target/x86_64-unknown-linux-musl/release \
    arm64:target/cross/aarch64-unknown-linux-musl/release; do
    arch=${pair%%:*}
    bin=${pair#*:}/kernel-delay
    [[ -x $bin ]] || die "$bin is missing: run make static and make static-aarch64"
    mkdir -p "$context/$arch"
    cp "$bin" "$context/$arch/kernel-delay"
done

# A fresh list: `podman build --manifest` would add to an old one.
if podman manifest exists "$image"; then
    podman manifest rm "$image" >/dev/null
elif podman image exists "$image"; then
    podman rmi "$image" >/dev/null
fi
podman manifest create "$image" >/dev/null
: >"$out/instances"
for arch in amd64 arm64; do
    id=$(podman build --quiet --timestamp 0 --platform "linux/$arch" --manifest "$image" \
        -f scripts/image/Containerfile "$context" | tail -1)
    # Each image by ID, for the check: the list itself names instances by
    # manifest digest only.
    echo "$arch $id" >>"$out/instances"
done
rm -f "$out/kernel-delay.oci.tar"
podman manifest push --quiet --all "$image" "oci-archive:$out/kernel-delay.oci.tar:latest"
echo "image: $image (amd64, arm64); $out/kernel-delay.oci.tar ($(du -h "$out/kernel-delay.oci.tar" | cut -f1))"
