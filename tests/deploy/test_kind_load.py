"""deploy/kind-load-images.sh, run with recording stand-ins for `kind` and `docker` on PATH.

A unit-level test of the script's behaviour, on purpose: kind cannot run on this machine (its
nodes are privileged containers, which cannot start here), so what a real `kind load` does is
a machine with kind's to show (docs/deploy.md, "3. Images"). What is checked here is what the
script decides: which images it asks for (one per functions/*/main.py, named
<image.repository>/<fn>:<image.tag> as the rendered chart names them), that it loads them all in
one call into the named cluster, and that it refuses clearly, loading nothing, when an image is
missing or the cluster does not exist."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.conftest import ROOT, docs

Render = Callable[[Path | None], str]

SCRIPT = ROOT / "deploy" / "kind-load-images.sh"
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))

# Stand-ins: each appends its argv (one line, tab-separated) to $RECORD and answers like the
# real tool. docker: `image inspect X` succeeds when X is listed in $PRESENT. kind: `get
# clusters` prints $CLUSTERS, `load docker-image ...` succeeds.
DOCKER_STANDIN = """#!/bin/sh
(IFS="$(printf '\\t')"; echo "docker	$*") >>"$RECORD"
if [ "$1 $2" = "image inspect" ]; then
  grep -qxF "$3" "$PRESENT" && exit 0
  echo "Error: No such image: $3" >&2
  exit 1
fi
exit 0
"""
KIND_STANDIN = """#!/bin/sh
(IFS="$(printf '\\t')"; echo "kind	$*") >>"$RECORD"
case "$1 $2" in
  "get clusters") printf '%s\\n' $CLUSTERS ;;
esac
exit 0
"""


def run(
    tmp_path: Path, present: list[str], clusters: str = "boxoffice", *args: str
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("docker", DOCKER_STANDIN), ("kind", KIND_STANDIN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "record"
    record.write_text("")
    (tmp_path / "present").write_text("".join(f"{i}\n" for i in present))
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RECORD": str(record),
        "PRESENT": str(tmp_path / "present"),
        "CLUSTERS": clusters,
    }
    proc = subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    calls = [line.split("\t") for line in record.read_text().splitlines()]
    return proc, calls


def chart_images(render: Render, values: Path | None = None) -> list[str]:
    """The images the rendered chart's Knative Services run."""
    return sorted(
        c["image"]
        for d in docs(render(values))
        if d["kind"] == "Service" and d["apiVersion"] == "serving.knative.dev/v1"
        for c in d["spec"]["template"]["spec"]["containers"]
    )


def loads(calls: list[list[str]]) -> list[list[str]]:
    return [c[1:] for c in calls if c[:3] == ["kind", "load", "docker-image"]]


def test_loads_one_image_per_function_with_the_charts_names_in_one_call(
    tmp_path: Path, render: Render
) -> None:
    images = chart_images(render)
    assert len(images) == len(FUNCTIONS) == 8
    proc, calls = run(tmp_path, images)
    assert proc.returncode == 0, proc.stderr
    (load,) = loads(calls)
    assert load[-2:] == ["--name", "boxoffice"]
    loaded = load[2:-2]
    assert sorted(loaded) == images  # exactly these, each once
    assert len(set(loaded)) == len(loaded)
    assert {i.rsplit("/", 1)[1].split(":")[0] for i in loaded} == set(FUNCTIONS)


def test_cluster_name_and_a_values_files_repository_are_honoured(
    tmp_path: Path, render: Render
) -> None:
    production = ROOT / "helm" / "boxoffice" / "examples" / "values-production.yaml"
    images = chart_images(render, production)
    assert all(i.startswith("registry.example.com/") for i in images)
    proc, calls = run(tmp_path, images, "other", "--name", "other", "-f", str(production))
    assert proc.returncode == 0, proc.stderr
    (load,) = loads(calls)
    assert load[-2:] == ["--name", "other"]
    assert sorted(load[2:-2]) == images


def test_a_missing_image_fails_clearly_and_loads_nothing(tmp_path: Path, render: Render) -> None:
    images = chart_images(render)
    gone = next(i for i in images if "/consume_order:" in i)
    proc, calls = run(tmp_path, [i for i in images if i != gone])
    assert proc.returncode == 1
    assert gone in proc.stderr
    assert "run make images first" in proc.stderr
    assert loads(calls) == []
    # every image was looked up, so the message names all that are missing at once
    inspected = [c[3] for c in calls if c[:3] == ["docker", "image", "inspect"]]
    assert sorted(inspected) == images


def test_a_missing_cluster_fails_clearly_and_loads_nothing(tmp_path: Path, render: Render) -> None:
    proc, calls = run(tmp_path, chart_images(render), "someone-else")
    assert proc.returncode == 1
    assert "no kind cluster 'boxoffice'" in proc.stderr
    assert "kind create cluster --config kind-config.yaml" in proc.stderr
    assert loads(calls) == []


@pytest.mark.parametrize("args", [["--name"], ["--bogus"], ["-f", "/nonexistent.yaml"]])
def test_bad_arguments_are_refused(tmp_path: Path, args: list[str]) -> None:
    proc, calls = run(tmp_path, [], "boxoffice", *args)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    assert calls == []
