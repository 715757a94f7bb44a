#!/usr/bin/env bash
# Team workflow: run a heavy command (real guests, the control plane, Chromium, image builds, a
# whole suite) holding one of two machine-wide slots, so at most two run at once on this machine.
# Usage: bash scripts/dev/heavy.sh <command...>
# Waits for whichever slot frees first (it looks at both every 2 s).
set -uo pipefail
while :; do
  exec 8>/tmp/lab-orchestrator-heavy.0.lock
  flock -n 8 && break
  exec 8>/tmp/lab-orchestrator-heavy.1.lock
  flock -n 8 && break
  exec 8>&-
  sleep 2
done
"$@"
