"""Order domain rules: ticket codes, booking-event validation, the ticket document; and how
CloudEvents delivered over HTTP (the golden files in tests/events/) are decoded."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from boxoffice import errors
from boxoffice.domain.bookings import CANCELLED_TYPE, CREATED_TYPE
from boxoffice.domain.orders import (
    booking_event,
    document_key,
    issue_tickets,
)
from boxoffice.domain.tickets import TicketKeys, TicketSigner
from boxoffice.errors import (
    BookingEventInvalid,
    MalformedCloudEvent,
    UnsupportedEventType,
)
from boxoffice.web.cloudevents import decode_booking_event

EVENTS = Path(__file__).resolve().parents[1] / "events"
SIGNER = TicketSigner.generate()
KEYS = TicketKeys([SIGNER.public_key])
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


# -- ticket codes (tests/unit/test_ticket_codes.py covers the code format) ----------------------


def test_issued_tickets_are_numbered_from_one_with_distinct_codes_for_their_event() -> None:
    event_id = uuid.uuid4()
    tickets = issue_tickets(SIGNER, event_id=event_id, quantity=4)

    assert [t.seq for t in tickets] == [1, 2, 3, 4]
    assert len({t.code for t in tickets}) == 4
    assert len({t.id for t in tickets}) == 4
    verified = [KEYS.verify(t.code) for t in tickets]
    assert [(v.ticket_id, v.event_id, v.kid) for v in verified] == [
        (t.id, event_id, SIGNER.kid) for t in tickets
    ]


def test_issue_tickets_takes_keyword_arguments_only() -> None:
    with pytest.raises(TypeError):
        issue_tickets(SIGNER, uuid.uuid4(), 2)  # type: ignore[misc]


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
    ev = decode_booking_event(*golden("booking-created.binary.json"))

    assert ev.id == str(BOOKING)
    assert ev.booking_id == BOOKING
    assert ev.time == datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
    assert ev.source == "/boxoffice/bookings"


def test_golden_structured_delivery_decodes() -> None:
    ev = decode_booking_event(*golden("booking-created.structured.json"))
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
        decode_booking_event(*golden(name))

    assert caught.value.status in (400, 422)  # KafkaSource dead-letters these at once


def test_header_names_are_case_insensitive() -> None:
    headers, body = golden("booking-created.binary.json")
    ev = decode_booking_event({k.upper(): v for k, v in headers.items()}, body)
    assert ev.booking_id == BOOKING


# -- ticket document -----------------------------------------------------------------------------


def test_ticket_documents_are_pdfs_named_after_their_order() -> None:
    order_id = uuid.uuid4()
    assert document_key(order_id) == f"orders/{order_id}.pdf"


def test_overlong_cloudevent_id_or_source_is_invalid_rather_than_a_storage_error() -> None:
    with pytest.raises(BookingEventInvalid) as caught:
        booking_event("/src", "i" * 1001, CREATED_TYPE, None, valid_data())
    assert [e.field for e in caught.value.errors] == ["id"]
    with pytest.raises(BookingEventInvalid):
        booking_event("s" * 1001, "id", CREATED_TYPE, None, valid_data())
