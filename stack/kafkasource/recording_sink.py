"""A recording HTTP sink for trying the dispatcher (and for its tests).

    .venv/bin/python stack/kafkasource/recording_sink.py [PORT]   # prints each request

`RecordingSink` listens on 127.0.0.1 (a free port unless given), records every request (arrival
time, method, path, headers, body) and answers from a script: a list of statuses or `Answer`s
used in order, then `default`; or a `respond(request)` callable that may return an `Answer`
(None: fall back to the script). An `Answer` can carry headers, a body and a delay (to make the
client time out).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


@dataclass
class Request:
    at: float  # time.monotonic() on arrival
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int = 0  # what the sink answered

    @property
    def ce(self) -> dict[str, str]:
        """The ce-* headers, prefix removed."""
        return {k[3:]: v for k, v in self.headers.items() if k.startswith("ce-")}


class RecordingSink:
    def __init__(
        self,
        script: list[int | Answer] | None = None,
        *,
        respond: Callable[[Request], Answer | None] | None = None,
        default: int | Answer = 200,
        port: int = 0,
    ) -> None:
        self.script: list[int | Answer] = list(script or [])
        self.respond = respond
        self.default = default
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                sink._handle(self)

            def do_PUT(self) -> None:
                sink._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        request = Request(
            time.monotonic(),
            h.command,
            h.path,
            {k.lower(): v for k, v in h.headers.items()},
            body,
        )
        answer: Answer | None = self.respond(request) if self.respond else None
        with self._lock:
            if answer is None:
                step = self.script.pop(0) if self.script else self.default
                answer = step if isinstance(step, Answer) else Answer(step)
            request.status = answer.status
            self.requests.append(request)
            self._changed.notify_all()
        if answer.delay:
            time.sleep(answer.delay)
        try:
            h.send_response(answer.status)
            for name, value in answer.headers.items():
                h.send_header(name, value)
            h.send_header("Content-Length", str(len(answer.body)))
            h.end_headers()
            h.wfile.write(answer.body)
        except OSError:  # the client gave up (timeout): nothing to answer to
            pass

    def wait_for(self, predicate: Callable[[list[Request]], bool], timeout: float = 20) -> bool:
        """Wait until predicate(requests so far) holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.2))
            return True

    def delivered(self) -> list[Request]:
        """The requests answered with a success status, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.status < 300]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def main(argv: list[str]) -> int:
    sink = RecordingSink(port=int(argv[0]) if argv else 0)

    def show(request: Request) -> Answer | None:
        print(request.method, request.path, flush=True)
        for name, value in sorted(request.headers.items()):
            print(f"  {name}: {value}", flush=True)
        print(f"  body: {request.body[:500]!r}", flush=True)
        return None  # answer from the script (default 200)

    sink.respond = show
    print(f"recording sink on {sink.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
