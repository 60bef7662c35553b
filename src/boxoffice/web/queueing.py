"""Bursts served, overload refused fast: a bounded queue with a deadline in front of the app.

A WSGI middleware around the functions-framework app (docs/adr/0011-overload.md). Each server
worker process runs at most `slots` requests at once (THREADS: the database pool holds as many
connections, so a running request never waits for one held by its neighbours). A request that
finds every slot taken waits in a FIFO queue, but only as long as its deadline allows, counted
from its *arrival*: the front door's `X-Request-Start: t=<epoch seconds>` when present (nginx
stamps it when it reads the request), else the moment the server handed the request to Python.
It is refused at once, with 503 problem+json `overloaded` + `Retry-After` and before any
application code (so before any database work), when

- the queue already holds `max_queue` requests (`queue_full`), or
- the expected wait (requests ahead / slots x the mean time a request holds a slot, measured)
  would take it past its deadline (`expected_wait`);

and after waiting, when its deadline passed before a slot freed up (`deadline`). A refused
request wrote nothing: its client retries with the same Idempotency-Key.

Probes and /metrics never queue: a busy function is neither dead nor unready. The server is
given more threads than slots + queue, so a thread is always free to answer them and to refuse
(boxoffice.processes.server, which also shortens the interpreter's switch interval for them).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from boxoffice import metrics
from boxoffice.errors import Overloaded
from boxoffice.web.problems import PROBLEM_JSON, problem_body

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

UNQUEUED_PATHS = frozenset({"/healthz", "/_/health", "/readyz", "/_/ready", "/metrics"})
REQUEST_START_HEADER = "HTTP_X_REQUEST_START"
# Weight of the newest request in the mean time a request holds a slot (an exponentially
# weighted moving average: about the last 20 requests).
SERVICE_TIME_WEIGHT = 0.05
# A standing queue (CoDel's test, with the deadline as its interval: even the shortest wait of
# the requests that started within a deadline stayed above a target) means sustained overload,
# not a burst: while it stands, a newcomer may wait only the target, so the queue drains, the
# requests admitted start soon, and the excess is refused at once instead of holding the threads
# that must refuse it. A burst that the slots serve within the deadline keeps the whole deadline:
# the interval in which it arrives has requests that started at once.
STANDING_QUEUE_TARGET = 0.05


def arrival_age(environ: dict[str, Any], now: float) -> float:
    """Seconds since the request arrived at the front door (`X-Request-Start: t=<seconds>`, as
    nginx's `$msec`), 0 without the header; a stamp from the future (clock skew) counts as 0."""
    stamp = environ.get(REQUEST_START_HEADER)
    if not stamp:
        return 0.0
    try:
        started = float(stamp.removeprefix("t="))
    except ValueError:
        return 0.0
    return max(0.0, now - started)


class RequestQueue:
    """The slots of one worker process and the requests waiting for them."""

    def __init__(
        self,
        app: WsgiApp,
        function: str,
        *,
        slots: int,
        max_queue: int,
        deadline: float,
        retry_after: int,
        problem_base: str,
    ) -> None:
        if slots < 1 or max_queue < 0 or deadline <= 0:
            raise ValueError("slots >= 1, max_queue >= 0 and deadline > 0 are required")
        self.app = app
        self.function = function
        self.slots = slots
        self.max_queue = max_queue
        self.deadline = deadline
        self._free = threading.Semaphore(slots)
        self._lock = threading.Lock()
        self.waiting = 0
        self.service_time = 0.0  # mean seconds a request holds a slot (0 until measured)
        self.standing = False  # the queue stood through the last interval: sustained overload
        self._interval_ends = 0.0
        self._interval_min_wait = 0.0
        body = json.dumps(
            problem_body(Overloaded("this function is at capacity; retry shortly"), problem_base),
            separators=(",", ":"),
        ).encode()
        self._refusal = [body]
        self._refusal_headers = [
            ("Content-Type", PROBLEM_JSON),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Retry-After", str(retry_after)),
        ]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in UNQUEUED_PATHS:
            return self.app(environ, start_response)
        # Nobody jumps the queue: with requests waiting, a newcomer queues behind them.
        if self.waiting or not self._free.acquire(blocking=False):
            entered = time.time()
            age = arrival_age(environ, entered)
            refusal = self._wait_for_slot(self.deadline - age)
            waited = age + time.time() - entered
            if refusal is None:
                self._started_after(waited)
            outcome = "started" if refusal is None else "refused"
            metrics.REQUEST_QUEUE_WAIT.labels(self.function, outcome).observe(waited)
            if refusal is not None:
                metrics.REQUESTS_SHED.labels(self.function, refusal).inc()
                start_response("503 Service Unavailable", self._refusal_headers)
                return self._refusal
        else:
            self._interval_min_wait = 0.0  # started at once: nothing stands in this interval
        started = time.monotonic()
        try:
            return _materialised(self.app(environ, start_response))
        finally:
            held = time.monotonic() - started
            self._free.release()
            with self._lock:
                self.service_time += SERVICE_TIME_WEIGHT * (held - self.service_time)

    def _started_after(self, waited: float) -> None:
        """A queued request started after `waited` seconds: the interval's shortest wait."""
        with self._lock:
            self._interval_min_wait = min(self._interval_min_wait, waited)

    def _roll_interval(self) -> None:
        """At the end of an interval (under the lock): did the queue stand through it?"""
        now = time.monotonic()
        if now >= self._interval_ends:
            self.standing = self._interval_min_wait > STANDING_QUEUE_TARGET
            self._interval_min_wait = float("inf") if self.waiting else 0.0
            self._interval_ends = now + self.deadline

    def _wait_for_slot(self, remaining: float) -> str | None:
        """Queue for a slot, at most `remaining` seconds (the target only, while the queue
        stands); None once one is held, else the reason of the refusal."""
        with self._lock:
            self._roll_interval()
            if self.standing:
                remaining = min(remaining, STANDING_QUEUE_TARGET)
            if self.waiting >= self.max_queue:
                return "queue_full"
            expected = (self.waiting + 1) * self.service_time / self.slots
            if expected >= remaining:
                return "expected_wait"
            self.waiting += 1
        gauge = metrics.REQUEST_QUEUE_WAITING.labels(self.function)
        gauge.inc()
        try:
            got = self._free.acquire(timeout=max(remaining, 0.0))
        finally:
            with self._lock:
                self.waiting -= 1
            gauge.dec()
        return None if got else "deadline"


def _materialised(body: Iterable[bytes]) -> Iterable[bytes]:
    """The app's response as one list of bytes: our responses are computed before they are
    returned, and a list lets the server write it in one call instead of iterating from Rust."""
    if isinstance(body, list):
        return body
    try:
        return [b"".join(body)]
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
