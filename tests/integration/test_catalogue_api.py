"""The catalogue (get_event) through its real functions-framework entrypoint, against the real
PostgreSQL and access tokens issued by the real Keycloak: public reads, pagination, filters, ETag
revalidation, admin management, role checks and request validation.

Data a test changes is its own: a fresh venue with events far in the future (the database
persists between runs; the demo data is only read).
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

pytestmark = pytest.mark.integration

DEMO_VENUE = "7e0e0000-0000-4000-8000-000000000001"
DEMO_EVENT = "e0e00000-0000-4000-8000-000000000001"

Auth = Callable[[str], dict[str, str]]
Problem = Callable[..., dict[str, Any]]


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _far_future() -> datetime:
    """A random second in the 23rd-28th centuries: nobody else's events start there."""
    start = datetime(2200, 1, 1, tzinfo=UTC)
    return start + timedelta(seconds=random.randrange(600 * 365 * 86400))


class Catalogue:
    """Calls to the get_event entrypoint, as an admin unless told otherwise."""

    def __init__(self, client: FlaskClient, auth: Auth) -> None:
        self.client = client
        self.admin = auth("olivia")

    def create_venue(self, name: str, capacity: int = 500) -> dict[str, Any]:
        response = self.client.post(
            "/venues",
            json={
                "name": name,
                "address": "1 Test Street",
                "city": "Testville",
                "capacity": capacity,
            },
            headers=self.admin,
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        return body

    def event_input(self, venue_id: str, starts_at: datetime, **fields: Any) -> dict[str, Any]:
        body = {
            "venueId": venue_id,
            "name": f"Test event {uuid.uuid4().hex[:8]}",
            "description": "Created by tests/integration/test_catalogue_api.py",
            "startsAt": _iso(starts_at),
            "price": {"amount": "25.5", "currency": "GBP"},
            "capacity": 100,
        }
        body.update(fields)
        return body

    def create_event(self, venue_id: str, starts_at: datetime, **fields: Any) -> dict[str, Any]:
        response = self.client.post(
            "/events", json=self.event_input(venue_id, starts_at, **fields), headers=self.admin
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        body: dict[str, Any] = response.get_json()
        return body

    def events(self, **params: Any) -> TestResponse:
        return self.client.get("/events", query_string=params)

    def walk(self, limit: int, **params: Any) -> list[list[dict[str, Any]]]:
        """Every page of GET /events, following nextCursor."""
        pages: list[list[dict[str, Any]]] = []
        cursor = None
        while True:
            query = dict(params, limit=limit)
            if cursor:
                query["cursor"] = cursor
            response = self.events(**query)
            assert response.status_code == 200, response.get_data(as_text=True)
            body = response.get_json()
            pages.append(body["items"])
            cursor = body["nextCursor"]
            if cursor is None:
                return pages
            assert len(pages) < 1000, "cursor walk does not end"


@pytest.fixture
def cat(event_client: FlaskClient, auth: Auth) -> Catalogue:
    return Catalogue(event_client, auth)


@pytest.fixture
def venue(cat: Catalogue, unique: str) -> dict[str, Any]:
    return cat.create_venue(f"Test venue {unique}")


@pytest.fixture
def venue_events(cat: Catalogue, venue: dict[str, Any]) -> list[dict[str, Any]]:
    """Five events at the fresh venue, two of them starting at the same instant, in the
    catalogue's order (start time, then id)."""
    t0 = _far_future()
    starts = [t0, t0 + timedelta(days=1), t0 + timedelta(days=1), t0 + timedelta(days=2)]
    starts.append(t0 + timedelta(days=3))
    events = [cat.create_event(venue["id"], when) for when in random.sample(starts, len(starts))]
    return sorted(events, key=lambda e: (_parse(e["startsAt"]), uuid.UUID(e["id"])))


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


# -- public reads ---------------------------------------------------------------------------------


def test_list_events_returns_upcoming_events_soonest_first_and_is_cacheable(
    cat: Catalogue,
) -> None:
    before = datetime.now(UTC)
    response = cat.events()
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["ETag"].startswith('"')
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    body = response.get_json()
    items = body["items"]
    assert 1 <= len(items) <= 20  # the demo catalogue has upcoming events; default page size 20
    keys = [(_parse(e["startsAt"]), uuid.UUID(e["id"])) for e in items]
    assert keys == sorted(keys)
    assert all(_parse(e["startsAt"]) >= before - timedelta(seconds=5) for e in items)
    fields = {"id", "name", "description", "startsAt", "venue", "price", "capacity", "status"}
    assert set(items[0]) == fields | {"maxTicketsPerOrder", "categories", "onlinePayment"}


def test_get_event_returns_the_event_with_its_venue_price_and_capacity(cat: Catalogue) -> None:
    response = cat.client.get(f"/events/{DEMO_EVENT}")
    assert response.status_code == 200
    assert response.headers["ETag"]
    # Shared caches may keep it 5 s, and answer with it 5 s more while they refresh it (the
    # defaults of BOXOFFICE_CATALOGUE_MAX_AGE_SECONDS and BOXOFFICE_CATALOGUE_STALE_SECONDS).
    assert response.headers["Cache-Control"] == "public, max-age=5, stale-while-revalidate=5"
    event = response.get_json()
    assert event["id"] == DEMO_EVENT
    assert event["name"] == "Secret Acoustic Set"
    assert event["venue"] == {"id": DEMO_VENUE, "name": "The Little Room", "city": "Bristol"}
    assert event["price"] == {"amount": "25.00", "currency": "GBP"}
    assert event["capacity"]["total"] == 20
    assert 0 <= event["capacity"]["remaining"] <= 20
    assert event["status"] in {"ON_SALE", "SOLD_OUT"}


def test_get_venue_returns_the_venue_with_its_capacity(cat: Catalogue) -> None:
    response = cat.client.get(f"/venues/{DEMO_VENUE}")
    assert response.status_code == 200
    assert response.headers["ETag"]
    assert response.get_json() == {
        "id": DEMO_VENUE,
        "name": "The Little Room",
        "address": "1 Side Street",
        "city": "Bristol",
        "capacity": 120,
    }


@pytest.mark.parametrize("path", ["/events/{id}", "/venues/{id}", "/events/{id}/cancel"])
def test_unknown_ids_are_404_problems(cat: Catalogue, assert_problem: Problem, path: str) -> None:
    url = path.format(id=uuid.uuid4())
    if url.endswith("/cancel"):
        response = cat.client.post(url, headers=cat.admin)
    else:
        response = cat.client.get(url)
    body = assert_problem(response, 404, "not-found")
    assert body["instance"] == url


@pytest.mark.parametrize(
    ("path", "field"), [("/events/not-a-uuid", "eventId"), ("/venues/12345", "venueId")]
)
def test_malformed_ids_are_400_problems_naming_the_parameter(
    cat: Catalogue, assert_problem: Problem, path: str, field: str
) -> None:
    assert_problem(cat.client.get(path), 400, "invalid-parameter", field)


def test_unknown_query_parameters_are_400_naming_the_parameter(
    cat: Catalogue, assert_problem: Problem
) -> None:
    assert_problem(cat.events(venue=DEMO_VENUE), 400, "invalid-parameter", "venue")


# -- pagination ----------------------------------------------------------------------------------


def test_limit_1_returns_one_event_and_a_cursor(
    cat: Catalogue, venue_events: list[dict[str, Any]]
) -> None:
    body = cat.events(venueId=venue_events[0]["venue"]["id"], limit=1).get_json()
    assert _ids(body["items"]) == [venue_events[0]["id"]]
    assert isinstance(body["nextCursor"], str)


def test_limit_100_returns_at_most_100_and_a_whole_small_listing_in_one_page(
    cat: Catalogue, venue_events: list[dict[str, Any]]
) -> None:
    body = cat.events(venueId=venue_events[0]["venue"]["id"], limit=100).get_json()
    assert _ids(body["items"]) == _ids(venue_events)
    assert body["nextCursor"] is None
    everything = cat.events(limit=100, **{"from": "2000-01-01T00:00:00Z"}).get_json()
    assert 1 <= len(everything["items"]) <= 100
    if everything["nextCursor"] is not None:
        assert len(everything["items"]) == 100


# "\uff11" and "\u0663" are a fullwidth 1 and an Arabic-Indic 3: digits to `\d`, not to the spec.
@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5", "", "\uff11", "\u0663"])
def test_limit_that_is_not_an_ascii_integer_from_1_to_100_is_400_naming_limit(
    cat: Catalogue, assert_problem: Problem, limit: str
) -> None:
    assert_problem(cat.events(limit=limit), 400, "invalid-parameter", "limit")


def test_cursor_walk_returns_every_event_exactly_once_in_start_then_id_order(
    cat: Catalogue, venue_events: list[dict[str, Any]]
) -> None:
    venue_id = venue_events[0]["venue"]["id"]
    pages = cat.walk(limit=2, venueId=venue_id)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert _ids([e for p in pages for e in p]) == _ids(venue_events)
    # Without the venue filter, one per page across the tie (two events at the same instant):
    first, last = _parse(venue_events[0]["startsAt"]), _parse(venue_events[-1]["startsAt"])
    window = {"from": _iso(first), "to": _iso(last + timedelta(seconds=1))}
    pages = cat.walk(limit=1, **window)
    walked = _ids([e for p in pages for e in p])
    assert len(walked) == len(set(walked))
    assert walked == _ids(venue_events)
    # ... and the order is stable: walking again gives the same sequence.
    assert _ids([e for p in cat.walk(limit=3, **window) for e in p]) == walked


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "!!!!",
        "aGVsbG98d29ybGQ",  # base64 of "hello|world"
        "MjAzMC0wMS0wMVQwMDowMDowMHxub3QtYS11dWlk",  # "2030-01-01T00:00:00|not-a-uuid"
    ],
)
def test_a_cursor_not_issued_by_the_api_is_400_naming_cursor(
    cat: Catalogue, assert_problem: Problem, cursor: str
) -> None:
    assert_problem(cat.events(cursor=cursor), 400, "invalid-parameter", "cursor")


# -- filters -------------------------------------------------------------------------------------


def test_venue_filter_returns_only_that_venues_events(
    cat: Catalogue, venue_events: list[dict[str, Any]]
) -> None:
    items = cat.events(venueId=DEMO_VENUE, limit=100).get_json()["items"]
    assert items
    assert {e["venue"]["id"] for e in items} == {DEMO_VENUE}
    assert not set(_ids(items)) & set(_ids(venue_events))
    other = cat.events(venueId=str(uuid.uuid4())).get_json()
    assert other == {"items": [], "nextCursor": None}


def test_from_is_inclusive_and_to_is_exclusive(
    cat: Catalogue, venue_events: list[dict[str, Any]]
) -> None:
    venue_id = venue_events[0]["venue"]["id"]
    second = _parse(venue_events[1]["startsAt"])  # the tie: events 1 and 2 start together
    last = _parse(venue_events[4]["startsAt"])
    items = cat.events(venueId=venue_id, **{"from": _iso(second), "to": _iso(last)}).get_json()
    assert _ids(items["items"]) == _ids(venue_events[1:4])
    # A range on its own (no venue filter) around one instant: exactly the events starting then.
    only = cat.events(
        **{"from": _iso(second), "to": _iso(second + timedelta(seconds=1))}
    ).get_json()
    assert _ids(only["items"]) == _ids(venue_events[1:3])
    # Offsets other than Z mean the same instant.
    plus_two = second.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=2)
    shifted = cat.events(venueId=venue_id, **{"from": plus_two.isoformat() + "+02:00"}).get_json()
    assert _ids(shifted["items"]) == _ids(venue_events[1:])


def test_a_date_range_is_applied_to_the_demo_catalogue(cat: Catalogue) -> None:
    starts = _parse(cat.client.get(f"/events/{DEMO_EVENT}").get_json()["startsAt"])
    window = {"from": _iso(starts), "to": _iso(starts + timedelta(seconds=1))}
    items = cat.events(venueId=DEMO_VENUE, **window).get_json()["items"]
    assert DEMO_EVENT in _ids(items)
    window = {"from": _iso(starts + timedelta(seconds=1))}
    assert DEMO_EVENT not in _ids(cat.events(venueId=DEMO_VENUE, **window).get_json()["items"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"venueId": "nope"}, "venueId"),
        ({"from": "tomorrow"}, "from"),
        ({"from": "2030-01-01T00:00:00"}, "from"),  # no offset
        ({"to": "2030-13-01T00:00:00Z"}, "to"),
    ],
)
def test_malformed_filters_are_400_naming_the_parameter(
    cat: Catalogue, assert_problem: Problem, params: dict[str, str], field: str
) -> None:
    assert_problem(cat.events(**params), 400, "invalid-parameter", field)


# -- ETag revalidation ---------------------------------------------------------------------------


def test_event_etag_revalidates_to_304_until_an_admin_changes_the_event(
    cat: Catalogue, venue: dict[str, Any]
) -> None:
    event = cat.create_event(venue["id"], _far_future())
    url = f"/events/{event['id']}"
    first = cat.client.get(url)
    etag = first.headers["ETag"]
    again = cat.client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    assert cat.client.get(url, headers={"If-None-Match": '"something-else"'}).status_code == 200

    changed = cat.event_input(venue["id"], _parse(event["startsAt"]), name="Renamed event")
    assert cat.client.put(url, json=changed, headers=cat.admin).status_code == 200
    after = cat.client.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["ETag"] != etag
    assert after.get_json()["name"] == "Renamed event"
    assert cat.client.get(url, headers={"If-None-Match": after.headers["ETag"]}).status_code == 304


def test_listing_etag_changes_when_an_event_in_it_changes(
    cat: Catalogue, venue_events: list[dict[str, Any]]
) -> None:
    venue_id = venue_events[0]["venue"]["id"]
    etag = cat.events(venueId=venue_id).headers["ETag"]
    assert cat.events(venueId=venue_id).headers["ETag"] == etag  # deterministic representation
    revalidated = cat.client.get(
        "/events", query_string={"venueId": venue_id}, headers={"If-None-Match": etag}
    )
    assert revalidated.status_code == 304
    cancelled = cat.client.post(f"/events/{venue_events[2]['id']}/cancel", headers=cat.admin)
    assert cancelled.status_code == 200
    after = cat.client.get(
        "/events", query_string={"venueId": venue_id}, headers={"If-None-Match": etag}
    )
    assert after.status_code == 200
    assert after.headers["ETag"] != etag


def test_venue_etag_changes_after_an_admin_update(cat: Catalogue, venue: dict[str, Any]) -> None:
    url = f"/venues/{venue['id']}"
    etag = cat.client.get(url).headers["ETag"]
    assert cat.client.get(url, headers={"If-None-Match": etag}).status_code == 304
    update = {"name": venue["name"], "address": "2 New Road", "city": "Testville", "capacity": 600}
    assert cat.client.put(url, json=update, headers=cat.admin).status_code == 200
    after = cat.client.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["ETag"] != etag
    assert after.get_json()["address"] == "2 New Road"


# -- admin management ----------------------------------------------------------------------------


def test_admin_creates_a_venue_with_a_location(cat: Catalogue, unique: str) -> None:
    body = {"name": f"Venue {unique}", "address": "5 High St", "city": "York", "capacity": 321}
    response = cat.client.post("/venues", json=body, headers=cat.admin)
    assert response.status_code == 201
    created = response.get_json()
    assert created == {"id": created["id"], **body}
    assert response.headers["Location"] == f"/venues/{created['id']}"
    assert cat.client.get(response.headers["Location"]).get_json() == created


def test_admin_updates_a_venue_and_unknown_venues_are_404(
    cat: Catalogue, venue: dict[str, Any], assert_problem: Problem
) -> None:
    update = {"name": venue["name"] + " (renamed)", "address": "9 Quay", "city": "Hull"}
    update["capacity"] = 750
    response = cat.client.put(f"/venues/{venue['id']}", json=update, headers=cat.admin)
    assert response.status_code == 200
    assert response.get_json() == {"id": venue["id"], **update}
    assert cat.client.get(f"/venues/{venue['id']}").get_json() == {"id": venue["id"], **update}
    missing = cat.client.put(f"/venues/{uuid.uuid4()}", json=update, headers=cat.admin)
    assert_problem(missing, 404, "not-found")


def test_admin_creates_an_event_on_sale_with_full_capacity(
    cat: Catalogue, venue: dict[str, Any]
) -> None:
    when = _far_future()
    response = cat.client.post(
        "/events", json=cat.event_input(venue["id"], when, capacity=150), headers=cat.admin
    )
    assert response.status_code == 201
    event = response.get_json()
    assert response.headers["Location"] == f"/events/{event['id']}"
    assert event["status"] == "ON_SALE"
    assert event["capacity"] == {"total": 150, "remaining": 150}
    # The booking form's limit comes from here (storefront/public/assets/events.js).
    assert event["maxTicketsPerOrder"] == int(
        os.environ.get("BOXOFFICE_MAX_TICKETS_PER_ORDER", "10")
    )
    assert event["price"] == {"amount": "25.50", "currency": "GBP"}
    assert _parse(event["startsAt"]) == when
    assert event["venue"] == {"id": venue["id"], "name": venue["name"], "city": venue["city"]}
    assert cat.client.get(f"/events/{event['id']}").get_json() == event


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"capacity": 501}, "capacity"),  # more than the venue holds
        ({"venueId": str(uuid.uuid4())}, "venueId"),  # no such venue
    ],
)
def test_events_are_checked_against_their_venue(
    cat: Catalogue,
    venue: dict[str, Any],
    assert_problem: Problem,
    fields: dict[str, Any],
    field: str,
) -> None:
    body = cat.event_input(venue["id"], _far_future(), **fields)
    response = cat.client.post("/events", json=body, headers=cat.admin)
    assert_problem(response, 422, "validation-failed", field)


def test_admin_updates_an_event(
    cat: Catalogue, venue: dict[str, Any], assert_problem: Problem
) -> None:
    event = cat.create_event(venue["id"], _far_future())
    url = f"/events/{event['id']}"
    when = _far_future()
    changed = cat.event_input(
        venue["id"],
        when,
        name="Updated name",
        description="",
        price={"amount": "30", "currency": "EUR"},
        capacity=80,
    )
    response = cat.client.put(url, json=changed, headers=cat.admin)
    assert response.status_code == 200
    updated = response.get_json()
    assert updated["id"] == event["id"]
    assert updated["name"] == "Updated name"
    assert updated["description"] == ""
    assert _parse(updated["startsAt"]) == when
    assert updated["price"] == {"amount": "30.00", "currency": "EUR"}
    assert updated["capacity"] == {"total": 80, "remaining": 80}
    assert cat.client.get(url).get_json() == updated

    other_venue = cat.create_venue(f"Other venue {uuid.uuid4().hex[:8]}")
    moved = cat.event_input(other_venue["id"], when)
    assert_problem(cat.client.put(url, json=moved, headers=cat.admin), 422, None, "venueId")
    missing = cat.client.put(f"/events/{uuid.uuid4()}", json=changed, headers=cat.admin)
    assert_problem(missing, 404, "not-found")


def test_admin_cancels_an_event_idempotently_and_it_stays_listed(
    cat: Catalogue, venue: dict[str, Any]
) -> None:
    event = cat.create_event(venue["id"], _far_future())
    url = f"/events/{event['id']}/cancel"
    first = cat.client.post(url, headers=cat.admin)
    assert first.status_code == 200
    assert first.get_json()["status"] == "CANCELLED"
    second = cat.client.post(url, headers=cat.admin)
    assert second.status_code == 200
    assert second.get_json() == first.get_json()
    assert cat.client.get(f"/events/{event['id']}").get_json()["status"] == "CANCELLED"
    listed = cat.events(venueId=venue["id"]).get_json()["items"]
    assert [(e["id"], e["status"]) for e in listed] == [(event["id"], "CANCELLED")]


ADMIN_OPERATIONS = [
    ("POST", "/venues", "venue"),
    ("PUT", "/venues/{venue}", "venue"),
    ("POST", "/events", "event"),
    ("PUT", "/events/{event}", "event"),
    ("POST", "/events/{event}/cancel", None),
]


def _admin_request(
    cat: Catalogue, venue: dict[str, Any], event: dict[str, Any], operation: tuple[Any, ...]
) -> tuple[str, str, dict[str, Any] | None]:
    method, template, body_kind = operation
    path = template.format(venue=venue["id"], event=event["id"])
    body: dict[str, Any] | None = None
    if body_kind == "venue":
        body = {"name": "Hijacked", "address": "x", "city": "x", "capacity": 1}
    elif body_kind == "event":
        body = cat.event_input(venue["id"], _far_future(), name="Hijacked", capacity=1)
    return method, path, body


@pytest.mark.parametrize("operation", ADMIN_OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
def test_admin_operations_are_403_for_a_customer_token(
    cat: Catalogue,
    auth: Auth,
    venue: dict[str, Any],
    assert_problem: Problem,
    operation: tuple[Any, ...],
) -> None:
    event = cat.create_event(venue["id"], _far_future())
    method, path, body = _admin_request(cat, venue, event, operation)
    response = cat.client.open(path, method=method, json=body, headers=auth("alice"))
    assert_problem(response, 403, "forbidden")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert cat.client.get(f"/venues/{venue['id']}").get_json() == venue
    assert cat.client.get(f"/events/{event['id']}").get_json() == event


@pytest.mark.parametrize("operation", ADMIN_OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
def test_admin_operations_are_401_with_a_bearer_challenge_without_a_token(
    cat: Catalogue, venue: dict[str, Any], assert_problem: Problem, operation: tuple[Any, ...]
) -> None:
    event = cat.create_event(venue["id"], _far_future())
    method, path, body = _admin_request(cat, venue, event, operation)
    response = cat.client.open(path, method=method, json=body)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="boxoffice"')
    assert cat.client.get(f"/events/{event['id']}").get_json() == event


# -- request validation --------------------------------------------------------------------------

GOOD_VENUE = {"name": "V", "address": "A", "city": "C", "capacity": 10}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"capacity": "10"}, "capacity"),  # wrong type
        ({"capacity": 10.5}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({"name": 5}, "name"),
        ({"seats": 10}, "seats"),  # unknown field
        ({"id": str(uuid.uuid4())}, "id"),
        ({"capacity": 0}, "capacity"),  # out of range
        ({"capacity": 1_000_001}, "capacity"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"city": None}, "city"),
        ({"name": "bad\u0000name"}, "name"),  # not storable text
    ],
)
def test_invalid_venue_bodies_are_422_problems_naming_the_field(
    cat: Catalogue, assert_problem: Problem, change: dict[str, Any], field: str
) -> None:
    response = cat.client.post("/venues", json={**GOOD_VENUE, **change}, headers=cat.admin)
    body = assert_problem(response, 422, "validation-failed", field)
    assert body["errors"][0]["message"]


def test_a_missing_required_field_is_422_naming_the_field(
    cat: Catalogue, assert_problem: Problem
) -> None:
    body = {k: v for k, v in GOOD_VENUE.items() if k != "capacity"}
    assert_problem(
        cat.client.post("/venues", json=body, headers=cat.admin),
        422,
        "validation-failed",
        "capacity",
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": {"amount": "1.234", "currency": "GBP"}}, "price.amount"),
        ({"price": {"amount": 12, "currency": "GBP"}}, "price.amount"),
        ({"price": {"amount": "12", "currency": "gbp"}}, "price.currency"),
        ({"price": {"amount": "12", "currency": "GBP", "vat": "2"}}, "price.vat"),
        ({"startsAt": "next friday"}, "startsAt"),
        ({"startsAt": "2030-01-01T20:00:00"}, "startsAt"),  # no offset
        ({"venueId": "not-a-uuid"}, "venueId"),
        ({"description": "d" * 5001}, "description"),
        ({"capacity": -1}, "capacity"),
        ({"status": "CANCELLED"}, "status"),
    ],
)
def test_invalid_event_bodies_are_422_problems_naming_the_field(
    cat: Catalogue,
    venue: dict[str, Any],
    assert_problem: Problem,
    change: dict[str, Any],
    field: str,
) -> None:
    body = cat.event_input(venue["id"], _far_future(), **change)
    response = cat.client.post("/events", json=body, headers=cat.admin)
    assert_problem(response, 422, "validation-failed", field)


@pytest.mark.parametrize(
    "starts_at",
    [
        "0001-01-01T00:00:00+01:00",  # 31 Dec 1 BC in UTC
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
    ],
)
def test_a_start_whose_instant_is_outside_years_1_to_9999_is_422_and_not_stored(
    cat: Catalogue,
    venue: dict[str, Any],
    assert_problem: Problem,
    db: Any,
    starts_at: str,
) -> None:
    """Found while fuzzing: such an event was stored, then could not be read back (500), and
    every listing reaching it failed too. On failure the stored row is removed again."""
    event = cat.create_event(venue["id"], _far_future())
    try:
        body = cat.event_input(venue["id"], _far_future(), startsAt=starts_at)
        created = cat.client.post("/events", json=body, headers=cat.admin)
        assert_problem(created, 422, "validation-failed", "startsAt")
        updated = cat.client.put(f"/events/{event['id']}", json=body, headers=cat.admin)
        assert_problem(updated, 422, "validation-failed", "startsAt")
        assert cat.client.get(f"/events/{event['id']}").get_json() == event
        assert _ids(cat.events(venueId=venue["id"]).get_json()["items"]) == [event["id"]]
    finally:
        db.execute("DELETE FROM event WHERE venue_id = %s AND id <> %s", (venue["id"], event["id"]))
        db.execute(
            "UPDATE event SET starts_at = %s WHERE id = %s", (event["startsAt"], event["id"])
        )


@pytest.mark.parametrize("data", [b'{"name": "V", ', b"", b"\xff\xfe", b"{'name': 'V'}"])
def test_malformed_json_is_400(cat: Catalogue, assert_problem: Problem, data: bytes) -> None:
    response = cat.client.post(
        "/venues", data=data, content_type="application/json", headers=cat.admin
    )
    assert_problem(response, 400, "malformed-json")


def test_a_json_body_that_is_not_an_object_is_422(cat: Catalogue, assert_problem: Problem) -> None:
    response = cat.client.post("/venues", json=[GOOD_VENUE], headers=cat.admin)
    assert_problem(response, 422, "validation-failed")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_application_json_is_415(
    cat: Catalogue, assert_problem: Problem, content_type: str | None, venue: dict[str, Any]
) -> None:
    response = cat.client.put(
        f"/venues/{venue['id']}",
        data=json.dumps(GOOD_VENUE),
        content_type=content_type,
        headers=cat.admin,
    )
    assert_problem(response, 415, "unsupported-media-type")
    assert cat.client.get(f"/venues/{venue['id']}").get_json() == venue


def test_a_body_over_16_kib_is_413(cat: Catalogue, assert_problem: Problem) -> None:
    body = {**GOOD_VENUE, "name": "x" * 17_000}
    response = cat.client.post("/venues", json=body, headers=cat.admin)
    assert_problem(response, 413, "payload-too-large")


def test_unsupported_methods_are_405_with_allow(cat: Catalogue, assert_problem: Problem) -> None:
    response = cat.client.delete(f"/events/{DEMO_EVENT}", headers=cat.admin)
    assert_problem(response, 405, "method-not-allowed")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PUT"}
