"""The booking rules where they live: the PL/pgSQL functions of
db/migrations/R__booking.sql, through the booking service and the real
PostgreSQL booking store, on a database of this module's own (so that "nothing written" can be
checked against the whole database, and refusals never touch the dev data).

`plan_allocation` (where seats come from, given each shard's free seats) is pure and called
directly. Locks taken by another transaction (SKIP LOCKED) are held from a second connection.
What needs many concurrent clients is in test_booking_concurrency.py.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from support_databases import fresh_database

from boxoffice import errors
from boxoffice.adapters.postgres import Database
from boxoffice.adapters.postgres_bookings import PostgresBookingStore
from boxoffice.domain.bookings import BookingStatus, request_hash
from boxoffice.domain.identity import Principal
from boxoffice.domain.money import Money
from boxoffice.services import bookings
from boxoffice.services.bookings import BookingPolicy, BookingRequest

pytestmark = pytest.mark.integration

CREATED_TYPE = "dev.boxoffice.booking.created.v1"
CANCELLED_TYPE = "dev.boxoffice.booking.cancelled.v1"
POLICY = BookingPolicy(
    max_tickets_per_order=10,
    max_tickets_per_customer_per_event=6,
    idempotency_ttl_hours=24,
    topic="booking",
    source="/boxoffice/bookings",
)
ALICE = Principal("sub-alice", frozenset({"customer"}))
BOB = Principal("sub-bob", frozenset({"customer"}))
ADMIN = Principal("sub-admin", frozenset({"admin", "customer"}))
NEWCOMER = Principal("sub-new", frozenset({"customer"}))
VENUE = uuid.UUID("7e0e0000-0000-4000-8000-0000000000bb")
TABLES = (
    "booking",
    "booking_allocation",
    "customer_event_tickets",
    "event",
    "event_inventory",
    "idempotency_record",
    "outbox",
)

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with fresh_database("bx_rules_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Rules Hall', '1 Road', 'Testville', 100000)""",
                (VENUE,),
            )
            for p in (ALICE, BOB, ADMIN):
                conn.execute(
                    """INSERT INTO customer (subject, name, email, address_line1, postal_code,
                                             city, country)
                       VALUES (%s, 'N', 'n@x.test', '1 Street', 'AB1 2CD', 'Town', 'GB')""",
                    (p.subject,),
                )
        yield url


@pytest.fixture(scope="module")
def store(db_url: str) -> Iterator[PostgresBookingStore]:
    database = Database(db_url, min_size=1, max_size=4)
    yield PostgresBookingStore(database)
    database.close()


@pytest.fixture
def db(db_url: str) -> Iterator[Conn]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


class Notifier:
    def __init__(self, fail: bool = False) -> None:
        self.kicks = 0
        self.fail = fail

    def kick(self) -> None:
        self.kicks += 1
        if self.fail:
            raise RuntimeError("relay is down")


def add_event(
    db: Conn, *capacities: int, price: str = "20.00", sold: tuple[int, ...] = ()
) -> uuid.UUID:
    event_id = uuid.uuid4()
    caps = capacities or (100,)
    with db.transaction():
        db.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity)
               VALUES (%s, %s, 'Rules night', now() + interval '30 days', %s, 'GBP', %s)""",
            (event_id, VENUE, Decimal(price), sum(caps)),
        )
        for shard, cap in enumerate(caps):
            db.execute(
                """INSERT INTO event_inventory (event_id, shard, capacity, sold)
                   VALUES (%s, %s, %s, %s)""",
                (event_id, shard, cap, sold[shard] if sold else 0),
            )
    return event_id


def sold(db: Conn, event: uuid.UUID) -> dict[int, int]:
    rows = db.execute(
        "SELECT shard, sold FROM event_inventory WHERE event_id = %s ORDER BY shard", (event,)
    ).fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def held_tickets(db: Conn, who: Principal, event: uuid.UUID) -> int:
    row = db.execute(
        """SELECT t.tickets FROM customer_event_tickets t JOIN customer c ON c.id = t.customer_id
            WHERE c.subject = %s AND t.event_id = %s""",
        (who.subject, event),
    ).fetchone()
    return 0 if row is None else int(row[0])


def allocations(db: Conn, booking_id: uuid.UUID) -> list[tuple[int, int]]:
    rows = db.execute(
        "SELECT shard, quantity FROM booking_allocation WHERE booking_id = %s ORDER BY shard",
        (booking_id,),
    ).fetchall()
    return [(int(r[0]), int(r[1])) for r in rows]


def snapshot(db: Conn) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a booking writes (as text, sorted): equal snapshots mean
    nothing was written."""
    return {
        t: sorted(db.execute(f"SELECT t::text FROM {t} t").fetchall())  # noqa: S608 - constant
        for t in TABLES
    }


def book(
    store: PostgresBookingStore,
    event_id: uuid.UUID,
    quantity: int = 1,
    key: str | None = None,
    who: Principal = ALICE,
    seed: int = 0,
    notifier: Notifier | None = None,
) -> bookings.Booked:
    body = {"eventId": str(event_id), "ticketCount": quantity}
    request = BookingRequest(
        event_id, quantity, key or uuid.uuid4().hex, request_hash("POST", "/bookings", body)
    )
    return bookings.create_booking(
        store, notifier or Notifier(), POLICY, who, request, random.Random(seed)
    )


# -- plan_allocation: where the seats come from (pure) -----------------------------------------


def plan(db: Conn, free: dict[int, int], quantity: int, start: int = 0) -> list[tuple[int, int]]:
    shards = sorted(free)
    rows = db.execute(
        "SELECT shard, seats FROM plan_allocation(%s::smallint[], %s::int[], %s, %s)",
        (shards, [free[s] for s in shards], quantity, start),
    ).fetchall()
    return sorted((int(r[0]), int(r[1])) for r in rows)


def test_plan_takes_all_seats_from_the_first_shard_with_room_from_the_start(db: Conn) -> None:
    free = {0: 10, 1: 1, 2: 10, 3: 10}
    assert plan(db, free, 4, start=1) == [(2, 4)]
    assert plan(db, free, 4, start=0) == [(0, 4)]


def test_plan_starts_at_the_given_shard_and_wraps_around(db: Conn) -> None:
    free = {0: 5, 1: 5, 2: 5, 3: 5}
    assert plan(db, free, 1, start=2) == [(2, 1)]
    assert plan(db, free, 1, start=7) == [(0, 1)]  # past the last shard: wraps to the first


def test_plan_prefers_one_shard_over_splitting_even_when_a_nearer_shard_has_some_seats(
    db: Conn,
) -> None:
    assert plan(db, {0: 2, 1: 2, 2: 5}, 4, start=0) == [(2, 4)]


def test_plan_splits_over_several_shards_when_none_has_room_alone(db: Conn) -> None:
    result = plan(db, {0: 1, 1: 2, 2: 0, 3: 2}, 4, start=3)
    assert result == [(0, 1), (1, 1), (3, 2)]  # in order from shard 3, wrapping around
    assert sum(n for _, n in result) == 4


def test_plan_is_empty_when_all_shards_together_hold_too_few_seats(db: Conn) -> None:
    assert plan(db, {0: 1, 1: 1, 2: 0}, 3) == []
    assert plan(db, {}, 1) == []


def test_plan_takes_the_exact_last_seats(db: Conn) -> None:
    assert plan(db, {0: 1, 1: 1, 2: 1}, 3) == [(0, 1), (1, 1), (2, 1)]


def test_plan_rejects_a_quantity_below_one(db: Conn) -> None:
    with pytest.raises(psycopg.errors.RaiseException, match="quantity must be >= 1"):
        plan(db, {0: 5}, 0)


# -- creating ----------------------------------------------------------------------------------


def test_booking_reserves_seats_counts_tickets_writes_outbox_and_completes_the_key(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 10, price="12.50")
    notifier = Notifier()
    result = book(store, event, quantity=3, key="k1", notifier=notifier)

    assert result.booking is not None
    assert not result.replayed
    b = result.booking
    assert b.quantity == 3
    assert b.unit_price == Money(Decimal("12.50"), "GBP")
    assert b.total == Money(Decimal("37.50"), "GBP")
    assert b.status is BookingStatus.PENDING
    assert sold(db, event) == {0: 3}
    assert allocations(db, b.id) == [(0, 3)]
    assert held_tickets(db, ALICE, event) == 3
    outbox = db.execute(
        """SELECT id, topic, record_key, event_type, event_source, event_time, payload
             FROM outbox WHERE record_key = %s""",
        (str(b.id),),
    ).fetchall()
    assert outbox == [
        (
            b.id,
            "booking",
            str(b.id),
            CREATED_TYPE,
            "/boxoffice/bookings",
            b.created_at,
            {
                "bookingId": str(b.id),
                "eventId": str(event),
                "categoryId": str(b.category_id),
                "customerId": str(b.customer_id),
                "quantity": 3,
                "unitPrice": {"amount": "12.50", "currency": "GBP"},
                "total": {"amount": "37.50", "currency": "GBP"},
                "status": "PENDING",
            },
        )
    ]
    key = db.execute(
        """SELECT state, response_status, booking_id FROM idempotency_record
            WHERE scope = %s AND key = 'k1'""",
        (ALICE.subject,),
    ).fetchone()
    assert key == ("COMPLETED", 201, b.id)
    assert notifier.kicks == 1


def test_same_key_and_body_replays_the_booking_as_created_without_booking_again(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 10)
    first = book(store, event, quantity=2, key="replayed")
    assert first.booking is not None
    bookings.cancel_booking(store, Notifier(), POLICY, ALICE, first.booking.id)
    before = snapshot(db)
    notifier = Notifier()

    second = book(store, event, quantity=2, key="replayed", notifier=notifier)

    assert second.replayed
    assert second.booking == first.booking  # as the first 201 showed it: PENDING, not cancelled
    assert snapshot(db) == before
    assert notifier.kicks == 0  # the replay committed nothing and kicked nothing


def test_same_key_with_a_different_body_is_refused_and_changes_nothing(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 10)
    book(store, event, quantity=2, key="k-reused")
    before = snapshot(db)
    with pytest.raises(errors.IdempotencyKeyReused):
        book(store, event, quantity=3, key="k-reused")
    assert snapshot(db) == before


def test_keys_are_scoped_to_the_caller(store: PostgresBookingStore, db: Conn) -> None:
    event = add_event(db, 10)
    a = book(store, event, key="shared", who=ALICE)
    b = book(store, event, key="shared", who=BOB)
    assert a.booking is not None
    assert b.booking is not None
    assert a.booking.id != b.booking.id


def test_a_key_whose_first_request_is_still_in_flight_is_in_use(
    store: PostgresBookingStore, db: Conn, db_url: str
) -> None:
    event = add_event(db, 10)
    with psycopg.connect(db_url) as first:  # the first request's claim, not yet committed
        first.execute(
            """INSERT INTO idempotency_record (scope, key, request_hash, state, expires_at)
               VALUES (%s, 'in-flight', 'h', 'IN_PROGRESS', now() + interval '1 hour')""",
            (ALICE.subject,),
        )
        with pytest.raises(errors.IdempotencyKeyInUse):
            book(store, event, quantity=1, key="in-flight")
        first.rollback()
    assert sold(db, event) == {0: 0}


def test_a_lock_wait_running_out_elsewhere_is_not_reported_as_the_key_in_use(
    db: Conn, db_url: str
) -> None:
    # The key's claim ends its wait with lock_not_available (no subtransaction to catch it in
    # SQL): only that one is 409 idempotency-key-in-use; a shard lock that runs out is a 503.
    event = add_event(db, 1, 1, sold=(0, 1))  # one seat left, on shard 0
    impatient = Database(db_url, min_size=1, max_size=1, timeout=0.5)
    try:
        with psycopg.connect(db_url) as other:  # another purchase holds every shard
            other.execute(
                "SELECT shard FROM event_inventory WHERE event_id = %s FOR UPDATE", (event,)
            ).fetchall()
            with pytest.raises(errors.ServiceUnavailable):
                book(PostgresBookingStore(impatient), event, quantity=1, key="waits-on-shards")
            other.rollback()
    finally:
        impatient.close()
    assert sold(db, event) == {0: 0, 1: 1}
    key = db.execute(
        "SELECT count(*) FROM idempotency_record WHERE scope = %s AND key = 'waits-on-shards'",
        (ALICE.subject,),
    ).fetchone()
    assert key == (0,)


def test_the_key_commits_completed_in_the_bookings_own_transaction(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 10)
    result = book(store, event, key="written-once")
    assert result.booking is not None
    row = db.execute(
        """SELECT r.state, r.response_status, r.booking_id FROM idempotency_record r
            WHERE r.scope = %s AND r.key = 'written-once'""",
        (ALICE.subject,),
    ).fetchone()
    # Claimed complete for the booking it names, before that booking was inserted (the
    # reference is checked at commit).
    assert row == ("COMPLETED", 201, result.booking.id)


def test_an_expired_key_is_claimed_again_for_a_new_booking(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 10)
    db.execute(
        """INSERT INTO idempotency_record (scope, key, request_hash, state, response_status,
                                           created_at, expires_at)
           VALUES (%s, 'expired', 'old', 'COMPLETED', 201, now() - interval '25 hours',
                   now() - interval '1 hour')""",
        (ALICE.subject,),
    )
    result = book(store, event, key="expired")
    assert not result.replayed
    assert result.booking is not None


def test_a_key_completed_before_booking_ids_were_kept_replays_its_stored_response(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 10)
    body = {"eventId": str(event), "ticketCount": 1}
    db.execute(
        """INSERT INTO idempotency_record (scope, key, request_hash, state, response_status,
                                           response_headers, response_body, expires_at)
           VALUES (%s, 'legacy', %s, 'COMPLETED', 201, '{"Location": "/bookings/x"}',
                   '{"id": "x"}', now() + interval '1 hour')""",
        (ALICE.subject, request_hash("POST", "/bookings", body)),
    )
    result = book(store, event, key="legacy")
    assert result.replayed
    assert result.booking is None
    assert result.stored is not None
    assert (result.stored.status, result.stored.body) == (201, {"id": "x"})
    assert result.stored.headers == {"Location": "/bookings/x"}


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("no-profile", errors.RegistrationRequired),
        ("no-event", errors.NotFound),
        ("cancelled", errors.EventNotOnSale),
        ("started", errors.EventNotOnSale),
        ("limit", errors.TicketLimitExceeded),
        ("sold-out", errors.SoldOut),
    ],
)
def test_refusals_leave_nothing_written_not_even_the_idempotency_key(
    store: PostgresBookingStore, db: Conn, setup: str, error: type[errors.BoxofficeError]
) -> None:
    event = add_event(db, 5, 5)
    who, quantity = ALICE, 2
    if setup == "no-profile":
        who = NEWCOMER
    elif setup == "no-event":
        event = uuid.uuid4()
    elif setup == "cancelled":
        db.execute("UPDATE event SET status = 'CANCELLED' WHERE id = %s", (event,))
    elif setup == "started":
        db.execute("UPDATE event SET starts_at = now() - interval '1 hour' WHERE id = %s", (event,))
    elif setup == "limit":
        db.execute(
            """INSERT INTO customer_event_tickets (customer_id, event_id, tickets)
               SELECT id, %s, 5 FROM customer WHERE subject = %s""",
            (event, ALICE.subject),
        )
    else:
        db.execute(
            "UPDATE event_inventory SET sold = capacity - (1 - shard) WHERE event_id = %s",
            (event,),
        )  # shard 0: 1 seat left, shard 1: none
    before = snapshot(db)
    notifier = Notifier()

    with pytest.raises(error) as refused:
        book(store, event, quantity=quantity, key=f"refused-{setup}", who=who, notifier=notifier)

    assert refused.value.detail  # the problem's detail comes from the rule that refused
    assert snapshot(db) == before
    assert notifier.kicks == 0


def test_ticket_count_above_the_order_maximum_names_the_field(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 100)
    with pytest.raises(errors.ValidationFailed) as caught:
        book(store, event, quantity=11)
    assert caught.value.errors[0].field == "ticketCount"


def test_per_customer_limit_counts_tickets_over_several_bookings(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 100)
    book(store, event, quantity=4)
    book(store, event, quantity=2)
    with pytest.raises(errors.TicketLimitExceeded):
        book(store, event, quantity=1)
    book(store, event, quantity=1, who=BOB)  # the limit is per customer


def test_seats_come_from_an_unheld_shard_when_the_random_start_shard_is_held(
    store: PostgresBookingStore, db: Conn, db_url: str
) -> None:
    event = add_event(db, 5, 5, 5, 5)
    with psycopg.connect(db_url) as other:  # another purchase holds shards 0-2
        other.execute(
            """SELECT shard FROM event_inventory WHERE event_id = %s AND shard IN (0, 1, 2)
                  FOR UPDATE""",
            (event,),
        ).fetchall()
        for start in (0, 1, 2):
            result = book(store, event, quantity=1, seed=start)
            assert result.booking is not None
            assert allocations(db, result.booking.id) == [(3, 1)]
        other.rollback()


def test_random_start_spreads_bookings_over_the_shards(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 100, 100, 100, 100)
    for seed in range(15):
        book(store, event, quantity=1, seed=seed, who=[ALICE, BOB, ADMIN][seed % 3])
    assert all(n > 0 for n in sold(db, event).values())


def test_seats_are_taken_from_several_shards_when_no_single_shard_has_room(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 5, 5, 5, sold=(3, 4, 3))
    result = book(store, event, quantity=5)
    assert result.booking is not None
    taken = allocations(db, result.booking.id)
    assert sum(n for _, n in taken) == 5
    assert len(taken) >= 2
    assert sold(db, event) == {0: 5, 1: 5, 2: 5}


def test_notifier_failure_after_commit_does_not_fail_the_booking(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 10)
    result = book(store, event, notifier=Notifier(fail=True))
    assert result.booking is not None
    assert allocations(db, result.booking.id) == [(0, 1)]


# -- reading -----------------------------------------------------------------------------------


def test_customers_read_their_own_bookings_and_get_404_for_others(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 10)
    created = book(store, event, who=BOB).booking
    assert created is not None
    assert bookings.get_booking(store, BOB, created.id).booking == created
    with pytest.raises(errors.NotFound):
        bookings.get_booking(store, ALICE, created.id)
    with pytest.raises(errors.NotFound):
        bookings.get_booking(store, NEWCOMER, created.id)
    assert bookings.get_booking(store, ADMIN, created.id).booking == created
    assert bookings.get_booking(store, BOB, created.id).order is None  # not yet confirmed


def test_listing_pages_through_the_callers_bookings_only(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 100)
    mine = [book(store, event, who=BOB).booking for _ in range(5)]
    book(store, event, who=ALICE)
    earlier = {
        r[0]
        for r in db.execute(
            """SELECT b.id FROM booking b JOIN customer c ON c.id = b.customer_id
                WHERE c.subject = %s AND b.event_id <> %s""",
            (BOB.subject, event),
        )
    }
    seen: list[uuid.UUID] = []
    after = None
    while True:
        page = bookings.list_bookings(store, BOB, 3, after)
        seen += [v.booking.id for v in page.items]
        if not page.has_more:
            break
        last = page.items[-1].booking
        after = (last.created_at, last.id)
    assert set(seen) == {b.id for b in mine if b} | earlier
    assert len(seen) == len(set(seen))
    assert bookings.list_bookings(store, NEWCOMER, 3) == bookings.BookingPage([], False)


# -- cancelling --------------------------------------------------------------------------------


def test_cancel_returns_seats_to_the_shards_they_came_from_and_frees_the_limit(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 5, 5, 5, sold=(3, 4, 3))
    created = book(store, event, quantity=5).booking
    assert created is not None
    notifier = Notifier()

    result = bookings.cancel_booking(store, notifier, POLICY, ALICE, created.id)

    assert result.changed
    assert result.booking.status is BookingStatus.CANCELLED
    assert result.booking.cancelled_at is not None
    assert sold(db, event) == {0: 3, 1: 4, 2: 3}
    assert held_tickets(db, ALICE, event) == 0
    events = db.execute(
        """SELECT event_type, record_key, id <> %s, event_time, payload->>'status' FROM outbox
            WHERE record_key = %s ORDER BY created_at, event_type DESC""",
        (created.id, str(created.id)),
    ).fetchall()
    assert events == [
        (CREATED_TYPE, str(created.id), False, created.created_at, "PENDING"),
        (CANCELLED_TYPE, str(created.id), True, result.booking.cancelled_at, "CANCELLED"),
    ]
    assert notifier.kicks == 1


def test_cancelling_twice_returns_the_seats_once(store: PostgresBookingStore, db: Conn) -> None:
    event = add_event(db, 10)
    created = book(store, event, quantity=4).booking
    assert created is not None
    bookings.cancel_booking(store, Notifier(), POLICY, ALICE, created.id)
    before = snapshot(db)
    notifier = Notifier()

    again = bookings.cancel_booking(store, notifier, POLICY, ALICE, created.id)

    assert not again.changed
    assert again.booking.status is BookingStatus.CANCELLED
    assert snapshot(db) == before
    assert notifier.kicks == 0


def test_only_the_owner_or_an_admin_can_cancel(store: PostgresBookingStore, db: Conn) -> None:
    event = add_event(db, 10)
    created = book(store, event).booking
    assert created is not None
    for other in (BOB, NEWCOMER):
        with pytest.raises(errors.NotFound):
            bookings.cancel_booking(store, Notifier(), POLICY, other, created.id)
    row = db.execute("SELECT status FROM booking WHERE id = %s", (created.id,)).fetchone()
    assert row == ("PENDING",)

    assert bookings.cancel_booking(store, Notifier(), POLICY, ADMIN, created.id).changed
    assert sold(db, event) == {0: 0}


def test_a_booking_cannot_be_cancelled_once_the_event_has_started(
    store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, 10)
    created = book(store, event).booking
    assert created is not None
    db.execute("UPDATE event SET starts_at = now() - interval '1 minute' WHERE id = %s", (event,))
    before = snapshot(db)
    with pytest.raises(errors.BookingNotCancellable):
        bookings.cancel_booking(store, Notifier(), POLICY, ALICE, created.id)
    assert snapshot(db) == before
