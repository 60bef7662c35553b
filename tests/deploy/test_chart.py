"""The chart and k8s/: lint, render, schema validation and the deployment's invariants."""

from __future__ import annotations

import filecmp
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from boxoffice.config import ENV_VARS
from boxoffice.web.app import LIVENESS_PATHS, READINESS_PATHS
from deploy.conftest import CHART, ROOT, VALUES_FILES, Tools, docs

FUNCTIONS = (
    "get_event",
    "get_customer",
    "create_booking",
    "consume_order",
    "check_in",
    "housekeeping",
    "waiting_room",
    "payment_webhook",
)
IDS = [p.name if p else "default" for p in VALUES_FILES]
Render = Callable[[Path | None], str]


def kubeconform(tools: Tools, *paths: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [
            tools.kubeconform,
            "-strict",
            "-verbose",
            "-output",
            "json",
            "-schema-location",
            f"{tools.k8s_schema_dir}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json",
            "-schema-location",
            f"{tools.crd_schema_dir}/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    resources: list[dict[str, Any]] = json.loads(proc.stdout)["resources"]
    return resources


def assert_all_valid(results: list[dict[str, Any]]) -> None:
    # statusEmpty: a comment-only document (the generated-file header); never a resource
    bad = [
        r
        for r in results
        if r["status"] != "statusValid"
        and not (r["status"] in ("", "statusEmpty") and not r["kind"])
    ]
    assert not bad, "\n".join(f"{r['kind']} {r['name']}: {r['status']} {r['msg']}" for r in bad)


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_helm_lint_strict(tools: Tools, values: Path | None) -> None:
    cmd = [tools.helm, "lint", "--strict", str(CHART)]
    if values is not None:
        cmd += ["-f", str(values)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_rendered_manifests_pass_kubeconform_strict(
    tools: Tools, render: Render, values: Path | None, tmp_path: Path
) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(render(values))
    results = kubeconform(tools, out)
    assert_all_valid(results)
    kinds = {r["kind"] for r in results}
    expected = {"Service", "KafkaSource", "KafkaSink", "Job", "ConfigMap", "PodMonitor"}
    expected |= {"Deployment", "PodDisruptionBudget"}  # the front door
    assert expected <= kinds
    if values is not None and "httpRoute" in values.read_text():
        assert "HTTPRoute" in kinds  # validated against the Gateway API's own schema
    assert len(results) == len(docs(out.read_text()))  # every document was validated


def test_committed_k8s_and_platform_crs_pass_kubeconform(tools: Tools) -> None:
    files = [ROOT / "k8s" / "boxoffice.yaml", *sorted((ROOT / "helm" / "platform").glob("*.yaml"))]
    crs = [f for f in files if any(d.get("kind") for d in docs(f.read_text()))]
    results = kubeconform(tools, *crs)
    assert_all_valid(results)
    kinds = {r["kind"] for r in results}
    assert {"Cluster", "Kafka", "KafkaNodePool", "KafkaTopic", "Service"} <= kinds
    kustomized = subprocess.run(
        [tools.kubectl, "kustomize", str(ROOT / "k8s")], capture_output=True, text=True, check=True
    ).stdout
    assert len(docs(kustomized)) == len(docs((ROOT / "k8s" / "boxoffice.yaml").read_text()))


def test_kubeconform_really_rejects_a_bad_manifest(tools: Tools, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\n"
        "spec: {template: {spec: {containers: [{name: a, image: b, bogus: 1}]}}}\n"
        "---\napiVersion: sources.knative.dev/v1beta1\nkind: KafkaSource\nmetadata: {name: y}\n"
        "spec: {topics: [a], bootstrapServers: [b], delivery: {retries: 3}}\n"
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: z}\n"
        "spec: {rules: [{backendRefs: [{name: s, port: 80, weight: heavy}]}]}\n"
    )
    statuses = [r["status"] for r in kubeconform(tools, bad)]
    assert statuses == ["statusInvalid", "statusInvalid", "statusInvalid"]


def test_k8s_dir_equals_a_fresh_render() -> None:
    fresh = subprocess.run(
        ["bash", str(ROOT / "deploy" / "render-k8s.sh"), "--stdout"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert (ROOT / "k8s" / "boxoffice.yaml").read_text() == fresh, "run deploy/render-k8s.sh"


def test_chart_migrations_are_db_migrations() -> None:
    link = CHART / "migrations"
    assert link.is_symlink(), "helm/boxoffice/migrations must be a symlink to db/migrations"
    assert link.resolve() == (ROOT / "db" / "migrations").resolve()
    cmp = filecmp.dircmp(link, ROOT / "db" / "migrations")
    assert not cmp.left_only
    assert not cmp.right_only
    assert not cmp.diff_files


def test_migration_configmap_carries_every_migration(render: Render) -> None:
    cms = [
        d
        for d in docs(render(None))
        if d["kind"] == "ConfigMap" and "migrations" in d["metadata"]["name"]
    ]
    assert len(cms) == 1
    for sql in (ROOT / "db" / "migrations").glob("*.sql"):
        assert cms[0]["data"][sql.name] == sql.read_text().rstrip("\n")


def _ksvcs(text: str) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d
        for d in docs(text)
        if d["apiVersion"] == "serving.knative.dev/v1" and d["kind"] == "Service"
    }


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_knative_services_invariants(render: Render, values: Path | None) -> None:
    ksvcs = _ksvcs(render(values))
    assert set(ksvcs) == {f.replace("_", "-") for f in FUNCTIONS}
    for name, svc in ksvcs.items():
        spec = svc["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["ports"] == [{"name": "http1", "containerPort": 8080}], name
        env = _env(container)
        assert "PORT" not in env, f"{name}: PORT is Knative's to set"
        assert set(env) <= set(ENV_VARS), f"{name}: unknown variables {set(env) - set(ENV_VARS)}"
        assert env["BOXOFFICE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"].endswith("-app")
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert not sc.get("privileged")
        assert container["livenessProbe"]["httpGet"]["path"] in LIVENESS_PATHS
        assert container["readinessProbe"]["httpGet"]["path"] in READINESS_PATHS
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts  # noqa: S108 - the writable emptyDir of a read-only root
        ann = svc["spec"]["template"]["metadata"]["annotations"]
        for key in ("min-scale", "max-scale", "target", "metric", "class"):
            assert f"autoscaling.knative.dev/{key}" in ann, (name, key)
        assert int(ann["autoscaling.knative.dev/min-scale"]) <= int(
            ann["autoscaling.knative.dev/max-scale"]
        )
        local = svc["metadata"]["labels"].get("networking.knative.dev/visibility")
        assert (local == "cluster-local") == (name in ("consume-order", "housekeeping")), name
    signing = _env(ksvcs["consume-order"]["spec"]["template"]["spec"]["containers"][0])
    assert "secretKeyRef" in signing["BOXOFFICE_TICKET_SIGNING_KEY"]["valueFrom"]
    # The private key reaches consume_order only; check_in gets the public keys (a ConfigMap).
    for name, svc in ksvcs.items():
        env = _env(svc["spec"]["template"]["spec"]["containers"][0])
        assert ("BOXOFFICE_TICKET_SIGNING_KEY" in env) == (name == "consume-order"), name
        assert ("BOXOFFICE_TICKET_PUBLIC_KEYS" in env) == (name == "check-in"), name
    public = _env(ksvcs["check-in"]["spec"]["template"]["spec"]["containers"][0])
    assert "configMapKeyRef" in public["BOXOFFICE_TICKET_PUBLIC_KEYS"]["valueFrom"]


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_kafka_source_delivery_is_complete(render: Render, values: Path | None) -> None:
    rendered = docs(render(values))
    (source,) = [d for d in rendered if d["kind"] == "KafkaSource"]
    spec = source["spec"]
    assert spec["topics"] == ["booking"]
    assert spec["initialOffset"] == "earliest"
    assert spec["ordering"] == "ordered"
    assert spec["consumerGroup"]
    assert spec["sink"]["ref"] == {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "name": "consume-order",
    }
    delivery = spec["delivery"]
    assert {"retry", "backoffPolicy", "backoffDelay", "timeout", "deadLetterSink"} <= set(delivery)
    assert delivery["retry"] >= 1
    assert re.fullmatch(r"PT[0-9.]+S", delivery["backoffDelay"])
    assert re.fullmatch(r"PT[0-9.]+S", delivery["timeout"])
    dls = delivery["deadLetterSink"]["ref"]
    sinks = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "KafkaSink"}
    assert dls["kind"] == "KafkaSink"
    assert dls["name"] in sinks
    assert sinks[dls["name"]]["spec"]["topic"] == "booking-dlq"


def _max_connections() -> int:
    (cluster,) = [
        d
        for d in docs((ROOT / "helm" / "platform" / "cnpg-cluster.yaml").read_text())
        if d["kind"] == "Cluster"
    ]
    return int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_connection_budget_fits_postgres_max_connections(
    render: Render, values: Path | None
) -> None:
    rendered = render(values)
    total = 0
    for svc in _ksvcs(rendered).values():
        max_scale = int(
            svc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/max-scale"]
        )
        env = _env(svc["spec"]["template"]["spec"]["containers"][0])
        pool_max = int(
            env.get("BOXOFFICE_DB_POOL_MAX", {}).get("value", ENV_VARS["BOXOFFICE_DB_POOL_MAX"][0])
        )
        workers = int(env.get("WORKERS", {}).get("value", "1"))
        total += max_scale * workers * pool_max
    (job,) = [d for d in docs(rendered) if d["kind"] == "Job"]
    reserve = int(job["metadata"]["annotations"]["boxoffice.dev/db-connection-reserve"])
    assert (
        int(job["metadata"]["annotations"]["boxoffice.dev/db-max-connections"])
        == _max_connections()
    )
    assert total + reserve <= _max_connections(), (total, reserve, _max_connections())


def test_chart_refuses_to_render_over_budget(tools: Tools) -> None:
    proc = subprocess.run(
        [
            tools.helm,
            "template",
            "x",
            str(CHART),
            "--set",
            "functions.get_event.autoscaling.maxScale=500",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "connection budget exceeded" in proc.stderr


def test_values_schema_env_names_are_real_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    names = set(schema["properties"]["env"]["propertyNames"]["enum"])
    assert names <= set(ENV_VARS)
    chart_set = set(
        re.findall(r"- name: (BOXOFFICE_\w+)", (CHART / "templates" / "services.yaml").read_text())
    )
    assert not names & chart_set


def test_every_value_is_documented_in_the_chart_readme() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()

    def keys(node: Any, prefix: str = "") -> list[str]:
        out = []
        for k, v in node.items():
            path = f"{prefix}{k}"
            if prefix.startswith("functions.") and prefix.count(".") == 2:
                path = "functions.<name>." + k
            out.append(path)
            if (
                isinstance(v, dict)
                and v
                and k not in ("resources", "env", "labels", "requests", "limits", "securityContext")
            ):
                out += keys(v, path + ".")
        return out

    missing = [k for k in keys(values) if f"`{k}`" not in readme]
    assert not missing, f"undocumented values: {sorted(set(missing))}"


def test_dashboards_and_rules_from_the_chart_files(render: Render) -> None:
    rendered = docs(render(None))
    dashboards = sorted((CHART / "dashboards").glob("*.json"))
    cms = [
        d
        for d in rendered
        if d["kind"] == "ConfigMap"
        and d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert len(cms) == len(dashboards)
    for cm in cms:
        for content in cm["data"].values():
            json.loads(content)
    rules = sorted((CHART / "rules").glob("*.yaml"))
    assert len([d for d in rendered if d["kind"] == "PrometheusRule"]) == len(rules)


def _cpus(quantity: str) -> int:
    millis = int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)
    return max(1, -(-millis // 1000))


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_pool_covers_the_servers_slots(render: Render, values: Path | None) -> None:
    """The entrypoint runs 4 slots (THREADS) per CPU of the limit (deploy/container-entrypoint.sh):
    each running request must be able to hold a pooled connection without waiting."""
    for name, svc in _ksvcs(render(values)).items():
        (container,) = svc["spec"]["template"]["spec"]["containers"]
        threads = 4 * _cpus(str(container["resources"]["limits"]["cpu"]))
        env = _env(container)
        assert int(env["BOXOFFICE_DB_POOL_MAX"]["value"]) >= threads, name


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_pod_monitor_selects_every_function_pod(render: Render, values: Path | None) -> None:
    rendered = render(values)
    (monitor,) = [
        d
        for d in docs(rendered)
        if d["kind"] == "PodMonitor" and d["metadata"]["name"] == "boxoffice-functions"
    ]
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "user-port"  # Knative's name for the user container's port
    for name, svc in _ksvcs(rendered).items():
        pod_labels = svc["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items(), name


def test_install_notes_render(tools: Tools) -> None:
    """NOTES.txt (not part of `helm template`): how to reach the API and get a token."""
    proc = subprocess.run(
        [tools.helm, "install", "boxoffice", str(CHART), "-n", "boxoffice", "--dry-run=client"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout[proc.stdout.index("NOTES:") :]
    assert "protocol/openid-connect/token" in notes
    assert "get ksvc" in notes


@pytest.mark.parametrize(
    "override",
    [
        "securityContext.runAsNonRoot=false",
        "securityContext.readOnlyRootFilesystem=false",
        "securityContext.allowPrivilegeEscalation=true",
        "probes.liveness.path=/",
        "kafkaSource.delivery.backoffPolicy=random",
        "env.BOXOFFICE_DATABASE_URL=postgresql://x",
        "functions.get_event.bogus=1",
    ],
)
def test_values_schema_refuses(tools: Tools, override: str) -> None:
    proc = subprocess.run(
        [tools.helm, "template", "x", str(CHART), "--set", override],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0, override
    assert "schema" in proc.stderr.lower(), proc.stderr
