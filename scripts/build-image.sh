#!/usr/bin/env bash
# Builds a guest image of the catalog if it is not cached yet, and prints the folder that holds it.
# Usage: scripts/build-image.sh <name> [--containerdisk]
#   <name>           debian-12, debian-12-desktop or lab-tiny (recipes: scripts/images/<name>.recipe)
#   --containerdisk  also package the disk as a KubeVirt containerDisk OCI archive (containerdisk.oci.tar)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
name="${1:?usage: scripts/build-image.sh <name> [--containerdisk]}"
need_image "$name"
if [ "${2:-}" = --containerdisk ]; then need_containerdisk "$name"; fi
echo "$IMAGE_PATH"
