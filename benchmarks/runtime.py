"""Scenario `runtime` (optional: only when named, and in `--smoke`): the same trivial
functions-framework app (benchmarks/floor: `/constant` answers a fixed JSON body) served side by
side by

- `gunicorn`: gunicorn gthread (2 workers x 8 threads) on functions-framework's own app
  (`functions_framework.create_app`, benchmarks/floor/wsgi.py);
- `granian`: granian WSGI (`--workers 2 --blocking-threads 8`) on the same module;
- `boxoffice`: the project's own server (`python -m boxoffice.processes.server`, as every function
  runs, WORKERS=2 THREADS=8),

at the same fixed rates (every rate for every server, no early stop, so the columns compare),
driven by oha: reads/s, p99 and server CPU per request (the server's process tree), and each
server's ratio to the fastest.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.env import ROOT, VENV_BIN
from benchmarks.load import Target, write_targets
from benchmarks.servers import FunctionProcess, ManagedProcess, free_port, start_process, wait_http
from benchmarks.table import Row, fmt

FLOOR = ROOT / "benchmarks" / "floor"
WORKERS = 2
THREADS = 8
SERVERS = ("gunicorn", "granian", "boxoffice")


def _command(kind: str, port: int) -> list[str]:
    if kind == "gunicorn":
        return [
            str(VENV_BIN / "gunicorn"),
            "--worker-class",
            "gthread",
            "--workers",
            str(WORKERS),
            "--threads",
            str(THREADS),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "wsgi:app",
        ]
    return [
        str(VENV_BIN / "granian"),
        "--interface",
        "wsgi",
        "--workers",
        str(WORKERS),
        "--blocking-threads",
        str(THREADS),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-ws",
        "--log-level",
        "warning",
        "wsgi:app",
    ]


def _serve(b: Any, kind: str) -> tuple[ManagedProcess | FunctionProcess, str]:
    """Start one server of the floor app; its process and base URL once /readyz answers."""
    env = dict(b.env, WORKERS=str(WORKERS), THREADS=str(THREADS))
    log = b.out / "logs" / f"runtime-{kind}.log"
    if kind == "boxoffice":
        proc = FunctionProcess("floor", env, log, directory=FLOOR)
        proc.start()
        proc.wait_until("/readyz")
        return proc, proc.url
    port = free_port()
    managed = start_process(kind, _command(kind, port), env, log, FLOOR)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", managed)
    except Exception:
        managed.stop()
        raise
    return managed, f"http://127.0.0.1:{port}"


def _constant(base: str) -> Callable[[Path, float, float], bool]:
    def targets(path: Path, rate: float, duration: float) -> bool:
        write_targets(path, [Target("GET", f"{base}/constant")])
        return False

    return targets


def runtime(b: Any) -> dict[str, Any]:
    rates = b.profile.runtime_rates
    servers: dict[str, Any] = {}
    missing: dict[str, str] = {}
    for kind in SERVERS:
        if kind != "boxoffice" and not (VENV_BIN / kind).exists():
            missing[kind] = f"{kind} is not installed in .venv"
            b.log(f"runtime {kind}: not available ({missing[kind]})")
            continue
        proc, base = _serve(b, kind)
        try:
            servers[kind] = b.sweep(
                f"runtime-{kind}", rates, proc, _constant(base), generator="oha", stop_early=False
            )
        finally:
            proc.stop()
        b.log(
            f"runtime {kind}: max sustainable {servers[kind]['max_sustainable_rate']}/s of "
            f"{', '.join(str(r) for r in rates)}"
        )
    return {
        "rates": rates,
        "workers": WORKERS,
        "threads": THREADS,
        "missing": missing,
        **compare(servers),
    }


def _at(sweep: dict[str, Any], rate: int, key: str) -> float:
    step = next((s for s in sweep["steps"] if s["target_rate"] == rate), None)
    return float(step[key]["median"]) if step else float("nan")


def compare(servers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per server and rate: reads/s, p99, server CPU per request; the fastest server (highest
    sustainable rate, then most reads/s at the highest rate, then least CPU per request at the
    lowest) and each one's ratios to it: reads/s at the highest rate, CPU per request at the
    lowest rate (where every server keeps up)."""
    rates = sorted({s["target_rate"] for sweep in servers.values() for s in sweep["steps"]})
    table: dict[str, Any] = {}
    for kind, sweep in servers.items():
        table[kind] = {
            "max_sustainable_rate": sweep["max_sustainable_rate"],
            "client_limited_rates": sweep["client_limited_rates"],
            "by_rate": {
                str(r): {
                    "reads_per_s": _at(sweep, r, "ok_rate"),
                    "p99_ms": _at(sweep, r, "p99_ms"),
                    "server_cpu_ms_per_request": _at(sweep, r, "server_cpu_ms_per_request"),
                }
                for r in rates
            },
        }
    top, low = (str(rates[-1]), str(rates[0])) if rates else ("", "")

    def speed(kind: str) -> tuple[float, float, float]:
        reads = table[kind]["by_rate"].get(top, {}).get("reads_per_s", 0.0)
        cpu = table[kind]["by_rate"].get(low, {}).get("server_cpu_ms_per_request", math.inf)
        return (
            table[kind]["max_sustainable_rate"],
            0.0 if math.isnan(reads) else reads,
            -math.inf if math.isnan(cpu) else -cpu,
        )

    fastest = max(table, key=speed) if table else None
    if fastest is not None:
        best = table[fastest]["by_rate"]
        for row in table.values():
            mine = row["by_rate"]
            row["reads_ratio_to_fastest"] = (
                mine[top]["reads_per_s"] / best[top]["reads_per_s"]
                if best[top]["reads_per_s"]
                else float("nan")
            )
            row["cpu_ratio_to_fastest"] = (
                mine[low]["server_cpu_ms_per_request"] / best[low]["server_cpu_ms_per_request"]
                if best[low]["server_cpu_ms_per_request"]
                else float("nan")
            )
    return {"sweeps": servers, "servers": table, "fastest": fastest}


def report_rows(r: dict[str, Any], smoke: bool) -> list[Row]:
    out: list[Row] = []
    fastest = r.get("fastest")
    rates = [str(x) for x in r["rates"]]
    for kind, reason in r.get("missing", {}).items():
        out.append(("8 runtime", f"{kind}: not available: {reason}", "-", "", "", "not measured"))
    for kind, row in r["servers"].items():
        cells = []
        for rate in rates:
            c = row["by_rate"].get(rate)
            if c:
                cells.append(
                    f"{rate}/s: {fmt(c['reads_per_s'], '/s')}, p99 {fmt(c['p99_ms'], ' ms', 1)}, "
                    f"{fmt(c['server_cpu_ms_per_request'], ' ms', 3)} CPU"
                )
        out.append(
            (
                "8 runtime",
                f"{kind} ({r['workers']} x {r['threads']}): max sustainable rate · reads/s, p99, "
                "server CPU/request per rate",
                fmt(row["max_sustainable_rate"], "/s"),
                " · ".join(cells),
                "",
                "fastest" if kind == fastest else "",
            )
        )
        out.append(
            (
                "8 runtime",
                f"{kind}: ratio to the fastest ({fastest}): reads/s @ {rates[-1]}/s · server CPU "
                f"per request @ {rates[0]}/s",
                f"{fmt(row.get('reads_ratio_to_fastest', float('nan')), '', 2)}",
                f"CPU x {fmt(row.get('cpu_ratio_to_fastest', float('nan')), '', 2)}",
                "",
                "client-limited @ " + ", ".join(f"{x}/s" for x in row["client_limited_rates"])
                if row["client_limited_rates"]
                else "",
            )
        )
    return out
