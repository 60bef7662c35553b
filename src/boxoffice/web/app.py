"""A function's HTTP application: routes, built-in probes and metrics, one error mapping.

Each function module builds one `FunctionApp`, registers its routes, and hands every request
from functions-framework to `FunctionApp.handle`. Route matching is werkzeug's; errors are
mapped to problem+json by `boxoffice.web.problems` and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import flask
from flask import Request, Response
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
from werkzeug.exceptions import NotFound as WzNotFound
from werkzeug.routing import Map, Rule

from boxoffice import errors, metrics
from boxoffice.web import problems
from boxoffice.web.auth import Principal

log = logging.getLogger("boxoffice.web")

Handler = Callable[..., Response]
ReadinessCheck = Callable[[], None]

LIVENESS_PATHS = ("/healthz", "/_/health")
READINESS_PATHS = ("/readyz", "/_/ready")


@dataclass
class RequestContext:
    """What a route handler gets: the request, and the caller once authenticated."""

    request: Request
    app: FunctionApp
    _principal: Principal | None = field(default=None, init=False)

    def principal(self, role: str | None = None) -> Principal:
        """The verified caller (401 without a valid token; 403 without `role`)."""
        if self._principal is None:
            self._principal = self.app.authenticate(self.request)
        if role is not None and role not in self._principal.roles:
            raise errors.Forbidden(f"the '{role}' role is required")
        return self._principal

    def optional_principal(self) -> Principal | None:
        if "Authorization" not in self.request.headers:
            return None
        return self.principal()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        json.dumps(body, separators=(",", ":"), default=str),
        status=status,
        mimetype="application/json",
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def cacheable_json(ctx: RequestContext, body: Any, max_age: int, stale: int = 0) -> Response:
    """A public, short-lived cacheable JSON response with a strong ETag; 304 on a match. With
    `stale`, a shared cache may answer with it for that many seconds past `max_age` while it
    refreshes it (RFC 5861 stale-while-revalidate): the bound on how old a cached answer gets."""
    payload = json.dumps(body, separators=(",", ":"), default=str).encode()
    etag = hashlib.sha256(payload).hexdigest()[:32]
    cache = f"public, max-age={max_age}"
    if stale > 0:
        cache += f", stale-while-revalidate={stale}"
    headers = {"ETag": f'"{etag}"', "Cache-Control": cache}
    if etag in ctx.request.if_none_match:
        response = Response(status=304)
        for name, value in headers.items():
            response.headers[name] = value
        return response
    response = Response(payload, status=200, mimetype="application/json")
    for name, value in headers.items():
        response.headers[name] = value
    return response


class FunctionApp:
    def __init__(
        self,
        name: str,
        authenticate: Callable[[Request], Principal],
        readiness: ReadinessCheck | None = None,
        problem_base: Callable[[], str] = lambda: problems.DEFAULT_BASE,
    ) -> None:
        self.name = name
        self.authenticate = authenticate
        self._readiness = readiness
        self._problem_base = problem_base
        self._rules: list[Rule] = []
        self._handlers: dict[str, Handler] = {}
        self._map: Map | None = None
        self._map_lock = threading.Lock()
        # functions-framework's own Flask routes answer some requests before `handle` sees them
        # (its catch-all `<path:path>` does not match a path with a line feed, `/events/%0A`):
        # with werkzeug's HTML error pages, unless they are problems too. While functions-framework
        # loads the function's module (in its app context) this registers on its app; elsewhere
        # (e.g. a FunctionApp built by a test) it does nothing. Not `functions_framework.
        # errorhandler`: that names the last app functions-framework made, in any later context.
        if flask.has_app_context():
            flask.current_app.register_error_handler(HTTPException, self._framework_error)

    def route(self, path: str, methods: list[str]) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            endpoint = f"{handler.__name__}:{path}"
            self._rules.append(Rule(path, methods=methods, endpoint=endpoint))
            self._handlers[endpoint] = handler
            self._map = None
            return handler

        return register

    def _adapter_map(self) -> Map:
        # Built on the first request (compiling the rules is not free at cold start), once:
        # werkzeug's rule compilation is not safe to run from several threads at a time.
        found = self._map
        if found is None:
            with self._map_lock:
                if self._map is None:
                    self._map = Map(self._rules, strict_slashes=False, merge_slashes=False)
                found = self._map
        return found

    def handle(self, request: Request) -> Response:
        path = request.path
        if path in LIVENESS_PATHS:
            return json_response({"status": "ok"})
        if path == "/metrics":
            data, content_type = metrics.exposition()
            return Response(data, mimetype=content_type.split(";")[0], content_type=content_type)
        started = time.perf_counter()
        route = "unmatched"
        try:
            if path in READINESS_PATHS:
                route = path
                response = self._ready()
            else:
                adapter = self._adapter_map().bind("localhost")
                endpoint, params = adapter.match(path, method=request.method)
                route = str(endpoint).split(":", 1)[1]
                response = self._handlers[str(endpoint)](RequestContext(request, self), **params)
        except WzNotFound:
            response = self._problem(errors.NotFound(f"no route for {path}"), request)
        except WzMethodNotAllowed as exc:
            response = self._problem(
                errors.MethodNotAllowed(f"{request.method} is not allowed on {path}"), request
            )
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or []))
        except errors.BoxofficeError as exc:
            if exc.status >= 500:
                log.warning("%s %s -> %s: %s", request.method, path, exc.status, exc.detail)
            response = self._problem(exc, request)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, path)
            response = self._problem(errors.BoxofficeError("unexpected server error"), request)
        metrics.HTTP_REQUESTS.labels(
            self.name, route, request.method, str(response.status_code)
        ).inc()
        metrics.HTTP_DURATION.labels(self.name, route, request.method).observe(
            time.perf_counter() - started
        )
        return response

    def _framework_error(self, exc: HTTPException) -> Response:
        request = flask.request
        error: errors.BoxofficeError
        if exc.code == 404:
            error = errors.NotFound(f"no route for {request.path}")
        elif exc.code == 405:
            error = errors.MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
        elif exc.code is not None and exc.code < 500:
            error = errors.BadRequest(exc.description or "")
        else:
            error = errors.BoxofficeError("unexpected server error")
        return self._problem(error, request)

    def _ready(self) -> Response:
        if self._readiness is not None:
            self._readiness()
        return json_response({"status": "ready"})

    def _problem(self, error: errors.BoxofficeError, request: Request) -> Response:
        try:
            base = self._problem_base()
        except errors.BoxofficeError:
            base = problems.DEFAULT_BASE
        response = problems.render(error, base, instance=request.path)
        if isinstance(error, errors.Unauthorized):
            code = "invalid_token" if isinstance(error, errors.InvalidToken) else ""
            challenge = 'Bearer realm="boxoffice"'
            if code:
                description = error.detail.replace('"', "'")
                challenge += f', error="{code}", error_description="{description}"'
            response.headers["WWW-Authenticate"] = challenge
        if isinstance(error, errors.Forbidden):
            response.headers["WWW-Authenticate"] = (
                'Bearer realm="boxoffice", error="insufficient_scope"'
            )
        return response
