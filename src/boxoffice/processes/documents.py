"""Standalone ticket document worker for operators: `python -m boxoffice.processes.documents`.

consume_order renders and stores ticket PDFs in a background thread of its own process by
default. With `BOXOFFICE_TICKET_DOCUMENT_WORKER=off` it leaves them pending, and this process
(or several: documents are claimed with SKIP LOCKED) renders and stores them instead, so the
rendering CPU is not taken from the function's request threads (docs/adr/0015). After each
pass over the documents it sends the due ticket emails when BOXOFFICE_SMTP_HOST is set
(docs/adr/0019). It reads the same environment as consume_order and checks for due documents
every `--interval` seconds.
With `--port` (default: `$PORT` when set) it serves /healthz and /metrics (`health`).

    python -m boxoffice.processes.documents            # run until SIGTERM/SIGINT
    python -m boxoffice.processes.documents --once     # store (and email) what is pending, exit
                                                       # (0: none left)
    python -m boxoffice.processes.documents --interval 0.5
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from boxoffice.adapters.ticket_pdf import PdfTicketRenderer
from boxoffice.background import BackgroundWorker
from boxoffice.processes import startup
from boxoffice.services.orders import document_pass, sweep_documents
from boxoffice.services.ticket_emails import send_ticket_emails

log = logging.getLogger("boxoffice.documents")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice.processes.documents", description=__doc__
    )
    parser.add_argument("--once", action="store_true", help="store what is pending and exit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's server
    parser.add_argument("--port", type=int, default=startup.default_port(), help="health/metrics")
    args = parser.parse_args(argv)
    startup.setup_logging()
    try:
        container = startup.load(log, lambda c: c.ticket_mailer)
    except startup.ConfigurationExit:
        return startup.EXIT_CONFIGURATION
    uow, store, renderer = container.order_uow, container.document_store, PdfTicketRenderer()
    try:
        mailer = container.ticket_mailer
        if args.once:
            stored = 0
            while (n := sweep_documents(uow, store, renderer, due_only=False)) > 0:
                stored += n
            sent = 0
            if mailer is not None:
                while (n := send_ticket_emails(uow, mailer, renderer, due_only=False)) > 0:
                    sent += n
            with uow() as tx:
                left, emails = tx.documents.pending_count(), tx.emails.pending_count()
            log.info(
                "stored %d ticket documents, %d still pending; "
                "ticket emails: %d sent, %d pending%s",
                stored,
                left,
                sent,
                emails,
                "" if mailer else " (BOXOFFICE_SMTP_HOST is empty: none is sent)",
            )
            return 0 if left == 0 and (mailer is None or emails == 0) else 1
        worker = BackgroundWorker(
            "ticket-document-worker",
            container.document_and_email_pass(lambda: document_pass(uow, store, renderer)),
            args.interval,
        )
        log.info("ticket documents: checking every %.1f s", args.interval)
        return startup.run_until_signalled(worker, log, port=args.port, host=args.host)
    finally:
        container.database.close()


if __name__ == "__main__":
    sys.exit(main())
