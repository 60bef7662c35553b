"""Bookings as the API shows them, Idempotency-Keys, the booking CloudEvent types. Pure: no I/O.

The booking rules themselves (seat reservation over inventory shards, the per-customer limit,
idempotency claims, the outbox event) run inside PostgreSQL, one function per rule, so that a
booking is one round trip: db/migrations/R__booking.sql, tested in
tests/integration/test_booking_rules.py; tests/integration/test_sql_contract.py keeps its refusal
slugs, states and event types equal to the ones here (docs/adr/0010-booking-rules-in-sql.md). Why
the inventory is sharded is docs/adr/0002-hot-event-inventory.md, how retries are made safe is
docs/adr/0004-idempotency.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, replace
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
    """A booking's life (docs/adr/0020-checkout-state-machine.md): HELD (seats reserved while the
    buyer pays, until `hold_expires_at`) -> PENDING (paid, or booked without online payment;
    published) -> CONFIRMED (its order and tickets exist); HELD -> EXPIRED (the hold lapsed: seats
    returned); HELD, PENDING or CONFIRMED -> CANCELLED (seats returned, a payment refunded)."""

    HELD = "HELD"
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


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
    category_id: uuid.UUID | None = None
    hold_expires_at: datetime | None = None  # set for a booking made as a hold
    expired_at: datetime | None = None

    @property
    def total(self) -> Money:
        return self.unit_price.times(self.quantity)

    @property
    def cancelled(self) -> bool:
        return self.status is BookingStatus.CANCELLED

    @property
    def held(self) -> bool:
        return self.status is BookingStatus.HELD

    def as_created(self) -> Booking:
        """The booking as its 201 showed it: every field is fixed at creation except the status
        (HELD for a hold, else PENDING, until payment, expiry, order processing or a cancellation
        changes it) and the times of those changes."""
        status = BookingStatus.HELD if self.hold_expires_at else BookingStatus.PENDING
        return replace(self, status=status, cancelled_at=None, expired_at=None)


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


# -- pagination --------------------------------------------------------------------------------


def encode_cursor(booking: Booking) -> str:
    return encode_keyset(booking.created_at, booking.id)


decode_cursor = decode_keyset  # raises ValueError for a cursor this service did not issue
