#!/usr/bin/env bash
# README Quick start (b): install what is needed, then run the whole test suite.
# Ends with one line "N passed, N failed" computed from mocha's real results.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
start=$(date +%s)
bash "$ROOT/scripts/setup.sh"
bash "$ROOT/scripts/setup-test.sh"
cd "$ROOT"
say "type-checking"
npx --no-install tsc -p tsconfig.test.json
npx --no-install tsc -p public/tsconfig.json
say "checking the layers (imports point down, no cycles)"
npm run --silent lint:layers
results="$ROOT/test-artifacts/results.json"
mkdir -p "$ROOT/test-artifacts"; rm -f "$results"
say "running tests"
set +e
if [ $# -eq 0 ]; then set -- test/unit test/integration test/e2e; fi
# a folder stands for every test file under it (mocha alone would look for .js files only)
specs=(); for a in "$@"; do if [ -d "$a" ]; then specs+=("${a%/}/**/*.test.ts"); else specs+=("$a"); fi; done; set -- "${specs[@]}"
LAB_TEST_RESULTS="$results" npx --no-install mocha "$@"
rc=$?
set -e
say "tests took $(( $(date +%s) - start )) s in all"
if [ ! -f "$results" ]; then echo "0 passed, 1 failed"; exit 1; fi
node -e 'const r=require(process.argv[1]); console.log(`${r.passed} passed, ${r.failed} failed`); process.exit(r.failed>0||r.passed===0?1:0)' "$results" || rc=1
exit $rc
