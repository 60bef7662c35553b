"""Order processing: booking events in, orders and tickets out (consume_order; the entrypoint
decodes the CloudEvent, `boxoffice.web.cloudevents`).

`handle_booking_event` is one database transaction per event, one round trip
(`apply_booking_event`, db/migrations/R__orders.sql): lock the
booking, skip an event already consumed, then confirm (order + tickets + booking CONFIRMED) or
cancel (order + tickets CANCELLED), record the event and its outcome. A redelivery changes
nothing and still succeeds. The order's ticket document (a PDF, one page per ticket with its QR
code) is rendered and stored in S3 off the request path: after the commit the entrypoint wakes
the document worker, a background thread (`boxoffice.background`) whose passes
(`document_pass`) render and upload pending documents and also sweep for any left behind; a
failure there never undoes or blocks the order: the document stays pending
(orders.document_stored_at IS NULL) and is retried with backoff (docs/adr/0007,
docs/adr/0015-tickets-and-check-in.md).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from boxoffice import metrics
from boxoffice.domain.orders import (
    BookingEvent,
    Order,
    Outcome,
    document_key,
    issue_tickets,
)
from boxoffice.services.ports import (
    DocumentRenderer,
    DocumentStore,
    DocumentStoreError,
    DocumentUnitOfWorkFactory,
    OrderStore,
    Processed,
    Progress,
)

if TYPE_CHECKING:
    from boxoffice.domain.tickets import TicketSigner

log = logging.getLogger("boxoffice.orders")


def handle_booking_event(store: OrderStore, signer: TicketSigner, ev: BookingEvent) -> Processed:
    """Apply one booking event exactly once (idempotent under redelivery and concurrency), in
    one round trip. A created event's tickets are signed here, before the call: the key never
    reaches the database; a redelivery's are simply not used."""
    order_id = uuid.uuid4()
    tickets = (
        issue_tickets(signer, event_id=ev.event_id, quantity=ev.quantity) if ev.is_created else []
    )
    result = store.apply(ev, order_id, document_key(order_id), tickets)
    if result.outcome is Outcome.SKIPPED_BOOKING_CANCELLED and not result.redelivery:
        log.info("booking %s was cancelled before its order: no order issued", ev.booking_id)
    return result


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


def document_pass(
    uow: DocumentUnitOfWorkFactory,
    store: DocumentStore,
    renderer: DocumentRenderer,
    batch: int = 50,
) -> Progress:
    """One pass of the ticket document worker (a `boxoffice.background.BackgroundWorker`,
    kicked after each order commit and sweeping every interval): store up to `batch` due
    documents. MORE when the batch was full: more may be due, so the next pass follows at once."""
    stored = sweep_documents(uow, store, renderer, batch)
    if stored == batch:
        return Progress.MORE
    return Progress.WORKED if stored else Progress.IDLE


# -- the customer's view (create_booking: GET /bookings, GET /bookings/{id}) ---------------------


def has_document(order: Order | None) -> bool:
    """The order's ticket document is stored (so it can be linked)."""
    return order is not None and bool(order.document_key) and order.document_stored_at is not None


def document_link(store: DocumentStore, order: Order | None, link_seconds: int) -> str | None:
    """A presigned, short-lived link to the order's stored ticket document (None until it is
    stored, or when no link can be made)."""
    if order is None or not has_document(order):
        return None
    assert order.document_key is not None
    try:
        return store.link(order.document_key, link_seconds)
    except DocumentStoreError as exc:
        log.warning("no ticket document link for order %s: %s", order.id, exc)
        return None
