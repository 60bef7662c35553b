"""Prometheus metrics of every function (nothing is pushed).

One registry per process. A server with several worker processes (boxoffice.processes.server) runs
prometheus_client in its multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set before this module
is imported): counters and histograms are summed over the workers, gauges say how they combine
(`multiprocess_mode`), and /metrics shows the whole server whichever worker answers it. The
circuit-breaker gauge is computed when scraped, from the breakers of the process that answers
(each worker has its own).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

# Decided at import, as prometheus_client decides where values live.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only add cardinality
REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "boxoffice_http_requests",
    "HTTP requests served, by function, route template, method and status code.",
    ["function", "route", "method", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "boxoffice_http_request_duration_seconds",
    "Time to serve an HTTP request, by function, route template and method.",
    ["function", "route", "method"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
EVENTS_SERVED = Counter(
    "boxoffice_events_served",
    "Event records returned by catalogue reads.",
    registry=REGISTRY,
)
CUSTOMERS_REGISTERED = Counter(
    "boxoffice_customers_registered",
    "Customer profiles created through PUT /customers/me.",
    registry=REGISTRY,
)
TOKENS_REJECTED = Counter(
    "boxoffice_tokens_rejected",
    "Access tokens refused, by reason.",
    ["reason"],
    registry=REGISTRY,
)
JWKS_REFRESHES = Counter(
    "boxoffice_jwks_refreshes",
    "JWKS fetches from the identity provider, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
BREAKER_STATE = Gauge(
    "boxoffice_circuit_breaker_open",
    "1 while a circuit breaker is open (failing fast), else 0.",
    ["dependency"],
    registry=REGISTRY,
)
# Families computed at scrape time in the answering process (Gauge.set_function).
PROCESS_LOCAL = frozenset({"boxoffice_circuit_breaker_open"})

REQUESTS_SHED = Counter(
    "boxoffice_requests_shed",
    "Requests refused with 503 overloaded before any work (boxoffice.web.queueing), by function "
    "and reason: queue_full (BOXOFFICE_MAX_QUEUE requests were already waiting), expected_wait "
    "(the expected wait would pass the request's deadline), deadline (no slot freed up before "
    "its deadline).",
    ["function", "reason"],
    registry=REGISTRY,
)
REQUEST_QUEUE_WAIT = Histogram(
    "boxoffice_request_queue_wait_seconds",
    "Time a request that found every slot taken spent in the server's queue, from its arrival"
    " (X-Request-Start, else when the server handed it over) until it started (outcome started)"
    " or was refused (outcome refused). Requests that found a slot free are not observed.",
    ["function", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
REQUEST_QUEUE_WAITING = Gauge(
    "boxoffice_request_queue_waiting",
    "Requests waiting for a slot (THREADS per worker process), summed over the workers.",
    ["function"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)


# Housekeeping (services/housekeeping.py).
ROWS_PRUNED = Counter(
    "boxoffice_rows_pruned",
    "Rows deleted by housekeeping, by table (expired idempotency keys, old order-event rows,"
    " published outbox events past their retention).",
    ["table"],
    registry=REGISTRY,
)
for _table in ("idempotency_record", "order_event", "outbox"):
    ROWS_PRUNED.labels(_table)

# Transactional outbox relay (services/relay.py).
OUTBOX_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
OUTBOX_PUBLISHED = Counter(
    "boxoffice_outbox_published",
    "Outbox events acknowledged by Kafka and marked published.",
    registry=REGISTRY,
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "boxoffice_outbox_publish_failures",
    "Outbox events whose publication failed (left for the next pass).",
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "boxoffice_outbox_backlog",
    "Outbox events not yet published (as last measured by this process's relay).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
OUTBOX_OLDEST_AGE = Gauge(
    "boxoffice_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox event (0 when none).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
OUTBOX_DEAD_LETTERED = Counter(
    "boxoffice_outbox_dead_lettered",
    "Outbox events refused by Kafka for good (too large, invalid) and set aside (dead-lettered).",
    registry=REGISTRY,
)
OUTBOX_DEAD_LETTERS = Gauge(
    "boxoffice_outbox_dead_letters",
    "Outbox events dead-lettered and not re-driven yet (as last measured by this process's"
    " relay): each is a booking event that never reached order processing.",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
OUTBOX_PUBLISH_LATENCY = Histogram(
    "boxoffice_outbox_publish_latency_seconds",
    "Time from an outbox event's creation (created_at) to its acknowledgement by Kafka.",
    buckets=OUTBOX_BUCKETS,
    registry=REGISTRY,
)


# Bookings (create_booking).
BOOKINGS = Counter(
    "boxoffice_bookings",
    "POST /bookings outcomes: created, replayed (stored response of an Idempotency-Key sent "
    "again), sold_out, limit_exceeded, admission_required, admission_expired (queue mode), "
    "rejected (any other refusal).",
    ["outcome"],
    registry=REGISTRY,
)
TICKETS_RESERVED = Counter(
    "boxoffice_tickets_reserved",
    "Tickets reserved by created bookings.",
    registry=REGISTRY,
)
TICKETS_RELEASED = Counter(
    "boxoffice_tickets_released",
    "Tickets given back to the inventory by cancelled bookings.",
    registry=REGISTRY,
)


# The waiting room (waiting_room: joins and polls; python -m boxoffice.processes.admission: the
# tick).
WAIT_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
WAITING_ROOM_JOINS = Counter(
    "boxoffice_waiting_room_joins",
    "POST /events/{id}/queue outcomes: new (a place was given), again (the place the customer "
    "already had), refused.",
    ["outcome"],
    registry=REGISTRY,
)
WAITING_ROOM_POLLS = Counter(
    "boxoffice_waiting_room_polls",
    "Waiting-room reads: endpoint me (GET /events/{id}/queue/me, by the place's state) or line "
    "(GET /events/{id}/queue, the public status: state of the line).",
    ["endpoint", "state"],
    registry=REGISTRY,
)
WAITING_ROOM_WAITING = Gauge(
    "boxoffice_waiting_room_waiting",
    "Buyers in line and not admitted yet, over all open waiting rooms (admission controller).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
WAITING_ROOM_OPEN = Gauge(
    "boxoffice_waiting_room_open_lines",
    "Waiting rooms scheduled or open (not sold out).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
WAITING_ROOM_RATE = Gauge(
    "boxoffice_waiting_room_admission_rate",
    "Buyers per second the open waiting rooms admit, summed (as the last tick applied).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)
WAITING_ROOM_ADMITTED = Counter(
    "boxoffice_waiting_room_admitted",
    "Buyers admitted to the purchase path by the waiting rooms' serving counters.",
    registry=REGISTRY,
)
WAITING_ROOM_EXPIRED = Counter(
    "boxoffice_waiting_room_admissions_expired",
    "Admissions whose window ended without a booking (their capacity went back to the line).",
    registry=REGISTRY,
)
WAITING_ROOM_WAIT = Histogram(
    "boxoffice_waiting_room_wait_seconds",
    "Time an admitted buyer waited: from joining (or from the on-sale time, for the pre-queue) "
    "to admission.",
    buckets=WAIT_BUCKETS,
    registry=REGISTRY,
)
WAITING_ROOM_TICKS = Counter(
    "boxoffice_waiting_room_ticks",
    "Admission ticks (one advance of every open serving counter), by outcome: ok, failed.",
    ["outcome"],
    registry=REGISTRY,
)
WAITING_ROOM_TICK_DURATION = Histogram(
    "boxoffice_waiting_room_tick_duration_seconds",
    "Time one admission tick took (one round trip: advance_queues).",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
for _outcome in ("new", "again", "refused"):
    WAITING_ROOM_JOINS.labels(_outcome)
for _outcome in ("ok", "failed"):
    WAITING_ROOM_TICKS.labels(_outcome)


# Order processing (consume_order).
ORDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
ORDER_EVENTS = Counter(
    "boxoffice_order_events",
    "Booking CloudEvents consume_order processed, by outcome: confirmed, "
    "skipped_booking_cancelled, order_cancelled, no_order_to_cancel, or redelivery (already "
    "applied: nothing changed).",
    ["outcome"],
    registry=REGISTRY,
)
ORDERS_CONFIRMED = Counter(
    "boxoffice_orders_confirmed",
    "Orders created (one per booking) with their tickets; the booking is CONFIRMED.",
    registry=REGISTRY,
)
ORDER_DUPLICATES = Counter(
    "boxoffice_order_duplicates",
    "Booking CloudEvents delivered again and ignored (already applied).",
    registry=REGISTRY,
)
TICKETS_ISSUED = Counter(
    "boxoffice_tickets_issued",
    "Tickets issued by confirmed orders.",
    registry=REGISTRY,
)
ORDER_PROCESSING = Histogram(
    "boxoffice_order_processing_seconds",
    "Time to process one booking CloudEvent (parse, transaction, commit).",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
BOOKING_TO_ORDER = Histogram(
    "boxoffice_booking_to_order_seconds",
    "Time from a booking.created CloudEvent's `time` to its order's commit.",
    buckets=ORDER_BUCKETS,
    registry=REGISTRY,
)
TICKET_DOCUMENT_FAILURES = Counter(
    "boxoffice_ticket_document_failures",
    "Ticket document uploads to S3 that failed (the document stays pending and is retried).",
    registry=REGISTRY,
)
TICKET_DOCUMENTS_STORED = Counter(
    "boxoffice_ticket_documents_stored",
    "Ticket documents stored in S3.",
    registry=REGISTRY,
)
TICKET_DOCUMENT_RENDER = Histogram(
    "boxoffice_ticket_document_render_cpu_seconds",
    "CPU time to render one ticket document (PDF, one page per ticket with its QR code).",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
    registry=REGISTRY,
)

TICKET_EMAILS = Counter(
    "boxoffice_ticket_emails",
    "Ticket email attempts by outcome: sent, failed (retried later), undeliverable (refused for"
    " good by the mail server), withdrawn (the order was cancelled first).",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in ("sent", "failed", "undeliverable", "withdrawn"):  # exported from the start
    TICKET_EMAILS.labels(_outcome)
TICKET_EMAILS_PENDING = Gauge(
    "boxoffice_ticket_emails_pending",
    "Ticket emails waiting to be sent (as last counted by this process's document worker).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)

# Checkout (create_booking, payment_webhook, housekeeping; docs/adr/0020-checkout-state-machine.md).
HOLDS = Counter(
    "boxoffice_holds",
    "Seat holds by what became of them: created (a booking of a priced category on an event paid"
    " online), paid (its payment arrived in time), expired (released by the schedule).",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in ("created", "paid", "expired"):  # exported from the start
    HOLDS.labels(_outcome)
PAYMENTS = Counter(
    "boxoffice_payments",
    "Payments: started (the buyer was sent to pay), succeeded (a payment paid its hold).",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in ("started", "succeeded"):
    PAYMENTS.labels(_outcome)
PAYMENT_EVENTS = Counter(
    "boxoffice_payment_events",
    "Payment provider webhook events by outcome: applied, refunded (could not pay its booking),"
    " recorded, duplicate (delivered before), ignored.",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in ("applied", "refunded", "recorded", "duplicate", "ignored"):
    PAYMENT_EVENTS.labels(_outcome)
REFUNDS = Counter(
    "boxoffice_refunds",
    "Refund attempts at the payment provider: sent (taken), failed (retried later).",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in ("sent", "failed"):
    REFUNDS.labels(_outcome)
REFUNDS_PENDING = Gauge(
    "boxoffice_refunds_pending",
    "Refunds requested and not yet taken by the payment provider (as last counted).",
    multiprocess_mode="livemax",
    registry=REGISTRY,
)

# Check-in (check_in).
TICKETS_CHECKED_IN = Counter(
    "boxoffice_tickets_checked_in",
    "Scans at the door by outcome (admitted, replayed, already_checked_in, ticket_cancelled, "
    "wrong_event, ticket_not_found, invalid_ticket_code) and mode (online: POST /checkins; "
    "offline: uploaded by POST /checkins/batch).",
    ["outcome", "mode"],
    registry=REGISTRY,
)


class _Exposition:
    """What /metrics shows: the whole server's values (all workers), plus the process-local
    families of the answering process; a family no worker has a value for yet is listed empty,
    as a single process lists it."""

    def collect(self) -> Iterable[Metric]:
        if not MULTIPROCESS:
            yield from REGISTRY.collect()
            return
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        seen = set()
        for family in merged.collect():
            if family.name not in PROCESS_LOCAL:
                seen.add(family.name)
                yield family
        for family in REGISTRY.collect():
            if family.name in PROCESS_LOCAL:
                yield family
            elif family.name not in seen:
                yield Metric(family.name, family.documentation, family.type)


def exposition() -> tuple[bytes, str]:
    return generate_latest(_Exposition()), CONTENT_TYPE_LATEST
