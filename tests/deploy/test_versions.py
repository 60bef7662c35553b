"""One version of each part across the local stack, docker-compose.yml, the chart and the platform
install (docs/deploy.md, "Versions"), and image references pinned (deploy/pin-images.py).

Where a part cannot be one version everywhere, the table in docs/deploy.md says why and this
file checks what can be checked (the same major, say)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from deploy.conftest import CHART, ROOT, docs

SHARED_CRDS_README = ROOT.parent / "shared" / "crds" / "README.md"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
# Kafka versions each Strimzi minor runs (strimzi.io/downloads, "Kafka versions").
STRIMZI_KAFKA_VERSIONS = {"0.49": {"4.0.0", "4.0.1", "4.1.0", "4.1.1"}}


def _text(rel: str) -> str:
    return (ROOT / rel).read_text()


def _default(script: str, var: str) -> str:
    m = re.search(rf'^: "\$\{{{var}:=([^}}]+)\}}"$', _text(script), re.M)
    assert m, f"{script}: no default for {var}"
    return m[1]


def _compose_tags(repo: str) -> set[str]:
    compose = yaml.safe_load(_text("docker-compose.yml"))
    tags = set()
    for service in compose["services"].values():
        image = DIGEST.sub("", service.get("image", ""))
        if image.rpartition(":")[0] == repo:
            tags.add(image.rpartition(":")[2])
    assert tags, f"docker-compose.yml has no {repo} image"
    return tags


def _pom_property(rel: str, name: str) -> str:
    m = re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", _text(rel))
    assert m, f"{rel}: no <{name}>"
    return m[1]


def _platform_pin(var: str) -> str:
    m = re.search(rf'^{var}="([^"]+)"', _text("deploy/platform-install.sh"), re.M)
    assert m, f"deploy/platform-install.sh: no {var}"
    return m[1]


def _crd_tags() -> dict[str, str]:
    """prefix -> upstream tag of the CRD copies in ../shared/crds (its README's table)."""
    if not SHARED_CRDS_README.is_file():
        pytest.fail(f"{SHARED_CRDS_README} is missing (the shared/ checkout beside the repo)")
    row = re.compile(r"^\| `([^`]+)` \| [^|]+ \| ([^|]+) \|$", re.M)
    rows = row.findall(SHARED_CRDS_README.read_text())
    return {prefix.rstrip("*-").removesuffix("-crds.yaml"): tag.strip() for prefix, tag in rows}


def _minor(version: str) -> str:
    m = re.search(r"(\d+)\.(\d+)", version)
    assert m, version
    return f"{m[1]}.{m[2]}"


def test_kafka_is_one_version_and_strimzi_runs_it() -> None:
    (cluster,) = [d for d in docs(_text("helm/platform/kafka.yaml")) if d["kind"] == "Kafka"]
    version = str(cluster["spec"]["kafka"]["version"])
    assert _default("stack/services/kafka.sh", "BOXOFFICE_KAFKA_VERSION") == version
    assert _pom_property("stack/maven/kafka/pom.xml", "kafka.version") == version
    assert _compose_tags("apache/kafka") == {version}
    strimzi = _platform_pin("STRIMZI_VERSION")
    assert version in STRIMZI_KAFKA_VERSIONS[_minor(strimzi)], (strimzi, version)


def test_keycloak_is_one_version() -> None:
    version = _default("stack/services/keycloak.sh", "BOXOFFICE_KEYCLOAK_VERSION")
    assert _compose_tags("quay.io/keycloak/keycloak") == {version}
    values = yaml.safe_load(_text("helm/platform/keycloakx-values.yaml"))
    assert DIGEST.sub("", values["image"]["tag"]) == version
    assert values["image"]["repository"] == "quay.io/keycloak/keycloak"


def test_flyway_is_one_version() -> None:
    version = _pom_property("stack/maven/flyway/pom.xml", "flyway.version")
    assert _compose_tags("flyway/flyway") == {version}
    image = yaml.safe_load((CHART / "values.yaml").read_text())["migrations"]["image"]
    assert DIGEST.sub("", image) == f"docker.io/flyway/flyway:{version}"


def test_nginx_front_door_is_one_version_in_compose_and_the_chart() -> None:
    """The local stack's front door is Debian's nginx package (the same template); compose and
    the chart run the official image, one tag."""
    image = yaml.safe_load((CHART / "values.yaml").read_text())["frontdoor"]["image"]
    repo, _, tag = DIGEST.sub("", image).rpartition(":")
    assert repo == "docker.io/library/nginx"
    assert _compose_tags("nginx") == {tag}


def test_postgresql_is_one_major() -> None:
    local = re.search(r"/usr/lib/postgresql/(\d+)/bin", _text("stack/services/postgres.sh"))
    assert local
    (cluster,) = [
        d for d in docs(_text("helm/platform/cnpg-cluster.yaml")) if d["kind"] == "Cluster"
    ]
    platform = re.search(r"postgresql:(\d+)\.", cluster["spec"]["imageName"])
    assert platform
    assert {tag.split(".")[0] for tag in _compose_tags("postgres")} == {local[1]} == {platform[1]}


def test_knative_parts_are_one_release_line_and_match_the_crd_copies() -> None:
    pins = {
        var: _platform_pin(var)
        for var in (
            "KNATIVE_SERVING_VERSION",
            "KNATIVE_EVENTING_VERSION",
            "KNATIVE_KAFKA_VERSION",
            "KOURIER_VERSION",
        )
    }
    serving = pins["KNATIVE_SERVING_VERSION"]
    assert pins["KNATIVE_EVENTING_VERSION"] == pins["KNATIVE_KAFKA_VERSION"] == serving
    assert {_minor(v) for v in pins.values()} == {_minor(serving)}
    tags = _crd_tags()
    # the rehearsal's CRDs: same minor (CRDs do not change between patch releases)
    for prefix in ("serving", "eventing", "ekb"):
        assert _minor(tags[prefix]) == _minor(serving), (prefix, tags[prefix])


def test_operator_crd_copies_match_the_pinned_operators() -> None:
    tags = _crd_tags()
    assert tags["strimzi"] == _platform_pin("STRIMZI_VERSION")
    values = _text("helm/platform/cloudnative-pg-values.yaml")
    operator = re.search(r"operator (\d+\.\d+\.\d+)", values)
    assert operator
    assert tags["cnpg"] == f"v{operator[1]}"


def test_kubernetes_is_one_minor() -> None:
    kind_node = re.search(r"kindest/node:v(\d+\.\d+)\.", _text("kind-config.yaml"))
    apiserver = re.search(r'^KUBE_VERSION="v(\d+\.\d+)\.', _text("deploy/apiserver-tools.sh"), re.M)
    schemas = re.search(r'^K8S_SCHEMA_VERSION="(\d+\.\d+)\.', _text("deploy/tools.sh"), re.M)
    kubectl = re.search(r'^KUBECTL_LAYER_PKG=".*kubectl-v1?(\d+)"', _text("deploy/tools.sh"), re.M)
    assert kind_node
    assert apiserver
    assert schemas
    assert kubectl
    assert kind_node[1] == apiserver[1] == schemas[1] == f"1.{kubectl[1]}"


# -- image pins --------------------------------------------------------------------------------


def _images() -> list[dict[str, object]]:
    proc = subprocess.run(
        ["python3", str(ROOT / "deploy" / "pin-images.py"), "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    refs: list[dict[str, object]] = json.loads(proc.stdout)
    return refs


def test_every_image_is_pinned_by_tag_and_digests_are_well_formed() -> None:
    refs = _images()
    files = {r["file"] for r in refs}
    assert {"Containerfile", "docker-compose.yml", "kind-config.yaml"} <= files
    for r in refs:
        ref = str(r["ref"])
        tag = DIGEST.sub("", ref).rpartition(":")[2]
        assert tag, ref
        assert "/" not in tag, ref
        assert tag != "latest", ref
        assert bool(r["pinned"]) == ("@sha256:" in ref), ref


def test_not_yet_digest_pinned_images_are_exactly_the_listed_ones() -> None:
    """The gap stays visible: deploy/unpinned-images.txt names every reference without a digest
    (pin one with deploy/pin-images.py pin, then delete its line)."""
    listed = {
        line.strip()
        for line in _text("deploy/unpinned-images.txt").splitlines()
        if line.strip() and not line.startswith("#")
    }
    unpinned = {f"{r['ref']}  ({r['file']})" for r in _images() if not r["pinned"]}
    assert unpinned == listed, {"not listed": unpinned - listed, "pinned now": listed - unpinned}


def test_the_base_image_and_kind_node_are_digest_pinned() -> None:
    pinned = {str(r["file"]) for r in _images() if r["pinned"]}
    assert {"Containerfile", "kind-config.yaml", "helm/platform/cnpg-cluster.yaml"} <= pinned


def test_kind_node_digest_is_the_one_kind_itself_records(tmp_path: Path) -> None:
    """kind-config.yaml pins the default node image of the kind release it names; kind's module
    (from the Go module proxy, cached) records that image with its digest."""
    config = _text("kind-config.yaml")
    kind = re.search(r"sigs\.k8s\.io/kind@(v[\d.]+)", config)
    image = re.search(r"^\s+image:\s*(\S+)$", config, re.M)
    assert kind
    assert image
    tools = Path(os.environ.get("BOXOFFICE_CACHE_DIR", Path.home() / ".cache" / "boxoffice"))
    env = {
        **os.environ,
        "GOPATH": str(tools / "tools" / "gopath"),
        "GOFLAGS": "-mod=mod",
        "GOCACHE": str(tools / "tools" / "gocache"),
    }
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{kind[1]}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    defaults = Path(json.loads(proc.stdout)["Dir"]) / "pkg/apis/config/defaults/image.go"
    recorded = re.search(r'const Image = "([^"]+)"', defaults.read_text())
    assert recorded
    assert image[1] == recorded[1]
    assert kind[1] in _text("docs/deploy.md")
