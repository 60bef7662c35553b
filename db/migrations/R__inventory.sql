-- The inventory's guard (docs/adr/0002-hot-event-inventory.md): an event's inventory shards add
-- up to its capacity at every commit, for every writer. The only definition of the function: a
-- repeatable migration (re-applied whenever this file changes). The tables are in V1.
--
-- The triggers are created here too, after their function (on a fresh database Flyway runs every
-- versioned migration before any repeatable one). Constraint triggers cannot be CREATE OR
-- REPLACEd, so they are dropped and created again in the same transaction (this briefly locks
-- event and event_inventory against writes: only when this file changes).

-- The shards of an event must add up to the event's capacity at commit time.
CREATE OR REPLACE FUNCTION check_inventory_matches_capacity() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ev uuid;
    total integer;
    shards integer;
    expected integer;
BEGIN
    IF TG_TABLE_NAME = 'event' THEN
        ev := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        ev := OLD.event_id;
    ELSE
        ev := NEW.event_id;
    END IF;
    SELECT capacity INTO expected FROM event WHERE id = ev;
    IF expected IS NULL THEN
        RETURN NULL;  -- event deleted
    END IF;
    SELECT COALESCE(SUM(capacity), 0), COUNT(*) INTO total, shards
      FROM event_inventory WHERE event_id = ev;
    IF total <> expected THEN
        RAISE EXCEPTION 'inventory of event % holds % seats over % shards, event capacity is %',
            ev, total, shards, expected
            USING ERRCODE = 'check_violation', CONSTRAINT = 'inventory_matches_capacity';
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS inventory_matches_capacity ON event_inventory;
DROP TRIGGER IF EXISTS event_capacity_matches_inventory ON event;
CREATE CONSTRAINT TRIGGER inventory_matches_capacity
    AFTER INSERT OR UPDATE OF capacity OR DELETE ON event_inventory
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION check_inventory_matches_capacity();

CREATE CONSTRAINT TRIGGER event_capacity_matches_inventory
    AFTER INSERT OR UPDATE OF capacity ON event
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION check_inventory_matches_capacity();
