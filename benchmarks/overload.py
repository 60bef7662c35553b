"""Scenarios of issue 11 beyond the first ones: one hot event at a steady rate (`hot`), the
catalogue through the front door's cache (`catalogue_cached`), and graceful overload
(`overload`): an open-model burst at 5x the sustainable booking rate, three runs back to back.

`overload` offers `overload_factor` x the sustainable spread-out rate (the `spread` scenario's
finding in this run, else `overload_fallback_rate`) for `overload_s` seconds at one event whose
capacity sells out at the sustainable rate after `overload_sell_s` seconds, three runs with no
pause between them (all targets are written first). A client gives up after
`overload_client_timeout_s`. Per run: goodput (bookings the database holds / seconds until the
sell-out or the run's end) as a ratio of the sustainable rate, client timeouts, the p99 of the
201s, the latency of the refusals (503 overloaded and 409 sold-out), and exactly the capacity
sold.
"""

from __future__ import annotations

import functools
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import requests

from benchmarks.bench import Bench, aggregate
from benchmarks.env import ROOT
from benchmarks.load import Attack, Target, attack, write_targets
from benchmarks.servers import FunctionProcess, frontdoor
from benchmarks.table import Row, fmt, generator_text, minmax, verdict

# A steady run at one event should never sell it out: this many seats over `hot_shards` rows.
HOT_STEADY_CAPACITY = 50_000_000


def _same(event: Any) -> Any:
    return event


# -- one hot event, steady rates -------------------------------------------------------------


def hot(b: Bench) -> dict[str, Any]:
    """Constant-rate steps at ONE event (16 shards): the hot-row path, 1 ticket per booking."""
    p = b.profile
    (event,) = b.db.make_events(1, HOT_STEADY_CAPACITY, p.hot_shards, tag="hot-steady")

    def targets(path: Path, rate: float, duration: float) -> bool:
        n = math.ceil(rate * duration * 1.02) + 10
        b.booking_targets(path, n, functools.partial(_same, event), lambda: 1, duration + 120)
        return True

    result = b.sweep(
        "booking-hot", p.booking_rates, b.servers["create_booking"], targets, max_body=400
    )
    result["inventory"] = b.db.inventory_check([event])
    result["shards"] = p.hot_shards
    return result


# -- the catalogue through the front door ----------------------------------------------------


def catalogue_cached(b: Bench) -> dict[str, Any]:
    """GET /events/{id} through the front door's cache (Cache-Control: public, max-age=5,
    stale-while-revalidate=5): 500 ids of the spread-out catalogue, the same for the whole sweep,
    so after the warm-up every answer is a HIT, or STALE while its entry is refreshed in the
    background. Server CPU is nginx's (one worker process per core). The client is oha: vegeta
    needs ~0.2 ms of CPU per request, so at these rates it, not the system, ran out of CPU."""
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        return {"available": False, "reason": "nginx is not installed (stack/boxo up installs it)"}
    get_event = b.servers["get_event"]
    # One set of URLs for the whole sweep: its warm-up attack fills the cache, and the measured
    # runs read what readers of a live catalogue read, entries being kept fresh.
    ids = b.rng.sample(b.spread, min(500, len(b.spread)))
    with frontdoor({"get_event": get_event.port}, b.out / "logs" / "frontdoor.log") as (
        proc,
        base,
    ):

        def by_id(path: Path, rate: float, duration: float) -> bool:
            write_targets(path, (Target("GET", f"{base}/events/{e}") for e in ids))
            return False

        result = b.sweep("catalogue-cached", b.profile.cached_rates, proc, by_id, generator="oha")
    result["available"] = True
    return result


# -- the stack's floor ---------------------------------------------------------------------


def floor(b: Bench) -> dict[str, Any]:
    """The same server and frameworks with none of Boxoffice's code (benchmarks/floor/main.py):
    a constant answer and one primary-key read, at one moderate rate -> CPU per request, to set
    beside the catalogue read's (scenario 1) and the booking's (scenario 2)."""
    proc = FunctionProcess(
        "floor", b.env, b.out / "logs" / "floor.log", directory=ROOT / "benchmarks" / "floor"
    )
    proc.start()
    try:
        proc.wait_until("/readyz")
        ids = b.rng.sample(b.spread, min(500, len(b.spread)))
        out = {}
        for label, urls in (
            ("constant", [f"{proc.url}/constant"]),
            ("one read", [f"{proc.url}/events/{e}" for e in ids]),
        ):

            def targets(path: Path, rate: float, duration: float, urls: list[str] = urls) -> bool:
                write_targets(path, (Target("GET", u) for u in urls))
                return False

            out[label] = b.sweep(
                f"floor-{label.replace(' ', '-')}",
                [b.profile.floor_rate],
                proc,
                targets,
                generator="oha",
            )
    finally:
        proc.stop()
    return out


# -- graceful overload -------------------------------------------------------------------------


def sustainable_rate(b: Bench) -> tuple[int, str]:
    spread = b.found.get("spread")
    if spread and spread.get("max_sustainable_rate"):
        return int(spread["max_sustainable_rate"]), "the spread scenario's sustainable rate"
    return b.profile.overload_fallback_rate, "no spread result in this run: the fallback rate"


def _latency_ms(a: Attack, mask: np.ndarray, q: float) -> float:
    values = a.latency[mask]
    return float(np.percentile(values, q) * 1000) if values.size else float("nan")


def overload(b: Bench) -> dict[str, Any]:
    p = b.profile
    server = b.servers["create_booking"]
    work = b.out / "raw" / "overload"
    work.mkdir(parents=True, exist_ok=True)
    sustainable, basis = sustainable_rate(b)
    offered = p.overload_factor * sustainable
    tickets = p.hot_ticket_count
    capacity = int(sustainable * p.overload_sell_s * tickets)
    # All targets first, so the runs follow each other without a pause.
    planned = []
    for r in range(p.runs):
        (event,) = b.db.make_events(1, capacity, p.hot_shards, tag="overload")
        path = work / f"run{r + 1}.jsonl"
        n = math.ceil(offered * p.overload_s * 1.02) + 10
        b.booking_targets(
            path, n, functools.partial(_same, event), lambda: tickets, p.overload_s * 3 + 300
        )
        planned.append((event, path))
    b.log(
        f"overload: {p.runs} runs back to back, {offered:g}/s offered ({p.overload_factor:g} x "
        f"{sustainable}/s, {basis}) for {p.overload_s:g}s, {capacity} seats x {tickets} tickets"
    )
    attacks = []
    in_process = []
    for r, (_event, path) in enumerate(planned):
        before = queue_waits(server.url, "refused")
        attacks.append(
            attack(
                b.vegeta,
                path,
                offered,
                p.overload_s,
                work,
                f"overload-run{r + 1}",
                server,
                True,
                400,
                timeout=p.overload_client_timeout_s,
                database=b.db.name,
            )
        )
        path.unlink()
        in_process.append(bucket_quantile(before, queue_waits(server.url, "refused"), 0.99))
    runs = []
    for r, ((event, _), a) in enumerate(zip(planned, attacks, strict=True)):
        runs.append(_overload_run(b, a, event, sustainable, capacity, tickets))
        s = runs[-1]
        s["refusal_p99_in_process_ms"] = in_process[r]
        b.log(
            f"overload run {r + 1}: goodput {s['goodput_per_s']:.0f}/s "
            f"({100 * s['goodput_ratio']:.0f} % of {sustainable}/s), sold {s['sold']}/{capacity}, "
            f"client timeouts {s['client_timeouts']}, p99 201 {s['p99_201_ms']:.0f} ms, "
            f"refusals p99 {s['refusal_p99_ms']:.1f} ms max {s['refusal_max_ms']:.0f} ms "
            f"(in the process: p99 <= {s['refusal_p99_in_process_ms']} ms)"
        )
    b.plots["overload"] = attacks[:1]
    agg = aggregate(runs)
    agg.update(
        per_run=runs,
        sustainable_rate=sustainable,
        sustainable_basis=basis,
        offered_rate=offered,
        capacity=capacity,
        ticket_count=tickets,
        client_timeout_s=p.overload_client_timeout_s,
        goodput_ratio_min=min(s["goodput_ratio"] for s in runs),
        client_timeouts_total=sum(s["client_timeouts"] for s in runs),
        p99_201_ms_max=max(s["p99_201_ms"] for s in runs),
        refusal_max_ms_max=max(s["refusal_max_ms"] for s in runs),
        refusal_p99_in_process_ms_max=max(
            (s["refusal_p99_in_process_ms"] for s in runs if s["refusal_p99_in_process_ms"]),
            default=None,
        ),
        oversold_total=sum(s["oversold"] for s in runs),
        all_runs_exact=all(s["exactly_capacity_sold"] for s in runs),
    )
    return agg


def queue_waits(url: str, outcome: str) -> dict[float, float]:
    """The function's `boxoffice_request_queue_wait_seconds` buckets for `outcome` (cumulative
    counts by upper bound, seconds), summed over its workers: from arrival in the process to the
    request's start or refusal, for requests that found every slot taken."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if not line.startswith("boxoffice_request_queue_wait_seconds_bucket{"):
            continue
        labels, _, value = line.rpartition(" ")
        if f'outcome="{outcome}"' not in labels:
            continue
        le = labels.split('le="', 1)[1].split('"', 1)[0]
        bound = math.inf if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + float(value)
    return buckets


def bucket_quantile(
    before: dict[float, float], after: dict[float, float], q: float
) -> float | None:
    """The upper bound (ms) of the histogram bucket holding quantile `q` of what was observed
    between two scrapes; None when nothing was."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    for bound, count in zip(bounds, counts, strict=True):
        if count >= q * counts[-1]:
            return bound * 1000
    return None


def _overload_run(
    b: Bench, a: Attack, event: Any, sustainable: int, capacity: int, tickets: int
) -> dict[str, Any]:
    check = b.db.inventory_check([event])
    with b.db.connect() as conn:
        row = conn.execute(
            """SELECT count(*), extract(epoch FROM max(created_at))
                 FROM booking WHERE event_id = %s""",
            (event,),
        ).fetchone()
    bookings = int(row[0]) if row else 0
    last = float(row[1]) if row and row[1] is not None else float("nan")
    sold_out = check["sold"] == capacity
    # Selling time: until the last booking when it sold out, else the whole run.
    selling_s = (last - a.t0_ns / 1e9) if sold_out else a.duration
    goodput = bookings / selling_s if selling_s > 0 else 0.0
    ok = a.ok
    refused = np.isin(a.code, (409, 503))
    other = ~ok & ~refused & (a.code != 0)
    s = a.summary()
    s.update(
        capacity=capacity,
        sold=check["sold"],
        bookings=bookings,
        tickets_in_201s=int(ok.sum()) * tickets,
        oversold=check["oversold"],
        exactly_capacity_sold=sold_out and check["consistent"] and check["shards_within_capacity"],
        selling_s=selling_s,
        goodput_per_s=goodput,
        goodput_ratio=goodput / sustainable,
        client_timeouts=int((a.code == 0).sum()),
        refusals_503=int((a.code == 503).sum()),
        refusals_409=int((a.code == 409).sum()),
        other_failures=int(other.sum()),
        p99_201_ms=_latency_ms(a, ok, 99),
        refusal_p99_ms=_latency_ms(a, refused, 99),
        refusal_max_ms=float(a.latency[refused].max() * 1000) if refused.any() else float("nan"),
    )
    return s


# -- report rows -------------------------------------------------------------------------------


def report_rows(s: dict[str, Any], smoke: bool) -> list[Row]:
    out: list[Row] = []
    if "catalogue_cached" in s and s["catalogue_cached"].get("available"):
        sweep = s["catalogue_cached"]
        best = sweep["max_sustainable_rate"]
        steps = ", ".join(str(x["target_rate"]) for x in sweep["steps"])
        step = next((x for x in sweep["steps"] if x["target_rate"] == best), None)
        reads = step["ok_rate"]["median"] if step else 0.0
        out.append(
            (
                "1 catalogue",
                "GET /events/{id} through the front door's cache: reads/s at the max rate "
                "with p99 ≤ 100 ms",
                fmt(reads, "/s"),
                f"steps {steps}",
                "≥ 10,000 reads/s",
                verdict(reads >= 10_000, smoke, sweep.get("best_step_client_limited", False)),
            )
        )
        for step in sweep["steps"]:
            out.append(
                (
                    "1 catalogue",
                    f"cached @ {step['target_rate']}/s: p99 · load generator CPU",
                    *minmax(step["p99_ms"], " ms", 1),
                    generator_text(step),
                    "client-limited" if step.get("client_limited") else "",
                )
            )
    if "floor" in s:
        for label, sweep in s["floor"].items():
            step = sweep["steps"][0]
            out.append(
                (
                    "1c the stack's floor",
                    f"{label} (server + functions-framework + Flask only) @ "
                    f"{step['target_rate']}/s: server CPU per request",
                    *minmax(step["server_cpu_ms_per_request"], " ms", 2),
                    f"p99 {fmt(step['p99_ms']['median'], ' ms', 1)}",
                    "",
                )
            )
    if "hot" in s:
        sweep = s["hot"]
        best = sweep["max_sustainable_rate"]
        step = next((x for x in sweep["steps"] if x["target_rate"] == best), None)
        rate = step["ok_rate"]["median"] if step else 0.0
        out.append(
            (
                "2b one hot event",
                f"bookings/s at one event ({sweep['shards']} shards), p99 ≤ 100 ms",
                fmt(rate, "/s"),
                f"steps {', '.join(str(x['target_rate']) for x in sweep['steps'])}",
                "≥ 1,000/s",
                verdict(rate >= 1000, smoke, bool(step and step.get("client_limited"))),
            )
        )
        if step:
            out.append(
                ("2b one hot event", f"@ {best}/s p99", *minmax(step["p99_ms"], " ms", 1), "", "")
            )
        last = sweep["steps"][-1]
        if not last["sustainable"]:
            out.append(
                (
                    "2b one hot event",
                    f"@ {last['target_rate']}/s (first failing) p99 · errors",
                    *minmax(last["p99_ms"], " ms", 1),
                    ", ".join(f"{k}: {v}" for k, v in last["errors"].items()) or "none",
                    "",
                )
            )
    if "overload" in s:
        o = s["overload"]
        head = f"{o['offered_rate']:g}/s offered (5 x {o['sustainable_rate']}/s), {o['runs']} runs"
        out += [
            (
                "3b overload",
                f"{head}: goodput / sustainable rate (worst run)",
                f"{100 * o['goodput_ratio_min']:.0f} %",
                " · ".join(f"{100 * r['goodput_ratio']:.0f} %" for r in o["per_run"]),
                "≥ 90 %",
                verdict(o["goodput_ratio_min"] >= 0.9, smoke),
            ),
            (
                "3b overload",
                "client timeouts (all runs) · other failures",
                str(o["client_timeouts_total"]),
                str(sum(r["other_failures"] for r in o["per_run"])),
                "0",
                verdict(o["client_timeouts_total"] == 0, smoke),
            ),
            (
                "3b overload",
                "p99 of the 201s (worst run)",
                fmt(o["p99_201_ms_max"], " ms", 1),
                " · ".join(fmt(r["p99_201_ms"], " ms") for r in o["per_run"]),
                "≤ 200 ms",
                verdict(o["p99_201_ms_max"] <= 200, smoke),
            ),
            (
                "3b overload",
                "refusals (503 overloaded, 409 sold-out): p99 · max latency",
                *minmax(o["refusal_p99_ms"], " ms", 1),
                f"max {fmt(o['refusal_max_ms_max'], ' ms', 1)} (on the client's wire)",
                "",
            ),
            (
                "3b overload",
                "503 refusals: p99 in the process (arrival to refusal; histogram bucket bound)",
                "≤ " + fmt(o.get("refusal_p99_in_process_ms_max") or float("nan"), " ms", 1),
                " · ".join(
                    "≤ " + fmt(r.get("refusal_p99_in_process_ms") or float("nan"), " ms", 1)
                    for r in o["per_run"]
                ),
                "≤ 50 ms",
                verdict((o.get("refusal_p99_in_process_ms_max") or 0) <= 50, smoke),
            ),
            (
                "3b overload",
                "exactly capacity sold, every run · oversold",
                str(o["all_runs_exact"]),
                str(o["oversold_total"]),
                "True · 0",
                verdict(o["all_runs_exact"] and o["oversold_total"] == 0, smoke),
            ),
        ]
    return out
