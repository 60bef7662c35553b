"""(1) Catalogue reads: GET /events/{id} and GET /events, constant-rate steps (oha)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.bench import Bench
from benchmarks.load import Target, write_targets


def catalogue(b: Bench) -> dict[str, Any]:
    server = b.servers["get_event"]

    def by_id(path: Path, rate: float, duration: float) -> bool:
        ids = b.rng.sample(b.spread, min(500, len(b.spread)))
        write_targets(path, (Target("GET", f"{server.url}/events/{e}") for e in ids))
        return False  # a fixed list, cycled

    def listing(path: Path, rate: float, duration: float) -> bool:
        write_targets(path, [Target("GET", f"{server.url}/events?limit=20")])
        return False

    rates = b.profile.catalogue_rates
    return {
        "GET /events/{id}": b.sweep("catalogue-get-event", rates, server, by_id, generator="oha"),
        "GET /events": b.sweep("catalogue-list-events", rates, server, listing, generator="oha"),
    }
