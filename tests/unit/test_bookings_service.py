"""Booking use cases (services/bookings.py) around a recording fake of the booking store.

The booking rules themselves run in PostgreSQL (one round trip per booking) and are tested there:
tests/integration/test_booking_rules.py. Here: what the service adds around the store — input
limits, what it asks the store to do, when it tells the outbox relay, how a replay is shown.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from boxoffice import errors
from boxoffice.domain.bookings import Booking, BookingStatus, request_hash
from boxoffice.domain.identity import Principal
from boxoffice.domain.money import Money
from boxoffice.services import bookings
from boxoffice.services.bookings import BookingPolicy, BookingRequest
from boxoffice.services.ports import Booked, BookingView, BookTickets

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
POLICY = BookingPolicy(
    max_tickets_per_order=10,
    max_tickets_per_customer_per_event=6,
    idempotency_ttl_hours=24,
    topic="booking",
    source="/boxoffice/bookings",
)
ALICE = Principal("sub-alice", frozenset({"customer"}))
ADMIN = Principal("sub-admin", frozenset({"admin", "customer"}))
EVENT = uuid.UUID("e0000000-0000-4000-8000-000000000001")


def a_booking(**changes: object) -> Booking:
    b = Booking(
        uuid.uuid4(),
        uuid.uuid4(),
        EVENT,
        2,
        Money(Decimal("10.00"), "GBP"),
        BookingStatus.PENDING,
        NOW,
    )
    return replace(b, **changes)  # type: ignore[arg-type]


@dataclass
class FakeStore:
    """Records what it was asked; answers what the test set."""

    answer: Booked | None = None
    refusal: errors.BoxofficeError | None = None
    views: list[BookingView] = field(default_factory=list)
    cancelled: tuple[Booking, bool] | None = None
    commands: list[BookTickets] = field(default_factory=list)
    finds: list[tuple[uuid.UUID, str | None]] = field(default_factory=list)

    def book(self, command: BookTickets) -> Booked:
        self.commands.append(command)
        if self.refusal is not None:
            raise self.refusal
        if self.answer is not None:
            return self.answer
        booking = a_booking(id=command.booking_id, quantity=command.quantity)
        return Booked(booking, replayed=False)

    def cancel(
        self, subject: str, booking_id: uuid.UUID, topic: str, source: str, *, admin: bool = False
    ) -> tuple[Booking, bool]:
        if self.refusal is not None:
            raise self.refusal
        assert self.cancelled is not None
        return self.cancelled

    def find(self, booking_id: uuid.UUID, subject: str | None) -> BookingView | None:
        self.finds.append((booking_id, subject))
        return self.views[0] if self.views else None

    def list_for_customer(
        self, subject: str, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[BookingView]:
        return self.views[:limit]


class Notifier:
    def __init__(self, fail: bool = False) -> None:
        self.kicks = 0
        self.fail = fail

    def kick(self) -> None:
        self.kicks += 1
        if self.fail:
            raise RuntimeError("relay is down")


def book(store: FakeStore, quantity: int = 2, notifier: Notifier | None = None) -> Booked:
    body = {"eventId": str(EVENT), "ticketCount": quantity}
    request = BookingRequest(EVENT, quantity, "key-1", request_hash("POST", "/bookings", body))
    return bookings.create_booking(
        store, notifier or Notifier(), POLICY, ALICE, request, random.Random(7)
    )


def test_a_booking_asks_the_store_for_exactly_this_request_and_then_tells_the_relay() -> None:
    store, notifier = FakeStore(), Notifier()
    booked = book(store, 3, notifier)

    (command,) = store.commands
    assert command.subject == ALICE.subject
    assert command.idempotency_key == "key-1"
    assert command.request_hash == request_hash(
        "POST", "/bookings", {"eventId": str(EVENT), "ticketCount": 3}
    )
    assert (command.event_id, command.quantity) == (EVENT, 3)
    assert command.max_tickets_per_customer == POLICY.max_tickets_per_customer_per_event
    assert command.idempotency_ttl_hours == POLICY.idempotency_ttl_hours
    assert (command.topic, command.source) == (POLICY.topic, POLICY.source)
    assert 0 <= command.start_shard < bookings.START_SHARD_RANGE
    assert booked.booking is not None
    assert booked.booking.id == command.booking_id
    assert notifier.kicks == 1


def test_every_booking_gets_a_new_id_and_a_random_start_shard() -> None:
    store = FakeStore()
    body = {"eventId": str(EVENT), "ticketCount": 1}
    for i in range(20):
        request = BookingRequest(EVENT, 1, f"k{i}", request_hash("POST", "/bookings", body))
        bookings.create_booking(store, Notifier(), POLICY, ALICE, request)  # the default rng
    assert len({c.booking_id for c in store.commands}) == 20
    assert len({c.start_shard for c in store.commands}) > 1


@pytest.mark.parametrize("quantity", [0, 11])
def test_ticket_count_outside_1_to_the_order_maximum_names_the_field(quantity: int) -> None:
    store = FakeStore()
    with pytest.raises(errors.ValidationFailed) as caught:
        book(store, quantity)
    assert caught.value.errors[0].field == "ticketCount"
    assert store.commands == []  # refused before the database


def test_a_replay_shows_the_booking_as_its_first_response_did_and_kicks_nothing() -> None:
    cancelled = a_booking(status=BookingStatus.CANCELLED, cancelled_at=NOW)
    store, notifier = FakeStore(answer=Booked(cancelled, replayed=True)), Notifier()
    booked = book(store, notifier=notifier)
    assert booked.replayed
    assert booked.booking == replace(cancelled, status=BookingStatus.PENDING, cancelled_at=None)
    assert notifier.kicks == 0


def test_a_refusal_from_the_store_reaches_the_caller_and_kicks_nothing() -> None:
    store, notifier = FakeStore(refusal=errors.SoldOut("none left")), Notifier()
    with pytest.raises(errors.SoldOut):
        book(store, notifier=notifier)
    assert notifier.kicks == 0


def test_notifier_failure_after_commit_does_not_fail_the_booking() -> None:
    booked = book(FakeStore(), notifier=Notifier(fail=True))
    assert booked.booking is not None


def test_customers_look_up_their_own_bookings_and_admins_anyones() -> None:
    view = BookingView(a_booking(), None)
    store = FakeStore(views=[view])
    assert bookings.get_booking(store, ALICE, view.booking.id) == view
    assert bookings.get_booking(store, ADMIN, view.booking.id) == view
    assert store.finds == [(view.booking.id, ALICE.subject), (view.booking.id, None)]


def test_a_booking_the_store_does_not_show_the_caller_is_404() -> None:
    with pytest.raises(errors.NotFound):
        bookings.get_booking(FakeStore(), ALICE, uuid.uuid4())


def test_a_page_asks_for_one_more_row_to_know_whether_more_follow() -> None:
    views = [BookingView(a_booking(), None) for _ in range(4)]
    page = bookings.list_bookings(FakeStore(views=views), ALICE, 3)
    assert page.items == views[:3]
    assert page.has_more
    last = bookings.list_bookings(FakeStore(views=views[:3]), ALICE, 3)
    assert not last.has_more


def test_the_relay_is_told_only_when_a_cancellation_changed_something() -> None:
    b = a_booking(status=BookingStatus.CANCELLED, cancelled_at=NOW)
    for changed, kicks in ((True, 1), (False, 0)):
        notifier = Notifier()
        result = bookings.cancel_booking(
            FakeStore(cancelled=(b, changed)), notifier, POLICY, ALICE, b.id
        )
        assert (result.booking, result.changed) == (b, changed)
        assert notifier.kicks == kicks
