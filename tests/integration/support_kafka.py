"""A Kafka topic of a test's own on the stack's broker (imported by the integration tests as
`support_kafka`).

For tests that run a publishing function (create_booking) as production does, Kafka configured
(without it the function is not ready: ADR 5), on a database of their own: its events go to a
topic nobody consumes, never to the stack's `booking` topic, which the stack's dispatcher
delivers to its consume_order (on the dev database, where those bookings do not exist)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient


def bootstrap_servers() -> str:
    servers = os.environ.get("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS", "")
    if not servers:
        pytest.fail(
            "BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS is not set: run the tests with `make test`",
            pytrace=False,
        )
    return servers


@contextlib.contextmanager
def own_topic(prefix: str = "it-topic", partitions: int = 1) -> Iterator[dict[str, str]]:
    """A new topic; yields the environment that points a function at it
    (BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS, BOXOFFICE_BOOKING_TOPIC). Deleted afterwards."""
    servers = bootstrap_servers()
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="boxoffice-it-topics")
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": 1}},
            wait_for_metadata=True,
        )
        try:
            yield {"BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS": servers, "BOXOFFICE_BOOKING_TOPIC": name}
        finally:
            admin.delete_topics([name])
    finally:
        admin.close()
