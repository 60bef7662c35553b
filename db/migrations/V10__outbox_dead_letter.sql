-- Outbox: poison rows set aside, published rows pruned (docs/adr/0005-outbox-relay.md, amendment
-- of issue 20). Schema only; the relay's SQL is in src/boxoffice/adapters/outbox.py and the
-- pruning's in src/boxoffice/adapters/housekeeping.py.

-- A row Kafka refuses for good (too large for the topic, invalid) is dead-lettered: the relay
-- sets dead_lettered_at and never claims it again until an operator re-drives it
-- (`python -m boxoffice.relay --redrive ID`, which clears it). It stays unpublished, so it still
-- holds back the later rows of its key, and `stack/boxo verify` reports it. last_error keeps the
-- error of the row's latest failed attempt (dead-lettered or not).
ALTER TABLE outbox
    ADD COLUMN dead_lettered_at timestamptz,
    ADD COLUMN last_error       text;

-- A row is published or dead-lettered, never both. NOT VALID: every existing row has
-- dead_lettered_at NULL, and validating would scan a possibly large table under this
-- migration's exclusive lock; the constraint is enforced on every row written from now on.
ALTER TABLE outbox
    ADD CONSTRAINT outbox_published_or_dead_lettered
        CHECK (published_at IS NULL OR dead_lettered_at IS NULL) NOT VALID;

-- Housekeeping deletes published rows older than BOXOFFICE_OUTBOX_RETENTION_DAYS in small
-- batches; this index finds them without scanning the rows still within the retention.
-- IF NOT EXISTS: on a large outbox, create it beforehand without blocking bookings,
--   CREATE INDEX CONCURRENTLY outbox_published_idx ON outbox (published_at)
--    WHERE published_at IS NOT NULL;
-- and this migration then only adds the columns.
CREATE INDEX IF NOT EXISTS outbox_published_idx ON outbox (published_at)
    WHERE published_at IS NOT NULL;
