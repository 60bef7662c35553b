"""PostgreSQL side of the outbox relay: claim unpublished rows, mark them published, failed or
dead-lettered, and re-drive dead-lettered ones.

A claim is one transaction: the rows are locked `FOR UPDATE SKIP LOCKED` (another relay skips
them instead of waiting or publishing them too), sent by the caller, then marked in the same
transaction. If anything fails before the commit, the rollback (or the dropped connection of a
killed process) unlocks them, still unpublished, for the next pass.

A dead-lettered row (`dead_lettered_at` set, `db/migrations/V10__outbox_dead_letter.sql`) is
unpublished but never claimed; it still holds back the later rows of its key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from boxoffice.adapters.postgres import Conn, Database
from boxoffice.services.ports import Backlog, DeadLetter, Failure, PendingEvent, Published

# Oldest first, and only the oldest unpublished row of each (topic, record key): a later event
# of a booking (cancelled) is never claimed, by this relay or a concurrent one, while an earlier
# one (created) is still unpublished, so per-booking order on the topic holds even across relays.
# Dead-lettered rows are not claimed, and (unpublished) they keep holding back their keys.
_CLAIM = """
SELECT o.id, o.topic, o.record_key, o.event_type, o.event_source, o.event_time,
       o.payload::text, o.created_at, o.attempts
  FROM outbox o
 WHERE o.published_at IS NULL AND o.dead_lettered_at IS NULL
   AND (%(topics)s::text[] IS NULL OR o.topic = ANY(%(topics)s::text[]))
   AND NOT EXISTS (
       SELECT 1 FROM outbox e
        WHERE e.published_at IS NULL
          AND e.topic = o.topic AND e.record_key = o.record_key
          AND (e.created_at, e.id) < (o.created_at, o.id))
 ORDER BY o.created_at, o.id
 LIMIT %(limit)s
 FOR UPDATE OF o SKIP LOCKED
"""

# Also says whether a later row of the same (topic, record key) waits: the claim held it back
# behind this one, and it becomes claimable with this commit (the relay then passes again).
_MARK_PUBLISHED = """
UPDATE outbox o SET published_at = clock_timestamp()
 WHERE o.id = ANY(%s::uuid[]) AND o.published_at IS NULL
RETURNING EXTRACT(EPOCH FROM clock_timestamp() - o.created_at)::float8,
          EXISTS (SELECT 1 FROM outbox e
                   WHERE e.published_at IS NULL AND e.topic = o.topic
                     AND e.record_key = o.record_key AND e.id <> o.id)
"""

_MARK_FAILED = """
UPDATE outbox o SET attempts = o.attempts + 1, last_error = f.error
  FROM unnest(%s::uuid[], %s::text[]) AS f(id, error)
 WHERE o.id = f.id AND o.published_at IS NULL
"""

_MARK_DEAD_LETTERED = """
UPDATE outbox o SET attempts = o.attempts + 1, last_error = f.error,
                    dead_lettered_at = clock_timestamp()
  FROM unnest(%s::uuid[], %s::text[]) AS f(id, error)
 WHERE o.id = f.id AND o.published_at IS NULL
RETURNING o.id, o.topic, o.record_key, o.event_type, o.attempts, o.last_error
"""

# One scan of the unpublished rows (outbox_unpublished_idx): dead letters are among them.
_BACKLOG = """
SELECT count(*) FILTER (WHERE dead_lettered_at IS NULL),
       COALESCE(EXTRACT(EPOCH FROM clock_timestamp()
                - min(created_at) FILTER (WHERE dead_lettered_at IS NULL))::float8, 0),
       count(*) FILTER (WHERE dead_lettered_at IS NOT NULL)
  FROM outbox
 WHERE published_at IS NULL
   AND (%(topics)s::text[] IS NULL OR topic = ANY(%(topics)s::text[]))
"""

_REDRIVE = """
UPDATE outbox SET dead_lettered_at = NULL, attempts = 0
 WHERE dead_lettered_at IS NOT NULL AND published_at IS NULL
   AND (%(ids)s::uuid[] IS NULL OR id = ANY(%(ids)s::uuid[]))
   AND (%(topics)s::text[] IS NULL OR topic = ANY(%(topics)s::text[]))
RETURNING id
"""

_DEAD_LETTERS = """
SELECT id, topic, record_key, event_type, attempts, COALESCE(last_error, '')
  FROM outbox
 WHERE dead_lettered_at IS NOT NULL AND published_at IS NULL
   AND (%(topics)s::text[] IS NULL OR topic = ANY(%(topics)s::text[]))
 ORDER BY dead_lettered_at, id
 LIMIT %(limit)s
"""


def _event(row: tuple[Any, ...]) -> PendingEvent:
    return PendingEvent(
        id=row[0],
        topic=row[1],
        record_key=row[2],
        event_type=row[3],
        event_source=row[4],
        event_time=row[5],
        payload=row[6].encode(),
        created_at=row[7],
        attempts=row[8],
    )


class PostgresOutboxBatch:
    def __init__(self, conn: Conn, events: list[PendingEvent]) -> None:
        self._conn = conn
        self.events = events

    def mark_published(self, ids: Sequence[uuid.UUID]) -> Published:
        """Mark acknowledged rows published: each one's seconds since created_at, and whether
        later rows of their keys wait."""
        if not ids:
            return Published([], False)
        rows = self._conn.execute(_MARK_PUBLISHED, (list(ids),)).fetchall()
        return Published([float(r[0]) for r in rows], any(bool(r[1]) for r in rows))

    def mark_failed(self, failures: Sequence[Failure]) -> None:
        if failures:
            self._conn.execute(_MARK_FAILED, _columns(failures))

    def mark_dead_lettered(self, failures: Sequence[Failure]) -> list[DeadLetter]:
        if not failures:
            return []
        rows = self._conn.execute(_MARK_DEAD_LETTERED, _columns(failures)).fetchall()
        return [DeadLetter(*row) for row in rows]


def _columns(failures: Sequence[Failure]) -> tuple[list[uuid.UUID], list[str]]:
    return [f[0] for f in failures], [f[1] for f in failures]


class PostgresOutbox:
    """`OutboxStore` on the shared `Database`. `topics` limits a relay to some topics
    (None: every topic), e.g. `python -m boxoffice.processes.relay --topic booking`."""

    def __init__(self, database: Database, topics: Sequence[str] | None = None) -> None:
        self._db = database
        self._topics = list(topics) if topics is not None else None

    @contextmanager
    def claim(self, limit: int) -> Iterator[PostgresOutboxBatch]:
        """Lock up to `limit` publishable rows; commit on normal exit, roll back on error."""
        with self._db.transaction() as conn:
            rows = conn.execute(_CLAIM, {"topics": self._topics, "limit": limit}).fetchall()
            yield PostgresOutboxBatch(conn, [_event(r) for r in rows])

    def backlog(self) -> Backlog:
        """Rows to publish (and the age in seconds of the oldest), and rows dead-lettered."""
        with self._db.connection() as conn:
            row = conn.execute(_BACKLOG, {"topics": self._topics}).fetchone()
        assert row is not None
        return Backlog(int(row[0]), float(row[1]), int(row[2]))

    def redrive(self, ids: Sequence[uuid.UUID] | None) -> list[uuid.UUID]:
        """Dead-lettered rows (these, or all of this relay's topics) back to be published."""
        params = {"ids": list(ids) if ids is not None else None, "topics": self._topics}
        with self._db.transaction() as conn:
            return [row[0] for row in conn.execute(_REDRIVE, params).fetchall()]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The dead-lettered rows of this relay's topics, oldest first."""
        with self._db.connection() as conn:
            rows = conn.execute(_DEAD_LETTERS, {"topics": self._topics, "limit": limit})
            return [DeadLetter(*row) for row in rows.fetchall()]
