"""The admission controller: `python -m boxoffice.processes.admission`
(docs/adr/0014-waiting-room.md).

Every `BOXOFFICE_ADMISSION_TICK_SECONDS` (1 s) it advances the serving counter of every waiting
room that is open or opening, in one round trip (`advance_queues`, V8): it draws the pre-queue at
the on-sale time, admits buyers at each line's rate (or its share of the automatic rate), never
more than the seats left allow, counts the admissions that expired unused, and stops a line for
good once its event is sold out. The counter's clock lives in the database and each line's row is
locked during its advance, so two controllers at once (replicas, a slow tick) admit nobody twice
and keep the rate: they are safe, only redundant.

It serves `/healthz` (200 while ticks succeed; 503 after ten tick intervals without a good one),
`/readyz` and `/metrics` on `$PORT` (default 8080; the shared `health` server), and stops after
the current tick on SIGTERM/SIGINT (`boxoffice.background`). In the cluster it is the chart's
`boxoffice-admission` Deployment; locally `stack/boxo up` starts it (`admission` service).

    python -m boxoffice.processes.admission                # run until SIGTERM/SIGINT
    python -m boxoffice.processes.admission --once         # one tick, print what it did, exit
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from boxoffice import metrics
from boxoffice.background import BackgroundWorker
from boxoffice.bootstrap import Container
from boxoffice.domain.waiting_room import LineState
from boxoffice.errors import BoxofficeError
from boxoffice.processes import startup
from boxoffice.services import waiting_room
from boxoffice.services.ports import Progress, Tick

log = logging.getLogger("boxoffice.admission")

UNHEALTHY_AFTER_TICKS = 10


def record(ticks: list[Tick]) -> None:
    """The tick's figures as metrics (each admission is made by exactly one tick)."""
    live = [t for t in ticks if t.state in (LineState.OPEN, LineState.SCHEDULED)]
    metrics.WAITING_ROOM_WAITING.set(sum(t.waiting for t in live))
    metrics.WAITING_ROOM_OPEN.set(len(live))
    metrics.WAITING_ROOM_RATE.set(
        float(sum(t.rate or 0 for t in live if t.state is LineState.OPEN))
    )
    for t in ticks:
        if t.admitted:
            metrics.WAITING_ROOM_ADMITTED.inc(t.admitted)
        if t.expired:
            metrics.WAITING_ROOM_EXPIRED.inc(t.expired)
        for waited in t.waits:
            metrics.WAITING_ROOM_WAIT.observe(waited)


class Controller:
    """The tick (`tick()`: one advance of every line, recorded as metrics and logged), run every
    `tick_seconds` on a fixed cadence by `worker` (a slow tick delays the next; the rate is kept
    by the database's clock, not by counting ticks). Unhealthy after ten tick intervals (at
    least 5 s) without a good tick."""

    def __init__(self, container: Container) -> None:
        self._c = container
        self._policy = container.admission_policy
        self.worker = BackgroundWorker(
            "admission-controller",
            self._pass,
            self._policy.tick_seconds,
            fixed_rate=True,
            unhealthy_after=max(UNHEALTHY_AFTER_TICKS * self._policy.tick_seconds, 5.0),
        )

    @property
    def healthy(self) -> bool:
        return self.worker.healthy

    def tick(self) -> list[Tick]:
        """One tick; raises when it failed (counted: the database is down or busy, or a bug)."""
        started = time.perf_counter()
        try:
            ticks = waiting_room.tick(self._c.waiting_room, self._policy)
        except Exception:
            metrics.WAITING_ROOM_TICKS.labels("failed").inc()
            raise
        metrics.WAITING_ROOM_TICK_DURATION.observe(time.perf_counter() - started)
        metrics.WAITING_ROOM_TICKS.labels("ok").inc()
        record(ticks)
        for t in ticks:
            if t.admitted or t.expired:
                log.info(
                    "event %s: admitted %d (rate %s/s), expired %d, waiting %d",
                    t.event_id,
                    t.admitted,
                    t.rate,
                    t.expired,
                    t.waiting,
                )
        return ticks

    def _pass(self) -> Progress:
        self.tick()
        return Progress.WORKED  # the next tick waits for its time


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice.processes.admission", description=__doc__
    )
    parser.add_argument("--once", action="store_true", help="one tick, print it, exit")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's server
    parser.add_argument("--port", type=int, default=startup.default_port() or 8080)
    args = parser.parse_args(argv)
    startup.setup_logging()
    try:
        container = startup.load(log, lambda c: c.admission_policy)
    except startup.ConfigurationExit:
        return startup.EXIT_CONFIGURATION
    controller = Controller(container)
    policy = container.admission_policy
    try:
        if args.once:
            try:
                ticks = controller.tick()
            except BoxofficeError as exc:
                log.error("tick failed: %s", exc.detail)
                return 1
            for t in ticks:
                print(
                    f"{t.event_id} {t.state.value}: admitted {t.admitted}, expired {t.expired}, "
                    f"waiting {t.waiting}, rate {t.rate}"
                )
            return 0
        log.info(
            "admission controller: ticking every %.2f s (automatic: %s buyers/s), port %d",
            policy.tick_seconds,
            policy.auto_capacity,
            args.port,
        )
        return startup.run_until_signalled(
            controller.worker,
            log,
            port=args.port,
            host=args.host,
            healthy=lambda: controller.healthy,
            unhealthy_status="ticks failing",
        )
    finally:
        container.database.close()


if __name__ == "__main__":
    sys.exit(main())
