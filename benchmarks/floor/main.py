"""The request path's floor (benchmark scenario `floor`): the same server
(boxoffice.processes.server: granian and the request queue), functions-framework and Flask as
every function, but none of Boxoffice's own code: `/constant` answers a fixed JSON body,
`/events/<id>` reads one event by its primary key through a psycopg pool (autocommit, as the
catalogue does) and answers it as JSON. What a catalogue read costs above this is ours to remove;
what this costs is the stack's. `/hold?s=` and `/spin?s=` hold a slot (scenario `refusal`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import functions_framework
from flask import Request, Response
from psycopg_pool import ConnectionPool

_pool: ConnectionPool[Any] | None = None
_lock = threading.Lock()


def _connection_pool() -> ConnectionPool[Any]:
    global _pool  # noqa: PLW0603 - one pool per process, built on first use
    with _lock:
        if _pool is None:
            _pool = ConnectionPool(
                os.environ["BOXOFFICE_DATABASE_URL"],
                min_size=1,
                max_size=int(os.environ.get("THREADS", "8")),
                kwargs={"autocommit": True},
                open=True,
            )
        return _pool


@functions_framework.http
def handler(request: Request) -> Response:
    path = request.path
    if path in ("/healthz", "/readyz"):
        return Response('{"status":"ok"}', mimetype="application/json")
    if path in ("/hold", "/spin"):
        # Benchmark scenario `refusal`: hold a slot for `s` seconds, sleeping (as a request
        # waiting on PostgreSQL: the interpreter lock free) or computing (pure Python: the lock
        # taken back every switch interval).
        until = time.monotonic() + float(request.args.get("s", "1"))
        while time.monotonic() < until:
            if path == "/hold":
                time.sleep(max(0.0, until - time.monotonic()))
        return Response('{"held":true}', mimetype="application/json")
    if path.startswith("/events/"):
        with _connection_pool().connection() as conn:
            row = conn.execute(
                "SELECT id::text, name, starts_at::text, ticket_price::text"
                " FROM event WHERE id = %s",
                (path.rsplit("/", 1)[1],),
            ).fetchone()
        if row is None:
            return Response('{"status":404}', status=404, mimetype="application/problem+json")
        body = {"id": row[0], "name": row[1], "startsAt": row[2], "price": row[3]}
        return Response(json.dumps(body), mimetype="application/json")
    return Response('{"ok":true}', mimetype="application/json")
