"""The database's invariants as read-only SQL checks (`python -m boxoffice.processes.verify`).

Each check is one query that returns the ids of the rows breaking one invariant; an empty result
means it holds. They run together in one REPEATABLE READ, READ ONLY transaction, so they see one
consistent snapshot of a live database: everything checked here is written atomically by the
functions (a booking with its seats, allocations, ticket count and outbox row; an order with its
tickets, the booking's confirmation and its `order_event` row), so a committed snapshot never
shows a violation in passing. What is only eventually true (a PENDING booking waiting for its
order, a cancelled booking whose order is not cancelled yet) is not checked.

Housekeeping prunes published outbox rows older than BOXOFFICE_OUTBOX_RETENTION_DAYS, so a
booking's outbox rows are expected only while younger than that (`outbox_retention_days`, the
same setting). A dead-lettered outbox row (refused by Kafka for good) is reported: its booking was
accepted and will not be confirmed until an operator re-drives it (README, "Operations").
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from boxoffice.domain.bookings import CANCELLED_TYPE, CREATED_TYPE


@dataclass(frozen=True)
class Check:
    name: str
    invariant: str
    sql: str  # -> rows of (offending id text,); parameters: %(outbox_retention_days)s


@dataclass(frozen=True)
class Result:
    check: Check
    violations: int
    examples: list[str]

    @property
    def ok(self) -> bool:
        return self.violations == 0


CHECKS: tuple[Check, ...] = (
    Check(
        "inventory_sold_equals_allocations",
        "each shard's sold seats equal the seats allocated to its bookings that hold seats (not"
        " cancelled, not expired)",
        """SELECT i.event_id || '/' || i.shard FROM event_inventory i
             LEFT JOIN (SELECT a.event_id, a.shard, SUM(a.quantity) AS seats
                          FROM booking_allocation a JOIN booking b ON b.id = a.booking_id
                         WHERE b.status NOT IN ('CANCELLED', 'EXPIRED')
                         GROUP BY a.event_id, a.shard) s
               ON s.event_id = i.event_id AND s.shard = i.shard
            WHERE i.sold <> COALESCE(s.seats, 0)""",
    ),
    Check(
        "inventory_within_capacity",
        "no shard is over its capacity or below zero",
        """SELECT event_id || '/' || shard FROM event_inventory
            WHERE sold < 0 OR sold > capacity""",
    ),
    Check(
        "inventory_matches_event_capacity",
        "an event's shards add up to its capacity",
        """SELECT e.id::text FROM event e
             LEFT JOIN (SELECT event_id, SUM(capacity) AS seats FROM event_inventory
                         GROUP BY event_id) i ON i.event_id = e.id
            WHERE COALESCE(i.seats, 0) <> e.capacity""",
    ),
    Check(
        "booking_allocations_match_quantity",
        "a booking's allocations add up to its quantity, on its own event",
        """SELECT b.id::text FROM booking b
             LEFT JOIN (SELECT booking_id, SUM(quantity) AS seats,
                               array_agg(DISTINCT event_id) AS events
                          FROM booking_allocation GROUP BY booking_id) a ON a.booking_id = b.id
            WHERE COALESCE(a.seats, 0) <> b.quantity
               OR a.events IS DISTINCT FROM ARRAY[b.event_id]""",
    ),
    Check(
        "cancelled_bookings_hold_no_seats",
        "an event's sold seats equal the quantities of its bookings that hold seats "
        "(a cancellation or an expired hold gave its seats back)",
        """SELECT e.id::text FROM event e
             LEFT JOIN (SELECT event_id, SUM(sold) AS sold FROM event_inventory
                         GROUP BY event_id) i ON i.event_id = e.id
             LEFT JOIN (SELECT event_id, SUM(quantity) AS seats FROM booking
                         WHERE status NOT IN ('CANCELLED', 'EXPIRED')
                         GROUP BY event_id) b ON b.event_id = e.id
            WHERE COALESCE(i.sold, 0) <> COALESCE(b.seats, 0)""",
    ),
    Check(
        "customer_ticket_counts",
        "customer_event_tickets equals the customer's tickets for the event that hold seats",
        """SELECT COALESCE(t.customer_id, b.customer_id) || '/'
                  || COALESCE(t.event_id, b.event_id)
             FROM customer_event_tickets t
             FULL JOIN (SELECT customer_id, event_id, SUM(quantity) AS seats FROM booking
                         WHERE status NOT IN ('CANCELLED', 'EXPIRED')
                         GROUP BY customer_id, event_id) b
               ON b.customer_id = t.customer_id AND b.event_id = t.event_id
            WHERE COALESCE(t.tickets, 0) <> COALESCE(b.seats, 0)""",
    ),
    Check(
        "booking_has_created_event",
        "every booking that was published (not a hold, nor a hold cancelled or expired unpaid) has"
        " its booking.created outbox row (or its order: proof it was published) while younger"
        " than the outbox retention",
        f"""SELECT b.id::text FROM booking b
            WHERE b.created_at >= now() - make_interval(days => %(outbox_retention_days)s)
              AND b.status NOT IN ('HELD', 'EXPIRED')
              AND (b.hold_expires_at IS NULL
                   OR EXISTS (SELECT 1 FROM payment p WHERE p.booking_id = b.id AND p.applied))
              AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.record_key = b.id::text
                                AND o.event_type = '{CREATED_TYPE}')
              AND NOT EXISTS (SELECT 1 FROM orders r WHERE r.booking_id = b.id)""",  # noqa: S608
    ),
    Check(
        "cancelled_booking_has_cancelled_event",
        "every cancelled booking that was published has its booking.cancelled outbox row while"
        " younger than the outbox retention",
        f"""SELECT b.id::text FROM booking b
            WHERE b.status = 'CANCELLED'
              AND (b.hold_expires_at IS NULL
                   OR EXISTS (SELECT 1 FROM payment p WHERE p.booking_id = b.id AND p.applied))
              AND b.cancelled_at >= now() - make_interval(days => %(outbox_retention_days)s)
              AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.record_key = b.id::text
                                AND o.event_type = '{CANCELLED_TYPE}')""",  # noqa: S608
    ),
    Check(
        "outbox_event_has_booking",
        "every booking event in the outbox names an existing booking",
        f"""SELECT o.id::text FROM outbox o
            WHERE o.event_type IN ('{CREATED_TYPE}', '{CANCELLED_TYPE}')
              AND NOT EXISTS (SELECT 1 FROM booking b WHERE b.id::text = o.record_key)""",  # noqa: S608
    ),
    Check(
        "outbox_event_not_dead_lettered",
        "no outbox event is dead-lettered (refused by Kafka for good: its booking is never"
        " confirmed until the event is re-driven, README Operations)",
        """SELECT o.id::text FROM outbox o WHERE o.dead_lettered_at IS NOT NULL""",
    ),
    Check(
        "confirmed_booking_has_one_order",
        "every CONFIRMED booking has exactly one order, with `quantity` tickets numbered 1..n",
        """SELECT b.id::text FROM booking b
             LEFT JOIN orders r ON r.booking_id = b.id
             LEFT JOIN (SELECT order_id, COUNT(*) AS n, MAX(seq) AS top FROM ticket
                         GROUP BY order_id) t ON t.order_id = r.id
            WHERE b.status = 'CONFIRMED'
              AND (r.id IS NULL OR COALESCE(t.n, 0) <> b.quantity
                   OR COALESCE(t.top, 0) <> b.quantity)""",
    ),
    Check(
        "order_only_for_processed_booking",
        "an order belongs to a booking that is CONFIRMED or CANCELLED, never PENDING, HELD or"
        " EXPIRED",
        """SELECT r.id::text FROM orders r JOIN booking b ON b.id = r.booking_id
            WHERE b.status IN ('PENDING', 'HELD', 'EXPIRED')""",
    ),
    Check(
        "cancelled_order_has_no_valid_ticket",
        "a cancelled order's tickets are all cancelled",
        """SELECT r.id::text FROM orders r JOIN ticket t ON t.order_id = r.id
            WHERE r.status = 'CANCELLED' AND t.status = 'VALID' GROUP BY r.id""",
    ),
    Check(
        "category_sold_within_capacity",
        "each ticket category's shards add up to its capacity and sell at most that",
        """SELECT c.id::text FROM ticket_category c
             LEFT JOIN (SELECT category_id, SUM(capacity) AS seats, SUM(sold) AS sold
                          FROM event_inventory GROUP BY category_id) i ON i.category_id = c.id
            WHERE COALESCE(i.seats, 0) <> c.capacity OR COALESCE(i.sold, 0) > c.capacity""",
    ),
    Check(
        "booking_seats_in_its_category",
        "a booking's seats come from shards of its own category",
        """SELECT b.id::text FROM booking b
             JOIN booking_allocation a ON a.booking_id = b.id
             JOIN event_inventory i ON i.event_id = a.event_id AND i.shard = a.shard
            WHERE i.category_id <> b.category_id GROUP BY b.id""",
    ),
    Check(
        "refunded_at_most_paid",
        "the refunds of a payment (requested or done) never add up to more than it",
        """SELECT p.id FROM payment p JOIN refund r ON r.payment_id = p.id
            WHERE r.status <> 'FAILED'
            GROUP BY p.id, p.amount HAVING SUM(r.amount) > p.amount""",
    ),
    Check(
        "paid_hold_was_paid",
        "a booking made as a hold is published (PENDING, CONFIRMED) only with a payment applied"
        " to it, of its total",
        """SELECT b.id::text FROM booking b
            WHERE b.hold_expires_at IS NOT NULL AND b.status IN ('PENDING', 'CONFIRMED')
              AND NOT EXISTS (SELECT 1 FROM payment p WHERE p.booking_id = b.id AND p.applied
                                 AND p.amount = b.total)""",
    ),
    Check(
        "refunded_booking_is_cancelled",
        "a booking whose applied payment was refunded is cancelled (no valid tickets stay on a"
        " refunded booking once its cancellation is processed)",
        """SELECT b.id::text FROM booking b
             JOIN payment p ON p.booking_id = b.id AND p.applied
             JOIN refund r ON r.payment_id = p.id AND r.status <> 'FAILED'
            WHERE b.status <> 'CANCELLED' GROUP BY b.id""",
    ),
    Check(
        "no_valid_ticket_on_refunded_booking",
        "no ticket stays valid on a booking refunded more than five minutes ago (its"
        " cancellation reaches order processing through Kafka within seconds)",
        """SELECT b.id::text FROM booking b
             JOIN payment p ON p.booking_id = b.id AND p.applied
             JOIN refund r ON r.payment_id = p.id AND r.status <> 'FAILED'
             JOIN orders o ON o.booking_id = b.id
             JOIN ticket t ON t.order_id = o.id AND t.status = 'VALID'
            WHERE r.created_at < now() - interval '5 minutes' GROUP BY b.id""",
    ),
    Check(
        "unapplied_payment_refunded",
        "a payment that succeeded but paid nothing (late, duplicate, another amount) is refunded"
        " in full",
        """SELECT p.id FROM payment p
             LEFT JOIN refund r ON r.payment_id = p.id AND r.status <> 'FAILED'
            WHERE p.status = 'SUCCEEDED' AND NOT p.applied
            GROUP BY p.id, p.amount HAVING COALESCE(SUM(r.amount), 0) <> p.amount""",
    ),
    Check(
        "confirmed_event_has_order",
        "a booking event recorded as CONFIRMED by consume_order left its order",
        """SELECT e.event_id FROM order_event e
            WHERE e.outcome = 'CONFIRMED'
              AND NOT EXISTS (SELECT 1 FROM orders r WHERE r.booking_id = e.booking_id)""",
    ),
)


def run_checks(
    url: str,
    limit: int = 5,
    checks: tuple[Check, ...] = CHECKS,
    outbox_retention_days: int = 7,
) -> list[Result]:
    """Every check in one REPEATABLE READ, READ ONLY snapshot of the database at `url`;
    `outbox_retention_days` as housekeeping prunes with (BOXOFFICE_OUTBOX_RETENTION_DAYS)."""
    params = {"limit": limit, "outbox_retention_days": outbox_retention_days}
    with psycopg.connect(url, connect_timeout=10, application_name="boxoffice-verify") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        results = []
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = '5min'")
            for check in checks:
                rows = conn.execute(
                    f"SELECT COUNT(*) OVER (), v.* FROM ({check.sql}) v ORDER BY 2"  # noqa: S608
                    " LIMIT %(limit)s",
                    params,
                ).fetchall()
                count = int(rows[0][0]) if rows else 0
                results.append(Result(check, count, [str(r[1]) for r in rows]))
    return results
