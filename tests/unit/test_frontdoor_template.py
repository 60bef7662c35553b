"""The front door's nginx template agrees with the one error hierarchy and with its renderers.

The front door writes some problems itself (stack/frontdoor/nginx.conf.tmpl): each status it can
answer maps to a slug and title that are those of an error class in `boxoffice.errors` (so the
README table and the OpenAPI spec list them), and every renderer (local stack, docker compose,
the chart) fills in every placeholder of the one template.
"""

from __future__ import annotations

import re
from pathlib import Path

from boxoffice import errors

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = (ROOT / "stack" / "frontdoor" / "nginx.conf.tmpl").read_text()
RENDERERS = {
    "local stack": ROOT / "stack" / "services" / "frontdoor.sh",
    "docker compose": ROOT / "deploy" / "compose" / "frontdoor-entrypoint.sh",
    "chart": ROOT / "helm" / "boxoffice" / "templates" / "frontdoor.yaml",
}


def _directives() -> str:
    return "\n".join(line for line in TEMPLATE.splitlines() if not line.lstrip().startswith("#"))


def _map(variable: str) -> dict[str, str]:
    """The entries of `map $status <variable> { ... }` (values unquoted)."""
    found = re.search(r"map \$status \$" + variable + r" \{(.*?)\n\s*\}", _directives(), re.S)
    assert found, f"no map for ${variable}"
    entries = {}
    for line in found.group(1).strip().splitlines():
        key, value = line.strip().rstrip(";").split(None, 1)
        entries[key] = value.strip('"')
    return entries


def _error_page_codes() -> set[int]:
    codes: set[int] = set()
    for line in re.findall(r"error_page ([^;]+);", _directives()):
        codes |= {int(c) for c in line.split() if c.isdigit()}
    return codes


def _class_by_slug() -> dict[str, type[errors.BoxofficeError]]:
    return {cls.slug: cls for cls in errors.all_error_classes()}


def test_every_front_door_problem_is_an_error_class_with_its_status_and_title() -> None:
    slugs, titles = _map("bx_problem_slug"), _map("bx_problem_title")
    by_slug = _class_by_slug()
    assert set(slugs) == set(titles)
    for status, slug in slugs.items():
        cls = by_slug.get(slug)
        assert cls is not None, f"{status} -> {slug}: no such error class in errors.py"
        if status != "default":
            assert cls.status == int(status), (status, slug, cls.status)
        assert titles[status] == cls.title, (status, titles[status], cls.title)
    assert slugs["default"] == errors.BoxofficeError.slug


def test_every_status_the_front_door_answers_has_its_own_problem() -> None:
    slugs = _map("bx_problem_slug")
    details = _map("bx_problem_detail")
    answered = _error_page_codes() - {494}  # 494 is nginx-internal: answered as 431
    assert answered
    for status in answered:
        assert str(status) in slugs, f"error_page {status} has no slug"
        assert str(status) in details, f"error_page {status} has no detail"
    assert re.search(r"error_page 494 =431 ", _directives()), "494 must come out as 431"
    # The statuses the brief names: everything nginx itself can write.
    assert {400, 404, 405, 411, 412, 413, 414, 431, 500, 501, 502, 503, 504, 505} <= answered


def test_problem_details_are_plain_json_strings() -> None:
    """They are pasted into a JSON body by nginx, which does not escape them."""
    for variable in ("bx_problem_title", "bx_problem_detail"):
        for status, text in _map(variable).items():
            assert not re.search(r'["\\$\x00-\x1f]', text), (variable, status, text)


def test_every_renderer_fills_in_every_placeholder() -> None:
    placeholders = set(re.findall(r"@([A-Z_]+)@", _directives()))
    assert {"DIR", "LOG", "LISTEN", "PROBLEM_BASE", "GET_EVENT_ADDR", "GET_EVENT_HOST"} <= (
        placeholders
    )
    for name, path in RENDERERS.items():
        source = path.read_text()
        missing = sorted(p for p in placeholders if f"@{p}@" not in source)
        assert not missing, f"{name} ({path.relative_to(ROOT)}) does not fill in {missing}"
