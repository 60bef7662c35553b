"""consume_order through its real HTTP entrypoint (functions-framework app, in process) against
the real PostgreSQL and the moto S3 server of the local stack. Deliveries are shaped as Knative's
KafkaSource sends them (../shared/docs/kafkasource-contract.md); golden ones are in tests/events/.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import functions_framework
import pytest
import requests
from flask.testing import FlaskClient
from test_consume_order_support import (
    PRICE,
    ROOT,
    Db,
    Delivery,
    booking_status,
    cancel_in_db,
    cancelled_delivery,
    consume_order_client,
    created_delivery,
    deliver,
    ensure_customer,
    ensure_event,
    golden,
    insert_booking,
    order_rows,
    reset_booking,
    ticket_rows,
)

from boxoffice import bootstrap, errors, metrics
from boxoffice.adapters.ticket_pdf import PdfTicketRenderer
from boxoffice.domain.bookings import Booking, BookingStatus
from boxoffice.services import orders
from boxoffice.web.validation import validate
from pdf_tickets import read_ticket_pdf

Auth = Callable[[str], dict[str, str]]

GOLDEN_EVENT = uuid.UUID("e0e0f000-0000-4000-8000-00000000e001")
GOLDEN_CUSTOMER = uuid.UUID("c0c0f000-0000-4000-8000-00000000e001")
GOLDEN_BOOKING = uuid.UUID("b00c0000-0000-4000-8000-00000000e001")
GOLDEN_STRUCTURED = uuid.UUID("b00c0000-0000-4000-8000-00000000e002")


@pytest.fixture
def db(own_db: Db) -> Db:
    """Bookings here are written with SQL (no seats taken, no outbox row): a database of the
    test's own (`own_db`), never the dev database."""
    return own_db


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return consume_order_client()


@pytest.fixture
def swap(
    use_settings: Callable[..., bootstrap.Container],
) -> Iterator[Callable[..., bootstrap.Container]]:
    """`use_settings`, plus: the document sweeper threads the swapped containers started (on
    their first delivery) are stopped afterwards, so none keeps sweeping with test settings."""
    made: list[bootstrap.Container] = []

    def swap_to(**overrides: Any) -> bootstrap.Container:
        made.append(use_settings(**overrides))
        return made[-1]

    yield swap_to
    for c in made:
        if "document_worker" in c.__dict__:
            c.document_worker.stop()


@pytest.fixture
def event_and_customer(db: Db) -> tuple[uuid.UUID, uuid.UUID]:
    ensure_event(db, GOLDEN_EVENT)
    ensure_customer(db, GOLDEN_CUSTOMER)
    return GOLDEN_EVENT, GOLDEN_CUSTOMER


@pytest.fixture
def new_booking(db: Db, event_and_customer: tuple[uuid.UUID, uuid.UUID]) -> Callable[..., Any]:
    event, customer = event_and_customer
    return lambda quantity=2: insert_booking(db, event, customer, quantity)


def golden_delivery(name: str) -> tuple[Delivery, dict[str, Any]]:
    data = golden(name)
    return Delivery(data["headers"], data["body"].encode(), name), data["expect"]


def counter(metric: Any) -> float:
    value: float = metric._value.get()
    return value


# -- golden CloudEvents ------------------------------------------------------------------------


@pytest.fixture
def golden_bookings(db: Db, event_and_customer: tuple[uuid.UUID, uuid.UUID]) -> None:
    """The PENDING bookings the golden events name (fixed ids: an earlier run's are reset)."""
    event, customer = event_and_customer
    for booking_id, quantity in ((GOLDEN_BOOKING, 2), (GOLDEN_STRUCTURED, 1)):
        reset_booking(db, booking_id)
        insert_booking(db, event, customer, quantity, booking_id)


def test_golden_binary_created_event_confirms_the_booking_with_one_ticket_per_seat(
    client: FlaskClient, db: Db, golden_bookings: None
) -> None:
    delivery, expect = golden_delivery("booking-created.binary.json")

    response = deliver(client, delivery)

    assert response.status_code == expect["status"], response.get_data(as_text=True)
    assert response.get_json()["outcome"] == expect["outcome"]
    assert [r[1] for r in order_rows(db, GOLDEN_BOOKING)] == ["CONFIRMED"]
    tickets = ticket_rows(db, GOLDEN_BOOKING)
    assert [t[1] for t in tickets] == list(range(1, expect["tickets"] + 1))
    assert all(t[3] == "VALID" for t in tickets)
    assert booking_status(db, GOLDEN_BOOKING) == "CONFIRMED"


def test_golden_structured_mode_created_event_is_accepted_too(
    client: FlaskClient, db: Db, golden_bookings: None
) -> None:
    delivery, expect = golden_delivery("booking-created.structured.json")

    response = deliver(client, delivery)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(ticket_rows(db, GOLDEN_STRUCTURED)) == expect["tickets"]
    assert booking_status(db, GOLDEN_STRUCTURED) == "CONFIRMED"


def test_golden_cancelled_event_cancels_the_order_and_every_ticket(
    client: FlaskClient, db: Db, golden_bookings: None
) -> None:
    created, _ = golden_delivery("booking-created.binary.json")
    assert deliver(client, created).status_code == 200
    db.execute(
        "UPDATE booking SET status = 'CANCELLED', cancelled_at = now() WHERE id = %s",
        (GOLDEN_BOOKING,),
    )
    cancelled, expect = golden_delivery("booking-cancelled.binary.json")

    first = deliver(client, cancelled)
    again = deliver(client, cancelled)

    assert first.status_code == again.status_code == 200
    assert first.get_json()["outcome"] == expect["outcome"]
    assert again.get_json()["redelivery"] is True
    assert [r[1] for r in order_rows(db, GOLDEN_BOOKING)] == ["CANCELLED"]
    assert {t[3] for t in ticket_rows(db, GOLDEN_BOOKING)} == {"CANCELLED"}


@pytest.mark.parametrize(
    "name",
    ["wrapped-raw-record.json", "malformed.json", "invalid-payload.json", "unknown-booking.json"],
)
def test_golden_events_that_can_never_succeed_get_a_non_retryable_problem_and_change_nothing(
    client: FlaskClient,
    db: Db,
    golden_bookings: None,
    assert_problem: Callable[..., dict[str, Any]],
    name: str,
) -> None:
    delivery, expect = golden_delivery(name)

    response = deliver(client, delivery)

    assert_problem(response, expect["status"], expect["slug"])
    # KafkaSource dead-letters 400/422 at once; it would retry 404/408/409/429/5xx.
    assert response.status_code in (400, 422)
    assert order_rows(db, GOLDEN_BOOKING) == []
    assert booking_status(db, GOLDEN_BOOKING) == "PENDING"


# -- redelivery, races, ordering ----------------------------------------------------------------


def test_redelivered_created_event_answers_success_without_a_second_order(
    client: FlaskClient, db: Db, new_booking: Callable[..., Any]
) -> None:
    booking = new_booking(3)
    delivery = created_delivery(booking)
    duplicates_before = counter(metrics.ORDER_DUPLICATES)

    responses = [deliver(client, delivery) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.get_json()["redelivery"] for r in responses] == [False, True, True]
    assert len(order_rows(db, booking.id)) == 1
    assert len(ticket_rows(db, booking.id)) == 3
    assert counter(metrics.ORDER_DUPLICATES) - duplicates_before == 2


def test_concurrent_deliveries_of_one_event_create_exactly_one_order(
    client: FlaskClient, db: Db, new_booking: Callable[..., Any]
) -> None:
    booking = new_booking(4)
    delivery = created_delivery(booking)
    apps = [consume_order_client() for _ in range(6)]  # one client per thread

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda c: deliver(c, delivery).status_code, apps))

    assert statuses == [200] * 6
    assert len(order_rows(db, booking.id)) == 1
    assert len(ticket_rows(db, booking.id)) == 4


def test_created_event_for_a_booking_cancelled_first_confirms_nothing_and_records_why(
    client: FlaskClient, db: Db, new_booking: Callable[..., Any]
) -> None:
    booking = new_booking(2)
    cancelled = cancel_in_db(db, booking)

    response = deliver(client, created_delivery(booking))
    late_cancel = deliver(client, cancelled_delivery(cancelled, uuid.uuid4()))

    assert response.status_code == 200
    assert response.get_json()["outcome"] == "SKIPPED_BOOKING_CANCELLED"
    assert late_cancel.get_json()["outcome"] == "NO_ORDER_TO_CANCEL"
    assert order_rows(db, booking.id) == []
    assert booking_status(db, booking.id) == "CANCELLED"
    recorded = db.execute(
        "SELECT outcome FROM order_event WHERE booking_id = %s ORDER BY processed_at",
        (booking.id,),
    ).fetchall()
    assert [r[0] for r in recorded] == ["SKIPPED_BOOKING_CANCELLED", "NO_ORDER_TO_CANCEL"]


def test_cancelled_event_for_a_booking_that_is_not_cancelled_is_refused(
    client: FlaskClient,
    db: Db,
    new_booking: Callable[..., Any],
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    booking = new_booking(1)
    fake = cancel_in_db(db, booking)
    db.execute(
        "UPDATE booking SET status = 'PENDING', cancelled_at = NULL WHERE id = %s", (booking.id,)
    )

    response = deliver(client, cancelled_delivery(fake, uuid.uuid4()))

    assert_problem(response, 422, "invalid-booking-event")


def test_event_whose_data_contradicts_the_booking_is_refused(
    client: FlaskClient,
    db: Db,
    new_booking: Callable[..., Any],
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    booking = new_booking(2)
    delivery = created_delivery(booking)
    payload = json.loads(delivery.body)
    payload["quantity"] = 5

    response = deliver(client, Delivery(delivery.headers, json.dumps(payload).encode()))

    assert_problem(response, 422, "invalid-booking-event", field="data.quantity")
    assert order_rows(db, booking.id) == []


def test_ticket_codes_are_signed_for_their_ticket_and_event_and_tampered_codes_are_not(
    client: FlaskClient, db: Db, new_booking: Callable[..., Any]
) -> None:
    booking = new_booking(3)
    assert deliver(client, created_delivery(booking)).status_code == 200
    keys = bootstrap.container().ticket_keys  # the stack's published public key

    tickets = ticket_rows(db, booking.id)

    for ticket_id, _, code, _ in tickets:
        signed = keys.verify(code)
        assert (signed.ticket_id, signed.event_id) == (ticket_id, booking.event_id)
    code = tickets[0][2]
    flipped = code[:-1] + ("A" if code[-1] != "A" else "B")
    with pytest.raises(errors.InvalidTicketCode):
        keys.verify(flipped)
    assert len({c for _, _, c, _ in tickets}) == 3


def test_confirming_counts_orders_tickets_and_observes_latencies(
    client: FlaskClient, new_booking: Callable[..., Any]
) -> None:
    before = (counter(metrics.ORDERS_CONFIRMED), counter(metrics.TICKETS_ISSUED))

    assert deliver(client, created_delivery(new_booking(2))).status_code == 200

    after = (counter(metrics.ORDERS_CONFIRMED), counter(metrics.TICKETS_ISSUED))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 2)
    exposition = client.get("/metrics").get_data(as_text=True)
    assert "boxoffice_booking_to_order_seconds_count" in exposition
    assert "boxoffice_order_processing_seconds_count" in exposition


def test_probes_and_metrics_answer_get_while_events_are_post_only(
    client: FlaskClient, assert_problem: Callable[..., dict[str, Any]]
) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert_problem(client.get("/"), 405, "method-not-allowed")


def test_missing_signing_key_is_a_retryable_503_that_changes_nothing(
    client: FlaskClient,
    db: Db,
    new_booking: Callable[..., Any],
    swap: Callable[..., bootstrap.Container],
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    booking = new_booking(1)
    swap(ticket_signing_key="")

    response = deliver(client, created_delivery(booking))
    assert_problem(response, 503, "service-misconfigured")
    swap(ticket_signing_key="an HMAC key of earlier versions, not an Ed25519 private key")

    response = deliver(client, created_delivery(booking))

    assert_problem(response, 503, "service-misconfigured")
    assert client.get("/readyz").status_code == 503
    assert order_rows(db, booking.id) == []


def test_database_down_is_a_retryable_503_and_the_redelivery_then_succeeds(
    client: FlaskClient,
    db: Db,
    new_booking: Callable[..., Any],
    swap: Callable[..., bootstrap.Container],
    dead_url: str,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    booking = new_booking(2)
    delivery = created_delivery(booking)
    port = urlsplit(dead_url).port
    good = bootstrap.container().settings.database_url
    swap(database_url=f"postgresql://boxoffice:boxoffice@127.0.0.1:{port}/boxoffice")

    down = deliver(client, delivery)
    swap(database_url=good)
    up = deliver(client, delivery)

    assert_problem(down, 503, "service-unavailable")
    assert up.status_code == 200
    assert len(ticket_rows(db, booking.id)) == 2


# -- ticket documents in S3 ----------------------------------------------------------------------


def _stored_at(db: Db, booking_id: uuid.UUID, wait: float = 30.0) -> Any:
    """The order's document_stored_at once the document worker stored it (polls)."""
    deadline = time.monotonic() + wait
    while True:
        [(_, _, stored_at)] = order_rows(db, booking_id)
        if stored_at is not None or time.monotonic() > deadline:
            return stored_at
        time.sleep(0.1)


def _attempts(db: Db, order_id: uuid.UUID) -> int:
    row = db.execute("SELECT document_attempts FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_confirmed_order_gets_its_pdf_from_the_worker_after_the_answer(
    client: FlaskClient, db: Db, new_booking: Callable[..., Any]
) -> None:
    booking = new_booking(2)

    response = deliver(client, created_delivery(booking))

    assert response.status_code == 200
    assert "documentStored" not in response.get_json()  # not the request's business any more
    assert _stored_at(db, booking.id) is not None
    [(order_id, _, _)] = order_rows(db, booking.id)
    pdf = bootstrap.container().document_store.get(f"orders/{order_id}.pdf")
    pages = read_ticket_pdf(pdf)
    assert [p.codes for p in pages] == [[t[2]] for t in ticket_rows(db, booking.id)]
    assert all("Order processing test night" in p.text and str(order_id) in p.text for p in pages)
    key = db.execute("SELECT document_key FROM orders WHERE id = %s", (order_id,)).fetchone()
    assert key == (f"orders/{order_id}.pdf",)


def test_document_store_failure_still_confirms_and_the_worker_stores_it_once_s3_is_back(
    client: FlaskClient,
    db: Db,
    new_booking: Callable[..., Any],
    swap: Callable[..., bootstrap.Container],
    dead_url: str,
) -> None:
    booking = new_booking(1)
    delivery = created_delivery(booking)
    failures_before = counter(metrics.TICKET_DOCUMENT_FAILURES)
    good = bootstrap.container().settings.s3_endpoint_url
    down = swap(s3_endpoint_url=dead_url.removesuffix("/certs"))

    first = deliver(client, delivery)

    assert first.status_code == 200
    [(order_id, status, _)] = order_rows(db, booking.id)
    assert status == "CONFIRMED"
    assert booking_status(db, booking.id) == "CONFIRMED"
    deadline = time.monotonic() + 20
    while _attempts(db, order_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _attempts(db, order_id) >= 1  # the failed upload was recorded for a retry
    assert counter(metrics.TICKET_DOCUMENT_FAILURES) - failures_before >= 1
    down.document_worker.stop()

    c = swap(s3_endpoint_url=good)
    again = deliver(client, delivery)  # a redelivery wakes the new process's worker

    assert again.status_code == 200
    assert _stored_at(db, booking.id) is not None  # after its backoff (2 s)
    assert read_ticket_pdf(c.document_store.get(f"orders/{order_id}.pdf"))[0].codes


def test_document_sweep_stores_documents_left_pending_by_an_outage(
    client: FlaskClient,
    db: Db,
    new_booking: Callable[..., Any],
    swap: Callable[..., bootstrap.Container],
    dead_url: str,
) -> None:
    booking = new_booking(2)
    good = bootstrap.container().settings.s3_endpoint_url
    down = swap(s3_endpoint_url=dead_url.removesuffix("/certs"))
    assert deliver(client, created_delivery(booking)).status_code == 200
    down.document_worker.stop()
    [(order_id, _, _)] = order_rows(db, booking.id)
    c = swap(s3_endpoint_url=good)

    renderer = PdfTicketRenderer()
    while orders.store_document(c.order_uow, c.document_store, renderer, due_only=False):
        pass  # the sweeper's loop, without waiting for the backoff

    assert order_rows(db, booking.id)[0][2] is not None
    assert len(read_ticket_pdf(c.document_store.get(f"orders/{order_id}.pdf"))) == 2


# -- the customer's view: GET /bookings/{id} and GET /bookings show the order ---------------------


@pytest.fixture(scope="module")
def booking_client() -> FlaskClient:
    source = ROOT / "functions" / "create_booking" / "main.py"
    app = functions_framework.create_app(target="handler", source=str(source))  # type: ignore[no-untyped-call]
    made: FlaskClient = app.test_client()
    return made


def booked_by_alice(booking_client: FlaskClient, db: Db, auth: Auth, quantity: int) -> Booking:
    event = uuid.uuid4()
    ensure_event(db, event)
    response = booking_client.post(
        "/bookings",
        json={"eventId": str(event), "ticketCount": quantity},
        headers={**auth("alice"), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    row = db.execute(
        "SELECT customer_id, created_at FROM booking WHERE id = %s", (response.get_json()["id"],)
    ).fetchone()
    assert row is not None
    return Booking(
        uuid.UUID(response.get_json()["id"]),
        row[0],
        event,
        quantity,
        PRICE,
        BookingStatus.PENDING,
        row[1],
    )


def read_until_document_linked(
    booking_client: FlaskClient, auth: Auth, booking_id: uuid.UUID
) -> dict[str, Any]:
    """GET the booking until its document link appears: the document is stored after the
    order's commit, possibly by the stack's own consume_order (the live Kafka pipeline also
    delivers this booking's event), which may still hold the row while uploading."""
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = booking_client.get(
            f"/bookings/{booking_id}", headers=auth("alice")
        ).get_json()
        order = body.get("order") or {}
        if order.get("documentUrl") or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_confirmed_booking_shows_its_order_tickets_and_a_working_document_link(
    client: FlaskClient, booking_client: FlaskClient, db: Db, auth: Auth
) -> None:
    booking = booked_by_alice(booking_client, db, auth, 2)
    assert deliver(client, created_delivery(booking)).status_code == 200

    body = read_until_document_linked(booking_client, auth, booking.id)

    validate("Booking", body)
    assert body["status"] == "CONFIRMED"
    order = body["order"]
    assert [t["seq"] for t in order["tickets"]] == [1, 2]
    assert [t["code"] for t in order["tickets"]] == [t[2] for t in ticket_rows(db, booking.id)]
    document = requests.get(order["documentUrl"], timeout=10)
    assert document.status_code == 200
    assert document.headers["Content-Type"] == "application/pdf"
    pages = read_ticket_pdf(document.content)
    assert [p.codes for p in pages] == [[t["code"]] for t in order["tickets"]]
    assert all(order["id"] in p.text for p in pages)
    assert "X-Amz-Expires=300" in order["documentUrl"]


def test_order_history_lists_orders_and_other_customers_still_get_404(
    client: FlaskClient,
    booking_client: FlaskClient,
    db: Db,
    auth: Auth,
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    booking = booked_by_alice(booking_client, db, auth, 1)
    assert deliver(client, created_delivery(booking)).status_code == 200

    page = booking_client.get("/bookings?limit=5", headers=auth("alice")).get_json()
    by_bob = booking_client.get(f"/bookings/{booking.id}", headers=auth("bob"))

    validate("BookingPage", page)
    [mine] = [b for b in page["items"] if b["id"] == str(booking.id)]
    assert mine["order"]["status"] == "CONFIRMED"
    assert len(mine["order"]["tickets"]) == 1
    assert_problem(by_bob, 404, "not-found")


def test_pending_booking_has_no_order_yet(booking_client: FlaskClient, db: Db, auth: Auth) -> None:
    row = db.execute(
        "SELECT id FROM customer WHERE subject = 'a11ce000-0000-4000-8000-000000000001'"
    ).fetchone()
    assert row is not None  # alice's profile (demo data)
    event = uuid.uuid4()
    ensure_event(db, event)
    booking = insert_booking(db, event, row[0], 1)  # no outbox row: nothing will confirm it

    body = booking_client.get(f"/bookings/{booking.id}", headers=auth("alice")).get_json()

    assert (body["status"], body["order"]) == ("PENDING", None)


def test_booking_made_through_create_booking_is_confirmed_through_kafka_and_dispatch(
    booking_client: FlaskClient, dev_db: Db, auth: Auth
) -> None:
    """The whole path of the running stack: outbox relay -> Kafka `booking` topic -> the
    KafkaSource-contract dispatcher -> consume_order (port 28084). No delivery by the test.
    On the dev database: the booking is made by create_booking itself (seats, outbox row)."""
    db = dev_db
    booking = booked_by_alice(booking_client, db, auth, 2)

    deadline = time.monotonic() + 60
    while booking_status(db, booking.id) != "CONFIRMED" and time.monotonic() < deadline:
        time.sleep(0.25)

    assert booking_status(db, booking.id) == "CONFIRMED"
    assert [o[1] for o in order_rows(db, booking.id)] == ["CONFIRMED"]
    assert len(ticket_rows(db, booking.id)) == 2
    recorded = db.execute(
        "SELECT event_id, outcome FROM order_event WHERE booking_id = %s", (booking.id,)
    ).fetchall()
    assert recorded == [(str(booking.id), "CONFIRMED")]  # the relay's CloudEvent id
