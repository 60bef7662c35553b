"""Venues and events, and the rules of what is on sale. Pure: no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from boxoffice.domain.cursor import decode_keyset, encode_keyset
from boxoffice.domain.money import Money

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


class Availability(StrEnum):
    """Whether an event sells tickets (the Event schema's `status`). One rule, here and in
    `book_tickets` (db/migrations/R__booking.sql): an event is on sale while it is not cancelled,
    has not started and has seats left; sales end when the event starts."""

    ON_SALE = "ON_SALE"
    SOLD_OUT = "SOLD_OUT"
    SALES_ENDED = "SALES_ENDED"  # the event has started
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class Venue:
    id: uuid.UUID
    name: str
    address: str
    city: str
    capacity: int


@dataclass(frozen=True, slots=True)
class Event:
    id: uuid.UUID
    venue: Venue
    name: str
    description: str
    starts_at: datetime
    price: Money
    capacity: int
    remaining: int
    cancelled: bool
    # Whether it has started, by the database's clock when it was read (`starts_at <= now()`, the
    # comparison book_tickets makes), so that what is shown and what is sold agree.
    started: bool

    @property
    def availability(self) -> Availability:
        """In the order book_tickets refuses: cancelled, started, then seats."""
        if self.cancelled:
            return Availability.CANCELLED
        if self.started:
            return Availability.SALES_ENDED
        if self.remaining <= 0:
            return Availability.SOLD_OUT
        return Availability.ON_SALE


@dataclass(frozen=True, slots=True)
class EventQuery:
    venue_id: uuid.UUID | None
    starts_from: datetime
    starts_to: datetime | None
    limit: int
    after: tuple[datetime, uuid.UUID] | None = None


def encode_cursor(event: Event) -> str:
    return encode_keyset(event.starts_at, event.id)


decode_cursor = decode_keyset  # raises ValueError for a cursor this service did not issue


def split_capacity(capacity: int, shards: int) -> list[int]:
    """Spread `capacity` seats over `shards` inventory rows as evenly as possible."""
    if capacity < 0 or shards < 1:
        raise ValueError("capacity must be >= 0 and shards >= 1")
    base, extra = divmod(capacity, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


def shards_for(capacity: int) -> int:
    """How many inventory rows an event gets (docs/adr/0002-hot-event-inventory.md)."""
    if capacity >= 10_000:
        return 16
    if capacity >= 1_000:
        return 4
    return 1


def resize_shards(shards: list[tuple[int, int]], new_total: int) -> list[int] | None:
    """New capacities for inventory rows given as (capacity, sold), adding up to `new_total`.

    Growth is spread over the rows with the least capacity; shrinking takes free seats from the
    rows with the most room. None when fewer than the seats already sold would remain.
    """
    caps = [cap for cap, _ in shards]
    delta = new_total - sum(caps)
    if new_total < sum(sold for _, sold in shards):
        return None
    while delta > 0:
        i = min(range(len(caps)), key=lambda k: caps[k])
        caps[i] += 1
        delta -= 1
    while delta < 0:
        i = max(range(len(caps)), key=lambda k: caps[k] - shards[k][1])
        caps[i] -= 1
        delta += 1
    return caps
