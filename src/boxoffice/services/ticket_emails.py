"""Tickets by email: after an order's ticket document is stored, its buyer gets one email with
the PDF attached (docs/adr/0019-tickets-by-email.md).

The outbox is `ticket_email` (V11), one row per order, written in the transaction that marks the
order's document stored. The document worker (`boxoffice.background.BackgroundWorker`, in
consume_order's process or `python -m boxoffice.processes.documents`) runs `email_pass` after
each `document_pass`: claim a due row (SKIP LOCKED), render the order's PDF again from the
database (the same tickets as the stored document, no S3 read), send, mark sent, all in the
claim's transaction. A transient failure pushes the row's next attempt back (exponential,
capped) and ends the pass (the server looks down); a permanent refusal (5xx) sets the row aside
as undeliverable; an order cancelled before its email went out withdraws it.
"""

from __future__ import annotations

import logging

from boxoffice import metrics
from boxoffice.domain.orders import OrderStatus
from boxoffice.domain.ticket_emails import ticket_email
from boxoffice.services.ports import (
    DocumentRenderer,
    MailError,
    MailRejected,
    Progress,
    TicketEmailUnitOfWorkFactory,
    TicketMailer,
)

log = logging.getLogger("boxoffice.ticket_emails")


def send_ticket_email(
    uow: TicketEmailUnitOfWorkFactory,
    mailer: TicketMailer,
    renderer: DocumentRenderer,
    *,
    due_only: bool = True,
) -> bool | None:
    """Send the most overdue pending ticket email: True when it was dealt with (sent, set aside
    as undeliverable, or withdrawn), False when sending failed for now (retried later), None when
    none was due. Never raises for a mail failure."""
    with uow() as tx:
        pending = tx.emails.claim_due(due_only=due_only)
        if pending is None:
            return None
        order = pending.source.order
        if order.status is not OrderStatus.CONFIRMED:
            tx.emails.mark_withdrawn(order.id)
            tx.commit()
            metrics.TICKET_EMAILS.labels("withdrawn").inc()
            return True
        message_id = mailer.message_id(order.id)
        email = ticket_email(
            pending.source, pending.recipient, renderer.render(pending.source), message_id
        )
        try:
            mailer.send(email)
        except MailRejected as exc:
            log.warning("ticket email of order %s refused for good: %s", order.id, exc)
            tx.emails.mark_undeliverable(order.id, str(exc), message_id)
            tx.commit()
            metrics.TICKET_EMAILS.labels("undeliverable").inc()
            return True
        except MailError as exc:
            log.warning("ticket email of order %s not sent (will retry): %s", order.id, exc)
            tx.emails.mark_failed(order.id, str(exc), message_id)
            tx.commit()
            metrics.TICKET_EMAILS.labels("failed").inc()
            return False
        tx.emails.mark_sent(order.id, message_id)
        tx.commit()
    metrics.TICKET_EMAILS.labels("sent").inc()
    return True


def send_ticket_emails(
    uow: TicketEmailUnitOfWorkFactory,
    mailer: TicketMailer,
    renderer: DocumentRenderer,
    limit: int = 20,
    *,
    due_only: bool = True,
) -> int:
    """Deal with up to `limit` due emails; stops at the first failure (the mail server looks
    down). Returns how many were dealt with."""
    done = 0
    for _ in range(limit):
        if not send_ticket_email(uow, mailer, renderer, due_only=due_only):
            break
        done += 1
    return done


def email_pass(
    uow: TicketEmailUnitOfWorkFactory,
    mailer: TicketMailer,
    renderer: DocumentRenderer,
    batch: int = 20,
) -> Progress:
    """One pass of the email sender (run by the document worker after its document pass): up
    to `batch` due emails, then the pending gauge. MORE when the batch was full."""
    done = send_ticket_emails(uow, mailer, renderer, batch)
    with uow() as tx:
        metrics.TICKET_EMAILS_PENDING.set(tx.emails.pending_count())
    if done == batch:
        return Progress.MORE
    return Progress.WORKED if done else Progress.IDLE
