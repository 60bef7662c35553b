"""Payments: amounts in a currency's minor units, and the values a payment provider answers with
(the `PaymentProvider` port, docs/adr/0018-payment-provider-port.md).

Providers take integer amounts in the currency's smallest unit (2550 pence for £25.50, 2550 yen
for ¥2550). Converting is exact or refused: an amount with more decimal places than its currency
has (£25.505, ¥10.5) is an `AmountNotRepresentable`, never rounded.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from types import MappingProxyType

from boxoffice.domain.money import Money
from boxoffice.errors import AmountNotRepresentable

# Decimal places of each currency payments are taken in: the minor units the providers count in
# (Stripe's "zero-decimal" currencies, such as JPY and KRW, have none). A currency not listed is
# refused, so that adding one is a decision (Stripe also knows three-decimal currencies, BHD, KWD,
# ..., whose amounts it wants rounded to tens: not supported here).
CURRENCY_EXPONENTS = MappingProxyType(
    {
        "GBP": 2,
        "EUR": 2,
        "USD": 2,
        "CHF": 2,
        "CAD": 2,
        "AUD": 2,
        "NZD": 2,
        "SEK": 2,
        "NOK": 2,
        "DKK": 2,
        "PLN": 2,
        "JPY": 0,
        "KRW": 0,
    }
)

# Exact arithmetic: an operation that would have to drop a non-zero digit raises instead of
# rounding (dropping a trailing zero, as £25.500 -> 2550, is exact and allowed).
_EXACT = Context(prec=40, traps=[Inexact, InvalidOperation])


def currency_exponent(currency: str) -> int:
    """Decimal places of `currency` (ISO 4217 code, any case); refused when not supported."""
    try:
        return CURRENCY_EXPONENTS[currency.upper()]
    except KeyError:
        raise AmountNotRepresentable(
            f"currency {currency!r} is not one payments are taken in", currency=currency
        ) from None


def to_minor_units(money: Money) -> int:
    """`money` as an integer count of its currency's minor units (£25.50 -> 2550, ¥2550 -> 2550).

    Refused (AmountNotRepresentable): a negative or non-finite amount, one with more decimal
    places than the currency has (£25.505; trailing zeros are fine: £25.500), an unknown currency.
    """
    exponent = currency_exponent(money.currency)
    amount = money.amount
    if not amount.is_finite() or amount < 0:
        raise AmountNotRepresentable(
            f"{amount} {money.currency} is not an amount that can be paid",
            amount=str(amount),
            currency=money.currency,
        )
    try:
        quantized = amount.quantize(Decimal(1).scaleb(-exponent), context=_EXACT)
        units = quantized.scaleb(exponent, context=_EXACT)
    except (Inexact, InvalidOperation):
        raise AmountNotRepresentable(
            f"{amount} {money.currency} is not a whole number of {money.currency}'s minor units "
            f"({exponent} decimal places)",
            amount=str(amount),
            currency=money.currency,
        ) from None
    return int(units)


def from_minor_units(units: int, currency: str) -> Money:
    """A provider's integer amount as Money (2550 GBP -> £25.50, 2550 JPY -> ¥2550), with as
    many decimal places as the currency has; the currency code upper-cased (`gbp` -> `GBP`)."""
    exponent = currency_exponent(currency)
    if units < 0:
        raise AmountNotRepresentable(
            f"{units} minor units of {currency} is not an amount", currency=currency
        )
    return Money(Decimal(units).scaleb(-exponent, context=_EXACT), currency.upper())


class PaymentStatus(enum.Enum):
    """Where a payment stands, in the provider-neutral words the booking flow decides on."""

    AWAITING_PAYMENT = "awaiting_payment"  # the buyer has yet to pay, or to confirm (3-D Secure)
    PROCESSING = "processing"  # paid, the provider is still settling it
    AUTHORIZED = "authorized"  # funds held, not captured yet
    SUCCEEDED = "succeeded"  # the money is ours: the booking may be confirmed
    CANCELED = "canceled"  # will never be paid


class RefundStatus(enum.Enum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    """One attempt to take a booking's amount, as the provider holds it."""

    id: str  # the provider's id (Stripe: pi_...)
    amount: Money
    status: PaymentStatus
    booking_id: uuid.UUID | None  # from the intent's metadata (None: not one of ours)
    client_secret: str | None  # what the buyer's browser confirms the payment with
    redirect_url: str | None  # where to send the buyer, when the provider asks for a redirect
    created: datetime


@dataclass(frozen=True, slots=True)
class Refund:
    id: str  # the provider's id (Stripe: re_...)
    intent_id: str | None  # the payment it gives money back from
    amount: Money
    status: RefundStatus


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A webhook event whose signature was verified: what happened to which provider object.

    `id` is the provider's event id, the key redeliveries are de-duplicated by; `type` is the
    provider's (`payment_intent.succeeded`, `charge.refunded`, ...), and so is `status`, the
    status of the object as the event carries it (its vocabulary depends on `object_type`)."""

    id: str
    type: str
    created: datetime
    object_type: str  # payment_intent, charge, refund, ...
    object_id: str
    intent_id: str | None  # the PaymentIntent the object belongs to (itself for an intent)
    booking_id: uuid.UUID | None  # from the object's metadata
    amount: Money | None
    status: str | None


def booking_id_from_metadata(value: object) -> uuid.UUID | None:
    """The booking id a payment's metadata carries; None when absent or not a UUID (an object
    that is not one of ours)."""
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# -- a booking's payments and refunds (docs/adr/0020-checkout-state-machine.md) ----------------
# The rules run in PostgreSQL (db/migrations/R__payments.sql: start_payment, apply_payment_event,
# request_refund, ...); the names below are the ones they use (tests/integration/
# test_sql_contract.py keeps them equal).


class PaymentRecordStatus(enum.StrEnum):
    """A payment as Boxoffice records it (table `payment`)."""

    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class RefundRecordStatus(enum.StrEnum):
    """A refund as Boxoffice records it (table `refund`): REQUESTED until the provider took it."""

    REQUESTED = "REQUESTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class RefundReason(enum.StrEnum):
    BOOKING_CANCELLED = "BOOKING_CANCELLED"  # the buyer cancelled a paid booking
    HOLD_EXPIRED = "HOLD_EXPIRED"  # paid after the hold lapsed: the seats may be sold again
    DUPLICATE_PAYMENT = "DUPLICATE_PAYMENT"  # the booking was paid already
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # paid another amount than the booking's
    EVENT_CANCELLED = "EVENT_CANCELLED"


class WebhookOutcome(enum.StrEnum):
    """What one provider event did (`apply_payment_event`)."""

    APPLIED = "applied"  # the payment paid its hold: the booking is published
    REFUNDED = "refunded"  # the payment cannot pay its booking: refunded in full
    RECORDED = "recorded"  # a payment's or a refund's state recorded, nothing else
    DUPLICATE = "duplicate"  # this event was taken before
    IGNORED = "ignored"  # not about a booking of ours, or a type we do not act on


# The provider event types the rules act on (Stripe's names; the dev provider sends the same).
PAYMENT_EVENT_TYPES = frozenset(
    {"payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled"}
)
REFUND_EVENT_TYPES = frozenset({"refund.created", "refund.updated", "charge.refunded"})


def payment_idempotency_key(booking_id: uuid.UUID) -> str:
    """The idempotency key of a booking's payment at the provider: one payment per booking, so
    asking twice (a double click, a retry after a timeout) gets the same payment back."""
    return f"boxoffice-booking-{booking_id}-payment"


@dataclass(frozen=True, slots=True)
class PaymentSummary:
    """What paid for a booking (its applied payment) and what of it was given back."""

    paid: Money
    refunded: Money  # refunds the provider completed
    refund_pending: Money  # refunds requested, not completed yet
