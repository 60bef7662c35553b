"""The functions under test: each its own functions-framework process (granian, WORKERS
workers x THREADS slots, as stack/services/functions.sh runs them) on a free port, against the
benchmark database; plus /proc readings of their CPU time and resident memory."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import requests

from benchmarks.env import ROOT, VENV_BIN, BenchError
from boxoffice.processes import server

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            continue
    return out


def tree(pid: int) -> list[int]:
    """pid and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU time of these processes (live ones; reaped children not included)."""
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def postgres_backends(database: str) -> list[int]:
    """PostgreSQL backend processes serving `database` (their title names it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            pids.append(int(proc.name))
    return pids


def rss_mb(pid: int) -> float:
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return resident * PAGE / 1024 / 1024


def pss_mb(pid: int) -> float:
    """Proportional set size: shared pages (forked from the server's main process) counted once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class SystemCpu:
    """Share of the whole machine's CPU that was busy between start() and stop()."""

    @staticmethod
    def _read() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]
        return sum(values), idle

    def __init__(self) -> None:
        self.total, self.idle = self._read()

    def busy(self) -> float:
        total, idle = self._read()
        dt = total - self.total
        return 0.0 if dt <= 0 else 1.0 - (idle - self.idle) / dt


class Measured(Protocol):
    """A process under test whose CPU time an attack reads before and after."""

    def cpu(self) -> float: ...


@dataclass
class ManagedProcess:
    """A process of the harness that is not a function (the admission controller, the front
    door): its own session, so stopping it stops its children."""

    name: str
    proc: subprocess.Popen[bytes]

    def cpu(self) -> float:
        return cpu_seconds(tree(self.proc.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)


def start_process(
    name: str, cmd: list[str], env: dict[str, str], log: Path, cwd: Path
) -> ManagedProcess:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return ManagedProcess(name, proc)


def wait_http(url: str, proc: ManagedProcess, timeout: float = 30.0) -> None:
    """Until `url` answers 200 (BenchError if the process exits or the time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.proc.poll() is not None:
            raise BenchError(f"{proc.name} exited (see its log)")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise BenchError(f"{proc.name} did not answer on {url}")
        time.sleep(0.1)


@contextlib.contextmanager
def frontdoor(upstreams: dict[str, int], log: Path) -> Iterator[tuple[ManagedProcess, str]]:
    """The front door (nginx, the one template, as compose renders it) in front of the given
    function ports; yields the process and its base URL."""
    directory = Path(tempfile.mkdtemp(prefix="boxoffice-bench-frontdoor-"))
    directory.chmod(0o755)
    port = free_port()
    unused = free_port()
    env = dict(
        os.environ,
        PATH=f"/usr/sbin:{os.environ.get('PATH', '')}",
        FRONTDOOR_TEMPLATE=str(ROOT / "stack" / "frontdoor" / "nginx.conf.tmpl"),
        FRONTDOOR_DIR=str(directory),
        FRONTDOOR_LISTEN=f"127.0.0.1:{port}",
    )
    for name in (
        "get_event",
        "get_customer",
        "create_booking",
        "check_in",
        "waiting_room",
        "payment_webhook",
    ):
        env[f"{name.upper()}_ADDR"] = f"127.0.0.1:{upstreams.get(name, unused)}"
    proc = start_process(
        "frontdoor",
        ["/bin/sh", str(ROOT / "deploy" / "compose" / "frontdoor-entrypoint.sh")],
        env,
        log,
        ROOT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_frontdoor/healthz", proc)
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class FunctionProcess:
    name: str
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    directory: Path | None = None  # default: functions/<name>

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(self.env, PORT=str(self.port))
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                server.command(str(VENV_BIN / "python"), self.port),
                cwd=self.directory or ROOT / "functions" / self.name,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_until(
        self, path: str, headers: dict[str, str] | None = None, timeout: float = 60.0
    ) -> float:
        """Seconds from process start until `path` first answers 200 (polled every 5 ms)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        session = requests.Session()
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited: see {self.log}")
            try:
                r = session.get(self.url + path, headers=headers, timeout=5)
                if r.status_code == 200:
                    return time.monotonic() - self.started_at
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} did not answer 200 on {path}: see {self.log}")
            time.sleep(0.005)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def workers(self) -> list[int]:
        """The server's worker processes (children of granian's main process)."""
        return _children(self.pid)

    def cpu(self) -> float:
        return cpu_seconds(tree(self.pid))

    def memory(self) -> dict[str, float]:
        workers = self.workers()
        return {
            "arbiter_rss_mb": rss_mb(self.pid),
            "worker_rss_mb": max((rss_mb(w) for w in workers), default=0.0),
            "worker_pss_mb": max((pss_mb(w) for w in workers), default=0.0),
            "total_pss_mb": pss_mb(self.pid) + sum(pss_mb(w) for w in workers),
        }

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, 15)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(5)
