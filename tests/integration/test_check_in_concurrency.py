"""Exactly-once check-in under real concurrency, over HTTP to the stack's check_in process
(functions-framework on granian, as stack/services/functions.sh runs it).

First the harness shows it can see the race: a naive read-then-write admission with many threads
admits one ticket many times on a scratch table (its own schema, dropped afterwards); the guarded
write (primary key + ON CONFLICT DO NOTHING, what check_in_ticket does) admits it once under the
same interleaving. Then 100 concurrent scans of one code, a retry storm of one scan, overlapping
batch uploads of two offline gates, and check-ins racing cancellations go to the real function.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import requests
from flask.testing import FlaskClient
from psycopg import sql
from support_databases import purge_events_of
from test_consume_order_support import (
    Db,
    consume_order_client,
    created_delivery,
    deliver,
    ensure_customer,
    ensure_event,
    insert_booking,
    ticket_rows,
)

pytestmark = pytest.mark.integration

CUSTOMER = uuid.UUID("c0c0f000-0000-4000-8000-0000000c4e02")


@pytest.fixture(scope="module", autouse=True)
def _dev_database_left_consistent() -> Iterator[None]:
    """These tests book by hand (no seats) against the stack's check_in process, so on the dev
    database: their events go, with everything on them, when the module is done."""
    yield
    purge_events_of(os.environ["BOXOFFICE_DATABASE_URL"], CUSTOMER)


SCANS = 100


@pytest.fixture(scope="module")
def orders_client() -> FlaskClient:
    return consume_order_client()


@pytest.fixture(scope="module")
def check_in_url(stack_env: Callable[[str], str]) -> str:
    url = stack_env("BOXOFFICE_CHECK_IN_URL")
    assert requests.get(f"{url}/readyz", timeout=5).status_code == 200
    return url


@pytest.fixture(scope="module")
def scanner(access_token: Callable[[str], str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token('sam')}"}


def issue(
    db: Db, orders_client: FlaskClient, event_id: uuid.UUID, quantity: int
) -> tuple[uuid.UUID, list[tuple[Any, ...]]]:
    ensure_customer(db, CUSTOMER)
    booking = insert_booking(db, event_id, CUSTOMER, quantity)
    assert deliver(orders_client, created_delivery(booking)).status_code == 200
    return booking.id, ticket_rows(db, booking.id)


def all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls), timeout=60)

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


# -- the race exists, and the guarded write closes it ------------------------------------------


def _admit_concurrently(db_url: str, guarded: bool, gates: int) -> int:
    """`gates` threads each admit the same ticket on a scratch table, all checking before anyone
    writes. Returns how many admissions were recorded."""
    schema = f"checkin_race_{uuid.uuid4().hex[:10]}"
    ticket = uuid.uuid4()
    with psycopg.connect(db_url, autocommit=True) as setup:
        setup.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        key = "PRIMARY KEY" if guarded else ""
        setup.execute(
            sql.SQL("CREATE TABLE {}.check_in (ticket_id uuid " + key + ", scan_id uuid)").format(
                sql.Identifier(schema)
            )
        )
    table = sql.SQL("{}.check_in").format(sql.Identifier(schema))
    barrier = threading.Barrier(gates, timeout=30)

    def admit() -> bool:
        with psycopg.connect(db_url) as conn:
            if guarded:
                barrier.wait()
                cur = conn.execute(
                    sql.SQL(
                        "INSERT INTO {} VALUES (%s, %s) ON CONFLICT (ticket_id) DO NOTHING"
                    ).format(table),
                    (ticket, uuid.uuid4()),
                )
                conn.commit()
                return cur.rowcount == 1
            seen = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE ticket_id = %s").format(table), (ticket,)
            ).fetchone()
            barrier.wait()  # every gate has seen "not yet admitted"
            if seen and seen[0]:
                return False
            conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table), (ticket, None))
            conn.commit()
            return True

    try:
        with ThreadPoolExecutor(max_workers=gates) as pool:
            list(pool.map(lambda _: admit(), range(gates)))
        with psycopg.connect(db_url) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        assert row is not None
        return int(row[0])
    finally:
        with psycopg.connect(db_url, autocommit=True) as cleanup:
            cleanup.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def test_control_naive_read_then_write_admits_one_ticket_many_times(
    stack_env: Callable[[str], str],
) -> None:
    admissions = _admit_concurrently(stack_env("BOXOFFICE_DATABASE_URL"), False, 16)
    assert admissions > 1, "the naive admission did not race: this harness cannot see the race"


def test_guarded_insert_admits_once_under_the_same_interleaving(
    stack_env: Callable[[str], str],
) -> None:
    assert _admit_concurrently(stack_env("BOXOFFICE_DATABASE_URL"), True, 16) == 1


# -- the real function -------------------------------------------------------------------------


def _post(url: str, headers: dict[str, str], body: dict[str, Any]) -> requests.Response:
    """A gate's request, retried while the function answers 503 overloaded (scans carry their
    scan id, so a retry is safe), as a real scanner app does."""
    for _ in range(200):
        response = requests.post(url, json=body, headers=headers, timeout=30)
        if response.status_code != 503:
            break
        time.sleep(random.uniform(0.01, 0.05))
    return response


def test_100_concurrent_scans_of_one_code_admit_it_exactly_once(
    db: Db, orders_client: FlaskClient, check_in_url: str, scanner: dict[str, str]
) -> None:
    event = uuid.uuid4()
    ensure_event(db, event)
    _, [(ticket_id, _, code, _)] = issue(db, orders_client, event, 1)

    def scan(i: int) -> requests.Response:
        body = {
            "code": code,
            "eventId": str(event),
            "gate": f"gate-{i % 8}",
            "scanId": str(uuid.uuid4()),
        }
        return _post(f"{check_in_url}/checkins", scanner, body)

    responses = all_at_once([lambda i=i: scan(i) for i in range(SCANS)])

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: SCANS - 1}, statuses
    [winner] = [r.json() for r in responses if r.status_code == 200]
    assert winner["outcome"] == "admitted"
    for r in responses:
        if r.status_code == 409:
            body = r.json()
            assert body["type"].endswith("/already-checked-in")
            assert body["firstCheckIn"]["gate"] == winner["checkIn"]["gate"]
            assert body["firstCheckIn"]["at"] == winner["checkIn"]["at"]
    rows = db.execute("SELECT count(*) FROM check_in WHERE ticket_id = %s", (ticket_id,))
    assert rows.fetchone() == (1,)


def test_a_storm_of_retries_of_one_scan_is_one_admission_and_its_replays(
    db: Db, orders_client: FlaskClient, check_in_url: str, scanner: dict[str, str]
) -> None:
    event = uuid.uuid4()
    ensure_event(db, event)
    _, [(_, _, code, _)] = issue(db, orders_client, event, 1)
    body = {"code": code, "eventId": str(event), "gate": "north-1", "scanId": str(uuid.uuid4())}

    responses = all_at_once([lambda: _post(f"{check_in_url}/checkins", scanner, body)] * 40)

    assert Counter(r.status_code for r in responses) == {200: 40}
    outcomes = Counter(r.json()["outcome"] for r in responses)
    assert outcomes == {"admitted": 1, "replayed": 39}
    assert len({r.json()["checkIn"]["at"] for r in responses}) == 1


def test_overlapping_uploads_of_two_offline_gates_admit_each_ticket_once_without_deadlock(
    db: Db, orders_client: FlaskClient, check_in_url: str, scanner: dict[str, str]
) -> None:
    event = uuid.uuid4()
    ensure_event(db, event)
    _, tickets = issue(db, orders_client, event, 40)
    codes = [t[2] for t in tickets]
    now = datetime.now(UTC).isoformat()

    def upload(gate: str, order: list[str]) -> requests.Response:
        scans = [{"code": c, "scanId": str(uuid.uuid4()), "scannedAt": now} for c in order]
        body = {"eventId": str(event), "gate": gate, "scans": scans}
        return _post(f"{check_in_url}/checkins/batch", scanner, body)

    calls = [
        lambda: upload("east", codes),
        lambda: upload("west", codes[::-1]),
        lambda: upload("south", codes[::2] + codes[1::2]),
    ]
    responses = all_at_once(calls)

    assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
    outcomes = Counter(res["outcome"] for r in responses for res in r.json()["results"])
    assert outcomes == {"admitted": 40, "already-checked-in": 80}
    admitted = db.execute("SELECT count(*) FROM check_in WHERE event_id = %s", (event,))
    assert admitted.fetchone() == (40,)
    conflicts = db.execute("SELECT count(*) FROM check_in_conflict WHERE event_id = %s", (event,))
    assert conflicts.fetchone() == (80,)


def test_check_ins_racing_cancellations_never_admit_a_cancelled_booking(
    db: Db,
    orders_client: FlaskClient,
    check_in_url: str,
    scanner: dict[str, str],
    stack_env: Callable[[str], str],
) -> None:
    """Each booking is scanned and cancelled at the same moment: either the scan wins (admitted,
    the cancellation is refused by the database) or the cancellation wins (the scan is refused)."""
    event = uuid.uuid4()
    ensure_event(db, event)
    issued = [issue(db, orders_client, event, 1) for _ in range(15)]
    url = stack_env("BOXOFFICE_DATABASE_URL")

    def cancel(booking_id: uuid.UUID) -> str:
        with psycopg.connect(url) as conn:
            try:
                conn.execute(
                    """UPDATE booking SET status = 'CANCELLED', cancelled_at = now()
                        WHERE id = %s""",
                    (booking_id,),
                )
                conn.commit()
            except psycopg.errors.RaiseException as exc:
                refused = exc.diag.message_primary == "booking-not-cancellable"
                return "refused" if refused else f"error: {exc}"
        return "cancelled"

    def scan(code: str) -> str:
        body = {"code": code, "eventId": str(event), "gate": "g", "scanId": str(uuid.uuid4())}
        response = _post(f"{check_in_url}/checkins", scanner, body)
        assert response.status_code in (200, 409), response.text
        return str(response.json().get("outcome") or response.json()["type"].rsplit("/", 1)[1])

    calls: list[Callable[[], str]] = []
    for booking_id, [(_, _, code, _)] in issued:
        calls += [lambda b=booking_id: cancel(b), lambda c=code: scan(c)]
    results = all_at_once(calls)

    pairs = [(results[i], results[i + 1]) for i in range(0, len(results), 2)]
    assert set(pairs) <= {("refused", "admitted"), ("cancelled", "ticket-cancelled")}, pairs
    for (booking_id, _), (cancel_result, _) in zip(issued, pairs, strict=True):
        status = db.execute("SELECT status FROM booking WHERE id = %s", (booking_id,)).fetchone()
        assert status == (("CANCELLED",) if cancel_result == "cancelled" else ("CONFIRMED",))
