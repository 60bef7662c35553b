"""CPU cost of the PDF ticket document, in process (no servers): `python -m
benchmarks.ticket_pdf_cpu [--iterations N]`. Prints CPU milliseconds (process time, so other
load on the machine inflates it little) per document of 1 and of 4 tickets, per page, and for the
QR code alone; and the one-off cost of the first render (importing fpdf2 and zxing-cpp). Also the
`ticket_pdf` scenario of `make bench` (goal: <= 3 ms per ticket)."""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import zxingcpp

from benchmarks.bench import Bench
from boxoffice.adapters.ticket_pdf import QR_ERROR, PdfTicketRenderer
from boxoffice.domain.orders import (
    DocumentSource,
    Order,
    OrderStatus,
    Ticket,
    TicketStatus,
    issue_tickets,
)
from boxoffice.domain.tickets import TicketSigner


def _source(signer: TicketSigner, quantity: int) -> DocumentSource:
    event = uuid.uuid4()
    now = datetime.now(UTC)
    tickets = tuple(
        Ticket(t.id, t.seq, t.code, TicketStatus.VALID)
        for t in issue_tickets(signer, event_id=event, quantity=quantity)
    )
    order = Order(uuid.uuid4(), uuid.uuid4(), OrderStatus.CONFIRMED, now, None, None, None, tickets)
    return DocumentSource(
        order,
        uuid.uuid4(),
        event,
        "Benchmark Night",
        now,
        "Hall",
        "1 Road",
        "Leeds",
        "Bo",
        quantity,
    )


def measure(n: int) -> dict[str, Any]:
    """CPU milliseconds (process time) of `n` documents of 1 and of 4 tickets, per document and
    per page; the QR code alone; the first render (imports)."""
    signer = TicketSigner.generate()
    renderer = PdfTicketRenderer()
    started = time.process_time()
    renderer.render(_source(signer, 1))
    out: dict[str, Any] = {"first_render_ms": 1000 * (time.process_time() - started)}
    for quantity in (1, 4):
        sources = [_source(signer, quantity) for _ in range(n)]
        started = time.process_time()
        sizes = [len(renderer.render(s)) for s in sources]
        per_doc = 1000 * (time.process_time() - started) / n
        out[f"tickets_{quantity}"] = {
            "ms_per_document": per_doc,
            "ms_per_page": per_doc / quantity,
            "kib_per_document": sum(sizes) / n / 1024,
        }
    codes = [signer.code(uuid.uuid4(), uuid.uuid4()) for _ in range(n)]
    started = time.process_time()
    for code in codes:
        zxingcpp.create_barcode(code, zxingcpp.BarcodeFormat.QRCode, ec_level=QR_ERROR)
    out["qr_ms"] = 1000 * (time.process_time() - started) / n
    started = time.process_time()
    for _ in range(n):
        signer.code(uuid.uuid4(), uuid.uuid4())
    out["signature_ms"] = 1000 * (time.process_time() - started) / n
    out["documents"] = n
    return out


def ticket_pdf(b: Bench) -> dict[str, Any]:
    """The scenario (`make bench`): three measurements, in this process; medians of them."""
    runs = [measure(20 if b.profile.smoke else 300) for _ in range(3)]
    page = statistics.median(r["tickets_4"]["ms_per_page"] for r in runs)
    single = statistics.median(r["tickets_1"]["ms_per_document"] for r in runs)
    qr = statistics.median(r["qr_ms"] for r in runs)
    b.log(
        f"ticket PDF: {page:.2f} ms CPU per page (4-ticket documents), "
        f"{single:.2f} ms per 1-ticket document, QR {qr:.2f} ms"
    )
    return {"runs": runs, "ms_per_page": page, "ms_per_single_ticket_document": single, "qr_ms": qr}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=300)
    r = measure(parser.parse_args().iterations)
    print(f"first render (imports fpdf2, zxing-cpp): {r['first_render_ms']:.0f} ms")
    for quantity in (1, 4):
        d = r[f"tickets_{quantity}"]
        print(
            f"{quantity} ticket(s): {d['ms_per_document']:.2f} ms CPU per document,"
            f" {d['ms_per_page']:.2f} ms per page, {d['kib_per_document']:.1f} KiB"
            f" ({r['documents']} documents)"
        )
    print(f"QR code alone (zxing-cpp, with mask selection): {r['qr_ms']:.2f} ms")
    print(f"Ed25519 ticket code: {r['signature_ms']:.3f} ms")


if __name__ == "__main__":
    main()
