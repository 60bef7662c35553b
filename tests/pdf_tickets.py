"""Reading ticket PDFs as a person's tools would: open the document (pypdfium2, the PDF engine of
Chrome), render each page to pixels at 150 dpi, decode the QR codes on it (zxing-cpp), and take
its text. Shared by the integration and end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass

import pypdfium2
import zxingcpp

DPI = 150


@dataclass(frozen=True)
class Page:
    text: str
    codes: list[str]  # the QR codes found on the rendered page


def read_ticket_pdf(data: bytes) -> list[Page]:
    assert data.startswith(b"%PDF-"), data[:20]
    document = pypdfium2.PdfDocument(data)
    pages = []
    try:
        for page in document:
            image = page.render(scale=DPI / 72, grayscale=True).to_pil()
            found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
            text = page.get_textpage().get_text_range()
            pages.append(Page(text, [f.text for f in found]))
    finally:
        document.close()
    return pages
