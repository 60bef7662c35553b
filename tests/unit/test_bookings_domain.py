"""Pure booking domain: totals, what a booking looked like when created, idempotency keys and
request hashes, list cursors. (The seat allocation and the outbox event now run in PostgreSQL:
tests/integration/test_booking_rules.py.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from boxoffice.domain.bookings import (
    Booking,
    BookingStatus,
    decode_cursor,
    encode_cursor,
    request_hash,
    valid_idempotency_key,
)
from boxoffice.domain.money import Money

WHEN = datetime(2030, 5, 1, 20, 0, tzinfo=UTC)


def booking(**fields: object) -> Booking:
    values: dict[str, object] = {
        "id": uuid.UUID("b0000000-0000-4000-8000-000000000001"),
        "customer_id": uuid.UUID("c0000000-0000-4000-8000-000000000001"),
        "event_id": uuid.UUID("e0000000-0000-4000-8000-000000000001"),
        "quantity": 3,
        "unit_price": Money(Decimal("19.99"), "GBP"),
        "status": BookingStatus.PENDING,
        "created_at": WHEN,
    }
    values.update(fields)
    return Booking(**values)  # type: ignore[arg-type]


def test_booking_total_is_unit_price_times_quantity_in_exact_decimals() -> None:
    assert booking(quantity=3).total == Money(Decimal("59.97"), "GBP")


def test_a_booking_as_created_is_pending_and_not_cancelled_whatever_happened_since() -> None:
    later = booking(status=BookingStatus.CANCELLED, cancelled_at=WHEN)
    assert later.as_created() == booking()
    assert booking(status=BookingStatus.CONFIRMED).as_created() == booking()


# -- idempotency -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["a", "0f8fad5b-d9cb-469f-a165-70867728950e", "~!" * 100, "x" * 255]
)
def test_visible_ascii_keys_of_1_to_255_characters_are_valid(key: str) -> None:
    assert valid_idempotency_key(key)


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\t", "caf\u00e9", "nl\n"])
def test_empty_long_spaced_control_and_non_ascii_keys_are_invalid(key: str) -> None:
    assert not valid_idempotency_key(key)


def test_request_hash_ignores_key_order_but_not_values() -> None:
    a = request_hash("POST", "/bookings", {"eventId": "e1", "ticketCount": 2})
    b = request_hash("post", "/bookings", {"ticketCount": 2, "eventId": "e1"})
    c = request_hash("POST", "/bookings", {"eventId": "e1", "ticketCount": 3})
    assert a == b
    assert a != c
    assert len(a) == 64


def test_request_hash_depends_on_method_and_path() -> None:
    body = {"eventId": "e1", "ticketCount": 2}
    assert request_hash("POST", "/bookings", body) != request_hash("PUT", "/bookings", body)
    assert request_hash("POST", "/bookings", body) != request_hash("POST", "/other", body)


# -- pagination --------------------------------------------------------------------------------


def test_cursor_round_trips_the_creation_time_and_id() -> None:
    b = booking()
    assert decode_cursor(encode_cursor(b)) == (b.created_at, b.id)


@pytest.mark.parametrize("cursor", ["!!!", "bm90IGEgY3Vyc29y", "MjAzMC0wMS0wMXxub3QtYS11dWlk"])
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError subclass is a refusal
        decode_cursor(cursor)
