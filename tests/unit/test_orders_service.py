"""Order processing around in-memory fakes of the ports: what Python does for an event (sign the
tickets, hand them over), and ticket documents. The rules of applying an event run in PostgreSQL
and are tested there: tests/integration/test_order_rules.py."""

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
from boxoffice.services import orders
from boxoffice.services.ports import DocumentStoreError, DocumentUnitOfWorkFactory, Processed

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

    applied: list[tuple[BookingEvent, uuid.UUID, str, list[NewTicket]]] = field(
        default_factory=list
    )

    # OrderStore: records what it is given; confirms new bookings (the rules are SQL's)
    def apply(
        self,
        event: BookingEvent,
        order_id: uuid.UUID,
        document_key: str,
        tickets: Sequence[NewTicket],
    ) -> Processed:
        self.applied.append((event, order_id, document_key, list(tickets)))
        made = tuple(Ticket(t.id, t.seq, t.code, TicketStatus.VALID) for t in tickets)
        self.by_booking[event.booking_id] = Order(
            order_id, event.booking_id, OrderStatus.CONFIRMED, NOW, None, document_key, None, made
        )
        return Processed(Outcome.CONFIRMED, order_id, len(tickets), redelivery=False)

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


def factory(repo: FakeOrders) -> DocumentUnitOfWorkFactory:
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


def test_a_created_event_hands_the_store_one_signed_ticket_per_seat(repo: FakeOrders) -> None:
    b = booking(repo, 3)

    result = orders.handle_booking_event(repo, KEY, event(b))

    ((ev, order_id, key, tickets),) = repo.applied
    assert ev == event(b)
    assert result.order_id == order_id
    assert key == f"orders/{order_id}.pdf"
    assert [t.seq for t in tickets] == [1, 2, 3]
    assert len({t.id for t in tickets}) == 3
    signed = [KEYS.verify(t.code) for t in tickets]
    assert [(s.ticket_id, s.event_id) for s in signed] == [(t.id, b.event_id) for t in tickets]


def test_a_cancelled_event_hands_the_store_no_tickets(repo: FakeOrders) -> None:
    b = booking(repo, 2, status=BookingStatus.CANCELLED)
    orders.handle_booking_event(repo, KEY, event(b, CANCELLED_TYPE, "cancel-1"))
    ((_, _, _, tickets),) = repo.applied
    assert tickets == []


def test_every_delivery_offers_a_fresh_order_id(repo: FakeOrders) -> None:
    b = booking(repo)
    orders.handle_booking_event(repo, KEY, event(b))
    orders.handle_booking_event(repo, KEY, event(b))
    assert repo.applied[0][1] != repo.applied[1][1]


def test_failed_document_upload_is_recorded_and_a_later_attempt_stores_it(repo: FakeOrders) -> None:
    b = booking(repo)
    result = orders.handle_booking_event(repo, KEY, event(b))
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


def test_only_stored_documents_are_linked(repo: FakeOrders) -> None:
    stored_b, pending_b = booking(repo), booking(repo)
    for b in (stored_b, pending_b):
        orders.handle_booking_event(repo, KEY, event(b))
    stored_order = replace(repo.by_booking[stored_b.id], document_stored_at=NOW)
    pending_order = repo.by_booking[pending_b.id]

    assert (
        orders.document_link(Store(), stored_order, 300)
        == f"https://s3.test/orders/{stored_order.id}.pdf?expires=300"
    )
    assert orders.document_link(Store(), pending_order, 300) is None
    assert orders.document_link(Store(), None, 300) is None
