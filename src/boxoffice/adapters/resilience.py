"""Circuit breakers around the request path's dependencies (database, JWKS).

`Breaker` puts the `circuitbreaker` package's state machine (consecutive failures open it for a
while, then one trial call decides) behind a lock, because that package's bookkeeping is not
thread-safe and its half-open state lets every caller through at once. Here, while the circuit
is open every call fails fast with `ServiceUnavailable` (503 + `Retry-After` = the seconds left
open), and when it half-opens exactly one trial call goes to the dependency; the others keep
failing fast until the trial has decided. So a dead dependency costs at most `failure_threshold`
bounded timeouts, and threads never pile up waiting on it.

Which exceptions count is the caller's decision (`is_failure`): an exception that does not count
(a constraint violation, a 4xx) means the dependency answered, so it closes the circuit like a
success. `errors.Overloaded` raised inside a call is neither: the process refused the call itself
before asking the dependency (its own requests hold every connection), so it changes nothing.
State is exported as `boxoffice_circuit_breaker_open{dependency=...}`, read at scrape time: 1
while a breaker of that dependency is open (a process has one per dependency; tests may build
more). See docs/adr/0006-resilience.md.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from circuitbreaker import STATE_HALF_OPEN, STATE_OPEN, CircuitBreaker

from boxoffice import errors, metrics

DEFAULT_FAILURE_THRESHOLD = 4
DEFAULT_RECOVERY_SECONDS = 5.0

FailurePredicate = Callable[[BaseException], bool]

# dependency -> its live breakers, whose state the gauge shows.
_breakers: dict[str, weakref.WeakSet[Breaker]] = {}
_gauge_lock = threading.Lock()


def _register(breaker: Breaker) -> None:
    dependency = breaker.dependency
    with _gauge_lock:
        if dependency not in _breakers:
            live: weakref.WeakSet[Breaker] = weakref.WeakSet()
            _breakers[dependency] = live

            def value() -> float:
                return 1.0 if any(b.is_open for b in list(live)) else 0.0

            metrics.BREAKER_STATE.labels(dependency).set_function(value)
        _breakers[dependency].add(breaker)


class Breaker:
    def __init__(
        self,
        dependency: str,
        is_failure: FailurePredicate,
        *,
        failure_threshold: int = DEFAULT_FAILURE_THRESHOLD,
        recovery_timeout: float = DEFAULT_RECOVERY_SECONDS,
    ) -> None:
        if failure_threshold < 1 or recovery_timeout <= 0:
            raise ValueError("failure_threshold must be >= 1 and recovery_timeout > 0")
        self.dependency = dependency
        self._cb = CircuitBreaker(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            expected_exception=lambda _type, exc: is_failure(exc),
            name=dependency,
        )
        self._lock = threading.Lock()
        self._trial_running = False
        _register(self)

    @property
    def state(self) -> str:
        """`closed`, `open` or `half_open` (open, but the next call may try)."""
        return str(self._cb.state)

    @property
    def is_open(self) -> bool:
        return bool(self.state == STATE_OPEN)

    @property
    def failure_count(self) -> int:
        return int(self._cb.failure_count)

    def _unavailable(self, retry_after: int) -> errors.ServiceUnavailable:
        return errors.ServiceUnavailable(
            f"{self.dependency} is unavailable (circuit open); try again later",
            retry_after=max(1, retry_after),
        )

    def _admit(self) -> bool:
        """Raise while open (or while another call is the half-open trial); True for a trial."""
        with self._lock:
            state = self._cb.state
            if state == STATE_OPEN:
                raise self._unavailable(int(self._cb.open_remaining))
            if state == STATE_HALF_OPEN:
                if self._trial_running:
                    raise self._unavailable(1)
                self._trial_running = True
                return True
            return False

    def _settle(self, trial: bool, exc: BaseException | None) -> None:
        with self._lock:
            if trial:
                self._trial_running = False
            if exc is None:
                self._cb.reset()
            elif isinstance(exc, errors.Overloaded):
                # Refused by this process before the dependency was asked (e.g. every database
                # connection busy with its own requests): no verdict either way.
                pass
            elif isinstance(exc, Exception):  # KeyboardInterrupt, GeneratorExit...: no verdict
                # Counts the failure (opening or re-opening the circuit at the threshold), or
                # closes the circuit when the exception says the dependency answered.
                self._cb.__exit__(type(exc), exc, None)

    @contextmanager
    def guard(self) -> Iterator[bool]:
        """Run the block as one call through the breaker (fails fast while open); the block is
        told whether it is the half-open trial, which should be quick to decide."""
        trial = self._admit()
        try:
            yield trial
        except BaseException as exc:
            self._settle(trial, exc)
            raise
        self._settle(trial, None)
