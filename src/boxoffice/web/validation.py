"""Request parsing and validation. Body schemas come from the OpenAPI spec (the single source of
truth), compiled once per process with fastjsonschema on first use.

Bodies are read strictly (`parse_json`): a number with a fraction or an exponent (`2.0`, `2e0`)
is a `Decimal`, never an `int`, so `type: integer` accepts JSON integers only (the schema
validator counts `2.0` as an integer, and PostgreSQL would then see a `double precision`);
`NaN`, `Infinity`, numbers that overflow and duplicate member names are not JSON and refused
as `malformed-json`."""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import fastjsonschema
import yaml
from flask import Request

from boxoffice import errors
from boxoffice.errors import FieldError

MAX_BODY_BYTES = 16 * 1024


@functools.cache
def openapi_spec() -> dict[str, Any]:
    text = resources.files("boxoffice").joinpath("openapi.yaml").read_text(encoding="utf-8")
    spec: dict[str, Any] = yaml.safe_load(text)
    return spec


@functools.cache
def _validator(schema_name: str) -> Callable[[Any], Any]:
    document = {
        "$ref": f"#/components/schemas/{schema_name}",
        "components": openapi_spec()["components"],
    }
    return fastjsonschema.compile(document)


_UNKNOWN_PROPS = re.compile(r"must not contain \{(.*)\} properties")
_MISSING_PROPS = re.compile(r"must contain \[(.*)\] properties")


def _field_of(exc: Any) -> tuple[str, str]:
    name = str(getattr(exc, "name", "data"))
    path = name.removeprefix("data").lstrip(".")
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    message = str(getattr(exc, "message", str(exc)))
    unknown = _UNKNOWN_PROPS.search(message)
    if unknown:
        props = [p.strip().strip("'\"") for p in unknown.group(1).split(",")]
        field = ".".join(filter(None, [path, props[0]]))
        return field, "unknown field"
    missing = _MISSING_PROPS.search(message)
    if missing:
        props = [p.strip().strip("'\"") for p in missing.group(1).split(",")]
        return ".".join(filter(None, [path, props[0]])), "is required"
    message = message.replace(name + " ", "", 1) if message.startswith(name) else message
    return path, message


def _unstorable_text(data: Any, path: str = "") -> FieldError | None:
    """NUL characters and lone surrogates are valid JSON but not storable text."""
    if isinstance(data, str):
        if "\x00" in data:
            return FieldError(path, "must not contain NUL characters")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return FieldError(path, "must be valid Unicode text")
    elif isinstance(data, dict):
        for key, value in data.items():
            found = _unstorable_text(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = _unstorable_text(value, f"{path}.{i}" if path else str(i))
            if found:
                return found
    return None


def validate(schema_name: str, data: Any) -> dict[str, Any]:
    try:
        _validator(schema_name)(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        field, message = _field_of(exc)
        raise errors.ValidationFailed([FieldError(field, message)]) from exc
    if not isinstance(data, dict):
        raise errors.ValidationFailed([FieldError("", "must be a JSON object")])
    bad = _unstorable_text(data)
    if bad:
        raise errors.ValidationFailed([bad])
    return data


def body_datetime(value: str, field: str) -> datetime:
    """An RFC 3339 date-time from a validated body (the schema checked its shape, not the date)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise errors.ValidationFailed([FieldError(field, "is not a valid date-time")]) from exc
    if parsed.tzinfo is None:
        raise errors.ValidationFailed([FieldError(field, "must include a time zone offset")])
    try:
        # An offset can push the instant outside years 1..9999 (e.g. 0001-01-01T00:00:00+01:00),
        # which PostgreSQL stores but Python cannot read back.
        parsed.astimezone(UTC)
    except OverflowError as exc:
        raise errors.ValidationFailed([FieldError(field, "is out of range")]) from exc
    return parsed


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        names = [name for name, _ in pairs]
        duplicate = next(name for i, name in enumerate(names) if name in names[:i])
        raise ValueError(f"duplicate member name {duplicate!r}")
    return members


def parse_json(raw: bytes | str) -> Any:
    """A JSON document read strictly: integers as `int`, other numbers as `Decimal` (exact, and
    never an integer to the schema), no `NaN`/`Infinity`, no duplicate member names.
    Raises `MalformedJson`."""
    try:
        return json.loads(
            raw,
            parse_float=Decimal,
            parse_constant=_no_constants,
            object_pairs_hook=_unique_members,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.MalformedJson(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # valid JSON, but nested deeper than the parser recurses
        raise errors.MalformedJson("request body is nested too deeply") from exc


def json_body(
    request: Request, schema_name: str, max_bytes: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """The request's JSON body (at most `max_bytes`), validated against
    `components.schemas[schema_name]`."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise errors.PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    if request.mimetype != "application/json":
        raise errors.UnsupportedMediaType("send the body as application/json")
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise errors.PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    return validate(schema_name, parse_json(raw))


def parse_uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise errors.InvalidParameter([FieldError(name, "must be a UUID")]) from exc


def query_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,9}", raw):  # ASCII digits only (\d is Unicode)
        raise errors.InvalidParameter([FieldError(name, "must be an integer")])
    value = int(raw)
    if not minimum <= value <= maximum:
        raise errors.InvalidParameter(
            [FieldError(name, f"must be between {minimum} and {maximum}")]
        )
    return value


def query_uuid(request: Request, name: str) -> uuid.UUID | None:
    raw = request.args.get(name)
    return None if raw is None else parse_uuid(raw, name)


def query_datetime(request: Request, name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise errors.InvalidParameter(
            [FieldError(name, "must be an RFC 3339 date-time, e.g. 2030-01-31T20:00:00Z")]
        ) from exc
    if value.tzinfo is None:
        raise errors.InvalidParameter([FieldError(name, "must include a time zone offset")])
    return value


def reject_unknown_query(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise errors.InvalidParameter([FieldError(unknown[0], "unknown query parameter")])
