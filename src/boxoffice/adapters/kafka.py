"""Kafka adapter: publishes outbox events as CloudEvents in Kafka *binary* content mode.

One record per event: value = the JSON payload bytes, key = the record key (booking id), and
the CloudEvent attributes as `ce_*` headers plus `content-type` (the Kafka protocol binding maps
`datacontenttype` to that header). Knative's KafkaSource passes such records through with
their own `id`, `type`, `source` and `subject`.

The producer is created on first use, never at import or construction: cold starts stay cheap
and a process that never publishes never connects. Every call goes through a circuit breaker,
so a dead broker costs at most a few bounded timeouts before calls fail fast; its state is
exported as `boxoffice_circuit_breaker_open{dependency="kafka"}`.

A record the broker refuses for good (too large for the topic, invalid) comes back as
`EventRejected` (the relay dead-letters its row); every other failure is worth retrying.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from circuitbreaker import CircuitBreaker, CircuitBreakerError
from kafka import KafkaProducer
from kafka import errors as kafka_errors
from kafka.errors import KafkaError, KafkaTimeoutError

from boxoffice import errors, metrics
from boxoffice.services.ports import EventRejected, PendingEvent

log = logging.getLogger("boxoffice.kafka")

DEPENDENCY = "kafka"
CONTENT_TYPE = b"application/json"

# What makes one record unpublishable for good, whatever the broker's health: kafka-python's
# non-retriable errors about the record itself (the producer has already split a batch refused
# as too large, so these name the one record), and a record the client cannot serialize.
# Topic- or cluster-level errors (authorization, unknown or invalid topic, timeouts) are not
# here: they fail every record alike and are retried until an operator fixes them.
PERMANENT_RECORD_ERRORS: tuple[type[Exception], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidRecordError,
    kafka_errors.InvalidTimestampError,
    ValueError,
    TypeError,
)


def _permanent(outcome: BaseException | None) -> bool:
    return isinstance(outcome, PERMANENT_RECORD_ERRORS)


def _rejected(error: BaseException) -> EventRejected:
    rejected = EventRejected(f"{type(error).__name__}: {error}")
    rejected.__cause__ = error
    return rejected


class KafkaUnavailable(Exception):
    """Every record of a publish call failed: Kafka looks down (counts against the breaker)."""

    def __init__(self, outcomes: list[BaseException | None]) -> None:
        first = next((o for o in outcomes if o is not None), None)
        super().__init__(f"no record acknowledged: {first!r}")
        self.outcomes = outcomes


def rfc3339(moment: datetime) -> str:
    """RFC 3339 UTC timestamp with microseconds, e.g. 2030-01-01T12:00:00.000000Z."""
    if moment.tzinfo is None:
        raise ValueError("event time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cloudevent_headers(event: PendingEvent) -> list[tuple[str, bytes]]:
    """The Kafka binary-mode CloudEvent headers of one outbox event."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event.id).encode()),
        ("ce_type", event.event_type.encode()),
        ("ce_source", event.event_source.encode()),
        ("ce_time", rfc3339(event.event_time).encode()),
        ("ce_subject", event.record_key.encode()),
        ("content-type", CONTENT_TYPE),
    ]


class KafkaEventPublisher:
    """`EventPublisher` on kafka-python's `KafkaProducer`, behind a circuit breaker.

    Producer settings (see docs/adr/0005-outbox-relay.md): `acks='all'` with the idempotent
    producer enabled explicitly (broker-side de-duplication of the producer's own retries;
    kafka-python raises at construction rather than silently dropping it), retries bounded by
    `delivery_timeout_ms`, and short bootstrap/metadata/request timeouts so that a dead broker
    fails a call within seconds instead of the library's defaults of 30-120 s.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "boxoffice-outbox-relay",
        request_timeout_ms: int = 5000,
        delivery_timeout_ms: int = 10000,
        max_block_ms: int = 3000,
        bootstrap_timeout_ms: int = 3000,
        linger_ms: int = 5,
        failure_threshold: int = 5,
        recovery_timeout: float = 5.0,
        producer_factory: Any = KafkaProducer,
    ) -> None:
        servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
        self._configured = bool(servers)
        self._config: dict[str, Any] = {
            "bootstrap_servers": servers,
            "client_id": client_id,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "request_timeout_ms": request_timeout_ms,
            "delivery_timeout_ms": delivery_timeout_ms,
            "max_block_ms": max_block_ms,
            "bootstrap_timeout_ms": bootstrap_timeout_ms,
            # Never auto-create a topic with broker defaults (1 partition): a missing topic is
            # an operator error and its events wait in the outbox until it exists.
            "allow_auto_create_topics": False,
            "reconnect_backoff_max_ms": 1000,
        }
        # Upper bound on waiting for acks after the sends (the producer fails each record
        # by delivery_timeout_ms at the latest; the margin covers its expiry check interval).
        self._ack_wait = delivery_timeout_ms / 1000 + 1.0
        self._factory = producer_factory
        self._producer: Any = None
        self._warned = False
        self._lock = threading.Lock()
        self._breaker = CircuitBreaker(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            expected_exception=(KafkaError, KafkaUnavailable, OSError),
            name=f"{DEPENDENCY}:{client_id}",
        )
        self._update_gauge()

    @property
    def breaker(self) -> Any:
        return self._breaker

    def available(self) -> bool:
        """False while the breaker is open; True when closed or half-open (one trial call).
        Always False without bootstrap servers: events then wait in the outbox."""
        if not self._configured:
            if not self._warned:
                self._warned = True
                log.warning(
                    "BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS is empty: outbox events are not published"
                )
            return False
        opened = bool(self._breaker.opened)
        metrics.BREAKER_STATE.labels(DEPENDENCY).set(1 if opened else 0)
        return not opened

    def publish(self, events: Sequence[PendingEvent]) -> list[BaseException | None]:
        if not events:
            return []
        if not self._configured:
            return [errors.ConfigurationError("no Kafka bootstrap servers")] * len(events)
        with self._lock:  # the breaker's bookkeeping is not thread-safe
            try:
                if self._breaker.opened:
                    raise CircuitBreakerError(self._breaker)
                with self._breaker:
                    outcomes = self._send_all(events)
                    if any(_permanent(o) for o in outcomes):
                        outcomes = self._isolate(events, outcomes)
                    return outcomes
            except KafkaUnavailable as exc:
                self._discard_producer()
                return exc.outcomes
            except (KafkaError, OSError, CircuitBreakerError) as exc:
                if not isinstance(exc, CircuitBreakerError):
                    self._discard_producer()
                return [exc] * len(events)
            finally:
                self._update_gauge()

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=2)

    # -- internals -------------------------------------------------------------------------

    def _update_gauge(self) -> None:
        metrics.BREAKER_STATE.labels(DEPENDENCY).set(1 if self._breaker.opened else 0)

    def _get_producer(self) -> Any:
        if self._producer is None:
            self._producer = self._factory(**self._config)
        return self._producer

    def _discard_producer(self) -> None:
        """Drop a producer after Kafka trouble: the next call bootstraps a fresh one (abandoned
        records may still have reached the broker: at-least-once, never at-most-once)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:  # closing a broken producer must not mask the cause
                log.debug("closing the Kafka producer failed", exc_info=True)

    def _send_all(self, events: Sequence[PendingEvent]) -> list[BaseException | None]:
        producer = self._get_producer()
        outcomes: list[BaseException | None] = [None] * len(events)
        futures: list[tuple[int, Any]] = []
        dead_topics: dict[str, BaseException] = {}
        for i, event in enumerate(events):
            if event.topic in dead_topics:  # metadata already timed out: do not block again
                outcomes[i] = dead_topics[event.topic]
                continue
            try:
                future = producer.send(
                    event.topic,
                    key=event.record_key.encode(),
                    value=event.payload,
                    headers=cloudevent_headers(event),
                )
            except KafkaTimeoutError as exc:  # no metadata for the topic within max_block_ms
                dead_topics[event.topic] = exc
                outcomes[i] = exc
            except (KafkaError, ValueError, TypeError) as exc:  # e.g. record too large
                outcomes[i] = exc
            else:
                futures.append((i, future))
        deadline = time.monotonic() + self._ack_wait
        for i, future in futures:
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
            except KafkaError as exc:
                outcomes[i] = exc
        # A refusal is an answer: Kafka is up, even when it refused every record of the call.
        if all(o is not None and not _permanent(o) for o in outcomes):
            raise KafkaUnavailable(outcomes)
        return outcomes

    def _isolate(
        self, events: Sequence[PendingEvent], outcomes: list[BaseException | None]
    ) -> list[BaseException | None]:
        """Which records were refused for good? kafka-python's idempotent producer treats a
        non-retriable error as fatal: it fails every other pending record of the producer with
        the same error and refuses further sends. So a permanent error names a record only when
        it comes back for that record sent alone, on a new producer: each such record is sent
        again by itself (in order), and only one refused alone is `EventRejected`. (Poison rows
        are rare; this costs a producer per suspect.)"""
        result = list(outcomes)
        for i, event in enumerate(events):
            if not _permanent(outcomes[i]):
                continue
            self._discard_producer()
            try:
                [alone] = self._send_all([event])
            except KafkaUnavailable as exc:
                [alone] = exc.outcomes
            result[i] = _rejected(alone) if alone is not None and _permanent(alone) else alone
        if any(isinstance(o, EventRejected) for o in result):
            self._discard_producer()  # fatal after the last refusal too
        return result
