"""Catalogue use cases: browse events and venues; manage them (admin)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from boxoffice import errors
from boxoffice.domain.catalogue import Event, EventQuery, Venue, shards_for, split_capacity
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
    venue_id: uuid.UUID
    name: str
    description: str
    starts_at: datetime
    price: Decimal
    currency: str
    capacity: int


def _check_against_venue(draft: EventDraft, venue: Venue | None) -> None:
    if venue is None:
        raise errors.ValidationFailed([FieldError("venueId", "venue does not exist")])
    if draft.capacity > venue.capacity:
        raise errors.ValidationFailed(
            [FieldError("capacity", f"must not exceed the venue's capacity ({venue.capacity})")]
        )


def create_event(uow: UnitOfWorkFactory, draft: EventDraft) -> Event:
    event_id = uuid.uuid4()
    with uow() as tx:
        _check_against_venue(draft, tx.catalogue.get_venue(draft.venue_id))
        tx.catalogue.add_event(
            event_id,
            draft.venue_id,
            draft.name,
            draft.description,
            draft.starts_at,
            draft.price,
            draft.currency,
            split_capacity(draft.capacity, shards_for(draft.capacity)),
        )
        tx.commit()
    return get_event(uow, event_id)


def update_event(uow: UnitOfWorkFactory, event_id: uuid.UUID, draft: EventDraft) -> Event:
    with uow() as tx:
        current = tx.catalogue.get_event(event_id)
        if current is None:
            raise errors.NotFound(f"event {event_id} does not exist")
        if draft.venue_id != current.venue.id:
            raise errors.ValidationFailed([FieldError("venueId", "an event cannot change venue")])
        _check_against_venue(draft, current.venue)
        tx.catalogue.update_event(
            event_id, draft.name, draft.description, draft.starts_at, draft.price, draft.currency
        )
        if draft.capacity != current.capacity and not tx.catalogue.resize_event(
            event_id, draft.capacity
        ):
            raise errors.Conflict(
                f"capacity cannot go below the {current.capacity - current.remaining} seats sold"
            )
        tx.commit()
    return get_event(uow, event_id)


def cancel_event(uow: UnitOfWorkFactory, event_id: uuid.UUID) -> Event:
    with uow() as tx:
        if not tx.catalogue.cancel_event(event_id):
            raise errors.NotFound(f"event {event_id} does not exist")
        tx.commit()
    return get_event(uow, event_id)
