"""The waiting room's line page in headless Chromium, against the running stack's waiting_room
function and admission controller (ADR 14): an event in queue mode sends the buyer to the line,
which shows the place, the people ahead and the estimated wait, moves on to the booking form by
itself when the buyer is admitted, says at once when the event sold out in front of them, and
joins again by itself when the waiting room was too busy to give a place.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from conftest import Api, Buyer, KeycloakAdmin, Watched, axe_violations, shot, sign_in_on_keycloak

ADMITTED_S = 30  # opening + the controller's ticks (1 s) + the page's polls


def _queue(api: Api, event_id: str, opens_in_s: float, rate: float) -> None:
    """Queue mode, first come first served, opening shortly (nobody is admitted before)."""
    admin = api.token("olivia", "olivia-dev-password")
    opens = datetime.now(UTC) + timedelta(seconds=opens_in_s)
    configured = api.call(
        "PUT",
        f"/events/{event_id}/queue",
        admin,
        json={
            "opensAt": opens.isoformat(),
            "admissionRate": rate,
            "admissionSeconds": 120,
            "randomiseEarlyArrivals": False,
            "expectedTicketsPerBuyer": 1,
        },
    )
    assert configured.status_code == 201, configured.text


def _join(api: Api, buyer: Buyer, event_id: str) -> dict[str, Any]:
    token = api.token(buyer.username, buyer.password)
    joined = api.call("POST", f"/events/{event_id}/queue", token)
    assert joined.status_code == 201, joined.text
    place: dict[str, Any] = joined.json()
    return place


def _join_in_the_browser(page: Page, storefront: str, event_id: str, buyer: Buyer) -> None:
    page.goto(f"{storefront}/event/{event_id}")
    page.get_by_role("button", name="Sign in to join the line").click()
    sign_in_on_keycloak(page, buyer.username, buyer.password)
    page.wait_for_url(f"{storefront}/line/{event_id}")


@pytest.fixture
def other_buyer(keycloak_admin: KeycloakAdmin, api: Api) -> Iterator[Buyer]:
    """Someone else in the line (registered, booking through the API)."""
    buyer = keycloak_admin.new_buyer()
    api.register(buyer)
    yield buyer
    keycloak_admin.delete(buyer)


def test_the_line_shows_the_place_and_moves_on_to_booking_by_itself(
    open_page: Any,
    storefront: str,
    api: Api,
    registered_buyer: Buyer,
    other_buyer: Buyer,
    artifacts: Path,
) -> None:
    name = f"Hot on-sale {uuid.uuid4().hex[:6]}"
    event_id = api.new_event(capacity=10, name=name)
    _queue(api, event_id, opens_in_s=12, rate=1)
    _join(api, other_buyer, event_id)  # one buyer ahead
    watched: Watched = open_page()
    page = watched.page
    _join_in_the_browser(page, storefront, event_id, registered_buyer)

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Waiting room: {name}")
    expect(page.locator("#line-position")).to_have_text("2")
    expect(page.locator("#line-ahead")).to_have_text("1")
    expect(page.locator("#line-wait")).not_to_be_empty()
    shot(watched, artifacts, "waiting-room")
    violations = axe_violations(page)
    assert violations == [], violations

    # Admitted: the page moves on to the event's booking form without the buyer doing anything.
    page.wait_for_url(f"{storefront}/event/{event_id}", timeout=ADMITTED_S * 1000)
    expect(page.get_by_role("status").first).to_contain_text("It is your turn")
    page.get_by_role("button", name="Book 1 ticket").click()
    page.wait_for_url(f"{storefront}/account/bookings")
    (booking,) = api.bookings_for(registered_buyer, event_id)
    assert booking["quantity"] == 1


def test_the_line_says_at_once_when_the_event_sold_out_in_front_of_the_buyer(
    open_page: Any,
    storefront: str,
    api: Api,
    registered_buyer: Buyer,
    other_buyer: Buyer,
    artifacts: Path,
) -> None:
    event_id = api.new_event(capacity=1)
    _queue(api, event_id, opens_in_s=6, rate=1)
    _join(api, other_buyer, event_id)  # first in line: will buy the only seat
    watched: Watched = open_page()
    page = watched.page
    _join_in_the_browser(page, storefront, event_id, registered_buyer)
    expect(page.locator("#line-position")).to_have_text("2")

    # The buyer ahead is admitted at opening and books the last seat.
    token = api.token(other_buyer.username, other_buyer.password)
    deadline = time.monotonic() + ADMITTED_S
    while True:
        place = api.call("GET", f"/events/{event_id}/queue/me", token).json()
        if place["state"] == "admitted":
            break
        assert time.monotonic() < deadline, place
        time.sleep(0.5)
    booked = api.call(
        "POST",
        "/bookings",
        token,
        json={"eventId": event_id, "ticketCount": 1},
        headers={
            "Idempotency-Key": str(uuid.uuid4()),
            "Admission-Token": place["admission"]["token"],
        },
    )
    assert booked.status_code == 201, booked.text
    sold_at = time.monotonic()

    expect(page.locator("#line-state")).to_contain_text("Sold out", timeout=10_000)
    told_after = time.monotonic() - sold_at
    assert told_after < 8, told_after  # the public line (cached 1 s) is polled every 2 s
    expect(page.locator("#line-state")).to_contain_text(re.compile("every ticket is sold"))
    shot(watched, artifacts, "waiting-room-sold-out")
    assert api.bookings_for(registered_buyer, event_id) == []


def test_a_buyer_refused_while_the_line_is_busy_joins_again_by_itself(
    open_page: Any, storefront: str, api: Api, registered_buyer: Buyer
) -> None:
    event_id = api.new_event(capacity=10)
    _queue(api, event_id, opens_in_s=120, rate=1)
    watched: Watched = open_page()
    page = watched.page
    # The first join is answered as the waiting room answers when it sheds load (ADR 11); the
    # page's next attempt goes to the running waiting_room function.
    refused: list[str] = []

    def busy_once(route: Route) -> None:
        if route.request.method != "POST" or refused:
            route.fallback()
            return
        refused.append(route.request.url)
        problem = {
            "type": "https://boxoffice.example/problems/overloaded",
            "title": "Overloaded",
            "status": 503,
            "detail": "too many requests in flight; retry after Retry-After",
        }
        route.fulfill(
            status=503,
            headers={"Retry-After": "1", "Content-Type": "application/problem+json"},
            body=json.dumps(problem),
        )

    page.route(re.compile(rf".*/events/{event_id}/queue$"), busy_once)
    _join_in_the_browser(page, storefront, event_id, registered_buyer)

    expect(page.locator("#line-joining")).to_contain_text("Trying again in")
    expect(page.locator("#line-position")).to_have_text("1", timeout=10_000)
    assert len(refused) == 1
    assert watched.problems == []
