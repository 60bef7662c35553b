#!/usr/bin/env bash
# The deploy rehearsal: a real Kubernetes API server (etcd + kube-apiserver, no nodes, no
# controllers) on loopback, and the whole deployment sent to it in the order a user runs it.
#
#   deploy/rehearse.sh            start a server, rehearse, stop it (what `make rehearse` runs):
#                                   1. deploy/platform-install.sh --rehearse ../shared/crds
#                                   2. kubectl apply --dry-run=server of the rendered chart and of k8s/
#                                   3. helm upgrade --install --dry-run=server, default + example values
#   deploy/rehearse.sh up DIR     start etcd + kube-apiserver with their state in DIR; prints
#                                 KUBECONFIG=DIR/kubeconfig (tests/deploy/test_rehearsal.py uses this)
#   deploy/rehearse.sh down DIR   stop them
#
# Binaries: deploy/apiserver-tools.sh (etcd from Debian, kube-apiserver built once from the Go
# module proxy into the project cache). Ports: free ones picked at start, or
# BOXOFFICE_REHEARSAL_ETCD_PORT / _ETCD_PEER_PORT / _APISERVER_PORT. Auth: a static token of a
# system:masters user (RBAC on); TLS: the server's self-signed certificate, trusted by the
# kubeconfig it writes.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
log() { echo "rehearse: $*" >&2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

up() {
  local dir="$1" etcd_port peer_port api_port token
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local tools_env
  tools_env="$(bash "$ROOT/deploy/apiserver-tools.sh")" || { log "deploy/apiserver-tools.sh failed"; return 1; }
  local ETCD KUBE_APISERVER KUBE_VERSION
  eval "$tools_env"
  etcd_port="${BOXOFFICE_REHEARSAL_ETCD_PORT:-$(free_port)}"
  peer_port="${BOXOFFICE_REHEARSAL_ETCD_PEER_PORT:-$(free_port)}"
  api_port="${BOXOFFICE_REHEARSAL_APISERVER_PORT:-$(free_port)}"
  rm -rf "$dir/etcd" "$dir/certs"
  mkdir -p "$dir/certs"
  nohup "$ETCD" --name rehearsal --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "rehearsal=http://127.0.0.1:$peer_port" \
    >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"
  token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "$token,rehearsal,rehearsal,system:masters" >"$dir/tokens.csv"
  [[ -s "$dir/sa.key" ]] || openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  nohup "$KUBE_APISERVER" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --cert-dir="$dir/certs" \
    --token-auth-file="$dir/tokens.csv" --authorization-mode=RBAC --anonymous-auth=false \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$dir/sa.key" --service-account-signing-key-file="$dir/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --profiling=false \
    >"$dir/kube-apiserver.log" 2>&1 &
  echo $! >"$dir/kube-apiserver.pid"
  for _ in $(seq 1 240); do
    if curl -sf --max-time 2 -k -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1; then
      break
    fi
    if ! kill -0 "$(cat "$dir/kube-apiserver.pid")" 2>/dev/null || ! kill -0 "$(cat "$dir/etcd.pid")" 2>/dev/null; then
      tail -n 30 "$dir/etcd.log" "$dir/kube-apiserver.log" >&2
      down "$dir"
      log "etcd or kube-apiserver exited (logs above, and in $dir)"
      return 1
    fi
    sleep 0.5
  done
  curl -sf --max-time 2 -k -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz" >/dev/null ||
    { tail -n 30 "$dir/kube-apiserver.log" >&2; down "$dir"; log "kube-apiserver not ready after 120 s"; return 1; }
  cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: rehearsal
    cluster:
      server: https://127.0.0.1:$api_port
      certificate-authority: $dir/certs/apiserver.crt
users:
  - name: rehearsal
    user:
      token: $token
contexts:
  - name: rehearsal
    context: {cluster: rehearsal, user: rehearsal}
current-context: rehearsal
EOF
  log "kube-apiserver $KUBE_VERSION ready on https://127.0.0.1:$api_port (etcd 127.0.0.1:$etcd_port)"
  echo "KUBECONFIG=$dir/kubeconfig"
}

down() {
  local dir="$1" name pid
  for name in kube-apiserver etcd; do
    [[ -f "$dir/$name.pid" ]] || continue
    pid="$(cat "$dir/$name.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
}

# The whole rehearsal, for people (the test suite runs the same steps as separate tests).
# Any failing command ends it (set -e); the EXIT trap stops the server.
REHEARSAL_DIR=""
rehearse() {
  local crds kc tools_env values
  crds="${BOXOFFICE_CRDS_DIR:-$ROOT/../shared/crds}"
  [[ -d "$crds" ]] || { log "no CRD copies at $crds (the shared/ checkout beside the repo)"; exit 1; }
  tools_env="$(bash "$ROOT/deploy/tools.sh")"
  eval "$tools_env"
  REHEARSAL_DIR="$(mktemp -d)"
  # shellcheck disable=SC2154  # rc is set inside the trap
  trap 'rc=$?; down "$REHEARSAL_DIR"; rm -rf "$REHEARSAL_DIR"; [[ $rc -eq 0 ]] || log "rehearsal FAILED"; exit $rc' EXIT
  kc="$(up "$REHEARSAL_DIR")"
  export "${kc?}" KUBECTL HELM
  cd "$ROOT"
  BOXOFFICE_GATEWAY_API_CRDS="$GATEWAY_API_CRD_DIR" deploy/platform-install.sh --rehearse "$crds"
  echo
  echo "== the chart, rendered with examples/values-kind.yaml, and k8s/: kubectl apply --dry-run=server"
  "$HELM" template boxoffice helm/boxoffice -n boxoffice -f helm/boxoffice/examples/values-kind.yaml \
    >"$REHEARSAL_DIR/rendered.yaml"
  "$KUBECTL" apply --dry-run=server --validate=strict -n boxoffice -f "$REHEARSAL_DIR/rendered.yaml"
  "$KUBECTL" apply --dry-run=server --validate=strict -k k8s/
  for values in "" helm/boxoffice/examples/values-*.yaml; do
    echo
    echo "== helm upgrade --install --dry-run=server ${values:-(default values)}"
    "$HELM" upgrade --install boxoffice helm/boxoffice -n boxoffice --dry-run=server \
      ${values:+-f "$values"} >/dev/null
    echo "ok"
  done
  echo
  echo "Rehearsal passed."
}

case "${1:-}" in
  up) up "${2:?usage: $0 up DIR}" ;;
  down) down "${2:?usage: $0 down DIR}" ;;
  "") rehearse ;;
  *) echo "usage: $0 [up DIR | down DIR]" >&2; exit 2 ;;
esac
