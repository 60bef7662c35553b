"""Property: however KafkaSource redelivers and interleaves booking events, consume_order ends with
exactly one order per confirmed booking, the right number of tickets, and nothing valid left for
a cancelled booking. Real entrypoint, real PostgreSQL; hypothesis with a fixed seed."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from test_consume_order_support import (
    Db,
    Delivery,
    booking_status,
    cancel_in_db,
    cancelled_delivery,
    consume_order_client,
    created_delivery,
    deliver,
    ensure_customer,
    ensure_event,
    insert_booking,
    order_rows,
    ticket_rows,
)

from boxoffice.domain.bookings import Booking

EVENT = uuid.UUID("e0e0f000-0000-4000-8000-00000000e002")
CUSTOMER = uuid.UUID("c0c0f000-0000-4000-8000-00000000e002")


@dataclass(frozen=True)
class Plan:
    """One booking's life as the consumer sees it: `before` copies of booking.created, then
    (if cancelled) the cancellation in the database, then `cancels` copies of booking.cancelled
    mixed with `after` late copies of booking.created (a replay from an older offset)."""

    quantity: int
    cancelled: bool
    before: int
    after: int
    cancels: int


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    cancelled = draw(st.booleans())
    quantity = draw(st.integers(1, 4))
    if not cancelled:
        return Plan(quantity, False, draw(st.integers(1, 5)), 0, 0)
    before = draw(st.integers(0, 5))
    after = draw(st.integers(0 if before else 1, 3))
    return Plan(quantity, True, before, after, draw(st.integers(1, 5)))


Step = tuple[int, str]  # (booking index, "created" | "cancel-in-db" | "cancelled")


def steps_of(index: int, plan: Plan, rng: random.Random) -> list[Step]:
    steps: list[Step] = [(index, "created")] * plan.before
    if plan.cancelled:
        tail = [(index, "cancelled")] * plan.cancels + [(index, "created")] * plan.after
        rng.shuffle(tail)
        steps += [(index, "cancel-in-db"), *tail]
    return steps


def interleave(per_key: list[list[Step]], rng: random.Random) -> list[Step]:
    """Merge the bookings' sequences in a random order, keeping each booking's own order
    (one partition per key; other keys' records interleave freely)."""
    queues = [list(reversed(s)) for s in per_key if s]
    merged: list[Step] = []
    while queues:
        queue = rng.choice(queues)
        merged.append(queue.pop())
        if not queue:
            queues.remove(queue)
    return merged


@pytest.fixture
def db(own_db: Db) -> Db:
    """Bookings here are written with SQL (no seats taken, no outbox row): a database of the
    test's own (`own_db`), never the dev database."""
    return own_db


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return consume_order_client()


@seed(20261124)
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(plans(), min_size=1, max_size=5), st.randoms(use_true_random=False))
def test_any_redelivery_and_interleaving_ends_with_one_order_per_confirmed_booking(
    client: FlaskClient, db: Db, lives: list[Plan], rng: random.Random
) -> None:
    ensure_event(db, EVENT)
    ensure_customer(db, CUSTOMER)
    bookings: list[Booking] = [insert_booking(db, EVENT, CUSTOMER, p.quantity) for p in lives]
    cancel_ids = [uuid.uuid4() for _ in lives]  # one booking.cancelled CloudEvent per booking
    cancelled: dict[int, Booking] = {}

    for index, what in interleave([steps_of(i, p, rng) for i, p in enumerate(lives)], rng):
        if what == "cancel-in-db":
            cancelled[index] = cancel_in_db(db, bookings[index])
            continue
        delivery: Delivery = (
            created_delivery(bookings[index])
            if what == "created"
            else cancelled_delivery(cancelled[index], cancel_ids[index])
        )
        response = deliver(client, delivery)
        assert response.status_code == 200, response.get_data(as_text=True)

    for plan, booking in zip(lives, bookings, strict=True):
        orders = order_rows(db, booking.id)
        tickets = ticket_rows(db, booking.id)
        if not plan.cancelled:
            assert [o[1] for o in orders] == ["CONFIRMED"]
            assert [t[1] for t in tickets] == list(range(1, plan.quantity + 1))
            assert {t[3] for t in tickets} == {"VALID"}
            assert booking_status(db, booking.id) == "CONFIRMED"
        else:
            assert len(orders) <= 1
            assert all(o[1] == "CANCELLED" for o in orders)
            assert all(t[3] == "CANCELLED" for t in tickets)
            assert len(tickets) == (plan.quantity if orders else 0)
            # An order exists exactly when booking.created was consumed before the cancellation.
            assert bool(orders) == (plan.before > 0)
            assert booking_status(db, booking.id) == "CANCELLED"
