"""Crash safety: consume_order runs as its own process (its server, as the stack
runs it), is SIGKILLed in the middle of a stream of deliveries, restarted, and sent again what
was not acknowledged plus some of what was (KafkaSource re-delivers from the last committed
offset). Nothing is lost, nothing is duplicated, every booking ends confirmed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from test_consume_order_support import (
    ROOT,
    Db,
    Delivery,
    booking_status,
    created_delivery,
    ensure_customer,
    ensure_event,
    insert_booking,
    order_rows,
    ticket_rows,
)

from boxoffice.processes import server

EVENT = uuid.UUID("e0e0f000-0000-4000-8000-00000000e003")
CUSTOMER = uuid.UUID("c0c0f000-0000-4000-8000-00000000e003")
STREAM = 80


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class ConsumerProcess:
    def __init__(self, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            server.command(str(ROOT / ".venv" / "bin" / "python"), port),
            cwd=ROOT / "functions" / "consume_order",
            env={**os.environ, "WORKERS": "1", "THREADS": "4"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the server's main process and worker
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.kill()
        pytest.fail(f"consume_order did not start on {self.url}; see {log}")

    def kill(self) -> None:
        """SIGKILL the whole process group this test started (no clean shutdown)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()


def post(url: str, d: Delivery) -> int | None:
    try:
        return requests.post(url, headers=d.headers, data=d.body, timeout=10).status_code
    except requests.RequestException:
        return None


@pytest.fixture
def db(own_db: Db) -> Db:
    """Bookings here are written with SQL (no seats taken, no outbox row): a database of the
    test's own (`own_db`), never the dev database."""
    return own_db


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[ConsumerProcess]]:
    procs: list[ConsumerProcess] = []
    yield procs
    for p in procs:
        p.kill()


def test_sigkill_mid_stream_then_redelivery_loses_and_duplicates_nothing(
    db: Db, tmp_path: Path, started: list[ConsumerProcess]
) -> None:
    ensure_event(db, EVENT)
    ensure_customer(db, CUSTOMER)
    bookings = [insert_booking(db, EVENT, CUSTOMER, 1 + i % 3) for i in range(STREAM)]
    deliveries = [created_delivery(b) for b in bookings]
    port = free_port()
    started.append(ConsumerProcess(port, tmp_path / "consume_order.log"))
    acked: list[int] = []
    unacked: list[int] = []

    def feed() -> None:
        for i, d in enumerate(deliveries):
            (acked if post(started[0].url, d) == 200 else unacked).append(i)

    feeder = threading.Thread(target=feed)
    feeder.start()
    while len(acked) < STREAM // 3 and feeder.is_alive():
        time.sleep(0.01)
    started[0].kill()
    feeder.join(60)

    assert 0 < len(acked) < STREAM, "the kill must land mid-stream"
    assert unacked, "some deliveries must have failed with the process gone"
    started.append(ConsumerProcess(port, tmp_path / "consume_order.log"))
    replay = sorted(set(unacked) | set(acked[-5:]) | set(acked[::4]))
    statuses = {i: post(started[1].url, deliveries[i]) for i in replay}

    assert set(statuses.values()) == {200}
    for b in bookings:
        assert len(order_rows(db, b.id)) == 1, f"booking {b.id}: not exactly one order"
        assert [t[1] for t in ticket_rows(db, b.id)] == list(range(1, b.quantity + 1))
        assert booking_status(db, b.id) == "CONFIRMED"
