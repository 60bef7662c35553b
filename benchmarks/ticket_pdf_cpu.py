"""CPU cost of the PDF ticket document, in process (no servers): `python -m
benchmarks.ticket_pdf_cpu [--iterations N]`. Prints CPU milliseconds (process time, so other
load on the machine inflates it little) per document of 1 and of 4 tickets, per page, and for the
QR code alone; and the one-off cost of the first render (importing fpdf2 and segno)."""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime

from boxoffice.adapters.ticket_pdf import PdfTicketRenderer
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=300)
    n = parser.parse_args().iterations
    signer = TicketSigner.generate()
    renderer = PdfTicketRenderer()
    started = time.process_time()
    renderer.render(_source(signer, 1))
    print(f"first render (imports fpdf2, segno): {1000 * (time.process_time() - started):.0f} ms")
    import segno  # noqa: PLC0415 - imported by the first render above

    for quantity in (1, 4):
        sources = [_source(signer, quantity) for _ in range(n)]
        started = time.process_time()
        sizes = [len(renderer.render(s)) for s in sources]
        per_doc = 1000 * (time.process_time() - started) / n
        print(
            f"{quantity} ticket(s): {per_doc:.2f} ms CPU per document, {per_doc / quantity:.2f} ms"
            f" per page, {sum(sizes) / n / 1024:.1f} KiB ({n} documents)"
        )
    codes = [signer.code(uuid.uuid4(), uuid.uuid4()) for _ in range(n)]
    started = time.process_time()
    for code in codes:
        segno.make(code, error="m", micro=False)
    qr_ms = 1000 * (time.process_time() - started) / n
    print(f"QR code alone (segno, with mask selection): {qr_ms:.2f} ms")
    started = time.process_time()
    for _ in range(n):
        signer.code(uuid.uuid4(), uuid.uuid4())
    print(f"Ed25519 ticket code: {1000 * (time.process_time() - started) / n:.3f} ms")


if __name__ == "__main__":
    main()
