"""`TicketMailer` over SMTP with the standard library (smtplib, email.message.EmailMessage):
one connection per email, STARTTLS and authentication when configured
(docs/adr/0019-tickets-by-email.md).

A reply of 5xx to the recipient or to the message is permanent (`MailRejected`: the outbox
row is set aside as undeliverable); anything else that fails (no connection, timeout, 4xx, a
refused sender or login: our configuration, not this email) is `MailError`, retried later.
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, localtime, parseaddr

from boxoffice.domain.ticket_emails import TicketEmail, message_id
from boxoffice.errors import ConfigurationError
from boxoffice.services.ports import MailError, MailRejected

DEPENDENCY = "smtp"


class SmtpTicketMailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str = "",
        password: str = "",
        starttls: bool = True,
        timeout: float = 10.0,
    ) -> None:
        name, address = parseaddr(sender)
        if "@" not in address or address.startswith("@") or address.endswith("@"):
            raise ConfigurationError(
                f"BOXOFFICE_SMTP_FROM must be an email address (Name <user@domain>), got {sender!r}"
            )
        self.host, self.port = host, port
        self._sender = Address(display_name=name, addr_spec=address)
        self._domain = address.rsplit("@", 1)[1]
        self._username, self._password = username, password
        self._starttls = starttls
        self._timeout = timeout

    def message_id(self, order_id: uuid.UUID) -> str:
        return message_id(order_id, self._domain)

    def build(self, email: TicketEmail) -> EmailMessage:
        """The MIME message: the plain-text body and the PDF attached."""
        msg = EmailMessage()
        msg["From"] = self._sender
        msg["To"] = Address(display_name=email.recipient_name, addr_spec=email.recipient)
        msg["Subject"] = email.subject
        msg["Date"] = format_datetime(localtime())
        msg["Message-ID"] = email.message_id
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
        msg.set_content(email.body)
        maintype, _, subtype = email.attachment_type.partition("/")
        msg.add_attachment(
            email.attachment, maintype=maintype, subtype=subtype, filename=email.attachment_name
        )
        return msg

    def send(self, email: TicketEmail) -> None:
        msg = self.build(email)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            error = "recipient refused: " + "; ".join(
                f"{code} {_text(text)}" for code, text in exc.recipients.values()
            )
            if codes and all(code >= 500 for code in codes):
                raise MailRejected(error) from exc
            raise MailError(error) from exc
        except smtplib.SMTPDataError as exc:
            error = f"message refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            if exc.smtp_code >= 500:
                raise MailRejected(error) from exc
            raise MailError(error) from exc
        except smtplib.SMTPResponseException as exc:  # sender, login, STARTTLS, greeting
            raise MailError(f"{exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except (smtplib.SMTPException, OSError) as exc:  # no connection, timeout, TLS failure
            raise MailError(f"{type(exc).__name__}: {exc}") from exc


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
