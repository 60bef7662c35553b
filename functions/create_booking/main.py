"""create_booking: book tickets, and read, list and cancel your bookings.

Routes (role `customer`): POST /bookings (header Idempotency-Key required; Admission-Token too
for an event in queue mode), GET /bookings, GET /bookings/{bookingId} (admins: any booking),
DELETE /bookings/{bookingId}.
"""

from __future__ import annotations

import uuid
from typing import Any

import functions_framework
from flask import Request, Response

from boxoffice import errors, metrics
from boxoffice.adapters.admission_tokens import HEADER as ADMISSION_HEADER
from boxoffice.bootstrap import container, function_app
from boxoffice.domain.bookings import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    decode_cursor,
    encode_cursor,
    request_hash,
    valid_idempotency_key,
)
from boxoffice.domain.identity import CUSTOMER_ROLE, Principal
from boxoffice.errors import FieldError
from boxoffice.services import bookings, orders
from boxoffice.services.ports import Booked, BookingView
from boxoffice.web import validation as v
from boxoffice.web.app import RequestContext, json_response
from boxoffice.web.render import booking_json, booking_with_order_json

app = function_app("create_booking", publishes_events=True)
PRIVATE = {"Cache-Control": "private, no-store"}
OUTCOMES: dict[type[errors.BoxofficeError], str] = {
    errors.SoldOut: "sold_out",
    errors.TicketLimitExceeded: "limit_exceeded",
    errors.AdmissionRequired: "admission_required",
    errors.AdmissionExpired: "admission_expired",
}


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise errors.IdempotencyKeyRequired("send an Idempotency-Key header (e.g. a UUID)")
    if not valid_idempotency_key(key):
        raise errors.InvalidParameter(
            [FieldError("Idempotency-Key", "must be 1 to 255 visible ASCII characters")]
        )
    return key


def _book(ctx: RequestContext) -> Booked:
    principal = ctx.principal(CUSTOMER_ROLE)
    key = _idempotency_key(ctx.request)
    body = v.json_body(ctx.request, "BookingInput")
    c = container()
    token = ctx.request.headers.get(ADMISSION_HEADER)
    request = bookings.BookingRequest(
        event_id=uuid.UUID(body["eventId"]),
        quantity=body["ticketCount"],
        idempotency_key=key,
        request_hash=request_hash("POST", "/bookings", body),
        admission=c.admission_verifier.verify(token) if token is not None else None,
    )
    return bookings.create_booking(
        c.bookings, c.outbox_notifier, c.booking_policy, principal, request
    )


@app.route("/bookings", methods=["POST"])
def create_booking(ctx: RequestContext) -> Response:
    try:
        booked = _book(ctx)
    except errors.BoxofficeError as exc:
        if exc.status < 500:
            metrics.BOOKINGS.labels(OUTCOMES.get(type(exc), "rejected")).inc()
        raise
    if booked.booking is not None:
        body = booking_json(booked.booking)
        status, headers = 201, {"Location": f"/bookings/{booked.booking.id}", **PRIVATE}
    else:  # replay of a key completed before the booking store kept booking ids
        assert booked.stored is not None
        body, status = booked.stored.body, booked.stored.status
        headers = {**booked.stored.headers, **PRIVATE}
    if booked.replayed:
        metrics.BOOKINGS.labels("replayed").inc()
        headers["Idempotent-Replayed"] = "true"
    else:
        assert booked.booking is not None
        metrics.BOOKINGS.labels("created").inc()
        metrics.TICKETS_RESERVED.inc(booked.booking.quantity)
    return json_response(body, status, headers)


def _render(view: BookingView) -> dict[str, Any]:
    """A booking with its order and a presigned link to its ticket document, if stored."""
    url = None
    if orders.has_document(view.order):
        c = container()
        url = orders.document_link(c.document_store, view.order, c.settings.ticket_link_seconds)
    return booking_with_order_json(view.booking, view.order, url)


def _reader(ctx: RequestContext) -> Principal:
    principal = ctx.principal()
    return principal if principal.is_admin else ctx.principal(CUSTOMER_ROLE)


@app.route("/bookings", methods=["GET"])
def list_bookings(ctx: RequestContext) -> Response:
    principal = ctx.principal(CUSTOMER_ROLE)
    r = ctx.request
    v.reject_unknown_query(r, {"limit", "cursor"})
    cursor = r.args.get("cursor")
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise errors.InvalidParameter([FieldError("cursor", "not a cursor from this API")]) from exc
    limit = v.query_int(r, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    page = bookings.list_bookings(container().bookings, principal, limit, after)
    next_cursor = encode_cursor(page.items[-1].booking) if page.has_more else None
    body = {"items": [_render(view) for view in page.items], "nextCursor": next_cursor}
    return json_response(body, headers=PRIVATE)


@app.route("/bookings/<booking_id>", methods=["GET"])
def get_booking(ctx: RequestContext, booking_id: str) -> Response:
    principal = _reader(ctx)
    view = bookings.get_booking(
        container().bookings, principal, v.parse_uuid(booking_id, "bookingId")
    )
    return json_response(_render(view), headers=PRIVATE)


@app.route("/bookings/<booking_id>", methods=["DELETE"])
def cancel_booking(ctx: RequestContext, booking_id: str) -> Response:
    principal = ctx.principal(CUSTOMER_ROLE)
    c = container()
    result = bookings.cancel_booking(
        c.bookings,
        c.outbox_notifier,
        c.booking_policy,
        principal,
        v.parse_uuid(booking_id, "bookingId"),
    )
    if result.changed:
        metrics.TICKETS_RELEASED.inc(result.booking.quantity)
    return json_response(booking_json(result.booking), headers=PRIVATE)


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
