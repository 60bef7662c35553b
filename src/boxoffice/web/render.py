"""JSON renderings of domain objects, as the OpenAPI spec describes them (camelCase)."""

from __future__ import annotations

from typing import Any

from boxoffice.domain.bookings import Booking
from boxoffice.domain.catalogue import Event, Venue
from boxoffice.domain.checkins import CheckInSummary, ScanResult
from boxoffice.domain.customers import Customer
from boxoffice.domain.orders import Order
from boxoffice.domain.payments import PaymentIntent, PaymentSummary
from boxoffice.domain.waiting_room import Line, PlaceView
from boxoffice.services.ports import Booked


def venue_json(venue: Venue) -> dict[str, Any]:
    return {
        "id": str(venue.id),
        "name": venue.name,
        "address": venue.address,
        "city": venue.city,
        "capacity": venue.capacity,
    }


def event_json(event: Event, max_tickets_per_order: int) -> dict[str, Any]:
    """An event as the API shows it, with the most tickets one booking may have (the booking
    form's limit: BOXOFFICE_MAX_TICKETS_PER_ORDER, enforced by POST /bookings)."""
    return {
        "id": str(event.id),
        "name": event.name,
        "description": event.description,
        "startsAt": event.starts_at.isoformat(),
        "venue": {"id": str(event.venue.id), "name": event.venue.name, "city": event.venue.city},
        "price": event.price.to_json(),
        "capacity": {"total": event.capacity, "remaining": event.remaining},
        "status": event.availability.value,
        "maxTicketsPerOrder": max_tickets_per_order,
        "categories": [
            {
                "id": str(c.id),
                "name": c.name,
                "price": c.price.to_json(),
                "capacity": c.capacity,
                "remaining": c.remaining,
                "status": event.category_availability(c).value,
            }
            for c in event.categories
        ],
        "onlinePayment": event.online_payment,
    }


def customer_json(customer: Customer) -> dict[str, Any]:
    p = customer.profile
    return {
        "id": str(customer.id),
        "name": p.name,
        "email": p.email,
        "address": {
            "line1": p.address.line1,
            "line2": p.address.line2,
            "postalCode": p.address.postal_code,
            "city": p.address.city,
            "country": p.address.country,
        },
    }


def order_json(order: Order, document_url: str | None) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "status": order.status.value,
        "confirmedAt": order.confirmed_at.isoformat(),
        "cancelledAt": order.cancelled_at.isoformat() if order.cancelled_at else None,
        "tickets": [
            {"id": str(t.id), "seq": t.seq, "code": t.code, "status": t.status.value}
            for t in order.tickets
        ],
        "documentUrl": document_url,
    }


def booking_json(booking: Booking) -> dict[str, Any]:
    return {
        "id": str(booking.id),
        "eventId": str(booking.event_id),
        "status": booking.status.value,
        "quantity": booking.quantity,
        "unitPrice": booking.unit_price.to_json(),
        "total": booking.total.to_json(),
        "createdAt": booking.created_at.isoformat(),
        "cancelledAt": booking.cancelled_at.isoformat() if booking.cancelled_at else None,
        "categoryId": str(booking.category_id) if booking.category_id else None,
        "holdExpiresAt": booking.hold_expires_at.isoformat() if booking.hold_expires_at else None,
        "expiredAt": booking.expired_at.isoformat() if booking.expired_at else None,
    }


def payment_summary_json(summary: PaymentSummary | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {
        "paid": summary.paid.to_json(),
        "refunded": summary.refunded.to_json(),
        "refundPending": summary.refund_pending.to_json(),
    }


def booking_with_order_json(
    booking: Booking,
    order: Order | None,
    document_url: str | None,
    payment: PaymentSummary | None = None,
) -> dict[str, Any]:
    """A booking as its reads show it: `order` is null until order processing confirmed it,
    `payment` null unless it was paid online."""
    body = booking_json(booking)
    body["order"] = order_json(order, document_url) if order is not None else None
    body["payment"] = payment_summary_json(payment)
    return body


def payment_json(intent: PaymentIntent) -> dict[str, Any]:
    """POST /bookings/{id}/payment: where the buyer pays."""
    return {
        "paymentId": intent.id,
        "bookingId": str(intent.booking_id) if intent.booking_id else None,
        "amount": intent.amount.to_json(),
        "status": intent.status.value,
        "redirectUrl": intent.redirect_url,
        "clientSecret": intent.client_secret,
    }


def scan_json(result: ScanResult) -> dict[str, Any]:
    """One scan's result: for an admission, the ticket and the admission; for a refusal (batch
    items), its outcome slug and detail, and for `already-checked-in` the first admission."""
    r = result.record
    a = r.admission
    return {
        "scanId": str(result.scan_id),
        "outcome": r.outcome.value,
        "admitted": r.outcome.admits,
        "detail": result.detail,
        "ticketId": str(result.ticket_id) if result.ticket_id else None,
        "ticketEventId": str(r.ticket_event_id) if r.ticket_event_id else None,
        "seq": r.seq,
        "quantity": r.quantity,
        "holder": r.holder,
        "checkIn": (
            {"at": a.at.isoformat(), "gate": a.gate, "offline": a.offline, "scanId": str(a.scan_id)}
            if a is not None
            else None
        ),
    }


def summary_json(summary: CheckInSummary) -> dict[str, Any]:
    return {
        "eventId": str(summary.event_id),
        "issued": summary.issued,
        "admitted": summary.admitted,
        "notYetAdmitted": max(summary.issued - summary.admitted, 0),
        "offlineConflicts": summary.offline_conflicts,
        "gates": [{"gate": g, "admitted": n} for g, n in summary.by_gate],
    }


def line_json(line: Line) -> dict[str, Any]:
    """An event's waiting room: its settings and its serving counter (public)."""
    s = line.settings
    rate = line.effective_rate
    return {
        "eventId": str(line.event_id),
        "state": line.state.value,
        "opensAt": s.opens_at.isoformat(),
        "admissionRate": "automatic" if s.admission_rate is None else float(s.admission_rate),
        "currentRate": None if rate is None else float(rate),
        "admissionSeconds": s.admission_seconds,
        "randomiseEarlyArrivals": s.randomise_early,
        "expectedTicketsPerBuyer": float(s.tickets_per_buyer),
        "drawn": line.drawn,
        "servedUpTo": line.served_up_to,
        "joined": line.joined,
        "waiting": line.waiting,
        "admitted": line.admitted,
        "expiredUnused": line.expired_unused,
        "soldOutAt": line.sold_out_at.isoformat() if line.sold_out_at else None,
    }


def place_json(view: PlaceView, token: str | None) -> dict[str, Any]:
    """A customer's place (GET /events/{id}/queue/me), with the admission token when admitted."""
    p = view.place
    admission = None
    if token is not None:
        assert p.expires_at is not None
        admission = {"token": token, "expiresAt": p.expires_at.isoformat()}
    return {
        "eventId": str(p.event_id),
        "state": view.state.value,
        "position": p.position,
        "peopleAhead": view.people_ahead,
        "estimatedWaitSeconds": view.estimated_wait_seconds,
        "joinedAt": p.joined_at.isoformat(),
        "admittedAt": p.admitted_at.isoformat() if p.admitted_at else None,
        "expiresAt": p.expires_at.isoformat() if p.expires_at else None,
        "retryAfterSeconds": view.retry_after,
        "admission": admission,
    }


def page_json(items: list[dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    """One page of a list (GET /events, GET /bookings): its items and the next page's cursor."""
    return {"items": items, "nextCursor": next_cursor}


PRIVATE = {"Cache-Control": "private, no-store"}


def booked_response(booked: Booked) -> tuple[dict[str, Any], int, dict[str, str]]:
    """POST /bookings' answer (body, status, headers): 201 with the booking and its Location, or
    on a replay the same answer again with `Idempotent-Replayed: true`."""
    if booked.booking is not None:
        body = booking_json(booked.booking)
        status, headers = 201, {"Location": f"/bookings/{booked.booking.id}", **PRIVATE}
    else:  # replay of a key completed before the booking store kept booking ids
        assert booked.stored is not None
        body, status = booked.stored.body, booked.stored.status
        headers = {**booked.stored.headers, **PRIVATE}
    if booked.replayed:
        headers["Idempotent-Replayed"] = "true"
    return body, status, headers


def scan_batch_json(results: list[ScanResult]) -> dict[str, Any]:
    """POST /checkins/batch: each scan's result, and how many had each outcome."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
    return {"results": [scan_json(r) for r in results], "counts": counts}
