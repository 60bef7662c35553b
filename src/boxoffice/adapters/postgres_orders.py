"""PostgreSQL repositories of order processing (consume_order): orders, tickets, the log of
consumed booking events, and ticket documents waiting for S3 (docs/adr/0007-order-processing.md).

Lock order: the booking row first (`FOR UPDATE`, as create_booking's cancellation does), then
its order and tickets. One order per booking is the schema's `UNIQUE (booking_id)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from boxoffice.adapters.postgres import Database
from boxoffice.adapters.postgres_bookings import _BOOKING_COLUMNS, _booking
from boxoffice.domain.bookings import Booking
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

Conn = psycopg.Connection[TupleRow]

# Ticket documents: the next try after n failed attempts waits 2^n seconds, at most this long.
MAX_DOCUMENT_BACKOFF_SECONDS = 300

_ORDER_COLUMNS = (
    "o.id, o.booking_id, o.status, o.confirmed_at, o.cancelled_at, o.document_key, "
    "o.document_stored_at"
)


def _tickets(conn: Conn, order_id: uuid.UUID) -> tuple[Ticket, ...]:
    rows = conn.execute(
        "SELECT id, seq, code, status FROM ticket WHERE order_id = %s ORDER BY seq", (order_id,)
    ).fetchall()
    return tuple(Ticket(r[0], int(r[1]), r[2], TicketStatus(r[3])) for r in rows)


def _order(conn: Conn, row: tuple[Any, ...]) -> Order:
    return Order(
        id=row[0],
        booking_id=row[1],
        status=OrderStatus(row[2]),
        confirmed_at=row[3],
        cancelled_at=row[4],
        document_key=row[5],
        document_stored_at=row[6],
        tickets=_tickets(conn, row[0]),
    )


def orders_for_bookings(conn: Conn, booking_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Order]:
    """The orders (with tickets) of these bookings, by booking id (read path of create_booking)."""
    if not booking_ids:
        return {}
    rows = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.booking_id = ANY(%s)",  # noqa: S608
        (list(booking_ids),),
    ).fetchall()
    return {r[1]: _order(conn, r) for r in rows}


class PostgresOrders:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def orders_for_bookings(self, booking_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Order]:
        return orders_for_bookings(self._conn, booking_ids)

    def lock_booking(self, booking_id: uuid.UUID) -> Booking | None:
        row = self._conn.execute(
            f"SELECT {_BOOKING_COLUMNS} FROM booking WHERE id = %s FOR UPDATE",  # noqa: S608
            (booking_id,),
        ).fetchone()
        return None if row is None else _booking(row)

    def processed_outcome(self, source: str, event_id: str) -> Outcome | None:
        row = self._conn.execute(
            "SELECT outcome FROM order_event WHERE event_source = %s AND event_id = %s",
            (source, event_id),
        ).fetchone()
        return None if row is None else Outcome(row[0])

    def record_event(self, event: BookingEvent, outcome: Outcome) -> None:
        self._conn.execute(
            """INSERT INTO order_event (event_source, event_id, event_type, booking_id, outcome,
                                        event_time)
               VALUES (%s, %s, %s, %s, %s, %s)
               ON CONFLICT (event_source, event_id) DO NOTHING""",
            (event.source, event.id, event.type, event.booking_id, outcome.value, event.time),
        )

    def order_for_booking(self, booking_id: uuid.UUID, *, for_update: bool = False) -> Order | None:
        lock = " FOR UPDATE" if for_update else ""
        row = self._conn.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders o WHERE o.booking_id = %s{lock}",  # noqa: S608
            (booking_id,),
        ).fetchone()
        return None if row is None else _order(self._conn, row)

    def add_order(
        self, order_id: uuid.UUID, booking_id: uuid.UUID, document_key: str
    ) -> datetime | None:
        row = self._conn.execute(
            """INSERT INTO orders (id, booking_id, document_key) VALUES (%s, %s, %s)
               ON CONFLICT (booking_id) DO NOTHING
               RETURNING confirmed_at""",
            (order_id, booking_id, document_key),
        ).fetchone()
        return None if row is None else row[0]

    def add_tickets(self, order_id: uuid.UUID, tickets: Sequence[NewTicket]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ticket (id, order_id, seq, code) VALUES (%s, %s, %s, %s)",
                [(t.id, order_id, t.seq, t.code) for t in tickets],
            )

    def confirm_booking(self, booking_id: uuid.UUID) -> None:
        self._conn.execute(
            """UPDATE booking SET status = 'CONFIRMED', updated_at = now()
                WHERE id = %s AND status = 'PENDING'""",
            (booking_id,),
        )

    def cancel_order(self, order_id: uuid.UUID) -> None:
        self._conn.execute(
            """UPDATE orders SET status = 'CANCELLED', cancelled_at = now(),
                      document_stored_at = NULL, document_next_try_at = now()
                WHERE id = %s AND status <> 'CANCELLED'""",
            (order_id,),
        )
        self._conn.execute(
            """UPDATE ticket SET status = 'CANCELLED', cancelled_at = now()
                WHERE order_id = %s AND status <> 'CANCELLED'""",
            (order_id,),
        )


class PostgresDocuments:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def claim_pending(
        self, order_id: uuid.UUID | None = None, *, due_only: bool = True
    ) -> DocumentSource | None:
        row = self._conn.execute(
            f"""SELECT {_ORDER_COLUMNS}
                  FROM orders o
                 WHERE o.document_stored_at IS NULL
                   AND (%(order)s::uuid IS NULL OR o.id = %(order)s::uuid)
                   AND (NOT %(due)s OR o.document_next_try_at <= now())
                 ORDER BY o.document_next_try_at
                 LIMIT 1
                   FOR UPDATE OF o SKIP LOCKED""",  # noqa: S608 - constant column list
            {"order": order_id, "due": due_only},
        ).fetchone()
        if row is None:
            return None
        order = _order(self._conn, row)
        info = self._conn.execute(
            """SELECT b.customer_id, e.id, e.name, e.starts_at, v.name, v.address, v.city,
                      c.name, b.quantity
                 FROM booking b JOIN event e ON e.id = b.event_id JOIN venue v ON v.id = e.venue_id
                 JOIN customer c ON c.id = b.customer_id
                WHERE b.id = %s""",
            (order.booking_id,),
        ).fetchone()
        assert info is not None  # orders.booking_id and booking.event_id are foreign keys
        return DocumentSource(order, *info)

    def mark_stored(self, order_id: uuid.UUID, key: str) -> None:
        self._conn.execute(
            """UPDATE orders SET document_stored_at = now(), document_last_error = NULL,
                      document_key = %s
                WHERE id = %s""",
            (key, order_id),
        )

    def mark_failed(self, order_id: uuid.UUID, error: str) -> None:
        self._conn.execute(
            """UPDATE orders
                  SET document_attempts = document_attempts + 1,
                      document_last_error = left(%s, 1000),
                      document_next_try_at = now() + make_interval(
                          secs => least(power(2, least(document_attempts, 20)), %s))
                WHERE id = %s""",
            (error, MAX_DOCUMENT_BACKOFF_SECONDS, order_id),
        )

    def pending_count(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM orders WHERE document_stored_at IS NULL"
        ).fetchone()
        return int(row[0]) if row else 0


class PostgresOrderUnitOfWork:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.committed = False
        self.orders = PostgresOrders(conn)
        self.documents = PostgresDocuments(conn)

    def commit(self) -> None:
        self.conn.commit()
        self.committed = True


class OrderUnitOfWorks:
    """Factory of order-processing transactions on the process's `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @contextmanager
    def __call__(self) -> Iterator[PostgresOrderUnitOfWork]:
        with self._database.connection() as conn:
            uow = PostgresOrderUnitOfWork(conn)
            try:
                yield uow
            finally:
                if not uow.committed:
                    conn.rollback()
