"""The Stripe adapter against stripe-mock (Stripe's API double: its wire format, requests
validated against Stripe's OpenAPI spec), and its webhook signature checks.

What goes on the wire is read from a recording HTTP client under the library (the adapter's real
requests, sent on to stripe-mock); what comes back is compared with the raw JSON stripe-mock
answered. stripe-mock is stateless (support_stripe_mock.py): the ids and fixture values it returns
are its own, and it does not honour idempotency keys, which these tests say where it matters.
Webhook bodies are signed here, independently of the library, by Stripe's documented scheme:
`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import stripe
from support_servers import free_port
from support_stripe_mock import TEST_API_KEY, running_stripe_mock

from boxoffice import errors
from boxoffice.adapters.stripe_payments import StripePayments
from boxoffice.domain.money import Money
from boxoffice.domain.payments import PaymentStatus, RefundStatus, from_minor_units

WEBHOOK_SECRET = "whsec_test_boxoffice_endpoint"
TOLERANCE = 300


@dataclass
class Sent:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]
    status: int
    response_headers: dict[str, str]
    response: Any


class RecordingClient(stripe.RequestsClient):
    """The library's own requests client, keeping each request and stripe-mock's raw answer."""

    def __init__(self) -> None:
        super().__init__(timeout=10)
        self.sent: list[Sent] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        body, status, response_headers = super().request(method, url, headers, post_data)
        if isinstance(post_data, bytes):
            post_data = post_data.decode()
        self.sent.append(
            Sent(
                method=method.upper(),
                path=urlsplit(url).path,
                headers={k.lower(): v for k, v in (headers or {}).items()},
                form=parse_qs(post_data or ""),
                status=status,
                response_headers={k.lower(): v for k, v in response_headers.items()},
                response=json.loads(body),
            )
        )
        return body, status, response_headers


@pytest.fixture(scope="module")
def stripe_mock() -> Iterator[str]:
    with running_stripe_mock() as base:
        yield base


@pytest.fixture
def wire() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def payments(stripe_mock: str, wire: RecordingClient) -> StripePayments:
    return StripePayments(
        TEST_API_KEY,
        WEBHOOK_SECRET,
        api_base=stripe_mock,
        webhook_tolerance=TOLERANCE,
        max_network_retries=0,
        http_client=wire,
    )


def _only(wire: RecordingClient) -> Sent:
    assert len(wire.sent) == 1, [s.path for s in wire.sent]
    return wire.sent[0]


# -- payments ---------------------------------------------------------------------------------


def test_create_payment_sends_minor_units_the_booking_in_metadata_and_the_idempotency_key(
    payments: StripePayments, wire: RecordingClient
) -> None:
    booking = uuid.uuid4()
    intent = payments.create_payment(booking, Money(Decimal("25.50"), "GBP"), "pay-" + str(booking))

    sent = _only(wire)
    assert (sent.method, sent.path, sent.status) == ("POST", "/v1/payment_intents", 200)
    assert sent.form["amount"] == ["2550"]
    assert sent.form["currency"] == ["gbp"]
    assert sent.form["metadata[booking_id]"] == [str(booking)]
    assert sent.headers["idempotency-key"] == f"pay-{booking}"
    # stripe-mock received the key: it echoes it (it does not act on it, see below).
    assert sent.response_headers["idempotency-key"] == f"pay-{booking}"

    # stripe-mock reflects amount and currency; the rest of its answer is its fixture.
    raw = sent.response
    assert intent.id == raw["id"]
    assert intent.id.startswith("pi_")
    assert intent.amount == Money(Decimal("25.50"), "GBP")
    assert intent.status is PaymentStatus.AWAITING_PAYMENT  # requires_payment_method
    assert intent.client_secret == raw["client_secret"]
    assert intent.created == datetime.fromtimestamp(raw["created"], UTC)
    # stripe-mock does not reflect metadata: the booking id is read from what it answered.
    assert raw["metadata"] == {}
    assert intent.booking_id is None


def test_a_zero_decimal_currency_is_sent_in_whole_units(
    payments: StripePayments, wire: RecordingClient
) -> None:
    intent = payments.create_payment(uuid.uuid4(), Money(Decimal("2550"), "JPY"), "pay-yen")
    assert _only(wire).form["amount"] == ["2550"]
    assert intent.amount == Money(Decimal("2550"), "JPY")


def test_an_amount_finer_than_the_currency_is_refused_before_anything_is_sent(
    payments: StripePayments, wire: RecordingClient
) -> None:
    with pytest.raises(errors.AmountNotRepresentable):
        payments.create_payment(uuid.uuid4(), Money(Decimal("25.505"), "GBP"), "pay-fine")
    with pytest.raises(errors.AmountNotRepresentable):
        payments.refund("pi_abc", Money(Decimal("10.5"), "JPY"), "refund-fine")
    assert wire.sent == []


def test_stripe_mock_does_not_honour_idempotency_keys_so_only_the_key_sent_is_checked(
    payments: StripePayments, wire: RecordingClient
) -> None:
    """Real Stripe answers a repeated key with the first call's intent; stripe-mock is stateless
    and makes a new id each time. What the adapter owes is the same key on both calls."""
    booking = uuid.uuid4()
    first = payments.create_payment(booking, Money(Decimal("40"), "EUR"), f"pay-{booking}")
    second = payments.create_payment(booking, Money(Decimal("40"), "EUR"), f"pay-{booking}")

    assert [s.headers["idempotency-key"] for s in wire.sent] == [f"pay-{booking}"] * 2
    first_form, second_form = (s.form for s in wire.sent)
    assert first_form == second_form
    # If stripe-mock ever honours the key, this fails: then assert first.id == second.id.
    assert first.id != second.id


def test_a_retry_after_a_lost_connection_repeats_the_same_idempotency_key(
    stripe_mock: str,
) -> None:
    """The library retries a failed POST itself: with our key, never a new one, so a request
    that reached Stripe before the connection broke cannot charge twice."""

    class FlakyOnce(RecordingClient):
        def request(
            self,
            method: str,
            url: str,
            headers: Mapping[str, str] | None,
            post_data: Any = None,
        ) -> tuple[bytes, int, Mapping[str, str]]:
            self.keys.append((headers or {}).get("Idempotency-Key", ""))
            if len(self.keys) == 1:
                raise stripe.APIConnectionError("connection reset (injected)", should_retry=True)
            return super().request(method, url, headers, post_data)

        keys: list[str]

    flaky = FlakyOnce()
    flaky.keys = []
    payments = StripePayments(
        TEST_API_KEY, WEBHOOK_SECRET, api_base=stripe_mock, max_network_retries=1, http_client=flaky
    )
    intent = payments.create_payment(uuid.uuid4(), Money(Decimal("9.99"), "USD"), "pay-retried")

    assert flaky.keys == ["pay-retried", "pay-retried"]
    assert intent.amount == Money(Decimal("9.99"), "USD")


def test_retrieve_parses_the_wire_format_into_a_payment_intent(
    payments: StripePayments, wire: RecordingClient
) -> None:
    intent = payments.retrieve("pi_boxoffice_1")

    sent = _only(wire)
    assert (sent.method, sent.path) == ("GET", "/v1/payment_intents/pi_boxoffice_1")
    assert "idempotency-key" not in sent.headers  # a read needs none
    raw = sent.response
    assert intent.id == "pi_boxoffice_1" == raw["id"]
    assert intent.amount == Money(
        Decimal(raw["amount"]).scaleb(-2), raw["currency"].upper()
    )  # stripe-mock's fixture is in a two-decimal currency
    assert raw["status"] == "requires_payment_method"
    assert intent.status is PaymentStatus.AWAITING_PAYMENT
    assert intent.client_secret == raw["client_secret"]


def test_full_refund_sends_no_amount_and_parses_the_refund(
    payments: StripePayments, wire: RecordingClient
) -> None:
    refund = payments.refund("pi_boxoffice_2", None, "refund-all-2")

    sent = _only(wire)
    assert (sent.method, sent.path) == ("POST", "/v1/refunds")
    assert sent.form == {"payment_intent": ["pi_boxoffice_2"]}  # no amount: all that is left
    assert sent.headers["idempotency-key"] == "refund-all-2"
    raw = sent.response
    assert refund.id == raw["id"]
    assert refund.id.startswith("re_")
    assert refund.intent_id == "pi_boxoffice_2"
    assert refund.amount == from_minor_units(raw["amount"], raw["currency"])
    assert refund.status is RefundStatus(raw["status"])


def test_partial_refund_sends_the_amount_in_minor_units(
    payments: StripePayments, wire: RecordingClient
) -> None:
    refund = payments.refund("pi_boxoffice_3", Money(Decimal("12.50"), "GBP"), "refund-part-3")

    sent = _only(wire)
    assert sent.form == {"payment_intent": ["pi_boxoffice_3"], "amount": ["1250"]}
    assert sent.headers["idempotency-key"] == "refund-part-3"
    # stripe-mock reflects the amount (its fixture's currency stays its own).
    assert sent.response["amount"] == 1250
    assert refund.amount == from_minor_units(1250, sent.response["currency"])
    assert refund.status is RefundStatus.SUCCEEDED


def test_a_key_stripe_refuses_is_a_configuration_error(stripe_mock: str) -> None:
    payments = StripePayments(
        "not-a-stripe-key", WEBHOOK_SECRET, api_base=stripe_mock, max_network_retries=0
    )
    with pytest.raises(errors.ConfigurationError, match="refused our API key"):
        payments.retrieve("pi_abc")


def test_an_unreachable_provider_is_unavailable_with_retry_after() -> None:
    payments = StripePayments(
        TEST_API_KEY,
        WEBHOOK_SECRET,
        api_base=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        max_network_retries=0,
        timeout=2,
    )
    with pytest.raises(errors.PaymentProviderUnavailable) as caught:
        payments.create_payment(uuid.uuid4(), Money(Decimal("1.00"), "GBP"), "pay-nowhere")
    assert (caught.value.status, caught.value.headers["Retry-After"]) == (503, "1")


def test_nothing_is_sent_when_the_adapter_is_built() -> None:
    """Construction connects to nothing (an address where nothing listens would fail a call)."""
    StripePayments(TEST_API_KEY, WEBHOOK_SECRET, api_base=f"http://127.0.0.1:{free_port()}")


def test_an_empty_api_key_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigurationError):
        StripePayments("", WEBHOOK_SECRET)


# -- webhooks ---------------------------------------------------------------------------------


def sign(body: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """Stripe's signature header for `body`, computed here by its documented scheme."""
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@pytest.fixture
def booking_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def succeeded_event(stripe_mock: str, booking_id: uuid.UUID) -> bytes:
    """A `payment_intent.succeeded` event around an intent as stripe-mock serialises it (Stripe's
    wire format), made ours: succeeded, for £25.50, the booking in its metadata."""
    intent = requests.get(
        f"{stripe_mock}/v1/payment_intents/pi_paid", auth=(TEST_API_KEY, ""), timeout=5
    ).json()
    intent.update(
        status="succeeded",
        amount=2550,
        amount_received=2550,
        currency="gbp",
        metadata={"booking_id": str(booking_id)},
    )
    event = {
        "id": "evt_boxoffice_1",
        "object": "event",
        "api_version": stripe.api_version,
        "created": 1_767_225_600,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": "pay-1"},
        "type": "payment_intent.succeeded",
        "data": {"object": intent},
    }
    return json.dumps(event, separators=(",", ":")).encode()


def test_a_correctly_signed_webhook_is_accepted_and_parsed(
    payments: StripePayments, succeeded_event: bytes, booking_id: uuid.UUID
) -> None:
    event = payments.parse_webhook(succeeded_event, sign(succeeded_event))

    assert event.id == "evt_boxoffice_1"
    assert event.type == "payment_intent.succeeded"
    assert event.created == datetime(2026, 1, 1, tzinfo=UTC)
    assert (event.object_type, event.object_id, event.intent_id) == (
        "payment_intent",
        "pi_paid",
        "pi_paid",
    )
    assert event.booking_id == booking_id
    assert event.amount == Money(Decimal("25.50"), "GBP")
    assert event.status == "succeeded"


def test_a_refund_event_names_the_payment_it_belongs_to(
    stripe_mock: str, payments: StripePayments
) -> None:
    refund = requests.post(
        f"{stripe_mock}/v1/refunds",
        data={"payment_intent": "pi_refunded", "amount": 500},
        auth=(TEST_API_KEY, ""),
        timeout=5,
    ).json()
    body = json.dumps(
        {
            "id": "evt_boxoffice_2",
            "object": "event",
            "created": 1_767_225_600,
            "type": "refund.created",
            "data": {"object": refund},
        }
    ).encode()

    event = payments.parse_webhook(body, sign(body))

    assert (event.object_type, event.object_id) == ("refund", refund["id"])
    assert event.intent_id == "pi_refunded"
    assert event.amount == from_minor_units(500, refund["currency"])


def test_a_tampered_body_is_rejected(payments: StripePayments, succeeded_event: bytes) -> None:
    signature = sign(succeeded_event)
    tampered = succeeded_event.replace(b'"amount":2550', b'"amount":1')
    assert tampered != succeeded_event
    with pytest.raises(errors.InvalidWebhookSignature) as caught:
        payments.parse_webhook(tampered, signature)
    assert (caught.value.status, caught.value.slug) == (400, "invalid-webhook-signature")


def test_a_timestamp_older_than_the_tolerance_is_rejected(
    payments: StripePayments, succeeded_event: bytes
) -> None:
    now = int(time.time())
    # Control: correctly signed a little inside the tolerance, it is accepted ...
    payments.parse_webhook(succeeded_event, sign(succeeded_event, at=now - TOLERANCE + 30))
    # ... and the same body, signed as correctly but before the tolerance, is refused.
    with pytest.raises(errors.InvalidWebhookSignature, match="tolerance"):
        payments.parse_webhook(succeeded_event, sign(succeeded_event, at=now - TOLERANCE - 30))


def test_a_signature_made_with_another_secret_is_rejected(
    payments: StripePayments, succeeded_event: bytes
) -> None:
    with pytest.raises(errors.InvalidWebhookSignature):
        payments.parse_webhook(succeeded_event, sign(succeeded_event, secret="whsec_other"))


@pytest.mark.parametrize("header", ["", "garbage", "t=notanumber,v1=00", "t=1767225600"])
def test_a_missing_or_malformed_signature_header_is_rejected(
    payments: StripePayments, succeeded_event: bytes, header: str
) -> None:
    with pytest.raises(errors.InvalidWebhookSignature):
        payments.parse_webhook(succeeded_event, header)


def test_a_signed_body_that_is_not_json_is_malformed_not_a_crash(
    payments: StripePayments,
) -> None:
    body = b"this is not json"
    with pytest.raises(errors.MalformedJson):
        payments.parse_webhook(body, sign(body))


def test_webhooks_without_an_endpoint_secret_are_refused_as_misconfiguration(
    stripe_mock: str, succeeded_event: bytes
) -> None:
    payments = StripePayments(TEST_API_KEY, "", api_base=stripe_mock)
    with pytest.raises(errors.ConfigurationError):
        payments.parse_webhook(succeeded_event, sign(succeeded_event, secret=""))
