"""No overselling, exactly-once bookings and cancellations under real concurrency.

First the harness proves it can see a race: a naive read-then-write seller with many threads
oversells a scratch table. Then hundreds of concurrent HTTP requests go to a real create_booking
process (functions-framework, as stack/services/functions.sh runs it) with real Keycloak tokens,
and the database is checked afterwards.

Isolation: this module creates its own throw-away database (the `boxoffice` role has CREATEDB),
applies db/migrations to it, and starts its own create_booking process on a free port against
it, with a per-customer limit high enough for three demo customers to buy out an event. Nothing
here touches the shared database, and the process's Kafka address is a dead port, so none of
these bookings reach the real `booking` topic. All is dropped at the end.
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from psycopg import sql
from support_databases import fresh_database

from boxoffice.domain.catalogue import split_capacity
from boxoffice.processes import server as function_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USERS = {  # dev-realm demo users (README) and their fixed Keycloak subjects
    "alice": ("alice-dev-password", "a11ce000-0000-4000-8000-000000000001"),
    "bob": ("bob-dev-password", "b0b00000-0000-4000-8000-000000000002"),
    "olivia": ("olivia-dev-password", "011f1a00-0000-4000-8000-000000000004"),
}
BUYERS = ("alice", "bob", "olivia")
PER_CUSTOMER_LIMIT = 200
CLIENT_THREADS = 48
SERVER_THREADS = 16
OVERLOAD_RETRIES = 200


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack (`stack/boxo up`) and export its environment "
            "(`set -a; . .state/env; set +a`)",
            pytrace=False,
        )
    return value


# -- the throw-away database -------------------------------------------------------------------


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with fresh_database("bx_booking_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES ('7e0e0000-0000-4000-8000-0000000000aa', 'Load Test Hall', '1 Road',
                           'Testville', 100000)"""
            )
            for i, user in enumerate(BUYERS):
                conn.execute(
                    """INSERT INTO customer (id, subject, name, email, address_line1,
                                             postal_code, city, country)
                       VALUES (%s, %s, %s, %s, '1 Road', 'T1 1TT', 'Testville', 'GB')""",
                    (uuid.UUID(int=i + 1), USERS[user][1], user.title(), f"{user}@example.test"),
                )
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def make_event(db: psycopg.Connection[Any], capacity: int, shards: int = 1) -> uuid.UUID:
    event_id = uuid.uuid4()
    with db.transaction():
        db.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity)
               VALUES (%s, '7e0e0000-0000-4000-8000-0000000000aa', %s,
                       now() + interval '30 days', 30.00, 'GBP', %s)""",
            (event_id, f"load test {event_id.hex[:8]}", capacity),
        )
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, %s, %s)",
                [(event_id, s, c) for s, c in enumerate(split_capacity(capacity, shards))],
            )
    return event_id


def one(db: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = db.execute(query, params).fetchone()
    assert row is not None
    return row[0]


# -- the create_booking process ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """create_booking's server (granian, 1 worker, threads), as the stack runs it, on its own
    port and database."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PORT=str(port),
        WORKERS="1",
        THREADS=str(SERVER_THREADS),
        BOXOFFICE_DATABASE_URL=db_url,
        BOXOFFICE_DB_POOL_MAX=str(SERVER_THREADS),
        BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT=str(PER_CUSTOMER_LIMIT),
        BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_free_port()}",  # nobody listens
        BOXOFFICE_BOOKING_TOPIC="booking-isolated-load-test",
    )
    _env("BOXOFFICE_OIDC_ISSUER")
    log = tmp_path_factory.mktemp("create_booking") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            function_server.command(str(ROOT / ".venv" / "bin" / "python"), port),
            cwd=ROOT / "functions" / "create_booking",
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    """Fresh access tokens from the real Keycloak (password grant of the dev realm)."""
    issuer = _env("BOXOFFICE_OIDC_ISSUER")
    client = _env("BOXOFFICE_OIDC_CLIENT_ID")
    out = {}
    for user in BUYERS:
        response = requests.post(
            f"{issuer}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": client,
                "username": user,
                "password": USERS[user][0],
            },
            timeout=10,
        )
        response.raise_for_status()
        out[user] = response.json()["access_token"]
    return out


# -- a concurrent HTTP client ------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    user: str
    size: int
    key: str
    status: int
    body: dict[str, Any]
    replayed: bool
    location: str | None

    @property
    def slug(self) -> str:
        return str(self.body.get("type", "")).rsplit("/", 1)[-1]


class Client:
    def __init__(self, base: str, tokens: dict[str, str]) -> None:
        self.base = base
        self.tokens = tokens
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def book(
        self,
        user: str,
        event: uuid.UUID,
        size: int,
        key: str | None = None,
        category: uuid.UUID | None = None,
    ) -> Outcome:
        """One purchase as a real client makes it: retried with its Idempotency-Key while the
        server answers 503 (overloaded: more buyers than the server admits at once)."""
        key = key or str(uuid.uuid4())
        body: dict[str, Any] = {"eventId": str(event), "ticketCount": size}
        if category is not None:
            body["categoryId"] = str(category)
        for _ in range(OVERLOAD_RETRIES):
            response = self._session().post(
                f"{self.base}/bookings",
                json=body,
                headers={"Authorization": f"Bearer {self.tokens[user]}", "Idempotency-Key": key},
                timeout=30,
            )
            if response.status_code != 503:
                break
            time.sleep(random.uniform(0.01, 0.05))
        return Outcome(
            user,
            size,
            key,
            response.status_code,
            response.json(),
            response.headers.get("Idempotent-Replayed") == "true",
            response.headers.get("Location"),
        )

    def cancel(self, user: str, booking_id: str) -> requests.Response:
        """A cancellation, retried while the server answers 503 overloaded (it is idempotent)."""
        for _ in range(OVERLOAD_RETRIES):
            response = self._session().delete(
                f"{self.base}/bookings/{booking_id}",
                headers={"Authorization": f"Bearer {self.tokens[user]}"},
                timeout=30,
            )
            if response.status_code != 503:
                break
            time.sleep(random.uniform(0.01, 0.05))
        return response


def concurrently(jobs: list[Callable[[], Any]], workers: int = CLIENT_THREADS) -> list[Any]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


@pytest.fixture(scope="module")
def client(server: str, tokens: dict[str, str]) -> Client:
    return Client(server, tokens)


def assert_books_balance(db: psycopg.Connection[Any], event: uuid.UUID) -> int:
    """Seats sold on each shard == seats its live allocations hold; returns the total sold."""
    rows = db.execute(
        """SELECT i.shard, i.capacity, i.sold,
                  COALESCE((SELECT SUM(a.quantity) FROM booking_allocation a
                              JOIN booking b ON b.id = a.booking_id
                             WHERE a.event_id = i.event_id AND a.shard = i.shard
                               AND b.status NOT IN ('CANCELLED', 'EXPIRED')), 0)
             FROM event_inventory i WHERE i.event_id = %s ORDER BY i.shard""",
        (event,),
    ).fetchall()
    for shard, capacity, sold, allocated in rows:
        assert 0 <= sold <= capacity, (shard, capacity, sold)
        assert sold == allocated, f"shard {shard}: sold {sold}, allocations hold {allocated}"
    live = one(
        db,
        """SELECT COALESCE(SUM(quantity), 0) FROM booking
            WHERE event_id = %s AND status NOT IN ('CANCELLED', 'EXPIRED')""",
        event,
    )
    total = sum(r[2] for r in rows)
    assert total == live
    return int(total)


# -- the race exists, and the guarded write closes it ------------------------------------------


def _sell_concurrently(db_url: str, guarded: bool, buyers: int, capacity: int) -> tuple[int, int]:
    """`buyers` threads each buy one seat of a scratch table with `capacity` seats, all reading
    before anyone writes (a barrier makes the interleaving certain). (seats sold, successes)"""
    schema = f"race_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(db_url, autocommit=True) as setup:
        setup.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        setup.execute(
            sql.SQL("CREATE TABLE {}.seats (id int PRIMARY KEY, capacity int, sold int)").format(
                sql.Identifier(schema)
            )
        )
        setup.execute(
            sql.SQL("INSERT INTO {}.seats VALUES (1, %s, 0)").format(sql.Identifier(schema)),
            (capacity,),
        )
    table = sql.SQL("{}.seats").format(sql.Identifier(schema))
    barrier = threading.Barrier(buyers, timeout=30)

    def buy() -> bool:
        with psycopg.connect(db_url) as conn:
            if guarded:
                barrier.wait()
                cur = conn.execute(
                    sql.SQL(
                        "UPDATE {} SET sold = sold + 1 WHERE id = 1 AND sold + 1 <= capacity"
                    ).format(table)
                )
                conn.commit()
                return cur.rowcount == 1
            row = conn.execute(
                sql.SQL("SELECT capacity - sold FROM {} WHERE id = 1").format(table)
            ).fetchone()
            assert row is not None
            barrier.wait()  # everyone has seen the same remaining count
            if row[0] < 1:
                return False
            conn.execute(sql.SQL("UPDATE {} SET sold = sold + 1 WHERE id = 1").format(table))
            conn.commit()
            return True

    try:
        successes = sum(concurrently([buy] * buyers, workers=buyers))
        with psycopg.connect(db_url) as conn:
            row = conn.execute(sql.SQL("SELECT sold FROM {} WHERE id = 1").format(table)).fetchone()
        assert row is not None
        sold = row[0]
        return int(sold), successes
    finally:
        with psycopg.connect(db_url, autocommit=True) as cleanup:
            cleanup.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_naive_read_then_write_oversells_under_concurrency(db_url: str) -> None:
    sold, successes = _sell_concurrently(db_url, guarded=False, buyers=24, capacity=10)
    assert successes == 24
    assert sold > 10, "the naive seller did not oversell: this harness cannot see the race"


def test_guarded_write_never_oversells_under_the_same_concurrency(db_url: str) -> None:
    sold, successes = _sell_concurrently(db_url, guarded=True, buyers=24, capacity=10)
    assert (sold, successes) == (10, 10)


def test_inventory_check_constraint_refuses_an_oversell_even_from_an_unguarded_write(
    db: psycopg.Connection[Any],
) -> None:
    event = make_event(db, capacity=5)
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE event_inventory SET sold = sold + 6 WHERE event_id = %s", (event,))


# -- over HTTP ---------------------------------------------------------------------------------


def test_500_concurrent_buyers_of_a_50_seat_event_buy_exactly_50_seats(
    client: Client, db: psycopg.Connection[Any], server: str
) -> None:
    event = make_event(db, capacity=50, shards=1)
    jobs = [lambda u=BUYERS[i % 3]: client.book(u, event, 1) for i in range(500)]

    outcomes: list[Outcome] = concurrently(jobs)

    statuses = Counter(o.status for o in outcomes)
    assert statuses == {201: 50, 409: 450}, statuses
    assert {o.slug for o in outcomes if o.status == 409} == {"sold-out"}
    assert sum(o.size for o in outcomes if o.status == 201) == 50
    assert assert_books_balance(db, event) == 50
    assert one(db, "SELECT count(*) FROM booking WHERE event_id = %s", event) == 50
    assert one(db, "SELECT count(*) FROM outbox WHERE payload->>'eventId' = %s", str(event)) == 50
    metrics = requests.get(f"{server}/metrics", timeout=5).text
    assert re.search(r'^boxoffice_bookings_total\{outcome="sold_out"\} [1-9]', metrics, re.M)
    assert re.search(r"^boxoffice_tickets_reserved_total [1-9]", metrics, re.M)


def test_600_concurrent_mixed_size_orders_on_a_16_shard_hot_event_never_oversell(
    client: Client, db: psycopg.Connection[Any]
) -> None:
    event = make_event(db, capacity=300, shards=16)
    sizes = [1 + i % 4 for i in range(600)]
    random.Random(7).shuffle(sizes)
    jobs = [lambda u=BUYERS[i % 3], n=n: client.book(u, event, n) for i, n in enumerate(sizes)]

    outcomes: list[Outcome] = concurrently(jobs)

    assert not [o for o in outcomes if o.status not in (201, 409)], "errors other than 409"
    assert {o.slug for o in outcomes if o.status == 409} == {"sold-out"}
    sold = assert_books_balance(db, event)
    assert sold == sum(o.size for o in outcomes if o.status == 201)
    remaining = 300 - sold
    # Seats only ever decreased during the run, so every refusal saw fewer seats than it asked
    # for: nobody was told "sold out" while their seats were there.
    assert all(o.size > remaining for o in outcomes if o.status == 409), remaining
    used = one(
        db, "SELECT count(DISTINCT shard) FROM booking_allocation WHERE event_id = %s", event
    )
    assert used == 16
    # The last seats, whichever shards they are on, still sell; then the event is sold out.
    while client.book("alice", event, 1).status == 201:
        pass
    assert assert_books_balance(db, event) == 300


def make_category_event(
    db: psycopg.Connection[Any], categories: list[tuple[str, int, int]], online_payment: bool
) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    """An event with ticket categories (name, capacity, shards), each over shards of its own."""
    event_id = uuid.uuid4()
    ids: dict[str, uuid.UUID] = {}
    shard = 0
    with db.transaction():
        db.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity,
                                  online_payment)
               VALUES (%s, '7e0e0000-0000-4000-8000-0000000000aa', %s,
                       now() + interval '30 days', 25.00, 'GBP', %s, %s)""",
            (event_id, f"categories {event_id.hex[:8]}", sum(c[1] for c in categories),
             online_payment),
        )  # fmt: skip
        for position, (name, capacity, shards) in enumerate(categories):
            ids[name] = uuid.uuid4()
            db.execute(
                """INSERT INTO ticket_category (id, event_id, name, price, capacity, position)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                (ids[name], event_id, name, 25 + 15 * position, capacity, position),
            )
            for cap in split_capacity(capacity, shards):
                db.execute(
                    """INSERT INTO event_inventory (event_id, shard, category_id, capacity)
                       VALUES (%s, %s, %s, %s)""",
                    (event_id, shard, ids[name], cap),
                )
                shard += 1
    return event_id, ids


@pytest.mark.parametrize("online_payment", [False, True], ids=["confirmed", "held"])
def test_a_storm_over_three_categories_sells_each_exactly_its_capacity_never_more(
    client: Client, db: psycopg.Connection[Any], online_payment: bool
) -> None:
    """The guard per category (the naive race above is the control): 600 buyers at once, each
    naming one of three categories of different sizes and shard counts, as plain bookings and
    as seat holds."""
    capacities = {"Standing": (60, 8), "Seated": (24, 2), "VIP": (5, 1)}
    event, ids = make_category_event(
        db, [(n, c, k) for n, (c, k) in capacities.items()], online_payment
    )
    names = [list(capacities)[i % 3] for i in range(600)]
    random.Random(11).shuffle(names)
    jobs = [
        lambda u=BUYERS[i % 3], name=name: (name, client.book(u, event, 1, category=ids[name]))
        for i, name in enumerate(names)
    ]

    outcomes: list[tuple[str, Outcome]] = concurrently(jobs)

    assert {o.status for _, o in outcomes} <= {201, 409}
    assert {o.slug for _, o in outcomes if o.status == 409} == {"sold-out"}
    booked = Counter(name for name, o in outcomes if o.status == 201)
    assert booked == {n: c for n, (c, _) in capacities.items()}
    status = "HELD" if online_payment else "PENDING"
    assert {o.body["status"] for _, o in outcomes if o.status == 201} == {status}
    for name, (capacity, _) in capacities.items():
        sold = one(
            db,
            "SELECT SUM(sold) FROM event_inventory WHERE category_id = %s",
            ids[name],
        )
        in_category = one(
            db,
            """SELECT count(*) FROM booking_allocation a
                 JOIN event_inventory i ON i.event_id = a.event_id AND i.shard = a.shard
                 JOIN booking b ON b.id = a.booking_id
                WHERE b.category_id = %s AND i.category_id = %s""",
            ids[name],
            ids[name],
        )
        assert (sold, in_category) == (capacity, capacity), name
    assert assert_books_balance(db, event) == 89


def test_one_customer_firing_parallel_orders_never_exceeds_the_per_customer_limit(
    client: Client, db: psycopg.Connection[Any]
) -> None:
    event = make_event(db, capacity=1000, shards=4)
    outcomes: list[Outcome] = concurrently([lambda: client.book("bob", event, 5)] * 60)

    statuses = Counter(o.status for o in outcomes)
    assert statuses == {201: PER_CUSTOMER_LIMIT // 5, 409: 60 - PER_CUSTOMER_LIMIT // 5}
    assert {o.slug for o in outcomes if o.status == 409} == {"ticket-limit-exceeded"}
    held = one(
        db,
        """SELECT tickets FROM customer_event_tickets t JOIN customer c ON c.id = t.customer_id
            WHERE c.subject = %s AND t.event_id = %s""",
        USERS["bob"][1],
        event,
    )
    assert held == PER_CUSTOMER_LIMIT
    assert assert_books_balance(db, event) == PER_CUSTOMER_LIMIT


def test_1000_concurrent_requests_replaying_100_keys_create_exactly_100_bookings(
    client: Client, db: psycopg.Connection[Any]
) -> None:
    event = make_event(db, capacity=500, shards=4)
    run = uuid.uuid4().hex[:8]
    keys = [(f"replay-{run}-{i}", BUYERS[i % 3]) for i in range(100)]
    attempts = [k for k in keys for _ in range(10)]
    random.Random(11).shuffle(attempts)
    in_use = Counter[str]()

    def send(key: str, user: str) -> Outcome:
        for _ in range(400):
            outcome = client.book(user, event, 1, key=key)
            if outcome.slug != "idempotency-key-in-use":
                return outcome
            in_use[key] += 1
            time.sleep(0.02)
        pytest.fail(f"key {key} stayed in use")

    outcomes: list[Outcome] = concurrently([lambda k=k, u=u: send(k, u) for k, u in attempts])

    assert Counter(o.status for o in outcomes) == {201: 1000}
    by_key: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_key.setdefault(o.key, []).append(o)
    for key, group in by_key.items():
        assert len({o.body["id"] for o in group}) == 1, key
        assert all(o.body == group[0].body for o in group), key
        assert all(o.location == f"/bookings/{group[0].body['id']}" for o in group), key
        assert sum(not o.replayed for o in group) == 1, key
    assert one(db, "SELECT count(*) FROM booking WHERE event_id = %s", event) == 100
    assert assert_books_balance(db, event) == 100
    stored = one(
        db,
        "SELECT count(*) FROM idempotency_record WHERE key LIKE %s AND state = 'COMPLETED'",
        f"replay-{run}-%",
    )
    assert stored == 100


def test_concurrent_duplicate_cancels_return_each_bookings_seats_exactly_once(
    client: Client, db: psycopg.Connection[Any]
) -> None:
    event = make_event(db, capacity=100, shards=4)
    created: list[Outcome] = concurrently([lambda: client.book("alice", event, 2)] * 20)
    assert {o.status for o in created} == {201}
    assert assert_books_balance(db, event) == 40
    ids = [str(o.body["id"]) for o in created]

    responses = concurrently([lambda b=b: client.cancel("alice", b) for b in ids for _ in range(8)])

    assert {r.status_code for r in responses} == {200}
    assert {r.json()["status"] for r in responses} == {"CANCELLED"}
    assert assert_books_balance(db, event) == 0
    assert one(db, "SELECT SUM(sold) FROM event_inventory WHERE event_id = %s", event) == 0
    held = one(
        db,
        """SELECT tickets FROM customer_event_tickets t JOIN customer c ON c.id = t.customer_id
            WHERE c.subject = %s AND t.event_id = %s""",
        USERS["alice"][1],
        event,
    )
    assert held == 0
    cancellations = db.execute(
        """SELECT record_key, count(*) FROM outbox
            WHERE event_type = 'dev.boxoffice.booking.cancelled.v1'
              AND payload->>'eventId' = %s GROUP BY record_key""",
        (str(event),),
    ).fetchall()
    assert sorted(cancellations) == sorted((b, 1) for b in ids)
    # The seats are on sale again: the whole event still sells.
    assert client.book("bob", event, 10).status == 201
