"""Databases of a test's own, next to the dev one, always migrated by the stack's Flyway
(`stack/flyway` with the settings of `stack/boxo migrate`), whatever db/migrations holds
(versioned and repeatable migrations, callbacks): the one place the tests make throw-away
databases (imported by the integration tests as `support_databases`).

For tests that break invariants on purpose, write what the dev database must not keep, or need a
known empty state. Flyway (a JVM start, seconds) runs once per test session, on a template
database; each throw-away database is a copy of it (`CREATE DATABASE ... TEMPLATE`, a fraction of
a second). The demo data (db/demo/demo.sql) is loaded once too, into a second template copied
from the first. Templates are dropped at the end of the session (tests/integration/conftest.py)."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[2]
FLYWAY = ROOT / "stack" / "flyway"
MIGRATIONS = ROOT / "db" / "migrations"
DEMO = ROOT / "db" / "demo" / "demo.sql"


def admin_url() -> str:
    """The dev database's URL (its role may create databases): where throw-away ones are made."""
    url = os.environ.get("BOXOFFICE_DATABASE_URL", "")
    if not url:
        pytest.fail(
            "BOXOFFICE_DATABASE_URL is not set: run the tests with `make test`", pytrace=False
        )
    return url


def url_of(name: str) -> str:
    """The libpq URL of database `name` on the dev database's server."""
    params = conninfo_to_dict(admin_url())
    params["dbname"] = name
    return make_conninfo("", **params)


def flyway(name: str, *args: str, locations: Path = MIGRATIONS) -> subprocess.CompletedProcess[str]:
    """The stack's Flyway against database `name` with the project's settings (those of
    `stack/boxo migrate`: db/migrations, naming validated, no baseline, clean disabled) and
    `args` (e.g. "migrate", "-outputType=json", "info"); `locations`: another migrations folder."""
    params = conninfo_to_dict(admin_url())
    host, port = params.get("host", "127.0.0.1"), params.get("port", 5432)
    return subprocess.run(
        [
            str(FLYWAY),
            f"-url=jdbc:postgresql://{host}:{port}/{name}",
            f"-user={params['user']}",
            f"-password={params['password']}",
            f"-locations=filesystem:{locations}",
            "-validateMigrationNaming=true",
            "-baselineOnMigrate=false",
            "-cleanDisabled=true",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def stack_migrate(name: str) -> subprocess.CompletedProcess[str]:
    """`stack/boxo migrate --database NAME`: how the stack (and, with the same Flyway settings,
    the chart's job) migrates database `name` with db/migrations as it is."""
    return subprocess.run(
        [str(ROOT / "stack" / "boxo"), "migrate", "--database", name],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def migrate(name: str) -> dict[str, Any]:
    """`flyway migrate` on database `name`: its JSON report; fails the test if Flyway does."""
    out = flyway(name, "-outputType=json", "migrate")
    assert out.returncode == 0, f"flyway migrate failed:\n{out.stdout}\n{out.stderr}"
    report: dict[str, Any] = json.loads(out.stdout)
    assert report["success"] is True, report
    return report


def _create(name: str, template: str | None = None) -> None:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        admin.execute(statement)


def _drop(name: str) -> None:
    """DROP DATABASE ... WITH (FORCE). The application role cannot end a superuser's session,
    and one was seen once in a full run (a `make test` teardown: InsufficientPrivilege, "must be
    a member of the role whose process is being terminated"); such a session is short-lived, so
    the drop is retried for up to 10 s before it fails."""
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(20):
        try:
            with psycopg.connect(admin_url(), autocommit=True) as admin:
                admin.execute(statement)
            return
        except psycopg.errors.InsufficientPrivilege:
            if attempt == 19:
                raise
            time.sleep(0.5)


def _new_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def empty_database(prefix: str = "bx_test") -> Iterator[str]:
    """A new, empty database (nothing migrated), dropped afterwards even with connections open:
    for the tests of the migrations themselves. Yields its name."""
    name = _new_name(prefix)
    _create(name)
    try:
        yield name
    finally:
        _drop(name)


class _Templates:
    """The session's template databases, made on first use: `migrated` (Flyway on an empty
    database) and `demo` (a copy of it with the demo data)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._names: dict[str, str] = {}

    def get(self, kind: str) -> str:
        with self._lock:
            if kind not in self._names:
                name = _new_name(f"bx_template_{kind}")
                if kind == "migrated":
                    _create(name)
                    self._names[kind] = name
                    migrate(name)
                else:
                    _create(name, template=self.get("migrated"))
                    self._names[kind] = name
                    with psycopg.connect(url_of(name), autocommit=True) as conn:
                        conn.execute(DEMO.read_bytes())
            return self._names[kind]

    def drop(self) -> None:
        with self._lock:
            for name in reversed(list(self._names.values())):
                with contextlib.suppress(psycopg.Error, pytest.fail.Exception):
                    _drop(name)
            self._names.clear()


TEMPLATES = _Templates()
atexit.register(TEMPLATES.drop)  # also when a run ends without pytest_sessionfinish


class ScratchDatabase:
    """A database of a test's own: `name`, `url`; dropped by `drop()`."""

    def __init__(self, admin_url: str, name: str) -> None:
        params = conninfo_to_dict(admin_url)
        params["dbname"] = name
        self.admin_url = admin_url
        self.name = name
        self.url = make_conninfo("", **params)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)

    def drop(self) -> None:
        _drop(self.name)


def template(demo: bool = False) -> ScratchDatabase:
    """The session's Flyway-migrated template database (with the demo data if `demo`). Copy it,
    never write to it: a copy is made only while nobody is connected to it."""
    return ScratchDatabase(admin_url(), TEMPLATES.get("demo" if demo else "migrated"))


@contextlib.contextmanager
def scratch_database(prefix: str = "bx_test", *, demo: bool = False) -> Iterator[ScratchDatabase]:
    """A new database migrated by Flyway with every migration in db/migrations (a copy of the
    session's template), and loaded with the demo data if `demo`; dropped afterwards (even with
    connections open)."""
    db = ScratchDatabase(admin_url(), _new_name(prefix))
    _create(db.name, template=TEMPLATES.get("demo" if demo else "migrated"))
    try:
        yield db
    finally:
        db.drop()


@contextlib.contextmanager
def fresh_database(prefix: str = "bx_test", *, demo: bool = False) -> Iterator[str]:
    """`scratch_database`'s URL: for tests that write what the dev database must not see, or
    that need a known empty state."""
    with scratch_database(prefix, demo=demo) as db:
        yield db.url


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
