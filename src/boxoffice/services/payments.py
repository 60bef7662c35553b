"""Checkout use cases: pay a hold, take the provider's webhook events, send refunds, release
lapsed holds (docs/adr/0020-checkout-state-machine.md).

The rules run in PostgreSQL (db/migrations/R__payments.sql), each call one transaction, so they
hold under concurrency: a webhook redelivered, events out of order, a payment racing its hold's
expiry, a buyer paying twice. Money leaves only through refunds, each with its own id as the
provider's idempotency key: a refund asked for twice, in parallel or after a crash, is paid once.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from boxoffice import errors, metrics
from boxoffice.domain.identity import Principal
from boxoffice.domain.payments import PaymentIntent, WebhookOutcome, payment_idempotency_key
from boxoffice.services.ports import (
    OutboxNotifier,
    PaymentProvider,
    PaymentStore,
    RefundUnitOfWorkFactory,
)

log = logging.getLogger("boxoffice.payments")


@dataclass(frozen=True, slots=True)
class PaymentPolicy:
    """Built by the composition root from configuration (`Container.payment_policy`)."""

    provider: str  # the provider's name in the records (`stripe`)
    topic: str  # where a paid booking's booking.created goes
    source: str
    expiry_batch: int = 100  # holds released per transaction (each locks its shards)
    max_expiry_batches: int = 50  # per housekeeping pass


def start_payment(
    store: PaymentStore,
    provider: PaymentProvider,
    policy: PaymentPolicy,
    principal: Principal,
    booking_id: uuid.UUID,
) -> PaymentIntent:
    """The payment of the caller's held booking: created at the provider once per booking (the
    idempotency key is the booking's), so asking again (a double click, a retry, a reload) gets
    the same payment. BookingNotPayable when the booking is not HELD or its hold has lapsed."""
    booking = store.payable(principal.subject, booking_id)
    intent = provider.create_payment(booking.id, booking.total, payment_idempotency_key(booking.id))
    store.start(principal.subject, intent, policy.provider)
    metrics.PAYMENTS.labels("started").inc()
    return intent


def take_webhook(
    store: PaymentStore,
    provider: PaymentProvider,
    refunds: RefundUnitOfWorkFactory,
    notifier: OutboxNotifier,
    policy: PaymentPolicy,
    payload: bytes,
    signature: str,
) -> WebhookOutcome:
    """Verify and apply one webhook delivery. A payment that paid its hold publishes the booking
    (the relay is told); one that cannot pay it is refunded at once (failing that, by the
    housekeeping schedule). InvalidWebhookSignature for a delivery the provider did not sign."""
    event = provider.parse_webhook(payload, signature)
    applied = store.apply(event, policy.provider, policy.topic, policy.source)
    metrics.PAYMENT_EVENTS.labels(applied.outcome.value).inc()
    if applied.outcome is WebhookOutcome.APPLIED:
        metrics.PAYMENTS.labels("succeeded").inc()
        metrics.HOLDS.labels("paid").inc()
        try:
            notifier.kick()
        except Exception:  # committed: the relay's poll publishes it
            log.exception("outbox notifier failed")
    if applied.refund_id is not None:
        send_refund(refunds, provider, refund_id=applied.refund_id)
    return applied.outcome


def send_refund(
    uow: RefundUnitOfWorkFactory,
    provider: PaymentProvider,
    *,
    refund_id: uuid.UUID | None = None,
    booking_id: uuid.UUID | None = None,
) -> bool | None:
    """Send one REQUESTED refund (the one named, one of the booking, else the most overdue):
    True when the provider took it, False when it could not be asked now (retried later by the
    housekeeping schedule), None when there was none to send. Never raises for the provider."""
    with uow() as tx:
        pending = tx.refunds.claim(refund_id, booking_id)
        if pending is None:
            return None
        try:
            sent = provider.refund(pending.payment_id, pending.amount, str(pending.id))
        except (errors.PaymentProviderUnavailable, errors.PaymentRejected) as exc:
            # Rejected is kept REQUESTED too: it is retried with backoff and shows in the pending
            # gauge until someone looks (a provider-side state we cannot fix from here).
            log.warning("refund %s of payment %s not sent: %s", pending.id, pending.payment_id, exc)
            tx.refunds.mark_failed(pending.id, str(exc))
            tx.commit()
            metrics.REFUNDS.labels("failed").inc()
            return False
        tx.refunds.mark_sent(pending.id, sent)
        tx.commit()
    metrics.REFUNDS.labels("sent").inc()
    return True


@dataclass(frozen=True, slots=True)
class Refunder:
    """Sends the refunds a cancellation asked for, right after it (what is not sent now is sent
    by the housekeeping schedule)."""

    uow: RefundUnitOfWorkFactory
    provider: PaymentProvider

    def of_booking(self, booking_id: uuid.UUID) -> None:
        while send_refund(self.uow, self.provider, booking_id=booking_id):
            pass


@dataclass(frozen=True, slots=True)
class CheckoutReport:
    expired: int
    refunds_sent: int
    refunds_failed: int
    cancelled: int = 0  # bookings of cancelled events withdrawn (and refunded)


def housekeeping_pass(
    store: PaymentStore,
    refunds: RefundUnitOfWorkFactory,
    provider: PaymentProvider | None,
    policy: PaymentPolicy,
    max_refunds: int = 100,
) -> CheckoutReport:
    """The schedule's part of checkout: release lapsed holds (each once), cancel the bookings of
    cancelled events (their payments refunded: EVENT_CANCELLED), then send the refunds that are
    due (none without a provider configured: they wait)."""
    cancelled = 0
    for _ in range(policy.max_expiry_batches):
        withdrawn = store.cancel_bookings_of_cancelled_events(
            policy.expiry_batch, policy.topic, policy.source
        )
        cancelled += withdrawn
        if withdrawn < policy.expiry_batch:
            break
    expired = 0
    for _ in range(policy.max_expiry_batches):
        released = store.expire_holds(policy.expiry_batch)
        expired += released
        if released < policy.expiry_batch:
            break
    if expired:
        metrics.HOLDS.labels("expired").inc(expired)
    sent = failed = 0
    if provider is not None:
        for _ in range(max_refunds):
            outcome = send_refund(refunds, provider)
            if outcome is None:
                break
            if outcome:
                sent += 1
            else:
                failed += 1
                break  # the provider looks down: the rest wait for the next pass
    with refunds() as tx:
        metrics.REFUNDS_PENDING.set(tx.refunds.pending_count())
    return CheckoutReport(expired, sent, failed, cancelled)
