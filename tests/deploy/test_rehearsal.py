"""The deploy rehearsal: the deployment sent to a real Kubernetes API server (etcd from Debian,
kube-apiserver built from the Go module proxy by deploy/apiserver-tools.sh, both on loopback,
started by deploy/rehearse.sh), in the order a user runs it.

What a real API server checks and the offline tests cannot: that every kind is known when it is
sent (install order), strict field decoding, CRD structural schemas with their CEL rules and
enums, core validation (NodePort ranges, name formats, ConfigMap size), and Helm's kubeVersion
against a real server version. Nothing runs there (no nodes, controllers or operator webhooks):
docs/deploy.md lists what only a real cluster shows.

The upstream CRDs come from ../shared/crds (copies at the release tags its README names); the
platform install takes them step by step in its own order (deploy/platform-install.sh
--rehearse), so a step that needs a kind a later step brings fails here. The chart is
rendered and applied whole, whatever it contains.

The first run builds kube-apiserver (15-20 minutes on one core, then cached in
~/.cache/boxoffice/tools); later runs start it in seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.conftest import CHART, ROOT, VALUES_FILES, Tools, docs

SHARED_CRDS = ROOT.parent / "shared" / "crds"
IDS = [p.name if p else "default" for p in VALUES_FILES]
# The cold build of kube-apiserver happens in the first test's fixture.
pytestmark = pytest.mark.timeout(3600)
Render = Callable[[Path | None], str]


@dataclass(frozen=True)
class ApiServer:
    kubeconfig: Path
    tools: Tools

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBECTL": self.tools.kubectl,
            "HELM": self.tools.helm,
        }

    def run(
        self, *cmd: str, stdin: str | None = None, timeout: int = 300
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(cmd),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
            env=self.env,
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(self.tools.kubectl, *args, stdin=stdin)

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(self.tools.helm, *args)

    def dry_run_apply(self, manifest: str) -> subprocess.CompletedProcess[str]:
        return self.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-n", "boxoffice", "-f", "-",
            stdin=manifest,
        )  # fmt: skip

    def platform_install(self, *steps: str) -> subprocess.CompletedProcess[str]:
        # The Gateway API CRDs are not among ../shared/crds: the Go module's copy (deploy/tools.sh).
        os.environ.setdefault("BOXOFFICE_GATEWAY_API_CRDS", str(self.tools.gateway_api_crd_dir))
        return self.run(
            "bash", str(ROOT / "deploy" / "platform-install.sh"), "--rehearse", str(SHARED_CRDS),
            *steps, timeout=900,
        )  # fmt: skip


def _rehearse(
    *args: str, timeout: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "deploy" / "rehearse.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _start(tools: Tools, state: Path, *, free_ports: bool = False) -> ApiServer:
    """free_ports: ignore BOXOFFICE_REHEARSAL_*_PORT (a second server beside the first)."""
    if not SHARED_CRDS.is_dir():
        pytest.fail(f"{SHARED_CRDS} is missing (the shared/ checkout beside the repo)")
    ports = ("ETCD_PORT", "ETCD_PEER_PORT", "APISERVER_PORT")
    env = {f"BOXOFFICE_REHEARSAL_{p}": "" for p in ports} if free_ports else None
    # first run: installs etcd-server and builds kube-apiserver (cached afterwards)
    proc = _rehearse("up", str(state), timeout=3300, env=env)
    if proc.returncode != 0:
        pytest.fail(f"deploy/rehearse.sh up failed:\n{proc.stderr[-6000:]}", pytrace=False)
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("KUBECONFIG=")]
    return ApiServer(kubeconfig=Path(line.split("=", 1)[1]), tools=tools)


@pytest.fixture(scope="module")
def apiserver(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    state = tmp_path_factory.mktemp("apiserver")
    try:
        yield _start(tools, state)
    finally:
        _rehearse("down", str(state), timeout=60)


@pytest.fixture(scope="module")
def platform(apiserver: ApiServer) -> list[str]:
    """The platform install walked once, every step in the script's order; its action lines."""
    proc = apiserver.platform_install()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return [line.removeprefix("rehearse: ") for line in proc.stdout.splitlines()]


def _index(lines: list[str], pattern: str) -> int:
    hits = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    assert hits, f"no action matching {pattern!r} in:\n" + "\n".join(lines)
    return hits[0]


def test_api_server_reports_the_stamped_kubernetes_version(apiserver: ApiServer) -> None:
    proc = apiserver.kubectl("version", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    server = json.loads(proc.stdout)["serverVersion"]
    assert re.fullmatch(r"v1\.33\.\d+", server["gitVersion"]), server
    assert (server["major"], server["minor"]) == ("1", "33")


def test_platform_install_walks_its_steps_in_its_own_order(platform: list[str]) -> None:
    assert platform[-1].startswith(
        "Rehearsal passed: namespaces gateway-api monitoring knative-serving"
    )
    # the Gateway API CRDs (the chart's optional HTTPRoute) before anything uses them
    assert _index(platform, r"^crds \*\.yaml") < _index(platform, r"^crds promop-")
    # the Prometheus operator's CRDs arrive before the first PodMonitor is sent
    promop = _index(platform, r"^crds promop-")
    assert promop < _index(platform, r"^dry-run apply helm/platform/cnpg-cluster\.yaml")
    assert promop < _index(platform, r"^skip helm chart cloudnative-pg")
    # each step's own CRs after the CRDs their operator brings
    assert _index(platform, r"^crds strimzi-") < _index(platform, r"^dry-run apply .*kafka\.yaml")
    assert _index(platform, r"^crds cnpg-") < _index(platform, r"cnpg-cluster\.yaml")
    # the eventing-kafka-broker data plane only after its pod-defaulting webhook has rules
    webhook = _index(platform, r"^wait .*pods\.defaulting\.webhook\.kafka\.eventing\.knative\.dev")
    assert "{.webhooks[0].rules[0]}" in platform[webhook]
    assert _index(platform, r"^crds ekb-") < webhook
    assert webhook < _index(platform, r"eventing-kafka-source\.yaml")
    assert webhook < _index(platform, r"eventing-kafka-sink\.yaml")
    # our patches of Knative's config and Kourier's Service reached the server
    for target in ("config-network", "config-domain", "config-features", "service/kourier"):
        _index(platform, rf"^dry-run patch .*{target}")


POD_DEFAULTING_WEBHOOK = """\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: pods.defaulting.webhook.kafka.eventing.knative.dev
webhooks:
  - name: pods.defaulting.webhook.kafka.eventing.knative.dev
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Ignore
    # matches no namespace: this stand-in must never be called
    namespaceSelector: {matchLabels: {boxoffice.dev/rehearsal-never: "true"}}
    clientConfig:
      service: {name: kafka-webhook-eventing, namespace: knative-eventing, path: /pods-defaulting}
"""


def test_the_webhook_wait_holds_the_data_plane_until_the_rules_exist(
    apiserver: ApiServer, platform: list[str]
) -> None:
    """The script's own wait (as it noted it), run for real against a stand-in of upstream's
    pods.defaulting webhook: it times out while the webhook has no rules (knative-v1.20.0's
    state at install), and returns once the rules are there."""
    wait = platform[_index(platform, r"^wait .*pods\.defaulting\.webhook")].split()[1:]
    wait = [("--timeout=4s" if a.startswith("--timeout=") else a) for a in wait]
    created = apiserver.kubectl("create", "-f", "-", stdin=POD_DEFAULTING_WEBHOOK)
    assert created.returncode == 0, created.stderr
    try:
        before = apiserver.kubectl("wait", *wait)
        assert before.returncode != 0, before.stdout
        assert "timed out" in before.stderr, before.stderr
        rules = [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                  "resources": ["pods"]}]  # fmt: skip
        patch = [{"op": "add", "path": "/webhooks/0/rules", "value": rules}]
        patched = apiserver.kubectl(
            "patch", "mutatingwebhookconfiguration",
            "pods.defaulting.webhook.kafka.eventing.knative.dev", "--type=json",
            "-p", json.dumps(patch),
        )  # fmt: skip
        assert patched.returncode == 0, patched.stderr
        after = apiserver.kubectl("wait", *wait)
        assert after.returncode == 0, after.stderr
    finally:
        apiserver.kubectl(
            "delete", "mutatingwebhookconfiguration",
            "pods.defaulting.webhook.kafka.eventing.knative.dev", "--ignore-not-found",
        )  # fmt: skip


def test_every_upstream_crd_is_installed_and_served(
    apiserver: ApiServer, platform: list[str]
) -> None:
    files = sorted(SHARED_CRDS.glob("*.yaml"))
    assert files
    expected = apiserver.kubectl(
        "apply", "--dry-run=client", "-o", "name", *[a for f in files for a in ("-f", str(f))]
    )
    assert expected.returncode == 0, expected.stderr
    names = {line.split("/", 1)[1] for line in expected.stdout.split()}
    assert len(names) >= 50  # Knative, eventing-kafka-broker, Strimzi, CNPG, Prometheus operator
    served = apiserver.kubectl("get", "crd", "-o", "json")
    assert served.returncode == 0, served.stderr
    established = {
        crd["metadata"]["name"]
        for crd in json.loads(served.stdout)["items"]
        if any(
            c["type"] == "Established" and c["status"] == "True"
            for c in crd.get("status", {}).get("conditions", [])
        )
    }
    assert names <= established, names - established


def test_platform_install_in_the_old_order_fails_on_the_podmonitor(
    tools: Tools, tmp_path: Path
) -> None:
    """Negative control: the order this script had (CloudNativePG before kube-prometheus-stack)
    is refused exactly as a real cluster refuses it (cloudnative-pg/charts#108)."""
    server = _start(tools, tmp_path / "apiserver", free_ports=True)
    try:
        proc = server.platform_install(
            "namespaces", "knative-serving", "knative-eventing", "kafka", "postgres",
            "keycloak", "monitoring", "secrets",
        )  # fmt: skip
    finally:
        _rehearse("down", str(tmp_path / "apiserver"), timeout=60)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert 'no matches for kind "PodMonitor" in version "monitoring.coreos.com/v1"' in proc.stderr
    assert "Rehearsal passed" not in proc.stdout


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_rendered_chart_is_accepted_by_the_api_server(
    apiserver: ApiServer, platform: list[str], render: Render, values: Path | None
) -> None:
    rendered = render(values)
    proc = apiserver.dry_run_apply(rendered)
    assert proc.returncode == 0, proc.stderr
    accepted = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs(rendered))  # every object the chart renders, whatever it is


def test_k8s_dir_is_accepted_by_the_api_server(apiserver: ApiServer, platform: list[str]) -> None:
    proc = apiserver.kubectl("apply", "--dry-run=server", "--validate=strict", "-k", "k8s/")
    assert proc.returncode == 0, proc.stderr
    accepted = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs((ROOT / "k8s" / "boxoffice.yaml").read_text()))


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_helm_upgrade_install_dry_run_server(
    apiserver: ApiServer, platform: list[str], values: Path | None
) -> None:
    args = ["upgrade", "--install", "boxoffice", str(CHART), "-n", "boxoffice", "--dry-run=server"]
    if values is not None:
        args += ["-f", str(values)]
    proc = apiserver.helm(*args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "STATUS: pending-install" in proc.stdout


def test_helm_checks_the_chart_kube_version_against_the_server(
    apiserver: ApiServer, platform: list[str], tmp_path: Path
) -> None:
    """Control for the version stamp: a chart that needs a newer Kubernetes is refused."""
    chart = tmp_path / "boxoffice"
    shutil.copytree(CHART, chart, symlinks=False)
    meta = chart / "Chart.yaml"
    text = meta.read_text()
    assert re.search(r"^kubeVersion: ", text, re.M)
    meta.write_text(re.sub(r"^kubeVersion: .*$", 'kubeVersion: ">=1.99.0-0"', text, flags=re.M))
    proc = apiserver.helm(
        "upgrade", "--install", "boxoffice", str(chart), "-n", "boxoffice", "--dry-run=server"
    )
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr or "Kubernetes version" in proc.stderr, proc.stderr


def _first(rendered: str, kind: str) -> dict[str, Any]:
    """The first object of `kind` ("Service": the first Knative Service, not a core one)."""
    return next(
        d
        for d in docs(rendered)
        if d["kind"] == kind and (kind != "Service" or d["apiVersion"].startswith("serving."))
    )


MISSPELT: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    # kind: (where, how to misspell it)
    "Service": (
        "spec.template.spec.containerConcurency",
        lambda d: d["spec"]["template"]["spec"].update(
            containerConcurency=d["spec"]["template"]["spec"].pop("containerConcurrency")
        ),
    ),
    "KafkaSource": (
        "spec.delivery.retries",
        lambda d: d["spec"]["delivery"].update(retries=d["spec"]["delivery"].pop("retry")),
    ),
    "PodMonitor": (
        "spec.podMetricEndpoints",
        lambda d: d["spec"].update(podMetricEndpoints=d["spec"].pop("podMetricsEndpoints")),
    ),
    "Job": (
        "spec.template.spec.containers[0].imagePullPolice",
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
            imagePullPolice=d["spec"]["template"]["spec"]["containers"][0].pop("imagePullPolicy")
        ),
    ),
}


@pytest.mark.parametrize("kind", sorted(MISSPELT))
def test_a_misspelt_field_is_rejected(
    apiserver: ApiServer, platform: list[str], render: Render, kind: str
) -> None:
    """Negative control: the same object passes as rendered and fails with one field misspelt."""
    field, misspell = MISSPELT[kind]
    good = _first(render(None), kind)
    assert apiserver.dry_run_apply(yaml.safe_dump(good)).returncode == 0
    bad = json.loads(json.dumps(good))
    misspell(bad)
    proc = apiserver.dry_run_apply(yaml.safe_dump(bad))
    assert proc.returncode != 0
    assert "unknown field" in proc.stderr, proc.stderr
    assert field.rsplit(".", 1)[-1].split("[")[0] in proc.stderr, proc.stderr


def test_platform_crs_are_checked_against_their_crds(
    apiserver: ApiServer, platform: list[str]
) -> None:
    """Negative control for a CRD's own schema (enum and CEL rules, not only field names):
    a KafkaNodePool with an unknown role and a Kafka listener of an unknown type are refused."""
    pools = [
        d for d in docs((ROOT / "helm" / "platform" / "kafka.yaml").read_text())
        if d["kind"] in ("KafkaNodePool", "Kafka")
    ]  # fmt: skip
    for doc in pools:
        bad = json.loads(json.dumps(doc))
        if doc["kind"] == "KafkaNodePool":
            bad["spec"]["roles"] = ["leader"]
        else:
            bad["spec"]["kafka"]["listeners"][0]["type"] = "tunnel"
        proc = apiserver.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-f", "-", stdin=yaml.safe_dump(bad)
        )
        assert proc.returncode != 0, doc["kind"]
        assert "Unsupported value" in proc.stderr, proc.stderr
