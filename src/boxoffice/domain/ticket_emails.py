"""The email that brings a confirmed order's tickets to its buyer: its Message-ID, subject, plain
text and PDF attachment. Pure: the SMTP adapter (`boxoffice.adapters.smtp_mail`) turns it into
MIME and sends it; the outbox that sends it once per order is `ticket_email`
(docs/adr/0019-tickets-by-email.md)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from boxoffice.domain.orders import DocumentSource

PDF = "application/pdf"
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class TicketEmail:
    """One order's ticket email, ready to be handed to a mail server."""

    order_id: uuid.UUID
    message_id: str  # "<...@domain>", the same on every attempt for this order
    recipient: str  # the customer's address
    recipient_name: str
    subject: str
    body: str  # plain text
    attachment_name: str
    attachment: bytes  # the order's ticket document
    attachment_type: str = PDF


def message_id(order_id: uuid.UUID, domain: str) -> str:
    """The Message-ID of an order's ticket email: derived from the order, so every attempt (also
    a resend after a crash that lost the record of an accepted send) carries the same one and a
    mail server or client can recognise the duplicate."""
    return f"<tickets.{order_id}@{domain}>"


def one_line(text: str) -> str:
    """`text` with every run of whitespace (line breaks too) as one space: a header value."""
    return _SPACE.sub(" ", text).strip()


def when(moment: datetime) -> str:
    """The event's start as the ticket document shows it (UTC: venues carry no time zone yet)."""
    return moment.astimezone(UTC).strftime("%A %d %B %Y, %H:%M UTC")


def ticket_email(
    source: DocumentSource, recipient: str, document: bytes, message_id: str
) -> TicketEmail:
    """The ticket email of the order `source` describes, with its ticket document attached."""
    order = source.order
    count = len(order.tickets)
    event = one_line(source.event_name)
    tickets, are = ("1 ticket", "is") if count == 1 else (f"{count} tickets", "are")
    body = (
        f"Hello {one_line(source.holder_name) or 'there'},\n"
        "\n"
        f"your {tickets} for {event} {are} attached to this email as a PDF, one page per ticket.\n"
        "Show each page's QR code at the door, printed or on your phone.\n"
        "\n"
        f"Event:    {event}\n"
        f"Date:     {when(source.event_starts_at)}\n"
        f"Venue:    {one_line(source.venue_name)}, {one_line(source.venue_address)}, "
        f"{one_line(source.venue_city)}\n"
        f"Tickets:  {count}\n"
        f"Booking:  {order.booking_id}\n"
        "\n"
        'Your bookings are also in the Boxoffice storefront under "My bookings".\n'
    )
    return TicketEmail(
        order_id=order.id,
        message_id=message_id,
        recipient=recipient,
        recipient_name=one_line(source.holder_name),
        subject=f"Your tickets: {event}, {when(source.event_starts_at)}",
        body=body,
        attachment_name=f"tickets-{order.booking_id}.pdf",
        attachment=document,
    )
