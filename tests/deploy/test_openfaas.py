"""deploy/openfaas/stack.yml and kafkasource.yaml kept in step with functions/ and the chart.

The reference is the chart rendered with its default values (the `render` fixture, helm from
deploy/tools.sh): the same functions, images, variables (plain ones with the same values; those
the chart takes from a Secret as OpenFaaS secrets, each reaching its function as <VAR>_FILE, the
file OpenFaaS mounts it as, which src/boxoffice/config.py reads), probe paths, scale bounds and
resources.
faas-cli itself is not run: the Go module proxy refuses github.com/openfaas/faas-cli here
(403 "module version is not available"), so the file's keys are checked against the fields of
faas-cli's stack schema (stack/schema.go, `Function`) instead. Whether OpenFaaS runs it is a
cluster's to show (docs/openfaas.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from boxoffice.config import ENV_VARS, FILE_SUFFIX, Settings, env_value
from boxoffice.web.app import LIVENESS_PATHS, READINESS_PATHS
from deploy.conftest import ROOT, Tools, docs
from deploy.test_chart import assert_all_valid, kubeconform

Render = Callable[[Path | None], str]
STACK = ROOT / "deploy" / "openfaas" / "stack.yml"
KAFKASOURCE = ROOT / "deploy" / "openfaas" / "kafkasource.yaml"
GUIDE = ROOT / "docs" / "openfaas.md"
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))

# faas-cli's stack.Function fields (yaml tags of openfaas/faas-cli stack/schema.go): a key
# outside these is silently ignored by faas-cli, i.e. a typo that deploys without its setting.
FAAS_CLI_FUNCTION_KEYS = {
    "lang",
    "handler",
    "image",
    "registry_auth",
    "fprocess",
    "environment",
    "secrets",
    "skip_build",
    "constraints",
    "environment_file",
    "labels",
    "limits",
    "requests",
    "readonly_root_filesystem",
    "build_options",
    "annotations",
    "namespace",
}
# OpenFaaS Community Edition ignores the path annotations and probes these (docs.openfaas.com,
# reference/workloads): they must be real routes as well.
OPENFAAS_DEFAULT_HEALTH, OPENFAAS_DEFAULT_READY = "/_/health", "/_/ready"
GATEWAY_ROUTE = "http://gateway.openfaas.svc.cluster.local:8080/function/consume-order"
# where OpenFaaS mounts a function's secret <name> (docs.openfaas.com, reference/secrets)
SECRETS_DIR = "/var/openfaas/secrets/"


def secret_name(variable: str) -> str:
    """The OpenFaaS secret that carries a variable the chart takes from a Secret."""
    return variable.lower().replace("_", "-")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(STACK.read_text())
    return loaded


@pytest.fixture(scope="module")
def chart(render: Render) -> dict[str, list[dict[str, Any]]]:
    """Rendered default chart: Knative Service name -> its documents, plus the event objects."""
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs(render(None)):
        out.setdefault(d["kind"], []).append(d)
    return out


def ksvcs(chart: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d
        for d in chart["Service"]
        if d["apiVersion"] == "serving.knative.dev/v1"
    }


def container(svc: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = svc["spec"]["template"]["spec"]["containers"]
    (c,) = containers
    return c


def chart_env(svc: dict[str, Any]) -> tuple[dict[str, Any], set[str], set[str]]:
    """A Knative Service's variables: plain (name -> value), from a Secret, from a ConfigMap."""
    plain: dict[str, Any] = {}
    from_secret: set[str] = set()
    from_configmap: set[str] = set()
    for e in container(svc)["env"]:
        if "value" in e:
            plain[e["name"]] = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            from_secret.add(e["name"])
        else:
            assert "configMapKeyRef" in e["valueFrom"], e
            from_configmap.add(e["name"])
    return plain, from_secret, from_configmap


def file_variables(env: dict[str, Any]) -> dict[str, str]:
    """The <VAR>_FILE entries of a function's environment: <VAR> -> the file it names."""
    return {k.removesuffix(FILE_SUFFIX): str(v) for k, v in env.items() if k.endswith(FILE_SUFFIX)}


def test_stack_is_faas_cli_format_with_one_function_per_functions_dir(
    stack: dict[str, Any],
) -> None:
    assert set(stack) == {"version", "provider", "functions"}
    assert str(stack["version"]) == "1.0"
    assert stack["provider"]["name"] == "openfaas"
    assert stack["provider"]["gateway"].startswith("http")
    names = set(stack["functions"])
    assert names == {f.replace("_", "-") for f in FUNCTIONS}, "functions/ and stack.yml differ"
    for name, fn in stack["functions"].items():
        # OpenFaaS names are DNS labels (RFC 1035), at most 63 characters
        assert re.fullmatch(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", name), name
        assert set(fn) <= FAAS_CLI_FUNCTION_KEYS, f"{name}: {set(fn) - FAAS_CLI_FUNCTION_KEYS}"
        assert fn["skip_build"] is True, f"{name}: images come from make images"
        assert fn["readonly_root_filesystem"] is True, name


def test_images_are_the_charts(
    stack: dict[str, Any], chart: dict[str, list[dict[str, Any]]]
) -> None:
    services = ksvcs(chart)
    assert set(services) == set(stack["functions"])
    for name, fn in stack["functions"].items():
        assert fn["image"] == container(services[name])["image"], name


def test_environment_and_secrets_are_the_variables_the_chart_sets(
    stack: dict[str, Any], chart: dict[str, list[dict[str, Any]]]
) -> None:
    for name, svc in ksvcs(chart).items():
        fn = stack["functions"][name]
        env = dict(fn.get("environment", {}))
        assert env.pop("PORT") == "8080", f"{name}: OpenFaaS routes to port 8080"
        secrets = set(fn.get("secrets", []))
        plain, from_secret, from_configmap = chart_env(svc)
        files = file_variables(env)
        for var in files:
            del env[var + FILE_SUFFIX]
        # the same names: plain and ConfigMap ones as environment, Secret ones as secrets
        # that the environment names as <VAR>_FILE (test_every_secret_... checks the pairs)
        assert set(env) == set(plain) | from_configmap, name
        assert set(files) == from_secret, name
        assert secrets == {secret_name(v) for v in from_secret}, name
        assert set(env) | from_secret <= set(ENV_VARS), name
        # the same values as the chart's defaults, as strings (OpenFaaS takes strings)
        for var, value in plain.items():
            assert env[var] == str(value), (name, var)
        # a ConfigMap's value comes from the deployer's environment (faas-cli substitutes it)
        for var in from_configmap:
            assert env[var] == f"${{{var}}}", (name, var)
    assert "boxoffice-database-url" in stack["functions"]["get-event"]["secrets"]


def test_every_secret_reaches_its_function_as_exactly_one_file_variable(
    stack: dict[str, Any], chart: dict[str, list[dict[str, Any]]]
) -> None:
    """OpenFaaS mounts secret <name> as SECRETS_DIR<name>, never as a variable: each one a
    function lists is named by one <VAR>_FILE, <VAR> a variable the chart gives that function
    from a Secret, and <VAR> itself unset (config.py refuses both)."""
    services = ksvcs(chart)
    pairs = 0
    for name, fn in stack["functions"].items():
        env = fn.get("environment", {})
        secrets = fn.get("secrets", [])
        assert len(secrets) == len(set(secrets)), f"{name}: a secret listed twice"
        _, from_secret, _ = chart_env(services[name])
        # every listed secret: exactly one _FILE variable names its file
        for secret in secrets:
            naming = [k for k, v in env.items() if v == SECRETS_DIR + secret]
            assert len(naming) == 1, f"{name}: {secret} named by {naming}, want one"
            assert naming[0].endswith(FILE_SUFFIX), (name, naming[0])
        # every _FILE variable: a listed secret's file, for a Secret variable of the chart's
        for var, path in file_variables(env).items():
            assert path.startswith(SECRETS_DIR), (name, var, path)
            secret = path.removeprefix(SECRETS_DIR)
            assert secret in secrets, f"{name}: {var}{FILE_SUFFIX} names {secret}, not listed"
            assert var in from_secret, f"{name}: the chart gives {var} from no Secret"
            assert secret == secret_name(var), (name, var, secret)
            assert var in ENV_VARS, (name, var)
            assert var not in env, f"{name}: {var} and {var}{FILE_SUFFIX} both set"
            pairs += 1
    assert pairs == sum(len(fn.get("secrets", [])) for fn in stack["functions"].values())
    assert pairs >= len(stack["functions"])  # every function needs BOXOFFICE_DATABASE_URL


def test_each_functions_settings_load_with_its_secrets_from_the_mounted_files(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    """What a pod would do: the stack's environment, its secrets as files (in tmp_path in place
    of SECRETS_DIR, each ending in a newline as a file written by hand does), read by
    Settings.from_env: required settings present, none set twice, each value the file's."""
    for name, fn in stack["functions"].items():
        env = {k: str(v) for k, v in fn["environment"].items()}
        if env.get("BOXOFFICE_TICKET_PUBLIC_KEYS") == "${BOXOFFICE_TICKET_PUBLIC_KEYS}":
            env["BOXOFFICE_TICKET_PUBLIC_KEYS"] = "stand-in for the ConfigMap's value"
        expected = {}
        for var, path in file_variables(env).items():
            secret = path.removeprefix(SECRETS_DIR)
            mounted = tmp_path / name / secret
            mounted.parent.mkdir(exist_ok=True)
            mounted.write_text(f"{name}'s {secret}\n")
            env[var + FILE_SUFFIX] = str(mounted)
            expected[var] = f"{name}'s {secret}"
        Settings.from_env(env)  # ConfigurationError if a required one is missing or doubled
        assert {var: env_value(var, env) for var in expected} == expected, name
        assert "BOXOFFICE_DATABASE_URL" in expected, name


def test_health_and_readiness_paths_are_real_routes(
    stack: dict[str, Any], chart: dict[str, list[dict[str, Any]]]
) -> None:
    assert OPENFAAS_DEFAULT_HEALTH in LIVENESS_PATHS
    assert OPENFAAS_DEFAULT_READY in READINESS_PATHS
    for name, svc in ksvcs(chart).items():
        ann = stack["functions"][name]["annotations"]
        c = container(svc)
        assert ann["com.openfaas.health.http.path"] == c["livenessProbe"]["httpGet"]["path"]
        assert ann["com.openfaas.ready.http.path"] == c["readinessProbe"]["httpGet"]["path"]
        assert ann["com.openfaas.health.http.path"] in LIVENESS_PATHS, name
        assert ann["com.openfaas.ready.http.path"] in READINESS_PATHS, name


def test_scaling_and_resources_are_the_charts(
    stack: dict[str, Any], chart: dict[str, list[dict[str, Any]]]
) -> None:
    for name, svc in ksvcs(chart).items():
        fn = stack["functions"][name]
        labels = fn["labels"]
        ann = svc["spec"]["template"]["metadata"]["annotations"]
        low = int(ann["autoscaling.knative.dev/min-scale"])
        assert labels["com.openfaas.scale.max"] == ann["autoscaling.knative.dev/max-scale"], name
        assert labels["com.openfaas.scale.min"] == str(max(1, low)), name
        assert labels.get("com.openfaas.scale.zero") == ("true" if low == 0 else None), name
        assert ann["autoscaling.knative.dev/metric"] == "concurrency"
        assert labels["com.openfaas.scale.type"] == "capacity", name  # requests in flight
        assert labels["com.openfaas.scale.target"] == ann["autoscaling.knative.dev/target"], name
        resources = container(svc)["resources"]
        for kind in ("requests", "limits"):
            assert fn[kind] == {k: str(v) for k, v in resources[kind].items()}, (name, kind)


def test_housekeeping_runs_on_the_charts_schedule(
    stack: dict[str, Any], chart: dict[str, list[dict[str, Any]]]
) -> None:
    (ping,) = chart["PingSource"]
    assert ping["spec"]["sink"]["ref"]["name"] == "housekeeping"
    ann = stack["functions"]["housekeeping"]["annotations"]
    assert ann["topic"] == "cron-function"
    assert ann["schedule"] == ping["spec"]["schedule"]
    # no other function is on a connector topic
    others = [n for n, f in stack["functions"].items() if "topic" in f.get("annotations", {})]
    assert others == ["housekeeping"]


def test_kafkasource_for_openfaas_is_the_charts_with_the_gateway_as_sink(
    chart: dict[str, list[dict[str, Any]]], stack: dict[str, Any]
) -> None:
    ours = {d["kind"]: d for d in docs(KAFKASOURCE.read_text())}
    assert set(ours) == {"KafkaSource", "KafkaSink"}
    (theirs_source,) = chart["KafkaSource"]
    (theirs_sink,) = chart["KafkaSink"]
    assert ours["KafkaSink"]["apiVersion"] == theirs_sink["apiVersion"]
    assert ours["KafkaSink"]["metadata"]["name"] == theirs_sink["metadata"]["name"]
    assert ours["KafkaSink"]["spec"] == theirs_sink["spec"]
    source = ours["KafkaSource"]
    assert source["apiVersion"] == theirs_source["apiVersion"]
    assert source["metadata"]["name"] == theirs_source["metadata"]["name"]
    spec, expected = dict(source["spec"]), dict(theirs_source["spec"])
    assert spec.pop("sink") == {"uri": GATEWAY_ROUTE}
    assert expected.pop("sink")["ref"]["name"] == "consume-order"
    assert spec == expected  # topics, group, ordering, delivery with retries and the DLS
    assert GATEWAY_ROUTE.rsplit("/", 1)[1] in stack["functions"]


def test_kafkasource_for_openfaas_passes_kubeconform(tools: Tools) -> None:
    results = kubeconform(tools, KAFKASOURCE)
    assert_all_valid(results)
    assert sorted(r["kind"] for r in results if r["kind"]) == ["KafkaSink", "KafkaSource"]


def test_the_guide_names_every_secret_the_stack_uses(stack: dict[str, Any]) -> None:
    guide = GUIDE.read_text()
    used = {s for fn in stack["functions"].values() for s in fn.get("secrets", [])}
    assert used
    for secret in used:
        assert f"faas-cli secret create {secret}" in guide, secret
    # and the file variable that brings each to its function, as stack.yml writes it
    for fn in stack["functions"].values():
        for var, path in file_variables(fn["environment"]).items():
            assert f"`{var}{FILE_SUFFIX}: {path}`" in guide, var
    for path in ("deploy/openfaas/stack.yml", "deploy/openfaas/kafkasource.yaml"):
        assert path in guide


def test_stack_parses_as_yaml_exactly_once_per_function() -> None:
    """A key written twice in YAML silently keeps the last one: refuse duplicates."""

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        keys = [loader.construct_object(k) for k, _ in node.value]
        dupes = {k for k in keys if keys.count(k) > 1}
        assert not dupes, f"duplicate keys {dupes} at line {node.start_mark.line + 1}"
        return loader.construct_mapping(node)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    yaml.load(STACK.read_text(), Loader=Strict)  # noqa: S506 - a SafeLoader subclass
    with pytest.raises(AssertionError, match="duplicate keys"):
        yaml.load("a: 1\na: 2\n", Loader=Strict)  # noqa: S506
