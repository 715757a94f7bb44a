#!/usr/bin/env bash
# What the test suite needs beyond the tool itself (browser, VMs, control plane).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
