"""Catalogue use cases: browse events and venues; manage them (admin)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from boxoffice import errors
from boxoffice.domain.catalogue import (
    GENERAL_ADMISSION,
    CategorySpec,
    Event,
    EventQuery,
    Venue,
    category_errors,
    event_price_and_capacity,
    plan_categories,
    price_errors,
)
from boxoffice.domain.money import Money
from boxoffice.errors import FieldError
from boxoffice.services.ports import UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[Event]
    has_more: bool


def list_events(uow: UnitOfWorkFactory, query: EventQuery) -> EventPage:
    with uow(read_only=True) as tx:
        rows = tx.catalogue.list_events(
            EventQuery(
                query.venue_id, query.starts_from, query.starts_to, query.limit + 1, query.after
            )
        )
    return EventPage(rows[: query.limit], len(rows) > query.limit)


def get_event(uow: UnitOfWorkFactory, event_id: uuid.UUID) -> Event:
    with uow(read_only=True) as tx:
        event = tx.catalogue.get_event(event_id)
    if event is None:
        raise errors.NotFound(f"event {event_id} does not exist")
    return event


def get_venue(uow: UnitOfWorkFactory, venue_id: uuid.UUID) -> Venue:
    with uow(read_only=True) as tx:
        venue = tx.catalogue.get_venue(venue_id)
    if venue is None:
        raise errors.NotFound(f"venue {venue_id} does not exist")
    return venue


def save_venue(uow: UnitOfWorkFactory, venue: Venue, must_exist: bool) -> Venue:
    with uow() as tx:
        if must_exist and tx.catalogue.get_venue(venue.id) is None:
            raise errors.NotFound(f"venue {venue.id} does not exist")
        tx.catalogue.save_venue(venue)
        tx.commit()
    return venue


@dataclass(frozen=True, slots=True)
class EventDraft:
    """POST /events and PUT /events/{id}. `price`/`currency` and `capacity` are the event's
    single price and size: required to create an event without `categories` (it then gets one
    "General admission" category at that price and capacity), refused with them; on an update,
    None keeps them. `online_payment` None: off for a new event, unchanged on an update."""

    venue_id: uuid.UUID
    name: str
    description: str
    starts_at: datetime
    price: Decimal | None = None
    currency: str | None = None
    capacity: int | None = None
    categories: tuple[CategorySpec, ...] = ()
    online_payment: bool | None = None


def _check_against_venue(capacity: int, venue: Venue | None) -> Venue:
    if venue is None:
        raise errors.ValidationFailed([FieldError("venueId", "venue does not exist")])
    if capacity > venue.capacity:
        raise errors.ValidationFailed(
            [FieldError("capacity", f"must not exceed the venue's capacity ({venue.capacity})")]
        )
    return venue


def _price(draft: EventDraft) -> Money | None:
    if draft.price is None or draft.currency is None:
        return None
    return Money(draft.price, draft.currency)


def _categories_of(draft: EventDraft, online_payment: bool) -> list[CategorySpec]:
    """The new event's categories, validated (422 naming every field at fault)."""
    price = _price(draft)
    if draft.categories:
        given = [f for f, v in (("price", price), ("capacity", draft.capacity)) if v is not None]
        if given:
            raise errors.ValidationFailed(
                [
                    FieldError(f, "leave it out when categories are given: it comes from them")
                    for f in given
                ]
            )
        specs = list(draft.categories)
        problems = category_errors(specs, online_payment)
    else:
        if price is None or draft.capacity is None:
            missing = [f for f, v in (("price", price), ("capacity", draft.capacity)) if v is None]
            raise errors.ValidationFailed(
                [FieldError(f, "is required (or give categories)") for f in missing]
            )
        specs = [CategorySpec(GENERAL_ADMISSION, price, draft.capacity)]
        problems = price_errors(price, "price", online_payment)
    if problems:
        raise errors.ValidationFailed(problems)
    return specs


def create_event(uow: UnitOfWorkFactory, draft: EventDraft) -> Event:
    event_id = uuid.uuid4()
    online_payment = bool(draft.online_payment)
    plans = plan_categories(_categories_of(draft, online_payment))
    price, capacity = event_price_and_capacity(plans)
    with uow() as tx:
        _check_against_venue(capacity, tx.catalogue.get_venue(draft.venue_id))
        tx.catalogue.add_event(
            event_id,
            draft.venue_id,
            draft.name,
            draft.description,
            draft.starts_at,
            price,
            online_payment,
            plans,
        )
        tx.commit()
    return get_event(uow, event_id)


def update_event(uow: UnitOfWorkFactory, event_id: uuid.UUID, draft: EventDraft) -> Event:
    """Name, description, start, online payment; price and capacity of an event with one
    category (its category's too). An event with several categories takes its price and
    capacity from them: changing either here is a 409 Conflict."""
    if draft.categories:
        raise errors.ValidationFailed(
            [FieldError("categories", "are set when the event is created")]
        )
    with uow() as tx:
        current = tx.catalogue.get_event(event_id)
        if current is None:
            raise errors.NotFound(f"event {event_id} does not exist")
        if draft.venue_id != current.venue.id:
            raise errors.ValidationFailed([FieldError("venueId", "an event cannot change venue")])
        price = _price(draft) or current.price
        capacity = current.capacity if draft.capacity is None else draft.capacity
        online_payment = (
            current.online_payment if draft.online_payment is None else draft.online_payment
        )
        single = current.categories[0] if len(current.categories) == 1 else None
        if single is None and price != current.price:
            raise errors.Conflict(
                f"event {event_id} sells tickets in {len(current.categories)} categories: its "
                f"price is the lowest of theirs ({current.price.amount} "
                f"{current.price.currency}) and cannot be set for the whole event"
            )
        if single is None and capacity != current.capacity:
            raise errors.Conflict(
                f"event {event_id} sells tickets in {len(current.categories)} categories: its "
                "capacity is the sum of theirs; resize a category instead"
            )
        # The categories are priced in the event's currency: checking the event's price checks
        # the currency of them all.
        problems = price_errors(price, "price", online_payment)
        if problems:
            raise errors.ValidationFailed(problems)
        _check_against_venue(capacity, current.venue)
        tx.catalogue.update_event(
            event_id, draft.name, draft.description, draft.starts_at, price, online_payment
        )
        if single is not None:
            if price != single.price:
                tx.catalogue.set_category_price(event_id, single.id, price.amount)
            if capacity != single.capacity and not tx.catalogue.resize_category(
                event_id, single.id, capacity
            ):
                raise errors.Conflict(
                    f"capacity cannot go below the {current.capacity - current.remaining} "
                    "seats sold"
                )
        tx.commit()
    return get_event(uow, event_id)


def cancel_event(uow: UnitOfWorkFactory, event_id: uuid.UUID) -> Event:
    with uow() as tx:
        if not tx.catalogue.cancel_event(event_id):
            raise errors.NotFound(f"event {event_id} does not exist")
        tx.commit()
    return get_event(uow, event_id)
