"""Ports: what the services need from the outside world. Adapters implement them
(`boxoffice.adapters.postgres`); unit tests use in-memory fakes (`tests/unit/fakes.py`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from boxoffice.domain.bookings import (
    Allocation,
    Booking,
    EventForSale,
    IdempotencyRecord,
    OutboxMessage,
    StoredResponse,
)
from boxoffice.domain.catalogue import Event, EventQuery, Venue
from boxoffice.domain.checkins import CheckInSummary, ScanAttempt, ScanRecord
from boxoffice.domain.customers import Customer, Profile
from boxoffice.domain.money import Money
from boxoffice.domain.orders import BookingEvent, DocumentSource, NewTicket, Order, Outcome


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

    # Read-only members, so that an adapter's more specific repository types still conform.
    @property
    def catalogue(self) -> CatalogueRepository: ...
    @property
    def customers(self) -> CustomerRepository: ...

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> AbstractContextManager[UnitOfWork]: ...


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """An outbox row waiting to be published: one CloudEvent for one Kafka record."""

    id: uuid.UUID  # the CloudEvent id
    topic: str
    record_key: str  # Kafka record key (the booking id: per-booking ordering)
    event_type: str
    event_source: str
    event_time: datetime
    payload: bytes  # the JSON document, exactly as stored
    created_at: datetime
    attempts: int = 0


class EventPublisher(Protocol):
    """Publishes outbox events (`boxoffice.adapters.kafka.KafkaEventPublisher`)."""

    def available(self) -> bool:
        """False while the publisher fails fast (its circuit breaker is open)."""
        ...

    def publish(self, events: Sequence[PendingEvent]) -> list[BaseException | None]:
        """Send `events` and wait for the broker's acks: one outcome per event, in order
        (None when acknowledged, else the error). Never raises for a delivery failure."""
        ...

    def close(self) -> None: ...


# -- bookings (create_booking) ------------------------------------------------------------------


class BookingRepository(Protocol):
    """Bookings and the seats they hold. Every write is guarded in SQL (docs/adr/0002)."""

    def event_for_sale(self, event_id: uuid.UUID) -> EventForSale | None:
        """The event's price and status, share-locked until commit (no cancel mid-purchase)."""
        ...

    def add_customer_tickets(
        self, customer_id: uuid.UUID, event_id: uuid.UUID, quantity: int, limit: int
    ) -> bool:
        """Count `quantity` more tickets for the customer; False if that would pass `limit`."""
        ...

    def remove_customer_tickets(
        self, customer_id: uuid.UUID, event_id: uuid.UUID, quantity: int
    ) -> None: ...

    def reserve_on_one_shard(self, event_id: uuid.UUID, quantity: int, start: int) -> int | None:
        """Take seats from one unlocked shard with room (SKIP LOCKED, from `start`): the shard,
        or None when no unlocked shard has room."""
        ...

    def free_seats(self, event_id: uuid.UUID) -> int:
        """Committed free seats of the event over all shards (no locks)."""
        ...

    def lock_free_seats(self, event_id: uuid.UUID) -> dict[int, int]:
        """Lock every shard of the event in shard order; free seats by shard."""
        ...

    def take_seats(self, event_id: uuid.UUID, allocations: list[Allocation]) -> None:
        """Guarded `sold + n <= capacity` writes on shards this transaction has locked."""
        ...

    def return_seats(self, event_id: uuid.UUID, allocations: list[Allocation]) -> None:
        """Lock the shards in shard order and give the seats back."""
        ...

    def add(
        self,
        booking_id: uuid.UUID,
        customer_id: uuid.UUID,
        event_id: uuid.UUID,
        quantity: int,
        unit_price: Money,
        allocations: list[Allocation],
    ) -> Booking:
        """Insert a PENDING booking and its allocations; the stored booking."""
        ...

    def get(self, booking_id: uuid.UUID, *, for_update: bool = False) -> Booking | None: ...
    def allocations(self, booking_id: uuid.UUID) -> list[Allocation]: ...
    def list_for_customer(
        self,
        customer_id: uuid.UUID,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None,
    ) -> list[Booking]:
        """Newest first (created_at descending, then id)."""
        ...

    def mark_cancelled(self, booking_id: uuid.UUID) -> Booking: ...
    def event_started(self, event_id: uuid.UUID) -> bool: ...


class IdempotencyStore(Protocol):
    def claim(
        self, scope: str, key: str, request_hash: str, ttl_hours: int
    ) -> IdempotencyRecord | None:
        """Claim `key` for this transaction: None when claimed (new, or expired and reused);
        else the record of the earlier request. Raises IdempotencyKeyInUse while an earlier
        request with the key is still in flight."""
        ...

    def complete(self, scope: str, key: str, response: StoredResponse) -> None: ...


class OutboxWriter(Protocol):
    def add(self, message: OutboxMessage) -> None:
        """Insert an outbox row in the current transaction."""
        ...


class OutboxNotifier(Protocol):
    """Called after a commit that wrote outbox rows, so the relay can publish without waiting
    for its next poll. Best effort: the relay's poll publishes the rows anyway."""

    def kick(self) -> None: ...


class NoopOutboxNotifier:
    def kick(self) -> None:
        return None


class BookingUnitOfWork(UnitOfWork, Protocol):
    @property
    def bookings(self) -> BookingRepository: ...
    @property
    def idempotency(self) -> IdempotencyStore: ...
    @property
    def outbox(self) -> OutboxWriter: ...


class BookingUnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> AbstractContextManager[BookingUnitOfWork]: ...


# -- orders (consume_order) ---------------------------------------------------------------------


class OrderRepository(Protocol):
    """Orders, tickets and the log of consumed booking events (docs/adr/0007)."""

    def orders_for_bookings(self, booking_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Order]:
        """The orders (with their tickets) of these bookings, by booking id."""
        ...

    def lock_booking(self, booking_id: uuid.UUID) -> Booking | None:
        """The booking, locked FOR UPDATE until commit (serialises its events)."""
        ...

    def processed_outcome(self, source: str, event_id: str) -> Outcome | None:
        """What an earlier delivery of this CloudEvent did, or None if it is new."""
        ...

    def record_event(self, event: BookingEvent, outcome: Outcome) -> None: ...

    def order_for_booking(
        self, booking_id: uuid.UUID, *, for_update: bool = False
    ) -> Order | None: ...

    def add_order(
        self, order_id: uuid.UUID, booking_id: uuid.UUID, document_key: str
    ) -> datetime | None:
        """Insert the booking's order (ON CONFLICT DO NOTHING): its confirmation time, or None
        when the booking already has one."""
        ...

    def add_tickets(self, order_id: uuid.UUID, tickets: Sequence[NewTicket]) -> None: ...
    def confirm_booking(self, booking_id: uuid.UUID) -> None:
        """PENDING -> CONFIRMED (a no-op for any other status)."""
        ...

    def cancel_order(self, order_id: uuid.UUID) -> None:
        """Cancel the order and its tickets; its document is due to be stored again."""
        ...


class OrderUnitOfWork(Protocol):
    @property
    def orders(self) -> OrderRepository: ...
    def commit(self) -> None: ...


class OrderUnitOfWorkFactory(Protocol):
    def __call__(self) -> AbstractContextManager[OrderUnitOfWork]: ...


class DocumentRepository(Protocol):
    """Ticket documents waiting for S3 (orders.document_stored_at IS NULL)."""

    def claim_pending(
        self, order_id: uuid.UUID | None = None, *, due_only: bool = True
    ) -> DocumentSource | None:
        """Lock one order whose document is not stored (this one, or the most overdue),
        SKIP LOCKED; with the data its document shows."""
        ...

    def mark_stored(self, order_id: uuid.UUID, key: str) -> None:
        """The document is in the store under `key` (which becomes the order's document key)."""
        ...

    def mark_failed(self, order_id: uuid.UUID, error: str) -> None:
        """Count the failed attempt and push the next try back (exponential, capped)."""
        ...

    def pending_count(self) -> int: ...


class DocumentUnitOfWork(Protocol):
    @property
    def documents(self) -> DocumentRepository: ...
    def commit(self) -> None: ...


class DocumentUnitOfWorkFactory(Protocol):
    def __call__(self) -> AbstractContextManager[DocumentUnitOfWork]: ...


class DocumentStore(Protocol):
    """Object storage for ticket documents (S3)."""

    def put(self, key: str, body: bytes, content_type: str) -> None:
        """Store `body` under `key`; raises DocumentStoreError when it could not."""
        ...

    def link(self, key: str, seconds: int) -> str:
        """A presigned GET URL valid for `seconds` (no network call)."""
        ...


class DocumentStoreError(Exception):
    """The document store refused or could not be reached."""


class DocumentRenderer(Protocol):
    """Turns an order's data into its ticket document (`boxoffice.adapters.ticket_pdf`)."""

    content_type: str

    def render(self, source: DocumentSource) -> bytes: ...


# -- check-in (check_in) --------------------------------------------------------------------------


class CheckInRepository(Protocol):
    """Admissions at the door; exactly once per ticket, guarded in SQL (db/migrations/V6)."""

    def check_in(self, scan: ScanAttempt) -> ScanRecord:
        """Apply one scan (its booking share-locked until commit) and say what it did."""
        ...

    def summary(self, event_id: uuid.UUID) -> CheckInSummary | None:
        """Issued and admitted tickets of the event; None when there is no such event."""
        ...


class CheckInUnitOfWork(Protocol):
    @property
    def checkins(self) -> CheckInRepository: ...
    def commit(self) -> None: ...


class CheckInUnitOfWorkFactory(Protocol):
    def __call__(self) -> AbstractContextManager[CheckInUnitOfWork]: ...
