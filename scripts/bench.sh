#!/usr/bin/env bash
# `npm run bench`: install what is needed, then run the benchmarks beside their floors (not a test).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/setup-test.sh"
cd "$ROOT"
exec node --expose-gc --import tsx bench/run.mts
