"""PostgreSQL repository of check-in (check_in): one call of `check_in_ticket` per scan, which
verifies, guards and records it in one round trip (db/migrations/R__check_in.sql)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow

from boxoffice.adapters.postgres import Database
from boxoffice.domain.checkins import (
    Admission,
    CheckInSummary,
    ScanAttempt,
    ScanOutcome,
    ScanRecord,
)

Conn = psycopg.Connection[TupleRow]


class PostgresCheckIns:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def check_in(self, scan: ScanAttempt) -> ScanRecord:
        row = self._conn.execute(
            """SELECT outcome, ticket_event, seq, quantity, holder, admitted_at, gate, scan_id,
                      offline
                 FROM check_in_ticket(%s, %s, %s, %s, %s, %s, %s)""",
            (
                scan.ticket_id,
                scan.event_id,
                scan.scan_id,
                scan.gate,
                scan.scanner,
                scan.scanned_at,
                scan.legacy_code,
            ),
        ).fetchone()
        assert row is not None  # a function with OUT parameters returns one row
        admission = None if row[5] is None else Admission(row[5], row[6], row[7], row[8])
        return ScanRecord(ScanOutcome(row[0]), row[1], row[2], row[3], row[4], admission)

    def summary(self, event_id: uuid.UUID) -> CheckInSummary | None:
        row = self._conn.execute(
            """SELECT (SELECT count(*) FROM ticket t
                         JOIN orders o ON o.id = t.order_id
                         JOIN booking b ON b.id = o.booking_id
                        WHERE b.event_id = e.id AND t.status = 'VALID'),
                      (SELECT count(*) FROM check_in WHERE event_id = e.id),
                      (SELECT count(*) FROM check_in_conflict WHERE event_id = e.id)
                 FROM event e WHERE e.id = %s""",
            (event_id,),
        ).fetchone()
        if row is None:
            return None
        gates = self._conn.execute(
            """SELECT gate, count(*) FROM check_in WHERE event_id = %s
                GROUP BY gate ORDER BY gate""",
            (event_id,),
        ).fetchall()
        return CheckInSummary(
            event_id, int(row[0]), int(row[1]), int(row[2]), tuple((g, int(n)) for g, n in gates)
        )


class PostgresCheckInUnitOfWork:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.committed = False
        self.checkins = PostgresCheckIns(conn)

    def commit(self) -> None:
        self.conn.commit()
        self.committed = True


class CheckInUnitOfWorks:
    """Factory of check-in transactions on the process's `Database`: one explicit transaction
    (an offline upload: all its scans or none), or with `one_statement` an autocommit connection
    whose single call is its own transaction (an online scan: one round trip, no BEGIN/COMMIT)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @contextmanager
    def __call__(self, *, one_statement: bool = False) -> Iterator[PostgresCheckInUnitOfWork]:
        if one_statement:
            with self._database.connection() as conn:
                yield PostgresCheckInUnitOfWork(conn)
        else:
            with self._database.explicit_transaction() as conn:
                yield PostgresCheckInUnitOfWork(conn)
