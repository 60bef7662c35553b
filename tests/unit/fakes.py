"""In-memory fakes of the ports in `boxoffice.services.ports` (cosmicpython style).

`FakeStore` is the "database". Each `FakeUnitOfWork` works on a private copy of it and writes the
copy back only on `commit()`, so a use case that raises after writing leaves the store unchanged,
as a rolled-back transaction would. Writes in a `read_only=True` unit of work fail loudly, as
PostgreSQL does in a READ ONLY transaction.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType

from boxoffice.domain.catalogue import (
    CategoryPlan,
    Event,
    EventQuery,
    TicketCategory,
    Venue,
    resize_shards,
)
from boxoffice.domain.customers import Customer, Profile
from boxoffice.domain.money import Money


class ReadOnlyViolation(RuntimeError):
    """A write inside a read-only unit of work (a bug in the use case under test)."""


@dataclass
class CategoryRow:
    id: uuid.UUID
    name: str
    price: Decimal
    position: int
    shards: list[tuple[int, int]]  # (capacity, sold) per inventory row of the category


@dataclass
class EventRow:
    id: uuid.UUID
    venue_id: uuid.UUID
    name: str
    description: str
    starts_at: datetime
    price: Decimal
    currency: str
    categories: list[CategoryRow]
    cancelled: bool = False
    online_payment: bool = False

    @property
    def shards(self) -> list[tuple[int, int]]:
        """Every inventory row of the event, category by category."""
        return [shard for c in self.categories for shard in c.shards]


@dataclass
class FakeStore:
    venues: dict[uuid.UUID, Venue] = field(default_factory=dict)
    events: dict[uuid.UUID, EventRow] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)  # by subject

    # Test set-up helpers (they bypass units of work, like fixtures loaded into a database).

    def add_venue(self, capacity: int = 1000, name: str = "Hall") -> Venue:
        venue = Venue(uuid.uuid4(), name, "1 Main Street", "Springfield", capacity)
        self.venues[venue.id] = venue
        return venue

    def add_event(
        self,
        venue: Venue,
        starts_at: datetime,
        capacity: int = 100,
        sold: int = 0,
        name: str = "Concert",
        price: str = "25.00",
        categories: list[tuple[str, str, int]] | None = None,
    ) -> uuid.UUID:
        """An event of one "General admission" category (`capacity`, `sold`, `price`), or of
        `categories` given as (name, price, capacity), nothing sold."""
        event_id = uuid.uuid4()
        rows = [
            CategoryRow(uuid.uuid4(), n, Decimal(p), i, [(cap, 0)])
            for i, (n, p, cap) in enumerate(categories or [])
        ] or [CategoryRow(uuid.uuid4(), "General admission", Decimal(price), 0, [(capacity, sold)])]
        lowest = min(c.price for c in rows)
        self.events[event_id] = EventRow(
            event_id, venue.id, name, "", starts_at, lowest, "EUR", rows
        )
        return event_id

    def sell(self, event_id: uuid.UUID, seats: int, category: int = 0) -> None:
        shards = self.events[event_id].categories[category].shards
        cap, sold = shards[0]
        shards[0] = (cap, sold + seats)

    def event(self, row: EventRow) -> Event:
        categories = tuple(
            TicketCategory(
                id=c.id,
                name=c.name,
                price=Money(c.price, row.currency),
                capacity=sum(cap for cap, _ in c.shards),
                remaining=sum(cap - sold for cap, sold in c.shards),
                position=c.position,
            )
            for c in sorted(row.categories, key=lambda c: (c.position, c.name))
        )
        return Event(
            id=row.id,
            venue=self.venues[row.venue_id],
            name=row.name,
            description=row.description,
            starts_at=row.starts_at,
            price=Money(row.price, row.currency),
            capacity=sum(c.capacity for c in categories),
            remaining=sum(c.remaining for c in categories),
            cancelled=row.cancelled,
            started=row.starts_at <= datetime.now(UTC),
            categories=categories,
            online_payment=row.online_payment,
        )


class FakeCatalogue:
    def __init__(self, store: FakeStore, uow: FakeUnitOfWork) -> None:
        self._store = store
        self._uow = uow
        self.queries: list[EventQuery] = []

    def list_events(self, query: EventQuery) -> list[Event]:
        self.queries.append(query)
        rows = sorted(self._store.events.values(), key=lambda r: (r.starts_at, r.id))
        found = [
            r
            for r in rows
            if r.starts_at >= query.starts_from
            and (query.starts_to is None or r.starts_at < query.starts_to)
            and (query.venue_id is None or r.venue_id == query.venue_id)
            and (query.after is None or (r.starts_at, r.id) > query.after)
        ]
        return [self._store.event(r) for r in found[: query.limit]]

    def get_event(self, event_id: uuid.UUID) -> Event | None:
        row = self._store.events.get(event_id)
        return None if row is None else self._store.event(row)

    def get_venue(self, venue_id: uuid.UUID) -> Venue | None:
        return self._store.venues.get(venue_id)

    def save_venue(self, venue: Venue) -> None:
        self._uow.check_writable()
        self._store.venues[venue.id] = venue

    def add_event(
        self,
        event_id: uuid.UUID,
        venue_id: uuid.UUID,
        name: str,
        description: str,
        starts_at: datetime,
        price: Money,
        online_payment: bool,
        categories: Sequence[CategoryPlan],
    ) -> None:
        self._uow.check_writable()
        if venue_id not in self._store.venues:
            raise KeyError(f"foreign key: venue {venue_id}")
        numbers = [shard for c in categories for shard, _ in c.shards]
        if numbers != list(range(len(numbers))):  # the primary key (event_id, shard)
            raise ValueError(f"shard numbers {numbers} are not 0..n-1")
        for c in categories:
            if sum(cap for _, cap in c.shards) != c.capacity:  # the deferred trigger
                raise ValueError(f"shards of category {c.name} do not add up to its capacity")
        self._store.events[event_id] = EventRow(
            event_id,
            venue_id,
            name,
            description,
            starts_at,
            price.amount,
            price.currency,
            [
                CategoryRow(
                    uuid.uuid4(),
                    c.name,
                    c.price.amount,
                    c.position,
                    [(cap, 0) for _, cap in c.shards],
                )
                for c in categories
            ],
            online_payment=online_payment,
        )

    def update_event(
        self,
        event_id: uuid.UUID,
        name: str,
        description: str,
        starts_at: datetime,
        price: Money,
        online_payment: bool,
    ) -> bool:
        self._uow.check_writable()
        row = self._store.events.get(event_id)
        if row is None:
            return False
        row.name, row.description, row.starts_at = name, description, starts_at
        row.price, row.currency = price.amount, price.currency
        row.online_payment = online_payment
        return True

    def _category(self, event_id: uuid.UUID, category_id: uuid.UUID) -> CategoryRow:
        return next(c for c in self._store.events[event_id].categories if c.id == category_id)

    def set_category_price(
        self, event_id: uuid.UUID, category_id: uuid.UUID, price: Decimal
    ) -> None:
        self._uow.check_writable()
        self._category(event_id, category_id).price = price

    def resize_category(self, event_id: uuid.UUID, category_id: uuid.UUID, capacity: int) -> bool:
        self._uow.check_writable()
        category = self._category(event_id, category_id)
        new_caps = resize_shards(category.shards, capacity)
        if new_caps is None:
            return False
        category.shards = [
            (cap, sold) for cap, (_, sold) in zip(new_caps, category.shards, strict=True)
        ]
        return True

    def cancel_event(self, event_id: uuid.UUID) -> bool:
        self._uow.check_writable()
        row = self._store.events.get(event_id)
        if row is None:
            return False
        row.cancelled = True
        return True


class FakeCustomers:
    def __init__(self, store: FakeStore, uow: FakeUnitOfWork) -> None:
        self._store = store
        self._uow = uow

    def by_subject(self, subject: str) -> Customer | None:
        return self._store.customers.get(subject)

    def by_id(self, customer_id: uuid.UUID) -> Customer | None:
        return next((c for c in self._store.customers.values() if c.id == customer_id), None)

    def upsert(self, subject: str, profile: Profile) -> tuple[Customer, bool]:
        self._uow.check_writable()
        existing = self._store.customers.get(subject)
        customer = Customer(existing.id if existing else uuid.uuid4(), subject, profile)
        self._store.customers[subject] = customer
        return customer, existing is None


class FakeUnitOfWork:
    def __init__(self, store: FakeStore, read_only: bool = False) -> None:
        self._shared = store
        self._working = copy.deepcopy(store)
        self.read_only = read_only
        self.committed = False
        self.catalogue = FakeCatalogue(self._working, self)
        self.customers = FakeCustomers(self._working, self)

    def check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyViolation("write inside a read-only unit of work")

    def commit(self) -> None:
        self._shared.venues = self._working.venues
        self._shared.events = self._working.events
        self._shared.customers = self._working.customers
        self._working = copy.deepcopy(self._shared)
        self.catalogue._store = self._working
        self.customers._store = self._working
        self.committed = True

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None  # uncommitted work is simply dropped (rolled back)


class FakeUnitOfWorkFactory:
    """Matches `UnitOfWorkFactory`: `factory(read_only=...)` opens a fake transaction."""

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store if store is not None else FakeStore()
        self.opened: list[FakeUnitOfWork] = []

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(self.store, read_only=read_only)
        self.opened.append(uow)
        return uow

    @property
    def commits(self) -> int:
        return sum(1 for u in self.opened if u.committed)
