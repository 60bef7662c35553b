"""PostgreSQL booking store: each use case of create_booking is one statement, one round trip.

`book` and `cancel` call the PL/pgSQL functions of db/migrations/R__booking.sql (their only
definitions) on an autocommit connection, so each call is its own transaction: committed when the
function returns, rolled back entirely when it refuses. A refusal arrives as SQLSTATE P0001 with
the problem slug as its message and is raised here as the matching `BoxofficeError`; so does the end
of the wait for an Idempotency-Key still in flight (lock_not_available raised by
`claim_idempotency_key`). Reads fetch a booking with its order and tickets in one statement.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg.errors

from boxoffice import errors
from boxoffice.adapters.postgres import Database
from boxoffice.domain.bookings import Booking, BookingStatus, StoredResponse
from boxoffice.domain.money import Money
from boxoffice.domain.orders import Order, OrderStatus, Ticket, TicketStatus
from boxoffice.domain.payments import PaymentSummary
from boxoffice.services.ports import Booked, BookingView, BookTickets

# How long a request waits for an earlier in-flight request with the same Idempotency-Key
# before answering 409 idempotency-key-in-use (docs/adr/0004-idempotency.md).
IDEMPOTENCY_WAIT_MS = 100

# Refusals the booking functions raise (`refuse(slug, detail)`), by slug.
_REFUSALS: dict[str, type[errors.BoxofficeError]] = {
    cls.slug: cls
    for cls in (
        errors.NotFound,
        errors.RegistrationRequired,
        errors.EventNotOnSale,
        errors.TicketLimitExceeded,
        errors.SoldOut,
        errors.IdempotencyKeyReused,
        errors.IdempotencyKeyInUse,
        errors.BookingNotCancellable,
        errors.AdmissionRequired,
        errors.AdmissionExpired,
        errors.CategoryRequired,
        errors.RefundExceedsPayment,
        errors.Conflict,
    )
}

BOOKING_COLUMNS = (
    "id, customer_id, event_id, quantity, unit_price, currency, status, created_at, cancelled_at,"
    " category_id, hold_expires_at, expired_at"
)
_NCOLS = len(BOOKING_COLUMNS.split(","))


def _of(composite: str) -> str:
    """The booking columns of a composite `booking` value, e.g. `(r.booking).id, ...`."""
    return ", ".join(f"({composite}).{c.strip()}" for c in BOOKING_COLUMNS.split(","))


_BOOK = f"""
SELECT r.replayed, {_of("r.booking")}, r.stored_status, r.stored_headers, r.stored_body
  FROM book_tickets(%(subject)s, %(key)s, %(hash)s, %(ttl)s, %(wait)s, %(booking)s, %(event)s,
                    %(quantity)s, %(limit)s, %(start)s, %(topic)s, %(source)s,
                    %(admission)s, %(admission_event)s, %(admission_subject)s,
                    %(admission_expires)s, %(category)s, %(hold_seconds)s) r
"""  # noqa: S608 - constant column list

_CANCEL = f"""
SELECT r.changed, {_of("r.booking")}
  FROM cancel_booking(%(subject)s, %(booking)s, %(topic)s, %(source)s, %(admin)s) r
"""  # noqa: S608 - constant column list

# A booking, its order and the order's tickets (as JSON [[id, seq, code, status], ...]).
_VIEW = """
SELECT b.id, b.customer_id, b.event_id, b.quantity, b.unit_price, b.currency, b.status,
       b.created_at, b.cancelled_at, b.category_id, b.hold_expires_at, b.expired_at,
       o.id, o.status, o.confirmed_at, o.cancelled_at, o.document_key, o.document_stored_at,
       (SELECT json_agg(json_build_array(t.id, t.seq, t.code, t.status) ORDER BY t.seq)
          FROM ticket t WHERE t.order_id = o.id),
       pay.amount, pay.refunded, pay.refund_pending
  FROM booking b LEFT JOIN orders o ON o.booking_id = b.id
  LEFT JOIN LATERAL (  -- the payment that paid for it, and what of it was given back
      SELECT p.amount,
             coalesce(sum(r.amount) FILTER (WHERE r.status = 'SUCCEEDED'), 0) AS refunded,
             coalesce(sum(r.amount) FILTER (WHERE r.status = 'REQUESTED'), 0) AS refund_pending
        FROM payment p LEFT JOIN refund r ON r.payment_id = p.id
       WHERE p.booking_id = b.id AND p.applied
       GROUP BY p.id, p.amount) pay ON true
"""

_FIND = (
    _VIEW  # noqa: S608 - constant SQL text
    + """ WHERE b.id = %(booking)s
   AND (%(subject)s::text IS NULL
        OR b.customer_id = (SELECT c.id FROM customer c WHERE c.subject = %(subject)s))"""
)

_LIST = (
    _VIEW  # noqa: S608 - constant SQL text
    + """ WHERE b.customer_id = (SELECT c.id FROM customer c WHERE c.subject = %(subject)s)
   AND (%(after_t)s::timestamptz IS NULL
        OR b.created_at < %(after_t)s::timestamptz
        OR (b.created_at = %(after_t)s::timestamptz AND b.id > %(after_id)s::uuid))
 ORDER BY b.created_at DESC, b.id
 LIMIT %(limit)s"""
)


def booking_from_row(row: tuple[Any, ...]) -> Booking:
    """A booking from its columns in `BOOKING_COLUMNS` order."""
    return Booking(
        id=row[0],
        customer_id=row[1],
        event_id=row[2],
        quantity=row[3],
        unit_price=Money(row[4], row[5].strip()),
        status=BookingStatus(row[6]),
        created_at=row[7],
        cancelled_at=row[8],
        category_id=row[9],
        hold_expires_at=row[10],
        expired_at=row[11],
    )


def _view(row: tuple[Any, ...]) -> BookingView:
    booking = booking_from_row(row)
    o = _NCOLS  # the order's columns, then the tickets, then the payment's
    paid = None
    if row[o + 7] is not None:
        currency = booking.unit_price.currency
        paid = PaymentSummary(
            Money(row[o + 7], currency), Money(row[o + 8], currency), Money(row[o + 9], currency)
        )
    if row[o] is None:
        return BookingView(booking, None, paid)
    tickets = tuple(
        Ticket(uuid.UUID(t[0]), int(t[1]), t[2], TicketStatus(t[3])) for t in row[o + 6] or ()
    )
    order = Order(
        id=row[o],
        booking_id=booking.id,
        status=OrderStatus(row[o + 1]),
        confirmed_at=row[o + 2],
        cancelled_at=row[o + 3],
        document_key=row[o + 4],
        document_stored_at=row[o + 5],
        tickets=tickets,
    )
    return BookingView(booking, order, paid)


def key_in_use(exc: psycopg.errors.LockNotAvailable) -> errors.BoxofficeError:
    """The end of the wait for an earlier request with the same Idempotency-Key (the key's
    claim raises lock_not_available after `key_wait_ms`, R__booking.sql). A lock wait that
    ran out anywhere else is not about the key: it stays a database error (503)."""
    if "claim_idempotency_key" not in (exc.diag.context or ""):
        raise exc
    return errors.IdempotencyKeyInUse(
        "a request with this Idempotency-Key is still being processed; retry shortly"
    )


def refusal(exc: psycopg.errors.RaiseException) -> errors.BoxofficeError:
    """The `BoxofficeError` a booking function's refusal stands for."""
    cls = _REFUSALS.get(exc.diag.message_primary or "")
    if cls is None:  # an unexpected RAISE in a function is a bug, not a refusal
        raise exc
    return cls(exc.diag.message_detail or cls.title)


class PostgresBookingStore:
    def __init__(self, database: Database, key_wait_ms: int = IDEMPOTENCY_WAIT_MS) -> None:
        self._db = database
        self._key_wait_ms = key_wait_ms

    def book(self, command: BookTickets) -> Booked:
        admission = command.admission
        params = {
            "subject": command.subject,
            "key": command.idempotency_key,
            "hash": command.request_hash,
            "ttl": command.idempotency_ttl_hours,
            "wait": self._key_wait_ms,
            "booking": command.booking_id,
            "event": command.event_id,
            "quantity": command.quantity,
            "limit": command.max_tickets_per_customer,
            "start": command.start_shard,
            "topic": command.topic,
            "source": command.source,
            # What a verified admission token proves (book_tickets checks it for an event in
            # queue mode, V8); all NULL without one.
            "admission": admission.admission_id if admission else None,
            "admission_event": admission.event_id if admission else None,
            "admission_subject": admission.subject if admission else None,
            "admission_expires": admission.expires_at if admission else None,
            "category": command.category_id,
            "hold_seconds": command.hold_seconds,
        }
        with self._db.connection() as conn:
            try:
                row = conn.execute(_BOOK, params).fetchone()
            except psycopg.errors.RaiseException as exc:
                raise refusal(exc) from None
            except psycopg.errors.LockNotAvailable as exc:
                raise key_in_use(exc) from None
        assert row is not None  # book_tickets returns one row or raises
        booking = booking_from_row(row[1 : 1 + _NCOLS]) if row[1] is not None else None
        stored = None
        if booking is None:  # a key completed before V3: its stored response
            rest = row[1 + _NCOLS :]
            stored = StoredResponse(int(rest[0]), dict(rest[1] or {}), dict(rest[2] or {}))
        return Booked(booking, replayed=bool(row[0]), stored=stored)

    def cancel(
        self, subject: str, booking_id: uuid.UUID, topic: str, source: str, *, admin: bool = False
    ) -> tuple[Booking, bool]:
        params = {
            "subject": subject,
            "booking": booking_id,
            "topic": topic,
            "source": source,
            "admin": admin,
        }
        with self._db.connection() as conn:
            try:
                row = conn.execute(_CANCEL, params).fetchone()
            except psycopg.errors.RaiseException as exc:
                raise refusal(exc) from None
        assert row is not None  # cancel_booking returns one row or raises
        return booking_from_row(row[1:]), bool(row[0])

    def find(self, booking_id: uuid.UUID, subject: str | None) -> BookingView | None:
        with self._db.connection() as conn:
            row = conn.execute(_FIND, {"booking": booking_id, "subject": subject}).fetchone()
        return None if row is None else _view(row)

    def list_for_customer(
        self, subject: str, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[BookingView]:
        after_t, after_id = after if after else (None, None)
        params = {"subject": subject, "after_t": after_t, "after_id": after_id, "limit": limit}
        with self._db.connection() as conn:
            rows = conn.execute(_LIST, params).fetchall()
        return [_view(r) for r in rows]
