"""waiting_room: fair, bounded admission to hot on-sales (docs/adr/0014-waiting-room.md).

Routes: GET /events/{eventId}/queue (public: the line's status, cacheable for a second);
PUT and DELETE /events/{eventId}/queue (role `admin`: set or end queue mode); POST
/events/{eventId}/queue (role `customer`: one place per customer, joining again returns it);
GET /events/{eventId}/queue/me (role `customer`: position, people ahead, estimated wait, state,
and once admitted a short-lived admission token for POST /bookings; `Retry-After` says when to
ask again). The serving counter is advanced by the admission controller (python -m
boxoffice.processes.admission), not here.
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response

from boxoffice import metrics
from boxoffice.bootstrap import container, function_app
from boxoffice.domain.identity import ADMIN_ROLE, CUSTOMER_ROLE
from boxoffice.domain.waiting_room import line_retry_after
from boxoffice.services import waiting_room
from boxoffice.web import outcomes, requests
from boxoffice.web import validation as v
from boxoffice.web.app import RequestContext, cacheable_json, json_response
from boxoffice.web.render import line_json, place_json

app = function_app("waiting_room")


@app.route("/events/<event_id>/queue", methods=["GET"])
def get_line(ctx: RequestContext, event_id: str) -> Response:
    line = container().line_cache.get(v.parse_uuid(event_id, "eventId"))
    metrics.WAITING_ROOM_POLLS.labels("line", line.state.value).inc()
    return cacheable_json(ctx, line_json(line), line_retry_after(line))


@app.route("/events/<event_id>/queue", methods=["PUT"])
def configure(ctx: RequestContext, event_id: str) -> Response:
    ctx.principal(ADMIN_ROLE)
    settings = requests.queue_settings(ctx.request)
    eid = v.parse_uuid(event_id, "eventId")
    line, created = waiting_room.configure(container().waiting_room, eid, settings)
    headers = {"Location": f"/events/{eid}/queue", "Cache-Control": "no-store"}
    return json_response(line_json(line), 201 if created else 200, headers)


@app.route("/events/<event_id>/queue", methods=["DELETE"])
def remove(ctx: RequestContext, event_id: str) -> Response:
    ctx.principal(ADMIN_ROLE)
    waiting_room.remove(container().waiting_room, v.parse_uuid(event_id, "eventId"))
    return Response(status=204, headers={"Cache-Control": "no-store"})


@app.route("/events/<event_id>/queue", methods=["POST"])
def join(ctx: RequestContext, event_id: str) -> Response:
    principal = ctx.principal(CUSTOMER_ROLE)
    eid = v.parse_uuid(event_id, "eventId")
    with outcomes.refusals(outcomes.queue_join_refused):
        view, created = waiting_room.join(container().waiting_room, principal, eid)
    metrics.WAITING_ROOM_JOINS.labels("new" if created else "again").inc()
    headers = {"Location": f"/events/{eid}/queue/me", "Cache-Control": "private, no-store"}
    headers["Retry-After"] = str(view.retry_after)
    return json_response(place_json(view, None), 201 if created else 200, headers)


@app.route("/events/<event_id>/queue/me", methods=["GET"])
def my_place(ctx: RequestContext, event_id: str) -> Response:
    principal = ctx.principal(CUSTOMER_ROLE)
    c = container()
    eid = v.parse_uuid(event_id, "eventId")
    mine = waiting_room.my_place(c.waiting_room, lambda: c.admission_signer, principal, eid)
    view = mine.view
    metrics.WAITING_ROOM_POLLS.labels("me", view.state.value).inc()
    # Until the next poll the answer stands (the client's own cache may keep it); an admission
    # carries a token and is never stored.
    cache = "private, no-store" if mine.token else f"private, max-age={view.retry_after}"
    headers = {"Cache-Control": cache, "Retry-After": str(view.retry_after)}
    return json_response(place_json(view, mine.token), 200, headers)


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
