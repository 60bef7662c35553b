"""The harness's core: the sizes of a run (`Profile`), the fixtures and function processes the
scenarios run against (`Bench`, with its constant-rate `sweep`), and the figures every scenario
aggregates over runs. Each scenario is a module of its own (benchmarks/scenarios.py lists them);
each returns a JSON-able dict of results and registers the attacks it wants plotted."""

from __future__ import annotations

import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchmarks.fixtures import BenchDatabase, TokenPool, dumps
from benchmarks.load import CLIENT_LIMIT_SHARE, Attack, Target, attack, attack_oha, write_targets
from benchmarks.servers import FunctionProcess, Measured

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


class Pipeline(Protocol):
    """Processes a scenario started ahead of its turn (benchmarks/booking_to_confirmed.py)."""

    def stop(self) -> None: ...


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
    confirm: Pipeline | None = None  # the booking -> confirmed pipeline, once started
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
        categories: dict[uuid.UUID, list[uuid.UUID]] | None = None,
    ) -> None:
        """`categories`: each event's ticket categories, one picked at random per booking."""
        tokens = self.tokens.ensure(min_valid)
        url = (server or self.servers["create_booking"]).url + "/bookings"

        def make() -> Target:
            _, token = self.rng.choice(tokens)
            event = events()
            fields: dict[str, object] = {"eventId": str(event), "ticketCount": count()}
            if categories:
                fields["categoryId"] = str(self.rng.choice(categories[event]))
            body = dumps(fields).encode()
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
