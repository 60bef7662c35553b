"""Python and SQL say the same thing (docs/adr/0010-booking-rules-in-sql.md, amendment "one home
per rule"): the refusal slugs the PL/pgSQL functions can raise, the states and outcomes they write
and compare, the CloudEvent types they write, and the waiting room's defaults.

The SQL side is read from a database of this module's own, migrated with db/migrations (the
functions' sources from `pg_proc`, the allowed values from the CHECK constraints): what runs, not
what a file might say. Refusals are raised for real (`refuse(slug, detail)`) and handed to the
adapter that calls the function, so a slug the adapter does not map fails here, not as a 500.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
import yaml
from support_databases import fresh_database

from boxoffice import errors
from boxoffice.adapters import postgres_bookings, postgres_orders
from boxoffice.domain.bookings import BookingStatus
from boxoffice.domain.catalogue import Availability
from boxoffice.domain.checkins import ScanOutcome
from boxoffice.domain.orders import BOOKING_EVENT_TYPES, OrderStatus, Outcome, TicketStatus
from boxoffice.domain.payments import (
    PAYMENT_EVENT_TYPES,
    REFUND_EVENT_TYPES,
    PaymentRecordStatus,
    RefundReason,
    RefundRecordStatus,
    WebhookOutcome,
)
from boxoffice.domain.waiting_room import (
    DEFAULT_ADMISSION_SECONDS,
    DEFAULT_RANDOMISE_EARLY,
    DEFAULT_TICKETS_PER_BUYER,
    LineState,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "db" / "migrations"
Refusal = Callable[[psycopg.errors.RaiseException], errors.BoxofficeError]

# What each refusal's detail looks like (invalid-booking-event carries the offending fields).
DETAILS = {"invalid-booking-event": '[{"field": "data.quantity", "message": "does not match"}]'}


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with fresh_database("bx_contract") as url, psycopg.connect(url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="module")
def sources(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, str]:
    """Every function of the schema (PL/pgSQL and SQL) by name: its source as installed."""
    rows = conn.execute(
        "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " JOIN pg_language l ON l.oid = p.prolang"
        " WHERE n.nspname = 'public' AND l.lanname IN ('plpgsql', 'sql')"
    ).fetchall()
    found = {str(name): str(src) for name, src in rows}
    assert {"book_tickets", "apply_booking_event", "check_in_ticket", "join_queue"} <= set(found)
    return found


def defined_in(area: str) -> set[str]:
    """The functions an R__ file defines (their one home)."""
    text = (MIGRATIONS / f"R__{area}.sql").read_text(encoding="utf-8")
    return set(re.findall(r"^CREATE OR REPLACE FUNCTION (\w+)\(", text, re.MULTILINE))


def refusals(source: str) -> set[str]:
    return set(re.findall(r"\brefuse\(\s*'([^']+)'", source))


def literals(source: str, pattern: str) -> set[str]:
    return set(re.findall(rf"'({pattern})'", source))


def allowed(conn: psycopg.Connection[tuple[object, ...]], table: str, column: str) -> set[str]:
    """The values a CHECK constraint of `table` allows `column` (`column IN ('A', 'B')`)."""
    rows = conn.execute(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c"
        " WHERE c.conrelid = %s::regclass AND c.contype = 'c'",
        (table,),
    ).fetchall()
    for (definition,) in rows:
        if re.search(rf"\(\(?{column}\b", str(definition)) and "ANY" in str(definition):
            return set(re.findall(r"'([^']+)'::text", str(definition)))
    raise AssertionError(f"no CHECK constraint lists the values of {table}.{column}")


def raised(
    conn: psycopg.Connection[tuple[object, ...]], slug: str
) -> psycopg.errors.RaiseException:
    """The exception PostgreSQL raises for `refuse(slug, ...)`, as the adapters receive it."""
    with pytest.raises(psycopg.errors.RaiseException) as caught:
        conn.execute("SELECT refuse(%s, %s)", (slug, DETAILS.get(slug, f"detail of {slug}")))
    return caught.value


# --- refusals -----------------------------------------------------------------------------------


def test_every_refusal_the_sql_can_raise_maps_to_the_error_class_of_that_slug(
    conn: psycopg.Connection[tuple[object, ...]], sources: dict[str, str]
) -> None:
    orders = defined_in("orders")
    assert orders == {"apply_booking_event", "booking_event_mismatches"}
    # consume_order's store calls R__orders.sql's functions; every other function is called by
    # the booking or waiting-room store (one mapping: postgres_bookings.refusal), or runs inside
    # one of their calls (check_admission, the check-in guard trigger).
    adapters: dict[str, Refusal] = {
        name: postgres_orders.refusal if name in orders else postgres_bookings.refusal
        for name in sources
    }
    checked: set[str] = set()
    for name, source in sorted(sources.items()):
        for slug in sorted(refusals(source)):
            error = adapters[name](raised(conn, slug))
            expected = errors.by_slug(slug)
            assert expected is not None, f"{name} refuses {slug!r}: no error class has that slug"
            assert type(error) is expected, (name, slug, type(error))
            assert (error.slug, error.status) == (slug, expected.status)
            assert error.detail  # the SQL's detail reaches the problem
            checked.add(slug)
    # Not vacuous: the refusals the booking path is known for were found and checked.
    assert {"sold-out", "event-not-on-sale", "ticket-limit-exceeded", "unknown-booking"} <= checked


def test_the_booking_adapter_maps_exactly_the_slugs_the_sql_raises(
    sources: dict[str, str],
) -> None:
    # No dead mapping either: a slug renamed on one side only fails here.
    orders = defined_in("orders")
    raised_by_sql = set().union(*(refusals(s) for n, s in sources.items() if n not in orders))
    assert set(postgres_bookings._REFUSALS) == raised_by_sql


def test_a_slug_the_adapters_do_not_know_stays_an_error_not_a_refusal(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    for refusal in (postgres_bookings.refusal, postgres_orders.refusal):
        with pytest.raises(psycopg.errors.RaiseException):
            refusal(raised(conn, "no-such-refusal"))


def test_only_refuse_raises_slugs(sources: dict[str, str]) -> None:
    # Any other RAISE is a bug report (a plain message), never a problem slug.
    for name, source in sources.items():
        if name == "refuse":
            continue
        assert "raise_exception" not in source, name
        for message in re.findall(r"RAISE EXCEPTION\s+'([^']*)'", source):
            assert errors.by_slug(message) is None, (name, message)


# --- states, outcomes, event types --------------------------------------------------------------


def test_the_states_the_schema_allows_are_the_domains(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert allowed(conn, "booking", "status") == set(BookingStatus)
    assert allowed(conn, "orders", "status") == set(OrderStatus)
    assert allowed(conn, "ticket", "status") == set(TicketStatus)
    assert allowed(conn, "order_event", "outcome") == set(Outcome)
    # An event stores whether it is cancelled; the rest of its availability is derived.
    assert allowed(conn, "event", "status") == {Availability.ON_SALE, Availability.CANCELLED}
    assert allowed(conn, "payment", "status") == set(PaymentRecordStatus)
    assert allowed(conn, "refund", "status") == set(RefundRecordStatus)
    assert allowed(conn, "refund", "reason") == set(RefundReason)


def test_the_webhook_outcomes_the_sql_writes_are_the_domains(sources: dict[str, str]) -> None:
    written = set(re.findall(r"outcome := '([a-z-]+)'", sources["apply_payment_event"]))
    assert written == set(WebhookOutcome)


def test_the_provider_event_types_the_sql_acts_on_are_the_domains(sources: dict[str, str]) -> None:
    named = literals(sources["apply_payment_event"], r"(?:payment_intent|refund|charge)\.[a-z_.]+")
    assert named == PAYMENT_EVENT_TYPES | REFUND_EVENT_TYPES


def test_every_state_the_functions_compare_or_write_is_one_the_schema_allows(
    conn: psycopg.Connection[tuple[object, ...]], sources: dict[str, str]
) -> None:
    known = (
        allowed(conn, "booking", "status")
        | allowed(conn, "orders", "status")
        | allowed(conn, "ticket", "status")
        | allowed(conn, "order_event", "outcome")
        | allowed(conn, "event", "status")
        | allowed(conn, "idempotency_record", "state")
        | allowed(conn, "payment", "status")
        | allowed(conn, "refund", "status")
        | allowed(conn, "refund", "reason")
        | {"INSERT", "UPDATE", "DELETE"}  # a trigger's TG_OP
    )
    used = set().union(*(literals(s, "[A-Z][A-Z_]+") for s in sources.values()))
    assert "CONFIRMED" in used
    assert used - known == set()


def test_check_in_outcomes_are_the_domains_scan_outcomes(sources: dict[str, str]) -> None:
    written = set(re.findall(r"outcome := '([a-z-]+)'", sources["check_in_ticket"]))
    assert written == set(ScanOutcome)


def test_the_ticks_line_states_are_the_domains(sources: dict[str, str]) -> None:
    written = set(re.findall(r"state := '([a-z-]+)'", sources["advance_queue"]))
    assert written
    assert written <= set(LineState)


def test_the_booking_event_types_the_sql_writes_and_reads_are_the_domains(
    sources: dict[str, str],
) -> None:
    types = set().union(*(literals(s, r"dev\.boxoffice\.[a-z.]+\.v\d+") for s in sources.values()))
    assert types == set(BOOKING_EVENT_TYPES)
    assert literals(sources["apply_booking_event"], r"dev\.[a-z.]+\.v\d+") == types


# --- defaults -----------------------------------------------------------------------------------


def test_the_waiting_rooms_defaults_have_one_home_the_spec_and_the_schema_agree(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    spec = yaml.safe_load((ROOT / "src" / "boxoffice" / "openapi.yaml").read_text("utf-8"))
    queue_input = spec["components"]["schemas"]["QueueInput"]["properties"]
    assert queue_input["admissionSeconds"]["default"] == DEFAULT_ADMISSION_SECONDS
    assert queue_input["randomiseEarlyArrivals"]["default"] is DEFAULT_RANDOMISE_EARLY
    assert Decimal(str(queue_input["expectedTicketsPerBuyer"]["default"])) == (
        DEFAULT_TICKETS_PER_BUYER
    )
    rows = conn.execute(
        "SELECT column_name, column_default FROM information_schema.columns"
        " WHERE table_name = 'event_queue'"
        " AND column_name IN ('randomise_early', 'tickets_per_buyer', 'admission_seconds')"
    ).fetchall()
    columns = {str(name): default for name, default in rows}
    assert columns["randomise_early"] == str(DEFAULT_RANDOMISE_EARLY).lower()
    assert Decimal(str(columns["tickets_per_buyer"])) == DEFAULT_TICKETS_PER_BUYER
    assert columns["admission_seconds"] is None  # no second copy: configure_queue is always told
