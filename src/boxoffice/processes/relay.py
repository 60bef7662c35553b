"""Standalone outbox relay (sweeper) for operators: `python -m boxoffice.processes.relay`.

The functions that write outbox rows publish them themselves right after each commit (and sweep
in the background). This process is the safety net for when they are scaled to zero or down: it
publishes whatever is left, every `BOXOFFICE_OUTBOX_SWEEP_SECONDS`, until SIGTERM/SIGINT. It
reads the same environment as the functions. Several instances may run at once (rows are
claimed with SKIP LOCKED).

    python -m boxoffice.processes.relay                 # run until stopped
    python -m boxoffice.processes.relay --once          # drain once and exit (0: all sent)
    python -m boxoffice.processes.relay --topic booking # only rows for these topics
    python -m boxoffice.processes.relay --dead-letters  # list rows refused by Kafka for good
    python -m boxoffice.processes.relay --redrive ID    # put a dead letter back (repeatable)
    python -m boxoffice.processes.relay --redrive-all   # put every dead letter back

Publishing needs BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS (exit 2 without it); listing and re-driving
dead letters only need the database (the relays publish re-driven rows on their next sweep).
With `--port` (default: `$PORT` when set) the sweeper serves /healthz and /metrics (`health`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Sequence

from boxoffice.adapters.outbox import PostgresOutbox
from boxoffice.background import BackgroundWorker
from boxoffice.bootstrap import Container
from boxoffice.processes import startup
from boxoffice.services.relay import DEFAULT_BATCH, MIN_PASS_INTERVAL, OutboxRelay, RelayPass

log = logging.getLogger("boxoffice.relay")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice.processes.relay", description=__doc__
    )
    parser.add_argument("--once", action="store_true", help="drain once and exit")
    parser.add_argument(
        "--topic", action="append", dest="topics", help="only this topic (repeatable)"
    )
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="rows per pass")
    parser.add_argument("--dead-letters", action="store_true", help="list dead-lettered rows")
    parser.add_argument(
        "--redrive", action="append", type=uuid.UUID, metavar="ID", help="re-drive this row"
    )
    parser.add_argument("--redrive-all", action="store_true", help="re-drive every dead letter")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's server
    parser.add_argument("--port", type=int, default=startup.default_port(), help="health/metrics")
    args = parser.parse_args(argv)
    startup.setup_logging()
    dead_letters = bool(args.dead_letters or args.redrive or args.redrive_all)
    try:
        # Listing and re-driving dead letters need only the database; publishing needs Kafka.
        container = startup.load(log, *([] if dead_letters else [_kafka_configured]))
    except startup.ConfigurationExit:
        return startup.EXIT_CONFIGURATION
    store = PostgresOutbox(container.database, args.topics)
    if dead_letters:
        try:
            return _dead_letters(store, args.redrive, args.redrive_all)
        finally:
            container.database.close()
    relay = OutboxRelay(store, container.event_publisher)
    try:
        if args.once:
            result = relay.drain(args.batch)
            backlog = relay.measure_backlog()
            log.info(
                "published %d, failed %d, left %d (oldest %.1f s); dead-lettered %d, "
                "dead letters in all %d",
                result.published,
                result.failed,
                backlog.pending,
                backlog.oldest_age,
                result.dead_lettered,
                backlog.dead_lettered,
            )
            return 0 if backlog.pending == 0 and backlog.dead_lettered == 0 else 1
        sweep = container.settings.outbox_sweep_seconds
        worker = BackgroundWorker(
            "boxoffice-outbox-relay",
            RelayPass(relay, args.batch, measure_seconds=sweep),
            sweep,
            min_pass_interval=MIN_PASS_INTERVAL,
        )
        log.info("outbox relay: sweeping every %.1f s", sweep)
        return startup.run_until_signalled(worker, log, port=args.port, host=args.host)
    finally:
        container.event_publisher.close()
        container.database.close()


def _kafka_configured(container: Container) -> None:
    container.check_event_publishing()


def _dead_letters(store: PostgresOutbox, ids: list[uuid.UUID] | None, every: bool) -> int:
    """List dead letters, or re-drive some (or all); 1 when a given id was not dead-lettered."""
    if ids or every:
        redriven = store.redrive(None if every else ids)
        for row_id in redriven:
            print(f"re-driven {row_id}")
        missing = [i for i in ids or [] if i not in redriven]
        for row_id in missing:
            print(f"not dead-lettered (or not of these topics): {row_id}", file=sys.stderr)
        print(
            f"{len(redriven)} row(s) back in the outbox: the relays publish them on their next pass"
        )
        return 1 if missing else 0
    rows = store.dead_letters()
    for row in rows:
        print(
            f"{row.id}  {row.event_type}  topic={row.topic}  key={row.record_key}  "
            f"attempts={row.attempts}  {row.error}"
        )
    print(f"{len(rows)} dead-lettered row(s)" + (" (first 100)" if len(rows) == 100 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
