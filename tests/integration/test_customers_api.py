"""Customer profiles (get_customer) through the real functions-framework entrypoint, against the
real PostgreSQL and access tokens issued by the real Keycloak.

Identity always comes from the token. Demo data (db/demo/demo.sql): alice, bob and olivia have
profiles, carol has none. A test that changes alice's profile puts it back; the registration test
removes carol's profile before and after, so carol is left as the demo data has her.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient

pytestmark = pytest.mark.integration

ALICE_CUSTOMER = "c0000000-0000-4000-8000-000000000001"
BOB_CUSTOMER = "c0000000-0000-4000-8000-000000000002"
CAROL_SUBJECT = "ca201000-0000-4000-8000-000000000003"

Auth = Callable[[str], dict[str, str]]
Problem = Callable[..., dict[str, Any]]

ALICE_PROFILE: dict[str, Any] = {
    "id": ALICE_CUSTOMER,
    "name": "Alice Archer",
    "email": "alice@example.test",
    "address": {
        "line1": "3 Orchard Row",
        "line2": "",
        "postalCode": "BS1 4AA",
        "city": "Bristol",
        "country": "GB",
    },
}


def _input(profile: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in profile.items() if k != "id"}


@pytest.fixture
def alice_restored(customer_client: FlaskClient, auth: Auth) -> Iterator[dict[str, Any]]:
    """Alice's profile as the demo data has it (put first, which also heals an interrupted run),
    and put back after the test whatever the test did to it."""
    demo = _input(ALICE_PROFILE)
    before = customer_client.put("/customers/me", json=demo, headers=auth("alice"))
    assert before.status_code == 200, before.get_data(as_text=True)
    assert before.get_json() == ALICE_PROFILE
    yield ALICE_PROFILE
    restored = customer_client.put("/customers/me", json=demo, headers=auth("alice"))
    assert restored.status_code == 200, restored.get_data(as_text=True)


def _delete_carol(db: psycopg.Connection[Any]) -> None:
    db.execute("DELETE FROM customer WHERE subject = %s", (CAROL_SUBJECT,))


@pytest.fixture
def carol_unregistered(db: psycopg.Connection[Any]) -> Iterator[None]:
    _delete_carol(db)
    yield
    _delete_carol(db)


def test_a_customer_reads_their_own_profile(customer_client: FlaskClient, auth: Auth) -> None:
    response = customer_client.get("/customers/me", headers=auth("alice"))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.get_json()["id"] == ALICE_CUSTOMER
    assert response.get_json()["email"] == ALICE_PROFILE["email"]
    olivia = customer_client.get("/customers/me", headers=auth("olivia")).get_json()
    assert olivia["name"] == "Olivia Ops"


def test_profile_reads_without_a_token_are_401_with_a_bearer_challenge(
    customer_client: FlaskClient, assert_problem: Problem
) -> None:
    for path in ("/customers/me", f"/customers/{BOB_CUSTOMER}"):
        response = customer_client.get(path)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="boxoffice"')
    response = customer_client.put("/customers/me", json=_input(ALICE_PROFILE))
    assert_problem(response, 401, "unauthorized")


def test_a_customer_updates_their_profile(
    customer_client: FlaskClient, auth: Auth, alice_restored: dict[str, Any]
) -> None:
    changed = _input(alice_restored)
    changed["name"] = f"Alice {uuid.uuid4().hex[:6]}"
    changed["address"] = {**changed["address"], "line2": "Flat 2"}
    response = customer_client.put("/customers/me", json=changed, headers=auth("alice"))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.get_json() == {"id": ALICE_CUSTOMER, **changed}
    got = customer_client.get("/customers/me", headers=auth("alice")).get_json()
    assert got == {"id": ALICE_CUSTOMER, **changed}


@pytest.mark.parametrize("identity", ["id", "subject", "customerId"])
def test_identity_in_the_body_is_rejected_as_an_unknown_field(
    customer_client: FlaskClient,
    auth: Auth,
    assert_problem: Problem,
    alice_restored: dict[str, Any],
    identity: str,
) -> None:
    body = {**_input(alice_restored), "name": "Not Alice", identity: BOB_CUSTOMER}
    response = customer_client.put("/customers/me", json=body, headers=auth("alice"))
    problem = assert_problem(response, 422, "validation-failed", identity)
    assert problem["errors"][0]["message"] == "unknown field"
    assert customer_client.get("/customers/me", headers=auth("alice")).get_json() == alice_restored
    bob = customer_client.get(f"/customers/{BOB_CUSTOMER}", headers=auth("olivia")).get_json()
    assert bob["name"] == "Bob Baker"


def test_carol_registers_with_201_then_updates_with_200(
    customer_client: FlaskClient, auth: Auth, assert_problem: Problem, carol_unregistered: None
) -> None:
    carol = auth("carol")
    assert_problem(customer_client.get("/customers/me", headers=carol), 404, "not-found")
    profile = {
        "name": "Carol Cooper",
        "email": "carol@example.test",
        "address": {
            "line1": "7 Canal St",
            "postalCode": "LS1 1AA",
            "city": "Leeds",
            "country": "GB",
        },
    }
    first = customer_client.put("/customers/me", json=profile, headers=carol)
    assert first.status_code == 201, first.get_data(as_text=True)
    created = first.get_json()
    assert created["name"] == "Carol Cooper"
    assert created["address"]["line2"] == ""
    assert customer_client.get("/customers/me", headers=carol).get_json() == created

    second = customer_client.put(
        "/customers/me", json={**profile, "email": "carol@elsewhere.test"}, headers=carol
    )
    assert second.status_code == 200
    assert second.get_json() == {**created, "email": "carol@elsewhere.test"}
    # Olivia (admin) finds carol under the same id.
    by_id = customer_client.get(f"/customers/{created['id']}", headers=auth("olivia"))
    assert by_id.get_json()["email"] == "carol@elsewhere.test"


def _without_id(problem: dict[str, Any], customer_id: str) -> dict[str, Any]:
    return {k: str(v).replace(customer_id, "<id>") for k, v in problem.items()}


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_customer_by_id_is_404_for_a_non_admin_whether_or_not_it_exists(
    customer_client: FlaskClient, auth: Auth, assert_problem: Problem, user: str
) -> None:
    missing = str(uuid.uuid4())
    problems = []
    for customer_id in (BOB_CUSTOMER, ALICE_CUSTOMER, missing):
        response = customer_client.get(f"/customers/{customer_id}", headers=auth(user))
        problems.append(_without_id(assert_problem(response, 404, "not-found"), customer_id))
    assert problems[0] == problems[1] == problems[2]


def test_an_admin_reads_any_customer_by_id_and_gets_404_for_unknown_ids(
    customer_client: FlaskClient, auth: Auth, assert_problem: Problem
) -> None:
    response = customer_client.get(f"/customers/{BOB_CUSTOMER}", headers=auth("olivia"))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    bob = response.get_json()
    assert bob["id"] == BOB_CUSTOMER
    assert bob["name"] == "Bob Baker"
    assert bob["address"]["country"] == "GB"
    missing = customer_client.get(f"/customers/{uuid.uuid4()}", headers=auth("olivia"))
    assert_problem(missing, 404, "not-found")
    malformed = customer_client.get("/customers/not-a-uuid", headers=auth("olivia"))
    assert_problem(malformed, 400, "invalid-parameter", "customerId")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": 1}, "name"),  # wrong type
        ({"email": ["a@b.test"]}, "email"),
        ({"address": "3 Orchard Row"}, "address"),
        ({"nickname": "Al"}, "nickname"),  # unknown fields
        ({"address": {**ALICE_PROFILE["address"], "floor": 2}}, "address.floor"),
        ({"name": ""}, "name"),  # out of range
        ({"name": "n" * 201}, "name"),
        ({"email": "not-an-email"}, "email"),
        ({"address": {**ALICE_PROFILE["address"], "country": "GBR"}}, "address.country"),
        ({"address": {**ALICE_PROFILE["address"], "postalCode": "x" * 21}}, "address.postalCode"),
    ],
)
def test_invalid_profiles_are_422_problems_naming_the_field(
    customer_client: FlaskClient,
    auth: Auth,
    assert_problem: Problem,
    alice_restored: dict[str, Any],
    change: dict[str, Any],
    field: str,
) -> None:
    body = {**_input(alice_restored), **change}
    response = customer_client.put("/customers/me", json=body, headers=auth("alice"))
    assert_problem(response, 422, "validation-failed", field)
    assert customer_client.get("/customers/me", headers=auth("alice")).get_json() == alice_restored


def test_a_profile_without_a_required_field_is_422_naming_it(
    customer_client: FlaskClient, auth: Auth, assert_problem: Problem
) -> None:
    body = _input(ALICE_PROFILE)
    del body["email"]
    response = customer_client.put("/customers/me", json=body, headers=auth("alice"))
    assert_problem(response, 422, "validation-failed", "email")
    address = {k: v for k, v in ALICE_PROFILE["address"].items() if k != "city"}
    response = customer_client.put(
        "/customers/me",
        json={**body, "email": "a@b.test", "address": address},
        headers=auth("alice"),
    )
    assert_problem(response, 422, "validation-failed", "address.city")


def test_malformed_json_is_400_and_a_non_json_body_is_415(
    customer_client: FlaskClient, auth: Auth, assert_problem: Problem
) -> None:
    headers = auth("alice")
    broken = customer_client.put(
        "/customers/me", data=b'{"name": "Alice"', content_type="application/json", headers=headers
    )
    assert_problem(broken, 400, "malformed-json")
    text = customer_client.put(
        "/customers/me", data="name=Alice", content_type="text/plain", headers=headers
    )
    assert_problem(text, 415, "unsupported-media-type")
