"""Stripe's error answers become the project's errors (problem+json), never a 500.

stripe-mock answers every valid request with success, so the provider's refusals are played
here by an HTTP client under the library that answers with Stripe's error bodies (its documented
wire format: `{"error": {"type", "code", "message"}}` and the status)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
import stripe

from boxoffice import errors
from boxoffice.adapters.stripe_payments import StripePayments
from boxoffice.domain.money import Money


class Answers(stripe.HTTPClient):
    name = "canned"

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__()
        self.status, self.body = status, body

    def request(
        self, method: str, url: str, headers: Mapping[str, str] | None, post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        return json.dumps(self.body).encode(), self.status, {"Request-Id": "req_test"}

    def close(self) -> None:
        pass


def adapter(status: int, error: dict[str, Any]) -> StripePayments:
    return StripePayments(
        "sk_test_unit",
        "whsec_unit",
        api_base="http://127.0.0.1:9",  # never reached: the client above answers
        max_network_retries=0,
        http_client=Answers(status, {"error": error}),
    )


@pytest.mark.parametrize(
    ("status", "error", "raised", "code"),
    [
        (
            400,
            {
                "type": "invalid_request_error",
                "code": "charge_already_refunded",
                "message": "Charge ch_1 has already been refunded.",
            },
            errors.PaymentRejected,
            "charge_already_refunded",
        ),
        (
            402,
            {"type": "card_error", "code": "card_declined", "message": "Your card was declined."},
            errors.PaymentRejected,
            "card_declined",
        ),
    ],
)
def test_a_refusal_by_the_provider_is_payment_rejected_with_its_code(
    status: int, error: dict[str, Any], raised: type[errors.BoxofficeError], code: str
) -> None:
    with pytest.raises(raised) as caught:
        adapter(status, error).refund("pi_1", None, "refund-1")
    assert caught.value.status == 409
    assert caught.value.extensions["providerCode"] == code


def test_an_unknown_payment_is_not_found() -> None:
    payments = adapter(
        404,
        {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such payment_intent: 'pi_x'",
        },
    )
    with pytest.raises(errors.NotFound, match="pi_x"):
        payments.retrieve("pi_x")


def test_an_idempotency_key_reused_with_other_parameters_is_reported_as_such() -> None:
    payments = adapter(
        400,
        {
            "type": "idempotency_error",
            "message": "Keys for idempotent requests can only be used with the same parameters.",
        },
    )
    with pytest.raises(errors.IdempotencyKeyReused):
        payments.create_payment(uuid.uuid4(), Money(Decimal("5.00"), "GBP"), "pay-1")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many"}),
        (500, {"type": "api_error", "message": "Something went wrong on Stripe's end."}),
    ],
)
def test_rate_limits_and_provider_failures_are_unavailable_with_retry_after(
    status: int, error: dict[str, Any]
) -> None:
    with pytest.raises(errors.PaymentProviderUnavailable) as caught:
        adapter(status, error).create_payment(uuid.uuid4(), Money(Decimal("5.00"), "GBP"), "pay-2")
    assert caught.value.status == 503
    assert "Retry-After" in caught.value.headers


def test_a_refused_api_key_is_a_configuration_error() -> None:
    payments = adapter(401, {"type": "invalid_request_error", "message": "Invalid API Key"})
    with pytest.raises(errors.ConfigurationError):
        payments.retrieve("pi_1")


def test_a_payment_status_we_do_not_know_is_not_guessed() -> None:
    intent = {
        "id": "pi_new",
        "object": "payment_intent",
        "amount": 500,
        "currency": "gbp",
        "status": "requires_something_new",
        "created": 1_767_225_600,
        "metadata": {},
    }
    payments = StripePayments(
        "sk_test_unit", "whsec_unit", max_network_retries=0, http_client=Answers(200, intent)
    )
    with pytest.raises(errors.PaymentProviderUnavailable, match="requires_something_new"):
        payments.retrieve("pi_new")
