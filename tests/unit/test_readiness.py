"""Readiness of a function that publishes events (create_booking): without Kafka bootstrap
servers its bookings would never be confirmed, so /readyz is 503 problem+json with the reason;
the database is not even asked. Functions that publish nothing are unaffected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest

from boxoffice import bootstrap
from boxoffice.config import Settings
from boxoffice.errors import ConfigurationError, ServiceUnavailable

BASE = {"BOXOFFICE_DATABASE_URL": "postgresql://x", "BOXOFFICE_OIDC_ISSUER": "http://i"}
FLASK = flask.Flask(__name__)


ROOT = Path(__file__).resolve().parents[2]


class FakeDatabase:
    """Its ping answers 503 `pinged`: readiness got as far as the database."""

    def ping(self) -> None:
        raise ServiceUnavailable("pinged")


@pytest.fixture
def use_env() -> Iterator[object]:
    previous = bootstrap.container()

    def swap(**env: str) -> bootstrap.Container:
        container = bootstrap.Container(Settings.from_env({**BASE, **env}))
        container.__dict__["database"] = FakeDatabase()  # the cached_property, pre-filled
        bootstrap.set_container(container)
        return container

    yield swap
    bootstrap.set_container(previous)


def ready(app_name: str, publishes_events: bool) -> tuple[int, dict[str, str]]:
    app = bootstrap.function_app(app_name, publishes_events=publishes_events)
    with FLASK.test_request_context("/readyz"):
        response = app.handle(flask.request)
    assert response.mimetype == "application/problem+json"
    return response.status_code, json.loads(response.get_data(as_text=True))


@pytest.mark.parametrize("servers", ["", " , "])
def test_a_publishing_function_without_kafka_is_not_ready_and_says_why(
    use_env: object, servers: str
) -> None:
    use_env(BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS=servers)  # type: ignore[operator]
    status, problem = ready("create_booking", publishes_events=True)
    assert status == 503
    assert problem["type"].endswith("/service-misconfigured")
    assert "BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS is empty" in problem["detail"]
    assert "never be confirmed" in problem["detail"]


def test_a_publishing_function_with_kafka_configured_goes_on_to_the_database(
    use_env: object,
) -> None:
    use_env(BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS="kafka:9092")  # type: ignore[operator]
    status, problem = ready("create_booking", publishes_events=True)
    assert (status, problem["detail"]) == (503, "pinged")


def test_a_function_that_publishes_nothing_does_not_need_kafka(use_env: object) -> None:
    use_env(BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS="")  # type: ignore[operator]
    status, problem = ready("get_event", publishes_events=False)
    assert (status, problem["detail"]) == (503, "pinged")  # only the database is asked


def test_create_booking_is_built_as_a_publishing_function() -> None:
    main = ROOT / "functions" / "create_booking" / "main.py"
    assert 'function_app("create_booking", publishes_events=True)' in main.read_text()


def test_the_check_itself_names_the_setting() -> None:
    container = bootstrap.Container(Settings.from_env(BASE))
    with pytest.raises(ConfigurationError, match="BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS"):
        container.check_event_publishing()
