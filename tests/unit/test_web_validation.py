"""Request bodies and parameters: every refusal is a problem that names what was wrong."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import flask
import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxoffice import errors
from boxoffice.web import validation as v

APP = flask.Flask(__name__)
VENUE: dict[str, Any] = {
    "name": "Hall",
    "address": "1 Main Street",
    "city": "Springfield",
    "capacity": 500,
}
CUSTOMER: dict[str, Any] = {
    "name": "Alice",
    "email": "alice@example.com",
    "address": {"line1": "1 Road", "postalCode": "12345", "city": "Town", "country": "DE"},
}


@contextmanager
def request(path: str = "/x", **kwargs: Any) -> Iterator[flask.Request]:
    with APP.test_request_context(path, **kwargs):
        yield flask.request


def post(
    data: str | bytes, content_type: str = "application/json", schema: str = "VenueInput"
) -> dict[str, Any]:
    with request(method="POST", data=data, content_type=content_type) as r:
        return v.json_body(r, schema)


def fields(error: errors.ValidationFailed) -> list[str]:
    return [e.field for e in error.errors]


def test_valid_body_is_returned_as_a_dict() -> None:
    assert post(json.dumps(VENUE)) == VENUE


def test_unknown_field_is_422_naming_it() -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        post(json.dumps({**VENUE, "colour": "red"}))
    assert caught.value.status == 422
    assert fields(caught.value) == ["colour"]
    assert caught.value.errors[0].message == "unknown field"


def test_unknown_nested_field_is_named_by_its_path() -> None:
    body = {**CUSTOMER, "address": {**CUSTOMER["address"], "planet": "Earth"}}
    with pytest.raises(errors.ValidationFailed) as caught:
        post(json.dumps(body), schema="CustomerInput")
    assert fields(caught.value) == ["address.planet"]


def test_wrong_type_is_422_naming_the_field() -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        post(json.dumps({**VENUE, "capacity": "ten"}))
    assert caught.value.status == 422
    assert fields(caught.value) == ["capacity"]
    assert "integer" in caught.value.errors[0].message


def test_wrong_nested_type_is_named_by_its_path() -> None:
    body = {**CUSTOMER, "address": {**CUSTOMER["address"], "postalCode": 12345}}
    with pytest.raises(errors.ValidationFailed) as caught:
        post(json.dumps(body), schema="CustomerInput")
    assert fields(caught.value) == ["address.postalCode"]


def test_missing_required_field_is_named() -> None:
    body = {k: val for k, val in CUSTOMER.items() if k != "email"}
    with pytest.raises(errors.ValidationFailed) as caught:
        post(json.dumps(body), schema="CustomerInput")
    assert fields(caught.value) == ["email"]


def test_body_that_is_not_an_object_is_422() -> None:
    with pytest.raises(errors.ValidationFailed):
        post("[1, 2]")


def test_nul_character_in_a_string_is_422_naming_the_field() -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        post(json.dumps({**VENUE, "city": "Spring\u0000field"}))
    assert fields(caught.value) == ["city"]


def test_lone_surrogate_in_a_string_is_422_naming_the_field() -> None:
    raw = json.dumps({**VENUE, "name": "PLACEHOLDER"}).replace("PLACEHOLDER", "\\ud800")
    with pytest.raises(errors.ValidationFailed) as caught:
        post(raw)
    assert fields(caught.value) == ["name"]


def test_nul_character_in_a_nested_string_is_named_by_its_path() -> None:
    body = {**CUSTOMER, "address": {**CUSTOMER["address"], "city": "\u0000"}}
    with pytest.raises(errors.ValidationFailed) as caught:
        post(json.dumps(body), schema="CustomerInput")
    assert fields(caught.value) == ["address.city"]


@pytest.mark.parametrize("raw", ['{"name": ', "", "nope", b"\xff\xfe\xfa", "{'name': 'x'}"])
def test_malformed_json_is_400_malformed_json(raw: str | bytes) -> None:
    with pytest.raises(errors.MalformedJson) as caught:
        post(raw)
    assert caught.value.status == 400


def test_deeply_nested_json_is_400_not_a_server_error() -> None:
    with pytest.raises(errors.MalformedJson):
        post("[" * 5000 + "]" * 5000)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_body_that_is_not_declared_json_is_415(content_type: str) -> None:
    with pytest.raises(errors.UnsupportedMediaType) as caught:
        post(json.dumps(VENUE), content_type=content_type)
    assert caught.value.status == 415


def test_json_content_type_with_charset_is_accepted() -> None:
    assert post(json.dumps(VENUE), content_type="application/json; charset=utf-8") == VENUE


def test_body_over_16_kib_is_413() -> None:
    with pytest.raises(errors.PayloadTooLarge) as caught:
        post(json.dumps({**VENUE, "address": "x" * (v.MAX_BODY_BYTES + 1)}))
    assert caught.value.status == 413


def test_oversize_chunked_body_without_content_length_is_413() -> None:
    body = json.dumps({**VENUE, "address": "x" * (v.MAX_BODY_BYTES + 1)}).encode()
    with request(
        method="POST",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    ) as r:
        assert r.content_length is None
        with pytest.raises(errors.PayloadTooLarge):
            v.json_body(r, "VenueInput")


# --- parameters -------------------------------------------------------------------------------


def param_error(call: Any) -> errors.InvalidParameter:
    with pytest.raises(errors.InvalidParameter) as caught:
        call()
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize("raw", ["ten", "1.5", "", "1e3", "9999999999"])
def test_query_int_that_is_not_an_integer_names_the_parameter(raw: str) -> None:
    with request(f"/events?limit={raw}") as r:
        error = param_error(lambda: v.query_int(r, "limit", 20, 1, 100))
    assert fields(error) == ["limit"]


@pytest.mark.parametrize("raw", ["0", "101", "-5"])
def test_query_int_out_of_range_names_the_parameter_and_bounds(raw: str) -> None:
    with request(f"/events?limit={raw}") as r:
        error = param_error(lambda: v.query_int(r, "limit", 20, 1, 100))
    assert fields(error) == ["limit"]
    assert "between 1 and 100" in error.errors[0].message


def test_query_int_defaults_when_absent_and_parses_when_valid() -> None:
    with request("/events") as r:
        assert v.query_int(r, "limit", 20, 1, 100) == 20
    with request("/events?limit=100") as r:
        assert v.query_int(r, "limit", 20, 1, 100) == 100


@pytest.mark.parametrize("raw", ["tomorrow", "2030-02-30T20:00:00Z", "2030-01-31T20:00:00"])
def test_query_datetime_that_is_invalid_or_zoneless_names_the_parameter(raw: str) -> None:
    with request("/events", query_string={"from": raw}) as r:
        error = param_error(lambda: v.query_datetime(r, "from"))
    assert fields(error) == ["from"]


def test_query_datetime_parses_utc_z_and_offsets() -> None:
    with request("/events", query_string={"from": "2030-01-31T20:00:00Z"}) as r:
        parsed = v.query_datetime(r, "from")
    assert parsed is not None
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_parse_uuid_names_the_parameter() -> None:
    error = param_error(lambda: v.parse_uuid("not-a-uuid", "eventId"))
    assert fields(error) == ["eventId"]


def test_parse_uuid_accepts_a_uuid() -> None:
    ident = uuid.uuid4()
    assert v.parse_uuid(str(ident), "eventId") == ident


def test_query_uuid_names_the_parameter() -> None:
    with request("/events?venueId=42") as r:
        error = param_error(lambda: v.query_uuid(r, "venueId"))
    assert fields(error) == ["venueId"]


def test_unknown_query_parameter_is_named() -> None:
    with request("/events?limit=5&colour=red") as r:
        error = param_error(lambda: v.reject_unknown_query(r, {"limit"}))
    assert fields(error) == ["colour"]


# --- body date-times --------------------------------------------------------------------------


def test_body_datetime_rejects_february_30th_naming_the_field() -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        v.body_datetime("2030-02-30T20:00:00Z", "startsAt")
    assert caught.value.status == 422
    assert fields(caught.value) == ["startsAt"]


def test_body_datetime_requires_a_zone_offset() -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        v.body_datetime("2030-01-31T20:00:00", "startsAt")
    assert fields(caught.value) == ["startsAt"]


@pytest.mark.parametrize(
    "raw", ["2030-01-31T20:00:00Z", "2030-01-31T20:00:00z", "2030-01-31T21:00:00+01:00"]
)
def test_body_datetime_accepts_rfc3339_with_offset(raw: str) -> None:
    parsed = v.body_datetime(raw, "startsAt")
    assert parsed.utcoffset() is not None
    assert parsed.timestamp() == v.body_datetime("2030-01-31T20:00:00Z", "x").timestamp()


# -- strict JSON: integers are JSON integers (issue 20: `"ticketCount": 2.0` reached PostgreSQL
# as double precision and answered 500) ---------------------------------------------------------

BOOKING: dict[str, Any] = {"eventId": str(uuid.UUID(int=1)), "ticketCount": 2}


def booking(count_literal: str) -> str:
    return json.dumps({**BOOKING, "ticketCount": "COUNT"}).replace('"COUNT"', count_literal)


def queue(members: str) -> str:
    return '{"opensAt": "2030-01-31T20:00:00Z", ' + members + "}"


@pytest.mark.parametrize(
    "literal", ["2.0", "2e0", "2E0", "20e-1", "2.00000", "-0.0", "1e400", '"2"', "true", "null"]
)
def test_an_integer_field_refuses_anything_but_a_json_integer_naming_the_field(
    literal: str,
) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        post(booking(literal), schema="BookingInput")
    assert caught.value.status == 422
    assert fields(caught.value) == ["ticketCount"]


def test_an_integer_field_accepts_a_json_integer_as_an_int() -> None:
    body = post(booking("2"), schema="BookingInput")
    assert body["ticketCount"] == 2
    assert type(body["ticketCount"]) is int


def test_an_integer_field_refuses_a_boolean_although_python_counts_it_as_an_int() -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        v.validate("BookingInput", {**BOOKING, "ticketCount": True})
    assert fields(caught.value) == ["ticketCount"]


@pytest.mark.parametrize("literal", ["1000001", str(2**31), str(2**63), "1" + "0" * 300])
def test_an_integer_above_the_schema_maximum_is_422_never_passed_on(literal: str) -> None:
    with pytest.raises(errors.ValidationFailed) as caught:
        post(booking(literal), schema="BookingInput")
    assert fields(caught.value) == ["ticketCount"]


def test_an_integer_too_long_to_read_is_400_malformed_json() -> None:
    with pytest.raises(errors.MalformedJson):
        post(booking("9" * 5000), schema="BookingInput")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_and_are_400_malformed_json(literal: str) -> None:
    with pytest.raises(errors.MalformedJson) as caught:
        post(booking(literal), schema="BookingInput")
    assert literal in caught.value.detail


def test_a_duplicate_member_name_is_400_malformed_json_naming_it() -> None:
    raw = booking("1").replace('"ticketCount"', '"ticketCount": 2, "ticketCount"')
    with pytest.raises(errors.MalformedJson) as caught:
        post(raw, schema="BookingInput")
    assert "ticketCount" in caught.value.detail


def test_a_duplicate_member_name_in_a_nested_object_is_400() -> None:
    raw = json.dumps(CUSTOMER).replace('"city": "Town"', '"city": "Town", "city": "Other"')
    with pytest.raises(errors.MalformedJson):
        post(raw, schema="CustomerInput")


def test_a_number_field_reads_fractions_exactly_as_decimals() -> None:
    raw = queue('"admissionRate": 0.1, "expectedTicketsPerBuyer": 2.5')
    body = post(raw, schema="QueueInput")
    assert body["admissionRate"] == Decimal("0.1")
    assert body["expectedTicketsPerBuyer"] == Decimal("2.5")


@pytest.mark.parametrize("literal", ["0.009", "0", "-1", "10000.01", "1e400", "true", '"1"'])
def test_an_admission_rate_outside_what_the_database_keeps_is_422(literal: str) -> None:
    """numeric(8, 2), > 0: 0.001 was rounded to 0.00 by PostgreSQL and failed its CHECK (500)."""
    raw = queue(f'"admissionRate": {literal}')
    with pytest.raises(errors.ValidationFailed) as caught:
        post(raw, schema="QueueInput")
    assert fields(caught.value) == ["admissionRate"]


def test_parse_json_reads_integers_as_ints_and_other_numbers_as_decimals() -> None:
    assert v.parse_json(b"[1, -0, 1.5, 1e2, 10000000000000000000001]") == [
        1,
        0,
        Decimal("1.5"),
        Decimal("100"),
        10**22 + 1,
    ]
    assert [type(x) for x in v.parse_json("[1, 1.0]")] == [int, Decimal]


def outcome(parse: Callable[[], dict[str, Any]]) -> int:
    """200 for a body that parses to an object, else the status of the problem raised (any
    other exception propagates: the function would answer it 500)."""
    try:
        body = parse()
    except errors.BoxofficeError as exc:
        return exc.status
    assert isinstance(body, dict)
    return 200


# Any JSON value at all, as the body of each operation's schema: either a valid body or a 4xx
# problem, never another exception (which the function would answer as a 500).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize(
    "schema",
    ["BookingInput", "VenueInput", "EventInput", "CustomerInput", "QueueInput",
     "CheckInInput", "CheckInBatchInput"],
)  # fmt: skip
@given(document=json_values)
def test_any_json_body_is_either_valid_or_a_4xx_problem(schema: str, document: Any) -> None:
    status = outcome(lambda: post(json.dumps(document), schema=schema))
    assert status == 200 or 400 <= status < 500


@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_are_either_a_valid_body_or_a_4xx_problem(raw: bytes) -> None:
    status = outcome(lambda: post(raw, schema="BookingInput"))
    assert status == 200 or 400 <= status < 500


@given(count=st.floats(allow_nan=False, allow_infinity=False).filter(float.is_integer))
def test_no_integral_float_literal_is_ever_an_integer(count: float) -> None:
    with pytest.raises(errors.ValidationFailed):
        post(booking(repr(count)), schema="BookingInput")
