"""The outbox relay: publishes committed outbox rows to Kafka, at least once, in order per key.

`OutboxRelay.publish_pending(limit)` is one pass: claim unpublished rows (`FOR UPDATE SKIP
LOCKED`, so concurrent relays never publish the same row at once), send them, wait for the
broker's acks, and mark them published (or count a failed attempt) in the same transaction.
A crash between the send and the commit re-publishes the rows later: consumers de-duplicate
on the CloudEvent id / booking id (docs/adr/0005-outbox-relay.md).

A row the broker refuses for good (`EventRejected`: too large, invalid) is a poison row: it is
dead-lettered (set aside with its error, counted, logged) instead of being retried every pass;
`redrive` puts dead-lettered rows back once the cause is fixed. Any other failure is retried.

`RelayPass` is one pass of the relay's background loop: the composition root runs it in a
`boxoffice.background.BackgroundWorker`, the `OutboxNotifier` the booking service calls after
each commit (`kick()` wakes a daemon thread, started on the first kick, never at import, that
publishes at once and also sweeps every `BOXOFFICE_OUTBOX_SWEEP_SECONDS` for anything left
behind).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from boxoffice import metrics
from boxoffice.services.ports import (
    Backlog,
    DeadLetter,
    EventPublisher,
    EventRejected,
    Failure,
    PendingEvent,
    Progress,
    Published,
)

log = logging.getLogger("boxoffice.relay")

DEFAULT_BATCH = 100
# Passes of a relay thread start at least this far apart (the worker's min_pass_interval). A
# pass costs about as much for one row as for a hundred (a claim, a publish that waits for the
# broker's acks, a mark): at a low rate a booking is published at once, as the first kick after
# a quiet spell starts a pass at once; at a high rate the commits of the last 20 ms go out
# together instead of one pass per booking.
MIN_PASS_INTERVAL = 0.02
ERROR_TEXT_LIMIT = 1000  # characters of an error kept in outbox.last_error


class OutboxBatch(Protocol):
    """Rows claimed (locked) by one relay pass, inside one open transaction."""

    events: list[PendingEvent]

    def mark_published(self, ids: Sequence[uuid.UUID]) -> Published: ...

    def mark_failed(self, failures: Sequence[Failure]) -> None:
        """Count a failed attempt on each row and keep its error; the rows stay claimable."""
        ...

    def mark_dead_lettered(self, failures: Sequence[Failure]) -> list[DeadLetter]:
        """Count the attempt, keep the error and set the rows aside: never claimed again until
        re-driven. Later rows of their keys stay held back behind them (order per key)."""
        ...


class OutboxStore(Protocol):
    def claim(self, limit: int) -> AbstractContextManager[OutboxBatch]:
        """Lock up to `limit` publishable rows; commit on normal exit, roll back on error."""
        ...

    def backlog(self) -> Backlog:
        """Rows waiting to be published (and the oldest's age), and rows dead-lettered."""
        ...

    def redrive(self, ids: Sequence[uuid.UUID] | None) -> list[uuid.UUID]:
        """Put dead-lettered rows (these, or all when None) back to be published; their ids."""
        ...


@dataclass(frozen=True, slots=True)
class PassResult:
    claimed: int = 0
    published: int = 0
    failed: int = 0  # failed for now: retried by a later pass
    dead_lettered: int = 0  # refused for good: set aside
    skipped: bool = False  # the publisher was failing fast (breaker open): nothing claimed
    successors: bool = False  # rows it published have later rows of their key, now claimable


class OutboxRelay:
    """One relay: `store` (the outbox table) -> `publisher` (Kafka).

    `after_send` is a test seam: called after the acks and before the commit (to simulate a
    crash in the one window where a row can be published twice).
    """

    def __init__(
        self,
        store: OutboxStore,
        publisher: EventPublisher,
        *,
        after_send: Callable[[Sequence[PendingEvent]], None] | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self._after_send = after_send

    def publish_pending(self, limit: int = DEFAULT_BATCH) -> PassResult:
        if not self.publisher.available():
            return PassResult(skipped=True)
        with self.store.claim(limit) as batch:
            events = batch.events
            if not events:
                return PassResult()
            outcomes = self.publisher.publish(events)
            if self._after_send is not None:
                self._after_send(events)
            ok: list[uuid.UUID] = []
            failed: list[Failure] = []
            rejected: list[Failure] = []
            for event, outcome in zip(events, outcomes, strict=True):
                if outcome is None:
                    ok.append(event.id)
                elif isinstance(outcome, EventRejected):
                    rejected.append((event.id, describe(outcome)))
                else:
                    failed.append((event.id, describe(outcome)))
            latencies, successors = batch.mark_published(ok)
            batch.mark_failed(failed)
            dead = batch.mark_dead_lettered(rejected) if rejected else []
        # Counted after the commit: a pass that dies before it published nothing.
        metrics.OUTBOX_PUBLISHED.inc(len(ok))
        for seconds in latencies:
            metrics.OUTBOX_PUBLISH_LATENCY.observe(max(0.0, seconds))
        if failed:
            metrics.OUTBOX_PUBLISH_FAILURES.inc(len(failed))
            log.warning(
                "outbox: %d of %d events not published (will retry): %s",
                len(failed),
                len(events),
                failed[0][1],
            )
        for row in dead:
            metrics.OUTBOX_DEAD_LETTERED.inc()
            log.error(
                "outbox: event %s (%s, topic %s, key %s) refused for good after %d attempt(s), "
                "dead-lettered: %s; later events of its key wait behind it. Fix the cause, then "
                "re-drive it: python -m boxoffice.processes.relay --redrive %s",
                row.id,
                row.event_type,
                row.topic,
                row.record_key,
                row.attempts,
                row.error,
                row.id,
            )
        return PassResult(len(events), len(ok), len(failed), len(dead), successors=successors)

    def drain(self, limit: int = DEFAULT_BATCH, max_passes: int = 1000) -> PassResult:
        """Pass after pass while full batches go out, or while a pass made later rows of its
        keys claimable; stops at a short batch, at the first failure or when the publisher
        fails fast. Returns the totals. (No empty pass to confirm a short batch: a row committed
        meanwhile kicks the relay itself, and the sweep catches anything nobody kicked for.)"""
        claimed = published = failed = dead_lettered = 0
        skipped = False
        for _ in range(max_passes):
            result = self.publish_pending(limit)
            claimed += result.claimed
            published += result.published
            failed += result.failed
            dead_lettered += result.dead_lettered
            skipped = result.skipped
            if result.skipped or result.failed or result.claimed == 0:
                break
            if result.claimed < limit and not result.successors:
                break  # the backlog is empty
        return PassResult(claimed, published, failed, dead_lettered, skipped)

    def measure_backlog(self) -> Backlog:
        backlog = self.store.backlog()
        metrics.OUTBOX_BACKLOG.set(backlog.pending)
        metrics.OUTBOX_OLDEST_AGE.set(backlog.oldest_age)
        metrics.OUTBOX_DEAD_LETTERS.set(backlog.dead_lettered)
        return backlog

    def redrive(self, ids: Sequence[uuid.UUID] | None = None) -> list[uuid.UUID]:
        """Dead-lettered rows (these, or all of the relay's topics) back to be published, with
        their attempts reset; the next pass claims them."""
        redriven = self.store.redrive(ids)
        for row_id in redriven:
            log.info("outbox: event %s re-driven: it will be published again", row_id)
        return redriven


def describe(error: BaseException) -> str:
    """An error as kept in `outbox.last_error`: its class and message, bounded."""
    cause = error.__cause__ if isinstance(error, EventRejected) and error.__cause__ else error
    return f"{type(cause).__name__}: {cause}"[:ERROR_TEXT_LIMIT]


class RelayPass:
    """One pass of a relay loop (run by a `boxoffice.background.BackgroundWorker`: kicked after
    each commit, and every `measure_seconds` as a sweep): drain the outbox, and measure the
    backlog when the pass failed, dead-lettered or was skipped, or `measure_seconds` after the
    last measure. Never MORE: `drain` itself goes on while more is due."""

    def __init__(
        self, relay: OutboxRelay, batch: int = DEFAULT_BATCH, measure_seconds: float = 2.0
    ) -> None:
        self.relay = relay
        self._batch = batch
        self._measure_seconds = measure_seconds
        self._next_measure = 0.0

    def __call__(self) -> Progress:
        result = self.relay.drain(self._batch)
        now = time.monotonic()
        if result.failed or result.dead_lettered or result.skipped or now >= self._next_measure:
            self.relay.measure_backlog()
            self._next_measure = now + self._measure_seconds
        return Progress.WORKED if result.claimed else Progress.IDLE
