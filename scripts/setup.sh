#!/usr/bin/env bash
# Installs everything the tool needs to run on a fresh machine; safe to run again (it skips what is there).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_node_modules
need_ferretdb
need_guest_image
# the images the shipped labs use, for the local QEMU backend (a KubeVirt cluster pulls them from a registry)
templates="${TEMPLATES_DIR:-templates}"; case "$templates" in /*) ;; *) templates="$ROOT/$templates" ;; esac
if [ "${BACKEND:-qemu}" = qemu ]; then need_lab_images "$templates"; fi
need_web_bundle
