"""The benchmark scenarios. Each returns a JSON-able dict of results and registers the attacks
it wants plotted; `Bench` holds the fixtures and the function processes they run against."""

from __future__ import annotations

import functools
import json
import math
import os
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

from benchmarks.env import ROOT, VENV_BIN
from benchmarks.fixtures import BenchDatabase, TokenPool, dumps
from benchmarks.load import CLIENT_LIMIT_SHARE, Attack, Target, attack, attack_oha, write_targets
from benchmarks.servers import FunctionProcess, Measured, cpu_seconds, free_port, tree

DISPATCHER = ROOT / "stack" / "kafkasource" / "dispatcher.py"

P99_BUDGET_MS = 100.0
HARD_FAILURE_CODES = (0, 429, 500, 502, 503, 504)


@dataclass
class Profile:
    """Sizes and durations of one benchmark invocation (`--smoke` picks the tiny one)."""

    smoke: bool = False
    runs: int = 3
    warmup_s: float = 5.0
    duration_s: float = 15.0
    catalogue_rates: list[int] = field(
        default_factory=lambda: [250, 500, 1000, 1500, 2000, 3000, 4000]
    )
    booking_rates: list[int] = field(default_factory=lambda: [50, 100, 200, 400, 700, 1000, 1500])
    spread_events: int = 2000
    spread_capacity: int = 1000
    small_events: int = 100
    small_capacity: int = 20
    small_share: float = 0.05
    customers: int = 50
    hot_capacity: int = 20_000
    hot_shards: int = 16
    hot_rate: int = 1000
    hot_ticket_count: int = 4
    hot_demand_factor: float = 4.0  # the run offers this many times the capacity
    confirm_rate: int = 500
    confirm_duration_s: float = 15.0
    cold_repeats: int = 3
    cold_functions: list[str] = field(
        default_factory=lambda: ["get_event", "get_customer", "create_booking", "consume_order"]
    )
    token_iterations: int = 2000
    token_http_rate: int = 200
    threads: int = 8
    # As the stack runs them (BOXOFFICE_FUNCTION_WORKERS): one server worker per CPU.
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    pool_max: int = 8
    # the same trivial app on three servers (benchmarks/runtime.py, optional scenario `runtime`)
    runtime_rates: list[int] = field(default_factory=lambda: [1000, 2000, 4000, 8000])
    # the catalogue through the front door's cache (benchmarks/overload.py)
    cached_rates: list[int] = field(default_factory=lambda: [2000, 5000, 10_000, 15_000, 20_000])
    floor_rate: int = 500  # the stack's floor (benchmarks/overload.py)
    # graceful overload (benchmarks/overload.py)
    overload_factor: float = 5.0
    overload_s: float = 30.0
    overload_sell_s: float = 20.0  # capacity = what the sustainable rate sells in this time
    overload_client_timeout_s: float = 10.0
    overload_fallback_rate: int = 200
    profile: bool = True
    migrate: str = "flyway"
    # waiting_room (optional scenario, benchmarks/waiting_room.py)
    wr_buyers: int = 20_000
    wr_seats: int = 5_000
    wr_arrival_s: float = 30.0
    wr_open_after_s: float = 10.0
    wr_rate: float | None = None  # None: automatic
    wr_capacity_per_s: int = 200  # BOXOFFICE_BOOKING_CAPACITY_PER_SECOND of the run
    # "line": the cached public status, as the README tells browsers to poll (the storefront
    # does); "me" (`--wr-poll me`): everyone polls their own place, uncached.
    wr_poll_modes: list[str] = field(default_factory=lambda: ["line"])
    wr_connections: int = 256
    wr_timeout_s: float = 600.0

    @classmethod
    def tiny(cls) -> Profile:
        return cls(
            smoke=True,
            runs=1,
            warmup_s=0.0,
            duration_s=2.0,
            catalogue_rates=[50],
            booking_rates=[20, 40],
            spread_events=40,
            spread_capacity=1000,
            small_events=5,
            small_capacity=5,
            small_share=0.1,
            customers=6,
            hot_capacity=120,
            hot_shards=4,
            hot_rate=60,
            hot_ticket_count=2,
            hot_demand_factor=3.0,
            confirm_rate=20,
            confirm_duration_s=2.0,
            cold_repeats=1,
            cold_functions=["get_event", "create_booking"],
            token_iterations=200,
            token_http_rate=30,
            profile=False,
            migrate="sql",
            cached_rates=[100],
            runtime_rates=[100],
            floor_rate=50,
            overload_s=3.0,
            overload_sell_s=2.0,
            overload_fallback_rate=20,
            wr_buyers=300,
            wr_seats=100,
            wr_arrival_s=3.0,
            wr_open_after_s=1.0,
            wr_capacity_per_s=40,
            wr_poll_modes=["line"],
            wr_connections=32,
            wr_timeout_s=120.0,
        )


def aggregate(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and min-max over runs of every numeric figure; errors summed."""
    out: dict[str, Any] = {"runs": len(summaries)}
    for key, value in summaries[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [float(s[key]) for s in summaries]
            out[key] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
            }
    errors: dict[str, int] = {}
    for s in summaries:
        for k, n in s["errors"].items():
            errors[k] = errors.get(k, 0) + n
    out["errors"] = errors
    return out


def hard_failures(summary: dict[str, Any]) -> int:
    """Requests that failed for the system's sake (timeouts, 5xx, 429), not the buyer's."""
    return sum(
        n for k, n in summary["errors"].items() if int(k.split(" ", 1)[0]) in HARD_FAILURE_CODES
    )


@dataclass
class Bench:
    profile: Profile
    out: Path
    vegeta: Path
    db: BenchDatabase
    tokens: TokenPool
    env: dict[str, str]  # the function processes' environment
    servers: dict[str, FunctionProcess]
    spread: list[uuid.UUID]
    small: list[uuid.UUID]
    rng: random.Random = field(default_factory=lambda: random.Random(20261124))
    plots: dict[str, list[Attack]] = field(default_factory=dict)
    confirm: ConfirmPipeline | None = None
    notes: list[str] = field(default_factory=list)
    found: dict[str, Any] = field(default_factory=dict)  # results of the scenarios run so far
    oha: Path | None = None  # the high-rate GET client (None: vegeta for everything)

    # -- helpers -----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    def booking_targets(
        self,
        path: Path,
        n: int,
        events: Callable[[], uuid.UUID],
        count: Callable[[], int],
        min_valid: float,
        server: FunctionProcess | None = None,
    ) -> None:
        tokens = self.tokens.ensure(min_valid)
        url = (server or self.servers["create_booking"]).url + "/bookings"

        def make() -> Target:
            _, token = self.rng.choice(tokens)
            body = dumps({"eventId": str(events()), "ticketCount": count()}).encode()
            return Target(
                "POST",
                url,
                {
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                    "Content-Type": "application/json",
                },
                body,
            )

        write_targets(path, (make() for _ in range(n)))

    def attack(
        self,
        generator: str,
        targets: Path,
        rate: float,
        duration: float,
        work: Path,
        name: str,
        server: Measured | None,
        lazy: bool = True,
        max_body: int = 0,
    ) -> Attack:
        """An attack by vegeta, or by oha (`generator="oha"`: plain GETs only; vegeta when the
        harness has no oha)."""
        if generator == "oha" and self.oha is not None:
            return attack_oha(
                self.oha, targets, rate, duration, work, name, server, database=self.db.name
            )
        return attack(
            self.vegeta,
            targets,
            rate,
            duration,
            work,
            name,
            server,
            lazy,
            max_body,
            database=self.db.name,
        )

    def sweep(
        self,
        label: str,
        rates: list[int],
        server: Measured,
        targets: Callable[[Path, float, float], bool],
        max_body: int = 0,
        generator: str = "vegeta",
        stop_early: bool = True,
    ) -> dict[str, Any]:
        """Constant-rate steps, `runs` attacks each (after one warm-up attack at the first
        rate); stops after the first step that is not sustainable (unless not `stop_early`).
        `targets(path, rate, duration)` writes the targets file and says whether vegeta should
        read it lazily. `generator`: "vegeta" or "oha" (plain GETs, 2-10 x less CPU per request).

        A step whose load generator used more than half a core in any run is `client_limited`:
        the generator competed with the system for the CPUs (and may itself have been the limit),
        so the step is no clean evidence of what the system sustains; `max_sustainable_rate`
        still counts it and `best_step_client_limited` says so."""
        p = self.profile
        work = self.out / "raw" / label
        work.mkdir(parents=True, exist_ok=True)
        steps = []
        plotted: list[Attack] = []
        for i, rate in enumerate(rates):
            if i == 0 and p.warmup_s > 0:
                path = work / "warmup.jsonl"
                lazy = targets(path, rate, p.warmup_s)
                self.log(f"{label}: warm-up {rate}/s for {p.warmup_s:g}s")
                self.attack(generator, path, rate, p.warmup_s, work, "warmup", server, lazy)
            runs = []
            for r in range(p.runs):
                path = work / f"r{rate}-{r}.jsonl"
                lazy = targets(path, rate, p.duration_s)
                a = self.attack(
                    generator,
                    path,
                    rate,
                    p.duration_s,
                    work,
                    f"{label}-{rate}rps-run{r + 1}",
                    server,
                    lazy,
                    max_body,
                )
                path.unlink()
                s = a.summary()
                self.log(
                    f"{label}: {rate}/s run {r + 1}: ok {s['ok_rate']:.0f}/s p50 "
                    f"{s['p50_ms']:.1f} ms p99 {s['p99_ms']:.1f} ms, hard failures "
                    f"{hard_failures(s)}, {a.generator} CPU {100 * s['generator_cpu_share']:.0f}%"
                    f" ({s['generator_cpu_ms_per_request']:.3f} ms/request)"
                    f"{' CLIENT-LIMITED' if s['client_limited'] else ''}, "
                    f"machine busy {100 * s['machine_busy']:.0f}%"
                )
                runs.append(s)
                if r == 0:
                    plotted.append(a)
            agg = aggregate(runs)
            agg["target_rate"] = rate
            agg["sustainable"] = (
                agg["p99_ms"]["median"] <= P99_BUDGET_MS
                and statistics.median(hard_failures(s) / max(1, s["requests"]) for s in runs)
                <= 0.001
                and agg["sent_rate"]["median"] >= 0.95 * rate
            )
            agg["generator"] = runs[0]["generator"]
            agg["client_limited"] = any(s["client_limited"] for s in runs)
            agg["per_run"] = runs
            steps.append(agg)
            if not agg["sustainable"] and stop_early:
                break
        self.plots[label] = plotted
        ok = [s["target_rate"] for s in steps if s["sustainable"]]
        clean = [s["target_rate"] for s in steps if s["sustainable"] and not s["client_limited"]]
        best = max(ok) if ok else 0
        return {
            "steps": steps,
            "generator": steps[0]["generator"] if steps else generator,
            "max_sustainable_rate": best,
            "best_step_client_limited": any(
                s["client_limited"] for s in steps if s["target_rate"] == best
            ),
            # the highest sustainable step whose load generator stayed under half a core
            "max_sustainable_rate_not_client_limited": max(clean) if clean else 0,
            "client_limited_rates": [s["target_rate"] for s in steps if s["client_limited"]],
            "client_limit_share": CLIENT_LIMIT_SHARE,
        }


# -- (1) catalogue reads -------------------------------------------------------------------------


def catalogue(b: Bench) -> dict[str, Any]:
    server = b.servers["get_event"]

    def by_id(path: Path, rate: float, duration: float) -> bool:
        ids = b.rng.sample(b.spread, min(500, len(b.spread)))
        write_targets(path, (Target("GET", f"{server.url}/events/{e}") for e in ids))
        return False  # a fixed list, cycled

    def listing(path: Path, rate: float, duration: float) -> bool:
        write_targets(path, [Target("GET", f"{server.url}/events?limit=20")])
        return False

    rates = b.profile.catalogue_rates
    return {
        "GET /events/{id}": b.sweep("catalogue-get-event", rates, server, by_id, generator="oha"),
        "GET /events": b.sweep("catalogue-list-events", rates, server, listing, generator="oha"),
    }


# -- (2) purchase path, spread out ---------------------------------------------------------------


def spread(b: Bench) -> dict[str, Any]:
    p = b.profile
    server = b.servers["create_booking"]

    def pick() -> uuid.UUID:
        if b.small and b.rng.random() < p.small_share:
            return b.rng.choice(b.small)
        return b.rng.choice(b.spread)

    def targets(path: Path, rate: float, duration: float) -> bool:
        n = math.ceil(rate * duration * 1.02) + 10
        b.booking_targets(path, n, pick, lambda: b.rng.choice((1, 1, 2)), duration + 120)
        return True

    result = b.sweep("booking-spread", p.booking_rates, server, targets, max_body=400)
    result["inventory"] = b.db.inventory_check(b.spread + b.small)
    return result


def profile_spread(b: Bench, rate: int, duration: float, py_spy: Path) -> dict[str, Any]:
    """py-spy record of the create_booking worker during a spread-out attack at `rate`/s."""
    server = b.servers["create_booking"]
    workers = server.workers()
    if not workers:
        return {"available": False, "reason": "no server worker process found"}
    work = b.out / "profile"
    work.mkdir(parents=True, exist_ok=True)
    path = work / "targets.jsonl"
    n = math.ceil(rate * duration * 1.02) + 10
    b.booking_targets(path, n, lambda: b.rng.choice(b.spread), lambda: 1, duration + 120)
    raw = work / "create_booking.collapsed.txt"
    svg = work / "create_booking.svg"
    spies = [
        subprocess.Popen(
            [
                str(py_spy),
                "record",
                "-p",
                str(workers[0]),
                "-d",
                f"{int(duration)}",
                "-r",
                "200",
                "--format",
                fmt,
                "-o",
                str(dest),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for fmt, dest in (("raw", raw), ("flamegraph", svg))
    ]
    a = attack(
        b.vegeta, path, rate, duration, work, "profiled-run", server, True, 400, database=b.db.name
    )
    errors = []
    for spy in spies:
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if spy.returncode != 0:
            errors.append(err.decode(errors="replace")[-300:])
    path.unlink()
    if not raw.exists():
        return {"available": False, "reason": "py-spy failed: " + " | ".join(errors)}
    return {
        "available": True,
        "rate": rate,
        "duration_s": duration,
        "attack": a.summary(),
        "collapsed": str(raw.relative_to(b.out)),
        "flamegraph": str(svg.relative_to(b.out)) if svg.exists() else None,
        "summary": summarise_profile(raw),
    }


PROFILE_BUCKETS = [  # (label, substring of a frame "function (file)") - first match wins, leaf-up
    ("PostgreSQL round trips (psycopg execute/commit, waiting on the server)", "psycopg"),
    ("JWT verification (PyJWT + cryptography RSA)", "jwt/"),
    ("JWT verification (PyJWT + cryptography RSA)", "cryptography"),
    ("Kafka publish (outbox relay thread)", "kafka"),
    ("request body validation (fastjsonschema/OpenAPI)", "validation.py"),
    ("JSON encode/decode", "json/"),
    ("Flask/werkzeug request handling", "werkzeug"),
    ("Flask/werkzeug request handling", "flask"),
    ("granian's WSGI glue (its Rust HTTP parsing and I/O are not sampled)", "granian"),
    ("the request queue (slots, deadline)", "queueing.py"),
    # Profiles of the server before granian (git da6c50f and older), for before/after readings.
    ("gunicorn (accept, parse HTTP, write)", "gunicorn"),
    ("prometheus metrics", "prometheus_client"),
]


POOL_WAIT = "waiting for a pooled PostgreSQL connection (psycopg_pool)"


def summarise_profile(collapsed: Path) -> dict[str, Any]:
    """Where the sampled time went: per category (a sample goes to the first category whose
    marker appears in its stack, looked at from the leaf up), top leaf functions, and the share
    of samples that were idle (threads waiting for work). Samples of threads with no Python
    frame (granian's Rust threads: its HTTP I/O, and pool threads waiting for work) are counted
    apart: py-spy sees them but not what they do."""
    total = 0
    idle = 0
    native = 0
    buckets: dict[str, int] = {}
    leaves: dict[str, int] = {}
    for line in collapsed.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        leaf = frames[-1]
        total += count
        if not any("(" in f for f in frames):  # a thread name only: no Python frame
            native += count
            continue
        waits = leaf.startswith(("Condition.wait", "Event.wait", "EpollSelector.select"))
        waits = waits or "select (selectors.py" in leaf
        if waits and "psycopg_pool" in stack:
            buckets[POOL_WAIT] = buckets.get(POOL_WAIT, 0) + count
            leaves[leaf] = leaves.get(leaf, 0) + count
            continue
        if waits:  # a thread with nothing to do (a server thread or the relay, waiting)
            idle += count
            continue
        leaves[leaf] = leaves.get(leaf, 0) + count
        label = "other application code"
        for frame in reversed(frames):
            hit = next((lbl for lbl, marker in PROFILE_BUCKETS if marker in frame), None)
            if hit:
                label = hit
                break
        if "relay" in stack and label != "Kafka publish (outbox relay thread)":
            label = "outbox relay thread (claim/mark rows, " + label.split(" (")[0] + ")"
        buckets[label] = buckets.get(label, 0) + count
    busy = max(1, total - idle - native)
    return {
        "samples": total,
        "idle_samples": idle,
        "no_python_frame_samples": native,
        "busy_share_by_category": {
            k: round(v / busy, 3) for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])
        },
        "top_leaf_functions": [
            (k, round(v / busy, 3)) for k, v in sorted(leaves.items(), key=lambda kv: -kv[1])[:15]
        ],
    }


def _same(event: uuid.UUID) -> uuid.UUID:
    return event


# -- (3) flash sale ------------------------------------------------------------------------------


def flash_sale(b: Bench) -> dict[str, Any]:
    p = b.profile
    server = b.servers["create_booking"]
    work = b.out / "raw" / "flash-sale"
    work.mkdir(parents=True, exist_ok=True)
    duration = math.ceil(p.hot_demand_factor * p.hot_capacity / (p.hot_rate * p.hot_ticket_count))
    runs: list[dict[str, Any]] = []
    plotted: list[Attack] = []
    for r in range(-1 if p.warmup_s > 0 else 0, p.runs):
        warm = r < 0
        capacity = max(p.hot_ticket_count, p.hot_capacity // 10) if warm else p.hot_capacity
        (event,) = b.db.make_events(1, capacity, p.hot_shards, tag="hot")
        run_s = p.warmup_s if warm else duration
        path = work / "targets.jsonl"
        n = math.ceil(p.hot_rate * run_s * 1.02) + 10
        b.booking_targets(
            path, n, functools.partial(_same, event), lambda: p.hot_ticket_count, duration + 120
        )
        name = "warmup" if warm else f"flash-sale-run{r + 1}"
        b.log(
            f"flash sale {name}: {capacity} seats / {p.hot_shards} shards, {p.hot_rate}/s x "
            f"{p.hot_ticket_count} tickets for {duration}s"
        )
        a = attack(
            b.vegeta, path, p.hot_rate, run_s, work, name, server, True, 400, database=b.db.name
        )
        path.unlink()
        if warm:
            continue
        check = b.db.inventory_check([event])
        ok = a.ok
        tickets_201 = int(ok.sum()) * p.hot_ticket_count
        # Sell-out time from the database (the last booking's commit-time clock), not from the
        # 201s: under overload a client may time out while the server still books for it.
        with b.db.connect() as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM max(created_at)) FROM booking WHERE event_id = %s",
                (event,),
            ).fetchone()
        last = float(row[0]) if row and row[0] is not None else float("nan")
        sold_out_at = last - a.t0_ns / 1e9
        s = a.summary()
        s.update(
            capacity=capacity,
            sold=check["sold"],
            tickets_in_201s=tickets_201,
            tickets_booked_after_client_timeout=check["sold"] - tickets_201,
            oversold=check["oversold"],
            sold_out=check["sold"] == capacity,
            # exactly the capacity, per shard within capacity, shards = bookings = allocations
            exactly_capacity_sold=check["sold"] == capacity
            and check["consistent"]
            and check["shards_within_capacity"],
            sell_out_s=sold_out_at,
            tickets_per_s=check["sold"] / sold_out_at if sold_out_at > 0 else 0.0,
            ok_p99_ms=float(1000 * sorted(a.latency[ok])[int(0.99 * (ok.sum() - 1))])
            if ok.any()
            else float("nan"),
        )
        b.log(
            f"flash sale run {r + 1}: sold {check['sold']}/{capacity} in {sold_out_at:.2f}s "
            f"({s['tickets_per_s']:.0f} tickets/s), oversold {check['oversold']}, p99 "
            f"{s['p99_ms']:.1f} ms"
        )
        runs.append(s)
        plotted.append(a)
    b.plots["flash-sale"] = plotted[:1]
    agg = aggregate(runs)
    agg["per_run"] = runs
    agg["all_runs_exact"] = all(r["exactly_capacity_sold"] for r in runs)
    agg["oversold_total"] = sum(r["oversold"] for r in runs)
    agg["shards"] = p.hot_shards
    agg["rate"] = p.hot_rate
    agg["ticket_count"] = p.hot_ticket_count
    return agg


# -- (4) booking -> confirmed --------------------------------------------------------------------


def confirm_unavailable(b: Bench) -> str | None:
    """Why the booking -> CONFIRMED scenario cannot run here, or None."""
    main = ROOT / "functions" / "consume_order" / "main.py"
    if not main.exists() or "def handler" not in main.read_text():
        return "functions/consume_order has no handler yet (order processing is not written)"
    if not DISPATCHER.exists():
        return f"no Kafka -> consume_order dispatcher ({DISPATCHER.relative_to(ROOT)})"
    if not b.env.get("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS"):
        return "Kafka is not running (BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS unset)"
    if not b.env.get("BOXOFFICE_TICKET_SIGNING_KEY"):
        return "BOXOFFICE_TICKET_SIGNING_KEY is not set (consume_order needs it; `make up`)"
    return None


@dataclass
class ConfirmPipeline:
    """create_booking (own topic) + consume_order + a dispatcher (own consumer group) against
    the benchmark database; started early (the consumer group takes seconds to be assigned)."""

    booker: FunctionProcess
    consumer: FunctionProcess
    dispatcher: subprocess.Popen[bytes]
    topic: str

    @classmethod
    def start(cls, b: Bench) -> ConfirmPipeline:
        topic = "bench-confirm"
        kafka = b.env["BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS"]
        subprocess.run(
            [
                str(VENV_BIN / "python"),
                str(ROOT / "stack" / "kafka" / "kafka_admin.py"),
                "ensure-topics",
                kafka,
                f"{topic}:3",
            ],
            check=True,
            capture_output=True,
        )
        env = dict(b.env, BOXOFFICE_BOOKING_TOPIC=topic)
        logs = b.out / "logs"
        booker = FunctionProcess("create_booking", env, logs / "confirm-create_booking.log")
        consumer = FunctionProcess("consume_order", env, logs / "confirm-consume_order.log")
        booker.start()
        consumer.start()
        with (logs / "confirm-dispatcher.log").open("ab") as log:
            dispatcher = subprocess.Popen(
                [
                    str(VENV_BIN / "python"),
                    str(DISPATCHER),
                    "--bootstrap",
                    kafka,
                    "--sink",
                    consumer.url + "/",
                    "--topic",
                    topic,
                    "--group",
                    f"bench-confirm-{uuid.uuid4().hex[:8]}",
                    "--initial-offset",
                    "latest",
                    "--dlq-topic",
                    "",
                    "--metrics-port",
                    str(free_port()),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(booker, consumer, dispatcher, topic)

    def stop(self) -> None:
        if self.dispatcher.poll() is None:
            os.killpg(self.dispatcher.pid, 15)
            try:
                self.dispatcher.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.dispatcher.pid, 9)
                self.dispatcher.wait(5)
        self.booker.stop()
        self.consumer.stop()


def _confirmations(b: Bench, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[float, float]]:
    """booking id -> (created_at, confirmed_at) as epoch seconds, for confirmed bookings."""
    with b.db.connect() as conn:
        rows = conn.execute(
            """SELECT b.id, extract(epoch FROM b.created_at), extract(epoch FROM o.confirmed_at)
                 FROM booking b JOIN orders o ON o.booking_id = b.id
                WHERE b.id = ANY(%s) AND b.status = 'CONFIRMED'""",
            (ids,),
        ).fetchall()
    return {r[0]: (float(r[1]), float(r[2])) for r in rows}


def booking_to_confirmed(b: Bench) -> dict[str, Any]:  # noqa: PLR0912, PLR0915 - one pipeline
    """Bookings at a fixed rate through the whole pipeline: create_booking (own process, own
    topic) -> outbox relay -> Kafka -> the KafkaSource-contract dispatcher (own consumer group)
    -> consume_order (own process) -> order CONFIRMED in the benchmark database. Latency: the
    client's receipt of the 201 -> orders.confirmed_at (same host clock)."""
    reason = confirm_unavailable(b)
    if reason:
        return {"available": False, "reason": reason}
    p = b.profile
    if b.confirm is None:
        b.confirm = ConfirmPipeline.start(b)
    pipe = b.confirm
    booker, topic = pipe.booker, pipe.topic
    try:
        for proc in (pipe.booker, pipe.consumer):
            proc.wait_until("/readyz")
        # The consumer group must own the partitions before the attack: a probe booking has to
        # come through (with "latest", records sent before the assignment would be skipped).
        tokens = b.tokens.ensure(p.confirm_duration_s + 300)
        deadline = time.monotonic() + 90
        probe_ok = False
        while time.monotonic() < deadline and not probe_ok:
            r = requests.post(
                booker.url + "/bookings",
                json={"eventId": str(b.spread[0]), "ticketCount": 1},
                headers={
                    "Authorization": f"Bearer {tokens[0][1]}",
                    "Idempotency-Key": str(uuid.uuid4()),
                },
                timeout=10,
            )
            r.raise_for_status()
            probe = uuid.UUID(r.json()["id"])
            until = time.monotonic() + 10
            while time.monotonic() < until:
                if _confirmations(b, [probe]):
                    probe_ok = True
                    break
                time.sleep(0.2)
        if not probe_ok:
            return {
                "available": False,
                "reason": "a probe booking was not confirmed within 90 s (see logs/confirm-*)",
            }
        b.log("booking -> confirmed: pipeline is live (probe booking confirmed)")
        work = b.out / "raw" / "confirm"
        work.mkdir(parents=True, exist_ok=True)
        runs: list[dict[str, Any]] = []
        plotted: list[Attack] = []
        for r_i in range(-1 if p.warmup_s > 0 else 0, p.runs):
            warm = r_i < 0
            duration = p.warmup_s if warm else p.confirm_duration_s
            path = work / "targets.jsonl"
            b.booking_targets(
                path,
                math.ceil(p.confirm_rate * duration * 1.02) + 10,
                lambda: b.rng.choice(b.spread),
                lambda: 1,
                duration + 120,
                booker,
            )
            name = "warmup" if warm else f"confirm-run{r_i + 1}"
            consumer_cpu0 = pipe.consumer.cpu()
            dispatcher_cpu0 = cpu_seconds(tree(pipe.dispatcher.pid))
            a = attack(
                b.vegeta,
                path,
                p.confirm_rate,
                duration,
                work,
                name,
                booker,
                True,
                600,
                database=b.db.name,
            )
            path.unlink()
            accepted: dict[uuid.UUID, float] = {}
            for i in range(a.requests):
                if a.ok[i]:
                    booking = uuid.UUID(json.loads(a.bodies[i])["id"])
                    accepted[booking] = (a.t0_ns / 1e9) + float(a.ts[i] + a.latency[i])
            wait_until = time.monotonic() + 60
            confirmed = _confirmations(b, list(accepted))
            while len(confirmed) < len(accepted) and time.monotonic() < wait_until:
                time.sleep(0.5)
                confirmed = _confirmations(b, list(accepted))
            consumer_cpu = pipe.consumer.cpu() - consumer_cpu0
            dispatcher_cpu = cpu_seconds(tree(pipe.dispatcher.pid)) - dispatcher_cpu0
            if warm:
                continue
            lat = np.array([confirmed[k][1] - accepted[k] for k in confirmed])
            db_side = np.array([c[1] - c[0] for c in confirmed.values()])
            s = a.summary()
            s.update(
                accepted=len(accepted),
                confirmed=len(confirmed),
                unconfirmed_after_60s=len(accepted) - len(confirmed),
                confirm_p50_ms=float(np.percentile(lat, 50) * 1000) if lat.size else float("nan"),
                confirm_p99_ms=float(np.percentile(lat, 99) * 1000) if lat.size else float("nan"),
                confirm_max_ms=float(lat.max() * 1000) if lat.size else float("nan"),
                created_to_confirmed_p99_ms=float(np.percentile(db_side, 99) * 1000)
                if db_side.size
                else float("nan"),
                # per confirmed booking (its `created` event), from the attack's start until
                # the last confirmation: consume_order's and the dispatcher's process trees
                consume_order_cpu_ms_per_event=1000 * consumer_cpu / max(1, len(confirmed)),
                dispatcher_cpu_ms_per_event=1000 * dispatcher_cpu / max(1, len(confirmed)),
            )
            b.log(
                f"booking -> confirmed run {r_i + 1}: {len(confirmed)}/{len(accepted)} "
                f"confirmed, p50 {s['confirm_p50_ms']:.0f} ms p99 {s['confirm_p99_ms']:.0f} ms"
            )
            runs.append(s)
            plotted.append(a)
        b.plots["booking-to-confirmed"] = plotted[:1]
        agg = aggregate(runs)
        agg["per_run"] = runs
        agg["available"] = True
        agg["rate"] = p.confirm_rate
        agg["topic"] = topic
        return agg
    finally:
        pipe.stop()
        b.confirm = None


# -- (5) cold start and memory -------------------------------------------------------------------


def cold_start(b: Bench) -> dict[str, Any]:
    p = b.profile
    tokens = b.tokens.ensure(300)
    auth = {"Authorization": f"Bearer {tokens[0][1]}"}
    routes: dict[str, tuple[str, dict[str, str] | None]] = {
        "get_event": (f"/events/{b.spread[0]}", None),
        "get_customer": ("/customers/me", auth),
        "create_booking": ("/bookings?limit=5", auth),
    }
    consume = ROOT / "functions" / "consume_order" / "main.py"
    if consume.exists() and "def handler" in consume.read_text():
        routes["consume_order"] = ("/readyz", None)
    routes = {fn: r for fn, r in routes.items() if fn in p.cold_functions}
    out: dict[str, Any] = {}
    for fn, (route, headers) in routes.items():
        samples = []
        for i in range(p.cold_repeats):
            proc = FunctionProcess(fn, b.env, b.out / "logs" / f"cold-{fn}.log")
            proc.start()
            try:
                healthz = proc.wait_until("/healthz")
                first = proc.wait_until(route, headers)
                session = requests.Session()
                for _ in range(50 if p.smoke else 500):
                    session.get(proc.url + route, headers=headers, timeout=10)
                mem = proc.memory()
            finally:
                proc.stop()
            b.log(
                f"cold start {fn} #{i + 1}: /healthz {healthz:.3f}s, {route} {first:.3f}s, "
                f"worker RSS {mem['worker_rss_mb']:.0f} MB"
            )
            samples.append({"healthz_s": healthz, "first_route_s": first, **mem})
        agg = aggregate([{**s, "errors": {}} for s in samples])
        agg.pop("errors")
        agg["route"] = route
        out[fn] = agg
    out["under_load"] = {name: s.memory() for name, s in b.servers.items()}
    return out


# -- (6) token verification ----------------------------------------------------------------------


def token(b: Bench) -> dict[str, Any]:
    import jwt  # noqa: PLC0415

    from boxoffice.adapters.keycloak import JwksCache, JwtVerifier  # noqa: PLC0415
    from boxoffice.config import Settings  # noqa: PLC0415

    p = b.profile
    settings = Settings.from_env(b.env)
    keys = JwksCache(settings.jwks_url)
    # The control: every call verifies (no remembered tokens), as on 24 November; and the same
    # token again through the verifier the functions use (remembered after its first use).
    verifier = JwtVerifier(
        keys, settings.oidc_issuer, settings.oidc_audience, settings.jwt_leeway, cache_size=0
    )
    remembering = JwtVerifier(
        keys, settings.oidc_issuer, settings.oidc_audience, settings.jwt_leeway
    )
    token = b.tokens.ensure(300)[0][1]
    verifier.verify(token)  # fetch the JWKS once

    def per_call_us(fn: Callable[[], object]) -> list[float]:
        batches = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(p.token_iterations // 5):
                fn()
            batches.append(1e6 * (time.perf_counter() - t0) / (p.token_iterations // 5))
        return batches

    full = per_call_us(lambda: verifier.verify(token))
    again = per_call_us(lambda: remembering.verify(token))
    unsigned = per_call_us(lambda: jwt.decode(token, options={"verify_signature": False}))
    micro = {
        "verify_us": {"median": statistics.median(full), "min": min(full), "max": max(full)},
        "verify_remembered_us": {
            "median": statistics.median(again),
            "min": min(again),
            "max": max(again),
        },
        "decode_without_signature_us": {
            "median": statistics.median(unsigned),
            "min": min(unsigned),
            "max": max(unsigned),
        },
        "iterations": p.token_iterations,
    }
    # HTTP: an anonymous one-row read vs an authenticated one-row read, same rate, same config.
    tokens = b.tokens.ensure(600)
    ge, gc = b.servers["get_event"], b.servers["get_customer"]

    def anonymous(path: Path, rate: float, duration: float) -> bool:
        write_targets(path, (Target("GET", f"{ge.url}/events/{e}") for e in b.spread[:200]))
        return False

    def authenticated(path: Path, rate: float, duration: float) -> bool:
        write_targets(
            path,
            (
                Target("GET", f"{gc.url}/customers/me", {"Authorization": f"Bearer {t}"})
                for _, t in tokens
            ),
        )
        return False

    rate = [p.token_http_rate]
    http = {
        "anonymous GET /events/{id}": b.sweep("token-anonymous", rate, ge, anonymous),
        "authenticated GET /customers/me": b.sweep("token-authenticated", rate, gc, authenticated),
    }
    return {"micro": micro, "http": http}
