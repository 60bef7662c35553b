"""The versioned migrations rewritten to hold schema only (every PL/pgSQL function in one
repeatable migration per area; docs/adr/0010-booking-rules-in-sql.md, amendment "one home per
rule") change nothing a database ends up with, and databases migrated before the rewrite keep
migrating the stack's way (stack/boxo migrate, the same Flyway settings as the chart's job).

The migrations as they were come from git (`BEFORE_REWRITE`, the last commit before the rewrite).
Every test works in throw-away databases next to the dev one (the `boxoffice` role has CREATEDB),
compared with `pg_dump --schema-only`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import support_databases
from psycopg.conninfo import make_conninfo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# The last commit whose db/migrations held the functions in the versioned migrations.
BEFORE_REWRITE = "5f41cdcc5b97ae715e1ab87519a8478924af0c19"
CALLBACK = "beforeValidate__rewritten_migrations.sql"
REWRITTEN = {
    "V1__core_schema.sql",
    "V3__booking_in_one_round_trip.sql",
    "V4__order_processing_in_one_round_trip.sql",
    "V6__check_in.sql",
    "V8__waiting_room.sql",
    "V9__lean_booking.sql",
}


def _dev_url() -> str:
    url = os.environ.get("BOXOFFICE_DATABASE_URL")
    if not url:
        pytest.fail(
            "BOXOFFICE_DATABASE_URL is not set: start the stack and export .state/env",
            pytrace=False,
        )
    return url


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout


def _export(commit: str, folder: Path, keep: Callable[[str], bool] = lambda _: True) -> Path:
    """db/migrations at COMMIT into FOLDER (the files whose name KEEP accepts)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in _git("ls-tree", "--name-only", commit, "db/migrations/").split():
        if keep(Path(name).name):
            (folder / Path(name).name).write_text(_git("show", f"{commit}:{name}"), "utf-8")
    return folder


@pytest.fixture(scope="module")
def old_migrations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """db/migrations as they were before the rewrite, from git."""
    folder = _export(BEFORE_REWRITE, tmp_path_factory.mktemp("before_rewrite"))
    assert (folder / "R__booking_rules.sql").exists(), list(folder.iterdir())
    return folder


@pytest.fixture(scope="module")
def rewritten_migrations(old_migrations: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """db/migrations as the rewrite left them (the commit that added the callback; the working
    tree until it is committed), without versioned migrations added after it: what must give
    the same schema as `old_migrations`. (Later R__ edits are compared by the upgrade test.)"""
    versions = {p.name.split("__")[0] for p in old_migrations.glob("V*__*.sql")}

    def keep(name: str) -> bool:
        return not name.startswith("V") or name.split("__", maxsplit=1)[0] in versions

    added = _git("log", "--diff-filter=A", "--format=%H", "--", f"db/migrations/{CALLBACK}").split()
    folder = tmp_path_factory.mktemp("rewrite")
    if added:
        return _export(added[-1], folder, keep)
    for path in (ROOT / "db" / "migrations").glob("*.sql"):
        if keep(path.name):
            (folder / path.name).write_text(path.read_text("utf-8"), "utf-8")
    return folder


@pytest.fixture
def databases() -> Iterator[Callable[[], str]]:
    """Makes throw-away empty databases (support_databases.empty_database), all dropped at the
    end of the test."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(support_databases.empty_database("bx_rewrite"))


def flyway_migrate(database: str, locations: Path) -> None:
    """Flyway with the stack's settings, from a folder of migrations other than db/migrations."""
    result = support_databases.flyway(database, "migrate", locations=locations)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


stack_migrate = support_databases.stack_migrate


def schema(database: str) -> str:
    """The database's schema as pg_dump writes it (its per-run \\restrict keys left out)."""
    dump = subprocess.run(
        [
            "pg_dump",
            "--schema-only",
            "--no-owner",
            "-d",
            make_conninfo(_dev_url(), dbname=database),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return "\n".join(
        line for line in dump.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
    )


def history(database: str) -> list[tuple[str | None, str, int]]:
    with psycopg.connect(make_conninfo(_dev_url(), dbname=database)) as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT version, script, checksum FROM flyway_schema_history"
                " ORDER BY installed_rank"
            )
        ]


def test_the_rewritten_migrations_give_a_new_database_the_schema_the_old_ones_gave(
    old_migrations: Path, rewritten_migrations: Path, databases: Callable[[], str]
) -> None:
    before, after = databases(), databases()
    flyway_migrate(before, old_migrations)
    flyway_migrate(after, rewritten_migrations)
    assert "CREATE FUNCTION" in schema(after)  # the dump holds the functions' definitions
    assert schema(after) == schema(before)


def test_a_database_migrated_before_the_rewrite_migrates_the_stacks_way_and_ends_the_same(
    old_migrations: Path, databases: Callable[[], str]
) -> None:
    old, new = databases(), databases()
    flyway_migrate(old, old_migrations)
    recorded_before = {script: checksum for _, script, checksum in history(old)}

    ran = stack_migrate(old)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert stack_migrate(new).returncode == 0
    assert schema(old) == schema(new)
    # The history now reads as if the rewritten files had been applied: their checksums, and the
    # booking rules under their new name (applied again, once).
    upgraded = history(old)
    fresh = {script: checksum for _, script, checksum in history(new)}
    for _, script, checksum in upgraded:
        if script in REWRITTEN:
            assert checksum == fresh[script] != recorded_before[script], script
    assert "R__booking_rules.sql" not in {script for _, script, _ in upgraded}
    booking_rules = [checksum for _, script, checksum in upgraded if script == "R__booking.sql"]
    assert booking_rules == [recorded_before["R__booking_rules.sql"], fresh["R__booking.sql"]]
    again = stack_migrate(old)
    assert again.returncode == 0
    assert history(old) == upgraded


def test_a_versioned_migration_changed_in_any_other_way_still_fails_validation(
    old_migrations: Path, databases: Callable[[], str]
) -> None:
    old = databases()
    flyway_migrate(old, old_migrations)
    with psycopg.connect(make_conninfo(_dev_url(), dbname=old), autocommit=True) as conn:
        # V3 as if it had been applied from a file nobody recorded (edited since, by anyone).
        conn.execute("UPDATE flyway_schema_history SET checksum = checksum + 1 WHERE version = '3'")
    ran = stack_migrate(old)
    assert ran.returncode != 0
    assert "checksum mismatch for migration version 3" in (ran.stdout + ran.stderr)
    # The rewrites recorded in the callback were realigned all the same.
    assert "mismatch for migration version 1\n" not in (ran.stdout + ran.stderr)
