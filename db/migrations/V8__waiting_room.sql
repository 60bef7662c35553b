-- The waiting room: fair, bounded admission to hot on-sales (docs/adr/0014-waiting-room.md):
-- schema. The rules are in R__waiting_room.sql.
--
-- An event in queue mode has a row in event_queue (set by an admin). Buyers join the line
-- (join_queue: one place per customer per event), a serving counter is advanced at the
-- configured rate by the admission controller's tick (advance_queues, every second), and
-- book_tickets (R__booking.sql) refuses a booking of a queue-mode event unless it carries an
-- unexpired admission of that customer for that event. Rules are one function each, refusals
-- are `refuse(slug, detail)` (R__booking.sql), and every write is guarded so that two ticks at
-- once (two controller replicas, a slow tick overlapping the next) admit nobody twice and keep
-- the rate.
--
-- Places come from a sequence per event (no row lock shared by all joiners: 10,000 joiners at
-- once are not serialised on one counter row). Before the on-sale time, a queue that randomises
-- early arrivals gives no place yet (`position` NULL); at opening the whole pre-queue is drawn
-- into a random order (gen_random_uuid(): PostgreSQL's strong random source), so arriving a
-- second earlier does not matter. Later arrivals are placed in arrival (FIFO) order after them.
--
-- Lock order: event_queue row (tick, admin), then queue_entry rows. book_tickets locks only the
-- buyer's own queue_entry row (after the event's share lock, before the per-customer count) and
-- reads event_queue without a lock.

CREATE TABLE event_queue (
    event_id          uuid PRIMARY KEY REFERENCES event (id) ON DELETE CASCADE,
    -- The on-sale time: nobody is admitted before it.
    opens_at          timestamptz   NOT NULL,
    -- Buyers admitted per second; NULL: automatic (the controller's share of the measured
    -- booking capacity, see BOXOFFICE_BOOKING_CAPACITY_PER_SECOND).
    admission_rate    numeric(8, 2) CHECK (admission_rate > 0 AND admission_rate <= 10000),
    -- How long an admission lasts (the purchase window).
    admission_seconds integer       NOT NULL CHECK (admission_seconds BETWEEN 30 AND 3600),
    -- Arrivals before opens_at are put in random order at opening (else FIFO throughout).
    randomise_early   boolean       NOT NULL DEFAULT true,
    -- Tickets an admitted buyer is expected to book: admission never runs more than
    -- ceil(seats left / this) ahead of the admissions still unused.
    tickets_per_buyer numeric(4, 2) NOT NULL DEFAULT 2 CHECK (tickets_per_buyer >= 1),
    -- The event's sequence of arrivals (created with the queue, dropped with it).
    arrivals          regclass      NOT NULL,
    -- The serving counter and its clock.
    drawn_at          timestamptz,                   -- when the pre-queue got its random order
    served_up_to      bigint        NOT NULL DEFAULT 0 CHECK (served_up_to >= 0),
    admitted          bigint        NOT NULL DEFAULT 0 CHECK (admitted >= 0),
    expired_unused    bigint        NOT NULL DEFAULT 0 CHECK (expired_unused >= 0),
    allowance         double precision NOT NULL DEFAULT 0 CHECK (allowance >= 0 AND allowance < 1),
    ticked_at         timestamptz,                   -- last advance of the counter
    current_rate      numeric(8, 2),                 -- the rate the last tick applied
    sold_out_at       timestamptz,                   -- the line stopped: no seats left
    created_at        timestamptz   NOT NULL DEFAULT now(),
    updated_at        timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX event_queue_active_idx ON event_queue (opens_at) WHERE sold_out_at IS NULL;

-- A customer's place in an event's line. Its id is the admission id the admission token names.
CREATE TABLE queue_entry (
    id          uuid        PRIMARY KEY,
    event_id    uuid        NOT NULL REFERENCES event_queue (event_id) ON DELETE CASCADE,
    customer_id uuid        NOT NULL REFERENCES customer (id),
    arrival     bigint      NOT NULL CHECK (arrival > 0),  -- order of joining
    position    bigint      CHECK (position > 0),          -- NULL: in the pre-queue, not drawn yet
    joined_at   timestamptz NOT NULL DEFAULT now(),
    admitted_at timestamptz,
    expires_at  timestamptz,
    used_at     timestamptz,                               -- first booking made with it
    CONSTRAINT queue_entry_one_per_customer UNIQUE (event_id, customer_id),
    CONSTRAINT queue_entry_arrival_unique UNIQUE (event_id, arrival),
    CONSTRAINT queue_entry_position_unique UNIQUE (event_id, position),
    CONSTRAINT queue_entry_admission_window CHECK ((admitted_at IS NULL) = (expires_at IS NULL)
                                                   AND expires_at > admitted_at),
    CONSTRAINT queue_entry_admitted_has_place CHECK (admitted_at IS NULL OR position IS NOT NULL),
    CONSTRAINT queue_entry_used_when_admitted CHECK (used_at IS NULL OR used_at >= admitted_at)
);
-- The line, in order (the tick admits from its head).
CREATE INDEX queue_entry_waiting_idx ON queue_entry (event_id, position) WHERE admitted_at IS NULL;
-- Admissions not used yet, by end of window (unexpired ones hold capacity; expired ones are
-- counted once, when their window ends).
CREATE INDEX queue_entry_unused_idx ON queue_entry (event_id, expires_at)
    WHERE admitted_at IS NOT NULL AND used_at IS NULL;
-- The pre-queue before the draw (and stragglers that joined while it was drawn).
CREATE INDEX queue_entry_undrawn_idx ON queue_entry (event_id) WHERE position IS NULL;
CREATE INDEX queue_entry_customer_idx ON queue_entry (customer_id);

-- The rules (configure_queue, join_queue, the tick advance_queues, check_admission, which
-- book_tickets applies) and the trigger that drops a queue's arrival sequence with it are in
-- R__waiting_room.sql: every function has one home, a repeatable migration
-- (docs/adr/0010-booking-rules-in-sql.md).
