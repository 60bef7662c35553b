"""PostgreSQL waiting room: each use case one statement (db/migrations/R__waiting_room.sql).

Joining, configuring and the tick call its PL/pgSQL functions on an autocommit connection
(each call its own transaction); reading a place is one indexed read of the place with its line.
Refusals arrive as SQLSTATE P0001 with the problem slug as message, as for bookings.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg.errors

from boxoffice import errors
from boxoffice.adapters.postgres import Database
from boxoffice.adapters.postgres_bookings import refusal
from boxoffice.domain.waiting_room import Line, LineState, Place, QueueSettings
from boxoffice.services.ports import Tick

# The line: settings, serving counter, and whether the event is still on sale.
_LINE_COLUMNS = """
       q.event_id, q.opens_at, q.admission_rate, q.admission_seconds, q.randomise_early,
       q.tickets_per_buyer, q.drawn_at IS NOT NULL OR NOT q.randomise_early, q.served_up_to,
       coalesce(pg_sequence_last_value(q.arrivals), 0), q.admitted, q.expired_unused,
       q.current_rate, q.sold_out_at, ev.status = 'CANCELLED' OR ev.starts_at <= now(),
       now() >= q.opens_at, now()"""

_LINE = f"""
SELECT {_LINE_COLUMNS}
  FROM event_queue q JOIN event ev ON ev.id = q.event_id
 WHERE q.event_id = %(event)s
"""  # noqa: S608 - constant column list

_PLACE_COLUMNS = "e.id, e.event_id, e.arrival, e.position, e.joined_at, e.admitted_at, "
_PLACE_COLUMNS += "e.expires_at, e.used_at"

# One indexed read: the customer by subject, their place by (event, customer), its line.
_PLACE = f"""
SELECT {_PLACE_COLUMNS}, {_LINE_COLUMNS}
  FROM customer c
  JOIN queue_entry e ON e.event_id = %(event)s AND e.customer_id = c.id
  JOIN event_queue q ON q.event_id = e.event_id
  JOIN event ev ON ev.id = e.event_id
 WHERE c.subject = %(subject)s
"""  # noqa: S608 - constant column lists

_CONFIGURE = """
SELECT r.created FROM configure_queue(%(event)s, %(opens)s, %(rate)s, %(seconds)s,
                                      %(randomise)s, %(per_buyer)s) r
"""

# Joining and reading the line back, in one statement.
_JOIN = f"""
SELECT r.joined, {", ".join(f"(r.entry).{c.split('.')[1]}" for c in _PLACE_COLUMNS.split(", "))},
       {_LINE_COLUMNS}
  FROM join_queue(%(event)s, %(subject)s, %(id)s) r
  JOIN event_queue q ON q.event_id = (r.entry).event_id
  JOIN event ev ON ev.id = q.event_id
"""  # noqa: S608 - constant column lists

_ADVANCE = """
SELECT event_id, state, rate, joined, waiting, admitted_now, expired_now, waits
  FROM advance_queues(%(capacity)s, %(burst)s)
"""


# How long one tick (advance_queues) may run or wait for a lock.
TICK_TIMEOUT_SECONDS = 30


def _line(row: tuple[Any, ...]) -> Line:
    closed, opened = bool(row[13]), bool(row[14])
    if closed:
        state = LineState.CLOSED
    elif row[12] is not None:
        state = LineState.SOLD_OUT
    elif opened:
        state = LineState.OPEN
    else:
        state = LineState.SCHEDULED
    return Line(
        event_id=row[0],
        settings=QueueSettings(
            opens_at=row[1],
            admission_rate=row[2],
            admission_seconds=int(row[3]),
            randomise_early=bool(row[4]),
            tickets_per_buyer=row[5],
        ),
        state=state,
        drawn=bool(row[6]),
        served_up_to=int(row[7]),
        joined=int(row[8]),
        admitted=int(row[9]),
        expired_unused=int(row[10]),
        current_rate=row[11],
        sold_out_at=row[12],
        read_at=row[15],
    )


def _place(row: tuple[Any, ...]) -> Place:
    return Place(
        id=row[0],
        event_id=row[1],
        arrival=int(row[2]),
        position=None if row[3] is None else int(row[3]),
        joined_at=row[4],
        admitted_at=row[5],
        expires_at=row[6],
        used_at=row[7],
    )


class PostgresWaitingRoom:
    def __init__(self, database: Database) -> None:
        self._db = database

    def _call(self, sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
        with self._db.connection() as conn:
            try:
                row: tuple[Any, ...] | None = conn.execute(sql, params).fetchone()
            except psycopg.errors.RaiseException as exc:
                raise refusal(exc) from None
        return row

    def configure(self, event_id: uuid.UUID, settings: QueueSettings) -> tuple[Line, bool]:
        params = {
            "event": event_id,
            "opens": settings.opens_at,
            "rate": settings.admission_rate,
            "seconds": settings.admission_seconds,
            "randomise": settings.randomise_early,
            "per_buyer": settings.tickets_per_buyer,
        }
        row = self._call(_CONFIGURE, params)
        assert row is not None  # configure_queue returns one row or refuses
        line = self.line(event_id)
        assert line is not None
        return line, bool(row[0])

    def remove(self, event_id: uuid.UUID) -> bool:
        row = self._call("SELECT remove_queue(%(event)s)", {"event": event_id})
        return bool(row and row[0])

    def line(self, event_id: uuid.UUID) -> Line | None:
        row = self._call(_LINE, {"event": event_id})
        return None if row is None else _line(row)

    def join(
        self, event_id: uuid.UUID, subject: str, place_id: uuid.UUID
    ) -> tuple[Place, Line, bool]:
        row = self._call(_JOIN, {"event": event_id, "subject": subject, "id": place_id})
        if row is None:
            # join_queue returned its row (it returns one or refuses), but the statement's own
            # snapshot, taken before the function ran, predates a line configured concurrently,
            # so the join found no event_queue row. The place is committed: read it afresh.
            found = self.place(event_id, subject)
            if found is None:
                raise errors.NotFound(f"event {event_id} has no waiting room")
            return found[0], found[1], place_id == found[0].id
        return _place(row[1:9]), _line(row[9:]), bool(row[0])

    def place(self, event_id: uuid.UUID, subject: str) -> tuple[Place, Line] | None:
        row = self._call(_PLACE, {"event": event_id, "subject": subject})
        if row is None:
            return None
        return _place(row[:8]), _line(row[8:])

    def advance(self, auto_capacity: Decimal, max_burst: float) -> list[Tick]:
        with self._db.connection() as conn, conn.transaction():
            # The tick is background work nobody waits for, and drawing a pre-queue of tens of
            # thousands can outlast the requests' statement timeout on a busy machine: cancelled
            # and retried from scratch, it would never finish while the load lasts (a full
            # `make test` run saw 45 s of cancelled ticks and no draw). So it has its own.
            conn.execute(f"SET LOCAL statement_timeout = '{TICK_TIMEOUT_SECONDS}s'")
            conn.execute(f"SET LOCAL lock_timeout = '{TICK_TIMEOUT_SECONDS}s'")
            rows = conn.execute(
                _ADVANCE, {"capacity": auto_capacity, "burst": max_burst}
            ).fetchall()
        return [
            Tick(
                event_id=r[0],
                state=LineState(r[1]),
                rate=r[2],
                joined=int(r[3]),
                waiting=int(r[4]),
                admitted=int(r[5]),
                expired=int(r[6]),
                waits=tuple(float(w) for w in r[7] or ()),
            )
            for r in rows
        ]
