"""Circuit breakers (adapters/resilience.py) and what counts against them, with fakes: a fake
clock for the `circuitbreaker` package, fake dependencies that fail on demand. The database and
JWKS adapters are built with breakers here but never reach a server."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import circuitbreaker
import psycopg
import psycopg.errors
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from psycopg_pool import PoolTimeout

from boxoffice import errors, metrics
from boxoffice.adapters import keycloak, postgres
from boxoffice.adapters.keycloak import JwksCache
from boxoffice.adapters.postgres import Database
from boxoffice.adapters.resilience import Breaker


class Boom(Exception):
    """A failure that counts."""


class Refused(Exception):
    """An answer from a healthy dependency (a 4xx, a constraint violation): does not count."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(circuitbreaker, "monotonic", fake)
    return fake


def counts_boom(exc: BaseException) -> bool:
    return isinstance(exc, Boom)


def fail(breaker: Breaker, exc: Exception) -> None:
    with pytest.raises(type(exc)), breaker.guard():
        raise exc


def succeed(breaker: Breaker) -> None:
    with breaker.guard():
        pass


def gauge(dependency: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "boxoffice_circuit_breaker_open", {"dependency": dependency}
    )


@pytest.fixture
def breaker(clock: FakeClock) -> Breaker:
    return Breaker("fake", counts_boom, failure_threshold=4, recovery_timeout=5.0)


def test_breaker_opens_after_the_threshold_of_consecutive_failures(breaker: Breaker) -> None:
    for _ in range(3):
        fail(breaker, Boom())
    assert breaker.state == "closed"
    fail(breaker, Boom())
    assert breaker.state == "open"


def test_a_call_the_process_refused_itself_as_overloaded_is_no_verdict(
    breaker: Breaker, clock: FakeClock
) -> None:
    """`errors.Overloaded` inside a call (its own requests hold every connection) neither counts
    as a failure nor closes the circuit as an answer would; a half-open trial refused that way
    leaves the next call to be the trial."""
    for _ in range(3):
        fail(breaker, Boom())
    fail(breaker, errors.Overloaded("all connections busy"))
    assert breaker.failure_count == 3
    fail(breaker, Boom())
    assert breaker.state == "open"
    clock.now += 5.0
    fail(breaker, errors.Overloaded("all connections busy"))  # the trial, refused
    assert breaker.state == "half_open"
    with breaker.guard() as trial:
        assert trial
    assert breaker.state == "closed"


def test_open_breaker_fails_fast_with_503_and_retry_after_without_calling_the_dependency(
    breaker: Breaker, clock: FakeClock
) -> None:
    for _ in range(4):
        fail(breaker, Boom())
    clock.now += 1.5
    calls = 0
    with pytest.raises(errors.ServiceUnavailable) as caught, breaker.guard():
        calls += 1
    assert calls == 0
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "4"  # 3.5 s left, rounded up


def test_an_answer_that_does_not_count_resets_the_consecutive_count(breaker: Breaker) -> None:
    for _ in range(3):
        fail(breaker, Boom())
    fail(breaker, Refused())
    for _ in range(3):
        fail(breaker, Boom())
    assert breaker.state == "closed"
    assert breaker.failure_count == 3


def test_half_open_breaker_admits_exactly_one_trial_call(
    breaker: Breaker, clock: FakeClock
) -> None:
    for _ in range(4):
        fail(breaker, Boom())
    clock.now += 5.0
    assert breaker.state == "half_open"
    # The trial runs; another caller meanwhile fails fast.
    with breaker.guard(), pytest.raises(errors.ServiceUnavailable), breaker.guard():
        pytest.fail("a second call went through while the trial was running")
    assert breaker.state == "closed"


def test_failed_trial_reopens_the_breaker_for_a_full_period(
    breaker: Breaker, clock: FakeClock
) -> None:
    for _ in range(4):
        fail(breaker, Boom())
    clock.now += 5.0
    fail(breaker, Boom())
    assert breaker.state == "open"
    clock.now += 4.9
    assert breaker.state == "open"
    clock.now += 0.1
    assert breaker.state == "half_open"


def test_concurrent_callers_of_an_open_breaker_never_wait(breaker: Breaker) -> None:
    for _ in range(4):
        fail(breaker, Boom())
    outcomes: list[str] = []
    started = threading.Barrier(8)

    def call() -> None:
        started.wait(5)
        try:
            with breaker.guard():
                outcomes.append("called")
        except errors.ServiceUnavailable:
            outcomes.append("refused")

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert outcomes == ["refused"] * 8


def test_gauge_shows_the_breaker_open_until_it_half_opens_and_closes(clock: FakeClock) -> None:
    name = f"fake-{uuid.uuid4().hex[:8]}"
    breaker = Breaker(name, counts_boom, failure_threshold=4, recovery_timeout=5.0)
    succeed(breaker)
    assert gauge(name) == 0.0
    for _ in range(4):
        fail(breaker, Boom())
    assert gauge(name) == 1.0
    clock.now += 5.0
    assert gauge(name) == 0.0  # half-open: the next call may try
    succeed(breaker)
    assert gauge(name) == 0.0


def test_breaker_rejects_a_threshold_below_one() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        Breaker("fake", counts_boom, failure_threshold=0)


# -- the database: what counts --------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        PoolTimeout("no connection within 3 s"),
        psycopg.OperationalError("connection refused"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    ],
    ids=["pool-timeout", "connection-refused", "server-shutdown"],
)
def test_connection_level_database_errors_count_against_the_breaker(exc: Exception) -> None:
    assert postgres.connection_failure(exc)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.errors.UniqueViolation("duplicate key"),
        psycopg.errors.CheckViolation("sold <= capacity"),
        psycopg.errors.QueryCanceled("statement timeout"),
        psycopg.errors.LockNotAvailable("lock timeout"),
        psycopg.errors.SerializationFailure("could not serialize"),
        errors.SoldOut("not enough tickets"),
    ],
    ids=["unique", "check", "statement-timeout", "lock-timeout", "serialization", "4xx"],
)
def test_statement_level_errors_and_refusals_do_not_count(exc: Exception) -> None:
    assert not postgres.connection_failure(exc)


def test_database_with_an_open_breaker_fails_fast_without_opening_a_pool(clock: FakeClock) -> None:
    breaker = Breaker(postgres.DEPENDENCY, postgres.connection_failure, failure_threshold=1)
    fail(breaker, PoolTimeout("down"))
    db = Database("postgresql://127.0.0.1:1/none", timeout=30.0, breaker=breaker)
    with pytest.raises(errors.ServiceUnavailable) as caught, db.connection():
        pytest.fail("got a connection")
    assert caught.value.headers["Retry-After"] == "5"
    assert db._pool is None  # nothing was attempted


def test_the_guard_tells_the_block_whether_it_is_the_half_open_trial(
    breaker: Breaker, clock: FakeClock
) -> None:
    with breaker.guard() as trial:
        assert trial is False
    for _ in range(4):
        fail(breaker, Boom())
    clock.now += 5.0
    with breaker.guard() as trial:
        assert trial is True


def test_the_databases_trial_call_gives_up_on_a_dead_server_in_half_a_second(
    clock: FakeClock,
) -> None:
    """Port 1 refuses: the fresh pool's first attempt fails at once, and the trial does not wait
    out the pool's full timeout (30 s here) for its next attempt."""
    breaker = Breaker(postgres.DEPENDENCY, postgres.connection_failure, failure_threshold=1)
    fail(breaker, PoolTimeout("down"))
    clock.now += 5.0
    db = Database("postgresql://127.0.0.1:1/none", timeout=30.0, breaker=breaker)
    started = time.monotonic()
    with pytest.raises(errors.ServiceUnavailable), db.connection():
        pytest.fail("got a connection")
    assert time.monotonic() - started < postgres.TRIAL_WAIT_SECONDS + 0.5
    assert breaker.state == "open"  # re-opened by the failed trial


def test_after_a_connection_failure_calls_wait_briefly_for_a_connection(clock: FakeClock) -> None:
    """While connection-level failures are being counted, a call does not wait out the pool's
    full timeout (30 s here): it fails fast, so the breaker opens soon."""
    breaker = Breaker(postgres.DEPENDENCY, postgres.connection_failure, failure_threshold=4)
    fail(breaker, PoolTimeout("the database is not answering"))
    assert breaker.state == "closed"
    db = Database("postgresql://127.0.0.1:1/none", timeout=30.0, breaker=breaker)
    started = time.monotonic()
    with pytest.raises(errors.ServiceUnavailable), db.connection():
        pytest.fail("got a connection")
    assert time.monotonic() - started < postgres.TRIAL_WAIT_SECONDS + 0.5
    assert breaker.failure_count == 2


# -- the JWKS fetch ---------------------------------------------------------------------------

URL = "http://idp.invalid/certs"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FlakyJwks:
    def __init__(self) -> None:
        self.failing = False
        self.fetches = 0
        public = RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True)
        self.document = {"keys": [{"kid": "k1", "kty": "RSA", "use": "sig", **public}]}

    def __call__(self, url: str, timeout: float) -> dict[str, Any]:
        self.fetches += 1
        if self.failing:
            raise OSError("connection refused")
        return self.document


@pytest.fixture
def idp() -> FlakyJwks:
    return FlakyJwks()


@pytest.fixture
def jwks_breaker(clock: FakeClock) -> Breaker:
    return Breaker(keycloak.DEPENDENCY, keycloak.fetch_failure, failure_threshold=2)


def test_open_jwks_breaker_keeps_serving_cached_keys_without_fetching(
    idp: FlakyJwks, jwks_breaker: Breaker
) -> None:
    cache_clock = FakeClock()  # the cache's refresh interval; the breaker's clock stands still
    cache = JwksCache(URL, min_refresh=30.0, fetch=idp, clock=cache_clock, breaker=jwks_breaker)
    assert cache.key("k1") is not None
    idp.failing = True
    for _ in range(2):  # unknown kids force refreshes, which fail and open the breaker
        cache_clock.now += 30.0
        with pytest.raises(errors.InvalidToken):
            cache.key("rotated")
    assert jwks_breaker.state == "open"
    fetches = idp.fetches
    cache_clock.now += 30.0
    with pytest.raises(errors.InvalidToken):
        cache.key("rotated")
    assert idp.fetches == fetches  # failing fast: no fetch
    assert cache.key("k1") is not None  # the cached key still verifies tokens


def test_open_jwks_breaker_with_no_cached_keys_gives_503_with_retry_after(
    idp: FlakyJwks, jwks_breaker: Breaker, clock: FakeClock
) -> None:
    idp.failing = True
    cache_clock = FakeClock()
    cache = JwksCache(URL, fetch=idp, clock=cache_clock, breaker=jwks_breaker)
    for _ in range(2):
        with pytest.raises(errors.ServiceUnavailable):
            cache.key("k1")
        cache_clock.now += 1.0
        clock.now += 1.0
    fetches = idp.fetches
    with pytest.raises(errors.ServiceUnavailable) as caught:
        cache.key("k1")
    assert idp.fetches == fetches
    assert caught.value.headers["Retry-After"] == "4"
