"""Ticket PDFs out of consume_order's process: with BOXOFFICE_TICKET_DOCUMENT_WORKER=off the
function only records the order, and `python -m boxoffice.processes.documents` (a process of its
own, the same environment) renders and stores the documents; their QR codes verify with the key
check_in publishes. Real PostgreSQL (a database of this module's own: the stack's consume_order
sweeps the dev database for pending documents too) and S3 (moto) of the local stack."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import requests
from flask.testing import FlaskClient
from support_databases import fresh_database
from test_consume_order_support import (
    ROOT,
    VENUE,
    Db,
    consume_order_client,
    created_delivery,
    deliver,
    ensure_customer,
    ensure_event,
    insert_booking,
    order_rows,
    ticket_rows,
)

from boxoffice import bootstrap
from boxoffice.config import Settings
from boxoffice.domain.tickets import load_public_keys
from boxoffice.errors import ConfigurationError
from pdf_tickets import read_ticket_pdf

pytestmark = pytest.mark.integration

CUSTOMER = uuid.UUID("c0c0f000-0000-4000-8000-0000000d0c01")


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return consume_order_client()


@pytest.fixture(scope="module")
def own_db_url() -> Iterator[str]:
    with fresh_database("bx_documents_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Document Hall', '1 Road', 'Testville', 100000)""",
                (VENUE,),
            )
        yield url


@pytest.fixture
def own_db(own_db_url: str) -> Iterator[Db]:
    with psycopg.connect(own_db_url, autocommit=True) as conn:
        yield conn


def test_worker_setting_is_thread_or_off(base_settings: Settings) -> None:
    env = {**os.environ, "BOXOFFICE_TICKET_DOCUMENT_WORKER": "sometimes"}
    with pytest.raises(ConfigurationError, match="BOXOFFICE_TICKET_DOCUMENT_WORKER"):
        Settings.from_env(env)
    assert base_settings.ticket_document_worker == "thread"


def test_with_the_worker_off_a_separate_process_renders_and_stores_the_pdfs(
    client: FlaskClient,
    own_db: Db,
    own_db_url: str,
    use_settings: Callable[..., bootstrap.Container],
    stack_env: Callable[[str], str],
) -> None:
    db = own_db
    use_settings(ticket_document_worker="off", database_url=own_db_url)
    event = uuid.uuid4()
    ensure_event(db, event)
    ensure_customer(db, CUSTOMER)
    bookings = [insert_booking(db, event, CUSTOMER, n) for n in (1, 2)]

    for booking in bookings:
        assert deliver(client, created_delivery(booking)).status_code == 200
    time.sleep(1.0)  # a worker thread, were there one, would have stored them by now
    assert [order_rows(db, b.id)[0][2] for b in bookings] == [None, None]

    done = subprocess.run(
        [sys.executable, "-m", "boxoffice.processes.documents", "--once"],
        cwd=ROOT,
        env={**os.environ, "BOXOFFICE_DATABASE_URL": own_db_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    jwks = requests.get(f"{stack_env('BOXOFFICE_CHECK_IN_URL')}/.well-known/ticket-keys", timeout=5)
    keys = load_public_keys(",".join(k["x"] for k in jwks.json()["keys"]))
    store = bootstrap.container().document_store
    for booking in bookings:
        [(order_id, _, stored_at)] = order_rows(db, booking.id)
        assert stored_at is not None
        pages = read_ticket_pdf(store.get(f"orders/{order_id}.pdf"))
        codes: list[Any] = [t[2] for t in ticket_rows(db, booking.id)]
        assert [p.codes for p in pages] == [[c] for c in codes]
        assert {keys.verify(c).event_id for c in codes} == {event}
