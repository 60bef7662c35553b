"""Ports: what the services need from the outside world. Adapters implement them
(`boxoffice.adapters.postgres`); unit tests use in-memory fakes (`tests/unit/fakes.py`)."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, Protocol

from boxoffice.domain.bookings import Booking, StoredResponse
from boxoffice.domain.catalogue import CategoryPlan, Event, EventQuery, Venue
from boxoffice.domain.checkins import CheckInSummary, ScanAttempt, ScanRecord
from boxoffice.domain.customers import Customer, Profile
from boxoffice.domain.money import Money
from boxoffice.domain.orders import BookingEvent, DocumentSource, NewTicket, Order, Outcome
from boxoffice.domain.payments import (
    PaymentIntent,
    PaymentSummary,
    ProviderEvent,
    Refund,
    WebhookOutcome,
)
from boxoffice.domain.ticket_emails import TicketEmail
from boxoffice.domain.waiting_room import AdmissionClaims, Line, LineState, Place, QueueSettings


class Progress(enum.Enum):
    """What one pass of a background loop did (a service's pass, run by the composition root's
    `boxoffice.background.BackgroundWorker`: the services own the work, never the thread)."""

    IDLE = "idle"  # found nothing to do
    WORKED = "worked"  # did some work; nothing more is due now
    MORE = "more"  # did some work and more is due now (a full batch): run again at once


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
        price: Money,
        online_payment: bool,
        categories: Sequence[CategoryPlan],
    ) -> None:
        """The event (its capacity the categories' sum), its categories and their shards."""
        ...

    def update_event(
        self,
        event_id: uuid.UUID,
        name: str,
        description: str,
        starts_at: datetime,
        price: Money,
        online_payment: bool,
    ) -> bool: ...
    def set_category_price(
        self, event_id: uuid.UUID, category_id: uuid.UUID, price: Decimal
    ) -> None: ...
    def resize_category(self, event_id: uuid.UUID, category_id: uuid.UUID, capacity: int) -> bool:
        """Change a category's capacity (its shards' and its event's with it); False when fewer
        seats than the category has already sold would remain."""
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


class Published(NamedTuple):
    """What marking an outbox batch published found (one statement)."""

    latencies: list[float]  # seconds from each row's created_at to now (publish latency)
    successors: bool  # a later row of one of their keys waits: claimable after the commit


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


Failure = tuple[uuid.UUID, str]  # an outbox row's id and the error it failed with


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A row set aside: what the log line and an operator need to find and re-drive it."""

    id: uuid.UUID
    topic: str
    record_key: str
    event_type: str
    attempts: int
    error: str


class Backlog(NamedTuple):
    pending: int  # unpublished rows still to be published (dead letters not included)
    oldest_age: float  # seconds since the oldest of them was written (0 when none)
    dead_lettered: int  # rows set aside, waiting for an operator


class EventRejected(Exception):
    """A publish outcome: the broker (or its client, by the broker's limits) refused this one
    event for good (too large, invalid); sending it again cannot succeed. The relay sets its
    outbox row aside (dead-letters it) instead of retrying it. Any other outcome is transient."""


class EventPublisher(Protocol):
    """Publishes outbox events (`boxoffice.adapters.kafka.KafkaEventPublisher`)."""

    def available(self) -> bool:
        """False while the publisher fails fast (its circuit breaker is open)."""
        ...

    def publish(self, events: Sequence[PendingEvent]) -> list[BaseException | None]:
        """Send `events` and wait for the broker's acks: one outcome per event, in order
        (None when acknowledged, `EventRejected` when refused for good, else the error of a
        failure worth retrying). Never raises for a delivery failure."""
        ...

    def close(self) -> None: ...


# -- bookings (create_booking) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookTickets:
    """One POST /bookings as the booking store carries it out: one transaction, one round trip
    (`book_tickets` in db/migrations/R__booking.sql)."""

    subject: str  # the caller (token `sub`): Idempotency-Keys are scoped to it
    idempotency_key: str
    request_hash: str
    idempotency_ttl_hours: int
    booking_id: uuid.UUID  # the id the new booking gets
    event_id: uuid.UUID
    quantity: int
    max_tickets_per_customer: int
    start_shard: int  # random: where the search for an inventory shard with room begins
    topic: str
    source: str
    admission: AdmissionClaims | None = None  # a verified admission token (queue mode, V8)
    category_id: uuid.UUID | None = None  # None: the event's only category
    hold_seconds: int = 600  # how long a hold waits for its payment (events paid online)


@dataclass(frozen=True, slots=True)
class Booked:
    """The outcome of `BookingStore.book`: the new booking, or (replayed) the one the key
    created. `stored` is the response a key completed before V3 kept instead of its booking."""

    booking: Booking | None
    replayed: bool
    stored: StoredResponse | None = None


@dataclass(frozen=True, slots=True)
class BookingView:
    """A booking with its order (and tickets) once order processing has confirmed it."""

    booking: Booking
    order: Order | None
    payment: PaymentSummary | None = None  # what paid for it, and what was given back


class BookingStore(Protocol):
    """Bookings, each use case one transaction (docs/adr/0010-booking-rules-in-sql.md). Refusals
    raise their `BoxofficeError` (SoldOut, TicketLimitExceeded, ...) and leave nothing written."""

    def book(self, command: BookTickets) -> Booked: ...

    def cancel(
        self, subject: str, booking_id: uuid.UUID, topic: str, source: str, *, admin: bool = False
    ) -> tuple[Booking, bool]:
        """Cancel the caller's booking: (the booking, True) when this call cancelled it,
        (the booking, False) when it already was. NotFound for anyone else's."""
        ...

    def find(self, booking_id: uuid.UUID, subject: str | None) -> BookingView | None:
        """The booking if `subject`'s customer owns it (any booking when `subject` is None)."""
        ...

    def list_for_customer(
        self, subject: str, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> list[BookingView]:
        """The subject's bookings, newest first (created_at descending, then id)."""
        ...


class OutboxNotifier(Protocol):
    """Called after a commit that wrote outbox rows, so the relay can publish without waiting
    for its next poll. Best effort: the relay's poll publishes the rows anyway."""

    def kick(self) -> None: ...


class NoopOutboxNotifier:
    def kick(self) -> None:
        return None


# -- orders (consume_order) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Processed:
    """What applying one booking event did."""

    outcome: Outcome
    order_id: uuid.UUID | None
    tickets_issued: int
    redelivery: bool  # this CloudEvent (or its effect) had already been committed


class OrderStore(Protocol):
    """Orders, tickets and the log of consumed booking events (docs/adr/0007): one booking
    event applied exactly once, in one transaction (`apply_booking_event`, V4)."""

    def apply(
        self,
        event: BookingEvent,
        order_id: uuid.UUID,
        document_key: str,
        tickets: Sequence[NewTicket],
    ) -> Processed:
        """Apply `event`; a new order gets `order_id`, `document_key` and `tickets` (signed by
        the caller, one per seat). Raises UnknownBooking / BookingEventInvalid (never retried)
        with nothing written."""
        ...


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


# -- payments (docs/adr/0018-payment-provider-port.md) -------------------------------------------


class PaymentProvider(Protocol):
    """Takes and gives back a booking's money (`boxoffice.adapters.stripe_payments`).

    Every call that changes something carries an idempotency key: the same key again returns the
    first call's result, so a retry after a timeout never charges or refunds twice. Failures
    raise `PaymentRejected` (the provider said no), `PaymentProviderUnavailable` (it could not be
    asked, or answered with an error of its own: retry with the same key) or `ConfigurationError`
    (our credentials are refused)."""

    def create_payment(
        self, booking_id: uuid.UUID, amount: Money, idempotency_key: str
    ) -> PaymentIntent:
        """A new payment of `amount` for the booking (its id in the payment's metadata), with
        what the buyer's browser needs to pay (client secret, or a redirect)."""
        ...

    def retrieve(self, intent_id: str) -> PaymentIntent: ...

    def refund(self, intent_id: str, amount: Money | None, idempotency_key: str) -> Refund:
        """Give back `amount` of the payment (None: all that is left of it)."""
        ...

    def parse_webhook(self, payload: bytes, signature: str) -> ProviderEvent:
        """The event a webhook delivers, once its signature is verified against the endpoint
        secret and its signed timestamp is within the tolerance; `InvalidWebhookSignature` when
        not (a tampered body, an old or replayed delivery, another endpoint's secret)."""
        ...


# -- checkout: holds, payments, refunds (docs/adr/0020-checkout-state-machine.md) ---------------


@dataclass(frozen=True, slots=True)
class AppliedEvent:
    """What one provider event did (`apply_payment_event`), and the refund it asked for."""

    outcome: WebhookOutcome
    refund_id: uuid.UUID | None


class PaymentStore(Protocol):
    """A booking's payments (db/migrations/R__payments.sql), each call one transaction."""

    def payable(self, subject: str, booking_id: uuid.UUID) -> Booking:
        """The caller's booking, if it can be paid now (HELD, the hold not lapsed); NotFound or
        BookingNotPayable otherwise."""
        ...

    def start(self, subject: str, intent: PaymentIntent, provider: str) -> None:
        """Record the payment the buyer is about to make (again: nothing changes)."""
        ...

    def apply(self, event: ProviderEvent, provider: str, topic: str, source: str) -> AppliedEvent:
        """Apply one webhook event, once (a redelivery is DUPLICATE)."""
        ...

    def expire_holds(self, batch: int) -> int:
        """Release up to `batch` lapsed holds (each once); how many."""
        ...

    def cancel_bookings_of_cancelled_events(self, batch: int, topic: str, source: str) -> int:
        """Cancel up to `batch` live bookings of cancelled events, their payments refunded."""
        ...


@dataclass(frozen=True, slots=True)
class PendingRefund:
    """A refund claimed for sending: its id is the provider call's idempotency key."""

    id: uuid.UUID
    payment_id: str
    booking_id: uuid.UUID
    amount: Money
    attempts: int


class RefundRepository(Protocol):
    def claim(
        self, refund_id: uuid.UUID | None = None, booking_id: uuid.UUID | None = None
    ) -> PendingRefund | None:
        """Lock a REQUESTED refund (SKIP LOCKED): the one named, else one of the booking named,
        else the most overdue one that is due. None when there is none (or others hold it)."""
        ...

    def mark_sent(self, refund_id: uuid.UUID, sent: Refund) -> None: ...

    def mark_failed(self, refund_id: uuid.UUID, error: str) -> None:
        """Count the failed attempt and push the next one back (exponential, capped)."""
        ...

    def pending_count(self) -> int: ...


class RefundUnitOfWork(Protocol):
    @property
    def refunds(self) -> RefundRepository: ...
    def commit(self) -> None: ...


class RefundUnitOfWorkFactory(Protocol):
    def __call__(self) -> AbstractContextManager[RefundUnitOfWork]: ...


# -- tickets by email (the document worker; docs/adr/0019-tickets-by-email.md) -------------------


@dataclass(frozen=True, slots=True)
class PendingTicketEmail:
    """A claimed row of the ticket email outbox: the order's document data and its recipient."""

    source: DocumentSource
    recipient: str  # the customer's email address
    attempts: int  # failed attempts so far


class TicketEmailRepository(Protocol):
    """The outbox of ticket emails (`ticket_email`, V11): one row per order, so one email."""

    def claim_due(self, *, due_only: bool = True) -> PendingTicketEmail | None:
        """Lock the most overdue pending email (SKIP LOCKED), with what it shows and its
        recipient; None when none is due (or others hold them)."""
        ...

    def mark_sent(self, order_id: uuid.UUID, message_id: str) -> None: ...

    def mark_failed(self, order_id: uuid.UUID, error: str, message_id: str) -> None:
        """Count the failed attempt and push the next one back (exponential, capped)."""
        ...

    def mark_undeliverable(self, order_id: uuid.UUID, error: str, message_id: str) -> None:
        """The mail server refused it for good: never tried again by itself."""
        ...

    def mark_withdrawn(self, order_id: uuid.UUID) -> None:
        """The order was cancelled before its email went out: it never will."""
        ...

    def pending_count(self) -> int: ...


class TicketEmailUnitOfWork(Protocol):
    @property
    def emails(self) -> TicketEmailRepository: ...
    def commit(self) -> None: ...


class TicketEmailUnitOfWorkFactory(Protocol):
    def __call__(self) -> AbstractContextManager[TicketEmailUnitOfWork]: ...


class TicketMailer(Protocol):
    """Hands ticket emails to a mail server (`boxoffice.adapters.smtp_mail`)."""

    def message_id(self, order_id: uuid.UUID) -> str:
        """The Message-ID of the order's ticket email: the same on every attempt."""
        ...

    def send(self, email: TicketEmail) -> None:
        """Send `email`; raises MailRejected when the server refused it for good (5xx), and
        MailError when it could not be sent now (unreachable, 4xx, timeout)."""
        ...


class MailError(Exception):
    """The mail server could not take the email now: worth trying again later."""


class MailRejected(MailError):
    """The mail server refused the email for good (a 5xx reply): trying again cannot help."""


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
    def __call__(self, *, one_statement: bool = False) -> AbstractContextManager[CheckInUnitOfWork]:
        """A transaction; with `one_statement`, for a single statement (committed by itself)."""
        ...


# -- the waiting room (waiting_room, the admission controller) ----------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """What one advance of an event's serving counter did (`advance_queue`, V8)."""

    event_id: uuid.UUID
    state: LineState
    rate: Decimal | None  # buyers/s applied
    joined: int
    waiting: int
    admitted: int  # admitted by this tick
    expired: int  # admissions whose window ended unused since the previous tick
    waits: tuple[float, ...]  # seconds each buyer admitted by this tick waited


class WaitingRoomStore(Protocol):
    """Lines of events in queue mode (db/migrations/R__waiting_room.sql); each call is one
    statement. Refusals raise their `BoxofficeError` with nothing written."""

    def configure(self, event_id: uuid.UUID, settings: QueueSettings) -> tuple[Line, bool]:
        """Set up or change the event's queue mode: (the line, True when it is new)."""
        ...

    def remove(self, event_id: uuid.UUID) -> bool:
        """End queue mode (the line and its admissions go); False when there was none."""
        ...

    def line(self, event_id: uuid.UUID) -> Line | None: ...

    def join(
        self, event_id: uuid.UUID, subject: str, place_id: uuid.UUID
    ) -> tuple[Place, Line, bool]:
        """The subject's place and its line (True when new; else the place they had)."""
        ...

    def place(self, event_id: uuid.UUID, subject: str) -> tuple[Place, Line] | None:
        """The subject's place and its line, in one read."""
        ...

    def advance(self, auto_capacity: Decimal, max_burst: float) -> list[Tick]:
        """One tick of every line that is open or opening."""
        ...
