"""payment_webhook: the payment provider's webhook events (docs/adr/0020-checkout-state-machine.md).

Route: POST /payments/webhook, no token: the body must carry the provider's signature
(`Stripe-Signature`, verified with BOXOFFICE_STRIPE_WEBHOOK_SECRET; anything else is 400
`invalid-webhook-signature`). Each event is applied once (a redelivery answers `duplicate`): a
payment that paid its hold publishes the booking (-> order, tickets); one that cannot (the hold
lapsed, the booking was cancelled or paid already, another amount) is refunded. Any 2xx tells the
provider to stop delivering; a 503 (database down) makes it deliver again later.
"""

from __future__ import annotations

import functions_framework
from flask import Request, Response

from boxoffice.bootstrap import container, function_app
from boxoffice.services import payments
from boxoffice.web.app import RequestContext, json_response

SIGNATURE_HEADER = "Stripe-Signature"

# Ready when a provider is configured (its webhook secret checks deliveries) and the database
# answers; publishes the booking.created of paid holds through the outbox relay.
app = function_app(
    "payment_webhook", publishes_events=True, needs=lambda c: c.require_payment_provider()
)


@app.route("/payments/webhook", methods=["POST"])
def webhook(ctx: RequestContext) -> Response:
    c = container()
    outcome = payments.take_webhook(
        c.payments,
        c.require_payment_provider(),
        c.refund_uow,
        c.outbox_notifier,
        c.payment_policy,
        ctx.request.get_data(cache=False),
        ctx.request.headers.get(SIGNATURE_HEADER, ""),
    )
    return json_response({"outcome": outcome.value}, headers={"Cache-Control": "no-store"})


@functions_framework.http
def handler(request: Request) -> Response:
    return app.handle(request)
