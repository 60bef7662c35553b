"""Booking use cases: book seats (exactly once per Idempotency-Key), read, list and cancel.

A booking is one database transaction: claim the idempotency key, check the customer and the
event, count the tickets against the per-customer limit, reserve seats with guarded writes,
insert the booking, its allocations and its outbox row, and store the response with the key.
Any error rolls all of it back (docs/adr/0002-hot-event-inventory.md, docs/adr/0004-idempotency.md).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from boxoffice import errors
from boxoffice.config import Settings
from boxoffice.domain.bookings import (
    Allocation,
    Booking,
    EventForSale,
    StoredResponse,
    cancelled_message,
    created_message,
    plan_allocation,
)
from boxoffice.domain.identity import Principal
from boxoffice.errors import FieldError
from boxoffice.services.ports import (
    BookingRepository,
    BookingUnitOfWorkFactory,
    OutboxNotifier,
)

log = logging.getLogger("boxoffice.bookings")

_rng = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class BookingPolicy:
    max_tickets_per_order: int
    max_tickets_per_customer_per_event: int
    idempotency_ttl_hours: int
    topic: str
    source: str

    @classmethod
    def from_settings(cls, settings: Settings) -> BookingPolicy:
        return cls(
            max_tickets_per_order=settings.max_tickets_per_order,
            max_tickets_per_customer_per_event=settings.max_tickets_per_customer_per_event,
            idempotency_ttl_hours=settings.idempotency_ttl_hours,
            topic=settings.booking_topic,
            source=settings.event_source,
        )


@dataclass(frozen=True, slots=True)
class BookingRequest:
    event_id: uuid.UUID
    quantity: int
    idempotency_key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class Created:
    """The response to send: `booking` is None when it is the replay of a stored response."""

    response: StoredResponse
    booking: Booking | None

    @property
    def replayed(self) -> bool:
        return self.booking is None


Responder = Callable[[Booking], StoredResponse]


def _kick(notifier: OutboxNotifier) -> None:
    try:
        notifier.kick()
    except Exception:  # the rows are committed; the relay's poll will publish them
        log.exception("outbox notifier failed")


def reserve_seats(
    repo: BookingRepository, event: EventForSale, quantity: int, rng: random.Random
) -> list[Allocation]:
    """Take `quantity` seats of `event` in the current transaction, or raise SoldOut.

    First one unlocked shard with room, starting at a random shard (concurrent buyers spread
    over the shards and never queue behind each other); failing that, every shard locked in
    shard order (no deadlock) and the seats taken from one or several of them.
    """
    start = rng.randrange(event.shard_count) if event.shard_count > 1 else 0
    shard = repo.reserve_on_one_shard(event.id, quantity, start)
    if shard is not None:
        return [Allocation(shard, quantity)]
    if repo.free_seats(event.id) < quantity:  # a committed state: sold out without any lock
        raise errors.SoldOut(f"fewer than {quantity} tickets are left for event {event.id}")
    plan = plan_allocation(repo.lock_free_seats(event.id), quantity, start)
    if plan is None:
        raise errors.SoldOut(f"fewer than {quantity} tickets are left for event {event.id}")
    repo.take_seats(event.id, plan)
    return plan


def create_booking(
    uow: BookingUnitOfWorkFactory,
    notifier: OutboxNotifier,
    policy: BookingPolicy,
    principal: Principal,
    request: BookingRequest,
    respond: Responder,
    rng: random.Random = _rng,
) -> Created:
    if not 1 <= request.quantity <= policy.max_tickets_per_order:
        raise errors.ValidationFailed(
            [FieldError("ticketCount", f"must be between 1 and {policy.max_tickets_per_order}")]
        )
    with uow() as tx:
        earlier = tx.idempotency.claim(
            principal.subject,
            request.idempotency_key,
            request.request_hash,
            policy.idempotency_ttl_hours,
        )
        if earlier is not None:
            if earlier.request_hash != request.request_hash:
                raise errors.IdempotencyKeyReused(
                    "this Idempotency-Key was used with a different request; use a new key"
                )
            if earlier.response is None:
                raise errors.IdempotencyKeyInUse("retry once the first request has finished")
            return Created(earlier.response, None)

        customer = tx.customers.by_subject(principal.subject)
        if customer is None:
            raise errors.RegistrationRequired(
                "register your customer profile with PUT /customers/me before booking"
            )
        event = tx.bookings.event_for_sale(request.event_id)
        if event is None:
            raise errors.NotFound(f"event {request.event_id} does not exist")
        if not event.on_sale:
            why = "cancelled" if event.cancelled else "already started"
            raise errors.EventNotOnSale(f"event {event.id} is {why}")
        limit = policy.max_tickets_per_customer_per_event
        if not tx.bookings.add_customer_tickets(customer.id, event.id, request.quantity, limit):
            raise errors.TicketLimitExceeded(
                f"a customer may hold at most {limit} tickets for event {event.id}"
            )
        allocations = reserve_seats(tx.bookings, event, request.quantity, rng)
        booking = tx.bookings.add(
            uuid.uuid4(), customer.id, event.id, request.quantity, event.price, allocations
        )
        tx.outbox.add(created_message(booking, policy.topic, policy.source))
        response = respond(booking)
        tx.idempotency.complete(principal.subject, request.idempotency_key, response)
        tx.commit()
    _kick(notifier)
    return Created(response, booking)


def get_booking(
    uow: BookingUnitOfWorkFactory, principal: Principal, booking_id: uuid.UUID
) -> Booking:
    """The caller's booking (admins: anyone's). Someone else's is 404, so ids cannot be probed."""
    with uow(read_only=True) as tx:
        booking = tx.bookings.get(booking_id)
        if booking is not None and not principal.is_admin:
            customer = tx.customers.by_subject(principal.subject)
            if customer is None or customer.id != booking.customer_id:
                booking = None
    if booking is None:
        raise errors.NotFound(f"booking {booking_id} does not exist")
    return booking


@dataclass(frozen=True, slots=True)
class BookingPage:
    items: list[Booking]
    has_more: bool


def list_bookings(
    uow: BookingUnitOfWorkFactory,
    principal: Principal,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> BookingPage:
    """The caller's own bookings, newest first (none before registering)."""
    with uow(read_only=True) as tx:
        customer = tx.customers.by_subject(principal.subject)
        if customer is None:
            return BookingPage([], False)
        rows = tx.bookings.list_for_customer(customer.id, limit + 1, after)
    return BookingPage(rows[:limit], len(rows) > limit)


@dataclass(frozen=True, slots=True)
class Cancelled:
    booking: Booking
    changed: bool  # False when it was already cancelled (nothing returned a second time)


def cancel_booking(
    uow: BookingUnitOfWorkFactory,
    notifier: OutboxNotifier,
    policy: BookingPolicy,
    principal: Principal,
    booking_id: uuid.UUID,
) -> Cancelled:
    """Cancel the caller's booking: its seats go back to the shards they came from, its tickets
    stop counting against the customer's limit, a booking.cancelled event is written. Exactly
    once: the booking row is locked, and a cancelled booking is returned as it is."""
    with uow() as tx:
        customer = tx.customers.by_subject(principal.subject)
        booking = tx.bookings.get(booking_id, for_update=True) if customer else None
        if booking is None or customer is None or booking.customer_id != customer.id:
            raise errors.NotFound(f"booking {booking_id} does not exist")
        if booking.cancelled:
            return Cancelled(booking, changed=False)
        if tx.bookings.event_started(booking.event_id):
            raise errors.BookingNotCancellable("the event has already started")
        # Lock order everywhere: booking, then customer_event_tickets, then shards by number.
        tx.bookings.remove_customer_tickets(customer.id, booking.event_id, booking.quantity)
        tx.bookings.return_seats(booking.event_id, tx.bookings.allocations(booking.id))
        cancelled = tx.bookings.mark_cancelled(booking.id)
        tx.outbox.add(cancelled_message(cancelled, policy.topic, policy.source))
        tx.commit()
    _kick(notifier)
    return Cancelled(cancelled, changed=True)
