"""The check-in endpoints against src/boxoffice/openapi.yaml (schemathesis), through the real
check_in entrypoint, the real PostgreSQL and sam's (role scanner) real Keycloak token: no response
may be a 5xx, every one must conform to the spec, and a 2xx must be refused without the token.

Bounded and reproducible (derandomized, a fixed number of examples per operation). So that scans
get past `invalid-ticket-code`, generated bodies are often rewritten to carry real codes of a
sandbox event made for this module (and that event's id), and summary requests its id."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import psycopg
import pytest
import schemathesis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import ignored_auth
from support_databases import purge_events_of
from test_consume_order_support import (
    consume_order_client,
    created_delivery,
    deliver,
    ensure_customer,
    ensure_event,
    insert_booking,
    ticket_rows,
)

pytestmark = pytest.mark.integration

schemathesis.experimental.OPEN_API_3_1.enable()

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "src" / "boxoffice" / "openapi.yaml"
EXAMPLES_PER_OPERATION = 25
CUSTOMER = uuid.UUID("c0c0f000-0000-4000-8000-0000000c4e03")


@pytest.fixture(scope="module", autouse=True)
def _dev_database_left_consistent() -> Iterator[None]:
    """These tests book by hand (no seats) against the stack's check_in process, so on the dev
    database: their events go, with everything on them, when the module is done."""
    yield
    purge_events_of(os.environ["BOXOFFICE_DATABASE_URL"], CUSTOMER)


SANDBOX: dict[str, Any] = {}
SEEN: Counter[tuple[str, int]] = Counter()  # (operation, status) of every generated case


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    source = ROOT / "functions" / "check_in" / "main.py"
    app = functions_framework.create_app(target="handler", source=str(source))  # type: ignore[no-untyped-call]
    made: FlaskClient = app.test_client()
    return made


@pytest.fixture(scope="module")
def sandbox() -> Any:
    event = uuid.uuid4()
    with psycopg.connect(os.environ["BOXOFFICE_DATABASE_URL"], autocommit=True) as db:
        ensure_event(db, event)
        ensure_customer(db, CUSTOMER)
        booking = insert_booking(db, event, CUSTOMER, 30)
        assert deliver(consume_order_client(), created_delivery(booking)).status_code == 200
        SANDBOX.update(event=str(event), codes=[t[2] for t in ticket_rows(db, booking.id)])
    yield SANDBOX
    SANDBOX.clear()


@pytest.fixture(scope="module")
def check_in_schema(client: FlaskClient, sandbox: dict[str, Any]) -> Any:
    schema = schemathesis.from_path(str(SPEC), app=client.application)
    return schema.include(path_regex=r"(checkins|ticket-keys)")


schema = schemathesis.from_pytest_fixture("check_in_schema")


def _operation(context: Any) -> str:
    return str(context.operation.definition.raw.get("operationId", ""))


@schema.hook
def before_generate_body(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    op = _operation(context)
    codes = st.deferred(lambda: st.sampled_from(SANDBOX["codes"]))

    if op == "checkIn":

        def real(body: Any, code: str, scan_id: uuid.UUID) -> Any:
            if isinstance(body, dict) and "code" in body:
                return {**body, "code": code, "eventId": SANDBOX["event"], "scanId": str(scan_id)}
            return body

        return st.one_of(strategy, st.builds(real, strategy, codes, st.uuids()))
    if op == "uploadCheckIns":

        def real_batch(body: Any, code: str) -> Any:
            if isinstance(body, dict) and isinstance(body.get("scans"), list):
                scans = [
                    {**s, "code": code} if isinstance(s, dict) else s for s in body["scans"][:5]
                ]
                return {**body, "eventId": SANDBOX["event"], "scans": scans}
            return body

        return st.one_of(strategy, st.builds(real_batch, strategy, codes))
    return strategy


@schema.hook
def before_generate_path_parameters(context: Any, strategy: st.SearchStrategy[Any]) -> Any:
    if _operation(context) != "checkInSummary":
        return strategy
    known = st.deferred(lambda: st.just(SANDBOX["event"]))
    other = st.uuids().map(str)
    malformed = st.from_regex(r"\A[0-9A-Za-z-]{1,40}\Z")
    return st.one_of(known, other, malformed).map(lambda i: {"eventId": i})


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_check_in_response_conforms_to_the_spec_and_none_is_a_server_error(
    case: Any, access_token: Callable[[str], str], sandbox: dict[str, Any]
) -> None:
    token = {"Authorization": f"Bearer {access_token('sam')}"}
    case.headers = {**(case.headers or {}), **token}
    response = case.call_wsgi()
    assert response.status_code < 500, response.get_data(as_text=True)
    SEEN[(case.operation.definition.raw["operationId"], response.status_code)] += 1
    case.validate_response(response, additional_checks=(ignored_auth,), headers=token)


def test_the_generated_cases_reached_admissions_refusals_and_summaries() -> None:
    """Not vacuous: the run above admitted real tickets, refused second scans, answered uploads
    and summaries (runs after it: pytest keeps the file's order)."""
    assert SEEN[("checkIn", 200)] > 0, SEEN
    assert SEEN[("checkIn", 409)] > 0, SEEN
    assert SEEN[("uploadCheckIns", 200)] > 0, SEEN
    assert SEEN[("checkInSummary", 200)] > 0, SEEN
    assert SEEN[("ticketKeys", 200)] > 0, SEEN
