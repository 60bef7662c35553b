"""Integration tests against the local Kafka broker started by `stack/boxo up`."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

pytestmark = pytest.mark.integration

EXPECTED_PARTITIONS = 6


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack with `stack/boxo up` and export its environment "
            "(`set -a; . .state/env; set +a`, or `make test`)",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return _env("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="module")
def admin(bootstrap: str):
    client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="boxoffice-it")
    yield client
    client.close()


@pytest.fixture
def fresh_topic(admin: KafkaAdminClient):
    name = f"it-roundtrip-{uuid.uuid4().hex[:12]}"
    admin.create_topics(
        {name: {"num_partitions": 1, "replication_factor": 1}}, wait_for_metadata=True
    )
    yield name
    admin.delete_topics([name])


def test_message_round_trips_with_key_value_and_headers(bootstrap: str, fresh_topic: str) -> None:
    key = b"booking-42"
    value = b'{"type":"BookingRequested","seats":2}'
    headers = [("event-type", b"BookingRequested"), ("correlation-id", uuid.uuid4().bytes)]

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        metadata = producer.send(fresh_topic, key=key, value=value, headers=headers).get(timeout=30)
        producer.flush()
    finally:
        producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        tp = TopicPartition(fresh_topic, metadata.partition)
        consumer.assign([tp])
        consumer.seek(tp, metadata.offset)
        records = []
        deadline = time.monotonic() + 15
        while not records and time.monotonic() < deadline:
            records = consumer.poll(timeout_ms=1000).get(tp, [])
    finally:
        consumer.close()

    assert records, f"nothing consumed back from {fresh_topic} within 15 s"
    record = records[0]
    assert record.key == key
    assert record.value == value
    assert list(record.headers) == headers


@pytest.mark.parametrize(
    ("env_name", "default"),
    [("BOXOFFICE_BOOKING_TOPIC", "booking"), ("BOXOFFICE_DEAD_LETTER_TOPIC", "booking-dlq")],
)
def test_stack_topic_exists_with_six_partitions(
    admin: KafkaAdminClient, env_name: str, default: str
) -> None:
    topic = os.environ.get(env_name, default)
    described = {t["name"]: t for t in admin.describe_topics([topic])}
    assert topic in described, f"topic {topic} missing (kafka_after_start creates it)"
    assert described[topic]["error_code"] == 0
    assert len(described[topic]["partitions"]) == EXPECTED_PARTITIONS
