#!/usr/bin/env bash
# README Quick start (a): install what is needed, then run the tool with embedded defaults.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export LAB_MODE="${LAB_MODE:-demo}" LOG_FORMAT="${LOG_FORMAT:-pretty}" PORT="${PORT:-3000}"
exec node bin/lab-orchestrator.js serve
