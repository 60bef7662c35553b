"""Orders and tickets: booking CloudEvents as consume_order receives them, ticket codes, the
ticket document. Pure: no I/O (docs/adr/0007-order-processing.md).

A ticket code is `<base64url(ticket uuid)>.<base64url(HMAC-SHA256(key, ticket|booking|seq))[:22]>`:
the first part names the ticket (a scanner looks it up), the second proves the code was issued
by whoever holds the signing key for exactly that ticket of that booking. 22 base64url
characters keep 132 bits of the MAC: neither guessable nor forgeable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from boxoffice import errors
from boxoffice.domain.bookings import CANCELLED_TYPE, CREATED_TYPE
from boxoffice.errors import (
    BookingEventInvalid,
    FieldError,
    UnsupportedEventType,
)

BOOKING_EVENT_TYPES = (CREATED_TYPE, CANCELLED_TYPE)
MAC_CHARS = 22
MIN_SIGNING_KEY_LENGTH = 32
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


# -- ticket codes ------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, ticket_id: uuid.UUID, booking_id: uuid.UUID, seq: int) -> str:
    message = f"{ticket_id}|{booking_id}|{seq}".encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())[:MAC_CHARS]


def signing_key(raw: str) -> bytes:
    """The configured key as bytes; refuses keys too short to be secret."""
    if len(raw) < MIN_SIGNING_KEY_LENGTH:
        raise errors.ConfigurationError(
            "BOXOFFICE_TICKET_SIGNING_KEY must be set to at least "
            f"{MIN_SIGNING_KEY_LENGTH} characters for consume_order"
        )
    return raw.encode()


def ticket_code(key: bytes, ticket_id: uuid.UUID, booking_id: uuid.UUID, seq: int) -> str:
    return f"{_b64(ticket_id.bytes)}.{_mac(key, ticket_id, booking_id, seq)}"


def ticket_id_of(code: str) -> uuid.UUID | None:
    """The ticket a code names (to look it up), or None when it is not shaped like a code."""
    head, dot, _ = code.partition(".")
    if not dot or len(head) != 22:
        return None
    try:
        raw = _unb64(head)
    except (binascii.Error, ValueError):
        return None
    return uuid.UUID(bytes=raw) if len(raw) == 16 else None


def verify_ticket_code(key: bytes, code: str, booking_id: uuid.UUID, seq: int) -> bool:
    """True only for the code issued with `key` for this ticket of this booking."""
    ticket_id = ticket_id_of(code)
    if ticket_id is None:
        return False
    expected = ticket_code(key, ticket_id, booking_id, seq)
    return hmac.compare_digest(expected.encode(), code.encode())


@dataclass(frozen=True, slots=True)
class NewTicket:
    id: uuid.UUID
    seq: int
    code: str


def issue_tickets(key: bytes, booking_id: uuid.UUID, quantity: int) -> list[NewTicket]:
    """One ticket per seat, numbered 1..quantity, each with a fresh random id and its code."""
    tickets = []
    for seq in range(1, quantity + 1):
        ticket_id = uuid.uuid4()
        tickets.append(NewTicket(ticket_id, seq, ticket_code(key, ticket_id, booking_id, seq)))
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
    return f"orders/{order_id}.json"


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


def ticket_document(src: DocumentSource) -> dict[str, Any]:
    """The JSON ticket document of an order, stored in S3 under `document_key(order.id)`."""
    o = src.order
    return {
        "orderId": str(o.id),
        "bookingId": str(o.booking_id),
        "customerId": str(src.customer_id),
        "status": o.status.value,
        "confirmedAt": o.confirmed_at.isoformat(),
        "event": {
            "id": str(src.event_id),
            "name": src.event_name,
            "startsAt": src.event_starts_at.isoformat(),
            "venue": {
                "name": src.venue_name,
                "address": src.venue_address,
                "city": src.venue_city,
            },
        },
        "tickets": [
            {"id": str(t.id), "seq": t.seq, "code": t.code, "status": t.status.value}
            for t in o.tickets
        ],
    }
