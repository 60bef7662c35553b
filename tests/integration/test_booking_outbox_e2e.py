"""Bookings made over HTTP reach the real Kafka through the transactional outbox, as binary-mode
CloudEvents, exactly once, and survive a Kafka outage.

Everything goes through the real create_booking functions-framework entrypoint, the real
PostgreSQL and Kafka, and alice's real Keycloak token; each test swaps in its own composition
root (so its relay thread and producer are its own) and books a sandbox event of this module.

(a) reads the shared `booking` topic from the end offsets recorded before the test, with its own
consumer group, and looks only at records keyed by its own booking ids (other tests publish
there too). (b) books with Kafka unreachable; its bookings go to a topic of its own that does not
exist yet, so no relay anywhere (another process's, sweeping the shared outbox) can publish them
before the test lets it: the rows must wait in the outbox until a relay with the real broker
publishes them. (A relay of another process that claims them meanwhile spends at most its 3 s
metadata bound on them and counts a failed attempt; the rows are deleted at the end whatever
happens.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import psycopg
import pytest
from cloudevents.kafka import KafkaMessage, from_binary
from flask.testing import FlaskClient
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from boxoffice import bootstrap
from boxoffice.adapters.kafka import KafkaEventPublisher
from boxoffice.adapters.outbox import PostgresOutbox
from boxoffice.config import Settings
from boxoffice.domain.bookings import CANCELLED_TYPE, CREATED_TYPE
from boxoffice.services.relay import OutboxRelay

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DB = psycopg.Connection[Any]
Auth = Callable[[str], dict[str, str]]
WAIT = 15.0  # seconds: publication normally takes well under one


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"{name} is not set: export .state/env (`make test` does)", pytrace=False)
    return value


@pytest.fixture(scope="module")
def kafka() -> str:
    return _env("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    source = ROOT / "functions" / "create_booking" / "main.py"
    app = functions_framework.create_app(target="handler", source=str(source))  # type: ignore[no-untyped-call]
    test_client: FlaskClient = app.test_client()
    return test_client


@pytest.fixture(scope="module")
def event_id() -> uuid.UUID:
    """A sandbox event (venue of its own, far in the future, room for every run)."""
    venue, event = uuid.uuid4(), uuid.uuid4()
    url = _env("BOXOFFICE_DATABASE_URL")
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            """INSERT INTO venue (id, name, address, city, capacity)
               VALUES (%s, %s, '1 Outbox Lane', 'Testville', 100000)""",
            (venue, f"Outbox e2e {venue.hex[:8]}"),
        )
        conn.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency,
                                  capacity)
               VALUES (%s, %s, %s, %s, 7.25, 'GBP', 100000)""",
            (event, venue, f"Outbox e2e {event.hex[:8]}", datetime(2998, 3, 1, tzinfo=UTC)),
        )
        conn.execute(
            "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, 0, 100000)",
            (event,),
        )
    return event


@pytest.fixture
def composition() -> Iterator[Callable[..., bootstrap.Container]]:
    """`composition(**overrides)`: the functions' composition root, built from the environment
    with these overrides; afterwards its relay thread is stopped and its producer and pool
    closed, and the previous root is restored."""
    previous = bootstrap.container()
    # Its relay thread (started by earlier tests' bookings) sweeps every topic: it would claim
    # this module's rows behind its back. Stopped here; its next kick restarts it.
    if "outbox_relay_worker" in previous.__dict__:
        previous.outbox_relay_worker.stop()
    made: list[bootstrap.Container] = []

    def swap(**overrides: Any) -> bootstrap.Container:
        new = bootstrap.Container(dataclasses.replace(Settings.from_env(), **overrides))
        made.append(new)
        bootstrap.set_container(new)
        return new

    yield swap
    bootstrap.set_container(previous)
    for c in made:
        if "outbox_relay_worker" in c.__dict__:
            c.outbox_relay_worker.stop()
        if "event_publisher" in c.__dict__:
            c.event_publisher.close()
        if "database" in c.__dict__:
            c.database.close()


def book(client: FlaskClient, auth: Auth, event_id: uuid.UUID, count: int = 1) -> str:
    response = client.post(
        "/bookings",
        json={"eventId": str(event_id), "ticketCount": count},
        headers={**auth("alice"), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    booking_id: str = response.get_json()["id"]
    return booking_id


def outbox_of(db: DB, booking_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """(record_key, event_type, published_at, attempts, topic) of these bookings' outbox rows."""
    rows = db.execute(
        """SELECT record_key, event_type, published_at, attempts, topic FROM outbox
            WHERE record_key = ANY(%s) ORDER BY created_at, id""",
        (list(booking_ids),),
    ).fetchall()
    return [tuple(r) for r in rows]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


class TopicReader:
    """Reads a topic from the end offsets recorded at construction (or from its beginning), with
    a consumer group of its own (no offsets committed: nothing is taken from any other group)."""

    def __init__(self, servers: str, topic: str, from_beginning: bool = False) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(
            bootstrap_servers=servers,
            group_id=f"it-outbox-e2e-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            client_id="it-outbox-e2e",
        )
        partitions = self.consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} has no partitions"
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        if from_beginning:
            self.start = self.consumer.beginning_offsets(self.partitions)
        else:
            self.start = self.consumer.end_offsets(self.partitions)

    def records_since_start(self) -> list[Any]:
        """Every record between the recorded offsets and the current end, by partition and
        offset."""
        end = self.consumer.end_offsets(self.partitions)
        self.consumer.assign(self.partitions)
        for tp in self.partitions:
            self.consumer.seek(tp, self.start[tp])
        records: list[Any] = []
        deadline = time.monotonic() + WAIT
        while any(self.consumer.position(tp) < end[tp] for tp in self.partitions):
            assert time.monotonic() < deadline, "timed out reading the topic"
            for batch in self.consumer.poll(timeout_ms=500).values():
                records.extend(
                    r for r in batch if r.offset < end[TopicPartition(r.topic, r.partition)]
                )
        return sorted(records, key=lambda r: (r.partition, r.offset))

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def readers(kafka: str) -> Iterator[Callable[..., TopicReader]]:
    made: list[TopicReader] = []

    def reader(topic: str, from_beginning: bool = False) -> TopicReader:
        made.append(TopicReader(kafka, topic, from_beginning))
        return made[-1]

    yield reader
    for r in made:
        r.close()


def headers_of(record: Any) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def ours(records: Sequence[Any], booking_ids: Sequence[str]) -> list[Any]:
    wanted = {b.encode() for b in booking_ids}
    return [r for r in records if r.key in wanted]


def assert_created_event(record: Any, booking_id: str, source: str) -> None:
    """A valid binary-mode CloudEvent announcing this booking."""
    assert record.key == booking_id.encode()
    headers = headers_of(record)
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_id"] == booking_id
    assert headers["ce_type"] == CREATED_TYPE
    assert headers["ce_source"] == source
    assert headers["content-type"] == "application/json"
    stamp = datetime.fromisoformat(headers["ce_time"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)
    event = from_binary(
        KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value)
    )
    assert event["id"] == booking_id
    data = json.loads(record.value)
    assert data["bookingId"] == booking_id
    assert data["status"] == "PENDING"


def test_every_booking_made_over_http_is_on_the_booking_topic_exactly_once_as_a_cloudevent(
    client: FlaskClient,
    auth: Auth,
    event_id: uuid.UUID,
    composition: Callable[..., bootstrap.Container],
    readers: Callable[..., TopicReader],
    db: DB,
) -> None:
    container = composition()  # the environment's settings: the real broker
    topic, source = container.settings.booking_topic, container.settings.event_source
    reader = readers(topic)

    booking_ids = [book(client, auth, event_id, count) for count in (1, 2, 3)]
    cancelled = booking_ids[0]
    response = client.delete(f"/bookings/{cancelled}", headers=auth("alice"))
    assert response.status_code == 200, response.get_data(as_text=True)
    wait_until(
        lambda: (
            all(row[2] is not None for row in outbox_of(db, booking_ids))
            and len(outbox_of(db, booking_ids)) == 4
        ),
        "the outbox rows of the bookings and the cancellation are published",
    )

    records = ours(reader.records_since_start(), booking_ids)
    created = [r for r in records if headers_of(r)["ce_type"] == CREATED_TYPE]
    assert sorted(r.key.decode() for r in created) == sorted(booking_ids)  # each exactly once
    for record in created:
        assert_created_event(record, record.key.decode(), source)
    cancellations = [r for r in records if headers_of(r)["ce_type"] == CANCELLED_TYPE]
    assert [r.key.decode() for r in cancellations] == [cancelled]
    first = next(r for r in created if r.key.decode() == cancelled)
    (after,) = cancellations
    assert (after.partition, after.offset) > (first.partition, first.offset)
    assert after.partition == first.partition  # same key: same partition, so in order
    assert headers_of(after)["ce_id"] != cancelled
    assert json.loads(after.value)["status"] == "CANCELLED"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_bookings_succeed_while_kafka_is_down_and_a_relay_publishes_them_exactly_once_later(
    client: FlaskClient,
    auth: Auth,
    event_id: uuid.UUID,
    composition: Callable[..., bootstrap.Container],
    readers: Callable[..., TopicReader],
    kafka: str,
    db: DB,
) -> None:
    topic = f"it-outbox-e2e-{uuid.uuid4().hex[:12]}"  # created only once the outage is over
    down = composition(kafka_bootstrap_servers=f"127.0.0.1:{_closed_port()}", booking_topic=topic)
    admin = KafkaAdminClient(bootstrap_servers=kafka, client_id="it-outbox-e2e")
    try:
        booking_ids = [book(client, auth, event_id) for _ in range(3)]

        # A relay (the function's own thread, kicked after each commit) has tried to publish
        # each row, and failed: the rows wait in the outbox.
        wait_until(
            lambda: all(row[3] >= 1 for row in outbox_of(db, booking_ids)),
            "a relay has tried each row",
        )
        down.outbox_relay_worker.stop()
        rows = outbox_of(db, booking_ids)
        assert len(rows) == 3
        assert all(row[2] is None and row[4] == topic for row in rows), rows

        admin.create_topics(
            {topic: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True
        )
        # From the beginning: another process's relay may publish a row as soon as the topic
        # exists, before any end offset could be recorded.
        reader = readers(topic, from_beginning=True)
        publisher = KafkaEventPublisher(kafka, client_id="it-outbox-e2e")
        relay = OutboxRelay(PostgresOutbox(down.database, [topic]), publisher)
        try:
            # Passes until all are published: a relay of another process may hold some rows
            # (locked while it fails to find the topic); this one skips them until released.
            wait_until(
                lambda: (
                    relay.drain().failed == 0
                    and all(row[2] is not None for row in outbox_of(db, booking_ids))
                ),
                "a relay with the real broker has published every row",
            )
            assert relay.drain().claimed == 0  # nothing left to publish again
        finally:
            publisher.close()

        records = ours(reader.records_since_start(), booking_ids)
        assert sorted(r.key.decode() for r in records) == sorted(booking_ids)
        for record in records:
            assert_created_event(record, record.key.decode(), down.settings.event_source)
    finally:
        # Never leave unpublished rows for a topic that may not exist: every relay would keep
        # retrying them. Published rows stay: they are their bookings' outbox events (the
        # invariant checker, `stack/boxo verify`, wants one for every booking).
        down.outbox_relay_worker.stop()
        db.execute("DELETE FROM outbox WHERE topic = %s AND published_at IS NULL", (topic,))
        if topic in admin.list_topics():
            admin.delete_topics([topic])
        admin.close()
