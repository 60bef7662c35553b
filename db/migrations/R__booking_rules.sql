-- The booking rules (docs/adr/0010-booking-rules-in-sql.md): the current definitions of the
-- rules of POST /bookings, one function per rule, named as in the domain. A repeatable migration:
-- Flyway applies it after the versioned ones and again whenever this file changes, so a change
-- to a rule is an edit here (CREATE OR REPLACE), not a new copy of the function. Schema changes
-- stay in versioned migrations (V9__lean_booking.sql for what these definitions need).
--
-- First defined in V3__booking_in_one_round_trip.sql (book_tickets as redefined by
-- V8__waiting_room.sql); changed here for the lean booking (ADR 10, amendment): the SQL-language
-- rules became PL/pgSQL (a LANGUAGE sql function called from PL/pgSQL is parsed and planned
-- again in every transaction; PL/pgSQL keeps its plans for the connection's life), and the
-- Idempotency-Key row is written once, complete (no update at the end of the booking).
--
-- Refusals are `refuse(slug, detail)` (V3). Lock order, as before
-- (docs/adr/0002-hot-event-inventory.md): idempotency key, event (share), the customer's ticket
-- count, inventory shards by shard number.

-- Rule: count `quantity` more tickets against the customer's per-event limit (a guarded upsert;
-- false when that would pass `max_tickets`).
CREATE OR REPLACE FUNCTION count_customer_tickets(customer uuid, event uuid, quantity integer,
                                                  max_tickets integer)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF quantity > max_tickets THEN
        RETURN false;
    END IF;
    INSERT INTO customer_event_tickets AS t (customer_id, event_id, tickets)
    VALUES (customer, event, quantity)
    ON CONFLICT (customer_id, event_id) DO UPDATE
       SET tickets = t.tickets + EXCLUDED.tickets
     WHERE t.tickets + EXCLUDED.tickets <= max_tickets;
    RETURN FOUND;  -- no row inserted or updated: the guard refused
END;
$$;

-- The booking CloudEvent's data (dev.boxoffice.booking.created.v1 / cancelled.v1): written to
-- the outbox with the booking, read by consume_order (src/boxoffice/domain/orders.py).
CREATE OR REPLACE FUNCTION booking_event_data(b booking) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN jsonb_build_object(
        'bookingId', b.id,
        'eventId', b.event_id,
        'customerId', b.customer_id,
        'quantity', b.quantity,
        'unitPrice', jsonb_build_object('amount', b.unit_price::text, 'currency', b.currency::text),
        'total', jsonb_build_object('amount', b.total::text, 'currency', b.currency::text),
        'status', b.status);
END;
$$;

-- Rule: claim an Idempotency-Key for the current transaction and the booking it makes. NULL when
-- claimed (new, or expired and reused); otherwise the earlier record.
--
-- The claimed row is written complete at once (COMPLETED, 201, the booking's id): it commits
-- with the booking or, when the booking is refused, rolls back with everything else, so no other
-- transaction ever sees it before the booking exists (its reference to the booking is checked at
-- commit, V9). An earlier request still in flight holds the row (uncommitted): wait at most
-- `wait_ms` for it, then refuse `idempotency-key-in-use`. (The BEGIN ... EXCEPTION block costs a
-- subtransaction per booking; create_booking also answers a lock_not_available raised from here
-- with 409 idempotency-key-in-use, so a later version can let the error through instead, once
-- every running create_booking has that mapping.)
DROP FUNCTION IF EXISTS claim_idempotency_key(text, text, text, integer, integer);
CREATE OR REPLACE FUNCTION claim_idempotency_key(scope text, key text, request_hash text,
                                                 ttl_hours integer, wait_ms integer,
                                                 booking uuid)
RETURNS idempotency_record
LANGUAGE plpgsql AS $$
DECLARE
    claimed boolean;
    saved text := current_setting('lock_timeout');
    ignored text;
    earlier idempotency_record;
BEGIN
    BEGIN
        ignored := set_config('lock_timeout', wait_ms || 'ms', true);
        INSERT INTO idempotency_record AS r (scope, key, request_hash, state, response_status,
                                             booking_id, expires_at)
        VALUES (scope, key, request_hash, 'COMPLETED', 201, booking,
                now() + make_interval(hours => ttl_hours))
        ON CONFLICT ON CONSTRAINT idempotency_record_pkey DO UPDATE
           SET request_hash = EXCLUDED.request_hash, state = EXCLUDED.state,
               response_status = EXCLUDED.response_status, response_headers = NULL,
               response_body = NULL, booking_id = EXCLUDED.booking_id, created_at = now(),
               expires_at = EXCLUDED.expires_at
         WHERE r.expires_at <= now()  -- an expired key is reused
        RETURNING true INTO claimed;
        ignored := set_config('lock_timeout', saved, true);
    EXCEPTION WHEN lock_not_available THEN
        PERFORM refuse('idempotency-key-in-use',
                       'a request with this Idempotency-Key is still being processed; retry shortly');
    END;
    IF claimed THEN
        RETURN NULL;
    END IF;
    SELECT * INTO earlier FROM idempotency_record r WHERE r.scope = $1 AND r.key = $2;
    RETURN earlier;
END;
$$;

-- POST /bookings: the whole transaction (V3, with the admission rule of V8). Returns the booking
-- (replayed = false), or for a key already completed with the same request the booking it
-- created (replayed = true; keys completed before V3: booking NULL and the stored response
-- instead). The admission parameters default to NULL: only events in queue mode need them.
CREATE OR REPLACE FUNCTION book_tickets(
    scope text,               -- the caller's subject (token `sub`): keys are per caller
    idempotency_key text,
    request_hash text,
    ttl_hours integer,
    key_wait_ms integer,
    new_booking_id uuid,
    event uuid,
    quantity integer,
    max_tickets_per_customer integer,
    start_shard integer,      -- random: where the search for a shard with room begins
    topic text,
    event_source text,
    admission uuid DEFAULT NULL,                -- what a verified admission token proves
    admission_event uuid DEFAULT NULL,
    admission_subject text DEFAULT NULL,
    admission_expires timestamptz DEFAULT NULL)
RETURNS TABLE (replayed boolean, booking booking, stored_status integer, stored_headers jsonb,
               stored_body jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    earlier idempotency_record;
    buyer uuid;
    ev record;
    made booking;
BEGIN
    -- The key, claimed for the booking this call makes (written complete: see the rule).
    earlier := claim_idempotency_key(scope, idempotency_key, request_hash, ttl_hours,
                                     key_wait_ms, new_booking_id);
    IF earlier.scope IS NOT NULL THEN  -- (a row IS NOT NULL only if no field is null)
        IF earlier.request_hash <> book_tickets.request_hash THEN
            PERFORM refuse('idempotency-key-reused',
                           'this Idempotency-Key was used with a different request; use a new key');
        END IF;
        IF earlier.state <> 'COMPLETED' THEN
            PERFORM refuse('idempotency-key-in-use', 'retry once the first request has finished');
        END IF;
        replayed := true;
        SELECT b.* INTO made FROM booking b WHERE b.id = earlier.booking_id;
        booking := made;
        stored_status := earlier.response_status;
        stored_headers := earlier.response_headers;
        stored_body := earlier.response_body;
        RETURN NEXT;
        RETURN;
    END IF;

    SELECT c.id INTO buyer FROM customer c WHERE c.subject = scope;
    IF buyer IS NULL THEN
        PERFORM refuse('registration-required',
                       'register your customer profile with PUT /customers/me before booking');
    END IF;

    -- Share-locked until commit: an event cannot be cancelled in the middle of a purchase.
    SELECT e.ticket_price, e.currency, e.status, e.starts_at <= now() AS started
      INTO ev FROM event e WHERE e.id = book_tickets.event FOR SHARE;
    IF NOT FOUND THEN
        PERFORM refuse('not-found', format('event %s does not exist', event));
    ELSIF ev.status = 'CANCELLED' THEN
        PERFORM refuse('event-not-on-sale', format('event %s is cancelled', event));
    ELSIF ev.started THEN
        PERFORM refuse('event-not-on-sale', format('event %s is already started', event));
    END IF;

    PERFORM check_admission(event, scope, buyer, admission, admission_event, admission_subject,
                            admission_expires);

    IF NOT count_customer_tickets(buyer, event, quantity, max_tickets_per_customer) THEN
        PERFORM refuse('ticket-limit-exceeded',
                       format('a customer may hold at most %s tickets for event %s',
                              max_tickets_per_customer, event));
    END IF;

    INSERT INTO booking (id, customer_id, event_id, quantity, unit_price, currency)
    VALUES (new_booking_id, buyer, event, quantity, ev.ticket_price, ev.currency)
    RETURNING * INTO made;
    INSERT INTO booking_allocation (booking_id, event_id, shard, quantity)
    SELECT new_booking_id, event, r.shard, r.seats
      FROM reserve_seats(event, quantity, start_shard) r;

    -- booking.created: its CloudEvent id is the booking id (a re-published row is a duplicate the
    -- consumer recognises); keyed by booking id so one booking's events stay in order.
    INSERT INTO outbox (id, topic, record_key, event_type, event_source, event_time, payload)
    VALUES (made.id, topic, made.id::text, 'dev.boxoffice.booking.created.v1', event_source,
            made.created_at, booking_event_data(made));

    replayed := false;
    booking := made;
    RETURN NEXT;
END;
$$;
