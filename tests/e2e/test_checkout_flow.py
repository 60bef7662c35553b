"""Checkout on the running stack, over HTTP through the front door, nothing in-process
(docs/adr/0020-checkout-state-machine.md): an admin creates an event paid online with three
ticket categories; a buyer books two seats of one category (a HELD booking with its expiry), pays
on the local provider's page (devpay: Stripe's wire format, a real process), devpay's signed
webhook reaches payment_webhook through the front door, the booking is published -> Kafka ->
consume_order -> CONFIRMED with tickets, and the tickets arrive by email (Mailpit) as a PDF; the
webhook delivered again changes nothing; the buyer cancels and is refunded through the provider,
and the category's seats are back. A second hold is left to lapse and the housekeeping function
releases it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import requests

from pdf_tickets import read_ticket_pdf
from polling import Body, wait_for

pytestmark = pytest.mark.e2e

ARENA = "7e0e0000-0000-4000-8000-000000000002"  # demo venue, 60,000 seats


def _money(amount: str) -> Body:
    return {"amount": amount, "currency": "GBP"}


class Shop:
    def __init__(self, api: str, admin: str, buyer: str) -> None:
        self.api = api
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.buyer = {"Authorization": f"Bearer {buyer}"}

    def create_event(self) -> Body:
        starts = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0)
        created = requests.post(
            f"{self.api}/events",
            json={
                "venueId": ARENA,
                "name": f"e2e checkout {uuid.uuid4()}",
                "startsAt": starts.isoformat(),
                "onlinePayment": True,
                "categories": [
                    {"name": "Standing", "price": _money("25.00"), "capacity": 20},
                    {"name": "Seated", "price": _money("40.00"), "capacity": 8},
                    {"name": "VIP", "price": _money("90.00"), "capacity": 2},
                ],
            },
            headers=self.admin,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        event: Body = created.json()
        return event

    def category(self, event_id: str, name: str) -> Body:
        # The event's own function, not the front door's cache: the seats as they are now.
        response = requests.get(f"{self.api}/events/{event_id}", headers=self.admin, timeout=10)
        assert response.status_code == 200, response.text
        (found,) = [c for c in response.json()["categories"] if c["name"] == name]
        return dict(found)

    def book(self, event_id: str, category_id: str, count: int) -> Body:
        booked = requests.post(
            f"{self.api}/bookings",
            json={"eventId": event_id, "ticketCount": count, "categoryId": category_id},
            headers={**self.buyer, "Idempotency-Key": str(uuid.uuid4())},
            timeout=10,
        )
        assert booked.status_code == 201, booked.text
        body: Body = booked.json()
        return body

    def read(self, booking_id: str) -> Body:
        response = requests.get(f"{self.api}/bookings/{booking_id}", headers=self.buyer, timeout=10)
        assert response.status_code == 200, response.text
        body: Body = response.json()
        return body

    def pay(self, booking_id: str) -> requests.Response:
        return requests.post(
            f"{self.api}/bookings/{booking_id}/payment", headers=self.buyer, timeout=10
        )


@pytest.fixture
def shop(access_token: Callable[[str], str], stack_env: Callable[[str], str]) -> Shop:
    return Shop(stack_env("BOXOFFICE_API_URL"), access_token("olivia"), access_token("bob"))


def test_book_a_category_hold_pay_on_the_providers_page_confirmed_emailed_cancel_refunded(
    shop: Shop, stack_env: Callable[[str], str]
) -> None:
    event = shop.create_event()
    seated = next(c for c in event["categories"] if c["name"] == "Seated")

    held = shop.book(event["id"], seated["id"], 2)
    assert held["status"] == "HELD"
    assert held["categoryId"] == seated["id"]
    assert held["total"] == _money("80.00")
    expires = datetime.fromisoformat(held["holdExpiresAt"])
    assert timedelta(minutes=9) < expires - datetime.now(UTC) <= timedelta(minutes=10)
    assert shop.category(event["id"], "Seated")["remaining"] == 6

    # Pay: once per booking (asking again gets the same payment), on the provider's page.
    payment = shop.pay(held["id"])
    assert payment.status_code == 200, payment.text
    assert shop.pay(held["id"]).json()["paymentId"] == payment.json()["paymentId"]
    assert payment.json()["amount"] == _money("80.00")
    page = requests.get(payment.json()["redirectUrl"], timeout=10)
    assert page.status_code == 200
    assert "80.00" in page.text
    back = f"{shop.api}/"
    paid = requests.post(
        f"{payment.json()['redirectUrl']}/pay",
        data={"return_url": back},
        allow_redirects=False,
        timeout=10,
    )
    assert paid.status_code == 303
    assert paid.headers["Location"] == (
        f"{back}?payment={payment.json()['paymentId']}&status=succeeded"
    )

    confirmed = wait_for(
        lambda: shop.read(held["id"]),
        lambda b: b["status"] == "CONFIRMED" and bool((b["order"] or {}).get("documentUrl")),
    )
    assert confirmed["status"] == "CONFIRMED", confirmed
    assert confirmed["payment"] == {
        "paid": _money("80.00"),
        "refunded": _money("0.00"),
        "refundPending": _money("0.00"),
    }
    tickets = confirmed["order"]["tickets"]
    assert sorted(t["seq"] for t in tickets) == [1, 2]

    # The tickets by email, the PDF attached, once.
    inbox = stack_env("BOXOFFICE_MAIL_WEB_URL")
    query = {"query": f"message-id:tickets.{confirmed['order']['id']}"}

    def messages() -> Body:
        found = requests.get(f"{inbox}/api/v1/search", params=query, timeout=5)
        found.raise_for_status()
        return dict(found.json())

    found = wait_for(messages, lambda m: len(m["messages"]) >= 1)
    (summary,) = found["messages"]
    message = requests.get(f"{inbox}/api/v1/message/{summary['ID']}", timeout=5).json()
    (attachment,) = message["Attachments"]
    pdf = requests.get(
        f"{inbox}/api/v1/message/{summary['ID']}/part/{attachment['PartID']}", timeout=5
    )
    codes = {t["seq"]: t["code"] for t in tickets}
    assert [p.codes for p in read_ticket_pdf(pdf.content)] == [[codes[1]], [codes[2]]]

    # The provider delivers its event again: nothing changes.
    devpay = stack_env("BOXOFFICE_DEVPAY_URL")
    events = requests.get(f"{devpay}/devpay/events", timeout=5).json()["data"]
    (succeeded,) = [
        e
        for e in events
        if e["object_id"] == payment.json()["paymentId"] and e["type"] == "payment_intent.succeeded"
    ]
    again = requests.post(f"{devpay}/devpay/events/{succeeded['id']}/redeliver", timeout=5)
    assert again.status_code == 202
    redelivered = wait_for(
        lambda: next(
            e
            for e in requests.get(f"{devpay}/devpay/events", timeout=5).json()["data"]
            if e["id"] == succeeded["id"]
        ),
        lambda e: [d["status"] for d in e["deliveries"]] == ["delivered", "delivered"],
    )
    assert [d["status"] for d in redelivered["deliveries"]] == ["delivered", "delivered"]
    after = shop.read(held["id"])
    assert (after["status"], after["order"]["id"]) == ("CONFIRMED", confirmed["order"]["id"])
    assert len(messages()["messages"]) == 1

    # Cancel: refunded through the provider, seats back, tickets cancelled.
    cancelled = requests.delete(f"{shop.api}/bookings/{held['id']}", headers=shop.buyer, timeout=10)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    refunded = wait_for(
        lambda: shop.read(held["id"]),
        lambda b: (
            b["payment"]["refunded"] == _money("80.00")
            and (b["order"] or {}).get("status") == "CANCELLED"
        ),
    )
    assert refunded["payment"]["refunded"] == _money("80.00"), refunded
    assert {t["status"] for t in refunded["order"]["tickets"]} == {"CANCELLED"}
    assert shop.category(event["id"], "Seated")["remaining"] == 8
    assert shop.pay(held["id"]).status_code == 409


def test_an_unpaid_hold_lapses_and_the_housekeeping_function_gives_its_seats_back(
    shop: Shop, stack_env: Callable[[str], str]
) -> None:
    event = shop.create_event()
    vip = next(c for c in event["categories"] if c["name"] == "VIP")
    held = shop.book(event["id"], vip["id"], 2)
    assert shop.category(event["id"], "VIP")["status"] == "SOLD_OUT"
    # What waiting BOXOFFICE_HOLD_SECONDS would do (the database is the stack's own).
    with psycopg.connect(stack_env("BOXOFFICE_DATABASE_URL"), autocommit=True) as db:
        db.execute(
            "UPDATE booking SET hold_expires_at = now() - interval '1 second' WHERE id = %s",
            (held["id"],),
        )

    report = requests.post(stack_env("BOXOFFICE_HOUSEKEEPING_URL"), json={}, timeout=30)

    assert report.status_code == 200, report.text
    expired = shop.read(held["id"])
    assert expired["status"] == "EXPIRED"
    assert expired["expiredAt"] is not None
    assert shop.category(event["id"], "VIP")["remaining"] == 2
    answer = shop.pay(held["id"])
    assert answer.status_code == 409
    assert answer.json()["type"].endswith("/booking-not-payable")
