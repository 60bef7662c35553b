"""The functions' HTTP server answers what it refuses itself as problem+json, like the app: sent
straight to a running function (get_event of the local stack), with raw sockets, since a
well-behaved HTTP client will not send these requests."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import pytest

pytestmark = pytest.mark.integration


def exchange(raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    url = os.environ.get("BOXOFFICE_GET_EVENT_URL", "")
    if not url:
        pytest.fail("BOXOFFICE_GET_EVENT_URL is not set: run the tests with `make test`")
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body)


def assert_problem(raw: bytes, status: int, slug: str) -> None:
    got, headers, body = exchange(raw)
    assert got == status, body
    assert headers["content-type"] == "application/problem+json"
    assert body["type"].endswith(f"/{slug}")
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]


def test_an_authorization_header_over_8190_bytes_is_431_header_too_large() -> None:
    token = "x" * 9000
    raw = f"GET /events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    assert_problem(raw, 431, "header-too-large")


def test_more_than_100_header_fields_is_431_header_too_large() -> None:
    fields = "".join(f"X-Custom-{i}: {i}\r\n" for i in range(200))
    assert_problem(
        f"GET /events HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode(), 431, "header-too-large"
    )


def test_a_request_line_over_8190_bytes_is_414_uri_too_long() -> None:
    raw = f"GET /events/{'a' * 9000} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
    assert_problem(raw, 414, "uri-too-long")


def test_a_malformed_request_line_is_400_bad_request() -> None:
    assert_problem(b"GET\r\nHost: t\r\n\r\n", 400, "bad-request")


def test_an_invalid_header_name_is_400_bad_request() -> None:
    assert_problem(b"GET /events HTTP/1.1\r\nHost: t\r\nBad Header: 1\r\n\r\n", 400, "bad-request")
