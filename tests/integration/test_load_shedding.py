"""Bursts served, overload refused fast: create_booking's real server (boxoffice.processes.server,
the functions-framework app on granian behind its request queue) at and past its limits.

Requests are held in flight the way a hot on-sale holds them, by the database: a test
transaction locks the event row, so every booking of that event waits inside `book_tickets`
(on its `FOR SHARE`) until the test lets go. Each server runs on a database of its own.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from support_databases import fresh_database
from support_kafka import own_topic
from support_servers import running_function

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALICE_SUBJECT = "a11ce000-0000-4000-8000-000000000001"
VENUE = uuid.UUID("7e0e0000-0000-4000-8000-0000000000dd")


@dataclass
class Server:
    url: str
    db_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def book(self, token: str, event: uuid.UUID, key: str) -> requests.Response:
        return requests.post(
            f"{self.url}/bookings",
            json={"eventId": str(event), "ticketCount": 1},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
            timeout=30,
        )


@contextmanager
def running_server(tmp: Path, **env: str) -> Iterator[Server]:
    """create_booking's server on a fresh database, with these server settings."""
    with fresh_database("bx_shedding_test") as db_url:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Shed Hall', '1 Road', 'Testville', 1000)""",
                (VENUE,),
            )
            conn.execute(
                """INSERT INTO customer (subject, name, email, address_line1, postal_code,
                                         city, country)
                   VALUES (%s, 'Alice', 'alice@example.test', '1 St', 'AB1', 'Town', 'GB')""",
                (ALICE_SUBJECT,),
            )
        # Kafka configured (a publishing function is ready only then), on a topic of the test's own.
        with own_topic("it-shedding") as kafka:
            environment = {
                "BOXOFFICE_DATABASE_URL": db_url,
                "BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT": "100",
                "WORKERS": "1",
                **kafka,
                **env,
            }
            with running_function("create_booking", tmp, environment) as fn:
                yield Server(fn.url, db_url, fn.process, fn.log)


def make_event(db_url: str) -> uuid.UUID:
    event = uuid.uuid4()
    with psycopg.connect(db_url) as conn:
        conn.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity)
               VALUES (%s, %s, 'Shed night', now() + interval '30 days', 10, 'GBP', 100)""",
            (event, VENUE),
        )
        conn.execute(
            "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, 0, 100)", (event,)
        )
    return event


@contextmanager
def event_locked(db_url: str, event: uuid.UUID) -> Iterator[None]:
    """Bookings of `event` wait in the database while this is open."""
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT 1 FROM event WHERE id = %s FOR UPDATE", (event,))
        yield
        conn.rollback()


def waiting_on_locks(db_url: str) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            """SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock'"""
        ).fetchone()
    assert row is not None
    return int(row[0])


def until(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def keys_stored(db_url: str) -> set[str]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        return {str(r[0]) for r in conn.execute("SELECT key FROM idempotency_record")}


def bookings_of(db_url: str, event: uuid.UUID) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM booking WHERE event_id = %s", (event,)).fetchone()
    assert row is not None
    return int(row[0])


def in_background(call: Callable[[], requests.Response]) -> Callable[[], requests.Response]:
    """Start `call` in a thread; the returned function waits for its response."""
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(response=call()), daemon=True)
    thread.start()

    def result() -> requests.Response:
        thread.join(40)
        response: requests.Response = box["response"]
        return response

    return result


def assert_overloaded(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/overloaded")
    assert body["status"] == 503
    return body


def shed_count(url: str, reason: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("boxoffice_requests_shed_total{") and f'reason="{reason}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_burst_four_times_the_old_inflight_bound_is_served_without_a_refusal(
    tmp_path: Path, access_token: Callable[[str], str]
) -> None:
    # The old server admitted 2 x THREADS requests per worker and refused the rest at once; a
    # burst that the slots can serve within the deadline now waits in the queue instead.
    token = access_token("alice")
    threads = 4
    burst = 4 * 2 * threads
    with running_server(tmp_path, THREADS=str(threads)) as srv:
        event = make_event(srv.db_url)
        # A function that has served: its keys fetched, its pool open, its imports done.
        assert srv.book(token, event, "warm-up").status_code == 201
        start = threading.Barrier(burst)

        def book(key: str) -> requests.Response:
            start.wait()
            return srv.book(token, event, key)

        answers = [in_background(lambda k=f"burst-{i}": book(k)) for i in range(burst)]
        statuses = sorted(a().status_code for a in answers)

        assert statuses == [201] * burst
        assert shed_count(srv.url, "queue_full") + shed_count(srv.url, "expected_wait") == 0
        assert bookings_of(srv.db_url, event) == burst + 1


def test_a_full_queue_refuses_the_next_request_within_milliseconds_and_writes_nothing(
    tmp_path: Path, access_token: Callable[[str], str]
) -> None:
    token = access_token("alice")
    env = {"THREADS": "1", "BOXOFFICE_MAX_QUEUE": "3", "BOXOFFICE_REQUEST_DEADLINE_SECONDS": "20"}
    with running_server(tmp_path, **env) as srv:
        event = make_event(srv.db_url)
        with event_locked(srv.db_url, event):
            running = in_background(lambda: srv.book(token, event, "running"))
            until(lambda: waiting_on_locks(srv.db_url) == 1)  # the only slot is held
            queued = [in_background(lambda k=k: srv.book(token, event, k)) for k in "abc"]
            until(lambda: queue_length(srv.url) == 3)

            latencies = []
            for attempt in range(5):
                began = time.monotonic()
                refused = srv.book(token, event, f"refused-{attempt}")
                latencies.append(time.monotonic() - began)
                assert_overloaded(refused)
            # Refused while the admitted requests are still held, from the queue's bound alone.
            assert waiting_on_locks(srv.db_url) == 1
            assert max(latencies) <= 0.05, latencies
            # Probes never queue: a busy function is neither dead nor unready.
            assert requests.get(f"{srv.url}/healthz", timeout=5).status_code == 200
            assert requests.get(f"{srv.url}/readyz", timeout=5).status_code == 200
        answers = [running(), *(q() for q in queued)]
        assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
        assert shed_count(srv.url, "queue_full") == 5

        # The refused requests wrote nothing, and retrying one with its key is safe.
        assert keys_stored(srv.db_url) == {"running", "a", "b", "c"}
        retried = srv.book(token, event, "refused-0")
        assert retried.status_code == 201, retried.text
        assert bookings_of(srv.db_url, event) == 5


def test_a_request_that_arrives_already_past_its_deadline_is_refused_at_once_if_it_must_wait(
    tmp_path: Path, access_token: Callable[[str], str]
) -> None:
    # The deadline counts from arrival at the front door (X-Request-Start, as nginx stamps it).
    token = access_token("alice")
    env = {"THREADS": "1", "BOXOFFICE_REQUEST_DEADLINE_SECONDS": "1"}
    with running_server(tmp_path, **env) as srv:
        event = make_event(srv.db_url)
        with event_locked(srv.db_url, event):
            first = in_background(lambda: srv.book(token, event, "first"))
            until(lambda: waiting_on_locks(srv.db_url) == 1)
            began = time.monotonic()
            late = requests.post(
                f"{srv.url}/bookings",
                json={"eventId": str(event), "ticketCount": 1},
                headers={
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": "late",
                    "X-Request-Start": f"t={time.time() - 1.5:.3f}",
                },
                timeout=30,
            )
            elapsed = time.monotonic() - began
        assert_overloaded(late)
        assert elapsed <= 0.05, elapsed
        assert first().status_code == 201
        assert shed_count(srv.url, "expected_wait") == 1
        assert keys_stored(srv.db_url) == {"first"}


def test_a_request_that_waited_past_the_deadline_is_refused_before_its_transaction(
    tmp_path: Path, access_token: Callable[[str], str]
) -> None:
    token = access_token("alice")
    env = {"THREADS": "1", "BOXOFFICE_REQUEST_DEADLINE_SECONDS": "0.5"}
    with running_server(tmp_path, **env) as srv:
        event = make_event(srv.db_url)
        with event_locked(srv.db_url, event):
            first = in_background(lambda: srv.book(token, event, "first"))
            until(lambda: waiting_on_locks(srv.db_url) == 1)  # the only slot is held
            queued = in_background(lambda: srv.book(token, event, "queued"))
            time.sleep(1.0)  # longer than the deadline, while it waits for the slot
        assert first().status_code == 201

        assert_overloaded(queued())
        assert shed_count(srv.url, "deadline") == 1
        assert keys_stored(srv.db_url) == {"first"}  # refused before its transaction
        assert bookings_of(srv.db_url, event) == 1


def test_on_sigterm_requests_in_flight_finish_and_the_server_exits(
    tmp_path: Path, access_token: Callable[[str], str]
) -> None:
    token = access_token("alice")
    with running_server(tmp_path, THREADS="2") as srv:
        event = make_event(srv.db_url)
        with event_locked(srv.db_url, event):
            held = in_background(lambda: srv.book(token, event, "in-flight"))
            until(lambda: waiting_on_locks(srv.db_url) == 1)
            srv.process.send_signal(signal.SIGTERM)  # to the main process, as the kubelet does
            time.sleep(0.5)
            assert srv.process.poll() is None  # still draining
            with pytest.raises(requests.ConnectionError):  # and no longer accepting
                requests.get(f"{srv.url}/healthz", timeout=2)
        answer = held()
        assert answer.status_code == 201, answer.text
        assert srv.process.wait(15) == 0
        # The worker stopped what the app started (the outbox relay, the pool) once drained.
        assert "stopped: outbox relay" in srv.log.read_text(errors="replace")
        assert keys_stored(srv.db_url) == {"in-flight"}
        assert bookings_of(srv.db_url, event) == 1


def queue_length(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("boxoffice_request_queue_waiting"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
