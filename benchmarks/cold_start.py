"""(5) Cold start and memory: a function process from start to its first answers, and its RSS."""

from __future__ import annotations

from typing import Any

import requests

from benchmarks.bench import Bench, aggregate
from benchmarks.servers import FunctionProcess


def cold_start(b: Bench) -> dict[str, Any]:
    p = b.profile
    tokens = b.tokens.ensure(300)
    auth = {"Authorization": f"Bearer {tokens[0][1]}"}
    routes: dict[str, tuple[str, dict[str, str] | None]] = {
        "get_event": (f"/events/{b.spread[0]}", None),
        "get_customer": ("/customers/me", auth),
        "create_booking": ("/bookings?limit=5", auth),
        "consume_order": ("/readyz", None),
    }
    routes = {fn: r for fn, r in routes.items() if fn in p.cold_functions}
    out: dict[str, Any] = {}
    for fn, (route, headers) in routes.items():
        samples = []
        for i in range(p.cold_repeats):
            proc = FunctionProcess(fn, b.env, b.out / "logs" / f"cold-{fn}.log")
            proc.start()
            try:
                healthz = proc.wait_until("/healthz")
                first = proc.wait_until(route, headers)
                session = requests.Session()
                for _ in range(50 if p.smoke else 500):
                    session.get(proc.url + route, headers=headers, timeout=10)
                mem = proc.memory()
            finally:
                proc.stop()
            b.log(
                f"cold start {fn} #{i + 1}: /healthz {healthz:.3f}s, {route} {first:.3f}s, "
                f"worker RSS {mem['worker_rss_mb']:.0f} MB"
            )
            samples.append({"healthz_s": healthz, "first_route_s": first, **mem})
        agg = aggregate([{**s, "errors": {}} for s in samples])
        agg.pop("errors")
        agg["route"] = route
        out[fn] = agg
    out["under_load"] = {name: s.memory() for name, s in b.servers.items()}
    return out
