"""Input hardened by property (issue 20): every operation of src/boxoffice/openapi.yaml gets
generated bodies, query strings, path parameters and headers that confuse types (floats such as
`2.0` for integers, booleans, numeric strings, nulls, arrays, objects), cross boundaries
(minimum - 1, maximum + 1, maxLength + 1, huge numbers, `NaN`, duplicate member names), drop
required fields and add unknown ones, in bodies of every shape and content type.

The oracle, per request: the answer is a 2xx, or a 4xx the spec lists for that operation as
`application/problem+json` (whose `status` is the answer's); never a 5xx; and a 4xx wrote
nothing (every table of the database is the same, row for row, before and after).

Real parts: the functions' own entrypoints (functions/<name>/main.py as functions-framework
serves them), real Keycloak tokens, real PostgreSQL: a database of this module's own (a copy of
the Flyway-migrated, demo-loaded template), so that "nothing written" can be checked on every
table without the rest of the suite writing next to it. Kafka is off (nothing is published).

Reproducible and bounded: the `ci` Hypothesis profile (tests/conftest.py: derandomized), a
fixed number of examples per operation.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import functions_framework
import psycopg
import pytest
import support_databases
import yaml
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from boxoffice import bootstrap
from boxoffice.config import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = yaml.safe_load((ROOT / "src" / "boxoffice" / "openapi.yaml").read_text())
EXAMPLES_PER_OPERATION = 100
RUN = uuid.uuid4().hex[:8]
FAR = "2999-01-01T20:00:00Z"
PROBLEM_JSON = "application/problem+json"

# Which function serves a path (the front door's routes), and who calls each operation.
ROUTES = [
    (re.compile(r"^/bookings"), "create_booking"),
    (re.compile(r"^/payments/"), "payment_webhook"),
    (re.compile(r"^/(checkins|\.well-known/|events/[^/]+/checkins)"), "check_in"),
    (re.compile(r"^/events/[^/]+/queue"), "waiting_room"),
    (re.compile(r"^/customers"), "get_customer"),
    (re.compile(r"^/"), "get_event"),
]
ADMIN, CUSTOMER, SCANNER = "olivia", "alice", "sam"
CALLER = {
    "createEvent": ADMIN,
    "updateEvent": ADMIN,
    "cancelEvent": ADMIN,
    "createVenue": ADMIN,
    "updateVenue": ADMIN,
    "getCustomer": ADMIN,
    "configureQueue": ADMIN,
    "removeQueue": ADMIN,
    "checkIn": SCANNER,
    "uploadCheckIns": SCANNER,
    "checkInSummary": SCANNER,
}  # everyone else: the customer (public operations ignore a valid token)


@dataclasses.dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    spec: dict[str, Any]
    parameters: list[dict[str, Any]]

    @property
    def documented(self) -> set[int]:
        return {int(code) for code in self.spec["responses"]}

    @property
    def body_schema(self) -> str | None:
        body = self.spec.get("requestBody")
        if body is None:
            return None
        ref: str = body["content"]["application/json"]["schema"]["$ref"]
        return ref.rsplit("/", 1)[1]


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        section = "parameters" if "/parameters/" in node["$ref"] else "schemas"
        node = SPEC["components"][section][name]
    return node


def _operations() -> list[Operation]:
    found = []
    for path, item in SPEC["paths"].items():
        shared = [_resolve(p) for p in item.get("parameters", [])]
        for method, spec in item.items():
            if method == "parameters":
                continue
            own = [_resolve(p) for p in spec.get("parameters", [])]
            found.append(Operation(method.upper(), path, spec["operationId"], spec, shared + own))
    # Operations that take away what others use (a line, an event, a booking) go last.
    last = ["removeQueue", "cancelBooking", "cancelEvent"]
    return sorted(found, key=lambda o: last.index(o.operation_id) if o.operation_id in last else -1)


OPERATIONS = _operations()


# -- the module's own database and functions -------------------------------------------------


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A copy of the Flyway-migrated, demo-loaded template, used by the in-process functions."""
    with support_databases.fresh_database("bx_test_props", demo=True) as url:
        yield url


@pytest.fixture(scope="module")
def container(database: str) -> Iterator[bootstrap.Container]:
    """The functions' composition root on the module's database, Kafka off, and a per-customer
    limit the run cannot reach (so that bookings keep reaching the database)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BOXOFFICE_DATABASE_URL", database)
        mp.setenv("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS", "")
        previous = bootstrap.container()
        ours = bootstrap.Container(
            dataclasses.replace(Settings.from_env(), max_tickets_per_customer_per_event=10**6)
        )
        bootstrap.set_container(ours)
        try:
            yield ours
        finally:
            bootstrap.set_container(previous)
            for worker in ("outbox_relay_worker", "document_worker"):
                if worker in ours.__dict__:
                    ours.__dict__[worker].stop()
            if "database" in ours.__dict__:
                ours.database.close()


@pytest.fixture(scope="module")
def clients(container: bootstrap.Container) -> dict[str, FlaskClient]:
    made = {}
    for name in {function for _, function in ROUTES}:
        source = ROOT / "functions" / name / "main.py"
        app = functions_framework.create_app(target="handler", source=str(source))  # type: ignore[no-untyped-call]
        made[name] = app.test_client()
    return made


def _client(clients: dict[str, FlaskClient], path: str) -> FlaskClient:
    return next(clients[function] for pattern, function in ROUTES if pattern.match(path))


@pytest.fixture(scope="module")
def sandbox(
    clients: dict[str, FlaskClient],
    container: bootstrap.Container,
    database: str,
    auth: Callable[[str], dict[str, str]],
) -> dict[str, Any]:
    """What the generated requests name when they name something that exists: a venue, events
    for bookings, updates, cancellation and a waiting room, two of alice's bookings, alice's
    customer id, and a correctly signed code of a ticket that does not exist."""
    admin = auth(ADMIN)
    venue = _client(clients, "/venues").post(
        "/venues",
        json={"name": f"Props {RUN}", "address": "1 Property Way", "city": "X", "capacity": 10**6},
        headers=admin,
    )
    assert venue.status_code == 201, venue.get_data(as_text=True)
    ids: dict[str, Any] = {"venue": venue.get_json()["id"]}
    for role in ("book", "update", "cancel", "queue"):
        event = _client(clients, "/events").post(
            "/events", json=_event_body(ids["venue"], f"{role} {RUN}"), headers=admin
        )
        assert event.status_code == 201, event.get_data(as_text=True)
        ids[role] = event.get_json()["id"]
    queue = _client(clients, f"/events/{ids['queue']}/queue").put(
        f"/events/{ids['queue']}/queue", json=QUEUE_BODY, headers=admin
    )
    assert queue.status_code == 201, queue.get_data(as_text=True)
    ids["bookings"] = []
    for _ in range(2):
        made = _client(clients, "/bookings").post(
            "/bookings",
            json={"eventId": ids["book"], "ticketCount": 1},
            headers={**auth(CUSTOMER), "Idempotency-Key": f"{RUN}-seed-{uuid.uuid4()}"},
        )
        assert made.status_code == 201, made.get_data(as_text=True)
        ids["bookings"].append(made.get_json()["id"])
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT id FROM customer WHERE name = 'Alice Archer'").fetchone()
    assert row is not None
    ids["customer"] = str(row[0])
    ids["code"] = container.ticket_signer.code(uuid.uuid4(), uuid.UUID(ids["book"]))
    return ids


def _event_body(venue: str, name: str) -> dict[str, Any]:
    return {
        "venueId": venue,
        "name": name,
        "description": "generated",
        "startsAt": FAR,
        "price": {"amount": "12.50", "currency": "GBP"},
        "capacity": 1000,
    }


QUEUE_BODY = {
    "opensAt": FAR,
    "admissionRate": 5,
    "admissionSeconds": 600,
    "randomiseEarlyArrivals": True,
    "expectedTicketsPerBuyer": 2,
}


def _scan(ids: dict[str, Any]) -> dict[str, Any]:
    return {"code": ids["code"], "scanId": str(uuid.uuid4()), "scannedAt": "2020-01-01T10:00:00Z"}


ADDRESS = {"line1": "3 Orchard Row", "line2": "Flat 1", "postalCode": "BS1 4AA", "city": "Bristol"}

# A body of each schema that its operation accepts (the mutations start from it).
VALID_BODIES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "VenueInput": lambda ids: {"name": "Hall", "address": "1 Road", "city": "X", "capacity": 500},
    "EventInput": lambda ids: _event_body(ids["venue"], "Generated"),
    "CustomerInput": lambda ids: {
        "name": "Alice Archer",
        "email": "alice@example.test",
        "address": {**ADDRESS, "country": "GB"},
    },
    "BookingInput": lambda ids: {"eventId": ids["book"], "ticketCount": 1},
    "QueueInput": lambda ids: dict(QUEUE_BODY),
    "CheckInInput": lambda ids: {
        **{k: v for k, v in _scan(ids).items() if k != "scannedAt"},
        "eventId": ids["book"],
        "gate": "A",
    },
    "CheckInBatchInput": lambda ids: {"eventId": ids["book"], "gate": "A", "scans": [_scan(ids)]},
    # Never signed here: every generated delivery must be refused (400) and write nothing.
    "ProviderEvent": lambda ids: {
        "id": "evt_generated",
        "type": "payment_intent.succeeded",
        "created": 1700000000,
        "data": {"object": {"id": "pi_generated", "object": "payment_intent"}},
    },
}


def _known_ids(op: Operation, ids: dict[str, Any]) -> dict[str, list[str]]:
    event = {
        "updateEvent": ids["update"],
        "cancelEvent": ids["cancel"],
    }.get(op.operation_id, ids["queue"] if "/queue" in op.path else ids["book"])
    return {
        "eventId": [event],
        "venueId": [ids["venue"]],
        "bookingId": ids["bookings"],
        "customerId": [ids["customer"]],
    }


# -- what is generated --------------------------------------------------------------------------


class Raw(str):
    """A JSON literal written as is into the body text (`2.0`, `NaN`, `1e400`)."""


RAW_NUMBERS = ["2.0", "1.0", "0.0", "-0", "-0.0", "2e0", "1E2", "1e400", "-1e400", "1e-400",
               "NaN", "Infinity", "-Infinity", "1" + "0" * 40, "9" * 5000, "0.001",
               "0.009"]  # fmt: skip
WEIRD_TEXT = ["", " ", "null", "true", "1", "2.0", "-1", "0x10", "\uff11\uff12", "٣", "😀",
              "é" * 300, "\u202e", "a\u0000b", "\ud800", "x" * 5001, "2999-02-30T00:00:00Z",
              "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2030-01-01T00:00:00",
              "00000000-0000-0000-0000-000000000000", "ZZ", "gbp", "1e3"]  # fmt: skip


# The usual suspects, drawn often: an integral float for an integer (`2.0` once reached
# PostgreSQL as double precision), a boolean (Python's bool is an int), a numeric string, null.
TYPE_CONFUSION = [Raw("2.0"), Raw("1.0"), Raw("1e0"), Raw("NaN"), Raw("1e400"), True, False,
                  "1", "true", None, [], {}]  # fmt: skip


def _confused(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the wrong type, and values either side of the schema's bounds."""
    values: list[Any] = [None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63) - 1, [], {}, [1],
                         {"a": 1}, *(Raw(n) for n in RAW_NUMBERS), *WEIRD_TEXT]  # fmt: skip
    for option in [schema, *schema.get("oneOf", [])]:
        for key in ("minimum", "maximum", "exclusiveMinimum"):
            if key in option:
                bound = option[key]
                values += [bound, bound - 1, bound + 1, Raw(repr(float(bound)))]
                if isinstance(bound, float):
                    values += [Raw(f"{bound / 2}"), Raw(f"{bound - 0.001:.3f}")]
        for key in ("minLength", "maxLength"):
            if key in option:
                n = option[key]
                values += ["x" * max(n - 1, 0), "x" * n, "x" * (n + 1), "é" * (n + 1)]
        if "minItems" in option or "maxItems" in option:
            values += [[], [{}] * (option.get("maxItems", 1) + 1)]
    return (
        st.sampled_from(TYPE_CONFUSION)
        | st.sampled_from(values)
        | st.text(max_size=20)
        | st.integers()
        | st.floats()
    )


def _leaves(
    schema: dict[str, Any], path: tuple[Any, ...] = ()
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every field's path in a body of `schema`, with its schema (arrays: their first item)."""
    schema = _resolve(schema)
    found = [(path, schema)] if path else []
    for name, sub in schema.get("properties", {}).items():
        found += _leaves(sub, (*path, name))
    if "items" in schema:
        found += _leaves(schema["items"], (*path, 0))
    return found


def _with(body: Any, path: tuple[Any, ...], change: Callable[[Any, Any], None]) -> Any:
    """A copy of `body` with `change(container, key)` applied at `path` (if it is there)."""
    copy = json.loads(json.dumps(body))
    node = copy
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return copy
    if isinstance(node, dict) or (isinstance(node, list) and len(node) > path[-1]):
        change(node, path[-1])
    return copy


def _set(value: Any) -> Callable[[Any, Any], None]:
    def change(node: Any, key: Any) -> None:
        node[key] = value

    return change


def _drop(node: Any, key: Any) -> None:
    node.pop(key, None) if isinstance(node, dict) else None


def _render(body: Any) -> bytes:
    """The body's JSON text, `Raw` literals written as they are."""
    raws: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(str(value))
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(body), ensure_ascii=False)
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', raw)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def _body(draw: st.DrawFn, schema_name: str, ids: dict[str, Any]) -> tuple[bytes, str | None]:
    """(body bytes, Content-Type): mostly a valid body with one or two fields changed."""
    valid = VALID_BODIES[schema_name](ids)
    leaves = _leaves(SPEC["components"]["schemas"][schema_name])
    kinds = ["valid", "valid", "field", "field", "field", "fields", "drop", "extra", "duplicate",
             "shape", "raw"]  # fmt: skip
    kind = draw(st.sampled_from(kinds))
    body: Any = valid
    if kind in {"field", "fields"}:
        for _ in range(1 if kind == "field" else 2):
            path, schema = draw(st.sampled_from(leaves))
            body = _with(body, path, _set(draw(_confused(schema))))
    elif kind == "drop":
        body = _with(body, draw(st.sampled_from(leaves))[0], _drop)
    elif kind == "extra":
        path = draw(st.sampled_from([(), *(p for p, s in leaves if s.get("type") == "object")]))
        body = _with(
            {"": body}, ("", *path, draw(st.text(max_size=10))), _set(draw(_confused({})))
        )[""]
    elif kind == "shape":
        body = draw(_confused({}) | st.lists(st.just(valid), max_size=2))
    text = _render(body)
    if kind == "duplicate":
        name = draw(st.sampled_from(sorted(valid)))
        text = text.replace(f'"{name}":'.encode(), f'"{name}": null, "{name}":'.encode(), 1)
    elif kind == "raw":
        text = draw(st.sampled_from([b"", b"{", b"[]", b"{}", b"\xff\xfe", b"\xef\xbb\xbf{}",
                                     b'{"a":1,}', b"{'a': 1}", b"[" * 3000, b"nul"]))  # fmt: skip
    others = ["application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded",
              "application/problem+json", "APPLICATION/JSON", None]  # fmt: skip
    content_type = "application/json" if draw(MOSTLY) else draw(st.sampled_from(others))
    return text, content_type


def _one_segment(value: str) -> bool:
    """A path parameter that stays this operation's (another path is another operation)."""
    return value not in {"", ".", ".."} and "/" not in value


def _quote(text: str) -> str:
    """Percent-encoded UTF-8 (a lone surrogate as the invalid bytes it would be on the wire)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


# True 9 times in 10 (the simplest draw, which Hypothesis favours, is True).
MOSTLY = st.sampled_from([True] * 9 + [False])
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)


@st.composite
def _request(draw: st.DrawFn, op: Operation, ids: dict[str, Any], token: str) -> dict[str, Any]:
    known = _known_ids(op, ids)
    path = op.path
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    for p in op.parameters:
        name, where = p["name"], p["in"]
        if where == "path":
            value = draw(
                (st.sampled_from(known[name]) | st.uuids().map(str)
                 | st.sampled_from([*WEIRD_TEXT[:14], "%00", "{x}", "a b", "\\"])
                 | st.text(st.characters(codec="utf-8"), min_size=1)).filter(_one_segment)
            )  # fmt: skip
            path = path.replace("{" + name + "}", _quote(value))
        elif where == "query" and draw(st.booleans()):
            schema = p["schema"]
            good = st.integers(1, 100).map(str) if schema.get("type") == "integer" else st.just(FAR)
            if schema.get("format") == "uuid":
                good = st.sampled_from([ids["venue"], str(uuid.uuid4())])
            bad = st.sampled_from(WEIRD_TEXT) | HEADER_TEXT
            edges = st.sampled_from(["0", "101", "-1", str(2**31), str(10**10)])
            query.append((name, draw(good | bad | edges)))
        elif where == "header":
            fresh = f"{RUN}-{uuid.uuid4()}" if name == "Idempotency-Key" else None
            odd = st.sampled_from([None, "", " ", "k" * 256, "é"]) | HEADER_TEXT
            if fresh:  # Idempotency-Key: mostly a fresh one
                value = fresh if draw(MOSTLY) else draw(odd)
            else:  # Admission-Token (optional): mostly none
                value = None if draw(MOSTLY) else draw(odd)
            if value is not None:
                headers[name] = value
    if draw(st.integers(0, 9)) == 0:  # an unknown or a repeated query parameter
        query.append(draw(st.sampled_from([("limit", "1"), ("extra", "1"), ("", ""), ("x", "y")])))
    bad_auth = st.sampled_from(["", "Bearer", "Bearer x.y.z", "Basic YTpi"])
    headers["Authorization"] = f"Bearer {token}" if draw(MOSTLY) else draw(bad_auth)
    if draw(st.integers(0, 5)) == 0:
        stray = ["If-None-Match", "Accept", "Admission-Token", "X-Forwarded-For"]
        headers[draw(st.sampled_from(stray))] = draw(HEADER_TEXT)
    query_string = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in query)
    request: dict[str, Any] = {"path": path, "query_string": query_string, "headers": headers}
    if op.body_schema is not None:
        data, content_type = draw(_body(op.body_schema, ids))
        request["data"] = data
        if content_type is not None:
            request["content_type"] = content_type
    return request


# -- the oracle -------------------------------------------------------------------------------


def _snapshot(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Every table's rows, as one digest per table."""
    tables = [name for (name,) in conn.execute(
        """SELECT tablename FROM pg_tables WHERE schemaname = 'public'
            AND tablename <> 'flyway_schema_history' ORDER BY tablename"""
    ).fetchall()]  # fmt: skip
    query = sql.SQL(" UNION ALL ").join(
        sql.SQL(
            "SELECT {name}, md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), ''))"
            " FROM {table} t"
        ).format(name=sql.Literal(name), table=sql.Identifier(name))
        for name in tables
    )
    return dict(conn.execute(query).fetchall())


@pytest.fixture(scope="module")
def db(database: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database, autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize("op", OPERATIONS, ids=[o.operation_id for o in OPERATIONS])
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(data=st.data())
def test_every_answer_is_a_2xx_or_a_documented_4xx_problem_and_a_4xx_writes_nothing(
    op: Operation,
    data: st.DataObject,
    clients: dict[str, FlaskClient],
    sandbox: dict[str, Any],
    db: psycopg.Connection[Any],
    access_token: Callable[[str], str],
) -> None:
    token = access_token(CALLER.get(op.operation_id, CUSTOMER))
    request = data.draw(_request(op, sandbox, token), label="request")
    before = _snapshot(db)
    response = _client(clients, request["path"]).open(method=op.method, **request)
    status, text = response.status_code, response.get_data(as_text=True)
    assert status < 500, text
    assert status in op.documented | {304}, (
        f"{status} is not documented for {op.operation_id}: {text}"
    )
    if status < 400:
        return
    assert response.mimetype == PROBLEM_JSON, response.headers
    problem = json.loads(text)
    assert problem["status"] == status
    assert problem["type"].startswith("http"), problem
    assert problem["title"]
    after = _snapshot(db)
    changed = sorted(t for t in after if after[t] != before.get(t))
    assert not changed, f"a {status} wrote to {changed}: {text}"


# -- regressions of what the properties found ---------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/events/%0A", "/venues/a%0Ab", "/bookings/%0A", "/customers/%0A",
             "/events/%0A/queue", "/events/x%0A/checkins/summary"],
)  # fmt: skip
def test_a_path_with_a_line_feed_is_a_404_problem_not_an_html_page(
    path: str, clients: dict[str, FlaskClient], auth: Callable[[str], dict[str, str]]
) -> None:
    """functions-framework's catch-all route does not match a line feed: its HTML 404 page
    reached the client, through the front door too."""
    response = _client(clients, path.replace("%0A", "x")).get(path, headers=auth(CUSTOMER))
    assert response.status_code == 404
    assert response.mimetype == PROBLEM_JSON, response.get_data(as_text=True)
    assert response.get_json()["type"].endswith("/not-found")
