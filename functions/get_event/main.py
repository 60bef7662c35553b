"""get_event: the public catalogue (events, venues) and its admin management.

Routes: GET /events, GET /events/{eventId}, GET /venues/{venueId} (public, cacheable);
POST /events, PUT /events/{eventId}, POST /events/{eventId}/cancel, POST /venues,
PUT /venues/{venueId} (role `admin`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import functions_framework
from flask import Request, Response

from boxoffice import errors, metrics
from boxoffice.bootstrap import container, function_app
from boxoffice.domain.catalogue import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Event,
    EventQuery,
    Venue,
    decode_cursor,
    encode_cursor,
)
from boxoffice.domain.identity import ADMIN_ROLE
from boxoffice.errors import FieldError
from boxoffice.services import catalogue
from boxoffice.web import validation as v
from boxoffice.web.app import RequestContext, cacheable_json, json_response
from boxoffice.web.render import event_json, venue_json

app = function_app("get_event")


def _event_json(event: Event) -> dict[str, Any]:
    return event_json(event, container().settings.max_tickets_per_order)


@app.route("/events", methods=["GET"])
def list_events(ctx: RequestContext) -> Response:
    r = ctx.request
    v.reject_unknown_query(r, {"venueId", "from", "to", "limit", "cursor"})
    cursor = r.args.get("cursor")
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise errors.InvalidParameter([FieldError("cursor", "not a cursor from this API")]) from exc
    query = EventQuery(
        venue_id=v.query_uuid(r, "venueId"),
        starts_from=v.query_datetime(r, "from") or datetime.now(UTC),
        starts_to=v.query_datetime(r, "to"),
        limit=v.query_int(r, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
        after=after,
    )
    page = catalogue.list_events(container().uow, query)
    metrics.EVENTS_SERVED.inc(len(page.items))
    next_cursor = encode_cursor(page.items[-1]) if page.has_more else None
    body = {"items": [_event_json(e) for e in page.items], "nextCursor": next_cursor}
    return _public(ctx, body)


@app.route("/events/<event_id>", methods=["GET"])
def get_event(ctx: RequestContext, event_id: str) -> Response:
    event = catalogue.get_event(container().uow, v.parse_uuid(event_id, "eventId"))
    metrics.EVENTS_SERVED.inc()
    return _public(ctx, _event_json(event))


@app.route("/venues/<venue_id>", methods=["GET"])
def get_venue(ctx: RequestContext, venue_id: str) -> Response:
    venue = catalogue.get_venue(container().uow, v.parse_uuid(venue_id, "venueId"))
    return _public(ctx, venue_json(venue))


def _venue(ctx: RequestContext, venue_id: uuid.UUID) -> Venue:
    ctx.principal(ADMIN_ROLE)
    b = v.json_body(ctx.request, "VenueInput")
    return Venue(venue_id, b["name"], b["address"], b["city"], b["capacity"])


@app.route("/venues", methods=["POST"])
def create_venue(ctx: RequestContext) -> Response:
    venue = catalogue.save_venue(container().uow, _venue(ctx, uuid.uuid4()), must_exist=False)
    return json_response(venue_json(venue), 201, {"Location": f"/venues/{venue.id}"})


@app.route("/venues/<venue_id>", methods=["PUT"])
def update_venue(ctx: RequestContext, venue_id: str) -> Response:
    venue = _venue(ctx, v.parse_uuid(venue_id, "venueId"))
    return json_response(venue_json(catalogue.save_venue(container().uow, venue, must_exist=True)))


def _draft(ctx: RequestContext) -> catalogue.EventDraft:
    ctx.principal(ADMIN_ROLE)
    b = v.json_body(ctx.request, "EventInput")
    return catalogue.EventDraft(
        venue_id=uuid.UUID(b["venueId"]),
        name=b["name"],
        description=b.get("description", ""),
        starts_at=v.body_datetime(b["startsAt"], "startsAt"),
        price=Decimal(b["price"]["amount"]),
        currency=b["price"]["currency"],
        capacity=b["capacity"],
    )


@app.route("/events", methods=["POST"])
def create_event(ctx: RequestContext) -> Response:
    event = catalogue.create_event(container().uow, _draft(ctx))
    return json_response(_event_json(event), 201, {"Location": f"/events/{event.id}"})


@app.route("/events/<event_id>", methods=["PUT"])
def update_event(ctx: RequestContext, event_id: str) -> Response:
    draft = _draft(ctx)
    event = catalogue.update_event(container().uow, v.parse_uuid(event_id, "eventId"), draft)
    return json_response(_event_json(event))


@app.route("/events/<event_id>/cancel", methods=["POST"])
def cancel_event(ctx: RequestContext, event_id: str) -> Response:
    ctx.principal(ADMIN_ROLE)
    event = catalogue.cancel_event(container().uow, v.parse_uuid(event_id, "eventId"))
    return json_response(_event_json(event))


def _public(ctx: RequestContext, body: object) -> Response:
    settings = container().settings
    return cacheable_json(ctx, body, settings.catalogue_max_age, settings.catalogue_stale)


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
