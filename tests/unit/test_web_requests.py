"""The per-operation request parsers (boxoffice.web.requests) and the renderings the entrypoints
answer with: one cursor parser for every paged list, and what each operation reads."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import flask
import pytest

from boxoffice import errors
from boxoffice.domain import bookings as booking_rules
from boxoffice.domain import catalogue as catalogue_rules
from boxoffice.domain.bookings import StoredResponse
from boxoffice.domain.cursor import encode_keyset
from boxoffice.domain.waiting_room import (
    DEFAULT_ADMISSION_SECONDS,
    DEFAULT_RANDOMISE_EARLY,
    DEFAULT_TICKETS_PER_BUYER,
)
from boxoffice.services.ports import Booked
from boxoffice.web import render, requests

APP = flask.Flask(__name__)
EVENT_ID = uuid.UUID("e0e0e0e0-0000-0000-0000-000000000003")


@contextmanager
def request(path: str = "/x", **kwargs: Any) -> Iterator[flask.Request]:
    with APP.test_request_context(path, **kwargs):
        yield flask.request


class NoVerifier:
    def verify(self, token: str) -> Any:
        raise AssertionError("no token was sent: the verifier must not be asked for")


@pytest.mark.parametrize(
    ("path", "parse"),
    [
        ("/bookings", lambda r: requests.bookings_page(r)[1]),
        ("/events", lambda r: requests.event_query(r).after),
    ],
)
def test_every_paged_list_reads_its_cursor_the_same_way(path: str, parse: Any) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    ident = uuid.uuid4()
    cursor = encode_keyset(when, ident)
    with request(f"{path}?cursor={cursor}") as r:
        assert parse(r) == (when, ident)
    with request(path) as r:
        assert parse(r) is None
    with request(f"{path}?cursor=not-ours") as r, pytest.raises(errors.InvalidParameter) as e:
        parse(r)
    assert [f.field for f in e.value.errors] == ["cursor"]


def test_a_page_limit_is_bounded_and_defaults() -> None:
    with request("/bookings") as r:
        assert requests.bookings_page(r) == (booking_rules.DEFAULT_PAGE_SIZE, None)
    too_many = f"/events?limit={catalogue_rules.MAX_PAGE_SIZE + 1}"
    with request(too_many) as r, pytest.raises(errors.InvalidParameter):
        requests.event_query(r)
    with request("/bookings?colour=red") as r, pytest.raises(errors.InvalidParameter):
        requests.bookings_page(r)


def test_a_booking_request_without_idempotency_key_is_refused_before_its_body() -> None:
    no_key = request("/bookings", method="POST", data="{", content_type="application/json")
    with no_key as r, pytest.raises(errors.IdempotencyKeyRequired):
        requests.booking_request(r, NoVerifier)  # type: ignore[arg-type]


def test_a_booking_request_reads_key_body_and_hash_and_asks_no_verifier_without_a_token() -> None:
    body = {"eventId": str(EVENT_ID), "ticketCount": 2}
    with request(
        "/bookings",
        method="POST",
        data=json.dumps(body),
        content_type="application/json",
        headers={"Idempotency-Key": "k-1"},
    ) as r:
        parsed = requests.booking_request(r, NoVerifier)  # type: ignore[arg-type]
    assert (parsed.event_id, parsed.quantity, parsed.idempotency_key) == (EVENT_ID, 2, "k-1")
    assert parsed.request_hash == booking_rules.request_hash("POST", "/bookings", body)
    assert parsed.admission is None


def test_a_booking_request_with_a_token_has_it_verified() -> None:
    class Verifier:
        def verify(self, token: str) -> str:
            return f"claims of {token}"

    with request(
        "/bookings",
        method="POST",
        data=json.dumps({"eventId": str(EVENT_ID), "ticketCount": 1}),
        content_type="application/json",
        headers={"Idempotency-Key": "k-2", requests.ADMISSION_HEADER: "tok"},
    ) as r:
        parsed = requests.booking_request(r, Verifier)  # type: ignore[arg-type]
    assert parsed.admission == "claims of tok"


def test_queue_settings_take_the_documented_defaults() -> None:
    with request(
        "/q",
        method="PUT",
        data=json.dumps({"opensAt": "2030-01-01T10:00:00Z"}),
        content_type="application/json",
    ) as r:
        s = requests.queue_settings(r)
    assert s.admission_rate is None  # automatic
    assert s.admission_seconds == DEFAULT_ADMISSION_SECONDS
    assert s.randomise_early == DEFAULT_RANDOMISE_EARLY
    assert s.tickets_per_buyer == Decimal(str(DEFAULT_TICKETS_PER_BUYER))


def test_a_replayed_booking_answers_as_stored_with_the_replay_header() -> None:
    stored = StoredResponse(201, {"Location": "/bookings/x"}, {"id": "x"})
    body, status, headers = render.booked_response(Booked(None, True, stored))
    assert (body, status) == ({"id": "x"}, 201)
    assert headers == {
        "Location": "/bookings/x",
        "Cache-Control": "private, no-store",
        "Idempotent-Replayed": "true",
    }
