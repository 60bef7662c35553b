-- The payment rules (issue 22; docs/adr/0020-checkout-state-machine.md): a hold's payment, the
-- provider's webhook events, refunds. One PL/pgSQL function per rule, named as in the domain
-- (src/boxoffice/domain/payments.py), the only definition of each (ADR 10, "one home per rule").
-- The tables are in V12. Refusals are `refuse(slug, detail)` (R__booking.sql).
--
-- Lock order: booking, then payment, then refund rows (the same as cancel_booking's).

-- Rule: the buyer starts paying a HELD booking of theirs: the provider's payment is recorded
-- (AWAITING_PAYMENT) so that its webhook events find it. Recording the same payment again
-- changes nothing. Refusals: `not-found` (not the caller's booking), `booking-not-payable` (not
-- HELD, or its hold has lapsed), `amount-not-representable` never (the amount is the booking's).
CREATE OR REPLACE FUNCTION start_payment(scope text, paid_booking uuid, payment_id text,
                                         provider text, amount numeric, currency text)
RETURNS payment
LANGUAGE plpgsql AS $$
DECLARE
    b booking;
    recorded payment;
BEGIN
    SELECT bk.* INTO b FROM booking bk
      JOIN customer c ON c.id = bk.customer_id AND c.subject = scope
     WHERE bk.id = paid_booking;
    IF b.id IS NULL THEN
        PERFORM refuse('not-found', format('booking %s does not exist', paid_booking));
    END IF;
    INSERT INTO payment (id, booking_id, provider, amount, currency, status)
    VALUES (payment_id, b.id, provider, amount, currency, 'AWAITING_PAYMENT')
    ON CONFLICT (id) DO NOTHING;
    SELECT p.* INTO recorded FROM payment p WHERE p.id = payment_id;
    IF recorded.booking_id <> b.id THEN
        RAISE EXCEPTION 'payment % belongs to booking %, not %', payment_id, recorded.booking_id,
            b.id;
    END IF;
    RETURN recorded;
END;
$$;

-- Rule: may the booking be paid now? HELD and its hold not lapsed (the payment step's check,
-- before a payment is created at the provider).
CREATE OR REPLACE FUNCTION payable(b booking) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT b.status = 'HELD' AND b.hold_expires_at > now();
$$;

-- Rule: give back `amount` of a payment (NULL: all that is left of it), for `reason`. The
-- payment is locked; the refunds of a payment never add up to more than it, so asking again
-- for the rest asks for nothing (NULL returned). Returns the refund's id, to be sent to the
-- provider with that id as its idempotency key (the caller does; the housekeeping schedule sends
-- whatever is left REQUESTED).
CREATE OR REPLACE FUNCTION request_refund(refunded_payment text, amount numeric, reason text)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    paid payment;
    already numeric;
    wanted numeric;
    made uuid;
BEGIN
    SELECT p.* INTO paid FROM payment p WHERE p.id = refunded_payment FOR UPDATE;
    IF paid.id IS NULL OR paid.status <> 'SUCCEEDED' THEN
        RAISE EXCEPTION 'payment % has not succeeded: nothing to refund', refunded_payment;
    END IF;
    SELECT coalesce(sum(r.amount), 0) INTO already FROM refund r
     WHERE r.payment_id = paid.id AND r.status <> 'FAILED';
    wanted := coalesce(amount, paid.amount - already);
    IF wanted <= 0 THEN
        RETURN NULL;
    END IF;
    IF already + wanted > paid.amount THEN
        PERFORM refuse('refund-exceeds-payment',
                       format('payment %s has %s left to refund, not %s', paid.id,
                              paid.amount - already, wanted));
    END IF;
    INSERT INTO refund (id, payment_id, booking_id, amount, currency, reason)
    VALUES (gen_random_uuid(), paid.id, paid.booking_id, wanted, paid.currency, reason)
    RETURNING id INTO made;
    RETURN made;
END;
$$;

-- Rule: one webhook event of the provider, applied once (payment_event's primary key is the
-- event's id: a redelivery is `duplicate` and changes nothing). Returns the outcome:
--   payment_intent.succeeded -> `applied`: the booking was HELD and its hold not lapsed, the amount
--     and currency are the booking's, no other payment paid it: the payment is applied, the
--     booking PENDING and published (booking.created) -> order, tickets. Otherwise the payment is
--     recorded and refunded in full: `refunded` (a lapsed hold is released here first, once:
--     HOLD_EXPIRED; a cancelled or expired booking: BOOKING_CANCELLED / HOLD_EXPIRED; paid already:
--     DUPLICATE_PAYMENT; a different amount: AMOUNT_MISMATCH). The same payment succeeding again
--     (another event id) is `recorded`.
--   payment_intent.payment_failed / .canceled -> `recorded` (never over a SUCCEEDED payment: events
--     arrive out of order); the hold stays until it lapses, so the buyer may try again.
--   refund.created / refund.updated / charge.refunded -> `recorded` when it names a refund of ours
--     (its provider id), else `ignored`.
--   a payment of a booking we do not have, any other type -> `ignored`.
CREATE OR REPLACE FUNCTION apply_payment_event(
    event_id text,
    event_type text,
    payment_id text,          -- the PaymentIntent (for a refund event: the one it refunds)
    paid_booking uuid,        -- from the payment's metadata
    provider text,
    amount numeric,
    currency text,
    provider_refund_id text,  -- refund events: the refund's id at the provider
    provider_refund_status text,
    topic text,
    event_source text)
RETURNS TABLE (outcome text, refund_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    b booking;
    paid payment;
    reason text;
BEGIN
    INSERT INTO payment_event (id, type, payment_id, booking_id, outcome)
    VALUES (event_id, event_type, payment_id, paid_booking, 'pending')
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        outcome := 'duplicate';
        RETURN NEXT;
        RETURN;
    END IF;

    IF event_type IN ('refund.created', 'refund.updated', 'charge.refunded') THEN
        UPDATE refund r SET status = CASE provider_refund_status
                                         WHEN 'succeeded' THEN 'SUCCEEDED'
                                         WHEN 'failed' THEN 'FAILED'
                                         WHEN 'canceled' THEN 'FAILED'
                                         ELSE r.status END,
                            completed_at = CASE WHEN provider_refund_status
                                                     IN ('succeeded', 'failed', 'canceled')
                                                THEN coalesce(r.completed_at, now()) END
         WHERE r.provider_refund_id = apply_payment_event.provider_refund_id
           AND r.status = 'REQUESTED';
        IF EXISTS (SELECT 1 FROM refund r
                    WHERE r.provider_refund_id = apply_payment_event.provider_refund_id) THEN
            outcome := 'recorded';
        ELSE
            outcome := 'ignored';  -- not a refund of ours (made on the provider's dashboard)
        END IF;
    ELSIF event_type NOT IN ('payment_intent.succeeded', 'payment_intent.payment_failed',
                             'payment_intent.canceled') THEN
        outcome := 'ignored';
    ELSE
        SELECT bk.* INTO b FROM booking bk WHERE bk.id = paid_booking FOR UPDATE;
        IF b.id IS NULL THEN
            outcome := 'ignored';  -- not one of our bookings (another system on the same account)
        ELSIF event_type <> 'payment_intent.succeeded' THEN
            INSERT INTO payment (id, booking_id, provider, amount, currency, status)
            VALUES (payment_id, b.id, provider, amount, currency,
                    CASE event_type WHEN 'payment_intent.canceled' THEN 'CANCELED' ELSE 'FAILED' END)
            ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, updated_at = now()
             WHERE payment.status = 'AWAITING_PAYMENT' OR payment.status = 'FAILED';
            outcome := 'recorded';
        ELSE
            INSERT INTO payment (id, booking_id, provider, amount, currency, status, succeeded_at)
            VALUES (payment_id, b.id, provider, amount, currency, 'SUCCEEDED', now())
            ON CONFLICT (id) DO NOTHING;
            SELECT p.* INTO paid FROM payment p WHERE p.id = payment_id FOR UPDATE;
            IF paid.booking_id <> b.id THEN
                RAISE EXCEPTION 'payment % belongs to booking %, its event names %', payment_id,
                    paid.booking_id, b.id;
            END IF;
            IF paid.status = 'SUCCEEDED' AND (paid.applied OR EXISTS (
                    SELECT 1 FROM refund r WHERE r.payment_id = paid.id)) THEN
                outcome := 'recorded';  -- this payment was dealt with by an earlier event
            ELSE
                UPDATE payment p SET status = 'SUCCEEDED', amount = apply_payment_event.amount,
                                     currency = apply_payment_event.currency,
                                     succeeded_at = coalesce(p.succeeded_at, now()),
                                     updated_at = now()
                 WHERE p.id = paid.id;
                IF b.status = 'HELD' AND b.hold_expires_at <= now() THEN
                    b := release_hold(b);  -- lapsed, not yet released: released now, once
                END IF;
                IF b.status = 'HELD' AND amount = b.total AND currency = b.currency::text THEN
                    UPDATE payment p SET applied = true WHERE p.id = paid.id;
                    UPDATE booking bk SET status = 'PENDING', updated_at = now()
                     WHERE bk.id = b.id
                    RETURNING * INTO b;
                    PERFORM publish_booking_created(b, topic, event_source);
                    outcome := 'applied';
                ELSE
                    reason := CASE
                        WHEN b.status = 'EXPIRED' THEN 'HOLD_EXPIRED'
                        WHEN b.status = 'CANCELLED' THEN 'BOOKING_CANCELLED'
                        WHEN b.status = 'HELD' THEN 'AMOUNT_MISMATCH'
                        ELSE 'DUPLICATE_PAYMENT' END;
                    refund_id := request_refund(paid.id, NULL, reason);
                    outcome := 'refunded';
                END IF;
            END IF;
        END IF;
    END IF;

    UPDATE payment_event e SET outcome = apply_payment_event.outcome WHERE e.id = event_id;
    RETURN NEXT;
END;
$$;

-- Rule: claim one refund to be sent to the provider (REQUESTED): the one named, else one of the
-- booking named, else the most overdue one that is due; locked for the caller's transaction (SKIP
-- LOCKED: one sender per refund). The sender calls the provider with the refund's id as
-- idempotency key and then marks it (refund_sent / refund_failed) in the same transaction.
DROP FUNCTION IF EXISTS claim_refund(uuid);
CREATE OR REPLACE FUNCTION claim_refund(wanted uuid DEFAULT NULL, of_booking uuid DEFAULT NULL)
RETURNS refund
LANGUAGE plpgsql AS $$
DECLARE
    claimed refund;
BEGIN
    SELECT r.* INTO claimed FROM refund r
     WHERE r.status = 'REQUESTED'
       AND CASE WHEN wanted IS NOT NULL THEN r.id = wanted
                WHEN of_booking IS NOT NULL THEN r.booking_id = of_booking
                ELSE r.next_attempt_at <= now() END
     ORDER BY r.next_attempt_at
     LIMIT 1
       FOR UPDATE SKIP LOCKED;
    RETURN claimed;
END;
$$;

-- Rule: the provider took the refund (`provider_status` succeeded: done; pending: done once its
-- webhook event says so).
CREATE OR REPLACE FUNCTION refund_sent(sent uuid, provider_refund_id text, provider_status text)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE refund r SET provider_refund_id = refund_sent.provider_refund_id,
                        attempts = r.attempts + 1,
                        status = CASE provider_status WHEN 'succeeded' THEN 'SUCCEEDED'
                                                      WHEN 'failed' THEN 'FAILED'
                                                      WHEN 'canceled' THEN 'FAILED'
                                                      ELSE 'REQUESTED' END,
                        completed_at = CASE WHEN provider_status
                                                 IN ('succeeded', 'failed', 'canceled')
                                            THEN now() END,
                        -- pending at the provider: its webhook event completes it
                        next_attempt_at = now() + interval '1 hour',
                        last_error = NULL
     WHERE r.id = sent AND r.status = 'REQUESTED';
END;
$$;

-- Rule: the provider could not be asked: try again later (exponential, capped at 15 minutes).
CREATE OR REPLACE FUNCTION refund_failed(failed uuid, error text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE refund r SET attempts = r.attempts + 1, last_error = left(error, 1000),
                        next_attempt_at = now() + least(interval '15 minutes',
                                                        interval '1 second' * 2 ^ least(r.attempts, 10))
     WHERE r.id = failed AND r.status = 'REQUESTED';
END;
$$;
