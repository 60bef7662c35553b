-- Tickets by email (issue 22 item 5, docs/adr/0019-tickets-by-email.md). Schema only; the SQL of
-- the outbox is in src/boxoffice/adapters/postgres_orders.py.
--
-- One row per order, so one email per order: the primary key is the order's id. The row is
-- written in the transaction that marks the order's ticket document stored (the PDF exists), for
-- a CONFIRMED order only; the document worker's email pass claims due rows (FOR UPDATE SKIP
-- LOCKED), sends the email with the PDF attached and marks the row sent, or pushes its next
-- attempt back (exponential, capped). `message_id` is the Message-ID the email was sent with
-- (derived from the order id: the same on every attempt, so a resend after a crash between the
-- SMTP server's acceptance and this row's update is recognisable as the same message).
-- State `undeliverable`: the SMTP server refused the recipient or the message for good (5xx);
-- never retried by itself. `withdrawn`: the order was cancelled before its email went out.
-- Orders are never deleted by the application; a row deleted by hand (or by a test's cleanup)
-- takes its email obligation with it (ON DELETE CASCADE).
CREATE TABLE ticket_email (
    order_id        uuid        PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sent', 'undeliverable', 'withdrawn')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    message_id      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CONSTRAINT ticket_email_sent_at CHECK ((state = 'sent') = (sent_at IS NOT NULL)),
    CONSTRAINT ticket_email_sent_with_message_id CHECK (state <> 'sent' OR message_id IS NOT NULL)
);

-- The email pass claims the most overdue pending rows; the pending gauge counts them.
CREATE INDEX ticket_email_due_idx ON ticket_email (next_attempt_at) WHERE state = 'pending';
