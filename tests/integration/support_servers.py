"""A function's own server process for a test: `python -m boxoffice.processes.server` (the command
the stack and the images run), on a free port, with the test's environment, until the block ends."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from boxoffice.processes import server as function_server

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class RunningFunction:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def running_function(
    function: str, log_dir: Path, env: dict[str, str], wait_for: str = "/readyz"
) -> Iterator[RunningFunction]:
    """`function`'s server with `env` over the test's environment; yields once `wait_for`
    (/readyz; /healthz for a server expected not to be ready) is 200, and stops the server's
    process group (main process and workers) afterwards."""
    port = free_port()
    log = log_dir / f"{function}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            function_server.command(str(ROOT / ".venv" / "bin" / "python"), port),
            cwd=ROOT / "functions" / function,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                if requests.get(f"{url}{wait_for}", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        yield RunningFunction(url, proc, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
