"""The whole purchase on the running stack, over HTTP through the front door, nothing in-process:
Keycloak token -> POST /bookings (create_booking) -> outbox relay -> Kafka `booking` topic ->
KafkaSource-contract dispatcher -> consume_order -> booking CONFIRMED with tickets, and the PDF
ticket document in the S3 endpoint, whose QR codes verify with the key published at
/.well-known/ticket-keys; then the door: scan (check_in) -> admitted -> scan again -> 409, and the
booking can no longer be cancelled. A second purchase is cancelled and travels the same way."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import requests

from boxoffice.domain.tickets import load_public_keys
from pdf_tickets import read_ticket_pdf
from polling import Body, wait_for

pytestmark = pytest.mark.e2e

ARENA = "7e0e0000-0000-4000-8000-000000000002"  # demo venue, 60,000 seats


def _event(api: str, admin: dict[str, str]) -> str:
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
    event_id: str = created_event.json()["id"]
    return event_id


def _buy(api: str, buyer: dict[str, str], event_id: str, count: int) -> Callable[[], Body]:
    booked = requests.post(
        f"{api}/bookings",
        json={"eventId": event_id, "ticketCount": count},
        headers={**buyer, "Idempotency-Key": str(uuid.uuid4())},
        timeout=10,
    )
    assert booked.status_code == 201, booked.text
    booking = booked.json()
    assert booking["status"] == "PENDING"
    assert booking["total"] == {"amount": f"{30 * count}.00", "currency": "GBP"}

    def read() -> Body:
        response = requests.get(f"{api}/bookings/{booking['id']}", headers=buyer, timeout=10)
        assert response.status_code == 200, response.text
        body: Body = response.json()
        return body

    return read


def _confirmed(read: Callable[[], Body]) -> Body:
    confirmed = wait_for(
        read, lambda b: b["status"] == "CONFIRMED" and bool((b["order"] or {}).get("documentUrl"))
    )
    assert confirmed["status"] == "CONFIRMED", confirmed
    return confirmed


def test_buy_confirm_print_scan_admitted_scan_again_refused_then_no_cancellation(
    access_token: Callable[[str], str], stack_env: Callable[[str], str]
) -> None:
    api = stack_env("BOXOFFICE_API_URL")
    admin = {"Authorization": f"Bearer {access_token('olivia')}"}
    buyer = {"Authorization": f"Bearer {access_token('bob')}"}
    scanner = {"Authorization": f"Bearer {access_token('sam')}"}
    event_id = _event(api, admin)
    read = _buy(api, buyer, event_id, 3)

    confirmed = _confirmed(read)
    booking_id = confirmed["id"]
    tickets = confirmed["order"]["tickets"]
    assert sorted(t["seq"] for t in tickets) == [1, 2, 3]

    # The PDF: one page per ticket, each with its QR code, verifiable with the published key.
    document = requests.get(confirmed["order"]["documentUrl"], timeout=10)
    assert document.status_code == 200
    assert document.headers["Content-Type"] == "application/pdf"
    pages = read_ticket_pdf(document.content)
    by_seq = {t["seq"]: t for t in tickets}
    assert [p.codes for p in pages] == [[by_seq[n]["code"]] for n in (1, 2, 3)]
    jwks = requests.get(f"{api}/.well-known/ticket-keys", timeout=10)
    assert jwks.status_code == 200
    assert jwks.headers["Content-Type"].startswith("application/jwk-set+json")
    keys = load_public_keys(",".join(k["x"] for k in jwks.json()["keys"]))
    for page, n in zip(pages, (1, 2, 3), strict=True):
        signed = keys.verify(page.codes[0])
        assert (str(signed.ticket_id), str(signed.event_id)) == (by_seq[n]["id"], event_id)
        assert f"Ticket {n} of 3" in page.text
        assert "Bob" in page.text  # the holder

    # Another customer cannot see the booking (404, not 403).
    other = requests.get(
        f"{api}/bookings/{booking_id}",
        headers={"Authorization": f"Bearer {access_token('alice')}"},
        timeout=10,
    )
    assert other.status_code == 404

    # At the door: the code read from the PDF is admitted once.
    code = pages[0].codes[0]
    scan = {"code": code, "eventId": event_id, "gate": "e2e-north", "scanId": str(uuid.uuid4())}
    admitted = requests.post(f"{api}/checkins", json=scan, headers=scanner, timeout=10)
    assert admitted.status_code == 200, admitted.text
    assert admitted.json()["outcome"] == "admitted"
    assert admitted.json()["checkIn"]["gate"] == "e2e-north"
    retried = requests.post(f"{api}/checkins", json=scan, headers=scanner, timeout=10)
    assert (retried.status_code, retried.json()["outcome"]) == (200, "replayed")
    again = requests.post(
        f"{api}/checkins",
        json={**scan, "gate": "e2e-south", "scanId": str(uuid.uuid4())},
        headers=scanner,
        timeout=10,
    )
    assert again.status_code == 409, again.text
    problem = again.json()
    assert problem["type"].endswith("/already-checked-in")
    assert problem["firstCheckIn"]["gate"] == "e2e-north"
    assert problem["firstCheckIn"]["at"] == admitted.json()["checkIn"]["at"]

    summary = requests.get(
        f"{api}/events/{event_id}/checkins/summary", headers=scanner, timeout=10
    ).json()
    assert (summary["issued"], summary["admitted"]) == (3, 1)

    # A booking with a checked-in ticket can no longer be cancelled.
    cancel = requests.delete(f"{api}/bookings/{booking_id}", headers=buyer, timeout=10)
    assert cancel.status_code == 409, cancel.text
    assert cancel.json()["type"].endswith("/booking-not-cancellable")
    assert read()["status"] == "CONFIRMED"


def test_cancelled_purchase_cancels_its_order_and_tickets_and_returns_the_seats(
    access_token: Callable[[str], str], stack_env: Callable[[str], str]
) -> None:
    api = stack_env("BOXOFFICE_API_URL")
    admin = {"Authorization": f"Bearer {access_token('olivia')}"}
    buyer = {"Authorization": f"Bearer {access_token('bob')}"}
    scanner = {"Authorization": f"Bearer {access_token('sam')}"}
    event_id = _event(api, admin)
    read = _buy(api, buyer, event_id, 2)
    confirmed = _confirmed(read)

    cancelled = requests.delete(f"{api}/bookings/{confirmed['id']}", headers=buyer, timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    after = wait_for(read, lambda b: (b["order"] or {}).get("status") == "CANCELLED")
    assert after["status"] == "CANCELLED"
    assert after["order"]["status"] == "CANCELLED"
    assert {t["status"] for t in after["order"]["tickets"]} == {"CANCELLED"}
    remaining = requests.get(f"{api}/events/{event_id}", timeout=10).json()["capacity"]
    assert remaining == {"total": 100, "remaining": 100}

    scan = {
        "code": after["order"]["tickets"][0]["code"],
        "eventId": event_id,
        "gate": "e2e-north",
        "scanId": str(uuid.uuid4()),
    }
    refused = requests.post(f"{api}/checkins", json=scan, headers=scanner, timeout=10)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/ticket-cancelled")
