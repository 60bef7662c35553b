"""Standalone outbox relay (sweeper) for operators: `python -m boxoffice.relay`.

The functions that write outbox rows publish them themselves right after each commit (and sweep
in the background). This process is the safety net for when they are scaled to zero or down: it
publishes whatever is left, every `BOXOFFICE_OUTBOX_SWEEP_SECONDS`, until SIGTERM/SIGINT. It
reads the same environment as the functions. Several instances may run at once (rows are
claimed with SKIP LOCKED).

    python -m boxoffice.relay                 # run until stopped
    python -m boxoffice.relay --once          # drain the backlog once and exit (0: all sent)
    python -m boxoffice.relay --topic booking # only rows for these topics
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from boxoffice.adapters.outbox import PostgresOutbox
from boxoffice.bootstrap import Container
from boxoffice.errors import BoxofficeError
from boxoffice.services.relay import DEFAULT_BATCH, BackgroundRelay, OutboxRelay

log = logging.getLogger("boxoffice.relay")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boxoffice.relay", description=__doc__)
    parser.add_argument("--once", action="store_true", help="drain once and exit")
    parser.add_argument(
        "--topic", action="append", dest="topics", help="only this topic (repeatable)"
    )
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="rows per pass")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    container = Container()
    try:
        settings = container.settings
    except BoxofficeError as exc:
        log.error("configuration: %s", exc.detail)
        return 2
    relay = OutboxRelay(PostgresOutbox(container.database, args.topics), container.event_publisher)
    try:
        if args.once:
            result = relay.drain(args.batch)
            backlog, oldest = relay.measure_backlog()
            log.info(
                "published %d, failed %d, left %d (oldest %.1f s)",
                result.published,
                result.failed,
                backlog,
                oldest,
            )
            return 0 if backlog == 0 else 1
        worker = BackgroundRelay(relay, settings.outbox_sweep_seconds, args.batch)

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping after the current pass", signum)
            worker.stop(timeout=0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("outbox relay: sweeping every %.1f s", settings.outbox_sweep_seconds)
        worker.run_forever()
        return 0
    finally:
        container.event_publisher.close()
        container.database.close()


if __name__ == "__main__":
    sys.exit(main())
