"""Deployment checks, offline: helm, kubeconform and schemas come from deploy/tools.sh (installed
once per session into ~/.cache/boxoffice/tools). Nothing is skipped: a tool that cannot be
installed fails the tests. Every test here is marked `deploy` (`pytest -m deploy`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "boxoffice"
SHARED_CRDS = ROOT.parent / "shared" / "schemas" / "crds"
VALUES_FILES = [None, *sorted((CHART / "examples").glob("values-*.yaml"))]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "deploy: offline deployment checks (chart, manifests, image)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "deploy" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.deploy)


@dataclass(frozen=True)
class Tools:
    helm: str
    kubectl: str
    kubeconform: str
    hadolint: str
    k8s_schema_dir: Path
    gateway_api_crd_dir: Path
    crd_schema_dir: Path


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    proc = subprocess.run(
        ["bash", str(ROOT / "deploy" / "tools.sh")],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"deploy/tools.sh failed:\n{proc.stderr[-4000:]}", pytrace=False)
    env = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return Tools(
        helm=env["HELM"],
        kubectl=env["KUBECTL"],
        kubeconform=env["KUBECONFORM"],
        hadolint=env["HADOLINT"],
        k8s_schema_dir=Path(env["K8S_SCHEMA_DIR"]),
        gateway_api_crd_dir=Path(env["GATEWAY_API_CRD_DIR"]),
        crd_schema_dir=_crd_schemas(
            tmp_path_factory.mktemp("crds"), Path(env["GATEWAY_API_SCHEMA_DIR"])
        ),
    )


def _crd_schemas(dest: Path, gateway_api: Path) -> Path:
    """../shared/schemas/crds plus the Gateway API's (deploy/tools.sh makes them from the CRDs of
    the Go module sigs.k8s.io/gateway-api), with one repair: a schema whose top level has
    additionalProperties:false but no apiVersion/kind/metadata properties (KafkaSink's, made from
    a CRD whose openAPIV3Schema only lists spec/status) rejects every real object under
    -strict; add the three standard properties. spec is validated exactly as shipped."""
    if not SHARED_CRDS.is_dir():
        pytest.fail(f"{SHARED_CRDS} is missing (the shared/ checkout beside the repo)")
    out = dest / "crds"
    shutil.copytree(SHARED_CRDS, out)
    shutil.copytree(gateway_api, out, dirs_exist_ok=True)
    for path in out.glob("*/*.json"):
        schema = json.loads(path.read_text())
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False and "metadata" not in props:
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            props.setdefault("metadata", {"type": "object"})
            path.write_text(json.dumps(schema))
    return out


@pytest.fixture(scope="session")
def render(tools: Tools) -> Callable[[Path | None], str]:
    cache: dict[Path | None, str] = {}

    def _render(values: Path | None) -> str:
        if values not in cache:
            cmd = [tools.helm, "template", "boxoffice", str(CHART), "--namespace", "boxoffice"]
            if values is not None:
                cmd += ["-f", str(values)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            assert proc.returncode == 0, proc.stderr
            cache[values] = proc.stdout
        return cache[values]

    return _render


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]
