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
`/readyz` and `/metrics` on `$PORT` (default 8080). In the cluster it is the chart's
`boxoffice-admission` Deployment; locally `stack/boxo up` starts it (`admission` service).

    python -m boxoffice.processes.admission                # run until SIGTERM/SIGINT
    python -m boxoffice.processes.admission --once         # one tick, print what it did, exit
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from boxoffice import metrics
from boxoffice.bootstrap import Container
from boxoffice.domain.waiting_room import LineState
from boxoffice.errors import BoxofficeError
from boxoffice.services import waiting_room
from boxoffice.services.ports import Tick

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
    def __init__(self, container: Container) -> None:
        self._c = container
        self._policy = container.admission_policy
        self._stop = threading.Event()
        self.last_ok = time.monotonic()

    @property
    def healthy(self) -> bool:
        limit = max(UNHEALTHY_AFTER_TICKS * self._policy.tick_seconds, 5.0)
        return time.monotonic() - self.last_ok < limit

    def tick(self) -> list[Tick]:
        started = time.perf_counter()
        try:
            ticks = waiting_room.tick(self._c.waiting_room, self._policy)
        except BoxofficeError as exc:  # the database is down or busy: the next tick catches up
            metrics.WAITING_ROOM_TICKS.labels("failed").inc()
            log.warning("tick failed: %s", exc.detail)
            return []
        except Exception:  # a bug: logged, and the controller keeps ticking (and says unhealthy)
            metrics.WAITING_ROOM_TICKS.labels("failed").inc()
            log.exception("tick failed")
            return []
        metrics.WAITING_ROOM_TICK_DURATION.observe(time.perf_counter() - started)
        metrics.WAITING_ROOM_TICKS.labels("ok").inc()
        self.last_ok = time.monotonic()
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

    def run(self) -> None:
        """Tick on a fixed cadence until stopped (a slow tick delays the next; the rate is kept
        by the database's clock, not by counting ticks)."""
        period = self._policy.tick_seconds
        due = time.monotonic()
        while not self._stop.is_set():
            self.tick()
            due = max(due + period, time.monotonic())
            self._stop.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()


def serve(controller: Controller, port: int, host: str) -> ThreadingHTTPServer:
    """/healthz, /readyz and /metrics in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, content_type = metrics.exposition()
                self._answer(200, body, content_type)
            elif path in ("/healthz", "/readyz", "/_/health", "/_/ready"):
                ok = controller.healthy
                doc = {"status": "ok" if ok else "ticks failing"}
                self._answer(200 if ok else 503, json.dumps(doc).encode(), "application/json")
            else:
                self._answer(404, b'{"status":"not found"}', "application/json")

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="admission-http", daemon=True).start()
    return server


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice.processes.admission", description=__doc__
    )
    parser.add_argument("--once", action="store_true", help="one tick, print it, exit")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's server
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    container = Container()
    try:
        policy = container.admission_policy
    except BoxofficeError as exc:
        log.error("configuration: %s", exc.detail)
        return 2
    controller = Controller(container)
    try:
        if args.once:
            for t in controller.tick():
                print(
                    f"{t.event_id} {t.state.value}: admitted {t.admitted}, expired {t.expired}, "
                    f"waiting {t.waiting}, rate {t.rate}"
                )
            return 0
        server = serve(controller, args.port, args.host)

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping after the current tick", signum)
            controller.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info(
            "admission controller: ticking every %.2f s (automatic: %s buyers/s), port %d",
            policy.tick_seconds,
            policy.auto_capacity,
            args.port,
        )
        controller.run()
        server.shutdown()
        return 0
    finally:
        container.database.close()


if __name__ == "__main__":
    sys.exit(main())
