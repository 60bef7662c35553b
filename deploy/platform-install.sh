#!/usr/bin/env bash
# Install the platform Boxoffice runs on, in order, with pinned versions, into the current
# kubectl context (made for kind-config.yaml; works on any cluster with a LoadBalancer/NodePort).
#
#   1. Knative Serving v1.20.0 + Kourier v1.20.0 (NodePort 31080/31443; emptyDir + securityContext flags)
#   2. Knative Eventing v1.20.0 + eventing-kafka-broker knative-v1.20.0 (KafkaSource, KafkaSink)
#   3. Strimzi 0.49.1 (API kafka.strimzi.io/v1) + Kafka (KRaft, KafkaNodePool) + topics booking, booking-dlq
#   4. CloudNativePG chart 0.26.1 (operator 1.27.1) + Cluster boxoffice-db
#   5. Keycloak: codecentric keycloakx chart 7.1.11 (quay.io/keycloak/keycloak 26.7.3), realm from a ConfigMap
#   6. kube-prometheus-stack 79.5.0 (Prometheus, Grafana, Alertmanager)
#   7. the ticket signing key Secret (Ed25519) and the ConfigMap of ticket public keys
# Then: build/load the images (kind-config.yaml) and `helm upgrade --install boxoffice helm/boxoffice`
# (docs/deploy.md). Re-running is safe: every step is apply/upgrade --install.
set -euo pipefail
cd "$(dirname "$0")/.."

KNATIVE_VERSION="v1.20.0"                 # serving, kourier (net-kourier) and eventing: one release line
KNATIVE_KAFKA_VERSION="knative-v1.20.0"   # eventing-kafka-broker: KafkaSource + KafkaSink
STRIMZI_VERSION="0.49.1"
CNPG_CHART_VERSION="0.26.1"
KEYCLOAKX_CHART_VERSION="7.1.11"
KPS_CHART_VERSION="79.5.0"

KUBECTL="${KUBECTL:-kubectl}"
HELM="${HELM:-helm}"
APP_NS="${BOXOFFICE_NAMESPACE:-boxoffice}"
GH="https://github.com"
step() { printf '\n== %s\n' "$*"; }
wait_deploy() { "$KUBECTL" -n "$1" wait --for=condition=Available deployment --all --timeout="${2:-300s}"; }

for ns in "$APP_NS" kafka keycloak monitoring cnpg-system; do
  "$KUBECTL" create namespace "$ns" --dry-run=client -o yaml | "$KUBECTL" apply -f -
done

step "1. Knative Serving $KNATIVE_VERSION + Kourier"
"$KUBECTL" apply -f "$GH/knative/serving/releases/download/knative-$KNATIVE_VERSION/serving-crds.yaml"
"$KUBECTL" apply -f "$GH/knative/serving/releases/download/knative-$KNATIVE_VERSION/serving-core.yaml"
"$KUBECTL" apply -f "$GH/knative-extensions/net-kourier/releases/download/knative-$KNATIVE_VERSION/kourier.yaml"
"$KUBECTL" patch configmap/config-network -n knative-serving --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
# Functions answer on <svc>.<ns>.127.0.0.1.sslip.io (or any name, with a Host header to 127.0.0.1:8080)
"$KUBECTL" patch configmap/config-domain -n knative-serving --type merge \
  -p '{"data":{"127.0.0.1.sslip.io":""}}'
# emptyDir for /tmp (read-only root filesystem); container securityContext runAsUser/Group
"$KUBECTL" patch configmap/config-features -n knative-serving --type merge \
  -p '{"data":{"kubernetes.podspec-volumes-emptydir":"enabled","kubernetes.podspec-securitycontext":"enabled"}}'
"$KUBECTL" patch service/kourier -n kourier-system --type merge -p \
  '{"spec":{"type":"NodePort","ports":[{"name":"http2","port":80,"targetPort":8080,"nodePort":31080},{"name":"https","port":443,"targetPort":8443,"nodePort":31443}]}}'
wait_deploy knative-serving
wait_deploy kourier-system

step "2. Knative Eventing $KNATIVE_VERSION + KafkaSource/KafkaSink ($KNATIVE_KAFKA_VERSION)"
"$KUBECTL" apply -f "$GH/knative/eventing/releases/download/knative-$KNATIVE_VERSION/eventing-crds.yaml"
"$KUBECTL" apply -f "$GH/knative/eventing/releases/download/knative-$KNATIVE_VERSION/eventing-core.yaml"
EKB="$GH/knative-extensions/eventing-kafka-broker/releases/download/$KNATIVE_KAFKA_VERSION"
"$KUBECTL" apply -f "$EKB/eventing-kafka-controller.yaml"
"$KUBECTL" apply -f "$EKB/eventing-kafka-source.yaml"
"$KUBECTL" apply -f "$EKB/eventing-kafka-sink.yaml"
wait_deploy knative-eventing

step "3. Strimzi $STRIMZI_VERSION + Kafka (KRaft) + topics"
"$HELM" upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator \
  --version "$STRIMZI_VERSION" -n kafka -f helm/platform/strimzi-values.yaml --wait
"$KUBECTL" apply -f helm/platform/kafka.yaml
"$KUBECTL" -n kafka wait kafka/boxoffice --for=condition=Ready --timeout=600s
"$KUBECTL" -n kafka wait kafkatopic/booking kafkatopic/booking-dlq --for=condition=Ready --timeout=120s

step "4. CloudNativePG chart $CNPG_CHART_VERSION + Cluster boxoffice-db"
"$HELM" upgrade --install cnpg cloudnative-pg --repo https://cloudnative-pg.github.io/charts \
  --version "$CNPG_CHART_VERSION" -n cnpg-system -f helm/platform/cloudnative-pg-values.yaml --wait
"$KUBECTL" apply -f helm/platform/cnpg-cluster.yaml
"$KUBECTL" -n "$APP_NS" wait cluster/boxoffice-db --for=condition=Ready --timeout=600s

step "5. Keycloak (codecentric keycloakx $KEYCLOAKX_CHART_VERSION), realm from a ConfigMap"
"$KUBECTL" -n keycloak create configmap keycloak-realm \
  --from-file=realm-boxoffice.json=stack/keycloak/realm-boxoffice.json --dry-run=client -o yaml \
  | "$KUBECTL" apply -f -
if ! "$KUBECTL" -n keycloak get secret keycloak-admin >/dev/null 2>&1; then
  "$KUBECTL" -n keycloak create secret generic keycloak-admin \
    --from-literal=password="$(head -c 18 /dev/urandom | base64)"
fi
"$HELM" upgrade --install keycloak keycloakx --repo https://codecentric.github.io/helm-charts \
  --version "$KEYCLOAKX_CHART_VERSION" -n keycloak -f helm/platform/keycloakx-values.yaml \
  --wait --timeout 10m

step "6. kube-prometheus-stack $KPS_CHART_VERSION"
"$HELM" upgrade --install kps kube-prometheus-stack \
  --repo https://prometheus-community.github.io/helm-charts --version "$KPS_CHART_VERSION" \
  -n monitoring -f helm/platform/kube-prometheus-stack-values.yaml --wait --timeout 10m

step "7. ticket signing key (Ed25519) and ticket public keys"
# A new key pair the first time (or when an install from before signed tickets left an HMAC key
# and no public keys): the private key (PKCS#8 PEM) in the Secret consume_order reads, its raw
# public key (base64url) in the ConfigMap check_in reads and publishes. Rotation: README.
if ! "$KUBECTL" -n "$APP_NS" get configmap boxoffice-ticket-keys >/dev/null 2>&1; then
  pem=$(openssl genpkey -algorithm ed25519)
  public=$(printf '%s\n' "$pem" | openssl pkey -pubout -outform DER | tail -c 32 |
    base64 | tr '+/' '-_' | tr -d '=\n')
  "$KUBECTL" -n "$APP_NS" create secret generic boxoffice-ticket-signing \
    --from-literal=key="$pem" --dry-run=client -o yaml | "$KUBECTL" apply -f -
  "$KUBECTL" -n "$APP_NS" create configmap boxoffice-ticket-keys --from-literal=public-keys="$public"
  unset pem
fi

printf '\nPlatform ready. Next: build + kind load the images, then\n'
printf '  helm upgrade --install boxoffice helm/boxoffice -n %s -f helm/boxoffice/examples/values-kind.yaml\n' "$APP_NS"
