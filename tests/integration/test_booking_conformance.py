"""The booking endpoints against src/boxoffice/openapi.yaml, through the real create_booking
functions-framework entrypoint, the real PostgreSQL and alice's real Keycloak token.

1. Property-based (schemathesis): POST /bookings, GET /bookings, GET and DELETE
   /bookings/{bookingId}; no response may be a 5xx and every one must conform to the spec.
   Bounded and reproducible (derandomized, a fixed number of examples per operation).
   Generated Idempotency-Keys get this run's prefix (the database outlives a run, and a
   derandomized key would otherwise replay or clash with last run's). So that bookings get past
   404 and actually book, generated event ids are sometimes a sandbox event of this module (large
   capacity, far in the future) and booking ids sometimes bookings made on it; alice's
   per-event limit is raised for this module's composition root. Every booking on the sandbox
   event is cancelled at the end. Each 2xx is also sent again without the token and with a
   made-up one, and must be 401 (authentication enforced, not just declared).
2. Negative cases for POST /bookings (bodies of any shape, malformed or missing
   Idempotency-Keys): every one refused with a documented 4xx problem, never a 5xx.
3. With the database unreachable, the booking endpoint's breaker opens and the endpoint then
   answers the spec's 503 with Retry-After at once, and /metrics shows the breaker open.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import functions_framework
import psycopg
import pytest
import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo
from schemathesis.specs.openapi.checks import ignored_auth

from boxoffice import bootstrap
from boxoffice.config import Settings

pytestmark = pytest.mark.integration

schemathesis.experimental.OPEN_API_3_1.enable()

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "src" / "boxoffice" / "openapi.yaml"
EXAMPLES_PER_OPERATION = 30
NEGATIVE_EXAMPLES = 20  # bad requests are cheap to refuse but slow to generate
MAX_TICKETS_PER_ORDER = 10  # BOXOFFICE_MAX_TICKETS_PER_ORDER, default
BOOKING_PATHS = r"^/bookings"
RUN = uuid.uuid4().hex[:12]  # prefix of this run's Idempotency-Keys

# Filled by the `sandbox` fixture before any case is generated.
SANDBOX: dict[str, str] = {}
KNOWN_BOOKINGS: list[str] = []


def _database_url() -> str:
    url = os.environ.get("BOXOFFICE_DATABASE_URL", "")
    if not url:
        pytest.fail("BOXOFFICE_DATABASE_URL is not set: export .state/env", pytrace=False)
    return url


@pytest.fixture(scope="module")
def booking_client() -> FlaskClient:
    source = ROOT / "functions" / "create_booking" / "main.py"
    app = functions_framework.create_app(target="handler", source=str(source))  # type: ignore[no-untyped-call]
    client: FlaskClient = app.test_client()
    return client


@pytest.fixture(scope="module")
def generous_limits() -> Iterator[bootstrap.Container]:
    """The functions' composition root, with a per-customer limit the run cannot reach."""
    previous = bootstrap.container()
    settings_ = dataclasses.replace(
        Settings.from_env(), max_tickets_per_customer_per_event=1_000_000
    )
    ours = bootstrap.Container(settings_)
    bootstrap.set_container(ours)
    yield ours
    bootstrap.set_container(previous)
    if "outbox_relay_worker" in ours.__dict__:  # started by the bookings' kicks
        ours.outbox_relay_worker.stop()
    if "event_publisher" in ours.__dict__:
        ours.event_publisher.close()
    ours.database.close()


@pytest.fixture(scope="module")
def sandbox(
    booking_client: FlaskClient,
    generous_limits: bootstrap.Container,
    access_token: Callable[[str], str],
) -> Iterator[dict[str, str]]:
    venue_id, event_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(_database_url(), autocommit=True) as conn, conn.transaction():
        conn.execute(
            """INSERT INTO venue (id, name, address, city, capacity)
               VALUES (%s, %s, '1 Conformance Way', 'Testville', 1000000)""",
            (venue_id, f"Booking conformance {RUN}"),
        )
        conn.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity)
               VALUES (%s, %s, %s, %s, 12.50, 'GBP', 1000000)""",
            (event_id, venue_id, f"Booking conformance {RUN}",
             datetime(2999, 6, 1, tzinfo=UTC)),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, 0, 1000000)",
            (event_id,),
        )
    headers = {"Authorization": f"Bearer {access_token('alice')}"}
    SANDBOX.update(event=str(event_id), venue=str(venue_id))
    for _ in range(2):  # something to read and cancel from the first generated case on
        made = booking_client.post(
            "/bookings",
            json={"eventId": str(event_id), "ticketCount": 1},
            headers={**headers, "Idempotency-Key": f"{RUN}-seed-{uuid.uuid4()}"},
        )
        assert made.status_code == 201, made.get_data(as_text=True)
        KNOWN_BOOKINGS.append(made.get_json()["id"])
    yield dict(SANDBOX)
    with psycopg.connect(_database_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id FROM booking WHERE event_id = %s AND status <> 'CANCELLED'", (event_id,)
        ).fetchall()
    for (booking_id,) in rows:  # through the API: seats, limits and outbox stay consistent
        cancelled = booking_client.delete(f"/bookings/{booking_id}", headers=headers)
        assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    SANDBOX.clear()
    KNOWN_BOOKINGS.clear()


@pytest.fixture(scope="module")
def booking_schema(booking_client: FlaskClient, sandbox: dict[str, str]) -> Any:
    schema = schemathesis.from_path(str(SPEC), app=booking_client.application)
    return schema.include(path_regex=BOOKING_PATHS)


schema = schemathesis.from_pytest_fixture("booking_schema")


def _operation(context: Any) -> str:
    return str(context.operation.definition.raw.get("operationId", ""))


@schema.hook
def before_generate_body(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    """Half of the POST bodies name the sandbox event (an arbitrary id is mostly 404), and
    most of those ask for a count within the per-booking limit (the schema has no maximum)."""
    if _operation(context) != "createBooking":
        return strategy

    def at_sandbox(body: Any) -> Any:
        if not (isinstance(body, dict) and "eventId" in body):
            return body
        count = body.get("ticketCount")
        if isinstance(count, int) and count > 12:
            count = 1 + count % MAX_TICKETS_PER_ORDER
        return {**body, "eventId": SANDBOX["event"], "ticketCount": count}

    return st.one_of(strategy, strategy.map(at_sandbox))


@schema.hook
def before_generate_path_parameters(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    """Booking ids: bookings that exist, other UUIDs, and strings that are not UUIDs (400).

    Replaces the spec's own strategy: `format: uuid` is served by a strategy that
    test_openapi_conformance.py registers process-wide, which must not be first drawn here."""
    if _operation(context) not in {"getBooking", "cancelBooking", "payBooking"}:
        return strategy
    known = st.deferred(lambda: st.sampled_from(KNOWN_BOOKINGS))
    other = st.uuids().map(str)
    malformed = st.from_regex(r"\A[0-9A-Za-z-]{1,40}\Z")
    return st.one_of(known, other, malformed).map(lambda i: {"bookingId": i})


@schema.hook
def before_generate_headers(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    """This run's prefix on every generated Idempotency-Key (kept within 255 characters)."""

    def prefixed(headers: Any) -> Any:
        if isinstance(headers, dict) and "Idempotency-Key" in headers:
            return {**headers, "Idempotency-Key": f"{RUN}-{headers['Idempotency-Key']}"[:255]}
        return headers

    return strategy.map(prefixed)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_booking_response_conforms_to_the_spec_and_none_is_a_server_error(
    case: Any, access_token: Callable[[str], str], sandbox: dict[str, str]
) -> None:
    token = {"Authorization": f"Bearer {access_token('alice')}"}
    case.headers = {**(case.headers or {}), **token}
    response = case.call_wsgi()
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code == 201:
        KNOWN_BOOKINGS.append(response.json["id"])
    # `headers` tells the auth check that this token is the caller's (valid, explicit): a 2xx
    # is then sent again without it, and with a made-up one, and must be 401 both times.
    case.validate_response(response, additional_checks=(ignored_auth,), headers=token)


@pytest.fixture(scope="module")
def create_booking_schema(booking_client: FlaskClient, sandbox: dict[str, str]) -> Any:
    schema = schemathesis.from_path(str(SPEC), app=booking_client.application)
    return schema.include(operation_id="createBooking")


negative = schemathesis.from_pytest_fixture(
    "create_booking_schema", data_generation_methods=[schemathesis.DataGenerationMethod.negative]
)


@negative.parametrize()
@settings(
    max_examples=NEGATIVE_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_bookings_that_break_the_spec_are_refused_with_a_4xx_problem_never_a_5xx(
    case: Any, access_token: Callable[[str], str]
) -> None:
    """Requests the spec forbids (bodies of any shape, bad or missing Idempotency-Keys, stray
    headers), from alice: refused as documented, nothing accepted, no 5xx."""
    token = {"Authorization": f"Bearer {access_token('alice')}"}
    case.headers = {**(case.headers or {}), **token}
    response = case.call_wsgi()
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/problem+json"
    case.validate_response(response, headers=token)


def test_the_sandbox_run_actually_booked_and_cancelled_through_the_endpoints(
    sandbox: dict[str, str],
) -> None:
    """Guards the test above against testing only refusals: bookings were made on the sandbox
    event by generated requests (beyond the two seeded), and some were cancelled."""
    with psycopg.connect(_database_url(), autocommit=True) as conn:
        row = conn.execute(
            """SELECT count(*), count(*) FILTER (WHERE status = 'CANCELLED')
                 FROM booking WHERE event_id = %s""",
            (sandbox["event"],),
        ).fetchone()
    assert row is not None
    made, cancelled = row
    assert made > 2
    assert cancelled >= 1


# -- the database breaker, end to end ---------------------------------------------------------


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _breaker_gauge(client: FlaskClient, dependency: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    prefix = f'boxoffice_circuit_breaker_open{{dependency="{dependency}"}} '
    values = [float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix)]
    assert len(values) == 1, text
    return values[0]


def test_booking_fails_fast_with_503_and_retry_after_while_the_database_breaker_is_open(
    booking_client: FlaskClient,
    use_settings: Callable[..., bootstrap.Container],
    auth: Callable[[str], dict[str, str]],
    assert_problem: Callable[..., dict[str, Any]],
) -> None:
    db_timeout = 1.0
    unreachable = make_conninfo(_database_url(), port=str(_closed_port()))
    use_settings(
        database_url=unreachable,
        db_timeout=db_timeout,
        breaker_failure_threshold=2,
        breaker_open_seconds=10.0,
    )

    def book() -> Any:
        return booking_client.post(
            "/bookings",
            json={"eventId": str(uuid.uuid4()), "ticketCount": 1},
            headers={**auth("alice"), "Idempotency-Key": str(uuid.uuid4())},
        )

    for _ in range(2):  # each waits for the pool's timeout, then 503: the breaker counts them
        assert_problem(book(), 503, "service-unavailable")
    assert _breaker_gauge(booking_client, "database") == 1.0

    started = time.perf_counter()
    response = book()
    elapsed = time.perf_counter() - started

    body = assert_problem(response, 503, "service-unavailable")
    assert "circuit open" in body["detail"]
    assert 1 <= int(response.headers["Retry-After"]) <= 10
    assert elapsed < db_timeout / 4, f"took {elapsed:.3f} s: did not fail fast"
    ready = booking_client.get("/readyz")  # readiness says so too, as fast
    assert_problem(ready, 503, "service-unavailable")
