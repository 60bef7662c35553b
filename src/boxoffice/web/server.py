"""The functions' HTTP server: functions-framework's app under gunicorn, with bounded admission.

    python -m boxoffice.web.server --source functions/<name>/main.py [--target handler]

The entrypoint of every function image and of the local stack (docs/adr/0011-overload.md).
It runs the same Flask app that `functions-framework --source ...` would (built by
`functions_framework.create_app`, once, in the gunicorn arbiter before the workers fork), on
`$PORT`, with `$WORKERS` processes of `$THREADS` threads (gunicorn's gthread worker), and adds
what functions-framework's CLI lacks for a production on-sale:

- **A bound on work in flight.** Each worker admits at most `BOXOFFICE_MAX_INFLIGHT` requests at
  once (running or queued for a thread; default 2 x THREADS). The next one is answered at once,
  from the accepting thread, `503` problem+json `overloaded` with `Retry-After`, without reading
  further or touching the database: a fast "try again" instead of an unbounded queue. Probes and
  /metrics are always admitted (a busy function is not a dead one).
- **A deadline.** A request that waited longer than `BOXOFFICE_REQUEST_DEADLINE_SECONDS` for a
  thread, or whose client has gone meanwhile, is refused the same way before the app sees it.
- **problem+json from the server itself.** gunicorn's own refusals (malformed request line,
  request line over 8190 bytes -> 414, a header over 8190 bytes or more than 100 headers -> 431
  `header-too-large`, ...) are RFC 9457 like every other error, not HTML.
- **Metrics across workers.** With several worker processes, prometheus_client runs in its
  multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, a fresh directory per server), so /metrics shows
  the whole server whichever worker answers it.

A refused request wrote nothing: its client retries with the same Idempotency-Key.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from boxoffice.config import ServerSettings

PROBE_PATHS = frozenset({"/healthz", "/_/health", "/readyz", "/_/ready", "/metrics"})
LIVENESS_PATHS = ("/healthz", "/_/health")
_PROBE_PREFIXES = tuple(f"GET {p}".encode() for p in PROBE_PATHS)
_LIVENESS_PREFIXES = tuple(f"GET {p}".encode() for p in LIVENESS_PATHS)
_ALIVE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n"
    b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    b'{"status":"ok"}'
)

# gunicorn's limits (RFC 9110 leaves them to the server): the request line and each header field
# at most 8190 bytes (gunicorn's maximum), at most 100 header fields. The front door refuses the
# same sizes (stack/frontdoor/nginx.conf.tmpl), so both answer 414 / 431 alike.
LIMIT_REQUEST_LINE = 8190
LIMIT_REQUEST_FIELD_SIZE = 8190
LIMIT_REQUEST_FIELDS = 100

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_current = threading.local()  # .conn: the connection this worker thread is serving


def problem_bytes(
    status: int, slug: str, title: str, detail: str, base: str, headers: dict[str, str]
) -> bytes:
    """A complete HTTP/1.1 problem+json response that closes the connection."""
    body = json.dumps(
        {"type": f"{base}{slug}", "title": title, "status": status, "detail": detail},
        separators=(",", ":"),
    ).encode()
    lines = [
        f"HTTP/1.1 {status} {title}",
        "Content-Type: application/problem+json",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def client_gone(sock: socket.socket | None) -> bool:
    """The client closed (or reset) its connection: nobody is waiting for this response."""
    if sock is None:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False  # nothing to read: the client is waiting
    except OSError:
        return True  # reset


class Admission:
    """WSGI middleware: refuse a request that waited past the deadline, or whose client has gone,
    before the app does any work (503 `overloaded`)."""

    def __init__(self, app: WsgiApp, function: str, settings: ServerSettings) -> None:
        self.app = app
        self.function = function
        self.settings = settings

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        conn = getattr(_current, "conn", None)
        if conn is not None and environ.get("PATH_INFO") not in PROBE_PATHS:
            waited = time.monotonic() - conn.enqueued_at
            reason = None
            if waited > self.settings.request_deadline:
                reason = "deadline"
            elif client_gone(environ.get("gunicorn.socket")):
                reason = "client_gone"
            if reason is not None:
                from boxoffice.web import metrics  # noqa: PLC0415 - after the multiproc setup

                metrics.REQUESTS_SHED.labels(self.function, reason).inc()
                detail = f"waited {waited:.3f} s for a worker; retry shortly"
                body = problem_bytes(
                    503, "overloaded", "Service overloaded", detail, self.settings.problem_base, {}
                ).split(b"\r\n\r\n", 1)[1]
                start_response(
                    "503 Service Unavailable",
                    [
                        ("Content-Type", "application/problem+json"),
                        ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store"),
                        ("Retry-After", str(self.settings.overload_retry_after)),
                        ("Connection", "close"),
                    ],
                )
                return [body]
        return self.app(environ, start_response)


def _worker_class() -> type[Any]:
    """The gunicorn worker (built on first use: importing gunicorn is for the server only)."""
    from gunicorn import util  # noqa: PLC0415
    from gunicorn.workers.gthread import DEFAULT_WORKER_DATA_TIMEOUT, ThreadWorker  # noqa: PLC0415

    class CapturedSocket:
        """Stands in for the client socket while gunicorn writes its HTML error page, so that
        gunicorn's own classification of the error (status, reason) can be reused."""

        def __init__(self) -> None:
            self.data = b""

        def gettimeout(self) -> float:
            return 0.0

        def setblocking(self, _flag: bool) -> None:
            return None

        def sendall(self, data: bytes) -> None:
            self.data += data

    class AdmissionWorker(ThreadWorker):  # type: ignore[misc]
        """gunicorn's gthread worker with bounded admission and problem+json errors."""

        settings: ServerSettings
        function: str

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.inflight = 0  # admitted and not finished (main thread only: no lock)
            self.max_inflight = self.settings.max_inflight or 2 * self.cfg.threads
            self.overloaded = problem_bytes(
                503,
                "overloaded",
                "Service overloaded",
                "this function is at its limit of requests in flight; retry shortly",
                self.settings.problem_base,
                {"Retry-After": str(self.settings.overload_retry_after)},
            )

        # -- admission (main thread) ----------------------------------------------------------

        def enqueue_req(self, conn: Any) -> None:
            conn.enqueued_at = time.monotonic()
            if self.inflight >= self.max_inflight:
                if not conn.initialized and not conn.data_ready and not self._readable(conn):
                    self._park(conn)  # decide once its request is here, not before
                    return
                head = self._peek(conn.sock)
                if head.startswith(_LIVENESS_PREFIXES):
                    # Alive, whatever the threads are busy with: answered by this thread.
                    self._answer(conn, _ALIVE)
                    return
                if not head.startswith(_PROBE_PREFIXES):
                    from boxoffice.web import metrics  # noqa: PLC0415 - after multiproc setup

                    metrics.REQUESTS_SHED.labels(self.function, "inflight_limit").inc()
                    self._answer(conn, self.overloaded)
                    return
            self.inflight += 1
            super().enqueue_req(conn)

        def finish_request(self, conn: Any, fs: Any) -> None:
            self.inflight -= 1
            super().finish_request(conn, fs)

        @staticmethod
        def _peek(sock: socket.socket) -> bytes:
            try:
                return sock.recv(16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except OSError:
                return b""

        @staticmethod
        def _readable(conn: Any) -> bool:
            with selectors.DefaultSelector() as sel:
                sel.register(conn.sock, selectors.EVENT_READ)
                return bool(sel.select(0))

        def _park(self, conn: Any) -> None:
            conn.sock.setblocking(False)
            conn.timeout = time.monotonic() + self.cfg.keepalive
            self.pending_conns.append(conn)
            self.poller.register(
                conn.sock,
                selectors.EVENT_READ,
                lambda _sock: self.on_pending_socket_readable(conn, conn.sock),
            )

        def _answer(self, conn: Any, response: bytes) -> None:
            """Answer from the accepting thread and close, without parsing the request."""
            sock = conn.sock
            try:
                sock.setblocking(False)
                try:  # read what the client sent, so that closing does not reset the answer
                    while sock.recv(65536):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
                sock.send(response)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                self.nr_conns -= 1
                util.close(sock)

        # -- serving (worker threads) ---------------------------------------------------------

        def handle(self, conn: Any) -> Any:
            # A new connection whose request has not arrived yet: its wait starts when it does
            # (gunicorn defers the connection to the poller if that takes too long).
            fresh = not conn.initialized and not conn.data_ready
            if (
                fresh
                and not self._readable(conn)
                and conn.wait_for_data(DEFAULT_WORKER_DATA_TIMEOUT)
            ):
                conn.enqueued_at = time.monotonic()
            _current.conn = conn
            try:
                return super().handle(conn)
            finally:
                _current.conn = None

        def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
            captured = CapturedSocket()
            super().handle_error(req, captured, addr, exc)  # logs, and classifies the error
            status_line = captured.data.split(b"\r\n", 1)[0].decode("latin-1")
            try:
                status = int(status_line.split(" ", 2)[1])
            except (IndexError, ValueError):
                status = 500
            from boxoffice import errors  # noqa: PLC0415

            cls = errors.for_server_status(status)
            detail = str(exc) if status < 500 else cls.title
            response = problem_bytes(
                status, cls.slug, cls.title, detail, self.settings.problem_base, {}
            )
            try:
                util.write_nonblock(client, response)
            except Exception:  # noqa: BLE001 - the client may be gone; nothing to answer
                self.log.debug("Failed to send error message.")

    return AdmissionWorker


def command(python: str, port: int, host: str = "127.0.0.1", source: str = "main.py") -> list[str]:
    """The command line that starts a function's server, run in its directory functions/<name>/
    (as stack/services/functions.sh and the images do; tests and benchmarks use this)."""
    return [
        python,
        "-m",
        "boxoffice.web.server",
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


def gunicorn_options(function: str, settings: ServerSettings) -> dict[str, Any]:
    """The gunicorn settings of every function server."""
    worker = _worker_class()
    worker.settings = settings
    worker.function = function

    def child_exit(_server: Any, worker_process: Any) -> None:
        from prometheus_client import multiprocess  # noqa: PLC0415

        multiprocess.mark_process_dead(worker_process.pid)  # type: ignore[no-untyped-call]

    def worker_exit(_server: Any, _worker: Any) -> None:
        from boxoffice.bootstrap import shutdown  # noqa: PLC0415

        shutdown()

    return {
        "workers": settings.workers,
        "threads": settings.threads,
        "worker_class": worker,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        "limit_request_fields": LIMIT_REQUEST_FIELDS,
        "graceful_timeout": settings.graceful_timeout,
        "keepalive": 75,  # longer than the front door's and Knative's idle timeouts
        "timeout": 0,
        "child_exit": child_exit,
        "worker_exit": worker_exit,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m boxoffice.web.server", description=__doc__)
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

    import functions_framework  # noqa: PLC0415 - after the environment is set
    from functions_framework._http.gunicorn import GunicornApplication  # noqa: PLC0415

    app = functions_framework.create_app(target=args.target, source=str(args.source))  # type: ignore[no-untyped-call]
    app.wsgi_app = Admission(app.wsgi_app, function, settings)
    options = gunicorn_options(function, settings)
    server = GunicornApplication(app, args.host, args.port, False, **options)  # type: ignore[no-untyped-call]
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
