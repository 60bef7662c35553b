"""The local stand-in for Knative's KafkaSource: Kafka topic(s) -> HTTP sink, per the contract.

    .venv/bin/python stack/kafkasource/dispatcher.py --sink http://127.0.0.1:28084/ [options]

Development infrastructure only (in the cluster, a KafkaSource does this; see
docs/adr/0008-kafkasource-dispatcher.md). It implements ../shared/docs/kafkasource-contract.md:

- consumes the topics with its own consumer group, auto-commit off; `--initial-offset`
  (earliest by default) applies only when the group has no committed offset;
- POSTs every record to the sink in CloudEvents binary mode (`kafkasource_events.py`):
  CloudEvent records (Kafka binary or structured mode) pass through with their own attributes,
  other records are wrapped (`ce-id: partition:<p>/offset:<o>` ...); extra headers
  `Prefer: reply` and `Kn-Namespace`; the reply body is discarded;
- < 300 is success; 5xx, 404, 408, 409, 429, connection errors and timeouts are retried
  `--retry` times (not counting the first attempt), waiting `delay * attempt` (linear) or
  `delay * 2**attempt` (exponential) before retry number `attempt` (1, 2, ...); any other 3xx/4xx
  goes to the dead-letter topic at once, and so does a record whose retries are exhausted;
- dead letters are written to `--dlq-topic` (Kafka binary mode, original key) with the original
  attributes plus `knativeerrordest`, `knativeerrorcode` (absent after a connection error or
  timeout, as in Knative), `knativeerrordata` (base64 of the first 1 KiB of the reply body)
  and, for each reply header named `kne-<x>`, an extension `<x>` (Knative's rule);
- `ordered` (default): one request in flight per partition, partitions in parallel;
  `unordered`: up to `--max-inflight` requests in flight;
- a record becomes committable after success, after dead-lettering, and after a failed
  dead-letter send (then it is dropped, as in Knative); offsets are committed every
  `--commit-interval` seconds (5), on partition revocation and on shutdown (SIGTERM/SIGINT),
  so only a crash redelivers (at most ~5 s of records); a record abandoned between retries by a
  rebalance is delivered again from its first attempt (if the partition comes back to us, we
  seek to its first unfinished record);
- metrics and `/healthz` on `--metrics-port` (28086): `boxoffice_dispatcher_deliveries_total
  {outcome=success|retry|dead_lettered|dropped}`, `boxoffice_dead_letters_total`,
  `boxoffice_dispatcher_lag` (end offset - committed offset, summed over assigned partitions).

Every option has an environment variable (`BOXOFFICE_DISPATCHER_<OPTION>`). Delivery defaults:
retry 8, exponential, PT0.5S, timeout PT30S: the deployed KafkaSource's `delivery`
(helm/boxoffice/values.yaml `kafkaSource.delivery`, kept equal by
tests/deploy/test_delivery_settings.py; see ADR 8). The wrapped events' `ce-source` uses
`--namespace` boxoffice and `--name` booking-to-consume-order, the chart's KafkaSource.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import logging
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafkasource_events import ADDED_HEADER, ORIGIN_HEADER, Event, attribute_name, from_record

log = logging.getLogger("boxoffice.dispatcher")

RETRYABLE = frozenset({404, 408, 409, 429})
UNASSIGNED_GRACE = 5.0  # seconds without any assigned partition before asking to rejoin
LANE_CAP = 200  # ordered: records buffered per partition before it is paused
# Every poll takes *all* the records kafka-python has fetched (see `_poll_all` below), so no
# partition is ever paused with a partly consumed batch; the fetch sizes bound what one poll
# can return instead: at most FETCH_PARTITION_BYTES per partition, FETCH_MAX_BYTES in all.
POLL_ALL = 2**31 - 1
FETCH_PARTITION_BYTES = 256 * 1024
FETCH_MAX_BYTES = 4 * 1024 * 1024
# kafka-python backs reconnects off exponentially up to 30 s, so after a broker outage the
# dispatcher could sit up to 30 s before it even tried again; the Java client (KafkaSource's)
# caps it at 1 s (reconnect.backoff.max.ms), and so do we.
RECONNECT_BACKOFF_MAX_MS = 1000
ERROR_DATA_MAX = 1024
_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def iso_duration(text: str) -> float:
    """Seconds of an ISO-8601 duration such as PT0.2S, PT10S, PT1M30S or P1D."""
    match = _DURATION.match(text.strip().upper())
    if not match or text.strip().upper() in ("P", "PT"):
        raise argparse.ArgumentTypeError(f"not an ISO-8601 duration: {text!r}")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return (
        parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60
    ) + parts.get("s", 0)


def retryable(status: int) -> bool:
    return status >= 500 or status in RETRYABLE


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    sink: str
    topics: tuple[str, ...] = ("booking",)
    group: str = "boxoffice-consume-order"
    initial_offset: str = "earliest"
    ordering: str = "ordered"
    retry: int = 8
    backoff_policy: str = "exponential"
    backoff_delay: float = 0.5
    timeout: float = 30.0
    dlq_topic: str = "booking-dlq"
    namespace: str = "boxoffice"
    name: str = "booking-to-consume-order"
    commit_interval: float = 5.0
    max_inflight: int = 50
    stall_timeout: float = 60.0  # /healthz 503 after this long with lag and no delivery (0: off)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 28086  # None: no metrics server (0: any free port)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        if self.backoff_policy == "linear":
            return self.backoff_delay * attempt
        return self.backoff_delay * float(2**attempt)


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def post(url: str, headers: dict[str, str], body: bytes, timeout: float) -> Reply:
    """One POST; the whole attempt (connect, send, reply) is bounded by `timeout`. Raises
    OSError (connection refused, timeout, ...) or http.client.HTTPException."""
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers=headers)
        if conn.sock is not None:
            conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
        response = conn.getresponse()
        data = response.read(64 * 1024)
        return Reply(response.status, list(response.getheaders()), data)
    finally:
        conn.close()


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            "boxoffice_dispatcher_deliveries",
            "Records handled by the KafkaSource dispatcher, by outcome (retry: one per retry "
            "attempt; dropped: exhausted and the dead-letter send failed too)",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("success", "retry", "dead_lettered", "dropped"):
            self.deliveries.labels(outcome)
        self.dead_letters = Counter(
            "boxoffice_dead_letters",
            "Events written to the dead-letter topic",
            registry=registry,
        )
        self.lag = Gauge(
            "boxoffice_dispatcher_lag",
            "Records not yet committed: end offset - committed offset, summed over partitions",
            registry=registry,
        )


@dataclass
class Lane:
    """One assigned partition: its buffered records, in-flight work and committable offset."""

    tp: TopicPartition
    queue: deque[Any] = field(default_factory=deque)
    pending: set[int] = field(default_factory=set)  # fetched, not yet finished
    next_offset: int | None = None  # highest fetched + 1
    active: bool = False  # ordered: a worker is draining the queue
    closed: threading.Event = field(default_factory=threading.Event)
    idle: threading.Event = field(default_factory=threading.Event)  # ordered: no worker
    previous: Lane | None = None  # the revoked lane of this partition, if still sending

    def __post_init__(self) -> None:
        self.idle.set()

    def committable(self) -> int | None:
        return min(self.pending) if self.pending else self.next_offset


class Dispatcher:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics(registry or CollectorRegistry(auto_describe=True))
        self._lock = threading.Lock()
        self._lanes: dict[TopicPartition, Lane] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._resume: dict[TopicPartition, int] = {}  # revoked: where to resume if reassigned
        self._retired: dict[TopicPartition, Lane] = {}  # revoked lanes (may still be sending)
        self._unassigned_since: float | None = None
        self._stop = threading.Event()
        self.running = threading.Event()
        self._consumer: Any = None
        self._producer: Any = None
        self._pool = ThreadPoolExecutor(
            max_workers=max(settings.max_inflight, 8), thread_name_prefix="deliver"
        )
        self._outstanding = 0  # unordered: records submitted and not finished
        self._http: ThreadingHTTPServer | None = None
        self.metrics_port: int | None = None
        # Stall detection (/healthz): when a record last finished, or the lag was last seen at
        # 0 (idle is not stalled); the last lag measured; when the poll loop last went round.
        self._progress_at = time.monotonic()
        self._loop_at = time.monotonic()
        self._lag: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        s = self.settings
        self._start_metrics_server()
        self._producer = KafkaProducer(
            bootstrap_servers=s.bootstrap.split(","),
            client_id=f"{s.group}-dls",
            acks="all",
            linger_ms=0,
            max_block_ms=5000,
            request_timeout_ms=5000,
            delivery_timeout_ms=10000,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            allow_auto_create_topics=False,
        )
        self._consumer = KafkaConsumer(
            bootstrap_servers=s.bootstrap.split(","),
            group_id=s.group,
            client_id=f"{s.group}-dispatcher",
            enable_auto_commit=False,
            auto_offset_reset=s.initial_offset,
            # Not a batch size but "everything fetched": see _flow_control for why.
            max_poll_records=POLL_ALL,
            max_partition_fetch_bytes=FETCH_PARTITION_BYTES,
            fetch_max_bytes=FETCH_MAX_BYTES,
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            allow_auto_create_topics=False,
        )
        self._consumer.subscribe(list(s.topics), listener=_Listener(self))
        log.info(
            "dispatching %s (group %s) -> %s, %s, retry %d %s %.3fs, timeout %.1fs, DLQ %s",
            ",".join(s.topics),
            s.group,
            s.sink,
            s.ordering,
            s.retry,
            s.backoff_policy,
            s.backoff_delay,
            s.timeout,
            s.dlq_topic or "(none)",
        )
        self.running.set()
        next_commit = time.monotonic() + s.commit_interval
        next_check = time.monotonic() + 1
        try:
            while not self._stop.is_set():
                self._loop_at = time.monotonic()
                batch = self._consumer.poll(timeout_ms=250, max_records=POLL_ALL)
                for tp, records in batch.items():
                    for record in records:
                        self._accept(tp, record)
                self._flow_control()
                if time.monotonic() >= next_check:
                    self._rejoin_if_unassigned()
                    next_check = time.monotonic() + 1
                if time.monotonic() >= next_commit:
                    try:
                        self._commit()
                    except Exception:  # e.g. a rebalance in progress: the next round retries
                        log.warning("periodic commit failed", exc_info=True)
                    self._update_lag()
                    next_commit = time.monotonic() + s.commit_interval
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            lanes = list(self._lanes.values())
        for lane in lanes:  # no new attempts, no retries; the current attempt may finish
            lane.closed.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            self._commit()
        except Exception:
            log.exception("final commit failed")
        self._consumer.close(autocommit=False, timeout_ms=5000)
        self._producer.close(timeout=5)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self.running.clear()
        log.info("dispatcher stopped")

    # -- consuming ----------------------------------------------------------------------------

    def _rejoin_if_unassigned(self) -> None:
        """Work around a kafka-python race (a metadata update that arrives while the first join
        is in flight is ignored): a member with no partitions at all, of topics that do have
        partitions, asks the group to rebalance. With one dispatcher per group (the local stack)
        an empty assignment is never legitimate; with more members than partitions this only
        costs a rebalance every UNASSIGNED_GRACE seconds for the idle members."""
        consumer = self._consumer
        if consumer.assignment():
            self._unassigned_since = None
            return
        now = time.monotonic()
        if self._unassigned_since is None:
            self._unassigned_since = now
            return
        if now - self._unassigned_since < UNASSIGNED_GRACE:
            return
        self._unassigned_since = now
        if all(consumer.partitions_for_topic(t) for t in self.settings.topics):
            coordinator = getattr(consumer, "_coordinator", None)
            if coordinator is not None and hasattr(coordinator, "request_rejoin"):
                log.warning("no partitions assigned although the topics have some: rejoining")
                coordinator.request_rejoin()

    def _lane(self, tp: TopicPartition) -> Lane:
        lane = self._lanes.get(tp)
        if lane is None:
            lane = self._lanes[tp] = Lane(tp, previous=self._retired.pop(tp, None))
        return lane

    def _accept(self, tp: TopicPartition, record: Any) -> None:
        with self._lock:
            lane = self._lane(tp)
            lane.pending.add(record.offset)
            lane.next_offset = max(lane.next_offset or 0, record.offset + 1)
            if self.settings.ordering == "unordered":
                self._outstanding += 1
                self._pool.submit(self._deliver_one, lane, record)
                return
            lane.queue.append(record)
            if not lane.active:
                lane.active = True
                lane.idle.clear()
                self._pool.submit(self._drain, lane)

    def _drain(self, lane: Lane) -> None:
        """Ordered mode: deliver this partition's records one after the other (after the
        partition's revoked lane, if any, has finished its last attempt)."""
        if lane.previous is not None:
            lane.previous.idle.wait(self.settings.timeout + 1)
            lane.previous = None
        while True:
            with self._lock:
                if lane.closed.is_set() or not lane.queue:
                    lane.active = False
                    lane.idle.set()
                    return
                record = lane.queue.popleft()
            self._deliver_one(lane, record)

    def _flow_control(self) -> None:
        """Bound the memory: pause partitions whose buffer is full, resume them when drained.

        Why every poll takes all fetched records (max_poll_records=POLL_ALL): kafka-python
        3.0.12 (KAFKA-7548 port, consumer/fetcher.py `fetched_records`) parks the partly
        consumed batch of a partition that is paused, and excludes a partition with a parked
        batch from every later fetch (`_fetchable_partitions`) until the batch is un-parked;
        but it un-parks only while its `_next_partition_records` slot `is None`, and after the
        first batch is consumed that slot holds a drained (falsy, not None) batch for good. So
        a partition paused mid-batch is never fetched again: with max_poll_records=50 and 200
        records per lane that was the stall of issue 10 (lag stuck, only a restart delivered).
        When each poll drains the fetcher, nothing partly consumed is ever parked; a completed
        fetch that arrives while paused is parked raw, which kafka-python restores correctly
        on resume. tests/integration/test_dispatcher_backlog.py shows both."""
        consumer = self._consumer
        assigned = consumer.assignment() or set()
        with self._lock:
            if self.settings.ordering == "unordered":
                full = self._outstanding >= self.settings.max_inflight
                to_pause = set(assigned) if full else set()
            else:
                to_pause = {
                    tp
                    for tp in assigned
                    if tp in self._lanes and len(self._lanes[tp].queue) >= LANE_CAP
                }
        paused = consumer.paused()
        if to_pause - paused:
            consumer.pause(*(to_pause - paused))
        resume = (paused & set(assigned)) - to_pause
        if resume:
            consumer.resume(*resume)

    # -- delivering ---------------------------------------------------------------------------

    def _deliver_one(self, lane: Lane, record: Any) -> None:
        try:
            if lane.closed.is_set():
                return  # revoked or stopping: not finished, so not committable
            event = from_record(record, namespace=self.settings.namespace, name=self.settings.name)
            outcome = self._deliver(lane, event)
            if outcome is None:
                log.info("event %s: abandoned (partition revoked or stopping)", event.id)
                return
            if outcome != "success":
                outcome = self._dead_letter(record, event, outcome)
            self.metrics.deliveries.labels(outcome).inc()
            with self._lock:
                lane.pending.discard(record.offset)
            self._progress_at = time.monotonic()
        except Exception:  # a bug must not kill the worker silently: the record stays pending
            log.exception("delivering %s/%d failed", lane.tp, record.offset)
        finally:
            if self.settings.ordering == "unordered":
                with self._lock:
                    self._outstanding -= 1

    def _deliver(self, lane: Lane, event: Event) -> Any:
        """'success', or the last failure (a Reply or an exception); None when stopped."""
        s = self.settings
        headers = event.http_headers()
        headers["Prefer"] = "reply"
        headers["Kn-Namespace"] = s.namespace
        attempt = 0
        while True:
            failure: Reply | BaseException
            try:
                reply = post(s.sink, headers, event.data, s.timeout)
            except (OSError, http.client.HTTPException) as exc:
                failure = exc
                log.warning("event %s: attempt %d: %r", event.id, attempt + 1, exc)
            else:
                if reply.status < 300:
                    return "success"
                failure = reply
                log.warning("event %s: attempt %d: HTTP %d", event.id, attempt + 1, reply.status)
                if not retryable(reply.status):
                    return failure
            if attempt >= s.retry:
                return failure
            attempt += 1
            self.metrics.deliveries.labels("retry").inc()
            if lane.closed.wait(s.backoff(attempt)):
                return None

    def _dead_letter(self, record: Any, event: Event, failure: Reply | BaseException) -> str:
        s = self.settings
        added = {"knativeerrordest": s.sink}
        if isinstance(failure, Reply):
            added["knativeerrorcode"] = str(failure.status)
            for name, value in failure.headers:
                if name.lower().startswith("kne-"):
                    ext = attribute_name(name[4:])
                    if ext and ext not in added and ext not in event.attributes:
                        added[ext] = value
            if failure.body:
                data = base64.b64encode(failure.body[:ERROR_DATA_MAX]).decode()
                added["knativeerrordata"] = data
        if not s.dlq_topic:
            log.error("event %s dropped (no dead-letter topic)", event.id)
            return "dropped"
        letter = Event(
            {**event.attributes, **added},
            event.content_type,
            event.data,
            extra={
                ORIGIN_HEADER: f"{record.topic}/{record.partition}/{record.offset}",
                ADDED_HEADER: ",".join(added),
            },
        )
        try:
            self._producer.send(
                s.dlq_topic, key=record.key, value=event.data, headers=letter.kafka_headers()
            ).get(timeout=15)
        except Exception:  # contract: a failed dead-letter send still makes it committable
            log.exception("event %s: dead-letter send to %s failed: dropped", event.id, s.dlq_topic)
            return "dropped"
        self.metrics.dead_letters.inc()
        log.warning("event %s dead-lettered to %s (%s)", event.id, s.dlq_topic, added)
        return "dead_lettered"

    # -- offsets ------------------------------------------------------------------------------

    def _commit(self, only: Iterable[TopicPartition] | None = None, wait: bool = True) -> None:
        with self._lock:
            wanted = set(only) if only is not None else set(self._lanes)
            offsets = {}
            for tp in wanted:
                lane = self._lanes.get(tp)
                offset = lane.committable() if lane else None
                if offset is not None and self._committed.get(tp) != offset:
                    offsets[tp] = OffsetAndMetadata(offset, "", -1)
        if offsets and not wait:
            self._consumer.commit_async(offsets)
        elif offsets:
            self._consumer.commit(offsets)
            self._committed.update({tp: om.offset for tp, om in offsets.items()})
            log.debug(
                "committed %s",
                {f"{tp.topic}/{tp.partition}": o.offset for tp, o in offsets.items()},
            )

    def _update_lag(self) -> None:
        assigned = list(self._consumer.assignment() or [])
        if not assigned:
            self.metrics.lag.set(0)
            return
        try:
            ends = self._consumer.end_offsets(assigned)
            lag = 0
            for tp in assigned:
                committed = self._committed.get(tp)
                if committed is None:
                    committed = self._consumer.committed(tp)
                if committed is None:
                    committed = self._consumer.position(tp)
                lag += max(0, ends.get(tp, 0) - (committed or 0))
            self.metrics.lag.set(lag)
            self._lag = lag
            if lag == 0:
                self._progress_at = time.monotonic()
        except Exception:
            log.warning("lag update failed", exc_info=True)

    def revoked(self, tps: Iterable[TopicPartition]) -> None:
        """Rebalance listener (runs on kafka-python's IO loop: nothing here may block): commit
        what is committable (asynchronously), stop the partitions' lanes after their current
        attempt, and remember where each one has to resume should it come straight back."""
        tps = list(tps)
        try:
            self._commit(tps, wait=False)
        except Exception:
            log.warning("commit on revocation failed", exc_info=True)
        with self._lock:
            self._resume = {}
            for tp in tps:
                lane = self._lanes.pop(tp, None)
                if lane is not None:
                    lane.closed.set()
                    self._retired[tp] = lane
                    offset = lane.committable()
                    if offset is not None:
                        self._resume[tp] = offset
                self._committed.pop(tp, None)

    def assigned(self, tps: Iterable[TopicPartition]) -> None:
        """Rebalance listener: a partition we just gave up and got back resumes at its first
        unfinished record (records abandoned in the revocation are delivered again), not at
        the fetch position kafka-python kept for it."""
        with self._lock:
            resume, self._resume = self._resume, {}
        for tp in tps:
            if tp in resume:
                self._consumer.seek(tp, resume[tp])

    # -- health and metrics -------------------------------------------------------------------

    def stalled(self) -> str | None:
        """Why the dispatcher is not making progress, or None. Stalled: the poll loop has not
        gone round for `stall_timeout` seconds, or there is lag (records not committed) and no
        record has finished (delivered, dead-lettered or dropped) for `stall_timeout` seconds
        while the lag was above 0. A sink that keeps failing is a stall too (nothing moves)."""
        limit = self.settings.stall_timeout
        if limit <= 0 or not self.running.is_set():
            return None
        now = time.monotonic()
        if now - self._loop_at >= limit:
            return f"poll loop stuck for {now - self._loop_at:.0f} s"
        idle = now - self._progress_at
        if self._lag and idle >= limit:
            return f"lag {self._lag} and nothing delivered for {idle:.0f} s"
        return None

    def _start_metrics_server(self) -> None:
        if self.settings.metrics_port is None:
            return
        dispatcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    status, ctype, body = (
                        200,
                        CONTENT_TYPE_LATEST,
                        generate_latest(dispatcher.metrics.registry),
                    )
                elif self.path.startswith("/healthz"):
                    problem = dispatcher.stalled()
                    if not dispatcher.running.is_set():
                        problem = "not running"
                    text = f"unhealthy: {problem}\n" if problem else "ok\n"
                    status, ctype, body = (503 if problem else 200), "text/plain", text.encode()
                else:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._http = ThreadingHTTPServer(
            (self.settings.metrics_host, self.settings.metrics_port), Handler
        )
        self.metrics_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True, name="metrics").start()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            log.info("revoked %s", sorted(f"{tp.topic}/{tp.partition}" for tp in revoked))
        self.dispatcher.revoked(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("assigned %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))
        self.dispatcher.assigned(assigned)


# -- command line ---------------------------------------------------------------------------------


def _env(name: str, default: str) -> str:
    return os.environ.get(f"BOXOFFICE_DISPATCHER_{name}", default)


def parse_args(argv: list[str] | None = None) -> Settings:
    env = os.environ
    p = argparse.ArgumentParser(
        description="KafkaSource-contract dispatcher (local stand-in for Knative's KafkaSource). "
        "Each option can also be set as BOXOFFICE_DISPATCHER_<OPTION> (e.g. ..._RETRY).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--bootstrap",
        default=env.get("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS", ""),
        help="Kafka bootstrap servers ($BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS)",
    )
    p.add_argument(
        "--sink",
        default=_env("SINK", env.get("BOXOFFICE_CONSUME_ORDER_URL", "")),
        help="URL the events are POSTed to ($BOXOFFICE_CONSUME_ORDER_URL)",
    )
    p.add_argument(
        "--topic",
        action="append",
        help="topic to consume (repeatable; default $BOXOFFICE_BOOKING_TOPIC or booking)",
    )
    p.add_argument("--group", default=_env("GROUP", "boxoffice-consume-order"), help="group id")
    p.add_argument(
        "--initial-offset",
        choices=["earliest", "latest"],
        default=_env("INITIAL_OFFSET", "earliest"),
        help="where a group without committed offsets starts",
    )
    p.add_argument(
        "--ordering",
        choices=["ordered", "unordered"],
        default=_env("ORDERING", "ordered"),
        help="ordered: one request in flight per partition",
    )
    p.add_argument(
        "--retry", type=int, default=int(_env("RETRY", "8")), help="retries after the first attempt"
    )
    p.add_argument(
        "--backoff-policy",
        choices=["exponential", "linear"],
        default=_env("BACKOFF_POLICY", "exponential"),
        help="wait delay*n (linear) or delay*2^n (exponential) before retry n",
    )
    p.add_argument(
        "--backoff-delay",
        type=iso_duration,
        default=_env("BACKOFF_DELAY", "PT0.5S"),
        help="ISO-8601 base delay",
    )
    p.add_argument(
        "--timeout",
        type=iso_duration,
        default=_env("TIMEOUT", "PT30S"),
        help="ISO-8601 timeout of each attempt",
    )
    p.add_argument(
        "--dlq-topic",
        default=_env("DLQ_TOPIC", env.get("BOXOFFICE_DEAD_LETTER_TOPIC", "booking-dlq")),
        help="dead-letter topic ('' = none: exhausted records are dropped)",
    )
    p.add_argument(
        "--namespace", default=_env("NAMESPACE", "boxoffice"), help="Kn-Namespace, ce-source"
    )
    p.add_argument(
        "--name", default=_env("NAME", "booking-to-consume-order"), help="KafkaSource name"
    )
    p.add_argument(
        "--commit-interval",
        type=float,
        default=float(_env("COMMIT_INTERVAL", "5")),
        help="seconds between offset commits",
    )
    p.add_argument(
        "--max-inflight",
        type=int,
        default=int(_env("MAX_INFLIGHT", "50")),
        help="unordered: most requests in flight",
    )
    p.add_argument(
        "--stall-timeout",
        type=float,
        default=float(_env("STALL_TIMEOUT", "60")),
        help="seconds with lag and no record finished after which /healthz answers 503 (0: off)",
    )
    p.add_argument("--metrics-host", default=_env("METRICS_HOST", "127.0.0.1"), help="bind")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("METRICS_PORT", "28086")),
        help="/metrics and /healthz (0: any free port)",
    )
    a = p.parse_args(argv)
    for value, flag in ((a.bootstrap, "--bootstrap"), (a.sink, "--sink")):
        if not value:
            p.error(f"{flag} is required (or its environment variable)")
    if a.retry < 0 or a.max_inflight < 1 or a.stall_timeout < 0:
        p.error("--retry and --stall-timeout must be >= 0 and --max-inflight >= 1")
    topics = tuple(a.topic or [env.get("BOXOFFICE_BOOKING_TOPIC", "booking")])
    return Settings(
        bootstrap=a.bootstrap,
        sink=a.sink,
        topics=topics,
        group=a.group,
        initial_offset=a.initial_offset,
        ordering=a.ordering,
        retry=a.retry,
        backoff_policy=a.backoff_policy,
        backoff_delay=a.backoff_delay,
        timeout=a.timeout,
        dlq_topic=a.dlq_topic,
        namespace=a.namespace,
        name=a.name,
        commit_interval=a.commit_interval,
        max_inflight=a.max_inflight,
        stall_timeout=a.stall_timeout,
        metrics_host=a.metrics_host,
        metrics_port=a.metrics_port,
    )


def main(argv: list[str] | None = None, install: Callable[..., Any] = signal.signal) -> int:
    logging.basicConfig(
        level=os.environ.get("BOXOFFICE_DISPATCHER_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    disable_created_metrics()  # type: ignore[no-untyped-call]
    dispatcher = Dispatcher(parse_args(argv))
    for sig in (signal.SIGTERM, signal.SIGINT):
        install(sig, lambda *_: dispatcher.stop())
    dispatcher.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
