"""The PDF ticket document (boxoffice.adapters.ticket_pdf): one page per ticket with the event,
venue, time, seat count, holder and order, and a QR code that decodes back to the ticket's code.
Read back as a person's tools would (tests/pdf_tickets.py: pdfium renders, zxing-cpp decodes)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from boxoffice.adapters.ticket_pdf import PdfTicketRenderer, printable
from boxoffice.domain.orders import (
    DocumentSource,
    Order,
    OrderStatus,
    Ticket,
    TicketStatus,
    issue_tickets,
)
from boxoffice.domain.tickets import TicketKeys, TicketSigner
from pdf_tickets import read_ticket_pdf

SIGNER = TicketSigner.generate()
EVENT = uuid.uuid4()
STARTS = datetime(2031, 3, 14, 19, 30, tzinfo=UTC)


def source(quantity: int = 3, status: OrderStatus = OrderStatus.CONFIRMED) -> DocumentSource:
    new = issue_tickets(SIGNER, event_id=EVENT, quantity=quantity)
    ticket_status = (
        TicketStatus.VALID if status is OrderStatus.CONFIRMED else TicketStatus.CANCELLED
    )
    tickets = tuple(Ticket(t.id, t.seq, t.code, ticket_status) for t in new)
    order = Order(uuid.uuid4(), uuid.uuid4(), status, STARTS, None, None, None, tickets)
    return DocumentSource(
        order,
        uuid.uuid4(),
        EVENT,
        "Spring Concert",
        STARTS,
        "Colston Hall",
        "1 Harbour Way",
        "Bristol",
        "Bob Baker",
        quantity,
    )


def test_one_page_per_ticket_whose_qr_code_decodes_to_a_code_that_verifies() -> None:
    src = source(3)

    pages = read_ticket_pdf(PdfTicketRenderer().render(src))

    assert [p.codes for p in pages] == [[t.code] for t in src.order.tickets]
    keys = TicketKeys([SIGNER.public_key])
    for page, ticket in zip(pages, src.order.tickets, strict=True):
        assert keys.verify(page.codes[0]).ticket_id == ticket.id


def test_each_page_shows_event_venue_time_seat_count_holder_and_order() -> None:
    src = source(2)

    pages = read_ticket_pdf(PdfTicketRenderer().render(src))

    for n, page in enumerate(pages, start=1):
        for expected in (
            "Spring Concert",
            "Friday 14 March 2031, 19:30 UTC",
            "Colston Hall, 1 Harbour Way, Bristol",
            f"Ticket {n} of 2",
            "Holder: Bob Baker",
            str(src.order.id),
            str(src.order.tickets[n - 1].id),
        ):
            assert expected in page.text, (expected, page.text)


def test_cancelled_order_prints_cancelled_pages_without_qr_codes() -> None:
    pages = read_ticket_pdf(PdfTicketRenderer().render(source(2, OrderStatus.CANCELLED)))

    assert [p.codes for p in pages] == [[], []]
    assert all("CANCELLED - NOT VALID FOR ENTRY" in p.text for p in pages)


def test_long_event_names_and_names_outside_the_core_fonts_still_render() -> None:
    src = replace(source(1), event_name="Ł" + "Very long festival name " * 8, holder_name="Zoë 张")

    [page] = read_ticket_pdf(PdfTicketRenderer().render(src))

    assert page.codes == [src.order.tickets[0].code]
    assert "Holder: Zoë ?" in page.text
    [long] = read_ticket_pdf(PdfTicketRenderer().render(replace(src, holder_name="H" * 200)))
    assert "Holder: HHHH" in long.text
    assert "H" * 200 not in long.text  # shortened to the page's width, not cut off at its edge
    assert "..." in long.text


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("Zoë Müller", "Zoë Müller"),  # in Windows-1252: as is
        ("Łukasz Żółć", "Lukasz Zólc"),  # accents outside it dropped, stroked letters mapped
        ("Dvořák", "Dvorák"),
        ("张伟", "??"),
        (
            "Jazz \u2013 live \u201ctonight\u201d \u20ac5",
            "Jazz \u2013 live \u201ctonight\u201d \u20ac5",
        ),
    ],
)
def test_text_is_printed_in_the_core_fonts_encoding(text: str, printed: str) -> None:
    assert printable(text) == printed
