"""Per-operation request parsers: an HTTP request (its body, query, headers) in, the values a
service takes out, validated (problem+json 400/422 for anything else). The entrypoints parse
with these, call one service and render (`web.render`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Request

from boxoffice import errors
from boxoffice.domain import bookings as booking_rules
from boxoffice.domain import catalogue as catalogue_rules
from boxoffice.domain.checkins import Scan, Station
from boxoffice.domain.money import Money
from boxoffice.domain.waiting_room import (
    DEFAULT_ADMISSION_SECONDS,
    DEFAULT_RANDOMISE_EARLY,
    DEFAULT_TICKETS_PER_BUYER,
    QueueSettings,
)
from boxoffice.errors import FieldError
from boxoffice.services.bookings import BookingRequest
from boxoffice.services.catalogue import EventDraft
from boxoffice.web import validation as v

if TYPE_CHECKING:  # PyJWT and cryptography: imported by the verifier, on first use
    from boxoffice.adapters.admission_tokens import AdmissionVerifier

T = TypeVar("T")
ADMISSION_HEADER = "Admission-Token"  # POST /bookings: the waiting room's admission token


# -- pages (GET /events, GET /bookings) --------------------------------------------------------


def cursor(request: Request, decode: Callable[[str], T]) -> T | None:
    """The `cursor` query parameter decoded (a page's `nextCursor`), or None for the first page;
    400 `invalid-parameter` when it is not a cursor this API made."""
    raw = request.args.get("cursor")
    if not raw:
        return None
    try:
        return decode(raw)
    except ValueError as exc:
        raise errors.InvalidParameter([FieldError("cursor", "not a cursor from this API")]) from exc


def page_limit(request: Request, default: int, maximum: int) -> int:
    return v.query_int(request, "limit", default, 1, maximum)


# -- create_booking ------------------------------------------------------------------------------


def idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise errors.IdempotencyKeyRequired("send an Idempotency-Key header (e.g. a UUID)")
    if not booking_rules.valid_idempotency_key(key):
        raise errors.InvalidParameter(
            [FieldError("Idempotency-Key", "must be 1 to 255 visible ASCII characters")]
        )
    return key


def booking_request(
    request: Request, admission_verifier: Callable[[], AdmissionVerifier]
) -> BookingRequest:
    """POST /bookings: its Idempotency-Key, body and Admission-Token (verified when sent: only
    then is the verifier, which needs its keys, asked for)."""
    key = idempotency_key(request)
    body = v.json_body(request, "BookingInput")
    token = request.headers.get(ADMISSION_HEADER)
    return BookingRequest(
        event_id=uuid.UUID(body["eventId"]),
        quantity=body["ticketCount"],
        idempotency_key=key,
        request_hash=booking_rules.request_hash("POST", "/bookings", body),
        admission=admission_verifier().verify(token) if token is not None else None,
        category_id=uuid.UUID(body["categoryId"]) if body.get("categoryId") else None,
    )


def bookings_page(request: Request) -> tuple[int, tuple[datetime, uuid.UUID] | None]:
    """GET /bookings: (limit, the cursor's position)."""
    v.reject_unknown_query(request, {"limit", "cursor"})
    after = cursor(request, booking_rules.decode_cursor)
    limit = page_limit(request, booking_rules.DEFAULT_PAGE_SIZE, booking_rules.MAX_PAGE_SIZE)
    return limit, after


# -- get_event -----------------------------------------------------------------------------------


def event_query(request: Request) -> catalogue_rules.EventQuery:
    """GET /events: venue, time window (from now by default), page."""
    v.reject_unknown_query(request, {"venueId", "from", "to", "limit", "cursor"})
    after = cursor(request, catalogue_rules.decode_cursor)
    return catalogue_rules.EventQuery(
        venue_id=v.query_uuid(request, "venueId"),
        starts_from=v.query_datetime(request, "from") or datetime.now(UTC),
        starts_to=v.query_datetime(request, "to"),
        limit=page_limit(request, catalogue_rules.DEFAULT_PAGE_SIZE, catalogue_rules.MAX_PAGE_SIZE),
        after=after,
    )


def venue(request: Request, venue_id: uuid.UUID) -> catalogue_rules.Venue:
    """POST /venues, PUT /venues/{venueId}."""
    b = v.json_body(request, "VenueInput")
    return catalogue_rules.Venue(venue_id, b["name"], b["address"], b["city"], b["capacity"])


def event_draft(request: Request) -> EventDraft:
    """POST /events, PUT /events/{eventId}: the event, with its ticket categories when given."""
    b = v.json_body(request, "EventInput")
    price = b.get("price")
    return EventDraft(
        venue_id=uuid.UUID(b["venueId"]),
        name=b["name"],
        description=b.get("description", ""),
        starts_at=v.body_datetime(b["startsAt"], "startsAt"),
        price=Decimal(price["amount"]) if price else None,
        currency=price["currency"] if price else None,
        capacity=b.get("capacity"),
        categories=tuple(
            catalogue_rules.CategorySpec(
                c["name"],
                Money(Decimal(c["price"]["amount"]), c["price"]["currency"]),
                c["capacity"],
            )
            for c in b.get("categories", ())
        ),
        online_payment=b.get("onlinePayment"),
    )


# -- waiting_room --------------------------------------------------------------------------------


def queue_settings(request: Request) -> QueueSettings:
    """PUT /events/{eventId}/queue (unset members take the documented defaults)."""
    b = v.json_body(request, "QueueInput")
    rate = b.get("admissionRate", "automatic")
    per_buyer = b.get("expectedTicketsPerBuyer", DEFAULT_TICKETS_PER_BUYER)
    return QueueSettings(
        opens_at=v.body_datetime(b["opensAt"], "opensAt"),
        admission_rate=None if rate == "automatic" else Decimal(str(rate)),
        admission_seconds=b.get("admissionSeconds", DEFAULT_ADMISSION_SECONDS),
        randomise_early=b.get("randomiseEarlyArrivals", DEFAULT_RANDOMISE_EARLY),
        tickets_per_buyer=Decimal(str(per_buyer)),
    )


# -- check_in ------------------------------------------------------------------------------------

BATCH_MAX_BYTES = 256 * 1024


def _station(body: dict[str, Any], scanner: str) -> Station:
    return Station(uuid.UUID(body["eventId"]), body["gate"], scanner)


def check_in(request: Request, scanner: str) -> tuple[Station, Scan]:
    """POST /checkins: where, by whom, and the scanned code."""
    body = v.json_body(request, "CheckInInput")
    return _station(body, scanner), Scan(body["code"], uuid.UUID(body["scanId"]))


def check_in_batch(request: Request, scanner: str) -> tuple[Station, list[Scan]]:
    """POST /checkins/batch: an offline gate's scans, each with when it was made."""
    body = v.json_body(request, "CheckInBatchInput", BATCH_MAX_BYTES)
    scans = [
        Scan(s["code"], uuid.UUID(s["scanId"]), v.body_datetime(s["scannedAt"], "scannedAt"))
        for s in body["scans"]
    ]
    return _station(body, scanner), scans
