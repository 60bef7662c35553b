"""One background worker: a loop of passes in a daemon thread, or in the calling thread.

Every background loop of Boxoffice is a `BackgroundWorker` around a pass of a service (a plain
function: the service owns the work, not the thread): the outbox relay inside create_booking and
`python -m boxoffice.processes.relay`, the ticket document worker inside consume_order and
`python -m boxoffice.processes.documents`, the admission controller's tick.

One behaviour for all of them:

- **Start.** Nothing runs at construction. `kick()` (called after a commit that left work for the
  worker) starts the thread on first use and wakes it; `run_forever()` runs the loop in the
  calling thread instead (a standalone process).
- **Passes.** A pass runs at once when kicked, else every `interval` seconds (measured from the
  end of a pass; from its start with `fixed_rate`, as a ticker). It says what it did
  (`services.ports.Progress`): nothing (IDLE), some work (WORKED), or some work with more due
  now (MORE: the next pass follows at once). A pass that found work is followed no sooner than
  `min_pass_interval` after it began, so kicks that arrive meanwhile are gathered into one pass
  (the first kick after a quiet spell runs at once). A pass that raises is logged and counted as
  failed; the loop goes on (a database outage must not end it).
- **Stop.** `stop(timeout)` lets the current pass finish, then the loop ends; it waits up to
  `timeout` seconds for the thread (0: do not wait, as a signal handler must not). It never
  interrupts a pass. A later `kick()` or `start()` starts a new loop.
- **Health.** `healthy` is False once no pass has succeeded for `unhealthy_after` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from boxoffice.errors import BoxofficeError
from boxoffice.services.ports import Progress

log = logging.getLogger("boxoffice.background")

Pass = Callable[[], Progress]  # one pass of a service (e.g. services.relay.RelayPass)


def in_turn(*passes: Pass) -> Pass:
    """One pass that runs `passes` one after the other (e.g. the document worker's: documents,
    then ticket emails): MORE when any found more due, else WORKED when any worked. A pass that
    raises ends it (the worker logs it; the next pass starts again from the first)."""

    def run() -> Progress:
        outcomes = [p() for p in passes]
        if Progress.MORE in outcomes:
            return Progress.MORE
        return Progress.WORKED if Progress.WORKED in outcomes else Progress.IDLE

    return run


class BackgroundWorker:
    def __init__(
        self,
        name: str,
        run_pass: Pass,
        interval: float,
        *,
        min_pass_interval: float = 0.0,
        fixed_rate: bool = False,
        unhealthy_after: float | None = None,
    ) -> None:
        self.name = name
        self._pass = run_pass
        self._interval = interval
        self._min_pass_interval = min_pass_interval
        self._fixed_rate = fixed_rate
        self._unhealthy_after = (
            unhealthy_after if unhealthy_after is not None else max(10 * interval, 30.0)
        )
        self._wake = threading.Event()
        self._lock = threading.RLock()  # stop() may run in a signal handler
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the stop signal of the current loop
        self.last_ok = time.monotonic()  # when the last pass that did not raise ended

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def healthy(self) -> bool:
        return time.monotonic() - self.last_ok < self._unhealthy_after

    def kick(self) -> None:
        """Start the thread unless it runs, and wake it for a pass. Cheap; never raises (it is
        called after a commit, and a notification must never fail the request)."""
        try:
            if not self._start():  # a new loop runs its first pass at once anyway
                self._wake.set()
        except Exception:
            log.exception("%s: could not wake the worker thread", self.name)

    def start(self) -> None:
        """Start the loop in a daemon thread unless it runs (again after a `stop()`)."""
        self._start()

    def _start(self) -> bool:
        """True when it started a new loop."""
        if self.running:
            return False
        with self._lock:
            if self.running:
                return False
            stop = threading.Event()
            thread = threading.Thread(target=self._run, args=(stop,), name=self.name, daemon=True)
            self._stop, self._thread = stop, thread
            thread.start()
            return True

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop after its current pass; wait up to `timeout` seconds for its thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread() and timeout > 0:
            thread.join(timeout)

    def run_forever(self) -> None:
        """The loop in the calling thread until `stop()` (a standalone process's main thread)."""
        with self._lock:
            self._stop = stop = threading.Event()
        self._run(stop)

    def _run(self, stop: threading.Event) -> None:
        last_busy = float("-inf")  # when the last pass that found work began
        while not stop.is_set():
            self._wake.clear()
            pause = last_busy + self._min_pass_interval - time.monotonic()
            if pause > 0 and stop.wait(pause):
                break  # kicks meanwhile are gathered into the next pass
            began = time.monotonic()
            outcome = self._run_pass()
            if outcome is not Progress.IDLE:
                last_busy = began
            if outcome is Progress.MORE:
                continue
            wait = self._interval
            if self._fixed_rate:
                wait = max(0.0, began + self._interval - time.monotonic())
            self._wake.wait(wait)

    def _run_pass(self) -> Progress:
        try:
            outcome = self._pass()
        except BoxofficeError as exc:  # a dependency is down or busy: the next pass catches up
            log.warning("%s: pass failed (will retry): %s", self.name, exc.detail)
            return Progress.IDLE
        except Exception:  # a bug or an outage: logged, and the loop goes on (unhealthy)
            log.exception("%s: pass failed (will retry)", self.name)
            return Progress.IDLE
        self.last_ok = time.monotonic()
        return outcome
