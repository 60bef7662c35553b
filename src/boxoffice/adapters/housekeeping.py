"""PostgreSQL pruning of rows that have served their purpose (docs/adr/0013-housekeeping.md).

Each call deletes at most `batch` rows in one short transaction: the rows are picked with
`FOR UPDATE SKIP LOCKED` (rows another transaction holds, e.g. an idempotency key being reused
right now, are skipped, and two pruning passes running at once take different rows) and deleted
by `ctid`, so no statement ever holds many locks or runs long. Outbox rows are pruned only once
published (never while waiting or dead-lettered), through `outbox_published_idx` (V10).
"""

from __future__ import annotations

from boxoffice.adapters.postgres import Database

# table -> the condition that makes a row prunable (parameter: %(days)s, retention in days)
_DUE = {
    "idempotency_record": "expires_at < now()",
    "order_event": "processed_at < now() - make_interval(days => %(days)s)",
    "outbox": "published_at < now() - make_interval(days => %(days)s)",
}
TABLES = tuple(_DUE)


class PostgresHousekeeping:
    def __init__(self, database: Database) -> None:
        self._database = database

    def prune_batch(self, table: str, batch: int, retention_days: int) -> int:
        """Delete up to `batch` due rows of `table`; the number deleted."""
        due = _DUE[table]
        # One transaction, so that SET LOCAL applies to the DELETE (in autocommit it would not).
        with self._database.transaction() as conn:
            conn.execute("SET LOCAL lock_timeout = '2s'")
            cur = conn.execute(
                f"""DELETE FROM {table} WHERE ctid IN (
                        SELECT ctid FROM {table} WHERE {due}
                         LIMIT %(batch)s FOR UPDATE SKIP LOCKED)""",  # noqa: S608 - fixed names
                {"batch": batch, "days": retention_days},
            )
            return cur.rowcount
