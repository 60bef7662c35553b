"""Open-model load: requests are sent at a constant rate whatever the latency (no coordinated
omission: a slow response does not delay the next request).

Two clients. vegeta reads each target (method, URL, headers, body) from a JSON-lines file, so
every POST carries its own Idempotency-Key, but costs ~0.2 ms of CPU per request; oha
(`attack_oha`, GETs without per-request headers only) costs a tenth of that and drives the
high-rate read scenarios, its fixed rate (`-q`) with `--latency-correction` (latency counted from
the scheduled send time, so a slow server cannot hide its queue).

The generator's own CPU time (from the kernel's rusage of its process) and the function
process's CPU time (/proc) are recorded with every attack, since all share the same cores; an
attack whose generator used more than CLIENT_LIMIT_SHARE of a core is marked `client_limited`.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.servers import Measured, SystemCpu, cpu_seconds, postgres_backends

# Above this share of one core the load generator may be what limits a step, not the system.
CLIENT_LIMIT_SHARE = 0.5


@dataclass(frozen=True)
class Target:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def json(self) -> str:
        out: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "header": {k: [v] for k, v in self.headers.items()},
        }
        if self.body is not None:
            out["body"] = base64.b64encode(self.body).decode()
        return json.dumps(out, separators=(",", ":"))


def write_targets(path: Path, targets: Iterable[Target]) -> int:
    n = 0
    with path.open("w") as f:
        for t in targets:
            f.write(t.json())
            f.write("\n")
            n += 1
    return n


def percentile_ms(latency_s: np.ndarray, q: float) -> float:
    return float(np.percentile(latency_s, q) * 1000) if latency_s.size else float("nan")


@dataclass
class Attack:
    """One constant-rate attack and what it measured."""

    name: str
    rate: float
    duration: float
    ts: np.ndarray  # request start, seconds since the attack's first request
    latency: np.ndarray  # seconds
    code: np.ndarray  # HTTP status (0: no response)
    slugs: list[str]  # problem type slug or transport error, per request ("" for 2xx)
    bodies: list[bytes]
    generator_cpu_s: float
    server_cpu_s: float
    wall_s: float
    machine_busy: float
    db_cpu_s: float = 0.0  # PostgreSQL backends of the benchmark database
    t0_ns: int = 0  # wall clock (epoch ns) of the first request
    generator: str = "vegeta"

    @property
    def requests(self) -> int:
        return int(self.code.size)

    @property
    def generator_cpu_share(self) -> float:
        return self.generator_cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def ok(self) -> np.ndarray:
        return (self.code >= 200) & (self.code < 300)

    def summary(self) -> dict[str, Any]:
        n = self.requests
        ok = int(self.ok.sum())
        errors = Counter(
            f"{c} {s}".strip()
            for c, s, good in zip(self.code, self.slugs, self.ok, strict=True)
            if not good
        )
        return {
            "name": self.name,
            "target_rate": self.rate,
            "duration_s": self.duration,
            "requests": n,
            "sent_rate": n / self.duration if self.duration else 0.0,
            "ok": ok,
            "ok_rate": ok / self.duration if self.duration else 0.0,
            "success_ratio": ok / n if n else 0.0,
            "p50_ms": percentile_ms(self.latency, 50),
            "p90_ms": percentile_ms(self.latency, 90),
            "p99_ms": percentile_ms(self.latency, 99),
            "p999_ms": percentile_ms(self.latency, 99.9),
            "max_ms": float(self.latency.max() * 1000) if n else float("nan"),
            "errors": dict(errors.most_common()),
            "generator": self.generator,
            "generator_cpu_s": self.generator_cpu_s,
            "generator_cpu_share": self.generator_cpu_share,
            "generator_cpu_ms_per_request": 1000 * self.generator_cpu_s / n if n else float("nan"),
            "client_limited": self.generator_cpu_share > CLIENT_LIMIT_SHARE,
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_ms_per_request": 1000 * self.server_cpu_s / n if n else float("nan"),
            "db_cpu_s": self.db_cpu_s,
            "db_cpu_ms_per_request": 1000 * self.db_cpu_s / n if n else float("nan"),
            "machine_busy": self.machine_busy,
        }


def _slug(code: int, error: str, body: bytes) -> str:
    if 200 <= code < 300:
        return ""
    if code == 0:
        return (error or "no response").split(":")[-1].strip()[:60]
    try:
        data = json.loads(body)
        return str(data.get("type", "")).rsplit("/", 1)[-1]
    except (ValueError, AttributeError):
        return ""


def attack(
    vegeta: Path,
    targets: Path,
    rate: float,
    duration: float,
    out_dir: Path,
    name: str,
    server: Measured | None = None,
    lazy: bool = True,
    max_body: int = 0,
    timeout: float = 10.0,
    database: str = "",
) -> Attack:
    """vegeta attack at `rate`/s for `duration` s; results kept in out_dir/<name>.bin."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result_file = out_dir / f"{name}.bin"
    cmd = [
        str(vegeta),
        "attack",
        "-format=json",
        f"-targets={targets}",
        f"-rate={rate:g}/1s",
        f"-duration={duration:g}s",
        f"-timeout={timeout:g}s",
        f"-max-body={max_body}",
        "-workers=32",
        f"-name={name}",
        f"-output={result_file}",
    ]
    if lazy:
        cmd.append("-lazy")
    server_cpu0 = server.cpu() if server else 0.0
    backends = postgres_backends(database) if database else []
    db_cpu0 = cpu_seconds(backends)
    machine = SystemCpu()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    busy = machine.busy()
    server_cpu = (server.cpu() - server_cpu0) if server else 0.0
    db_cpu = cpu_seconds(backends) - db_cpu0  # backends that lived through the attack
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"vegeta failed ({proc.returncode}): {stderr[-500:]}")
    encoded = subprocess.run(
        [str(vegeta), "encode", "--to", "csv", str(result_file)],
        capture_output=True,
        check=True,
    ).stdout.decode()
    ts, lat, codes, slugs, bodies = [], [], [], [], []
    for row in csv.reader(io.StringIO(encoded)):
        code = int(row[1])
        body = base64.b64decode(row[6]) if row[6] else b""
        ts.append(int(row[0]))
        lat.append(int(row[2]) / 1e9)
        codes.append(code)
        slugs.append(_slug(code, row[5], body))
        bodies.append(body)
    order = np.argsort(np.array(ts, dtype=np.int64)) if ts else np.array([], dtype=int)
    ts_arr = np.array(ts, dtype=np.int64)[order]
    return Attack(
        name=name,
        rate=rate,
        duration=duration,
        ts=(ts_arr - ts_arr[0]) / 1e9 if ts_arr.size else np.array([]),
        latency=np.array(lat)[order],
        code=np.array(codes, dtype=int)[order],
        slugs=[slugs[i] for i in order],
        bodies=[bodies[i] for i in order],
        generator_cpu_s=usage.ru_utime + usage.ru_stime,
        server_cpu_s=server_cpu,
        wall_s=wall,
        machine_busy=busy,
        db_cpu_s=db_cpu,
        t0_ns=int(ts_arr[0]) if ts_arr.size else 0,
    )


NOT_ANSWERED = "no answer by the end"  # oha: timed out, connection error, or never sent
# oha drops what its schedule queued but no connection had picked up when the run ends: in a
# healthy run the last millisecond or so. This much of the schedule's end is not counted missing.
OHA_END_SLACK_S = 0.01


def get_urls(targets: Path) -> list[str]:
    """The URLs of a targets file of plain GETs (what oha can send)."""
    urls = []
    for line in targets.read_text().splitlines():
        t = json.loads(line)
        if t["method"] != "GET" or t.get("header") or t.get("body"):
            raise ValueError(f"oha sends plain GETs only, not {t['method']} {t['url']} + headers")
        urls.append(t["url"])
    return urls


def attack_oha(
    oha: Path,
    targets: Path,
    rate: float,
    duration: float,
    out_dir: Path,
    name: str,
    server: Measured | None = None,
    timeout: float = 10.0,
    database: str = "",
    connections: int = 64,
    threads: int = 1,
) -> Attack:
    """oha at a fixed `rate`/s for `duration` s over the GET URLs of `targets` (picked at
    random), on `threads` runtime threads; per-request results kept in out_dir/<name>.csv.

    oha's CSV holds every answered request (start, latency from the scheduled start, status);
    requests that got no answer (timeout, connection error) or were never sent because the
    schedule fell behind are the scheduled count minus the answered ones (less the schedule's
    last OHA_END_SLACK_S, which oha drops at its deadline), kept as status 0 (`NOT_ANSWERED`)
    with the timeout as their latency, as vegeta records a timeout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    urls_file = out_dir / f"{name}.urls"
    urls_file.write_text("\n".join(get_urls(targets)) + "\n")
    result_file = out_dir / f"{name}.csv"
    cmd = [
        str(oha),
        "--no-tui",
        "--urls-from-file",
        "-q",
        f"{rate:g}",
        "--latency-correction",
        "-z",
        f"{duration:g}s",
        "-w",  # requests in flight at the end are answered, not aborted
        "-c",
        str(connections),
        "-t",
        f"{timeout:g}s",
        "--worker-threads",
        str(threads),
        "--output-format",
        "csv",
        "-o",
        str(result_file),
        str(urls_file),
    ]
    server_cpu0 = server.cpu() if server else 0.0
    backends = postgres_backends(database) if database else []
    db_cpu0 = cpu_seconds(backends)
    machine = SystemCpu()
    t0 = time.monotonic()
    t0_ns = time.time_ns()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    busy = machine.busy()
    server_cpu = (server.cpu() - server_cpu0) if server else 0.0
    db_cpu = cpu_seconds(backends) - db_cpu0
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"oha failed ({proc.returncode}): {stderr[-500:]}")
    data = np.loadtxt(result_file, delimiter=",", skiprows=1, ndmin=2)
    if data.size == 0:
        data = np.zeros((0, 7))
    order = np.argsort(data[:, 0], kind="stable")
    data = data[order]
    start, latency, code = data[:, 0], data[:, 4], data[:, 6].astype(int)
    missing = max(0, math.floor(rate * (duration - OHA_END_SLACK_S)) - len(code))
    if missing:
        start = np.concatenate([start, np.full(missing, duration)])
        latency = np.concatenate([latency, np.full(missing, timeout)])
        code = np.concatenate([code, np.zeros(missing, dtype=int)])
    first = float(start[0]) if start.size else 0.0
    return Attack(
        name=name,
        rate=rate,
        duration=duration,
        ts=start - first,
        latency=latency,
        code=code,
        slugs=["" if 200 <= c < 300 else (NOT_ANSWERED if c == 0 else "") for c in code],
        bodies=[],
        generator_cpu_s=usage.ru_utime + usage.ru_stime,
        server_cpu_s=server_cpu,
        wall_s=wall,
        machine_busy=busy,
        db_cpu_s=db_cpu,
        t0_ns=t0_ns + int(first * 1e9),
        generator="oha",
    )


def generator_runs(result: Any) -> list[dict[str, Any]]:
    """Every attack summary (one run of one client) inside a scenario's results: the dicts
    whose `generator_cpu_ms_per_request` is a number (aggregates hold median/min/max dicts)."""
    found: list[dict[str, Any]] = []
    if isinstance(result, dict):
        value = result.get("generator_cpu_ms_per_request")
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append(result)
        for v in result.values():
            found += generator_runs(v)
    elif isinstance(result, list):
        for v in result:
            found += generator_runs(v)
    return found
