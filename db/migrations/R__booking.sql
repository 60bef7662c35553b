-- The booking rules (docs/adr/0010-booking-rules-in-sql.md): POST /bookings and
-- DELETE /bookings/{id}, one PL/pgSQL function per rule, named as in the domain. The only
-- definition of each: a repeatable migration, so Flyway applies it after the versioned ones and
-- again whenever this file changes; a change to a rule is an edit here (CREATE OR REPLACE; a
-- changed signature also drops the old one below), never a new copy. Schema stays in the
-- versioned migrations (V1, V3, V9). Each rule is tested directly (tests/integration/
-- test_booking_rules.py), and its refusals and names against Python (test_sql_contract.py).
--
-- Each call is made on an autocommit connection, so it is its own transaction: it commits when
-- the function returns and rolls back entirely when it raises. A refusal is `refuse(slug,
-- detail)` (below): SQLSTATE P0001 with the problem slug as message; the Python adapter maps the
-- slug onto the one error hierarchy (src/boxoffice/errors.py). The schema's CHECK constraints
-- stay the last guard behind every write.
--
-- Lock order (docs/adr/0002-hot-event-inventory.md): idempotency key, event (share), booking,
-- the customer's ticket count, inventory shards by shard number.
--
-- History: first written in V3 (2 round trips -> 1), book_tickets redefined in V8 (the admission
-- rule), then here as R__booking_rules.sql for the lean booking (ADR 10, amendment: SQL-language
-- rules became PL/pgSQL, the Idempotency-Key row written once, complete). Since issue 20 every
-- function lives only in an R__<area>.sql file (ADR 10, amendment "one home per rule").

-- Signatures that earlier versions had and that no longer exist (a database migrated before
-- them still has them).
DROP FUNCTION IF EXISTS claim_idempotency_key(text, text, text, integer, integer);
DROP FUNCTION IF EXISTS book_tickets(text, text, text, integer, integer, uuid, uuid, integer,
                                     integer, integer, text, text);
DROP FUNCTION IF EXISTS book_tickets(text, text, text, integer, integer, uuid, uuid, integer,
                                     integer, integer, text, text, uuid, uuid, text, timestamptz);
DROP FUNCTION IF EXISTS reserve_seats(uuid, integer, integer);

-- Refuse: abort the whole call with a problem slug the adapter maps to an error class.
CREATE OR REPLACE FUNCTION refuse(slug text, detail text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'raise_exception', MESSAGE = slug, DETAIL = detail;
END;
$$;

-- Rule: where `quantity` seats come from, given each shard's free seats (shards in shard order).
-- One shard when any has room: the first such shard from `start` on, wrapping around (so
-- concurrent buyers spread over the shards). Otherwise seats from several shards in that same
-- order. No rows when all shards together hold too few. Pure; the domain name is the plan.
CREATE OR REPLACE FUNCTION plan_allocation(shards smallint[], free integer[], quantity integer,
                                           start integer)
RETURNS TABLE (shard smallint, seats integer)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    n integer := coalesce(array_length(shards, 1), 0);
    first_index integer;  -- 0-based position of the first shard >= start
    i integer;
    wanted integer := quantity;
    take integer;
    total integer := 0;
BEGIN
    IF quantity < 1 THEN
        RAISE EXCEPTION 'quantity must be >= 1';
    END IF;
    SELECT count(*) INTO first_index FROM unnest(shards) s WHERE s < start;
    FOR k IN 0 .. n - 1 LOOP
        i := 1 + (first_index + k) % n;
        IF free[i] >= quantity THEN
            shard := shards[i];
            seats := quantity;
            RETURN NEXT;
            RETURN;
        END IF;
        total := total + greatest(free[i], 0);
    END LOOP;
    IF total < quantity THEN
        RETURN;
    END IF;
    FOR k IN 0 .. n - 1 LOOP
        i := 1 + (first_index + k) % n;
        CONTINUE WHEN free[i] <= 0;
        take := least(free[i], wanted);
        shard := shards[i];
        seats := take;
        RETURN NEXT;
        wanted := wanted - take;
        EXIT WHEN wanted = 0;
    END LOOP;
END;
$$;

-- Rule: take `quantity` seats of a category of an event in the current transaction, or refuse
-- `sold-out`. The category's shards only (V12: each category has shards of its own). First one
-- shard nobody holds (SKIP LOCKED) with room, from the category's `start`-th shard on; failing
-- that, every shard of the category locked in shard order (no deadlock) and the plan above. Every
-- write is guarded (`sold + n <= capacity`), and the CHECK on event_inventory stands behind it.
CREATE OR REPLACE FUNCTION reserve_seats(event uuid, category uuid, quantity integer,
                                         start integer)
RETURNS TABLE (shard smallint, seats integer)
LANGUAGE plpgsql AS $$
DECLARE
    category_shards smallint[];
    first_shard integer;
    picked smallint;
    locked_shards smallint[];
    locked_free integer[];
    plan_shards smallint[];
    plan_seats integer[];
    changed integer;
BEGIN
    SELECT array_agg(i.shard ORDER BY i.shard) INTO category_shards
      FROM event_inventory i WHERE i.event_id = event AND i.category_id = category;
    first_shard := coalesce(
        category_shards[1 + abs(start) % coalesce(array_length(category_shards, 1), 1)], 0);

    WITH pick AS (
        SELECT i.shard FROM event_inventory i
         WHERE i.event_id = event AND i.category_id = category AND i.capacity - i.sold >= quantity
         ORDER BY i.shard < first_shard, i.shard
         LIMIT 1
           FOR UPDATE SKIP LOCKED)
    UPDATE event_inventory i SET sold = i.sold + quantity
      FROM pick
     WHERE i.event_id = event AND i.shard = pick.shard AND i.sold + quantity <= i.capacity
    RETURNING i.shard INTO picked;
    IF picked IS NOT NULL THEN
        shard := picked;
        seats := quantity;
        RETURN NEXT;
        RETURN;
    END IF;

    -- A committed state, read without locks: sold out without queueing on the shards.
    IF (SELECT coalesce(sum(i.capacity - i.sold), 0) FROM event_inventory i
         WHERE i.event_id = event AND i.category_id = category) < quantity THEN
        PERFORM refuse('sold-out',
                       format('fewer than %s tickets are left in this category of event %s',
                              quantity, event));
    END IF;

    SELECT array_agg(l.shard ORDER BY l.shard), array_agg(l.free ORDER BY l.shard)
      INTO locked_shards, locked_free
      FROM (SELECT i.shard, i.capacity - i.sold AS free FROM event_inventory i
             WHERE i.event_id = event AND i.category_id = category
             ORDER BY i.shard FOR UPDATE) l;
    SELECT array_agg(p.shard ORDER BY p.shard), array_agg(p.seats ORDER BY p.shard)
      INTO plan_shards, plan_seats
      FROM plan_allocation(locked_shards, locked_free, quantity, first_shard) p;
    IF plan_shards IS NULL THEN  -- sold between the unlocked check and the locks
        PERFORM refuse('sold-out',
                       format('fewer than %s tickets are left in this category of event %s',
                              quantity, event));
    END IF;
    UPDATE event_inventory i SET sold = i.sold + p.seats
      FROM unnest(plan_shards, plan_seats) AS p(shard, seats)
     WHERE i.event_id = event AND i.shard = p.shard AND i.sold + p.seats <= i.capacity;
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed <> array_length(plan_shards, 1) THEN  -- shards we hold locked: a bug
        RAISE EXCEPTION 'seat change on event % applied to % of % shards',
            event, changed, array_length(plan_shards, 1);
    END IF;
    RETURN QUERY SELECT p.shard, p.seats FROM unnest(plan_shards, plan_seats) AS p(shard, seats);
END;
$$;

-- Rule: give a booking's seats back to the shards they came from and stop counting its tickets
-- against the customer's limit (a cancellation, an expired hold). The caller holds the booking's
-- row lock and changes its status in the same transaction, so this happens once per booking.
CREATE OR REPLACE FUNCTION return_seats(released booking) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    returned integer;
    wanted integer;
BEGIN
    UPDATE customer_event_tickets t SET tickets = t.tickets - released.quantity
     WHERE t.customer_id = released.customer_id AND t.event_id = released.event_id;

    -- The shards in shard order, locked, then the seats given back (guarded: never below 0).
    PERFORM 1 FROM event_inventory i
      JOIN booking_allocation a ON a.event_id = i.event_id AND a.shard = i.shard
     WHERE a.booking_id = released.id
     ORDER BY i.shard
       FOR UPDATE OF i;
    SELECT count(*) INTO wanted FROM booking_allocation a WHERE a.booking_id = released.id;
    UPDATE event_inventory i SET sold = i.sold - a.quantity
      FROM booking_allocation a
     WHERE a.booking_id = released.id
       AND i.event_id = a.event_id AND i.shard = a.shard
       AND i.sold - a.quantity >= 0;
    GET DIAGNOSTICS returned = ROW_COUNT;
    IF returned <> wanted THEN  -- a bug, never a client error: the whole call is undone
        RAISE EXCEPTION 'seats of booking % returned to % of % shards',
            released.id, returned, wanted;
    END IF;
END;
$$;

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
        'categoryId', b.category_id,
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

-- POST /bookings: the whole transaction. Returns the booking (replayed = false), or for a key
-- already completed with the same request the booking it created (replayed = true; keys
-- completed before V3: booking NULL and the stored response instead). The admission parameters
-- default to NULL: only events in queue mode need them (check_admission, R__waiting_room.sql).
-- "On sale" here is the domain's rule (src/boxoffice/domain/catalogue.py, `Event.availability`):
-- not cancelled and not started; sold out is decided by the seats of the category (reserve_seats).
--
-- The category: the one named, which must be the event's; none named is the event's only one
-- (`category-required` when it has several). The price is the category's.
-- A hold (docs/adr/0020-checkout-state-machine.md): on an event paid online, a booking of a
-- priced category is HELD until `now() + hold_seconds` and published (booking.created) only once
-- paid (apply_payment_event, R__payments.sql); otherwise it is PENDING and published at once.
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
    admission_expires timestamptz DEFAULT NULL,
    category uuid DEFAULT NULL,
    hold_seconds integer DEFAULT 600)
RETURNS TABLE (replayed boolean, booking booking, stored_status integer, stored_headers jsonb,
               stored_body jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    earlier idempotency_record;
    buyer uuid;
    ev record;
    cat record;
    held boolean;
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
    SELECT e.currency, e.status, e.starts_at <= now() AS started, e.online_payment
      INTO ev FROM event e WHERE e.id = book_tickets.event FOR SHARE;
    IF NOT FOUND THEN
        PERFORM refuse('not-found', format('event %s does not exist', event));
    ELSIF ev.status = 'CANCELLED' THEN
        PERFORM refuse('event-not-on-sale', format('event %s is cancelled', event));
    ELSIF ev.started THEN
        PERFORM refuse('event-not-on-sale', format('event %s is already started', event));
    END IF;

    SELECT c.id, c.price, count(*) OVER () AS n INTO cat FROM ticket_category c
     WHERE c.event_id = book_tickets.event
       AND (book_tickets.category IS NULL OR c.id = book_tickets.category)
     LIMIT 1;
    IF NOT FOUND THEN
        PERFORM refuse('not-found',
                       format('event %s has no ticket category %s', event, category));
    ELSIF category IS NULL AND cat.n <> 1 THEN
        PERFORM refuse('category-required',
                       format('event %s has %s ticket categories: name one (categoryId)',
                              event, cat.n));
    END IF;
    category := cat.id;

    PERFORM check_admission(event, scope, buyer, admission, admission_event, admission_subject,
                            admission_expires);

    IF NOT count_customer_tickets(buyer, event, quantity, max_tickets_per_customer) THEN
        PERFORM refuse('ticket-limit-exceeded',
                       format('a customer may hold at most %s tickets for event %s',
                              max_tickets_per_customer, event));
    END IF;

    held := ev.online_payment AND cat.price > 0;
    INSERT INTO booking (id, customer_id, event_id, category_id, quantity, unit_price, currency,
                         status, hold_expires_at)
    VALUES (new_booking_id, buyer, event, category, quantity, cat.price, ev.currency,
            CASE WHEN held THEN 'HELD' ELSE 'PENDING' END,
            CASE WHEN held THEN now() + make_interval(secs => hold_seconds) END)
    RETURNING * INTO made;
    INSERT INTO booking_allocation (booking_id, event_id, shard, quantity)
    SELECT new_booking_id, event, r.shard, r.seats
      FROM reserve_seats(event, category, quantity, start_shard) r;

    -- booking.created (not for a hold: written when it is paid): its CloudEvent id is the booking
    -- id (a re-published row is a duplicate the consumer recognises); keyed by booking id so one
    -- booking's events stay in order.
    IF NOT held THEN
        PERFORM publish_booking_created(made, topic, event_source);
    END IF;

    replayed := false;
    booking := made;
    RETURN NEXT;
END;
$$;

-- The booking.created outbox row of a booking that is to be processed into an order (booked
-- without a hold, or a hold just paid).
CREATE OR REPLACE FUNCTION publish_booking_created(made booking, topic text, event_source text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (id, topic, record_key, event_type, event_source, event_time, payload)
    VALUES (made.id, topic, made.id::text, 'dev.boxoffice.booking.created.v1', event_source,
            made.created_at, booking_event_data(made));
END;
$$;

-- DELETE /bookings/{id}: cancel the caller's booking (an admin's: anyone's, `by_admin`). Its
-- seats go back to the shards they came from, its tickets stop counting against the customer's
-- limit; a booking that was published gets a booking.cancelled event, and a paid one a refund of
-- what is left of its payment (withdraw_booking). Exactly once: the booking row is locked, and a
-- cancelled or expired booking is returned as it is (changed = false). Someone else's booking is
-- `not-found`, so ids cannot be probed.
DROP FUNCTION IF EXISTS cancel_booking(text, uuid, text, text);
CREATE OR REPLACE FUNCTION cancel_booking(scope text, cancelled_booking uuid, topic text,
                                          event_source text, by_admin boolean DEFAULT false)
RETURNS TABLE (changed boolean, booking booking)
LANGUAGE plpgsql AS $$
DECLARE
    buyer uuid;
    found_booking booking;
BEGIN
    SELECT c.id INTO buyer FROM customer c WHERE c.subject = scope;
    SELECT b.* INTO found_booking FROM booking b WHERE b.id = cancelled_booking FOR UPDATE;
    IF found_booking.id IS NULL
       OR NOT by_admin AND (buyer IS NULL OR found_booking.customer_id <> buyer) THEN
        PERFORM refuse('not-found', format('booking %s does not exist', cancelled_booking));
    END IF;
    IF found_booking.status IN ('CANCELLED', 'EXPIRED') THEN
        changed := false;
        booking := found_booking;
        RETURN NEXT;
        RETURN;
    END IF;
    IF (SELECT e.starts_at <= now() FROM event e WHERE e.id = found_booking.event_id) THEN
        PERFORM refuse('booking-not-cancellable', 'the event has already started');
    END IF;

    changed := true;
    booking := withdraw_booking(found_booking, topic, event_source, 'BOOKING_CANCELLED');
    RETURN NEXT;
END;
$$;

-- Rule: take a live booking (HELD, PENDING or CONFIRMED; locked by the caller) back: its seats
-- returned (return_seats), CANCELLED, a booking.cancelled event unless it was a hold (never
-- published), and its applied payment refunded in full for `refund_reason` (request_refund,
-- R__payments.sql; sent by the caller, else by the housekeeping schedule).
CREATE OR REPLACE FUNCTION withdraw_booking(live booking, topic text, event_source text,
                                            refund_reason text)
RETURNS booking
LANGUAGE plpgsql AS $$
DECLARE
    withdrawn booking;
    paid payment;
BEGIN
    PERFORM return_seats(live);
    UPDATE booking b SET status = 'CANCELLED', cancelled_at = now(), updated_at = now()
     WHERE b.id = live.id AND b.status IN ('HELD', 'PENDING', 'CONFIRMED')
    RETURNING * INTO withdrawn;
    IF withdrawn.id IS NULL THEN
        RAISE EXCEPTION 'booking % is not live', live.id;
    END IF;
    IF live.status <> 'HELD' THEN  -- a hold was never published: nothing to take back downstream
        INSERT INTO outbox (id, topic, record_key, event_type, event_source, event_time, payload)
        VALUES (gen_random_uuid(), topic, withdrawn.id::text,
                'dev.boxoffice.booking.cancelled.v1', event_source, withdrawn.cancelled_at,
                booking_event_data(withdrawn));
    END IF;
    FOR paid IN SELECT * FROM payment p WHERE p.booking_id = withdrawn.id AND p.applied LOOP
        PERFORM request_refund(paid.id, NULL, refund_reason);
    END LOOP;
    RETURN withdrawn;
END;
$$;

-- Rule: the bookings of cancelled events are cancelled, and their payments refunded
-- (EVENT_CANCELLED), at most `batch` per call, oldest first; returns how many. Rows are locked
-- SKIP LOCKED (a buyer cancelling at the same moment, another pass), so each is withdrawn once.
-- Run by the housekeeping schedule: cancelling a big event is many small transactions.
CREATE OR REPLACE FUNCTION cancel_bookings_of_cancelled_events(batch integer, topic text,
                                                               event_source text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    live booking;
    done integer := 0;
BEGIN
    FOR live IN SELECT b.* FROM booking b JOIN event e ON e.id = b.event_id
                 WHERE e.status = 'CANCELLED' AND b.status IN ('HELD', 'PENDING', 'CONFIRMED')
                   -- a booking already let in at the door stays (and cannot be cancelled, V6)
                   AND NOT EXISTS (SELECT 1 FROM check_in c WHERE c.booking_id = b.id)
                 ORDER BY b.created_at
                 LIMIT batch
                   FOR UPDATE OF b SKIP LOCKED LOOP
        PERFORM withdraw_booking(live, topic, event_source, 'EVENT_CANCELLED');
        done := done + 1;
    END LOOP;
    RETURN done;
END;
$$;

-- Rule: release lapsed holds, at most `batch` of them, the oldest first; returns how many. Each
-- booking row is locked (SKIP LOCKED: another pass, a cancellation or a payment holding it decides
-- it) and changes from HELD to EXPIRED once, with its seats returned (return_seats). A payment
-- that arrives after this is refunded (apply_payment_event, R__payments.sql).
CREATE OR REPLACE FUNCTION expire_holds(batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lapsed booking;
    released integer := 0;
BEGIN
    FOR lapsed IN SELECT b.* FROM booking b
                   WHERE b.status = 'HELD' AND b.hold_expires_at <= now()
                   ORDER BY b.hold_expires_at
                   LIMIT batch
                     FOR UPDATE SKIP LOCKED LOOP
        PERFORM release_hold(lapsed);
        released := released + 1;
    END LOOP;
    RETURN released;
END;
$$;

-- A lapsed hold (locked by the caller, status HELD) released: its seats back, EXPIRED.
CREATE OR REPLACE FUNCTION release_hold(lapsed booking) RETURNS booking
LANGUAGE plpgsql AS $$
DECLARE
    released booking;
BEGIN
    PERFORM return_seats(lapsed);
    UPDATE booking b SET status = 'EXPIRED', expired_at = now(), updated_at = now()
     WHERE b.id = lapsed.id AND b.status = 'HELD'
    RETURNING * INTO released;
    IF released.id IS NULL THEN
        RAISE EXCEPTION 'booking % is not held', lapsed.id;
    END IF;
    RETURN released;
END;
$$;
