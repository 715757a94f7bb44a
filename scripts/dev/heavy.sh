#!/usr/bin/env bash
# Team workflow: run a heavy command (real guests, the control plane, Chromium, image builds, a
# whole suite) holding one of two machine-wide slots, so at most two run at once on this machine.
# Usage: bash scripts/dev/heavy.sh <command...>
set -uo pipefail
exec 8>/tmp/lab-orchestrator-heavy.0.lock
if ! flock -n 8; then exec 8>/tmp/lab-orchestrator-heavy.1.lock; flock 8; fi
"$@"
