"""The waiting room's API (waiting_room) and its enforcement in POST /bookings (create_booking),
through their real functions-framework entrypoints, with access tokens from the real Keycloak and
admission tokens signed with the stack's admission key, on a database of each test's own (so the
serving counter is advanced here, by calling the tick with the line's clock moved by hand,
instead of by the stack's admission controller, which ticks the dev database).

The whole flow on the running stack (front door, controller) is tests/e2e/test_waiting_room_flow.py.
"""

from __future__ import annotations

import json
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

from boxoffice import bootstrap
from boxoffice.adapters.admission_tokens import AdmissionSigner, generate_signing_key
from boxoffice.domain.waiting_room import AdmissionClaims
from boxoffice.services import waiting_room
from boxoffice.web.validation import validate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SUBJECTS = {
    "alice": "a11ce000-0000-4000-8000-000000000001",
    "bob": "b0b00000-0000-4000-8000-000000000002",
}

Auth = Callable[[str], dict[str, str]]
Problem = Callable[..., dict[str, Any]]
DB = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def booking_client() -> FlaskClient:
    source = ROOT / "functions" / "create_booking" / "main.py"
    return functions_framework.create_app(target="handler", source=str(source)).test_client()


@pytest.fixture
def own(scratch_db: Any, use_settings: Callable[..., bootstrap.Container]) -> Iterator[Any]:
    """Both functions on a database of the test's own (Kafka off)."""
    container = use_settings(database_url=scratch_db.url, kafka_bootstrap_servers="")
    assert container.settings.admission_signing_key, "the stack exports the admission keys"
    with scratch_db.connect() as conn:
        yield Scene(conn, container)


class Scene:
    def __init__(self, db: DB, container: bootstrap.Container) -> None:
        self.db = db
        self.c = container

    def event(self, capacity: int = 20) -> uuid.UUID:
        event_id, venue_id = uuid.uuid4(), uuid.uuid4()
        with self.db.transaction():
            self.db.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Queue venue', '1 Road', 'Testville', 100000)""",
                (venue_id,),
            )
            self.db.execute(
                """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency,
                                      capacity)
                   VALUES (%s, %s, 'Hot show', now() + interval '30 days', 40, 'GBP', %s)""",
                (event_id, venue_id, capacity),
            )
            self.db.execute(
                "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, 0, %s)",
                (event_id, capacity),
            )
        return event_id

    def tick(self, event: uuid.UUID, seconds: float) -> None:
        """`seconds` of the serving counter's time pass, then one tick."""
        self.db.execute(
            """UPDATE event_queue SET opens_at = least(opens_at, now() - interval '1 hour'),
                      ticked_at = now() - make_interval(secs => %s), allowance = 0
                WHERE event_id = %s""",
            (seconds, event),
        )
        waiting_room.tick(self.c.waiting_room, self.c.admission_policy)

    def count(self, query: str, *params: Any) -> int:
        row = self.db.execute(query, params).fetchone()
        assert row is not None
        return int(row[0])


def put_queue(client: FlaskClient, auth: Auth, event: uuid.UUID, **body: Any) -> TestResponse:
    payload = {"opensAt": datetime.now(UTC).isoformat(), "admissionRate": 1, **body}
    return client.put(f"/events/{event}/queue", json=payload, headers=auth("olivia"))


def book(
    client: FlaskClient, auth: Auth, event: uuid.UUID, user: str = "alice", token: str | None = None
) -> TestResponse:
    headers = {**auth(user), "Idempotency-Key": str(uuid.uuid4())}
    if token is not None:
        headers["Admission-Token"] = token
    return client.post("/bookings", json={"eventId": str(event), "ticketCount": 2}, headers=headers)


def body_of(response: TestResponse, schema: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    validate(schema, body)  # the OpenAPI schema
    return body


# -- queue mode (operators) ----------------------------------------------------------------------


def test_an_admin_puts_an_event_in_queue_mode_changes_it_and_ends_it(
    room_client: FlaskClient, auth: Auth, own: Scene, assert_problem: Problem
) -> None:
    event = own.event()
    opens = datetime.now(UTC) + timedelta(hours=2)
    created = put_queue(
        room_client, auth, event, opensAt=opens.isoformat(), admissionRate="automatic"
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.headers["Location"] == f"/events/{event}/queue"
    line = body_of(created, "Line")
    assert line["state"] == "scheduled"
    assert line["admissionRate"] == "automatic"
    assert (line["admissionSeconds"], line["randomiseEarlyArrivals"]) == (600, True)
    assert line["expectedTicketsPerBuyer"] == 2

    changed = put_queue(room_client, auth, event, opensAt=opens.isoformat(), admissionRate=25)
    assert changed.status_code == 200
    assert body_of(changed, "Line")["admissionRate"] == 25

    public = room_client.get(f"/events/{event}/queue")
    assert public.status_code == 200
    assert public.headers["Cache-Control"] == "public, max-age=1"
    assert public.headers["ETag"]
    assert body_of(public, "Line")["eventId"] == str(event)

    gone = room_client.delete(f"/events/{event}/queue", headers=auth("olivia"))
    assert gone.status_code == 204
    assert_problem(room_client.delete(f"/events/{event}/queue", headers=auth("olivia")), 404)


def test_queue_settings_are_validated_and_need_the_admin_role(
    room_client: FlaskClient, auth: Auth, own: Scene, assert_problem: Problem
) -> None:
    event = own.event()
    assert_problem(put_queue(room_client, lambda _u: auth("alice"), event), 403, "forbidden")
    bad = [
        {"admissionSeconds": 5},
        {"admissionRate": 0},
        {"admissionRate": "fast"},
        {"expectedTicketsPerBuyer": 0.5},
        {"opensAt": "tomorrow"},
        {"surprise": True},
    ]
    for body in bad:
        assert_problem(put_queue(room_client, auth, event, **body), 422, "validation-failed")
    assert own.count("SELECT count(*) FROM event_queue") == 0
    assert_problem(put_queue(room_client, auth, uuid.uuid4()), 404, "not-found")


# -- joining and waiting (buyers) ----------------------------------------------------------------


def test_joining_gives_a_place_once_and_polling_says_when_to_ask_again(
    room_client: FlaskClient, auth: Auth, own: Scene, assert_problem: Problem
) -> None:
    event = own.event()
    assert put_queue(room_client, auth, event, admissionRate=0.5).status_code == 201
    assert_problem(room_client.get(f"/events/{event}/queue/me", headers=auth("alice")), 404)

    first = room_client.post(f"/events/{event}/queue", headers=auth("bob"))
    joined = room_client.post(f"/events/{event}/queue", headers=auth("alice"))
    again = room_client.post(f"/events/{event}/queue", headers=auth("alice"))

    assert (first.status_code, joined.status_code, again.status_code) == (201, 201, 200)
    assert joined.headers["Location"] == f"/events/{event}/queue/me"
    assert body_of(again, "Place") == body_of(joined, "Place")
    me = room_client.get(f"/events/{event}/queue/me", headers=auth("alice"))
    place = body_of(me, "Place")
    assert place["state"] == "waiting"
    assert place["position"] == 2
    assert place["peopleAhead"] == 1
    assert place["estimatedWaitSeconds"] == 4  # 2 places at 0.5 buyers/s
    assert place["admission"] is None
    assert me.headers["Retry-After"] == str(place["retryAfterSeconds"]) == "2"
    assert me.headers["Cache-Control"] == "private, max-age=2"


def test_an_admitted_buyer_gets_a_token_that_books_the_event(
    room_client: FlaskClient, booking_client: FlaskClient, auth: Auth, own: Scene
) -> None:
    event = own.event()
    put_queue(room_client, auth, event, admissionRate=1, randomiseEarlyArrivals=False)
    room_client.post(f"/events/{event}/queue", headers=auth("alice"))
    own.tick(event, 1.0)

    me = room_client.get(f"/events/{event}/queue/me", headers=auth("alice"))
    place = body_of(me, "Place")
    assert place["state"] == "admitted"
    assert me.headers["Cache-Control"] == "private, no-store"
    token = place["admission"]["token"]
    assert place["admission"]["expiresAt"] == place["expiresAt"]

    booked = book(booking_client, auth, event, token=token)
    assert booked.status_code == 201, booked.get_data(as_text=True)
    assert (
        own.count(
            "SELECT count(*) FROM queue_entry WHERE event_id = %s AND used_at IS NOT NULL", event
        )
        == 1
    )


@pytest.fixture
def admitted(room_client: FlaskClient, auth: Auth, own: Scene) -> tuple[uuid.UUID, str, Scene]:
    """An event in queue mode, Alice admitted: (event, her token, scene)."""
    event = own.event()
    put_queue(room_client, auth, event, admissionRate=1, randomiseEarlyArrivals=False)
    room_client.post(f"/events/{event}/queue", headers=auth("alice"))
    room_client.post(f"/events/{event}/queue", headers=auth("bob"))
    own.tick(event, 1.0)
    place = room_client.get(f"/events/{event}/queue/me", headers=auth("alice")).get_json()
    assert place["state"] == "admitted"
    return event, place["admission"]["token"], own


def _forged(token: str) -> str:
    """The same claims, signed with a key the waiting room never had."""
    alien = AdmissionSigner(generate_signing_key()[0])
    payload = json.loads(_b64(token.split(".")[1]))
    claims = AdmissionClaims(
        uuid.UUID(payload["jti"]),
        uuid.UUID(payload["evt"]),
        payload["sub"],
        datetime.fromtimestamp(payload["exp"], UTC),
    )
    return alien.sign(claims, datetime.now(UTC))


def _b64(part: str) -> bytes:
    import base64  # noqa: PLC0415

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.mark.parametrize(
    ("case", "status", "slug"),
    [
        ("none", 403, "admission-required"),
        ("forged", 403, "admission-required"),
        ("tampered", 403, "admission-required"),
        ("garbage", 403, "admission-required"),
        ("other-customer", 403, "admission-required"),
        ("other-event", 403, "admission-required"),
        ("expired", 403, "admission-expired"),
    ],
)
def test_bookings_without_a_valid_admission_are_refused_and_book_nothing(
    room_client: FlaskClient,
    booking_client: FlaskClient,
    auth: Auth,
    admitted: tuple[uuid.UUID, str, Scene],
    assert_problem: Problem,
    case: str,
    status: int,
    slug: str,
) -> None:
    event, token, own = admitted
    user, target, sent = "alice", event, token
    if case == "none":
        sent = None
    elif case == "forged":
        sent = _forged(token)
    elif case == "tampered":
        head, payload, sig = token.split(".")
        sent = f"{head}.{payload[:-2]}{'AA' if payload[-2:] != 'AA' else 'BB'}.{sig}"
    elif case == "garbage":
        sent = "not-a-token"
    elif case == "other-customer":
        user = "bob"  # Alice's token, sent by Bob (who is in line but not admitted)
    elif case == "other-event":
        target = own.event()  # Alice's token for another event in queue mode
        assert put_queue(room_client, auth, target).status_code == 201
    else:  # a token signed by the waiting room's key whose window has ended
        payload = json.loads(_b64(token.split(".")[1]))
        claims = AdmissionClaims(
            uuid.UUID(payload["jti"]), event, payload["sub"], datetime.now(UTC) - timedelta(1)
        )
        sent = own.c.admission_signer.sign(claims, datetime.now(UTC) - timedelta(2))
    before = own.count("SELECT count(*) FROM booking")

    response = book(booking_client, auth, target, user=user, token=sent)

    assert_problem(response, status, slug)
    assert own.count("SELECT count(*) FROM booking") == before
    assert own.count("SELECT coalesce(sum(sold), 0) FROM event_inventory") == 0


def test_the_waiting_buyers_see_sold_out_at_their_next_poll(
    room_client: FlaskClient, booking_client: FlaskClient, auth: Auth, own: Scene
) -> None:
    event = own.event(capacity=2)
    put_queue(room_client, auth, event, admissionRate=1, randomiseEarlyArrivals=False)
    room_client.post(f"/events/{event}/queue", headers=auth("alice"))
    room_client.post(f"/events/{event}/queue", headers=auth("bob"))
    own.tick(event, 1.0)
    alice = room_client.get(f"/events/{event}/queue/me", headers=auth("alice")).get_json()
    bob = room_client.get(f"/events/{event}/queue/me", headers=auth("bob")).get_json()
    assert (alice["state"], bob["state"]) == ("admitted", "waiting")
    assert book(booking_client, auth, event, token=alice["admission"]["token"]).status_code == 201

    own.tick(event, 1.0)  # the controller's next tick sees no seats left

    bob = room_client.get(f"/events/{event}/queue/me", headers=auth("bob"))
    assert body_of(bob, "Place")["state"] == "sold-out"
    assert bob.headers["Cache-Control"] == "private, max-age=60"
    line = body_of(room_client.get(f"/events/{event}/queue"), "Line")
    assert line["state"] == "sold-out"
    assert line["soldOutAt"] is not None
    refused = room_client.post(f"/events/{event}/queue", headers=auth("olivia"))
    assert refused.status_code == 409


def test_a_booking_with_a_token_but_no_verify_keys_is_a_configuration_problem(
    booking_client: FlaskClient,
    auth: Auth,
    admitted: tuple[uuid.UUID, str, Scene],
    use_settings: Callable[..., bootstrap.Container],
    assert_problem: Problem,
) -> None:
    event, token, own = admitted
    use_settings(
        database_url=own.c.settings.database_url,
        kafka_bootstrap_servers="",
        admission_verify_keys="",
    )
    assert_problem(book(booking_client, auth, event, token=token), 503, "service-misconfigured")
