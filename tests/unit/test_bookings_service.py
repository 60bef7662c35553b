"""Booking use cases (services/bookings.py) on in-memory fakes of the booking ports.

The fake store is copied per unit of work and written back only on commit, as a transaction
would: every refusal must leave it exactly as it was. What the fakes cannot show (locks, SKIP
LOCKED, real concurrency) is tested against PostgreSQL in tests/integration/test_booking_*.py.
"""

from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType

import pytest

from boxoffice import errors
from boxoffice.domain.bookings import (
    CANCELLED_TYPE,
    CREATED_TYPE,
    Allocation,
    Booking,
    BookingStatus,
    EventForSale,
    IdempotencyRecord,
    OutboxMessage,
    StoredResponse,
    request_hash,
    shard_order,
)
from boxoffice.domain.customers import Address, Customer, Profile
from boxoffice.domain.identity import Principal
from boxoffice.domain.money import Money
from boxoffice.services import bookings
from boxoffice.services.bookings import BookingPolicy, BookingRequest

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
POLICY = BookingPolicy(
    max_tickets_per_order=10,
    max_tickets_per_customer_per_event=6,
    idempotency_ttl_hours=24,
    topic="booking",
    source="/boxoffice/bookings",
)
ALICE = Principal("sub-alice", frozenset({"customer"}))
BOB = Principal("sub-bob", frozenset({"customer"}))
ADMIN = Principal("sub-admin", frozenset({"admin", "customer"}))
NEWCOMER = Principal("sub-new", frozenset({"customer"}))


@dataclass
class FakeEvent:
    price: Money
    shards: dict[int, list[int]]  # shard -> [capacity, sold]
    cancelled: bool = False
    started: bool = False


@dataclass
class Store:
    customers: dict[str, Customer] = field(default_factory=dict)
    events: dict[uuid.UUID, FakeEvent] = field(default_factory=dict)
    tickets: dict[tuple[uuid.UUID, uuid.UUID], int] = field(default_factory=dict)
    bookings: dict[uuid.UUID, Booking] = field(default_factory=dict)
    allocations: dict[uuid.UUID, list[Allocation]] = field(default_factory=dict)
    keys: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    outbox: list[OutboxMessage] = field(default_factory=list)
    # Shards another transaction holds: SKIP LOCKED passes them over.
    held: set[tuple[uuid.UUID, int]] = field(default_factory=set)

    def add_customer(self, principal: Principal) -> Customer:
        address = Address("1 Street", "", "AB1 2CD", "Town", "GB")
        customer = Customer(uuid.uuid4(), principal.subject, Profile("N", "n@x.test", address))
        self.customers[principal.subject] = customer
        return customer

    def add_event(self, *capacities: int, price: str = "20.00") -> uuid.UUID:
        event_id = uuid.uuid4()
        shards = {i: [cap, 0] for i, cap in enumerate(capacities or (100,))}
        self.events[event_id] = FakeEvent(Money(Decimal(price), "GBP"), shards)
        return event_id

    def sold(self, event_id: uuid.UUID) -> dict[int, int]:
        return {s: v[1] for s, v in self.events[event_id].shards.items()}


class FakeBookings:
    def __init__(self, store: Store) -> None:
        self.s = store

    def event_for_sale(self, event_id: uuid.UUID) -> EventForSale | None:
        e = self.s.events.get(event_id)
        if e is None:
            return None
        return EventForSale(event_id, e.price, e.cancelled, e.started, len(e.shards))

    def event_started(self, event_id: uuid.UUID) -> bool:
        return self.s.events[event_id].started

    def add_customer_tickets(
        self, customer_id: uuid.UUID, event_id: uuid.UUID, quantity: int, limit: int
    ) -> bool:
        held = self.s.tickets.get((customer_id, event_id), 0)
        if held + quantity > limit:
            return False
        self.s.tickets[(customer_id, event_id)] = held + quantity
        return True

    def remove_customer_tickets(
        self, customer_id: uuid.UUID, event_id: uuid.UUID, quantity: int
    ) -> None:
        self.s.tickets[(customer_id, event_id)] -= quantity
        assert self.s.tickets[(customer_id, event_id)] >= 0

    def reserve_on_one_shard(self, event_id: uuid.UUID, quantity: int, start: int) -> int | None:
        shards = self.s.events[event_id].shards
        for shard in shard_order(list(shards), start):
            cap, sold = shards[shard]
            if (event_id, shard) not in self.s.held and cap - sold >= quantity:
                shards[shard][1] += quantity
                return shard
        return None

    def free_seats(self, event_id: uuid.UUID) -> int:
        return sum(cap - sold for cap, sold in self.s.events[event_id].shards.values())

    def lock_free_seats(self, event_id: uuid.UUID) -> dict[int, int]:
        return {s: cap - sold for s, (cap, sold) in self.s.events[event_id].shards.items()}

    def take_seats(self, event_id: uuid.UUID, allocations: list[Allocation]) -> None:
        for a in allocations:
            row = self.s.events[event_id].shards[a.shard]
            assert row[1] + a.quantity <= row[0], "guard: would oversell"
            row[1] += a.quantity

    def return_seats(self, event_id: uuid.UUID, allocations: list[Allocation]) -> None:
        for a in allocations:
            row = self.s.events[event_id].shards[a.shard]
            row[1] -= a.quantity
            assert row[1] >= 0

    def add(
        self,
        booking_id: uuid.UUID,
        customer_id: uuid.UUID,
        event_id: uuid.UUID,
        quantity: int,
        unit_price: Money,
        allocations: list[Allocation],
    ) -> Booking:
        b = Booking(
            booking_id, customer_id, event_id, quantity, unit_price, BookingStatus.PENDING, NOW
        )
        self.s.bookings[b.id] = b
        self.s.allocations[b.id] = list(allocations)
        return b

    def get(self, booking_id: uuid.UUID, *, for_update: bool = False) -> Booking | None:
        return self.s.bookings.get(booking_id)

    def allocations(self, booking_id: uuid.UUID) -> list[Allocation]:
        return self.s.allocations[booking_id]

    def list_for_customer(
        self, customer_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[Booking]:
        mine = [b for b in self.s.bookings.values() if b.customer_id == customer_id]
        mine.sort(key=lambda b: (-b.created_at.timestamp(), b.id))
        if after is not None:
            t, i = after
            mine = [b for b in mine if b.created_at < t or (b.created_at == t and b.id > i)]
        return mine[:limit]

    def mark_cancelled(self, booking_id: uuid.UUID) -> Booking:
        b = replace(self.s.bookings[booking_id], status=BookingStatus.CANCELLED, cancelled_at=NOW)
        self.s.bookings[booking_id] = b
        return b


class FakeIdempotency:
    def __init__(self, store: Store) -> None:
        self.s = store

    def claim(
        self, scope: str, key: str, request_hash: str, ttl_hours: int
    ) -> IdempotencyRecord | None:
        found = self.s.keys.get((scope, key))
        if found is not None:
            return found
        self.s.keys[(scope, key)] = IdempotencyRecord(request_hash, None)
        return None

    def complete(self, scope: str, key: str, response: StoredResponse) -> None:
        self.s.keys[(scope, key)] = replace(self.s.keys[(scope, key)], response=response)


class FakeOutbox:
    def __init__(self, store: Store) -> None:
        self.s = store

    def add(self, message: OutboxMessage) -> None:
        self.s.outbox.append(message)


class FakeCustomers:
    def __init__(self, store: Store) -> None:
        self.s = store

    def by_subject(self, subject: str) -> Customer | None:
        return self.s.customers.get(subject)


class FakeUow:
    def __init__(self, shared: Store, log: list[str]) -> None:
        self._shared = shared
        self._log = log
        work = copy.deepcopy(shared)
        self._work = work
        self.customers = FakeCustomers(work)
        self.bookings = FakeBookings(work)
        self.idempotency = FakeIdempotency(work)
        self.outbox = FakeOutbox(work)

    def commit(self) -> None:
        for name in vars(self._shared):
            setattr(self._shared, name, getattr(self._work, name))
        self._log.append("commit")

    def __enter__(self) -> FakeUow:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class Factory:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.log: list[str] = []

    def __call__(self, *, read_only: bool = False) -> FakeUow:
        return FakeUow(self.store, self.log)


class Notifier:
    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log = log
        self.fail = fail

    def kick(self) -> None:
        self.log.append("kick")
        if self.fail:
            raise RuntimeError("relay is down")


@pytest.fixture
def store() -> Store:
    s = Store()
    for p in (ALICE, BOB, ADMIN):
        s.add_customer(p)
    return s


@pytest.fixture
def uow(store: Store) -> Factory:
    return Factory(store)


def respond(b: Booking) -> StoredResponse:
    return StoredResponse(201, {"Location": f"/bookings/{b.id}"}, {"id": str(b.id)})


def book(
    uow: Factory,
    event_id: uuid.UUID,
    quantity: int = 1,
    key: str | None = None,
    who: Principal = ALICE,
    seed: int = 0,
    notifier: Notifier | None = None,
) -> bookings.Created:
    body = {"eventId": str(event_id), "ticketCount": quantity}
    request = BookingRequest(
        event_id, quantity, key or uuid.uuid4().hex, request_hash("POST", "/bookings", body)
    )
    return bookings.create_booking(
        uow,
        notifier or Notifier(uow.log),
        POLICY,
        who,
        request,
        respond,
        random.Random(seed),
    )


def snapshot(store: Store) -> Store:
    return copy.deepcopy(store)


# -- creating ----------------------------------------------------------------------------------


def test_booking_reserves_seats_counts_tickets_writes_outbox_and_stores_the_response(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(10, price="12.50")
    result = book(uow, event, quantity=3, key="k1")

    assert result.booking is not None
    assert not result.replayed
    b = result.booking
    assert b.quantity == 3
    assert b.unit_price == Money(Decimal("12.50"), "GBP")
    assert b.status is BookingStatus.PENDING
    assert store.bookings[b.id] == b
    assert store.sold(event) == {0: 3}
    assert store.allocations[b.id] == [Allocation(0, 3)]
    assert store.tickets[(store.customers[ALICE.subject].id, event)] == 3
    assert [(m.id, m.event_type) for m in store.outbox] == [(b.id, CREATED_TYPE)]
    assert store.keys[(ALICE.subject, "k1")].response == result.response
    assert uow.log == ["commit", "kick"]


def test_same_key_and_body_replays_the_stored_response_without_booking_again(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(10)
    first = book(uow, event, quantity=2, key="k")
    before = snapshot(store)
    second = book(uow, event, quantity=2, key="k")

    assert second.replayed
    assert second.response == first.response
    assert store == before
    assert uow.log == ["commit", "kick"]  # the replay committed nothing and kicked nothing


def test_same_key_with_a_different_body_is_refused_and_changes_nothing(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(10)
    book(uow, event, quantity=2, key="k")
    before = snapshot(store)
    with pytest.raises(errors.IdempotencyKeyReused):
        book(uow, event, quantity=3, key="k")
    assert store == before


def test_keys_are_scoped_to_the_caller(store: Store, uow: Factory) -> None:
    event = store.add_event(10)
    a = book(uow, event, key="shared", who=ALICE)
    b = book(uow, event, key="shared", who=BOB)
    assert a.booking is not None
    assert b.booking is not None
    assert a.booking.id != b.booking.id


def test_a_key_whose_first_request_is_still_in_flight_is_in_use(store: Store, uow: Factory) -> None:
    event = store.add_event(10)
    body = {"eventId": str(event), "ticketCount": 1}
    store.keys[(ALICE.subject, "k")] = IdempotencyRecord(
        request_hash("POST", "/bookings", body), None
    )
    with pytest.raises(errors.IdempotencyKeyInUse):
        book(uow, event, quantity=1, key="k")


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("no-profile", errors.RegistrationRequired),
        ("no-event", errors.NotFound),
        ("cancelled", errors.EventNotOnSale),
        ("started", errors.EventNotOnSale),
        ("limit", errors.TicketLimitExceeded),
        ("sold-out", errors.SoldOut),
    ],
)
def test_refusals_leave_nothing_written_not_even_the_idempotency_key(
    store: Store, uow: Factory, setup: str, error: type[errors.BoxofficeError]
) -> None:
    event = store.add_event(5, 5)
    who, quantity = ALICE, 2
    if setup == "no-profile":
        who = NEWCOMER
    elif setup == "no-event":
        event = uuid.uuid4()
    elif setup == "cancelled":
        store.events[event].cancelled = True
    elif setup == "started":
        store.events[event].started = True
    elif setup == "limit":
        store.tickets[(store.customers[ALICE.subject].id, event)] = 5
    else:
        store.events[event].shards = {0: [5, 4], 1: [5, 5]}
    before = snapshot(store)

    with pytest.raises(error):
        book(uow, event, quantity=quantity, key="k", who=who)

    assert store == before
    assert uow.log == []


def test_ticket_count_above_the_order_maximum_names_the_field(store: Store, uow: Factory) -> None:
    event = store.add_event(100)
    with pytest.raises(errors.ValidationFailed) as caught:
        book(uow, event, quantity=11)
    assert caught.value.errors[0].field == "ticketCount"


def test_per_customer_limit_counts_tickets_over_several_bookings(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(100)
    book(uow, event, quantity=4)
    book(uow, event, quantity=2)
    with pytest.raises(errors.TicketLimitExceeded):
        book(uow, event, quantity=1)
    book(uow, event, quantity=1, who=BOB)  # the limit is per customer


def test_seats_come_from_an_unheld_shard_when_the_random_start_shard_is_held(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(5, 5, 5, 5)
    store.held = {(event, s) for s in (0, 1, 2)}
    result = book(uow, event, quantity=2, seed=1)
    assert result.booking is not None
    assert store.allocations[result.booking.id] == [Allocation(3, 2)]


def test_random_start_spreads_bookings_over_the_shards(store: Store, uow: Factory) -> None:
    event = store.add_event(100, 100, 100, 100)
    for seed in range(15):
        book(uow, event, quantity=1, seed=seed, who=[ALICE, BOB, ADMIN][seed % 3])
    assert all(sold > 0 for sold in store.sold(event).values())


def test_seats_are_taken_from_several_shards_when_no_single_shard_has_room(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(5, 5, 5)
    store.events[event].shards = {0: [5, 3], 1: [5, 4], 2: [5, 3]}
    result = book(uow, event, quantity=5)
    assert result.booking is not None
    allocation = store.allocations[result.booking.id]
    assert sum(a.quantity for a in allocation) == 5
    assert len(allocation) >= 2
    assert store.sold(event) == {0: 5, 1: 5, 2: 5}


def test_notifier_failure_after_commit_does_not_fail_the_booking(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(10)
    result = book(uow, event, notifier=Notifier(uow.log, fail=True))
    assert result.booking is not None
    assert result.booking.id in store.bookings


# -- reading -----------------------------------------------------------------------------------


def test_customers_read_their_own_bookings_and_get_404_for_others(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(10)
    created = book(uow, event, who=BOB).booking
    assert created is not None
    assert bookings.get_booking(uow, BOB, created.id) == created
    with pytest.raises(errors.NotFound):
        bookings.get_booking(uow, ALICE, created.id)
    with pytest.raises(errors.NotFound):
        bookings.get_booking(uow, NEWCOMER, created.id)
    assert bookings.get_booking(uow, ADMIN, created.id) == created


def test_listing_pages_through_the_callers_bookings_only(store: Store, uow: Factory) -> None:
    event = store.add_event(100)
    mine = [book(uow, event, who=BOB).booking for _ in range(5)]
    book(uow, event, who=ALICE)
    first = bookings.list_bookings(uow, BOB, 3)
    assert first.has_more
    last = first.items[-1]
    second = bookings.list_bookings(uow, BOB, 3, (last.created_at, last.id))
    assert not second.has_more
    assert {b.id for b in first.items + second.items} == {b.id for b in mine if b}
    assert bookings.list_bookings(uow, NEWCOMER, 3) == bookings.BookingPage([], False)


# -- cancelling --------------------------------------------------------------------------------


def test_cancel_returns_seats_to_the_shards_they_came_from_and_frees_the_limit(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(5, 5, 5)
    store.events[event].shards = {0: [5, 3], 1: [5, 4], 2: [5, 3]}
    created = book(uow, event, quantity=5).booking
    assert created is not None
    uow.log.clear()

    result = bookings.cancel_booking(uow, Notifier(uow.log), POLICY, ALICE, created.id)

    assert result.changed
    assert result.booking.status is BookingStatus.CANCELLED
    assert store.sold(event) == {0: 3, 1: 4, 2: 3}
    assert store.tickets[(store.customers[ALICE.subject].id, event)] == 0
    assert [m.event_type for m in store.outbox] == [CREATED_TYPE, CANCELLED_TYPE]
    assert store.outbox[1].record_key == str(created.id)
    assert uow.log == ["commit", "kick"]


def test_cancelling_twice_returns_the_seats_once(store: Store, uow: Factory) -> None:
    event = store.add_event(10)
    created = book(uow, event, quantity=4).booking
    assert created is not None
    bookings.cancel_booking(uow, Notifier(uow.log), POLICY, ALICE, created.id)
    before = snapshot(store)

    again = bookings.cancel_booking(uow, Notifier(uow.log), POLICY, ALICE, created.id)

    assert not again.changed
    assert again.booking.status is BookingStatus.CANCELLED
    assert store == before


def test_only_the_owner_can_cancel(store: Store, uow: Factory) -> None:
    event = store.add_event(10)
    created = book(uow, event).booking
    assert created is not None
    for other in (BOB, NEWCOMER, ADMIN):
        with pytest.raises(errors.NotFound):
            bookings.cancel_booking(uow, Notifier(uow.log), POLICY, other, created.id)
    assert store.bookings[created.id].status is BookingStatus.PENDING


def test_a_booking_cannot_be_cancelled_once_the_event_has_started(
    store: Store, uow: Factory
) -> None:
    event = store.add_event(10)
    created = book(uow, event).booking
    assert created is not None
    store.events[event].started = True
    before = snapshot(store)
    with pytest.raises(errors.BookingNotCancellable):
        bookings.cancel_booking(uow, Notifier(uow.log), POLICY, ALICE, created.id)
    assert store == before
