"""check_in through its real HTTP entrypoint (functions-framework app, in process) against the real
PostgreSQL and Keycloak of the local stack. Tickets are issued the real way: a booking row
confirmed by consume_order (in process too), which signs their codes with the stack's key.

Every refusal is checked for its problem type and against the OpenAPI schema; the concurrency of
admissions is covered by tests/integration/test_check_in_concurrency.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import functions_framework
import psycopg
import pytest
from flask.testing import FlaskClient
from test_consume_order import booked_by_alice
from test_consume_order_support import (
    ROOT,
    Db,
    cancel_in_db,
    cancelled_delivery,
    consume_order_client,
    created_delivery,
    deliver,
    ensure_customer,
    ensure_event,
    insert_booking,
    ticket_rows,
)
from werkzeug.test import TestResponse

from boxoffice import bootstrap, metrics
from boxoffice.domain.bookings import Booking
from boxoffice.domain.tickets import TicketSigner, load_signer
from boxoffice.web.validation import validate

pytestmark = pytest.mark.integration

Auth = Callable[[str], dict[str, str]]
CUSTOMER = uuid.UUID("c0c0f000-0000-4000-8000-0000000c4e01")


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    source = ROOT / "functions" / "check_in" / "main.py"
    app = functions_framework.create_app(target="handler", source=str(source))  # type: ignore[no-untyped-call]
    made: FlaskClient = app.test_client()
    return made


@pytest.fixture(scope="module")
def orders_client() -> FlaskClient:
    return consume_order_client()


@pytest.fixture(scope="module")
def booking_client() -> FlaskClient:
    source = ROOT / "functions" / "create_booking" / "main.py"
    app = functions_framework.create_app(target="handler", source=str(source))  # type: ignore[no-untyped-call]
    made: FlaskClient = app.test_client()
    return made


@pytest.fixture
def swap(use_settings: Callable[..., bootstrap.Container]) -> Callable[..., bootstrap.Container]:
    return use_settings


@pytest.fixture
def db(own_db: Db) -> Db:
    """These tests cancel bookings straight in the database and set statuses by hand: a
    database of the test's own (`own_db`), never the dev database."""
    return own_db


@pytest.fixture
def event(db: Db) -> uuid.UUID:
    """A fresh event per test (summaries count per event)."""
    event_id = uuid.uuid4()
    ensure_event(db, event_id)
    ensure_customer(db, CUSTOMER)
    return event_id


Issue = Callable[..., tuple[Booking, list[tuple[Any, ...]]]]


@pytest.fixture
def issue(db: Db, orders_client: FlaskClient) -> Issue:
    """`issue(event, n)`: a booking of `n` tickets confirmed by consume_order; (booking, its
    ticket rows (id, seq, code, status))."""

    def make(event_id: uuid.UUID, quantity: int = 1) -> tuple[Booking, list[tuple[Any, ...]]]:
        booking = insert_booking(db, event_id, CUSTOMER, quantity)
        assert deliver(orders_client, created_delivery(booking)).status_code == 200
        return booking, ticket_rows(db, booking.id)

    return make


def scan(
    client: FlaskClient,
    auth: Auth,
    code: str,
    event_id: uuid.UUID,
    gate: str = "north-1",
    scan_id: uuid.UUID | None = None,
    user: str = "sam",
) -> TestResponse:
    body = {
        "code": code,
        "eventId": str(event_id),
        "gate": gate,
        "scanId": str(scan_id or uuid.uuid4()),
    }
    return client.post("/checkins", json=body, headers=auth(user))


def admitted(response: TestResponse) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    validate("ScanResult", body)
    return body


def refused(
    assert_problem: Callable[..., dict[str, Any]], response: TestResponse, status: int, slug: str
) -> dict[str, Any]:
    body = assert_problem(response, status, slug)
    validate("CheckInProblem", body)
    return body


def counter(outcome: str, mode: str = "online") -> float:
    value: float = metrics.TICKETS_CHECKED_IN.labels(outcome, mode)._value.get()
    return value


# -- admitted once -------------------------------------------------------------------------------


def test_valid_ticket_is_admitted_with_its_time_gate_and_holder(
    client: FlaskClient, auth: Auth, db: Db, event: uuid.UUID, issue: Issue
) -> None:
    booking, [ticket] = issue(event)
    before = counter("admitted")

    body = admitted(scan(client, auth, ticket[2], event, gate="north-1"))

    assert (body["outcome"], body["admitted"], body["ticketId"]) == (
        "admitted",
        True,
        str(ticket[0]),
    )
    assert (body["seq"], body["quantity"], body["holder"]) == (1, 1, "Order Tester")
    assert body["checkIn"]["gate"] == "north-1"
    assert body["checkIn"]["offline"] is False
    row = db.execute(
        "SELECT gate, offline, booking_id, event_id, scanner FROM check_in WHERE ticket_id = %s",
        (ticket[0],),
    ).fetchone()
    assert row == ("north-1", False, booking.id, event, "5ca00000-0000-4000-8000-000000000005")
    assert counter("admitted") - before == 1


def test_second_scan_is_409_already_checked_in_with_when_and_where_it_was_first_admitted(
    client: FlaskClient,
    auth: Auth,
    event: uuid.UUID,
    issue: Issue,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    _, [ticket] = issue(event)
    first = admitted(scan(client, auth, ticket[2], event, gate="north-1"))

    again = refused(
        assert_problem, scan(client, auth, ticket[2], event, gate="south-2"), 409,
        "already-checked-in",
    )  # fmt: skip

    assert again["firstCheckIn"] == {
        "at": first["checkIn"]["at"],
        "gate": "north-1",
        "offline": False,
    }
    assert again["ticketId"] == str(ticket[0])
    assert "north-1" in again["detail"]


def test_the_same_scan_sent_again_is_its_admission_not_a_409(
    client: FlaskClient, auth: Auth, db: Db, event: uuid.UUID, issue: Issue
) -> None:
    _, [ticket] = issue(event)
    scan_id = uuid.uuid4()
    first = admitted(scan(client, auth, ticket[2], event, scan_id=scan_id))

    retry = admitted(scan(client, auth, ticket[2], event, scan_id=scan_id))

    assert retry["outcome"] == "replayed"
    assert retry["checkIn"] == first["checkIn"]
    count = db.execute("SELECT count(*) FROM check_in WHERE ticket_id = %s", (ticket[0],))
    assert count.fetchone() == (1,)


def test_each_ticket_of_a_booking_is_admitted_on_its_own(
    client: FlaskClient, auth: Auth, event: uuid.UUID, issue: Issue
) -> None:
    _, tickets = issue(event, 3)

    bodies = [admitted(scan(client, auth, t[2], event)) for t in tickets]

    assert [b["seq"] for b in bodies] == [1, 2, 3]
    assert {b["quantity"] for b in bodies} == {3}


def test_a_code_typed_in_lower_case_is_the_same_code(
    client: FlaskClient, auth: Auth, event: uuid.UUID, issue: Issue
) -> None:
    _, [ticket] = issue(event)
    assert admitted(scan(client, auth, ticket[2].lower(), event))["ticketId"] == str(ticket[0])


# -- refusals ------------------------------------------------------------------------------------


def test_ticket_of_another_event_is_409_wrong_event_and_is_not_admitted(
    client: FlaskClient,
    auth: Auth,
    db: Db,
    event: uuid.UUID,
    issue: Issue,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    _, [ticket] = issue(event)
    other = uuid.uuid4()
    ensure_event(db, other)

    body = refused(assert_problem, scan(client, auth, ticket[2], other), 409, "wrong-event")

    assert body["ticketEventId"] == str(event)
    assert admitted(scan(client, auth, ticket[2], event))["outcome"] == "admitted"


def test_cancelled_ticket_is_409_ticket_cancelled(
    client: FlaskClient,
    auth: Auth,
    db: Db,
    event: uuid.UUID,
    issue: Issue,
    orders_client: FlaskClient,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    booking, [ticket] = issue(event)
    cancelled = cancel_in_db(db, booking)
    assert deliver(orders_client, cancelled_delivery(cancelled, event)).status_code == 200
    assert ticket_rows(db, booking.id)[0][3] == "CANCELLED"

    refused(assert_problem, scan(client, auth, ticket[2], event), 409, "ticket-cancelled")


def test_ticket_of_a_booking_cancelled_before_its_order_caught_up_is_refused_too(
    client: FlaskClient,
    auth: Auth,
    db: Db,
    event: uuid.UUID,
    issue: Issue,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    """DELETE /bookings cancels the booking at once; consume_order cancels its tickets later."""
    booking, [ticket] = issue(event)
    cancel_in_db(db, booking)
    assert ticket_rows(db, booking.id)[0][3] == "VALID"  # consume_order has not run yet

    refused(assert_problem, scan(client, auth, ticket[2], event), 409, "ticket-cancelled")


def test_ticket_of_a_cancelled_event_is_refused(
    client: FlaskClient,
    auth: Auth,
    db: Db,
    event: uuid.UUID,
    issue: Issue,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    _, [ticket] = issue(event)
    db.execute("UPDATE event SET status = 'CANCELLED' WHERE id = %s", (event,))

    refused(assert_problem, scan(client, auth, ticket[2], event), 409, "ticket-cancelled")


def test_forged_tampered_and_foreign_codes_are_422_invalid_ticket_code(
    client: FlaskClient,
    auth: Auth,
    event: uuid.UUID,
    issue: Issue,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    _, [ticket] = issue(event)
    code = ticket[2]
    tampered = code[:-3] + ("AAA" if not code.endswith("AAA") else "BBB")
    forger = TicketSigner.generate()  # not a trusted key
    forged = forger.code(ticket[0], event)
    before = counter("invalid_ticket_code")

    for bad in (tampered, forged, "hello", "BX1.AAAAAAAA." + "A" * 154, code[:-1]):
        refused(assert_problem, scan(client, auth, bad, event), 422, "invalid-ticket-code")

    assert counter("invalid_ticket_code") - before == 5
    assert admitted(scan(client, auth, code, event))["outcome"] == "admitted"


def test_correctly_signed_code_of_a_ticket_that_does_not_exist_is_404(
    client: FlaskClient,
    auth: Auth,
    event: uuid.UUID,
    stack_env: Callable[[str], str],
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    signer = load_signer(stack_env("BOXOFFICE_TICKET_SIGNING_KEY"))

    response = scan(client, auth, signer.code(uuid.uuid4(), event), event)

    assert_problem(response, 404, "ticket-not-found")


def test_body_is_validated_against_the_spec(
    client: FlaskClient, auth: Auth, event: uuid.UUID, assert_problem: Callable[..., Any]
) -> None:
    body = {"code": "x", "eventId": str(event), "gate": "g"}  # no scanId
    response = client.post("/checkins", json=body, headers=auth("sam"))
    assert_problem(response, 422, "validation-failed", field="scanId")


# -- who may scan --------------------------------------------------------------------------------


def test_only_scanners_check_in(
    client: FlaskClient,
    auth: Auth,
    event: uuid.UUID,
    issue: Issue,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    _, [ticket] = issue(event)
    body = {"code": ticket[2], "eventId": str(event), "gate": "g", "scanId": str(uuid.uuid4())}

    assert_problem(client.post("/checkins", json=body), 401, "unauthorized")
    assert_problem(scan(client, auth, ticket[2], event, user="alice"), 403, "forbidden")
    assert_problem(scan(client, auth, ticket[2], event, user="olivia"), 403, "forbidden")
    assert admitted(scan(client, auth, ticket[2], event))["outcome"] == "admitted"


# -- codes issued before signed codes ----------------------------------------------------------


def _legacy_code(ticket_id: uuid.UUID, booking_id: uuid.UUID, seq: int, key: bytes) -> str:
    """The HMAC code of earlier versions (docs/adr/0007), as they were stored."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    mac = hmac.new(key, f"{ticket_id}|{booking_id}|{seq}".encode(), hashlib.sha256).digest()
    return f"{b64(ticket_id.bytes)}.{b64(mac)[:22]}"


def test_legacy_hmac_codes_are_verified_online_against_the_stored_code(
    client: FlaskClient,
    auth: Auth,
    db: Db,
    event: uuid.UUID,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    booking = insert_booking(db, event, CUSTOMER, 2)
    order_id, key = uuid.uuid4(), b"k" * 32
    legacy = [(uuid.uuid4(), seq) for seq in (1, 2)]
    codes = [_legacy_code(t, booking.id, seq, key) for t, seq in legacy]
    with db.transaction():
        db.execute(
            "INSERT INTO orders (id, booking_id, document_key) VALUES (%s, %s, 'orders/x.json')",
            (order_id, booking.id),
        )
        for (ticket_id, seq), code in zip(legacy, codes, strict=True):
            db.execute(
                "INSERT INTO ticket (id, order_id, seq, code) VALUES (%s, %s, %s, %s)",
                (ticket_id, order_id, seq, code),
            )
        db.execute("UPDATE booking SET status = 'CONFIRMED' WHERE id = %s", (booking.id,))
    wrong_mac = _legacy_code(legacy[1][0], booking.id, 2, b"j" * 32)
    unknown = _legacy_code(uuid.uuid4(), booking.id, 1, key)

    assert admitted(scan(client, auth, codes[0], event))["ticketId"] == str(legacy[0][0])
    refused(assert_problem, scan(client, auth, codes[0], event), 409, "already-checked-in")
    assert_problem(scan(client, auth, wrong_mac, event), 422, "invalid-ticket-code")
    assert_problem(scan(client, auth, unknown, event), 404, "ticket-not-found")
    assert admitted(scan(client, auth, codes[1], event))["seq"] == 2


# -- key rotation --------------------------------------------------------------------------------


def test_rotation_new_key_signs_new_tickets_old_ones_verify_until_their_key_is_retired(
    client: FlaskClient,
    auth: Auth,
    event: uuid.UUID,
    issue: Issue,
    swap: Callable[..., bootstrap.Container],
    stack_env: Callable[[str], str],
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    old = load_signer(stack_env("BOXOFFICE_TICKET_SIGNING_KEY"))
    new = TicketSigner.generate()
    _, [before_a, before_b] = issue(event, 2)  # signed with the old key
    assert before_a[2].startswith(f"BX1.{old.kid}.")

    # 1. publish the new key next to the old one, and sign new tickets with it
    swap(
        ticket_signing_key=new.private_text(),
        ticket_public_keys=f"{new.public_text()},{old.public_text()}",
    )
    _, [after] = issue(event)
    assert after[2].startswith(f"BX1.{new.kid}.")
    jwks = client.get("/.well-known/ticket-keys").get_json()
    assert [k["kid"] for k in jwks["keys"]] == [new.kid, old.kid]
    assert admitted(scan(client, auth, before_a[2], event))["outcome"] == "admitted"
    assert admitted(scan(client, auth, after[2], event))["outcome"] == "admitted"

    # 2. retire the old key: its codes are refused from then on; the new key's still verify
    swap(ticket_signing_key=new.private_text(), ticket_public_keys=new.public_text())
    body = assert_problem(scan(client, auth, before_b[2], event), 422, "invalid-ticket-code")
    assert old.kid in body["detail"]
    assert [k["kid"] for k in client.get("/.well-known/ticket-keys").get_json()["keys"]] == [
        new.kid
    ]
    _, [later] = issue(event)
    assert admitted(scan(client, auth, later[2], event))["outcome"] == "admitted"


def test_published_keys_are_a_public_cacheable_jwks_of_the_stacks_key(
    client: FlaskClient, stack_env: Callable[[str], str]
) -> None:
    signer = load_signer(stack_env("BOXOFFICE_TICKET_SIGNING_KEY"))

    response = client.get("/.well-known/ticket-keys")

    assert response.status_code == 200
    assert response.mimetype == "application/jwk-set+json"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    body = response.get_json()
    validate("TicketKeys", body)
    assert body["keys"] == [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": signer.public_text(),
            "kid": signer.kid,
            "use": "sig",
            "alg": "EdDSA",
        }
    ]


def test_without_public_keys_check_in_is_not_ready_and_answers_503(
    client: FlaskClient,
    auth: Auth,
    event: uuid.UUID,
    swap: Callable[..., bootstrap.Container],
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    swap(ticket_public_keys="")

    assert client.get("/readyz").status_code == 503
    assert_problem(scan(client, auth, "BX1.X", event), 503, "service-misconfigured")


# -- cancelling after check-in -------------------------------------------------------------------


def test_booking_with_a_checked_in_ticket_cannot_be_cancelled(
    client: FlaskClient,
    auth: Auth,
    db: Db,
    booking_client: FlaskClient,
    orders_client: FlaskClient,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    booking = booked_by_alice(booking_client, db, auth, 2)
    assert deliver(orders_client, created_delivery(booking)).status_code == 200
    tickets = ticket_rows(db, booking.id)
    admitted(scan(client, auth, tickets[0][2], booking.event_id))
    sold = db.execute(
        "SELECT sum(sold) FROM event_inventory WHERE event_id = %s", (booking.event_id,)
    ).fetchone()

    response = booking_client.delete(f"/bookings/{booking.id}", headers=auth("alice"))

    assert_problem(response, 409, "booking-not-cancellable")
    status = db.execute("SELECT status FROM booking WHERE id = %s", (booking.id,)).fetchone()
    assert status == ("CONFIRMED",)
    after = db.execute(
        "SELECT sum(sold) FROM event_inventory WHERE event_id = %s", (booking.event_id,)
    ).fetchone()
    assert after == sold  # nothing half-done: the seats stay sold
    # The guard is the database's: no writer can cancel it.
    with pytest.raises(psycopg.errors.RaiseException) as caught:
        db.execute(
            "UPDATE booking SET status = 'CANCELLED', cancelled_at = now() WHERE id = %s",
            (booking.id,),
        )
    assert caught.value.diag.message_primary == "booking-not-cancellable"


# -- offline gates: batch uploads ----------------------------------------------------------------


def upload(
    client: FlaskClient, auth: Auth, event_id: uuid.UUID, gate: str, scans: list[dict[str, Any]]
) -> dict[str, Any]:
    response = client.post(
        "/checkins/batch",
        json={"eventId": str(event_id), "gate": gate, "scans": scans},
        headers=auth("sam"),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    validate("CheckInBatchResult", body)
    return body


def test_batch_upload_admits_new_scans_and_reports_cross_gate_duplicates(
    client: FlaskClient, auth: Auth, db: Db, event: uuid.UUID, issue: Issue
) -> None:
    _, [t1, t2, t3] = issue(event, 3)
    other_event = uuid.uuid4()
    ensure_event(db, other_event)
    _, [foreign] = issue(other_event)
    online = admitted(scan(client, auth, t1[2], event, gate="north-1"))  # gate A, online
    at = datetime.now(UTC) - timedelta(minutes=10)

    def item(code: str, minutes: int) -> dict[str, Any]:
        scanned = (at + timedelta(minutes=minutes)).isoformat()
        return {"code": code, "scanId": str(uuid.uuid4()), "scannedAt": scanned}

    scans = [
        item(t1[2], 1),  # gate A admitted it online meanwhile
        item(t2[2], 2),
        item(t3[2], 3),
        item(t2[2], 4),  # the same ticket twice at this gate
        item("BX1.AAAAAAAA." + "A" * 154, 5),
        item(foreign[2], 6),
    ]
    before = counter("already_checked_in", "offline")

    body = upload(client, auth, event, "south-2", scans)

    results = body["results"]
    assert [r["scanId"] for r in results] == [s["scanId"] for s in scans]
    assert [r["outcome"] for r in results] == [
        "already-checked-in",
        "admitted",
        "admitted",
        "already-checked-in",
        "invalid-ticket-code",
        "wrong-event",
    ]
    assert results[0]["checkIn"] == {**online["checkIn"]}  # the admission that counts: gate A
    assert results[3]["checkIn"]["gate"] == "south-2"
    assert results[3]["checkIn"]["scanId"] == scans[1]["scanId"]
    assert results[1]["checkIn"]["offline"] is True
    device_time = datetime.fromisoformat(results[1]["checkIn"]["at"])
    assert device_time == at + timedelta(minutes=2)  # the time the offline gate scanned it
    assert body["counts"] == {
        "already-checked-in": 2,
        "admitted": 2,
        "invalid-ticket-code": 1,
        "wrong-event": 1,
    }
    assert counter("already_checked_in", "offline") - before == 2
    summary = client.get(f"/events/{event}/checkins/summary", headers=auth("sam")).get_json()
    assert (summary["admitted"], summary["offlineConflicts"]) == (3, 2)

    # The same upload again (the gate did not get the answer): nothing new happens.
    again = upload(client, auth, event, "south-2", scans)
    assert [r["outcome"] for r in again["results"]][:4] == [
        "already-checked-in",
        "replayed",
        "replayed",
        "already-checked-in",
    ]
    summary = client.get(f"/events/{event}/checkins/summary", headers=auth("sam")).get_json()
    assert (summary["admitted"], summary["offlineConflicts"]) == (3, 2)


def test_offline_scan_time_from_the_future_is_recorded_as_now(
    client: FlaskClient, auth: Auth, event: uuid.UUID, issue: Issue
) -> None:
    _, [ticket] = issue(event)
    future = datetime.now(UTC) + timedelta(hours=3)

    [result] = upload(
        client,
        auth,
        event,
        "fast-clock",
        [{"code": ticket[2], "scanId": str(uuid.uuid4()), "scannedAt": future.isoformat()}],
    )["results"]

    assert datetime.fromisoformat(result["checkIn"]["at"]) < future - timedelta(hours=2)


def test_batch_over_500_scans_is_refused(
    client: FlaskClient, auth: Auth, event: uuid.UUID, assert_problem: Callable[..., Any]
) -> None:
    scans = [{"code": "X", "scanId": str(uuid.uuid4()), "scannedAt": "2030-01-01T00:00:00Z"}] * 501
    response = client.post(
        "/checkins/batch",
        json={"eventId": str(event), "gate": "g", "scans": scans},
        headers=auth("sam"),
    )
    assert_problem(response, 422, "validation-failed", field="scans")


# -- the summary ---------------------------------------------------------------------------------


def test_summary_counts_issued_and_admitted_tickets_by_gate(
    client: FlaskClient,
    auth: Auth,
    db: Db,
    event: uuid.UUID,
    issue: Issue,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    _, tickets = issue(event, 4)
    cancelled, _ = issue(event, 1)
    cancel_in_db(db, cancelled)
    db.execute(
        """UPDATE ticket SET status = 'CANCELLED', cancelled_at = now()
            WHERE order_id = (SELECT id FROM orders WHERE booking_id = %s)""",
        (cancelled.id,),
    )
    for t, gate in zip(tickets[:3], ("a", "b", "b"), strict=False):
        admitted(scan(client, auth, t[2], event, gate=gate))

    response = client.get(f"/events/{event}/checkins/summary", headers=auth("olivia"))

    assert response.status_code == 200
    body = response.get_json()
    validate("CheckInSummary", body)
    assert body == {
        "eventId": str(event),
        "issued": 4,
        "admitted": 3,
        "notYetAdmitted": 1,
        "offlineConflicts": 0,
        "gates": [{"gate": "a", "admitted": 1}, {"gate": "b", "admitted": 2}],
    }
    assert client.get(f"/events/{event}/checkins/summary", headers=auth("sam")).status_code == 200
    forbidden = client.get(f"/events/{event}/checkins/summary", headers=auth("alice"))
    assert_problem(forbidden, 403, "forbidden")
    missing = client.get(f"/events/{uuid.uuid4()}/checkins/summary", headers=auth("sam"))
    assert_problem(missing, 404, "not-found")


def test_metrics_and_probes(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    exposition = client.get("/metrics").get_data(as_text=True)
    assert "boxoffice_tickets_checked_in_total" in exposition
