#!/usr/bin/env bash
# Install what the deploy rehearsal needs into the project cache (idempotent, pinned, keyed by
# version so later runs reuse it):
#   etcd           Debian's etcd-server package (apt-get), /usr/bin/etcd
#   kube-apiserver built with Go from the module proxy: a small wrapper module requires
#                  k8s.io/kubernetes $KUBE_VERSION and replaces every k8s.io/* staging module
#                  (which the kubernetes go.mod points at ./staging/...) with its published
#                  v0.<minor>.<patch> version. The version is stamped with -ldflags, otherwise the
#                  server reports v0.0.0 and Helm's kubeVersion checks fail. The first build
#                  takes 15-20 minutes on one core (nice'd); the binary and the Go build cache
#                  stay in $BOXOFFICE_CACHE_DIR/tools.
# Prints KEY=VALUE lines on stdout (ETCD, KUBE_APISERVER, KUBE_VERSION); logs go to stderr.
set -euo pipefail

KUBE_VERSION="v1.33.13"   # same minor as the kind node image (kind-config.yaml) and kubectl
ETCD_DEB_PACKAGE="etcd-server"

CACHE="${BOXOFFICE_CACHE_DIR:-$HOME/.cache/boxoffice}"
TOOLS="$CACHE/tools"
log() { echo "apiserver-tools: $*" >&2; }

# --- etcd (Debian) ----------------------------------------------------------------------------
if ! command -v etcd >/dev/null; then
  log "installing $ETCD_DEB_PACKAGE with apt-get"
  SUDO=""
  [[ "$(id -u)" == 0 ]] || SUDO="sudo"
  # The package's postinst starts a system etcd on :2379; the rehearsal runs its own on other
  # ports, so keep the service from starting (policy-rc.d) where we can.
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2 || true
  $SUDO apt-get install -y -qq --no-install-recommends "$ETCD_DEB_PACKAGE" >&2
  command -v etcd >/dev/null || { log "etcd not on PATH after installing $ETCD_DEB_PACKAGE"; exit 1; }
fi
ETCD_BIN="$(command -v etcd)"

# --- kube-apiserver (Go module proxy) --------------------------------------------------------
minor_patch="${KUBE_VERSION#v1.}"             # 33.13
staging_version="v0.$minor_patch"            # v0.33.13
major=1
minor="${minor_patch%%.*}"
dest="$TOOLS/kube-apiserver-$KUBE_VERSION"
bin="$dest/kube-apiserver"
built() { [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -qx "Kubernetes $KUBE_VERSION"; }
mkdir -p "$TOOLS"
if ! built; then
  # one build at a time (a second caller waits, then finds the binary)
  exec 9>"$TOOLS/.kube-apiserver-$KUBE_VERSION.lock"
  flock 9
fi
if ! built; then
  command -v go >/dev/null || { log "go is required to build kube-apiserver"; exit 1; }
  log "building kube-apiserver $KUBE_VERSION (first time only: 15-20 minutes)"
  mod="$TOOLS/kube-apiserver-src-$KUBE_VERSION"
  rm -rf "$mod"
  mkdir -p "$mod" "$dest"
  export GOPATH="$TOOLS/gopath" GOCACHE="$TOOLS/gocache" GOFLAGS=-mod=mod CGO_ENABLED=0
  # The kubernetes go.mod lists its staging modules as `replace k8s.io/x => ./staging/src/k8s.io/x`;
  # take that list from the published go.mod so a new minor needs no edit here.
  kgomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$kgomod" | sort -u)
  [[ ${#staging[@]} -gt 10 ]] || { log "found only ${#staging[@]} staging modules in $kgomod"; exit 1; }
  go_directive="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kgomod" | head -n1)"
  {
    echo "module boxoffice.example/kube-apiserver-build"
    echo
    echo "go ${go_directive:-1.24}"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    for m in "${staging[@]}"; do echo "replace $m => $m $staging_version"; done
  } >"$mod/go.mod"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  (
    cd "$mod"
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" >&2
    nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
  )
  mv "$bin.tmp" "$bin"
  "$bin" --version | grep -qx "Kubernetes $KUBE_VERSION" ||
    { log "built kube-apiserver reports '$("$bin" --version)', not $KUBE_VERSION"; exit 1; }
  rm -rf "$mod"
fi

cat <<OUT
ETCD=$ETCD_BIN
KUBE_APISERVER=$bin
KUBE_VERSION=$KUBE_VERSION
OUT
