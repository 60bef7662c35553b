"""The outbox relay against the real PostgreSQL and Kafka of the local stack.

Outbox rows are inserted directly with SQL (the table has no foreign keys), each test on its own
fresh topic, and every relay here is limited to that topic: the shared `outbox` table and the
shared `booking` topic are never touched. Kafka outages are simulated with a relay pointed at a
closed port, never by stopping the shared broker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cloudevents.kafka import KafkaMessage, from_binary
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from boxoffice import bootstrap as composition
from boxoffice import metrics
from boxoffice.adapters.kafka import KafkaEventPublisher
from boxoffice.adapters.outbox import PostgresOutbox
from boxoffice.adapters.postgres import Database
from boxoffice.background import BackgroundWorker
from boxoffice.processes.relay import main as relay_main
from boxoffice.services.ports import PendingEvent
from boxoffice.services.relay import MIN_PASS_INTERVAL, OutboxRelay, RelayPass

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
EVENT_SOURCE = "/boxoffice/bookings"
CREATED = "com.boxoffice.booking.created"
CANCELLED = "com.boxoffice.booking.cancelled"


# -- fixtures --------------------------------------------------------------------------------


def require_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack (`stack/boxo up`) and export its environment "
            "(`set -a; . .state/env; set +a`, or `make test`)",
            pytrace=False,
        )
    return value


@pytest.fixture(autouse=True)
def _no_background_relay_of_the_process() -> None:
    """Other tests of this process (bookings) may have started the container's relay thread;
    it relays every topic, so it would publish these tests' rows behind their backs. Stop it
    (a later kick restarts it)."""
    container = composition._container
    if container is not None:
        for value in list(vars(container).values()):
            if isinstance(value, BackgroundWorker):
                value.stop()


@pytest.fixture(scope="module")
def database_url() -> str:
    return require_env("BOXOFFICE_DATABASE_URL")


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return require_env("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="module")
def admin(bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="boxoffice-it-relay")
    yield client
    client.close()


@pytest.fixture(scope="module")
def sql(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def topic(admin: KafkaAdminClient, sql: psycopg.Connection[Any]) -> Iterator[str]:
    name = f"it-outbox-{uuid.uuid4().hex[:12]}"
    admin.create_topics(
        {name: {"num_partitions": PARTITIONS, "replication_factor": 1}}, wait_for_metadata=True
    )
    yield name
    sql.execute("DELETE FROM outbox WHERE topic = %s", (name,))
    admin.delete_topics([name])


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url, min_size=1, max_size=4, timeout=5.0)
    yield db
    db.close()


@pytest.fixture
def publishers(bootstrap: str) -> Iterator[list[KafkaEventPublisher]]:
    """Factory list: every publisher appended here is closed after the test."""
    made: list[KafkaEventPublisher] = []
    yield made
    for p in made:
        p.close()


def make_publisher(
    made: list[KafkaEventPublisher], servers: str, **kwargs: Any
) -> KafkaEventPublisher:
    publisher = KafkaEventPublisher(servers, client_id=f"it-relay-{uuid.uuid4().hex[:6]}", **kwargs)
    made.append(publisher)
    return publisher


# -- helpers ---------------------------------------------------------------------------------


def insert_events(
    sql: psycopg.Connection[Any], topic: str, keys: Sequence[str], event_type: str = CREATED
) -> list[uuid.UUID]:
    """One committed outbox row per key (created_at strictly increasing, as separate commits)."""
    ids = []
    for i, key in enumerate(keys):
        event_id = uuid.uuid4()
        # The numeric text is kept exactly (jsonb numeric, read back as text, never a float).
        payload = json.dumps({"bookingId": key, "seq": i, "type": event_type})[:-1]
        payload += ', "total": 12.50}'
        sql.execute(
            """INSERT INTO outbox (id, topic, record_key, event_type, event_source, event_time,
                                   payload, created_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, clock_timestamp())""",
            (event_id, topic, key, event_type, EVENT_SOURCE, datetime.now(UTC), payload),
        )
        ids.append(event_id)
    return ids


def outbox_rows(sql: psycopg.Connection[Any], topic: str) -> dict[uuid.UUID, tuple[Any, ...]]:
    rows = sql.execute(
        """SELECT id, published_at, attempts, record_key, event_type, event_time, payload::text
             FROM outbox WHERE topic = %s""",
        (topic,),
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record on the topic (up to the current end offsets), in offset order per partition."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="it-relay-reader"
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + 15
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "timed out reading the topic"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def ce_ids(records: Sequence[Any]) -> list[uuid.UUID]:
    return [uuid.UUID(dict(r.headers)["ce_id"].decode()) for r in records]


def relay_for(
    database: Database,
    topic: str,
    publisher: KafkaEventPublisher,
    after_send: Any = None,
) -> OutboxRelay:
    return OutboxRelay(PostgresOutbox(database, [topic]), publisher, after_send=after_send)


# -- tests -----------------------------------------------------------------------------------


def test_every_committed_row_is_published_exactly_once_as_a_binary_cloudevent(
    sql: psycopg.Connection[Any],
    topic: str,
    bootstrap: str,
    database: Database,
    publishers: list[KafkaEventPublisher],
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(20)]
    created = insert_events(sql, topic, keys)
    cancelled = insert_events(sql, topic, keys[:5], CANCELLED)  # later events of 5 bookings
    expected = set(created) | set(cancelled)
    published_before = metrics.OUTBOX_PUBLISHED._value.get()
    relay = relay_for(database, topic, make_publisher(publishers, bootstrap))

    result = relay.drain(limit=50)

    assert result.published == len(expected)
    assert result.failed == 0
    assert metrics.OUTBOX_PUBLISHED._value.get() - published_before == len(expected)
    assert relay.measure_backlog() == (0, 0.0, 0)
    rows = outbox_rows(sql, topic)
    assert all(r[0] is not None and r[1] == 0 for r in rows.values())

    records = read_topic(bootstrap, topic)
    assert Counter(ce_ids(records)) == Counter(expected)  # each exactly once
    position: dict[uuid.UUID, tuple[int, int]] = {}
    for record in records:
        event = from_binary(
            KafkaMessage(dict(record.headers), record.key, record.value),
            data_unmarshaller=lambda b: b,
        )
        event_id = uuid.UUID(event["id"])
        _, _, key, event_type, event_time, payload = rows[event_id]
        assert event["specversion"] == "1.0"
        assert event["type"] == event_type
        assert event["source"] == EVENT_SOURCE
        assert event["subject"] == key
        assert event["datacontenttype"] == "application/json"
        assert datetime.fromisoformat(event["time"]) == event_time
        assert event["time"].endswith("Z")
        assert record.key == key.encode()
        assert record.value == payload.encode()  # the stored JSON, byte for byte
        assert b'"total": 12.50' in record.value
        assert json.loads(record.value)["bookingId"] == key
        position[event_id] = (record.partition, record.offset)
    for i in range(5):  # per booking: created before cancelled, on the same partition
        assert position[created[i]][0] == position[cancelled[i]][0]
        assert position[created[i]][1] < position[cancelled[i]][1]


def test_kafka_down_fails_fast_keeps_rows_and_opens_the_breaker_then_recovers(
    sql: psycopg.Connection[Any],
    topic: str,
    bootstrap: str,
    database: Database,
    publishers: list[KafkaEventPublisher],
) -> None:
    ids = insert_events(sql, topic, [str(uuid.uuid4()) for _ in range(5)])
    dead = make_publisher(
        publishers,
        "127.0.0.1:1",  # nothing listens: connection refused
        bootstrap_timeout_ms=500,
        max_block_ms=500,
        request_timeout_ms=500,
        delivery_timeout_ms=1000,
        failure_threshold=2,
        recovery_timeout=60,
    )
    down = relay_for(database, topic, dead)
    failures_before = metrics.OUTBOX_PUBLISH_FAILURES._value.get()

    for _ in range(2):
        started = time.monotonic()
        result = down.publish_pending(100)
        assert time.monotonic() - started < 3.0  # bounded by the bootstrap timeout
        assert (result.claimed, result.published, result.failed) == (5, 0, 5)
    assert dead.breaker.opened
    assert metrics.BREAKER_STATE.labels("kafka")._value.get() == 1

    started = time.monotonic()
    assert down.publish_pending(100).skipped  # open breaker: fails fast, claims nothing
    assert time.monotonic() - started < 0.2
    assert metrics.OUTBOX_PUBLISH_FAILURES._value.get() - failures_before == 10
    rows = outbox_rows(sql, topic)
    assert {i: (r[0], r[1]) for i, r in rows.items()} == dict.fromkeys(ids, (None, 2))
    # A dead broker is transient, however often it fails: retried, never dead-lettered.
    backlog = down.measure_backlog()
    assert (backlog.pending, backlog.dead_lettered) == (5, 0)
    assert dead_lettered(sql, topic) == {}
    assert metrics.OUTBOX_BACKLOG._value.get() == 5
    assert read_topic(bootstrap, topic) == []

    up = relay_for(database, topic, make_publisher(publishers, bootstrap))
    assert up.drain().published == 5
    assert metrics.BREAKER_STATE.labels("kafka")._value.get() == 0
    assert all(r[0] is not None for r in outbox_rows(sql, topic).values())
    assert Counter(ce_ids(read_topic(bootstrap, topic))) == Counter(ids)


CRASHING_RELAY = textwrap.dedent(
    """
    import os, signal, sys
    from boxoffice.adapters.kafka import KafkaEventPublisher
    from boxoffice.adapters.outbox import PostgresOutbox
    from boxoffice.adapters.postgres import Database
    from boxoffice.services.relay import OutboxRelay

    def die(events):
        print(len(events), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # acked by Kafka, not yet committed

    url, servers, topic = sys.argv[1:]
    relay = OutboxRelay(
        PostgresOutbox(Database(url), [topic]), KafkaEventPublisher(servers), after_send=die
    )
    relay.publish_pending(100)
    print("survived", flush=True)
    """
)


def test_relay_killed_between_send_and_commit_loses_nothing(
    sql: psycopg.Connection[Any],
    topic: str,
    bootstrap: str,
    database_url: str,
    database: Database,
    publishers: list[KafkaEventPublisher],
) -> None:
    ids = insert_events(sql, topic, [str(uuid.uuid4()) for _ in range(8)])

    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RELAY, database_url, bootstrap, topic],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr
    assert crashed.stdout.split() == ["8"]
    # Sent and acknowledged, but the marking transaction died with the process.
    assert Counter(ce_ids(read_topic(bootstrap, topic))) == Counter(ids)
    assert all(r[0] is None for r in outbox_rows(sql, topic).values())

    relay = relay_for(database, topic, make_publisher(publishers, bootstrap))
    assert relay.drain().published == 8
    assert all(r[0] is not None for r in outbox_rows(sql, topic).values())
    # At least once: every event is on the topic; the crash window duplicated each one, and a
    # duplicate carries the same CloudEvent id (what consumers de-duplicate on).
    records = read_topic(bootstrap, topic)
    assert Counter(ce_ids(records)) == Counter(dict.fromkeys(ids, 2))
    by_id: dict[str, set[bytes]] = {}
    for r in records:
        by_id.setdefault(dict(r.headers)["ce_id"].decode(), set()).add(r.value)
    assert all(len(values) == 1 for values in by_id.values())  # identical copies


def test_a_failure_after_the_send_rolls_back_and_the_next_pass_republishes(
    sql: psycopg.Connection[Any],
    topic: str,
    bootstrap: str,
    database: Database,
    publishers: list[KafkaEventPublisher],
) -> None:
    ids = insert_events(sql, topic, [str(uuid.uuid4()) for _ in range(3)])

    def boom(_events: Sequence[PendingEvent]) -> None:
        raise RuntimeError("crash before commit")

    publisher = make_publisher(publishers, bootstrap)
    with pytest.raises(RuntimeError):
        relay_for(database, topic, publisher, after_send=boom).publish_pending()
    assert all(r[0] is None and r[1] == 0 for r in outbox_rows(sql, topic).values())

    assert relay_for(database, topic, publisher).drain().published == 3
    assert Counter(ce_ids(read_topic(bootstrap, topic))) == Counter(dict.fromkeys(ids, 2))


def test_two_concurrent_relays_never_publish_the_same_row_and_keep_per_key_order(
    sql: psycopg.Connection[Any],
    topic: str,
    bootstrap: str,
    database_url: str,
    publishers: list[KafkaEventPublisher],
) -> None:
    keys = [str(uuid.uuid4()) for _ in range(120)]
    created = insert_events(sql, topic, keys)
    cancelled = insert_events(sql, topic, keys[:40], CANCELLED)
    claimed: list[list[uuid.UUID]] = [[], []]
    totals = [0, 0]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        def hold(events: Sequence[PendingEvent]) -> None:
            claimed[n].extend(e.id for e in events)
            time.sleep(0.02)  # keep the rows locked a while so that the relays overlap

        db = Database(database_url, min_size=1, max_size=2, timeout=5.0)
        try:
            relay = relay_for(db, topic, make_publisher(publishers, bootstrap), hold)
            start.wait()
            idle = 0
            while idle < 3:
                result = relay.publish_pending(10)
                assert result.failed == 0
                totals[n] += result.published
                idle = idle + 1 if result.claimed == 0 else 0
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors

    expected = set(created) | set(cancelled)
    assert sum(totals) == len(expected)
    assert totals[0] > 0, totals  # both really worked
    assert totals[1] > 0, totals
    assert not set(claimed[0]) & set(claimed[1])  # no row claimed by both
    records = read_topic(bootstrap, topic)
    assert Counter(ce_ids(records)) == Counter(expected)  # exactly once
    position = {uuid.UUID(dict(r.headers)["ce_id"].decode()): r.offset for r in records}
    for first, second in zip(created, cancelled, strict=False):
        assert position[first] < position[second]  # same key, same partition


def test_a_later_event_of_a_booking_waits_until_the_earlier_one_is_published(
    sql: psycopg.Connection[Any], topic: str, database: Database
) -> None:
    """Per-key order across relays: while one relay holds `created` of a booking, another relay
    must not claim its `cancelled` (it would race it onto the partition)."""
    key = str(uuid.uuid4())
    [created] = insert_events(sql, topic, [key])
    [cancelled] = insert_events(sql, topic, [key], CANCELLED)
    [other] = insert_events(sql, topic, [str(uuid.uuid4())])
    store = PostgresOutbox(database, [topic])

    with store.claim(1) as first:
        assert [e.id for e in first.events] == [created]
        with store.claim(10) as second:  # a concurrent relay (second connection)
            assert [e.id for e in second.events] == [other]
        first.mark_failed([(created, "KafkaTimeoutError: test")])
    with store.claim(10) as retry:  # a failed attempt still blocks the later event
        assert [e.id for e in retry.events] == [created, other]
        # Publishing `created` says that a later row of its key waits (the relay passes again).
        assert retry.mark_published([created]).successors
    with store.claim(10) as after:
        assert [e.id for e in after.events] == [cancelled, other]
        assert not after.mark_published([cancelled, other]).successors


def test_kick_publishes_promptly_and_the_sweep_catches_rows_nobody_kicked_for(
    sql: psycopg.Connection[Any],
    topic: str,
    bootstrap: str,
    database: Database,
    publishers: list[KafkaEventPublisher],
) -> None:
    relay = relay_for(database, topic, make_publisher(publishers, bootstrap))
    worker = BackgroundWorker(
        "test-outbox-relay",
        RelayPass(relay, measure_seconds=0.5),
        0.5,
        min_pass_interval=MIN_PASS_INTERVAL,
    )
    assert not worker.running  # nothing starts before the first kick
    try:
        first = insert_events(sql, topic, [str(uuid.uuid4()) for _ in range(3)])
        kicked = time.monotonic()
        worker.kick()
        wait_published(sql, topic, 3)
        assert time.monotonic() - kicked < 2.0
        assert worker.running

        later = insert_events(sql, topic, [str(uuid.uuid4()) for _ in range(2)])  # no kick
        wait_published(sql, topic, 5)
    finally:
        worker.stop()
    assert not worker.running
    assert Counter(ce_ids(read_topic(bootstrap, topic))) == Counter(first + later)


def wait_published(sql: psycopg.Connection[Any], topic: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        rows = outbox_rows(sql, topic).values()
        if sum(1 for r in rows if r[0] is not None) >= count:
            return
        assert time.monotonic() < deadline, "relay did not publish in time"
        time.sleep(0.05)


def test_standalone_relay_once_drains_its_topic(
    sql: psycopg.Connection[Any],
    topic: str,
    bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = insert_events(sql, topic, [str(uuid.uuid4()) for _ in range(4)])
    old = insert_events(sql, topic, [str(uuid.uuid4())])
    sql.execute(
        "UPDATE outbox SET created_at = created_at - interval '1 minute' WHERE id = %s",
        (old[0],),
    )
    monkeypatch.setenv("BOXOFFICE_OIDC_ISSUER", os.environ.get("BOXOFFICE_OIDC_ISSUER", "x"))

    assert relay_main(["--once", "--topic", topic]) == 0

    assert all(r[0] is not None for r in outbox_rows(sql, topic).values())
    assert Counter(ce_ids(read_topic(bootstrap, topic))) == Counter(ids + old)
    # The latency histogram saw the minute-old event.
    buckets = {
        s.labels["le"]: s.value
        for m in metrics.OUTBOX_PUBLISH_LATENCY.collect()
        for s in m.samples
        if s.name.endswith("_bucket")
    }
    assert buckets["30.0"] < buckets["300.0"]


def test_standalone_relay_runs_as_a_module(sql: psycopg.Connection[Any], topic: str) -> None:
    insert_events(sql, topic, [str(uuid.uuid4()) for _ in range(2)])
    env = {**os.environ, "BOXOFFICE_OIDC_ISSUER": os.environ.get("BOXOFFICE_OIDC_ISSUER", "x")}
    done = subprocess.run(
        [sys.executable, "-m", "boxoffice.processes.relay", "--once", "--topic", topic],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "published 2, failed 0, left 0" in done.stderr
    assert all(r[0] is not None for r in outbox_rows(sql, topic).values())


def test_backlog_gauges_report_count_and_oldest_age(
    sql: psycopg.Connection[Any], topic: str, database: Database
) -> None:
    """The backlog gauges: count and age of the oldest unpublished row (per relay's topics)."""
    insert_events(sql, topic, [str(uuid.uuid4())])
    sql.execute(
        "UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE topic = %s", (topic,)
    )
    relay = OutboxRelay(PostgresOutbox(database, [topic]), _NeverPublisher())
    count, oldest, dead = relay.measure_backlog()
    assert (count, dead) == (1, 0)
    assert 89 < oldest < 120
    assert metrics.OUTBOX_OLDEST_AGE._value.get() == oldest


class _NeverPublisher:
    def available(self) -> bool:
        return False

    def publish(self, events: Sequence[PendingEvent]) -> list[BaseException | None]:
        raise AssertionError("not called")

    def close(self) -> None:
        pass


# -- poison rows (dead letters) ---------------------------------------------------------------


def dead_lettered(sql: psycopg.Connection[Any], topic: str) -> dict[uuid.UUID, str]:
    """Dead-lettered rows of the topic: id -> last_error."""
    rows = sql.execute(
        "SELECT id, last_error FROM outbox WHERE topic = %s AND dead_lettered_at IS NOT NULL",
        (topic,),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


@pytest.fixture
def small_topic(admin: KafkaAdminClient, sql: psycopg.Connection[Any]) -> Iterator[str]:
    """A topic whose broker refuses records over 2 KiB (`max.message.bytes`)."""
    name = f"it-outbox-small-{uuid.uuid4().hex[:12]}"
    admin.create_topics(
        {
            name: {
                "num_partitions": PARTITIONS,
                "replication_factor": 1,
                "configs": {"max.message.bytes": "2048"},
            }
        },
        wait_for_metadata=True,
    )
    yield name
    sql.execute("DELETE FROM outbox WHERE topic = %s", (name,))
    admin.delete_topics([name])


def make_poison(sql: psycopg.Connection[Any], topic: str, key: str) -> uuid.UUID:
    """A row whose record the topic's broker refuses: its payload is 8 KiB."""
    event_id = uuid.uuid4()
    payload = json.dumps({"bookingId": key, "padding": "x" * 8192})
    sql.execute(
        """INSERT INTO outbox (id, topic, record_key, event_type, event_source, event_time,
                               payload, created_at)
           VALUES (%s, %s, %s, %s, %s, now(), %s::jsonb, clock_timestamp())""",
        (event_id, topic, key, CREATED, EVENT_SOURCE, payload),
    )
    return event_id


def test_a_record_the_broker_refuses_for_good_is_dead_lettered_and_the_relay_goes_on(
    sql: psycopg.Connection[Any],
    small_topic: str,
    bootstrap: str,
    database: Database,
    publishers: list[KafkaEventPublisher],
) -> None:
    """The real broker refuses an 8 KiB record on a topic limited to 2 KiB (MESSAGE_TOO_LARGE,
    after the producer split its batch): the row is dead-lettered in the same pass with its
    error, the rows around it are published, the breaker stays closed, and no later pass sends
    it again. Re-driven after the topic's limit is raised, it is published."""
    before = insert_events(sql, small_topic, [str(uuid.uuid4()) for _ in range(3)])
    poison_key = str(uuid.uuid4())
    poison = make_poison(sql, small_topic, poison_key)
    [held] = insert_events(sql, small_topic, [poison_key], CANCELLED)  # same booking, later
    after = insert_events(sql, small_topic, [str(uuid.uuid4()) for _ in range(3)])
    publisher = make_publisher(publishers, bootstrap)
    relay = relay_for(database, small_topic, publisher)
    dead_before = metrics.OUTBOX_DEAD_LETTERED._value.get()

    result = relay.drain(limit=50)

    assert (result.published, result.failed, result.dead_lettered) == (6, 0, 1)
    errors = dead_lettered(sql, small_topic)
    assert list(errors) == [poison]
    assert errors[poison].startswith("MessageSizeTooLargeError"), errors
    assert metrics.OUTBOX_DEAD_LETTERED._value.get() - dead_before == 1
    assert not publisher.breaker.opened
    backlog = relay.measure_backlog()
    assert (backlog.pending, backlog.dead_lettered) == (1, 1)  # `held` waits behind it
    assert metrics.OUTBOX_DEAD_LETTERS._value.get() == 1
    assert Counter(ce_ids(read_topic(bootstrap, small_topic))) == Counter(before + after)

    assert relay.drain(limit=50).claimed == 0  # neither the poison nor what waits behind it
    rows = outbox_rows(sql, small_topic)
    assert rows[poison][:2] == (None, 1)  # one attempt, not one per pass
    assert rows[held][0] is None

    # The operator raises the topic's limit and re-drives the row (python -m
    # boxoffice.processes.relay).
    raise_size_limit(bootstrap, small_topic)
    assert relay_main(["--redrive", str(poison), "--topic", small_topic]) == 0
    assert dead_lettered(sql, small_topic) == {}
    assert relay.drain(limit=50).published == 2  # the poison, then the event behind it
    records = read_topic(bootstrap, small_topic)
    assert Counter(ce_ids(records)) == Counter([*before, *after, poison, held])


def raise_size_limit(bootstrap: str, topic: str) -> None:
    """The topic's `max.message.bytes` back to 1 MiB (the operator's fix)."""
    client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="boxoffice-it-relay-config")
    try:
        client.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "1048576"}
                )
            ]
        )
    finally:
        client.close()


def test_a_topic_without_metadata_is_transient_and_its_rows_are_retried_not_dead_lettered(
    sql: psycopg.Connection[Any],
    topic: str,
    bootstrap: str,
    database: Database,
    publishers: list[KafkaEventPublisher],
) -> None:
    """A missing topic is an operator's error, not a poison row: a relay limited to a topic
    that does not exist counts failed attempts and keeps the rows for later."""
    missing = f"{topic}-missing"
    ids = insert_events(sql, missing, [str(uuid.uuid4()) for _ in range(2)])
    try:
        publisher = make_publisher(publishers, bootstrap, max_block_ms=500)
        relay = relay_for(database, missing, publisher)
        for attempt in (1, 2):
            result = relay.publish_pending(10)
            assert (result.failed, result.dead_lettered) == (2, 0)
            rows = outbox_rows(sql, missing)
            assert {i: (r[0], r[1]) for i, r in rows.items()} == dict.fromkeys(ids, (None, attempt))
        assert dead_lettered(sql, missing) == {}
        errors = sql.execute(
            "SELECT DISTINCT last_error FROM outbox WHERE topic = %s", (missing,)
        ).fetchall()
        assert [e[0].split(":")[0] for e in errors] == ["KafkaTimeoutError"]
    finally:
        sql.execute("DELETE FROM outbox WHERE topic = %s", (missing,))
