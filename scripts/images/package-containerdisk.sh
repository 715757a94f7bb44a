#!/usr/bin/env bash
# Packages a built guest image as a KubeVirt containerDisk: an OCI image whose only content is
# /disk/disk.qcow2 owned by uid/gid 107 (the qemu user of virt-launcher), the same bits the QEMU
# backend boots. Written as an OCI archive with Debian's umoci and skopeo; an admin pushes it with
#   skopeo copy oci-archive:<archive> docker://<registry>/<repo>:<tag>
# Usage: package-containerdisk.sh <image folder> <image name>   (writes <folder>/containerdisk.oci.tar)
set -euo pipefail
# the whole script is read before it runs: editing it (or a checkout) during a build cannot break the build
{
dir="${1:?usage: package-containerdisk.sh <image folder> <image name>}"
name="${2:?usage: package-containerdisk.sh <image folder> <image name>}"
[ -f "$dir/disk.qcow2" ] || { echo "no disk.qcow2 in $dir" >&2; exit 1; }
version="$(basename "$dir")"; version="${version##*-}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/lab-cdisk.XXXXXX")"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
mkdir -p "$work/layer/disk"
cp "$dir/disk.qcow2" "$work/layer/disk/disk.qcow2"
chmod 0555 "$work/layer/disk"; chmod 0444 "$work/layer/disk/disk.qcow2"
tar -C "$work/layer" --owner=107 --group=107 --numeric-owner --sort=name --mtime=@0 -cf "$work/layer.tar" disk
rm -rf "$work/layer"
umoci init --layout "$work/oci"
umoci new --image "$work/oci:$version"
umoci raw add-layer --image "$work/oci:$version" "$work/layer.tar"
umoci config --image "$work/oci:$version" --os linux --architecture amd64 \
  --config.label "org.opencontainers.image.title=$name" --config.label "org.opencontainers.image.version=$version"
rm -f "$work/layer.tar"
skopeo copy --quiet "oci:$work/oci:$version" "oci-archive:$work/containerdisk.oci.tar:$name:$version"
skopeo inspect --raw "oci-archive:$work/containerdisk.oci.tar" >/dev/null
chmod 444 "$work/containerdisk.oci.tar"
mv -f "$work/containerdisk.oci.tar" "$dir/containerdisk.oci.tar"
echo "containerDisk $name:$version packaged in $((SECONDS - t0)) s: $(du -m "$dir/containerdisk.oci.tar" | cut -f1) MiB" >&2
exit
}
