"""Tickets by email without a network: the email's text and Message-ID (domain), its MIME form
(the SMTP adapter's `build`), and the sending pass around in-memory fakes of the outbox and the
mailer (docs/adr/0019-tickets-by-email.md). The real outbox and Mailpit:
tests/integration/test_ticket_emails.py."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest

from boxoffice.adapters.smtp_mail import SmtpTicketMailer
from boxoffice.background import in_turn
from boxoffice.domain.orders import (
    DocumentSource,
    Order,
    OrderStatus,
    Ticket,
    TicketStatus,
    issue_tickets,
)
from boxoffice.domain.ticket_emails import TicketEmail, message_id, ticket_email
from boxoffice.domain.tickets import TicketSigner
from boxoffice.errors import ConfigurationError
from boxoffice.services import ticket_emails
from boxoffice.services.ports import (
    MailError,
    MailRejected,
    PendingTicketEmail,
    Progress,
    TicketEmailUnitOfWorkFactory,
)

SIGNER = TicketSigner.generate()
STARTS = datetime(2031, 3, 14, 19, 30, tzinfo=UTC)
PDF = b"%PDF-1.7 fake"


def source(quantity: int = 2, status: OrderStatus = OrderStatus.CONFIRMED) -> DocumentSource:
    event = uuid.uuid4()
    tickets = tuple(
        Ticket(t.id, t.seq, t.code, TicketStatus.VALID)
        for t in issue_tickets(SIGNER, event_id=event, quantity=quantity)
    )
    order = Order(uuid.uuid4(), uuid.uuid4(), status, STARTS, None, None, None, tickets)
    return DocumentSource(
        order,
        uuid.uuid4(),
        event,
        "Spring Concert",
        STARTS,
        "Colston Hall",
        "1 Harbour Way",
        "Bristol",
        "Bob Baker",
        quantity,
    )


# -- the email (domain) --------------------------------------------------------------------------


def test_message_id_is_the_same_for_every_attempt_of_an_order_and_differs_between_orders() -> None:
    order = uuid.uuid4()
    assert message_id(order, "boxoffice.test") == message_id(order, "boxoffice.test")
    assert message_id(order, "boxoffice.test") == f"<tickets.{order}@boxoffice.test>"
    assert message_id(uuid.uuid4(), "boxoffice.test") != message_id(order, "boxoffice.test")


def test_body_names_event_date_venue_ticket_count_and_booking() -> None:
    s = source(quantity=3)
    mail = ticket_email(s, "bob@example.com", PDF, "<id@x>")
    assert "Spring Concert" in mail.body
    assert "Friday 14 March 2031, 19:30 UTC" in mail.body
    assert "Colston Hall, 1 Harbour Way, Bristol" in mail.body
    assert "Tickets:  3" in mail.body
    assert str(s.order.booking_id) in mail.body
    assert "your 3 tickets for Spring Concert are attached" in mail.body
    assert mail.subject == "Your tickets: Spring Concert, Friday 14 March 2031, 19:30 UTC"
    assert (mail.recipient, mail.recipient_name) == ("bob@example.com", "Bob Baker")
    assert (mail.attachment, mail.attachment_type) == (PDF, "application/pdf")
    assert mail.attachment_name == f"tickets-{s.order.booking_id}.pdf"


def test_one_ticket_is_singular() -> None:
    assert (
        "your 1 ticket for Spring Concert is attached"
        in ticket_email(source(quantity=1), "b@x.org", PDF, "<id@x>").body
    )


def test_line_breaks_in_an_event_name_never_reach_the_subject() -> None:
    s = replace(source(), event_name="Spring\r\nBcc: victim@example.com\nConcert")
    mail = ticket_email(s, "bob@example.com", PDF, "<id@x>")
    assert mail.subject.startswith("Your tickets: Spring Bcc: victim@example.com Concert,")
    assert "\n" not in mail.subject
    assert "\r" not in mail.subject


# -- its MIME form (the SMTP adapter, no connection) ---------------------------------------------


def mailer(sender: str = "Boxoffice <tickets@boxoffice.test>") -> SmtpTicketMailer:
    return SmtpTicketMailer("127.0.0.1", 1, sender, starttls=False)


def test_message_is_plain_text_with_the_pdf_attached_and_the_orders_message_id() -> None:
    s = source()
    m = mailer()
    built = m.build(ticket_email(s, "bob@example.com", PDF, m.message_id(s.order.id)))
    parsed = email.message_from_bytes(built.as_bytes(), policy=email.policy.default)

    assert parsed["Message-ID"] == f"<tickets.{s.order.id}@boxoffice.test>"
    assert parsed["From"] == "Boxoffice <tickets@boxoffice.test>"
    assert parsed["To"] == "Bob Baker <bob@example.com>"
    assert parsed["Subject"].startswith("Your tickets: Spring Concert")
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Date"]
    parts = list(parsed.iter_parts())  # type: ignore[attr-defined]
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/pdf"]
    assert str(s.order.booking_id) in parts[0].get_content()
    assert parts[1].get_filename() == f"tickets-{s.order.booking_id}.pdf"
    assert parts[1].get_content() == PDF


def test_names_outside_ascii_are_encoded_in_headers() -> None:
    s = replace(source(), holder_name="Łucja Żak", event_name="Fête de la Musique")
    built = mailer().build(ticket_email(s, "lucja@example.com", PDF, "<id@boxoffice.test>"))
    raw = built.as_bytes()
    assert b"=?utf-8?" in raw  # RFC 2047 encoded words, never raw 8-bit headers
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["To"] == "Łucja Żak <lucja@example.com>"
    assert "Fête de la Musique" in parsed["Subject"]


@pytest.mark.parametrize("sender", ["", "tickets", "Boxoffice <tickets@>", "@boxoffice.test"])
def test_a_from_that_is_not_an_address_is_a_configuration_error(sender: str) -> None:
    with pytest.raises(ConfigurationError, match="BOXOFFICE_SMTP_FROM"):
        mailer(sender)


# -- the sending pass (fakes of the outbox and the mailer) ---------------------------------------


@dataclass
class Row:
    pending: PendingTicketEmail
    state: str = "pending"
    attempts: int = 0
    message_id: str | None = None
    error: str | None = None


@dataclass
class FakeOutbox:
    rows: dict[uuid.UUID, Row] = field(default_factory=dict)
    commits: int = 0

    def add(self, s: DocumentSource, recipient: str = "bob@example.com") -> uuid.UUID:
        self.rows[s.order.id] = Row(PendingTicketEmail(s, recipient, 0))
        return s.order.id

    def claim_due(self, *, due_only: bool = True) -> PendingTicketEmail | None:
        for row in self.rows.values():
            if row.state == "pending" and not (due_only and row.attempts):
                return row.pending
        return None

    def mark_sent(self, order_id: uuid.UUID, message_id: str) -> None:
        self.rows[order_id].state, self.rows[order_id].message_id = "sent", message_id

    def mark_failed(self, order_id: uuid.UUID, error: str, message_id: str) -> None:
        row = self.rows[order_id]
        row.attempts, row.error, row.message_id = row.attempts + 1, error, message_id

    def mark_undeliverable(self, order_id: uuid.UUID, error: str, message_id: str) -> None:
        row = self.rows[order_id]
        row.state, row.error, row.message_id = "undeliverable", error, message_id

    def mark_withdrawn(self, order_id: uuid.UUID) -> None:
        self.rows[order_id].state = "withdrawn"

    def pending_count(self) -> int:
        return sum(r.state == "pending" for r in self.rows.values())


@dataclass
class FakeTx:
    emails: FakeOutbox

    def commit(self) -> None:
        self.emails.commits += 1


def factory(outbox: FakeOutbox) -> TicketEmailUnitOfWorkFactory:
    @contextmanager
    def make() -> Iterator[FakeTx]:
        yield FakeTx(outbox)

    return make


@dataclass
class FakeMailer:
    fail: list[Exception] = field(default_factory=list)  # raised by the next sends, in turn
    sent: list[TicketEmail] = field(default_factory=list)

    def message_id(self, order_id: uuid.UUID) -> str:
        return message_id(order_id, "boxoffice.test")

    def send(self, mail: TicketEmail) -> None:
        if self.fail:
            raise self.fail.pop(0)
        self.sent.append(mail)


class Renderer:
    content_type = "application/pdf"

    def render(self, source: DocumentSource) -> bytes:
        return b"%PDF-" + str(source.order.id).encode()


def test_a_pending_email_is_sent_once_with_its_pdf_and_marked_sent() -> None:
    outbox, mail = FakeOutbox(), FakeMailer()
    order = outbox.add(source())

    assert ticket_emails.email_pass(factory(outbox), mail, Renderer()) is Progress.WORKED
    assert ticket_emails.email_pass(factory(outbox), mail, Renderer()) is Progress.IDLE

    [sent] = mail.sent
    assert (sent.order_id, sent.attachment) == (order, b"%PDF-" + str(order).encode())
    assert (outbox.rows[order].state, outbox.rows[order].message_id) == ("sent", sent.message_id)


def test_a_transient_failure_keeps_the_email_pending_and_ends_the_batch() -> None:
    outbox, mail = FakeOutbox(), FakeMailer(fail=[MailError("connection refused")])
    first, second = outbox.add(source()), outbox.add(source())

    assert ticket_emails.send_ticket_emails(factory(outbox), mail, Renderer()) == 0

    assert mail.sent == []
    assert outbox.rows[first].state == "pending"
    assert (outbox.rows[first].attempts, outbox.rows[first].error) == (1, "connection refused")
    assert outbox.rows[first].message_id == mail.message_id(first)
    assert outbox.rows[second].attempts == 0  # not tried: the server looked down
    # Later (the backoff elapsed), the same email goes with the same Message-ID.
    assert ticket_emails.send_ticket_emails(factory(outbox), mail, Renderer(), due_only=False) == 2
    assert [m.message_id for m in mail.sent] == [mail.message_id(first), mail.message_id(second)]


def test_a_permanent_refusal_sets_the_email_aside_and_the_batch_goes_on() -> None:
    outbox, mail = FakeOutbox(), FakeMailer(fail=[MailRejected("550 no such user")])
    refused, other = outbox.add(source()), outbox.add(source())

    assert ticket_emails.send_ticket_emails(factory(outbox), mail, Renderer()) == 2

    assert (outbox.rows[refused].state, outbox.rows[refused].error) == (
        "undeliverable",
        "550 no such user",
    )
    assert [m.order_id for m in mail.sent] == [other]
    assert ticket_emails.send_ticket_emails(factory(outbox), mail, Renderer()) == 0


def test_the_email_of_an_order_cancelled_before_it_went_out_is_withdrawn_not_sent() -> None:
    outbox, mail = FakeOutbox(), FakeMailer()
    order = outbox.add(source(status=OrderStatus.CANCELLED))

    assert ticket_emails.send_ticket_email(factory(outbox), mail, Renderer()) is True

    assert mail.sent == []
    assert outbox.rows[order].state == "withdrawn"


def test_a_full_batch_asks_for_another_pass_at_once() -> None:
    outbox, mail = FakeOutbox(), FakeMailer()
    for _ in range(3):
        outbox.add(source())
    assert ticket_emails.email_pass(factory(outbox), mail, Renderer(), batch=2) is Progress.MORE
    assert ticket_emails.email_pass(factory(outbox), mail, Renderer(), batch=2) is Progress.WORKED


@pytest.mark.parametrize(
    ("outcomes", "combined"),
    [
        ((Progress.IDLE, Progress.IDLE), Progress.IDLE),
        ((Progress.WORKED, Progress.IDLE), Progress.WORKED),
        ((Progress.IDLE, Progress.WORKED), Progress.WORKED),
        ((Progress.WORKED, Progress.MORE), Progress.MORE),
        ((Progress.MORE, Progress.IDLE), Progress.MORE),
    ],
)
def test_passes_in_turn_all_run_and_report_the_most_pressing_progress(
    outcomes: tuple[Progress, Progress], combined: Progress
) -> None:
    ran: list[int] = []

    def step(i: int) -> Progress:
        ran.append(i)
        return outcomes[i]

    assert in_turn(lambda: step(0), lambda: step(1))() is combined
    assert ran == [0, 1]
