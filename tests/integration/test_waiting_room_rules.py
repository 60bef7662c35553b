"""The waiting room's rules where they live: the PL/pgSQL functions of
db/migrations/R__waiting_room.sql, through the waiting-room service and the real PostgreSQL
stores, on a database of this module's own (so that "nothing written" can be checked, and the
clock of a line can be moved by hand: `opens_at`, `ticked_at` and `expires_at` are set directly,
which is how these tests make time pass without waiting for it).

Covered: places (one per customer, joining again), the pre-queue's random draw and FIFO after
it, the serving counter's rate, burst cap and capacity bound, expiry giving capacity back,
stopping when sold out, two ticks at once (with a control that shows the race without the row
lock), and the admission rule of `book_tickets` (none, other event, other customer, expired,
unknown admission; events not in queue mode unchanged). Many concurrent clients over HTTP are
in test_waiting_room_concurrency.py.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from support_databases import fresh_database

from boxoffice import errors
from boxoffice.adapters.postgres import Database
from boxoffice.adapters.postgres_bookings import PostgresBookingStore
from boxoffice.adapters.postgres_waiting_room import PostgresWaitingRoom
from boxoffice.domain.bookings import request_hash
from boxoffice.domain.identity import Principal
from boxoffice.domain.waiting_room import (
    AdmissionClaims,
    LineState,
    PlaceState,
    QueueSettings,
    view_place,
)
from boxoffice.services import bookings, waiting_room
from boxoffice.services.bookings import BookingPolicy, BookingRequest
from boxoffice.services.waiting_room import AdmissionPolicy

pytestmark = pytest.mark.integration

VENUE = uuid.UUID("7e0e0000-0000-4000-8000-0000000000cc")
BUYERS = [Principal(f"sub-wr-{i:03d}", frozenset({"customer"})) for i in range(300)]
ALICE, BOB = BUYERS[0], BUYERS[1]
NEWCOMER = Principal("sub-wr-new", frozenset({"customer"}))
POLICY = BookingPolicy(
    max_tickets_per_order=10,
    max_tickets_per_customer_per_event=6,
    idempotency_ttl_hours=24,
    topic="booking",
    source="/boxoffice/bookings",
)
RATE = Decimal(10)
TICK = AdmissionPolicy(tick_seconds=1.0, auto_capacity=Decimal(50))
TABLES = (
    "booking",
    "booking_allocation",
    "customer_event_tickets",
    "event_inventory",
    "event_queue",
    "queue_entry",
    "idempotency_record",
    "outbox",
)

Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with fresh_database("bx_wr_rules_test") as url:
        with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Queue Hall', '1 Road', 'Testville', 100000)""",
                (VENUE,),
            )
            cur.executemany(
                """INSERT INTO customer (subject, name, email, address_line1, postal_code,
                                         city, country)
                   VALUES (%s, 'N', 'n@x.test', '1 Street', 'AB1 2CD', 'Town', 'GB')""",
                [(p.subject,) for p in BUYERS],
            )
        yield url


@pytest.fixture(scope="module")
def database(db_url: str) -> Iterator[Database]:
    database = Database(db_url, min_size=1, max_size=6)
    yield database
    database.close()


@pytest.fixture(scope="module")
def room(database: Database) -> PostgresWaitingRoom:
    return PostgresWaitingRoom(database)


@pytest.fixture(scope="module")
def store(database: Database) -> PostgresBookingStore:
    return PostgresBookingStore(database)


@pytest.fixture
def db(db_url: str) -> Iterator[Conn]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


def add_event(db: Conn, capacity: int = 100, shards: int = 1) -> uuid.UUID:
    event_id = uuid.uuid4()
    with db.transaction():
        db.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity)
               VALUES (%s, %s, 'Hot on-sale', now() + interval '30 days', 50, 'GBP', %s)""",
            (event_id, VENUE, capacity),
        )
        for shard in range(shards):
            db.execute(
                "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, %s, %s)",
                (event_id, shard, capacity // shards + (1 if shard < capacity % shards else 0)),
            )
    return event_id


def queue(
    room: PostgresWaitingRoom,
    event: uuid.UUID,
    *,
    opens_in: float = 0.0,
    rate: Decimal | None = RATE,
    window: int = 600,
    randomise: bool = True,
    per_buyer: str = "2",
) -> None:
    settings = QueueSettings(
        opens_at=datetime.now(UTC) + timedelta(seconds=opens_in),
        admission_rate=rate,
        admission_seconds=window,
        randomise_early=randomise,
        tickets_per_buyer=Decimal(per_buyer),
    )
    waiting_room.configure(room, event, settings)


def join(room: PostgresWaitingRoom, event: uuid.UUID, who: Principal = ALICE) -> Any:
    view, _ = waiting_room.join(room, who, event)
    return view


def open_now(db: Conn, event: uuid.UUID, ticked_seconds_ago: float | None = None) -> None:
    """The on-sale time has come; the counter's clock last advanced that many seconds ago."""
    db.execute(
        """UPDATE event_queue SET opens_at = now() - interval '1 hour',
                  ticked_at = CASE WHEN %(ago)s::float8 IS NULL THEN NULL
                                   ELSE now() - make_interval(secs => %(ago)s) END
            WHERE event_id = %(event)s""",
        {"event": event, "ago": ticked_seconds_ago},
    )


def set_clock(db: Conn, event: uuid.UUID, seconds_ago: float) -> None:
    db.execute(
        """UPDATE event_queue SET ticked_at = now() - make_interval(secs => %s), allowance = 0
            WHERE event_id = %s""",
        (seconds_ago, event),
    )


def tick(room: PostgresWaitingRoom, event: uuid.UUID) -> Any:
    return next(t for t in waiting_room.tick(room, TICK) if t.event_id == event)


def entries(db: Conn, event: uuid.UUID) -> list[tuple[Any, ...]]:
    """(subject, arrival, position, admitted_at, expires_at, used_at) in arrival order."""
    return db.execute(
        """SELECT c.subject, e.arrival, e.position, e.admitted_at, e.expires_at, e.used_at
             FROM queue_entry e JOIN customer c ON c.id = e.customer_id
            WHERE e.event_id = %s ORDER BY e.arrival""",
        (event,),
    ).fetchall()


def admitted_count(db: Conn, event: uuid.UUID) -> int:
    row = db.execute(
        "SELECT count(*) FROM queue_entry WHERE event_id = %s AND admitted_at IS NOT NULL",
        (event,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def snapshot(db: Conn) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t: sorted(db.execute(f"SELECT t::text FROM {t} t").fetchall())  # noqa: S608 - constant
        for t in TABLES
    }


def claims(db: Conn, event: uuid.UUID, who: Principal) -> AdmissionClaims:
    """What a valid admission token of `who` for `event` proves (their admitted place)."""
    row = db.execute(
        """SELECT e.id, e.expires_at FROM queue_entry e JOIN customer c ON c.id = e.customer_id
            WHERE e.event_id = %s AND c.subject = %s AND e.admitted_at IS NOT NULL""",
        (event, who.subject),
    ).fetchone()
    assert row is not None, f"{who.subject} is not admitted"
    return AdmissionClaims(row[0], event, who.subject, row[1])


def book(
    store: PostgresBookingStore,
    event: uuid.UUID,
    who: Principal = ALICE,
    quantity: int = 2,
    admission: AdmissionClaims | None = None,
) -> bookings.Booked:
    body = {"eventId": str(event), "ticketCount": quantity}
    request = BookingRequest(
        event, quantity, uuid.uuid4().hex, request_hash("POST", "/bookings", body), admission
    )

    class Quiet:
        def kick(self) -> None:
            return None

    return bookings.create_booking(store, Quiet(), POLICY, who, request, random.Random(1))


# -- queue mode and places ---------------------------------------------------------------------


def test_joining_gives_one_place_and_joining_again_returns_the_same_place(
    room: PostgresWaitingRoom, db: Conn
) -> None:
    event = add_event(db)
    queue(room, event, randomise=False)
    first, created = waiting_room.join(room, ALICE, event)
    again, created_again = waiting_room.join(room, ALICE, event)
    second = join(room, event, BOB)

    assert created
    assert not created_again
    assert again.place == first.place
    assert first.place.position == 1
    assert second.place.position == 2
    assert [r[1] for r in entries(db, event)] == [1, 2]  # no arrival number was used twice


def test_a_customer_needs_a_profile_and_the_event_a_waiting_room(
    room: PostgresWaitingRoom, db: Conn
) -> None:
    event = add_event(db)
    with pytest.raises(errors.NotFound):
        join(room, event)  # not in queue mode
    queue(room, event)
    before = snapshot(db)
    with pytest.raises(errors.RegistrationRequired):
        join(room, event, NEWCOMER)
    assert snapshot(db) == before


def test_no_new_places_for_a_cancelled_event_or_a_sold_out_line(
    room: PostgresWaitingRoom, db: Conn
) -> None:
    cancelled, sold_out = add_event(db), add_event(db, capacity=2)
    for event in (cancelled, sold_out):
        queue(room, event)
    db.execute("UPDATE event SET status = 'CANCELLED' WHERE id = %s", (cancelled,))
    with pytest.raises(errors.EventNotOnSale):
        join(room, cancelled)
    db.execute("UPDATE event_inventory SET sold = capacity WHERE event_id = %s", (sold_out,))
    assert tick(room, sold_out).state is LineState.SOLD_OUT
    with pytest.raises(errors.SoldOut):
        join(room, sold_out)


def test_the_pre_queue_is_drawn_in_random_order_at_opening_and_later_arrivals_are_fifo(
    room: PostgresWaitingRoom, db: Conn
) -> None:
    event = add_event(db, capacity=10_000)
    queue(room, event, opens_in=3600, rate=Decimal(1))
    early = BUYERS[:200]
    for who in early:
        assert join(room, event, who).place.position is None  # no place before the draw
    open_now(db, event)
    late = BUYERS[200:260]
    for who in late:
        join(room, event, who)  # after the on-sale time, before the draw
    tick(room, event)
    for who in BUYERS[260:300]:
        join(room, event, who)  # after the draw

    rows = entries(db, event)
    places = {r[0]: r[2] for r in rows}
    early_places = [places[w.subject] for w in early]
    assert sorted(early_places) == list(range(1, 201))  # the pre-queue's own numbers
    # Random order: far from arrival order (a sorted draw has 200 fixed points, a random
    # permutation about 1; the chance of more than 10 is below 1e-7).
    assert sum(p == i for i, p in enumerate(early_places, 1)) <= 10
    assert _rank_correlation(early_places) < 0.4
    later = [places[w.subject] for w in BUYERS[200:]]
    assert later == list(range(201, 301))  # FIFO, after the whole pre-queue


def _rank_correlation(places: list[int]) -> float:
    """Spearman's rho between arrival order and drawn place (1: same order)."""
    n = len(places)
    d2 = sum((i - p) ** 2 for i, p in enumerate(places, 1))
    return 1 - 6 * d2 / (n * (n * n - 1))


def test_two_draws_of_the_same_pre_queue_differ(room: PostgresWaitingRoom, db: Conn) -> None:
    orders = []
    for _ in range(2):
        event = add_event(db)
        queue(room, event, opens_in=3600)
        for who in BUYERS[:30]:
            join(room, event, who)
        open_now(db, event)
        tick(room, event)
        orders.append([r[2] for r in entries(db, event)])
    assert orders[0] != orders[1]


def test_without_randomising_early_arrivals_are_first_come_first_served(
    room: PostgresWaitingRoom, db: Conn
) -> None:
    event = add_event(db)
    queue(room, event, opens_in=3600, randomise=False)
    for i, who in enumerate(BUYERS[:20], 1):
        assert join(room, event, who).place.position == i
    open_now(db, event)
    tick(room, event)
    assert [r[2] for r in entries(db, event)] == list(range(1, 21))


def test_a_straggler_of_the_pre_queue_gets_its_own_arrival_number_after_the_draw(
    room: PostgresWaitingRoom, db: Conn
) -> None:
    event = add_event(db)
    queue(room, event, opens_in=3600)
    for who in BUYERS[:5]:
        join(room, event, who)
    open_now(db, event)
    tick(room, event)
    # A join that started before the on-sale time and committed after the draw.
    db.execute(
        """INSERT INTO queue_entry (id, event_id, customer_id, arrival)
           SELECT gen_random_uuid(), %s, c.id, nextval(q.arrivals)
             FROM customer c, event_queue q WHERE c.subject = %s AND q.event_id = %s""",
        (event, BUYERS[5].subject, event),
    )
    tick(room, event)
    assert sorted(r[2] for r in entries(db, event)) == [1, 2, 3, 4, 5, 6]


# -- the serving counter -------------------------------------------------------------------------


def test_nobody_is_admitted_before_the_on_sale_time(room: PostgresWaitingRoom, db: Conn) -> None:
    event = add_event(db)
    queue(room, event, opens_in=3600, randomise=False)
    for who in BUYERS[:5]:
        join(room, event, who)
    t = tick(room, event)
    assert (t.state, t.admitted, t.waiting) == (LineState.SCHEDULED, 0, 5)
    assert admitted_count(db, event) == 0


def test_the_counter_admits_the_rate_times_the_time_since_its_last_advance_in_line_order(
    room: PostgresWaitingRoom, db: Conn
) -> None:
    event = add_event(db)
    queue(room, event, randomise=False)
    for who in BUYERS[:30]:
        join(room, event, who)
    set_clock(db, event, 0.75)  # 10/s x 0.75 s: 7 now, the half carried over

    t = tick(room, event)

    assert t.admitted == 7
    rows = entries(db, event)
    assert [r[2] for r in rows if r[3] is not None] == list(range(1, 8))  # from the head
    line = room.line(event)
    assert line is not None
    assert (line.served_up_to, line.admitted, line.waiting) == (7, 7, 23)
    assert all(r[4] - r[3] == timedelta(seconds=600) for r in rows if r[3] is not None)
    row = db.execute("SELECT allowance FROM event_queue WHERE event_id = %s", (event,)).fetchone()
    assert row is not None
    assert 0.4 < row[0] < 0.6


def test_a_late_tick_admits_at_most_two_seconds_worth(room: PostgresWaitingRoom, db: Conn) -> None:
    event = add_event(db, capacity=1000)
    queue(room, event, randomise=False)
    for who in BUYERS[:100]:
        join(room, event, who)
    set_clock(db, event, 600)  # the controller was down for ten minutes
    assert tick(room, event).admitted == 20


def test_a_tick_right_after_another_admits_nothing_more(
    room: PostgresWaitingRoom, db: Conn
) -> None:
    event = add_event(db)
    queue(room, event, randomise=False)
    for who in BUYERS[:30]:
        join(room, event, who)
    set_clock(db, event, 1.0)
    assert tick(room, event).admitted == 10
    assert tick(room, event).admitted <= 1  # only the milliseconds in between


def test_admission_never_runs_ahead_of_the_seats_left_and_expiry_gives_them_back(
    room: PostgresWaitingRoom, store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, capacity=10)  # 10 seats, 2 per buyer expected: 5 admissions at most
    queue(room, event, randomise=False)
    for who in BUYERS[:20]:
        join(room, event, who)
    set_clock(db, event, 2.0)
    assert tick(room, event).admitted == 5
    set_clock(db, event, 2.0)
    assert tick(room, event).admitted == 0  # 5 unused admissions hold the 10 seats

    book(store, event, BUYERS[0], 2, claims(db, event, BUYERS[0]))  # 8 seats left, 4 unused
    set_clock(db, event, 2.0)
    assert tick(room, event).admitted == 0  # ceil(8 / 2) = 4 held

    db.execute(  # two admissions end unused
        """UPDATE queue_entry SET admitted_at = now() - interval '11 minutes',
                  expires_at = now() - interval '1 second'
            WHERE event_id = %s AND position IN (2, 3)""",
        (event,),
    )
    db.execute(
        "UPDATE event_queue SET ticked_at = now() - interval '2 seconds' WHERE event_id = %s",
        (event,),
    )
    t = tick(room, event)
    assert (t.expired, t.admitted) == (2, 2)  # their capacity went back to the line
    line = room.line(event)
    assert line is not None
    assert (line.admitted, line.expired_unused) == (7, 2)


def test_the_line_stops_for_good_when_sold_out_and_waiting_buyers_see_it(
    room: PostgresWaitingRoom, store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, capacity=4)
    queue(room, event, randomise=False)
    for who in BUYERS[:6]:
        join(room, event, who)
    set_clock(db, event, 1.0)
    assert tick(room, event).admitted == 2
    for who in BUYERS[:2]:
        book(store, event, who, 2, claims(db, event, who))

    t = tick(room, event)

    assert (t.state, t.admitted, t.waiting) == (LineState.SOLD_OUT, 0, 0)
    found = room.place(event, BUYERS[5].subject)
    assert found is not None
    assert view_place(*found, datetime.now(UTC)).state is PlaceState.SOLD_OUT
    db.execute("UPDATE event_inventory SET sold = 0 WHERE event_id = %s", (event,))  # seats back
    set_clock(db, event, 2.0)
    assert tick_state(room, event) is None  # stopped for good: no longer ticked
    assert admitted_count(db, event) == 2


def test_seats_held_by_unpaid_holds_pause_the_line_and_come_back_to_it_when_they_lapse(
    room: PostgresWaitingRoom, store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, capacity=4)
    db.execute("UPDATE event SET online_payment = true WHERE id = %s", (event,))
    queue(room, event, randomise=False)
    for who in BUYERS[:6]:
        join(room, event, who)
    set_clock(db, event, 1.0)
    assert tick(room, event).admitted == 2
    for who in BUYERS[:2]:  # both admitted buyers hold two seats each, unpaid
        booked = book(store, event, who, 2, claims(db, event, who))
        assert booked.booking is not None
        assert booked.booking.status.value == "HELD"

    set_clock(db, event, 1.0)
    paused = tick(room, event)

    assert (paused.state, paused.admitted) == (LineState.OPEN, 0)  # no seats, but not sold out
    db.execute(
        """UPDATE booking SET hold_expires_at = now() - interval '1 second'
            WHERE event_id = %s AND status = 'HELD'""",
        (event,),
    )
    assert db.execute("SELECT expire_holds(10)").fetchone() == (2,)
    set_clock(db, event, 1.0)
    resumed = tick(room, event)
    assert (resumed.state, resumed.admitted) == (LineState.OPEN, 2)  # the next two in line


def tick_state(room: PostgresWaitingRoom, event: uuid.UUID) -> Any:
    return next((t for t in waiting_room.tick(room, TICK) if t.event_id == event), None)


def test_automatic_lines_share_the_automatic_rate(room: PostgresWaitingRoom, db: Conn) -> None:
    events = [add_event(db, capacity=1000) for _ in range(2)]
    for event in events:
        queue(room, event, rate=None, randomise=False)
        for who in BUYERS[:100]:
            join(room, event, who)
    for event in events:
        set_clock(db, event, 1.0)
    ticks = {t.event_id: t for t in waiting_room.tick(room, TICK) if t.event_id in events}
    # 50/s shared by the open automatic lines (these two, and any other test's still open).
    for event in events:
        rate = ticks[event].rate
        assert rate is not None
        assert rate <= Decimal(25)
        assert ticks[event].admitted == int(rate)


# -- two ticks at once ---------------------------------------------------------------------------


def _naive_tick(db_url: str, event: uuid.UUID, barrier: threading.Barrier) -> int:
    """The race a guard must prevent: read the counter's clock, decide, write - in Python,
    without the row lock. Returns how many it admitted."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            """SELECT extract(epoch FROM now() - ticked_at), admission_rate FROM event_queue
                WHERE event_id = %s""",
            (event,),
        ).fetchone()
        assert row is not None
        wanted = int(float(row[0]) * float(row[1]))
        barrier.wait()  # both have read the same clock
        cur = conn.execute(
            """WITH head AS (SELECT id FROM queue_entry WHERE event_id = %(e)s
                                AND admitted_at IS NULL ORDER BY position LIMIT %(n)s
                                FOR UPDATE SKIP LOCKED)
               UPDATE queue_entry e SET admitted_at = now(), expires_at = now() + interval '10 min'
                 FROM head WHERE e.id = head.id""",
            {"e": event, "n": wanted},
        )
        conn.execute("UPDATE event_queue SET ticked_at = now() WHERE event_id = %s", (event,))
        return cur.rowcount


def test_control_two_unguarded_ticks_at_once_admit_twice_the_rate(
    room: PostgresWaitingRoom, db: Conn, db_url: str
) -> None:
    event = add_event(db, capacity=1000)
    queue(room, event, randomise=False)
    for who in BUYERS[:100]:
        join(room, event, who)
    set_clock(db, event, 2.0)  # 10/s x 2 s: 20 are due
    barrier = threading.Barrier(2)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(_naive_tick(db_url, event, barrier)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(results) >= 39  # both admitted the whole allowance: the race is real


def test_two_ticks_at_once_admit_the_rate_once(
    room: PostgresWaitingRoom, db: Conn, db_url: str
) -> None:
    event = add_event(db, capacity=1000)
    queue(room, event, randomise=False)
    for who in BUYERS[:100]:
        join(room, event, who)
    set_clock(db, event, 2.0)  # 20 are due
    started = time.monotonic()
    with psycopg.connect(db_url) as first:  # the first tick holds the line's row ...
        first.execute("SELECT * FROM advance_queue(%s, 0, 2.0)", (event,)).fetchall()
        second: list[Any] = []
        t = threading.Thread(target=lambda: second.append(tick(room, event)))
        t.start()  # ... while the second runs
        time.sleep(0.5)
        assert t.is_alive()  # it waits for the row
        first.commit()
    t.join(30)
    held = time.monotonic() - started
    total = admitted_count(db, event)
    # 20 for the two seconds before, plus the rate for the time the second one waited: never
    # the 40 of two ticks each admitting the whole allowance.
    assert 20 <= total <= 20 + int(float(RATE) * held) + 1
    assert second[0].admitted == total - 20
    positions = [r[2] for r in entries(db, event) if r[3] is not None]
    assert positions == list(range(1, total + 1))  # each admitted once, in line order


# -- the admission rule of book_tickets ------------------------------------------------------------


@pytest.fixture
def admitted(room: PostgresWaitingRoom, db: Conn) -> tuple[uuid.UUID, AdmissionClaims]:
    """An event in queue mode where ALICE and BOB are admitted."""
    event = add_event(db, capacity=50)
    queue(room, event, randomise=False)
    for who in (ALICE, BOB, BUYERS[2]):
        join(room, event, who)
    set_clock(db, event, 0.2)  # 2 admitted
    assert tick(room, event).admitted == 2
    return event, claims(db, event, ALICE)


def test_an_admitted_buyer_books_and_the_admission_is_marked_used(
    store: PostgresBookingStore, db: Conn, admitted: tuple[uuid.UUID, AdmissionClaims]
) -> None:
    event, alice = admitted
    result = book(store, event, ALICE, 2, alice)
    assert result.booking is not None
    again = book(store, event, ALICE, 1, alice)  # more within the window and the limit
    assert again.booking is not None
    used = [r[5] for r in entries(db, event) if r[0] == ALICE.subject]
    assert used[0] is not None


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("none", errors.AdmissionRequired),
        ("other-event", errors.AdmissionRequired),
        ("other-customer", errors.AdmissionRequired),
        ("not-admitted", errors.AdmissionRequired),
        ("unknown", errors.AdmissionRequired),
        ("expired", errors.AdmissionExpired),
        ("expired-in-database", errors.AdmissionExpired),
    ],
)
def test_bookings_of_a_queue_event_without_a_valid_admission_are_refused_and_write_nothing(
    store: PostgresBookingStore,
    db: Conn,
    admitted: tuple[uuid.UUID, AdmissionClaims],
    case: str,
    error: type[errors.BoxofficeError],
) -> None:
    event, alice = admitted
    who, admission = ALICE, alice
    if case == "none":
        admission = None
    elif case == "other-event":
        admission = AdmissionClaims(
            alice.admission_id, uuid.uuid4(), ALICE.subject, alice.expires_at
        )
    elif case == "other-customer":
        who = BOB  # Alice's admission, sent by Bob
    elif case == "not-admitted":
        row = db.execute(
            """SELECT e.id FROM queue_entry e JOIN customer c ON c.id = e.customer_id
                WHERE e.event_id = %s AND c.subject = %s""",
            (event, BUYERS[2].subject),
        ).fetchone()
        assert row is not None
        who = BUYERS[2]
        admission = AdmissionClaims(row[0], event, who.subject, alice.expires_at)
    elif case == "unknown":
        admission = AdmissionClaims(uuid.uuid4(), event, ALICE.subject, alice.expires_at)
    elif case == "expired":
        admission = AdmissionClaims(
            alice.admission_id, event, ALICE.subject, datetime.now(UTC) - timedelta(seconds=1)
        )
    else:  # the token says the window is open, the database says it ended
        db.execute(
            """UPDATE queue_entry SET admitted_at = now() - interval '11 minutes',
                      expires_at = now() - interval '1 s' WHERE id = %s""",
            (alice.admission_id,),
        )
    before = snapshot(db)

    with pytest.raises(error) as refused:
        book(store, event, who, 2, admission)

    assert refused.value.detail
    assert snapshot(db) == before


def test_events_not_in_queue_mode_book_as_before_with_or_without_an_admission(
    store: PostgresBookingStore, db: Conn, admitted: tuple[uuid.UUID, AdmissionClaims]
) -> None:
    _, alice = admitted
    plain = add_event(db, capacity=10)
    assert book(store, plain, ALICE, 1).booking is not None
    assert book(store, plain, ALICE, 1, alice).booking is not None  # ignored: no queue mode


def test_ending_queue_mode_opens_bookings_to_everyone(
    room: PostgresWaitingRoom, store: PostgresBookingStore, db: Conn
) -> None:
    event = add_event(db, capacity=10)
    queue(room, event)
    join(room, event)
    with pytest.raises(errors.AdmissionRequired):
        book(store, event, BOB, 1)
    waiting_room.remove(room, event)
    assert book(store, event, BOB, 1).booking is not None
    assert entries(db, event) == []
    seq = db.execute(
        "SELECT count(*) FROM pg_class WHERE relname = %s",
        (f"queue_arrivals_{event.hex}",),
    ).fetchone()
    assert seq == (0,)  # the line's sequence went with it
    with pytest.raises(errors.NotFound):
        waiting_room.remove(room, event)


def test_after_opening_the_on_sale_time_and_the_draw_rule_are_fixed(
    room: PostgresWaitingRoom, db: Conn
) -> None:
    event = add_event(db)
    queue(room, event)
    with pytest.raises(errors.Conflict):
        queue(room, event, opens_in=3600)
    line = room.line(event)
    assert line is not None
    changed = dataclasses.replace(line.settings, admission_rate=Decimal(50), admission_seconds=120)
    waiting_room.configure(room, event, changed)  # the rest may change
    line = room.line(event)
    assert line is not None
    assert (line.settings.admission_rate, line.settings.admission_seconds) == (Decimal(50), 120)
    with pytest.raises(errors.Conflict):
        waiting_room.configure(room, event, dataclasses.replace(changed, randomise_early=False))
