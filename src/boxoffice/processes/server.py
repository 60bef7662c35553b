"""The functions' HTTP server: functions-framework's app on granian, behind a request queue.

    python -m boxoffice.processes.server --source functions/<name>/main.py [--target handler]

The entrypoint of every function image and of the local stack (docs/adr/0011-overload.md). It
serves the same Flask app that `functions-framework --source ... --target ...` would (built by
`functions_framework.create_app`, once, before the workers fork) on `$PORT`, with granian's WSGI
interface: HTTP/1.1 and HTTP/2 are parsed in Rust, `$WORKERS` processes each run the app on
Python threads. It adds what an on-sale needs and the framework's CLI lacks:

- **A bounded queue with a deadline** in each worker (`boxoffice.web.queueing`): at most
  `$THREADS` requests run at once, a burst waits as long as its deadline allows, and overload is
  refused within microseconds with 503 problem+json `overloaded` + `Retry-After`, before any
  application code. granian gets more threads than slots + queue, so a thread is always free to
  refuse and to answer the probes.
- **Graceful SIGTERM**: granian stops accepting, lets every request in flight finish (up to
  `BOXOFFICE_GRACEFUL_TIMEOUT_SECONDS`), then each worker stops what the app started (the outbox
  relay, the pool: `bootstrap.shutdown`) before it exits.
- **Metrics across workers**: with several worker processes prometheus_client runs in its
  multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, a fresh directory per server), so /metrics shows
  the whole server whichever worker answers it.

What the server refuses itself (a malformed request line or header, more than 100 header fields,
a request head over 40 KiB) it answers with the bare status (400, 431) and closes the connection;
the front door answers the same requests with problem+json before they reach a function
(tests/e2e/test_front_door.py), and every answer of the app is problem+json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from multiprocessing import util as mp_util
from pathlib import Path
from typing import Any

from boxoffice.config import ServerSettings

# Threads granian keeps beyond slots + queue: free to answer probes and refusals at once.
SPARE_THREADS = 4
# How long a thread may hold the interpreter lock while another waits for it (CPython's default:
# 5 ms). A refusal or a probe is a few microseconds of Python, but it waits for the lock behind
# the running requests, each holding it up to this long: at 5 ms, under a 5x overload, refusals
# queued in front of Python for seconds (docs/benchmarks.md, overload).
SWITCH_INTERVAL_S = 0.001
# The most a request head (request line and header fields) may take; hyper answers 431 past it.
# Above the front door's own bounds (8 KiB a line, 32 KiB in all: stack/frontdoor/nginx.conf.tmpl),
# so whatever the front door lets through reaches the function.
HTTP1_BUFFER_BYTES = 40 * 1024
# A client that has not sent its request head within this is disconnected (the front door's
# client_header_timeout).
HEADER_READ_TIMEOUT_MS = 10_000
# granian's logging with the app's own loggers (root, INFO) beside its own, and a time on each line.
LOG_FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
LOGGING: dict[str, Any] = {
    "formatters": {
        "generic": {"()": "logging.Formatter", "fmt": LOG_FORMAT},
        "access": {"()": "logging.Formatter", "fmt": "%(message)s"},
    },
    "root": {"handlers": ["console"], "level": "INFO"},
}


def command(python: str, port: int, host: str = "127.0.0.1", source: str = "main.py") -> list[str]:
    """The command line that starts a function's server, run in its directory functions/<name>/
    (as stack/services/functions.sh and the images do; tests and benchmarks use this)."""
    return [
        python,
        "-m",
        "boxoffice.processes.server",
        "--source",
        source,
        "--host",
        host,
        "--port",
        str(port),
    ]


def function_name(source: Path) -> str:
    """functions/<name>/main.py -> <name>."""
    return source.resolve().parent.name


def _metrics_dir(function: str) -> str:
    """A fresh directory for prometheus_client's multiprocess files of this server."""
    base = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if base:
        Path(base).mkdir(parents=True, exist_ok=True)
        for stale in Path(base).glob("*.db"):
            stale.unlink()
        return base
    return tempfile.mkdtemp(prefix=f"boxoffice-metrics-{function}-")


def _forget_dead_workers() -> None:
    """Live gauges of worker processes that are gone (a crashed worker granian respawned) would
    otherwise still count: prometheus_client reads every file in the directory."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    from prometheus_client import multiprocess  # noqa: PLC0415 - multiprocess mode only

    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass


def build_app(source: Path, target: str, settings: ServerSettings) -> Any:
    """The function's WSGI app as functions-framework builds it, behind the request queue."""
    import functions_framework  # noqa: PLC0415 - after the metrics environment is set

    from boxoffice.web.queueing import RequestQueue  # noqa: PLC0415 - imports metrics

    app = functions_framework.create_app(target=target, source=str(source))  # type: ignore[no-untyped-call]
    app.wsgi_app = RequestQueue(
        app.wsgi_app,
        function_name(source),
        slots=settings.threads,
        max_queue=settings.max_queue,
        deadline=settings.request_deadline,
        retry_after=settings.overload_retry_after,
        problem_base=settings.problem_base,
    )
    return app


def _worker_app(app: Any) -> Any:
    """Run in each worker process as it starts: the app, and its clean-up at the worker's exit
    (multiprocessing runs its finalizers when a worker process ends, after granian has drained
    the requests in flight)."""
    from boxoffice.bootstrap import shutdown  # noqa: PLC0415

    _forget_dead_workers()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    mp_util.Finalize(None, shutdown, exitpriority=10)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m boxoffice.processes.server", description=__doc__
    )
    parser.add_argument("--source", required=True, type=Path, help="functions/<name>/main.py")
    parser.add_argument("--target", default="handler", help="the function in that file")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's server
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    args = parser.parse_args(argv)

    settings = ServerSettings.from_env()
    function = function_name(args.source)
    if settings.workers > 1 or "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        # Before anything imports prometheus_client: it picks its value store at import.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir(function)

    from granian import Granian  # noqa: PLC0415
    from granian.constants import HTTPModes, Interfaces  # noqa: PLC0415
    from granian.http import HTTP1Settings  # noqa: PLC0415

    app = build_app(args.source, args.target, settings)
    threads = settings.threads + settings.max_queue + SPARE_THREADS
    server = Granian(
        f"{function}:app",  # a label: the app is handed over by `target_loader` below
        address=args.host,
        port=args.port,
        interface=Interfaces.WSGI,
        http=HTTPModes.http1,  # what Knative's queue-proxy and the front door speak to a pod
        workers=settings.workers,
        blocking_threads=threads,
        # Connections each worker serves at once: every thread can have its request's.
        backpressure=max(threads * 4, 256),
        http1_settings=HTTP1Settings(
            header_read_timeout=HEADER_READ_TIMEOUT_MS, max_buffer_size=HTTP1_BUFFER_BYTES
        ),
        workers_kill_timeout=settings.graceful_timeout,
        respawn_failed_workers=True,
        websockets=False,
        log_access=False,
        log_dictconfig=LOGGING,
    )
    server.serve(target_loader=lambda: _worker_app(app), wrap_loader=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
