-- Demo data for the local stack (idempotent: safe to load on every `up`).
-- Customer subjects match the fixed user ids in stack/keycloak/realm-boxoffice.json.
-- carol (ca201000-…-0003) deliberately has no customer profile: she must register first.
BEGIN;

INSERT INTO venue (id, name, address, city, capacity) VALUES
  ('7e0e0000-0000-4000-8000-000000000001', 'The Little Room', '1 Side Street', 'Bristol', 120),
  ('7e0e0000-0000-4000-8000-000000000002', 'Riverside Arena', '100 Quay Road', 'London', 60000),
  ('7e0e0000-0000-4000-8000-000000000003', 'Hall of Strings', '22 Concert Lane', 'Manchester', 2000)
ON CONFLICT (id) DO NOTHING;

INSERT INTO event (id, venue_id, name, description, starts_at, ticket_price, currency, capacity) VALUES
  ('e0e00000-0000-4000-8000-000000000001', '7e0e0000-0000-4000-8000-000000000001',
   'Secret Acoustic Set', 'A tiny show that sells out in seconds.',
   date_trunc('day', now()) + interval '14 days 20 hours', 25.00, 'GBP', 20),
  ('e0e00000-0000-4000-8000-000000000002', '7e0e0000-0000-4000-8000-000000000002',
   'Summer Stadium Tour', 'The big one: fifty thousand seats.',
   date_trunc('day', now()) + interval '60 days 19 hours', 89.50, 'GBP', 50000),
  ('e0e00000-0000-4000-8000-000000000003', '7e0e0000-0000-4000-8000-000000000003',
   'Chamber Music Evening', 'Quartets by candlelight.',
   date_trunc('day', now()) + interval '30 days 19 hours 30 minutes', 42.00, 'GBP', 1500),
  ('e0e00000-0000-4000-8000-000000000004', '7e0e0000-0000-4000-8000-000000000003',
   'Jazz Matinee', 'An afternoon of standards.',
   date_trunc('day', now()) + interval '21 days 15 hours', 18.75, 'GBP', 800)
ON CONFLICT (id) DO NOTHING;

-- Inventory shards: small events get one shard, the stadium gets 16 (see docs/adr/0002).
INSERT INTO event_inventory (event_id, shard, capacity)
SELECT e.id, s, e.capacity / k + CASE WHEN s < e.capacity % k THEN 1 ELSE 0 END
  FROM (SELECT id, capacity, CASE WHEN capacity >= 10000 THEN 16 WHEN capacity >= 1000 THEN 4 ELSE 1 END AS k
          FROM event
         WHERE id IN ('e0e00000-0000-4000-8000-000000000001', 'e0e00000-0000-4000-8000-000000000002',
                      'e0e00000-0000-4000-8000-000000000003', 'e0e00000-0000-4000-8000-000000000004')) e
  CROSS JOIN LATERAL generate_series(0, e.k - 1) AS s
ON CONFLICT (event_id, shard) DO NOTHING;

-- An event sold in three ticket categories, paid online (issue 22): its own categories and the
-- shards of each (Standing 2,000 seats: 4 shards, 0-3; Seated 800: shard 4; VIP 50: shard 5).
INSERT INTO event (id, venue_id, name, description, starts_at, ticket_price, currency, capacity,
                   online_payment) VALUES
  ('e0e00000-0000-4000-8000-000000000005', '7e0e0000-0000-4000-8000-000000000002',
   'Riverside Festival Night', 'Standing, seated or VIP: three ways to see it.',
   date_trunc('day', now()) + interval '45 days 18 hours', 25.00, 'GBP', 2850, true)
ON CONFLICT (id) DO NOTHING;

INSERT INTO ticket_category (id, event_id, name, price, capacity, position) VALUES
  ('ca7e0000-0000-4000-8000-000000000051', 'e0e00000-0000-4000-8000-000000000005',
   'Standing', 25.00, 2000, 0),
  ('ca7e0000-0000-4000-8000-000000000052', 'e0e00000-0000-4000-8000-000000000005',
   'Seated', 40.00, 800, 1),
  ('ca7e0000-0000-4000-8000-000000000053', 'e0e00000-0000-4000-8000-000000000005',
   'VIP', 90.00, 50, 2)
ON CONFLICT (id) DO NOTHING;

INSERT INTO event_inventory (event_id, shard, capacity, category_id) VALUES
  ('e0e00000-0000-4000-8000-000000000005', 0, 500, 'ca7e0000-0000-4000-8000-000000000051'),
  ('e0e00000-0000-4000-8000-000000000005', 1, 500, 'ca7e0000-0000-4000-8000-000000000051'),
  ('e0e00000-0000-4000-8000-000000000005', 2, 500, 'ca7e0000-0000-4000-8000-000000000051'),
  ('e0e00000-0000-4000-8000-000000000005', 3, 500, 'ca7e0000-0000-4000-8000-000000000051'),
  ('e0e00000-0000-4000-8000-000000000005', 4, 800, 'ca7e0000-0000-4000-8000-000000000052'),
  ('e0e00000-0000-4000-8000-000000000005', 5, 50, 'ca7e0000-0000-4000-8000-000000000053')
ON CONFLICT (event_id, shard) DO NOTHING;

INSERT INTO customer (id, subject, name, email, address_line1, postal_code, city, country) VALUES
  ('c0000000-0000-4000-8000-000000000001', 'a11ce000-0000-4000-8000-000000000001',
   'Alice Archer', 'alice@example.test', '3 Orchard Row', 'BS1 4AA', 'Bristol', 'GB'),
  ('c0000000-0000-4000-8000-000000000002', 'b0b00000-0000-4000-8000-000000000002',
   'Bob Baker', 'bob@example.test', '9 Mill Lane', 'M1 2BB', 'Manchester', 'GB'),
  ('c0000000-0000-4000-8000-000000000004', '011f1a00-0000-4000-8000-000000000004',
   'Olivia Ops', 'olivia@example.test', '1 Control Room', 'EC1A 1AA', 'London', 'GB')
ON CONFLICT (subject) DO NOTHING;

COMMIT;
