"""The local KafkaSource dispatcher (stack/kafkasource/dispatcher.py) against the real Kafka of the
local stack, checked against ../shared/docs/kafkasource-contract.md.

Every test has its own topics and consumer group and its own recording sink on 127.0.0.1
(stack/kafkasource/recording_sink.py); the dispatcher runs in-process in a thread with short
backoff delays and a short commit interval. The shared `booking` topics are never touched.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "stack" / "kafkasource"))

from dispatcher import Dispatcher, Settings  # noqa: E402
from recording_sink import Answer, RecordingSink, Request  # noqa: E402

pytestmark = pytest.mark.integration

NAMESPACE = "boxoffice-it"
SOURCE_NAME = "it-source"


def bootstrap_servers() -> str:
    value = os.environ.get("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS", "")
    if not value:
        pytest.fail(
            "BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS is not set: start the stack (`stack/boxo up`) and "
            "export its environment (`set -a; . .state/env; set +a`, or `make test`)",
            pytrace=False,
        )
    return value


# -- the harness (also used by test_dead_letters.py) ------------------------------------------


class Kafka:
    """Topics of one test (deleted afterwards), a producer and a reader."""

    def __init__(self) -> None:
        self.bootstrap = bootstrap_servers()
        self.admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="dispatcher-it")
        self.producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        self.created: list[str] = []

    def topic(self, partitions: int = 1, prefix: str = "it-dispatch") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
        self.created.append(name)
        return name

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> Any:
        return self.producer.send(
            topic, value=value, key=key, headers=headers or [], partition=partition
        ).get(timeout=15)

    def read(self, topic: str, count: int, timeout: float = 15) -> list[Any]:
        """The first `count` records of `topic` (fewer on timeout), in (partition, offset) order."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            records: list[Any] = []
            deadline = time.monotonic() + timeout
            while len(records) < count and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    records.extend(batch)
            return sorted(records, key=lambda r: (r.partition, r.offset))
        finally:
            consumer.close(autocommit=False)

    def committed(self, group: str, topic: str) -> dict[int, int]:
        offsets = self.admin.list_group_offsets({group: None}).get(group, {})
        return {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic}

    def close(self) -> None:
        self.producer.close(timeout=5)
        if self.created:
            self.admin.delete_topics(self.created)
        self.admin.close()


class Running:
    """A dispatcher running in a thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dispatcher = Dispatcher(settings)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="dispatcher-it")
        self.thread.start()
        assert self.dispatcher.running.wait(15), "the dispatcher did not start"

    def _run(self) -> None:
        try:
            self.dispatcher.run()
        except BaseException as exc:
            self.error = exc
            raise

    def metric(self, name: str) -> float:
        """A sample of the dispatcher's /metrics, scraped over HTTP."""
        text = requests.get(
            f"http://127.0.0.1:{self.dispatcher.metrics_port}/metrics", timeout=5
        ).text
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert match, f"{name} not in /metrics:\n{text}"
        return float(match.group(1))

    def wait_metric(self, name: str, minimum: float, timeout: float = 10) -> float:
        """Poll the metric until it reaches `minimum` (returns the last value seen)."""
        deadline = time.monotonic() + timeout
        value = self.metric(name)
        while value < minimum and time.monotonic() < deadline:
            time.sleep(0.05)
            value = self.metric(name)
        return value

    def stop(self) -> None:
        if self.thread.is_alive():
            self.dispatcher.stop()
            self.thread.join(20)
        assert not self.thread.is_alive(), "the dispatcher did not stop within 20 s"
        assert self.error is None, self.error


def settings_for(sink: RecordingSink, topic: str, **overrides: Any) -> Settings:
    """Fast settings for tests: short backoff, short commit interval, own group and DLQ."""
    base = Settings(
        bootstrap=bootstrap_servers(),
        sink=sink.url,
        topics=(topic,),
        group=f"it-dispatch-{uuid.uuid4().hex[:12]}",
        retry=3,
        backoff_policy="exponential",
        backoff_delay=0.02,
        timeout=2.0,
        dlq_topic="",
        namespace=NAMESPACE,
        name=SOURCE_NAME,
        commit_interval=0.5,
        metrics_port=0,
    )
    return replace(base, **overrides)


@pytest.fixture
def kafka() -> Iterator[Kafka]:
    k = Kafka()
    yield k
    k.close()


@pytest.fixture
def sinks() -> Iterator[Callable[..., RecordingSink]]:
    started: list[RecordingSink] = []

    def start(*args: Any, **kwargs: Any) -> RecordingSink:
        sink = RecordingSink(*args, **kwargs)
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def gaps(requests_: list[Request]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(requests_)]


def binary_event(event_id: str, subject: str) -> list[tuple[str, bytes]]:
    """Kafka binary-mode CloudEvent headers, as the outbox relay writes them."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_type", b"com.boxoffice.booking.created"),
        ("ce_source", b"/boxoffice/bookings"),
        ("ce_time", b"2030-01-02T03:04:05.000006Z"),
        ("ce_subject", subject.encode()),
        ("ce_traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("content-type", b"application/json"),
    ]


# -- what the sink receives ------------------------------------------------------------------


def test_cloudevent_record_arrives_with_exactly_its_own_attributes_and_body(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic = kafka.topic()
    event_id = str(uuid.uuid4())
    body = b'{"bookingId":"b-1","quantity":2}'
    kafka.send(topic, body, key=b"b-1", headers=binary_event(event_id, "b-1"))
    sink = sinks()
    dispatch(settings_for(sink, topic))

    assert sink.wait_for(lambda rs: len(rs) >= 1)
    request = sink.requests[0]
    assert request.method == "POST"
    assert request.path == "/"
    assert request.body == body
    assert request.ce == {
        "specversion": "1.0",
        "id": event_id,
        "type": "com.boxoffice.booking.created",
        "source": "/boxoffice/bookings",
        "time": "2030-01-02T03:04:05.000006Z",
        "subject": "b-1",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["prefer"] == "reply"
    assert request.headers["kn-namespace"] == NAMESPACE


def test_plain_record_is_wrapped_as_kafkasource_documents(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic = kafka.topic(partitions=2)
    meta = kafka.send(
        topic,
        b"plain value",
        key=b"booking-7",
        headers=[("Content-Type", b"text/plain"), ("X-Trace_ID", b"abc-1")],
        partition=1,
    )
    keyless = kafka.send(topic, b"{}", partition=0)
    sink = sinks()
    dispatch(settings_for(sink, topic))

    assert sink.wait_for(lambda rs: len(rs) >= 2)
    by_id = {r.ce["id"]: r for r in sink.requests}
    wrapped = by_id[f"partition:1/offset:{meta.offset}"]
    expected_time = datetime.fromtimestamp(meta.timestamp / 1000, tz=UTC)
    assert wrapped.ce == {
        "specversion": "1.0",
        "id": f"partition:1/offset:{meta.offset}",
        "source": f"/apis/v1/namespaces/{NAMESPACE}/kafkasources/{SOURCE_NAME}#{topic}",
        "type": "dev.knative.kafka.event",
        "subject": f"partition:1#{meta.offset}",
        "time": expected_time.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{expected_time.microsecond // 1000:03d}Z",
        "key": "booking-7",
        "partitionkey": "booking-7",
        "kafkaheadercontenttype": "text/plain",
        "kafkaheaderxtraceid": "abc-1",
    }
    assert wrapped.headers["content-type"] == "text/plain"
    assert wrapped.body == b"plain value"
    assert wrapped.headers["prefer"] == "reply"
    assert wrapped.headers["kn-namespace"] == NAMESPACE

    bare = by_id[f"partition:0/offset:{keyless.offset}"]
    assert "key" not in bare.ce
    assert "partitionkey" not in bare.ce
    assert not any(k.startswith("kafkaheader") for k in bare.ce)
    assert "content-type" not in bare.headers  # no content-type header on the record
    assert bare.body == b"{}"


def test_structured_mode_record_is_passed_through_in_binary_mode(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic = kafka.topic()
    document = {
        "specversion": "1.0",
        "id": "evt-structured-1",
        "type": "com.boxoffice.booking.cancelled",
        "source": "/boxoffice/bookings",
        "subject": "b-9",
        "time": "2030-05-06T07:08:09Z",
        "datacontenttype": "application/json",
        "bookingext": "yes",
        "data": {"bookingId": "b-9"},
    }
    kafka.send(
        topic,
        json.dumps(document).encode(),
        key=b"b-9",
        headers=[("content-type", b"application/cloudevents+json; charset=utf-8")],
    )
    sink = sinks()
    dispatch(settings_for(sink, topic))

    assert sink.wait_for(lambda rs: len(rs) >= 1)
    request = sink.requests[0]
    assert request.ce == {
        "specversion": "1.0",
        "id": "evt-structured-1",
        "type": "com.boxoffice.booking.cancelled",
        "source": "/boxoffice/bookings",
        "subject": "b-9",
        "time": "2030-05-06T07:08:09Z",
        "bookingext": "yes",
    }
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"bookingId": "b-9"}


# -- retries ---------------------------------------------------------------------------------


def test_retryable_answers_are_retried_with_exponentially_growing_backoff(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic = kafka.topic()
    kafka.send(topic, b"{}", key=b"k")
    sink = sinks([503, 404, 408, 409, 429, 200])
    dispatch(settings_for(sink, topic, retry=5, backoff_delay=0.03))

    assert sink.wait_for(lambda rs: len(rs) >= 6)
    time.sleep(0.3)
    assert [r.status for r in sink.requests] == [503, 404, 408, 409, 429, 200]
    assert len({r.ce["id"] for r in sink.requests}) == 1, "every attempt is the same event"
    # before retry n the dispatcher waits delay * 2^n: 0.06, 0.12, 0.24, 0.48, 0.96 s
    for n, gap in enumerate(gaps(sink.requests), start=1):
        want = 0.03 * 2**n
        assert want - 0.01 <= gap <= want + 0.4, (n, gap, gaps(sink.requests))


def test_linear_backoff_waits_delay_times_the_attempt_number(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic = kafka.topic()
    kafka.send(topic, b"{}")
    sink = sinks([500, 502, 503, 204])
    dispatch(settings_for(sink, topic, retry=3, backoff_policy="linear", backoff_delay=0.1))

    assert sink.wait_for(lambda rs: len(rs) >= 4)
    observed = gaps(sink.requests)
    for n, gap in enumerate(observed, start=1):
        assert 0.1 * n - 0.01 <= gap <= 0.1 * n + 0.4, (n, observed)
    assert observed[0] < observed[1] < observed[2]


def test_connection_refused_and_timeouts_are_retried_until_the_sink_answers(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic = kafka.topic()
    port = free_port()
    kafka.send(topic, b"{}", key=b"k")
    # nothing listens on `port` yet: the first attempts are refused (0, +0.2, +0.4, +0.8 s ...)
    settings = replace(
        settings_for(sinks(), topic, retry=6, backoff_delay=0.1, timeout=0.3),
        sink=f"http://127.0.0.1:{port}/",
    )
    running = dispatch(settings)
    assert running.wait_metric('boxoffice_dispatcher_deliveries_total{outcome="retry"}', 1) >= 1
    # now a sink appears whose first answer comes too late (timeout), then a success
    sink = sinks([Answer(200, delay=1.0)], port=port)

    assert sink.wait_for(lambda rs: len(rs) >= 2, timeout=15)
    assert sink.wait_for(lambda rs: any(r.status == 200 for r in rs[1:]), timeout=5)
    assert sink.requests[1].at - sink.requests[0].at >= 0.3, "the slow attempt timed out first"
    assert running.wait_metric('boxoffice_dispatcher_deliveries_total{outcome="success"}', 1) == 1
    assert running.metric('boxoffice_dispatcher_deliveries_total{outcome="dead_lettered"}') == 0


# -- dead letters ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 413, 422])
def test_non_retryable_answer_sends_the_event_to_the_dead_letter_topic_at_once(
    kafka: Kafka,
    sinks: Callable[..., RecordingSink],
    dispatch: Callable[[Settings], Running],
    status: int,
) -> None:
    topic, dlq = kafka.topic(), kafka.topic(prefix="it-dlq")
    event_id = str(uuid.uuid4())
    kafka.send(topic, b'{"n":1}', key=b"b-1", headers=binary_event(event_id, "b-1"))
    reply = b"x" * 1500  # only the first 1 KiB is kept
    sink = sinks(
        default=Answer(
            status,
            headers={"Kne-Reason": "seat-gone", "X-Other": "ignored", "Content-Type": "text/plain"},
            body=reply,
        )
    )
    running = dispatch(settings_for(sink, topic, dlq_topic=dlq, retry=3))

    letters = kafka.read(dlq, 1)
    assert len(letters) == 1
    assert len(sink.requests) == 1, "a non-retryable answer is not retried"
    letter = letters[0]
    headers = {k: v.decode() for k, v in letter.headers}
    assert letter.key == b"b-1"
    assert letter.value == b'{"n":1}'
    assert headers["ce_id"] == event_id
    assert headers["ce_type"] == "com.boxoffice.booking.created"
    assert headers["ce_source"] == "/boxoffice/bookings"
    assert headers["ce_subject"] == "b-1"
    assert headers["ce_traceparent"].startswith("00-0af7")
    assert headers["content-type"] == "application/json"
    assert headers["ce_knativeerrordest"] == sink.url
    assert headers["ce_knativeerrorcode"] == str(status)
    assert base64.b64decode(headers["ce_knativeerrordata"]) == reply[:1024]
    assert headers["ce_reason"] == "seat-gone", "kne-<x> reply headers become extension <x>"
    assert "ce_other" not in headers
    assert headers["boxoffice-dlq-origin"] == f"{topic}/0/0"
    assert running.wait_metric("boxoffice_dead_letters_total", 1) == 1
    assert running.metric('boxoffice_dispatcher_deliveries_total{outcome="dead_lettered"}') == 1
    assert running.metric('boxoffice_dispatcher_deliveries_total{outcome="retry"}') == 0


def test_exhausted_retries_send_the_event_to_the_dead_letter_topic(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic, dlq = kafka.topic(), kafka.topic(prefix="it-dlq")
    kafka.send(topic, b"{}", key=b"k1")
    sink = sinks(default=Answer(503, body=b"database down"))
    running = dispatch(settings_for(sink, topic, dlq_topic=dlq, retry=2))

    letters = kafka.read(dlq, 1)
    assert len(letters) == 1
    assert len(sink.requests) == 3, "first attempt + 2 retries"
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["ce_id"] == "partition:0/offset:0"
    assert headers["ce_knativeerrorcode"] == "503"
    assert base64.b64decode(headers["ce_knativeerrordata"]) == b"database down"
    dead_lettered = 'boxoffice_dispatcher_deliveries_total{outcome="dead_lettered"}'
    assert running.wait_metric(dead_lettered, 1) == 1
    assert running.metric('boxoffice_dispatcher_deliveries_total{outcome="retry"}') == 2


def test_unreachable_sink_dead_letters_without_an_error_code(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic, dlq = kafka.topic(), kafka.topic(prefix="it-dlq")
    kafka.send(topic, b"{}")
    dead = f"http://127.0.0.1:{free_port()}/"
    dispatch(replace(settings_for(sinks(), topic, dlq_topic=dlq, retry=1), sink=dead))

    letters = kafka.read(dlq, 1)
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers}
    assert headers["ce_knativeerrordest"] == dead
    assert "ce_knativeerrorcode" not in headers, "no response: no status code (as in Knative)"
    assert "ce_knativeerrordata" not in headers


# -- ordering --------------------------------------------------------------------------------


def test_ordered_mode_keeps_partition_order_and_waits_for_retries(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic = kafka.topic(partitions=2)
    for value in (b"a1", b"a2", b"a3"):
        kafka.send(topic, value, partition=0)
    for value in (b"b1", b"b2"):
        kafka.send(topic, value, partition=1)
    tries = {"a1": 0}

    def respond(request: Request) -> Answer | None:
        if request.body == b"a1":
            tries["a1"] += 1
            return Answer(503 if tries["a1"] <= 2 else 200)
        return Answer(200)

    sink = sinks(respond=respond)
    dispatch(settings_for(sink, topic, retry=3, backoff_policy="linear", backoff_delay=0.25))

    assert sink.wait_for(lambda rs: len(rs) >= 7)
    bodies = [r.body for r in sink.requests]
    assert [b for b in bodies if b.startswith(b"a")] == [b"a1", b"a1", b"a1", b"a2", b"a3"]
    assert [b for b in bodies if b.startswith(b"b")] == [b"b1", b"b2"]
    last_a1 = max(r.at for r in sink.requests if r.body == b"a1")
    first_a2 = min(r.at for r in sink.requests if r.body == b"a2")
    assert first_a2 > last_a1, "a2 waited for a1's retries"
    b2 = next(r.at for r in sink.requests if r.body == b"b2")
    assert b2 < last_a1, "the other partition was not held up by a1's retries"


def test_unordered_mode_does_not_hold_a_partition_behind_a_retrying_record(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic = kafka.topic()
    for value in (b"slow", b"next"):
        kafka.send(topic, value)
    first_slow: list[float] = []

    def respond(request: Request) -> Answer:
        if request.body == b"slow" and not first_slow:
            first_slow.append(request.at)
            return Answer(503)
        return Answer(200)

    sink = sinks(respond=respond)
    # the retry of "slow" comes 1 s (0.5 * 2^1) after its first attempt
    dispatch(settings_for(sink, topic, ordering="unordered", retry=1, backoff_delay=0.5))

    assert sink.wait_for(lambda rs: len(rs) >= 3)
    times = {(r.body, r.status): r.at for r in sink.requests}
    assert times[(b"next", 200)] < times[(b"slow", 200)]


# -- offsets ---------------------------------------------------------------------------------


def test_clean_restart_redelivers_nothing_already_handled(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic, dlq = kafka.topic(partitions=2), kafka.topic(prefix="it-dlq")
    for i in range(4):
        kafka.send(topic, f"r{i}".encode(), partition=i % 2)
    first = sinks(respond=lambda r: Answer(422 if r.body == b"r3" else 200))
    settings = settings_for(first, topic, dlq_topic=dlq, commit_interval=30)
    running = dispatch(settings)
    assert first.wait_for(lambda rs: len(rs) >= 4)
    assert len(kafka.read(dlq, 1)) == 1  # r3 was dead-lettered
    running.stop()  # the commit interval is 30 s: only the commit on shutdown saved the offsets
    assert kafka.committed(settings.group, topic) == {0: 2, 1: 2}

    kafka.send(topic, b"r4", partition=0)
    second = sinks()
    dispatch(replace(settings, sink=second.url))
    assert second.wait_for(lambda rs: len(rs) >= 1)
    time.sleep(1.0)
    assert [r.body for r in second.requests] == [b"r4"]


def test_offsets_are_committed_periodically_while_running(
    kafka: Kafka, sinks: Callable[..., RecordingSink], dispatch: Callable[[Settings], Running]
) -> None:
    topic = kafka.topic()
    for i in range(3):
        kafka.send(topic, f"r{i}".encode())
    sink = sinks()
    settings = settings_for(sink, topic, commit_interval=0.3)
    running = dispatch(settings)
    assert sink.wait_for(lambda rs: len(rs) >= 3)
    deadline = time.monotonic() + 5
    while kafka.committed(settings.group, topic) != {0: 3} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kafka.committed(settings.group, topic) == {0: 3}
    time.sleep(0.5)
    assert running.metric("boxoffice_dispatcher_lag") == 0


def test_command_line_dispatcher_serves_health_and_commits_on_sigterm(
    kafka: Kafka, sinks: Callable[..., RecordingSink]
) -> None:
    topic = kafka.topic(partitions=2)
    for i in range(4):
        kafka.send(topic, f"r{i}".encode(), partition=i % 2)
    sink = sinks([503], default=200)
    group = f"it-dispatch-{uuid.uuid4().hex[:12]}"
    port = free_port()
    env = {**os.environ, "BOXOFFICE_DISPATCHER_COMMIT_INTERVAL": "60"}  # only SIGTERM commits
    command = [sys.executable, str(ROOT / "stack" / "kafkasource" / "dispatcher.py")]
    command += ["--bootstrap", bootstrap_servers(), "--sink", sink.url, "--topic", topic]
    command += ["--group", group, "--backoff-delay", "PT0.01S", "--timeout", "PT2S"]
    command += ["--dlq-topic", "", "--metrics-port", str(port)]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.wait_for(lambda rs: sum(r.status == 200 for r in rs) >= 4)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200
        assert kafka.committed(group, topic) in ({}, {0: -1, 1: -1})
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "dispatcher stopped" in stderr
    assert kafka.committed(group, topic) == {0: 2, 1: 2}


def test_rebalance_during_retries_does_not_lose_the_record_or_reorder_the_partition(
    kafka: Kafka,
    sinks: Callable[..., RecordingSink],
    dispatch: Callable[[Settings], Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = kafka.topic()
    kafka.send(topic, b"a")
    kafka.send(topic, b"b")
    tries = {"a": 0}

    def respond(request: Request) -> Answer:
        if request.body == b"a":
            tries["a"] += 1
            return Answer(503 if tries["a"] <= 5 else 200)  # a keeps failing for ~7 s
        return Answer(200)

    sink = sinks(respond=respond)
    settings = settings_for(sink, topic, retry=8, backoff_policy="linear", backoff_delay=0.5)
    caplog.set_level(logging.INFO, logger="boxoffice.dispatcher")
    dispatch(settings)
    assert sink.wait_for(lambda rs: len(rs) >= 1)

    # another member joins the group: the partition is revoked while "a" is between retries
    intruder = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=settings.group, enable_auto_commit=False
    )
    try:
        intruder.subscribe([topic])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("revoked" in m for m in caplog.messages):
            intruder.poll(timeout_ms=100)
    finally:
        intruder.close(autocommit=False)
    assert any("abandoned" in m for m in caplog.messages), caplog.messages

    assert sink.wait_for(lambda rs: any(r.body == b"b" and r.status == 200 for r in rs))
    assert [r.body for r in sink.delivered()] == [b"a", b"b"]
