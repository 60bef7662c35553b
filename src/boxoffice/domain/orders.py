"""Orders and tickets: booking CloudEvents as consume_order receives them, the tickets an order
issues, and what the order's ticket document shows. Pure: no I/O
(docs/adr/0007-order-processing.md).

Ticket codes are signed with Ed25519 (`boxoffice.domain.tickets`, docs/adr/0015): a gate verifies
them offline with the published public keys.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from boxoffice.domain.bookings import CANCELLED_TYPE, CREATED_TYPE
from boxoffice.errors import (
    BookingEventInvalid,
    FieldError,
    UnsupportedEventType,
)

if TYPE_CHECKING:
    from boxoffice.domain.tickets import TicketSigner

BOOKING_EVENT_TYPES = (CREATED_TYPE, CANCELLED_TYPE)
MAX_ATTRIBUTE_LENGTH = 1000  # CloudEvent id and source, as stored in order_event


class OrderStatus(StrEnum):
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"


class TicketStatus(StrEnum):
    VALID = "VALID"
    CANCELLED = "CANCELLED"


class Outcome(StrEnum):
    """What one booking event did (stored with the event in `order_event`)."""

    CONFIRMED = "CONFIRMED"
    ALREADY_CONFIRMED = "ALREADY_CONFIRMED"
    SKIPPED_BOOKING_CANCELLED = "SKIPPED_BOOKING_CANCELLED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    NO_ORDER_TO_CANCEL = "NO_ORDER_TO_CANCEL"
    ALREADY_CANCELLED = "ALREADY_CANCELLED"


@dataclass(frozen=True, slots=True)
class BookingEvent:
    """A booking CloudEvent after validation."""

    source: str
    id: str
    type: str
    time: datetime | None
    booking_id: uuid.UUID
    event_id: uuid.UUID
    customer_id: uuid.UUID
    quantity: int

    @property
    def is_created(self) -> bool:
        return self.type == CREATED_TYPE


def _uuid_field(data: dict[str, Any], name: str, problems: list[FieldError]) -> uuid.UUID:
    value = data.get(name)
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    problems.append(FieldError(f"data.{name}", "must be a UUID string"))
    return uuid.UUID(int=0)


def booking_event(
    source: str, event_id: str, event_type: str, time: datetime | None, data: object
) -> BookingEvent:
    """Validate a CloudEvent's attributes and data as a booking event, or raise the problem
    (UnsupportedEventType, BookingEventInvalid) that tells the sender never to retry it."""
    if event_type not in BOOKING_EVENT_TYPES:
        raise UnsupportedEventType(
            f"type {event_type!r} is not a booking event; expected one of "
            + ", ".join(BOOKING_EVENT_TYPES)
        )
    if isinstance(data, (bytes, str)):  # binary mode without a JSON content type
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BookingEventInvalid([FieldError("data", "is not JSON")]) from exc
    if not isinstance(data, dict):
        raise BookingEventInvalid([FieldError("data", "must be a JSON object")])
    problems: list[FieldError] = [
        FieldError(name, f"must be 1 to {MAX_ATTRIBUTE_LENGTH} characters")
        for name, value in (("id", event_id), ("source", source))
        if not 1 <= len(value) <= MAX_ATTRIBUTE_LENGTH
    ]
    booking_id = _uuid_field(data, "bookingId", problems)
    event = _uuid_field(data, "eventId", problems)
    customer = _uuid_field(data, "customerId", problems)
    quantity = data.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= 1000:
        problems.append(FieldError("data.quantity", "must be an integer from 1 to 1000"))
        quantity = 0
    if problems:
        raise BookingEventInvalid(problems)
    return BookingEvent(source, event_id, event_type, time, booking_id, event, customer, quantity)


# -- tickets ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewTicket:
    id: uuid.UUID
    seq: int
    code: str


def issue_tickets(signer: TicketSigner, *, event_id: uuid.UUID, quantity: int) -> list[NewTicket]:
    """One ticket per seat, numbered 1..quantity, each with a fresh random id and its signed
    code (`boxoffice.domain.tickets`: Ed25519, verifiable offline with the published key)."""
    tickets = []
    for seq in range(1, quantity + 1):
        ticket_id = uuid.uuid4()
        tickets.append(NewTicket(ticket_id, seq, signer.code(ticket_id, event_id)))
    return tickets


# -- orders as read back -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ticket:
    id: uuid.UUID
    seq: int
    code: str
    status: TicketStatus


@dataclass(frozen=True, slots=True)
class Order:
    id: uuid.UUID
    booking_id: uuid.UUID
    status: OrderStatus
    confirmed_at: datetime
    cancelled_at: datetime | None
    document_key: str | None
    document_stored_at: datetime | None
    tickets: tuple[Ticket, ...] = ()


def document_key(order_id: uuid.UUID) -> str:
    """Where an order's PDF ticket document is stored in S3."""
    return f"orders/{order_id}.pdf"


@dataclass(frozen=True, slots=True)
class DocumentSource:
    """Everything a ticket document shows, as read from the database."""

    order: Order
    customer_id: uuid.UUID
    event_id: uuid.UUID
    event_name: str
    event_starts_at: datetime
    venue_name: str
    venue_address: str
    venue_city: str
    holder_name: str = ""
    quantity: int = 0  # seats in the booking (= tickets of the order)
