"""The `PaymentProvider` port on Stripe, through the official `stripe` library
(docs/adr/0018-payment-provider-port.md).

PaymentIntents: one per payment attempt, the amount in the currency's minor units
(`domain.payments.to_minor_units`, exact or refused), the booking id in its metadata, and an
idempotency key on every call that creates something, so that the library's own retries and ours
never charge or refund twice. Webhooks are verified with the endpoint secret and a tolerance on
the signed timestamp (`StripeClient.construct_event`, i.e. `stripe.Webhook.construct_event`).

Each adapter has its own `stripe.StripeClient` (key, API base, timeout, retries): no module
globals of the library are set, and nothing connects before the first call. `api_base` points it
at another API, e.g. stripe-mock in the tests (BOXOFFICE_STRIPE_API_BASE); empty is Stripe's own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import stripe

from boxoffice import errors
from boxoffice.domain.money import Money
from boxoffice.domain.payments import (
    PaymentIntent,
    PaymentStatus,
    ProviderEvent,
    Refund,
    RefundStatus,
    booking_id_from_metadata,
    from_minor_units,
    to_minor_units,
)

BOOKING_ID_KEY = "booking_id"  # the metadata key of the booking a payment is for

_PAYMENT_STATUS = {
    "requires_payment_method": PaymentStatus.AWAITING_PAYMENT,
    "requires_confirmation": PaymentStatus.AWAITING_PAYMENT,
    "requires_action": PaymentStatus.AWAITING_PAYMENT,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}
_REFUND_STATUS = {status.value: status for status in RefundStatus}


class StripePayments:
    """Payments through Stripe's API (or an API that speaks its wire format, as stripe-mock)."""

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        api_base: str = "",
        webhook_tolerance: int = stripe.Webhook.DEFAULT_TOLERANCE,
        timeout: float = 10.0,
        max_network_retries: int = 2,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        if not api_key:
            raise errors.ConfigurationError("no Stripe API key is configured")
        if webhook_tolerance < 1:
            raise errors.ConfigurationError(
                f"the webhook tolerance must be at least 1 second, got {webhook_tolerance}"
            )
        self._webhook_secret = webhook_secret
        self._webhook_tolerance = webhook_tolerance
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=http_client or stripe.RequestsClient(timeout=timeout),
        )

    def create_payment(
        self, booking_id: uuid.UUID, amount: Money, idempotency_key: str
    ) -> PaymentIntent:
        params: stripe.params.PaymentIntentCreateParams = {
            "amount": to_minor_units(amount),
            "currency": amount.currency.lower(),
            "metadata": {BOOKING_ID_KEY: str(booking_id)},
            "automatic_payment_methods": {"enabled": True},
        }
        with _calls_stripe("create a payment"):
            intent = self._client.v1.payment_intents.create(
                params, options={"idempotency_key": idempotency_key}
            )
            return _payment_intent(intent)

    def retrieve(self, intent_id: str) -> PaymentIntent:
        with _calls_stripe(f"read payment {intent_id}"):
            return _payment_intent(self._client.v1.payment_intents.retrieve(intent_id))

    def refund(self, intent_id: str, amount: Money | None, idempotency_key: str) -> Refund:
        params: stripe.params.RefundCreateParams = {"payment_intent": intent_id}
        if amount is not None:
            params["amount"] = to_minor_units(amount)
        with _calls_stripe(f"refund payment {intent_id}"):
            refund = self._client.v1.refunds.create(
                params, options={"idempotency_key": idempotency_key}
            )
            return _refund(refund)

    def parse_webhook(self, payload: bytes, signature: str) -> ProviderEvent:
        if not self._webhook_secret:
            raise errors.ConfigurationError("no Stripe webhook endpoint secret is configured")
        try:
            event = self._client.construct_event(
                payload, signature, self._webhook_secret, self._webhook_tolerance
            )
        except stripe.SignatureVerificationError as exc:
            raise errors.InvalidWebhookSignature(str(exc.user_message or exc)) from None
        except UnicodeDecodeError:
            # Stripe signs UTF-8 JSON: a body that is not UTF-8 was never signed by it.
            raise errors.InvalidWebhookSignature("the webhook body is not UTF-8") from None
        except ValueError as exc:  # signed, but not JSON or not a snapshot event
            raise errors.MalformedJson(f"webhook body: {exc}") from None
        return _provider_event(event)


@contextmanager
def _calls_stripe(what: str) -> Iterator[None]:
    """Stripe's errors as ours: the provider said no (PaymentRejected, NotFound,
    IdempotencyKeyReused), our credentials are refused (ConfigurationError), or it could not be
    asked or failed on its side (PaymentProviderUnavailable: retry with the same key)."""
    try:
        yield
    except stripe.CardError as exc:
        raise errors.PaymentRejected(
            f"could not {what}: {exc.user_message or exc}", providerCode=exc.code or "card_error"
        ) from None
    except stripe.IdempotencyError as exc:
        raise errors.IdempotencyKeyReused(
            f"could not {what}: the idempotency key was used with other parameters ({exc})"
        ) from None
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise errors.ConfigurationError(
            f"could not {what}: Stripe refused our API key ({exc.user_message or exc})"
        ) from None
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise errors.NotFound(f"could not {what}: {exc.user_message or exc}") from None
        raise errors.PaymentRejected(
            f"could not {what}: {exc.user_message or exc}",
            providerCode=exc.code or "invalid_request_error",
        ) from None
    except stripe.StripeError as exc:  # connection, timeout, rate limit, 5xx, garbage
        raise errors.PaymentProviderUnavailable(
            f"could not {what}: {type(exc).__name__}: {exc.user_message or exc}"
        ) from None


def _payment_intent(intent: stripe.PaymentIntent) -> PaymentIntent:
    status = _PAYMENT_STATUS.get(intent.status)
    if status is None:
        raise errors.PaymentProviderUnavailable(
            f"payment {intent.id} has a status we do not know: {intent.status!r}"
        )
    metadata = intent.metadata.to_dict() if intent.metadata is not None else {}
    return PaymentIntent(
        id=intent.id,
        amount=from_minor_units(intent.amount, intent.currency),
        status=status,
        booking_id=booking_id_from_metadata(metadata.get(BOOKING_ID_KEY)),
        client_secret=intent.client_secret,
        redirect_url=_redirect_url(intent.next_action),
        created=datetime.fromtimestamp(intent.created, UTC),
    )


def _redirect_url(next_action: stripe.PaymentIntent.NextAction | None) -> str | None:
    """Where the buyer is to be sent, when Stripe's next action is a redirect."""
    if next_action is None or "redirect_to_url" not in next_action:
        return None
    redirect = next_action.to_dict().get("redirect_to_url") or {}
    url = redirect.get("url") if isinstance(redirect, Mapping) else None
    return url if isinstance(url, str) else None


def _refund(refund: stripe.Refund) -> Refund:
    status = _REFUND_STATUS.get(refund.status or "")
    if status is None:
        raise errors.PaymentProviderUnavailable(
            f"refund {refund.id} has a status we do not know: {refund.status!r}"
        )
    return Refund(
        id=refund.id,
        intent_id=_object_id(refund.payment_intent),
        amount=from_minor_units(refund.amount, refund.currency),
        status=status,
    )


def _object_id(value: object) -> str | None:
    """An expandable field's id: the id itself, or the expanded object's (dict or Stripe's)."""
    if isinstance(value, str):
        return value
    if isinstance(value, stripe.StripeObject):
        value = value.to_dict()
    if isinstance(value, Mapping):
        inner = value.get("id")
        return inner if isinstance(inner, str) else None
    return None


def _provider_event(event: stripe.Event) -> ProviderEvent:
    obj: dict[str, Any] = event.data.object.to_dict()
    object_type, object_id = obj.get("object"), obj.get("id")
    if not isinstance(object_type, str) or not isinstance(object_id, str):
        raise errors.BadRequest(f"webhook event {event.id} carries no object with an id")
    amount, currency = obj.get("amount"), obj.get("currency")
    metadata = obj.get("metadata")
    status = obj.get("status")
    return ProviderEvent(
        id=event.id,
        type=event.type,
        created=datetime.fromtimestamp(event.created, UTC),
        object_type=object_type,
        object_id=object_id,
        intent_id=object_id
        if object_type == "payment_intent"
        else _object_id(obj.get("payment_intent")),
        booking_id=booking_id_from_metadata(
            metadata.get(BOOKING_ID_KEY) if isinstance(metadata, Mapping) else None
        ),
        amount=from_minor_units(amount, currency)
        if isinstance(amount, int) and isinstance(currency, str)
        else None,
        status=status if isinstance(status, str) else None,
    )
