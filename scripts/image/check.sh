#!/usr/bin/env bash
# The test for `make image` (as root): the manifest list holds an amd64 and
# an arm64 image; each image's filesystem is the static binary of its
# architecture alone, run as the entrypoint; the OCI archive holds the same
# list; and the amd64 image's /kernel-delay traces a workload with a known
# answer on this machine's kernel.
#
# That last test runs the binary from the image's filesystem (podman image
# mount), not with `podman run`: on VMs where root lacks CAP_SYS_RESOURCE,
# podman's runtime (crun) cannot set the container's rlimits and no container
# starts. The binary, its path and its (lack of) neighbours are the image's
# own; what is not exercised is the container runtime.
set -euo pipefail
cd "$(dirname "$0")/../.."
image=localhost/kernel-delay:latest
out=target/image
fail() {
    echo "check-image: FAIL: $*" >&2
    exit 1
}

# The list: one image per architecture, linux.
platforms=$(podman manifest inspect "$image" | python3 -c '
import json, sys
print(" ".join(sorted(m["platform"]["os"] + "/" + m["platform"]["architecture"] for m in json.load(sys.stdin)["manifests"])))')
[[ $platforms == "linux/amd64 linux/arm64" ]] || fail "$image lists $platforms"
echo "$image: $platforms"

# The archive: an OCI layout whose index (tag latest) is the same list.
archived=$(tar -xOf "$out/kernel-delay.oci.tar" index.json | python3 -c '
import json, sys, tarfile
index = json.load(sys.stdin)["manifests"]
assert len(index) == 1 and index[0]["annotations"]["org.opencontainers.image.ref.name"] == "latest", index
blob = "blobs/" + index[0]["digest"].replace(":", "/")
with tarfile.open(sys.argv[1]) as archive:
    listed = json.load(archive.extractfile(blob))["manifests"]
print(" ".join(sorted(m["platform"]["os"] + "/" + m["platform"]["architecture"] for m in listed)))' "$out/kernel-delay.oci.tar") ||
    fail "$out/kernel-delay.oci.tar is not an OCI archive of the list"
[[ $archived == "$platforms" ]] || fail "the OCI archive lists $archived"
echo "$out/kernel-delay.oci.tar: $archived"

mounted=()
cleanup() {
    for id in "${mounted[@]}"; do podman image umount "$id" >/dev/null; done
}
trap cleanup EXIT
while read -r arch id; do
    config=$(podman image inspect --format '{{.Os}}/{{.Architecture}} {{json .Config.Entrypoint}}' "$id")
    [[ $config == "linux/$arch [\"/kernel-delay\"]" ]] || fail "the $arch image is $config"
    root=$(podman image mount "$id")
    mounted+=("$id")
    files=$(cd "$root" && find . -mindepth 1 | sort | paste -sd' ')
    [[ $files == "./kernel-delay" ]] || fail "the $arch image holds $files, not just ./kernel-delay"
    case $arch in
        amd64) machine=x86-64 ;;
        arm64) machine=aarch64 ;;
    esac
    file -L "$root/kernel-delay" | grep -Eq "$machine.*(statically linked|static-pie linked)" ||
        fail "the $arch image's /kernel-delay: $(file -L "$root/kernel-delay")"
    echo "$arch image $id: entrypoint /kernel-delay, the only file, static $machine"
    [[ $arch == amd64 ]] && amd64_root=$root
done <"$out/instances"

# The amd64 image's binary traces 5000 getppid() calls of kd-workload.
traced=$(scripts/check-trace.sh "$amd64_root/kernel-delay" target/x86_64-unknown-linux-musl/release/kd-workload) ||
    fail "the amd64 image's /kernel-delay: see above"
echo "the amd64 image's /kernel-delay (run from its filesystem, podman image mount) $traced"
echo "check-image: OK"
