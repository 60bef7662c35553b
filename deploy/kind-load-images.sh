#!/usr/bin/env bash
# Load the function images `make images` built into a kind cluster (docs/deploy.md, "3. Images").
#
#   deploy/kind-load-images.sh                       cluster "boxoffice" (kind-config.yaml)
#   deploy/kind-load-images.sh --name NAME           another kind cluster
#   deploy/kind-load-images.sh -f VALUES_FILE        image.repository/image.tag of a values file
#                                                    win over the chart's (as with helm -f)
#
# One image per function directory (functions/<fn>/main.py), named as the chart names them:
# <image.repository>/<fn>:<image.tag> from helm/boxoffice/values.yaml (dev.local/boxoffice/<fn>:0.1.0;
# Knative never resolves dev.local/... against a registry, so a loaded image is used as it is).
# Every image must be in the local engine first; a missing one fails before anything is loaded.
# All of them go in one `kind load docker-image` call: kind saves them into one archive, so the
# layers the images share are copied to the nodes once.
# KIND and DOCKER name the binaries (default: kind, docker).
set -euo pipefail
cd "$(dirname "$0")/.."

KIND="${KIND:-kind}"
DOCKER="${DOCKER:-docker}"
CLUSTER=boxoffice
VALUES=(helm/boxoffice/values.yaml)

usage() { echo "usage: $0 [--name CLUSTER] [-f VALUES_FILE]..." >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) [[ $# -ge 2 ]] || usage; CLUSTER="$2"; shift 2 ;;
    -f | --values) [[ $# -ge 2 && -f "$2" ]] || usage; VALUES+=("$2"); shift 2 ;;
    -h | --help) usage ;;
    *) usage ;;
  esac
done

# image.<key> of the chart's values, the last values file that sets it winning (top-level
# `image:` block, two-space indented keys, as in values.yaml and examples/values-*.yaml).
image_value() {
  local key="$1" file value found=""
  for file in "${VALUES[@]}"; do
    value="$(awk -v key="$key" '
      /^image:/ { inblock = 1; next }
      inblock && /^[^ #]/ { inblock = 0 }
      inblock && $1 == key ":" { v = $2; gsub(/["\047]/, "", v); print v; exit }
    ' "$file")"
    [[ -z "$value" ]] || found="$value"
  done
  [[ -n "$found" ]] || { echo "kind-load-images: no image.$key in ${VALUES[*]}" >&2; exit 1; }
  echo "$found"
}

repository="$(image_value repository)"
tag="$(image_value tag)"

images=()
for main in functions/*/main.py; do
  fn="$(basename "$(dirname "$main")")"
  images+=("$repository/$fn:$tag")
done
[[ ${#images[@]} -gt 0 ]] || { echo "kind-load-images: no functions/*/main.py" >&2; exit 1; }

command -v "$DOCKER" >/dev/null || { echo "kind-load-images: $DOCKER not found (the images are loaded from the local engine)" >&2; exit 1; }
command -v "$KIND" >/dev/null || { echo "kind-load-images: $KIND not found: go install sigs.k8s.io/kind@v0.29.0" >&2; exit 1; }

missing=()
for image in "${images[@]}"; do
  "$DOCKER" image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "kind-load-images: not in the local image store: ${missing[*]}" >&2
  echo "kind-load-images: run make images first" >&2
  exit 1
fi

if ! "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "kind-load-images: no kind cluster '$CLUSTER': kind create cluster --config kind-config.yaml" >&2
  exit 1
fi

echo "kind-load-images: loading ${#images[@]} images into kind cluster '$CLUSTER'"
"$KIND" load docker-image "${images[@]}" --name "$CLUSTER"
printf '  %s\n' "${images[@]}"
