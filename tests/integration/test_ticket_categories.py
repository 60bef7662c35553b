"""Ticket categories in the catalogue (issue 22 item 1) through the real get_event entrypoint,
against the real PostgreSQL and Keycloak tokens: events created with categories (or without, as
one "General admission"), shown with each category's remaining seats, validation, the update and
resize rules; and the database's own guard (R__inventory.sql) refusing categories whose shards
do not add up, in a throw-away database.

Data a test changes is its own: a fresh venue with events far in the future (the dev database
persists between runs); tests that write what the API never would use a database of their own.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.integration

Auth = Callable[[str], dict[str, str]]
Problem = Callable[..., dict[str, Any]]
Db = psycopg.Connection[Any]

DEMO_FESTIVAL = "e0e00000-0000-4000-8000-000000000005"  # db/demo/demo.sql: three categories

THREE = [
    {"name": "Standing", "price": {"amount": "25", "currency": "GBP"}, "capacity": 2000},
    {"name": "Seated", "price": {"amount": "40", "currency": "GBP"}, "capacity": 800},
    {"name": "VIP", "price": {"amount": "90", "currency": "GBP"}, "capacity": 50},
]


def _far_future() -> str:
    start = datetime(2200, 1, 1, tzinfo=UTC)
    when = start + timedelta(seconds=random.randrange(600 * 365 * 86400))
    return when.isoformat().replace("+00:00", "Z")


class Admin:
    def __init__(self, client: FlaskClient, auth: Auth) -> None:
        self.client = client
        self.headers = auth("olivia")

    def venue(self, capacity: int = 5000) -> str:
        response = self.client.post(
            "/venues",
            json={
                "name": f"Category hall {uuid.uuid4().hex[:8]}",
                "address": "2 Test Street",
                "city": "Testville",
                "capacity": capacity,
            },
            headers=self.headers,
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        venue_id: str = response.get_json()["id"]
        return venue_id

    def body(self, venue_id: str, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "venueId": venue_id,
            "name": f"Category test {uuid.uuid4().hex[:8]}",
            "startsAt": _far_future(),
        }
        body.update(fields)
        return body

    def post(self, venue_id: str, **fields: Any) -> Any:
        return self.client.post("/events", json=self.body(venue_id, **fields), headers=self.headers)

    def create(self, venue_id: str, **fields: Any) -> dict[str, Any]:
        response = self.post(venue_id, **fields)
        assert response.status_code == 201, response.get_data(as_text=True)
        event: dict[str, Any] = response.get_json()
        return event

    def put(self, event: dict[str, Any], **fields: Any) -> Any:
        body = {
            "venueId": event["venue"]["id"],
            "name": event["name"],
            "startsAt": event["startsAt"],
            **fields,
        }
        return self.client.put(f"/events/{event['id']}", json=body, headers=self.headers)


@pytest.fixture
def admin(event_client: FlaskClient, auth: Auth) -> Admin:
    return Admin(event_client, auth)


def _summary(event: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (c["name"], c["price"]["amount"], c["capacity"], c["remaining"], c["status"])
        for c in event["categories"]
    ]


def test_an_event_created_with_three_categories_shows_each_with_its_remaining_seats(
    admin: Admin,
) -> None:
    venue = admin.venue()

    created = admin.create(venue, categories=THREE, onlinePayment=True)

    assert _summary(created) == [
        ("Standing", "25.00", 2000, 2000, "ON_SALE"),
        ("Seated", "40.00", 800, 800, "ON_SALE"),
        ("VIP", "90.00", 50, 50, "ON_SALE"),
    ]
    assert all(c["price"]["currency"] == "GBP" for c in created["categories"])
    assert len({c["id"] for c in created["categories"]}) == 3
    # "from £25": the lowest price; the capacity is the sum.
    assert created["price"] == {"amount": "25.00", "currency": "GBP"}
    assert created["capacity"] == {"total": 2850, "remaining": 2850}
    assert created["onlinePayment"] is True
    assert admin.client.get(f"/events/{created['id']}").get_json() == created
    listed = admin.client.get("/events", query_string={"venueId": venue}).get_json()["items"]
    assert listed == [created]


def test_categories_are_stored_with_their_own_contiguous_shards(admin: Admin, db: Db) -> None:
    event = admin.create(admin.venue(), categories=THREE)

    rows = db.execute(
        """SELECT c.name, array_agg(i.shard ORDER BY i.shard), sum(i.capacity)::int
             FROM ticket_category c JOIN event_inventory i ON i.category_id = c.id
            WHERE c.event_id = %s GROUP BY c.name, c.position ORDER BY c.position""",
        (event["id"],),
    ).fetchall()
    assert rows == [("Standing", [0, 1, 2, 3], 2000), ("Seated", [4], 800), ("VIP", [5], 50)]
    price, capacity = db.execute(
        "SELECT ticket_price, capacity FROM event WHERE id = %s", (event["id"],)
    ).fetchone() or (None, None)
    assert (price, capacity) == (Decimal("25.00"), 2850)


def test_an_event_created_without_categories_has_one_general_admission(admin: Admin) -> None:
    event = admin.create(admin.venue(), price={"amount": "12.5", "currency": "EUR"}, capacity=120)

    assert _summary(event) == [("General admission", "12.50", 120, 120, "ON_SALE")]
    assert event["categories"][0]["price"] == {"amount": "12.50", "currency": "EUR"}
    assert event["price"] == {"amount": "12.50", "currency": "EUR"}
    assert event["onlinePayment"] is False


def test_the_demo_festival_sells_three_categories_online(
    own_db: Db, event_client: FlaskClient
) -> None:
    """db/demo/demo.sql as a fresh stack loads it (a database of the test's own)."""
    event = event_client.get(f"/events/{DEMO_FESTIVAL}").get_json()
    assert [(c["name"], c["price"]["amount"], c["capacity"]) for c in event["categories"]] == [
        ("Standing", "25.00", 2000),
        ("Seated", "40.00", 800),
        ("VIP", "90.00", 50),
    ]
    assert event["onlinePayment"] is True
    assert event["capacity"]["total"] == 2850


def _category(name: str, amount: str = "10", capacity: int = 10, cur: str = "GBP") -> Any:
    return {"name": name, "price": {"amount": amount, "currency": cur}, "capacity": capacity}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"categories": []}, "categories"),
        ({"categories": [_category(f"C{i}") for i in range(21)]}, "categories"),
        ({"categories": [_category("VIP"), _category("vip")]}, "categories.1.name"),
        ({"categories": [_category("A", capacity=0)]}, "categories.0.capacity"),
        ({"categories": [_category("A", amount="-1")]}, "categories.0.price.amount"),
        ({"categories": [_category("A", amount="1.234")]}, "categories.0.price.amount"),
        ({"categories": [_category("A", amount="10.5", cur="JPY")]}, "categories.0.price.amount"),
        (
            {"categories": [_category("A"), _category("B", cur="EUR")]},
            "categories.1.price.currency",
        ),
        ({"categories": [_category("")]}, "categories.0.name"),
        ({"categories": [{**_category("A"), "vat": "2"}]}, "categories.0.vat"),
        ({"categories": [_category("A")], "capacity": 10}, "capacity"),
        ({"categories": [_category("A")], "price": {"amount": "10", "currency": "GBP"}}, "price"),
        ({"capacity": 10}, "price"),  # neither a price nor categories
        ({"price": {"amount": "10", "currency": "GBP"}}, "capacity"),
        (
            {"price": {"amount": "10", "currency": "XTS"}, "capacity": 10, "onlinePayment": True},
            "price.currency",
        ),
        ({"categories": [_category("A")], "onlinePayment": "yes"}, "onlinePayment"),
        ({"categories": [_category("A", capacity=5001)]}, "capacity"),  # above the venue's
    ],
)
def test_invalid_categories_are_422_problems_naming_the_field_and_store_nothing(
    admin: Admin, assert_problem: Problem, db: Db, fields: dict[str, Any], field: str
) -> None:
    venue = admin.venue()
    response = admin.post(venue, **fields)
    assert_problem(response, 422, "validation-failed", field)
    assert db.execute("SELECT count(*) FROM event WHERE venue_id = %s", (venue,)).fetchone() == (0,)


def test_updating_a_single_category_event_changes_its_category_too(admin: Admin) -> None:
    event = admin.create(admin.venue(), price={"amount": "20", "currency": "GBP"}, capacity=100)

    response = admin.put(event, price={"amount": "22.50", "currency": "EUR"}, capacity=150)

    assert response.status_code == 200, response.get_data(as_text=True)
    updated = response.get_json()
    assert _summary(updated) == [("General admission", "22.50", 150, 150, "ON_SALE")]
    assert updated["categories"][0]["price"]["currency"] == "EUR"
    assert updated["categories"][0]["id"] == event["categories"][0]["id"]
    assert updated["capacity"] == {"total": 150, "remaining": 150}
    assert updated["price"] == {"amount": "22.50", "currency": "EUR"}


def test_an_update_leaving_out_price_and_capacity_keeps_them_and_turns_online_payment_on(
    admin: Admin,
) -> None:
    event = admin.create(admin.venue(), categories=THREE)

    response = admin.put(event, name="Renamed festival", onlinePayment=True)

    assert response.status_code == 200, response.get_data(as_text=True)
    updated = response.get_json()
    assert updated["name"] == "Renamed festival"
    assert updated["onlinePayment"] is True
    assert updated["categories"] == event["categories"]
    assert (updated["price"], updated["capacity"]) == (event["price"], event["capacity"])


@pytest.mark.parametrize(
    "fields",
    [
        {"price": {"amount": "30", "currency": "GBP"}},
        {"price": {"amount": "25", "currency": "EUR"}},
        {"capacity": 3000},
    ],
)
def test_price_or_capacity_of_an_event_with_several_categories_is_a_409(
    admin: Admin, assert_problem: Problem, fields: dict[str, Any]
) -> None:
    event = admin.create(admin.venue(), categories=THREE)

    body = assert_problem(admin.put(event, name="Not renamed", **fields), 409, "conflict")

    assert "3 categories" in body["detail"]
    assert admin.client.get(f"/events/{event['id']}").get_json() == event


def test_restating_the_price_and_capacity_of_an_event_with_several_categories_is_accepted(
    admin: Admin,
) -> None:
    event = admin.create(admin.venue(), categories=THREE)
    response = admin.put(event, price={"amount": "25.00", "currency": "GBP"}, capacity=2850)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["categories"] == event["categories"]


def test_categories_cannot_be_changed_by_an_update(admin: Admin, assert_problem: Problem) -> None:
    event = admin.create(admin.venue(), categories=THREE)
    assert_problem(admin.put(event, categories=THREE[:1]), 422, "validation-failed", "categories")


def test_category_remaining_and_status_follow_its_own_shards(
    own_db: Db, event_client: FlaskClient, auth: Auth
) -> None:
    """Seats sold by hand in a database of the test's own: the VIP category sells out alone."""
    admin = Admin(event_client, auth)
    event = admin.create(admin.venue(), categories=THREE)
    vip = event["categories"][2]["id"]
    standing = event["categories"][0]["id"]
    own_db.execute("UPDATE event_inventory SET sold = capacity WHERE category_id = %s", (vip,))
    own_db.execute(
        "UPDATE event_inventory SET sold = 7 WHERE category_id = %s AND shard = 1", (standing,)
    )

    shown = admin.client.get(f"/events/{event['id']}").get_json()

    assert _summary(shown) == [
        ("Standing", "25.00", 2000, 1993, "ON_SALE"),
        ("Seated", "40.00", 800, 800, "ON_SALE"),
        ("VIP", "90.00", 50, 0, "SOLD_OUT"),
    ]
    assert shown["status"] == "ON_SALE"
    assert shown["capacity"] == {"total": 2850, "remaining": 2793}

    # A single-category event: resized with its category (the database's guard agrees).
    single = admin.create(admin.venue(), price={"amount": "5", "currency": "GBP"}, capacity=40)
    own_db.execute("UPDATE event_inventory SET sold = 30 WHERE event_id = %s", (single["id"],))
    refused = admin.put(single, capacity=29)
    assert refused.status_code == 409
    resized = admin.put(single, capacity=30).get_json()
    assert _summary(resized) == [("General admission", "5.00", 30, 0, "SOLD_OUT")]
    assert resized["status"] == "SOLD_OUT"


def test_the_database_refuses_a_category_whose_shards_do_not_add_up(scratch_db: Any) -> None:
    """R__inventory.sql's deferred triggers, for any writer (not only the application)."""
    with scratch_db.connect() as conn:
        venue = uuid.uuid4()
        conn.execute(
            "INSERT INTO venue (id, name, address, city, capacity) VALUES (%s, 'V', 'a', 'c', 900)",
            (venue,),
        )

        def add(event: uuid.UUID, vip_shard_capacity: int) -> None:
            with conn.transaction():
                conn.execute(
                    """INSERT INTO event (id, venue_id, name, description, starts_at,
                                          ticket_price, currency, capacity)
                       VALUES (%s, %s, 'E', '', now() + interval '30 days', 25, 'GBP', 150)""",
                    (event, venue),
                )
                ids = [uuid.uuid4(), uuid.uuid4()]
                conn.execute(
                    """INSERT INTO ticket_category (id, event_id, name, price, capacity, position)
                       VALUES (%s, %s, 'Standing', 25, 100, 0), (%s, %s, 'VIP', 90, 50, 1)""",
                    (ids[0], event, ids[1], event),
                )
                conn.execute(
                    """INSERT INTO event_inventory (event_id, shard, capacity, category_id)
                       VALUES (%s, 0, %s, %s), (%s, 1, %s, %s)""",
                    (event, 150 - vip_shard_capacity, ids[0], event, vip_shard_capacity, ids[1]),
                )

        good = uuid.uuid4()
        add(good, 50)  # commits: 100 + 50, categories 100 + 50, event 150
        bad = uuid.uuid4()
        with pytest.raises(psycopg.errors.CheckViolation, match="category"):
            add(bad, 40)  # shards still add up to the event's 150, but not per category
        found = conn.execute("SELECT id FROM event WHERE id = ANY(%s)", ([good, bad],)).fetchall()
        assert found == [(good,)]
