"""The whole purchase on the running stack, over HTTP through the front door, nothing in-process:
Keycloak token -> POST /bookings (create_booking) -> outbox relay -> Kafka `booking` topic ->
KafkaSource-contract dispatcher -> consume_order -> booking CONFIRMED with tickets whose codes
verify, and the ticket document in the S3 endpoint; then a cancellation travels the same way."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from boxoffice.domain.orders import signing_key, verify_ticket_code

pytestmark = pytest.mark.e2e

ARENA = "7e0e0000-0000-4000-8000-000000000002"  # demo venue, 60,000 seats
WAIT_S = 30.0


Body = dict[str, Any]


def _wait_for(read: Callable[[], Body], done: Callable[[Body], bool]) -> Body:
    deadline = time.monotonic() + WAIT_S
    body = read()
    while not done(body) and time.monotonic() < deadline:
        time.sleep(0.2)
        body = read()
    return body


def test_booking_is_confirmed_with_verifiable_tickets_and_a_stored_document_then_cancelled(
    access_token: Callable[[str], str], stack_env: Callable[[str], str]
) -> None:
    api = stack_env("BOXOFFICE_API_URL")
    key = signing_key(stack_env("BOXOFFICE_TICKET_SIGNING_KEY"))
    admin = {"Authorization": f"Bearer {access_token('olivia')}"}
    buyer = {"Authorization": f"Bearer {access_token('bob')}"}

    starts = (datetime.now(UTC) + timedelta(days=45)).replace(microsecond=0)
    created_event = requests.post(
        f"{api}/events",
        json={
            "venueId": ARENA,
            "name": f"e2e {uuid.uuid4()}",
            "startsAt": starts.isoformat(),
            "price": {"amount": "30.00", "currency": "GBP"},
            "capacity": 100,
        },
        headers=admin,
        timeout=10,
    )
    assert created_event.status_code == 201, created_event.text
    event_id = created_event.json()["id"]

    booked = requests.post(
        f"{api}/bookings",
        json={"eventId": event_id, "ticketCount": 3},
        headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert booked.status_code == 201, booked.text
    booking = booked.json()
    assert booking["status"] == "PENDING"
    assert booking["total"] == {"amount": "90.00", "currency": "GBP"}
    booking_id = uuid.UUID(booking["id"])

    def read() -> dict[str, Any]:
        response = requests.get(f"{api}/bookings/{booking_id}", headers=buyer, timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    confirmed = _wait_for(
        read, lambda b: b["status"] == "CONFIRMED" and bool((b["order"] or {}).get("documentUrl"))
    )
    assert confirmed["status"] == "CONFIRMED", confirmed
    tickets = confirmed["order"]["tickets"]
    assert sorted(t["seq"] for t in tickets) == [1, 2, 3]
    for ticket in tickets:
        assert verify_ticket_code(key, ticket["code"], booking_id, ticket["seq"])
        forged = ticket["code"][:-2] + ("AA" if not ticket["code"].endswith("AA") else "BB")
        assert not verify_ticket_code(key, forged, booking_id, ticket["seq"])

    document = requests.get(confirmed["order"]["documentUrl"], timeout=10)
    assert document.status_code == 200
    stored = document.json()
    assert stored["bookingId"] == str(booking_id)
    assert sorted(t["code"] for t in stored["tickets"]) == sorted(t["code"] for t in tickets)

    # Another customer cannot see it (404, not 403).
    other = requests.get(
        f"{api}/bookings/{booking_id}",
        headers={"Authorization": f"Bearer {access_token('alice')}"},
        timeout=10,
    )
    assert other.status_code == 404

    cancelled = requests.delete(f"{api}/bookings/{booking_id}", headers=buyer, timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    after = _wait_for(read, lambda b: (b["order"] or {}).get("status") == "CANCELLED")
    assert after["status"] == "CANCELLED"
    assert after["order"]["status"] == "CANCELLED"
    assert {t["status"] for t in after["order"]["tickets"]} == {"CANCELLED"}
    remaining = requests.get(f"{api}/events/{event_id}", timeout=10).json()["capacity"]
    assert remaining == {"total": 100, "remaining": 100}
