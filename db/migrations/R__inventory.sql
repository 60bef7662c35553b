-- The inventory's guard (docs/adr/0002-hot-event-inventory.md): an event's inventory shards add
-- up to its capacity at every commit, for every writer. The only definition of the function: a
-- repeatable migration (re-applied whenever this file changes). The tables are in V1.
--
-- The triggers are created here too, after their function (on a fresh database Flyway runs every
-- versioned migration before any repeatable one). Constraint triggers cannot be CREATE OR
-- REPLACEd, so they are dropped and created again in the same transaction (this briefly locks
-- event and event_inventory against writes: only when this file changes).

-- The shards of an event must add up to the event's capacity at commit time, the shards of each
-- category to the category's capacity, and the categories to the event's (V12).
CREATE OR REPLACE FUNCTION check_inventory_matches_capacity() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ev uuid;
    total integer;
    shards integer;
    expected integer;
    categories_total integer;
    wrong record;
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
    SELECT COALESCE(SUM(capacity), 0) INTO categories_total FROM ticket_category WHERE event_id = ev;
    IF categories_total <> expected THEN
        RAISE EXCEPTION 'the categories of event % hold % seats, event capacity is %',
            ev, categories_total, expected
            USING ERRCODE = 'check_violation', CONSTRAINT = 'inventory_matches_capacity';
    END IF;
    SELECT c.id, c.capacity, COALESCE(SUM(i.capacity), 0) AS shards_total INTO wrong
      FROM ticket_category c LEFT JOIN event_inventory i ON i.category_id = c.id
     WHERE c.event_id = ev
     GROUP BY c.id, c.capacity
    HAVING COALESCE(SUM(i.capacity), 0) <> c.capacity
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'inventory of category % of event % holds % seats, its capacity is %',
            wrong.id, ev, wrong.shards_total, wrong.capacity
            USING ERRCODE = 'check_violation', CONSTRAINT = 'inventory_matches_capacity';
    END IF;
    RETURN NULL;
END;
$$;

-- An event sold at one price needs no category of its own making (V12): a shard or a booking
-- written without a category gets the event's only one, and the first shard of an event without
-- categories creates it ("General admission", the event's price and capacity). For writers that
-- predate categories (SQL by hand, fixtures); the application always names the category.
CREATE OR REPLACE FUNCTION default_ticket_category() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    found_ids uuid[];
BEGIN
    IF NEW.category_id IS NOT NULL THEN
        RETURN NEW;
    END IF;
    SELECT array_agg(c.id) INTO found_ids FROM ticket_category c WHERE c.event_id = NEW.event_id;
    IF found_ids IS NULL AND TG_TABLE_NAME = 'event_inventory' THEN
        INSERT INTO ticket_category (event_id, name, price, capacity)
        SELECT e.id, 'General admission', e.ticket_price, e.capacity FROM event e
         WHERE e.id = NEW.event_id
        RETURNING ARRAY[id] INTO found_ids;
    END IF;
    IF coalesce(array_length(found_ids, 1), 0) <> 1 THEN
        RAISE EXCEPTION 'event % has % ticket categories: name the category', NEW.event_id,
            coalesce(array_length(found_ids, 1), 0)
            USING ERRCODE = 'not_null_violation';
    END IF;
    NEW.category_id := found_ids[1];
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS inventory_matches_capacity ON event_inventory;
DROP TRIGGER IF EXISTS event_capacity_matches_inventory ON event;
DROP TRIGGER IF EXISTS category_capacity_matches_inventory ON ticket_category;
DROP TRIGGER IF EXISTS inventory_default_category ON event_inventory;
DROP TRIGGER IF EXISTS booking_default_category ON booking;
CREATE CONSTRAINT TRIGGER inventory_matches_capacity
    AFTER INSERT OR UPDATE OF capacity, category_id OR DELETE ON event_inventory
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION check_inventory_matches_capacity();

CREATE CONSTRAINT TRIGGER event_capacity_matches_inventory
    AFTER INSERT OR UPDATE OF capacity ON event
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION check_inventory_matches_capacity();

CREATE CONSTRAINT TRIGGER category_capacity_matches_inventory
    AFTER INSERT OR UPDATE OF capacity OR DELETE ON ticket_category
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION check_inventory_matches_capacity();

CREATE TRIGGER inventory_default_category
    BEFORE INSERT ON event_inventory
    FOR EACH ROW WHEN (NEW.category_id IS NULL) EXECUTE FUNCTION default_ticket_category();

CREATE TRIGGER booking_default_category
    BEFORE INSERT ON booking
    FOR EACH ROW WHEN (NEW.category_id IS NULL) EXECUTE FUNCTION default_ticket_category();
