"""The container engine and the function images for tests/containers, through the stack's own
script (stack/services/images.sh): the same Docker CLI, image names and engine the stack uses.

The group never skips: without an engine or without the images it fails, saying which and what to
run (`make images` starts the engine, as root, and builds them; `make test` runs it first)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests

from integration.support_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
STACK = ROOT / "stack" / "boxo"
FUNCTIONS = sorted(p.parent.name for p in ROOT.glob("functions/*/main.py"))


def stack_shell(script: str, env: dict[str, str] | None = None) -> str:
    """Run `script` in bash with the stack's functions defined (`source stack/boxo`)."""
    proc = subprocess.run(
        ["bash", "-c", f'source "{STACK}" && {script}'],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"stack script failed: {script}\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return proc.stdout.strip()


@cache
def docker_cli() -> str:
    """The Docker CLI the stack uses, once an engine answers (else the group fails)."""
    cli = stack_shell('bx_docker version >/dev/null 2>&1; echo "$BX_DOCKER_CLI"')
    info = subprocess.run([cli, "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.fail(
            "the container tests need a running container engine and none answers "
            f"(`{cli} info`: {info.stderr.strip()[:300]}). `make images` starts Debian's dockerd "
            "when run as root and builds the images; `make test` runs it first.",
            pytrace=False,
        )
    return cli


def docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [docker_cli(), *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {proc.stderr.strip()}")
    return proc


@cache
def image_of(function: str) -> str:
    return stack_shell(f"image_name {function}")


def inspect_image(function: str) -> dict[str, Any]:
    """The image's `docker image inspect`, or a failure saying to build it."""
    proc = docker("image", "inspect", image_of(function), check=False)
    if proc.returncode != 0:
        pytest.fail(f"no image {image_of(function)}: run `make images` first", pytrace=False)
    info: dict[str, Any] = json.loads(proc.stdout)[0]
    return info


def stack_env() -> dict[str, str]:
    """The environment the stack gives its functions (`stack/boxo env` as it wrote it)."""
    return {k: v for k, v in os.environ.items() if k.startswith("BOXOFFICE_")}


@dataclass
class Container:
    name: str
    url: str

    def logs(self) -> str:
        proc = docker("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def state(self) -> dict[str, Any]:
        proc = docker("inspect", self.name, check=False)
        if proc.returncode != 0:
            return {}
        state: dict[str, Any] = json.loads(proc.stdout)[0]["State"]
        return state


def wait_http(url: str, timeout: float = 60, status: int = 200) -> float:
    """Seconds until `url` answers `status` (fails after `timeout`)."""
    start = time.monotonic()
    while True:
        try:
            if requests.get(url, timeout=2).status_code == status:
                return time.monotonic() - start
        except requests.ConnectionError:
            pass
        assert time.monotonic() - start < timeout, f"{url} did not answer {status}"
        time.sleep(0.02)


@contextmanager
def running_container(
    function: str, env: dict[str, str] | None = None, wait_for: str = "/readyz"
) -> Iterator[Container]:
    """`function`'s image as the stack runs it (host network, read-only root, tmpfs /tmp,
    uid 10001, no capabilities) on a free port with the stack's environment plus `env`."""
    inspect_image(function)
    port = free_port()
    name = f"boxoffice-test-{function}-{port}"
    environment = {**stack_env(), **(env or {}), "PORT": str(port), "LISTEN_HOST": "127.0.0.1"}
    args = [f"--env={k}={v}" for k, v in sorted(environment.items())]
    tmpfs = "/tmp:rw,nosuid,nodev,size=64m"  # noqa: S108 - the container's own /tmp
    docker(
        "run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", tmpfs,
        "--user", "10001:10001", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--stop-timeout", "30", *args, image_of(function),
    )  # fmt: skip
    container = Container(name, f"http://127.0.0.1:{port}")
    try:
        try:
            wait_http(container.url + wait_for)
        except AssertionError:
            logs = container.logs()[-3000:]
            raise AssertionError(f"{name} never became ready:\n{logs}") from None
        yield container
    finally:
        docker("rm", "-f", name, check=False)
