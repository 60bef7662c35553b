"""db/migrations on a real PostgreSQL: Flyway applies them to an empty database, a second run is a
no-op, and the schema's constraints reject rows that would break the invariants.

Needs the local stack (`stack/boxo up`) and BOXOFFICE_DATABASE_URL (exported by `.state/env`). Each
run works in its own throw-away database (the `boxoffice` role has CREATEDB), dropped at the end.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import support_databases
from psycopg import errors
from psycopg.conninfo import make_conninfo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "db" / "migrations"
CORE_TABLES = {
    "venue",
    "event",
    "event_inventory",
    "customer",
    "booking",
    "booking_allocation",
    "customer_event_tickets",
    "orders",
    "ticket",
    "outbox",
    "idempotency_record",
}

VENUE = "7e0e0000-0000-4000-8000-00000000aaaa"
EVENT = "e0e00000-0000-4000-8000-00000000aaaa"
CUSTOMER = "c0000000-0000-4000-8000-00000000aaaa"
SUBJECT = "5b000000-0000-4000-8000-00000000aaaa"
BOOKING = "b0000000-0000-4000-8000-00000000aaaa"
EVENT_CAPACITY = 10


def _database_url() -> str:
    return support_databases.admin_url()


def _flyway(dbname: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The stack's Flyway against DBNAME with the project's settings (support_databases)."""
    return support_databases.flyway(dbname, "-outputType=json", *args)


def _migrate(dbname: str) -> dict[str, Any]:
    return support_databases.migrate(dbname)


def _history(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT installed_rank, version, script, checksum, success"
        " FROM flyway_schema_history ORDER BY installed_rank"
    ).fetchall()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A throw-away empty database, dropped (even with open connections) at the end."""
    with support_databases.empty_database("bx_migtest") as name:
        yield name


@pytest.fixture(scope="module")
def first_run(database: str) -> dict[str, Any]:
    """The report of the first `flyway migrate` on the empty database."""
    return _migrate(database)


@pytest.fixture(scope="module")
def db_url(database: str, first_run: dict[str, Any]) -> str:
    return make_conninfo(_database_url(), dbname=database)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def seeded(db_url: str) -> None:
    """One venue, an event of EVENT_CAPACITY seats in one inventory shard, a customer, a booking."""
    with psycopg.connect(db_url) as c, c.transaction():
        c.execute(
            "INSERT INTO venue (id, name, address, city, capacity)"
            " VALUES (%s, 'Test Hall', '1 Test Road', 'Testville', 100)",
            (VENUE,),
        )
        c.execute(
            "INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity)"
            " VALUES (%s, %s, 'Test Gig', now() + interval '7 days', 10.00, 'EUR', %s)",
            (EVENT, VENUE, EVENT_CAPACITY),
        )
        c.execute(
            "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, 0, %s)",
            (EVENT, EVENT_CAPACITY),
        )
        c.execute(
            "INSERT INTO customer (id, subject, name, email, address_line1, postal_code, city,"
            " country) VALUES (%s, %s, 'Tess Tester', 'tess@example.test', '2 Test Road', 'T1',"
            " 'Testville', 'DE')",
            (CUSTOMER, SUBJECT),
        )
        c.execute(
            "INSERT INTO booking (id, customer_id, event_id, quantity, unit_price, currency)"
            " VALUES (%s, %s, %s, 2, 10.00, 'EUR')",
            (BOOKING, CUSTOMER, EVENT),
        )


def assert_rejected(
    conn: psycopg.Connection[Any],
    error: type[psycopg.Error],
    constraint: str | None,
    statement: str,
    params: tuple[Any, ...] = (),
) -> None:
    """STATEMENT fails with ERROR naming CONSTRAINT (deferred constraints are checked too)."""

    def attempt() -> None:
        with conn.transaction():  # a savepoint when called inside a transaction
            conn.execute(statement, params)
            conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # fire deferred constraint triggers now

    with pytest.raises(error) as excinfo:
        attempt()
    if constraint is not None:
        assert excinfo.value.diag.constraint_name == constraint, excinfo.value


# --- Flyway -----------------------------------------------------------------------------------


def test_migrate_applies_every_migration_to_an_empty_database(
    first_run: dict[str, Any], db_url: str
) -> None:
    # Versioned migrations, and the repeatable ones (R__: the current definitions of rules).
    scripts = sorted(p.name for p in [*MIGRATIONS.glob("V*.sql"), *MIGRATIONS.glob("R__*.sql")])
    assert scripts, f"no versioned migrations in {MIGRATIONS}"
    assert first_run["migrationsExecuted"] == len(scripts)
    with psycopg.connect(db_url) as c:
        history = _history(c)
        assert sorted(row[2] for row in history) == scripts
        assert all(row[4] is True for row in history), history
        tables = {
            r[0]
            for r in c.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        }
    assert tables >= CORE_TABLES | {"flyway_schema_history"}, CORE_TABLES - tables


def test_second_migrate_run_applies_nothing(first_run: dict[str, Any], database: str) -> None:
    with psycopg.connect(make_conninfo(_database_url(), dbname=database)) as c:
        before = _history(c)
    report = _migrate(database)
    assert report["migrationsExecuted"] == 0
    assert report["migrations"] == []
    with psycopg.connect(make_conninfo(_database_url(), dbname=database)) as c:
        assert _history(c) == before


def test_migrations_validate_against_the_applied_history(first_run: dict[str, Any]) -> None:
    # Checksums of the applied scripts still match the files: nobody edited an applied migration.
    result = _flyway(first_run["database"], "validate")
    assert result.returncode == 0, f"flyway validate failed:\n{result.stdout}\n{result.stderr}"


def test_clean_is_disabled(first_run: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    result = _flyway(first_run["database"], "clean")
    assert result.returncode != 0
    assert conn.execute("SELECT to_regclass('public.event') IS NOT NULL").fetchone() == (True,)


# --- Constraints --------------------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_inventory_cannot_be_sold_beyond_its_capacity(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "inventory_sold_within_capacity",
        "UPDATE event_inventory SET sold = capacity + 1 WHERE event_id = %s",
        (EVENT,),
    )


@pytest.mark.usefixtures("seeded")
def test_inventory_sold_cannot_go_negative(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "inventory_sold_within_capacity",
        "UPDATE event_inventory SET sold = -1 WHERE event_id = %s",
        (EVENT,),
    )


@pytest.mark.usefixtures("seeded")
def test_guarded_sale_stops_at_capacity(conn: psycopg.Connection[Any]) -> None:
    guarded = (
        "UPDATE event_inventory SET sold = sold + %s"
        " WHERE event_id = %s AND shard = 0 AND sold + %s <= capacity"
    )
    with conn.transaction(force_rollback=True):
        assert conn.execute(guarded, (EVENT_CAPACITY, EVENT, EVENT_CAPACITY)).rowcount == 1
        assert conn.execute(guarded, (1, EVENT, 1)).rowcount == 0


@pytest.mark.usefixtures("seeded")
def test_inventory_shards_must_add_up_to_the_event_capacity(
    conn: psycopg.Connection[Any],
) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "inventory_matches_capacity",
        "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, 1, 5)",
        (EVENT,),
    )


@pytest.mark.usefixtures("seeded")
def test_event_capacity_cannot_change_without_its_inventory(
    conn: psycopg.Connection[Any],
) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "inventory_matches_capacity",
        "UPDATE event SET capacity = capacity + 1 WHERE id = %s",
        (EVENT,),
    )


@pytest.mark.usefixtures("seeded")
def test_inventory_shards_cannot_be_removed_from_an_event(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "inventory_matches_capacity",
        "DELETE FROM event_inventory WHERE event_id = %s",
        (EVENT,),
    )


@pytest.mark.usefixtures("seeded")
def test_event_price_cannot_be_negative(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "event_ticket_price_check",
        "UPDATE event SET ticket_price = -0.01 WHERE id = %s",
        (EVENT,),
    )


@pytest.mark.usefixtures("seeded")
def test_prices_are_exact_decimals_never_floats(conn: psycopg.Connection[Any]) -> None:
    types = dict(
        conn.execute(
            "SELECT table_name || '.' || column_name, data_type || '(' || numeric_precision"
            " || ',' || numeric_scale || ')' FROM information_schema.columns"
            " WHERE (table_name, column_name) IN"
            " (('event', 'ticket_price'), ('booking', 'unit_price'), ('booking', 'total'))"
        ).fetchall()
    )
    assert types == {
        "event.ticket_price": "numeric(12,2)",
        "booking.unit_price": "numeric(12,2)",
        "booking.total": "numeric(14,2)",
    }
    with conn.transaction(force_rollback=True):
        # 0.10 three times is exactly 0.30 (a float would give 0.30000000000000004).
        conn.execute(
            "UPDATE booking SET unit_price = %s, quantity = 3 WHERE id = %s",
            (Decimal("0.10"), BOOKING),
        )
        total = conn.execute("SELECT total FROM booking WHERE id = %s", (BOOKING,)).fetchone()
        assert total == (Decimal("0.30"),)
        # More than two decimal places are rounded to cents by numeric(12,2), not stored.
        conn.execute("UPDATE event SET ticket_price = 10.005 WHERE id = %s", (EVENT,))
        price = conn.execute("SELECT ticket_price FROM event WHERE id = %s", (EVENT,)).fetchone()
        assert price == (Decimal("10.01"),)


@pytest.mark.usefixtures("seeded")
def test_price_beyond_numeric_precision_is_rejected(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.NumericValueOutOfRange,
        None,
        "UPDATE event SET ticket_price = 10000000000.00 WHERE id = %s",
        (EVENT,),
    )


@pytest.mark.usefixtures("seeded")
def test_currency_must_be_three_upper_case_letters(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "event_currency_check",
        "UPDATE event SET currency = 'eur' WHERE id = %s",
        (EVENT,),
    )


@pytest.mark.usefixtures("seeded")
def test_duplicate_customer_subject_is_rejected(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.UniqueViolation,
        "customer_subject_key",
        "INSERT INTO customer (subject, name, email, address_line1, postal_code, city, country)"
        " VALUES (%s, 'Impostor', 'imp@example.test', '3 Road', 'T2', 'Testville', 'DE')",
        (SUBJECT,),
    )


@pytest.mark.usefixtures("seeded")
def test_booking_quantity_must_be_positive(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "booking_quantity_check",
        "UPDATE booking SET quantity = 0 WHERE id = %s",
        (BOOKING,),
    )


@pytest.mark.usefixtures("seeded")
def test_cancelled_booking_must_record_when(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "booking_cancelled_has_time",
        "UPDATE booking SET status = 'CANCELLED' WHERE id = %s",
        (BOOKING,),
    )


@pytest.mark.usefixtures("seeded")
def test_booking_total_cannot_be_written(conn: psycopg.Connection[Any]) -> None:
    assert_rejected(
        conn,
        errors.GeneratedAlways,
        None,
        "UPDATE booking SET total = 0 WHERE id = %s",
        (BOOKING,),
    )


@pytest.mark.usefixtures("seeded")
def test_second_order_for_the_same_booking_is_rejected(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction(force_rollback=True):
        conn.execute("INSERT INTO orders (booking_id) VALUES (%s)", (BOOKING,))
        assert_rejected(
            conn,
            errors.UniqueViolation,
            "orders_one_per_booking",
            "INSERT INTO orders (booking_id) VALUES (%s)",
            (BOOKING,),
        )


@pytest.mark.usefixtures("seeded")
def test_ticket_codes_are_unique(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction(force_rollback=True):
        order_id = conn.execute(
            "INSERT INTO orders (booking_id) VALUES (%s) RETURNING id", (BOOKING,)
        ).fetchone()
        assert order_id is not None
        insert = "INSERT INTO ticket (id, order_id, seq, code) VALUES (%s, %s, %s, 'CODE-1')"
        conn.execute(insert, (uuid.uuid4(), order_id[0], 1))
        assert_rejected(
            conn, errors.UniqueViolation, "ticket_code_key", insert, (uuid.uuid4(), order_id[0], 2)
        )


def test_completed_idempotency_record_must_store_its_response(
    conn: psycopg.Connection[Any],
) -> None:
    assert_rejected(
        conn,
        errors.CheckViolation,
        "idempotency_completed_has_response",
        "INSERT INTO idempotency_record (scope, key, request_hash, state, expires_at)"
        " VALUES ('someone', 'k-1', 'h', 'COMPLETED', now() + interval '1 day')",
    )
