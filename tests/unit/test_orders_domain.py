"""Order domain rules: ticket codes, booking-event validation, the ticket document; and how
CloudEvents delivered over HTTP (the golden files in tests/events/) are decoded."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boxoffice import errors
from boxoffice.domain.bookings import CANCELLED_TYPE, CREATED_TYPE
from boxoffice.domain.orders import (
    DocumentSource,
    Order,
    OrderStatus,
    Ticket,
    TicketStatus,
    booking_event,
    issue_tickets,
    signing_key,
    ticket_code,
    ticket_document,
    ticket_id_of,
    verify_ticket_code,
)
from boxoffice.errors import (
    BookingEventInvalid,
    MalformedCloudEvent,
    UnsupportedEventType,
)
from boxoffice.services.orders import decode_delivery

EVENTS = Path(__file__).resolve().parents[1] / "events"
KEY = b"k" * 32
OTHER_KEY = b"j" * 32
BOOKING = uuid.UUID("b00c0000-0000-4000-8000-00000000e001")


def valid_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "bookingId": str(BOOKING),
        "eventId": str(uuid.uuid4()),
        "customerId": str(uuid.uuid4()),
        "quantity": 2,
        "status": "PENDING",
    }
    data.update(overrides)
    return data


# -- ticket codes --------------------------------------------------------------------------------


def test_issued_tickets_are_numbered_from_one_with_distinct_codes_that_verify() -> None:
    tickets = issue_tickets(KEY, BOOKING, 4)

    assert [t.seq for t in tickets] == [1, 2, 3, 4]
    assert len({t.code for t in tickets}) == 4
    assert all(verify_ticket_code(KEY, t.code, BOOKING, t.seq) for t in tickets)
    assert all(ticket_id_of(t.code) == t.id for t in tickets)


@settings(max_examples=200, derandomize=True)
@given(
    st.integers(0, 44),
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
)
def test_changing_any_character_of_a_code_makes_it_fail_verification(
    position: int, replacement: str
) -> None:
    [ticket] = issue_tickets(KEY, BOOKING, 1)
    code = ticket.code
    position %= len(code)
    tampered = code[:position] + replacement + code[position + 1 :]

    assert verify_ticket_code(KEY, tampered, BOOKING, 1) == (tampered == code)


def test_code_does_not_verify_for_another_key_booking_or_seat() -> None:
    [ticket] = issue_tickets(KEY, BOOKING, 1)

    assert not verify_ticket_code(OTHER_KEY, ticket.code, BOOKING, 1)
    assert not verify_ticket_code(KEY, ticket.code, uuid.uuid4(), 1)
    assert not verify_ticket_code(KEY, ticket.code, BOOKING, 2)


def test_code_forged_for_a_chosen_ticket_id_without_the_key_fails() -> None:
    chosen = uuid.uuid4()
    forged = ticket_code(OTHER_KEY, chosen, BOOKING, 1)

    assert ticket_id_of(forged) == chosen
    assert not verify_ticket_code(KEY, forged, BOOKING, 1)


@pytest.mark.parametrize("code", ["", ".", "abc", "not-a-code.at-all", "x" * 22 + ".", "é" * 22])
def test_malformed_codes_are_refused_without_raising(code: str) -> None:
    assert not verify_ticket_code(KEY, code, BOOKING, 1)


def test_short_or_missing_signing_key_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigurationError, match="BOXOFFICE_TICKET_SIGNING_KEY"):
        signing_key("")
    with pytest.raises(errors.ConfigurationError):
        signing_key("too-short")
    assert signing_key("s" * 32) == b"s" * 32


# -- booking events ------------------------------------------------------------------------------


def test_valid_created_event_is_parsed() -> None:
    ev = booking_event("/src", str(BOOKING), CREATED_TYPE, None, valid_data())

    assert (ev.booking_id, ev.quantity, ev.is_created) == (BOOKING, 2, True)


def test_cancelled_event_is_not_a_creation() -> None:
    assert not booking_event("/src", "x", CANCELLED_TYPE, None, valid_data()).is_created


def test_unknown_type_is_unsupported_even_with_a_valid_payload() -> None:
    with pytest.raises(UnsupportedEventType):
        booking_event("/src", "partition:0/offset:1", "dev.knative.kafka.event", None, valid_data())


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (valid_data(bookingId="nope"), "data.bookingId"),
        (valid_data(eventId=7), "data.eventId"),
        (valid_data(customerId=None), "data.customerId"),
        (valid_data(quantity=0), "data.quantity"),
        (valid_data(quantity=True), "data.quantity"),
        (valid_data(quantity="2"), "data.quantity"),
        ([1, 2], "data"),
        (b"\xff\xfe", "data"),
        ("not json", "data"),
    ],
)
def test_invalid_payload_names_the_offending_field(data: object, field: str) -> None:
    with pytest.raises(BookingEventInvalid) as caught:
        booking_event("/src", "id", CREATED_TYPE, None, data)

    assert field in [e.field for e in caught.value.errors]
    assert caught.value.status == 422


def test_json_text_payload_is_accepted() -> None:
    ev = booking_event("/src", "id", CREATED_TYPE, None, json.dumps(valid_data()).encode())
    assert ev.booking_id == BOOKING


# -- decoding golden deliveries ------------------------------------------------------------------


def golden(name: str) -> tuple[dict[str, str], bytes]:
    data = json.loads((EVENTS / name).read_text("utf-8"))
    return data["headers"], data["body"].encode()


def test_golden_binary_delivery_decodes_to_its_booking_and_time() -> None:
    ev = decode_delivery(*golden("booking-created.binary.json"))

    assert ev.id == str(BOOKING)
    assert ev.booking_id == BOOKING
    assert ev.time == datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
    assert ev.source == "/boxoffice/bookings"


def test_golden_structured_delivery_decodes() -> None:
    ev = decode_delivery(*golden("booking-created.structured.json"))
    assert ev.quantity == 1


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("wrapped-raw-record.json", UnsupportedEventType),
        ("malformed.json", MalformedCloudEvent),
        ("invalid-payload.json", BookingEventInvalid),
    ],
)
def test_golden_deliveries_that_can_never_succeed_raise_non_retryable_problems(
    name: str, error: type[errors.BoxofficeError]
) -> None:
    with pytest.raises(error) as caught:
        decode_delivery(*golden(name))

    assert caught.value.status in (400, 422)  # KafkaSource dead-letters these at once


def test_header_names_are_case_insensitive() -> None:
    headers, body = golden("booking-created.binary.json")
    ev = decode_delivery({k.upper(): v for k, v in headers.items()}, body)
    assert ev.booking_id == BOOKING


# -- ticket document -----------------------------------------------------------------------------


def test_ticket_document_lists_the_order_event_venue_and_codes() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    order = Order(
        uuid.uuid4(),
        BOOKING,
        OrderStatus.CONFIRMED,
        now,
        None,
        "orders/x.json",
        None,
        (Ticket(uuid.uuid4(), 1, "code-1", TicketStatus.VALID),),
    )
    src = DocumentSource(order, uuid.uuid4(), uuid.uuid4(), "Gig", now, "Hall", "1 Road", "Leeds")

    doc = ticket_document(src)

    assert doc["orderId"] == str(order.id)
    assert doc["bookingId"] == str(BOOKING)
    assert doc["event"]["name"] == "Gig"
    assert doc["event"]["venue"] == {"name": "Hall", "address": "1 Road", "city": "Leeds"}
    assert doc["tickets"] == [
        {"id": str(order.tickets[0].id), "seq": 1, "code": "code-1", "status": "VALID"}
    ]
    json.dumps(doc)  # serialisable as is


def test_overlong_cloudevent_id_or_source_is_invalid_rather_than_a_storage_error() -> None:
    with pytest.raises(BookingEventInvalid) as caught:
        booking_event("/src", "i" * 1001, CREATED_TYPE, None, valid_data())
    assert [e.field for e in caught.value.errors] == ["id"]
    with pytest.raises(BookingEventInvalid):
        booking_event("s" * 1001, "id", CREATED_TYPE, None, valid_data())
