"""Bookings: seat allocation over inventory shards, idempotency keys, booking CloudEvents.

Pure: no I/O. The transaction that uses these rules is `boxoffice.services.bookings`; why the
inventory is sharded is docs/adr/0002-hot-event-inventory.md, how retries are made safe is
docs/adr/0004-idempotency.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from boxoffice.domain.cursor import decode_keyset, encode_keyset
from boxoffice.domain.money import Money

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

CREATED_TYPE = "dev.boxoffice.booking.created.v1"
CANCELLED_TYPE = "dev.boxoffice.booking.cancelled.v1"

# RFC 9110 field values may hold more, but a key is an opaque token: visible ASCII only.
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class BookingStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class Allocation:
    """`quantity` seats taken from inventory row `shard` of the booking's event."""

    shard: int
    quantity: int


@dataclass(frozen=True, slots=True)
class Booking:
    id: uuid.UUID
    customer_id: uuid.UUID
    event_id: uuid.UUID
    quantity: int
    unit_price: Money
    status: BookingStatus
    created_at: datetime
    cancelled_at: datetime | None = None

    @property
    def total(self) -> Money:
        return self.unit_price.times(self.quantity)

    @property
    def cancelled(self) -> bool:
        return self.status is BookingStatus.CANCELLED


@dataclass(frozen=True, slots=True)
class EventForSale:
    """What the purchase path needs to know about an event."""

    id: uuid.UUID
    price: Money
    cancelled: bool
    started: bool
    shard_count: int

    @property
    def on_sale(self) -> bool:
        return not self.cancelled and not self.started


def shard_order(shards: list[int], start: int) -> list[int]:
    """`shards` sorted, rotated to begin at the first shard >= `start` (wrapping around)."""
    ordered = sorted(shards)
    return [s for s in ordered if s >= start] + [s for s in ordered if s < start]


def plan_allocation(free: dict[int, int], quantity: int, start: int = 0) -> list[Allocation] | None:
    """Where to take `quantity` seats from, given the free seats of each (locked) shard.

    One shard when any has room (the first such shard from `start` on, wrapping), else seats
    from several shards in that same order. None when all shards together hold too few.
    """
    if quantity < 1:
        raise ValueError("quantity must be >= 1")
    order = shard_order([s for s, n in free.items() if n > 0], start)
    for shard in order:
        if free[shard] >= quantity:
            return [Allocation(shard, quantity)]
    if sum(free[s] for s in order) < quantity:
        return None
    plan: list[Allocation] = []
    wanted = quantity
    for shard in order:
        take = min(free[shard], wanted)
        plan.append(Allocation(shard, take))
        wanted -= take
        if wanted == 0:
            break
    return sorted(plan, key=lambda a: a.shard)


# -- idempotency -------------------------------------------------------------------------------


def valid_idempotency_key(key: str) -> bool:
    return IDEMPOTENCY_KEY.fullmatch(key) is not None


def request_hash(method: str, path: str, body: dict[str, Any]) -> str:
    """SHA-256 of the request in canonical form (sorted keys, no spaces): the same request
    spelled differently (key order, whitespace) hashes the same."""
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """An HTTP response as kept with its idempotency key and replayed byte-for-byte in meaning."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A key already claimed by an earlier request of the same caller."""

    request_hash: str
    response: StoredResponse | None  # None while that request is still in flight


# -- pagination --------------------------------------------------------------------------------


def encode_cursor(booking: Booking) -> str:
    return encode_keyset(booking.created_at, booking.id)


decode_cursor = decode_keyset  # raises ValueError for a cursor this service did not issue


# -- booking events (transactional outbox) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One row of the `outbox` table: a CloudEvent the relay will publish to Kafka."""

    id: uuid.UUID
    topic: str
    record_key: str
    event_type: str
    event_source: str
    event_time: datetime
    payload: dict[str, Any]


def booking_payload(booking: Booking) -> dict[str, Any]:
    return {
        "bookingId": str(booking.id),
        "eventId": str(booking.event_id),
        "customerId": str(booking.customer_id),
        "quantity": booking.quantity,
        "unitPrice": booking.unit_price.to_json(),
        "total": booking.total.to_json(),
        "status": booking.status.value,
    }


def created_message(booking: Booking, topic: str, source: str) -> OutboxMessage:
    """booking.created: its CloudEvent id is the booking id (a replayed publish is a duplicate
    the consumer recognises). Keyed by booking id: one booking's events stay in order."""
    return OutboxMessage(
        id=booking.id,
        topic=topic,
        record_key=str(booking.id),
        event_type=CREATED_TYPE,
        event_source=source,
        event_time=booking.created_at,
        payload=booking_payload(booking),
    )


def cancelled_message(
    booking: Booking, topic: str, source: str, message_id: uuid.UUID | None = None
) -> OutboxMessage:
    if booking.cancelled_at is None:
        raise ValueError("booking is not cancelled")
    return OutboxMessage(
        id=message_id or uuid.uuid4(),
        topic=topic,
        record_key=str(booking.id),
        event_type=CANCELLED_TYPE,
        event_source=source,
        event_time=booking.cancelled_at,
        payload=booking_payload(booking),
    )
