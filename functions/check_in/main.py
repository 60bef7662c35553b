"""check_in: tickets at the door. Scan a code, admit its ticket exactly once.

Routes: POST /checkins and POST /checkins/batch (offline uploads) (role `scanner`);
GET /events/{eventId}/checkins/summary (`scanner` or `admin`); GET /.well-known/ticket-keys
(public: the JWKS of the keys whose codes are accepted, for gates that verify offline).
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response

from boxoffice.bootstrap import container, function_app
from boxoffice.domain.identity import SCANNER_ROLE
from boxoffice.services import checkins
from boxoffice.web import requests
from boxoffice.web import validation as v
from boxoffice.web.app import RequestContext, json_response
from boxoffice.web.render import PRIVATE, scan_batch_json, scan_json, summary_json

KEYS_MAX_AGE = 300


# Ready when its ticket keys are configured and the database answers.
app = function_app("check_in", needs=lambda c: c.ticket_keys)


@app.route("/checkins", methods=["POST"])
def check_in(ctx: RequestContext) -> Response:
    principal = ctx.principal(SCANNER_ROLE)
    station, scan = requests.check_in(ctx.request, principal.subject)
    c = container()
    result = checkins.check_in(c.checkin_uow, c.ticket_keys, station, scan)
    if not result.outcome.admits:
        raise checkins.refusal(result)
    return json_response(scan_json(result), 200, PRIVATE)


@app.route("/checkins/batch", methods=["POST"])
def upload(ctx: RequestContext) -> Response:
    principal = ctx.principal(SCANNER_ROLE)
    station, scans = requests.check_in_batch(ctx.request, principal.subject)
    c = container()
    results = checkins.upload(c.checkin_uow, c.ticket_keys, station, scans)
    return json_response(scan_batch_json(results), 200, PRIVATE)


@app.route("/events/<event_id>/checkins/summary", methods=["GET"])
def summary(ctx: RequestContext, event_id: str) -> Response:
    principal = ctx.principal()
    if not principal.is_admin:
        ctx.principal(SCANNER_ROLE)
    found = checkins.summary(container().checkin_uow, v.parse_uuid(event_id, "eventId"))
    return json_response(summary_json(found), 200, PRIVATE)


@app.route("/.well-known/ticket-keys", methods=["GET"])
def ticket_keys(ctx: RequestContext) -> Response:
    headers = {"Cache-Control": f"public, max-age={KEYS_MAX_AGE}"}
    response = json_response(container().ticket_keys.jwks(), 200, headers)
    response.mimetype = "application/jwk-set+json"
    return response


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
