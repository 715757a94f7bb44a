#!/usr/bin/env bash
# What the test suite needs beyond the tool itself (browser, VMs, control plane, HAProxy for the replicas test,
# an OCI registry and skopeo/umoci for the containerDisk test, the sqlite3 shell for the database lock test).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_apt chromium qemu-system-x86 qemu-utils busybox-static linux-image-amd64 cpio socat haproxy docker-registry skopeo umoci e2fsprogs sqlite3
need_guest_image
need_k8s
