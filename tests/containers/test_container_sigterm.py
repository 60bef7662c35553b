"""SIGTERM to create_booking's container under load, as the kubelet sends it (to the container's
PID 1, the server the entrypoint exec'd): the request in flight is answered, no new one is
accepted, the container exits 0, and nothing is half-written.

Load: 4 threads of bookings by two buyers on one event, through the container's own port. One
more booking is held in flight the way a hot on-sale holds it, by the database: the test locks its
event's row, so `book_tickets` waits on it until the signal has been sent."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import requests
from support_containers import docker, running_container

from boxoffice.adapters.invariants import run_checks

pytestmark = pytest.mark.containers

ARENA = "7e0e0000-0000-4000-8000-000000000002"  # demo venue
BUYERS = ("alice", "bob")  # registered demo customers


def new_event(api: str, admin: str) -> str:
    created = requests.post(
        f"{api}/events",
        json={
            "venueId": ARENA,
            "name": f"container sigterm {uuid.uuid4()}",
            "startsAt": (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat(),
            "price": {"amount": "10.00", "currency": "GBP"},
            "capacity": 20000,
        },
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    event: str = created.json()["id"]
    return event


@dataclass
class Outcome:
    key: str
    status: int | None = None
    booking: str | None = None
    problem: str = ""
    error: str = ""


@dataclass
class Load:
    url: str
    event: str
    tokens: dict[str, str]
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, buyer: str) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            outcome = Outcome(str(uuid.uuid4()))
            self.outcomes.append(outcome)
            try:
                answer = session.post(
                    f"{self.url}/bookings",
                    json={"eventId": self.event, "ticketCount": 1},
                    headers={
                        "Authorization": f"Bearer {self.tokens[buyer]}",
                        "Idempotency-Key": outcome.key,
                    },
                    timeout=30,
                )
            except requests.ConnectionError as exc:
                outcome.error = repr(exc)
                if "Connection refused" in outcome.error:
                    return  # the server no longer accepts: done
                session = requests.Session()
                continue
            outcome.status = answer.status_code
            if answer.headers.get("Content-Type", "").startswith("application/problem+json"):
                outcome.problem = answer.json()["type"].rsplit("/", 1)[-1]
            if answer.status_code == 201:
                outcome.booking = answer.json()["id"]
            time.sleep(0.01)


def test_sigterm_under_load_answers_the_request_in_flight_exits_0_and_half_writes_nothing(
    access_token: Callable[[str], str], stack_env: Callable[[str], str]
) -> None:
    api = stack_env("BOXOFFICE_API_URL")
    db = stack_env("BOXOFFICE_DATABASE_URL")
    admin = access_token("olivia")
    load_event, held_event = new_event(api, admin), new_event(api, admin)
    tokens = {b: access_token(b) for b in BUYERS}

    # Above the per-customer limit: every booking of the load is written.
    with running_container(
        "create_booking", {"BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT": "100000"}
    ) as c:
        load = Load(c.url, load_event, tokens)
        threads = [
            threading.Thread(target=load.run, args=(b,), daemon=True) for b in BUYERS + BUYERS
        ]
        for t in threads:
            t.start()
        box: dict[str, requests.Response] = {}
        with psycopg.connect(db) as lock:
            lock.execute("SELECT 1 FROM event WHERE id = %s FOR UPDATE", (held_event,))
            held = threading.Thread(
                target=lambda: box.update(
                    answer=requests.post(
                        f"{c.url}/bookings",
                        json={"eventId": held_event, "ticketCount": 2},
                        headers={
                            "Authorization": f"Bearer {tokens['bob']}",
                            "Idempotency-Key": f"held-{held_event}",
                        },
                        timeout=40,
                    )
                ),
                daemon=True,
            )
            held.start()
            deadline = time.monotonic() + 20
            while not blocked_by(db, lock.info.backend_pid):
                assert time.monotonic() < deadline, "the held booking never reached the database"
                time.sleep(0.05)
            time.sleep(1.0)  # the load runs beside it
            docker("kill", "--signal", "TERM", c.name)
            time.sleep(0.7)
            assert c.state().get("Running") is True, "the container exited with a request in flight"
            with pytest.raises(requests.ConnectionError):
                requests.get(f"{c.url}/healthz", timeout=2)
            lock.rollback()  # let the held booking go
        held.join(40)
        answer = box["answer"]
        assert answer.status_code == 201, answer.text
        exit_code = docker("wait", c.name, timeout=40).stdout.strip()
        logs = c.logs()
        load.stop.set()
        for t in threads:
            t.join(40)
    assert exit_code == "0", logs[-3000:]

    outcomes = load.outcomes
    answered = [o for o in outcomes if o.status is not None]
    unanswered = [o for o in outcomes if o.status is None]
    statuses = Counter((o.status, o.problem) for o in answered)
    print(f"\nsigterm under load: answered {dict(statuses)}, not accepted {len(unanswered)}")
    assert len([o for o in answered if o.status == 201]) >= 5, "the load did not book"
    # Answered: booked, or refused as overloaded while draining; nothing else.
    assert set(statuses) <= {(201, ""), (503, "overloaded"), (503, "service-unavailable")}, statuses
    with psycopg.connect(db, autocommit=True) as conn:
        booked = {
            str(r[0])
            for r in conn.execute("SELECT id FROM booking WHERE event_id = %s", (load_event,))
        }
        keys = [o.key for o in outcomes] + [f"held-{held_event}"]
        records = dict(
            conn.execute(
                "SELECT key, state FROM idempotency_record WHERE key = ANY(%s)", (keys,)
            ).fetchall()
        )
        held_bookings = conn.execute(
            "SELECT quantity FROM booking WHERE event_id = %s", (held_event,)
        ).fetchall()
    # Every 201 is a booking and every booking is a 201: none written without its answer.
    assert booked == {o.booking for o in answered if o.booking}
    assert held_bookings == [(2,)]
    # A request that got no answer was never started (no idempotency record of its key), and
    # no request was left half-done.
    assert [o.key for o in unanswered if o.key in records] == []
    assert [k for k, state in records.items() if state != "COMPLETED"] == []
    broken = {r.check.name: r.examples for r in run_checks(db) if not r.ok}
    assert broken == {}


def blocked_by(db: str, holder: int) -> bool:
    """Some session waits on a lock the session `holder` holds (the held booking). Asked on a
    connection of its own: pg_stat_activity is a snapshot for the length of a transaction."""
    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            (holder,),
        ).fetchone()
    return bool(row and row[0])
