# Shared helpers for the project's scripts. Source it; do not run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LAB_TOOLS_DIR="${LAB_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab-orchestrator}"
mkdir -p "$LAB_TOOLS_DIR/bin"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Install Debian packages that are missing (one apt-get update per run at most).
APT_UPDATED=0
need_apt() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then $sudo apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# npm dependencies, exactly as locked.
need_node_modules() {
  if [ ! -d "$ROOT/node_modules" ] || [ "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]; then
    say "installing npm dependencies"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# FerretDB v1.24.2 (SQLite backend), built once from the Go module proxy into the tools cache.
FERRETDB_VERSION=v1.24.2
need_ferretdb() {
  local bin="$LAB_TOOLS_DIR/bin/ferretdb-$FERRETDB_VERSION"
  local stamp="$LAB_TOOLS_DIR/bin/.ferretdb-src-$(cat "$ROOT/tools/ferretdb/main.go" "$ROOT/tools/ferretdb/go.mod" | sha256sum | cut -c1-12)"
  if [ -x "$bin" ] && [ -f "$stamp" ]; then return 0; fi
  say "building FerretDB $FERRETDB_VERSION (first run only, ~2 min)"
  (cd "$ROOT/tools/ferretdb" && GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" . && mv "$bin.tmp" "$bin")
  rm -f "$LAB_TOOLS_DIR"/bin/.ferretdb-src-*; touch "$stamp"
}

# The browser bundle (public/dist, gitignored): noVNC, xterm and the page code, built by esbuild.
need_web_bundle() {
  say "building the web bundle"
  (cd "$ROOT" && node scripts/build-web.mjs)
}
