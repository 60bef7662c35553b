"""Throw-away databases have one maker (support_databases), and it migrates through the stack's
Flyway: a database of a test's own has every file of db/migrations applied by Flyway (in its
history, successful), whatever the folder holds, and is a copy that a test may change without
touching the template or another test's copy. No other test creates a database or runs Flyway by
itself, so no test can stand on a schema Flyway would not build."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import support_databases
from support_databases import fresh_database, scratch_database

TESTS = Path(__file__).resolve().parents[1]
MAKER = Path(support_databases.__file__).resolve()


def test_a_fresh_database_has_every_migration_applied_by_flyway() -> None:
    files = sorted(p.name for p in support_databases.MIGRATIONS.glob("[VR]*__*.sql"))
    assert files, "no migrations found"
    with fresh_database("bx_throwaway_test") as url, psycopg.connect(url) as conn:
        applied = conn.execute(
            "SELECT script, success FROM flyway_schema_history WHERE script LIKE '%.sql'"
        ).fetchall()
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' AND p.proname = 'book_tickets'"
        ).fetchone()
    assert sorted(script for script, _ in applied) == files
    assert all(success for _, success in applied), applied
    assert functions == (1,)


def test_a_scratch_database_is_a_copy_of_its_own_with_the_demo_data() -> None:
    with scratch_database("bx_throwaway_test", demo=True) as one:
        with one.connect() as conn:
            events = conn.execute("SELECT count(*) FROM event").fetchone()
            assert events is not None
            assert events[0] > 0
            conn.execute("DELETE FROM customer")
        with scratch_database("bx_throwaway_test", demo=True) as two, two.connect() as conn:
            assert two.name != one.name
            row = conn.execute("SELECT count(*) FROM customer").fetchone()
            assert row is not None
            assert row[0] > 0  # the template kept its rows
    with psycopg.connect(support_databases.admin_url()) as admin:
        gone = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (one.name,))
        assert gone.fetchone() is None


def test_no_test_creates_a_database_or_runs_flyway_but_through_support_databases() -> None:
    makers = re.compile(
        r"CREATE DATABASE|createdb|stack/flyway|\"flyway\"|\"migrate\", \"--database"
    )
    offenders = [
        str(path.relative_to(TESTS))
        for path in sorted(TESTS.rglob("*.py"))
        if path.resolve() not in (MAKER, Path(__file__).resolve())
        and makers.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
