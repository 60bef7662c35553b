"""The local front door (nginx, stack/services/frontdoor.sh): one base URL, $BOXOFFICE_API_URL.

Every documented path reaches the function that serves it: each request through the front door
must grow that function's own `boxoffice_http_requests_total{function, route, method, status}`
(scraped from the function's /metrics directly), including an authenticated booking with a real
Keycloak token that is then read, listed and cancelled. Headers pass through unchanged (ETag,
Location, Idempotency replay).

Every answer the front door writes itself is RFC 9457 problem+json: the bad requests nginx refuses
(sent as raw bytes, since `requests` would not send most of them) through the stack's own front
door, and, on private nginx instances rendered from the same template in front of stand-in
upstreams, what only a broken or slow upstream can provoke (502, 503, 504, the plain-text errors
of the layers the cluster puts behind the front door) or a broken front door (500).

The catalogue cache: repeated reads are HITs that never reach get_event, N concurrent misses
reach it once, Authorization bypasses it, private answers and errors are never stored, and an
entry is revalidated or refreshed after max-age (ADR 9).

Needs the local stack (`stack/boxo up`) and its environment (`set -a; . .state/env; set +a`).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from boxoffice import errors

ROOT = Path(__file__).resolve().parents[2]
PROBLEM_JSON = "application/problem+json"
EVENT = "e0e00000-0000-4000-8000-000000000002"  # the stadium: 50,000 seats
VENUE = "7e0e0000-0000-4000-8000-000000000002"
ERRORS = {cls.slug: cls for cls in errors.all_error_classes()}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


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
        function: str,
        route: str,
        method: str,
        path: str,
        status: int,
        expect: int | None = None,
        **kwargs: object,
    ) -> requests.Response:
        """`status`: what the function answers; `expect`: what the client gets (default: same)."""
        before = served(function, route, method, status)
        response = requests.request(method, f"{api}{path}", timeout=15, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == (expect or status), response.text
        assert response.headers.get("X-Request-Id")
        after = served(function, route, method, status)
        assert after >= before + 1, f"{method} {path} did not reach {function} ({route})"
        return response

    return send


@pytest.fixture(scope="module")
def bearer(access_token: Callable[[str], str]) -> Callable[[str], dict[str, str]]:
    return lambda user: {"Authorization": f"Bearer {access_token(user)}"}


def test_catalogue_paths_reach_get_event(
    through: Callable[..., requests.Response], bearer: Callable[[str], dict[str, str]]
) -> None:
    # With a token the catalogue cache is bypassed, so every read must reach get_event.
    auth = bearer("alice")
    listing = through("get_event", "/events", "GET", "/events?limit=2", 200, headers=auth)
    assert listing.headers["Content-Type"] == "application/json"
    assert listing.headers["X-Cache-Status"] == "BYPASS"
    assert listing.json()["items"]
    event = through("get_event", "/events/<event_id>", "GET", f"/events/{EVENT}", 200, headers=auth)
    assert event.json()["id"] == EVENT
    # Conditional GET: the front door compares the function's ETag itself (the catalogue location
    # asks the function for the whole answer, which it may store), and answers 304.
    etag = event.headers["ETag"]
    assert event.headers["Cache-Control"].startswith("public")
    conditional = through(
        "get_event",
        "/events/<event_id>",
        "GET",
        f"/events/{EVENT}",
        200,
        headers={**auth, "If-None-Match": etag},
        expect=304,
    )
    assert conditional.headers["ETag"] == etag
    venue = through("get_event", "/venues/<venue_id>", "GET", f"/venues/{VENUE}", 200, headers=auth)
    assert venue.json()["id"] == VENUE
    # A function's own 404 comes back as the function wrote it (with its `instance`).
    missing = through("get_event", "/events/<event_id>", "GET", f"/events/{uuid.uuid4()}", 404)
    assert missing.headers["Content-Type"].startswith(PROBLEM_JSON)
    assert missing.json()["instance"].startswith("/events/")
    # ... and so does its 400 with the offending field (never replaced by the front door's).
    invalid = through("get_event", "/events", "GET", "/events?limit=0", 400)
    assert invalid.json()["errors"] == [{"field": "limit", "message": "must be between 1 and 100"}]


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
    # (`/` is the storefront's page: tests/browser; its unknown paths are problems too.)
    for path in ("/nowhere", "/eventsx", "/metrics", "/_/health", "/event/not-an-id", "/assets/"):
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


# -- problems the front door answers itself, sent as raw bytes to the stack's nginx ----------------


def _raw(base: str, request: bytes, timeout: float = 15) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as is; parse the answer (status, lower-cased headers, body)."""
    host, port = base.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def _get(path: str, *headers: str, method: str = "GET", version: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {path} {version}", "Host: frontdoor.test", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_front_door_problem(
    status: int, headers: dict[str, str], body: bytes, code: int, slug: str
) -> dict[str, Any]:
    """The front door's own problem: exactly type/title/status/detail (no `instance`, which every
    function problem has), the slug and title of the error class in boxoffice.errors, no-store,
    Retry-After on 502/503/504 only, the request id and the security headers."""
    assert status == code, body
    assert headers["content-type"] == PROBLEM_JSON, headers
    assert headers["cache-control"] == "no-store"
    problem: dict[str, Any] = json.loads(body)
    assert set(problem) == {"type", "title", "status", "detail"}, problem
    assert problem["type"] == f"https://boxoffice.example/problems/{slug}"
    assert problem["status"] == code
    assert (ERRORS[slug].status, ERRORS[slug].title) == (code, problem["title"])
    assert problem["detail"]
    if code in (502, 503, 504):
        assert headers["retry-after"].isdigit()
    else:
        assert "retry-after" not in headers
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name
    return problem


def _functions_served() -> float:
    """Every request the three routed functions have counted, whatever its route or status."""
    total = 0.0
    for function in ("get_event", "get_customer", "create_booking"):
        text = requests.get(f"{_env(f'BOXOFFICE_{function.upper()}_URL')}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            if family.name == "boxoffice_http_requests":
                total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


HEADER_8K = "a" * 9000
BAD_REQUESTS = {
    # name: (raw request, status, slug)
    "an-oversized-authorization-header": (
        _get("/customers/me", f"Authorization: Bearer {HEADER_8K}"),
        431,
        "header-too-large",
    ),
    "an-oversized-cookie": (
        _get("/events", f"Cookie: session={HEADER_8K}"),
        431,
        "header-too-large",
    ),
    "headers-over-32-kib-together": (
        _get("/events", *(f"X-Filler-{i}: {'b' * 7000}" for i in range(5))),
        431,
        "header-too-large",
    ),
    "more-than-100-header-fields": (
        _get("/events", *(f"X-Custom-{i}: v" for i in range(200))),
        431,
        "header-too-large",
    ),
    "two-authorization-headers": (
        _get("/customers/me", "Authorization: Bearer a", "Authorization: Bearer b"),
        400,
        "bad-request",
    ),
    "two-host-headers": (_get("/events", "Host: other.test"), 400, "bad-request"),
    "an-invalid-header-line": (_get("/events", "Bad Header: x"), 400, "bad-request"),
    "a-lower-case-method": (_get("/events", method="get"), 400, "bad-request"),
    "an-encoded-dot-dot-slash-above-the-root": (
        _get("/events/..%2f..%2f..%2fetc/passwd"),
        400,
        "bad-request",
    ),
    "an-encoded-dot-dot-slash-to-another-function": (
        _get("/events/..%2fbookings"),
        400,
        "bad-request",
    ),
    "an-encoded-dot-segment": (_get("/bookings/%2e%2e/metrics"), 400, "bad-request"),
    "an-encoded-nul": (_get("/events/%00"), 400, "bad-request"),
    "an-empty-path-segment": (_get("//events"), 400, "bad-request"),
    "a-9000-character-path": (_get(f"/events/{HEADER_8K}"), 414, "uri-too-long"),
    "trace": (_get("/events", method="TRACE"), 405, "method-not-allowed"),
    "a-chunked-body": (
        _get("/bookings", "Transfer-Encoding: chunked", method="POST") + b"2\r\n{}\r\n0\r\n\r\n",
        411,
        "length-required",
    ),
    "content-length-with-transfer-encoding": (
        _get("/bookings", "Content-Length: 2", "Transfer-Encoding: chunked", method="POST"),
        400,
        "bad-request",
    ),
    "an-unknown-transfer-encoding": (
        _get("/bookings", "Transfer-Encoding: gzip", method="POST"),
        501,
        "not-implemented",
    ),
    "a-body-over-1-mib": (
        _get("/bookings", "Content-Length: 2000000", method="POST"),
        413,
        "payload-too-large",
    ),
    "an-http-2-request-line": (
        _get("/events", version="HTTP/2.0"),
        505,
        "http-version-not-supported",
    ),
    "an-unknown-path": (_get("/nowhere.html"), 404, "not-found"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_the_front_door_answers_a_bad_request_with_its_problem_and_calls_no_function(
    api: str, name: str
) -> None:
    request, code, slug = BAD_REQUESTS[name]
    before = _functions_served()
    status, headers, body = _raw(api, request)
    assert_front_door_problem(status, headers, body, code, slug)
    assert _functions_served() == before, "the request reached a function's handler"


def test_requests_just_inside_the_limits_reach_the_functions(api: str) -> None:
    """An 8000-character Authorization, an 8100-character path and 90 custom headers pass the
    front door (and the function's server): the function answers, with its own problem (it has
    `instance`)."""
    status, _, body = _raw(api, _get("/customers/me", f"Authorization: Bearer {'a' * 8000}"))
    assert status == 401
    assert json.loads(body)["type"].endswith("/invalid-token")
    path = f"/events/{'a' * 8100}"
    status, _, body = _raw(api, _get(path, "Authorization: Bearer x"))  # bypass the cache
    assert status == 400
    assert json.loads(body)["instance"] == path
    custom = (f"X-Custom-{i}: v" for i in range(90))
    status, headers, body = _raw(api, _get("/events?limit=1", *custom, "Authorization: Bearer x"))
    assert status == 200, body
    assert headers["content-type"] == "application/json"


def test_a_stalled_client_is_disconnected_without_an_answer(api: str) -> None:
    """nginx never answers 408: a client that stops sending headers or a body for 10 s is
    disconnected (and logged as 408); nothing reaches a function."""
    host, port = api.split("://", 1)[1].rsplit(":", 1)
    stalls = {
        "headers": b"GET /events HTTP/1.1\r\nHost: frontdoor.test\r\n",
        "body": b"POST /bookings HTTP/1.1\r\nHost: frontdoor.test\r\nContent-Length: 100\r\n\r\n{",
    }
    before = _functions_served()

    def stall(request: bytes) -> tuple[bytes, float]:
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(request)
            started = time.monotonic()
            received = b""
            while chunk := sock.recv(4096):
                received += chunk
            return received, time.monotonic() - started

    with ThreadPoolExecutor(len(stalls)) as pool:
        results = dict(zip(stalls, pool.map(stall, stalls.values()), strict=True))
    for name, (received, waited) in results.items():
        assert received == b"", f"{name}: {received[:200]!r}"
        assert 9 <= waited < 25, f"{name}: disconnected after {waited:.1f} s"
    assert _functions_served() == before


def test_every_answer_carries_the_request_id_and_security_headers(api: str) -> None:
    answers = {
        "function 200": requests.get(f"{api}/events?limit=1", timeout=10),
        "function problem": requests.get(f"{api}/customers/me", timeout=10),
        "front door problem": requests.get(f"{api}/nowhere", timeout=10),
        "health": requests.get(f"{api}/_frontdoor/healthz", timeout=10),
    }
    for name, response in answers.items():
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"]), name
        for header, value in SECURITY_HEADERS.items():
            assert response.headers[header] == value, (name, header)
        assert "Strict-Transport-Security" not in response.headers, name  # plain HTTP
    behind_tls = requests.get(
        f"{api}/nowhere", headers={"X-Forwarded-Proto": "https"}, timeout=10
    ).headers
    assert behind_tls["Strict-Transport-Security"] == "max-age=31536000"


# -- the catalogue cache, in front of the real get_event ------------------------------------------


@pytest.fixture
def new_event(api: str, bearer: Callable[[str], dict[str, str]]) -> Callable[[], str]:
    """`new_event()`: an event created by an admin through the front door, never read before (so
    its URL is not in the cache)."""

    def create() -> str:
        starts = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0)
        response = requests.post(
            f"{api}/events",
            json={
                "venueId": VENUE,
                "name": f"front door cache {uuid.uuid4()}",
                "startsAt": starts.isoformat(),
                "price": {"amount": "20.00", "currency": "GBP"},
                "capacity": 100,
            },
            headers=bearer("olivia"),
            timeout=10,
        )
        assert response.status_code == 201, response.text
        event_id: str = response.json()["id"]
        return event_id

    return create


def _rename(api: str, admin: dict[str, str], event_id: str, name: str) -> None:
    current = requests.get(f"{api}/events/{event_id}", headers=admin, timeout=10).json()
    body = {
        "venueId": current["venue"]["id"],
        "name": name,
        "startsAt": current["startsAt"],
        "price": current["price"],
        "capacity": current["capacity"]["total"],
    }
    response = requests.put(f"{api}/events/{event_id}", json=body, headers=admin, timeout=10)
    assert response.status_code == 200, response.text


EVENT_READS = ("get_event", "/events/<event_id>", "GET")


def test_a_second_catalogue_read_is_served_from_the_cache(
    api: str, new_event: Callable[[], str]
) -> None:
    url = f"{api}/events/{new_event()}"
    before, before_304 = served(*EVENT_READS, 200), served(*EVENT_READS, 304)
    first = requests.get(url, timeout=10)
    assert first.status_code == 200
    assert first.headers["X-Cache-Status"] == "MISS"
    assert served(*EVENT_READS, 200) == before + 1
    second = requests.get(url, timeout=10)
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.content == first.content
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Cache-Control"] == first.headers["Cache-Control"]
    # The function's Date is kept, so a client can tell the cached answer's age.
    assert second.headers["Date"] == first.headers["Date"]
    head = requests.head(url, timeout=10)
    assert (head.status_code, head.headers["X-Cache-Status"]) == (200, "HIT")
    # A conditional GET is answered by the cache (nginx compares the stored ETag).
    etag = first.headers["ETag"]
    revalidated = requests.get(url, headers={"If-None-Match": etag}, timeout=10)
    assert (revalidated.status_code, revalidated.headers["X-Cache-Status"]) == (304, "HIT")
    assert served(*EVENT_READS, 200) == before + 1
    assert served(*EVENT_READS, 304) == before_304


def test_the_cache_key_is_the_path_and_query(api: str) -> None:
    """Another query is another entry; the same query from another Host or with another Accept
    is the same entry (get_event answers the same JSON whatever they are)."""
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # a URL nobody asked for yet
    url = f"{api}/events?from={since}&limit=2"
    assert requests.get(url, timeout=10).headers["X-Cache-Status"] == "MISS"
    other_query = requests.get(f"{api}/events?from={since}&limit=3", timeout=10)
    assert other_query.headers["X-Cache-Status"] == "MISS"
    same = requests.get(url, headers={"Host": "elsewhere.test", "Accept": "text/html"}, timeout=10)
    assert same.headers["X-Cache-Status"] == "HIT"
    assert same.headers["Content-Type"] == "application/json"


def test_concurrent_misses_for_one_url_reach_the_function_once(
    api: str, new_event: Callable[[], str], bearer: Callable[[str], dict[str, str]]
) -> None:
    readers = 12
    auth = bearer("alice")

    def read(url: str, headers: dict[str, str]) -> requests.Response:
        return requests.get(url, headers=headers, timeout=30)

    # Control: the same burst with a token bypasses the cache: every request reaches get_event.
    uncached = f"{api}/events/{new_event()}"
    before = served(*EVENT_READS, 200)
    with ThreadPoolExecutor(readers) as pool:
        answers = list(pool.map(read, [uncached] * readers, [auth] * readers))
    assert {a.status_code for a in answers} == {200}
    assert served(*EVENT_READS, 200) == before + readers
    # The burst without a token: the cache lock lets one request through; the others wait for
    # its answer and get it from the cache.
    cached = f"{api}/events/{new_event()}"
    before = served(*EVENT_READS, 200)
    with ThreadPoolExecutor(readers) as pool:
        answers = list(pool.map(read, [cached] * readers, [{}] * readers))
    assert {a.status_code for a in answers} == {200}
    assert len({a.headers["ETag"] for a in answers}) == 1
    statuses = [a.headers["X-Cache-Status"] for a in answers]
    assert (statuses.count("MISS"), statuses.count("HIT")) == (1, readers - 1), statuses
    assert served(*EVENT_READS, 200) == before + 1


def test_requests_with_authorization_bypass_the_cache_and_leave_it_alone(
    api: str, new_event: Callable[[], str], bearer: Callable[[str], dict[str, str]]
) -> None:
    event_id = new_event()
    url = f"{api}/events/{event_id}"
    admin = bearer("olivia")
    cached = requests.get(url, timeout=10)
    assert cached.headers["X-Cache-Status"] == "MISS"
    _rename(api, admin, event_id, "renamed while cached")
    before = served(*EVENT_READS, 200)
    fresh = requests.get(url, headers=admin, timeout=10)
    assert fresh.headers["X-Cache-Status"] == "BYPASS"
    assert fresh.json()["name"] == "renamed while cached"
    assert served(*EVENT_READS, 200) == before + 1
    # The bypassing answer did not replace the entry: anonymous readers still get the cached one
    # (at most max-age old: see the next test).
    still = requests.get(url, timeout=10)
    assert still.headers["X-Cache-Status"] == "HIT"
    assert still.content == cached.content


def _cache_control(response: requests.Response, directive: str) -> int:
    found = re.search(rf"{directive}=(\d+)", response.headers["Cache-Control"])
    assert found, response.headers["Cache-Control"]
    return int(found.group(1))


def _max_age(response: requests.Response) -> int:
    return _cache_control(response, "max-age")


def _wait_past(response: requests.Response, seconds: float) -> None:
    """Sleep until `seconds` after the response's Date (the function's clock, 1 s resolution)."""
    made = parsedate_to_datetime(response.headers["Date"])
    remaining = (made - datetime.now(UTC)).total_seconds() + seconds + 1.2
    time.sleep(max(0.0, remaining))


def _until_hit(url: str) -> requests.Response:
    """The entry once its background refresh has landed (a HIT), within 5 s."""
    deadline = time.monotonic() + 5.0
    while True:
        answer = requests.get(url, timeout=10)
        if answer.headers["X-Cache-Status"] == "HIT" or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_after_max_age_the_entry_answers_at_once_while_one_background_request_refreshes_it(
    api: str, new_event: Callable[[], str], bearer: Callable[[str], dict[str, str]]
) -> None:
    event_id = new_event()
    url = f"{api}/events/{event_id}"
    first = requests.get(url, timeout=10)
    assert first.headers["X-Cache-Status"] == "MISS"
    max_age = _max_age(first)
    assert _cache_control(first, "stale-while-revalidate") > 2
    _rename(api, bearer("olivia"), event_id, "renamed after the first read")
    # Within max-age the cached answer is served: the bounded staleness the cache trades for load.
    assert requests.get(url, timeout=10).json()["name"] != "renamed after the first read"
    _wait_past(first, max_age)
    # Expired, within stale-while-revalidate: the old entry at once, and a refresh behind it.
    stale = requests.get(url, timeout=10)
    assert stale.headers["X-Cache-Status"] == "STALE"
    assert stale.content == first.content
    changed = _until_hit(url)
    assert changed.headers["X-Cache-Status"] == "HIT"
    assert changed.json()["name"] == "renamed after the first read"
    assert changed.headers["ETag"] != first.headers["ETag"]
    # Unchanged after max-age: the background revalidation is a 304 from get_event (one), and the
    # entry is kept.
    before = served(*EVENT_READS, 304)
    _wait_past(changed, max_age)
    assert requests.get(url, timeout=10).headers["X-Cache-Status"] == "STALE"
    unchanged = _until_hit(url)
    assert unchanged.status_code == 200
    assert unchanged.content == changed.content
    assert served(*EVENT_READS, 304) == before + 1


def test_an_entry_past_its_stale_window_is_never_served(
    api: str, new_event: Callable[[], str], bearer: Callable[[str], dict[str, str]]
) -> None:
    event_id = new_event()
    url = f"{api}/events/{event_id}"
    first = requests.get(url, timeout=10)
    assert first.headers["X-Cache-Status"] == "MISS"
    _rename(api, bearer("olivia"), event_id, "renamed while nobody read it")
    _wait_past(first, _max_age(first) + _cache_control(first, "stale-while-revalidate"))
    # Too old to be served: this reader waits for get_event (the bound on staleness, and what
    # makes a function that is down show as a problem rather than as an old catalogue).
    fresh = requests.get(url, timeout=10)
    assert fresh.headers["X-Cache-Status"] == "EXPIRED"
    assert fresh.json()["name"] == "renamed while nobody read it"


def test_private_answers_are_never_cached(
    api: str, through: Callable[..., requests.Response], bearer: Callable[[str], dict[str, str]]
) -> None:
    auth = bearer("alice")
    for _ in range(2):  # each read reaches the function; nothing says it came from a cache
        me = through("get_customer", "/customers/me", "GET", "/customers/me", 200, headers=auth)
        assert "X-Cache-Status" not in me.headers
        assert "private" in me.headers["Cache-Control"]
        mine = through("create_booking", "/bookings", "GET", "/bookings", 200, headers=auth)
        assert "X-Cache-Status" not in mine.headers
        refused = through("get_customer", "/customers/me", "GET", "/customers/me", 401)
        assert refused.headers["Cache-Control"] == "no-store"


def test_catalogue_errors_are_never_cached(through: Callable[..., requests.Response]) -> None:
    path = f"/events/{uuid.uuid4()}"
    for _ in range(2):
        missing = through("get_event", "/events/<event_id>", "GET", path, 404)
        assert missing.headers["X-Cache-Status"] == "MISS"
        invalid = through("get_event", "/events", "GET", "/events?limit=0", 400)
        assert invalid.headers["X-Cache-Status"] == "MISS"


def test_preconditions_and_ranges_on_cached_reads(api: str, new_event: Callable[[], str]) -> None:
    url = f"{api}/events/{new_event()}"
    etag = requests.get(url, timeout=10).headers["ETag"]
    assert requests.get(url, headers={"If-Match": etag}, timeout=10).status_code == 200
    mismatch = requests.get(url, headers={"If-Match": '"not-this-one"'}, timeout=10)
    assert_front_door_problem(
        mismatch.status_code,
        {k.lower(): v for k, v in mismatch.headers.items()},
        mismatch.content,
        412,
        "precondition-failed",
    )
    ranged = requests.get(url, headers={"Range": "bytes=0-9"}, timeout=10)
    assert ranged.status_code == 200, "no byte ranges of JSON documents"
    assert ranged.json()["id"]
    unsatisfiable = requests.get(url, headers={"Range": "bytes=999999-"}, timeout=10)
    assert unsatisfiable.status_code == 200


# -- the template on its own: private nginx instances on stand-in upstreams ----------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass(frozen=True)
class FrontDoor:
    base: str
    directory: Path

    def log(self) -> str:
        return (self.directory / "frontdoor.log").read_text(errors="replace")


@contextlib.contextmanager
def _frontdoor(upstreams: dict[str, str]) -> Iterator[FrontDoor]:
    """A private nginx rendered from the same template, with the given upstream addresses
    (each function gets the client's Host, as in the local stack). Started as root it runs its
    workers as `nobody`, as the compose and cluster images run unprivileged workers: its
    directory is one they can reach (pytest's own are private to root)."""
    with tempfile.TemporaryDirectory(prefix="boxoffice-frontdoor-") as name:
        directory = Path(name)
        directory.chmod(0o755)
        with _started_frontdoor(directory, upstreams) as base:
            yield FrontDoor(base, directory)


@contextlib.contextmanager
def _started_frontdoor(directory: Path, upstreams: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    config = (ROOT / "stack" / "frontdoor" / "nginx.conf.tmpl").read_text()
    for placeholder, value in {
        "@DIR@": str(directory),
        "@LOG@": str(directory / "frontdoor.log"),
        "@LISTEN@": f"127.0.0.1:{port}",
        "@GET_EVENT_ADDR@": upstreams["get_event"],
        "@GET_CUSTOMER_ADDR@": upstreams["get_customer"],
        "@CREATE_BOOKING_ADDR@": upstreams["create_booking"],
        "@GET_EVENT_HOST@": "$http_host",
        "@GET_CUSTOMER_HOST@": "$http_host",
        "@CREATE_BOOKING_HOST@": "$http_host",
        "@CHECK_IN_HOST@": "$http_host",
        "@CHECK_IN_ADDR@": upstreams.get("check_in", upstreams["get_event"]),
        "@WAITING_ROOM_HOST@": "$http_host",
        "@WAITING_ROOM_ADDR@": upstreams.get("waiting_room", upstreams["get_event"]),
        "@PAYMENT_WEBHOOK_HOST@": "$http_host",
        "@PAYMENT_WEBHOOK_ADDR@": upstreams.get("payment_webhook", upstreams["get_event"]),
        "@PROBLEM_BASE@": "https://boxoffice.example/problems/",
        "@STOREFRONT_ROOT@": str(ROOT / "storefront" / "public"),
        "@STOREFRONT_URL@": f"http://127.0.0.1:{port}",
        "@STOREFRONT_CLIENT_ID@": "boxoffice-storefront",
        "@OIDC_ISSUER@": "http://127.0.0.1:9/realms/boxoffice",
        "@OIDC_ORIGIN@": "http://127.0.0.1:9",
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
def echo_frontdoor() -> Iterator[str]:
    """The template in front of echo servers, one per function."""
    servers = {}
    for name in (
        "get_event",
        "get_customer",
        "create_booking",
        "check_in",
        "waiting_room",
        "payment_webhook",
    ):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    upstreams = {n: f"127.0.0.1:{s.server_address[1]}" for n, s in servers.items()}
    try:
        with _frontdoor(upstreams) as frontdoor:
            yield frontdoor.base
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
        ("POST", "/events/e1/queue", "waiting_room"),
        ("GET", "/events/e1/queue", "waiting_room"),
        ("GET", "/events/e1/queue/me", "waiting_room"),
        ("GET", "/events/e1/queueing", "get_event"),
        ("POST", "/payments/webhook", "payment_webhook"),
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
    [
        "/eventsx",
        "/customer",
        "/booking/b1",
        "/account",
        "/healthz",
        "/checkinsx",
        "/.well-known/x",
        "/payments",
        "/payments/webhooks",
        "/payments/webhook/x",
    ],
)
def test_the_template_matches_whole_path_segments(echo_frontdoor: str, path: str) -> None:
    response = requests.get(f"{echo_frontdoor}{path}", timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == PROBLEM_JSON


@pytest.fixture(scope="module")
def dead_upstream_frontdoor() -> Iterator[str]:
    """The template with upstreams on a port nothing listens on: every function is down."""
    dead = f"127.0.0.1:{_free_port()}"
    upstreams = dict.fromkeys(
        (
            "get_event",
            "get_customer",
            "create_booking",
            "check_in",
            "waiting_room",
            "payment_webhook",
        ),
        dead,
    )
    with _frontdoor(upstreams) as frontdoor:
        yield frontdoor.base


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


# -- what only a broken or slow upstream (or a broken front door) provokes: stand-in upstreams ----


class _Scripted(BaseHTTPRequestHandler):
    """A stand-in function whose answer the path chooses (it counts the requests per path):
    /events/status/<code>[?retry=N]  <code> with a plain-text body, as Kourier, the activator,
                                     queue-proxy or the server write theirs
    /events/problem/<code>           <code> with a problem+json body, as a function writes it
    /events/cached?cc=...&cookie=1&vary=...  200 JSON with those caching headers
    /events/silent                   no answer for 20 s
    """

    protocol_version = "HTTP/1.1"
    counts: ClassVar[dict[str, int]] = {}
    lock = threading.Lock()

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        with self.lock:
            self.counts[self.path] = self.counts.get(self.path, 0) + 1
        if path.startswith("/events/status/"):
            headers = {"Content-Type": "text/plain"}
            if "retry" in params:
                headers["Retry-After"] = params["retry"]
            self._send(int(path.rsplit("/", 1)[1]), b"upstream connect error", headers)
        elif path.startswith("/events/problem/"):
            code = int(path.rsplit("/", 1)[1])
            body = json.dumps({"type": "x", "status": code, "instance": path}).encode()
            headers = {"Content-Type": PROBLEM_JSON, "Cache-Control": "no-store"}
            if code == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="boxoffice"'
            self._send(code, body, headers)
        elif path == "/events/cached":
            headers = {"Content-Type": "application/json", "ETag": '"v1"'}
            if "cc" in params:
                headers["Cache-Control"] = params["cc"].replace("%20", " ")
            if "cookie" in params:
                headers["Set-Cookie"] = "session=1"
            if "vary" in params:
                headers["Vary"] = params["vary"]
            self._send(200, json.dumps({"accept": self.headers.get("Accept")}).encode(), headers)
        elif path == "/events/silent":
            time.sleep(20)
            self._send(200, b"{}", {"Content-Type": "application/json"})
        else:
            self._send(404, b"{}", {"Content-Type": PROBLEM_JSON})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.lock:
            self.counts[self.path] = self.counts.get(self.path, 0) + 1
        self._send(201, b"{}", {"Content-Type": "application/json"})

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def _scripted_frontdoor() -> Iterator[FrontDoor]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream = f"127.0.0.1:{server.server_address[1]}"
    try:
        upstreams = dict.fromkeys(("get_event", "get_customer", "create_booking"), upstream)
        with _frontdoor(upstreams) as frontdoor:
            yield frontdoor
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def scripted() -> Iterator[FrontDoor]:
    with _scripted_frontdoor() as frontdoor:
        yield frontdoor


def _upstream_count(path: str) -> int:
    with _Scripted.lock:
        return _Scripted.counts.get(path, 0)


def _response_problem(response: requests.Response, code: int, slug: str) -> dict[str, Any]:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return assert_front_door_problem(response.status_code, headers, response.content, code, slug)


@pytest.mark.parametrize(
    ("code", "slug", "retry_after"),
    [
        (413, "payload-too-large", None),
        (414, "uri-too-long", None),
        (431, "header-too-large", None),
        (500, "internal-error", None),
        (502, "bad-gateway", "5"),
        (503, "service-unavailable", "7"),
        (504, "gateway-timeout", "5"),
    ],
)
def test_plain_text_errors_of_the_layers_behind_the_front_door_become_its_problems(
    scripted: FrontDoor, code: int, slug: str, retry_after: str | None
) -> None:
    """In the cluster Kourier, the activator and queue-proxy answer these in plain text (and
    the function's server in its own words): the front door words them; an upstream Retry-After
    is kept."""
    query = "?retry=7" if code == 503 else ""
    response = requests.get(f"{scripted.base}/events/status/{code}{query}", timeout=10)
    _response_problem(response, code, slug)
    if retry_after is not None:
        assert response.headers["Retry-After"] == retry_after


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 412, 415, 422])
def test_the_functions_own_problems_pass_unchanged(scripted: FrontDoor, code: int) -> None:
    response = requests.get(f"{scripted.base}/events/problem/{code}", timeout=10)
    assert response.status_code == code
    if code == 412:  # a status the front door words (nginx answers failed preconditions itself)
        _response_problem(response, 412, "precondition-failed")
        return
    assert response.json() == {"type": "x", "status": code, "instance": f"/events/problem/{code}"}
    assert response.headers["Content-Type"] == PROBLEM_JSON
    if code == 401:
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="boxoffice"'


@pytest.mark.parametrize(
    ("query", "stored"),
    [
        ("cc=public,%20max-age=60", True),
        ("cc=max-age=60", True),
        ("cc=private,%20max-age=60", False),
        ("cc=no-store", False),
        ("cc=no-cache", False),
        ("cc=public,%20max-age=0", False),
        ("cc=public,%20max-age=60&cookie=1", False),
        ("", False),  # no Cache-Control: nothing is assumed
    ],
)
def test_the_cache_stores_only_what_the_function_allows(
    scripted: FrontDoor, query: str, stored: bool
) -> None:
    path = f"/events/cached?{query}&n={uuid.uuid4().hex}"
    first = requests.get(f"{scripted.base}{path}", timeout=10)
    second = requests.get(f"{scripted.base}{path}", timeout=10)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["X-Cache-Status"] == "MISS"
    assert second.headers["X-Cache-Status"] == ("HIT" if stored else "MISS")
    assert _upstream_count(path) == (1 if stored else 2)


def test_the_cache_honours_a_functions_vary(scripted: FrontDoor) -> None:
    """get_event sends no Vary (its JSON is the same whatever the Accept); if a function did, the
    cache would keep one entry per variant."""
    path = f"/events/cached?cc=public,%20max-age=60&vary=Accept&n={uuid.uuid4().hex}"
    json_reads = [
        requests.get(f"{scripted.base}{path}", headers={"Accept": "application/json"}, timeout=10)
        for _ in range(2)
    ]
    other = requests.get(f"{scripted.base}{path}", headers={"Accept": "text/csv"}, timeout=10)
    assert [r.headers["X-Cache-Status"] for r in json_reads] == ["MISS", "HIT"]
    assert other.headers["X-Cache-Status"] == "MISS"
    assert other.json() == {"accept": "text/csv"}


def test_a_function_that_never_answers_is_a_504_problem(scripted: FrontDoor) -> None:
    started = time.monotonic()
    response = requests.get(f"{scripted.base}/events/silent", timeout=30)
    assert 9 <= time.monotonic() - started < 20, "the catalogue's 10 s read timeout"
    _response_problem(response, 504, "gateway-timeout")
    assert response.headers["Retry-After"] == "5"


def test_a_front_door_that_cannot_buffer_a_body_answers_a_500_problem() -> None:
    """Bodies over 16 KiB are buffered to a temp file before the function is called; when that
    fails (disk full, a broken directory), the answer is the internal-error problem."""
    with _scripted_frontdoor() as frontdoor:
        temp = frontdoor.directory / "body_temp"
        for leftover in temp.iterdir():
            leftover.unlink()
        temp.rmdir()
        temp.write_text("not a directory")
        host, port = frontdoor.base.split("://", 1)[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=15) as sock:
            sock.sendall(
                b"POST /bookings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 200000\r\n\r\n"
            )
            time.sleep(0.3)  # the body arrives after the headers, in pieces
            for _ in range(20):
                sock.sendall(b" " * 10_000)
                time.sleep(0.01)
            response = http.client.HTTPResponse(sock)
            response.begin()
            headers = {k.lower(): v for k, v in response.getheaders()}
            assert_front_door_problem(
                response.status, headers, response.read(), 500, "internal-error"
            )
        assert _upstream_count("/bookings") == 0
