"""The machine-readable summary of a run (issue 11): `summary.json` in the results directory,
and after a full run also `docs/benchmarks/summary.json`, which is committed with the doc.

Every key is a number, or null when its scenario did not run (or found nothing sustainable);
medians over the runs of the step in question unless the key says min, max or a total.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.env import ROOT
from benchmarks.load import generator_runs

COMMITTED = ROOT / "docs" / "benchmarks" / "summary.json"


def _git() -> str | None:
    out = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=12"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or None


def _number(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    value = float(x)
    return None if math.isnan(value) else value


def _best_step(sweep: dict[str, Any] | None) -> dict[str, Any] | None:
    if not sweep or not sweep.get("max_sustainable_rate"):
        return None
    best = sweep["max_sustainable_rate"]
    return next((x for x in sweep["steps"] if x["target_rate"] == best), None)


def _median(step: dict[str, Any] | None, key: str) -> float | None:
    if step is None or key not in step:
        return None
    return _number(step[key]["median"])


def _rate(sweep: dict[str, Any] | None) -> float | None:
    return None if sweep is None else _number(sweep.get("max_sustainable_rate"))


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    s = results["scenarios"]
    spread = s.get("spread")
    spread_step = _best_step(spread)
    catalogue = s.get("catalogue") or {}
    cached = s.get("catalogue_cached")
    over = s.get("overload")
    confirm = s.get("booking_to_confirmed")
    cold = s.get("cold_start") or {}
    cold_fns = {fn: d for fn, d in cold.items() if fn != "under_load"}
    rss = [d["worker_rss_mb"]["max"] for d in cold_fns.values()]
    rss += [m["worker_rss_mb"] for m in cold.get("under_load", {}).values()]
    direct_step = _best_step(catalogue.get("GET /events/{id}"))
    client = [
        _number(r["generator_cpu_ms_per_request"])
        for result in s.values()
        for r in generator_runs(result)
        if r.get("requests")
    ]
    images = (s.get("containers") or {}).get("images", {})
    room = s.get("waiting_room") or {}
    room_runs = room.get("runs") or {}
    room_run = room_runs.get("line") or next(iter(room_runs.values()), None)
    return {
        "git": _git(),
        "started_at": results.get("started_at"),
        "smoke": bool(results["profile"]["smoke"]),
        "spread_bookings_per_s": _median(spread_step, "ok_rate"),
        "spread_p99_ms": _median(spread_step, "p99_ms"),
        "hot_bookings_per_s": _median(_best_step(s.get("hot")), "ok_rate"),
        # issue 22: the same spread-out sweep where every booking is a seat hold of a category
        "holds_bookings_per_s": _median(_best_step(s.get("holds")), "ok_rate"),
        "holds_p99_ms": _median(_best_step(s.get("holds")), "p99_ms"),
        "function_cpu_ms_per_hold": _median(
            _best_step(s.get("holds")), "server_cpu_ms_per_request"
        ),
        "postgres_cpu_ms_per_hold": _median(_best_step(s.get("holds")), "db_cpu_ms_per_request"),
        "function_cpu_ms_per_booking": _median(spread_step, "server_cpu_ms_per_request"),
        "postgres_cpu_ms_per_booking": _median(spread_step, "db_cpu_ms_per_request"),
        "catalogue_uncached_reads_per_s": _rate(catalogue.get("GET /events/{id}")),
        "catalogue_cached_reads_per_s": _rate(cached)
        if cached and cached.get("available")
        else None,
        "overload_goodput_ratio_min": None if over is None else _number(over["goodput_ratio_min"]),
        "overload_client_timeouts": None if over is None else over["client_timeouts_total"],
        "overload_p99_201_ms": None if over is None else _number(over["p99_201_ms_max"]),
        "overload_oversold": None if over is None else over["oversold_total"],
        "overload_refusal_p99_in_process_ms": None
        if over is None
        else _number(over.get("refusal_p99_in_process_ms_max")),
        # many buyers posting at once below the sustainable rate: the share answered 503
        "burst_refused_ratio": None
        if s.get("burst") is None
        else _number(s["burst"]["refused_ratio"]),
        "confirm_p99_ms_at_500": _number(confirm["confirm_p99_ms"]["median"])
        if confirm and confirm.get("available") and confirm.get("rate") == 500
        else None,
        "cold_start_s_max": max(
            (d["first_route_s"]["max"] for d in cold_fns.values()), default=None
        ),
        "rss_mb_max": max(rss, default=None),
        # beside the goals: what the same server and frameworks cost with none of our code
        "floor_cpu_ms_per_read": _median(
            (s.get("floor") or {}).get("one read", {}).get("steps", [None])[0],
            "server_cpu_ms_per_request",
        ),
        "catalogue_cpu_ms_per_read": _median(direct_step, "server_cpu_ms_per_request"),
        # issue 19: the uncached direct read (reads answered per second at the highest
        # sustainable step, and the function's CPU per read there)
        "catalogue_direct_reads_per_s": _median(direct_step, "ok_rate"),
        "catalogue_direct_cpu_ms_per_read": _median(direct_step, "server_cpu_ms_per_request"),
        # the load generator's CPU per request, largest over every attack of the run
        "client_cpu_ms_per_request_max": max((c for c in client if c is not None), default=None),
        # issue 21: the function images (largest) and the container cold start (slowest median)
        "image_size_mb_max": max((d["size_mb"] for d in images.values()), default=None),
        "container_cold_start_s_max": max(
            (d["cold_start"]["first_route_s"]["median"] for d in images.values()), default=None
        ),
        # issue 22: CPU per ticket page of the PDF documents
        "ticket_pdf_ms_per_page": _number((s.get("ticket_pdf") or {}).get("ms_per_page")),
        # joins answered per second in the waiting room (its `line` run, else its first)
        "waiting_room_joins_per_s": _number(room_run.get("joins_per_s")) if room_run else None,
    }


def write(results: dict[str, Any], out: Path, *, full: bool) -> list[Path]:
    """summary.json in `out`; a full run (every scenario, not smoke) also updates the committed
    copy in docs/benchmarks."""
    text = json.dumps(summarise(results), indent=2) + "\n"
    paths = [out / "summary.json"]
    if full:
        COMMITTED.parent.mkdir(parents=True, exist_ok=True)
        paths.append(COMMITTED)
    for path in paths:
        path.write_text(text)
    return paths
