"""The storefront in a real browser: Debian's headless Chromium driven by Playwright for Python
(`executable_path`: Playwright never downloads a browser here), against the running stack's front
door ($BOXOFFICE_STOREFRONT_URL), signing in on the real Keycloak login page.

`make test` installs what these need (`make browser-deps`: Debian's chromium and fonts, and the
storefront's npm packages, of which the tests use axe-core). Every page a test opens is watched:
a Content-Security-Policy violation or an uncaught script error fails the test. Screenshots go to
$BOXOFFICE_BROWSER_ARTIFACTS (default artifacts/browser, not committed); a failing test leaves
one of its page there too.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BOXOFFICE_CHROMIUM", "/usr/bin/chromium")
# As the brief for browser tests on this machine asks: no GPU, no network of Chromium's own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = ROOT / "storefront" / "node_modules" / "axe-core" / "axe.min.js"
ARENA = "7e0e0000-0000-4000-8000-000000000002"  # demo venue: Riverside Arena, London
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack (`make up`) and run `make test`", pytrace=False
        )
    return value.rstrip("/")


@pytest.fixture(scope="session")
def storefront() -> str:
    return _env("BOXOFFICE_STOREFRONT_URL")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(os.environ.get("BOXOFFICE_BROWSER_ARTIFACTS", ROOT / "artifacts" / "browser"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
    )
    yield chromium
    chromium.close()


@dataclass
class Watched:
    """A page and what went wrong in it (CSP violations, script errors)."""

    page: Page
    context: BrowserContext
    problems: list[str] = field(default_factory=list)


def _watch(page: Page, problems: list[str]) -> None:
    def console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            problems.append(f"CSP: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))


@pytest.fixture
def open_page(
    browser: Browser, request: pytest.FixtureRequest, artifacts: Path
) -> Iterator[Callable[..., Watched]]:
    """`open_page(viewport=DESKTOP, **context_options)`: a page in a fresh browser context (its
    own cookies and storage: a buyer on their own device)."""
    opened: list[Watched] = []

    def new(viewport: dict[str, int] | None = None, **options: Any) -> Watched:
        context = browser.new_context(
            viewport=viewport or DESKTOP, device_scale_factor=2, locale="en-GB", **options
        )
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watched = Watched(page, context)
        _watch(page, watched.problems)
        opened.append(watched)
        return watched

    yield new
    failed = request.node.stash.get(_FAILED, False)
    for n, watched in enumerate(opened):
        if failed and not watched.page.is_closed():
            name = re.sub(r"\W+", "-", request.node.name)
            watched.page.screenshot(path=str(artifacts / f"FAILED-{name}-{n}.png"), full_page=True)
        watched.context.close()
    if not failed:
        for watched in opened:
            assert not watched.problems, watched.problems


def shot(watched: Watched, artifacts: Path, name: str) -> None:
    watched.page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def sign_in_on_keycloak(page: Page, username: str, password: str) -> None:
    """Keycloak's own login page (the storefront sent the browser there)."""
    page.wait_for_url(re.compile(r".*/realms/boxoffice/protocol/openid-connect/auth\?.*"))
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#kc-login")


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core (from npm, storefront/node_modules) run in the page; serious and critical
    violations of WCAG 2.x A/AA and best practices. Injected through the DevTools protocol, so the
    page's own Content-Security-Policy (no inline or foreign scripts) stays in force."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make browser-deps` runs storefront/vendor.sh --install")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result: dict[str, Any] = page.evaluate(
        """async () => await axe.run(document, {
            runOnly: {type: 'tag',
                      values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
            resultTypes: ['violations'],
        })"""
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


# -- the API, as the tests' own helpers (real tokens, real functions) ------------------------------


@dataclass(frozen=True)
class Buyer:
    username: str
    password: str
    name: str
    sub: str


class Api:
    """The front door, called by the tests themselves (admin set-up, checks from the server's
    side), with password-grant tokens of the dev realm's `boxoffice-web` client."""

    def __init__(self, base: str, issuer: str, client_id: str) -> None:
        self.base = base
        self.issuer = issuer
        self.client_id = client_id

    def token(self, username: str, password: str) -> str:
        response = requests.post(
            f"{self.issuer}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": self.client_id,
                "username": username,
                "password": password,
            },
            timeout=10,
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, f"{self.base}{path}", headers=headers, timeout=15, **kwargs)

    def new_event(
        self,
        capacity: int = 0,
        *,
        name: str | None = None,
        price: str = "30.00",
        categories: list[tuple[str, str, int]] | None = None,
        online_payment: bool = False,
    ) -> str:
        """An event of its own for a test, starting in 20 minutes (upcoming, so listed first,
        and over before many more test runs pile up in front of the demo events): one price and
        `capacity`, or `categories` (name, price in GBP, capacity); `online_payment`: bookings
        are held until paid through the stack's payment provider (devpay)."""
        admin = self.token("olivia", "olivia-dev-password")
        starts = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
        body: dict[str, Any] = {
            "venueId": ARENA,
            "name": name or f"Browser test {uuid.uuid4().hex[:8]}",
            "description": "Made by tests/browser.",
            "startsAt": starts.isoformat(),
        }
        if online_payment:
            body["onlinePayment"] = True
        if categories:
            body["categories"] = [
                {"name": n, "price": {"amount": p, "currency": "GBP"}, "capacity": c}
                for n, p, c in categories
            ]
        else:
            body |= {"price": {"amount": price, "currency": "GBP"}, "capacity": capacity}
        created = self.call("POST", "/events", admin, json=body)
        assert created.status_code == 201, created.text
        event_id: str = created.json()["id"]
        return event_id

    def remaining(self, event_id: str) -> int:
        """Seats left, from the database (a token bypasses the front door's cache)."""
        admin = self.token("olivia", "olivia-dev-password")
        response = self.call("GET", f"/events/{event_id}", admin)
        assert response.status_code == 200, response.text
        remaining: int = response.json()["capacity"]["remaining"]
        return remaining

    def category(self, event_id: str, name: str) -> dict[str, Any]:
        """The event's category of that name, from the database (a token bypasses the cache)."""
        admin = self.token("olivia", "olivia-dev-password")
        response = self.call("GET", f"/events/{event_id}", admin)
        assert response.status_code == 200, response.text
        (category,) = [c for c in response.json()["categories"] if c["name"] == name]
        return dict(category)

    def bookings_for(self, buyer: Buyer, event_id: str) -> list[dict[str, Any]]:
        token = self.token(buyer.username, buyer.password)
        response = self.call("GET", "/bookings?limit=100", token)
        assert response.status_code == 200, response.text
        return [b for b in response.json()["items"] if b["eventId"] == event_id]

    def register(self, buyer: Buyer) -> None:
        token = self.token(buyer.username, buyer.password)
        response = self.call(
            "PUT",
            "/customers/me",
            token,
            json={
                "name": buyer.name,
                "email": f"{buyer.username}@example.test",
                "address": {
                    "line1": "1 Test Street",
                    "postalCode": "BS1 1AA",
                    "city": "Bristol",
                    "country": "GB",
                },
            },
        )
        assert response.status_code in (200, 201), response.text


@pytest.fixture(scope="session")
def mail_inbox() -> str:
    """The stack's SMTP sink's web inbox (Mailpit: /api/v1/...)."""
    return _env("BOXOFFICE_MAIL_WEB_URL")


@pytest.fixture(scope="session")
def api(storefront: str) -> Api:
    return Api(storefront, _env("BOXOFFICE_OIDC_ISSUER"), _env("BOXOFFICE_OIDC_CLIENT_ID"))


class KeycloakAdmin:
    """The dev Keycloak's admin API (admin/admin, dev only): buyers of the tests' own."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _headers(self) -> dict[str, str]:
        response = requests.post(
            f"{self.url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": "admin",
                "password": "admin",
            },
            timeout=10,
        )
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def new_buyer(self) -> Buyer:
        headers = self._headers()
        suffix = uuid.uuid4().hex[:8]
        username, password = f"buyer-{suffix}", f"pw-{uuid.uuid4().hex}"
        first, last = "Test", f"Buyer {suffix}"
        realm = f"{self.url}/admin/realms/boxoffice"
        created = requests.post(
            f"{realm}/users",
            headers=headers,
            json={
                "username": username,
                "enabled": True,
                "email": f"{username}@example.test",
                "emailVerified": True,
                "firstName": first,
                "lastName": last,
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            },
            timeout=10,
        )
        assert created.status_code == 201, created.text
        sub = created.headers["Location"].rsplit("/", 1)[1]
        role = requests.get(f"{realm}/roles/customer", headers=headers, timeout=10).json()
        granted = requests.post(
            f"{realm}/users/{sub}/role-mappings/realm", headers=headers, json=[role], timeout=10
        )
        assert granted.status_code == 204, granted.text
        return Buyer(username, password, f"{first} {last}", sub)

    def delete(self, buyer: Buyer) -> None:
        requests.delete(
            f"{self.url}/admin/realms/boxoffice/users/{buyer.sub}",
            headers=self._headers(),
            timeout=10,
        )


@pytest.fixture(scope="session")
def keycloak_admin() -> KeycloakAdmin:
    return KeycloakAdmin(_env("BOXOFFICE_KEYCLOAK_URL"))


@pytest.fixture
def new_buyer(keycloak_admin: KeycloakAdmin) -> Iterator[Buyer]:
    """A buyer who has just signed up in Keycloak: no customer profile yet."""
    buyer = keycloak_admin.new_buyer()
    yield buyer
    keycloak_admin.delete(buyer)


@pytest.fixture
def registered_buyer(new_buyer: Buyer, api: Api) -> Buyer:
    """A buyer with a customer profile (registered through the API)."""
    api.register(new_buyer)
    return new_buyer
