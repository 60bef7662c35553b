"""The fault suite's own stack and load (no tests here).

`FaultStack` runs a PostgreSQL cluster, a Kafka broker, create_booking, consume_order and the
KafkaSource dispatcher of its own, on loopback ports 14xxx, with a state directory of its own,
by calling the local stack's own service functions (stack/services/*.sh: `postgres_start`,
`kafka_start`, `fn_start`, `dispatcher_start` ...) with BOXOFFICE_STATE_DIR and the ports
overridden: the same binaries, the same command lines, so the suite follows any change to how
the stack launches things. Keycloak (tokens) and moto (ticket documents) are the dev stack's.

`Load` books from a few threads at a steady rate; every failed attempt (connection error, 5xx,
409 idempotency-key-in-use) is retried with the same Idempotency-Key until it gets its 201 or a
definite refusal, and every answer is recorded.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
PORTS = {
    "BOXOFFICE_PG_PORT": "14432",
    "BOXOFFICE_KAFKA_PORT": "14092",
    "BOXOFFICE_KAFKA_CONTROLLER_PORT": "14093",
    "BOXOFFICE_CREATE_BOOKING_PORT": "14083",
    "BOXOFFICE_CONSUME_ORDER_PORT": "14084",
    "BOXOFFICE_DISPATCHER_PORT": "14086",
    "BOXOFFICE_GET_EVENT_PORT": "14081",
    "BOXOFFICE_GET_CUSTOMER_PORT": "14082",
    "BOXOFFICE_HOUSEKEEPING_PORT": "14089",
    "BOXOFFICE_CHECK_IN_PORT": "14087",
    "BOXOFFICE_WAITING_ROOM_PORT": "14088",
    "BOXOFFICE_FRONTDOOR_PORT": "14000",
}
VENUE = uuid.UUID("7e0e0000-0000-4000-8000-000000000002")  # demo data


# The functions that only read and write PostgreSQL (no Kafka): idle ones in the restart test.
DATABASE_FUNCTIONS = ("get_event", "get_customer", "check_in", "waiting_room")


class FaultStack:
    def __init__(self, state: Path) -> None:
        self.state = state
        (state / "secrets").mkdir(parents=True, exist_ok=True)
        key = state / "secrets" / "ticket-signing-key"
        key.write_text(secrets.token_hex(32))
        key.chmod(0o600)
        self.env = {
            **os.environ,
            **PORTS,
            "BOXOFFICE_STATE_DIR": str(state),
            # Enough per customer for a whole run of bookings on one event.
            "BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT": "1000000",
            "BOXOFFICE_KAFKA_HEAP": "384m",
        }
        self.booking_url = f"http://127.0.0.1:{PORTS['BOXOFFICE_CREATE_BOOKING_PORT']}"
        self.dispatcher_url = f"http://127.0.0.1:{PORTS['BOXOFFICE_DISPATCHER_PORT']}"
        self.database_url = (
            f"postgresql://boxoffice:boxoffice@127.0.0.1:{PORTS['BOXOFFICE_PG_PORT']}/boxoffice"
        )

    def sh(self, script: str, timeout: float = 180) -> str:
        """Run `script` with stack/boxo sourced (its library, service files and bx_env)."""
        out = subprocess.run(
            ["bash", "-c", "source stack/boxo; " + script],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{script!r} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out.stdout

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self.sh("postgres_start && postgres_after_start")
        self.sh("kafka_start && kafka_after_start")
        self.sh("fn_start create_booking && fn_start consume_order")
        self.sh("dispatcher_start")

    def start_database(self) -> None:
        """PostgreSQL alone (migrated, with the demo data): for scenarios without Kafka."""
        self.sh("postgres_start && postgres_after_start")

    def start_functions(self, *names: str) -> None:
        """Start these functions as the stack does (`fn_start`), on this stack's ports."""
        self.sh(" && ".join(f"fn_start {name}" for name in names))

    def url(self, function: str) -> str:
        return f"http://127.0.0.1:{PORTS[f'BOXOFFICE_{function.upper()}_PORT']}"

    def stop(self) -> None:
        for script in ("dispatcher_stop", "functions_stop", "kafka_stop", "postgres_stop"):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.sh(script, timeout=90)

    def pid(self, name: str) -> int:
        return int((self.state / "run" / f"{name}.pid").read_text().strip())

    def signal_group(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to the process group the stack started for `name` (setsid: pid = pgid)."""
        os.killpg(self.pid(name), sig)

    def wait_gone(self, name: str, timeout: float = 30) -> None:
        pid = self.pid(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError(f"{name} (pid {pid}) still running after {timeout} s")

    # -- faults ---------------------------------------------------------------------------------

    def kill_kafka(self) -> None:
        self.signal_group("kafka", signal.SIGKILL)
        self.wait_gone("kafka")

    def start_kafka(self) -> None:
        self.sh("kafka_start")

    def stop_postgres_immediately(self) -> None:
        self.sh('_pg_as "$BX_PG_BIN/pg_ctl" stop -s -D "$BX_PG_DATA" -m immediate -w -t 30')

    def start_postgres(self) -> None:
        self.sh("postgres_start")

    def restart_postgres_immediately(self) -> None:
        """`pg_ctl stop -m immediate` (every backend killed, no shutdown checkpoint), then start
        it again and return once it accepts connections."""
        self.stop_postgres_immediately()
        self.start_postgres()
        deadline = time.monotonic() + 60
        while True:
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def restart_function(self, name: str) -> None:
        self.sh(f"fn_start {name}")

    # -- data -----------------------------------------------------------------------------------

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)

    def new_event(self, capacity: int = 1_000_000, shards: int = 16) -> uuid.UUID:
        from boxoffice.domain.catalogue import split_capacity  # noqa: PLC0415

        event = uuid.uuid4()
        with self.connect() as conn, conn.transaction():
            conn.execute(
                """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency,
                                      capacity)
                   VALUES (%s, %s, %s, now() + interval '300 days', 20.00, 'GBP', %s)""",
                (event, VENUE, f"fault run {event.hex[:8]}", capacity),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, %s, %s)",
                    [(event, s, c) for s, c in enumerate(split_capacity(capacity, shards))],
                )
        return event


# -- the load ---------------------------------------------------------------------------------


@dataclass
class Attempt:
    at: float  # time.time()
    status: int | None  # None: no HTTP answer (connection refused, reset, timeout)
    retry_after: str | None = None


@dataclass
class Booking:
    key: str
    user: str
    quantity: int
    attempts: list[Attempt] = field(default_factory=list)
    booking_id: str | None = None
    final: int | None = None  # 201, or a definite refusal status
    accepted_at: float | None = None


class Load:
    """`threads` threads booking `rate` bookings per second in all on `event`, until stopped."""

    def __init__(
        self,
        url: str,
        event: uuid.UUID,
        token: Callable[[str], str],
        users: tuple[str, ...] = ("alice", "bob"),
        rate: float = 30.0,
        threads: int = 3,
    ) -> None:
        self.url = f"{url}/bookings"
        self.event = event
        self.token = token
        self.users = users
        self.interval = threads / rate
        self.bookings: list[Booking] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True, name=f"load-{i}")
            for i in range(threads)
        ]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def stop(self, settle: float = 60) -> None:
        """Stop making new bookings; the ones started still retry until answered (or `settle`)."""
        self._stop.set()
        for t in self._threads:
            t.join(settle)

    def _run(self, index: int) -> None:
        session = requests.Session()
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            user = self.users[(index + n) % len(self.users)]
            booking = Booking(str(uuid.uuid4()), user, 1 + n % 3)
            n += 1
            with self._lock:
                self.bookings.append(booking)
            self._book(session, booking)
            next_at += self.interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _book(self, session: requests.Session, b: Booking) -> None:
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up:
            headers = {
                "Authorization": f"Bearer {self.token(b.user)}",
                "Idempotency-Key": b.key,
            }
            body = {"eventId": str(self.event), "ticketCount": b.quantity}
            try:
                r = session.post(self.url, json=body, headers=headers, timeout=10)
            except requests.RequestException:
                b.attempts.append(Attempt(time.time(), None))
                session = requests.Session()
                time.sleep(0.2)
                continue
            b.attempts.append(Attempt(time.time(), r.status_code, r.headers.get("Retry-After")))
            if r.status_code == 201:
                b.final, b.booking_id, b.accepted_at = 201, r.json()["id"], time.time()
                return
            if r.status_code >= 500 or (r.status_code in (409, 429) and _retryable_409(r)):
                wait = r.headers.get("Retry-After")
                time.sleep(min(1.0, float(wait)) if wait and wait.isdigit() else 0.2)
                continue
            b.final = r.status_code  # a definite refusal
            return

    # -- what happened ----------------------------------------------------------------------------

    def statuses(self) -> dict[int | None, int]:
        counts: dict[int | None, int] = {}
        for b in self.bookings:
            for a in b.attempts:
                counts[a.status] = counts.get(a.status, 0) + 1
        return counts

    def first_201_after(self, t: float) -> float | None:
        times = [a.at for b in self.bookings for a in b.attempts if a.status == 201 and a.at >= t]
        return min(times) if times else None


def _retryable_409(r: requests.Response) -> bool:
    if r.status_code == 429:
        return True
    try:
        return str(r.json().get("type", "")).endswith("/idempotency-key-in-use")
    except ValueError:
        return False
