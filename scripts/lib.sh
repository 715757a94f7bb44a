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
  # another apt run on this machine holds dpkg's lock for a while: wait for it rather than fail
  local wait=(-o DPkg::Lock::Timeout=600)
  if [ "$APT_UPDATED" -eq 0 ]; then $sudo apt-get "${wait[@]}" update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get "${wait[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# npm dependencies, exactly as locked.
need_node_modules() {
  # Compares the lock's content with the one installed (a stamp npm ci leaves), never mtimes: a
  # checkout or merge touches the lock without changing it. A node_modules that is a link to a
  # shared install is never reinstalled in place: it is replaced by an install of this tree's own.
  local want stamp="$ROOT/node_modules/.lab-orchestrator-lock"
  want=$(sha256sum "$ROOT/package-lock.json" | cut -c1-16)
  if [ -d "$ROOT/node_modules" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  if [ -L "$ROOT/node_modules" ]; then
    rm "$ROOT/node_modules"
  fi
  say "installing npm dependencies"
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
}

# FerretDB v1.24.2 (SQLite backend), built once from the Go module proxy into the tools cache,
# with one file of it replaced at build time (tools/ferretdb/overlay: `{_id}` lookups use the
# `_id` index instead of scanning the table; see the README).
FERRETDB_VERSION=v1.24.2
need_ferretdb() {
  local dir="$ROOT/tools/ferretdb"
  local bin="$LAB_TOOLS_DIR/bin/ferretdb-$FERRETDB_VERSION"
  local stamp="$LAB_TOOLS_DIR/bin/.ferretdb-src-$(cat "$dir/main.go" "$dir/go.mod" "$dir"/overlay/* | sha256sum | cut -c1-12)"
  if [ -x "$bin" ] && [ -f "$stamp" ]; then return 0; fi
  say "building FerretDB $FERRETDB_VERSION (first run only, ~2 min)"
  # the Go command replaces no file of the module cache: the build runs on a vendored copy
  local work
  work=$(mktemp -d)
  cp "$dir/main.go" "$dir/go.mod" "$dir/go.sum" "$work/"
  (cd "$work" && go mod vendor \
    && cp "$dir/overlay/sqlite-metadata.go.txt" vendor/github.com/FerretDB/FerretDB/internal/backends/sqlite/metadata/metadata.go \
    && go build -mod=vendor -trimpath -o "$bin.tmp" .) || { rm -rf "$work"; return 1; }
  rm -rf "$work"
  mv "$bin.tmp" "$bin"
  rm -f "$LAB_TOOLS_DIR"/bin/.ferretdb-src-*; touch "$stamp"
}

# Guest image "lab-tiny" (Debian kernel + busybox initramfs + /home base disk) for the QEMU backend,
# built from installed Debian packages. Each build goes to images/lab-tiny-<hash of the recipe> and
# images/lab-tiny is switched to it atomically: files a running or stopped lab uses are never
# replaced (overlays point at their exact base disk). Sets GUEST_IMAGE_PATH to the version dir.
need_guest_image() {
  need_apt qemu-system-x86 qemu-utils busybox-static linux-image-amd64 cpio e2fsprogs xz-utils genisoimage
  local images="$LAB_TOOLS_DIR/images" hash
  hash="$( (cat "$ROOT/scripts/build-guest-image.sh" "$ROOT/src/backends/guest/lab-agent.sh"; ls /lib/modules) | sha256sum | cut -c1-12)"
  GUEST_IMAGE_PATH="$images/lab-tiny-$hash"
  mkdir -p "$images"
  if [ ! -f "$GUEST_IMAGE_PATH/.complete" ]; then
    say "building guest image lab-tiny (a few seconds)"
    bash "$ROOT/scripts/build-guest-image.sh" "$GUEST_IMAGE_PATH"
    touch "$GUEST_IMAGE_PATH/.complete"
  fi
  switch_image_link lab-tiny "$hash"
}

# Points images/<name> at images/<name>-<hash> atomically and marks the version it replaces; files a
# running or stopped lab uses are never replaced (overlays point at their exact base disk). Versions
# replaced more than 14 days ago are removed: no lab lives that long, so no overlay still uses them.
switch_image_link() {
  local name="$1" hash="$2" images="$LAB_TOOLS_DIR/images" prev
  prev="$(readlink "$images/$name" 2>/dev/null || true)"
  if [ "$prev" != "$name-$hash" ]; then
    [ -L "$images/$name" ] || rm -rf "$images/$name"   # a plain folder from an older layout
    ln -sfn "$name-$hash" "$images/.$name.$$" && mv -Tf "$images/.$name.$$" "$images/$name"
    [ -n "$prev" ] && [ -d "$images/$prev" ] && touch "$images/$prev/.superseded"
  fi
  rm -f "$images/$name-$hash/.superseded"
  find "$images" -maxdepth 2 -path "$images/$name-*/.superseded" -mtime +14 2>/dev/null | while read -r f; do rm -rf "$(dirname "$f")"; done
}

# Debian guest images built from Debian's package repository with mmdebstrap (recipes in
# scripts/images/<name>.recipe, a recipe may build on another with BASE=<name>). The version is a hash
# of the builder and the recipes, so an edited recipe builds a new version and a cached one is reused.
debian_image_hash() {
  local n="$1" files=("$ROOT/scripts/images/build-debian-image.sh")
  while [ -n "$n" ]; do
    [ -f "$ROOT/scripts/images/$n.recipe" ] || { echo "unknown image $1 (no scripts/images/$n.recipe)" >&2; return 2; }
    files+=("$ROOT/scripts/images/$n.recipe")
    n="$(sed -n 's/^BASE=//p' "$ROOT/scripts/images/$n.recipe")"
  done
  cat "${files[@]}" | sha256sum | cut -c1-12
}

# need_image <name>: the image is built (first time only: minutes) and IMAGE_PATH is its version
# folder. lab-tiny is built by need_guest_image; the others by scripts/images/build-debian-image.sh.
need_image() {
  local name="$1" images="$LAB_TOOLS_DIR/images" hash
  case "$name" in
    lab-tiny) need_guest_image; IMAGE_PATH="$GUEST_IMAGE_PATH"; return 0 ;;
    */*|*..*|"") echo "bad image name '$name'" >&2; return 2 ;;
  esac
  hash="$(debian_image_hash "$name")"
  IMAGE_PATH="$images/$name-$hash"
  mkdir -p "$images"
  if [ ! -f "$IMAGE_PATH/.complete" ]; then
    need_apt mmdebstrap qemu-utils e2fsprogs dosfstools mtools syslinux syslinux-common fdisk xz-utils zstd cpio initramfs-tools python3
    # one build per image at a time, machine-wide; a second caller waits and then finds it built
    exec 9>"$images/.build-$name.lock"
    flock 9
    if [ ! -f "$IMAGE_PATH/.complete" ]; then
      say "building guest image $name (first time only, a few minutes)"
      bash "$ROOT/scripts/images/build-debian-image.sh" "$name" "$IMAGE_PATH"
      touch "$IMAGE_PATH/.complete"
    fi
    exec 9>&-
  fi
  switch_image_link "$name" "$hash"
}

# The images the labs under a templates folder name (`image: <name>` of their VM machines), each
# built if missing. Container images (OCI references, with a "/") are not ours to build.
need_lab_images() {
  local dir="${1:-$ROOT/templates}" name
  for name in $(grep -ho '^ *image: *[a-z0-9][a-z0-9._-]* *$' "$dir"/*/lab.yaml 2>/dev/null | sed 's/.*image: *//; s/ *$//' | sort -u); do
    need_image "$name"
  done
}

# need_containerdisk <name>: after need_image, the image packaged as a KubeVirt containerDisk OCI
# archive (IMAGE_PATH/containerdisk.oci.tar; /disk/disk.qcow2 owned by uid 107), made once per version.
need_containerdisk() {
  local name="$1"
  [ -f "$IMAGE_PATH/containerdisk.oci.tar" ] && return 0
  need_apt umoci skopeo
  say "packaging $name as a KubeVirt containerDisk"
  bash "$ROOT/scripts/images/package-containerdisk.sh" "$IMAGE_PATH" "$name"
}

# Kubernetes control plane for the tests (kube-apiserver, kube-controller-manager, kubectl, etcd),
# built once from the Go module proxy into the tools cache, keyed by version and stamped by a hash of
# tools/k8s and tools/etcd (see those go.mod files for why the builds need modules of our own).
K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.6
k8s_src_hash() { cat "$ROOT"/tools/k8s/go.* "$ROOT"/tools/k8s/*.go "$ROOT"/tools/etcd/go.* "$ROOT"/tools/etcd/*.go | sha256sum | cut -c1-12; }
need_k8s() {
  local bin="$LAB_TOOLS_DIR/bin" stamp
  stamp="$bin/.k8s-src-$(k8s_src_hash)"
  if [ -f "$stamp" ] && [ -x "$bin/kube-apiserver-$K8S_VERSION" ] && [ -x "$bin/kube-controller-manager-$K8S_VERSION" ] \
     && [ -x "$bin/kubectl-$K8S_VERSION" ] && [ -x "$bin/etcd-$ETCD_VERSION" ]; then return 0; fi
  local t0=$SECONDS out="$bin/.k8s-build.$$"
  say "building etcd $ETCD_VERSION and Kubernetes $K8S_VERSION (first run only, ~5 min on 2 cores)"
  rm -rf "$out"; mkdir -p "$out"
  (cd "$ROOT/tools/etcd" && GOFLAGS=-mod=mod go build -trimpath -o "$out/etcd" .)
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
  ld="$ld -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  (cd "$ROOT/tools/k8s" && GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
  mv "$out/etcd" "$bin/etcd-$ETCD_VERSION"
  for c in kube-apiserver kube-controller-manager kubectl; do mv "$out/$c" "$bin/$c-$K8S_VERSION"; done
  rm -rf "$out" "$bin"/.k8s-src-*; touch "$stamp"
  say "Kubernetes control plane built in $((SECONDS - t0)) s"
}

# The browser bundle (public/dist, gitignored): noVNC, xterm and the page code, built by esbuild.
need_web_bundle() {
  say "building the web bundle"
  (cd "$ROOT" && node scripts/build-web.mjs)
}
