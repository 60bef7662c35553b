"""The one place where errors become RFC 9457 `application/problem+json` responses."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Response

from boxoffice.errors import BoxofficeError

PROBLEM_JSON = "application/problem+json"
DEFAULT_BASE = "https://boxoffice.example/problems/"

log = logging.getLogger("boxoffice.web")


def problem_type(slug: str, base: str = DEFAULT_BASE) -> str:
    return f"{base}{slug}"


def problem_body(
    error: BoxofficeError, base: str = DEFAULT_BASE, instance: str = ""
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(error.slug, base),
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if instance:
        body["instance"] = instance
    body.update(error.extensions)
    return body


def render(error: BoxofficeError, base: str = DEFAULT_BASE, instance: str = "") -> Response:
    response = Response(
        json.dumps(problem_body(error, base, instance), separators=(",", ":")),
        status=error.status,
        mimetype=PROBLEM_JSON,
    )
    for name, value in error.headers.items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response
