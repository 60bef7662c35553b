"""PostgreSQL side of order processing (consume_order): applying a booking event (orders,
tickets, the log of consumed events) in one round trip, ticket documents waiting for S3
(docs/adr/0007-order-processing.md), and the outbox of ticket emails (docs/adr/0019).

`apply_booking_event` (db/migrations/R__orders.sql) takes the
booking row first (`FOR UPDATE`, as create_booking's cancellation does), then its order. One
order per booking is the schema's `UNIQUE (booking_id)`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import TupleRow

from boxoffice import errors
from boxoffice.adapters.postgres import Database
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
from boxoffice.services.ports import PendingTicketEmail, Processed

Conn = psycopg.Connection[TupleRow]

# Ticket documents: the next try after n failed attempts waits 2^n seconds, at most this long.
MAX_DOCUMENT_BACKOFF_SECONDS = 300
# Ticket emails: likewise, after n failed attempts 2^n seconds, at most this long.
MAX_EMAIL_BACKOFF_SECONDS = 900

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


def _document_source(conn: Conn, row: tuple[Any, ...]) -> tuple[DocumentSource, str]:
    """The order of `row` (`_ORDER_COLUMNS`) with what its ticket document shows, and its
    customer's email address."""
    order = _order(conn, row)
    info = conn.execute(
        """SELECT b.customer_id, e.id, e.name, e.starts_at, v.name, v.address, v.city,
                  c.name, b.quantity, c.email
             FROM booking b JOIN event e ON e.id = b.event_id JOIN venue v ON v.id = e.venue_id
             JOIN customer c ON c.id = b.customer_id
            WHERE b.id = %s""",
        (order.booking_id,),
    ).fetchone()
    assert info is not None  # orders.booking_id and booking.event_id are foreign keys
    return DocumentSource(order, *info[:-1]), info[-1]


_APPLY = """
SELECT r.outcome, r.order_id, r.redelivery, r.tickets_issued
  FROM apply_booking_event(%(source)s, %(id)s, %(type)s, %(time)s, %(booking)s, %(event)s,
                           %(customer)s, %(quantity)s, %(order)s, %(document_key)s,
                           %(ticket_ids)s::uuid[], %(ticket_codes)s::text[]) r
"""


def refusal(exc: psycopg.errors.RaiseException) -> errors.BoxofficeError:
    """The `BoxofficeError` an `apply_booking_event` refusal stands for."""
    slug, detail = exc.diag.message_primary, exc.diag.message_detail or ""
    if slug == errors.UnknownBooking.slug:
        return errors.UnknownBooking(detail)
    if slug == errors.BookingEventInvalid.slug:
        fields = [errors.FieldError(f["field"], f["message"]) for f in json.loads(detail)]
        return errors.BookingEventInvalid(fields)
    raise exc  # an unexpected RAISE is a bug, not a refusal


class PostgresOrderStore:
    """`OrderStore`: each booking event is one call of `apply_booking_event` (V4)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def apply(
        self,
        event: BookingEvent,
        order_id: uuid.UUID,
        document_key: str,
        tickets: Sequence[NewTicket],
    ) -> Processed:
        params = {
            "source": event.source,
            "id": event.id,
            "type": event.type,
            "time": event.time,
            "booking": event.booking_id,
            "event": event.event_id,
            "customer": event.customer_id,
            "quantity": event.quantity,
            "order": order_id,
            "document_key": document_key,
            "ticket_ids": [t.id for t in tickets],
            "ticket_codes": [t.code for t in tickets],
        }
        with self._db.connection() as conn:
            try:
                row = conn.execute(_APPLY, params).fetchone()
            except psycopg.errors.RaiseException as exc:
                raise refusal(exc) from None
        assert row is not None  # apply_booking_event returns one row or raises
        return Processed(Outcome(row[0]), row[1], int(row[3]), bool(row[2]))


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
        return _document_source(self._conn, row)[0]

    def mark_stored(self, order_id: uuid.UUID, key: str) -> None:
        """Also queues a confirmed order's ticket email (one row per order: a document stored
        again, e.g. after a cancellation, queues nothing more; docs/adr/0019)."""
        self._conn.execute(
            """WITH o AS (
                   UPDATE orders SET document_stored_at = now(), document_last_error = NULL,
                          document_key = %s
                    WHERE id = %s
                RETURNING id, status)
               INSERT INTO ticket_email (order_id)
               SELECT id FROM o WHERE status = 'CONFIRMED'
               ON CONFLICT (order_id) DO NOTHING""",
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


class PostgresTicketEmails:
    """The outbox of ticket emails (`ticket_email`, V11; docs/adr/0019)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def claim_due(self, *, due_only: bool = True) -> PendingTicketEmail | None:
        row = self._conn.execute(
            f"""SELECT {_ORDER_COLUMNS}, m.attempts
                  FROM ticket_email m JOIN orders o ON o.id = m.order_id
                 WHERE m.state = 'pending'
                   AND (NOT %(due)s OR m.next_attempt_at <= now())
                 ORDER BY m.next_attempt_at
                 LIMIT 1
                   FOR UPDATE OF m SKIP LOCKED""",  # noqa: S608 - constant column list
            {"due": due_only},
        ).fetchone()
        if row is None:
            return None
        source, email = _document_source(self._conn, row[:-1])
        return PendingTicketEmail(source, email, int(row[-1]))

    def mark_sent(self, order_id: uuid.UUID, message_id: str) -> None:
        self._conn.execute(
            """UPDATE ticket_email SET state = 'sent', sent_at = now(), message_id = %s,
                      last_error = NULL
                WHERE order_id = %s""",
            (message_id, order_id),
        )

    def mark_failed(self, order_id: uuid.UUID, error: str, message_id: str) -> None:
        self._conn.execute(
            """UPDATE ticket_email
                  SET attempts = attempts + 1, last_error = left(%s, 1000), message_id = %s,
                      next_attempt_at = now() + make_interval(
                          secs => least(power(2, least(attempts, 20)), %s))
                WHERE order_id = %s""",
            (error, message_id, MAX_EMAIL_BACKOFF_SECONDS, order_id),
        )

    def mark_undeliverable(self, order_id: uuid.UUID, error: str, message_id: str) -> None:
        self._conn.execute(
            """UPDATE ticket_email
                  SET state = 'undeliverable', attempts = attempts + 1,
                      last_error = left(%s, 1000), message_id = %s
                WHERE order_id = %s""",
            (error, message_id, order_id),
        )

    def mark_withdrawn(self, order_id: uuid.UUID) -> None:
        self._conn.execute(
            "UPDATE ticket_email SET state = 'withdrawn' WHERE order_id = %s", (order_id,)
        )

    def pending_count(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM ticket_email WHERE state = 'pending'"
        ).fetchone()
        return int(row[0]) if row else 0


class PostgresOrderUnitOfWork:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.documents = PostgresDocuments(conn)
        self.emails = PostgresTicketEmails(conn)

    def commit(self) -> None:
        self.conn.commit()


class OrderUnitOfWorks:
    """Factory of ticket-document transactions on the process's `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @contextmanager
    def __call__(self) -> Iterator[PostgresOrderUnitOfWork]:
        with self._database.explicit_transaction() as conn:
            yield PostgresOrderUnitOfWork(conn)
