-- The waiting room's rules (docs/adr/0014-waiting-room.md): configuring a line, joining it, the
-- admission controller's tick, and the admission rule book_tickets applies (check_admission).
-- The only definition of these functions: a repeatable migration (re-applied whenever this file
-- changes; CREATE OR REPLACE). The tables, and how places, the draw and the locks work, are in
-- V8__waiting_room.sql. Refusals are `refuse(slug, detail)` (R__booking.sql), and every write is
-- guarded so that two ticks at once (two controller replicas, a slow tick overlapping the next)
-- admit nobody twice and keep the rate.
--
-- Defaults of a line's settings (admission window, tickets per buyer, pre-queue order) have one
-- home: src/boxoffice/domain/waiting_room.py; the API fills them in before calling
-- configure_queue, which takes every setting explicitly.

-- Set up (or change) an event's queue mode. The arrival sequence is created with the queue.
-- Before opening everything may change; after it, the on-sale time and the pre-queue rule are
-- fixed (they decided places already): `conflict`. Returns the queue and whether it is new.
CREATE OR REPLACE FUNCTION configure_queue(event uuid, opens timestamptz, rate numeric,
                                           window_seconds integer, randomise boolean,
                                           per_buyer numeric)
RETURNS TABLE (created boolean, queue event_queue)
LANGUAGE plpgsql AS $$
DECLARE
    q event_queue;
    seq text := format('queue_arrivals_%s', replace(event::text, '-', ''));
BEGIN
    PERFORM 1 FROM event e WHERE e.id = event FOR SHARE;
    IF NOT FOUND THEN
        PERFORM refuse('not-found', format('event %s does not exist', event));
    END IF;
    SELECT * INTO q FROM event_queue WHERE event_id = event FOR UPDATE;
    IF FOUND THEN
        IF q.opens_at <= now() AND (opens <> q.opens_at OR randomise <> q.randomise_early) THEN
            PERFORM refuse('conflict',
                           'the line is open: its on-sale time and pre-queue order are fixed');
        END IF;
        UPDATE event_queue SET opens_at = opens, admission_rate = rate,
               admission_seconds = window_seconds, randomise_early = randomise,
               tickets_per_buyer = per_buyer, updated_at = now()
         WHERE event_id = event RETURNING * INTO q;
        created := false;
    ELSE
        EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I AS bigint MINVALUE 1', seq);
        INSERT INTO event_queue (event_id, opens_at, admission_rate, admission_seconds,
                                 randomise_early, tickets_per_buyer, arrivals)
        VALUES (event, opens, rate, window_seconds, randomise, per_buyer, seq::regclass)
        RETURNING * INTO q;
        created := true;
    END IF;
    queue := q;
    RETURN NEXT;
END;
$$;

-- End an event's queue mode: its line and admissions are deleted, bookings need no admission.
CREATE OR REPLACE FUNCTION remove_queue(event uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM event_queue WHERE event_id = event;
    RETURN FOUND;
END;
$$;

-- A queue's arrival sequence goes with it (also when its event is deleted: ON DELETE CASCADE).
CREATE OR REPLACE FUNCTION drop_queue_arrivals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP SEQUENCE IF EXISTS %s', OLD.arrivals);
    RETURN NULL;
END;
$$;
CREATE OR REPLACE TRIGGER event_queue_drop_arrivals AFTER DELETE ON event_queue
    FOR EACH ROW EXECUTE FUNCTION drop_queue_arrivals();

-- Rule: the customer's place in the event's line; joining again returns the same place.
-- One place per customer per event (a unique constraint, and joins of one customer to one
-- event serialised by an advisory lock so that a double click never burns an arrival number).
CREATE OR REPLACE FUNCTION join_queue(event uuid, scope text, new_entry uuid)
RETURNS TABLE (joined boolean, entry queue_entry)
LANGUAGE plpgsql AS $$
DECLARE
    buyer uuid;
    q event_queue;
    ev record;
    found_entry queue_entry;
    next_arrival bigint;
BEGIN
    SELECT c.id INTO buyer FROM customer c WHERE c.subject = scope;
    IF buyer IS NULL THEN
        PERFORM refuse('registration-required',
                       'register your customer profile with PUT /customers/me before queueing');
    END IF;
    SELECT * INTO q FROM event_queue WHERE event_id = event;
    IF NOT FOUND THEN
        PERFORM refuse('not-found', format('event %s has no waiting room', event));
    END IF;
    SELECT * INTO found_entry FROM queue_entry e WHERE e.event_id = event AND e.customer_id = buyer;
    IF FOUND THEN
        joined := false;
        entry := found_entry;
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT e.status, e.starts_at <= now() AS started INTO ev FROM event e WHERE e.id = event;
    IF ev.status = 'CANCELLED' OR ev.started THEN
        PERFORM refuse('event-not-on-sale', format('event %s is not on sale', event));
    END IF;
    IF q.sold_out_at IS NOT NULL THEN
        PERFORM refuse('sold-out', format('event %s is sold out', event));
    END IF;

    PERFORM pg_advisory_xact_lock(hashtextextended(event::text || '/' || buyer::text, 0));
    SELECT * INTO found_entry FROM queue_entry e WHERE e.event_id = event AND e.customer_id = buyer;
    IF FOUND THEN  -- the same customer's concurrent join committed while we waited
        joined := false;
        entry := found_entry;
        RETURN NEXT;
        RETURN;
    END IF;
    next_arrival := nextval(q.arrivals);
    INSERT INTO queue_entry (id, event_id, customer_id, arrival, position)
    VALUES (new_entry, event, buyer, next_arrival,
            CASE WHEN q.randomise_early AND now() < q.opens_at THEN NULL ELSE next_arrival END)
    RETURNING * INTO found_entry;
    joined := true;
    entry := found_entry;
    RETURN NEXT;
END;
$$;

-- Rule: put the pre-queue in random order (once, at opening). The places it gets are its own
-- arrival numbers, dealt out at random; places of later arrivals (their arrival numbers) are
-- not touched, so they stay in FIFO order after the pre-queue. A straggler (joined before the
-- on-sale time but committed after the draw) keeps its own arrival number as its place.
CREATE OR REPLACE FUNCTION draw_prequeue(event uuid) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    drawn integer;
BEGIN
    WITH undrawn AS (
        SELECT e.id, e.arrival FROM queue_entry e WHERE e.event_id = event AND e.position IS NULL
           FOR UPDATE),
    shuffled AS (
        SELECT u.id, row_number() OVER (ORDER BY gen_random_uuid()) AS n FROM undrawn u),
    places AS (
        SELECT u.arrival, row_number() OVER (ORDER BY u.arrival) AS n FROM undrawn u)
    UPDATE queue_entry e SET position = p.arrival
      FROM shuffled s JOIN places p USING (n)
     WHERE e.id = s.id;
    GET DIAGNOSTICS drawn = ROW_COUNT;
    RETURN drawn;
END;
$$;

-- Rule: how many buyers may be admitted now, given the seats left. Admission never runs more
-- than ceil(seats left / expected tickets per buyer) ahead of the admissions still unused and
-- unexpired; an admission that expires unused stops counting, which gives its capacity back.
CREATE OR REPLACE FUNCTION admission_room(event uuid, per_buyer numeric) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT greatest(0,
        ceil((SELECT coalesce(sum(i.capacity - i.sold), 0) FROM event_inventory i
               WHERE i.event_id = event) / per_buyer)::bigint
        - (SELECT count(*) FROM queue_entry e
            WHERE e.event_id = event AND e.admitted_at IS NOT NULL AND e.used_at IS NULL
              AND e.expires_at > now()));
$$;

-- The tick for one event: advance its serving counter. The counter's clock is in the row
-- (`ticked_at`), and the row is locked for the whole tick: two ticks at once are serialised, and
-- the second finds the clock already advanced and admits only what the rate allows for the time
-- since (nothing, if no time passed). So the rate holds however many ticks run and however
-- irregularly: admitted = rate x elapsed, with the fraction carried over, and never more than
-- `max_burst` seconds' worth at once (a controller that was down does not flood the purchase
-- path when it comes back). Stops for good once no seats are left (`sold_out_at`) and none is held
-- by an unpaid hold: an admitted buyer's hold takes its seats from what the line may admit
-- (admission_room), and gives them back to the line if it lapses.
CREATE OR REPLACE FUNCTION advance_queue(event uuid, auto_rate numeric, max_burst double precision)
RETURNS TABLE (event_id uuid, state text, rate numeric, joined bigint, waiting bigint,
               admitted_now integer, expired_now bigint, waits double precision[])
LANGUAGE plpgsql AS $$
DECLARE
    q event_queue;
    left_seats bigint;
    applied numeric;
    allowed double precision;
    wanted bigint;
    admitted_positions bigint[];
    expired bigint;
    clock timestamptz;
BEGIN
    SELECT * INTO q FROM event_queue eq WHERE eq.event_id = event FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    event_id := event;
    joined := coalesce(pg_sequence_last_value(q.arrivals), 0);
    admitted_now := 0;
    expired_now := 0;
    waits := '{}';
    rate := coalesce(q.admission_rate, auto_rate);
    IF q.sold_out_at IS NOT NULL THEN
        state := 'sold-out';
        waiting := 0;
        RETURN NEXT;
        RETURN;
    END IF;
    IF now() < q.opens_at THEN
        state := 'scheduled';
        waiting := joined;
        RETURN NEXT;
        RETURN;
    END IF;

    IF q.randomise_early AND q.drawn_at IS NULL THEN
        PERFORM draw_prequeue(event);
        q.drawn_at := now();
    END IF;
    UPDATE queue_entry e SET position = e.arrival  -- stragglers of the pre-queue
     WHERE e.event_id = event AND e.position IS NULL;

    clock := coalesce(q.ticked_at, q.opens_at);
    SELECT count(*) INTO expired FROM queue_entry e
     WHERE e.event_id = event AND e.admitted_at IS NOT NULL AND e.used_at IS NULL
       AND e.expires_at > clock AND e.expires_at <= now();
    expired_now := expired;

    SELECT coalesce(sum(i.capacity - i.sold), 0) INTO left_seats
      FROM event_inventory i WHERE i.event_id = event;
    -- Seats held by unpaid holds (ADR 20) may come back: the line only waits (admission_room
    -- is 0) until they are paid, for good, or released to the next buyers in line.
    IF left_seats <= 0 AND NOT EXISTS (SELECT 1 FROM booking b
                                        WHERE b.event_id = event AND b.status = 'HELD') THEN
        UPDATE event_queue eq SET sold_out_at = now(), ticked_at = now(), allowance = 0,
               expired_unused = eq.expired_unused + expired, updated_at = now()
         WHERE eq.event_id = event;
        state := 'sold-out';
        waiting := 0;
        RETURN NEXT;
        RETURN;
    END IF;

    applied := greatest(rate, 0);
    allowed := least(q.allowance + applied * greatest(extract(epoch FROM now() - clock), 0),
                     greatest(applied * max_burst, 1));
    wanted := least(floor(allowed)::bigint, admission_room(event, q.tickets_per_buyer));
    IF wanted > 0 THEN
        WITH head AS (
            SELECT e.id FROM queue_entry e
             WHERE e.event_id = event AND e.admitted_at IS NULL AND e.position IS NOT NULL
             ORDER BY e.position
             LIMIT wanted
               FOR UPDATE),
        admitted_rows AS (
            UPDATE queue_entry e SET admitted_at = now(),
                   expires_at = now() + make_interval(secs => q.admission_seconds)
              FROM head WHERE e.id = head.id AND e.admitted_at IS NULL
            RETURNING e.position,
                      extract(epoch FROM now() - greatest(e.joined_at, q.opens_at)) AS waited)
        SELECT coalesce(array_agg(a.position), '{}'), coalesce(array_agg(a.waited), '{}')
          INTO admitted_positions, waits FROM admitted_rows a;
        admitted_now := coalesce(array_length(admitted_positions, 1), 0);
    END IF;

    UPDATE event_queue eq
       SET drawn_at = q.drawn_at,
           served_up_to = greatest(eq.served_up_to,
                                   coalesce((SELECT max(p) FROM unnest(admitted_positions) p), 0)),
           admitted = eq.admitted + admitted_now,
           expired_unused = eq.expired_unused + expired,
           allowance = allowed - floor(allowed),  -- unused whole admissions are not banked
           ticked_at = now(), current_rate = applied, updated_at = now()
     WHERE eq.event_id = event;
    state := 'open';
    waiting := greatest(joined - q.admitted - admitted_now, 0);
    RETURN NEXT;
END;
$$;

-- The tick: every queue that is open or opening. Automatic queues share `auto_capacity`
-- (buyers per second the purchase path can take) equally.
CREATE OR REPLACE FUNCTION advance_queues(auto_capacity numeric, max_burst double precision)
RETURNS TABLE (event_id uuid, state text, rate numeric, joined bigint, waiting bigint,
               admitted_now integer, expired_now bigint, waits double precision[])
LANGUAGE plpgsql AS $$
DECLARE
    automatic integer;
    q record;
BEGIN
    SELECT count(*) INTO automatic FROM event_queue eq
     WHERE eq.sold_out_at IS NULL AND eq.opens_at <= now() AND eq.admission_rate IS NULL;
    FOR q IN SELECT eq.event_id FROM event_queue eq WHERE eq.sold_out_at IS NULL
              ORDER BY eq.event_id LOOP
        RETURN QUERY SELECT * FROM advance_queue(q.event_id,
                                                 auto_capacity / greatest(automatic, 1),
                                                 max_burst);
    END LOOP;
END;
$$;

-- Rule: a booking of an event in queue mode needs the buyer's unexpired admission for it. What
-- the admission token proves (its signature checked by the caller) comes in as parameters:
-- admission id, event, customer (token subject) and end of window. An event not in queue mode
-- costs one primary-key probe. The admission is marked used at its first booking (then it holds
-- no capacity any more: its seats are sold).
CREATE OR REPLACE FUNCTION check_admission(event uuid, scope text, buyer uuid, admission uuid,
                                           admission_event uuid, admission_subject text,
                                           admission_expires timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    held queue_entry;
BEGIN
    PERFORM 1 FROM event_queue q WHERE q.event_id = event;
    IF NOT FOUND THEN
        RETURN;  -- not in queue mode
    END IF;
    IF admission IS NULL THEN
        PERFORM refuse('admission-required',
                       format('event %s sells through its waiting room: join the line with '
                              'POST /events/%s/queue and book once admitted', event, event));
    ELSIF admission_event IS DISTINCT FROM event THEN
        PERFORM refuse('admission-required', 'this admission is for another event');
    ELSIF admission_subject IS DISTINCT FROM scope THEN
        PERFORM refuse('admission-required', 'this admission belongs to another customer');
    ELSIF admission_expires IS NULL OR admission_expires <= now() THEN
        PERFORM refuse('admission-expired',
                       'your admission has expired; the seats it held went back to the line');
    END IF;
    UPDATE queue_entry e SET used_at = now()
     WHERE e.id = admission AND e.event_id = event AND e.customer_id = buyer
       AND e.admitted_at IS NOT NULL AND e.expires_at > now() AND e.used_at IS NULL;
    IF FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO held FROM queue_entry e
     WHERE e.id = admission AND e.event_id = event AND e.customer_id = buyer;
    IF held.id IS NULL OR held.admitted_at IS NULL THEN
        PERFORM refuse('admission-required', 'no such admission for this customer and event');
    ELSIF held.expires_at <= now() THEN
        PERFORM refuse('admission-expired',
                       'your admission has expired; the seats it held went back to the line');
    END IF;  -- else: admitted, unexpired, already used by an earlier booking
END;
$$;
