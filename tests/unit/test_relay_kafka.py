"""The Kafka adapter of the relay with a fake producer: CloudEvent binary-mode records,
producer settings, breaker behaviour. (The real broker is exercised in
tests/integration/test_outbox_relay.py.)"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from cloudevents.kafka import KafkaMessage, from_binary
from kafka import KafkaProducer
from kafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
)

from boxoffice import metrics
from boxoffice.adapters.kafka import KafkaEventPublisher, cloudevent_headers, rfc3339
from boxoffice.errors import ConfigurationError
from boxoffice.services.ports import EventRejected, PendingEvent

BOOKING = "0d8f5c3e-7a2b-4c1d-9e6f-5a4b3c2d1e0f"


def event(key: str = BOOKING, topic: str = "booking") -> PendingEvent:
    return PendingEvent(
        id=uuid.UUID("11111111-2222-4333-8444-555555555555"),
        topic=topic,
        record_key=key,
        event_type="com.boxoffice.booking.created",
        event_source="/boxoffice/bookings",
        event_time=datetime(2030, 1, 2, 13, 4, 5, 120000, tzinfo=timezone(timedelta(hours=1))),
        payload=b'{"bookingId": "0d8f5c3e-7a2b-4c1d-9e6f-5a4b3c2d1e0f", "total": 12.50}',
        created_at=datetime(2030, 1, 2, 12, 4, 5, tzinfo=UTC),
    )


class FakeFuture:
    def __init__(self, error: BaseException | None = None, producer: Any = None) -> None:
        self.error = error
        self.producer = producer

    def get(self, timeout: float | None = None) -> object:
        if self.error is not None:
            raise self.error
        if self.producer is not None and self.producer.fatal is not None:
            raise self.producer.fatal  # kafka-python aborts every batch after a fatal error
        return object()


class FakeProducer:
    instances: list[FakeProducer] = []  # noqa: RUF012 - test bookkeeping
    # Records the "broker" refuses for good, by key, on every producer (as a real topic limit
    # would); the producer then turns fatal, as kafka-python's idempotent producer does.
    refuse: dict[str, BaseException] = {}  # noqa: RUF012

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[dict[str, Any]] = []
        self.closed = False
        self.fail_get: dict[str, BaseException] = {}  # by record key
        self.fail_send: dict[str, BaseException] = {}  # by topic
        self.fatal: BaseException | None = None
        FakeProducer.instances.append(self)

    def send(self, topic: str, *, key: bytes, value: bytes, headers: Any) -> FakeFuture:
        if topic in self.fail_send:
            raise self.fail_send[topic]
        if self.fatal is not None:
            raise self.fatal
        if isinstance(FakeProducer.refuse.get(key.decode()), ValueError):
            raise FakeProducer.refuse[key.decode()]  # the client cannot serialize it
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": headers})
        if key.decode() in FakeProducer.refuse:
            self.fatal = FakeProducer.refuse[key.decode()]
        return FakeFuture(self.fail_get.get(key.decode()), self)

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def _fresh() -> None:
    FakeProducer.instances.clear()
    FakeProducer.refuse.clear()


def publisher(**kwargs: Any) -> KafkaEventPublisher:
    return KafkaEventPublisher("k1:9092, k2:9092", producer_factory=FakeProducer, **kwargs)


def test_nothing_connects_until_the_first_publish() -> None:
    p = publisher()
    assert p.available()
    assert FakeProducer.instances == []
    assert p.publish([event()]) == [None]
    assert len(FakeProducer.instances) == 1
    p.publish([event()])
    assert len(FakeProducer.instances) == 1  # one producer, reused


def test_producer_settings_are_durable_and_bounded() -> None:
    publisher().publish([event()])
    config = FakeProducer.instances[0].config
    assert config["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True
    assert config["allow_auto_create_topics"] is False
    assert config["linger_ms"] <= 10
    for name in ("request_timeout_ms", "max_block_ms", "bootstrap_timeout_ms"):
        assert 0 < config[name] <= 5000, name
    # The producer's own rule: delivery timeout >= request timeout + linger.
    assert config["delivery_timeout_ms"] >= config["request_timeout_ms"] + config["linger_ms"]
    assert config["delivery_timeout_ms"] <= 15000


def test_the_real_kafka_python_accepts_the_settings_with_idempotence() -> None:
    """kafka-python validates idempotence against acks/retries/in-flight at construction; our
    explicit `enable_idempotence=True` must not conflict (it would raise, not be dropped)."""
    config = dict(publisher()._config)
    cfg = {**KafkaProducer.DEFAULT_CONFIG, **config}
    assert cfg["enable_idempotence"] is True
    assert cfg["acks"] in ("all", -1)
    assert cfg["retries"] > 0
    assert cfg["max_in_flight_requests_per_connection"] <= 5


def test_each_event_is_a_binary_mode_cloudevent_keyed_by_booking() -> None:
    publisher().publish([event()])
    record = FakeProducer.instances[0].sent[0]
    assert record["topic"] == "booking"
    assert record["key"] == BOOKING.encode()
    assert record["value"] == event().payload  # the stored JSON, untouched
    assert record["headers"] == [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"11111111-2222-4333-8444-555555555555"),
        ("ce_type", b"com.boxoffice.booking.created"),
        ("ce_source", b"/boxoffice/bookings"),
        ("ce_time", b"2030-01-02T12:04:05.120000Z"),
        ("ce_subject", BOOKING.encode()),
        ("content-type", b"application/json"),
    ]
    parsed = from_binary(
        KafkaMessage(dict(record["headers"]), record["key"], record["value"]),
        data_unmarshaller=lambda b: b,
    )
    assert parsed["id"] == "11111111-2222-4333-8444-555555555555"
    assert parsed["datacontenttype"] == "application/json"
    assert parsed.get_data() == event().payload


def test_rfc3339_is_utc_with_z_and_refuses_naive_times() -> None:
    assert rfc3339(datetime(2030, 1, 1, tzinfo=UTC)) == "2030-01-01T00:00:00.000000Z"
    with pytest.raises(ValueError, match="timezone"):
        rfc3339(datetime(2030, 1, 1))  # noqa: DTZ001 - the naive time under test
    assert dict(cloudevent_headers(event()))["ce_time"].endswith(b"Z")


def test_a_partial_failure_reports_per_event_outcomes_without_tripping_the_breaker() -> None:
    p = publisher(failure_threshold=1)
    p.publish([event("warm-up")])
    FakeProducer.instances[0].fail_get["b-2"] = KafkaTimeoutError("expired in the accumulator")
    outcomes = p.publish([event("b-1"), event("b-2"), event("b-3")])
    assert outcomes[0] is None
    assert isinstance(outcomes[1], KafkaTimeoutError)  # transient: retried later
    assert outcomes[2] is None
    assert p.available()


def test_records_refused_for_good_are_rejections_and_never_count_against_the_breaker() -> None:
    """A call whose only record is refused as too large (by the client's size check in `send`
    or by the broker's ack) got an answer from Kafka: its outcome is EventRejected (the relay
    dead-letters the row), the producer is kept and the breaker stays closed."""
    p = publisher(failure_threshold=1)
    p.publish([event("warm-up")])
    FakeProducer.refuse["big"] = MessageSizeTooLargeError("broker: too large")
    [outcome] = p.publish([event("big")])
    assert isinstance(outcome, EventRejected)
    assert isinstance(outcome.__cause__, MessageSizeTooLargeError)
    FakeProducer.refuse["x"] = ValueError("cannot serialize")
    [outcome] = p.publish([event("x")])
    assert isinstance(outcome, EventRejected)
    assert p.available()


def test_a_refusal_that_fails_a_whole_call_names_only_the_record_refused_when_sent_alone() -> None:
    """kafka-python's idempotent producer turns fatal on a refused record and fails every
    other record of the call with the same error: each is sent again alone, on a new producer,
    and only the one refused alone is EventRejected; the others are published."""
    p = publisher(failure_threshold=1)
    FakeProducer.refuse["b-2"] = MessageSizeTooLargeError("broker: too large")
    outcomes = p.publish([event("b-1"), event("b-2"), event("b-3")])
    assert outcomes[0] is None
    assert isinstance(outcomes[1], EventRejected)
    assert outcomes[2] is None
    assert p.available()
    sent = [r["key"] for producer in FakeProducer.instances for r in producer.sent]
    assert sent == [b"b-1", b"b-2", b"b-1", b"b-2", b"b-3"]  # then alone, in order
    assert FakeProducer.instances[2].fatal is not None  # the one that sent b-2 alone
    assert all(producer.closed for producer in FakeProducer.instances)  # none reused
    assert p.publish([event("b-4")]) == [None]  # a fresh producer after the refusal


def test_topic_and_cluster_errors_are_transient_however_final_kafka_calls_them() -> None:
    """An authorization error refuses every record of the topic alike: an operator's fix, not
    a poison row. It stays a failure to retry (and, alone in a call, a breaker failure)."""
    p = publisher()
    p.publish([event("warm-up")])
    FakeProducer.instances[0].fail_get["b-2"] = TopicAuthorizationFailedError()
    outcomes = p.publish([event("b-1"), event("b-2")])
    assert isinstance(outcomes[1], TopicAuthorizationFailedError)
    assert not isinstance(outcomes[1], EventRejected)


def test_a_topic_without_metadata_fails_its_events_without_blocking_again() -> None:
    p = publisher()
    p.publish([event("warm-up")])
    producer = FakeProducer.instances[0]
    producer.fail_send["missing"] = KafkaTimeoutError("no metadata")
    outcomes = p.publish([event("a", "missing"), event("b"), event("c", "missing")])
    assert isinstance(outcomes[0], KafkaTimeoutError)
    assert outcomes[1] is None
    assert outcomes[2] is outcomes[0]
    assert [r["key"] for r in producer.sent[1:]] == [b"b"]


def test_a_dead_broker_opens_the_breaker_which_then_fails_fast() -> None:
    attempts = {"n": 0}

    def dead(**_: Any) -> Any:
        attempts["n"] += 1
        raise KafkaConnectionError()

    p = KafkaEventPublisher("127.0.0.1:1", producer_factory=dead, failure_threshold=3)
    for _ in range(3):
        [outcome] = p.publish([event()])
        assert isinstance(outcome, KafkaConnectionError)
    assert not p.available()
    assert metrics.BREAKER_STATE.labels("kafka")._value.get() == 1

    [outcome] = p.publish([event()])
    assert "OPEN" in str(outcome)
    assert attempts["n"] == 3  # fails fast: no new connection attempt


def test_the_breaker_half_opens_after_the_recovery_timeout_and_closes_on_success() -> None:
    healthy = {"up": False}

    def factory(**config: Any) -> Any:
        if not healthy["up"]:
            raise KafkaConnectionError()
        return FakeProducer(**config)

    p = KafkaEventPublisher(
        "k:9092", producer_factory=factory, failure_threshold=1, recovery_timeout=0.05
    )
    p.publish([event()])
    assert not p.available()
    time.sleep(0.1)
    assert p.available()  # half-open: one trial call allowed
    healthy["up"] = True
    assert p.publish([event()]) == [None]
    assert p.breaker.closed
    assert metrics.BREAKER_STATE.labels("kafka")._value.get() == 0


def test_all_acks_failing_discards_the_producer_and_counts_as_a_breaker_failure() -> None:
    p = publisher(failure_threshold=2)
    p.publish([event("warm-up")])
    first = FakeProducer.instances[0]
    first.fail_get[BOOKING] = KafkaTimeoutError("delivery timed out")
    [outcome] = p.publish([event()])
    assert isinstance(outcome, KafkaTimeoutError)
    assert first.closed  # the next call bootstraps a fresh producer
    assert p.breaker.failure_count == 1
    assert p.publish([event("b-9")]) == [None]
    assert len(FakeProducer.instances) == 2
    assert p.breaker.failure_count == 0


def test_close_closes_the_producer() -> None:
    p = publisher()
    p.close()  # nothing to close yet
    p.publish([event()])
    p.close()
    assert FakeProducer.instances[0].closed


def test_without_bootstrap_servers_nothing_is_published_or_attempted() -> None:
    p = KafkaEventPublisher(" ", producer_factory=FakeProducer)
    assert not p.available()
    [outcome] = p.publish([event()])
    assert isinstance(outcome, ConfigurationError)
    assert FakeProducer.instances == []
