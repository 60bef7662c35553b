"""Order processing: booking CloudEvents in, orders and tickets out (consume_order).

`handle_booking_event` is one database transaction per event: lock the booking, skip an event
already consumed, then confirm (order + tickets + booking CONFIRMED) or cancel (order + tickets
CANCELLED), record the event and its outcome, commit. A redelivery changes nothing and still
succeeds. The order's ticket document (a PDF, one page per ticket with its QR code) is rendered
and stored in S3 off the request path: after the commit the entrypoint wakes `DocumentWorker`, a
background thread that renders and uploads pending documents and also sweeps for any left behind;
a failure there never undoes or blocks the order: the document stays pending
(orders.document_stored_at IS NULL) and is retried with backoff (docs/adr/0007, docs/adr/0010).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import cloudevents.exceptions
from cloudevents.http import from_http

from boxoffice.domain.bookings import Booking, BookingStatus
from boxoffice.domain.orders import (
    BookingEvent,
    Order,
    OrderStatus,
    Outcome,
    booking_event,
    document_key,
    issue_tickets,
)
from boxoffice.errors import (
    BookingEventInvalid,
    FieldError,
    MalformedCloudEvent,
    UnknownBooking,
)
from boxoffice.services.ports import (
    DocumentRenderer,
    DocumentStore,
    DocumentStoreError,
    DocumentUnitOfWorkFactory,
    OrderRepository,
    OrderUnitOfWorkFactory,
)
from boxoffice.web import metrics

if TYPE_CHECKING:
    from boxoffice.domain.tickets import TicketSigner

log = logging.getLogger("boxoffice.orders")

DUPLICATE_OUTCOMES = frozenset({Outcome.ALREADY_CONFIRMED, Outcome.ALREADY_CANCELLED})


def _parse_time(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def decode_delivery(headers: Mapping[str, str], body: bytes) -> BookingEvent:
    """A CloudEvent as delivered over HTTP (binary mode: `ce-*` headers + body; or structured
    mode), validated as a booking event. Raises MalformedCloudEvent (400) when it is not a
    CloudEvent, UnsupportedEventType / BookingEventInvalid (422) when it is not a valid booking
    event: both mean "never retry", so the sender dead-letters it."""
    try:
        event = from_http(dict(headers.items()), body)
    except cloudevents.exceptions.GenericException as exc:
        raise MalformedCloudEvent(f"not a CloudEvent: {exc}") from exc
    return booking_event(
        str(event["source"]),
        str(event["id"]),
        str(event["type"]),
        _parse_time(event.get("time")),
        event.data,
    )


@dataclass(frozen=True, slots=True)
class Processed:
    outcome: Outcome
    order_id: uuid.UUID | None
    tickets_issued: int
    redelivery: bool  # this CloudEvent (or its effect) had already been committed


def _confirm(
    repo: OrderRepository, signer: TicketSigner, booking: Booking, existing: Order | None
) -> tuple[Outcome, uuid.UUID | None, int]:
    if existing is not None:
        return Outcome.ALREADY_CONFIRMED, existing.id, 0
    if booking.status is BookingStatus.CANCELLED:
        return Outcome.SKIPPED_BOOKING_CANCELLED, None, 0  # cancel overtook confirm
    order_id = uuid.uuid4()
    if repo.add_order(order_id, booking.id, document_key(order_id)) is None:
        raise RuntimeError("order insert conflicted under the booking's row lock")
    tickets = issue_tickets(signer, event_id=booking.event_id, quantity=booking.quantity)
    repo.add_tickets(order_id, tickets)
    repo.confirm_booking(booking.id)
    return Outcome.CONFIRMED, order_id, len(tickets)


def _cancel(repo: OrderRepository, booking: Booking, existing: Order | None) -> Outcome:
    if booking.status is not BookingStatus.CANCELLED:
        raise BookingEventInvalid([FieldError("type", f"booking {booking.id} is not cancelled")])
    if existing is None:
        return Outcome.NO_ORDER_TO_CANCEL
    if existing.status is OrderStatus.CANCELLED:
        return Outcome.ALREADY_CANCELLED
    repo.cancel_order(existing.id)
    return Outcome.ORDER_CANCELLED


def handle_booking_event(
    uow: OrderUnitOfWorkFactory, signer: TicketSigner, ev: BookingEvent
) -> Processed:
    """Apply one booking event exactly once (idempotent under redelivery and concurrency)."""
    with uow() as tx:
        repo = tx.orders
        booking = repo.lock_booking(ev.booking_id)
        if booking is None:
            raise UnknownBooking(f"booking {ev.booking_id} does not exist")
        mismatched = [
            FieldError(f"data.{name}", "does not match the booking")
            for name, ok in (
                ("eventId", booking.event_id == ev.event_id),
                ("customerId", booking.customer_id == ev.customer_id),
                ("quantity", booking.quantity == ev.quantity),
            )
            if not ok
        ]
        if mismatched:
            raise BookingEventInvalid(mismatched)
        earlier = repo.processed_outcome(ev.source, ev.id)
        existing = repo.order_for_booking(ev.booking_id, for_update=True)
        order_id = existing.id if existing else None
        if earlier is not None:
            return Processed(earlier, order_id, 0, redelivery=True)

        if ev.is_created:
            outcome, order_id, issued = _confirm(repo, signer, booking, existing)
        else:
            outcome, issued = _cancel(repo, booking, existing), 0
        repo.record_event(ev, outcome)
        tx.commit()
    if outcome is Outcome.SKIPPED_BOOKING_CANCELLED:
        log.info("booking %s was cancelled before its order: no order issued", ev.booking_id)
    return Processed(outcome, order_id, issued, redelivery=outcome in DUPLICATE_OUTCOMES)


def record_metrics(result: Processed, ev: BookingEvent, started: float) -> None:
    label = "redelivery" if result.redelivery else result.outcome.value.lower()
    metrics.ORDER_EVENTS.labels(label).inc()
    metrics.ORDER_PROCESSING.observe(time.perf_counter() - started)
    if result.redelivery:
        metrics.ORDER_DUPLICATES.inc()
        return
    if result.outcome is Outcome.CONFIRMED:
        metrics.ORDERS_CONFIRMED.inc()
        metrics.TICKETS_ISSUED.inc(result.tickets_issued)
        if ev.time is not None:
            lag = (datetime.now(UTC) - ev.time).total_seconds()
            metrics.BOOKING_TO_ORDER.observe(max(lag, 0.0))


# -- ticket documents ---------------------------------------------------------------------------


def store_document(
    uow: DocumentUnitOfWorkFactory,
    store: DocumentStore,
    renderer: DocumentRenderer,
    order_id: uuid.UUID | None = None,
    *,
    due_only: bool = True,
) -> bool | None:
    """Render and store one pending ticket document (this order's, or the most overdue): True
    when stored, False when the upload failed (counted; retried later), None when nothing was
    pending (or another process holds it). Never raises for a store failure."""
    with uow() as tx:
        source = tx.documents.claim_pending(order_id, due_only=due_only)
        if source is None:
            return None
        started = time.process_time()
        body = renderer.render(source)
        metrics.TICKET_DOCUMENT_RENDER.observe(time.process_time() - started)
        key = document_key(source.order.id)
        try:
            store.put(key, body, renderer.content_type)
        except DocumentStoreError as exc:
            metrics.TICKET_DOCUMENT_FAILURES.inc()
            log.warning("ticket document of order %s not stored: %s", source.order.id, exc)
            tx.documents.mark_failed(source.order.id, str(exc))
            tx.commit()
            return False
        tx.documents.mark_stored(source.order.id, key)
        tx.commit()
    metrics.TICKET_DOCUMENTS_STORED.inc()
    return True


def sweep_documents(
    uow: DocumentUnitOfWorkFactory,
    store: DocumentStore,
    renderer: DocumentRenderer,
    limit: int = 20,
    *,
    due_only: bool = True,
) -> int:
    """Store up to `limit` due documents; stops at the first failure (the store looks down).
    Returns how many were stored."""
    stored = 0
    for _ in range(limit):
        outcome = store_document(uow, store, renderer, due_only=due_only)
        if not outcome:
            break
        stored += 1
    return stored


class DocumentWorker:
    """A daemon thread that renders and stores pending ticket documents: woken by `kick()` after
    each commit that made or changed an order, and sweeping every `interval` seconds for
    documents left behind (S3 down, a crash, another instance). Started on first use, never at
    import: it belongs to the serving process."""

    def __init__(
        self,
        uow: DocumentUnitOfWorkFactory,
        store: DocumentStore,
        renderer: DocumentRenderer,
        interval: float,
        batch: int = 50,
    ) -> None:
        self._uow = uow
        self._store = store
        self._renderer = renderer
        self._interval = interval
        self._batch = batch
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="ticket-document-worker", daemon=True
                )
                self._thread.start()

    def kick(self) -> None:
        """Called after a commit that made or cancelled an order. Cheap; never raises."""
        try:
            self.ensure_started()
            self._wake.set()
        except Exception:  # a notification must never fail the request
            log.exception("ticket document worker: could not wake it")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                # Drain: full batches mean more may be due.
                while (
                    sweep_documents(self._uow, self._store, self._renderer, self._batch)
                    == self._batch
                    and not self._stop.is_set()
                ):
                    pass
            except Exception:  # the database may be down: try again next interval
                log.exception("ticket document pass failed")
            self._wake.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)


# -- the customer's view (create_booking: GET /bookings, GET /bookings/{id}) ---------------------


@dataclass(frozen=True, slots=True)
class OrderView:
    order: Order
    document_url: str | None  # presigned, short-lived; None until the document is stored


def order_views(
    uow: OrderUnitOfWorkFactory,
    store: DocumentStore,
    booking_ids: list[uuid.UUID],
    link_seconds: int,
) -> dict[uuid.UUID, OrderView]:
    """The orders of bookings the caller may already see (authorisation is the caller's job),
    by booking id, each with a presigned link to its stored ticket document."""
    with uow() as tx:
        found = tx.orders.orders_for_bookings(booking_ids)
    views = {}
    for booking_id, order in found.items():
        url = None
        if order.document_key and order.document_stored_at is not None:
            try:
                url = store.link(order.document_key, link_seconds)
            except DocumentStoreError as exc:
                log.warning("no ticket document link for order %s: %s", order.id, exc)
        views[booking_id] = OrderView(order, url)
    return views
