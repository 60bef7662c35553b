"""Ticket categories in the catalogue (issue 22 item 1): the domain's rules (validation, shard
plan, availability) and the catalogue use cases against in-memory fakes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from boxoffice import errors
from boxoffice.domain.catalogue import (
    GENERAL_ADMISSION,
    MAX_CATEGORIES,
    Availability,
    CategorySpec,
    Event,
    TicketCategory,
    Venue,
    category_errors,
    event_price_and_capacity,
    plan_categories,
    price_errors,
)
from boxoffice.domain.money import Money
from boxoffice.services import catalogue

from .fakes import FakeStore, FakeUnitOfWorkFactory

T0 = datetime(2030, 1, 1, 20, 0, tzinfo=UTC)


def gbp(amount: str) -> Money:
    return Money(Decimal(amount), "GBP")


def spec(name: str, price: str, capacity: int, currency: str = "GBP") -> CategorySpec:
    return CategorySpec(name, Money(Decimal(price), currency), capacity)


THREE = (spec("Standing", "25", 2000), spec("Seated", "40", 800), spec("VIP", "90", 50))


# -- validation ---------------------------------------------------------------------------------


def test_three_valid_categories_have_no_errors() -> None:
    assert category_errors(THREE, online_payment=True) == []


@pytest.mark.parametrize(("count", "ok"), [(0, False), (1, True), (20, True), (21, False)])
def test_an_event_has_1_to_20_categories(count: int, ok: bool) -> None:
    assert MAX_CATEGORIES == 20
    specs = [spec(f"C{i}", "10", 1) for i in range(count)]
    fields = [e.field for e in category_errors(specs, False)]
    assert fields == ([] if ok else ["categories"])


def test_category_names_are_unique_ignoring_case_and_surrounding_blanks() -> None:
    found = category_errors([spec("VIP", "90", 5), spec(" vip ", "80", 5)], False)
    assert [e.field for e in found] == ["categories.1.name"]


def test_a_blank_category_name_is_refused() -> None:
    found = category_errors([spec("   ", "1", 5)], False)
    assert [e.field for e in found] == ["categories.0.name"]


def test_category_capacity_must_be_positive() -> None:
    found = category_errors([spec("A", "1", 0), spec("B", "1", -3)], False)
    assert [e.field for e in found] == ["categories.0.capacity", "categories.1.capacity"]


def test_categories_are_priced_in_one_currency() -> None:
    found = category_errors([spec("A", "10", 5), spec("B", "10", 5, "EUR")], False)
    assert [e.field for e in found] == ["categories.1.price.currency"]


def test_a_free_category_is_valid_and_a_negative_price_is_not() -> None:
    assert category_errors([spec("Free", "0", 5)], True) == []
    found = category_errors([spec("Refund me", "-1", 5)], False)
    assert [e.field for e in found] == ["categories.0.price.amount"]


@pytest.mark.parametrize(
    ("amount", "currency", "ok"),
    [
        ("2500", "JPY", True),
        ("2500.00", "JPY", True),  # trailing zeros are no decimal places
        ("2500.5", "JPY", False),  # the yen has no minor unit
        ("25.50", "GBP", True),
        ("25.505", "GBP", False),
        ("25.50", "XTS", True),  # not a payment currency: two places, as MoneyInput allows
    ],
)
def test_prices_have_at_most_their_currencys_decimal_places(
    amount: str, currency: str, ok: bool
) -> None:
    found = price_errors(Money(Decimal(amount), currency), "price", online_payment=False)
    assert (found == []) is ok, found
    if not ok:
        assert [e.field for e in found] == ["price.amount"]


def test_online_payment_needs_a_currency_payments_are_taken_in() -> None:
    assert price_errors(Money(Decimal("10"), "XTS"), "price", online_payment=False) == []
    found = price_errors(Money(Decimal("10"), "XTS"), "price", online_payment=True)
    assert [e.field for e in found] == ["price.currency"]


# -- the shard plan -------------------------------------------------------------------------------


def test_each_category_gets_its_own_shards_numbered_on_across_the_event() -> None:
    plans = plan_categories(THREE)

    assert [(p.name, p.position, p.capacity) for p in plans] == [
        ("Standing", 0, 2000),
        ("Seated", 1, 800),
        ("VIP", 2, 50),
    ]
    # 2,000 seats: 4 shards (ADR 2); 800 and 50: one each; numbers 0..5 with no gap.
    assert [[n for n, _ in p.shards] for p in plans] == [[0, 1, 2, 3], [4], [5]]
    assert [[cap for _, cap in p.shards] for p in plans] == [[500] * 4, [800], [50]]
    assert all(sum(cap for _, cap in p.shards) == p.capacity for p in plans)


def test_the_event_price_is_the_lowest_category_price_and_capacity_their_sum() -> None:
    plans = plan_categories([spec("VIP", "90", 50), spec("Standing", "25", 2000)])
    assert event_price_and_capacity(plans) == (gbp("25"), 2050)


# -- availability ---------------------------------------------------------------------------------


def _event(*categories: TicketCategory, cancelled: bool = False, started: bool = False) -> Event:
    return Event(
        id=uuid.uuid4(),
        venue=Venue(uuid.uuid4(), "Hall", "1 Street", "Town", 5000),
        name="Show",
        description="",
        starts_at=T0,
        price=min((c.price for c in categories), key=lambda m: m.amount),
        capacity=sum(c.capacity for c in categories),
        remaining=sum(c.remaining for c in categories),
        cancelled=cancelled,
        started=started,
        categories=categories,
    )


def test_a_sold_out_category_of_an_event_on_sale_is_sold_out_alone() -> None:
    vip = TicketCategory(uuid.uuid4(), "VIP", gbp("90"), 50, 0)
    standing = TicketCategory(uuid.uuid4(), "Standing", gbp("25"), 2000, 3)
    event = _event(standing, vip)

    assert event.availability is Availability.ON_SALE
    assert event.category_availability(vip) is Availability.SOLD_OUT
    assert event.category_availability(standing) is Availability.ON_SALE


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"cancelled": True}, Availability.CANCELLED),
        ({"started": True}, Availability.SALES_ENDED),
    ],
)
def test_a_category_is_not_on_sale_when_its_event_is_not(
    flags: dict[str, bool], expected: Availability
) -> None:
    standing = TicketCategory(uuid.uuid4(), "Standing", gbp("25"), 2000, 2000)
    event = _event(standing, **flags)
    assert event.category_availability(standing) is expected


# -- the use cases -------------------------------------------------------------------------------


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def uow(store: FakeStore) -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory(store)


def draft(venue: Venue, **changes: object) -> catalogue.EventDraft:
    fields: dict[str, object] = {
        "venue_id": venue.id,
        "name": "Festival",
        "description": "",
        "starts_at": T0,
    }
    fields.update(changes)
    return catalogue.EventDraft(**fields)  # type: ignore[arg-type]


def test_create_event_with_categories_stores_them_and_derives_price_and_capacity(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=5000)

    event = catalogue.create_event(uow, draft(venue, categories=THREE, online_payment=True))

    assert [(c.name, c.price, c.capacity, c.remaining) for c in event.categories] == [
        ("Standing", gbp("25"), 2000, 2000),
        ("Seated", gbp("40"), 800, 800),
        ("VIP", gbp("90"), 50, 50),
    ]
    assert (event.price, event.capacity, event.remaining) == (gbp("25"), 2850, 2850)
    assert event.online_payment
    assert len(store.events[event.id].shards) == 6


def test_create_event_without_categories_makes_one_general_admission_and_no_online_payment(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue()

    event = catalogue.create_event(
        uow, draft(venue, price=Decimal("12.50"), currency="GBP", capacity=300)
    )

    assert [(c.name, c.price, c.capacity) for c in event.categories] == [
        (GENERAL_ADMISSION, gbp("12.50"), 300)
    ]
    assert not event.online_payment


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({}, ["price", "capacity"]),  # neither a price nor categories
        ({"categories": THREE, "capacity": 2850}, ["capacity"]),
        ({"categories": THREE, "price": Decimal("25"), "currency": "GBP"}, ["price"]),
        (
            {"categories": (spec("A", "1", 1), spec("a", "1", 1))},
            ["categories.1.name"],
        ),
        (
            {"price": Decimal("10.5"), "currency": "JPY", "capacity": 10},
            ["price.amount"],
        ),
    ],
)
def test_create_event_refuses_invalid_input_naming_the_fields_and_stores_nothing(
    store: FakeStore, uow: FakeUnitOfWorkFactory, changes: dict[str, object], fields: list[str]
) -> None:
    venue = store.add_venue(capacity=5000)

    with pytest.raises(errors.ValidationFailed) as caught:
        catalogue.create_event(uow, draft(venue, **changes))

    assert [e.field for e in caught.value.errors] == fields
    assert store.events == {}


def test_categories_together_above_the_venue_capacity_are_refused(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=2849)

    with pytest.raises(errors.ValidationFailed) as caught:
        catalogue.create_event(uow, draft(venue, categories=THREE))

    assert [e.field for e in caught.value.errors] == ["capacity"]


def test_updating_a_single_category_event_changes_its_category_price_and_capacity(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=1000)
    event_id = store.add_event(venue, T0, capacity=100, sold=30)

    event = catalogue.update_event(
        uow, event_id, draft(venue, price=Decimal("30"), currency="EUR", capacity=150)
    )

    (only,) = event.categories
    assert (only.price, only.capacity, only.remaining) == (
        Money(Decimal("30"), "EUR"),
        150,
        120,
    )
    assert (event.price.amount, event.capacity, event.remaining) == (Decimal("30"), 150, 120)


def test_an_update_without_price_capacity_or_online_payment_keeps_them(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=5000)
    created = catalogue.create_event(uow, draft(venue, categories=THREE, online_payment=True))

    event = catalogue.update_event(uow, created.id, draft(venue, name="Renamed"))

    assert event.name == "Renamed"
    assert (event.price, event.capacity, event.online_payment) == (gbp("25"), 2850, True)
    assert event.categories == created.categories


@pytest.mark.parametrize(
    "changes",
    [
        {"price": Decimal("30"), "currency": "GBP"},
        {"price": Decimal("25"), "currency": "EUR"},
        {"capacity": 3000},
    ],
)
def test_price_or_capacity_of_an_event_with_several_categories_is_a_conflict(
    store: FakeStore, uow: FakeUnitOfWorkFactory, changes: dict[str, object]
) -> None:
    venue = store.add_venue(capacity=5000)
    created = catalogue.create_event(uow, draft(venue, categories=THREE))
    commits = uow.commits

    with pytest.raises(errors.Conflict, match="3 categories"):
        catalogue.update_event(uow, created.id, draft(venue, name="Renamed", **changes))

    assert uow.commits == commits
    assert store.event(store.events[created.id]).name == "Festival"


def test_an_update_that_restates_the_current_price_and_capacity_is_accepted(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=5000)
    created = catalogue.create_event(uow, draft(venue, categories=THREE))

    event = catalogue.update_event(
        uow,
        created.id,
        draft(venue, price=Decimal("25.00"), currency="GBP", capacity=2850, online_payment=True),
    )

    assert event.online_payment
    assert event.categories == created.categories


def test_categories_cannot_be_given_in_an_update(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=5000)
    created = catalogue.create_event(uow, draft(venue, categories=THREE))

    with pytest.raises(errors.ValidationFailed) as caught:
        catalogue.update_event(uow, created.id, draft(venue, categories=THREE))

    assert [e.field for e in caught.value.errors] == ["categories"]


def test_turning_online_payment_on_needs_a_payment_currency(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue()
    created = catalogue.create_event(
        uow, draft(venue, price=Decimal("10"), currency="XTS", capacity=10)
    )

    with pytest.raises(errors.ValidationFailed) as caught:
        catalogue.update_event(uow, created.id, draft(venue, online_payment=True))

    assert [e.field for e in caught.value.errors] == ["price.currency"]


def test_resizing_a_single_category_below_its_sold_seats_is_a_conflict(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue()
    event_id = store.add_event(venue, T0, capacity=100, sold=60)

    with pytest.raises(errors.Conflict, match="60"):
        catalogue.update_event(uow, event_id, draft(venue, capacity=59))

    assert store.events[event_id].shards == [(100, 60)]
    assert uow.commits == 0


def test_remaining_seats_are_counted_per_category(
    store: FakeStore, uow: FakeUnitOfWorkFactory
) -> None:
    venue = store.add_venue(capacity=5000)
    event_id = store.add_event(venue, T0, categories=[("Standing", "25", 100), ("VIP", "90", 5)])
    store.sell(event_id, 5, category=1)

    event = catalogue.get_event(uow, event_id)

    assert [(c.name, c.remaining) for c in event.categories] == [("Standing", 100), ("VIP", 0)]
    assert event.remaining == 100
    assert event.availability is Availability.ON_SALE
    assert [event.category_availability(c) for c in event.categories] == [
        Availability.ON_SALE,
        Availability.SOLD_OUT,
    ]
