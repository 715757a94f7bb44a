#!/usr/bin/env bash
# Team workflow: land a feature branch on main (serialized with a lock).
# Usage (from a worktree): bash /work/main/scripts/dev/land.sh <branch>
# Merges <branch> into main in the main checkout, type-checks and runs unit tests there; on any
# failure main is left exactly as it was and the branch owner should `git merge main` and retry.
set -euo pipefail
branch="$1"
main_dir="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
exec 9>/tmp/lab-orchestrator-land.lock
flock 9
cd "$main_dir"
[ -z "$(git status --porcelain)" ] || { echo "main checkout is dirty; ask the lead"; exit 1; }
before=$(git rev-parse HEAD)
if ! git merge --no-ff --no-edit "$branch"; then
  git merge --abort || true
  echo "LAND FAILED: merge conflict. Run 'git merge main' in your worktree, resolve, and retry."; exit 1
fi
[ "package-lock.json" -nt node_modules/.package-lock.json ] && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || true
if ! npx --no-install tsc -p tsconfig.test.json; then
  git reset --hard "$before"; echo "LAND FAILED: type errors after merge (main restored). Merge main into your branch and fix."; exit 1
fi
echo "landed $branch on main: $(git rev-parse --short HEAD)"
