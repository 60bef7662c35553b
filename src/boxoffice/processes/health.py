"""The health and metrics server of a long-running process that is not a function (the admission
controller, the document worker, the outbox relay): `/healthz` (and its aliases `/readyz`,
`/_/health`, `/_/ready`) answers 200 `{"status": "ok"}` while the process is healthy and 503
otherwise; `/metrics` is prometheus_client's exposition of the process's registry. Served by
wsgiref's simple server in a daemon thread: nothing here parses HTTP by hand.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from boxoffice import metrics

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

log = logging.getLogger("boxoffice.health")

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/_/health", "/_/ready"})


def health_app(healthy: Callable[[], bool], unhealthy_status: str = "failing") -> Any:
    """The WSGI app: health from `healthy()`, metrics from the process's registry."""
    exposition = make_wsgi_app(metrics.REGISTRY)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return exposition(environ, start_response)  # type: ignore[no-any-return]
        if path in HEALTH_PATHS:
            ok = healthy()
            status, doc = ("200 OK", "ok") if ok else ("503 Service Unavailable", unhealthy_status)
            return _json(start_response, status, {"status": doc})
        return _json(start_response, "404 Not Found", {"status": "not found"})

    return app


def _json(start_response: StartResponse, status: str, doc: object) -> list[bytes]:
    body = json.dumps(doc).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
        return


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(
    healthy: Callable[[], bool],
    port: int,
    host: str = "0.0.0.0",  # noqa: S104 - a container's server
    unhealthy_status: str = "failing",
) -> WSGIServer:
    """Serve health and metrics on (host, port) in a daemon thread; `shutdown()` stops it.
    Port 0 picks a free one (`server.server_port`)."""
    server = make_server(
        host,
        port,
        health_app(healthy, unhealthy_status),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    return server
