"""CloudEvents as the local KafkaSource stand-in sees them (shared by dispatcher.py and dlq.py).

An `Event` is the attributes (without `datacontenttype`), the content type and the data bytes:
exactly what goes out in CloudEvents *binary* content mode, as HTTP `ce-*` headers +
`Content-Type` + body, or as Kafka `ce_*` headers + `content-type` + value. How a Kafka record
becomes an `Event` follows ../shared/docs/kafkasource-contract.md (see `from_record`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

WRAPPED_TYPE = "dev.knative.kafka.event"
STRUCTURED = "application/cloudevents+json"
REQUIRED = ("specversion", "id", "source", "type")
# Local-only Kafka headers of dead-letter records (not CloudEvent attributes): where the record
# came from, and which extensions the dead-lettering added (so a replay can strip them).
ORIGIN_HEADER = "boxoffice-dlq-origin"  # "<topic>/<partition>/<offset>"
ADDED_HEADER = "boxoffice-dlq-added"  # comma-separated attribute names
ERROR_EXTENSIONS = ("knativeerrordest", "knativeerrorcode", "knativeerrordata")

_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def attribute_name(raw: str) -> str:
    """A header name as a CloudEvent attribute name: lower-cased, stripped to [a-z0-9]."""
    return _NOT_ALNUM.sub("", raw.lower())


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", errors="replace")


def header_value(value: str) -> str:
    """An attribute value as an HTTP header value: characters outside printable ASCII are
    percent-encoded (UTF-8), everything else is sent as is (the Python CloudEvents SDK that
    functions-framework uses does not percent-decode, so nothing more is encoded)."""
    if all(" " <= c <= "~" for c in value):
        return value
    return "".join(
        c if " " <= c <= "~" else "".join(f"%{b:02X}" for b in c.encode()) for c in value
    )


def rfc3339_millis(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Event:
    attributes: dict[str, str]
    content_type: str | None = None
    data: bytes = b""
    wrapped: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # not sent over HTTP

    @property
    def id(self) -> str:
        return self.attributes.get("id", "")

    def http_headers(self) -> dict[str, str]:
        headers = {f"ce-{k}": header_value(v) for k, v in self.attributes.items()}
        if self.content_type is not None:
            headers["Content-Type"] = header_value(self.content_type)
        return headers

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        headers = [(f"ce_{k}", v.encode()) for k, v in self.attributes.items()]
        if self.content_type is not None:
            headers.append(("content-type", self.content_type.encode()))
        headers.extend((k, v.encode()) for k, v in self.extra.items())
        return headers


def _binary(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> Event | None:
    attributes: dict[str, str] = {}
    content_type: str | None = None
    extra: dict[str, str] = {}
    for name, raw in headers:
        lowered = name.lower()
        if lowered.startswith("ce_") and len(lowered) > 3:
            attributes[lowered[3:]] = _text(raw)
        elif lowered == "content-type":
            content_type = _text(raw)
        elif lowered in (ORIGIN_HEADER, ADDED_HEADER):
            extra[lowered] = _text(raw)
    if attributes.get("specversion") != "1.0" or not all(attributes.get(a) for a in REQUIRED):
        return None
    attributes.pop("datacontenttype", None)  # binary mode: the content-type header carries it
    return Event(attributes, content_type, value or b"", extra=extra)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _structured_data(document: dict[str, Any]) -> tuple[bytes, str | None] | None:
    """(data bytes, content type) of a structured-mode CloudEvent; None if undecodable."""
    ctype = document.get("datacontenttype")
    content_type = None if ctype is None else _scalar(ctype)
    if "data_base64" in document:
        try:
            return base64.b64decode(str(document["data_base64"]), validate=True), content_type
        except ValueError:
            return None
    item = document.get("data")
    if item is None:
        return b"", content_type
    if content_type is None:
        content_type = "application/json"  # JSON format: data without datacontenttype is JSON
    is_json = content_type.split(";", maxsplit=1)[0].strip().endswith(("/json", "+json"))
    if isinstance(item, str) and not is_json:
        return item.encode(), content_type
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode(), content_type


def _structured(value: bytes | None) -> Event | None:
    try:
        document = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("specversion") != "1.0":
        return None
    if not all(isinstance(document.get(a), str) and document[a] for a in REQUIRED):
        return None
    decoded = _structured_data(document)
    if decoded is None:
        return None
    skip = {"data", "data_base64", "datacontenttype"}
    attributes = {k: _scalar(v) for k, v in document.items() if k not in skip and v is not None}
    return Event(attributes, decoded[1], decoded[0])


def wrap(
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
    namespace: str,
    name: str,
) -> Event:
    """A record that is not a CloudEvent, wrapped the way KafkaSource wraps it."""
    attributes = {
        "specversion": "1.0",
        "id": f"partition:{partition}/offset:{offset}",
        "source": f"/apis/v1/namespaces/{namespace}/kafkasources/{name}#{topic}",
        "type": WRAPPED_TYPE,
        "subject": f"partition:{partition}#{offset}",
        "time": rfc3339_millis(timestamp_ms),
    }
    if key is not None:
        attributes["key"] = attributes["partitionkey"] = _text(key)
    content_type: str | None = None
    for header, raw in headers:
        attributes[f"kafkaheader{attribute_name(header)}"] = _text(raw)
        if header.lower() == "content-type":
            content_type = _text(raw)
    return Event(attributes, content_type, value or b"", wrapped=True)


def from_record(record: Any, *, namespace: str, name: str) -> Event:
    """The event the sink receives for one kafka-python ConsumerRecord: a binary-mode or
    structured-mode CloudEvent is passed through with its own attributes; anything else (also a
    record that claims to be a CloudEvent but lacks a required attribute) is wrapped."""
    headers = [(str(k), v) for k, v in (record.headers or [])]
    if any(k.lower() == "ce_specversion" for k, _ in headers):
        event = _binary(headers, record.value)
        if event is not None:
            return event
    content_type = next((_text(v) for k, v in headers if k.lower() == "content-type"), "")
    if content_type.split(";")[0].strip().lower() == STRUCTURED:
        event = _structured(record.value)
        if event is not None:
            return event
    return wrap(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=headers,
        namespace=namespace,
        name=name,
    )


def from_dead_letter(record: Any) -> Event | None:
    """A dead-letter record (Kafka binary mode, as the dispatcher writes them) as an Event."""
    return _binary([(str(k), v) for k, v in (record.headers or [])], record.value)
