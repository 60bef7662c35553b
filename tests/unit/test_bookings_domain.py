"""Pure booking rules: where seats are taken from, idempotency keys and request hashes, list
cursors, and the CloudEvents a booking writes to the outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from boxoffice.domain.bookings import (
    CANCELLED_TYPE,
    CREATED_TYPE,
    Allocation,
    Booking,
    BookingStatus,
    EventForSale,
    cancelled_message,
    created_message,
    decode_cursor,
    encode_cursor,
    plan_allocation,
    request_hash,
    shard_order,
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


# -- seat allocation ---------------------------------------------------------------------------


def test_shard_order_starts_at_the_given_shard_and_wraps_around() -> None:
    assert shard_order([0, 1, 2, 3], 2) == [2, 3, 0, 1]
    assert shard_order([3, 1, 0, 2], 0) == [0, 1, 2, 3]
    assert shard_order([0, 1, 2], 7) == [0, 1, 2]


def test_plan_takes_all_seats_from_the_first_shard_with_room_from_the_start() -> None:
    free = {0: 10, 1: 1, 2: 10, 3: 10}
    assert plan_allocation(free, 4, start=1) == [Allocation(2, 4)]
    assert plan_allocation(free, 4, start=0) == [Allocation(0, 4)]


def test_plan_prefers_one_shard_over_splitting_even_when_a_nearer_shard_has_some_seats() -> None:
    assert plan_allocation({0: 2, 1: 2, 2: 5}, 4, start=0) == [Allocation(2, 4)]


def test_plan_splits_over_several_shards_when_none_has_room_alone() -> None:
    plan = plan_allocation({0: 1, 1: 2, 2: 0, 3: 2}, 4, start=3)
    assert plan == [Allocation(0, 1), Allocation(1, 1), Allocation(3, 2)]
    assert sum(a.quantity for a in plan) == 4


def test_plan_is_none_when_all_shards_together_hold_too_few_seats() -> None:
    assert plan_allocation({0: 1, 1: 1, 2: 0}, 3) is None
    assert plan_allocation({}, 1) is None


def test_plan_takes_the_exact_last_seats() -> None:
    assert plan_allocation({0: 1, 1: 1, 2: 1}, 3) == [
        Allocation(0, 1),
        Allocation(1, 1),
        Allocation(2, 1),
    ]


def test_plan_rejects_a_quantity_below_one() -> None:
    with pytest.raises(ValueError, match="quantity"):
        plan_allocation({0: 5}, 0)


def test_event_is_on_sale_only_when_neither_cancelled_nor_started() -> None:
    price = Money(Decimal(10), "GBP")
    event_id = uuid.uuid4()
    assert EventForSale(event_id, price, cancelled=False, started=False, shard_count=1).on_sale
    assert not EventForSale(event_id, price, cancelled=True, started=False, shard_count=1).on_sale
    assert not EventForSale(event_id, price, cancelled=False, started=True, shard_count=1).on_sale


def test_booking_total_is_unit_price_times_quantity_in_exact_decimals() -> None:
    assert booking(quantity=3).total == Money(Decimal("59.97"), "GBP")


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


# -- outbox messages ---------------------------------------------------------------------------


def test_created_message_is_keyed_and_identified_by_the_booking() -> None:
    b = booking()
    message = created_message(b, "booking", "/boxoffice/bookings")
    assert message.id == b.id
    assert message.record_key == str(b.id)
    assert message.event_type == CREATED_TYPE
    assert message.topic == "booking"
    assert message.event_source == "/boxoffice/bookings"
    assert message.event_time == WHEN
    assert message.payload == {
        "bookingId": str(b.id),
        "eventId": str(b.event_id),
        "customerId": str(b.customer_id),
        "quantity": 3,
        "unitPrice": {"amount": "19.99", "currency": "GBP"},
        "total": {"amount": "59.97", "currency": "GBP"},
        "status": "PENDING",
    }


def test_cancelled_message_has_its_own_id_and_the_booking_as_key() -> None:
    cancelled_at = datetime(2030, 5, 2, tzinfo=UTC)
    b = booking(status=BookingStatus.CANCELLED, cancelled_at=cancelled_at)
    first = cancelled_message(b, "booking", "/src")
    second = cancelled_message(b, "booking", "/src")
    assert first.id != b.id
    assert first.id != second.id
    assert first.record_key == str(b.id)
    assert first.event_type == CANCELLED_TYPE
    assert first.event_time == cancelled_at
    assert first.payload["status"] == "CANCELLED"


def test_a_booking_that_is_not_cancelled_has_no_cancelled_message() -> None:
    with pytest.raises(ValueError, match="not cancelled"):
        cancelled_message(booking(), "booking", "/src")
