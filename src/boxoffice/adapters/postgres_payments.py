"""PostgreSQL store of a booking's payments and refunds (docs/adr/0020-checkout-state-machine.md).

Each use case calls one PL/pgSQL rule of db/migrations/R__payments.sql (their only definitions)
on an autocommit connection, so it is one transaction; a refusal (SQLSTATE P0001 with a problem
slug) is raised as its `BoxofficeError` (`postgres_bookings.refusal`). Sending a refund is the
exception: the refund row is claimed (FOR UPDATE SKIP LOCKED) in a transaction that stays open
while the provider is asked and is marked in it (`RefundUnitOfWorks`), so one refund has one sender
at a time; its id is the provider call's idempotency key, so a sender that dies after the provider
took the refund and before the mark commits cannot make it pay twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg.errors

from boxoffice import errors
from boxoffice.adapters.postgres import Conn, Database
from boxoffice.adapters.postgres_bookings import BOOKING_COLUMNS, booking_from_row, refusal
from boxoffice.domain.bookings import Booking, BookingStatus
from boxoffice.domain.money import Money
from boxoffice.domain.payments import PaymentIntent, ProviderEvent, Refund, WebhookOutcome
from boxoffice.services.ports import AppliedEvent, PendingRefund

_PAYABLE = f"""
SELECT {", ".join(f"b.{c.strip()}" for c in BOOKING_COLUMNS.split(","))}, payable(b)
  FROM booking b JOIN customer c ON c.id = b.customer_id AND c.subject = %(subject)s
 WHERE b.id = %(booking)s
"""  # noqa: S608 - constant column list

_APPLY = """
SELECT r.outcome, r.refund_id
  FROM apply_payment_event(%(event)s, %(type)s, %(payment)s, %(booking)s, %(provider)s,
                           %(amount)s, %(currency)s, %(refund)s, %(refund_status)s, %(topic)s,
                           %(source)s) r
"""


class PostgresPayments:
    def __init__(self, database: Database) -> None:
        self._db = database

    def payable(self, subject: str, booking_id: uuid.UUID) -> Booking:
        with self._db.connection() as conn:
            row = conn.execute(_PAYABLE, {"subject": subject, "booking": booking_id}).fetchone()
        if row is None:
            raise errors.NotFound(f"booking {booking_id} does not exist")
        booking = booking_from_row(row)
        if not row[12]:
            why = {
                BookingStatus.HELD: "its hold has lapsed",
                BookingStatus.EXPIRED: "its hold has lapsed",
                BookingStatus.CANCELLED: "it is cancelled",
            }.get(booking.status, "it is paid already, or needs no payment")
            raise errors.BookingNotPayable(f"booking {booking_id} cannot be paid: {why}")
        return booking

    def start(self, subject: str, intent: PaymentIntent, provider: str) -> None:
        if intent.booking_id is None:
            raise errors.PaymentProviderUnavailable(
                f"payment {intent.id} came back without its booking id"
            )
        with self._db.connection() as conn:
            try:
                conn.execute(
                    "SELECT start_payment(%s, %s, %s, %s, %s, %s)",
                    (
                        subject,
                        intent.booking_id,
                        intent.id,
                        provider,
                        intent.amount.amount,
                        intent.amount.currency,
                    ),
                )
            except psycopg.errors.RaiseException as exc:
                raise refusal(exc) from None

    def apply(self, event: ProviderEvent, provider: str, topic: str, source: str) -> AppliedEvent:
        is_refund = event.object_type == "refund"
        params = {
            "event": event.id,
            "type": event.type,
            "payment": event.intent_id,
            "booking": event.booking_id,
            "provider": provider,
            "amount": event.amount.amount if event.amount else None,
            "currency": event.amount.currency if event.amount else None,
            "refund": event.object_id if is_refund else None,
            "refund_status": event.status if is_refund else None,
            "topic": topic,
            "source": source,
        }
        with self._db.connection() as conn:
            try:
                row = conn.execute(_APPLY, params).fetchone()
            except psycopg.errors.RaiseException as exc:
                raise refusal(exc) from None
        assert row is not None  # apply_payment_event returns one row or raises
        return AppliedEvent(WebhookOutcome(row[0]), row[1])

    def expire_holds(self, batch: int) -> int:
        with self._db.connection() as conn:
            row = conn.execute("SELECT expire_holds(%s)", (batch,)).fetchone()
        return int(row[0]) if row else 0

    def cancel_bookings_of_cancelled_events(self, batch: int, topic: str, source: str) -> int:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT cancel_bookings_of_cancelled_events(%s, %s, %s)", (batch, topic, source)
            ).fetchone()
        return int(row[0]) if row else 0


class PostgresRefunds:
    """The refunds waiting to be sent, in the caller's transaction (`RefundUnitOfWorks`)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def claim(
        self, refund_id: uuid.UUID | None = None, booking_id: uuid.UUID | None = None
    ) -> PendingRefund | None:
        row = self._conn.execute(
            """SELECT r.id, r.payment_id, r.booking_id, r.amount, r.currency, r.attempts
                 FROM claim_refund(%s, %s) r WHERE r.id IS NOT NULL""",
            (refund_id, booking_id),
        ).fetchone()
        if row is None:
            return None
        return PendingRefund(row[0], row[1], row[2], Money(row[3], row[4].strip()), row[5])

    def mark_sent(self, refund_id: uuid.UUID, sent: Refund) -> None:
        self._conn.execute(
            "SELECT refund_sent(%s, %s, %s)", (refund_id, sent.id, sent.status.value)
        )

    def mark_failed(self, refund_id: uuid.UUID, error: str) -> None:
        self._conn.execute("SELECT refund_failed(%s, %s)", (refund_id, error))

    def pending_count(self) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM refund WHERE status = 'REQUESTED'"
        ).fetchone()
        return int(row[0]) if row else 0


class PostgresRefundUnitOfWork:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.refunds = PostgresRefunds(conn)

    def commit(self) -> None:
        self.conn.commit()


class RefundUnitOfWorks:
    """Factory of refund-sending transactions on the process's `Database`."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @contextmanager
    def __call__(self) -> Iterator[PostgresRefundUnitOfWork]:
        with self._database.explicit_transaction() as conn:
            yield PostgresRefundUnitOfWork(conn)
