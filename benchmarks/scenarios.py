"""The benchmark scenarios by name, in the order a run takes them; each is a module of its own
(`benchmarks/<module>.py`) whose function takes the `Bench` (benchmarks/bench.py) and returns a
JSON-able dict of results. `profile` (benchmarks/profiling.py) is run by the harness itself: it
profiles at the rate the spread-out scenario found sustainable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import (
    booking_to_confirmed,
    burst,
    catalogue,
    cold_start,
    containers,
    flash_sale,
    overload,
    refusal,
    runtime,
    spread,
    ticket_pdf_cpu,
    token_verification,
    waiting_room,
)
from benchmarks.bench import Bench

Scenario = Callable[[Bench], Any]

# Run by default (`python -m benchmarks`), in this order.
ALL = [
    "catalogue",
    "catalogue_cached",
    "floor",
    "spread",
    "holds",
    "hot",
    "profile",
    "flash_sale",
    "overload",
    "burst",
    "booking_to_confirmed",
    "cold_start",
    "containers",
    "ticket_pdf",
    "token",
]
# Run only when named (`--scenarios waiting_room`), and by the smoke run.
OPTIONAL = ["waiting_room", "runtime", "refusal"]

SCENARIOS: dict[str, Scenario] = {
    "catalogue": catalogue.catalogue,
    "catalogue_cached": overload.catalogue_cached,
    "floor": overload.floor,
    "spread": spread.spread,
    "holds": spread.holds,
    "hot": overload.hot,
    "flash_sale": flash_sale.flash_sale,
    "overload": overload.overload,
    "burst": burst.burst,
    "booking_to_confirmed": booking_to_confirmed.booking_to_confirmed,
    "cold_start": cold_start.cold_start,
    "containers": containers.containers,
    "ticket_pdf": ticket_pdf_cpu.ticket_pdf,
    "token": token_verification.token,
    "waiting_room": waiting_room.waiting_room,
    "runtime": runtime.runtime,
    "refusal": refusal.refusal,
}
