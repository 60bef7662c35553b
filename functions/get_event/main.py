"""get_event: the public catalogue (events, venues) and its admin management.

Routes: GET /events, GET /events/{eventId}, GET /venues/{venueId} (public, cacheable);
POST /events, PUT /events/{eventId}, POST /events/{eventId}/cancel, POST /venues,
PUT /venues/{venueId} (role `admin`).
"""

from __future__ import annotations

import uuid
from typing import Any

import functions_framework
from flask import Request, Response

from boxoffice import metrics
from boxoffice.bootstrap import container, function_app
from boxoffice.domain.catalogue import Event, encode_cursor
from boxoffice.domain.identity import ADMIN_ROLE
from boxoffice.services import catalogue
from boxoffice.web import requests
from boxoffice.web.app import RequestContext, cacheable_json, json_response
from boxoffice.web.render import event_json, page_json, venue_json
from boxoffice.web.validation import parse_uuid

app = function_app("get_event")


def _event_json(event: Event) -> dict[str, Any]:
    return event_json(event, container().settings.max_tickets_per_order)


def _public(ctx: RequestContext, body: object) -> Response:
    settings = container().settings
    return cacheable_json(ctx, body, settings.catalogue_max_age, settings.catalogue_stale)


@app.route("/events", methods=["GET"])
def list_events(ctx: RequestContext) -> Response:
    page = catalogue.list_events(container().uow, requests.event_query(ctx.request))
    metrics.EVENTS_SERVED.inc(len(page.items))
    next_cursor = encode_cursor(page.items[-1]) if page.has_more else None
    return _public(ctx, page_json([_event_json(e) for e in page.items], next_cursor))


@app.route("/events/<event_id>", methods=["GET"])
def get_event(ctx: RequestContext, event_id: str) -> Response:
    event = catalogue.get_event(container().uow, parse_uuid(event_id, "eventId"))
    metrics.EVENTS_SERVED.inc()
    return _public(ctx, _event_json(event))


@app.route("/venues/<venue_id>", methods=["GET"])
def get_venue(ctx: RequestContext, venue_id: str) -> Response:
    venue = catalogue.get_venue(container().uow, parse_uuid(venue_id, "venueId"))
    return _public(ctx, venue_json(venue))


@app.route("/venues", methods=["POST"])
def create_venue(ctx: RequestContext) -> Response:
    ctx.principal(ADMIN_ROLE)
    venue = requests.venue(ctx.request, uuid.uuid4())
    venue = catalogue.save_venue(container().uow, venue, must_exist=False)
    return json_response(venue_json(venue), 201, {"Location": f"/venues/{venue.id}"})


@app.route("/venues/<venue_id>", methods=["PUT"])
def update_venue(ctx: RequestContext, venue_id: str) -> Response:
    venue_uuid = parse_uuid(venue_id, "venueId")
    ctx.principal(ADMIN_ROLE)
    venue = requests.venue(ctx.request, venue_uuid)
    return json_response(venue_json(catalogue.save_venue(container().uow, venue, must_exist=True)))


@app.route("/events", methods=["POST"])
def create_event(ctx: RequestContext) -> Response:
    ctx.principal(ADMIN_ROLE)
    event = catalogue.create_event(container().uow, requests.event_draft(ctx.request))
    return json_response(_event_json(event), 201, {"Location": f"/events/{event.id}"})


@app.route("/events/<event_id>", methods=["PUT"])
def update_event(ctx: RequestContext, event_id: str) -> Response:
    ctx.principal(ADMIN_ROLE)
    draft = requests.event_draft(ctx.request)
    event = catalogue.update_event(container().uow, parse_uuid(event_id, "eventId"), draft)
    return json_response(_event_json(event))


@app.route("/events/<event_id>/cancel", methods=["POST"])
def cancel_event(ctx: RequestContext, event_id: str) -> Response:
    ctx.principal(ADMIN_ROLE)
    event = catalogue.cancel_event(container().uow, parse_uuid(event_id, "eventId"))
    return json_response(_event_json(event))


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
