"""Standalone ticket document worker for operators: `python -m boxoffice.processes.documents`.

consume_order renders and stores ticket PDFs in a background thread of its own process by
default. With `BOXOFFICE_TICKET_DOCUMENT_WORKER=off` it leaves them pending, and this process
(or several: documents are claimed with SKIP LOCKED) renders and stores them instead, so the
rendering CPU is not taken from the function's request threads (docs/adr/0015). It reads the
same environment as consume_order and checks for due documents every `--interval` seconds.
With `--port` (default: `$PORT` when set) it serves /healthz and /metrics (`health`).

    python -m boxoffice.processes.documents            # run until SIGTERM/SIGINT
    python -m boxoffice.processes.documents --once     # store what is pending, exit (0: none left)
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
        container = startup.load(log)
    except startup.ConfigurationExit:
        return startup.EXIT_CONFIGURATION
    uow, store, renderer = container.order_uow, container.document_store, PdfTicketRenderer()
    try:
        if args.once:
            stored = 0
            while (n := sweep_documents(uow, store, renderer, due_only=False)) > 0:
                stored += n
            with uow() as tx:
                left = tx.documents.pending_count()
            log.info("stored %d ticket documents, %d still pending", stored, left)
            return 0 if left == 0 else 1
        worker = BackgroundWorker(
            "ticket-document-worker",
            lambda: document_pass(uow, store, renderer),
            args.interval,
        )
        log.info("ticket documents: checking every %.1f s", args.interval)
        return startup.run_until_signalled(worker, log, port=args.port, host=args.host)
    finally:
        container.database.close()


if __name__ == "__main__":
    sys.exit(main())
