"""Catalogue use cases against in-memory fakes of the ports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from boxoffice import errors
from boxoffice.domain.catalogue import Availability, EventQuery, Venue
from boxoffice.services import catalogue

from .fakes import FakeStore, FakeUnitOfWorkFactory

T0 = datetime(2030, 1, 1, 20, 0, tzinfo=UTC)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def uow(store: FakeStore) -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory(store)


def draft(venue: Venue, capacity: int = 100, **changes: object) -> catalogue.EventDraft:
    fields: dict[str, object] = {
        "venue_id": venue.id,
        "name": "Concert",
        "description": "Loud",
        "starts_at": T0,
        "price": Decimal("25.00"),
        "currency": "EUR",
        "capacity": capacity,
    }
    fields.update(changes)
    return catalogue.EventDraft(**fields)  # type: ignore[arg-type]


def query(limit: int, after: tuple[datetime, uuid.UUID] | None = None) -> EventQuery:
    return EventQuery(venue_id=None, starts_from=T0, starts_to=None, limit=limit, after=after)


def test_list_events_asks_for_one_more_row_than_the_page_size(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue()
    for day in range(3):
        store.add_event(venue, T0 + timedelta(days=day))

    catalogue.list_events(uow, query(limit=2))

    assert [q.limit for q in uow.opened[0].catalogue.queries] == [3]
    assert uow.opened[0].read_only


def test_list_events_reports_more_pages_when_the_extra_row_exists(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue()
    ids = [store.add_event(venue, T0 + timedelta(days=day)) for day in range(3)]

    page = catalogue.list_events(uow, query(limit=2))

    assert [e.id for e in page.items] == ids[:2]
    assert page.has_more


def test_list_events_reports_last_page_when_rows_fit_exactly(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue()
    ids = [store.add_event(venue, T0 + timedelta(days=day)) for day in range(2)]

    page = catalogue.list_events(uow, query(limit=2))

    assert [e.id for e in page.items] == ids
    assert not page.has_more


def test_list_events_continues_after_the_cursor_position(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue()
    ids = [store.add_event(venue, T0 + timedelta(days=day)) for day in range(3)]
    first = catalogue.list_events(uow, query(limit=2))
    last = first.items[-1]

    second = catalogue.list_events(uow, query(limit=2, after=(last.starts_at, last.id)))

    assert [e.id for e in second.items] == ids[2:]
    assert not second.has_more


def test_get_event_of_unknown_id_is_not_found(uow: FakeUnitOfWorkFactory) -> None:
    missing = uuid.uuid4()
    with pytest.raises(errors.NotFound, match=str(missing)):
        catalogue.get_event(uow, missing)


def test_get_venue_of_unknown_id_is_not_found(uow: FakeUnitOfWorkFactory) -> None:
    with pytest.raises(errors.NotFound):
        catalogue.get_venue(uow, uuid.uuid4())


def test_get_venue_returns_the_stored_venue(store: FakeStore, uow: FakeUnitOfWorkFactory) -> None:
    venue = store.add_venue()
    assert catalogue.get_venue(uow, venue.id) == venue


def test_save_venue_that_must_exist_but_does_not_is_not_found(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = Venue(uuid.uuid4(), "Hall", "Street", "City", 10)
    with pytest.raises(errors.NotFound):
        catalogue.save_venue(uow, venue, must_exist=True)
    assert store.venues == {}


def test_create_event_stores_it_on_sale_with_full_capacity(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=500)

    event = catalogue.create_event(uow, draft(venue, capacity=500))

    assert event.id in store.events
    assert (event.capacity, event.remaining) == (500, 500)
    assert event.availability is Availability.ON_SALE
    assert event.price.amount == Decimal("25.00")
    assert uow.commits == 1


def test_create_event_splits_large_capacity_over_inventory_shards(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=50_000)

    event = catalogue.create_event(uow, draft(venue, capacity=10_001))

    shards = store.events[event.id].shards
    assert len(shards) == 16
    assert sum(cap for cap, _ in shards) == 10_001


def test_create_event_above_venue_capacity_fails_validation_naming_capacity(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=100)

    with pytest.raises(errors.ValidationFailed) as caught:
        catalogue.create_event(uow, draft(venue, capacity=101))

    assert [e.field for e in caught.value.errors] == ["capacity"]
    assert store.events == {}


def test_create_event_at_unknown_venue_fails_validation_naming_venue_id(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    ghost = Venue(uuid.uuid4(), "Ghost", "-", "-", 100)

    with pytest.raises(errors.ValidationFailed) as caught:
        catalogue.create_event(uow, draft(ghost))

    assert [e.field for e in caught.value.errors] == ["venueId"]


def test_update_event_cannot_move_it_to_another_venue(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue, other = store.add_venue(), store.add_venue()
    event_id = store.add_event(venue, T0)

    with pytest.raises(errors.ValidationFailed) as caught:
        catalogue.update_event(uow, event_id, draft(other))

    assert [e.field for e in caught.value.errors] == ["venueId"]
    assert store.events[event_id].venue_id == venue.id


def test_update_event_changes_details_and_capacity(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=1000)
    event_id = store.add_event(venue, T0, capacity=100, sold=40)

    event = catalogue.update_event(
        uow, event_id, draft(venue, capacity=200, name="Renamed", price=Decimal("30"))
    )

    assert (event.name, event.price.amount) == ("Renamed", Decimal("30"))
    assert (event.capacity, event.remaining) == (200, 160)


def test_update_unknown_event_is_not_found(store: FakeStore, uow: FakeUnitOfWorkFactory) -> None:
    venue = store.add_venue()
    with pytest.raises(errors.NotFound):
        catalogue.update_event(uow, uuid.uuid4(), draft(venue))


def test_resizing_an_event_below_seats_sold_is_a_conflict_and_changes_nothing(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=1000)
    event_id = store.add_event(venue, T0, capacity=100, sold=60)

    with pytest.raises(errors.Conflict, match="60"):
        catalogue.update_event(uow, event_id, draft(venue, capacity=59, name="Renamed"))

    row = store.events[event_id]
    assert (row.name, row.shards) == ("Concert", [(100, 60)])
    assert uow.commits == 0


def test_resizing_an_event_down_to_exactly_the_seats_sold_sells_it_out(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=1000)
    event_id = store.add_event(venue, T0, capacity=100, sold=60)

    event = catalogue.update_event(uow, event_id, draft(venue, capacity=60))

    assert event.availability is Availability.SOLD_OUT


def test_cancel_event_marks_it_cancelled(store: FakeStore, uow: FakeUnitOfWorkFactory) -> None:
    venue = store.add_venue()
    event_id = store.add_event(venue, T0)

    event = catalogue.cancel_event(uow, event_id)

    assert event.availability is Availability.CANCELLED
    assert store.events[event_id].cancelled


def test_cancel_unknown_event_is_not_found(uow: FakeUnitOfWorkFactory) -> None:
    with pytest.raises(errors.NotFound):
        catalogue.cancel_event(uow, uuid.uuid4())
