-- Lean booking (docs/adr/0010-booking-rules-in-sql.md, amendment "lean booking").
--
-- The booking's Idempotency-Key row is now written once, complete, when the key is claimed at
-- the start of book_tickets (db/migrations/R__booking.sql), instead of being inserted as
-- IN_PROGRESS and updated to COMPLETED at the end: the row, the booking and everything else of
-- the booking commit together or not at all, so nobody can ever see the completed row without
-- its booking. The row names the booking before that booking is inserted (later in the same
-- transaction), so its reference to the booking is checked at commit instead of at once.
ALTER TABLE idempotency_record ALTER CONSTRAINT idempotency_record_booking_id_fkey
    DEFERRABLE INITIALLY DEFERRED;
