-- Check-in at the door (check_in function; docs/adr/0015-tickets-and-check-in.md): the scan and
-- the guard against cancelling a checked-in booking. The only definition of these functions: a
-- repeatable migration (re-applied whenever this file changes; CREATE OR REPLACE). The tables
-- (check_in, check_in_conflict) and why a ticket is admitted exactly once are in V6__check_in.sql.

-- One scan, in one round trip. `p_code` is set for a legacy (HMAC) code, which is verified here
-- by comparison with the stored code; signed codes were verified by the caller. `p_scanned_at` is
-- set for an offline scan uploaded later (the device's clock, never later than now).
--
-- Outcomes (the API's words): admitted | replayed (this scan was recorded before: its admission)
-- | already-checked-in (another scan admitted the ticket: that admission is returned) |
-- ticket-cancelled | wrong-event | ticket-not-found | invalid-ticket-code.
--
-- Races with a cancellation: the booking row is share-locked (create_booking's cancellation locks
-- it FOR UPDATE), so a check-in and a cancellation of the same booking are serialised: either the
-- check-in sees the booking CANCELLED, or the cancellation sees the check-in (and is refused by
-- the trigger below).
CREATE OR REPLACE FUNCTION check_in_ticket(
    p_ticket uuid, p_event uuid, p_scan uuid, p_gate text, p_scanner text,
    p_scanned_at timestamptz, p_code text,
    OUT outcome text, OUT ticket_event uuid, OUT seq integer, OUT quantity integer,
    OUT holder text, OUT admitted_at timestamptz, OUT gate text, OUT scan_id uuid,
    OUT offline boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_booking uuid;
    v_valid boolean;
    v_code_ok boolean;
    v_at timestamptz := COALESCE(LEAST(p_scanned_at, now()), now());
    v_offline boolean := p_scanned_at IS NOT NULL;
BEGIN
    SELECT b.id, b.event_id, t.seq, b.quantity, c.name,
           t.status = 'VALID' AND o.status = 'CONFIRMED' AND b.status = 'CONFIRMED'
               AND e.status <> 'CANCELLED',
           p_code IS NULL
               OR sha256(convert_to(t.code, 'UTF8')) = sha256(convert_to(p_code, 'UTF8'))
      INTO v_booking, ticket_event, seq, quantity, holder, v_valid, v_code_ok
      FROM ticket t
      JOIN orders o ON o.id = t.order_id
      JOIN booking b ON b.id = o.booking_id
      JOIN customer c ON c.id = b.customer_id
      JOIN event e ON e.id = b.event_id
     WHERE t.id = p_ticket
       FOR SHARE OF b;
    IF NOT FOUND THEN
        outcome := 'ticket-not-found';
        RETURN;
    END IF;
    IF NOT v_code_ok THEN
        outcome := 'invalid-ticket-code';
        RETURN;
    END IF;
    IF ticket_event <> p_event THEN
        outcome := 'wrong-event';
        RETURN;
    END IF;

    FOR attempt IN 1..2 LOOP
        -- Each statement sees what was committed before it started (READ COMMITTED): the second
        -- round sees the row of a concurrent scan whose insert made ours a no-op.
        SELECT ci.admitted_at, ci.gate, ci.scan_id, ci.offline
          INTO admitted_at, gate, scan_id, offline
          FROM check_in ci WHERE ci.ticket_id = p_ticket;
        IF FOUND THEN
            IF scan_id = p_scan THEN
                outcome := 'replayed';
            ELSE
                outcome := 'already-checked-in';
                IF v_offline THEN
                    INSERT INTO check_in_conflict
                           (ticket_id, scan_id, event_id, gate, scanner, scanned_at)
                    VALUES (p_ticket, p_scan, p_event, p_gate, p_scanner, v_at)
                    ON CONFLICT DO NOTHING;
                END IF;
            END IF;
            RETURN;
        END IF;
        IF NOT v_valid THEN
            outcome := 'ticket-cancelled';
            RETURN;
        END IF;
        INSERT INTO check_in AS ci
               (ticket_id, booking_id, event_id, scan_id, gate, scanner, offline, admitted_at)
        VALUES (p_ticket, v_booking, p_event, p_scan, p_gate, p_scanner, v_offline, v_at)
        ON CONFLICT (ticket_id) DO NOTHING
        RETURNING ci.admitted_at, ci.gate, ci.scan_id, ci.offline
             INTO admitted_at, gate, scan_id, offline;
        IF FOUND THEN
            outcome := 'admitted';
            RETURN;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'check_in_ticket: ticket % neither inserted nor found', p_ticket;
END $$;

-- Cancelling a booking that has a checked-in ticket is refused (the seats were used: no refund,
-- no resale). Enforced here, for every writer, as a guard of the cancellation itself: a refusal
-- as V3's functions make them (`refuse`: the problem slug as the message), so cancel_booking's
-- caller answers 409 booking-not-cancellable and nothing of the cancellation is kept.
CREATE OR REPLACE FUNCTION booking_refuse_cancel_after_check_in() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM check_in WHERE booking_id = NEW.id) THEN
        PERFORM refuse('booking-not-cancellable',
                       format('booking %s has a checked-in ticket: it can no longer be cancelled',
                              NEW.id));
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER booking_no_cancel_after_check_in
    BEFORE UPDATE OF status ON booking
    FOR EACH ROW
    WHEN (NEW.status = 'CANCELLED' AND OLD.status IS DISTINCT FROM 'CANCELLED')
    EXECUTE FUNCTION booking_refuse_cancel_after_check_in();
