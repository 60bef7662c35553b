"""Scenario `burst`: many buyers posting at once, below the rate the function sustains.

`buyers` (256) buyers start at the same instant (after a short warm-up of the function) and each
books in a loop (1-2 tickets, a fresh Idempotency-Key per booking, then a pause of 0.5-1.5 s: about
256 bookings/s offered in all, below what the function sustains) at one event of `capacity`
(2,500) seats until it answers `sold-out`. A 503 is retried with the same key after its
Retry-After (with jitter), as the storefront does. What is measured is whether the burst is
served or turned away while seats are left (issue 19: 71 % of the answers were 503 before the
request queue and the breaker's fix). Figures: answers by status
and problem type, the share of 503s (`burst_refused_ratio` in the summary), bookings/s, p99 of
the 201s, exactly the capacity sold (SQL), the client's and the function's CPU per request.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import requests

from benchmarks.table import Row, fmt, verdict

if TYPE_CHECKING:
    from benchmarks.bench import Bench

BUYERS = 256
CAPACITY = 2500
SMOKE_BUYERS = 16
SMOKE_CAPACITY = 60
CLIENT_TIMEOUT_S = 10.0
TIME_LIMIT_S = 180.0
WARM_UP_BOOKINGS = 50


@dataclass
class Tally:
    """What the buyers saw, shared by their threads."""

    url: str
    event: uuid.UUID
    start: threading.Barrier
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[str] = field(default_factory=Counter)
    latencies_201: list[float] = field(default_factory=list)
    posts: int = 0

    def record(self, answer: str, took: float | None = None) -> None:
        with self.lock:
            self.posts += 1
            self.answers[answer] += 1
            if took is not None:
                self.latencies_201.append(took)


def _buyer(tally: Tally, i: int, token: str) -> None:
    """Books until sold out: a fresh key per booking, the same key again after a 503."""
    rng = random.Random(i)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    tally.start.wait()
    deadline = time.monotonic() + TIME_LIMIT_S
    key, count = str(uuid.uuid4()), rng.choice((1, 2))
    while time.monotonic() < deadline:
        began = time.monotonic()
        try:
            r = session.post(
                tally.url,
                json={"eventId": str(tally.event), "ticketCount": count},
                headers={**headers, "Idempotency-Key": key},
                timeout=CLIENT_TIMEOUT_S,
            )
        except requests.RequestException:
            tally.record("client error/timeout")
            continue  # the same key again
        kind = _problem(r)
        created = r.status_code == 201
        tally.record(
            f"{r.status_code} {kind}".strip(), time.monotonic() - began if created else None
        )
        if created:
            key, count = str(uuid.uuid4()), rng.choice((1, 2))
            time.sleep(rng.uniform(0.5, 1.5))  # a buyer's pause: ~256/s offered in all
        elif r.status_code == 503:
            time.sleep(float(r.headers.get("Retry-After", "1")) * rng.uniform(0.5, 1.5))
        elif r.status_code == 409 and kind == "sold-out" and count == 2:
            key, count = str(uuid.uuid4()), 1  # one seat may be left
        else:
            return  # sold out (or refused for good)


def _warm_up(url: str, b: Bench, tokens: list[tuple[str, str]]) -> None:
    """A function that has served (its keys fetched, its pool open): a burst at an on-sale
    meets a function that was already serving, not one starting (that is `cold_start`)."""
    (event,) = b.db.make_events(1, 1000, tag="burst warm-up")
    with requests.Session() as session:
        for i in range(WARM_UP_BOOKINGS):
            session.post(
                url,
                json={"eventId": str(event), "ticketCount": 1},
                headers={
                    "Authorization": f"Bearer {tokens[i % len(tokens)][1]}",
                    "Idempotency-Key": str(uuid.uuid4()),
                },
                timeout=CLIENT_TIMEOUT_S,
            )


def burst(b: Bench) -> dict[str, Any]:
    smoke = b.profile.smoke
    buyers = SMOKE_BUYERS if smoke else BUYERS
    capacity = SMOKE_CAPACITY if smoke else CAPACITY
    server = b.servers["create_booking"]
    (event,) = b.db.make_events(1, capacity, tag="burst")
    tokens = b.tokens.ensure(TIME_LIMIT_S + 60)
    _warm_up(server.url + "/bookings", b, tokens)
    tally = Tally(server.url + "/bookings", event, threading.Barrier(buyers + 1))
    threads = [
        threading.Thread(target=_buyer, args=(tally, i, tokens[i % len(tokens)][1]), daemon=True)
        for i in range(buyers)
    ]
    for t in threads:
        t.start()
    shed0 = _shed(server.url)
    cpu0, server0, t0 = time.process_time(), server.cpu(), time.monotonic()
    tally.start.wait()
    for t in threads:
        t.join(TIME_LIMIT_S + CLIENT_TIMEOUT_S + 5)
    wall = time.monotonic() - t0
    client_cpu, server_cpu = time.process_time() - cpu0, server.cpu() - server0
    shed = {k: v - shed0.get(k, 0.0) for k, v in _shed(server.url).items()}
    check = b.db.inventory_check([event])
    with b.db.connect() as conn:
        row = conn.execute(
            "SELECT count(*), extract(epoch FROM max(created_at) - min(created_at)) "
            "FROM booking WHERE event_id = %s",
            (event,),
        ).fetchone()
    bookings = int(row[0]) if row else 0
    selling_s = float(row[1]) if row and row[1] is not None else wall
    n = max(tally.posts, 1)
    refused = sum(v for k, v in tally.answers.items() if k.startswith("503"))
    b.log(
        f"burst: {buyers} buyers, {n} POSTs in {wall:.1f}s, 503: {refused}, "
        f"sold {check['sold']}/{capacity}, answers {dict(tally.answers)}"
    )
    latencies = tally.latencies_201
    return {
        "buyers": buyers,
        "capacity": capacity,
        "posts": n,
        "answers": dict(tally.answers),
        "shed_by_reason": {k: int(v) for k, v in shed.items() if v},
        "refused_503": refused,
        "refused_ratio": refused / n,
        "bookings": bookings,
        "bookings_per_s": bookings / selling_s if selling_s > 0 else 0.0,
        "wall_s": wall,
        "p99_201_ms": float(np.percentile(latencies, 99) * 1000) if latencies else None,
        "sold": check["sold"],
        "oversold": check["oversold"],
        "exactly_capacity_sold": check["sold"] == capacity
        and check["consistent"]
        and check["shards_within_capacity"],
        "client_cpu_ms_per_request": 1000 * client_cpu / n,
        "client_cpu_share": client_cpu / wall if wall else 0.0,
        "server_cpu_ms_per_request": 1000 * server_cpu / n,
    }


def _shed(url: str) -> dict[str, float]:
    """The function's boxoffice_requests_shed_total by reason (all its workers)."""
    found: dict[str, float] = {}
    for line in requests.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("boxoffice_requests_shed_total{"):
            labels, _, value = line.rpartition(" ")
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            found[reason] = found.get(reason, 0.0) + float(value)
    return found


def _problem(r: requests.Response) -> str:
    if r.headers.get("Content-Type", "").startswith("application/problem+json"):
        try:
            return str(r.json().get("type", "")).rsplit("/", 1)[-1]
        except ValueError:
            return ""
    return ""


def report_rows(s: dict[str, Any], smoke: bool) -> list[Row]:
    head = f"{s['buyers']} buyers at once, {s['capacity']} seats"
    return [
        (
            "3c burst",
            f"{head}: answers refused with 503 (retried after Retry-After)",
            f"{100 * s['refused_ratio']:.1f} %",
            f"{s['refused_503']} of {s['posts']} POSTs",
            "0 refused",
            verdict(s["refused_503"] == 0, smoke),
        ),
        (
            "3c burst",
            "exactly capacity sold · oversold · bookings/s · p99 of the 201s",
            str(s["exactly_capacity_sold"]),
            f"{s['oversold']} · {fmt(s['bookings_per_s'], '/s')} · "
            f"{fmt(s['p99_201_ms'] or float('nan'), ' ms', 0)}",
            "True · 0",
            verdict(s["exactly_capacity_sold"] and s["oversold"] == 0, smoke),
        ),
        (
            "3c burst",
            "answers",
            ", ".join(f"{k}: {v}" for k, v in sorted(s["answers"].items())),
            "refused by the request queue: "
            + (", ".join(f"{k} {v}" for k, v in sorted(s["shed_by_reason"].items())) or "none"),
            "",
            "",
        ),
        (
            "3c burst",
            "client (Python threads) · function CPU per request",
            f"{s['client_cpu_ms_per_request']:.3f} · {s['server_cpu_ms_per_request']:.2f} ms",
            f"client {100 * s['client_cpu_share']:.0f} % of a core",
            "",
            "client-limited" if s["client_cpu_share"] > 0.5 else "",
        ),
    ]
