"""PostgreSQL repositories of the booking path: bookings and seats, idempotency keys, outbox.

Every write that could oversell or overspend is one guarded statement (`... WHERE sold + n <=
capacity`, `... WHERE tickets + n <= limit`), and the schema's CHECK constraints stand behind
them. Locks are always taken in the same order: idempotency key, booking, customer's ticket
count, inventory shards by shard number (docs/adr/0002-hot-event-inventory.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from boxoffice import errors
from boxoffice.domain.bookings import (
    Allocation,
    Booking,
    BookingStatus,
    EventForSale,
    IdempotencyRecord,
    OutboxMessage,
    StoredResponse,
)
from boxoffice.domain.money import Money

Conn = psycopg.Connection[TupleRow]

# How long a request waits for an earlier in-flight request with the same Idempotency-Key
# before answering 409 idempotency-key-in-use (docs/adr/0004-idempotency.md).
IDEMPOTENCY_WAIT_MS = 100

_BOOKING_COLUMNS = (
    "id, customer_id, event_id, quantity, unit_price, currency, status, created_at, cancelled_at"
)


def _booking(row: tuple[Any, ...]) -> Booking:
    return Booking(
        id=row[0],
        customer_id=row[1],
        event_id=row[2],
        quantity=row[3],
        unit_price=Money(row[4], row[5]),
        status=BookingStatus(row[6]),
        created_at=row[7],
        cancelled_at=row[8],
    )


class SeatGuardFailed(RuntimeError):
    """A guarded write on a shard this transaction holds locked did not apply (a bug)."""


class PostgresBookings:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def event_for_sale(self, event_id: uuid.UUID) -> EventForSale | None:
        row = self._conn.execute(
            """SELECT e.ticket_price, e.currency, e.status, e.starts_at <= now(),
                      (SELECT count(*) FROM event_inventory i WHERE i.event_id = e.id)::int
                 FROM event e WHERE e.id = %s
                  FOR SHARE OF e""",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        return EventForSale(
            id=event_id,
            price=Money(row[0], row[1]),
            cancelled=row[2] == "CANCELLED",
            started=bool(row[3]),
            shard_count=row[4],
        )

    def event_started(self, event_id: uuid.UUID) -> bool:
        row = self._conn.execute(
            "SELECT starts_at <= now() FROM event WHERE id = %s", (event_id,)
        ).fetchone()
        return bool(row and row[0])

    def add_customer_tickets(
        self, customer_id: uuid.UUID, event_id: uuid.UUID, quantity: int, limit: int
    ) -> bool:
        row = self._conn.execute(
            """INSERT INTO customer_event_tickets AS t (customer_id, event_id, tickets)
               SELECT %(customer)s, %(event)s, %(n)s WHERE %(n)s <= %(limit)s
               ON CONFLICT (customer_id, event_id) DO UPDATE
                  SET tickets = t.tickets + EXCLUDED.tickets
                WHERE t.tickets + EXCLUDED.tickets <= %(limit)s
               RETURNING t.tickets""",
            {"customer": customer_id, "event": event_id, "n": quantity, "limit": limit},
        ).fetchone()
        return row is not None

    def remove_customer_tickets(
        self, customer_id: uuid.UUID, event_id: uuid.UUID, quantity: int
    ) -> None:
        self._conn.execute(
            """UPDATE customer_event_tickets SET tickets = tickets - %s
                WHERE customer_id = %s AND event_id = %s""",
            (quantity, customer_id, event_id),
        )

    def reserve_on_one_shard(self, event_id: uuid.UUID, quantity: int, start: int) -> int | None:
        # The candidate is picked among rows nobody holds (SKIP LOCKED), from shard `start` on
        # and wrapping around; the UPDATE's guard re-checks room on the row now locked.
        row = self._conn.execute(
            """WITH pick AS (
                   SELECT shard FROM event_inventory
                    WHERE event_id = %(event)s AND capacity - sold >= %(n)s
                    ORDER BY shard < %(start)s, shard
                    LIMIT 1
                      FOR UPDATE SKIP LOCKED)
               UPDATE event_inventory i SET sold = i.sold + %(n)s
                 FROM pick
                WHERE i.event_id = %(event)s AND i.shard = pick.shard
                  AND i.sold + %(n)s <= i.capacity
               RETURNING i.shard""",
            {"event": event_id, "n": quantity, "start": start},
        ).fetchone()
        return None if row is None else int(row[0])

    def free_seats(self, event_id: uuid.UUID) -> int:
        row = self._conn.execute(
            """SELECT COALESCE(SUM(capacity - sold), 0)::int
                 FROM event_inventory WHERE event_id = %s""",
            (event_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    def lock_free_seats(self, event_id: uuid.UUID) -> dict[int, int]:
        rows = self._conn.execute(
            """SELECT shard, capacity - sold FROM event_inventory
                WHERE event_id = %s ORDER BY shard FOR UPDATE""",
            (event_id,),
        ).fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def take_seats(self, event_id: uuid.UUID, allocations: list[Allocation]) -> None:
        self._change_sold(event_id, allocations, +1)

    def return_seats(self, event_id: uuid.UUID, allocations: list[Allocation]) -> None:
        shards = sorted(a.shard for a in allocations)
        self._conn.execute(
            """SELECT shard FROM event_inventory
                WHERE event_id = %s AND shard = ANY(%s) ORDER BY shard FOR UPDATE""",
            (event_id, shards),
        ).fetchall()
        self._change_sold(event_id, allocations, -1)

    def _change_sold(self, event_id: uuid.UUID, allocations: list[Allocation], sign: int) -> None:
        rows = self._conn.execute(
            """UPDATE event_inventory i SET sold = i.sold + a.n
                 FROM unnest(%(shards)s::smallint[], %(deltas)s::int[]) AS a(shard, n)
                WHERE i.event_id = %(event)s AND i.shard = a.shard
                  AND i.sold + a.n BETWEEN 0 AND i.capacity
               RETURNING i.shard""",
            {
                "event": event_id,
                "shards": [a.shard for a in allocations],
                "deltas": [sign * a.quantity for a in allocations],
            },
        ).fetchall()
        if len(rows) != len(allocations):
            raise SeatGuardFailed(
                f"seat change on event {event_id} applied to {len(rows)} of "
                f"{len(allocations)} shards"
            )

    def add(
        self,
        booking_id: uuid.UUID,
        customer_id: uuid.UUID,
        event_id: uuid.UUID,
        quantity: int,
        unit_price: Money,
        allocations: list[Allocation],
    ) -> Booking:
        row = self._conn.execute(
            f"""INSERT INTO booking (id, customer_id, event_id, quantity, unit_price, currency)
                VALUES (%s, %s, %s, %s, %s, %s)
                RETURNING {_BOOKING_COLUMNS}""",  # noqa: S608 - constant column list
            (booking_id, customer_id, event_id, quantity, unit_price.amount, unit_price.currency),
        ).fetchone()
        assert row is not None
        with self._conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO booking_allocation (booking_id, event_id, shard, quantity)
                   VALUES (%s, %s, %s, %s)""",
                [(booking_id, event_id, a.shard, a.quantity) for a in allocations],
            )
        return _booking(row)

    def get(self, booking_id: uuid.UUID, *, for_update: bool = False) -> Booking | None:
        lock = " FOR UPDATE" if for_update else ""
        row = self._conn.execute(
            f"SELECT {_BOOKING_COLUMNS} FROM booking WHERE id = %s{lock}",  # noqa: S608
            (booking_id,),
        ).fetchone()
        return None if row is None else _booking(row)

    def allocations(self, booking_id: uuid.UUID) -> list[Allocation]:
        rows = self._conn.execute(
            """SELECT shard, quantity FROM booking_allocation
                WHERE booking_id = %s ORDER BY shard""",
            (booking_id,),
        ).fetchall()
        return [Allocation(int(r[0]), int(r[1])) for r in rows]

    def list_for_customer(
        self,
        customer_id: uuid.UUID,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
    ) -> list[Booking]:
        after_t, after_id = after if after else (None, None)
        rows = self._conn.execute(
            f"""SELECT {_BOOKING_COLUMNS} FROM booking
                 WHERE customer_id = %(customer)s
                   AND (%(after_t)s::timestamptz IS NULL
                        OR created_at < %(after_t)s::timestamptz
                        OR (created_at = %(after_t)s::timestamptz AND id > %(after_id)s::uuid))
                 ORDER BY created_at DESC, id
                 LIMIT %(limit)s""",  # noqa: S608 - constant column list
            {"customer": customer_id, "after_t": after_t, "after_id": after_id, "limit": limit},
        ).fetchall()
        return [_booking(r) for r in rows]

    def mark_cancelled(self, booking_id: uuid.UUID) -> Booking:
        row = self._conn.execute(
            f"""UPDATE booking SET status = 'CANCELLED', cancelled_at = now(), updated_at = now()
                 WHERE id = %s AND status <> 'CANCELLED'
                RETURNING {_BOOKING_COLUMNS}""",  # noqa: S608 - constant column list
            (booking_id,),
        ).fetchone()
        if row is None:
            raise SeatGuardFailed(f"booking {booking_id} was cancelled twice")
        return _booking(row)


class PostgresIdempotency:
    """Keys are claimed by inserting their row in the request's own transaction: a duplicate
    request blocks on that uncommitted row, for at most IDEMPOTENCY_WAIT_MS, then gets 409."""

    def __init__(self, conn: Conn, wait_ms: int = IDEMPOTENCY_WAIT_MS) -> None:
        self._conn = conn
        self._wait_ms = wait_ms

    def claim(
        self, scope: str, key: str, request_hash: str, ttl_hours: int
    ) -> IdempotencyRecord | None:
        self._conn.execute(f"SET LOCAL lock_timeout = {int(self._wait_ms)}")
        try:
            claimed = self._conn.execute(
                """INSERT INTO idempotency_record AS r
                          (scope, key, request_hash, state, expires_at)
                   VALUES (%(scope)s, %(key)s, %(hash)s, 'IN_PROGRESS',
                           now() + make_interval(hours => %(ttl)s))
                   ON CONFLICT (scope, key) DO UPDATE
                      SET request_hash = EXCLUDED.request_hash, state = 'IN_PROGRESS',
                          response_status = NULL, response_headers = NULL, response_body = NULL,
                          created_at = now(), expires_at = EXCLUDED.expires_at
                    WHERE r.expires_at <= now()
                   RETURNING 1""",
                {"scope": scope, "key": key, "hash": request_hash, "ttl": ttl_hours},
            ).fetchone()
        except psycopg.errors.LockNotAvailable as exc:
            raise errors.IdempotencyKeyInUse(
                "a request with this Idempotency-Key is still being processed; retry shortly"
            ) from exc
        self._conn.execute("SET LOCAL lock_timeout TO DEFAULT")
        if claimed is not None:
            return None
        row = self._conn.execute(
            """SELECT request_hash, state, response_status, response_headers, response_body
                 FROM idempotency_record WHERE scope = %s AND key = %s""",
            (scope, key),
        ).fetchone()
        assert row is not None  # the conflicting row is locked by the INSERT above
        response = (
            StoredResponse(int(row[2]), dict(row[3] or {}), dict(row[4] or {}))
            if row[1] == "COMPLETED"
            else None
        )
        return IdempotencyRecord(row[0], response)

    def complete(self, scope: str, key: str, response: StoredResponse) -> None:
        self._conn.execute(
            """UPDATE idempotency_record
                  SET state = 'COMPLETED', response_status = %s, response_headers = %s,
                      response_body = %s
                WHERE scope = %s AND key = %s""",
            (response.status, Jsonb(response.headers), Jsonb(response.body), scope, key),
        )


class PostgresOutboxWriter:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def add(self, message: OutboxMessage) -> None:
        self._conn.execute(
            """INSERT INTO outbox (id, topic, record_key, event_type, event_source, event_time,
                                   payload)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            (
                message.id,
                message.topic,
                message.record_key,
                message.event_type,
                message.event_source,
                message.event_time,
                Jsonb(message.payload),
            ),
        )
