"""Booking use cases: book seats (exactly once per Idempotency-Key), read, list and cancel.

Each use case is one transaction of the booking store, and booking or cancelling is one round
trip: the rules (idempotency claim, customer and event checks, the per-customer limit, seat
reservation over the inventory shards, the booking, its allocations and its outbox event) run
inside PostgreSQL (docs/adr/0010-booking-rules-in-sql.md). A refusal leaves nothing written, not
even the idempotency key (docs/adr/0002-hot-event-inventory.md, docs/adr/0004-idempotency.md).
After a commit that wrote an outbox event, the relay is told, so it publishes at once. An event
in queue mode also needs the buyer's admission from the waiting room (docs/adr/0014): its token
is verified before the call and what it proves is checked in the same round trip.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from boxoffice import errors, metrics
from boxoffice.domain.bookings import Booking
from boxoffice.domain.identity import Principal
from boxoffice.domain.waiting_room import AdmissionClaims
from boxoffice.errors import FieldError
from boxoffice.services.ports import (
    Booked,
    BookingStore,
    BookingView,
    BookTickets,
    OutboxNotifier,
)

log = logging.getLogger("boxoffice.bookings")

_rng = random.SystemRandom()
# The booking store reduces the start shard modulo the event's shard count.
START_SHARD_RANGE = 1 << 15


@dataclass(frozen=True, slots=True)
class BookingPolicy:
    """What booking is allowed and where its events go: built from configuration by the
    composition root (`boxoffice.bootstrap.Container.booking_policy`), never read here."""

    max_tickets_per_order: int
    max_tickets_per_customer_per_event: int
    idempotency_ttl_hours: int
    topic: str
    source: str
    hold_seconds: int = 600  # how long a hold waits for its payment (events paid online)


@dataclass(frozen=True, slots=True)
class BookingRequest:
    event_id: uuid.UUID
    quantity: int
    idempotency_key: str
    request_hash: str
    # What the request's admission token proves, verified (events in queue mode need one).
    admission: AdmissionClaims | None = None
    category_id: uuid.UUID | None = None  # None: the event's only category


def _kick(notifier: OutboxNotifier) -> None:
    try:
        notifier.kick()
    except Exception:  # the rows are committed; the relay's poll will publish them
        log.exception("outbox notifier failed")


def create_booking(
    store: BookingStore,
    notifier: OutboxNotifier,
    policy: BookingPolicy,
    principal: Principal,
    request: BookingRequest,
    rng: random.Random = _rng,
) -> Booked:
    """Book, or replay what the Idempotency-Key booked: a replay shows the booking as the first
    response did (`Booking.as_created`), whatever happened to it since."""
    if not 1 <= request.quantity <= policy.max_tickets_per_order:
        raise errors.ValidationFailed(
            [FieldError("ticketCount", f"must be between 1 and {policy.max_tickets_per_order}")]
        )
    booked = store.book(
        BookTickets(
            subject=principal.subject,
            idempotency_key=request.idempotency_key,
            request_hash=request.request_hash,
            idempotency_ttl_hours=policy.idempotency_ttl_hours,
            booking_id=uuid.uuid4(),
            event_id=request.event_id,
            quantity=request.quantity,
            max_tickets_per_customer=policy.max_tickets_per_customer_per_event,
            start_shard=rng.randrange(START_SHARD_RANGE),
            topic=policy.topic,
            source=policy.source,
            admission=request.admission,
            category_id=request.category_id,
            hold_seconds=policy.hold_seconds,
        )
    )
    if not booked.replayed:
        if booked.booking is not None and booked.booking.held:
            metrics.HOLDS.labels("created").inc()
        else:
            _kick(notifier)
    elif booked.booking is not None:
        booked = replace(booked, booking=booked.booking.as_created())
    return booked


def get_booking(store: BookingStore, principal: Principal, booking_id: uuid.UUID) -> BookingView:
    """The caller's booking (admins: anyone's). Someone else's is 404, so ids cannot be probed."""
    view = store.find(booking_id, None if principal.is_admin else principal.subject)
    if view is None:
        raise errors.NotFound(f"booking {booking_id} does not exist")
    return view


@dataclass(frozen=True, slots=True)
class BookingPage:
    items: list[BookingView]
    has_more: bool


def list_bookings(
    store: BookingStore,
    principal: Principal,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> BookingPage:
    """The caller's own bookings, newest first (none before registering)."""
    rows = store.list_for_customer(principal.subject, limit + 1, after)
    return BookingPage(rows[:limit], len(rows) > limit)


@dataclass(frozen=True, slots=True)
class Cancelled:
    booking: Booking
    changed: bool  # False when it was already cancelled (nothing returned a second time)


def cancel_booking(
    store: BookingStore,
    notifier: OutboxNotifier,
    policy: BookingPolicy,
    principal: Principal,
    booking_id: uuid.UUID,
    refund: Callable[[uuid.UUID], None] | None = None,
) -> Cancelled:
    """Cancel the caller's booking (an admin: anyone's): its seats go back to the shards they
    came from, its tickets stop counting against the customer's limit, a booking.cancelled event
    is written (not for a hold: it was never published) and a paid booking's payment is
    refunded (`refund` sends it now; the housekeeping schedule sends what it could not). Exactly
    once: cancelling again returns the cancelled booking and changes nothing."""
    booking, changed = store.cancel(
        principal.subject, booking_id, policy.topic, policy.source, admin=principal.is_admin
    )
    if changed:
        _kick(notifier)
    if refund is not None and booking.cancelled:
        # Also when unchanged: a retry after a refund that could not be sent sends it now.
        try:
            refund(booking.id)
        except errors.BoxofficeError:  # the refund is recorded: the schedule sends it
            log.exception("refund of cancelled booking %s not sent now", booking.id)
    return Cancelled(booking, changed)
