"""The booking API (create_booking) through its real functions-framework entrypoint, against the
real PostgreSQL of the local stack, with access tokens issued by the real Keycloak: the contract
of POST/GET/DELETE /bookings, idempotency keys, every refusal, and what each leaves in the
database (a booking with its allocations, ticket count and outbox row, or nothing at all).

Data: each test books a fresh event of this module's own venue, starting centuries from now, so
the demo events are never touched. Bookings stay (their outbox events may already be on their
way to order processing); they are small and far in the future.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import functions_framework
import psycopg
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from boxoffice.domain.catalogue import split_capacity
from boxoffice.web.validation import validate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SUBJECTS = {
    "alice": "a11ce000-0000-4000-8000-000000000001",
    "bob": "b0b00000-0000-4000-8000-000000000002",
}
DEFAULT_LIMIT = 10  # BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT, default

Auth = Callable[[str], dict[str, str]]
Problem = Callable[..., dict[str, Any]]
DB = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    source = ROOT / "functions" / "create_booking" / "main.py"
    return functions_framework.create_app(target="handler", source=str(source)).test_client()


@pytest.fixture(scope="module")
def venue() -> uuid.UUID:
    venue_id = uuid.uuid4()
    with psycopg.connect(os.environ["BOXOFFICE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            """INSERT INTO venue (id, name, address, city, capacity)
               VALUES (%s, %s, '1 Booking Test Road', 'Testville', 100000)""",
            (venue_id, f"Booking test venue {venue_id.hex[:8]}"),
        )
    return venue_id


class Events:
    def __init__(self, db: DB, venue: uuid.UUID) -> None:
        self.db = db
        self.venue = venue

    def create(
        self,
        capacity: int = 20,
        shards: int = 1,
        price: str = "25.50",
        starts_at: datetime | None = None,
        status: str = "ON_SALE",
    ) -> uuid.UUID:
        event_id = uuid.uuid4()
        when = starts_at or datetime(2300, 1, 1, tzinfo=UTC) + timedelta(
            seconds=random.randrange(400 * 365 * 86400)
        )
        with self.db.transaction():
            self.db.execute(
                """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency,
                                      capacity, status)
                   VALUES (%s, %s, %s, %s, %s, 'GBP', %s, %s)""",
                (event_id, self.venue, f"Booking test {event_id.hex[:8]}", when, price,
                 capacity, status),
            )  # fmt: skip
            with self.db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, %s, %s)",
                    [(event_id, s, c) for s, c in enumerate(split_capacity(capacity, shards))],
                )
        return event_id

    def sold(self, event_id: uuid.UUID) -> dict[int, int]:
        rows = self.db.execute(
            "SELECT shard, sold FROM event_inventory WHERE event_id = %s ORDER BY shard",
            (event_id,),
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def set_sold(self, event_id: uuid.UUID, sold: dict[int, int]) -> None:
        for shard, n in sold.items():
            self.db.execute(
                "UPDATE event_inventory SET sold = %s WHERE event_id = %s AND shard = %s",
                (n, event_id, shard),
            )

    def held(self, user: str, event_id: uuid.UUID) -> int:
        row = self.db.execute(
            """SELECT t.tickets FROM customer_event_tickets t
                 JOIN customer c ON c.id = t.customer_id
                WHERE c.subject = %s AND t.event_id = %s""",
            (SUBJECTS[user], event_id),
        ).fetchone()
        return 0 if row is None else int(row[0])

    def count(self, query: str, *params: Any) -> int:
        row = self.db.execute(query, params).fetchone()
        assert row is not None
        return int(row[0])

    def bookings(self, event_id: uuid.UUID) -> int:
        return self.count("SELECT count(*) FROM booking WHERE event_id = %s", event_id)

    def key_stored(self, user: str, key: str) -> bool:
        return bool(
            self.count(
                "SELECT count(*) FROM idempotency_record WHERE scope = %s AND key = %s",
                SUBJECTS[user],
                key,
            )
        )


@pytest.fixture
def events(db: DB, venue: uuid.UUID) -> Events:
    return Events(db, venue)


@pytest.fixture
def own_events(scratch_db: Any, use_settings: Callable[..., Any]) -> Iterator[tuple[Events, DB]]:
    """For tests that set sold counts by hand (seats no booking accounts for): a database of
    the test's own (tests/conftest.py), which create_booking then uses (Kafka off: its events
    stay in that database's outbox), so the dev database stays consistent."""
    use_settings(database_url=scratch_db.url, kafka_bootstrap_servers="")
    with scratch_db.connect() as conn:
        venue_id = uuid.uuid4()
        conn.execute(
            """INSERT INTO venue (id, name, address, city, capacity)
               VALUES (%s, 'Booking test venue', '1 Booking Test Road', 'Testville', 100000)""",
            (venue_id,),
        )
        yield Events(conn, venue_id), conn


class Api:
    def __init__(self, client: FlaskClient, auth: Auth) -> None:
        self.client = client
        self.auth = auth

    def book(
        self,
        event_id: uuid.UUID | str,
        count: int = 1,
        user: str = "alice",
        key: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> TestResponse:
        h = {**self.auth(user), "Idempotency-Key": key or str(uuid.uuid4()), **(headers or {})}
        payload = {"eventId": str(event_id), "ticketCount": count} if body is None else body
        return self.client.post("/bookings", json=payload, headers=h)

    def booked(self, event_id: uuid.UUID, count: int = 1, user: str = "alice") -> dict[str, Any]:
        response = self.book(event_id, count, user)
        assert response.status_code == 201, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        return body

    def get(self, path: str, user: str = "alice") -> TestResponse:
        return self.client.get(path, headers=self.auth(user))

    def cancel(self, booking_id: str, user: str = "alice") -> TestResponse:
        return self.client.delete(f"/bookings/{booking_id}", headers=self.auth(user))


@pytest.fixture
def api(client: FlaskClient, auth: Auth) -> Api:
    return Api(client, auth)


def booking_of(response: TestResponse) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    validate("Booking", body)  # the OpenAPI schema
    return body


def assert_read_matches_created(read: dict[str, Any], created: dict[str, Any]) -> None:
    """A read of a booking shows what its POST returned, except what order processing
    (consume_order, running in the stack) may have changed since: `status` PENDING ->
    CONFIRMED, and the `order` and `payment` only reads show (no payment: not paid online)."""
    assert read["status"] in ("PENDING", "CONFIRMED")
    assert "order" in read
    assert read["payment"] is None
    stable = {k: v for k, v in read.items() if k not in ("status", "order", "payment")}
    assert stable == {k: v for k, v in created.items() if k != "status"}


# -- creating ----------------------------------------------------------------------------------


def test_booking_returns_201_with_location_and_writes_booking_seats_tickets_and_outbox(
    api: Api, events: Events, db: DB
) -> None:
    event = events.create(capacity=20, price="25.50")
    key = f"first-booking-{uuid.uuid4()}"
    response = api.book(event, 3, key=key)

    assert response.status_code == 201, response.get_data(as_text=True)
    body = booking_of(response)
    assert response.headers["Location"] == f"/bookings/{body['id']}"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "Idempotent-Replayed" not in response.headers
    assert body["eventId"] == str(event)
    assert body["status"] == "PENDING"
    assert body["quantity"] == 3
    assert body["unitPrice"] == {"amount": "25.50", "currency": "GBP"}
    assert body["total"] == {"amount": "76.50", "currency": "GBP"}
    assert body["cancelledAt"] is None

    assert events.sold(event) == {0: 3}
    assert events.held("alice", event) == 3
    allocation = db.execute(
        "SELECT shard, quantity FROM booking_allocation WHERE booking_id = %s", (body["id"],)
    ).fetchall()
    assert allocation == [(0, 3)]
    outbox = db.execute(
        """SELECT topic, record_key, event_type, event_source, payload FROM outbox
            WHERE id = %s""",
        (body["id"],),
    ).fetchone()
    assert outbox is not None
    assert outbox[:4] == (
        "booking",
        body["id"],
        "dev.boxoffice.booking.created.v1",
        "/boxoffice/bookings",
    )
    assert outbox[4] == {
        "bookingId": body["id"],
        "eventId": str(event),
        "categoryId": body["categoryId"],
        "customerId": "c0000000-0000-4000-8000-000000000001",
        "quantity": 3,
        "unitPrice": {"amount": "25.50", "currency": "GBP"},
        "total": {"amount": "76.50", "currency": "GBP"},
        "status": "PENDING",
    }
    record = db.execute(
        """SELECT state, response_status, expires_at - created_at >= interval '24 hours'
             FROM idempotency_record WHERE scope = %s AND key = %s""",
        (SUBJECTS["alice"], key),
    ).fetchone()
    assert record == ("COMPLETED", 201, True)


def test_same_key_and_body_replays_the_stored_response(api: Api, events: Events) -> None:
    event = events.create()
    key = str(uuid.uuid4())
    first = api.book(event, 2, key=key)
    again = api.book(event, 2, key=key)

    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert booking_of(again) == booking_of(first)
    assert events.bookings(event) == 1
    assert events.sold(event) == {0: 2}


def test_same_key_with_a_different_body_is_422_idempotency_key_reused(
    api: Api, events: Events, assert_problem: Problem
) -> None:
    event = events.create()
    key = str(uuid.uuid4())
    assert api.book(event, 2, key=key).status_code == 201
    assert_problem(api.book(event, 3, key=key), 422, "idempotency-key-reused")
    assert events.bookings(event) == 1


def test_keys_are_scoped_to_the_customer(api: Api, events: Events) -> None:
    event = events.create()
    key = str(uuid.uuid4())
    a = api.book(event, 1, user="alice", key=key)
    b = api.book(event, 1, user="bob", key=key)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.get_json()["id"] != b.get_json()["id"]


def test_a_duplicate_while_the_first_request_is_in_flight_is_409_and_stores_nothing(
    api: Api, events: Events, assert_problem: Problem
) -> None:
    event = events.create()
    key = str(uuid.uuid4())
    # Hold the key the way an in-flight first request does: its row inserted, not committed.
    with psycopg.connect(os.environ["BOXOFFICE_DATABASE_URL"]) as first:
        first.execute(
            """INSERT INTO idempotency_record (scope, key, request_hash, state, expires_at)
               VALUES (%s, %s, 'in-flight', 'IN_PROGRESS', now() + interval '1 hour')""",
            (SUBJECTS["alice"], key),
        )
        duplicate = api.book(event, 1, key=key)
        first.rollback()  # the first request failed: nothing of it remains

    assert_problem(duplicate, 409, "idempotency-key-in-use")
    assert events.bookings(event) == 0
    retry = api.book(event, 1, key=key)
    assert retry.status_code == 201, retry.get_data(as_text=True)
    assert "Idempotent-Replayed" not in retry.headers


def test_an_expired_key_may_be_used_again_for_a_new_request(
    api: Api, events: Events, db: DB
) -> None:
    event = events.create()
    key = str(uuid.uuid4())
    db.execute(
        """INSERT INTO idempotency_record (scope, key, request_hash, state, response_status,
                                           response_headers, response_body, created_at,
                                           expires_at)
           VALUES (%s, %s, 'old', 'COMPLETED', 201, '{}', '{}', now() - interval '25 hours',
                   now() - interval '1 hour')""",
        (SUBJECTS["alice"], key),
    )
    response = api.book(event, 1, key=key)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "Idempotent-Replayed" not in response.headers
    assert events.bookings(event) == 1


def test_missing_idempotency_key_is_400_idempotency_key_required(
    client: FlaskClient, auth: Auth, events: Events, assert_problem: Problem
) -> None:
    event = events.create()
    response = client.post(
        "/bookings", json={"eventId": str(event), "ticketCount": 1}, headers=auth("alice")
    )
    assert_problem(response, 400, "idempotency-key-required")
    assert events.bookings(event) == 0


@pytest.mark.parametrize("key", ["x" * 256, "has space", "caf\u00e9"])
def test_malformed_idempotency_key_is_400_naming_the_header(
    api: Api, events: Events, assert_problem: Problem, key: str
) -> None:
    response = api.book(events.create(), 1, headers={"Idempotency-Key": key})
    assert_problem(response, 400, "invalid-parameter", field="Idempotency-Key")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ticketCount": 1}, "eventId"),
        ({"eventId": "not-a-uuid", "ticketCount": 1}, "eventId"),
        ({"eventId": "EVENT", "ticketCount": 0}, "ticketCount"),
        ({"eventId": "EVENT", "ticketCount": 11}, "ticketCount"),
        ({"eventId": "EVENT", "ticketCount": "2"}, "ticketCount"),
        ({"eventId": "EVENT", "ticketCount": 1.5}, "ticketCount"),
        ({"eventId": "EVENT", "ticketCount": 1, "customerId": "x"}, "customerId"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field_and_book_nothing(
    api: Api, events: Events, assert_problem: Problem, body: dict[str, Any], field: str
) -> None:
    event = events.create()
    body = {k: (str(event) if v == "EVENT" else v) for k, v in body.items()}
    assert_problem(api.book(event, body=body), 422, "validation-failed", field=field)
    assert events.bookings(event) == 0


def test_non_json_bodies_are_refused(
    client: FlaskClient, auth: Auth, assert_problem: Problem
) -> None:
    headers = {**auth("alice"), "Idempotency-Key": str(uuid.uuid4())}
    response = client.post(
        "/bookings", data="{not json", headers=headers, content_type="application/json"
    )
    assert_problem(response, 400, "malformed-json")
    response = client.post("/bookings", data="eventId=x", headers=headers)
    assert_problem(response, 415, "unsupported-media-type")


def test_booking_without_a_token_is_401(client: FlaskClient, assert_problem: Problem) -> None:
    response = client.post(
        "/bookings",
        json={"eventId": str(uuid.uuid4()), "ticketCount": 1},
        headers={"Idempotency-Key": "k"},
    )
    assert_problem(response, 401, "unauthorized")


@pytest.fixture
def local_tokens(
    use_settings: Callable[..., Any],
    jwks_server: Callable[[dict[str, Any]], Any],
    local_key: Any,
    claims_for: Callable[..., dict[str, Any]],
) -> Callable[..., str]:
    """Tokens signed by our own key (trusted through a local JWKS) for subjects Keycloak has no
    user for: a customer who never registered, a caller without the customer role."""
    server = jwks_server({"keys": [local_key.jwk()]})
    use_settings(jwks_url=server.url)
    return lambda **claims: str(local_key.sign(claims_for("alice", **claims)))


def test_a_customer_without_a_profile_gets_409_registration_required(
    client: FlaskClient, local_tokens: Callable[..., str], events: Events, assert_problem: Problem
) -> None:
    event = events.create()
    token = local_tokens(sub=str(uuid.uuid4()))
    response = client.post(
        "/bookings",
        json={"eventId": str(event), "ticketCount": 1},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
    )
    body = assert_problem(response, 409, "registration-required")
    assert "PUT /customers/me" in body["detail"]
    assert events.bookings(event) == 0
    assert events.sold(event) == {0: 0}


def test_a_caller_without_the_customer_role_gets_403(
    client: FlaskClient, local_tokens: Callable[..., str], events: Events, assert_problem: Problem
) -> None:
    token = local_tokens(realm_access={"roles": []})
    response = client.post(
        "/bookings",
        json={"eventId": str(events.create()), "ticketCount": 1},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert_problem(response, 403, "forbidden")


def test_an_unknown_event_is_404(api: Api, assert_problem: Problem) -> None:
    assert_problem(api.book(uuid.uuid4(), 1), 404, "not-found")


def test_cancelled_and_started_events_are_not_on_sale(
    api: Api, events: Events, assert_problem: Problem
) -> None:
    cancelled = events.create(status="CANCELLED")
    started = events.create(starts_at=datetime.now(UTC) - timedelta(hours=1))
    for event in (cancelled, started):
        assert_problem(api.book(event, 1), 409, "event-not-on-sale")
        assert events.bookings(event) == 0
        assert events.held("alice", event) == 0


@pytest.mark.parametrize("sold_out", [False, True])
def test_the_catalogue_shows_a_started_event_as_the_booking_treats_it(
    api: Api,
    events: Events,
    event_client: FlaskClient,
    assert_problem: Problem,
    sold_out: bool,
) -> None:
    # One rule for "on sale" (domain/catalogue.py and book_tickets): sales end when the event
    # starts, so the catalogue must not show a started event ON_SALE (the storefront would offer
    # a booking form that ends in 409), sold out or not.
    started = events.create(capacity=2)
    if sold_out:  # sold out for real (the dev database's invariants hold), then started
        assert api.book(started, 2).status_code == 201
    events.db.execute(
        "UPDATE event SET starts_at = now() - interval '1 minute' WHERE id = %s", (started,)
    )
    upcoming = events.create(capacity=5, starts_at=datetime.now(UTC) + timedelta(hours=1))

    shown = event_client.get(f"/events/{started}").get_json()
    assert shown["status"] == "SALES_ENDED"
    assert_problem(api.book(started, 1), 409, "event-not-on-sale")

    assert event_client.get(f"/events/{upcoming}").get_json()["status"] == "ON_SALE"
    assert api.book(upcoming, 1).status_code == 201


def test_sold_out_is_409_stores_nothing_and_the_same_key_works_once_seats_return(
    api: Api, events: Events, assert_problem: Problem
) -> None:
    event = events.create(capacity=5)
    held = api.booked(event, 4, user="bob")
    key = str(uuid.uuid4())

    assert_problem(api.book(event, 2, key=key), 409, "sold-out")
    assert events.sold(event) == {0: 4}
    assert events.held("alice", event) == 0
    assert not events.key_stored("alice", key)

    assert api.cancel(held["id"], user="bob").status_code == 200
    retry = api.book(event, 2, key=key)
    assert retry.status_code == 201, retry.get_data(as_text=True)


def test_the_per_customer_limit_refuses_the_ticket_beyond_it_and_cancelling_frees_it(
    api: Api, events: Events, assert_problem: Problem
) -> None:
    event = events.create(capacity=50)
    first = api.booked(event, 6)
    api.booked(event, DEFAULT_LIMIT - 6)
    key = str(uuid.uuid4())

    assert_problem(api.book(event, 1, key=key), 409, "ticket-limit-exceeded")
    assert events.held("alice", event) == DEFAULT_LIMIT
    assert events.sold(event) == {0: DEFAULT_LIMIT}
    assert not events.key_stored("alice", key)
    api.booked(event, 1, user="bob")  # the limit is per customer

    assert api.cancel(first["id"]).status_code == 200
    assert events.held("alice", event) == DEFAULT_LIMIT - 6
    assert api.book(event, 1, key=key).status_code == 201


def test_seats_are_taken_across_shards_when_no_single_shard_has_enough(
    api: Api, own_events: tuple[Events, DB]
) -> None:
    events, db = own_events
    event = events.create(capacity=12, shards=4)  # 3 seats a shard
    events.set_sold(event, {0: 2, 1: 2, 2: 2, 3: 2})
    body = api.booked(event, 4)
    allocation = db.execute(
        "SELECT shard, quantity FROM booking_allocation WHERE booking_id = %s ORDER BY shard",
        (body["id"],),
    ).fetchall()
    assert allocation == [(0, 1), (1, 1), (2, 1), (3, 1)]
    assert events.sold(event) == {0: 3, 1: 3, 2: 3, 3: 3}


# -- reading -----------------------------------------------------------------------------------


def test_customers_read_their_own_booking_and_get_404_for_anyone_elses(
    api: Api, events: Events, assert_problem: Problem
) -> None:
    body = api.booked(events.create(), 2, user="bob")
    own = api.get(f"/bookings/{body['id']}", user="bob")
    assert own.status_code == 200
    assert_read_matches_created(booking_of(own), body)
    assert own.headers["Cache-Control"] == "private, no-store"
    assert_problem(api.get(f"/bookings/{body['id']}", user="alice"), 404, "not-found")
    assert_problem(api.get(f"/bookings/{uuid.uuid4()}", user="bob"), 404, "not-found")
    assert_problem(api.get("/bookings/not-a-uuid", user="bob"), 400, "invalid-parameter")


def test_admins_may_read_any_booking_by_id(api: Api, events: Events) -> None:
    body = api.booked(events.create(), 1, user="bob")
    response = api.get(f"/bookings/{body['id']}", user="olivia")
    assert response.status_code == 200
    assert_read_matches_created(booking_of(response), body)


def test_listing_returns_own_bookings_newest_first_with_cursor_pages(
    api: Api, events: Events, assert_problem: Problem
) -> None:
    event = events.create()
    made = [api.booked(event, 1, user="bob")["id"] for _ in range(3)]
    api.booked(event, 1, user="alice")

    everything = api.get("/bookings?limit=100", user="bob")
    assert everything.status_code == 200
    validate("BookingPage", everything.get_json())
    items = everything.get_json()["items"]
    ids = [b["id"] for b in items]
    assert [i for i in ids if i in made] == made[::-1]  # newest first
    assert all(b["eventId"] != str(event) or b["id"] in made for b in items)  # not alice's
    stamps = [b["createdAt"] for b in items]
    assert stamps == sorted(stamps, reverse=True)

    seen: list[str] = []
    path = "/bookings?limit=2"
    for _ in range(2):
        page = api.get(path, user="bob").get_json()
        assert len(page["items"]) <= 2
        seen += [b["id"] for b in page["items"]]
        assert page["nextCursor"]
        path = f"/bookings?limit=2&cursor={page['nextCursor']}"
    assert len(set(seen)) == 4
    assert set(made) <= set(seen)

    assert_problem(api.get("/bookings?limit=101", user="bob"), 400, "invalid-parameter", "limit")
    assert_problem(api.get("/bookings?cursor=zzz", user="bob"), 400, "invalid-parameter")
    assert_problem(api.get("/bookings?eventId=x", user="bob"), 400, "invalid-parameter")


# -- cancelling --------------------------------------------------------------------------------


def test_cancel_returns_seats_to_their_shards_frees_tickets_and_writes_an_outbox_event(
    api: Api, own_events: tuple[Events, DB]
) -> None:
    events, db = own_events
    event = events.create(capacity=12, shards=4)
    events.set_sold(event, {0: 2, 1: 1, 2: 2, 3: 2})
    body = api.booked(event, 4)
    before = events.sold(event)
    assert sum(before.values()) == 11

    response = api.cancel(body["id"])

    assert response.status_code == 200
    cancelled = booking_of(response)
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["cancelledAt"]
    assert events.sold(event) == {0: 2, 1: 1, 2: 2, 3: 2}
    assert events.held("alice", event) == 0
    rows = db.execute(
        """SELECT id, record_key, payload->>'status' FROM outbox
            WHERE record_key = %s AND event_type = 'dev.boxoffice.booking.cancelled.v1'""",
        (body["id"],),
    ).fetchall()
    assert len(rows) == 1
    assert str(rows[0][0]) != body["id"]
    assert rows[0][1:] == (body["id"], "CANCELLED")


def test_cancelling_again_returns_the_cancelled_booking_without_returning_seats_twice(
    api: Api, events: Events, db: DB
) -> None:
    event = events.create(capacity=10)
    body = api.booked(event, 3)
    api.booked(event, 2, user="bob")
    first = api.cancel(body["id"])
    second = api.cancel(body["id"])

    assert second.status_code == 200
    assert booking_of(second) == booking_of(first)
    assert events.sold(event) == {0: 2}
    cancellations = events.count(
        """SELECT count(*) FROM outbox WHERE record_key = %s
              AND event_type = 'dev.boxoffice.booking.cancelled.v1'""",
        body["id"],
    )
    assert cancellations == 1


def test_only_the_owner_can_cancel_a_booking(
    api: Api, events: Events, assert_problem: Problem
) -> None:
    event = events.create()
    body = api.booked(event, 2, user="bob")
    assert_problem(api.cancel(body["id"], user="alice"), 404, "not-found")
    assert_problem(api.cancel(str(uuid.uuid4()), user="bob"), 404, "not-found")
    assert events.sold(event) == {0: 2}


def test_a_booking_cannot_be_cancelled_once_its_event_has_started(
    api: Api, events: Events, db: DB, assert_problem: Problem
) -> None:
    event = events.create()
    body = api.booked(event, 2)
    db.execute("UPDATE event SET starts_at = now() - interval '1 minute' WHERE id = %s", (event,))
    assert_problem(api.cancel(body["id"]), 409, "booking-not-cancellable")
    assert events.sold(event) == {0: 2}


# -- operations --------------------------------------------------------------------------------


def test_database_down_gives_503_with_retry_after(
    use_settings: Callable[..., Any], api: Api, assert_problem: Problem
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    use_settings(
        database_url=f"postgresql://boxoffice:boxoffice@127.0.0.1:{port}/boxoffice",
        db_timeout=1.0,
    )
    response = api.book(uuid.uuid4(), 1)
    assert_problem(response, 503, "service-unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert_problem(api.get("/bookings"), 503, "service-unavailable")


def test_booking_outcomes_are_counted_in_metrics(
    api: Api, events: Events, client: FlaskClient
) -> None:
    event = events.create(capacity=1)
    key = str(uuid.uuid4())
    api.book(event, 1, key=key)
    api.book(event, 1, key=key)
    api.book(event, 1, user="bob")
    metrics = client.get("/metrics").get_data(as_text=True)
    for outcome in ("created", "replayed", "sold_out"):
        assert re.search(
            rf'^boxoffice_bookings_total\{{outcome="{outcome}"\}} [1-9]', metrics, re.M
        )
    assert re.search(r"^boxoffice_tickets_reserved_total [1-9]", metrics, re.M)
