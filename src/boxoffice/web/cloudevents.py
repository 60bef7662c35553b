"""CloudEvents delivered over HTTP, decoded at the entrypoint (consume_order): the services
receive domain events, never HTTP headers or a CloudEvents SDK object."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import cloudevents.exceptions
from cloudevents.http import from_http

from boxoffice.domain.orders import BookingEvent, booking_event
from boxoffice.errors import MalformedCloudEvent


def _parse_time(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def decode_booking_event(headers: Mapping[str, str], body: bytes) -> BookingEvent:
    """A CloudEvent as delivered over HTTP (binary mode: `ce-*` headers + body; or structured
    mode), validated as a booking event. Raises MalformedCloudEvent (400) when it is not a
    CloudEvent, UnsupportedEventType / BookingEventInvalid (422) when it is not a valid booking
    event: both mean "never retry", so the sender dead-letters it."""
    try:
        event = from_http(dict(headers.items()), body)
    except cloudevents.exceptions.GenericException as exc:
        raise MalformedCloudEvent(f"not a CloudEvent: {exc}") from exc
    return booking_event(
        str(event["source"]),
        str(event["id"]),
        str(event["type"]),
        _parse_time(event.get("time")),
        event.data,
    )
