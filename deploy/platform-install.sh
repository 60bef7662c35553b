#!/usr/bin/env bash
# Install the platform Boxoffice runs on, in order, with pinned versions, into the current
# kubectl context (made for kind-config.yaml; works on any cluster with a LoadBalancer/NodePort).
#
#   deploy/platform-install.sh                     every step, in the order below
#   deploy/platform-install.sh postgres keycloak   only these steps, in the order given
#   deploy/platform-install.sh --rehearse CRD_DIR [STEP...]
#       the same steps against an API server with no nodes (deploy/rehearse.sh starts one):
#       the upstream CRDs each step brings are installed from CRD_DIR (copies of the upstream
#       files, ../shared/crds) at the point where the step brings them, and everything else the
#       step sends is a server-side dry run, so a step that needs a kind a later step installs
#       fails here exactly as on a real cluster. See docs/deploy.md, "The rehearsal".
#
# Steps (order matters: each step may only use kinds installed by itself or an earlier step):
#   namespaces       boxoffice, kafka, keycloak, monitoring, cnpg-system
#   gateway-api      Gateway API v1.4.1 standard CRDs (the chart's optional HTTPRoute; the Gateway
#                    implementation itself is the cluster owner's choice: Envoy Gateway, Istio, ...)
#   monitoring       kube-prometheus-stack 79.5.0 (Prometheus operator CRDs: PodMonitor, PrometheusRule, ...)
#   knative-serving  Knative Serving knative-v1.20.3 + Kourier knative-v1.20.1 (NodePort 31080/31443)
#   knative-eventing Knative Eventing knative-v1.20.3 + eventing-kafka-broker knative-v1.20.3
#   kafka            Strimzi 0.49.1 (API kafka.strimzi.io/v1) + Kafka 4.1.1 (KRaft) + topics
#   postgres         CloudNativePG chart 0.26.1 (operator 1.27.1) + Cluster boxoffice-db + its PodMonitor
#   keycloak         codecentric keycloakx chart 7.1.11 (quay.io/keycloak/keycloak 26.7.3), realm from a ConfigMap
#   secrets          the ticket signing key Secret (Ed25519) and the ConfigMap of ticket public keys
# monitoring comes before postgres: the CloudNativePG chart (monitoring.podMonitorEnabled) and
# cnpg-cluster.yaml create PodMonitors, whose CRD kube-prometheus-stack brings (cloudnative-pg/charts#108).
# Then: `make images`, `deploy/kind-load-images.sh` (into the kind cluster of kind-config.yaml) and
# `helm upgrade --install boxoffice helm/boxoffice` (docs/deploy.md, sections 3 and 4).
# Re-running is safe: every step is apply/upgrade --install.
set -euo pipefail
cd "$(dirname "$0")/.."

# Upgrades: move the Knative parts together (serving, eventing and eventing-kafka-broker share
# a release line; net-kourier's patch numbers run on their own), then re-run this script.
KNATIVE_SERVING_VERSION="knative-v1.20.3"
KNATIVE_EVENTING_VERSION="knative-v1.20.3"
KNATIVE_KAFKA_VERSION="knative-v1.20.3"    # eventing-kafka-broker: KafkaSource + KafkaSink
KOURIER_VERSION="knative-v1.20.1"           # net-kourier
STRIMZI_VERSION="0.49.1"
CNPG_CHART_VERSION="0.26.1"
KEYCLOAKX_CHART_VERSION="7.1.11"
KPS_CHART_VERSION="79.5.0"
GATEWAY_API_VERSION="v1.4.1"                # the version deploy/tools.sh validates HTTPRoutes with
ALL_STEPS=(namespaces gateway-api monitoring knative-serving knative-eventing kafka postgres keycloak secrets)

KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-helm}"
APP_NS="${BOXOFFICE_NAMESPACE:-boxoffice}"
GH="https://github.com"

REHEARSE=""
if [[ "${1:-}" == "--rehearse" ]]; then
  [[ -d "${2:-}" ]] || { echo "usage: $0 --rehearse CRD_DIR [STEP...]" >&2; exit 2; }
  REHEARSE="$(cd "$2" && pwd)"
  shift 2
fi
STEPS=("$@")
[[ ${#STEPS[@]} -gt 0 ]] || STEPS=("${ALL_STEPS[@]}")
for s in "${STEPS[@]}"; do
  [[ " ${ALL_STEPS[*]} " == *" $s "* ]] || { echo "unknown step '$s' (steps: ${ALL_STEPS[*]})" >&2; exit 2; }
done

step() { printf '\n== %s\n' "$*"; }
# One line per action in rehearsal mode, "rehearse: <verb> <what>", in the order they happen
# (tests/deploy/test_rehearsal.py reads them).
note() { echo "rehearse: $*"; }

# --- the verbs every step uses: real on a cluster, dry-run/CRD-only in a rehearsal ----------------

# The upstream CRDs a release manifest or chart brings, as files of the rehearsal's CRD_DIR
# (../shared/crds, see its README for the tags). "" = it brings none. An artifact without an
# entry fails the rehearsal, so a new upstream manifest cannot be skipped silently.
crds_of() {
  case "$1" in
    serving-crds.yaml) echo "serving-*.yaml" ;;
    eventing-crds.yaml) echo "eventing-*.yaml" ;;
    eventing-kafka-controller.yaml) echo "ekb-*.yaml" ;; # KafkaSource, KafkaSink, KafkaChannel, consumers
    serving-core.yaml | kourier.yaml | eventing-core.yaml) echo "" ;;
    eventing-kafka-source.yaml | eventing-kafka-sink.yaml) echo "" ;; # data plane
    chart:strimzi-kafka-operator) echo "strimzi-*.yaml" ;;
    chart:cloudnative-pg) echo "cnpg-crds.yaml" ;;
    chart:kube-prometheus-stack) echo "promop-*.yaml" ;;
    chart:keycloakx) echo "" ;;
    standard-install.yaml) # the Go module's copy (deploy/tools.sh), not in ../shared/crds
      [[ -d "${BOXOFFICE_GATEWAY_API_CRDS:-}" ]] || {
        echo "rehearse: set BOXOFFICE_GATEWAY_API_CRDS to the Gateway API CRDs (deploy/tools.sh: GATEWAY_API_CRD_DIR)" >&2
        return 1
      }
      echo "$BOXOFFICE_GATEWAY_API_CRDS/*.yaml" ;;
    *) return 1 ;;
  esac
}

# Install CRD files for real (server-side: the Prometheus operator's are too large for the
# last-applied annotation) and wait until the API serves them.
install_crds() {
  local glob="$1" path files
  path="$glob"
  [[ "$path" == /* ]] || path="$REHEARSE/$glob"
  # shellcheck disable=SC2206  # the glob is ours (crds_of)
  files=($path)
  [[ -e "${files[0]}" ]] || { echo "rehearse: no CRD files $path" >&2; exit 1; }
  note "crds ${glob#"${BOXOFFICE_GATEWAY_API_CRDS:-/nowhere}/"} (${#files[@]} files)"
  local args=()
  for f in "${files[@]}"; do args+=(-f "$f"); done
  "$KUBECTL" apply --server-side --force-conflicts "${args[@]}" >/dev/null
  "$KUBECTL" wait --for=condition=Established --timeout=120s "${args[@]}" >/dev/null
}

# Objects of upstream workload manifests that later steps patch; the rehearsal creates
# stand-ins with the upstream names and shape (deploy/rehearsal/upstream-stand-ins-*.yaml).
stand_ins() {
  local what="$1"
  note "stand-ins $what"
  "$KUBECTL" apply -f "deploy/rehearsal/upstream-stand-ins-$what.yaml" >/dev/null
}

# kubectl apply -f <upstream release manifest URL>
apply_upstream() {
  local url="$1" name glob
  name="$(basename "$url")"
  if [[ -z "$REHEARSE" ]]; then
    "$KUBECTL" apply -f "$url"
    return
  fi
  glob="$(crds_of "$name")" || { echo "rehearse: no CRD mapping for $name (add it to crds_of)" >&2; exit 1; }
  if [[ -n "$glob" ]]; then install_crds "$glob"; else note "skip $url (upstream workloads: not available offline)"; fi
  case "$name" in
    serving-core.yaml) stand_ins knative-serving ;;
    kourier.yaml) stand_ins kourier ;;
  esac
}

# helm upgrade --install RELEASE CHART [helm args...]; CHART is "repo-url|chart" or an oci:// ref
helm_install() {
  local release="$1" chart="$2" name glob
  shift 2
  name="${chart##*[/|]}"
  if [[ -z "$REHEARSE" ]]; then
    if [[ "$chart" == *"|"* ]]; then
      "$HELM" upgrade --install "$release" "${chart##*|}" --repo "${chart%%|*}" "$@"
    else
      "$HELM" upgrade --install "$release" "$chart" "$@"
    fi
    return
  fi
  glob="$(crds_of "chart:$name")" || { echo "rehearse: no CRD mapping for chart $name (add it to crds_of)" >&2; exit 1; }
  if [[ -n "$glob" ]]; then
    install_crds "$glob"
    note "skip helm chart $name (upstream chart: not available offline; its CRDs are installed)"
  else
    note "skip helm chart $name (upstream chart: not available offline; it brings no CRDs)"
  fi
}

# kubectl apply -f FILE (or - for stdin) of our own manifests: a strict server-side dry run
# in a rehearsal.
apply_ours() {
  if [[ -n "$REHEARSE" ]]; then
    note "dry-run apply ${WHAT:-$1}"
    "$KUBECTL" apply --dry-run=server --validate=strict -f "$@" >/dev/null
  else
    "$KUBECTL" apply -f "$@"
  fi
}

patch_ours() {
  if [[ -n "$REHEARSE" ]]; then
    note "dry-run patch $*"
    "$KUBECTL" patch --dry-run=server "$@" >/dev/null
  else
    "$KUBECTL" patch "$@"
  fi
}

# kubectl wait ...: nothing runs in a rehearsal (no nodes, no controllers), so only noted.
wait_for() {
  if [[ -n "$REHEARSE" ]]; then note "wait $*"; else "$KUBECTL" wait "$@"; fi
}
wait_deploy() { wait_for -n "$1" --for=condition=Available deployment --all --timeout="${2:-300s}"; }

# Create a Secret once (never rotate a key a running system uses); dry run in a rehearsal.
secret_once() {
  local ns="$1" name="$2"
  shift 2
  if [[ -n "$REHEARSE" ]]; then
    note "dry-run create secret $ns/$name"
    "$KUBECTL" -n "$ns" create secret generic "$name" "$@" --dry-run=server >/dev/null
  elif ! "$KUBECTL" -n "$ns" get secret "$name" >/dev/null 2>&1; then
    "$KUBECTL" -n "$ns" create secret generic "$name" "$@"
  fi
}

# --- the steps -----------------------------------------------------------------------------------

step_namespaces() {
  step "namespaces"
  local ns
  for ns in "$APP_NS" kafka keycloak monitoring cnpg-system; do
    # real in a rehearsal too: namespaced dry runs need their namespace
    [[ -z "$REHEARSE" ]] || note "namespace $ns"
    "$KUBECTL" create namespace "$ns" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
  done
}

step_gateway_api() {
  step "Gateway API $GATEWAY_API_VERSION (standard CRDs)"
  apply_upstream "$GH/kubernetes-sigs/gateway-api/releases/download/$GATEWAY_API_VERSION/standard-install.yaml"
}

step_monitoring() {
  step "kube-prometheus-stack $KPS_CHART_VERSION (first: later steps create PodMonitors)"
  helm_install kps "https://prometheus-community.github.io/helm-charts|kube-prometheus-stack" \
    --version "$KPS_CHART_VERSION" -n monitoring -f helm/platform/kube-prometheus-stack-values.yaml \
    --wait --timeout 10m
}

step_knative_serving() {
  step "Knative Serving $KNATIVE_SERVING_VERSION + Kourier $KOURIER_VERSION"
  local serving="$GH/knative/serving/releases/download/$KNATIVE_SERVING_VERSION"
  apply_upstream "$serving/serving-crds.yaml"
  apply_upstream "$serving/serving-core.yaml"
  apply_upstream "$GH/knative-extensions/net-kourier/releases/download/$KOURIER_VERSION/kourier.yaml"
  patch_ours configmap/config-network -n knative-serving --type merge \
    -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
  # Functions answer on <svc>.<ns>.127.0.0.1.sslip.io (or any name, with a Host header to 127.0.0.1:8080)
  patch_ours configmap/config-domain -n knative-serving --type merge \
    -p '{"data":{"127.0.0.1.sslip.io":""}}'
  # emptyDir for /tmp (read-only root filesystem); container securityContext runAsUser/Group
  patch_ours configmap/config-features -n knative-serving --type merge \
    -p '{"data":{"kubernetes.podspec-volumes-emptydir":"enabled","kubernetes.podspec-securitycontext":"enabled"}}'
  patch_ours service/kourier -n kourier-system --type merge -p \
    '{"spec":{"type":"NodePort","ports":[{"name":"http2","port":80,"targetPort":8080,"nodePort":31080},{"name":"https","port":443,"targetPort":8443,"nodePort":31443}]}}'
  wait_deploy knative-serving
  wait_deploy kourier-system
}

step_knative_eventing() {
  step "Knative Eventing $KNATIVE_EVENTING_VERSION + KafkaSource/KafkaSink ($KNATIVE_KAFKA_VERSION)"
  local eventing="$GH/knative/eventing/releases/download/$KNATIVE_EVENTING_VERSION"
  local ekb="$GH/knative-extensions/eventing-kafka-broker/releases/download/$KNATIVE_KAFKA_VERSION"
  apply_upstream "$eventing/eventing-crds.yaml"
  apply_upstream "$eventing/eventing-core.yaml"
  apply_upstream "$ekb/eventing-kafka-controller.yaml"
  # The data plane's pods must be created after the pod-defaulting webhook has its rules, or
  # they slip through unmutated (empty contract volume; knative-v1.20.0 shipped the webhook
  # without rules). Upstream's own e2e install waits for exactly this before the data plane.
  wait_deploy knative-eventing
  wait_for --for=jsonpath='{.webhooks[0].rules[0]}' --timeout=120s \
    mutatingwebhookconfiguration/pods.defaulting.webhook.kafka.eventing.knative.dev
  apply_upstream "$ekb/eventing-kafka-source.yaml"
  apply_upstream "$ekb/eventing-kafka-sink.yaml"
  wait_deploy knative-eventing
}

step_kafka() {
  step "Strimzi $STRIMZI_VERSION + Kafka (KRaft) + topics"
  helm_install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator \
    --version "$STRIMZI_VERSION" -n kafka -f helm/platform/strimzi-values.yaml --wait
  apply_ours helm/platform/kafka.yaml
  wait_for -n kafka kafka/boxoffice --for=condition=Ready --timeout=600s
  wait_for -n kafka kafkatopic/booking kafkatopic/booking-dlq --for=condition=Ready --timeout=120s
}

step_postgres() {
  step "CloudNativePG chart $CNPG_CHART_VERSION + Cluster boxoffice-db"
  helm_install cnpg "https://cloudnative-pg.github.io/charts|cloudnative-pg" \
    --version "$CNPG_CHART_VERSION" -n cnpg-system -f helm/platform/cloudnative-pg-values.yaml --wait
  apply_ours helm/platform/cnpg-cluster.yaml
  wait_for -n "$APP_NS" cluster/boxoffice-db --for=condition=Ready --timeout=600s
}

step_keycloak() {
  step "Keycloak (codecentric keycloakx $KEYCLOAKX_CHART_VERSION), realm from a ConfigMap"
  "$KUBECTL" -n keycloak create configmap keycloak-realm \
    --from-file=realm-boxoffice.json=stack/keycloak/realm-boxoffice.json --dry-run=client -o yaml |
    WHAT="configmap keycloak/keycloak-realm" apply_ours -
  secret_once keycloak keycloak-admin --from-literal=password="$(head -c 18 /dev/urandom | base64)"
  helm_install keycloak "https://codecentric.github.io/helm-charts|keycloakx" \
    --version "$KEYCLOAKX_CHART_VERSION" -n keycloak -f helm/platform/keycloakx-values.yaml \
    --wait --timeout 10m
}

step_secrets() {
  step "ticket signing key (Ed25519) and ticket public keys; admission key pair"
  # The waiting room's Ed25519 pair (ADR 14): the 32-byte seed and public key, base64url, cut
  # from OpenSSL's DER encodings (the raw key is their last 32 bytes).
  local der seed pub
  der=$(mktemp)
  openssl genpkey -algorithm ed25519 -outform DER -out "$der"
  seed=$(tail -c 32 "$der" | base64 | tr '+/' '-_' | tr -d '=\n')
  pub=$(openssl pkey -inform DER -in "$der" -pubout -outform DER | tail -c 32 | base64 | tr '+/' '-_' | tr -d '=\n')
  rm -f "$der"
  secret_once "$APP_NS" boxoffice-admission-keys \
    --from-literal=signing-key="$seed" --from-literal=verify-keys="$pub"
  # A new key pair the first time (or when an install from before signed tickets left an HMAC key
  # and no public keys): the private key (PKCS#8 PEM) in the Secret consume_order reads, its raw
  # public key (base64url) in the ConfigMap check_in reads and publishes. Rotation: README.
  if [[ -n "$REHEARSE" ]]; then
    note "dry-run create secret $APP_NS/boxoffice-ticket-signing, configmap $APP_NS/boxoffice-ticket-keys"
    "$KUBECTL" -n "$APP_NS" create secret generic boxoffice-ticket-signing \
      --from-literal=key=rehearsal --dry-run=server >/dev/null
    "$KUBECTL" -n "$APP_NS" create configmap boxoffice-ticket-keys \
      --from-literal=public-keys=rehearsal --dry-run=server >/dev/null
    return
  fi
  if ! "$KUBECTL" -n "$APP_NS" get configmap boxoffice-ticket-keys >/dev/null 2>&1; then
    local pem public
    pem=$(openssl genpkey -algorithm ed25519)
    public=$(printf '%s\n' "$pem" | openssl pkey -pubout -outform DER | tail -c 32 |
      base64 | tr '+/' '-_' | tr -d '=\n')
    "$KUBECTL" -n "$APP_NS" create secret generic boxoffice-ticket-signing \
      --from-literal=key="$pem" --dry-run=client -o yaml | "$KUBECTL" apply -f -
    "$KUBECTL" -n "$APP_NS" create configmap boxoffice-ticket-keys --from-literal=public-keys="$public"
  fi
}

for s in "${STEPS[@]}"; do
  "step_${s//-/_}"
done

if [[ -n "$REHEARSE" ]]; then
  printf '\nRehearsal passed: %s\n' "${STEPS[*]}"
else
  printf '\nPlatform ready. Next: build the images and load them into kind (docs/deploy.md, 3), then install the chart:\n'
  printf '  make images\n'
  printf '  deploy/kind-load-images.sh --name boxoffice\n'
  printf '  helm upgrade --install boxoffice helm/boxoffice -n %s -f helm/boxoffice/examples/values-kind.yaml\n' "$APP_NS"
fi
