"""Checkout on real parts (docs/adr/0020-checkout-state-machine.md): ticket categories, seat
holds, payments and refunds through the booking and payment services, the PostgreSQL rules of
R__booking.sql and R__payments.sql on a database of this module's own, and the local stack's
payment provider (devpay, a real process speaking Stripe's wire format) through our Stripe
adapter. The provider's webhooks are received by an endpoint of the test and handed to the
webhook use case exactly as the payment_webhook function does (body and signature); the function
over HTTP is tested in tests/e2e.

Races are real threads on real connections; every test ends with the invariant checker.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import requests
from support_databases import fresh_database
from support_devpay import DEVPAY_API_KEY, WebhookEndpoint, running_devpay, webhook_endpoint

from boxoffice import errors
from boxoffice.adapters.invariants import run_checks
from boxoffice.adapters.postgres import Database
from boxoffice.adapters.postgres_bookings import PostgresBookingStore
from boxoffice.adapters.postgres_payments import PostgresPayments, RefundUnitOfWorks
from boxoffice.adapters.stripe_payments import StripePayments
from boxoffice.domain.bookings import Booking, BookingStatus, request_hash
from boxoffice.domain.identity import Principal
from boxoffice.domain.money import Money
from boxoffice.domain.payments import PaymentIntent, WebhookOutcome
from boxoffice.services import bookings, payments
from boxoffice.services.bookings import BookingPolicy, BookingRequest
from boxoffice.services.payments import PaymentPolicy, Refunder

pytestmark = pytest.mark.integration

SECRET = "whsec_checkout_test"
POLICY = BookingPolicy(
    max_tickets_per_order=10,
    max_tickets_per_customer_per_event=50,
    idempotency_ttl_hours=24,
    topic="booking",
    source="/boxoffice/bookings",
    hold_seconds=600,
)
PAY_POLICY = PaymentPolicy(provider="stripe", topic="booking", source="/boxoffice/bookings")
ALICE = Principal("sub-checkout-alice", frozenset({"customer"}))
BOB = Principal("sub-checkout-bob", frozenset({"customer"}))
VENUE = uuid.UUID("7e0e0000-0000-4000-8000-0000000000cc")
CREATED_TYPE = "dev.boxoffice.booking.created.v1"

Conn = psycopg.Connection[Any]


class Notifier:
    def kick(self) -> None:
        pass


@pytest.fixture(scope="module")
def db_url() -> Iterator[str]:
    with fresh_database("bx_checkout_test") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Checkout Hall', '1 Road', 'Testville', 100000)""",
                (VENUE,),
            )
            for p in (ALICE, BOB):
                conn.execute(
                    """INSERT INTO customer (subject, name, email, address_line1, postal_code,
                                             city, country)
                       VALUES (%s, 'N', 'n@x.test', '1 Street', 'AB1 2CD', 'Town', 'GB')""",
                    (p.subject,),
                )
        yield url


@pytest.fixture(scope="module")
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url, min_size=1, max_size=12)
    yield db
    db.close()


@pytest.fixture
def db(db_url: str) -> Iterator[Conn]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def endpoint() -> Iterator[WebhookEndpoint]:
    with webhook_endpoint() as e:
        yield e


@pytest.fixture(scope="module")
def devpay(endpoint: WebhookEndpoint) -> Iterator[str]:
    with running_devpay([endpoint.url], SECRET, retry_delay=0.2) as base:
        yield base


@dataclass
class Checkout:
    """The services wired to the module's database and devpay, as the composition root does."""

    db_url: str
    store: PostgresBookingStore
    payments: PostgresPayments
    refunds: RefundUnitOfWorks
    provider: StripePayments
    endpoint: WebhookEndpoint
    devpay: str

    def book(
        self,
        event: uuid.UUID,
        category: uuid.UUID | None,
        quantity: int = 1,
        who: Principal = ALICE,
    ) -> Booking:
        body: dict[str, Any] = {"eventId": str(event), "ticketCount": quantity}
        if category is not None:
            body["categoryId"] = str(category)
        request = BookingRequest(
            event,
            quantity,
            uuid.uuid4().hex,
            request_hash("POST", "/bookings", body),
            category_id=category,
        )
        booked = bookings.create_booking(self.store, Notifier(), POLICY, who, request)
        assert booked.booking is not None
        return booked.booking

    def start(self, booking: Booking, who: Principal = ALICE) -> PaymentIntent:
        return payments.start_payment(self.payments, self.provider, PAY_POLICY, who, booking.id)

    def click(self, intent: PaymentIntent, action: str = "pay") -> None:
        """What the buyer's browser does on the provider's page."""
        assert intent.redirect_url is not None
        answer = requests.post(f"{intent.redirect_url}/{action}", allow_redirects=False, timeout=5)
        assert answer.status_code in (200, 303), answer.text

    def deliveries(self, intent_id: str, count: int) -> list[tuple[bytes, str]]:
        """The first `count` webhook deliveries about the payment (body, signature)."""

        def about(got: list[Any]) -> list[tuple[bytes, str]]:
            mine = []
            for r in got:
                event = self.provider.parse_webhook(r.body, r.signature)
                if intent_id in (event.object_id, event.intent_id):
                    mine.append((r.body, r.signature))
            return mine

        return about(self.endpoint.wait_for(lambda got: len(about(got)) >= count))[:count]

    def take(self, delivery: tuple[bytes, str]) -> WebhookOutcome:
        """The payment_webhook function's use case, on one delivery."""
        return payments.take_webhook(
            self.payments, self.provider, self.refunds, Notifier(), PAY_POLICY, *delivery
        )

    def pay(self, booking: Booking) -> tuple[PaymentIntent, WebhookOutcome]:
        intent = self.start(booking)
        self.click(intent)
        (delivery,) = self.deliveries(intent.id, 1)
        return intent, self.take(delivery)

    def cancel(self, booking: Booking, who: Principal = ALICE) -> bookings.Cancelled:
        return bookings.cancel_booking(
            self.store,
            Notifier(),
            POLICY,
            who,
            booking.id,
            Refunder(self.refunds, self.provider).of_booking,
        )

    def provider_refunds(self, intent_id: str, expected: int) -> list[Money]:
        """The refunds devpay made of a payment, from the refund.created events it sent (waited
        for until `expected` arrived, then a moment longer to see any extra one)."""

        def made(got: list[Any]) -> dict[str, Money]:
            found = {}
            for r in got:
                event = self.provider.parse_webhook(r.body, r.signature)
                if event.type == "refund.created" and event.intent_id == intent_id:
                    assert event.amount is not None
                    found[event.object_id] = event.amount
            return found

        if expected:
            self.endpoint.wait_for(lambda got: len(made(got)) >= expected)
        time.sleep(0.3)
        return list(made(self.endpoint.snapshot()).values())


@pytest.fixture(scope="module")
def checkout(db_url: str, database: Database, endpoint: WebhookEndpoint, devpay: str) -> Checkout:
    provider = StripePayments(DEVPAY_API_KEY, SECRET, api_base=devpay, max_network_retries=0)
    return Checkout(
        db_url,
        PostgresBookingStore(database),
        PostgresPayments(database),
        RefundUnitOfWorks(database),
        provider,
        endpoint,
        devpay,
    )


@pytest.fixture(autouse=True)
def invariants_hold_afterwards(db_url: str) -> Iterator[None]:
    yield
    failing = [r for r in run_checks(db_url) if not r.ok]
    assert not failing, [(r.check.name, r.examples) for r in failing]


def add_event(
    db: Conn, categories: list[tuple[str, str, int, int]], *, online_payment: bool = True
) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    """An event with categories (name, price, capacity, shards), each split over its shards."""
    event_id = uuid.uuid4()
    ids: dict[str, uuid.UUID] = {}
    shard = 0
    with db.transaction():
        db.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency, capacity,
                                  online_payment)
               VALUES (%s, %s, 'Checkout night', now() + interval '30 days', %s, 'GBP', %s, %s)""",
            (
                event_id,
                VENUE,
                min(Decimal(c[1]) for c in categories),
                sum(c[2] for c in categories),
                online_payment,
            ),
        )
        for position, (name, price, capacity, shards) in enumerate(categories):
            category = uuid.uuid4()
            ids[name] = category
            db.execute(
                """INSERT INTO ticket_category (id, event_id, name, price, capacity, position)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                (category, event_id, name, Decimal(price), capacity, position),
            )
            for i in range(shards):
                share = capacity // shards + (1 if i < capacity % shards else 0)
                db.execute(
                    """INSERT INTO event_inventory (event_id, shard, category_id, capacity)
                       VALUES (%s, %s, %s, %s)""",
                    (event_id, shard, category, share),
                )
                shard += 1
    return event_id, ids


def sold(db: Conn, category: uuid.UUID) -> int:
    row = db.execute(
        "SELECT coalesce(sum(sold), 0) FROM event_inventory WHERE category_id = %s", (category,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def status(db: Conn, booking: Booking) -> BookingStatus:
    row = db.execute("SELECT status FROM booking WHERE id = %s", (booking.id,)).fetchone()
    assert row is not None
    return BookingStatus(row[0])


def created_events(db: Conn, booking: Booking) -> int:
    row = db.execute(
        "SELECT count(*) FROM outbox WHERE record_key = %s AND event_type = %s",
        (str(booking.id), CREATED_TYPE),
    ).fetchone()
    assert row is not None
    return int(row[0])


def lapse(db: Conn, booking: Booking) -> None:
    """Move the hold's expiry into the past (what waiting BOXOFFICE_HOLD_SECONDS would do)."""
    db.execute(
        "UPDATE booking SET hold_expires_at = now() - interval '1 second' WHERE id = %s",
        (booking.id,),
    )


def refunds(db: Conn, booking: Booking) -> list[tuple[str, Decimal, str]]:
    rows = db.execute(
        "SELECT reason, amount, status FROM refund WHERE booking_id = %s ORDER BY created_at",
        (booking.id,),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


STANDARD = [("Standing", "25.00", 6, 2), ("Seated", "40.00", 4, 1), ("VIP", "90.00", 2, 1)]


# -- categories and holds -------------------------------------------------------------------------


def test_a_booking_on_an_event_paid_online_holds_its_seats_unpublished_until_its_expiry(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    before = time.time()

    booking = checkout.book(event, cats["Seated"], 2)

    assert booking.status is BookingStatus.HELD
    assert booking.category_id == cats["Seated"]
    assert booking.unit_price == Money(Decimal("40.00"), "GBP")
    assert booking.hold_expires_at is not None
    assert before + 590 < booking.hold_expires_at.timestamp() < time.time() + 610
    assert (sold(db, cats["Seated"]), sold(db, cats["Standing"])) == (2, 0)
    assert created_events(db, booking) == 0


def test_a_free_category_and_an_event_without_online_payment_skip_the_hold(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, [("Free", "0.00", 5, 1), ("Paid", "10.00", 5, 1)])
    offline, offline_cats = add_event(db, [("Door", "15.00", 5, 1)], online_payment=False)

    free = checkout.book(event, cats["Free"])
    at_the_door = checkout.book(offline, None)

    for booking in (free, at_the_door):
        assert booking.status is BookingStatus.PENDING
        assert booking.hold_expires_at is None
        assert created_events(db, booking) == 1
    assert at_the_door.category_id == offline_cats["Door"]


def test_an_event_with_several_categories_needs_one_named_and_only_its_own(
    checkout: Checkout, db: Conn
) -> None:
    event, _ = add_event(db, STANDARD)
    _, other_cats = add_event(db, STANDARD)

    with pytest.raises(errors.CategoryRequired):
        checkout.book(event, None)
    with pytest.raises(errors.NotFound):
        checkout.book(event, other_cats["VIP"])
    with pytest.raises(errors.NotFound):
        checkout.book(event, uuid.uuid4())


def test_each_category_sells_its_own_capacity_and_no_more(checkout: Checkout, db: Conn) -> None:
    event, cats = add_event(db, STANDARD)

    checkout.book(event, cats["VIP"], 2)
    with pytest.raises(errors.SoldOut):
        checkout.book(event, cats["VIP"], 1, who=BOB)
    checkout.book(event, cats["Standing"], 6, who=BOB)  # over both of its shards

    assert (sold(db, cats["VIP"]), sold(db, cats["Standing"]), sold(db, cats["Seated"])) == (
        2,
        6,
        0,
    )


def test_a_lapsed_hold_is_released_once_by_parallel_expiry_passes(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, [("Standing", "25.00", 40, 4)])
    held = [checkout.book(event, cats["Standing"], 2) for _ in range(20)]
    for booking in held:
        lapse(db, booking)

    def passes() -> int:
        released = 0
        while (n := checkout.payments.expire_holds(3)) > 0:
            released += n
        return released

    with ThreadPoolExecutor(4) as pool:
        released = sum(pool.map(lambda _: passes(), range(4)))

    assert released == 20
    assert {status(db, b) for b in held} == {BookingStatus.EXPIRED}
    assert sold(db, cats["Standing"]) == 0
    assert checkout.payments.expire_holds(100) == 0


# -- payments -------------------------------------------------------------------------------------


def test_paying_a_hold_publishes_it_once_even_when_the_webhook_is_delivered_twice(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["Standing"], 2)

    intent, outcome = checkout.pay(booking)
    requests.post(
        f"{checkout.devpay}/devpay/events/{_event_id(checkout, intent)}/redeliver", timeout=5
    )
    _, again = checkout.deliveries(intent.id, 2)

    assert outcome is WebhookOutcome.APPLIED
    assert checkout.take(again) is WebhookOutcome.DUPLICATE
    assert status(db, booking) is BookingStatus.PENDING
    assert created_events(db, booking) == 1
    assert intent.amount == Money(Decimal("50.00"), "GBP")


def _event_id(checkout: Checkout, intent: PaymentIntent) -> str:
    (body, signature) = checkout.deliveries(intent.id, 1)[0]
    return checkout.provider.parse_webhook(body, signature).id


def test_asking_to_pay_again_gets_the_same_payment_and_a_paid_booking_cannot_be_paid(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["Seated"])

    first, second = checkout.start(booking), checkout.start(booking)
    assert first.id == second.id
    checkout.click(first)
    (delivery,) = checkout.deliveries(first.id, 1)
    assert checkout.take(delivery) is WebhookOutcome.APPLIED

    with pytest.raises(errors.BookingNotPayable):
        checkout.start(booking)
    with pytest.raises(errors.NotFound):
        checkout.start(booking, who=BOB)


def test_a_failure_delivered_after_the_success_does_not_undo_the_payment(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["VIP"])
    intent = checkout.start(booking)
    checkout.click(intent, "decline")
    checkout.click(intent, "pay")
    failed, succeeded = checkout.deliveries(intent.id, 2)

    assert checkout.take(succeeded) is WebhookOutcome.APPLIED  # the later event first
    assert checkout.take(failed) is WebhookOutcome.RECORDED

    row = db.execute("SELECT status, applied FROM payment WHERE id = %s", (intent.id,)).fetchone()
    assert row == ("SUCCEEDED", True)
    assert status(db, booking) is BookingStatus.PENDING


def test_a_payment_after_the_hold_expired_is_refunded_and_its_seats_stay_released(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["Seated"], 2)
    intent = checkout.start(booking)
    lapse(db, booking)
    assert checkout.payments.expire_holds(10) == 1
    checkout.book(event, cats["Seated"], 4, who=BOB)  # the released seats sold again

    checkout.click(intent)
    (delivery,) = checkout.deliveries(intent.id, 1)

    assert checkout.take(delivery) is WebhookOutcome.REFUNDED
    assert status(db, booking) is BookingStatus.EXPIRED
    assert refunds(db, booking) == [("HOLD_EXPIRED", Decimal("80.00"), "SUCCEEDED")]
    assert checkout.provider_refunds(intent.id, 1) == [Money(Decimal("80.00"), "GBP")]
    assert sold(db, cats["Seated"]) == 4
    assert created_events(db, booking) == 0


def test_a_payment_for_a_lapsed_hold_not_yet_released_releases_it_once_and_is_refunded(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["Standing"], 3)
    intent = checkout.start(booking)
    lapse(db, booking)

    checkout.click(intent)
    (delivery,) = checkout.deliveries(intent.id, 1)

    assert checkout.take(delivery) is WebhookOutcome.REFUNDED
    assert status(db, booking) is BookingStatus.EXPIRED
    assert sold(db, cats["Standing"]) == 0
    assert checkout.payments.expire_holds(10) == 0  # nothing left to release


def test_a_webhook_racing_the_expiry_either_pays_or_refunds_never_both(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, [("Standing", "25.00", 40, 4)])
    outcomes: list[WebhookOutcome] = []
    for _ in range(8):
        booking = checkout.book(event, cats["Standing"])
        intent = checkout.start(booking)
        checkout.click(intent)
        (delivery,) = checkout.deliveries(intent.id, 1)
        db.execute(
            "UPDATE booking SET hold_expires_at = now() + interval '30 milliseconds' WHERE id = %s",
            (booking.id,),
        )
        barrier = threading.Barrier(2)

        def webhook(
            delivery: tuple[bytes, str] = delivery, barrier: threading.Barrier = barrier
        ) -> WebhookOutcome:
            barrier.wait()
            time.sleep(random.uniform(0, 0.06))
            return checkout.take(delivery)

        def expiry(barrier: threading.Barrier = barrier) -> int:
            barrier.wait()
            time.sleep(random.uniform(0, 0.06))
            return checkout.payments.expire_holds(10)

        with ThreadPoolExecutor(2) as pool:
            paid, expired = pool.submit(webhook), pool.submit(expiry)
            outcome, released = paid.result(), expired.result()
        outcomes.append(outcome)
        final = status(db, booking)
        if outcome is WebhookOutcome.APPLIED:
            assert (final, released, refunds(db, booking)) == (BookingStatus.PENDING, 0, [])
        else:
            assert outcome is WebhookOutcome.REFUNDED
            assert final is BookingStatus.EXPIRED
            assert [r[0] for r in refunds(db, booking)] == ["HOLD_EXPIRED"]
    paid_count = sum(o is WebhookOutcome.APPLIED for o in outcomes)
    assert sold(db, cats["Standing"]) == paid_count


def test_a_buyer_paying_twice_is_refunded_the_second_payment(checkout: Checkout, db: Conn) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["VIP"], 2)
    first = checkout.start(booking)
    # A second payment of the same booking (another device, another checkout session).
    second = checkout.provider.create_payment(booking.id, booking.total, uuid.uuid4().hex)
    checkout.payments.start(ALICE.subject, second, "stripe")

    checkout.click(first)
    checkout.click(second)
    (one,) = checkout.deliveries(first.id, 1)
    (two,) = checkout.deliveries(second.id, 1)

    assert checkout.take(one) is WebhookOutcome.APPLIED
    assert checkout.take(two) is WebhookOutcome.REFUNDED
    assert refunds(db, booking) == [("DUPLICATE_PAYMENT", Decimal("180.00"), "SUCCEEDED")]
    assert checkout.provider_refunds(first.id, 0) == []
    assert checkout.provider_refunds(second.id, 1) == [Money(Decimal("180.00"), "GBP")]
    assert status(db, booking) is BookingStatus.PENDING


# -- refunds --------------------------------------------------------------------------------------


def test_cancelling_a_paid_booking_in_parallel_refunds_it_once_and_returns_its_seats(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["Seated"], 3)
    intent, outcome = checkout.pay(booking)
    assert outcome is WebhookOutcome.APPLIED

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: checkout.cancel(booking), range(8)))

    assert sum(r.changed for r in results) == 1
    assert status(db, booking) is BookingStatus.CANCELLED
    assert sold(db, cats["Seated"]) == 0
    assert refunds(db, booking) == [("BOOKING_CANCELLED", Decimal("120.00"), "SUCCEEDED")]
    assert checkout.provider_refunds(intent.id, 1) == [Money(Decimal("120.00"), "GBP")]
    view = checkout.store.find(booking.id, ALICE.subject)
    assert view is not None
    assert view.payment is not None
    assert view.payment.refunded == view.payment.paid == Money(Decimal("120.00"), "GBP")


def test_cancelling_a_hold_returns_its_seats_and_refunds_nothing(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["Standing"], 2)

    result = checkout.cancel(booking)

    assert result.changed
    assert status(db, booking) is BookingStatus.CANCELLED
    assert sold(db, cats["Standing"]) == 0
    assert refunds(db, booking) == []
    with pytest.raises(errors.BookingNotPayable):
        checkout.start(booking)


def test_a_refund_that_could_not_be_sent_is_sent_by_a_later_pass_with_the_same_key(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["VIP"])
    intent, _ = checkout.pay(booking)
    down = StripePayments(
        DEVPAY_API_KEY, SECRET, api_base="http://127.0.0.1:9", max_network_retries=0
    )

    bookings.cancel_booking(
        checkout.store,
        Notifier(),
        POLICY,
        ALICE,
        booking.id,
        Refunder(checkout.refunds, down).of_booking,
    )
    assert refunds(db, booking) == [("BOOKING_CANCELLED", Decimal("90.00"), "REQUESTED")]
    db.execute("UPDATE refund SET next_attempt_at = now() WHERE booking_id = %s", (booking.id,))

    report = payments.housekeeping_pass(
        checkout.payments, checkout.refunds, checkout.provider, PAY_POLICY
    )

    assert report.refunds_sent >= 1
    assert refunds(db, booking) == [("BOOKING_CANCELLED", Decimal("90.00"), "SUCCEEDED")]
    assert checkout.provider_refunds(intent.id, 1) == [Money(Decimal("90.00"), "GBP")]


def test_refunds_of_a_payment_never_add_up_to_more_than_it(checkout: Checkout, db: Conn) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["Standing"], 2)
    intent, _ = checkout.pay(booking)

    def request(amount: str | None) -> Any:
        row = db.execute(
            "SELECT request_refund(%s, %s, 'BOOKING_CANCELLED')",
            (intent.id, Decimal(amount) if amount else None),
        ).fetchone()
        assert row is not None
        return row[0]

    with pytest.raises(psycopg.errors.RaiseException, match="refund-exceeds-payment"):
        request("50.01")
    assert request("20.00") is not None
    assert request(None) is not None  # the rest: 30.00
    assert request(None) is None  # nothing left
    amounts = sorted(r[1] for r in refunds(db, booking))
    assert amounts == [Decimal("20.00"), Decimal("30.00")]
    # Put the books straight for the invariant checker: this booking is cancelled, refunded.
    db.execute(
        "UPDATE refund SET status = 'FAILED', completed_at = now() WHERE booking_id = %s",
        (booking.id,),
    )
    checkout.cancel(booking)


def test_an_admin_cancels_a_buyers_paid_booking_and_it_is_refunded_once(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, STANDARD)
    booking = checkout.book(event, cats["Seated"], 2)
    intent, _ = checkout.pay(booking)
    admin = Principal("sub-checkout-admin", frozenset({"admin"}))

    with pytest.raises(errors.NotFound):
        checkout.cancel(booking, who=BOB)  # another buyer cannot
    first, again = checkout.cancel(booking, who=admin), checkout.cancel(booking, who=admin)

    assert (first.changed, again.changed) == (True, False)
    assert refunds(db, booking) == [("BOOKING_CANCELLED", Decimal("80.00"), "SUCCEEDED")]
    assert checkout.provider_refunds(intent.id, 1) == [Money(Decimal("80.00"), "GBP")]
    assert sold(db, cats["Seated"]) == 0


def test_cancelling_an_event_cancels_its_bookings_and_refunds_the_paid_ones_once(
    checkout: Checkout, db: Conn
) -> None:
    event, cats = add_event(db, [("Free", "0.00", 5, 1), *STANDARD])
    paid = checkout.book(event, cats["VIP"], 2)
    intent, _ = checkout.pay(paid)
    held = checkout.book(event, cats["Standing"], 1, who=BOB)
    free = checkout.book(event, cats["Free"], 1, who=BOB)
    db.execute("UPDATE event SET status = 'CANCELLED' WHERE id = %s", (event,))

    with ThreadPoolExecutor(3) as pool:  # passes at once take different bookings
        reports = list(
            pool.map(
                lambda _: payments.housekeeping_pass(
                    checkout.payments, checkout.refunds, checkout.provider, PAY_POLICY
                ),
                range(3),
            )
        )

    assert sum(r.cancelled for r in reports) >= 3  # these three, and any other test's leftovers
    assert {status(db, b) for b in (paid, held, free)} == {BookingStatus.CANCELLED}
    assert refunds(db, paid) == [("EVENT_CANCELLED", Decimal("180.00"), "SUCCEEDED")]
    assert refunds(db, held) == refunds(db, free) == []
    assert checkout.provider_refunds(intent.id, 1) == [Money(Decimal("180.00"), "GBP")]
    assert all(sold(db, c) == 0 for c in cats.values())
    # a held booking published nothing, so it takes nothing back; the others do, once each
    cancelled_events = db.execute(
        """SELECT record_key, count(*) FROM outbox
            WHERE event_type = 'dev.boxoffice.booking.cancelled.v1' AND record_key = ANY(%s)
            GROUP BY record_key""",
        ([str(b.id) for b in (paid, held, free)],),
    ).fetchall()
    assert sorted(cancelled_events) == sorted([(str(paid.id), 1), (str(free.id), 1)])
    again = payments.housekeeping_pass(
        checkout.payments, checkout.refunds, checkout.provider, PAY_POLICY
    )
    assert again.cancelled == 0
