"""Databases of a test's own: a fresh database next to the dev one, migrated, dropped after.

For tests that break invariants on purpose, write what the dev database must not keep, or need a
known empty state (imported by the integration tests as `support_databases`)."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[2]


def migrations() -> list[Path]:
    """db/migrations in Flyway's order: the versioned ones by version, then the repeatable ones
    (`R__name.sql`, e.g. the booking rules) by name."""

    def version(p: Path) -> tuple[int, ...]:
        found = re.match(r"V([\d_.]+)__", p.name)
        assert found, p
        return tuple(int(x) for x in re.split(r"[._]", found.group(1)) if x)

    folder = ROOT / "db" / "migrations"
    return sorted(folder.glob("V*__*.sql"), key=version) + sorted(folder.glob("R__*.sql"))


@contextlib.contextmanager
def fresh_database(prefix: str = "bx_test") -> Iterator[str]:
    """A new database next to the dev one, with every migration applied (as plain SQL, which is
    what Flyway runs); dropped afterwards. For tests that write what the dev database must not
    see, or that need a known empty state. Yields its URL."""
    shared = _dev_database_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(shared, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = conninfo_to_dict(shared)
    params["dbname"] = name
    url = make_conninfo(**params)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for migration in migrations():
                conn.execute(migration.read_text(encoding="utf-8").encode())
        yield url
    finally:
        with psycopg.connect(shared, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _dev_database_url() -> str:
    url = os.environ.get("BOXOFFICE_DATABASE_URL", "")
    if not url:
        pytest.fail(
            "BOXOFFICE_DATABASE_URL is not set: run the tests with `make test`", pytrace=False
        )
    return url


# What a customer's hand-made rows touch, children first (no foreign key here cascades but
# booking -> booking_allocation and event -> event_inventory / event_queue).
_PURGE = [
    "DELETE FROM check_in_conflict WHERE event_id = ANY(%(events)s)",
    "DELETE FROM check_in WHERE event_id = ANY(%(events)s)",
    """DELETE FROM ticket WHERE order_id IN (SELECT o.id FROM orders o JOIN booking b
        ON b.id = o.booking_id WHERE b.event_id = ANY(%(events)s))""",
    """DELETE FROM order_event WHERE booking_id IN (SELECT id FROM booking
        WHERE event_id = ANY(%(events)s))""",
    """DELETE FROM orders WHERE booking_id IN (SELECT id FROM booking
        WHERE event_id = ANY(%(events)s))""",
    """DELETE FROM idempotency_record WHERE booking_id IN (SELECT id FROM booking
        WHERE event_id = ANY(%(events)s))""",
    """DELETE FROM outbox WHERE record_key IN (SELECT id::text FROM booking
        WHERE event_id = ANY(%(events)s))""",
    "DELETE FROM booking WHERE event_id = ANY(%(events)s)",
    "DELETE FROM customer_event_tickets WHERE event_id = ANY(%(events)s)",
    "DELETE FROM event WHERE id = ANY(%(events)s)",
]


def purge_events_of(url: str, customer_id: uuid.UUID) -> None:
    """Delete every event a test customer booked, with everything that hangs off it, in one
    transaction: for tests that must run against the stack's own function processes (so on the
    dev database) but write rows no function would (bookings without seats, statuses set by
    hand). Afterwards the dev database passes `stack/boxo verify` again."""
    with psycopg.connect(url) as conn, conn.transaction():
        events = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT event_id FROM booking WHERE customer_id = %s", (customer_id,)
            )
        ]
        for statement in _PURGE:
            conn.execute(statement, {"events": events})
