"""The dispatcher under a backlog: it never stalls, and its /healthz says when it does.

Issue 10: after a Kafka restart (or any backlog larger than a few hundred records) bookings
stayed PENDING for good; the dispatcher's lag stuck and only a restart delivered them. The cause
is in kafka-python 3.0.12's fetcher (a partition paused while its fetched batch is partly
consumed is never fetched again, see `Dispatcher._flow_control`); the first test shows that
library behaviour with a plain consumer (the control), the second that the dispatcher delivers
a 20,000-record backlog completely (it stuck at a few hundred before the fix), the third that
/healthz turns 503 when the dispatcher has lag and delivers nothing.

Own topics, groups and recording sinks per test (harness in test_dispatcher_contract.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from kafka import KafkaConsumer, TopicPartition
from test_dispatcher_contract import Kafka, Running, settings_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stack" / "kafkasource"))

from dispatcher import Settings
from recording_sink import Answer, RecordingSink

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka() -> Iterator[Kafka]:
    k = Kafka()
    yield k
    k.close()


@pytest.fixture
def sinks() -> Iterator[Callable[..., RecordingSink]]:
    started: list[RecordingSink] = []

    def start(*args: object, **kwargs: object) -> RecordingSink:
        sink = RecordingSink(*args, **kwargs)  # type: ignore[arg-type]
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@pytest.fixture
def dispatch() -> Iterator[Callable[[Settings], Running]]:
    running: list[Running] = []

    def start(settings: Settings) -> Running:
        r = Running(settings)
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


def fill(kafka: Kafka, topic: str, count: int) -> None:
    """`count` small records, keyed so that they spread over the topic's partitions."""
    for i in range(count):
        kafka.producer.send(topic, value=b"r%d" % i, key=b"k%d" % i)
    kafka.producer.flush(timeout=60)


def test_control_kafka_python_never_fetches_a_partition_again_once_paused_mid_batch(
    kafka: Kafka,
) -> None:
    """What the dispatcher has to avoid, shown with kafka-python alone: two partitions of 100
    records, polled 10 at a time; partition 0 is paused as soon as a poll returned some of its
    records (its fetched batch partly consumed), 20 more records are produced to it, and it is
    resumed a second later. Partition 1 is read to the end; partition 0 never yields another
    record. With every poll draining the fetcher (what the dispatcher does), the same pause and
    resume loses nothing: all 120 arrive. If a kafka-python upgrade makes the first half fail,
    the library is fixed and the dispatcher's POLL_ALL may go."""
    topic = kafka.topic(partitions=2, prefix="it-backlog-ctl")
    p0 = TopicPartition(topic, 0)

    def produce(partition: int, count: int) -> None:
        for i in range(count):
            kafka.producer.send(topic, value=b"x%d" % i, partition=partition)
        kafka.producer.flush(timeout=30)

    produce(0, 100)
    produce(1, 100)

    def read(max_poll_records: int, expected_total: int) -> tuple[dict[int, int], int]:
        consumer = KafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_poll_records,
        )
        consumer.assign([p0, TopicPartition(topic, 1)])
        got = {0: 0, 1: 0}
        at_pause = -1
        paused_at: float | None = None
        resumed = False
        deadline = time.monotonic() + 8
        try:
            while time.monotonic() < deadline and sum(got.values()) < expected_total:
                for tp, records in consumer.poll(timeout_ms=200).items():
                    got[tp.partition] += len(records)
                if paused_at is None and got[0] > 0:
                    consumer.pause(p0)
                    at_pause, paused_at = got[0], time.monotonic()
                    produce(0, 20)
                if paused_at is not None and not resumed and time.monotonic() - paused_at > 1:
                    consumer.resume(p0)
                    resumed = True
        finally:
            consumer.close(autocommit=False)
        assert resumed, got
        return got, at_pause

    got, at_pause = read(max_poll_records=10, expected_total=320)
    assert at_pause == 10  # paused with 90 fetched records of partition 0 not yet returned
    assert got == {0: 10, 1: 100}  # stuck: not even the 20 new records come
    got, _ = read(max_poll_records=2**31 - 1, expected_total=340)
    assert got == {0: 120 + 20, 1: 100}  # this read's own 20 extra records too


def test_a_backlog_of_20000_records_is_delivered_completely_without_a_restart(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    """The issue's reproduction (bookings piled up while the dispatcher was down, then it
    starts) at 20,000 records over 6 partitions: every record reaches the sink, in order per
    partition, and the group's committed offsets reach the end. Before the fix the lag stuck
    after a few hundred deliveries; the test fails fast if nothing arrives for 20 s."""
    total = 20_000
    topic = kafka.topic(partitions=6, prefix="it-backlog")
    fill(kafka, topic, total)
    sink = sinks()
    running = dispatch(settings_for(sink, topic, commit_interval=1.0))

    seen = 0
    last_progress = time.monotonic()
    deadline = time.monotonic() + 240
    while seen < total and time.monotonic() < deadline:
        sink.wait_for(lambda rs, n=seen: len(rs) > n, timeout=1)
        now_seen = len(sink.requests)
        if now_seen > seen:
            seen, last_progress = now_seen, time.monotonic()
        elif time.monotonic() - last_progress > 20:
            break
    delivered = sink.delivered()
    bodies = {r.body for r in delivered}
    assert len(bodies) == total, f"{len(bodies)} of {total} delivered, then nothing for 20 s"
    per_partition: dict[str, list[int]] = {}
    for r in delivered:  # wrapped records: ce-id partition:P/offset:O, in offset order
        partition, offset = r.ce["id"].split("/")
        per_partition.setdefault(partition, []).append(int(offset.split(":")[1]))
    assert len(per_partition) == 6
    assert all(offsets == sorted(offsets) for offsets in per_partition.values())

    reader = KafkaConsumer(bootstrap_servers=kafka.bootstrap)
    try:
        ends = reader.end_offsets([TopicPartition(topic, p) for p in range(6)])
    finally:
        reader.close()
    assert sum(ends.values()) == total
    deadline = time.monotonic() + 15
    while sum(kafka.committed(running.settings.group, topic).values()) < total:
        assert time.monotonic() < deadline, kafka.committed(running.settings.group, topic)
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while running.metric("boxoffice_dispatcher_lag") != 0:
        assert time.monotonic() < deadline, running.metric("boxoffice_dispatcher_lag")
        time.sleep(0.2)
    health = requests.get(f"http://127.0.0.1:{running.dispatcher.metrics_port}/healthz", timeout=5)
    assert health.status_code == 200, health.text


def test_healthz_is_503_while_there_is_lag_and_nothing_is_delivered_for_the_stall_timeout(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    """A sink that takes 5 s to answer one record: the lag stays at 1 and nothing finishes, so
    after `stall_timeout` (1.5 s) /healthz answers 503 naming the lag; once the record is
    delivered, /healthz is 200 again. An idle dispatcher (no lag) stays healthy."""
    topic = kafka.topic(partitions=1, prefix="it-backlog-stall")
    sink = sinks(respond=lambda r: Answer(200, delay=5.0) if r.body == b"slow" else None)
    running = dispatch(
        settings_for(sink, topic, stall_timeout=1.5, commit_interval=0.3, timeout=30.0)
    )
    url = f"http://127.0.0.1:{running.dispatcher.metrics_port}/healthz"
    time.sleep(2.5)  # idle for longer than the stall timeout: still healthy
    assert requests.get(url, timeout=5).status_code == 200

    kafka.send(topic, b"slow", key=b"k")
    assert sink.wait_for(lambda rs: len(rs) == 1, timeout=10)
    started = time.monotonic()
    reply = requests.get(url, timeout=5)
    while reply.status_code == 200 and time.monotonic() - started < 4.5:
        time.sleep(0.1)
        reply = requests.get(url, timeout=5)
    assert reply.status_code == 503, reply.text
    assert reply.text.startswith("unhealthy: lag 1 and nothing delivered"), reply.text

    deadline = time.monotonic() + 10
    while (reply := requests.get(url, timeout=5)).status_code != 200:
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.1)
    assert running.dispatcher.running.is_set()
