"""Integration tests against the local Keycloak and its `boxoffice` dev realm (`stack/boxo up`)."""

from __future__ import annotations

import os
from typing import Any

import jwt
import pytest
import requests

pytestmark = pytest.mark.integration

DEMO_USERS = {
    # username: (fixed id = token sub, dev password, realm roles that must be present)
    "alice": ("a11ce000-0000-4000-8000-000000000001", "alice-dev-password", {"customer"}),
    "bob": ("b0b00000-0000-4000-8000-000000000002", "bob-dev-password", {"customer"}),
    "carol": ("ca201000-0000-4000-8000-000000000003", "carol-dev-password", {"customer"}),
    "olivia": (
        "011f1a00-0000-4000-8000-000000000004",
        "olivia-dev-password",
        {"customer", "admin"},
    ),
}


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack with `stack/boxo up` and export its environment "
            "(`set -a; . .state/env; set +a`, or `make test`)",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="module")
def oidc() -> dict[str, str]:
    return {
        "keycloak_url": _env("BOXOFFICE_KEYCLOAK_URL"),
        "issuer": _env("BOXOFFICE_OIDC_ISSUER"),
        "audience": _env("BOXOFFICE_OIDC_AUDIENCE"),
        "client_id": _env("BOXOFFICE_OIDC_CLIENT_ID"),
    }


@pytest.fixture(scope="module")
def discovery(oidc: dict[str, str]) -> dict[str, Any]:
    response = requests.get(f"{oidc['issuer']}/.well-known/openid-configuration", timeout=10)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="module")
def jwks_client(discovery: dict[str, Any]) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(discovery["jwks_uri"])


def _password_grant(
    discovery: dict[str, Any], client_id: str, username: str, password: str
) -> requests.Response:
    return requests.post(
        discovery["token_endpoint"],
        data={
            "grant_type": "password",
            "client_id": client_id,
            "username": username,
            "password": password,
            "scope": "openid",
        },
        timeout=15,
    )


def test_discovery_document_names_the_configured_issuer(
    oidc: dict[str, str], discovery: dict[str, Any]
) -> None:
    assert discovery["issuer"] == oidc["issuer"]
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]


@pytest.mark.parametrize("username", sorted(DEMO_USERS))
def test_demo_user_gets_signed_access_token_for_the_api(
    username: str,
    oidc: dict[str, str],
    discovery: dict[str, Any],
    jwks_client: jwt.PyJWKClient,
) -> None:
    user_id, password, roles = DEMO_USERS[username]

    response = _password_grant(discovery, oidc["client_id"], username, password)

    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    signing_key = jwks_client.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience=oidc["audience"],
        issuer=oidc["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert claims["iss"] == oidc["issuer"]
    aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    assert oidc["audience"] in aud
    assert claims["sub"] == user_id
    assert claims["typ"] == "Bearer"
    assert claims["azp"] == oidc["client_id"]
    assert claims["preferred_username"] == username
    assert claims["email"] == f"{username}@example.test"
    assert roles <= set(claims["realm_access"]["roles"])


def test_customer_token_does_not_carry_the_admin_role(
    oidc: dict[str, str], discovery: dict[str, Any]
) -> None:
    _, password, _ = DEMO_USERS["alice"]
    response = _password_grant(discovery, oidc["client_id"], "alice", password)
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert "admin" not in claims["realm_access"]["roles"]


def test_wrong_password_is_refused(oidc: dict[str, str], discovery: dict[str, Any]) -> None:
    response = _password_grant(discovery, oidc["client_id"], "alice", "not-alice-password")

    # RFC 6749 5.2: 400 invalid_grant. Keycloak answered 401 before 26.6 (keycloak/keycloak#46528).
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.json()


def test_api_client_cannot_log_users_in(oidc: dict[str, str], discovery: dict[str, Any]) -> None:
    _, password, _ = DEMO_USERS["alice"]

    response = _password_grant(discovery, oidc["audience"], "alice", password)

    assert response.status_code in (400, 401)
    assert "access_token" not in response.json()
