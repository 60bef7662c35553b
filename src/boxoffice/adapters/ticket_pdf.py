"""Printable tickets: an order's document as a PDF, one A4 page per ticket with its QR code
(docs/adr/0015-tickets-and-check-in.md).

QR codes come from zxing-cpp's encoder (C++: ~0.5 ms for a symbol with its mask chosen, where
segno in pure Python took ~5.5 ms), error correction M: a 167-character `BX1` code is a version 7
symbol (45x45 modules), printed 60 mm wide (1.1 mm per module, with the 4-module quiet zone). It is
placed as a 1-bit image of one pixel per module (not interpolated: viewers and printers scale it
to sharp squares; drawing each run of modules as a rectangle cost ~2.5 ms per page). The PDF is
fpdf2's. Text uses the PDF core fonts (no font embedding: ~75 ms per document saved), so
characters outside Windows-1252 are transliterated where possible (accents dropped) and replaced
by `?` otherwise. A page costs ~2 ms of CPU (`python -m benchmarks.ticket_pdf_cpu`).

fpdf2 and the encoder are imported by the first `render()` (fpdf2 takes a few hundred ms to
import), which runs in the document worker's thread: never at a function's cold start or in a
request.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from boxoffice.domain.orders import DocumentSource, OrderStatus, Ticket, TicketStatus

if TYPE_CHECKING:
    from fpdf import FPDF

CONTENT_TYPE = "application/pdf"
ENCODING = "windows-1252"
QR_ERROR = "M"
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
        import zxingcpp  # noqa: PLC0415 - imported with fpdf2, on first use
        from PIL import Image  # noqa: PLC0415 - fpdf2's own image library, loaded with it

        symbol = zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.QRCode, ec_level=QR_ERROR)
        pixels = symbol.to_image(scale=1, add_quiet_zones=False)  # one pixel per module, 0 = dark
        modules = pixels.shape[0]
        image = Image.fromarray(pixels).convert("1")
        module = QR_MM / (modules + 8)  # the 4-module quiet zone on each side is the white page
        x = (PAGE_W - QR_MM) / 2 + 4 * module
        pdf.image(image, x=x, y=top + 4 * module, w=modules * module, h=modules * module)
