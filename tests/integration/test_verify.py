"""The invariant checker (`python -m boxoffice.processes.verify`, `stack/boxo verify`) on databases
of their own: a database written only by the real functions passes every check; then, for each
check, one test breaks exactly that invariant with a direct write and sees the checker name it
(with the offending id) and exit 1.

The consistent database: a scratch copy of the migrated demo database (tests/conftest.py), where
create_booking (in-process, real Keycloak tokens, Kafka switched off so the events stay in the
outbox) books three times and cancels once, and consume_order confirms two bookings from their
outbox rows and processes the cancellation, exactly as the dispatcher would deliver them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
import psycopg
import pytest
from flask.testing import FlaskClient

from boxoffice.adapters.invariants import CHECKS, run_checks
from boxoffice.adapters.kafka import cloudevent_headers
from boxoffice.services.ports import PendingEvent

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENT = uuid.UUID("e0e00000-0000-4000-8000-000000000003")  # demo: Chamber Music Evening
OTHER_EVENT = uuid.UUID("e0e00000-0000-4000-8000-000000000002")  # demo: Summer Stadium Tour


def app(name: str) -> FlaskClient:
    source = ROOT / "functions" / name / "main.py"
    client: FlaskClient = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target="handler", source=str(source)
    ).test_client()
    return client


@dataclass
class World:
    url: str
    conn: psycopg.Connection[Any]
    confirmed: str  # alice, 2 tickets, confirmed
    pending: str  # bob, 1 ticket, not delivered yet
    cancelled: str  # alice, 3 tickets, confirmed then cancelled

    def broken(self) -> dict[str, list[str]]:
        return {r.check.name: r.examples for r in run_checks(self.url) if not r.ok}


def deliver(consumer: FlaskClient, conn: psycopg.Connection[Any], booking_id: str) -> None:
    """POST the booking's outbox rows (oldest first) to consume_order as KafkaSource would."""
    rows = conn.execute(
        """SELECT id, topic, record_key, event_type, event_source, event_time, payload::text,
                  created_at FROM outbox WHERE record_key = %s ORDER BY created_at, id""",
        (booking_id,),
    ).fetchall()
    for row in rows:
        event = PendingEvent(*row[:6], row[6].encode(), row[7])
        headers = {"Prefer": "reply", "Kn-Namespace": "boxoffice"}
        for name, value in cloudevent_headers(event):
            http = "Content-Type" if name == "content-type" else name.replace("_", "-", 1)
            headers[http] = value.decode()
        response = consumer.post("/", headers=headers, data=event.payload)
        assert response.status_code == 200, response.get_data(as_text=True)


@pytest.fixture
def world(
    scratch_db: Any,
    use_settings: Callable[..., Any],
    auth: Callable[[str], dict[str, str]],
) -> Any:
    use_settings(database_url=scratch_db.url, kafka_bootstrap_servers="")
    booker, consumer = app("create_booking"), app("consume_order")

    def book(user: str, count: int) -> str:
        response = booker.post(
            "/bookings",
            json={"eventId": str(EVENT), "ticketCount": count},
            headers={**auth(user), "Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        return str(json.loads(response.get_data(as_text=True))["id"])

    with scratch_db.connect() as conn:
        confirmed, pending, cancelled = book("alice", 2), book("bob", 1), book("alice", 3)
        deliver(consumer, conn, confirmed)
        deliver(consumer, conn, cancelled)
        response = booker.delete(f"/bookings/{cancelled}", headers=auth("alice"))
        assert response.status_code == 200, response.get_data(as_text=True)
        deliver(consumer, conn, cancelled)  # created (a redelivery) and cancelled
        yield World(scratch_db.url, conn, confirmed, pending, cancelled)


def test_a_database_written_only_by_the_functions_passes_every_check(world: World) -> None:
    status = world.conn.execute(
        "SELECT id::text, status FROM booking WHERE event_id = %s", (EVENT,)
    ).fetchall()
    assert dict(status) == {
        world.confirmed: "CONFIRMED",
        world.pending: "PENDING",
        world.cancelled: "CANCELLED",
    }
    results = run_checks(world.url)
    assert [r.check.name for r in results] == [c.name for c in CHECKS]
    assert world.broken() == {}
    out = subprocess.run(
        [sys.executable, "-m", "boxoffice.processes.verify", "--database-url", world.url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(CHECKS)} of {len(CHECKS)} checks hold" in out.stdout


def drop_constraint(world: World, table: str, constraint: str) -> None:
    world.conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}")


def test_sold_seats_that_no_allocation_accounts_for_are_reported(world: World) -> None:
    world.conn.execute(
        "UPDATE event_inventory SET sold = sold + 1 WHERE event_id = %s AND shard = 0", (EVENT,)
    )
    broken = world.broken()
    assert broken["inventory_sold_equals_allocations"] == [f"{EVENT}/0"]


def test_a_shard_over_capacity_is_reported(world: World) -> None:
    drop_constraint(world, "event_inventory", "inventory_sold_within_capacity")
    world.conn.execute(
        "UPDATE event_inventory SET sold = capacity + 1 WHERE event_id = %s", (OTHER_EVENT,)
    )
    assert f"{OTHER_EVENT}/0" in world.broken()["inventory_within_capacity"]


def test_shards_that_do_not_add_up_to_the_event_capacity_are_reported(world: World) -> None:
    world.conn.execute("ALTER TABLE event DISABLE TRIGGER event_capacity_matches_inventory")
    world.conn.execute("UPDATE event SET capacity = capacity + 5 WHERE id = %s", (OTHER_EVENT,))
    assert world.broken()["inventory_matches_event_capacity"] == [str(OTHER_EVENT)]


def test_a_booking_whose_allocations_do_not_add_up_to_its_quantity_is_reported(
    world: World,
) -> None:
    """One more seat allocated (and sold) than the booking has: the shard's books balance, the
    booking's do not."""
    world.conn.execute(
        "UPDATE booking_allocation SET quantity = quantity + 1 WHERE booking_id = %s",
        (world.pending,),
    )
    world.conn.execute(
        """UPDATE event_inventory SET sold = sold + 1 WHERE (event_id, shard) =
             (SELECT event_id, shard FROM booking_allocation WHERE booking_id = %s)""",
        (world.pending,),
    )
    broken = world.broken()
    assert broken["booking_allocations_match_quantity"] == [world.pending]
    assert "inventory_sold_equals_allocations" not in broken


def test_a_cancelled_booking_that_kept_its_seats_is_reported(world: World) -> None:
    """Cancelled in the table only: seats, allocation view and ticket count left as they were."""
    world.conn.execute(
        """UPDATE booking SET status = 'CANCELLED', cancelled_at = now() WHERE id = %s""",
        (world.pending,),
    )
    broken = world.broken()
    assert broken["cancelled_bookings_hold_no_seats"] == [str(EVENT)]


def test_a_per_customer_ticket_count_that_disagrees_with_the_bookings_is_reported(
    world: World,
) -> None:
    world.conn.execute(
        "UPDATE customer_event_tickets SET tickets = tickets + 1 WHERE event_id = %s "
        "AND customer_id = (SELECT customer_id FROM booking WHERE id = %s)",
        (EVENT, world.pending),
    )
    (customer,) = world.conn.execute(
        "SELECT customer_id::text FROM booking WHERE id = %s", (world.pending,)
    ).fetchone() or ("",)
    assert world.broken() == {"customer_ticket_counts": [f"{customer}/{EVENT}"]}


def test_a_booking_without_its_created_event_is_reported(world: World) -> None:
    world.conn.execute("DELETE FROM outbox WHERE record_key = %s", (world.pending,))
    assert world.broken() == {"booking_has_created_event": [world.pending]}


def test_a_confirmed_booking_counts_as_published_once_its_outbox_row_is_gone(
    world: World,
) -> None:
    """The order is the proof its booking.created was published (outbox rows may be pruned)."""
    world.conn.execute(
        "DELETE FROM outbox WHERE record_key = %s AND event_type LIKE '%%created%%'",
        (world.confirmed,),
    )
    assert world.broken() == {}


def test_a_cancelled_booking_without_its_cancelled_event_is_reported(world: World) -> None:
    world.conn.execute(
        "DELETE FROM outbox WHERE record_key = %s AND event_type LIKE '%%cancelled%%'",
        (world.cancelled,),
    )
    assert world.broken() == {"cancelled_booking_has_cancelled_event": [world.cancelled]}


def test_an_outbox_event_for_a_booking_that_does_not_exist_is_reported(world: World) -> None:
    ghost = uuid.uuid4()
    world.conn.execute(
        """INSERT INTO outbox (id, topic, record_key, event_type, event_source, event_time,
                               payload)
           SELECT %s, topic, %s, event_type, event_source, event_time, payload
             FROM outbox WHERE record_key = %s""",
        (ghost, str(uuid.uuid4()), world.pending),
    )
    assert world.broken() == {"outbox_event_has_booking": [str(ghost)]}


def test_a_confirmed_booking_missing_a_ticket_is_reported(world: World) -> None:
    world.conn.execute(
        """DELETE FROM ticket WHERE seq = 2
             AND order_id = (SELECT id FROM orders WHERE booking_id = %s)""",
        (world.confirmed,),
    )
    assert world.broken() == {"confirmed_booking_has_one_order": [world.confirmed]}


def test_a_confirmed_booking_without_an_order_is_reported(world: World) -> None:
    world.conn.execute("UPDATE booking SET status = 'CONFIRMED' WHERE id = %s", (world.pending,))
    assert world.broken() == {"confirmed_booking_has_one_order": [world.pending]}


def test_an_order_of_a_pending_booking_is_reported(world: World) -> None:
    world.conn.execute("UPDATE booking SET status = 'PENDING' WHERE id = %s", (world.confirmed,))
    (order,) = world.conn.execute(
        "SELECT id::text FROM orders WHERE booking_id = %s", (world.confirmed,)
    ).fetchone() or ("",)
    assert world.broken() == {"order_only_for_processed_booking": [order]}


def test_a_cancelled_order_with_a_valid_ticket_is_reported(world: World) -> None:
    (order,) = world.conn.execute(
        "SELECT id::text FROM orders WHERE booking_id = %s", (world.cancelled,)
    ).fetchone() or ("",)
    world.conn.execute(
        "UPDATE ticket SET status = 'VALID', cancelled_at = NULL WHERE order_id = %s AND seq = 1",
        (order,),
    )
    assert world.broken() == {"cancelled_order_has_no_valid_ticket": [order]}


def test_a_confirmation_recorded_without_its_order_is_reported(world: World) -> None:
    world.conn.execute(
        "UPDATE order_event SET booking_id = %s WHERE booking_id = %s AND outcome = 'CONFIRMED'",
        (world.pending, world.confirmed),
    )
    (event_id,) = world.conn.execute(
        "SELECT event_id FROM order_event WHERE booking_id = %s", (world.pending,)
    ).fetchone() or ("",)
    assert world.broken() == {"confirmed_event_has_order": [event_id]}


def test_the_command_prints_the_broken_check_with_its_ids_and_exits_1(world: World) -> None:
    world.conn.execute("DELETE FROM outbox WHERE record_key = %s", (world.pending,))
    out = subprocess.run(
        [sys.executable, "-m", "boxoffice.processes.verify", "--database-url", world.url, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is False
    failing = {c["name"]: c for c in doc["checks"] if c["violations"]}
    assert failing["booking_has_created_event"]["examples"] == [world.pending]
    text = subprocess.run(
        [sys.executable, "-m", "boxoffice.processes.verify", "--database-url", world.url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert text.returncode == 1
    assert "FAIL  booking_has_created_event" in text.stdout
    assert world.pending in text.stdout


def test_an_unreachable_database_exits_2() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "boxoffice.processes.verify",
            "--database-url",
            "postgresql://nobody:x@127.0.0.1:1/none?connect_timeout=2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot read the database" in out.stderr


def test_a_dead_lettered_outbox_event_is_reported(world: World) -> None:
    """Kafka refused the pending booking's event for good: the booking was accepted and will
    not be confirmed until the event is re-driven; verify names the outbox row."""
    (event_id,) = world.conn.execute(
        """UPDATE outbox SET dead_lettered_at = now(), attempts = 1,
                             last_error = 'MessageSizeTooLargeError: test'
            WHERE record_key = %s RETURNING id::text""",
        (world.pending,),
    ).fetchone() or ("",)
    assert world.broken() == {"outbox_event_not_dead_lettered": [event_id]}


def test_outbox_rows_are_expected_only_while_younger_than_the_outbox_retention(
    world: World,
) -> None:
    """Housekeeping prunes published rows past BOXOFFICE_OUTBOX_RETENTION_DAYS: a cancelled
    booking of 10 days ago without its outbox rows is what pruning leaves (no violation with a
    7-day retention); with a 30-day retention, or when younger, their absence is reported."""
    world.conn.execute(
        """UPDATE booking SET created_at = now() - interval '10 days',
                              cancelled_at = now() - interval '10 days' WHERE id = %s""",
        (world.cancelled,),
    )
    world.conn.execute("DELETE FROM outbox WHERE record_key = %s", (world.cancelled,))
    assert world.broken() == {}
    assert {
        r.check.name: r.examples
        for r in run_checks(world.url, outbox_retention_days=30)
        if not r.ok
    } == {"cancelled_booking_has_cancelled_event": [world.cancelled]}
    out = subprocess.run(
        [sys.executable, "-m", "boxoffice.processes.verify", "--database-url", world.url],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BOXOFFICE_OUTBOX_RETENTION_DAYS": "30"},
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL  cancelled_booking_has_cancelled_event" in out.stdout
