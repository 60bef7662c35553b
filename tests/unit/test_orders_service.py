"""Order processing rules with in-memory fakes of the ports (the real SQL is covered by
tests/integration/test_consume_order*.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from boxoffice.domain.bookings import CANCELLED_TYPE, CREATED_TYPE, Booking, BookingStatus
from boxoffice.domain.money import Money
from boxoffice.domain.orders import (
    BookingEvent,
    DocumentSource,
    NewTicket,
    Order,
    OrderStatus,
    Outcome,
    Ticket,
    TicketStatus,
)
from boxoffice.domain.tickets import TicketKeys, TicketSigner
from boxoffice.errors import (
    BookingEventInvalid,
    UnknownBooking,
)
from boxoffice.services import orders
from boxoffice.services.ports import DocumentStoreError

KEY = TicketSigner.generate()
KEYS = TicketKeys([KEY.public_key])
NOW = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class FakeOrders:
    bookings: dict[uuid.UUID, Booking] = field(default_factory=dict)
    by_booking: dict[uuid.UUID, Order] = field(default_factory=dict)
    events: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    stored: set[uuid.UUID] = field(default_factory=set)
    failures: dict[uuid.UUID, int] = field(default_factory=dict)
    keys: dict[uuid.UUID, str] = field(default_factory=dict)

    # OrderRepository
    def orders_for_bookings(self, booking_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Order]:
        return {b: o for b, o in self.by_booking.items() if b in booking_ids}

    def lock_booking(self, booking_id: uuid.UUID) -> Booking | None:
        return self.bookings.get(booking_id)

    def processed_outcome(self, source: str, event_id: str) -> Outcome | None:
        return self.events.get((source, event_id))

    def record_event(self, event: BookingEvent, outcome: Outcome) -> None:
        self.events.setdefault((event.source, event.id), outcome)

    def order_for_booking(self, booking_id: uuid.UUID, *, for_update: bool = False) -> Order | None:
        return self.by_booking.get(booking_id)

    def add_order(
        self, order_id: uuid.UUID, booking_id: uuid.UUID, document_key: str
    ) -> datetime | None:
        if booking_id in self.by_booking:
            return None
        self.by_booking[booking_id] = Order(
            order_id, booking_id, OrderStatus.CONFIRMED, NOW, None, document_key, None
        )
        return NOW

    def add_tickets(self, order_id: uuid.UUID, tickets: Sequence[NewTicket]) -> None:
        for booking_id, order in self.by_booking.items():
            if order.id == order_id:
                made = tuple(Ticket(t.id, t.seq, t.code, TicketStatus.VALID) for t in tickets)
                self.by_booking[booking_id] = replace(order, tickets=made)

    def confirm_booking(self, booking_id: uuid.UUID) -> None:
        b = self.bookings[booking_id]
        if b.status is BookingStatus.PENDING:
            self.bookings[booking_id] = replace(b, status=BookingStatus.CONFIRMED)

    def cancel_order(self, order_id: uuid.UUID) -> None:
        for booking_id, o in self.by_booking.items():
            if o.id == order_id:
                tickets = tuple(replace(t, status=TicketStatus.CANCELLED) for t in o.tickets)
                self.by_booking[booking_id] = replace(
                    o, status=OrderStatus.CANCELLED, cancelled_at=NOW, tickets=tickets
                )

    # DocumentRepository
    def claim_pending(
        self, order_id: uuid.UUID | None = None, *, due_only: bool = True
    ) -> DocumentSource | None:
        for order in self.by_booking.values():
            if order.id not in self.stored and order_id in (None, order.id):
                b = self.bookings[order.booking_id]
                return DocumentSource(order, b.customer_id, b.event_id, "Gig", NOW, "H", "A", "C")
        return None

    def mark_stored(self, order_id: uuid.UUID, key: str) -> None:
        self.stored.add(order_id)
        self.keys[order_id] = key

    def mark_failed(self, order_id: uuid.UUID, error: str) -> None:
        self.failures[order_id] = self.failures.get(order_id, 0) + 1

    def pending_count(self) -> int:
        return len(self.by_booking) - len(self.stored)


class FakeUow:
    def __init__(self, repo: FakeOrders) -> None:
        self.orders = repo
        self.documents = repo

    def commit(self) -> None:
        return None


class Store:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.objects: dict[str, tuple[bytes, str]] = {}

    def put(self, key: str, body: bytes, content_type: str) -> None:
        if self.fail:
            raise DocumentStoreError("connection refused")
        self.objects[key] = (body, content_type)

    def link(self, key: str, seconds: int) -> str:
        return f"https://s3.test/{key}?expires={seconds}"


class Renderer:
    """Stands in for the PDF renderer (tests/unit/test_ticket_pdf.py covers the real one)."""

    content_type = "application/x-test"

    def render(self, source: DocumentSource) -> bytes:
        return ",".join(t.code for t in source.order.tickets).encode()


@pytest.fixture
def repo() -> FakeOrders:
    return FakeOrders()


def factory(repo: FakeOrders) -> orders.OrderUnitOfWorkFactory:
    @contextmanager
    def make() -> Iterator[FakeUow]:
        yield FakeUow(repo)

    return make


def booking(
    repo: FakeOrders, quantity: int = 2, status: BookingStatus = BookingStatus.PENDING
) -> Booking:
    b = Booking(
        uuid.uuid4(),
        uuid.uuid4(),
        uuid.uuid4(),
        quantity,
        Money(Decimal("10.00"), "GBP"),
        status,
        NOW,
        NOW if status is BookingStatus.CANCELLED else None,
    )
    repo.bookings[b.id] = b
    return b


def event(b: Booking, type_: str = CREATED_TYPE, event_id: str | None = None) -> BookingEvent:
    return BookingEvent(
        "/src", event_id or str(b.id), type_, NOW, b.id, b.event_id, b.customer_id, b.quantity
    )


def test_created_event_issues_one_verifiable_ticket_per_seat_and_confirms(repo: FakeOrders) -> None:
    b = booking(repo, 3)

    result = orders.handle_booking_event(factory(repo), KEY, event(b))

    order = repo.by_booking[b.id]
    assert (result.outcome, result.tickets_issued, result.redelivery) == (
        Outcome.CONFIRMED,
        3,
        False,
    )
    assert [t.seq for t in order.tickets] == [1, 2, 3]
    signed = [KEYS.verify(t.code) for t in order.tickets]
    assert [(s.ticket_id, s.event_id) for s in signed] == [
        (t.id, b.event_id) for t in order.tickets
    ]
    assert repo.bookings[b.id].status is BookingStatus.CONFIRMED


def test_same_event_again_is_a_redelivery_that_changes_nothing(repo: FakeOrders) -> None:
    b = booking(repo)
    first = orders.handle_booking_event(factory(repo), KEY, event(b))
    order = repo.by_booking[b.id]

    again = orders.handle_booking_event(factory(repo), KEY, event(b))

    assert again.redelivery
    assert again.order_id == first.order_id
    assert repo.by_booking[b.id] == order


def test_another_created_event_for_the_same_booking_does_not_make_a_second_order(
    repo: FakeOrders,
) -> None:
    b = booking(repo)
    orders.handle_booking_event(factory(repo), KEY, event(b))

    other = orders.handle_booking_event(factory(repo), KEY, event(b, event_id="another-id"))

    assert (other.outcome, other.redelivery) == (Outcome.ALREADY_CONFIRMED, True)
    assert len(repo.by_booking) == 1


def test_booking_cancelled_before_confirmation_gets_no_order(repo: FakeOrders) -> None:
    b = booking(repo, status=BookingStatus.CANCELLED)

    result = orders.handle_booking_event(factory(repo), KEY, event(b))

    assert result.outcome is Outcome.SKIPPED_BOOKING_CANCELLED
    assert repo.by_booking == {}
    assert repo.events[("/src", str(b.id))] is Outcome.SKIPPED_BOOKING_CANCELLED


def test_cancellation_after_confirmation_cancels_order_and_tickets_once(repo: FakeOrders) -> None:
    b = booking(repo)
    orders.handle_booking_event(factory(repo), KEY, event(b))
    repo.bookings[b.id] = replace(b, status=BookingStatus.CANCELLED, cancelled_at=NOW)
    cancel = event(b, CANCELLED_TYPE, "cancel-1")

    first = orders.handle_booking_event(factory(repo), KEY, cancel)
    again = orders.handle_booking_event(factory(repo), KEY, cancel)

    assert first.outcome is Outcome.ORDER_CANCELLED
    assert again.redelivery
    assert {t.status for t in repo.by_booking[b.id].tickets} == {TicketStatus.CANCELLED}


def test_unknown_booking_and_contradicting_data_are_refused(repo: FakeOrders) -> None:
    ghost = Booking(
        uuid.uuid4(),
        uuid.uuid4(),
        uuid.uuid4(),
        1,
        Money(Decimal(1), "GBP"),
        BookingStatus.PENDING,
        NOW,
    )
    with pytest.raises(UnknownBooking):
        orders.handle_booking_event(factory(repo), KEY, event(ghost))
    b = booking(repo, 2)
    with pytest.raises(BookingEventInvalid):
        orders.handle_booking_event(factory(repo), KEY, replace(event(b), quantity=3))
    assert repo.by_booking == {}


def test_failed_document_upload_is_recorded_and_a_later_attempt_stores_it(repo: FakeOrders) -> None:
    b = booking(repo)
    result = orders.handle_booking_event(factory(repo), KEY, event(b))
    assert result.order_id is not None
    uow = factory(repo)

    failed = orders.store_document(uow, Store(fail=True), Renderer(), result.order_id)
    good = Store()
    stored = orders.store_document(uow, good, Renderer(), result.order_id)

    assert (failed, stored) == (False, True)
    assert repo.failures[result.order_id] == 1
    key = f"orders/{result.order_id}.pdf"
    codes = ",".join(t.code for t in repo.by_booking[b.id].tickets).encode()
    assert good.objects == {key: (codes, "application/x-test")}
    assert repo.keys[result.order_id] == key  # the order's document key follows
    assert orders.store_document(uow, good, Renderer(), result.order_id) is None  # none pending


def test_order_view_links_only_stored_documents(repo: FakeOrders) -> None:
    stored_b, pending_b = booking(repo), booking(repo)
    for b in (stored_b, pending_b):
        orders.handle_booking_event(factory(repo), KEY, event(b))
    stored_order = repo.by_booking[stored_b.id]
    repo.by_booking[stored_b.id] = replace(stored_order, document_stored_at=NOW)

    views = orders.order_views(factory(repo), Store(), [stored_b.id, pending_b.id], 300)

    assert (
        views[stored_b.id].document_url
        == f"https://s3.test/orders/{stored_order.id}.pdf?expires=300"
    )
    assert views[pending_b.id].document_url is None
