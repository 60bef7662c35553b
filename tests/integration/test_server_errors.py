"""What a function's server refuses before its app sees it: sent straight to a running function
(get_event of the local stack) with raw sockets, since a well-behaved HTTP client will not send
these requests.

The server (granian: hyper parses HTTP in Rust) answers a malformed or oversized request head
with the bare status and closes the connection; no app code runs, so no problem+json body. The
front door refuses the same requests first, as problem+json (tests/e2e/test_front_door.py:
`test_the_front_door_answers_a_bad_request_with_its_problem_and_calls_no_function`), so a client
of the API never sees a bare error. Everything that reaches the app is answered as problem+json.
"""

from __future__ import annotations

import os
import socket

import pytest

pytestmark = pytest.mark.integration


def exchange(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    url = os.environ.get("BOXOFFICE_GET_EVENT_URL", "")
    if not url:
        pytest.fail("BOXOFFICE_GET_EVENT_URL is not set: run the tests with `make test`")
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):  # the server closes the connection after its refusal
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def assert_refused_by_the_server(raw: bytes, status: int) -> None:
    got, headers, body = exchange(raw)
    assert got == status, body
    assert headers["connection"] == "close"
    assert body == b""  # the server's own answer: the app never ran


def test_a_request_head_over_40_kib_is_431_and_never_reaches_the_app() -> None:
    token = "x" * 50000
    raw = f"GET /events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    assert_refused_by_the_server(raw, 431)


def test_more_than_100_header_fields_is_431() -> None:
    fields = "".join(f"X-Custom-{i}: {i}\r\n" for i in range(200))
    assert_refused_by_the_server(f"GET /events HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode(), 431)


def test_a_malformed_request_line_is_400() -> None:
    assert_refused_by_the_server(b"GET\r\nHost: t\r\n\r\n", 400)


def test_an_invalid_header_name_is_400() -> None:
    assert_refused_by_the_server(b"GET /events HTTP/1.1\r\nHost: t\r\nBad Header: 1\r\n\r\n", 400)


def test_a_request_that_reaches_the_app_is_answered_as_problem_json() -> None:
    status, headers, body = exchange(
        b"GET /events?limit=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert b"/invalid-parameter" in body
