"""The server's request queue (boxoffice.web.queueing) in front of a stand-in WSGI app whose
requests take a fixed time: bursts wait their turn, a standing queue turns newcomers away."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from boxoffice.web.queueing import STANDING_QUEUE_TARGET, RequestQueue


def slow_app(seconds: float) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        time.sleep(seconds)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    return app


def call(queue: RequestQueue, path: str = "/bookings", **headers: str) -> str:
    status: list[str] = []
    environ = {"PATH_INFO": path, **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}
    queue(environ, lambda s, _h: status.append(s))
    return status[0]


def queue_of(seconds: float, slots: int = 2, deadline: float = 1.0) -> RequestQueue:
    return RequestQueue(
        slow_app(seconds),
        "test",
        slots=slots,
        max_queue=64,
        deadline=deadline,
        retry_after=1,
        problem_base="https://boxoffice.example/problems/",
    )


def concurrently(n: int, work: Callable[[], str]) -> list[str]:
    answers: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(n)

    def run() -> None:
        start.wait()
        answer = work()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_a_burst_the_slots_serve_within_the_deadline_is_served_in_full() -> None:
    queue = queue_of(0.01, slots=2)  # 40 requests of 10 ms on 2 slots: about 0.2 s
    answers = concurrently(40, lambda: call(queue))
    assert answers == ["200 OK"] * 40
    assert not queue.standing


def test_a_queue_that_stands_for_a_deadline_turns_newcomers_away_at_once() -> None:
    queue = queue_of(0.05, slots=1, deadline=0.3)
    stop = threading.Event()
    served: list[str] = []

    def flood() -> None:  # far more than one slot serves, until stopped
        while not stop.is_set():
            served.append(call(queue))

    threads = [threading.Thread(target=flood) for _ in range(12)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.2)  # four deadlines of sustained overload
        assert queue.standing
        began = time.monotonic()
        answer = call(queue)
        took = time.monotonic() - began
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    # Without the standing-queue rule it would wait up to the 0.3 s deadline for the slot.
    assert answer.startswith("503"), answer
    assert took < STANDING_QUEUE_TARGET + 0.02, took
    assert served.count("200 OK") >= 15  # and the slot kept serving meanwhile


def test_probes_and_metrics_never_queue() -> None:
    queue = queue_of(0.5, slots=1)
    busy = threading.Thread(target=lambda: call(queue))
    busy.start()
    time.sleep(0.05)  # the only slot is held
    began = time.monotonic()
    assert call(queue, "/healthz") == "200 OK"  # the stand-in app answers every path
    assert time.monotonic() - began < 0.6  # its own 0.5 s, not a wait behind the held slot
    busy.join(5)
