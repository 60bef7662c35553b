"""The buyer's whole journey in the storefront, in headless Chromium against the running stack:
sign in on Keycloak's page and back (PKCE, tokens only in memory, silent sign-in after a reload,
sign-out), browse, register, book 2 tickets, watch the booking turn CONFIRMED without a reload,
the QR codes (decoded from the screen: the ticket codes, signed with the published key), the PDF,
cancel and see the capacity come back; a double click books once; a lost answer is retried with
the same Idempotency-Key and books once; sold out, the ticket limit and an overloaded answer are
shown as their problem's title and detail. Each page is checked with axe-core on the way.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import requests
import zxingcpp
from PIL import Image
from playwright.sync_api import Locator, Page, Route, expect

from boxoffice.domain.tickets import load_public_keys
from conftest import (
    PHONE,
    Api,
    Buyer,
    Watched,
    axe_violations,
    shot,
    sign_in_on_keycloak,
)

ROOT = Path(__file__).resolve().parents[2]
AUTH_URL = re.compile(r".*/realms/boxoffice/protocol/openid-connect/auth\?.*")
CONFIRM_S = 45  # booking -> outbox -> Kafka -> dispatcher -> consume_order -> CONFIRMED (+ PDF)


def _heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def _signed_in_on(page: Page, storefront: str, path: str, buyer: Buyer) -> None:
    """Open `path` and sign in from there (the page sends the browser to Keycloak)."""
    page.goto(f"{storefront}{path}")
    button = page.get_by_role("button", name=re.compile(r"^(Sign in|Sign in to book)$")).first
    button.click()
    sign_in_on_keycloak(page, buyer.username, buyer.password)
    page.wait_for_url(f"{storefront}{path}")
    expect(page.locator("#account")).to_contain_text(buyer.name)


def _no_serious_violations(page: Page, where: str) -> None:
    violations = axe_violations(page)
    assert violations == [], f"{where}: {violations}"


def _event_card(page: Page, name: str) -> Locator:
    """The event's card on What's on, showing more events until it is there. A new event shows
    once the front door's cached catalogue page is refreshed (at most max-age + one refresh)."""
    card = page.locator("li.card", has=page.get_by_role("link", name=name, exact=True))
    deadline = time.monotonic() + 20
    while True:
        expect(page.locator("li.card").first).to_be_visible()
        for _ in range(10):
            if card.count():
                return card
            more = page.get_by_role("button", name="Show more events")
            if not more.is_visible():
                break
            more.click()
            page.wait_for_timeout(300)
        assert time.monotonic() < deadline, f"{name} is not on What's on"
        page.wait_for_timeout(1000)
        page.reload()


def _qr_text(locator: Locator) -> str:
    """The QR code on the screen, read back from a screenshot of it (zxing-cpp)."""
    image = Image.open(io.BytesIO(locator.screenshot()))
    (barcode,) = zxingcpp.read_barcodes(image)
    assert barcode.format == zxingcpp.BarcodeFormat.QRCode
    text: str = barcode.text
    return text


def _front_door_problem(status: int) -> tuple[str, str]:
    """The title and detail the front door words a status with (its template's maps)."""
    template = (ROOT / "stack" / "frontdoor" / "nginx.conf.tmpl").read_text()
    found = []
    for variable in ("bx_problem_title", "bx_problem_detail"):
        block = re.search(r"map \$status \$" + variable + r" \{(.*?)\n\s*\}", template, re.S)
        assert block
        (text,) = re.findall(rf'^\s*{status} "([^"]*)";', block.group(1), re.M)
        found.append(text)
    return found[0], found[1]


@contextlib.contextmanager
def _dispatcher_paused() -> Iterator[None]:
    """The running stack's dispatcher stopped (SIGSTOP) for the block, then resumed: records
    wait in Kafka meanwhile, as they do when a consumer lags."""
    pid = int((ROOT / ".state" / "run" / "dispatcher.pid").read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_signed_out_buyer_is_sent_to_keycloak_and_back_with_tokens_only_in_memory(
    open_page: Any, storefront: str, registered_buyer: Buyer, artifacts: Path
) -> None:
    watched: Watched = open_page()
    page = watched.page
    seen: list[tuple[str, str | None]] = []
    page.on("request", lambda r: seen.append((r.url, r.headers.get("referer"))))

    page.goto(f"{storefront}/account/bookings")
    page.wait_for_url(AUTH_URL)
    query = parse_qs(urlsplit(page.url).query)
    assert query["client_id"] == ["boxoffice-storefront"]
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url SHA-256
    assert query["response_mode"] == ["fragment"]
    assert query["redirect_uri"] == [f"{storefront}/auth/callback"]
    shot(watched, artifacts, "keycloak-sign-in")
    sign_in_on_keycloak(page, registered_buyer.username, registered_buyer.password)

    page.wait_for_url(f"{storefront}/account/bookings")
    expect(_heading(page)).to_have_text("My bookings")
    expect(page.locator("#account")).to_contain_text(registered_buyer.name)
    # Tokens live in memory only: nothing like a JWT in storage or cookies.
    stored = page.evaluate(
        "JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])"
    )
    assert "eyJ" not in stored, stored
    # The authorization code never travelled in a URL to the storefront, and no request of the
    # storefront's pages carried a Referer (no-referrer: nothing leaks to other sites).
    ours = [(url, referer) for url, referer in seen if url.startswith(storefront)]
    assert ours
    assert not [url for url, _ in ours if "code=" in urlsplit(url).query]
    assert not [url for url, referer in seen if referer and referer.startswith(storefront)]

    # A reload empties memory: the page signs in again silently from Keycloak's session.
    page.reload()
    expect(page.locator("#account")).to_contain_text(registered_buyer.name)
    expect(_heading(page)).to_have_text("My bookings")
    assert page.url == f"{storefront}/account/bookings"

    # Signing out ends Keycloak's session too: the next visit asks for the password again.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{storefront}/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.goto(f"{storefront}/account/bookings")
    page.wait_for_url(AUTH_URL)
    expect(page.locator("#password")).to_be_visible()


def test_browse_register_book_two_confirmed_live_qr_codes_pdf_cancel_and_capacity_back(
    open_page: Any, storefront: str, api: Api, new_buyer: Buyer, artifacts: Path
) -> None:
    name = f"Browser flow {uuid.uuid4().hex[:6]}"
    event_id = api.new_event(capacity=40, name=name)
    watched: Watched = open_page()
    page = watched.page

    # Browse: the event with its venue, date, price and seats left.
    page.goto(f"{storefront}/")
    expect(_heading(page)).to_have_text("What's on")
    card = _event_card(page, name)
    expect(card).to_contain_text("Riverside Arena, London")
    expect(card).to_contain_text("£30.00")
    expect(card).to_contain_text("40 of 40 left")
    expect(card.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    shot(watched, artifacts, "home")
    _no_serious_violations(page, "home")

    card.get_by_role("link", name=name).click()
    expect(_heading(page)).to_have_text(name)
    assert page.url == f"{storefront}/event/{event_id}"
    page.select_option("#ticket-count", "2")
    expect(page.locator("#total")).to_have_text("£60.00")
    shot(watched, artifacts, "event")
    _no_serious_violations(page, "event page")

    # Signing in to book: Keycloak, and back to the event.
    page.get_by_role("button", name="Sign in to book").click()
    sign_in_on_keycloak(page, new_buyer.username, new_buyer.password)
    page.wait_for_url(f"{storefront}/event/{event_id}")
    page.select_option("#ticket-count", "2")
    page.get_by_role("button", name="Book 2 tickets").click()

    # A new buyer registers first: the form is prefilled from the ID token.
    page.wait_for_url(re.compile(r".*/account/profile\?next=.*"))
    expect(page.get_by_label("Full name")).to_have_value(new_buyer.name)
    expect(page.get_by_label("E-mail")).to_have_value(f"{new_buyer.username}@example.test")
    page.get_by_label("Address", exact=True).fill("7 Harbour Walk")
    page.get_by_label("Postcode").fill("BS1 5TY")
    page.get_by_label("Town or city").fill("Bristol")
    page.get_by_label("Country").select_option("GB")
    shot(watched, artifacts, "profile")
    _no_serious_violations(page, "profile form")
    page.get_by_role("button", name="Save and continue").click()

    page.wait_for_url(f"{storefront}/event/{event_id}")
    # From here on the page must not reload: this mark would be gone.
    page.evaluate("() => { window.bxStillThisPage = true; }")
    page.evaluate(
        """() => { window.bxStatuses = [];
        new MutationObserver(() => {
          for (const b of document.querySelectorAll('article.booking .status .badge'))
            if (window.bxStatuses.at(-1) !== b.textContent) window.bxStatuses.push(b.textContent);
        }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""
    )
    page.select_option("#ticket-count", "2")
    # The order pipeline confirms within about a second, often before the bookings page has
    # rendered; the dispatcher (the KafkaSource stand-in) is paused until the page shows the
    # booking pending, so that the page's live update is what shows it confirmed.
    with _dispatcher_paused():
        page.get_by_role("button", name="Book 2 tickets").click()
        page.wait_for_url(f"{storefront}/account/bookings")
        expect(page.get_by_role("status").first).to_contain_text(f"Booked: 2 tickets for {name}")
        booking = page.locator("article.booking", has_text=name)
        expect(booking.locator(".status")).to_contain_text("Confirming")
    expect(booking.locator(".status")).to_contain_text("Confirmed", timeout=CONFIRM_S * 1000)
    expect(booking.locator("a.pdf")).to_be_visible(timeout=CONFIRM_S * 1000)
    assert page.evaluate("window.bxStillThisPage") is True
    statuses = page.evaluate("window.bxStatuses")
    assert statuses[0] == "Confirming…", statuses  # shown PENDING first ...
    assert statuses[-1] == "Confirmed", statuses  # ... then CONFIRMED, in place
    shot(watched, artifacts, "bookings-confirmed")
    _no_serious_violations(page, "my bookings")

    # The QR codes on the screen are the tickets' codes, signed with the published key.
    (ours,) = api.bookings_for(new_buyer, event_id)
    codes = {t["seq"]: t["code"] for t in ours["order"]["tickets"]}
    assert sorted(codes) == [1, 2]
    tickets = booking.locator("li.ticket")
    expect(tickets).to_have_count(2)
    jwks = requests.get(f"{storefront}/.well-known/ticket-keys", timeout=10).json()
    keys = load_public_keys(",".join(k["x"] for k in jwks["keys"]))
    for seq in (1, 2):
        ticket = tickets.nth(seq - 1)
        expect(ticket).to_contain_text(f"Ticket {seq} of 2")
        assert _qr_text(ticket.locator("svg.qr")) == codes[seq]
        assert ticket.locator(".ticket-code").inner_text() == codes[seq]
        assert str(keys.verify(codes[seq]).event_id) == event_id
    pdf = requests.get(booking.locator("a.pdf").get_attribute("href") or "", timeout=10)
    assert pdf.status_code == 200
    assert pdf.headers["Content-Type"] == "application/pdf"

    # Cancel, confirmed in place; the seats are back on sale.
    booking.get_by_role("button", name="Cancel booking").click()
    booking.get_by_role("button", name="Yes, cancel booking").click()
    expect(booking.locator(".status")).to_contain_text("Cancelled")
    expect(booking.locator("li.ticket")).to_have_count(0)
    assert api.remaining(event_id) == 40
    booking.get_by_role("link", name=name).click()
    expect(_heading(page)).to_have_text(name)
    deadline = time.monotonic() + 20  # the catalogue may be cached: at most max-age + a refresh
    while "40 of 40 left" not in page.locator("#availability").inner_text():
        assert time.monotonic() < deadline, page.locator("#availability").inner_text()
        page.wait_for_timeout(1000)
        page.reload()
        expect(_heading(page)).to_have_text(name)
    shot(watched, artifacts, "event-after-cancel")


def test_a_double_click_books_once(
    open_page: Any, storefront: str, api: Api, registered_buyer: Buyer
) -> None:
    event_id = api.new_event(capacity=30)
    page = open_page().page
    _signed_in_on(page, storefront, f"/event/{event_id}", registered_buyer)
    keys: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            keys.append(r.headers.get("idempotency-key"))
            if r.method == "POST" and r.url.endswith("/bookings")
            else None
        ),
    )
    page.select_option("#ticket-count", "3")
    page.get_by_role("button", name="Book 3 tickets").dblclick()

    page.wait_for_url(f"{storefront}/account/bookings")
    expect(page.locator("article.booking").first).to_be_visible()
    bookings = api.bookings_for(registered_buyer, event_id)
    assert [b["quantity"] for b in bookings] == [3]
    assert api.remaining(event_id) == 27
    assert keys
    assert len(set(keys)) == 1, keys


def test_an_answer_lost_on_the_way_back_is_retried_with_the_same_key_and_books_once(
    open_page: Any, storefront: str, api: Api, registered_buyer: Buyer
) -> None:
    event_id = api.new_event(capacity=30)
    page = open_page().page
    _signed_in_on(page, storefront, f"/event/{event_id}", registered_buyer)
    posts: list[tuple[str, int, str | None]] = []

    def lose_the_first_answer(route: Route) -> None:
        answer = route.fetch()  # the real create_booking books ...
        posts.append(
            (
                route.request.headers["idempotency-key"],
                answer.status,
                answer.headers.get("idempotent-replayed"),
            )
        )
        if len(posts) == 1:
            route.abort("connectionreset")  # ... but the answer never reaches the page
        else:
            route.fulfill(response=answer)

    page.route(re.compile(r".*/bookings$"), lose_the_first_answer)
    page.select_option("#ticket-count", "2")
    page.get_by_role("button", name="Book 2 tickets").click()
    expect(page.get_by_role("alert")).to_contain_text("No connection")
    page.get_by_role("button", name="Book 2 tickets").click()  # the buyer tries again

    page.wait_for_url(f"{storefront}/account/bookings")
    expect(page.get_by_role("status").first).to_contain_text("Already booked: 2 tickets")
    (first, again) = posts
    assert first[0] == again[0]  # the same Idempotency-Key
    assert (first[1], again[1], again[2]) == (201, 201, "true")  # replayed, not booked again
    assert [b["quantity"] for b in api.bookings_for(registered_buyer, event_id)] == [2]
    assert api.remaining(event_id) == 28


def test_sold_out_shows_the_problems_title_and_detail(
    open_page: Any, storefront: str, api: Api, registered_buyer: Buyer, artifacts: Path
) -> None:
    event_id = api.new_event(capacity=1)
    watched: Watched = open_page()
    page = watched.page
    _signed_in_on(page, storefront, f"/event/{event_id}", registered_buyer)
    expect(page.locator("#availability")).to_contain_text("Only 1 left")

    # Meanwhile someone else buys the last seat.
    alice = api.token("alice", "alice-dev-password")
    body = {"eventId": event_id, "ticketCount": 1}
    taken = api.call(
        "POST", "/bookings", alice, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert taken.status_code == 201, taken.text
    refused = api.call(
        "POST", "/bookings", alice, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"].endswith("/sold-out")

    page.get_by_role("button", name="Book 1 ticket").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(problem["title"])
    expect(alert).to_contain_text(problem["detail"])
    expect(page.locator("#availability")).to_have_text("Sold out")
    shot(watched, artifacts, "sold-out")
    _no_serious_violations(page, "sold out")
    assert api.bookings_for(registered_buyer, event_id) == []


def test_the_booking_form_offers_the_apis_per_order_limit_not_a_number_of_its_own(
    open_page: Any, storefront: str, api: Api, registered_buyer: Buyer
) -> None:
    event_id = api.new_event(capacity=50)
    admin = api.token("olivia", "olivia-dev-password")
    limit = api.call("GET", f"/events/{event_id}", admin).json()["maxTicketsPerOrder"]
    page = open_page().page
    _signed_in_on(page, storefront, f"/event/{event_id}", registered_buyer)
    expect(page.locator("#ticket-count option")).to_have_count(min(limit, 50))

    # The same real answer with another limit (as with BOXOFFICE_MAX_TICKETS_PER_ORDER=3): the
    # form follows it.
    def limit_of_three(route: Route) -> None:
        answer = route.fetch()
        route.fulfill(response=answer, json={**answer.json(), "maxTicketsPerOrder": 3})

    page.route(re.compile(rf".*/events/{event_id}$"), limit_of_three)
    page.reload()
    expect(page.locator("#ticket-count option")).to_have_count(3)


def test_a_started_event_shows_sales_ended_and_no_booking_form(
    open_page: Any, storefront: str, api: Api
) -> None:
    # POST /bookings refuses a started event (event-not-on-sale): the page must not offer it.
    event_id = api.new_event(capacity=5)
    with psycopg.connect(os.environ["BOXOFFICE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "UPDATE event SET starts_at = now() - interval '1 minute' WHERE id = %s", (event_id,)
        )
    admin = api.token("olivia", "olivia-dev-password")
    assert api.call("GET", f"/events/{event_id}", admin).json()["status"] == "SALES_ENDED"
    page = open_page().page
    page.goto(f"{storefront}/event/{event_id}")
    expect(page.locator("#availability")).to_have_text("Sales ended")
    expect(page.locator("#event-action")).to_contain_text("Sales have ended")
    expect(page.locator("#ticket-count")).to_have_count(0)


def test_the_ticket_limit_shows_the_problems_title_and_detail(
    open_page: Any, storefront: str, api: Api, registered_buyer: Buyer
) -> None:
    event_id = api.new_event(capacity=50)
    token = api.token(registered_buyer.username, registered_buyer.password)
    body = {"eventId": event_id, "ticketCount": 10}
    held = api.call(
        "POST", "/bookings", token, json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert held.status_code == 201, held.text  # the most one buyer may hold (default 10)
    page = open_page().page
    _signed_in_on(page, storefront, f"/event/{event_id}", registered_buyer)

    page.get_by_role("button", name="Book 1 ticket").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Ticket limit per customer exceeded")
    detail = api.call(
        "POST",
        "/bookings",
        token,
        json={"eventId": event_id, "ticketCount": 1},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    ).json()["detail"]
    expect(alert).to_contain_text(detail)
    assert [b["quantity"] for b in api.bookings_for(registered_buyer, event_id)] == [10]


def test_an_overloaded_answer_shows_its_retry_after_then_the_retry_books_once(
    open_page: Any, storefront: str, api: Api, registered_buyer: Buyer
) -> None:
    """The front door's 503 (a function at its limit, ADR 11) is injected on the way, as the
    front door words it, for the first request only; the retry goes to the real stack."""
    event_id = api.new_event(capacity=30)
    page = open_page().page
    _signed_in_on(page, storefront, f"/event/{event_id}", registered_buyer)
    title, detail = _front_door_problem(503)
    keys: list[str] = []

    def overloaded_once(route: Route) -> None:
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            route.fulfill(
                status=503,
                headers={"Content-Type": "application/problem+json", "Retry-After": "2"},
                json={
                    "type": "https://boxoffice.example/problems/service-unavailable",
                    "title": title,
                    "status": 503,
                    "detail": detail,
                },
            )
        else:
            route.continue_()

    page.route(re.compile(r".*/bookings$"), overloaded_once)
    page.select_option("#ticket-count", "2")
    button = page.get_by_role("button", name=re.compile(r"^(Book 2 tickets|Booking…)$"))
    button.click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(title)
    expect(alert).to_contain_text(detail)
    expect(page.locator(".retry")).to_contain_text(re.compile(r"try again in [12] s"))
    expect(button).to_be_disabled()
    expect(page.locator(".retry")).to_have_text("You can try again now.", timeout=5000)
    expect(button).to_be_enabled()
    button.click()
    page.wait_for_url(f"{storefront}/account/bookings")
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert [b["quantity"] for b in api.bookings_for(registered_buyer, event_id)] == [2]


def test_the_first_page_works_on_a_phone_and_with_the_keyboard(
    open_page: Any, storefront: str, artifacts: Path
) -> None:
    watched: Watched = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    page = watched.page
    page.goto(f"{storefront}/")
    expect(page.locator("li.card").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    sign_in = page.get_by_role("button", name="Sign in").bounding_box()
    assert sign_in
    assert sign_in["height"] >= 44  # a comfortable touch target
    shot(watched, artifacts, "home-phone")
    _no_serious_violations(page, "home on a phone")

    # Keyboard: the skip link first, then into the content; following a link moves focus to the
    # new page's heading (screen readers announce it).
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    first = page.evaluate("document.activeElement.textContent")
    assert page.evaluate("document.activeElement.closest('li.card') !== null")
    page.keyboard.press("Enter")
    expect(_heading(page)).to_have_text(first)
    assert page.evaluate("document.activeElement.id") == "page-heading"
    shot(watched, artifacts, "event-phone")
    _no_serious_violations(page, "event page on a phone")


def test_the_page_runs_no_injected_script_and_reaches_no_other_origin(
    open_page: Any, storefront: str
) -> None:
    """The Content-Security-Policy in force: Trusted Types refuse HTML strings, script text and
    script URLs (no innerHTML anywhere, nothing to inject), and nothing is loaded from or sent to
    an origin other than the storefront's and the OpenID Provider's."""
    watched: Watched = open_page()
    page = watched.page
    page.goto(f"{storefront}/")
    expect(page.locator("li.card").first).to_be_visible()
    outcome = page.evaluate(
        """async () => {
          const violations = [];
          document.addEventListener('securitypolicyviolation',
                                    (e) => violations.push(e.violatedDirective));
          const refused = (attempt) => {
            try { attempt(); return 'accepted'; } catch (e) { return e.name; }
          };
          const script = document.createElement('script');
          const result = {
            html: refused(() => { document.querySelector('footer').innerHTML = '<b>x</b>'; }),
            scriptText: refused(() => { script.text = 'window.bxInjected = true'; }),
            scriptUrl: refused(() => { script.src = 'http://127.0.0.1:9/evil.js'; }),
          };
          const image = document.createElement('img');
          image.src = 'http://127.0.0.1:9/pixel.png';
          document.body.append(image);
          result.fetch = await fetch('http://127.0.0.1:9/steal').then(() => 'sent', (e) => e.name);
          await new Promise((resolve) => setTimeout(resolve, 300));
          return {...result, injectedRan: window.bxInjected === true, violations};
        }"""
    )
    assert outcome["html"] == outcome["scriptText"] == outcome["scriptUrl"] == "TypeError"
    assert outcome["injectedRan"] is False
    assert outcome["fetch"] == "TypeError"
    assert {"require-trusted-types-for", "img-src", "connect-src"} <= set(outcome["violations"])
    watched.problems.clear()  # the violations above were the point
