-- Checkout (issue 22; docs/adr/0020-checkout-state-machine.md): ticket categories, seat holds,
-- payments, refunds and the provider's webhook events. Schema and data only; the rules are in
-- R__booking.sql (categories, holds), R__payments.sql (payments, refunds) and R__inventory.sql
-- (the capacity guard, now per category).

-- A category of tickets of an event: its own price and its own capacity (Standing 25.00 x 2000,
-- Seated 40.00 x 800, ...). The event's capacity is the sum of its categories'; each category's
-- seats are held in inventory shards of its own (event_inventory.category_id); both sums are
-- checked at every commit (R__inventory.sql). The currency stays the event's.
CREATE TABLE ticket_category (
    id          uuid           PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id    uuid           NOT NULL REFERENCES event (id) ON DELETE CASCADE,
    name        text           NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    price       numeric(12, 2) NOT NULL CHECK (price >= 0),
    capacity    integer        NOT NULL CHECK (capacity > 0),
    position    smallint       NOT NULL DEFAULT 0 CHECK (position >= 0),
    created_at  timestamptz    NOT NULL DEFAULT now(),
    CONSTRAINT ticket_category_name_unique UNIQUE (event_id, name),
    CONSTRAINT ticket_category_of_event UNIQUE (event_id, id)
);

-- Whether the event's priced tickets are paid online: a booking of a priced category is then a
-- hold until its payment arrives. Without it (every event before V12) a booking is confirmed as
-- soon as its seats are reserved, and paid elsewhere (at the door, by invoice).
ALTER TABLE event ADD COLUMN online_payment boolean NOT NULL DEFAULT false;

-- Every existing event becomes one category, "General admission", at its price and capacity;
-- its shards and its bookings belong to it.
INSERT INTO ticket_category (event_id, name, price, capacity)
SELECT e.id, 'General admission', e.ticket_price, e.capacity FROM event e;

ALTER TABLE event_inventory ADD COLUMN category_id uuid;
UPDATE event_inventory i SET category_id = c.id
  FROM ticket_category c WHERE c.event_id = i.event_id;
ALTER TABLE event_inventory
    ALTER COLUMN category_id SET NOT NULL,
    ADD CONSTRAINT event_inventory_category_fk FOREIGN KEY (event_id, category_id)
        REFERENCES ticket_category (event_id, id) ON DELETE CASCADE;
CREATE INDEX event_inventory_category_idx ON event_inventory (category_id, shard);

-- A booking's category, and its hold: HELD (seats reserved, waiting for payment until
-- hold_expires_at) -> PENDING (paid, published) or EXPIRED (released by the housekeeping
-- schedule or by a payment that came too late) or CANCELLED (by the buyer).
ALTER TABLE booking ADD COLUMN category_id uuid;
UPDATE booking b SET category_id = c.id FROM ticket_category c WHERE c.event_id = b.event_id;
ALTER TABLE booking
    ALTER COLUMN category_id SET NOT NULL,
    ADD CONSTRAINT booking_category_fk FOREIGN KEY (event_id, category_id)
        REFERENCES ticket_category (event_id, id),
    ADD COLUMN hold_expires_at timestamptz,
    ADD COLUMN expired_at timestamptz,
    DROP CONSTRAINT booking_status_check,
    ADD CONSTRAINT booking_status_check
        CHECK (status IN ('HELD', 'PENDING', 'CONFIRMED', 'CANCELLED', 'EXPIRED')),
    ADD CONSTRAINT booking_held_until CHECK (status <> 'HELD' OR hold_expires_at IS NOT NULL),
    ADD CONSTRAINT booking_expired_has_time CHECK ((status = 'EXPIRED') = (expired_at IS NOT NULL));
-- The housekeeping schedule's expiry pass: the oldest lapsed holds first.
CREATE INDEX booking_hold_expiry_idx ON booking (hold_expires_at) WHERE status = 'HELD';

-- A payment of a booking at the provider (Stripe: a PaymentIntent). Recorded when the buyer starts
-- paying and updated by the provider's webhook events. `applied`: this payment paid for its
-- booking (at most one per booking: a second payment of the same booking is refunded).
CREATE TABLE payment (
    id            text           PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    booking_id    uuid           NOT NULL REFERENCES booking (id),
    provider      text           NOT NULL CHECK (length(provider) BETWEEN 1 AND 50),
    amount        numeric(14, 2) NOT NULL CHECK (amount >= 0),
    currency      char(3)        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status        text           NOT NULL
                  CHECK (status IN ('AWAITING_PAYMENT', 'SUCCEEDED', 'FAILED', 'CANCELED')),
    applied       boolean        NOT NULL DEFAULT false,
    created_at    timestamptz    NOT NULL DEFAULT now(),
    updated_at    timestamptz    NOT NULL DEFAULT now(),
    succeeded_at  timestamptz,
    CONSTRAINT payment_applied_succeeded CHECK (NOT applied OR status = 'SUCCEEDED'),
    CONSTRAINT payment_succeeded_has_time CHECK ((status = 'SUCCEEDED') = (succeeded_at IS NOT NULL))
);
CREATE UNIQUE INDEX payment_one_applied_per_booking ON payment (booking_id) WHERE applied;
CREATE INDEX payment_booking_idx ON payment (booking_id);

-- Money given back from a payment. Our id is the idempotency key of the provider call, so a
-- retried refund is never paid twice; REQUESTED rows are sent by whoever wrote them and, failing
-- that, by the housekeeping schedule (next_attempt_at). The refunds of a payment never add up to
-- more than it (checked under the payment's lock by request_refund, R__payments.sql, and by the
-- invariant checker).
CREATE TABLE refund (
    id                  uuid           PRIMARY KEY,
    payment_id          text           NOT NULL REFERENCES payment (id),
    booking_id          uuid           NOT NULL REFERENCES booking (id),
    amount              numeric(14, 2) NOT NULL CHECK (amount > 0),
    currency            char(3)        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    reason              text           NOT NULL CHECK (reason IN ('BOOKING_CANCELLED', 'HOLD_EXPIRED',
                                           'DUPLICATE_PAYMENT', 'AMOUNT_MISMATCH', 'EVENT_CANCELLED')),
    status              text           NOT NULL DEFAULT 'REQUESTED'
                        CHECK (status IN ('REQUESTED', 'SUCCEEDED', 'FAILED')),
    provider_refund_id  text,
    attempts            integer        NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at     timestamptz    NOT NULL DEFAULT now(),
    last_error          text,
    created_at          timestamptz    NOT NULL DEFAULT now(),
    completed_at        timestamptz,
    CONSTRAINT refund_completed_has_time CHECK ((status = 'REQUESTED') = (completed_at IS NULL))
);
CREATE INDEX refund_due_idx ON refund (next_attempt_at) WHERE status = 'REQUESTED';
CREATE INDEX refund_payment_idx ON refund (payment_id);
CREATE INDEX refund_booking_idx ON refund (booking_id);
CREATE UNIQUE INDEX refund_provider_id_unique ON refund (provider_refund_id)
    WHERE provider_refund_id IS NOT NULL;

-- Every webhook event taken from the provider, once: a redelivered event (same id) is recognised
-- here and changes nothing.
CREATE TABLE payment_event (
    id           text        PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    type         text        NOT NULL,
    payment_id   text,
    booking_id   uuid,
    outcome      text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_event_payment_idx ON payment_event (payment_id);
