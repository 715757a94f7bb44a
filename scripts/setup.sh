#!/usr/bin/env bash
# Installs everything the tool needs to run on a fresh machine; safe to run again (it skips what is there).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_node_modules
need_ferretdb
need_guest_image
need_web_bundle
