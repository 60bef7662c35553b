-- Check-in at the door (check_in function). See docs/adr/0015-tickets-and-check-in.md.
--
-- Exactly once: a ticket is admitted at most once because `check_in.ticket_id` is its primary key
-- and the only writer, check_in_ticket() below, inserts with ON CONFLICT DO NOTHING: of two gates
-- scanning the same code at the same moment one inserts, the other waits for its commit and then
-- finds the row. A scan is identified by the client's `scan_id`: the same scan sent again (a retry
-- after a network failure) is answered with the admission it made, never with a refusal.

-- One row per admitted ticket: when, where, by whom, and whether the gate was offline (then
-- `admitted_at` is the device's scan time and `recorded_at` the upload time).
CREATE TABLE check_in (
    ticket_id   uuid        PRIMARY KEY REFERENCES ticket (id),
    booking_id  uuid        NOT NULL REFERENCES booking (id),
    event_id    uuid        NOT NULL REFERENCES event (id),
    scan_id     uuid        NOT NULL,
    gate        text        NOT NULL CHECK (length(gate) BETWEEN 1 AND 100),
    scanner     text        NOT NULL CHECK (length(scanner) BETWEEN 1 AND 255),
    offline     boolean     NOT NULL DEFAULT false,
    admitted_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX check_in_event_idx ON check_in (event_id, gate);
CREATE INDEX check_in_booking_idx ON check_in (booking_id);

-- Scans that an offline gate admitted for a ticket that had already been admitted elsewhere (or
-- earlier): reported when the gate uploads them, and kept here for the organiser (the same
-- upload sent again records nothing new: keyed by the scan).
CREATE TABLE check_in_conflict (
    ticket_id   uuid        NOT NULL REFERENCES ticket (id),
    scan_id     uuid        NOT NULL,
    event_id    uuid        NOT NULL REFERENCES event (id),
    gate        text        NOT NULL CHECK (length(gate) BETWEEN 1 AND 100),
    scanner     text        NOT NULL CHECK (length(scanner) BETWEEN 1 AND 255),
    scanned_at  timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ticket_id, scan_id)
);
CREATE INDEX check_in_conflict_event_idx ON check_in_conflict (event_id);

-- The scan (check_in_ticket) and the guard that refuses cancelling a booking with a checked-in
-- ticket (trigger booking_no_cancel_after_check_in) are in R__check_in.sql: every function has
-- one home, a repeatable migration (docs/adr/0010-booking-rules-in-sql.md).
