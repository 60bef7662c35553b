"""Housekeeping (functions/housekeeping, ADR 13) on a database of its own: a POST prunes exactly
the expired idempotency keys, the order-event rows older than the retention and the published
outbox rows older than theirs, in batches, counts them in `boxoffice_rows_pruned_total{table}`,
and two passes at once prune each row once.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import functions_framework
import psycopg
import pytest
from flask.testing import FlaskClient

from boxoffice import bootstrap, metrics
from boxoffice.adapters.housekeeping import TABLES
from boxoffice.services import housekeeping

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
Db = psycopg.Connection[Any]
ALICE = "a11ce000-0000-4000-8000-000000000001"
EVENT = uuid.UUID("e0e00000-0000-4000-8000-000000000003")  # demo data


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    source = ROOT / "functions" / "housekeeping" / "main.py"
    made: FlaskClient = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="handler", source=str(source)
    ).test_client()
    return made


def seed(db: Db, expired: int, live: int, old_events: int, new_events: int) -> None:
    """Idempotency keys (expired / live) of alice; order_event rows older than 40 days / fresh,
    on one booking (the rows are bookkeeping only: nothing else reads them)."""
    with db.transaction():
        db.execute(
            """INSERT INTO idempotency_record (scope, key, request_hash, state, response_status,
                                               expires_at)
               SELECT %s, 'k' || g, 'h', 'COMPLETED', 201,
                      CASE WHEN g <= %s THEN now() - interval '1 minute'
                           ELSE now() + interval '1 day' END
                 FROM generate_series(1, %s) g""",
            (ALICE, expired, expired + live),
        )
        booking = uuid.uuid4()
        db.execute(
            """INSERT INTO booking (id, customer_id, event_id, quantity, unit_price, currency)
               SELECT %s, id, %s, 1, 10, 'GBP' FROM customer WHERE subject = %s""",
            (booking, EVENT, ALICE),
        )
        db.execute(
            """INSERT INTO order_event (event_source, event_id, event_type, booking_id, outcome,
                                        processed_at)
               SELECT '/it', 'e' || g, 't', %s, 'CONFIRMED',
                      CASE WHEN g <= %s THEN now() - interval '40 days'
                           ELSE now() - interval '34 days' END
                 FROM generate_series(1, %s) g""",
            (booking, old_events, old_events + new_events),
        )


def left(db: Db) -> tuple[int, int, int, int]:
    row = db.execute(
        """SELECT (SELECT count(*) FROM idempotency_record WHERE expires_at < now()),
                  (SELECT count(*) FROM idempotency_record WHERE expires_at >= now()),
                  (SELECT count(*) FROM order_event
                    WHERE processed_at < now() - interval '35 days'),
                  (SELECT count(*) FROM order_event
                    WHERE processed_at >= now() - interval '35 days')"""
    ).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def pruned_total(table: str) -> float:
    value: float = metrics.ROWS_PRUNED.labels(table)._value.get()
    return value


def test_a_pass_prunes_expired_keys_and_order_events_past_the_retention_and_nothing_else(
    client: FlaskClient, own_db: Db, use_settings: Callable[..., bootstrap.Container]
) -> None:
    seed(own_db, expired=2345, live=10, old_events=1500, new_events=20)
    use_settings(prune_batch_size=1000, order_event_retention_days=35)
    before = {t: pruned_total(t) for t in TABLES}

    response = client.post("/", json={})

    assert response.status_code == 200, response.get_data(as_text=True)
    body = json.loads(response.get_data(as_text=True))
    assert body["pruned"] == {"idempotency_record": 2345, "order_event": 1500, "outbox": 0}
    assert body["complete"] is True
    assert left(own_db) == (0, 10, 0, 20)
    assert {t: pruned_total(t) - before[t] for t in TABLES} == body["pruned"]
    again = json.loads(client.post("/", json={}).get_data(as_text=True))
    assert again["pruned"] == {"idempotency_record": 0, "order_event": 0, "outbox": 0}


def test_a_pass_is_bounded_by_its_batch_budget_and_says_it_is_not_complete(
    own_db: Db, use_settings: Callable[..., bootstrap.Container]
) -> None:
    seed(own_db, expired=250, live=0, old_events=0, new_events=0)
    container = use_settings()
    policy = housekeeping.Policy(batch=100, max_batches=2)

    report = housekeeping.prune(container.housekeeping_store, TABLES, policy)

    assert report.pruned["idempotency_record"] == 200
    assert report.complete is False
    assert left(own_db)[0] == 50


def test_two_passes_at_once_prune_every_due_row_exactly_once(
    own_db: Db, use_settings: Callable[..., bootstrap.Container]
) -> None:
    seed(own_db, expired=6000, live=5, old_events=3000, new_events=5)
    container = use_settings(db_pool_max=4)
    policy = housekeeping.Policy(batch=200)
    reports: list[housekeeping.PruneReport] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        reports.append(housekeeping.prune(container.housekeeping_store, TABLES, policy))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)

    assert len(reports) == 2
    assert sum(r.pruned["idempotency_record"] for r in reports) == 6000
    assert sum(r.pruned["order_event"] for r in reports) == 3000
    assert left(own_db) == (0, 5, 0, 5)


def seed_outbox(db: Db) -> dict[str, int]:
    """Outbox rows of one topic by kind: published 8 days ago (past a 7-day retention), published
    6 days ago, never published though written 30 days ago (waiting), and dead-lettered 30 days
    ago. Only the first kind may go."""
    kinds = {
        "old_published": (2500, "now() - interval '8 days'", "NULL"),
        "recent_published": (30, "now() - interval '6 days'", "NULL"),
        "old_waiting": (20, "NULL", "NULL"),
        "old_dead_lettered": (5, "NULL", "now() - interval '29 days'"),
    }
    with db.transaction():
        for kind, (n, published, dead) in kinds.items():
            db.execute(
                f"""INSERT INTO outbox (id, topic, record_key, event_type, event_source,
                                        event_time, payload, created_at, published_at,
                                        dead_lettered_at, last_error)
                    SELECT gen_random_uuid(), 'it-prune', %s || g, 't', '/it', now(), '{{}}',
                           now() - interval '30 days', {published}, {dead},
                           CASE WHEN {dead} IS NULL THEN NULL ELSE 'refused' END
                      FROM generate_series(1, %s) g""",  # noqa: S608 - fixed SQL
                (kind, n),
            )
    return {kind: n for kind, (n, _, _) in kinds.items()}


def outbox_left(db: Db) -> dict[str, int]:
    rows = db.execute(
        "SELECT regexp_replace(record_key, '[0-9]+$', ''), count(*) FROM outbox"
        " WHERE topic = 'it-prune' GROUP BY 1"
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def test_published_outbox_rows_past_their_retention_are_pruned_and_no_others(
    client: FlaskClient, own_db: Db, use_settings: Callable[..., bootstrap.Container]
) -> None:
    seeded = seed_outbox(own_db)
    use_settings(prune_batch_size=1000, outbox_retention_days=7)
    before = pruned_total("outbox")

    response = client.post("/", json={})

    assert response.status_code == 200, response.get_data(as_text=True)
    body = json.loads(response.get_data(as_text=True))
    assert body["pruned"]["outbox"] == 2500  # three batches: 1000, 1000, 500
    assert body["complete"] is True
    assert outbox_left(own_db) == {k: n for k, n in seeded.items() if k != "old_published"}
    assert pruned_total("outbox") - before == 2500
    use_settings(prune_batch_size=1000, outbox_retention_days=5)  # a shorter retention
    body = json.loads(client.post("/", json={}).get_data(as_text=True))
    assert body["pruned"]["outbox"] == 30
    assert set(outbox_left(own_db)) == {"old_waiting", "old_dead_lettered"}
