-- Flyway callback (runs before every validation, so before every `flyway migrate`): databases
-- migrated before the versioned migrations were rewritten to hold schema only (issue 20; ADR 10,
-- amendment "one home per rule") are brought in line with the files as they are now.
--
-- In December 2026 every PL/pgSQL function moved out of the versioned migrations into one
-- repeatable migration per area (R__booking.sql, R__orders.sql, R__check_in.sql,
-- R__waiting_room.sql, R__inventory.sql), and R__booking_rules.sql became R__booking.sql. The
-- schema a fresh database gets is unchanged (tests/integration/test_database_migrations.py
-- compares it with what the old files produce), but Flyway records a checksum per applied file,
-- so a database migrated with the old files fails validation. What `flyway repair` would do for
-- exactly those files is done here, and nothing more:
--   * a versioned migration's recorded checksum is replaced only when it is exactly the checksum
--     of the old file (listed below) and the migration succeeded: any other mismatch (a file
--     edited by anyone since, an unknown database) still fails validation as it should;
--   * the history rows of R__booking_rules.sql are renamed to R__booking.sql: Flyway then finds
--     the repeatable migration outdated and applies R__booking.sql (CREATE OR REPLACE) once.
-- On a new database (no history yet) and on one already realigned, nothing changes. The
-- rewritten files' checksums below are checked against what Flyway computes for them
-- (test_database_migrations.py). Once no database older than the rewrite is left, this file can
-- go.
DO $$
BEGIN
    IF to_regclass('flyway_schema_history') IS NULL THEN
        RETURN;  -- nothing applied yet
    END IF;
    UPDATE flyway_schema_history h
       SET checksum = r.rewritten
      FROM (VALUES ('1', 'V1__core_schema.sql', -1546873549, 865638590),
                   ('3', 'V3__booking_in_one_round_trip.sql', -1020891956, -3554919),
                   ('4', 'V4__order_processing_in_one_round_trip.sql', -1825833973, 1834846087),
                   ('6', 'V6__check_in.sql', 56644610, 1104420124),
                   ('8', 'V8__waiting_room.sql', 1264900924, -1573812915),
                   ('9', 'V9__lean_booking.sql', -374896986, -1932980263))
           AS r (version, script, original, rewritten)
     WHERE h.version = r.version AND h.script = r.script AND h.checksum = r.original
       AND h.success;
    UPDATE flyway_schema_history h SET script = 'R__booking.sql', description = 'booking'
     WHERE h.version IS NULL AND h.script = 'R__booking_rules.sql';
END
$$;
