"""create_booking: book tickets, and read, list and cancel your bookings.

Routes (role `customer`): POST /bookings (header Idempotency-Key required; Admission-Token too
for an event in queue mode), GET /bookings, GET /bookings/{bookingId} (admins: any booking),
DELETE /bookings/{bookingId} (a paid booking is refunded), POST /bookings/{bookingId}/payment
(pay a held booking: where to send the buyer).
"""

from __future__ import annotations

from typing import Any

import functions_framework
from flask import Request, Response

from boxoffice import metrics
from boxoffice.bootstrap import container, function_app
from boxoffice.domain.bookings import encode_cursor
from boxoffice.domain.identity import CUSTOMER_ROLE
from boxoffice.services import bookings, orders, payments
from boxoffice.services.ports import BookingView
from boxoffice.web import outcomes, requests
from boxoffice.web import render as r
from boxoffice.web.app import RequestContext, json_response
from boxoffice.web.validation import parse_uuid

app = function_app("create_booking", publishes_events=True)


@app.route("/bookings", methods=["POST"])
def create_booking(ctx: RequestContext) -> Response:
    c = container()
    with outcomes.refusals(outcomes.booking_refused):
        principal = ctx.principal(CUSTOMER_ROLE)
        request = requests.booking_request(ctx.request, lambda: c.admission_verifier)
        booked = bookings.create_booking(
            c.bookings, c.outbox_notifier, c.booking_policy, principal, request
        )
    outcomes.booked(booked)
    return json_response(*r.booked_response(booked))


def _view_json(view: BookingView) -> dict[str, Any]:
    """A booking with its order and a presigned link to its ticket document, if stored."""
    url = None
    if orders.has_document(view.order):  # else no S3 client is built
        c = container()
        url = orders.document_link(c.document_store, view.order, c.settings.ticket_link_seconds)
    return r.booking_with_order_json(view.booking, view.order, url, view.payment)


@app.route("/bookings", methods=["GET"])
def list_bookings(ctx: RequestContext) -> Response:
    principal = ctx.principal(CUSTOMER_ROLE)
    limit, after = requests.bookings_page(ctx.request)
    page = bookings.list_bookings(container().bookings, principal, limit, after)
    next_cursor = encode_cursor(page.items[-1].booking) if page.has_more else None
    body = r.page_json([_view_json(view) for view in page.items], next_cursor)
    return json_response(body, headers=r.PRIVATE)


@app.route("/bookings/<booking_id>", methods=["GET"])
def get_booking(ctx: RequestContext, booking_id: str) -> Response:
    principal = ctx.principal()
    principal = principal if principal.is_admin else ctx.principal(CUSTOMER_ROLE)
    view = bookings.get_booking(
        container().bookings, principal, parse_uuid(booking_id, "bookingId")
    )
    return json_response(_view_json(view), headers=r.PRIVATE)


@app.route("/bookings/<booking_id>", methods=["DELETE"])
def cancel_booking(ctx: RequestContext, booking_id: str) -> Response:
    principal = ctx.principal()
    principal = principal if principal.is_admin else ctx.principal(CUSTOMER_ROLE)
    c = container()
    booking_uuid = parse_uuid(booking_id, "bookingId")
    refunder = c.refunder
    result = bookings.cancel_booking(
        c.bookings,
        c.outbox_notifier,
        c.booking_policy,
        principal,
        booking_uuid,
        refunder.of_booking if refunder else None,
    )
    if result.changed:
        metrics.TICKETS_RELEASED.inc(result.booking.quantity)
    return json_response(r.booking_json(result.booking), headers=r.PRIVATE)


@app.route("/bookings/<booking_id>/payment", methods=["POST"])
def pay_booking(ctx: RequestContext, booking_id: str) -> Response:
    principal = ctx.principal(CUSTOMER_ROLE)
    c = container()
    intent = payments.start_payment(
        c.payments,
        c.require_payment_provider(),
        c.payment_policy,
        principal,
        parse_uuid(booking_id, "bookingId"),
    )
    return json_response(r.payment_json(intent), headers=r.PRIVATE)


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
