"""Tickets by email on real parts: consume_order records the order, the document worker's pass
(as the composition root builds it: documents, then ticket emails) stores the PDF in S3 (moto)
and sends the email through the stack's SMTP sink, Mailpit, whose HTTP API (/api/v1/...) reads
the message and its attachment back. PostgreSQL is a database of this module's own (the stack's
document worker sweeps the dev database). docs/adr/0019-tickets-by-email.md."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from flask.testing import FlaskClient
from support_databases import fresh_database
from support_servers import free_port
from test_consume_order_support import (
    ROOT,
    VENUE,
    Db,
    cancel_in_db,
    cancelled_delivery,
    consume_order_client,
    created_delivery,
    deliver,
    ensure_event,
    insert_booking,
    order_rows,
    ticket_rows,
)

from boxoffice import bootstrap
from boxoffice.adapters.ticket_pdf import PdfTicketRenderer
from boxoffice.domain.bookings import Booking
from boxoffice.services.orders import document_pass
from boxoffice.services.ports import Progress
from pdf_tickets import read_ticket_pdf

pytestmark = pytest.mark.integration

SENDER = "Boxoffice Tests <tickets@boxoffice.test>"


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return consume_order_client()


@pytest.fixture(scope="module")
def own_db_url() -> Iterator[str]:
    with fresh_database("bx_emails_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Mail Hall', '2 Post Road', 'Letterton', 100000)""",
                (VENUE,),
            )
        yield url


@pytest.fixture
def db(own_db_url: str) -> Iterator[Db]:
    with psycopg.connect(own_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def inbox(stack_env: Callable[[str], str]) -> str:
    """The stack's Mailpit (stack/services/mail.sh): its web inbox and API."""
    url = stack_env("BOXOFFICE_MAIL_WEB_URL")
    requests.get(f"{url}/readyz", timeout=5).raise_for_status()
    return url


@pytest.fixture
def smtp(stack_env: Callable[[str], str]) -> tuple[str, int]:
    return stack_env("BOXOFFICE_SMTP_HOST"), int(stack_env("BOXOFFICE_SMTP_PORT"))


def buyer(db: Db, email: str | None = None) -> tuple[uuid.UUID, str]:
    """A customer of their own (a fresh address: this run's messages are told apart by it)."""
    customer = uuid.uuid4()
    address = email or f"buyer-{customer}@example.test"
    db.execute(
        """INSERT INTO customer (id, subject, name, email, address_line1, postal_code, city,
                                 country)
           VALUES (%s, %s, 'Mia Mailer', %s, '1 Test Row', 'BS1 1AA', 'Bristol', 'GB')""",
        (customer, f"email-test-{customer}", address),
    )
    return customer, address


def confirmed_order(client: FlaskClient, db: Db, quantity: int = 2) -> tuple[Booking, str]:
    event = uuid.uuid4()
    ensure_event(db, event)
    customer, address = buyer(db)
    booking = insert_booking(db, event, customer, quantity)
    assert deliver(client, created_delivery(booking)).status_code == 200
    return booking, address


def worker_pass(c: bootstrap.Container) -> Callable[[], Progress]:
    """The document worker's pass as the composition root builds it (consume_order's thread and
    `python -m boxoffice.processes.documents` run this one)."""
    uow, store = c.order_uow, c.document_store
    return c.document_and_email_pass(lambda: document_pass(uow, store, PdfTicketRenderer()))


def run_until_idle(c: bootstrap.Container) -> None:
    run = worker_pass(c)
    for _ in range(20):
        if run() is Progress.IDLE:
            return
    pytest.fail("the document worker's pass never went idle")


def email_row(db: Db, order_id: uuid.UUID) -> dict[str, Any] | None:
    row = db.execute(
        """SELECT state, attempts, next_attempt_at > now(), last_error, message_id, sent_at
             FROM ticket_email WHERE order_id = %s""",
        (order_id,),
    ).fetchone()
    if row is None:
        return None
    keys = ("state", "attempts", "backing_off", "last_error", "message_id", "sent_at")
    return dict(zip(keys, row, strict=True))


def messages_for(inbox: str, order_id: uuid.UUID) -> list[dict[str, Any]]:
    """The inbox's messages whose Message-ID is the order's."""
    found = requests.get(
        f"{inbox}/api/v1/search", params={"query": f"message-id:tickets.{order_id}"}, timeout=5
    )
    found.raise_for_status()
    messages: list[dict[str, Any]] = found.json()["messages"]
    return messages


def test_a_confirmed_orders_email_arrives_once_with_its_tickets_as_one_pdf(
    client: FlaskClient,
    db: Db,
    own_db_url: str,
    inbox: str,
    smtp: tuple[str, int],
    use_settings: Callable[..., bootstrap.Container],
) -> None:
    c = use_settings(
        ticket_document_worker="off",
        database_url=own_db_url,
        smtp_host=smtp[0],
        smtp_port=smtp[1],
        smtp_starttls=False,
        smtp_from=SENDER,
    )
    booking, address = confirmed_order(client, db, quantity=2)
    [(order_id, _, _)] = order_rows(db, booking.id)
    assert email_row(db, order_id) is None  # queued once the PDF is stored, not before

    run_until_idle(c)

    row = email_row(db, order_id)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("sent", 0)
    assert row["message_id"] == f"<tickets.{order_id}@boxoffice.test>"
    [summary] = messages_for(inbox, order_id)
    message = requests.get(f"{inbox}/api/v1/message/{summary['ID']}", timeout=5).json()
    assert [t["Address"] for t in message["To"]] == [address]
    assert message["From"]["Address"] == "tickets@boxoffice.test"
    assert message["Subject"].startswith("Your tickets: Order processing test night, ")
    assert str(booking.id) in message["Text"]
    assert "Tickets:  2" in message["Text"]
    [attachment] = message["Attachments"]
    assert attachment["ContentType"] == "application/pdf"
    assert attachment["FileName"] == f"tickets-{booking.id}.pdf"
    pdf = requests.get(
        f"{inbox}/api/v1/message/{summary['ID']}/part/{attachment['PartID']}", timeout=5
    )
    codes = [t[2] for t in ticket_rows(db, booking.id)]
    assert [p.codes for p in read_ticket_pdf(pdf.content)] == [[code] for code in codes]

    # Again: another pass, the same CloudEvent delivered again, and the worker after it.
    run_until_idle(c)
    assert deliver(client, created_delivery(booking)).json["redelivery"] is True
    run_until_idle(c)
    assert len(messages_for(inbox, order_id)) == 1
    assert email_row(db, order_id) == row


def test_with_smtp_unreachable_the_email_waits_with_a_backoff_and_goes_once_it_is_back(
    client: FlaskClient,
    db: Db,
    own_db_url: str,
    inbox: str,
    smtp: tuple[str, int],
    use_settings: Callable[..., bootstrap.Container],
) -> None:
    settings = {
        "ticket_document_worker": "off",
        "database_url": own_db_url,
        "smtp_starttls": False,
        "smtp_from": SENDER,
        "smtp_timeout": 2.0,
    }
    down = use_settings(**settings, smtp_host="127.0.0.1", smtp_port=free_port())  # nobody there
    booking, _ = confirmed_order(client, db)
    [(order_id, _, _)] = order_rows(db, booking.id)

    run_until_idle(down)

    [(_, _, stored_at)] = order_rows(db, booking.id)
    assert stored_at is not None  # the document does not wait for the email
    row = email_row(db, order_id)
    assert row is not None
    assert (row["state"], row["attempts"], row["backing_off"]) == ("pending", 1, True)
    assert "ConnectionRefusedError" in row["last_error"]
    assert messages_for(inbox, order_id) == []

    up = use_settings(**settings, smtp_host=smtp[0], smtp_port=smtp[1])
    run_until_idle(up)
    assert email_row(db, order_id)["state"] == "pending"  # type: ignore[index] # not due yet
    time.sleep(1.2)  # the first backoff: 2^0 s
    run_until_idle(up)

    row = email_row(db, order_id)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("sent", 1)
    assert len(messages_for(inbox, order_id)) == 1


def test_the_email_of_an_order_cancelled_before_it_went_out_is_withdrawn(
    client: FlaskClient,
    db: Db,
    own_db_url: str,
    inbox: str,
    smtp: tuple[str, int],
    use_settings: Callable[..., bootstrap.Container],
) -> None:
    settings = {"ticket_document_worker": "off", "database_url": own_db_url}
    no_smtp = use_settings(**settings, smtp_host="")  # sending off: the email waits, pending
    booking, _ = confirmed_order(client, db)
    [(order_id, _, _)] = order_rows(db, booking.id)
    run_until_idle(no_smtp)
    assert email_row(db, order_id)["state"] == "pending"  # type: ignore[index]

    cancelled = cancel_in_db(db, booking)
    assert deliver(client, cancelled_delivery(cancelled, uuid.uuid4())).status_code == 200
    c = use_settings(
        **settings, smtp_host=smtp[0], smtp_port=smtp[1], smtp_starttls=False, smtp_from=SENDER
    )
    run_until_idle(c)

    assert email_row(db, order_id)["state"] == "withdrawn"  # type: ignore[index]
    assert messages_for(inbox, order_id) == []


@pytest.fixture
def strict_sink(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A Mailpit of this test's own that refuses (550) every recipient outside @accepted.test."""
    binary = subprocess.run(
        ["bash", "-c", "source stack/lib.sh && source stack/services/mail.sh && mail_bin"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    smtp_port, web_port = free_port(), free_port()
    with (tmp_path / "mailpit.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                "--smtp",
                f"127.0.0.1:{smtp_port}",
                "--listen",
                f"127.0.0.1:{web_port}",
                "--smtp-allowed-recipients",
                r"@accepted\.test$",
                "--disable-version-check",
                "--smtp-disable-rdns",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MP_DATABASE": ""},
        )
    url = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "mailpit.log").read_text()
            try:
                if requests.get(f"{url}/readyz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "Mailpit did not start"
            time.sleep(0.1)
        yield smtp_port, url
    finally:
        proc.terminate()
        proc.wait(10)


def test_an_address_the_server_refuses_for_good_is_set_aside_as_undeliverable(
    client: FlaskClient,
    db: Db,
    own_db_url: str,
    strict_sink: tuple[int, str],
    use_settings: Callable[..., bootstrap.Container],
) -> None:
    port, sink = strict_sink
    c = use_settings(
        ticket_document_worker="off",
        database_url=own_db_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_from=SENDER,
    )
    refused, _ = confirmed_order(client, db)
    [(refused_order, _, _)] = order_rows(db, refused.id)
    event = uuid.uuid4()
    ensure_event(db, event)
    customer, address = buyer(db, f"buyer-{uuid.uuid4()}@accepted.test")
    accepted = insert_booking(db, event, customer, 1)
    assert deliver(client, created_delivery(accepted)).status_code == 200
    [(accepted_order, _, _)] = order_rows(db, accepted.id)

    run_until_idle(c)
    run_until_idle(c)  # an undeliverable email is not tried again

    row = email_row(db, refused_order)
    assert row is not None
    assert (row["state"], row["attempts"], row["sent_at"]) == ("undeliverable", 1, None)
    assert row["last_error"].startswith("recipient refused: 550")
    assert email_row(db, accepted_order)["state"] == "sent"  # type: ignore[index]
    inbox = requests.get(f"{sink}/api/v1/messages", timeout=5).json()["messages"]
    assert [[t["Address"] for t in m["To"]] for m in inbox] == [[address]]
