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
    """db/migrations in Flyway's version order."""

    def version(p: Path) -> tuple[int, ...]:
        found = re.match(r"V([\d_.]+)__", p.name)
        assert found, p
        return tuple(int(x) for x in re.split(r"[._]", found.group(1)) if x)

    return sorted((ROOT / "db" / "migrations").glob("V*__*.sql"), key=version)


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
