"""The database breaker counts dependency failures only (docs/adr/0006-resilience.md, amendment
of issue 19): a burst of concurrent requests larger than the connection pool is contention
inside this process, not a database that is down, and must never open the breaker.

Two levels: create_booking's real server (its own process, `boxoffice.processes.server.command`) on
a database of its own with a pool of 8 and a burst of 64 bookings; and `Database` itself, driven
from 64 threads against the dev PostgreSQL with a pool of 8, each holding its connection a while.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import requests
from support_databases import fresh_database
from support_kafka import own_topic
from support_servers import running_function

from boxoffice import errors
from boxoffice.adapters import postgres
from boxoffice.adapters.postgres import Database
from boxoffice.adapters.resilience import Breaker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALICE_SUBJECT = "a11ce000-0000-4000-8000-000000000001"
VENUE = uuid.UUID("7e0e0000-0000-4000-8000-0000000000db")
BURST = 64
POOL = 8


@contextmanager
def create_booking_server(tmp: Path, db_url: str, **env: str) -> Iterator[str]:
    """create_booking's own server process on `db_url`; yields its base URL once it is ready.
    Its events go to a topic of the test's own (a publishing function is ready only with Kafka
    configured), never to the stack's."""
    with own_topic("it-breaker") as kafka:
        environment = {"BOXOFFICE_DATABASE_URL": db_url, **kafka, **env}
        with running_function("create_booking", tmp, environment) as fn:
            yield fn.url


def seed(db_url: str, capacity: int) -> uuid.UUID:
    """A venue, alice's profile and one event of `capacity` seats in a single inventory shard."""
    event = uuid.uuid4()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO venue (id, name, address, city, capacity)
               VALUES (%s, 'Burst Hall', '1 Road', 'Testville', 100000)""",
            (VENUE,),
        )
        conn.execute(
            """INSERT INTO customer (subject, name, email, address_line1, postal_code, city,
                                     country)
               VALUES (%s, 'Alice', 'alice@example.test', '1 St', 'AB1', 'Town', 'GB')""",
            (ALICE_SUBJECT,),
        )
    with psycopg.connect(db_url) as conn:  # the event and its inventory in one transaction
        conn.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity)
               VALUES (%s, %s, 'Burst night', now() + interval '30 days', 10, 'GBP', %s)""",
            (event, VENUE, capacity),
        )
        conn.execute(
            "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, 0, %s)",
            (event, capacity),
        )
    return event


def problem_type(response: requests.Response) -> str:
    try:
        return str(response.json().get("type", "")).rsplit("/", 1)[-1]
    except ValueError:
        return ""


@pytest.mark.parametrize("threads", [POOL, BURST], ids=["slots-as-the-pool", "slots-for-all"])
def test_a_burst_larger_than_the_pool_never_opens_the_breaker(
    tmp_path: Path, access_token: Callable[[str], str], threads: int
) -> None:
    """64 concurrent bookings on a server with a pool of 8, its slots (THREADS) as many as the
    pool (as the stack runs it: the rest wait in the server's queue) or enough to run them all at
    once (they wait for connections): every one is booked (201) or refused for its own reason
    (409); none is answered `service-unavailable`, and the server is ready afterwards. One
    customer and one event: the bookings queue on its rows in the database, holding their
    connections meanwhile."""
    token = access_token("alice")
    env = {
        "WORKERS": "1",
        "THREADS": str(threads),
        "BOXOFFICE_DB_POOL_MAX": str(POOL),
        "BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT": "100000",
        # What is tested is the breaker, not the queue's deadline (tests/integration/
        # test_load_shedding.py): a slow CI machine must not turn waits into refusals.
        "BOXOFFICE_REQUEST_DEADLINE_SECONDS": "30",
    }
    with fresh_database("bx_breaker_test") as db_url:
        event = seed(db_url, capacity=BURST * 2 + 1)
        with create_booking_server(tmp_path, db_url, **env) as url:
            warm = requests.post(  # a process that has served a booking: keys, pool, imports
                f"{url}/bookings",
                json={"eventId": str(event), "ticketCount": 1},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "warm-up"},
                timeout=60,
            )
            assert warm.status_code == 201, warm.text
            start = threading.Barrier(BURST)

            def book(i: int) -> requests.Response:
                start.wait()
                return requests.post(
                    f"{url}/bookings",
                    json={"eventId": str(event), "ticketCount": 1 + i % 3},
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"b-{i}"},
                    timeout=60,
                )

            with ThreadPoolExecutor(BURST) as pool:
                answers = list(pool.map(book, range(BURST)))
            ready = requests.get(f"{url}/readyz", timeout=10)

    outcomes = Counter((a.status_code, problem_type(a)) for a in answers)
    print(f"\nburst of {BURST} on a pool of {POOL}: {dict(outcomes)}")
    assert [a for a in answers if problem_type(a) == "service-unavailable"] == [], outcomes
    assert {status for status, _ in outcomes} <= {201, 409}, outcomes
    assert ready.status_code == 200, ready.text


def test_a_burst_that_outwaits_the_pool_is_refused_as_overloaded_and_leaves_the_breaker_closed(
    tmp_path: Path, access_token: Callable[[str], str]
) -> None:
    """The same burst on a database where each booking takes 0.4 s (a trigger on this test's own
    database sleeps in it): 64 bookings on 8 connections need ~3.2 s, longer than the 1 s pool
    timeout, so the last callers wait for connections that only the server's own requests hold.
    They may be refused `overloaded`, but never `service-unavailable`, and the breaker stays
    closed: the next booking after the burst is booked at once."""
    token = access_token("alice")
    env = {
        "WORKERS": "1",
        "THREADS": str(BURST),
        "BOXOFFICE_DB_POOL_MAX": str(POOL),
        "BOXOFFICE_DB_TIMEOUT_SECONDS": "1",
        "BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT": "100000",
    }
    with fresh_database("bx_breaker_test") as db_url:
        event = seed(db_url, capacity=BURST * 4)
        with create_booking_server(tmp_path, db_url, **env) as url:
            with psycopg.connect(db_url, autocommit=True) as conn:
                # Before the booking takes any row lock: the bookings do not queue on each other.
                conn.execute(
                    """CREATE FUNCTION slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN PERFORM pg_sleep(0.4); RETURN NEW; END $$"""
                )
                conn.execute(
                    """CREATE TRIGGER slow_claim BEFORE INSERT ON idempotency_record
                       FOR EACH ROW EXECUTE FUNCTION slow_claim()"""
                )
            start = threading.Barrier(BURST)

            def book(key: str) -> requests.Response:
                return requests.post(
                    f"{url}/bookings",
                    json={"eventId": str(event), "ticketCount": 1},
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                    timeout=60,
                )

            def burst(i: int) -> requests.Response:
                start.wait()
                return book(f"b-{i}")

            with ThreadPoolExecutor(BURST) as pool:
                answers = list(pool.map(burst, range(BURST)))
            after = book("after")

    outcomes = Counter((a.status_code, problem_type(a)) for a in answers)
    print(f"\nburst of {BURST} on a pool of {POOL}: {dict(outcomes)}")
    assert [a for a in answers if problem_type(a) == "service-unavailable"] == [], outcomes
    assert set(outcomes) <= {(201, ""), (409, ""), (503, "overloaded")}, outcomes
    assert outcomes[(201, "")] >= POOL, outcomes
    assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 503)
    assert after.status_code == 201, after.text


def test_database_driven_from_64_threads_with_a_pool_of_8_never_opens_its_breaker(
    stack_env: Callable[[str], str],
) -> None:
    """`Database` itself, on the dev PostgreSQL: 64 threads, a pool of 8, each call holding its
    connection 0.25 s, so the last callers wait longer than the 1 s timeout for a connection that
    only this process's own calls hold. Those waits may be refused (503 `overloaded`), but none
    counts against the breaker: it stays closed, with no failure counted, and no call is ever
    refused 'circuit open'."""
    breaker = Breaker(
        postgres.DEPENDENCY, postgres.connection_failure, failure_threshold=4, recovery_timeout=5
    )
    db = Database(stack_env("BOXOFFICE_DATABASE_URL"), 1, POOL, timeout=1.0, breaker=breaker)
    states: set[str] = set()
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            states.add(breaker.state)
            time.sleep(0.005)

    start = threading.Barrier(BURST)

    def call(_: int) -> str:
        start.wait()
        try:
            with db.connection() as conn:
                conn.execute("SELECT pg_sleep(0.25)")
        except errors.BoxofficeError as exc:
            return f"{exc.slug}: {exc.detail}"
        states.add(breaker.state)
        return "ok"

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(BURST) as pool:
            outcomes = Counter(pool.map(call, range(BURST)))
        after = Counter(_ping(db) for _ in range(3))
    finally:
        watching.set()
        watcher.join(5)
        db.close()

    print(f"\n{BURST} threads on a pool of {POOL}: {dict(outcomes)}")
    assert not [o for o in outcomes if "circuit open" in o], outcomes
    assert not [o for o in outcomes if o.startswith("service-unavailable")], outcomes
    assert all(o == "ok" or o.startswith("overloaded: ") for o in outcomes), outcomes
    assert outcomes["ok"] >= POOL, outcomes
    assert states == {"closed"}, states
    assert breaker.failure_count == 0
    assert after == Counter({"ok": 3}), after


def _ping(db: Database) -> str:
    try:
        db.ping()
    except errors.BoxofficeError as exc:
        return f"{exc.slug}: {exc.detail}"
    return "ok"
