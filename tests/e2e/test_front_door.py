"""The local front door (nginx, stack/services/frontdoor.sh): one base URL, $BOXOFFICE_API_URL.

Every documented path reaches the function that serves it: each request through the front door
must grow that function's own `boxoffice_http_requests_total{function, route, method, status}`
(scraped from the function's /metrics directly), including an authenticated booking with a real
Keycloak token that is then read, listed and cancelled. Also: headers pass through unchanged
(ETag, Location, Idempotency replay), the front door's own errors are problem+json, and a function
that is down gives a 502 problem (a second nginx from the same template, on a dead upstream).

Needs the local stack (`stack/boxo up`) and its environment (`set -a; . .state/env; set +a`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
PROBLEM_JSON = "application/problem+json"
EVENT = "e0e00000-0000-4000-8000-000000000002"  # the stadium: 50,000 seats
VENUE = "7e0e0000-0000-4000-8000-000000000002"


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack (`stack/boxo up`) and export its environment "
            "(`set -a; . .state/env; set +a`)",
            pytrace=False,
        )
    return value.rstrip("/")


@pytest.fixture(scope="module")
def api() -> str:
    return _env("BOXOFFICE_API_URL")


def served(function: str, route: str, method: str, status: int) -> float:
    """The function's own count of requests for (route template, method, status)."""
    text = requests.get(f"{_env(f'BOXOFFICE_{function.upper()}_URL')}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        if family.name != "boxoffice_http_requests":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name.endswith("_total") and (
                labels["function"],
                labels["route"],
                labels["method"],
                labels["status"],
            ) == (function, route, method, str(status)):
                return float(sample.value)
    return 0.0


@pytest.fixture
def through(api: str) -> Callable[..., requests.Response]:
    """`through("get_event", "/events/<event_id>", "GET", "/events/e0e…", 200, **kwargs)`: send
    the request to the front door and check the named function counted it."""

    def send(
        function: str, route: str, method: str, path: str, status: int, **kwargs: object
    ) -> requests.Response:
        before = served(function, route, method, status)
        response = requests.request(method, f"{api}{path}", timeout=15, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == status, response.text
        assert response.headers.get("X-Request-Id")
        after = served(function, route, method, status)
        assert after >= before + 1, f"{method} {path} did not reach {function} ({route})"
        return response

    return send


@pytest.fixture(scope="module")
def bearer(access_token: Callable[[str], str]) -> Callable[[str], dict[str, str]]:
    return lambda user: {"Authorization": f"Bearer {access_token(user)}"}


def test_catalogue_paths_reach_get_event(through: Callable[..., requests.Response]) -> None:
    listing = through("get_event", "/events", "GET", "/events?limit=2", 200)
    assert listing.headers["Content-Type"] == "application/json"
    assert listing.json()["items"]
    event = through("get_event", "/events/<event_id>", "GET", f"/events/{EVENT}", 200)
    assert event.json()["id"] == EVENT
    # Conditional GET: the function's ETag and 304 pass through the proxy unchanged.
    etag = event.headers["ETag"]
    assert event.headers["Cache-Control"].startswith("public")
    through(
        "get_event",
        "/events/<event_id>",
        "GET",
        f"/events/{EVENT}",
        304,
        headers={"If-None-Match": etag},
    )
    venue = through("get_event", "/venues/<venue_id>", "GET", f"/venues/{VENUE}", 200)
    assert venue.json()["id"] == VENUE
    # A function's own 404 comes back as the function wrote it.
    missing = through("get_event", "/events/<event_id>", "GET", f"/events/{uuid.uuid4()}", 404)
    assert missing.headers["Content-Type"].startswith(PROBLEM_JSON)


def test_customer_paths_reach_get_customer(
    through: Callable[..., requests.Response], bearer: Callable[[str], dict[str, str]]
) -> None:
    through("get_customer", "/customers/me", "GET", "/customers/me", 401)
    me = through(
        "get_customer", "/customers/me", "GET", "/customers/me", 200, headers=bearer("alice")
    )
    customer_id = me.json()["id"]
    admin_view = through(
        "get_customer",
        "/customers/<customer_id>",
        "GET",
        f"/customers/{customer_id}",
        200,
        headers=bearer("olivia"),
    )
    assert admin_view.json() == me.json()


def test_authenticated_booking_through_the_front_door(
    through: Callable[..., requests.Response], bearer: Callable[[str], dict[str, str]]
) -> None:
    auth = bearer("bob")
    key = str(uuid.uuid4())
    body = {"eventId": EVENT, "ticketCount": 1}
    through("create_booking", "/bookings", "POST", "/bookings", 401, json=body)
    created = through(
        "create_booking",
        "/bookings",
        "POST",
        "/bookings",
        201,
        json=body,
        headers={**auth, "Idempotency-Key": key},
    )
    booking = created.json()
    assert booking["eventId"] == EVENT
    assert booking["quantity"] == 1
    assert created.headers["Location"] == f"/bookings/{booking['id']}"
    # The retry with the same key replays the stored response (headers pass through).
    replay = through(
        "create_booking",
        "/bookings",
        "POST",
        "/bookings",
        201,
        json=body,
        headers={**auth, "Idempotency-Key": key},
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == booking["id"]
    path = f"/bookings/{booking['id']}"
    read = through("create_booking", "/bookings/<booking_id>", "GET", path, 200, headers=auth)
    assert read.json()["id"] == booking["id"]
    listing = through("create_booking", "/bookings", "GET", "/bookings?limit=5", 200, headers=auth)
    assert booking["id"] in [b["id"] for b in listing.json()["items"]]
    cancelled = through(
        "create_booking", "/bookings/<booking_id>", "DELETE", path, 200, headers=auth
    )
    assert cancelled.json()["cancelledAt"]


def test_unknown_paths_are_the_front_doors_problem(api: str) -> None:
    for path in ("/", "/nowhere", "/eventsx", "/metrics", "/_/health"):
        response = requests.get(f"{api}{path}", timeout=5)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == PROBLEM_JSON
        problem = response.json()
        assert problem["status"] == 404
        assert problem["type"].endswith("/not-found")
        assert problem["title"]
        assert problem["detail"]


def test_the_front_door_is_healthy_and_not_buffering_errors(api: str) -> None:
    assert requests.get(f"{api}/_frontdoor/healthz", timeout=5).json() == {"status": "ok"}
    # The functions' 413 for an oversized body gets through (nginx allows up to 1 MiB).
    big = requests.post(
        f"{api}/bookings",
        data=b"{" + b" " * 20_000 + b"}",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert big.status_code in (401, 413), big.text  # auth or size: answered by create_booking
    assert big.headers["Content-Type"].startswith(PROBLEM_JSON)


# -- the template on its own: private nginx instances on stand-in upstreams ----------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextlib.contextmanager
def _frontdoor(directory: Path, upstreams: dict[str, str]) -> Iterator[str]:
    """A private nginx rendered from the same template, with the given upstream addresses."""
    (directory / "tmp").mkdir()
    port = _free_port()
    config = (ROOT / "stack" / "frontdoor" / "nginx.conf.tmpl").read_text()
    for placeholder, value in {
        "@DIR@": str(directory),
        "@LOG@": str(directory / "frontdoor.log"),
        "@LISTEN@": f"127.0.0.1:{port}",
        "@GET_EVENT_ADDR@": upstreams["get_event"],
        "@GET_CUSTOMER_ADDR@": upstreams["get_customer"],
        "@CREATE_BOOKING_ADDR@": upstreams["create_booking"],
        "@CHECK_IN_ADDR@": upstreams["check_in"],
        "@PROBLEM_BASE@": "https://boxoffice.example/problems/",
    }.items():
        config = config.replace(placeholder, value)
    directives = "\n".join(
        line for line in config.splitlines() if not line.lstrip().startswith("#")
    )
    assert not re.search(r"@[A-Z_]+@", directives), "every placeholder is filled in"
    (directory / "nginx.conf").write_text(config)
    nginx = os.environ.get("BOXOFFICE_NGINX_BIN", "/usr/sbin/nginx")
    args = [nginx, "-p", str(directory), "-e", str(directory / "error.log")]
    args += ["-c", str(directory / "nginx.conf")]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(f"{base}/_frontdoor/healthz", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                assert process.poll() is None, (directory / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(10)


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received: which stand-in, method, path, headers, body."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        payload = json.dumps(
            {
                "upstream": self.server.name,  # type: ignore[attr-defined]
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="module")
def echo_frontdoor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The template in front of echo servers, one per function."""
    servers = {}
    for name in ("get_event", "get_customer", "create_booking", "check_in"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    upstreams = {n: f"127.0.0.1:{s.server_address[1]}" for n, s in servers.items()}
    try:
        with _frontdoor(tmp_path_factory.mktemp("frontdoor-echo"), upstreams) as base:
            yield base
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


@pytest.mark.parametrize(
    ("method", "path", "upstream"),
    [
        ("GET", "/events", "get_event"),
        ("GET", "/events/e1?limit=2", "get_event"),
        ("PUT", "/events/e1", "get_event"),
        ("POST", "/events/e1/cancel", "get_event"),
        ("GET", "/venues/v1", "get_event"),
        ("POST", "/venues", "get_event"),
        ("GET", "/customers/me", "get_customer"),
        ("PUT", "/customers/me", "get_customer"),
        ("GET", "/customers/c1", "get_customer"),
        ("POST", "/bookings", "create_booking"),
        ("GET", "/bookings?cursor=abc", "create_booking"),
        ("DELETE", "/bookings/b1", "create_booking"),
        ("POST", "/checkins", "check_in"),
        ("POST", "/checkins/batch", "check_in"),
        ("GET", "/events/e1/checkins/summary", "check_in"),
        ("GET", "/.well-known/ticket-keys", "check_in"),
    ],
)
def test_the_template_routes_every_documented_path(
    echo_frontdoor: str, method: str, path: str, upstream: str
) -> None:
    body = '{"x": 1}' if method in ("POST", "PUT") else None
    response = requests.request(
        method,
        f"{echo_frontdoor}{path}",
        data=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer t"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["upstream"] == upstream
    assert (seen["method"], seen["path"]) == (method, path), "method, path and query unchanged"
    assert seen["headers"]["authorization"] == "Bearer t"
    assert seen["body"] == (body or "")


def test_the_template_forwards_host_and_client_headers(echo_frontdoor: str) -> None:
    port = echo_frontdoor.rsplit(":", 1)[1]
    seen = requests.get(f"{echo_frontdoor}/events", timeout=10).json()["headers"]
    assert seen["host"] == f"127.0.0.1:{port}"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == f"127.0.0.1:{port}"
    assert seen["x-forwarded-port"] == port
    assert re.fullmatch(r"[0-9a-f]{32}", seen["x-request-id"])
    # An outer proxy's X-Forwarded-* are kept (and the chain extended).
    outer = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.boxoffice.example"}
    outer["X-Forwarded-For"] = "203.0.113.7"
    seen = requests.get(f"{echo_frontdoor}/events", headers=outer, timeout=10).json()["headers"]
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-host"] == "api.boxoffice.example"
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"


@pytest.mark.parametrize(
    "path",
    ["/eventsx", "/customer", "/booking/b1", "/", "/healthz", "/checkinsx", "/.well-known/x"],
)
def test_the_template_matches_whole_path_segments(echo_frontdoor: str, path: str) -> None:
    response = requests.get(f"{echo_frontdoor}{path}", timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == PROBLEM_JSON


@pytest.fixture(scope="module")
def dead_upstream_frontdoor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The template with upstreams on a port nothing listens on: every function is down."""
    dead = f"127.0.0.1:{_free_port()}"
    upstreams = dict.fromkeys(("get_event", "get_customer", "create_booking", "check_in"), dead)
    with _frontdoor(tmp_path_factory.mktemp("frontdoor-dead"), upstreams) as base:
        yield base


@pytest.mark.parametrize("path", ["/events", "/customers/me", "/bookings"])
def test_a_function_that_is_down_is_a_502_problem(dead_upstream_frontdoor: str, path: str) -> None:
    started = time.monotonic()
    response = requests.get(f"{dead_upstream_frontdoor}{path}", timeout=10)
    assert time.monotonic() - started < 5, "fails fast"
    assert response.status_code == 502
    assert response.headers["Content-Type"] == PROBLEM_JSON
    assert response.headers["Retry-After"] == "5"
    problem = response.json()
    assert problem["status"] == 502
    assert problem["type"] == "https://boxoffice.example/problems/bad-gateway"
