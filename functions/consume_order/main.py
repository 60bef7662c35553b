"""consume_order: booking CloudEvents from the `booking` topic in, orders and tickets out.

Knative's KafkaSource (locally: the contract dispatcher) POSTs each record to this function's
URL as a binary-mode CloudEvent (structured mode is accepted too). 200 only after the commit;
400/413/422 problem+json for events that can never succeed (dead-lettered, not retried);
503 for transient trouble (retried). Ticket documents (PDF) are rendered and stored by a
background worker woken after the commit. Also serves /healthz, /readyz and /metrics.
"""

from __future__ import annotations

import time

import functions_framework
from flask import Request, Response

from boxoffice import errors
from boxoffice.bootstrap import container, function_app
from boxoffice.services import orders
from boxoffice.web.app import RequestContext, json_response
from boxoffice.web.cloudevents import decode_booking_event

MAX_EVENT_BYTES = 64 * 1024


# Ready when its ticket-signing key (and the SMTP sender, when one is configured) is valid and the
# database answers.
app = function_app("consume_order", needs=lambda c: (c.ticket_signer, c.ticket_mailer))


@app.route("/", methods=["POST"])
@app.route("/<path:path>", methods=["POST"])
def consume(ctx: RequestContext, path: str = "") -> Response:
    started = time.perf_counter()
    c = container()
    signer = c.ticket_signer
    if (ctx.request.content_length or 0) > MAX_EVENT_BYTES:
        raise errors.PayloadTooLarge(f"a booking event is at most {MAX_EVENT_BYTES} bytes")
    event = decode_booking_event(dict(ctx.request.headers.items()), ctx.request.get_data())
    result = orders.handle_booking_event(c.orders, signer, event)
    orders.record_metrics(result, event, started)
    # After the commit: the worker renders and stores the PDF off this request's path (and
    # retries any document still pending, e.g. after an S3 outage).
    c.document_notifier.kick()
    body = {
        "outcome": result.outcome.value,
        "orderId": str(result.order_id) if result.order_id else None,
        "redelivery": result.redelivery,
    }
    return json_response(body, 200, {"Cache-Control": "no-store"})


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
