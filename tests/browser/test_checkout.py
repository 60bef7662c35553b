"""Checkout in the storefront, in headless Chromium against the running stack (issue 22,
docs/adr/0020-checkout-state-machine.md): sign in, pick a ticket category, book 2 (a hold with
its countdown), pay on the stack's payment provider's page (devpay, through the same Stripe
adapter and webhook function as production), back in the shop the booking turns CONFIRMED with
its tickets, the email with the PDF arrives in the stack's SMTP sink (Mailpit), cancel, and the
refund is shown and the category's seats are back; a declined payment leaves the hold payable.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Locator, Page, expect
from test_storefront import CONFIRM_S, _heading, _no_serious_violations, _signed_in_on

from conftest import Api, Buyer, Watched, shot
from pdf_tickets import read_ticket_pdf

CATEGORIES = [("Standing", "25.00", 100), ("Seated", "40.00", 30), ("VIP", "90.00", 5)]
PROVIDER_PAGE = re.compile(r"^https?://[^/]+/checkout/(?P<payment>[^/?]+)\?return_url=.+")
MAIL_S = 60  # CONFIRMED -> the document worker's PDF -> the email outbox -> SMTP

# Installed before the storefront's own scripts: what the payment's outcome line said, in order
# (the webhook usually arrives within a second, before a poll could be seen from outside).
RECORD_PAYMENT_OUTCOME = """
window.bxPaymentSaid = [];
new MutationObserver(() => {
  const box = document.querySelector('.payment-outcome');
  const text = box ? box.textContent.trim() : '';
  if (text && window.bxPaymentSaid.at(-1) !== text) window.bxPaymentSaid.push(text);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def _seconds(clock: str) -> int:
    minutes, seconds = clock.split(":")
    return int(minutes) * 60 + int(seconds)


def _seconds_until(iso: str) -> float:
    return (datetime.fromisoformat(iso) - datetime.now().astimezone()).total_seconds()


def _book_held(page: Page, category: str, tickets: int, total: str) -> Locator:
    """On the event page: pick the category and the count, book; the hold's panel."""
    page.get_by_role("group", name="Ticket category").get_by_label(category).check()
    page.select_option("#ticket-count", str(tickets))
    expect(page.locator("#total")).to_have_text(total)
    page.get_by_role("button", name=f"Book {tickets} ticket{'s' if tickets > 1 else ''}").click()
    held = page.locator("section.held")
    expect(held.get_by_role("heading", name="Your seats are held")).to_be_focused()
    return held


def _pay_on_the_providers_page(page: Page, pay: Locator, amount: str, button: str) -> str:
    """Pay (or decline) on devpay's checkout page; back in the shop. The provider's payment id."""
    pay.click()
    page.wait_for_url(PROVIDER_PAGE)
    match = PROVIDER_PAGE.match(page.url)
    assert match
    expect(page.get_by_test_id("devpay-amount")).to_contain_text(amount)
    page.get_by_test_id(button).click()
    page.wait_for_url(re.compile(r".*/account/bookings(\?.*)?$"))
    expect(_heading(page)).to_have_text("My bookings")
    return match.group("payment")


def _ticket_email(inbox: str, order_id: str) -> list[dict[str, Any]]:
    found = requests.get(
        f"{inbox}/api/v1/search", params={"query": f"message-id:tickets.{order_id}"}, timeout=5
    )
    found.raise_for_status()
    messages: list[dict[str, Any]] = found.json()["messages"]
    return messages


def test_sign_in_pick_a_category_book_two_pay_confirmed_email_cancel_refund_and_capacity_back(
    open_page: Any,
    storefront: str,
    api: Api,
    registered_buyer: Buyer,
    mail_inbox: str,
    artifacts: Path,
) -> None:
    name = f"Checkout flow {uuid.uuid4().hex[:6]}"
    event_id = api.new_event(name=name, categories=CATEGORIES, online_payment=True)
    seated = api.category(event_id, "Seated")
    watched: Watched = open_page()
    page = watched.page
    page.context.add_init_script(RECORD_PAYMENT_OUTCOME)

    # Sign in on the event's page; its categories with their prices and seats left.
    _signed_in_on(page, storefront, f"/event/{event_id}", registered_buyer)
    expect(_heading(page)).to_have_text(name)
    expect(page.locator(".facts")).to_contain_text("from £25.00 per ticket")
    picker = page.get_by_role("group", name="Ticket category")
    expect(picker.get_by_role("radio")).to_have_count(3)
    for category, price, capacity in CATEGORIES:
        label = picker.locator("label", has_text=category)
        expect(label).to_contain_text(f"£{price}")
        expect(label).to_contain_text("Only 5 left" if capacity == 5 else f"{capacity} left")
    expect(picker.get_by_label("Standing")).to_be_checked()  # the first on sale
    shot(watched, artifacts, "event-categories")
    _no_serious_violations(page, "event page with categories")

    # Book 2 Seated: a hold, counting down to the API's holdExpiresAt.
    held = _book_held(page, "Seated", 2, "£80.00")
    (booking,) = api.bookings_for(registered_buyer, event_id)
    assert (booking["status"], booking["quantity"], booking["categoryId"]) == (
        "HELD",
        2,
        seated["id"],
    )
    assert booking["total"] == {"amount": "80.00", "currency": "GBP"}
    assert api.category(event_id, "Seated")["remaining"] == 28
    clock = held.locator(".hold-clock")
    expect(clock).to_have_attribute("role", "timer")
    shown = _seconds(clock.inner_text())
    assert abs(shown - _seconds_until(booking["holdExpiresAt"])) <= 3, (shown, booking)
    expect(clock).not_to_have_text(clock.inner_text(), timeout=3000)  # it counts down
    assert _seconds(clock.inner_text()) < shown
    expect(held.locator(".hold-live")).to_have_attribute("aria-live", "polite")
    shot(watched, artifacts, "event-held")
    _no_serious_violations(page, "a hold on the event page")

    # Pay on devpay's page; back in the shop the payment is confirmed, then the tickets.
    payment = _pay_on_the_providers_page(
        page, held.get_by_role("button", name="Pay £80.00"), "80.00", "devpay-pay"
    )
    assert payment.startswith("pi_")
    assert page.url == f"{storefront}/account/bookings"  # the outcome is not said again on reload
    outcome = page.locator(".payment-outcome")
    expect(outcome).to_contain_text("Payment confirmed", timeout=CONFIRM_S * 1000)
    said = page.evaluate("window.bxPaymentSaid")
    assert said[0] == "Payment received, confirming your booking…", said
    article = page.locator("article.booking", has_text=name)
    expect(article).to_contain_text("2 tickets · Seated · £80.00")
    expect(article.locator(".status")).to_contain_text("Confirmed", timeout=CONFIRM_S * 1000)
    expect(article.locator("li.ticket")).to_have_count(2)
    expect(article.locator("a.pdf")).to_be_visible(timeout=CONFIRM_S * 1000)
    expect(article.locator(".payment")).to_have_text("Paid £80.00")
    expect(article.get_by_role("button", name=re.compile("^Pay"))).to_have_count(0)
    shot(watched, artifacts, "bookings-paid")
    _no_serious_violations(page, "my bookings, paid")

    (booking,) = api.bookings_for(registered_buyer, event_id)
    assert booking["status"] == "CONFIRMED"
    assert booking["payment"]["paid"] == {"amount": "80.00", "currency": "GBP"}
    codes = sorted(t["code"] for t in booking["order"]["tickets"])
    assert len(codes) == 2

    # The email with the tickets is in the sink's inbox, once, with the PDF of both.
    order_id = booking["order"]["id"]
    deadline = time.monotonic() + MAIL_S
    while not (messages := _ticket_email(mail_inbox, order_id)):
        assert time.monotonic() < deadline, f"no ticket email for order {order_id}"
        time.sleep(1)
    (summary,) = messages
    message = requests.get(f"{mail_inbox}/api/v1/message/{summary['ID']}", timeout=5).json()
    assert [t["Address"] for t in message["To"]] == [f"{registered_buyer.username}@example.test"]
    assert name in message["Subject"]
    (attachment,) = message["Attachments"]
    assert attachment["ContentType"] == "application/pdf"
    assert attachment["FileName"] == f"tickets-{booking['id']}.pdf"
    pdf = requests.get(
        f"{mail_inbox}/api/v1/message/{summary['ID']}/part/{attachment['PartID']}", timeout=10
    )
    assert sorted(code for p in read_ticket_pdf(pdf.content) for code in p.codes) == codes

    # Cancel: refunded through the provider, shown in place; the category's seats are back.
    article.get_by_role("button", name="Cancel booking").click()
    expect(article).to_contain_text("The £80.00 you paid is refunded.")
    article.get_by_role("button", name="Yes, cancel booking").click()
    expect(article.locator(".status")).to_contain_text("Cancelled")
    expect(article.locator(".payment")).to_contain_text("Refunded £80.00", timeout=20_000)
    expect(article.locator(".payment")).not_to_contain_text("Refund pending")
    expect(article.locator("li.ticket")).to_have_count(0)
    expect(outcome).to_be_empty()  # "paid" is over
    shot(watched, artifacts, "bookings-refunded")
    (booking,) = api.bookings_for(registered_buyer, event_id)
    assert booking["status"] == "CANCELLED"
    assert booking["payment"]["refunded"] == booking["payment"]["paid"]
    assert api.category(event_id, "Seated")["remaining"] == 30
    assert api.remaining(event_id) == 135

    article.get_by_role("link", name=name).click()
    expect(_heading(page)).to_have_text(name)
    seats = page.get_by_role("group", name="Ticket category").locator("label", has_text="Seated")
    deadline = time.monotonic() + 20  # the catalogue may be cached: at most max-age + a refresh
    while "30 left" not in seats.inner_text():
        assert time.monotonic() < deadline, seats.inner_text()
        page.wait_for_timeout(1000)
        page.reload()
        expect(_heading(page)).to_have_text(name)


def test_a_declined_payment_is_shown_and_the_hold_stays_payable(
    open_page: Any, storefront: str, api: Api, registered_buyer: Buyer, artifacts: Path
) -> None:
    event_id = api.new_event(categories=CATEGORIES, online_payment=True)
    watched: Watched = open_page()
    page = watched.page
    _signed_in_on(page, storefront, f"/event/{event_id}", registered_buyer)
    held = _book_held(page, "VIP", 1, "£90.00")

    declined = _pay_on_the_providers_page(
        page, held.get_by_role("button", name="Pay £90.00"), "90.00", "devpay-decline"
    )
    alert = page.locator(".payment-outcome").get_by_role("alert")
    expect(alert).to_contain_text("Your payment did not go through")
    expect(alert).to_contain_text("You can pay again while your seats are held")
    expect(page.locator("article.booking")).to_have_count(1)
    article = page.locator("article.booking")
    expect(article.locator(".status")).to_contain_text("Awaiting payment")
    expect(article.locator(".hold-clock")).to_have_text(re.compile(r"^\d+:[0-5]\d$"))
    pay = article.get_by_role("button", name="Pay £90.00")
    expect(pay).to_be_enabled()
    shot(watched, artifacts, "bookings-declined")
    _no_serious_violations(page, "my bookings, payment declined")
    (booking,) = api.bookings_for(registered_buyer, event_id)
    assert booking["status"] == "HELD"
    assert booking["payment"] is None or booking["payment"]["paid"]["amount"] in ("0", "0.00")
    assert api.category(event_id, "VIP")["remaining"] == 4

    # Paying again goes to the same payment at the provider (one per booking).
    pay.click()
    page.wait_for_url(PROVIDER_PAGE)
    match = PROVIDER_PAGE.match(page.url)
    assert match
    assert match.group("payment") == declined
