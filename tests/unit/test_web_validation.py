"""Request bodies and parameters: every refusal is a problem that names what was wrong."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import flask
import pytest

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
