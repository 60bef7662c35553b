"""The one background worker (boxoffice.background) every loop runs on: the outbox relay, the
ticket document worker and the admission controller. One stop behaviour: the current pass
finishes, then the loop ends."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

import pytest

from boxoffice.background import BackgroundWorker
from boxoffice.errors import ConfigurationError
from boxoffice.services.ports import Progress


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


class Passes:
    """A pass that counts itself, and can be held inside (to stop a worker mid-pass)."""

    def __init__(self, more: Callable[[int], bool] = lambda _n: False) -> None:
        """`more(n)`: whether the n-th pass says more is due now."""
        self.began = 0
        self.ended = 0
        self.starts: list[float] = []
        self.inside = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._more = more

    def __call__(self) -> Progress:
        self.began += 1
        self.starts.append(time.monotonic())
        self.inside.set()
        assert self.release.wait(5)
        self.ended += 1
        return Progress.MORE if self._more(self.began) else Progress.WORKED


def test_nothing_runs_until_the_first_kick_which_runs_a_pass_at_once() -> None:
    passes = Passes()
    worker = BackgroundWorker("t", passes, interval=60)
    time.sleep(0.05)
    assert not worker.running
    assert passes.began == 0
    try:
        worker.kick()
        wait_until(lambda: passes.ended == 1)
        assert worker.running
        worker.kick()  # wakes the sleeping thread long before the 60 s interval
        wait_until(lambda: passes.ended == 2)
    finally:
        worker.stop()
    assert not worker.running


def test_stop_lets_the_current_pass_finish_then_ends_the_loop() -> None:
    passes = Passes()
    passes.release.clear()
    worker = BackgroundWorker("t", passes, interval=0.01)
    worker.kick()
    assert passes.inside.wait(3)
    worker.stop(timeout=0)  # as a signal handler does: returns at once
    assert passes.ended == 0  # the pass was not interrupted...
    passes.release.set()
    wait_until(lambda: passes.ended == 1)  # ...it finished
    time.sleep(0.1)  # ten intervals: no further pass
    assert passes.began == 1


def test_stop_waits_up_to_its_timeout_for_the_current_pass() -> None:
    passes = Passes()
    passes.release.clear()
    worker = BackgroundWorker("t", passes, interval=60)
    worker.kick()
    assert passes.inside.wait(3)
    threading.Timer(0.2, passes.release.set).start()
    began = time.monotonic()
    worker.stop(timeout=3)
    assert 0.15 < time.monotonic() - began < 2.5
    assert passes.ended == 1


def test_a_stopped_worker_starts_again_on_the_next_kick() -> None:
    passes = Passes()
    worker = BackgroundWorker("t", passes, interval=60)
    worker.stop()  # before any start: harmless
    worker.kick()
    wait_until(lambda: passes.ended == 1)
    worker.stop()
    assert not worker.running
    try:
        worker.kick()
        wait_until(lambda: passes.ended == 2)
        assert worker.running
    finally:
        worker.stop()


def test_run_forever_runs_in_the_calling_thread_until_stopped_after_its_pass() -> None:
    passes = Passes()
    passes.release.clear()
    worker = BackgroundWorker("t", passes, interval=0.01)
    done = threading.Event()

    def standalone() -> None:
        worker.run_forever()
        done.set()

    threading.Thread(target=standalone, daemon=True).start()
    assert passes.inside.wait(3)
    worker.stop(timeout=0)
    assert not done.wait(0.1)  # still inside its pass
    passes.release.set()
    assert done.wait(3)
    assert passes.began == passes.ended == 1


def test_a_pass_that_says_more_is_due_is_followed_at_once_else_the_loop_waits() -> None:
    passes = Passes(more=lambda n: n < 5)  # four full batches, then a short one
    worker = BackgroundWorker("t", passes, interval=60)
    try:
        worker.kick()
        wait_until(lambda: passes.ended == 5)
        time.sleep(0.1)
        assert passes.began == 5  # then it waits for a kick or the 60 s interval
    finally:
        worker.stop()


def test_without_kicks_a_pass_runs_every_interval() -> None:
    passes = Passes()
    worker = BackgroundWorker("t", passes, interval=0.05)
    try:
        worker.kick()
        wait_until(lambda: passes.ended >= 4)
    finally:
        worker.stop()


def test_kicks_meanwhile_are_gathered_into_passes_at_least_min_pass_interval_apart() -> None:
    passes = Passes()
    worker = BackgroundWorker("t", passes, interval=60, min_pass_interval=0.05)
    try:
        began = time.monotonic()
        while time.monotonic() - began < 0.3:  # a kick every millisecond
            worker.kick()
            time.sleep(0.001)
        wait_until(lambda: passes.began == passes.ended)
    finally:
        worker.stop()
    gaps = [b - a for a, b in itertools.pairwise(passes.starts)]
    assert gaps
    assert min(gaps) >= 0.045, gaps
    assert passes.began <= 0.3 / 0.05 + 2


def test_a_kick_after_a_pass_that_found_nothing_runs_at_once() -> None:
    starts: list[float] = []

    def idle() -> Progress:
        starts.append(time.monotonic())
        return Progress.IDLE

    worker = BackgroundWorker("t", idle, interval=60, min_pass_interval=1.0)
    try:
        worker.kick()
        wait_until(lambda: len(starts) == 1)
        kicked = time.monotonic()
        worker.kick()
        wait_until(lambda: len(starts) == 2)
        assert starts[1] - kicked < 0.5  # not held back for min_pass_interval
    finally:
        worker.stop()


def test_fixed_rate_starts_passes_an_interval_apart_whatever_they_take() -> None:
    starts: list[float] = []

    def slow_pass() -> Progress:
        starts.append(time.monotonic())
        time.sleep(0.03)
        return Progress.WORKED

    worker = BackgroundWorker("t", slow_pass, interval=0.1, fixed_rate=True)
    try:
        worker.kick()
        wait_until(lambda: len(starts) >= 5)
    finally:
        worker.stop()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # From start to start: 0.1 s, not 0.1 s after each 0.03 s pass ends.
    assert all(0.08 < g < 0.125 for g in gaps[:3]), gaps


def test_a_failing_pass_is_logged_the_loop_goes_on_and_health_follows_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = {"n": 0}
    failing = threading.Event()
    failing.set()

    def flaky() -> Progress:
        calls["n"] += 1
        if failing.is_set():
            if calls["n"] % 2:
                raise ConfigurationError("database down")
            raise RuntimeError("a bug")
        return Progress.IDLE

    worker = BackgroundWorker("t", flaky, interval=0.02, unhealthy_after=0.2)
    with caplog.at_level(logging.WARNING, logger="boxoffice.background"):
        try:
            worker.kick()
            wait_until(lambda: calls["n"] >= 3)
            assert worker.healthy  # not yet past unhealthy_after
            wait_until(lambda: not worker.healthy)
            failing.clear()
            wait_until(lambda: worker.healthy)
            assert worker.running
        finally:
            worker.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any("database down" in m for m in messages)
    assert any(r.exc_info for r in caplog.records)  # a bug is logged with its traceback


def test_kick_never_raises() -> None:
    class Broken(BackgroundWorker):
        def _start(self) -> bool:
            raise RuntimeError("cannot start threads")

    Broken("t", lambda: Progress.IDLE, interval=1).kick()
