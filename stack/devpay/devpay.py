"""devpay: the local stack's payment provider, a stand-in for Stripe that needs no internet.

    .venv/bin/python stack/devpay/devpay.py [--port 28093] [--webhook-url URL ...]

Development infrastructure only (in production the payments go to Stripe itself). It speaks the
subset of Stripe's v1 REST wire format that `boxoffice.adapters.stripe_payments.StripePayments`
uses, so that adapter runs against it unchanged (`BOXOFFICE_STRIPE_API_BASE` = this server), and
it plays the part of Stripe's hosted payment page so that a purchase completes end to end:

- API (form-encoded requests as Stripe's libraries send them, `Authorization: Bearer sk_test_...`
  or HTTP Basic with the key as user name; any key starting with `sk_test_` is accepted, others
  get 401): `POST /v1/payment_intents`, `GET /v1/payment_intents/<id>`, `POST /v1/refunds`,
  `GET /v1/refunds/<id>`. Responses are JSON objects shaped like Stripe's (`object`, `id`,
  `created`, `livemode: false` ...), errors are Stripe's `{"error": {"type", "code", "message",
  "param"}}` with its statuses (400 invalid request, 401 bad key, 404 unknown id).
- Idempotency as Stripe's v1 honours it: a POST with an `Idempotency-Key` header is remembered
  once it has passed validation (success or refusal alike); the same key with the same method,
  path and parameters replays the first answer (header `Idempotent-Replayed: true`), with other
  parameters it is a 400 `idempotency_error`.
- A new PaymentIntent waits for the buyer (`requires_action`) with `next_action.redirect_to_url`
  pointing at its checkout page, `GET /checkout/<pi id>[?return_url=...]`: the amount, the
  currency, the booking id of its metadata, and two buttons, Pay (`data-testid=devpay-pay`) and
  Decline (`devpay-decline`). Pay makes it `succeeded` (a `latest_charge`) and sends
  `payment_intent.succeeded`; Decline leaves it `requires_payment_method` with a
  `last_payment_error` (card_declined) and sends `payment_intent.payment_failed`. Until it has
  succeeded the redirect stays in `next_action`, so a declined buyer can be sent back to try
  again (Stripe's own page would keep the buyer there). Paying or declining a succeeded intent
  changes nothing and sends nothing. With a `return_url` (http or https), the buyer is then
  redirected (303) to it with `payment=<pi id>&status=succeeded|failed` appended.
- A refund (`POST /v1/refunds`, `payment_intent` and optional `amount` in minor units) succeeds
  at once and sends `refund.created` with the refund, which carries the payment's metadata
  (booking id); more than what is left of the payment is refused as Stripe refuses it (400
  `amount_too_large`, or `charge_already_refunded` when nothing is left).
- Webhooks: each event is a Stripe `Event` (`evt_dev_...`, `data.object` the object as the API
  served it at that moment), POSTed as JSON to every `--webhook-url`
  (BOXOFFICE_DEVPAY_WEBHOOK_URL, comma-separated) and signed by Stripe's documented scheme with
  `--webhook-secret` (BOXOFFICE_STRIPE_WEBHOOK_SECRET): `Stripe-Signature: t=<unix time>,
  v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, signed again at each attempt. Delivery runs in
  background threads, in order per payment intent and endpoint: an answer other than 2xx, a
  connection error or a timeout is retried after `--retry-delay` (0.5 s) doubling up to 15 s,
  `--attempts` (10) times in all (about 75 s), then given up.
- Admin, for tests: `GET /devpay/events` (every event, newest last, with each delivery's outcome),
  `POST /devpay/events/<evt id>/redeliver` (the same event, same id and body, sent again to every
  endpoint). `GET /healthz` is 200.

State is kept in memory under one lock: a restart forgets every payment, refund and event (fine
for a dev tool; bookings paid before a restart can no longer be refunded through it). Served by
Werkzeug's threaded WSGI server (Flask's own), on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from flask import Flask, Response, redirect, render_template_string, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server
from werkzeug.wrappers import Response as BaseResponse

log = logging.getLogger("devpay")

DEFAULT_PORT = 28093
DEFAULT_API_VERSION = "2026-10-28.endive"  # used when a request names none (Stripe-Version)
MAX_RETRY_DELAY = 15.0
WEBHOOK_TIMEOUT = 10.0
# Stripe's zero-decimal and three-decimal currencies; every other one has two decimals.
_ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
_THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())  # noqa: SIM905

JsonObject = dict[str, Any]


class ApiError(Exception):
    """An answer in Stripe's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        executed: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        # Refused by the endpoint itself, after validation: remembered under the idempotency
        # key, as Stripe remembers every answer once an endpoint has begun executing.
        self.executed = executed
        self.body: JsonObject = {
            "error": {
                k: v
                for k, v in {
                    "type": type_,
                    "code": code,
                    "message": message,
                    "param": param,
                }.items()
                if v is not None
            }
        }


def _new_id(prefix: str) -> str:
    return f"{prefix}_dev_{secrets.token_hex(12)}"


def _nested(pairs: Sequence[tuple[str, str]]) -> JsonObject:
    """Stripe's form encoding as a dict: `metadata[k]=x` -> {"metadata": {"k": x}}."""
    out: JsonObject = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + ([p.rstrip("]") for p in rest.split("[")] if rest else [])
        node = out
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ApiError(400, f"Invalid parameter: {key}", code="parameter_unknown")
            node = child
        node[parts[-1]] = value
    return out


def _positive_int(params: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(
                400, f"Missing required param: {name}.", code="parameter_missing", param=name
            )
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(
            400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=name
        ) from None
    if value < 1:
        raise ApiError(
            400,
            "This value must be greater than or equal to 1.",
            code="parameter_invalid_integer",
            param=name,
        )
    return value


def display_amount(units: int, currency: str) -> str:
    exponent = 0 if currency in _ZERO_DECIMAL else 3 if currency in _THREE_DECIMAL else 2
    return f"{currency.upper()} {Decimal(units).scaleb(-exponent):f}"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Stripe's webhook signature header for `body` signed at `timestamp`."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class Delivery:
    url: str
    status: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: int | None = None

    def as_json(self) -> JsonObject:
        return {
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at,
        }


@dataclass
class SentEvent:
    event: JsonObject
    body: bytes
    lane: str  # events of one lane (payment intent) are delivered in order
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class Idempotent:
    fingerprint: tuple[str, str, tuple[tuple[str, str], ...]]
    status: int
    body: JsonObject


class Webhooks:
    """Signed delivery of events to every endpoint, retried, in order per lane and endpoint."""

    def __init__(
        self, urls: Sequence[str], secret: str, *, attempts: int, retry_delay: float
    ) -> None:
        self._urls = list(urls)
        self._secret = secret
        self._attempts = attempts
        self._retry_delay = retry_delay
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, str], deque[tuple[SentEvent, Delivery]]] = {}
        self._stopping = threading.Event()

    def send(self, sent: SentEvent) -> None:
        for url in self._urls:
            delivery = Delivery(url)
            with self._lock:
                sent.deliveries.append(delivery)
                key = (url, sent.lane)
                queue = self._queues.get(key)
                if queue is not None:  # its worker is running: it takes this one next
                    queue.append((sent, delivery))
                    continue
                self._queues[key] = deque([(sent, delivery)])
            threading.Thread(
                target=self._drain, args=(key,), name=f"webhooks {sent.lane}", daemon=True
            ).start()

    def stop(self) -> None:
        self._stopping.set()

    def _drain(self, key: tuple[str, str]) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    return
                sent, delivery = queue[0]
            self._deliver(sent, delivery)
            with self._lock:
                queue.popleft()

    def _deliver(self, sent: SentEvent, delivery: Delivery) -> None:
        delay = self._retry_delay
        for attempt in range(1, self._attempts + 1):
            if self._stopping.is_set():
                return
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) devpay",
                "Stripe-Signature": sign(self._secret, sent.body, int(time.time())),
            }
            code: int | None = None
            error: str | None = None
            try:
                answer = requests.post(  # a connection of its own: threads share no session
                    delivery.url, data=sent.body, headers=headers, timeout=WEBHOOK_TIMEOUT
                )
                code = answer.status_code
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                delivery.attempts = attempt
                delivery.last_status_code = code
                delivery.last_error = error
                if code is not None and 200 <= code < 300:
                    delivery.status = "delivered"
                    delivery.delivered_at = int(time.time())
            event = sent.event
            if code is not None and 200 <= code < 300:
                log.info("%s %s -> %s: %s", event["id"], event["type"], delivery.url, code)
                return
            log.warning(
                "%s %s -> %s: attempt %d of %d failed (%s)",
                event["id"],
                event["type"],
                delivery.url,
                attempt,
                self._attempts,
                code if code is not None else error,
            )
            if attempt < self._attempts and self._stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_RETRY_DELAY)
        with self._lock:
            delivery.status = "failed"
        log.error("%s %s -> %s: given up", sent.event["id"], sent.event["type"], delivery.url)


class DevPay:
    """The provider's state (in memory, one lock) and what the API and the page do to it."""

    def __init__(self, webhooks: Webhooks) -> None:
        self._lock = threading.Lock()
        self._intents: dict[str, JsonObject] = {}
        self._refunded: dict[str, int] = {}  # payment intent id -> minor units refunded
        self._refunds: dict[str, JsonObject] = {}
        self._idempotent: dict[str, Idempotent] = {}
        self._events: dict[str, SentEvent] = {}
        self._webhooks = webhooks

    # -- the API -----------------------------------------------------------------------------

    def idempotent(
        self,
        key: str | None,
        fingerprint: tuple[str, str, tuple[tuple[str, str], ...]],
        run: Callable[[], JsonObject],
    ) -> tuple[int, JsonObject, bool]:
        """(status, body, replayed): `run` once per idempotency key; the key with other
        parameters is an idempotency_error. Refusals from validation are not remembered."""
        with self._lock:
            if key is not None and key in self._idempotent:
                first = self._idempotent[key]
                if first.fingerprint != fingerprint:
                    raise ApiError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        f"they were first used with. Try using a key other than '{key}' if you "
                        "meant to execute a different request.",
                        type_="idempotency_error",
                    )
                return first.status, first.body, True
            try:
                status, body = 200, run()
            except ApiError as exc:
                if not exc.executed:
                    raise
                status, body = exc.status, exc.body
            if key is not None:
                self._idempotent[key] = Idempotent(fingerprint, status, body)
            return status, body, False

    def create_intent(self, params: JsonObject, base_url: str, api_version: str) -> JsonObject:
        amount = _positive_int(params, "amount", required=True)
        currency = str(params.get("currency") or "").lower()
        if not currency:
            raise ApiError(
                400, "Missing required param: currency.", code="parameter_missing", param="currency"
            )
        if len(currency) != 3 or not currency.isalpha():
            raise ApiError(
                400,
                f"Invalid currency: {currency}.",
                code="parameter_invalid_string",
                param="currency",
            )
        metadata = params.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ApiError(400, "Invalid object", code="parameter_invalid_empty", param="metadata")
        intent_id = _new_id("pi")
        intent: JsonObject = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "currency": currency,
            "customer": None,
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": dict(metadata),
            "next_action": {
                "type": "redirect_to_url",
                "redirect_to_url": {"url": f"{base_url}/checkout/{intent_id}", "return_url": None},
            },
            "payment_method": None,
            "payment_method_types": ["card"],
            "status": "requires_action",
            "_api_version": api_version,
        }
        self._intents[intent_id] = intent
        log.info("created %s: %s", intent_id, display_amount(amount or 0, currency))
        return _public(intent)

    def intent(self, intent_id: str) -> JsonObject:
        with self._lock:
            return _public(self._intent(intent_id))

    def _intent(self, intent_id: str) -> JsonObject:
        intent = self._intents.get(intent_id)
        if intent is None:
            raise ApiError(
                404,
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="intent",
            )
        return intent

    def create_refund(self, params: JsonObject) -> JsonObject:
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise ApiError(
                400,
                "One of the following params should be provided for this request: payment_intent "
                "or charge.",
                code="parameter_missing",
                param="payment_intent",
            )
        amount = _positive_int(params, "amount", required=False)
        intent = self._intents.get(str(intent_id))
        if intent is None:
            raise ApiError(
                400,  # Stripe: an unknown object named in a parameter is a 400, not a 404
                f"No such payment_intent: '{intent_id}'",
                code="resource_missing",
                param="payment_intent",
            )
        if intent["status"] != "succeeded":
            raise ApiError(
                400,
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                code="charge_not_refundable",
                param="payment_intent",
                executed=True,
            )
        left = intent["amount_received"] - self._refunded.get(intent["id"], 0)
        if left <= 0:
            raise ApiError(
                400,
                f"Charge {intent['latest_charge']} has already been refunded.",
                code="charge_already_refunded",
                executed=True,
            )
        if amount is None:
            amount = left
        if amount > left:
            raise ApiError(
                400,
                f"Refund amount ({display_amount(amount, intent['currency'])}) is greater than "
                f"unrefunded amount on charge ({display_amount(left, intent['currency'])})",
                code="amount_too_large",
                param="amount",
                executed=True,
            )
        self._refunded[intent["id"]] = self._refunded.get(intent["id"], 0) + amount
        refund: JsonObject = {
            "id": _new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": intent["latest_charge"],
            "created": int(time.time()),
            "currency": intent["currency"],
            "metadata": dict(intent["metadata"]),
            "payment_intent": intent["id"],
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        self._refunds[refund["id"]] = refund
        self._emit("refund.created", refund, lane=intent["id"], api_version=intent["_api_version"])
        log.info("refunded %s of %s", display_amount(amount, intent["currency"]), intent["id"])
        return dict(refund)

    def refund(self, refund_id: str) -> JsonObject:
        with self._lock:
            refund = self._refunds.get(refund_id)
            if refund is None:
                raise ApiError(
                    404, f"No such refund: '{refund_id}'", code="resource_missing", param="id"
                )
            return dict(refund)

    # -- the checkout page -------------------------------------------------------------------

    def pay(self, intent_id: str) -> str:
        """The buyer paid: the intent's status afterwards."""
        with self._lock:
            intent = self._intent(intent_id)
            if intent["status"] in ("succeeded", "canceled"):
                return str(intent["status"])
            intent.update(
                status="succeeded",
                amount_received=intent["amount"],
                latest_charge=intent["latest_charge"] or _new_id("ch"),
                payment_method=_new_id("pm"),
                last_payment_error=None,
                next_action=None,
            )
            self._emit(
                "payment_intent.succeeded",
                _public(intent),
                lane=intent_id,
                api_version=intent["_api_version"],
            )
            return "succeeded"

    def decline(self, intent_id: str) -> str:
        with self._lock:
            intent = self._intent(intent_id)
            if intent["status"] in ("succeeded", "canceled"):
                return str(intent["status"])
            payment_method = _new_id("pm")
            intent.update(
                status="requires_payment_method",
                payment_method=None,
                last_payment_error={
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "message": "Your card was declined.",
                    "payment_method": {
                        "id": payment_method,
                        "object": "payment_method",
                        "type": "card",
                    },
                },
            )
            self._emit(
                "payment_intent.payment_failed",
                _public(intent),
                lane=intent_id,
                api_version=intent["_api_version"],
            )
            return "failed"

    # -- events --------------------------------------------------------------------------------

    def _emit(self, type_: str, obj: JsonObject, *, lane: str, api_version: str) -> None:
        """A new event (called with the lock held), handed to the webhooks."""
        event: JsonObject = {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": api_version,
            "created": int(time.time()),
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        body = json.dumps(event, indent=2).encode()
        sent = SentEvent(event, body, lane)
        self._events[event["id"]] = sent
        self._webhooks.send(sent)

    def events(self) -> list[JsonObject]:
        with self._lock:
            return [
                {
                    "id": s.event["id"],
                    "type": s.event["type"],
                    "created": s.event["created"],
                    "object_id": s.event["data"]["object"]["id"],
                    "deliveries": [d.as_json() for d in s.deliveries],
                }
                for s in self._events.values()
            ]

    def redeliver(self, event_id: str) -> JsonObject:
        with self._lock:
            sent = self._events.get(event_id)
            if sent is None:
                raise ApiError(404, f"No such event: '{event_id}'", code="resource_missing")
        self._webhooks.send(sent)
        return {"id": event_id, "type": sent.event["type"], "redelivered": True}


def _public(intent: JsonObject) -> JsonObject:
    return {k: v for k, v in intent.items() if not k.startswith("_")}


CHECKOUT_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>devpay checkout</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; }
.amount { font-size: 2rem; margin: 1rem 0; }
form { display: inline; } button { font-size: 1.1rem; padding: .5rem 1.5rem; margin-right: 1rem; }
.note { color: #666; font-size: .9rem; }
</style></head>
<body>
<h1>devpay</h1>
<p class="note">The local stack's stand-in for a payment provider: no money moves.</p>
<p class="amount" data-testid="devpay-amount">{{ amount }}</p>
<p>Booking <code data-testid="devpay-booking">{{ booking_id or "(none)" }}</code></p>
<p>Payment <code>{{ intent_id }}</code>, status
  <strong data-testid="devpay-status">{{ status }}</strong></p>
{% if error %}<p data-testid="devpay-error">{{ error }}</p>{% endif %}
{% if status not in ("succeeded", "canceled") %}
<form method="post" action="/checkout/{{ intent_id }}/pay">
  <input type="hidden" name="return_url" value="{{ return_url }}">
  <button type="submit" data-testid="devpay-pay">Pay</button>
</form>
<form method="post" action="/checkout/{{ intent_id }}/decline">
  <input type="hidden" name="return_url" value="{{ return_url }}">
  <button type="submit" data-testid="devpay-decline">Decline</button>
</form>
{% elif return_url %}<p><a href="{{ return_url }}">Back to the shop</a></p>{% endif %}
</body>
</html>
"""


def _return_url(raw: str | None) -> str:
    """An http(s) URL to send the buyer back to, or ''."""
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(400, f"return_url must be an http(s) URL: {raw!r}", param="return_url")
    return raw


def _with_outcome(url: str, intent_id: str, status: str) -> str:
    parts = urlsplit(url)
    query = [
        *parse_qsl(parts.query, keep_blank_values=True),
        ("payment", intent_id),
        ("status", status),
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _require_api_key() -> None:
    """A test-mode secret key, as Stripe takes it: Bearer, or Basic with the key as user."""
    header = request.headers.get("Authorization", "")
    key = ""
    if header.lower().startswith("bearer "):
        key = header[7:].strip()
    elif request.authorization is not None and request.authorization.username:
        key = request.authorization.username
    if not key:
        raise ApiError(
            401,
            "You did not provide an API key. Provide it in the Authorization header, using "
            "Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    if not key.startswith("sk_test_"):
        raise ApiError(401, f"Invalid API Key provided: {key[:12]}***", code="api_key_invalid")


def _json_answer(status: int, body: JsonObject, **headers: str) -> Response:
    response = Response(json.dumps(body, indent=2), status, mimetype="application/json")
    response.headers["Request-Id"] = _new_id("req")
    response.headers["Stripe-Version"] = request.headers.get("Stripe-Version", DEFAULT_API_VERSION)
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


def create_app(devpay: DevPay, public_url: str | None = None) -> Flask:
    app = Flask("devpay")

    def base_url() -> str:
        return (public_url or request.host_url).rstrip("/")

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return _json_answer(exc.status, exc.body)

    @app.errorhandler(404)
    @app.errorhandler(405)
    def unrecognized(exc: HTTPException) -> Response:
        message = f"Unrecognized request URL ({request.method}: {request.path})."
        return _json_answer(exc.code or 404, ApiError(exc.code or 404, message).body)

    def post(run: Callable[[JsonObject], JsonObject]) -> Response:
        _require_api_key()
        pairs = parse_qsl(request.get_data(as_text=True), keep_blank_values=True)
        params = _nested(pairs)
        fingerprint = (request.method, request.path, tuple(sorted(pairs)))
        status, body, replayed = devpay.idempotent(
            request.headers.get("Idempotency-Key"), fingerprint, lambda: run(params)
        )
        extra = {"Idempotent_Replayed": "true"} if replayed else {}
        if key := request.headers.get("Idempotency-Key"):
            extra["Idempotency_Key"] = key
        return _json_answer(status, body, **extra)

    @app.post("/v1/payment_intents")
    def create_payment_intent() -> Response:
        base = base_url()
        version = request.headers.get("Stripe-Version", DEFAULT_API_VERSION)
        return post(lambda params: devpay.create_intent(params, base, version))

    @app.get("/v1/payment_intents/<intent_id>")
    def get_payment_intent(intent_id: str) -> Response:
        _require_api_key()
        return _json_answer(200, devpay.intent(intent_id))

    @app.post("/v1/refunds")
    def create_refund() -> Response:
        return post(devpay.create_refund)

    @app.get("/v1/refunds/<refund_id>")
    def get_refund(refund_id: str) -> Response:
        _require_api_key()
        return _json_answer(200, devpay.refund(refund_id))

    @app.get("/checkout/<intent_id>")
    def checkout(intent_id: str) -> Response | tuple[str, int]:
        return_url = _return_url(request.args.get("return_url"))
        try:
            intent = devpay.intent(intent_id)
        except ApiError as exc:
            return exc.body["error"]["message"], 404
        error = (intent.get("last_payment_error") or {}).get("message")
        return Response(
            render_template_string(
                CHECKOUT_PAGE,
                amount=display_amount(intent["amount"], intent["currency"]),
                booking_id=intent["metadata"].get("booking_id"),
                intent_id=intent_id,
                status=intent["status"],
                error=error,
                return_url=return_url,
            ),
            mimetype="text/html",
        )

    def outcome(intent_id: str, act: Callable[[str], str]) -> BaseResponse:
        return_url = _return_url(request.form.get("return_url"))
        status = act(intent_id)
        if return_url:
            return redirect(_with_outcome(return_url, intent_id, status), 303)
        return redirect(f"{base_url()}/checkout/{intent_id}", 303)

    @app.post("/checkout/<intent_id>/pay")
    def pay(intent_id: str) -> BaseResponse:
        return outcome(intent_id, devpay.pay)

    @app.post("/checkout/<intent_id>/decline")
    def decline(intent_id: str) -> BaseResponse:
        return outcome(intent_id, devpay.decline)

    @app.get("/devpay/events")
    def events() -> Response:
        return _json_answer(200, {"object": "list", "data": devpay.events()})

    @app.post("/devpay/events/<event_id>/redeliver")
    def redeliver(event_id: str) -> Response:
        return _json_answer(202, devpay.redeliver(event_id))

    @app.get("/healthz")
    def healthz() -> Response:
        return _json_answer(200, {"status": "ok"})

    return app


def main(argv: Sequence[str] | None = None) -> None:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(env.get("BOXOFFICE_DEVPAY_PORT") or DEFAULT_PORT)
    )
    parser.add_argument(
        "--webhook-url",
        action="append",
        help="where events are POSTed (repeatable; default BOXOFFICE_DEVPAY_WEBHOOK_URL, "
        "comma-separated)",
    )
    parser.add_argument(
        "--webhook-secret",
        default=env.get("BOXOFFICE_STRIPE_WEBHOOK_SECRET", ""),
        help="the endpoint secret events are signed with (default BOXOFFICE_STRIPE_WEBHOOK_SECRET)",
    )
    parser.add_argument(
        "--public-url", help="base URL of the checkout page (default: the API request's)"
    )
    parser.add_argument("--attempts", type=int, default=10, help="delivery attempts per event")
    parser.add_argument(
        "--retry-delay", type=float, default=0.5, help="first retry's delay, seconds"
    )
    args = parser.parse_args(argv)
    urls = args.webhook_url or [
        u.strip() for u in env.get("BOXOFFICE_DEVPAY_WEBHOOK_URL", "").split(",") if u.strip()
    ]
    if not args.webhook_secret:
        parser.error("no webhook secret: set BOXOFFICE_STRIPE_WEBHOOK_SECRET or --webhook-secret")
    if args.attempts < 1 or args.retry_delay <= 0:
        parser.error("--attempts must be at least 1 and --retry-delay positive")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    webhooks = Webhooks(
        urls, args.webhook_secret, attempts=args.attempts, retry_delay=args.retry_delay
    )
    app = create_app(DevPay(webhooks), args.public_url)
    server = make_server(args.host, args.port, app, threaded=True)

    def stop(_signum: int, _frame: object) -> None:
        webhooks.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "devpay on http://%s:%d, webhooks to %s",
        args.host,
        server.port,
        ", ".join(urls) or "(none)",
    )
    server.serve_forever()
    log.info("devpay stopped")


if __name__ == "__main__":
    main()
