"""The waiting room under real concurrency: a real waiting_room server, the real admission
controller (python -m boxoffice.processes.admission) and a real create_booking server, as the stack
runs them, on a database of this module's own, with thousands of buyers at once over HTTP.

- 10,000 concurrent joiners of a randomising line before the on-sale time get 10,000 distinct
  places at opening: a random permutation of their arrivals; later arrivals are FIFO after them.
- The controller admits at the configured rate (within 10 %), in line order, nobody twice.
- A sell-out through create_booking with admission tokens: no more seats sold than the capacity,
  every seat accounted for, and every buyer still waiting sees `sold-out` at their next poll.

Buyers: 10,000 customers of this database, with access tokens signed by a key of the test's own
(its JWKS served locally: support_tokens.py), since the dev realm has no 10,000 users; the
functions verify them exactly as Keycloak's (RS256, issuer, audience). Nothing here touches the
dev database or the stack's processes.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from support_databases import fresh_database
from support_tokens import LocalJwks, LocalKey

from boxoffice.adapters.admission_tokens import generate_signing_key
from boxoffice.domain.waiting_room import MIN_RETRY_SECONDS
from boxoffice.processes import server as function_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "http://waiting-room-load-test/realms/boxoffice"
AUDIENCE = "boxoffice-api"
JOINERS = 10_000
LATE = 100
RATE = 50  # buyers per second
CLIENT_THREADS = 48
OVERLOAD_RETRIES = 200
VENUE = uuid.UUID("7e0e0000-0000-4000-8000-0000000000dd")

Conn = psycopg.Connection[Any]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _subject(i: int) -> str:
    return f"wr-load-{i:05d}"


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with fresh_database("bx_wr_load_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Load Arena', '1 Road', 'Testville', 1000000)""",
                (VENUE,),
            )
            with conn.cursor().copy(
                "COPY customer (subject, name, email, address_line1, postal_code, city, country)"
                " FROM STDIN"
            ) as copy:
                for i in range(JOINERS + LATE):
                    copy.write_row(
                        (_subject(i), f"Buyer {i}", f"b{i}@x.test", "1 St", "T1 1TT", "T", "GB")
                    )
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Conn]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def key() -> LocalKey:
    return LocalKey.generate()


@pytest.fixture(scope="module")
def tokens(key: LocalKey) -> list[str]:
    """An access token per buyer (valid for an hour), signed by the test's key."""
    now = int(time.time())
    return [
        key.sign(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": _subject(i),
                "typ": "Bearer",
                "iat": now,
                "exp": now + 3600,
                "realm_access": {"roles": ["customer"]},
            }
        )
        for i in range(JOINERS + LATE)
    ]


@pytest.fixture(scope="module")
def stack(
    db_url: str, key: LocalKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """waiting_room, create_booking and the admission controller on this module's database."""
    jwks = LocalJwks({"keys": [key.jwk()]})
    signing, verify = generate_signing_key()
    logs = tmp_path_factory.mktemp("waiting_room_load")
    base = dict(os.environ)
    base.update(
        BOXOFFICE_DATABASE_URL=db_url,
        BOXOFFICE_OIDC_ISSUER=ISSUER,
        BOXOFFICE_OIDC_AUDIENCE=AUDIENCE,
        BOXOFFICE_JWKS_URL=jwks.url,
        BOXOFFICE_ADMISSION_SIGNING_KEY=signing,
        BOXOFFICE_ADMISSION_VERIFY_KEYS=verify,
        BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{_free_port()}",  # nobody listens
        BOXOFFICE_BOOKING_TOPIC="booking-isolated-waiting-room-test",
        WORKERS="1",
        THREADS="16",
        BOXOFFICE_DB_POOL_MAX="16",
        GUNICORN_LOG_LEVEL="error",
    )
    procs: list[subprocess.Popen[bytes]] = []
    urls = {}
    python = str(ROOT / ".venv" / "bin" / "python")
    try:
        for name in ("waiting_room", "create_booking", "admission"):
            port = _free_port()
            env = dict(base, PORT=str(port))
            if name == "admission":
                cmd = [python, "-m", "boxoffice.processes.admission", "--host", "127.0.0.1"]
                cwd = ROOT
            else:
                cmd = function_server.command(python, port)
                cwd = ROOT / "functions" / name
            with (logs / f"{name}.log").open("wb") as out:
                procs.append(
                    subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
            urls[name] = f"http://127.0.0.1:{port}"
        for (name, url), proc in zip(urls.items(), procs, strict=True):
            _wait_ready(url, proc, logs / f"{name}.log")
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        jwks.stop()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.2)


class Buyers:
    """Many buyers at once, each call retried as a client must: after 503 (overloaded), again."""

    def __init__(self, urls: dict[str, str], tokens: list[str]) -> None:
        self.urls = urls
        self.tokens = tokens
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def call(self, method: str, url: str, i: int, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[i]}", **kw.pop("headers", {})}
        for _ in range(OVERLOAD_RETRIES):
            response = self._session().request(method, url, headers=headers, timeout=30, **kw)
            if response.status_code != 503:
                return response
            time.sleep(random.uniform(0.01, 0.05))
        return response

    def join(self, event: uuid.UUID, i: int) -> requests.Response:
        return self.call("POST", f"{self.urls['waiting_room']}/events/{event}/queue", i)

    def me(self, event: uuid.UUID, i: int) -> requests.Response:
        return self.call("GET", f"{self.urls['waiting_room']}/events/{event}/queue/me", i)

    def book(self, event: uuid.UUID, i: int, token: str, count: int = 2) -> requests.Response:
        return self.call(
            "POST",
            f"{self.urls['create_booking']}/bookings",
            i,
            json={"eventId": str(event), "ticketCount": count},
            headers={"Idempotency-Key": str(uuid.uuid4()), "Admission-Token": token},
        )

    def all(self, fn: Callable[[int], requests.Response], ids: range | list[int]) -> list[Any]:
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            return list(pool.map(fn, ids))


def add_event(db: Conn, capacity: int) -> uuid.UUID:
    event_id = uuid.uuid4()
    with db.transaction():
        db.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity)
               VALUES (%s, %s, 'Load on-sale', now() + interval '30 days', 60, 'GBP', %s)""",
            (event_id, VENUE, capacity),
        )
        for shard in range(4):
            db.execute(
                "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, %s, %s)",
                (event_id, shard, capacity // 4),
            )
    return event_id


def configure(db: Conn, event: uuid.UUID, opens_in: float, randomise: bool, rate: int) -> None:
    db.execute(
        "SELECT configure_queue(%s, now() + make_interval(secs => %s), %s, 600, %s, 2)",
        (event, opens_in, rate, randomise),
    )


def _rank_correlation(pairs: list[tuple[int, int]]) -> float:
    """Spearman's rho of (arrival, place) over distinct ranks (1: same order)."""
    n = len(pairs)
    by_arrival = {a: r for r, (a, _) in enumerate(sorted(pairs), 1)}
    by_place = {p: r for r, (_, p) in enumerate(sorted(pairs, key=lambda x: x[1]), 1)}
    d2 = sum((by_arrival[a] - by_place[p]) ** 2 for a, p in pairs)
    return 1 - 6 * d2 / (n * (n * n - 1))


# -- 10,000 joiners, the draw, the rate ------------------------------------------------------------


@pytest.fixture(scope="module")
def big_line(stack: dict[str, str], tokens: list[str], db_url: str) -> dict[str, Any]:
    """10,000 buyers join at once before the on-sale time; then it opens; 100 join late."""
    buyers = Buyers(stack, tokens)
    with psycopg.connect(db_url, autocommit=True) as db:
        event = add_event(db, capacity=40_000)
        configure(db, event, opens_in=3600, randomise=True, rate=RATE)
        joined = buyers.all(lambda i: buyers.join(event, i), range(JOINERS))
        db.execute(  # the on-sale time comes
            "UPDATE event_queue SET opens_at = now() WHERE event_id = %s", (event,)
        )
        deadline = time.monotonic() + 30
        while db.execute(
            "SELECT drawn_at IS NULL FROM event_queue WHERE event_id = %s", (event,)
        ).fetchone() != (False,):
            assert time.monotonic() < deadline, "the controller never drew the pre-queue"
            time.sleep(0.2)
        late = [buyers.join(event, i) for i in range(JOINERS, JOINERS + LATE)]  # one by one
    return {"event": event, "joined": joined, "late": late, "buyers": buyers}


def test_ten_thousand_concurrent_joiners_get_ten_thousand_distinct_places(
    big_line: dict[str, Any], db: Conn
) -> None:
    event = big_line["event"]
    statuses = [r.status_code for r in big_line["joined"]]
    assert statuses.count(201) == JOINERS, {s: statuses.count(s) for s in set(statuses)}
    assert all(r.json()["position"] is None for r in big_line["joined"])  # before the draw
    rows = db.execute(
        """SELECT c.subject, e.arrival, e.position FROM queue_entry e
             JOIN customer c ON c.id = e.customer_id
            WHERE e.event_id = %s AND e.arrival <= %s""",
        (event, JOINERS),
    ).fetchall()
    assert len(rows) == JOINERS
    assert len({r[0] for r in rows}) == JOINERS  # one place per customer
    assert sorted(r[1] for r in rows) == list(range(1, JOINERS + 1))  # no arrival lost or doubled
    assert sorted(r[2] for r in rows) == list(range(1, JOINERS + 1))  # distinct places


def test_the_pre_queue_is_randomised_at_opening_and_later_arrivals_are_fifo(
    big_line: dict[str, Any], db: Conn
) -> None:
    event = big_line["event"]
    rows = db.execute(
        "SELECT arrival, position FROM queue_entry WHERE event_id = %s ORDER BY arrival",
        (event,),
    ).fetchall()
    early = [(int(a), int(p)) for a, p in rows if a <= JOINERS]
    # A random permutation of 10,000: |rho| is ~0.01 (its standard deviation); arrival order
    # would be 1. Fixed points: ~1 expected.
    assert abs(_rank_correlation(early)) < 0.05
    assert sum(a == p for a, p in early) < 10
    late = [int(p) for a, p in rows if a > JOINERS]
    assert late == list(range(JOINERS + 1, JOINERS + LATE + 1))
    assert [r.json()["position"] for r in big_line["late"]] == late  # shown when joining


def test_the_controller_admits_at_the_configured_rate_in_line_order_and_nobody_twice(
    big_line: dict[str, Any], db: Conn
) -> None:
    event = big_line["event"]
    time.sleep(6)  # let the serving counter run
    ticks = db.execute(
        """SELECT admitted_at, count(*) FROM queue_entry
            WHERE event_id = %s AND admitted_at IS NOT NULL
            GROUP BY admitted_at ORDER BY admitted_at""",
        (event,),
    ).fetchall()
    assert len(ticks) >= 5, ticks
    # The pace of the serving counter once it runs: buyers admitted by every tick after the
    # second, over the time from the second to the last. (A tick's admitted_at is when its
    # transaction began; the first tick also draws the 10,000-buyer pre-queue, which took 26 s
    # in a loaded full run, and the second catches up by at most max_burst seconds' worth.)
    span = (ticks[-1][0] - ticks[1][0]).total_seconds()
    measured = sum(n for _, n in ticks[2:]) / span
    assert abs(measured - RATE) <= 0.1 * RATE, (measured, ticks)

    admitted = db.execute(
        """SELECT position FROM queue_entry WHERE event_id = %s AND admitted_at IS NOT NULL
            ORDER BY position""",
        (event,),
    ).fetchall()
    counted = db.execute(
        "SELECT admitted, served_up_to FROM event_queue WHERE event_id = %s", (event,)
    ).fetchone()
    assert counted is not None
    # The counter counts each admission once, and the admitted are the head of the line. (A
    # second admission of someone would count twice and leave a gap at the head.)
    assert counted[0] >= len(admitted)  # a tick may have committed since the read above
    assert [p for (p,) in admitted] == list(range(1, len(admitted) + 1))
    assert counted[1] >= len(admitted)
    buyers: Buyers = big_line["buyers"]
    subjects = {
        r[0]: int(r[0].rsplit("-", 1)[1])
        for r in db.execute(
            """SELECT c.subject FROM queue_entry e JOIN customer c ON c.id = e.customer_id
                WHERE e.event_id = %s AND e.position <= 40""",
            (event,),
        )
    }
    places = buyers.all(lambda i: buyers.me(event, i), list(subjects.values()))
    assert {p.json()["state"] for p in places} == {"admitted"}
    ids = {p.json()["admission"]["token"].split(".")[1] for p in places}
    assert len(ids) == len(places)  # one admission each


# -- a sell-out ------------------------------------------------------------------------------------


def test_a_sell_out_sells_exactly_the_capacity_and_every_waiting_buyer_sees_it_at_the_next_poll(
    stack: dict[str, str], tokens: list[str], db: Conn
) -> None:
    buyers = Buyers(stack, tokens)
    seats, line = 80, 600
    event = add_event(db, capacity=seats)
    configure(db, event, opens_in=0, randomise=False, rate=200)
    joined = buyers.all(lambda i: buyers.join(event, i), range(line))
    assert sorted(r.json()["position"] for r in joined) == list(range(1, line + 1))

    sold: list[int] = []
    refused: list[str] = []
    deadline = time.monotonic() + 60
    while True:  # admitted buyers book 2 seats each, as soon as they learn they are admitted
        rows = db.execute(
            """SELECT c.subject FROM queue_entry e JOIN customer c ON c.id = e.customer_id
                WHERE e.event_id = %s AND e.admitted_at IS NOT NULL AND e.used_at IS NULL
                  AND e.expires_at > now()""",
            (event,),
        ).fetchall()
        ids = [int(r[0].rsplit("-", 1)[1]) for r in rows]

        def buy(i: int) -> requests.Response:
            token = buyers.me(event, i).json()["admission"]["token"]
            return buyers.book(event, i, token)

        for response in buyers.all(buy, ids):
            if response.status_code == 201:
                sold.append(response.json()["quantity"])
            else:
                refused.append(response.json()["type"].rsplit("/", 1)[-1])
        state = db.execute(
            "SELECT sold_out_at IS NOT NULL FROM event_queue WHERE event_id = %s", (event,)
        ).fetchone()
        if state == (True,):
            break
        assert time.monotonic() < deadline, "the line never stopped"
        time.sleep(0.3)

    assert sum(sold) == seats
    assert set(refused) <= {"sold-out"}  # the last admitted may find no seats left
    inventory = db.execute(
        "SELECT sum(sold), sum(capacity), bool_and(sold <= capacity) FROM event_inventory"
        " WHERE event_id = %s",
        (event,),
    ).fetchone()
    assert inventory == (seats, seats, True)
    booked = db.execute(
        "SELECT coalesce(sum(quantity), 0) FROM booking WHERE event_id = %s", (event,)
    ).fetchone()
    assert booked == (seats,)

    waiting = [
        int(r[0].rsplit("-", 1)[1])
        for r in db.execute(
            """SELECT c.subject FROM queue_entry e JOIN customer c ON c.id = e.customer_id
                WHERE e.event_id = %s AND e.admitted_at IS NULL""",
            (event,),
        )
    ]
    assert len(waiting) > line // 2
    # Each waiting buyer polls (the poll they were going to make anyway) and, if still told to
    # wait, again after the Retry-After they were given: by then they must see sold-out.
    first = dict(zip(waiting, buyers.all(lambda i: buyers.me(event, i), waiting), strict=True))
    again = [i for i, r in first.items() if r.json()["state"] != "sold-out"]
    if again:
        assert min(int(first[i].headers["Retry-After"]) for i in again) >= MIN_RETRY_SECONDS
        time.sleep(max(int(first[i].headers["Retry-After"]) for i in again))
    second = dict(zip(again, buyers.all(lambda i: buyers.me(event, i), again), strict=True))
    states = {i: (second.get(i) or first[i]).json()["state"] for i in waiting}
    assert set(states.values()) == {"sold-out"}


def test_places_and_admissions_of_the_sell_out_are_consistent(db: Conn) -> None:
    broken = db.execute(
        """SELECT count(*) FROM queue_entry e
            WHERE (e.used_at IS NOT NULL AND e.admitted_at IS NULL)
               OR (e.admitted_at IS NOT NULL AND e.position IS NULL)"""
    ).fetchone()
    assert broken == (0,)
    # Every booking of an event in queue mode was made with an admission of its buyer.
    unadmitted = db.execute(
        """SELECT count(*) FROM booking b JOIN event_queue q ON q.event_id = b.event_id
            WHERE NOT EXISTS (SELECT 1 FROM queue_entry e WHERE e.event_id = b.event_id
                                AND e.customer_id = b.customer_id
                                AND e.used_at <= b.created_at)"""
    ).fetchone()
    assert unadmitted == (0,)
