"""The container's entrypoint, run exactly as the image runs it, against a venv built from
requirements/runtime.lock alone (hash-checked, no dev dependencies), laid out like the image:
/opt/venv -> <tmp>/venv, /app/src and /app/functions/<name> -> the repository's."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deploy.conftest import ROOT

ENTRYPOINT = ROOT / "deploy" / "container-entrypoint.sh"
LOCK = ROOT / "requirements" / "runtime.lock"


@pytest.fixture(scope="session")
def runtime_venv() -> Path:
    cache = Path(os.environ.get("BOXOFFICE_CACHE_DIR", Path.home() / ".cache" / "boxoffice"))
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16]
    venv = cache / "tools" / f"runtime-venv-{digest}"
    if not (venv / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                "--disable-pip-version-check",
                "--require-hashes",
                "--no-deps",
                "--only-binary=:all:",
                "-r",
                str(LOCK),
            ],
            check=True,
            timeout=900,
        )
        # as the Containerfile does: the image carries no installer
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "uninstall",
                "-q",
                "-y",
                "pip",
                "setuptools",
            ],
            check=True,
        )
        (venv / ".complete").touch()
    return venv


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "src").symlink_to(ROOT / "src")
    (app / "functions").symlink_to(ROOT / "functions")
    return app


def _env(venv: Path, app: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": str(app / "src"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/tmp",  # noqa: S108 - the image sets HOME/TMPDIR=/tmp (read-only root)
        "TMPDIR": "/tmp",  # noqa: S108
        "BOXOFFICE_APP_DIR": str(app),
    }
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("cpu_max", "threads"),
    [("max 100000", 4), ("50000 100000", 4), ("200000 100000", 8), ("250000 100000", 12)],
)
def test_threads_follow_the_cgroup_cpu_limit(
    tmp_path: Path, app_dir: Path, cpu_max: str, threads: int
) -> None:
    cpu_file = tmp_path / "cpu.max"
    cpu_file.write_text(cpu_max + "\n")
    env = _env(
        Path("/nonexistent"), app_dir, FUNCTION="get_event", BOXOFFICE_CGROUP_CPU_MAX=str(cpu_file)
    )
    out = subprocess.run(
        ["sh", str(ENTRYPOINT), "--print-config"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"THREADS={threads} " in out
    assert "WORKERS=1 " in out
    assert "PORT=8080 " in out


@pytest.fixture
def running_function(runtime_venv: Path, app_dir: Path) -> Iterator[str]:
    port = _free_port()
    env = _env(
        runtime_venv,
        app_dir,
        FUNCTION="get_event",
        PORT=str(port),
        BOXOFFICE_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        BOXOFFICE_OIDC_ISSUER="http://127.0.0.1:1/realms/boxoffice",
        BOXOFFICE_DB_TIMEOUT_SECONDS="0.5",
    )
    proc = subprocess.Popen(
        ["sh", str(ENTRYPOINT)], env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"entrypoint exited {proc.returncode}:\n{out}")
            try:
                requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_entrypoint_serves_probes_and_routes_on_port(running_function: str) -> None:
    base = running_function
    health = requests.get(f"{base}/healthz", timeout=5)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert requests.get(f"{base}/_/health", timeout=5).status_code == 200
    # a real route: the catalogue validates the id before touching the database
    bad = requests.get(f"{base}/events/not-a-uuid", timeout=5)
    assert bad.status_code == 400
    assert bad.headers["Content-Type"].startswith("application/problem+json")
    # readiness really checks the database (unreachable here): not ready, no crash
    assert requests.get(f"{base}/readyz", timeout=10).status_code == 503
    metrics = requests.get(f"{base}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert "boxoffice_http_requests_total" in metrics.text
