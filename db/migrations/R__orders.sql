-- Order processing (consume_order): one booking CloudEvent applied exactly once, in one round
-- trip (docs/adr/0007-order-processing.md, docs/adr/0010-booking-rules-in-sql.md). The only
-- definition of these functions: a repeatable migration (re-applied whenever this file changes;
-- CREATE OR REPLACE). Schema: V2 and V4. Called by src/boxoffice/adapters/postgres_orders.py on an
-- autocommit connection. Ticket codes are signed in Python before the call (the signing key never
-- reaches the database) and passed in; the rules live here.
-- Refusals: `refuse('unknown-booking', ...)`, and `refuse('invalid-booking-event', <JSON list of
-- {"field", "message"}>)`, which the adapter maps onto the error hierarchy
-- (tests/integration/test_sql_contract.py keeps the two in step).

-- Rule: an event must agree with its booking (event, customer, quantity): the offending fields.
CREATE OR REPLACE FUNCTION booking_event_mismatches(b booking, event uuid, customer uuid,
                                                    quantity integer)
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('field', f, 'message', 'does not match the booking')
                              ORDER BY n), '[]'::jsonb)
      FROM (VALUES (1, 'data.eventId', b.event_id = event),
                   (2, 'data.customerId', b.customer_id = customer),
                   (3, 'data.quantity', b.quantity = quantity)) AS checks(n, f, ok)
     WHERE NOT ok;
$$;

-- Apply one booking event: created -> the booking's order and its tickets, booking CONFIRMED
-- (unless the booking was cancelled first: nothing issued); cancelled -> order and tickets
-- CANCELLED. Every event is recorded with its outcome in order_event, keyed by its CloudEvent
-- identity (source, id): a redelivery changes nothing and reports what the first delivery did.
CREATE OR REPLACE FUNCTION apply_booking_event(
    event_source text,
    event_id text,
    event_type text,
    event_time timestamptz,
    booked uuid,              -- data.bookingId
    event uuid,               -- data.eventId
    customer uuid,            -- data.customerId
    quantity integer,         -- data.quantity
    new_order_id uuid,        -- the id a new order gets
    new_document_key text,
    ticket_ids uuid[],        -- tickets 1..quantity, signed by the caller (created events)
    ticket_codes text[])
RETURNS TABLE (outcome text, order_id uuid, redelivery boolean, tickets_issued integer)
LANGUAGE plpgsql AS $$
DECLARE
    b booking;
    existing orders;
    earlier text;
    mismatched jsonb;
BEGIN
    -- The booking row serialises every event of one booking (cancellations lock it too).
    SELECT * INTO b FROM booking bk WHERE bk.id = booked FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM refuse('unknown-booking', format('booking %s does not exist', booked));
    END IF;
    mismatched := booking_event_mismatches(b, event, customer, quantity);
    IF jsonb_array_length(mismatched) > 0 THEN
        PERFORM refuse('invalid-booking-event', mismatched::text);
    END IF;

    SELECT oe.outcome INTO earlier FROM order_event oe
     WHERE oe.event_source = apply_booking_event.event_source
       AND oe.event_id = apply_booking_event.event_id;
    SELECT * INTO existing FROM orders o WHERE o.booking_id = booked FOR UPDATE;
    order_id := existing.id;
    tickets_issued := 0;
    IF earlier IS NOT NULL THEN
        outcome := earlier;
        redelivery := true;
        RETURN NEXT;
        RETURN;
    END IF;

    IF event_type = 'dev.boxoffice.booking.created.v1' THEN
        IF existing.id IS NOT NULL THEN
            outcome := 'ALREADY_CONFIRMED';
        ELSIF b.status = 'CANCELLED' THEN
            outcome := 'SKIPPED_BOOKING_CANCELLED';  -- the cancellation overtook the confirmation
        ELSE
            IF coalesce(array_length(ticket_ids, 1), 0) <> b.quantity
               OR coalesce(array_length(ticket_codes, 1), 0) <> b.quantity THEN
                RAISE EXCEPTION 'booking % needs % tickets, % were given',
                    b.id, b.quantity, coalesce(array_length(ticket_ids, 1), 0);
            END IF;
            INSERT INTO orders (id, booking_id, document_key)
            VALUES (new_order_id, b.id, new_document_key);
            INSERT INTO ticket (id, order_id, seq, code)
            SELECT t.id, new_order_id, t.seq::integer, t.code
              FROM unnest(ticket_ids, ticket_codes) WITH ORDINALITY AS t(id, code, seq);
            UPDATE booking bk SET status = 'CONFIRMED', updated_at = now()
             WHERE bk.id = b.id AND bk.status = 'PENDING';
            outcome := 'CONFIRMED';
            order_id := new_order_id;
            tickets_issued := b.quantity;
        END IF;
    ELSIF event_type = 'dev.boxoffice.booking.cancelled.v1' THEN
        IF b.status <> 'CANCELLED' THEN
            PERFORM refuse('invalid-booking-event',
                           jsonb_build_array(jsonb_build_object(
                               'field', 'type',
                               'message', format('booking %s is not cancelled', b.id)))::text);
        ELSIF existing.id IS NULL THEN
            outcome := 'NO_ORDER_TO_CANCEL';
        ELSIF existing.status = 'CANCELLED' THEN
            outcome := 'ALREADY_CANCELLED';
        ELSE
            UPDATE orders o SET status = 'CANCELLED', cancelled_at = now(),
                   document_stored_at = NULL, document_next_try_at = now()
             WHERE o.id = existing.id;
            UPDATE ticket t SET status = 'CANCELLED', cancelled_at = now()
             WHERE t.order_id = existing.id AND t.status <> 'CANCELLED';
            outcome := 'ORDER_CANCELLED';
        END IF;
    ELSE
        RAISE EXCEPTION 'not a booking event type: %', event_type;  -- validated by the caller
    END IF;

    INSERT INTO order_event (event_source, event_id, event_type, booking_id, outcome, event_time)
    VALUES (apply_booking_event.event_source, apply_booking_event.event_id, event_type, b.id,
            outcome, event_time);
    redelivery := outcome IN ('ALREADY_CONFIRMED', 'ALREADY_CANCELLED');
    RETURN NEXT;
END;
$$;
