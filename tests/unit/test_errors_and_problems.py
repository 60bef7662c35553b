"""Errors become RFC 9457 problem+json in one place; their slugs are unique and documented."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Response

from boxoffice import errors
from boxoffice.errors import FieldError
from boxoffice.web import problems

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://tickets.example/problems/"
# The root class's slug is the catch-all for bugs; every other slug names a specific problem.
GENERIC_SLUGS = {errors.BoxofficeError.slug}


def body_of(response: Response) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    return body


def test_render_gives_problem_json_with_type_title_status_and_detail() -> None:
    response = problems.render(errors.NotFound("event 42 does not exist"), BASE, instance="/x")

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert body_of(response) == {
        "type": BASE + "not-found",
        "title": "Not found",
        "status": 404,
        "detail": "event 42 does not exist",
        "instance": "/x",
    }


def test_render_defaults_detail_to_the_title() -> None:
    body = body_of(problems.render(errors.Forbidden(), BASE))
    assert body["detail"] == "Forbidden"
    assert "instance" not in body


def test_render_includes_field_errors_of_validation_problems() -> None:
    error = errors.ValidationFailed([FieldError("capacity", "must be integer")])

    body = body_of(problems.render(error, BASE))

    assert body["status"] == 422
    assert body["type"] == BASE + "validation-failed"
    assert body["errors"] == [{"field": "capacity", "message": "must be integer"}]
    assert body["detail"] == "capacity: must be integer"


def test_render_sets_retry_after_for_service_unavailable() -> None:
    response = problems.render(errors.ServiceUnavailable("database down", retry_after=7), BASE)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert body_of(response)["type"] == BASE + "service-unavailable"


def test_render_forbids_caching_problems() -> None:
    assert problems.render(errors.Conflict(), BASE).headers["Cache-Control"] == "no-store"


def test_error_classes_have_unique_slugs() -> None:
    slugs = [cls.slug for cls in errors.all_error_classes()]
    duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
    assert not duplicates, f"slugs used by more than one error class: {duplicates}"


def test_all_error_classes_covers_subclasses_of_subclasses() -> None:
    found = set(errors.all_error_classes())
    assert {errors.BoxofficeError, errors.MalformedJson, errors.SoldOut} <= found
    assert errors.InvalidParameter in found  # a ValidationFailed subclass


def test_every_error_class_has_a_client_or_server_error_status() -> None:
    bad = [c.__name__ for c in errors.all_error_classes() if not 400 <= c.status <= 599]
    assert not bad


def _documentation() -> str:
    parts = [(ROOT / "src/boxoffice/openapi.yaml").read_text(encoding="utf-8")]
    readme = ROOT / "README.md"
    if readme.is_file():
        parts.append(readme.read_text(encoding="utf-8"))
    return "\n".join(parts)


def test_every_specific_slug_is_documented_in_the_openapi_spec_or_readme() -> None:
    docs = _documentation()
    undocumented = sorted(
        cls.slug
        for cls in errors.all_error_classes()
        if cls.slug not in GENERIC_SLUGS
        and f"`{cls.slug}`" not in docs
        and f"/problems/{cls.slug}" not in docs
    )
    assert not undocumented, (
        f"problem slugs missing from openapi.yaml and README.md: {undocumented}"
    )


def test_readme_error_table_states_each_slugs_real_status() -> None:
    readme = ROOT / "README.md"
    if not readme.is_file():
        pytest.fail("README.md does not exist yet")
    rows = re.findall(r"^\|\s*`([a-z-]+)`\s*\|\s*(\d{3})\s*\|", readme.read_text("utf-8"), re.M)
    assert rows, "README.md has no `| `slug` | status |` table"
    by_slug = {cls.slug: cls.status for cls in errors.all_error_classes()}
    wrong = {slug: int(status) for slug, status in rows if by_slug.get(slug) != int(status)}
    assert not wrong, f"README rows whose slug is unknown or whose status differs: {wrong}"
