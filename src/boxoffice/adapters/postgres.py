"""PostgreSQL adapter (psycopg 3): a lazily opened pool, units of work, repositories.

Nothing connects at import time or when `Database` is built: the pool opens on first use.
Connection-level trouble (server down, no connection in time, statement timeout) becomes
`ServiceUnavailable` (503 + Retry-After), never a 500; every connection busy with the process's own
requests becomes `Overloaded` (503 + Retry-After), which the breaker does not count.
"""

from __future__ import annotations

import select
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from boxoffice import errors
from boxoffice.adapters.resilience import Breaker
from boxoffice.domain.catalogue import (
    CategoryPlan,
    Event,
    EventQuery,
    TicketCategory,
    Venue,
    resize_shards,
)
from boxoffice.domain.customers import Address, Customer, Profile
from boxoffice.domain.money import Money

Conn = psycopg.Connection[TupleRow]

DEPENDENCY = "database"
# OperationalErrors raised by a reachable server about one statement or transaction (statement
# or lock timeout, deadlock, serialization failure): not evidence that the database is down.
_STATEMENT_LEVEL = (
    psycopg.errors.QueryCanceled,
    psycopg.errors.LockNotAvailable,
    psycopg.errors.TransactionRollback,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)


# How long the breaker's trial call waits for a connection from a fresh pool: a live database
# accepts one in milliseconds; a dead one refuses at once, and then the trial should fail quickly
# so the next one (after the breaker's open time) comes soon (docs/adr/0006-resilience.md).
TRIAL_WAIT_SECONDS = 0.5
# How long the pool keeps retrying a connection that failed before it gives up on it (psycopg_pool
# retries after 1, 2, 4... s, for 5 minutes by default): then the pool is replaced, so its waiting
# requests fail at once (503) instead of at their timeout, and the next pool tries at once.
RECONNECT_GIVE_UP_SECONDS = 0.5


class StaleConnection(psycopg.OperationalError):
    """A pooled connection the server has already closed (found before it is handed out)."""


def check_alive(conn: Conn) -> None:
    """The check on every hand-out, without a round trip: an idle connection has nothing to
    read, so a readable socket means the server has closed it (a restart, an idle timeout, a
    terminated backend: PostgreSQL sends its FATAL notice and closes). Such a connection is
    closed here, before raising: psycopg_pool discards a connection that failed a check only if
    it is closed, and puts an open one back into the pool, where the next request would find it
    again (docs/adr/0006-resilience.md, amendment of issue 19)."""
    if conn.closed:
        raise StaleConnection("connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        conn.close()
        raise StaleConnection("the server closed this connection while it was idle")


def connection_failure(exc: BaseException) -> bool:
    """What counts against the database breaker: failures of the database, never of this
    process. A `PoolTimeout` counts (it is raised only to a call that held one of the process's
    connection slots, so the pool had room and still could not hand over a connection: it could
    not open one in time); so does a connection-level OperationalError (refused, reset, dropped
    mid-query, authentication or protocol error, server shutting down). Waiting for a slot held
    by the process's own requests raises `errors.Overloaded`, which is no verdict at all."""
    if isinstance(exc, PoolTimeout):
        return True
    return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, _STATEMENT_LEVEL)


def _overloaded() -> errors.Overloaded:
    error = errors.Overloaded(
        "every database connection of this process is in use by its other requests; "
        "try again shortly"
    )
    error.headers["Retry-After"] = "1"
    return error


class Database:
    def __init__(
        self,
        url: str,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 3.0,
        breaker: Breaker | None = None,
    ) -> None:
        self._url = url
        self._min = min_size
        self._max = max_size
        self._timeout = timeout
        self._pool: ConnectionPool[Conn] | None = None
        self._lock = threading.Lock()
        # One slot per connection the pool may hold. A call waits for a slot first: while all are
        # taken, every connection is in the hands of this process's own calls (contention, not a
        # database failure: `errors.Overloaded`, no verdict for the breaker). With a slot, the
        # pool has a connection idle or room to open one, so a PoolTimeout then means the
        # database did not give one in time (docs/adr/0006-resilience.md).
        self._slots = threading.BoundedSemaphore(max_size)
        # Opened by consecutive connection-level failures only (docs/adr/0006-resilience.md).
        self.breaker = breaker or Breaker(DEPENDENCY, connection_failure)

    def _get_pool(self) -> ConnectionPool[Conn]:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    statement_ms = int(self._timeout * 1000)
                    pool: ConnectionPool[Conn] = ConnectionPool(
                        self._url,
                        min_size=self._min,
                        max_size=self._max,
                        timeout=self._timeout,
                        open=False,
                        reconnect_timeout=RECONNECT_GIVE_UP_SECONDS,
                        reconnect_failed=self._discard,
                        kwargs={
                            "autocommit": True,
                            "connect_timeout": max(1, int(self._timeout)),
                            "options": f"-c statement_timeout={statement_ms}"
                            f" -c lock_timeout={statement_ms}"
                            f" -c idle_in_transaction_session_timeout={statement_ms * 10}",
                            "application_name": "boxoffice",
                        },
                        name="boxoffice",
                    )
                    pool.open(wait=False)
                    self._pool = pool
        return self._pool

    def _renew_pool_if_down(self) -> None:
        """Once the breaker has judged the database down, the pool is replaced: the old one's
        reconnection attempts back off exponentially (1, 2, 4, 8... s), so after an outage it
        could take seconds to try again; a new pool tries at once, when the breaker's next trial
        call asks it for a connection. Its connections are all dead anyway."""
        pool = self._pool
        if self.breaker.is_open and pool is not None:
            self._discard(pool)

    def _discard(self, pool: ConnectionPool[Conn]) -> None:
        """Replace `pool` (if it is still the current one) and close it in the background: its
        waiting requests fail at once with PoolClosed; the next request opens a new pool. Also the
        pool's own `reconnect_failed` callback, run on its worker thread (hence no join here)."""
        with self._lock:
            if self._pool is not pool:
                return
            self._pool = None
        threading.Thread(
            target=pool.close, kwargs={"timeout": 0}, name="pool-close", daemon=True
        ).start()

    def _checkout(self, pool: ConnectionPool[Conn], wait: float) -> Conn:
        """A live connection from `pool` within `wait` seconds (else PoolTimeout). Each one handed
        out is checked (`check_alive`); a dead one (the server restarted while it sat idle) is
        closed, so the pool replaces it, and the next is taken at once. psycopg_pool's own
        `check` would sleep 1, 2, 4... s between a failed check and the next connection, so after
        a restart a pool holding two dead connections could not serve a 3 s request at all."""
        deadline = time.monotonic() + wait
        while True:
            # A connection already in the pool is handed out whatever the timeout; only a
            # wait for a new one is bounded by it.
            conn = pool.getconn(timeout=max(deadline - time.monotonic(), 0.001))
            try:
                check_alive(conn)
            except StaleConnection:
                pool.putconn(conn)  # closed: the pool discards it and opens a replacement
                continue
            except BaseException:
                pool.putconn(conn)
                raise
            return conn

    @contextmanager
    def _connection(self, pool: ConnectionPool[Conn], wait: float) -> Iterator[Conn]:
        """`pool.connection()` with the hand-out check of `_checkout`."""
        conn = self._checkout(pool, wait)
        try:
            with conn:  # commit, or roll back on an exception; a pooled connection stays open
                yield conn
        finally:
            pool.putconn(conn)

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection in autocommit mode: every statement is its own transaction.

        The purchase path's use cases are each one statement (a PL/pgSQL function call, see
        db/migrations/R__booking.sql), so one round trip: no BEGIN, no COMMIT.
        Connection-level trouble becomes `ServiceUnavailable` (503 + Retry-After); every
        connection busy with this process's other calls becomes `Overloaded` (503 + Retry-After)
        and does not count against the breaker."""
        try:
            # While the breaker is open this raises ServiceUnavailable before touching the pool.
            # The half-open trial waits for a connection briefly: its pool is new (see
            # _renew_pool_if_down) and tries to connect at once, so if that attempt fails the
            # database is still down, and the pool's next attempt would only come a second later.
            # So does every call while connection-level failures are being counted (the database
            # may be down): they fail fast and open the breaker soon, instead of each waiting out
            # the full timeout on a pool that cannot connect.
            with self.breaker.guard() as trial:
                started = time.monotonic()
                if not self._slots.acquire(timeout=self._timeout):
                    raise _overloaded()
                try:
                    doubtful = trial or self.breaker.failure_count > 0
                    # With a slot, a live database hands over a connection in milliseconds: the
                    # rest of the timeout, but at least the trial's wait.
                    left = self._timeout - (time.monotonic() - started)
                    wait = max(left, TRIAL_WAIT_SECONDS)
                    if doubtful:
                        wait = min(wait, TRIAL_WAIT_SECONDS)
                    with self._connection(self._get_pool(), wait) as conn:
                        yield conn
                finally:
                    self._slots.release()
        except PoolTimeout as exc:
            self._renew_pool_if_down()
            raise errors.ServiceUnavailable(
                "database is busy or unreachable", retry_after=1
            ) from exc
        except (psycopg.OperationalError, psycopg.errors.QueryCanceled) as exc:
            self._renew_pool_if_down()
            raise errors.ServiceUnavailable("database is unavailable", retry_after=1) from exc
        except psycopg.DataError as exc:
            # A value the API's validation let through but PostgreSQL cannot hold (out of range
            # for its type): the transaction is rolled back, nothing is written.
            raise errors.ValidationFailed(
                [errors.FieldError("", "a value is out of range for storage")]
            ) from exc

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """A pooled connection inside one transaction: committed when the block ends normally,
        rolled back when it raises."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def ping(self) -> None:
        with self.connection() as conn:
            conn.execute("SELECT 1")

    @contextmanager
    def explicit_transaction(self) -> Iterator[Conn]:
        """A pooled connection whose transaction the caller commits (`conn.commit()`); whatever
        is not committed when the block ends is rolled back."""
        with self.connection() as conn:
            conn.autocommit = False
            try:
                yield conn
            finally:
                conn.rollback()  # nothing to do after a commit
                conn.autocommit = True

    @contextmanager
    def unit_of_work(self, *, read_only: bool = False) -> Iterator[PostgresUnitOfWork]:
        """One transaction with explicit commit: rolled back unless `commit()` was called.

        `read_only`: the reads run in autocommit, each statement on its own snapshot, without a
        BEGIN and ROLLBACK round trip around them (a read use case is one statement)."""
        if read_only:
            with self.connection() as conn:
                yield PostgresUnitOfWork(conn)
            return
        with self.explicit_transaction() as conn:
            yield PostgresUnitOfWork(conn)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class PostgresUnitOfWork:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.catalogue = PostgresCatalogue(conn)
        self.customers = PostgresCustomers(conn)

    def commit(self) -> None:
        self.conn.commit()


# Events (`{events}`: the table, or a page of it already ordered and limited) with their venue,
# remaining seats and categories (each with its remaining seats, in position order), in one
# statement: one LATERAL per event aggregates its categories, each category's sold seats summed
# over its own shards (event_inventory_category_idx). A page is cut before the LATERAL runs, so
# it runs for the page's rows only, whatever plan a prepared statement gets (a generic plan of
# the filtered listing sorts every matching event, and would aggregate them all).
_EVENTS = """
SELECT e.id, e.name, e.description, e.starts_at, e.ticket_price, e.currency, e.capacity,
       e.status, e.capacity - COALESCE(k.sold, 0) AS remaining,
       v.id, v.name, v.address, v.city, v.capacity, e.starts_at <= now() AS started,
       e.online_payment, k.categories
  FROM {events} e
  JOIN venue v ON v.id = e.venue_id
  LEFT JOIN LATERAL (
      SELECT SUM(s.sold)::int AS sold,
             json_agg(json_build_array(t.id, t.name, t.price::text, t.capacity,
                                       t.capacity - s.sold, t.position)
                      ORDER BY t.position, t.name) AS categories
        FROM ticket_category t
        CROSS JOIN LATERAL (SELECT COALESCE(SUM(i.sold), 0)::int AS sold FROM event_inventory i
                             WHERE i.category_id = t.id) s
       WHERE t.event_id = e.id) k
    ON true
"""


def _categories(raw: list[list[Any]] | None, currency: str) -> tuple[TicketCategory, ...]:
    return tuple(
        TicketCategory(
            id=uuid.UUID(c[0]),
            name=c[1],
            price=Money(Decimal(c[2]), currency),
            capacity=c[3],
            remaining=c[4],
            position=c[5],
        )
        for c in raw or ()
    )


def _event(row: tuple[Any, ...]) -> Event:
    return Event(
        id=row[0],
        name=row[1],
        description=row[2],
        starts_at=row[3],
        price=Money(row[4], row[5]),
        capacity=row[6],
        cancelled=row[7] == "CANCELLED",
        remaining=row[8],
        venue=Venue(row[9], row[10], row[11], row[12], row[13]),
        started=row[14],
        online_payment=row[15],
        categories=_categories(row[16], row[5]),
    )


class PostgresCatalogue:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def list_events(self, query: EventQuery) -> list[Event]:
        after_t, after_id = query.after if query.after else (None, None)
        page = """(SELECT * FROM event
                     WHERE starts_at >= %(from)s
                       AND (%(to)s::timestamptz IS NULL OR starts_at < %(to)s::timestamptz)
                       AND (%(venue)s::uuid IS NULL OR venue_id = %(venue)s::uuid)
                       AND (%(after_t)s::timestamptz IS NULL
                            OR (starts_at, id) > (%(after_t)s::timestamptz, %(after_id)s::uuid))
                     ORDER BY starts_at, id
                     LIMIT %(limit)s)"""
        rows = self._conn.execute(
            _EVENTS.format(events=page) + " ORDER BY e.starts_at, e.id",
            {
                "from": query.starts_from,
                "to": query.starts_to,
                "venue": query.venue_id,
                "after_t": after_t,
                "after_id": after_id,
                "limit": query.limit,
            },
        ).fetchall()
        return [_event(r) for r in rows]

    def get_event(self, event_id: uuid.UUID) -> Event | None:
        row = self._conn.execute(
            _EVENTS.format(events="event") + " WHERE e.id = %s",
            (event_id,),
        ).fetchone()
        return None if row is None else _event(row)

    def get_venue(self, venue_id: uuid.UUID) -> Venue | None:
        row = self._conn.execute(
            "SELECT id, name, address, city, capacity FROM venue WHERE id = %s", (venue_id,)
        ).fetchone()
        return None if row is None else Venue(*row)

    def save_venue(self, venue: Venue) -> None:
        self._conn.execute(
            """INSERT INTO venue (id, name, address, city, capacity)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address,
                 city = EXCLUDED.city, capacity = EXCLUDED.capacity, updated_at = now()""",
            (venue.id, venue.name, venue.address, venue.city, venue.capacity),
        )

    def add_event(
        self,
        event_id: uuid.UUID,
        venue_id: uuid.UUID,
        name: str,
        description: str,
        starts_at: datetime,
        price: Money,
        online_payment: bool,
        categories: Sequence[CategoryPlan],
    ) -> None:
        self._conn.execute(
            """INSERT INTO event (id, venue_id, name, description, starts_at, ticket_price,
                                  currency, capacity, online_payment)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                event_id,
                venue_id,
                name,
                description,
                starts_at,
                price.amount,
                price.currency,
                sum(c.capacity for c in categories),
                online_payment,
            ),
        )
        ids = [uuid.uuid4() for _ in categories]
        with self._conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO ticket_category (id, event_id, name, price, capacity, position)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                [
                    (cid, event_id, c.name, c.price.amount, c.capacity, c.position)
                    for cid, c in zip(ids, categories, strict=True)
                ],
            )
            cur.executemany(
                """INSERT INTO event_inventory (event_id, shard, capacity, category_id)
                   VALUES (%s, %s, %s, %s)""",
                [
                    (event_id, shard, cap, cid)
                    for cid, c in zip(ids, categories, strict=True)
                    for shard, cap in c.shards
                ],
            )

    def update_event(
        self,
        event_id: uuid.UUID,
        name: str,
        description: str,
        starts_at: datetime,
        price: Money,
        online_payment: bool,
    ) -> bool:
        cur = self._conn.execute(
            """UPDATE event SET name = %s, description = %s, starts_at = %s, ticket_price = %s,
                      currency = %s, online_payment = %s, version = version + 1,
                      updated_at = now()
                WHERE id = %s""",
            (
                name,
                description,
                starts_at,
                price.amount,
                price.currency,
                online_payment,
                event_id,
            ),
        )
        return cur.rowcount == 1

    def set_category_price(
        self, event_id: uuid.UUID, category_id: uuid.UUID, price: Decimal
    ) -> None:
        self._conn.execute(
            "UPDATE ticket_category SET price = %s WHERE event_id = %s AND id = %s",
            (price, event_id, category_id),
        )

    def resize_category(self, event_id: uuid.UUID, category_id: uuid.UUID, capacity: int) -> bool:
        """The category's shards locked in shard order (the lock order of bookings, ADR 2), their
        capacities changed (`resize_shards`), then the category's and the event's capacity by
        the same difference: the deferred triggers (R__inventory.sql) check the sums at commit."""
        rows = self._conn.execute(
            """SELECT shard, capacity, sold FROM event_inventory
                WHERE event_id = %s AND category_id = %s ORDER BY shard FOR UPDATE""",
            (event_id, category_id),
        ).fetchall()
        new_caps = resize_shards([(r[1], r[2]) for r in rows], capacity)
        if new_caps is None:
            return False
        with self._conn.cursor() as cur:
            cur.executemany(
                "UPDATE event_inventory SET capacity = %s WHERE event_id = %s AND shard = %s",
                [(cap, event_id, r[0]) for r, cap in zip(rows, new_caps, strict=True)],
            )
        delta = capacity - sum(r[1] for r in rows)
        self._conn.execute(
            "UPDATE ticket_category SET capacity = capacity + %s WHERE event_id = %s AND id = %s",
            (delta, event_id, category_id),
        )
        self._conn.execute(
            """UPDATE event SET capacity = capacity + %s, version = version + 1,
                      updated_at = now()
                WHERE id = %s""",
            (delta, event_id),
        )
        return True

    def cancel_event(self, event_id: uuid.UUID) -> bool:
        cur = self._conn.execute(
            """UPDATE event SET status = 'CANCELLED', version = version + 1, updated_at = now()
                WHERE id = %s""",
            (event_id,),
        )
        return cur.rowcount == 1


_CUSTOMER_COLUMNS = (
    "id, subject, name, email, address_line1, address_line2, postal_code, city, country"
)


def _customer(row: tuple[Any, ...]) -> Customer:
    return Customer(
        id=row[0],
        subject=row[1],
        profile=Profile(
            name=row[2],
            email=row[3],
            address=Address(row[4], row[5], row[6], row[7], row[8].strip()),
        ),
    )


class PostgresCustomers:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def by_subject(self, subject: str) -> Customer | None:
        row = self._conn.execute(
            f"SELECT {_CUSTOMER_COLUMNS} FROM customer WHERE subject = %s",  # noqa: S608
            (subject,),
        ).fetchone()
        return None if row is None else _customer(row)

    def by_id(self, customer_id: uuid.UUID) -> Customer | None:
        row = self._conn.execute(
            f"SELECT {_CUSTOMER_COLUMNS} FROM customer WHERE id = %s",  # noqa: S608
            (customer_id,),
        ).fetchone()
        return None if row is None else _customer(row)

    def upsert(self, subject: str, profile: Profile) -> tuple[Customer, bool]:
        a = profile.address
        row = self._conn.execute(
            f"""INSERT INTO customer (subject, name, email, address_line1, address_line2,
                                      postal_code, city, country)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (subject) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email,
                 address_line1 = EXCLUDED.address_line1, address_line2 = EXCLUDED.address_line2,
                 postal_code = EXCLUDED.postal_code, city = EXCLUDED.city,
                 country = EXCLUDED.country, updated_at = now()
               RETURNING {_CUSTOMER_COLUMNS}, (xmax = 0) AS created""",  # noqa: S608
            (
                subject,
                profile.name,
                profile.email,
                a.line1,
                a.line2,
                a.postal_code,
                a.city,
                a.country,
            ),
        ).fetchone()
        assert row is not None
        return _customer(row[:9]), bool(row[9])
