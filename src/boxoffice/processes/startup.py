"""How a long-running process starts and stops (the admission controller, the document worker,
the outbox relay): one logging set-up, the composition root loaded with exit code 2 on a
configuration error, and SIGTERM/SIGINT stopping its worker after the current pass while the
health/metrics server (`health`) answers.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import FrameType

from boxoffice.background import BackgroundWorker
from boxoffice.bootstrap import Container
from boxoffice.errors import BoxofficeError
from boxoffice.processes import health

EXIT_CONFIGURATION = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class ConfigurationExit(Exception):
    """The environment is incomplete or wrong: logged, and the process exits 2."""


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def default_port() -> int | None:
    """$PORT when set (a container's), else None."""
    raw = os.environ.get("PORT")
    return int(raw) if raw else None


def load(log: logging.Logger, *checks: Callable[[Container], object]) -> Container:
    """The composition root, with what the process needs read once (`checks`: settings, a
    policy, Kafka configured...). Raises ConfigurationExit (logged) on a configuration error."""
    container = Container()
    try:
        container.settings  # noqa: B018 - ConfigurationError when the environment is incomplete
        for check in checks:
            check(container)
    except BoxofficeError as exc:
        log.error("configuration: %s", exc.detail)
        raise ConfigurationExit(exc.detail) from exc
    return container


def run_until_signalled(
    worker: BackgroundWorker,
    log: logging.Logger,
    *,
    port: int | None,
    host: str = "0.0.0.0",  # noqa: S104 - a container's server
    healthy: Callable[[], bool] | None = None,
    unhealthy_status: str = "passes failing",
) -> int:
    """Run `worker` in this thread until SIGTERM/SIGINT (which stop it after its current pass),
    serving /healthz and /metrics on `port` meanwhile (none when None). Returns 0."""
    server = (
        health.serve(healthy or (lambda: worker.healthy), port, host, unhealthy_status)
        if port is not None
        else None
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current pass", signum)
        worker.stop(timeout=0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        worker.run_forever()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return 0
