"""get_customer: the signed-in customer's profile, and admin look-up by id.

Routes: GET /customers/me, PUT /customers/me (role `customer`), GET /customers/{customerId}
(role `admin`; anyone else gets 404 so ids cannot be probed).
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response

from boxoffice import metrics
from boxoffice.bootstrap import container, function_app
from boxoffice.domain.customers import Address, Profile
from boxoffice.domain.identity import CUSTOMER_ROLE
from boxoffice.services import customers
from boxoffice.web import validation as v
from boxoffice.web.app import RequestContext, json_response
from boxoffice.web.render import customer_json

app = function_app("get_customer")
PRIVATE = {"Cache-Control": "private, no-store"}


@app.route("/customers/me", methods=["GET"])
def get_me(ctx: RequestContext) -> Response:
    customer = customers.me(container().uow, ctx.principal(CUSTOMER_ROLE))
    return json_response(customer_json(customer), headers=PRIVATE)


@app.route("/customers/me", methods=["PUT"])
def put_me(ctx: RequestContext) -> Response:
    principal = ctx.principal(CUSTOMER_ROLE)
    b = v.json_body(ctx.request, "CustomerInput")
    a = b["address"]
    profile = Profile(
        name=b["name"],
        email=b["email"],
        address=Address(a["line1"], a.get("line2", ""), a["postalCode"], a["city"], a["country"]),
    )
    customer, created = customers.register_or_update(container().uow, principal, profile)
    if created:
        metrics.CUSTOMERS_REGISTERED.inc()
    return json_response(customer_json(customer), 201 if created else 200, PRIVATE)


@app.route("/customers/<customer_id>", methods=["GET"])
def get_by_id(ctx: RequestContext, customer_id: str) -> Response:
    principal = ctx.principal()
    customer = customers.get_by_id(
        container().uow, principal, v.parse_uuid(customer_id, "customerId")
    )
    return json_response(customer_json(customer), headers=PRIVATE)


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
