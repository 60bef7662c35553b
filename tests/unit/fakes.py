"""In-memory fakes of the ports in `boxoffice.services.ports` (cosmicpython style).

`FakeStore` is the "database". Each `FakeUnitOfWork` works on a private copy of it and writes the
copy back only on `commit()`, so a use case that raises after writing leaves the store unchanged,
as a rolled-back transaction would. Writes in a `read_only=True` unit of work fail loudly, as
PostgreSQL does in a READ ONLY transaction.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType

from boxoffice.domain.catalogue import Event, EventQuery, Venue, resize_shards
from boxoffice.domain.customers import Customer, Profile
from boxoffice.domain.money import Money


class ReadOnlyViolation(RuntimeError):
    """A write inside a read-only unit of work (a bug in the use case under test)."""


@dataclass
class EventRow:
    id: uuid.UUID
    venue_id: uuid.UUID
    name: str
    description: str
    starts_at: datetime
    price: Decimal
    currency: str
    shards: list[tuple[int, int]]  # (capacity, sold) per inventory row
    cancelled: bool = False


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
    ) -> uuid.UUID:
        event_id = uuid.uuid4()
        self.events[event_id] = EventRow(
            event_id, venue.id, name, "", starts_at, Decimal(price), "EUR", [(capacity, sold)]
        )
        return event_id

    def sell(self, event_id: uuid.UUID, seats: int) -> None:
        row = self.events[event_id]
        cap, sold = row.shards[0]
        row.shards[0] = (cap, sold + seats)

    def event(self, row: EventRow) -> Event:
        capacity = sum(cap for cap, _ in row.shards)
        return Event(
            id=row.id,
            venue=self.venues[row.venue_id],
            name=row.name,
            description=row.description,
            starts_at=row.starts_at,
            price=Money(row.price, row.currency),
            capacity=capacity,
            remaining=capacity - sum(sold for _, sold in row.shards),
            cancelled=row.cancelled,
            started=row.starts_at <= datetime.now(UTC),
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
        price: Decimal,
        currency: str,
        shard_capacities: list[int],
    ) -> None:
        self._uow.check_writable()
        if venue_id not in self._store.venues:
            raise KeyError(f"foreign key: venue {venue_id}")
        self._store.events[event_id] = EventRow(
            event_id,
            venue_id,
            name,
            description,
            starts_at,
            price,
            currency,
            [(cap, 0) for cap in shard_capacities],
        )

    def update_event(
        self,
        event_id: uuid.UUID,
        name: str,
        description: str,
        starts_at: datetime,
        price: Decimal,
        currency: str,
    ) -> bool:
        self._uow.check_writable()
        row = self._store.events.get(event_id)
        if row is None:
            return False
        row.name, row.description, row.starts_at = name, description, starts_at
        row.price, row.currency = price, currency
        return True

    def resize_event(self, event_id: uuid.UUID, capacity: int) -> bool:
        self._uow.check_writable()
        row = self._store.events[event_id]
        new_caps = resize_shards(row.shards, capacity)
        if new_caps is None:
            return False
        row.shards = [(cap, sold) for cap, (_, sold) in zip(new_caps, row.shards, strict=True)]
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
