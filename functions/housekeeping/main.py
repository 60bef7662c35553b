"""housekeeping: releases lapsed seat holds and sends the refunds that are due (docs/adr/0020),
then prunes expired idempotency keys, old order-event dedupe rows and published outbox events
past BOXOFFICE_OUTBOX_RETENTION_DAYS.

Cluster-local, no token: a Knative PingSource POSTs a CloudEvent to it on a schedule (locally
`stack/boxo up` starts a periodic trigger); any POST runs one bounded pass and answers its
report. Two replicas may run passes at once (rows are claimed with SKIP LOCKED). Also serves
/healthz, /readyz and /metrics (`boxoffice_rows_pruned_total{table}`).
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response

from boxoffice.adapters.housekeeping import TABLES
from boxoffice.bootstrap import container, function_app
from boxoffice.services import housekeeping, payments
from boxoffice.web.app import RequestContext, json_response

app = function_app("housekeeping")


@app.route("/", methods=["POST"])
@app.route("/<path:path>", methods=["POST"])
def prune(ctx: RequestContext, path: str = "") -> Response:
    c = container()
    checkout = payments.housekeeping_pass(
        c.payments, c.refund_uow, c.payment_provider, c.payment_policy
    )
    report = housekeeping.prune(c.housekeeping_store, TABLES, c.housekeeping_policy)
    body = {
        "holdsExpired": checkout.expired,
        "bookingsOfCancelledEventsCancelled": checkout.cancelled,
        "refundsSent": checkout.refunds_sent,
        "refundsFailed": checkout.refunds_failed,
        "pruned": report.pruned,
        "complete": report.complete,
        "seconds": report.seconds,
    }
    return json_response(body, headers={"Cache-Control": "no-store"})


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
