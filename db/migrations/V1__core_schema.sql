-- Boxoffice core schema.
-- Invariants live here, not only in code: capacity can never go negative or above total,
-- one order per booking, one outbox row per event, money is NUMERIC (never float).

CREATE TABLE venue (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    address     text        NOT NULL CHECK (length(address) BETWEEN 1 AND 500),
    city        text        NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    capacity    integer     NOT NULL CHECK (capacity > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE event (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    venue_id      uuid          NOT NULL REFERENCES venue (id),
    name          text          NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description   text          NOT NULL DEFAULT '' CHECK (length(description) <= 5000),
    starts_at     timestamptz   NOT NULL,
    ticket_price  numeric(12, 2) NOT NULL CHECK (ticket_price >= 0),
    currency      char(3)       NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- Total capacity. What is left is held in event_inventory (split over shards so that a hot
    -- event is not one contended row); the sum of the shards' capacity always equals this.
    capacity      integer       NOT NULL CHECK (capacity > 0),
    status        text          NOT NULL DEFAULT 'ON_SALE'
                  CHECK (status IN ('ON_SALE', 'CANCELLED')),
    version       integer       NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at    timestamptz   NOT NULL DEFAULT now(),
    updated_at    timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX event_starts_at_idx ON event (starts_at, id);
CREATE INDEX event_venue_idx ON event (venue_id, starts_at);

-- Remaining capacity, split into shards. The guarded write on the purchase path is
--   UPDATE event_inventory SET sold = sold + n WHERE ... AND sold + n <= capacity
-- and the CHECK below makes overselling impossible even for a buggy writer.
CREATE TABLE event_inventory (
    event_id  uuid     NOT NULL REFERENCES event (id) ON DELETE CASCADE,
    shard     smallint NOT NULL CHECK (shard >= 0),
    capacity  integer  NOT NULL CHECK (capacity >= 0),
    sold      integer  NOT NULL DEFAULT 0,
    PRIMARY KEY (event_id, shard),
    CONSTRAINT inventory_sold_within_capacity CHECK (sold >= 0 AND sold <= capacity)
) WITH (fillfactor = 70);  -- room for HOT updates of the hot rows

-- The shards of an event must add up to the event's capacity at commit time: the deferred
-- constraint triggers inventory_matches_capacity and event_capacity_matches_inventory and their
-- function check_inventory_matches_capacity() are in R__inventory.sql (every function has one
-- home, a repeatable migration: docs/adr/0010-booking-rules-in-sql.md).

CREATE TABLE customer (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The Keycloak subject (token `sub`): identity always comes from the token.
    subject      text        NOT NULL UNIQUE CHECK (length(subject) BETWEEN 1 AND 255),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email        text        NOT NULL CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254),
    address_line1 text       NOT NULL CHECK (length(address_line1) BETWEEN 1 AND 200),
    address_line2 text       NOT NULL DEFAULT '' CHECK (length(address_line2) <= 200),
    postal_code  text        NOT NULL CHECK (length(postal_code) BETWEEN 1 AND 20),
    city         text        NOT NULL CHECK (length(city) BETWEEN 1 AND 100),
    country      char(2)     NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE booking (
    id           uuid PRIMARY KEY,
    customer_id  uuid           NOT NULL REFERENCES customer (id),
    event_id     uuid           NOT NULL REFERENCES event (id),
    quantity     integer        NOT NULL CHECK (quantity > 0),
    unit_price   numeric(12, 2) NOT NULL CHECK (unit_price >= 0),
    currency     char(3)        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total        numeric(14, 2) GENERATED ALWAYS AS (unit_price * quantity) STORED,
    status       text           NOT NULL DEFAULT 'PENDING'
                 CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    created_at   timestamptz    NOT NULL DEFAULT now(),
    updated_at   timestamptz    NOT NULL DEFAULT now(),
    cancelled_at timestamptz,
    CONSTRAINT booking_cancelled_has_time CHECK ((status = 'CANCELLED') = (cancelled_at IS NOT NULL))
);
CREATE INDEX booking_customer_idx ON booking (customer_id, created_at DESC, id);
CREATE INDEX booking_event_idx ON booking (event_id);

-- Which inventory shards a booking took its seats from (so a cancellation returns them exactly).
CREATE TABLE booking_allocation (
    booking_id uuid     NOT NULL REFERENCES booking (id) ON DELETE CASCADE,
    event_id   uuid     NOT NULL,
    shard      smallint NOT NULL,
    quantity   integer  NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (booking_id, shard),
    FOREIGN KEY (event_id, shard) REFERENCES event_inventory (event_id, shard)
);

-- Tickets a customer holds per event (anti-scalping limit, enforced by a guarded upsert).
CREATE TABLE customer_event_tickets (
    customer_id uuid    NOT NULL REFERENCES customer (id),
    event_id    uuid    NOT NULL REFERENCES event (id),
    tickets     integer NOT NULL CHECK (tickets >= 0),
    PRIMARY KEY (customer_id, event_id)
);

CREATE TABLE orders (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    booking_id         uuid        NOT NULL REFERENCES booking (id),
    status             text        NOT NULL DEFAULT 'CONFIRMED'
                       CHECK (status IN ('CONFIRMED', 'CANCELLED')),
    confirmed_at       timestamptz NOT NULL DEFAULT now(),
    cancelled_at       timestamptz,
    document_key       text,
    document_stored_at timestamptz,
    CONSTRAINT orders_one_per_booking UNIQUE (booking_id)
);

CREATE TABLE ticket (
    id         uuid PRIMARY KEY,
    order_id   uuid    NOT NULL REFERENCES orders (id),
    seq        integer NOT NULL CHECK (seq > 0),
    code       text    NOT NULL UNIQUE,
    status     text    NOT NULL DEFAULT 'VALID' CHECK (status IN ('VALID', 'CANCELLED')),
    CONSTRAINT ticket_seq_unique UNIQUE (order_id, seq)
);

-- Transactional outbox: written in the same transaction as the booking, published by the relay.
CREATE TABLE outbox (
    id             uuid PRIMARY KEY,            -- the CloudEvent id
    topic          text        NOT NULL,
    record_key     text        NOT NULL,
    event_type     text        NOT NULL,
    event_source   text        NOT NULL,
    event_time     timestamptz NOT NULL,
    payload        jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    attempts       integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0)
);
CREATE INDEX outbox_unpublished_idx ON outbox (created_at) WHERE published_at IS NULL;

-- Idempotency records for POST/DELETE requests, scoped to the caller.
CREATE TABLE idempotency_record (
    scope            text        NOT NULL,     -- the customer's subject
    key              text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash     text        NOT NULL,
    state            text        NOT NULL CHECK (state IN ('IN_PROGRESS', 'COMPLETED')),
    response_status  integer     CHECK (response_status BETWEEN 100 AND 599),
    response_headers jsonb,
    response_body    jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (scope, key),
    CONSTRAINT idempotency_completed_has_response
        CHECK ((state = 'COMPLETED') = (response_status IS NOT NULL))
);
CREATE INDEX idempotency_expiry_idx ON idempotency_record (expires_at);
