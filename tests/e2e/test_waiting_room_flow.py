"""A hot on-sale through the waiting room on the running stack, over HTTP through the front door,
nothing in-process: an admin puts a new event in queue mode, buyers join, the stack's admission
controller (python -m boxoffice.processes.admission) admits them at the configured rate, an
admitted buyer books with the admission token, a booking without one is refused, and once the event
is sold out the buyer still waiting learns it at the next poll. The line's public status is served
from the front door's cache. Queue mode is ended at the end, so the controller stops ticking it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e

ARENA = "7e0e0000-0000-4000-8000-000000000002"  # demo venue
WAIT_S = 20.0

Body = dict[str, Any]


@pytest.fixture
def hot_event(
    access_token: Callable[[str], str], stack_env: Callable[[str], str]
) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A new 2-seat event in queue mode (1 buyer/s, FIFO): (api, event id, admin headers)."""
    api = stack_env("BOXOFFICE_API_URL")
    admin = {"Authorization": f"Bearer {access_token('olivia')}"}
    starts = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0)
    created = requests.post(
        f"{api}/events",
        json={
            "venueId": ARENA,
            "name": f"e2e on-sale {uuid.uuid4()}",
            "startsAt": starts.isoformat(),
            "price": {"amount": "80.00", "currency": "GBP"},
            "capacity": 2,
        },
        headers=admin,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    event = created.json()["id"]
    queued = requests.put(
        f"{api}/events/{event}/queue",
        json={
            "opensAt": datetime.now(UTC).isoformat(),
            "admissionRate": 1,
            "randomiseEarlyArrivals": False,
        },
        headers=admin,
        timeout=10,
    )
    assert queued.status_code == 201, queued.text
    yield api, event, admin
    requests.delete(f"{api}/events/{event}/queue", headers=admin, timeout=10)


def _poll(api: str, event: str, headers: dict[str, str], done: Callable[[Body], bool]) -> Body:
    """GET .../queue/me as a client would: again after Retry-After (capped for the test)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        response = requests.get(f"{api}/events/{event}/queue/me", headers=headers, timeout=10)
        assert response.status_code in (200, 503), response.text
        body: Body = response.json() if response.status_code == 200 else {}
        if response.status_code == 200 and done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0))


def test_buyers_are_admitted_in_line_order_book_with_their_token_and_then_see_sold_out(
    hot_event: tuple[str, str, dict[str, str]], access_token: Callable[[str], str]
) -> None:
    api, event, _ = hot_event
    alice = {"Authorization": f"Bearer {access_token('alice')}"}
    bob = {"Authorization": f"Bearer {access_token('bob')}"}
    for who in (alice, bob):
        joined = requests.post(f"{api}/events/{event}/queue", headers=who, timeout=10)
        assert joined.status_code in (200, 201), joined.text

    without = requests.post(
        f"{api}/bookings",
        json={"eventId": event, "ticketCount": 2},
        headers={**alice, "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert without.status_code == 403
    assert without.json()["type"].endswith("/admission-required")

    place = _poll(api, event, alice, lambda b: b["state"] == "admitted")
    assert place["position"] == 1
    bob_now = requests.get(f"{api}/events/{event}/queue/me", headers=bob, timeout=10).json()
    # Capacity bound: 2 seats at 2 tickets per buyer admit one buyer until that admission is used.
    assert bob_now["state"] == "waiting"

    booked = requests.post(
        f"{api}/bookings",
        json={"eventId": event, "ticketCount": 2},
        headers={
            **alice,
            "Idempotency-Key": str(uuid.uuid4()),
            "Admission-Token": place["admission"]["token"],
        },
        timeout=10,
    )
    assert booked.status_code == 201, booked.text

    sold_out = _poll(api, event, bob, lambda b: b["state"] != "waiting")
    assert sold_out["state"] == "sold-out"
    assert sold_out["admission"] is None


def test_the_public_line_status_is_served_from_the_front_doors_cache(
    hot_event: tuple[str, str, dict[str, str]],
) -> None:
    api, event, _ = hot_event
    statuses = []
    for _ in range(5):
        response = requests.get(f"{api}/events/{event}/queue", timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "public, max-age=1"
        statuses.append(response.headers.get("X-Cache-Status"))
    assert "HIT" in statuses  # five reads within a second: the first went to waiting_room
    assert statuses[0] in ("MISS", "EXPIRED", "HIT", "UPDATING")
