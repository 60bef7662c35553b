"""(2) The purchase path, spread out: bookings over many events (a few small ones sell out),
constant-rate steps, and the inventory checked afterwards."""

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
