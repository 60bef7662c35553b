"""Shared fixtures. Integration and e2e tests talk to the real local stack (`make up`); its
connection details come from the environment that `make test` exports from `.state/env`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# tests/floors.py: `--floors tests/floors.toml` (make test) fails a run in which a group of tests
# passed fewer than its floor; pytester runs pytest inside a test (the floors' own test).
pytest_plugins = ["floors", "pytester"]

# Property-based tests are reproducible: the same examples on every run and machine (profile
# `ci`, the default). HYPOTHESIS_PROFILE=explore draws fresh ones, to look for new failures.
settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Dev-only passwords from stack/keycloak/realm-boxoffice.json (documented in the README).
DEMO_USERS = {
    "alice": ("alice-dev-password", "a11ce000-0000-4000-8000-000000000001"),
    "bob": ("bob-dev-password", "b0b00000-0000-4000-8000-000000000002"),
    "carol": ("carol-dev-password", "ca201000-0000-4000-8000-000000000003"),
    "olivia": ("olivia-dev-password", "011f1a00-0000-4000-8000-000000000004"),
    "sam": ("sam-dev-password", "5ca00000-0000-4000-8000-000000000005"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)


def require_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack with `make up` and run tests with `make test`",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def token_for() -> Callable[..., dict[str, str]]:
    """Password-grant tokens from the real Keycloak, per demo user (cached for the session)."""
    issuer = require_env("BOXOFFICE_OIDC_ISSUER")
    client_id = require_env("BOXOFFICE_OIDC_CLIENT_ID")
    cache: dict[tuple[str, str], dict[str, str]] = {}

    def get(user: str, scope: str = "openid") -> dict[str, str]:
        if (user, scope) not in cache:
            password, _ = DEMO_USERS[user]
            response = requests.post(
                f"{issuer}/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": client_id,
                    "username": user,
                    "password": password,
                    "scope": scope,
                },
                timeout=10,
            )
            response.raise_for_status()
            cache[(user, scope)] = response.json()
        return cache[(user, scope)]

    return get


@pytest.fixture(scope="session")
def access_token(token_for: Callable[..., dict[str, str]]) -> Callable[[str], str]:
    return lambda user: token_for(user)["access_token"]


@pytest.fixture(scope="session")
def stack_env() -> Callable[[str], str]:
    """`stack_env(NAME)`: a variable of the running stack's environment, or a clear failure."""
    return require_env
