"""Helpers of the consume_order tests (no tests here): booking rows made with SQL in the real
database, and deliveries shaped exactly as KafkaSource sends a record that the outbox relay
published (the relay's own Kafka headers, `ce_x` -> `ce-x`, body = the record value)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import functions_framework
import psycopg
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from boxoffice.adapters.kafka import cloudevent_headers
from boxoffice.domain.bookings import CANCELLED_TYPE, CREATED_TYPE, Booking, BookingStatus
from boxoffice.domain.money import Money
from boxoffice.services.ports import PendingEvent

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "events"
SOURCE = "/boxoffice/bookings"
VENUE = uuid.UUID("7e0e0000-0000-4000-8000-000000000002")  # demo data
PRICE = Money(Decimal("42.00"), "GBP")

Db = psycopg.Connection[Any]


def consume_order_client() -> FlaskClient:
    source = ROOT / "functions" / "consume_order" / "main.py"
    app = functions_framework.create_app(target="handler", source=str(source))  # type: ignore[no-untyped-call]
    client: FlaskClient = app.test_client()
    return client


def golden(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text("utf-8"))
    return data


def ensure_event(db: Db, event_id: uuid.UUID) -> None:
    """A future event with plenty of seats (bookings made here do not take inventory)."""
    with db.transaction():
        db.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity)
               VALUES (%s, %s, 'Order processing test night', %s, 42.00, 'GBP', 100000)
               ON CONFLICT (id) DO NOTHING""",
            (event_id, VENUE, datetime.now(UTC) + timedelta(days=365)),
        )
        db.execute(
            """INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, 0, 100000)
               ON CONFLICT DO NOTHING""",
            (event_id,),
        )


def ensure_customer(db: Db, customer_id: uuid.UUID) -> None:
    db.execute(
        """INSERT INTO customer (id, subject, name, email, address_line1, postal_code, city,
                                 country)
           VALUES (%s, %s, 'Order Tester', 'orders@example.test', '1 Test Row', 'BS1 1AA',
                   'Bristol', 'GB')
           ON CONFLICT (id) DO NOTHING""",
        (customer_id, f"consume-order-test-{customer_id}"),
    )


def reset_booking(db: Db, booking_id: uuid.UUID) -> None:
    """Forget a fixed-id booking of an earlier run, with its order, tickets and consumed events."""
    with db.transaction():
        db.execute(
            "DELETE FROM check_in_conflict WHERE ticket_id IN (SELECT t.id FROM ticket t"
            " JOIN orders o ON o.id = t.order_id WHERE o.booking_id = %s)",
            (booking_id,),
        )
        db.execute("DELETE FROM check_in WHERE booking_id = %s", (booking_id,))
        db.execute(
            "DELETE FROM ticket WHERE order_id IN (SELECT id FROM orders WHERE booking_id = %s)",
            (booking_id,),
        )
        db.execute("DELETE FROM orders WHERE booking_id = %s", (booking_id,))
        db.execute("DELETE FROM order_event WHERE booking_id = %s", (booking_id,))
        db.execute("DELETE FROM booking WHERE id = %s", (booking_id,))


def insert_booking(
    db: Db,
    event_id: uuid.UUID,
    customer_id: uuid.UUID,
    quantity: int,
    booking_id: uuid.UUID | None = None,
) -> Booking:
    """A PENDING booking row, as create_booking's transaction leaves it."""
    booking_id = booking_id or uuid.uuid4()
    row = db.execute(
        """INSERT INTO booking (id, customer_id, event_id, quantity, unit_price, currency)
           VALUES (%s, %s, %s, %s, %s, %s) RETURNING created_at""",
        (booking_id, customer_id, event_id, quantity, PRICE.amount, PRICE.currency),
    ).fetchone()
    assert row is not None
    return Booking(
        booking_id, customer_id, event_id, quantity, PRICE, BookingStatus.PENDING, row[0]
    )


def cancel_in_db(db: Db, booking: Booking) -> Booking:
    """What DELETE /bookings/{id} leaves behind (seats are not modelled here)."""
    row = db.execute(
        """UPDATE booking SET status = 'CANCELLED', cancelled_at = now(), updated_at = now()
            WHERE id = %s RETURNING cancelled_at""",
        (booking.id,),
    ).fetchone()
    assert row is not None
    return Booking(
        booking.id,
        booking.customer_id,
        booking.event_id,
        booking.quantity,
        booking.unit_price,
        BookingStatus.CANCELLED,
        booking.created_at,
        row[0],
    )


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    label: str = ""


def booking_event_data(booking: Booking) -> dict[str, Any]:
    """The CloudEvent data of a booking event, as the outbox writes it (`booking_event_data` in
    db/migrations/R__booking.sql; test_booking_rules.py checks that one)."""
    return {
        "bookingId": str(booking.id),
        "eventId": str(booking.event_id),
        "customerId": str(booking.customer_id),
        "quantity": booking.quantity,
        "unitPrice": booking.unit_price.to_json(),
        "total": booking.total.to_json(),
        "status": booking.status.value,
    }


def _kafkasource_passthrough(
    booking: Booking, event_type: str, event_id: uuid.UUID, time: datetime
) -> Delivery:
    pending = PendingEvent(
        id=event_id,
        topic="booking",
        record_key=str(booking.id),
        event_type=event_type,
        event_source=SOURCE,
        event_time=time,
        payload=json.dumps(booking_event_data(booking)).encode(),
        created_at=time,
    )
    headers = {"Prefer": "reply", "Kn-Namespace": "boxoffice"}
    for name, value in cloudevent_headers(pending):
        http_name = "Content-Type" if name == "content-type" else name.replace("_", "-", 1)
        headers[http_name] = value.decode()
    return Delivery(headers, pending.payload, event_type.rsplit(".", 2)[-2])


def created_delivery(booking: Booking) -> Delivery:
    """booking.created: its CloudEvent id is the booking id."""
    return _kafkasource_passthrough(booking, CREATED_TYPE, booking.id, booking.created_at)


def cancelled_delivery(booking: Booking, event_id: uuid.UUID) -> Delivery:
    assert booking.cancelled_at is not None, "the booking is not cancelled"
    return _kafkasource_passthrough(booking, CANCELLED_TYPE, event_id, booking.cancelled_at)


def deliver(client: FlaskClient, d: Delivery) -> TestResponse:
    return client.post("/", headers=d.headers, data=d.body)


def order_rows(db: Db, booking_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """(order id, status, document_stored_at) of the booking's orders."""
    return db.execute(
        "SELECT id, status, document_stored_at FROM orders WHERE booking_id = %s", (booking_id,)
    ).fetchall()


def ticket_rows(db: Db, booking_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """(ticket id, seq, code, status) of the booking's tickets, by seq."""
    return db.execute(
        """SELECT t.id, t.seq, t.code, t.status FROM ticket t JOIN orders o ON o.id = t.order_id
            WHERE o.booking_id = %s ORDER BY t.seq""",
        (booking_id,),
    ).fetchall()


def booking_status(db: Db, booking_id: uuid.UUID) -> str:
    row = db.execute("SELECT status FROM booking WHERE id = %s", (booking_id,)).fetchone()
    assert row is not None
    return str(row[0])
