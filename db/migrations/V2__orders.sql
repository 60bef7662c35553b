-- Order processing (consume_order): bookkeeping for idempotent consumption and for ticket
-- documents that still have to reach S3. See docs/adr/0007-order-processing.md.

-- Every booking CloudEvent consume_order has committed, keyed by its CloudEvent identity
-- (source, id): a redelivery finds its row and changes nothing. `outcome` records what the
-- event did, including why an event was a no-op (e.g. the booking was already cancelled).
CREATE TABLE order_event (
    event_source text        NOT NULL CHECK (length(event_source) BETWEEN 1 AND 1000),
    event_id     text        NOT NULL CHECK (length(event_id) BETWEEN 1 AND 1000),
    event_type   text        NOT NULL,
    booking_id   uuid        NOT NULL REFERENCES booking (id),
    outcome      text        NOT NULL CHECK (outcome IN (
                     'CONFIRMED',                 -- order and tickets issued, booking confirmed
                     'ALREADY_CONFIRMED',         -- another event had already created the order
                     'SKIPPED_BOOKING_CANCELLED', -- cancel overtook confirm: no order issued
                     'ORDER_CANCELLED',           -- order and its tickets cancelled
                     'NO_ORDER_TO_CANCEL',        -- cancelled before any order existed
                     'ALREADY_CANCELLED')),
    event_time   timestamptz,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_source, event_id)
);
CREATE INDEX order_event_booking_idx ON order_event (booking_id);

-- Ticket documents: the upload happens after the order's commit and is retried until it works.
ALTER TABLE orders
    ADD COLUMN document_attempts   integer NOT NULL DEFAULT 0 CHECK (document_attempts >= 0),
    ADD COLUMN document_last_error text,
    ADD COLUMN document_next_try_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX orders_document_pending_idx ON orders (document_next_try_at)
    WHERE document_stored_at IS NULL;

-- A ticket's cancellation time (status CANCELLED <=> cancelled_at set).
ALTER TABLE ticket
    ADD COLUMN cancelled_at timestamptz,
    ADD CONSTRAINT ticket_cancelled_has_time CHECK ((status = 'CANCELLED') = (cancelled_at IS NOT NULL));

-- A cancelled order has its time.
ALTER TABLE orders
    ADD CONSTRAINT orders_cancelled_has_time CHECK ((status = 'CANCELLED') = (cancelled_at IS NOT NULL));
