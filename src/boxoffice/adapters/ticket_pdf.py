"""Printable tickets: an order's document as a PDF, one A4 page per ticket with its QR code
(docs/adr/0015-tickets-and-check-in.md).

QR codes come from segno (pure Python), error correction M: a 167-character `BX1` code is a
version 7 symbol (45x45 modules), printed 60 mm wide (1.1 mm per module, with the 4-module quiet
zone). The PDF is fpdf2's; the QR is drawn as filled rectangles (vector: sharp at any zoom or
printer resolution). Text uses the PDF core fonts (no font embedding: ~75 ms per document saved),
so characters outside Windows-1252 are transliterated where possible (accents dropped) and
replaced by `?` otherwise.

fpdf2 and segno are imported by the first `render()` (fpdf2 takes a few hundred ms to import),
which runs in the document worker's thread: never at a function's cold start or in a request.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from boxoffice.domain.orders import DocumentSource, OrderStatus, Ticket, TicketStatus

if TYPE_CHECKING:
    from fpdf import FPDF

CONTENT_TYPE = "application/pdf"
ENCODING = "windows-1252"
QR_ERROR = "m"
QR_MM = 60.0
PAGE_W = 210.0
MARGIN = 18.0
TEXT_W = PAGE_W - 2 * MARGIN
CODE_LINE_CHARS = 56
# Latin letters that Unicode does not decompose into a base letter and a mark.
_STROKED = str.maketrans("ŁłĐđĦħıŦŧĿŀ", "LlDdHhiTtLl")


def printable(text: str) -> str:
    """`text` in the core fonts' encoding: as is when it fits, else accents dropped, else `?`."""
    try:
        text.encode(ENCODING)
    except UnicodeEncodeError:
        out = []
        for ch in text:
            try:
                ch.encode(ENCODING)
                out.append(ch)
            except UnicodeEncodeError:
                base = unicodedata.normalize("NFKD", ch.translate(_STROKED))
                kept = "".join(c for c in base if not unicodedata.combining(c))
                try:
                    kept.encode(ENCODING)
                    out.append(kept or "?")
                except UnicodeEncodeError:
                    out.append("?")
        return "".join(out)
    return text


def _when(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%A %d %B %Y, %H:%M UTC")


def _dark_runs(matrix: tuple[bytearray, ...]) -> Iterator[tuple[int, int, int]]:
    """(column, row, length) of each horizontal run of dark modules."""
    for y, row in enumerate(matrix):
        x, n = 0, len(row)
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                yield start, y, x - start
            else:
                x += 1


class PdfTicketRenderer:
    content_type = CONTENT_TYPE

    def render(self, source: DocumentSource) -> bytes:
        from fpdf import FPDF  # noqa: PLC0415 - heavy: imported by the worker thread on first use

        pdf = FPDF(format="A4", unit="mm")
        pdf.core_fonts_encoding = ENCODING
        pdf.set_auto_page_break(False)
        pdf.set_title(printable(f"Tickets: {source.event_name}"))
        pdf.set_author("Boxoffice")
        pdf.set_creation_date(source.order.confirmed_at.astimezone(UTC))
        tickets = source.order.tickets
        count = source.quantity or len(tickets)
        for ticket in tickets:
            self._page(pdf, source, ticket, count)
        return bytes(pdf.output())

    def _line(self, pdf: FPDF, y: float, text: str, size: float, style: str = "") -> float:
        """One line of text, shortened with "..." when it would not fit the page."""
        pdf.set_font("helvetica", style, size)
        pdf.set_xy(MARGIN, y)
        line = printable(text)
        if pdf.get_string_width(line) > TEXT_W:
            while line and pdf.get_string_width(line + "...") > TEXT_W:
                line = line[: max(len(line) - max(len(line) // 10, 1), 0)]
            line += "..."
        pdf.cell(TEXT_W, size * 0.45, line)
        return y + size * 0.45 + 2

    def _page(self, pdf: FPDF, src: DocumentSource, ticket: Ticket, count: int) -> None:
        pdf.add_page()
        cancelled = (
            ticket.status is TicketStatus.CANCELLED or src.order.status is OrderStatus.CANCELLED
        )
        y = self._line(pdf, MARGIN, "BOXOFFICE  -  ADMIT ONE", 9, "B")
        name = printable(src.event_name)
        size = 22 if len(name) <= 45 else 16 if len(name) <= 100 else 12  # at most 3 lines
        pdf.set_font("helvetica", "B", size)
        pdf.set_xy(MARGIN, y + 2)
        pdf.multi_cell(TEXT_W, size * 0.42, name)
        y = pdf.get_y() + 3
        y = self._line(pdf, y, _when(src.event_starts_at), 13, "B")
        y = self._line(pdf, y, f"{src.venue_name}, {src.venue_address}, {src.venue_city}", 12)
        y = self._line(pdf, y + 3, f"Ticket {ticket.seq} of {count}", 13, "B")
        y = self._line(pdf, y, f"Holder: {src.holder_name or '-'}", 12)
        y = self._line(pdf, y, f"Order: {src.order.id}", 10)
        y = self._line(pdf, y, f"Ticket: {ticket.id}", 10)
        top = y + 8
        if cancelled:
            pdf.set_text_color(180, 0, 0)
            self._line(pdf, top + 20, "CANCELLED - NOT VALID FOR ENTRY", 24, "B")
            pdf.set_text_color(0, 0, 0)
            return
        self._qr(pdf, ticket.code, top)
        pdf.set_font("courier", "", 8)
        y = top + QR_MM + 6
        for i in range(0, len(ticket.code), CODE_LINE_CHARS):
            pdf.set_xy(MARGIN, y)
            pdf.cell(TEXT_W, 3.6, ticket.code[i : i + CODE_LINE_CHARS], align="C")
            y += 3.6
        self._line(
            pdf,
            y + 6,
            "Show this page at the gate, printed or on a screen. It admits one person, once.",
            9,
        )

    def _qr(self, pdf: FPDF, code: str, top: float) -> None:
        import segno  # noqa: PLC0415 - imported with fpdf2, on first use

        qr = segno.make(code, error=QR_ERROR, micro=False)
        modules = qr.symbol_size(border=4)[0]
        module = QR_MM / modules
        x0 = (PAGE_W - QR_MM) / 2 + 4 * module
        y0 = top + 4 * module
        pdf.set_fill_color(0, 0, 0)
        for x, y, run in _dark_runs(qr.matrix):
            pdf.rect(x0 + x * module, y0 + y * module, run * module, module, style="F")
