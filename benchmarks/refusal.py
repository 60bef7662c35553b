"""Scenario `refusal` (optional: only when named): what refusing costs one server worker, the
limit behind the 5 x overload figures (docs/benchmarks.md).

The floor app (benchmarks/floor) on the project's server with one worker (WORKERS=1, THREADS=8)
and a queue of one (BOXOFFICE_MAX_QUEUE=1, a deadline long enough not to end during a step): nine
long requests take the eight slots and the one place in the queue, so every other request is
refused by the request queue at once (`queue_full`, 503) without any application code. oha then
sends GET /constant at fixed rates. Two cases for what the slots' requests do meanwhile:

- `wait`: they sleep (`/hold`), as requests waiting on PostgreSQL do: the interpreter lock is free;
- `compute`: they run pure Python (`/spin`), each taking the lock back every switch interval: the
  worst case for a refusal, which needs the lock too.

Per case and rate: refusals answered per second, their p50 and p99 on the client's wire, requests
not answered within the client's timeout, and the worker's CPU per refusal (the server's process
tree; in the `compute` case that includes the slots' own computing, so only the `wait` case
gives a refusal's own cost). One run per rate (a diagnostic, not a goal).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np
import requests

from benchmarks.env import ROOT
from benchmarks.load import Target, attack_oha, percentile_ms, write_targets
from benchmarks.servers import FunctionProcess
from benchmarks.table import Row, fmt

FLOOR = ROOT / "benchmarks" / "floor"
THREADS = 8
HOLDERS = THREADS + 1  # the slots and the one place in the queue
CASES = {"wait": "/hold", "compute": "/spin"}
RATES = (500, 1000, 2000, 4000)


def _hold(url: str, seconds: float) -> list[threading.Thread]:
    """HOLDERS requests to `url?s=seconds`, each in a thread of its own (started, not joined)."""

    def one() -> None:
        with contextlib.suppress(requests.RequestException):
            requests.get(url, params={"s": f"{seconds:g}"}, timeout=seconds + 30)

    holders = [threading.Thread(target=one, daemon=True) for _ in range(HOLDERS)]
    for t in holders:
        t.start()
    return holders


def refusal(b: Any) -> dict[str, Any]:
    duration = min(b.profile.duration_s, 10.0)
    if b.oha is None:
        return {"available": False, "reason": "oha is not built (make bench-deps)"}
    rates = [500] if b.profile.smoke else list(RATES)
    env = dict(
        b.env,
        WORKERS="1",
        THREADS=str(THREADS),
        BOXOFFICE_MAX_QUEUE="1",
        BOXOFFICE_REQUEST_DEADLINE_SECONDS="600",
    )
    proc = FunctionProcess("floor", env, b.out / "logs" / "refusal.log", directory=FLOOR)
    proc.start()
    cases: dict[str, Any] = {}
    try:
        proc.wait_until("/readyz")
        targets = b.out / "raw" / "refusal" / "constant.jsonl"
        targets.parent.mkdir(parents=True, exist_ok=True)
        write_targets(targets, [Target("GET", f"{proc.url}/constant")])
        for case, path in CASES.items():
            steps = []
            for rate in rates:
                holders = _hold(proc.url + path, duration + 3.0)
                threading.Event().wait(1.0)  # the nine are in (the slots, the queue)
                a = attack_oha(
                    b.oha,
                    targets,
                    rate,
                    duration,
                    b.out / "raw" / "refusal",
                    f"{case}-{rate}",
                    proc,
                    timeout=10.0,
                )
                for t in holders:
                    t.join()
                refused = a.code == 503
                n = int(refused.sum())
                steps.append(
                    {
                        "rate": rate,
                        "requests": a.requests,
                        "refused": n,
                        "refused_per_s": n / duration,
                        "other_answers": int(((a.code != 503) & (a.code != 0)).sum()),
                        "not_answered": int((a.code == 0).sum()),
                        "p50_ms": percentile_ms(a.latency[refused], 50),
                        "p99_ms": percentile_ms(a.latency[refused], 99),
                        "server_cpu_ms_per_refusal": 1000 * a.server_cpu_s / n if n else np.nan,
                        "generator": "oha",
                        "generator_cpu_share": a.generator_cpu_share,
                        "generator_cpu_ms_per_request": (
                            1000 * a.generator_cpu_s / a.requests if a.requests else np.nan
                        ),
                    }
                )
                b.log(
                    f"refusal {case} @ {rate}/s: {n / duration:.0f}/s refused, p99 "
                    f"{steps[-1]['p99_ms']:.1f} ms, {steps[-1]['not_answered']} not answered"
                )
            cases[case] = steps
    finally:
        proc.stop()
    return {"threads": THREADS, "duration_s": duration, "cases": cases}


def report_rows(r: dict[str, Any], smoke: bool) -> list[Row]:
    out: list[Row] = []
    for case, steps in r["cases"].items():
        cells = [
            f"{s['rate']}/s: {fmt(s['refused_per_s'], '/s')} refused, "
            f"p99 {fmt(s['p99_ms'], ' ms', 1)}, {s['not_answered']} not answered, "
            f"{fmt(s['server_cpu_ms_per_refusal'], ' ms', 3)} CPU"
            for s in steps
        ]
        out.append(
            (
                "9 refusal",
                f"one worker, {r['threads']} slots held ({case}): refusals answered · p99 · "
                "not answered · worker CPU per refusal (compute: with the slots' own), per rate",
                fmt(steps[-1]["refused_per_s"], "/s") if steps else "-",
                " · ".join(cells),
                "",
                "diagnostic",
            )
        )
    return out
