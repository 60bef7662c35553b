"""The benchmark harness works end to end (`make bench-smoke`): it runs every scenario at tiny
sizes (the optional waiting_room and runtime too) against its own throw-away database and function
processes, prints the table, and writes the report, the plots and results.json; the flash sale
and the waiting room's sell-out sell exactly their capacity.

This checks the harness, not the speed: the figures of a smoke run mean nothing.
Needs the local stack (`make up`), like the integration tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Every scenario of benchmarks/scenarios.py (ALL, OPTIONAL) but `profile` (py-spy: full runs only)
SMOKE_SCENARIOS = {
    "refusal",
    "containers",
    "ticket_pdf",
    "catalogue",
    "catalogue_cached",
    "floor",
    "spread",
    "holds",
    "hot",
    "flash_sale",
    "overload",
    "burst",
    "booking_to_confirmed",
    "cold_start",
    "token",
    "waiting_room",
    "runtime",
}
SUMMARY_KEYS = [
    "git",
    "spread_bookings_per_s",
    "spread_p99_ms",
    "hot_bookings_per_s",
    "function_cpu_ms_per_booking",
    "postgres_cpu_ms_per_booking",
    "catalogue_uncached_reads_per_s",
    "catalogue_cached_reads_per_s",
    "overload_goodput_ratio_min",
    "overload_client_timeouts",
    "overload_p99_201_ms",
    "overload_oversold",
    "confirm_p99_ms_at_500",
    "cold_start_s_max",
    "rss_mb_max",
    "catalogue_direct_reads_per_s",
    "catalogue_direct_cpu_ms_per_read",
    "client_cpu_ms_per_request_max",
    "waiting_room_joins_per_s",
    "burst_refused_ratio",
    "overload_refusal_p99_in_process_ms",
    "holds_bookings_per_s",
    "holds_p99_ms",
    "function_cpu_ms_per_hold",
    "postgres_cpu_ms_per_hold",
]


def unavailable(found: Any, where: str = "scenarios") -> dict[str, str]:
    """Every result (at any depth) that says `"available": false`, by where it is: its reason."""
    out: dict[str, str] = {}
    if isinstance(found, dict):
        if found.get("available") is False:
            out[where] = str(found.get("reason", "no reason given"))
        for key, value in found.items():
            out.update(unavailable(value, f"{where}.{key}"))
    elif isinstance(found, list):
        for i, value in enumerate(found):
            out.update(unavailable(value, f"{where}[{i}]"))
    return out


def test_unavailable_finds_a_scenario_that_excused_itself_at_any_depth() -> None:
    found = {
        "catalogue": {"steps": [{"available": True}]},
        "booking_to_confirmed": {"available": False, "reason": "Kafka is not running"},
        "runtime": {"servers": [{"available": False}]},
    }
    assert unavailable(found) == {
        "scenarios.booking_to_confirmed": "Kafka is not running",
        "scenarios.runtime.servers[0]": "no reason given",
    }
    assert unavailable({"spread": {"available": True}}) == {}


def test_bench_smoke_produces_table_report_plots_and_sells_exactly_capacity(
    tmp_path: Path,
) -> None:
    if not os.environ.get("BOXOFFICE_DATABASE_URL"):
        pytest.fail("start the stack (`make up`) and run with `make test`", pytrace=False)
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=360,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the table
    assert "scenario" in proc.stdout
    assert "figure" in proc.stdout
    for scenario in ("1 catalogue", "2 spread-out", "3 flash sale", "5 cold start", "6 token"):
        assert scenario in proc.stdout, scenario

    # the report, results and plots
    report = (out / "report.md").read_text()
    assert "## Machine" in report
    assert "## Tuning knobs" in report
    assert "SMOKE" in report
    results = json.loads((out / "results.json").read_text())
    for key in ("python", "postgresql", "kafka", "git_commit", "cpus", "memory_gb"):
        assert results["machine"][key], key
    assert results["knobs"]["THREADS"]
    plots = sorted(p.name for p in out.glob("*.png"))
    for name in ("catalogue-get-event.png", "booking-spread.png", "flash-sale.png"):
        assert name in plots, plots
        assert f"]({name})" in report
        assert (out / name).stat().st_size > 5000

    s = results["scenarios"]
    # every scenario produced figures
    for sweep in (*s["catalogue"].values(), s["spread"]):
        assert sweep["steps"][0]["requests"]["median"] > 0
    assert s["cold_start"]["get_event"]["healthz_s"]["median"] > 0
    assert s["cold_start"]["get_event"]["worker_rss_mb"]["median"] > 0
    assert s["token"]["micro"]["verify_us"]["median"] > 0
    assert s["ticket_pdf"]["ms_per_page"] > 0
    # every function's image measured: its size, and a container that answered its route
    images = s["containers"]["images"]
    assert sorted(images) == sorted(p.parent.name for p in ROOT.glob("functions/*/main.py"))
    for fn, figures in images.items():
        assert figures["size_mb"] > figures["own_mb"] > 0, fn
        assert figures["cold_start"]["first_route_s"]["median"] > 0, fn
    # no scenario may excuse itself: a smoke run in which one reports itself unavailable (the
    # stack lacks what it needs) checked nothing of it
    assert unavailable(s) == {}
    assert not results["failed"], results["failed"]
    assert set(s) == SMOKE_SCENARIOS, sorted(s)
    # the refusal diagnostic refused what it was sent, in both cases
    for case in ("wait", "compute"):
        step = s["refusal"]["cases"][case][0]
        assert step["refused"] > 0, (case, step)
        assert step["other_answers"] == 0, (case, step)
    confirm = s["booking_to_confirmed"]
    assert confirm["available"] is True, confirm
    assert sum(r["confirmed"] for r in confirm["per_run"]) > 0
    assert all(r["unconfirmed_after_60s"] == 0 for r in confirm["per_run"]), confirm["per_run"]

    # the overload scenario: runs back to back, each sold exactly its capacity; its refusals
    # are counted and timed; the hot-event sweep and the cached catalogue produced steps
    over = s["overload"]
    assert over["runs"] == len(over["per_run"]) >= 1
    assert over["all_runs_exact"], over["per_run"]
    assert over["oversold_total"] == 0
    assert over["offered_rate"] == 5 * over["sustainable_rate"]
    assert s["hot"]["steps"][0]["requests"]["median"] > 0
    assert s["catalogue_cached"]["steps"][0]["requests"]["median"] > 0
    # the burst: buyers posting at once sold exactly the capacity, every answer counted
    burst = s["burst"]
    assert burst["exactly_capacity_sold"], burst
    assert burst["oversold"] == 0
    assert sum(burst["answers"].values()) == burst["posts"] > 0
    assert "3c burst" in proc.stdout
    # the machine-readable summary (a smoke run never overwrites the committed one)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["smoke"] is True
    assert summary["overload_oversold"] == 0
    assert summary["git"]
    for key in SUMMARY_KEYS:
        assert key in summary, key
    assert "docs/benchmarks/summary.json" not in proc.stdout

    # the sold-out check (SQL): exactly capacity, nothing oversold, books balance
    flash = s["flash_sale"]
    assert flash["all_runs_exact"], flash["per_run"]
    assert flash["oversold_total"] == 0
    for run in flash["per_run"]:
        assert run["sold"] == run["capacity"]
        assert run["tickets_in_201s"] <= run["sold"]  # a timed-out client may miss its 201
    assert s["spread"]["inventory"]["oversold"] == 0
    assert s["spread"]["inventory"]["consistent"]
    # every booking of the hold scenario a seat hold, of a category, none oversold
    holds = s["holds"]
    assert holds["inventory"]["oversold"] == 0
    assert holds["inventory"]["consistent"]
    assert set(holds["held"]) == {"HELD"}
    assert holds["held"]["HELD"] > 0
    assert "2b holds" in proc.stdout

    # the waiting room (optional scenario, in the smoke run): a sell-out through the line
    assert "7 waiting room" in proc.stdout
    room = s["waiting_room"]
    assert room["available"], room
    for run in room["runs"].values():
        assert run["exactly_capacity_sold"], run
        assert run["bookings_without_admission"] == 0
        assert run["nobody_admitted_twice"]
        assert run["unfinished_buyers"] == 0
        assert run["outcomes"].get("booked", 0) > 0
        assert run["requests"]["join"] >= room["buyers"]

    # the load generator's CPU per request, in every scenario's results and in the table
    assert "load generator" in proc.stdout
    assert summary["client_cpu_ms_per_request_max"] > 0
    assert summary["waiting_room_joins_per_s"] > 0
    step = s["catalogue"]["GET /events/{id}"]["steps"][0]
    assert step["generator_cpu_ms_per_request"]["median"] > 0
    assert "client_limited" in step

    # the runtime comparison (optional scenario, in the smoke run): the same app on three servers
    assert "8 runtime" in proc.stdout
    runtime = s["runtime"]
    assert set(runtime["servers"]) == {"gunicorn", "granian", "boxoffice"}
    for sweep in runtime["sweeps"].values():
        assert sweep["steps"][0]["ok"]["median"] > 0
    assert runtime["fastest"] in runtime["servers"]

    # the benchmark database was dropped
    assert "kept database" not in proc.stdout
