"""The outbox relay use case and its background worker, with in-memory fakes (no servers)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest

from boxoffice import metrics
from boxoffice.background import BackgroundWorker
from boxoffice.config import Settings
from boxoffice.errors import ConfigurationError
from boxoffice.services.ports import (
    Backlog,
    DeadLetter,
    EventRejected,
    Failure,
    PendingEvent,
    Published,
)
from boxoffice.services.relay import MIN_PASS_INTERVAL, OutboxRelay, RelayPass

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def event(key: str = "b-1", topic: str = "booking") -> PendingEvent:
    return PendingEvent(
        id=uuid.uuid4(),
        topic=topic,
        record_key=key,
        event_type="com.boxoffice.booking.created",
        event_source="/boxoffice/bookings",
        event_time=NOW,
        payload=b'{"bookingId":"b-1"}',
        created_at=NOW,
    )


@dataclass
class Row:
    event: PendingEvent
    published: bool = False
    attempts: int = 0
    dead_lettered: bool = False
    last_error: str = ""


@dataclass
class FakeBatch:
    events: list[PendingEvent]
    waiting: set[tuple[str, str]] = field(default_factory=set)  # keys with rows held back
    published: list[uuid.UUID] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    dead: list[Failure] = field(default_factory=list)

    def mark_published(self, ids: Sequence[uuid.UUID]) -> Published:
        self.published.extend(ids)
        keys = {(e.topic, e.record_key) for e in self.events if e.id in ids}
        return Published([0.5 for _ in ids], bool(keys & self.waiting))

    def mark_failed(self, failures: Sequence[Failure]) -> None:
        self.failed.extend(failures)

    def mark_dead_lettered(self, failures: Sequence[Failure]) -> list[DeadLetter]:
        self.dead.extend(failures)
        by_id = {e.id: e for e in self.events}
        return [
            DeadLetter(i, by_id[i].topic, by_id[i].record_key, by_id[i].event_type, 1, error)
            for i, error in failures
        ]


class FakeStore:
    """Applies a batch's marks only when the claim block exits normally (the commit)."""

    def __init__(self, events: Sequence[PendingEvent] = ()) -> None:
        self.rows = {e.id: Row(e) for e in events}
        self.claims = 0
        self.lock = threading.Lock()

    def add(self, *events: PendingEvent) -> None:
        with self.lock:
            self.rows.update({e.id: Row(e) for e in events})

    @contextmanager
    def claim(self, limit: int) -> Iterator[FakeBatch]:
        """The oldest unpublished row of each key, as the real claim (later ones held back, also
        behind a dead-lettered one, which is never claimed)."""
        with self.lock:
            self.claims += 1
            pending, held, seen = [], set(), set()
            for r in self.rows.values():
                key = (r.event.topic, r.event.record_key)
                if r.published:
                    continue
                if key in seen:
                    held.add(key)
                    continue
                seen.add(key)
                if not r.dead_lettered:
                    pending.append(r.event)
        batch = FakeBatch(pending[:limit], held)
        yield batch
        with self.lock:
            for i in batch.published:
                self.rows[i].published = True
            for i, error in batch.failed:
                self.rows[i].attempts += 1
                self.rows[i].last_error = error
            for i, error in batch.dead:
                self.rows[i].attempts += 1
                self.rows[i].last_error = error
                self.rows[i].dead_lettered = True

    def backlog(self) -> Backlog:
        with self.lock:
            rows = [r for r in self.rows.values() if not r.published]
            dead = sum(1 for r in rows if r.dead_lettered)
            return Backlog(len(rows) - dead, 1.5, dead)

    def redrive(self, ids: Sequence[uuid.UUID] | None) -> list[uuid.UUID]:
        with self.lock:
            back = [
                i
                for i, r in self.rows.items()
                if r.dead_lettered and not r.published and (ids is None or i in ids)
            ]
            for i in back:
                self.rows[i].dead_lettered = False
                self.rows[i].attempts = 0
            return back

    def unpublished(self) -> set[uuid.UUID]:
        with self.lock:
            return {i for i, r in self.rows.items() if not r.published}


class FakePublisher:
    def __init__(
        self,
        fail: set[uuid.UUID] | None = None,
        up: bool = True,
        refuse: set[uuid.UUID] | None = None,
    ) -> None:
        self.fail = fail or set()  # transient failures
        self.refuse = refuse or set()  # refused for good
        self.up = up
        self.sent: list[uuid.UUID] = []

    def available(self) -> bool:
        return self.up

    def publish(self, events: Sequence[PendingEvent]) -> list[BaseException | None]:
        self.sent.extend(e.id for e in events)
        return [self._outcome(e.id) for e in events]

    def _outcome(self, event_id: uuid.UUID) -> BaseException | None:
        if event_id in self.refuse:
            return EventRejected("MessageSizeTooLargeError: too large for the topic")
        return RuntimeError("nack") if event_id in self.fail else None

    def close(self) -> None:
        pass


def counter(c: object) -> float:
    return float(c._value.get())  # type: ignore[attr-defined]


def test_a_pass_publishes_and_marks_every_acknowledged_row() -> None:
    events = [event(f"b-{i}") for i in range(3)]
    store, publisher = FakeStore(events), FakePublisher()
    published_before = counter(metrics.OUTBOX_PUBLISHED)

    result = OutboxRelay(store, publisher).publish_pending(10)

    assert (result.claimed, result.published, result.failed) == (3, 3, 0)
    assert publisher.sent == [e.id for e in events]  # in claim (created_at) order
    assert store.unpublished() == set()
    assert counter(metrics.OUTBOX_PUBLISHED) - published_before == 3


def test_failed_rows_stay_unpublished_with_an_attempt_counted() -> None:
    ok, bad = event("b-1"), event("b-2")
    store = FakeStore([ok, bad])
    failures_before = counter(metrics.OUTBOX_PUBLISH_FAILURES)

    result = OutboxRelay(store, FakePublisher(fail={bad.id})).publish_pending(10)

    assert (result.published, result.failed) == (1, 1)
    assert store.unpublished() == {bad.id}
    assert store.rows[bad.id].attempts == 1
    assert store.rows[bad.id].last_error == "RuntimeError: nack"
    assert not store.rows[bad.id].dead_lettered
    assert store.rows[ok.id].attempts == 0
    assert counter(metrics.OUTBOX_PUBLISH_FAILURES) - failures_before == 1


def test_nothing_is_claimed_while_the_publisher_fails_fast() -> None:
    store = FakeStore([event()])
    result = OutboxRelay(store, FakePublisher(up=False)).publish_pending(10)
    assert result.skipped
    assert store.claims == 0
    assert len(store.unpublished()) == 1


def test_a_crash_after_the_send_commits_nothing() -> None:
    store = FakeStore([event("b-1"), event("b-2")])
    publisher = FakePublisher()

    def crash(_: Sequence[PendingEvent]) -> None:
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        OutboxRelay(store, publisher, after_send=crash).publish_pending(10)
    assert len(publisher.sent) == 2
    assert len(store.unpublished()) == 2  # re-published by the next pass: at least once

    OutboxRelay(store, publisher).publish_pending(10)
    assert store.unpublished() == set()
    assert len(publisher.sent) == 4  # the duplicates carry the same ids


def test_drain_passes_until_empty_and_stops_at_a_failure() -> None:
    store = FakeStore([event(f"b-{i}") for i in range(25)])
    result = OutboxRelay(store, FakePublisher()).drain(limit=10)
    assert (result.published, result.failed) == (25, 0)
    assert store.claims == 3  # 10 + 10 + 5: a short batch ends the drain

    bad = event("b-x")
    store = FakeStore([bad, *[event(f"b-{i}") for i in range(25)]])
    result = OutboxRelay(store, FakePublisher(fail={bad.id})).drain(limit=10)
    assert (result.published, result.failed) == (9, 1)
    assert store.claims == 1


def test_drain_passes_again_when_a_published_row_had_a_later_one_of_its_key() -> None:
    created, other = event("b-1"), event("b-2")
    cancelled = replace(event("b-1"), event_type="com.boxoffice.booking.cancelled")
    store = FakeStore([created, other, cancelled])
    publisher = FakePublisher()
    result = OutboxRelay(store, publisher).drain(limit=10)
    assert result.published == 3
    assert store.claims == 2  # the short first batch held `cancelled` back behind `created`
    assert publisher.sent == [created.id, other.id, cancelled.id]


def test_measure_backlog_sets_the_gauges() -> None:
    poison = event("b-3")
    store = FakeStore([event(), event("b-2"), poison])
    store.rows[poison.id].dead_lettered = True
    relay = OutboxRelay(store, FakePublisher())
    assert relay.measure_backlog() == Backlog(2, 1.5, 1)
    assert metrics.OUTBOX_BACKLOG._value.get() == 2
    assert metrics.OUTBOX_OLDEST_AGE._value.get() == 1.5
    assert metrics.OUTBOX_DEAD_LETTERS._value.get() == 1


def wait_until(predicate: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def relay_worker(
    relay: OutboxRelay, sweep_seconds: float = 2.0, min_pass_interval: float = MIN_PASS_INTERVAL
) -> BackgroundWorker:
    """The relay's background loop as the composition root builds it."""
    return BackgroundWorker(
        "test-outbox-relay",
        RelayPass(relay, measure_seconds=sweep_seconds),
        sweep_seconds,
        min_pass_interval=min_pass_interval,
    )


def test_worker_starts_on_the_first_kick_and_publishes_promptly() -> None:
    store = FakeStore()
    worker = relay_worker(OutboxRelay(store, FakePublisher()), sweep_seconds=60)
    assert not worker.running  # nothing runs at construction
    try:
        store.add(event())
        worker.kick()
        wait_until(lambda: not store.unpublished())
        assert worker.running
        store.add(event("b-2"))
        worker.kick()  # wakes the sleeping thread long before the 60 s sweep
        wait_until(lambda: not store.unpublished())
    finally:
        worker.stop()
    assert not worker.running


def test_worker_sweeps_without_kicks_and_survives_a_failing_pass() -> None:
    store = FakeStore()
    calls = {"n": 0}
    real_claim = store.claim

    def flaky_claim(limit: int):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database down")
        return real_claim(limit)

    store.claim = flaky_claim  # type: ignore[method-assign]
    worker = relay_worker(OutboxRelay(store, FakePublisher()), sweep_seconds=0.05)
    try:
        worker.kick()  # the first pass fails; the loop keeps going
        store.add(event())  # committed without a kick: the sweep finds it
        wait_until(lambda: not store.unpublished())
    finally:
        worker.stop()
    assert calls["n"] > 1


def test_a_stopped_worker_restarts_on_the_next_kick() -> None:
    store = FakeStore()
    worker = relay_worker(OutboxRelay(store, FakePublisher()), sweep_seconds=60)
    worker.stop()  # before any start: harmless
    assert not worker.running
    worker.kick()
    assert worker.running
    worker.stop()
    assert not worker.running
    try:
        store.add(event())
        worker.kick()
        wait_until(lambda: not store.unpublished())
    finally:
        worker.stop()


def test_sweep_interval_comes_from_the_environment() -> None:
    base = {"BOXOFFICE_DATABASE_URL": "postgresql://x", "BOXOFFICE_OIDC_ISSUER": "http://i"}
    assert Settings.from_env(base).outbox_sweep_seconds == 2.0
    env = {**base, "BOXOFFICE_OUTBOX_SWEEP_SECONDS": "0.5"}
    assert Settings.from_env(env).outbox_sweep_seconds == 0.5
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ConfigurationError, match="BOXOFFICE_OUTBOX_SWEEP_SECONDS"):
            Settings.from_env({**base, "BOXOFFICE_OUTBOX_SWEEP_SECONDS": bad})


def test_pending_event_is_a_value() -> None:
    e = event()
    assert replace(e) == e


def test_kicks_of_a_burst_are_gathered_into_passes_at_most_every_20_ms() -> None:
    store = FakeStore()
    passes = {"n": 0}
    real_claim = store.claim

    def counted_claim(limit: int):  # type: ignore[no-untyped-def]
        passes["n"] += 1
        return real_claim(limit)

    store.claim = counted_claim  # type: ignore[method-assign]
    worker = relay_worker(OutboxRelay(store, FakePublisher()), sweep_seconds=60)
    try:
        began = time.monotonic()
        for i in range(100):  # 100 commits, one kick each, over ~100 ms
            store.add(event(f"b-{i}"))
            worker.kick()
            time.sleep(0.001)
        wait_until(lambda: not store.unpublished())
        elapsed = time.monotonic() - began
    finally:
        worker.stop()
    # One pass per kick before; now at most one per 20 ms (and the first at once).
    assert passes["n"] <= elapsed / 0.02 + 2, (passes["n"], elapsed)


def test_the_first_kick_after_a_quiet_spell_publishes_at_once() -> None:
    store = FakeStore()
    relay = OutboxRelay(store, FakePublisher())
    worker = relay_worker(relay, sweep_seconds=60, min_pass_interval=0.5)
    try:
        store.add(event())
        worker.kick()
        wait_until(lambda: not store.unpublished())
        time.sleep(0.6)  # quiet for longer than the pass interval
        store.add(event("b-2"))
        began = time.monotonic()
        worker.kick()
        wait_until(lambda: not store.unpublished())
        assert time.monotonic() - began < 0.25  # not held back for the interval
    finally:
        worker.stop()


# -- poison rows: dead-lettered, not retried forever ------------------------------------------


def test_a_row_refused_for_good_is_dead_lettered_counted_and_logged_and_the_rest_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, poison, last = event("b-1"), event("b-2"), event("b-3")
    store = FakeStore([first, poison, last])
    before = counter(metrics.OUTBOX_DEAD_LETTERED)

    with caplog.at_level("ERROR", logger="boxoffice.relay"):
        result = OutboxRelay(store, FakePublisher(refuse={poison.id})).publish_pending(10)

    assert (result.published, result.failed, result.dead_lettered) == (2, 0, 1)
    assert store.unpublished() == {poison.id}
    row = store.rows[poison.id]
    assert row.dead_lettered
    assert row.last_error == "EventRejected: MessageSizeTooLargeError: too large for the topic"
    assert counter(metrics.OUTBOX_DEAD_LETTERED) - before == 1
    [record] = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert str(poison.id) in record.getMessage()
    assert f"--redrive {poison.id}" in record.getMessage()


def test_a_dead_lettered_row_is_never_claimed_again_and_drain_goes_on_past_it() -> None:
    poisons = [event(f"p-{i}") for i in range(10)]
    good = [event(f"g-{i}") for i in range(15)]
    store = FakeStore([*poisons, *good])
    publisher = FakePublisher(refuse={p.id for p in poisons})

    result = OutboxRelay(store, publisher).drain(limit=10)

    # The first batch was all poison: before, every later pass claimed them again and the
    # rows behind them waited for ever; now they are set aside and the drain goes on.
    assert (result.published, result.dead_lettered, result.failed) == (15, 10, 0)
    assert store.unpublished() == {p.id for p in poisons}
    sent = len(publisher.sent)
    assert OutboxRelay(store, publisher).drain(limit=10).claimed == 0
    assert len(publisher.sent) == sent  # never sent again


def test_a_transient_failure_is_retried_however_often_it_fails() -> None:
    flaky = event("b-1")
    store = FakeStore([flaky])
    relay = OutboxRelay(store, FakePublisher(fail={flaky.id}))
    for _ in range(50):
        assert relay.publish_pending(10).failed == 1
    assert store.rows[flaky.id].attempts == 50
    assert not store.rows[flaky.id].dead_lettered
    assert OutboxRelay(store, FakePublisher()).publish_pending(10).published == 1


def test_later_events_of_a_dead_lettered_key_wait_until_it_is_re_driven() -> None:
    created = event("b-1")
    cancelled = replace(event("b-1"), event_type="com.boxoffice.booking.cancelled")
    store = FakeStore([created, cancelled])
    OutboxRelay(store, FakePublisher(refuse={created.id})).drain(limit=10)
    assert store.unpublished() == {created.id, cancelled.id}  # order per booking kept

    publisher = FakePublisher()  # the cause fixed (e.g. the topic's size limit raised)
    relay = OutboxRelay(store, publisher)
    assert relay.drain(limit=10).claimed == 0
    assert relay.redrive([created.id]) == [created.id]
    assert store.rows[created.id].attempts == 0
    assert relay.drain(limit=10).published == 2
    assert publisher.sent == [created.id, cancelled.id]
