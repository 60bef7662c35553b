"""Ports: what the services need from the outside world. Adapters implement them
(`boxoffice.adapters.postgres`); unit tests use in-memory fakes (`tests/unit/fakes.py`)."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from boxoffice.domain.catalogue import Event, EventQuery, Venue
from boxoffice.domain.customers import Customer, Profile


class CatalogueRepository(Protocol):
    def list_events(self, query: EventQuery) -> list[Event]: ...
    def get_event(self, event_id: uuid.UUID) -> Event | None: ...
    def get_venue(self, venue_id: uuid.UUID) -> Venue | None: ...
    def save_venue(self, venue: Venue) -> None: ...
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
    ) -> None: ...
    def update_event(
        self,
        event_id: uuid.UUID,
        name: str,
        description: str,
        starts_at: datetime,
        price: Decimal,
        currency: str,
    ) -> bool: ...
    def resize_event(self, event_id: uuid.UUID, capacity: int) -> bool:
        """Change total capacity; False when fewer seats than already sold would remain."""
        ...

    def cancel_event(self, event_id: uuid.UUID) -> bool: ...


class CustomerRepository(Protocol):
    def by_subject(self, subject: str) -> Customer | None: ...
    def by_id(self, customer_id: uuid.UUID) -> Customer | None: ...
    def upsert(self, subject: str, profile: Profile) -> tuple[Customer, bool]:
        """Create or update the profile of `subject`; True when it was created."""
        ...


class UnitOfWork(Protocol):
    """One database transaction: committed on `commit()`, rolled back otherwise."""

    catalogue: CatalogueRepository
    customers: CustomerRepository

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> AbstractContextManager[UnitOfWork]: ...
