"""Fixtures of the HTTP-level integration tests: the real function entrypoints (functions-framework
apps loaded from functions/<name>/main.py, called in-process through Flask's test client) against
the real PostgreSQL and Keycloak of the local stack, plus a local JWKS server and RSA key for the
token tests that need tokens Keycloak will not sign (expired, wrong issuer, ...).

Needs the local stack (`stack/boxo up`) and its environment (`set -a; . .state/env; set +a`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import functions_framework
import psycopg
import pytest
from flask.testing import FlaskClient
from support_databases import TEMPLATES, ScratchDatabase, scratch_database, template
from support_tokens import LocalJwks, LocalKey
from werkzeug.test import TestResponse

from boxoffice import bootstrap
from boxoffice.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PROBLEM_JSON = "application/problem+json"


def _require(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack (`stack/boxo up`) and export its environment "
            "(`set -a; . .state/env; set +a`)",
            pytrace=False,
        )
    return value


def _function_client(name: str) -> FlaskClient:
    _require("BOXOFFICE_DATABASE_URL")
    _require("BOXOFFICE_OIDC_ISSUER")
    source = ROOT / "functions" / name / "main.py"
    app = functions_framework.create_app(target="handler", source=str(source))  # type: ignore[no-untyped-call]
    client: FlaskClient = app.test_client()
    return client


@pytest.fixture(scope="session")
def event_client() -> FlaskClient:
    """The get_event function (catalogue), as functions-framework serves it."""
    return _function_client("get_event")


@pytest.fixture(scope="session")
def customer_client() -> FlaskClient:
    """The get_customer function, as functions-framework serves it."""
    return _function_client("get_customer")


@pytest.fixture(scope="session")
def room_client() -> FlaskClient:
    """The waiting_room function, as functions-framework serves it."""
    return _function_client("waiting_room")


@pytest.fixture(scope="session")
def auth(access_token: Callable[[str], str]) -> Callable[[str], dict[str, str]]:
    """`auth("alice")` -> an Authorization header with a real Keycloak access token."""
    return lambda user: {"Authorization": f"Bearer {access_token(user)}"}


def check_problem(
    response: TestResponse, status: int, slug: str | None = None, field: str | None = None
) -> dict[str, Any]:
    """Assert an RFC 9457 problem response; `field` must be named in its `errors`."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON, response.headers
    body: dict[str, Any] = json.loads(response.get_data(as_text=True))
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    if slug is not None:
        assert body["type"].endswith(f"/{slug}"), body
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, body
    return body


@pytest.fixture(scope="session")
def assert_problem() -> Callable[..., dict[str, Any]]:
    return check_problem


@pytest.fixture
def unique() -> str:
    """A fresh tag for names of data a test creates (the database persists between runs)."""
    return uuid.uuid4().hex[:10]


# -- the composition root ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    _require("BOXOFFICE_DATABASE_URL")
    _require("BOXOFFICE_OIDC_ISSUER")
    return Settings.from_env()


@pytest.fixture
def use_settings() -> Iterator[Callable[..., bootstrap.Container]]:
    """`use_settings(jwks_url=...)`: the functions' composition root swapped for one built from
    the environment's settings with these overrides; the original is restored afterwards."""
    previous = bootstrap.container()
    made: list[bootstrap.Container] = []

    def swap(**overrides: Any) -> bootstrap.Container:
        new = bootstrap.Container(dataclasses.replace(Settings.from_env(), **overrides))
        made.append(new)
        bootstrap.set_container(new)
        return new

    yield swap
    bootstrap.set_container(previous)
    for c in made:  # cached_properties: only what was ever started
        for worker in ("outbox_relay_worker", "document_worker"):
            if worker in c.__dict__:
                c.__dict__[worker].stop()
        if "database" in c.__dict__:
            c.database.close()


# -- a local signing key and JWKS server (support_tokens.py) -------------------------------------


@pytest.fixture(scope="session")
def local_key() -> LocalKey:
    return LocalKey.generate()


@pytest.fixture
def jwks_server() -> Iterator[Callable[[dict[str, Any]], LocalJwks]]:
    """`jwks_server(document)` starts a local JWKS server; all are stopped afterwards."""
    started: list[LocalJwks] = []

    def start(document: dict[str, Any]) -> LocalJwks:
        server = LocalJwks(document)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def now() -> int:
    return int(datetime.now(UTC).timestamp())


# Keycloak user ids (token `sub`) of the demo users, as in stack/keycloak/realm-boxoffice.json.
SUBJECTS = {
    "alice": "a11ce000-0000-4000-8000-000000000001",
    "bob": "b0b00000-0000-4000-8000-000000000002",
    "carol": "ca201000-0000-4000-8000-000000000003",
    "olivia": "011f1a00-0000-4000-8000-000000000004",
}


@pytest.fixture(scope="session")
def claims_for(base_settings: Settings) -> Callable[..., dict[str, Any]]:
    """`claims_for("alice", exp=...)`: access-token claims shaped like Keycloak's (overridable)."""

    def make(user: str, **overrides: Any) -> dict[str, Any]:
        t = now()
        claims: dict[str, Any] = {
            "iss": base_settings.oidc_issuer,
            "aud": base_settings.oidc_audience,
            "sub": SUBJECTS[user],
            "typ": "Bearer",
            "iat": t,
            "exp": t + 300,
            "jti": str(uuid.uuid4()),
            "preferred_username": user,
            "realm_access": {"roles": ["customer"]},
        }
        claims.update(overrides)
        return claims

    return make


@pytest.fixture
def db() -> Iterator[psycopg.Connection[Any]]:
    """A direct autocommit connection, for set-up and clean-up only (never for the behaviour
    under test, which goes through the entrypoints)."""
    with psycopg.connect(_require("BOXOFFICE_DATABASE_URL"), autocommit=True) as conn:
        yield conn


@pytest.fixture
def dead_url() -> str:
    """A JWKS URL on a loopback port that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/certs"


def pytest_sessionfinish() -> None:
    """The template databases (support_databases) go with the session that made them."""
    TEMPLATES.drop()


@pytest.fixture(scope="session")
def scratch_template() -> ScratchDatabase:
    """The session's database migrated by Flyway with the demo data (support_databases): what
    every `scratch_db` is copied from. Never written to."""
    return template(demo=True)


@pytest.fixture
def scratch_db(scratch_template: ScratchDatabase) -> Iterator[ScratchDatabase]:
    """A database of the test's own (a copy of the Flyway-migrated, demo-loaded template), for
    tests that write rows the functions never would. Dropped after the test, so the dev database
    stays consistent (`make test` ends with `stack/boxo verify` on it)."""
    with scratch_database("bx_test", demo=True) as db:
        yield db


@pytest.fixture
def dev_db() -> Iterator[psycopg.Connection[Any]]:
    """`db` of the dev database, for modules that override `db` with `own_db`."""
    with psycopg.connect(_require("BOXOFFICE_DATABASE_URL"), autocommit=True) as conn:
        yield conn


@pytest.fixture
def own_db(
    scratch_db: Any,
    use_settings: Callable[..., bootstrap.Container],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[psycopg.Connection[Any]]:
    """For tests that write rows the functions never would (bookings without seats or outbox
    rows, statuses set by hand): a database of the test's own (`scratch_db`),
    used by the in-process functions (container swapped) and by any function process the test
    starts (BOXOFFICE_DATABASE_URL). Kafka is switched off, so nothing it does is published to
    the stack's topics. Dropped afterwards: the dev database stays consistent."""
    monkeypatch.setenv("BOXOFFICE_DATABASE_URL", scratch_db.url)
    monkeypatch.setenv("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS", "")
    use_settings()
    with psycopg.connect(scratch_db.url, autocommit=True) as conn:
        yield conn
