-- The purchase path in one round trip (docs/adr/0010-booking-rules-in-sql.md): schema.
--
-- POST /bookings and DELETE /bookings/{id} each used to be about a dozen statements, every one a
-- round trip from Python. Each is now one call of a PL/pgSQL function (book_tickets,
-- cancel_booking, and one function per rule they apply). Those functions, first written here,
-- now have their only definition in the repeatable migration R__booking.sql; this file keeps the
-- schema change they needed.

-- A completed key now names the booking it created: a replay renders that booking as it was
-- created (docs/adr/0004-idempotency.md). Rows written before this migration keep their stored
-- response and are replayed from it until they expire.
ALTER TABLE idempotency_record ADD COLUMN booking_id uuid REFERENCES booking (id);
