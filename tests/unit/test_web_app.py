"""FunctionApp: routing, built-in probes and metrics, and the one error mapping."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask import Response

from boxoffice import errors, metrics
from boxoffice.domain.identity import Principal
from boxoffice.web.app import FunctionApp, RequestContext, json_response

FLASK = flask.Flask(__name__)
BASE = "https://tickets.example/problems/"


def nobody(request: flask.Request) -> Principal:
    raise errors.Unauthorized("an access token is required")


def make_app(
    name: str = "unit_app",
    readiness: Callable[[], None] | None = None,
    authenticate: Callable[[flask.Request], Principal] = nobody,
) -> FunctionApp:
    app = FunctionApp(
        name, authenticate=authenticate, readiness=readiness, problem_base=lambda: BASE
    )

    @app.route("/things/<thing_id>", methods=["GET", "PUT"])
    def get_thing(ctx: RequestContext, thing_id: str) -> Response:
        return json_response({"id": thing_id})

    @app.route("/conflict", methods=["POST"])
    def conflict(ctx: RequestContext) -> Response:
        raise errors.SoldOut("only 2 tickets left", remaining=2)

    @app.route("/crash", methods=["GET"])
    def crash(ctx: RequestContext) -> Response:
        raise RuntimeError("secret internals: password=hunter2")

    @app.route("/mine", methods=["GET"])
    def mine(ctx: RequestContext) -> Response:
        return json_response({"subject": ctx.principal("customer").subject})

    return app


def call(app: FunctionApp, path: str, method: str = "GET", **kwargs: Any) -> Response:
    with FLASK.test_request_context(path, method=method, **kwargs):
        return app.handle(flask.request)


def body(response: Response) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(response.get_data(as_text=True))
    return parsed


def assert_problem(response: Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    problem = body(response)
    assert problem["type"] == BASE + slug
    assert problem["status"] == status
    return problem


def test_matching_route_calls_its_handler_with_path_parameters() -> None:
    response = call(make_app(), "/things/42")
    assert response.status_code == 200
    assert body(response) == {"id": "42"}


def test_trailing_slash_matches_the_same_route() -> None:
    assert call(make_app(), "/things/42/").status_code == 200


def test_unknown_route_is_a_404_problem() -> None:
    problem = assert_problem(call(make_app(), "/nowhere"), 404, "not-found")
    assert problem["instance"] == "/nowhere"


def test_wrong_method_is_a_405_problem_listing_allowed_methods() -> None:
    response = call(make_app(), "/things/42", method="DELETE")
    assert_problem(response, 405, "method-not-allowed")
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "PUT"} <= allowed
    assert "DELETE" not in allowed


def test_boxoffice_error_from_a_handler_maps_to_its_status_and_slug() -> None:
    problem = assert_problem(call(make_app(), "/conflict", method="POST"), 409, "sold-out")
    assert problem["detail"] == "only 2 tickets left"
    assert problem["remaining"] == 2


def test_unexpected_exception_is_a_500_problem_without_internals() -> None:
    response = call(make_app(), "/crash")
    problem = assert_problem(response, 500, "internal-error")
    text = response.get_data(as_text=True)
    assert "hunter2" not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert problem["detail"] == "unexpected server error"


def test_unauthorized_sets_a_bearer_challenge() -> None:
    response = call(make_app(), "/mine")
    assert_problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="boxoffice"')
    assert "error=" not in response.headers["WWW-Authenticate"]


def test_invalid_token_challenge_carries_error_and_description() -> None:
    def bad_token(request: flask.Request) -> Principal:
        raise errors.InvalidToken('token has "expired"')

    response = call(make_app(authenticate=bad_token), "/mine")
    assert_problem(response, 401, "invalid-token")
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in challenge
    assert "error_description=\"token has 'expired'\"" in challenge


def test_missing_role_is_a_403_with_insufficient_scope() -> None:
    def visitor(request: flask.Request) -> Principal:
        return Principal("sub", frozenset({"visitor"}))

    response = call(make_app(authenticate=visitor), "/mine")
    assert_problem(response, 403, "forbidden")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_authenticated_caller_with_the_role_reaches_the_handler() -> None:
    def customer(request: flask.Request) -> Principal:
        return Principal("alice", frozenset({"customer"}))

    assert body(call(make_app(authenticate=customer), "/mine")) == {"subject": "alice"}


@pytest.mark.parametrize("path", ["/healthz", "/_/health"])
def test_liveness_is_ok_without_consulting_readiness(path: str) -> None:
    def broken() -> None:
        raise AssertionError("liveness must not run the readiness check")

    response = call(make_app(readiness=broken), path)
    assert response.status_code == 200
    assert body(response) == {"status": "ok"}


@pytest.mark.parametrize("path", ["/readyz", "/_/ready"])
def test_readiness_runs_the_check_and_is_ready_when_it_passes(path: str) -> None:
    checks: list[str] = []
    response = call(make_app(readiness=lambda: checks.append("db")), path)
    assert response.status_code == 200
    assert body(response) == {"status": "ready"}
    assert checks == ["db"]


def test_readiness_maps_service_unavailable_to_503_with_retry_after() -> None:
    def database_down() -> None:
        raise errors.ServiceUnavailable("database is unavailable", retry_after=2)

    response = call(make_app(readiness=database_down), "/readyz")
    assert_problem(response, 503, "service-unavailable")
    assert response.headers["Retry-After"] == "2"


def test_readiness_without_a_check_is_ready() -> None:
    assert call(make_app(readiness=None), "/readyz").status_code == 200


def test_problem_type_falls_back_to_the_default_base_when_configuration_is_broken() -> None:
    def broken_base() -> str:
        raise errors.ConfigurationError("BOXOFFICE_DATABASE_URL is required")

    app = FunctionApp("unit_app", authenticate=nobody, problem_base=broken_base)
    problem = body(call(app, "/nowhere"))
    assert problem["type"] == "https://boxoffice.example/problems/not-found"


def test_metrics_expose_request_counts_by_route_template_after_a_request() -> None:
    app = make_app(name="unit_metrics_app")
    call(app, "/things/42")
    call(app, "/nowhere")

    response = call(app, "/metrics")

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert "boxoffice_http_requests_total" in text
    ok = ("boxoffice_http_requests_total", {"function": "unit_metrics_app", "method": "GET"})
    sample = metrics.REGISTRY.get_sample_value
    assert sample(ok[0], {**ok[1], "route": "/things/<thing_id>", "status": "200"}) == 1.0
    assert sample(ok[0], {**ok[1], "route": "unmatched", "status": "404"}) == 1.0
    assert 'route="/things/<thing_id>"' in text
    assert "/things/42" not in text  # the route template, never the raw path (cardinality)


def _app_with_many_routes() -> FunctionApp:
    app = FunctionApp("burst", authenticate=nobody)

    def handler(ctx: RequestContext, **params: Any) -> Response:
        return json_response({k: str(v) for k, v in params.items()})

    for i in range(30):
        app.route(f"/things{i}/<item_id>/part/<int:n>", methods=["GET"])(handler)
    return app


def _first_requests_at_once(app: FunctionApp, callers: int) -> list[int]:
    start = threading.Barrier(callers)
    statuses: list[int] = []

    def first_request() -> None:
        start.wait()
        statuses.append(call(app, "/things7/abc/part/1").status_code)

    threads = [threading.Thread(target=first_request) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def test_concurrent_first_requests_build_the_routes_once_and_all_succeed() -> None:
    """The route map is compiled on the first request; werkzeug's compilation is not thread-safe,
    so a burst of first requests (a cold function under load) must not compile it concurrently."""
    for _ in range(20):
        assert _first_requests_at_once(_app_with_many_routes(), 12) == [200] * 12
