"""(2) The purchase path, spread out: bookings over many events (a few small ones sell out),
constant-rate steps, and the inventory checked afterwards. (2b) The same on events paid online
with three ticket categories each: every booking names a category and is a seat hold (ADR 20),
so the two sweeps side by side say what a hold and a category cost."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

from benchmarks.bench import Bench


def spread(b: Bench) -> dict[str, Any]:
    p = b.profile
    server = b.servers["create_booking"]

    def pick() -> uuid.UUID:
        if b.small and b.rng.random() < p.small_share:
            return b.rng.choice(b.small)
        return b.rng.choice(b.spread)

    def targets(path: Path, rate: float, duration: float) -> bool:
        n = math.ceil(rate * duration * 1.02) + 10
        b.booking_targets(path, n, pick, lambda: b.rng.choice((1, 1, 2)), duration + 120)
        return True

    result = b.sweep("booking-spread", p.booking_rates, server, targets, max_body=400)
    result["inventory"] = b.db.inventory_check(b.spread + b.small)
    return result


def holds(b: Bench) -> dict[str, Any]:
    """(2b) Bookings spread over events paid online, three categories each: every 201 is a HELD
    booking (no outbox row; its payment is not part of the purchase path)."""
    p = b.profile
    server = b.servers["create_booking"]
    events = b.db.make_held_events(p.spread_events, p.spread_capacity)
    ids = list(events)

    def targets(path: Path, rate: float, duration: float) -> bool:
        n = math.ceil(rate * duration * 1.02) + 10
        b.booking_targets(
            path,
            n,
            lambda: b.rng.choice(ids),
            lambda: b.rng.choice((1, 1, 2)),
            duration + 120,
            categories=events,
        )
        return True

    result = b.sweep("booking-holds", p.booking_rates, server, targets, max_body=400)
    result["inventory"] = b.db.inventory_check(ids)
    result["held"] = b.db.held_bookings(ids)
    return result
