"""devpay, the local stack's payment provider (stack/devpay/devpay.py), driven through OUR Stripe
adapter (`StripePayments`, unchanged, its API base pointed at devpay): a purchase completes with no
internet, the checkout page playing the buyer's part and the webhooks signed by Stripe's scheme,
which the adapter's `parse_webhook` verifies.

devpay runs as its own process on a free port (support_devpay.py), delivering to a small HTTP
endpoint of the test that keeps what it receives.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from support_devpay import (
    DEVPAY_API_KEY,
    Received,
    WebhookEndpoint,
    running_devpay,
    webhook_endpoint,
)
from support_servers import free_port

from boxoffice import errors
from boxoffice.adapters.stripe_payments import StripePayments
from boxoffice.domain.money import Money
from boxoffice.domain.payments import PaymentStatus, ProviderEvent, RefundStatus

SECRET = "whsec_devpay_test"
PRICE = Money(Decimal("25.50"), "GBP")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[WebhookEndpoint]:
    with webhook_endpoint() as e:
        yield e


@pytest.fixture(scope="module")
def devpay(endpoint: WebhookEndpoint) -> Iterator[str]:
    with running_devpay([endpoint.url], SECRET) as base:
        yield base


@pytest.fixture
def adapter(devpay: str) -> StripePayments:
    return StripePayments(DEVPAY_API_KEY, SECRET, api_base=devpay, max_network_retries=0)


def _key() -> str:
    return str(uuid.uuid4())


def _events_for(
    adapter: StripePayments, received: list[Received], object_id: str
) -> list[ProviderEvent]:
    parsed = [adapter.parse_webhook(r.body, r.signature) for r in received]
    return [e for e in parsed if object_id in (e.object_id, e.intent_id)]


def _wait_events(
    adapter: StripePayments, endpoint: WebhookEndpoint, object_id: str, count: int
) -> list[ProviderEvent]:
    received = endpoint.wait_for(lambda got: len(_events_for(adapter, got, object_id)) >= count)
    return _events_for(adapter, received, object_id)


def _pay(redirect_url: str, action: str = "pay", return_url: str = "") -> requests.Response:
    """What the checkout page's form sends when the buyer clicks Pay (or Decline)."""
    return requests.post(
        f"{redirect_url}/{action}",
        data={"return_url": return_url},
        allow_redirects=False,
        timeout=5,
    )


def test_a_new_payment_sends_the_buyer_to_a_checkout_page_showing_amount_and_booking(
    adapter: StripePayments, devpay: str
) -> None:
    booking = uuid.uuid4()
    intent = adapter.create_payment(booking, PRICE, _key())

    assert intent.status is PaymentStatus.AWAITING_PAYMENT
    assert intent.amount == PRICE
    assert intent.booking_id == booking
    assert intent.id.startswith("pi_dev_")
    assert intent.client_secret
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    assert intent.redirect_url == f"{devpay}/checkout/{intent.id}"
    page = requests.get(intent.redirect_url, timeout=5)
    assert page.status_code == 200
    assert "GBP 25.50" in page.text
    assert str(booking) in page.text
    assert 'data-testid="devpay-pay"' in page.text
    assert 'data-testid="devpay-decline"' in page.text
    assert adapter.retrieve(intent.id) == intent


def test_the_same_idempotency_key_returns_the_first_payment(adapter: StripePayments) -> None:
    booking, key = uuid.uuid4(), _key()
    first = adapter.create_payment(booking, PRICE, key)
    again = adapter.create_payment(booking, PRICE, key)
    other = adapter.create_payment(booking, PRICE, _key())

    assert again == first
    assert other.id != first.id


def test_the_same_idempotency_key_with_another_amount_is_refused(adapter: StripePayments) -> None:
    booking, key = uuid.uuid4(), _key()
    adapter.create_payment(booking, PRICE, key)

    with pytest.raises(errors.IdempotencyKeyReused):
        adapter.create_payment(booking, Money(Decimal("30.00"), "GBP"), key)


def test_paying_on_the_checkout_page_succeeds_the_payment_and_sends_one_signed_webhook(
    adapter: StripePayments, endpoint: WebhookEndpoint, devpay: str
) -> None:
    booking = uuid.uuid4()
    intent = adapter.create_payment(booking, PRICE, _key())
    assert intent.redirect_url is not None

    answer = _pay(intent.redirect_url, return_url="http://shop.test/bookings?id=7")

    assert answer.status_code == 303
    back = urlsplit(answer.headers["Location"])
    assert (back.netloc, back.path) == ("shop.test", "/bookings")
    assert parse_qs(back.query) == {"id": ["7"], "payment": [intent.id], "status": ["succeeded"]}
    assert adapter.retrieve(intent.id).status is PaymentStatus.SUCCEEDED
    (event,) = _wait_events(adapter, endpoint, intent.id, 1)
    assert event.type == "payment_intent.succeeded"
    assert event.id.startswith("evt_dev_")
    assert (event.object_type, event.intent_id) == ("payment_intent", intent.id)
    assert event.booking_id == booking
    assert event.amount == PRICE
    assert event.status == "succeeded"
    # Signed with the endpoint's secret: an adapter with another secret refuses the delivery.
    other = StripePayments(DEVPAY_API_KEY, "whsec_another_endpoint", api_base=devpay)
    last = [r for r in endpoint.snapshot() if intent.id.encode() in r.body][-1]
    with pytest.raises(errors.InvalidWebhookSignature):
        other.parse_webhook(last.body, last.signature)

    # Paying again changes nothing and sends nothing more.
    assert _pay(intent.redirect_url).status_code == 303
    listed = requests.get(f"{devpay}/devpay/events", timeout=5).json()["data"]
    assert [e["type"] for e in listed if e["object_id"] == intent.id] == [
        "payment_intent.succeeded"
    ]


def test_declining_leaves_the_payment_unpaid_and_sends_payment_failed(
    adapter: StripePayments, endpoint: WebhookEndpoint
) -> None:
    booking = uuid.uuid4()
    intent = adapter.create_payment(booking, PRICE, _key())
    assert intent.redirect_url is not None

    answer = _pay(intent.redirect_url, "decline", return_url="http://shop.test/back")

    assert parse_qs(urlsplit(answer.headers["Location"]).query)["status"] == ["failed"]
    after = adapter.retrieve(intent.id)
    assert after.status is PaymentStatus.AWAITING_PAYMENT
    assert after.redirect_url == intent.redirect_url  # the buyer may be sent back to try again
    (event,) = _wait_events(adapter, endpoint, intent.id, 1)
    assert event.type == "payment_intent.payment_failed"
    assert event.booking_id == booking
    assert event.status == "requires_payment_method"
    assert "Your card was declined." in requests.get(intent.redirect_url, timeout=5).text


def test_refunds_succeed_up_to_what_was_paid_and_each_sends_refund_created_with_the_booking(
    adapter: StripePayments, endpoint: WebhookEndpoint
) -> None:
    booking = uuid.uuid4()
    intent = adapter.create_payment(booking, PRICE, _key())
    assert intent.redirect_url is not None
    _pay(intent.redirect_url)
    partial_key = _key()

    partial = adapter.refund(intent.id, Money(Decimal("10.00"), "GBP"), partial_key)
    replayed = adapter.refund(intent.id, Money(Decimal("10.00"), "GBP"), partial_key)
    with pytest.raises(errors.PaymentRejected) as too_much:
        adapter.refund(intent.id, Money(Decimal("15.51"), "GBP"), _key())
    rest = adapter.refund(intent.id, None, _key())
    with pytest.raises(errors.PaymentRejected) as nothing_left:
        adapter.refund(intent.id, None, _key())

    assert partial.status is RefundStatus.SUCCEEDED
    assert (partial.intent_id, partial.amount) == (intent.id, Money(Decimal("10.00"), "GBP"))
    assert replayed == partial  # the same key refunded once
    assert too_much.value.extensions["providerCode"] == "amount_too_large"
    assert rest.amount == Money(Decimal("15.50"), "GBP")
    assert nothing_left.value.extensions["providerCode"] == "charge_already_refunded"
    events = _wait_events(adapter, endpoint, intent.id, 3)
    refunds = [e for e in events if e.type == "refund.created"]
    assert [(e.object_id, e.amount) for e in refunds] == [
        (partial.id, partial.amount),
        (rest.id, rest.amount),
    ]
    assert all(e.booking_id == booking and e.intent_id == intent.id for e in refunds)


def test_an_unpaid_payment_cannot_be_refunded(adapter: StripePayments) -> None:
    intent = adapter.create_payment(uuid.uuid4(), PRICE, _key())

    with pytest.raises(errors.PaymentRejected):
        adapter.refund(intent.id, None, _key())


def test_redelivery_sends_the_same_event_again(
    adapter: StripePayments, endpoint: WebhookEndpoint, devpay: str
) -> None:
    intent = adapter.create_payment(uuid.uuid4(), PRICE, _key())
    assert intent.redirect_url is not None
    _pay(intent.redirect_url)
    (first,) = _wait_events(adapter, endpoint, intent.id, 1)

    answer = requests.post(f"{devpay}/devpay/events/{first.id}/redeliver", timeout=5)

    assert answer.status_code == 202
    events = _wait_events(adapter, endpoint, intent.id, 2)
    assert [e.id for e in events] == [first.id, first.id]
    assert events[1] == first
    listed = requests.get(f"{devpay}/devpay/events", timeout=5).json()["data"]
    (entry,) = [e for e in listed if e["id"] == first.id]
    assert [d["status"] for d in entry["deliveries"]] == ["delivered", "delivered"]


def test_an_unreachable_webhook_endpoint_is_retried_until_it_answers() -> None:
    port = free_port()  # nothing listens there yet
    url = f"http://127.0.0.1:{port}/payments/webhook"
    with running_devpay([url], SECRET, retry_delay=0.2) as base:
        adapter = StripePayments(DEVPAY_API_KEY, SECRET, api_base=base, max_network_retries=0)
        intent = adapter.create_payment(uuid.uuid4(), PRICE, _key())
        assert intent.redirect_url is not None
        _pay(intent.redirect_url)
        deadline = time.monotonic() + 10
        while True:  # until devpay has tried, and failed, twice
            (entry,) = requests.get(f"{base}/devpay/events", timeout=5).json()["data"]
            (delivery,) = entry["deliveries"]
            if delivery["attempts"] >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert delivery["attempts"] >= 2
        assert delivery["status"] == "pending"
        assert delivery["last_error"]

        with webhook_endpoint(port) as late:
            (event,) = _wait_events(adapter, late, intent.id, 1)

        assert event.id == entry["id"]
        assert event.type == "payment_intent.succeeded"
        (entry,) = requests.get(f"{base}/devpay/events", timeout=5).json()["data"]
        assert entry["deliveries"][0]["status"] == "delivered"
        assert entry["deliveries"][0]["attempts"] > 2


def test_a_key_that_is_not_a_test_key_is_refused(devpay: str) -> None:
    live = StripePayments("sk_live_not_for_devpay", SECRET, api_base=devpay)

    with pytest.raises(errors.ConfigurationError):
        live.retrieve("pi_dev_anything")
    answer = requests.get(f"{devpay}/v1/payment_intents/pi_dev_anything", timeout=5)
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_an_unknown_payment_is_not_found(adapter: StripePayments, devpay: str) -> None:
    with pytest.raises(errors.NotFound):
        adapter.retrieve("pi_dev_unknown")
    assert requests.get(f"{devpay}/checkout/pi_dev_unknown", timeout=5).status_code == 404
