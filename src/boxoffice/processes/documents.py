"""Standalone ticket document worker for operators: `python -m boxoffice.processes.documents`.

consume_order renders and stores ticket PDFs in a background thread of its own process by
default. With `BOXOFFICE_TICKET_DOCUMENT_WORKER=off` it leaves them pending, and this process
(or several: documents are claimed with SKIP LOCKED) renders and stores them instead, so the
rendering CPU is not taken from the function's request threads (docs/adr/0015). It reads the
same environment as consume_order and checks for due documents every `--interval` seconds.

    python -m boxoffice.processes.documents            # run until SIGTERM/SIGINT
    python -m boxoffice.processes.documents --once     # store what is pending, exit (0: none left)
    python -m boxoffice.processes.documents --interval 0.5
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from boxoffice.adapters.ticket_pdf import PdfTicketRenderer
from boxoffice.bootstrap import Container
from boxoffice.errors import BoxofficeError
from boxoffice.services.orders import DocumentWorker, sweep_documents

log = logging.getLogger("boxoffice.documents")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice.processes.documents", description=__doc__
    )
    parser.add_argument("--once", action="store_true", help="store what is pending and exit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    container = Container()
    try:
        container.settings  # noqa: B018 - ConfigurationError when the environment is incomplete
    except BoxofficeError as exc:
        log.error("configuration: %s", exc.detail)
        return 2
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
        worker = DocumentWorker(uow, store, renderer, args.interval)

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping after the current document", signum)
            worker.stop(timeout=0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("ticket documents: checking every %.1f s", args.interval)
        worker.run_forever()
        return 0
    finally:
        container.database.close()


if __name__ == "__main__":
    sys.exit(main())
