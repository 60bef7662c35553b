"""The order-processing rules where they live: `apply_booking_event` of
db/migrations/R__orders.sql, through the order service and the real
PostgreSQL order store, on a database of this module's own. What needs the HTTP entrypoint,
Kafka or a crash is in test_consume_order*.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from support_databases import fresh_database

from boxoffice.adapters.postgres import Database
from boxoffice.adapters.postgres_orders import PostgresOrderStore
from boxoffice.domain.bookings import CANCELLED_TYPE, CREATED_TYPE
from boxoffice.domain.orders import BookingEvent, Outcome
from boxoffice.domain.tickets import TicketKeys, TicketSigner
from boxoffice.errors import BookingEventInvalid, UnknownBooking
from boxoffice.services import orders

pytestmark = pytest.mark.integration

KEY = TicketSigner.generate()
KEYS = TicketKeys([KEY.public_key])
NOW = datetime(2030, 1, 1, tzinfo=UTC)
VENUE = uuid.UUID("7e0e0000-0000-4000-8000-0000000000cc")
EVENT = uuid.UUID("e0e00000-0000-4000-8000-0000000000cc")
CUSTOMER = uuid.UUID("c0000000-0000-4000-8000-0000000000cc")

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with fresh_database("bx_order_rules_test") as url:
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Order Hall', '1 Road', 'Testville', 100000)""",
                (VENUE,),
            )
            conn.execute(
                """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency,
                                      capacity)
                   VALUES (%s, %s, 'Order night', now() + interval '30 days', 10, 'GBP', 100000)""",
                (EVENT, VENUE),
            )
            conn.execute(
                "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, 0, 100000)",
                (EVENT,),
            )
            conn.execute(
                """INSERT INTO customer (id, subject, name, email, address_line1, postal_code,
                                         city, country)
                   VALUES (%s, 'sub-orders', 'N', 'n@x.test', '1 St', 'AB1', 'Town', 'GB')""",
                (CUSTOMER,),
            )
        yield url


@pytest.fixture(scope="module")
def store(db_url: str) -> Iterator[PostgresOrderStore]:
    database = Database(db_url, min_size=1, max_size=2)
    yield PostgresOrderStore(database)
    database.close()


@pytest.fixture
def db(db_url: str) -> Iterator[Conn]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def booking(db: Conn, quantity: int = 2, status: str = "PENDING") -> uuid.UUID:
    """A booking row (its seats are not this module's business)."""
    booking_id = uuid.uuid4()
    db.execute(
        """INSERT INTO booking (id, customer_id, event_id, quantity, unit_price, currency, status,
                                cancelled_at)
           VALUES (%s, %s, %s, %s, 10, 'GBP', %s,
                   CASE WHEN %s = 'CANCELLED' THEN now() END)""",
        (booking_id, CUSTOMER, EVENT, quantity, status, status),
    )
    return booking_id


def cancel(db: Conn, booking_id: uuid.UUID) -> None:
    db.execute(
        "UPDATE booking SET status = 'CANCELLED', cancelled_at = now() WHERE id = %s",
        (booking_id,),
    )


def event(
    booking_id: uuid.UUID, quantity: int = 2, type_: str = CREATED_TYPE, event_id: str = ""
) -> BookingEvent:
    return BookingEvent(
        "/src", event_id or str(booking_id), type_, NOW, booking_id, EVENT, CUSTOMER, quantity
    )


def order_of(db: Conn, booking_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT id, status, document_key FROM orders WHERE booking_id = %s", (booking_id,)
    ).fetchall()


def tickets_of(db: Conn, booking_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return db.execute(
        """SELECT t.seq, t.code, t.status FROM ticket t JOIN orders o ON o.id = t.order_id
            WHERE o.booking_id = %s ORDER BY t.seq""",
        (booking_id,),
    ).fetchall()


def status_of(db: Conn, booking_id: uuid.UUID) -> str:
    row = db.execute("SELECT status FROM booking WHERE id = %s", (booking_id,)).fetchone()
    assert row is not None
    return str(row[0])


def outcome_recorded(db: Conn, event_id: str) -> str | None:
    row = db.execute(
        "SELECT outcome FROM order_event WHERE event_source = '/src' AND event_id = %s",
        (event_id,),
    ).fetchone()
    return None if row is None else str(row[0])


def test_created_event_issues_one_verifiable_ticket_per_seat_and_confirms(
    store: PostgresOrderStore, db: Conn
) -> None:
    b = booking(db, 3)

    result = orders.handle_booking_event(store, KEY, event(b, 3))

    ((order_id, status, document_key),) = order_of(db, b)
    assert (result.outcome, result.order_id, result.tickets_issued, result.redelivery) == (
        Outcome.CONFIRMED,
        order_id,
        3,
        False,
    )
    assert (status, document_key) == ("CONFIRMED", f"orders/{order_id}.pdf")
    tickets = tickets_of(db, b)
    assert [t[0] for t in tickets] == [1, 2, 3]
    assert {KEYS.verify(code).event_id for _, code, _ in tickets} == {EVENT}
    assert {t[2] for t in tickets} == {"VALID"}
    assert status_of(db, b) == "CONFIRMED"
    assert outcome_recorded(db, str(b)) == "CONFIRMED"


def test_same_event_again_is_a_redelivery_that_changes_nothing(
    store: PostgresOrderStore, db: Conn
) -> None:
    b = booking(db)
    first = orders.handle_booking_event(store, KEY, event(b))
    before = (order_of(db, b), tickets_of(db, b))

    again = orders.handle_booking_event(store, KEY, event(b))

    assert again.redelivery
    assert (again.outcome, again.order_id, again.tickets_issued) == (
        Outcome.CONFIRMED,
        first.order_id,
        0,
    )
    assert (order_of(db, b), tickets_of(db, b)) == before


def test_another_created_event_for_the_same_booking_does_not_make_a_second_order(
    store: PostgresOrderStore, db: Conn
) -> None:
    b = booking(db)
    first = orders.handle_booking_event(store, KEY, event(b))

    other = orders.handle_booking_event(store, KEY, event(b, event_id=f"another-{b}"))

    assert (other.outcome, other.redelivery, other.order_id) == (
        Outcome.ALREADY_CONFIRMED,
        True,
        first.order_id,
    )
    assert len(order_of(db, b)) == 1
    assert outcome_recorded(db, f"another-{b}") == "ALREADY_CONFIRMED"


def test_booking_cancelled_before_confirmation_gets_no_order(
    store: PostgresOrderStore, db: Conn
) -> None:
    b = booking(db, status="CANCELLED")

    result = orders.handle_booking_event(store, KEY, event(b))

    assert (result.outcome, result.order_id) == (Outcome.SKIPPED_BOOKING_CANCELLED, None)
    assert order_of(db, b) == []
    assert outcome_recorded(db, str(b)) == "SKIPPED_BOOKING_CANCELLED"


def test_cancellation_after_confirmation_cancels_order_and_tickets_once(
    store: PostgresOrderStore, db: Conn
) -> None:
    b = booking(db)
    orders.handle_booking_event(store, KEY, event(b))
    cancel(db, b)
    cancelled = event(b, type_=CANCELLED_TYPE, event_id=f"cancel-{b}")

    first = orders.handle_booking_event(store, KEY, cancelled)
    again = orders.handle_booking_event(store, KEY, cancelled)

    assert first.outcome is Outcome.ORDER_CANCELLED
    assert not first.redelivery
    assert again.redelivery
    assert order_of(db, b)[0][1] == "CANCELLED"
    assert {t[2] for t in tickets_of(db, b)} == {"CANCELLED"}
    # Another cancellation event of the same booking changes nothing either.
    other = orders.handle_booking_event(store, KEY, replace(cancelled, id=f"cancel-2-{b}"))
    assert (other.outcome, other.redelivery) == (Outcome.ALREADY_CANCELLED, True)


def test_a_cancellation_with_no_order_yet_is_recorded_and_issues_nothing_later(
    store: PostgresOrderStore, db: Conn
) -> None:
    b = booking(db)
    cancel(db, b)
    result = orders.handle_booking_event(
        store, KEY, event(b, type_=CANCELLED_TYPE, event_id=f"c-{b}")
    )
    late = orders.handle_booking_event(store, KEY, event(b))  # the created event arrives last

    assert result.outcome is Outcome.NO_ORDER_TO_CANCEL
    assert late.outcome is Outcome.SKIPPED_BOOKING_CANCELLED
    assert order_of(db, b) == []


def test_unknown_booking_and_contradicting_data_are_refused_with_nothing_written(
    store: PostgresOrderStore, db: Conn
) -> None:
    ghost = uuid.uuid4()
    with pytest.raises(UnknownBooking):
        orders.handle_booking_event(store, KEY, event(ghost))
    b = booking(db, 2)
    with pytest.raises(BookingEventInvalid) as wrong:
        orders.handle_booking_event(store, KEY, replace(event(b), quantity=3, customer_id=EVENT))
    assert [e.field for e in wrong.value.errors] == ["data.customerId", "data.quantity"]
    with pytest.raises(BookingEventInvalid) as not_cancelled:
        orders.handle_booking_event(store, KEY, event(b, type_=CANCELLED_TYPE, event_id="c-x"))
    assert [e.field for e in not_cancelled.value.errors] == ["type"]
    assert order_of(db, b) == []
    assert outcome_recorded(db, str(b)) is None
    assert outcome_recorded(db, "c-x") is None
    assert status_of(db, b) == "PENDING"
