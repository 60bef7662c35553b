"""`python -m benchmarks [--smoke] [--scenarios ...] [knobs]`: see benchmarks/README.md."""

from __future__ import annotations

import argparse
import shlex
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import report, summary
from benchmarks.bench import Bench, Profile
from benchmarks.booking_to_confirmed import ConfirmPipeline, confirm_unavailable
from benchmarks.env import (
    ROOT,
    VENV_BIN,
    BenchError,
    ensure_oha,
    ensure_topic,
    ensure_vegeta,
    machine,
    stack_env,
)
from benchmarks.fixtures import BenchDatabase, Keycloak, TokenPool
from benchmarks.load import generator_runs
from benchmarks.profiling import profile_spread
from benchmarks.scenarios import ALL, OPTIONAL, SCENARIOS
from benchmarks.servers import FunctionProcess, free_port


def _rates(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="tiny, fast variant (harness check)")
    ap.add_argument(
        "--scenarios",
        help=f"comma list of {','.join(ALL + OPTIONAL)} (default: {','.join(ALL)}; "
        "the smoke run adds waiting_room, runtime and refusal)",
    )
    ap.add_argument("--out", type=Path, help="results directory (default benchmarks/results/<ts>)")
    ap.add_argument("--runs", type=int, help="runs per step (default 3; smoke 1)")
    ap.add_argument("--duration", type=float, help="seconds per run")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up (0: none)")
    ap.add_argument("--catalogue-rates", type=_rates, help="e.g. 250,500,1000,2000")
    ap.add_argument("--booking-rates", type=_rates, help="e.g. 50,100,200,400")
    ap.add_argument("--runtime-rates", type=_rates, help="runtime: 1000,2000,4000,8000")
    ap.add_argument("--customers", type=int, help="Keycloak benchmark users (default 50)")
    ap.add_argument("--hot-capacity", type=int, help="seats of the flash-sale event (20000)")
    ap.add_argument("--hot-shards", type=int, help="inventory shards of the hot event (16)")
    ap.add_argument("--hot-rate", type=int, help="flash-sale requests/s (1000)")
    ap.add_argument(
        "--overload-base-rate",
        type=int,
        help="the sustainable rate the overload scenario offers 5 x, when the run has no spread "
        "result (200)",
    )
    ap.add_argument("--confirm-rate", type=int, help="bookings/s of the confirm scenario (500)")
    ap.add_argument("--threads", type=int, help="THREADS per function worker (8)")
    ap.add_argument("--workers", type=int, help="WORKERS (server processes) per function")
    ap.add_argument("--pool-max", type=int, help="BOXOFFICE_DB_POOL_MAX (default = threads)")
    ap.add_argument("--migrate", choices=["flyway", "sql"], help="how to migrate the bench DB")
    ap.add_argument("--profile", action="store_true", help="py-spy profile even with --smoke")
    ap.add_argument("--keep-db", action="store_true", help="do not drop the benchmark database")
    ap.add_argument("--wr-buyers", type=int, help="waiting_room: buyers (20000)")
    ap.add_argument("--wr-seats", type=int, help="waiting_room: seats of the event (5000)")
    ap.add_argument("--wr-rate", type=float, help="waiting_room: buyers/s (default automatic)")
    ap.add_argument("--wr-poll", help="waiting_room: comma list of line,me (both)")
    return ap.parse_args(argv)


def profile_from(args: argparse.Namespace) -> Profile:
    p = Profile.tiny() if args.smoke else Profile()
    for arg, attr in [
        ("runs", "runs"),
        ("duration", "duration_s"),
        ("warmup", "warmup_s"),
        ("catalogue_rates", "catalogue_rates"),
        ("booking_rates", "booking_rates"),
        ("runtime_rates", "runtime_rates"),
        ("customers", "customers"),
        ("hot_capacity", "hot_capacity"),
        ("hot_shards", "hot_shards"),
        ("hot_rate", "hot_rate"),
        ("overload_base_rate", "overload_fallback_rate"),
        ("confirm_rate", "confirm_rate"),
        ("threads", "threads"),
        ("workers", "workers"),
        ("migrate", "migrate"),
        ("wr_buyers", "wr_buyers"),
        ("wr_seats", "wr_seats"),
        ("wr_rate", "wr_rate"),
    ]:
        value = getattr(args, arg)
        if value is not None:
            setattr(p, attr, value)
    if args.wr_poll:
        p.wr_poll_modes = [m for m in args.wr_poll.split(",") if m]
    p.pool_max = args.pool_max or p.threads
    p.profile = p.profile or args.profile
    return p


def main(argv: list[str]) -> int:  # noqa: PLR0912, PLR0915 - the run, start to end
    args = parse(argv)
    p = profile_from(args)
    default = ALL + (OPTIONAL if args.smoke else [])
    wanted = [s for s in (args.scenarios or ",".join(default)).split(",") if s]
    unknown = set(wanted) - set(ALL) - set(OPTIONAL)
    if unknown:
        print(f"unknown scenarios: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = (args.out or ROOT / "benchmarks" / "results" / started).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    env = stack_env()
    vegeta = ensure_vegeta()
    oha_missing = None
    try:
        oha = ensure_oha()
    except (BenchError, OSError, subprocess.CalledProcessError) as exc:
        oha, oha_missing = None, str(exc)
        print(f"[bench] oha unavailable, vegeta sends everything: {exc}", file=sys.stderr)
    print(f"[bench] results in {out}", flush=True)

    db = BenchDatabase.create(env["BOXOFFICE_DATABASE_URL"], p.migrate)
    servers: dict[str, FunctionProcess] = {}
    bench: Bench | None = None
    try:
        print(f"[bench] database {db.name} ({p.migrate} migrations); seeding", flush=True)
        db.seed_venue()
        spread = db.make_events(p.spread_events, p.spread_capacity, tag="spread")
        small = db.make_events(p.small_events, p.small_capacity, tag="small")
        kc = Keycloak(
            env["BOXOFFICE_KEYCLOAK_URL"],
            client_id=env.get("BOXOFFICE_OIDC_CLIENT_ID") or "boxoffice-web",
        )
        users = kc.ensure_users(p.customers)
        db.seed_customers(list(users.values()))
        tokens = TokenPool(kc, users)
        tokens.ensure(600)

        topic = "bench-booking"
        kafka = env.get("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS", "")
        if kafka:
            ensure_topic(kafka, topic, check=False)
        else:
            kafka = f"127.0.0.1:{free_port()}"
        knobs: dict[str, Any] = {
            "WORKERS": p.workers,
            "THREADS": p.threads,
            "BOXOFFICE_DB_POOL_MAX": p.pool_max,
            "BOXOFFICE_DB_POOL_MIN": min(p.pool_max, p.threads),
            "BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT": 1_000_000,
            "BOXOFFICE_MAX_TICKETS_PER_ORDER": 10,
            "BOXOFFICE_BOOKING_TOPIC": topic,
            "hot event shards": p.hot_shards,
            "hot event capacity": p.hot_capacity,
            "spread events x capacity": f"{p.spread_events} x {p.spread_capacity} "
            f"(+ {p.small_events} small x {p.small_capacity}, "
            f"{100 * p.small_share:g} % of bookings)",
            "benchmark customers (Keycloak users)": p.customers,
        }
        fn_env = dict(env)
        fn_env.update({k: str(v) for k, v in knobs.items() if k.isupper()})
        fn_env.update(
            BOXOFFICE_DATABASE_URL=db.url,
            BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS=kafka,
            BOXOFFICE_DEAD_LETTER_TOPIC=f"{topic}-dlq",
        )
        for name in ("get_event", "get_customer", "create_booking"):
            servers[name] = FunctionProcess(name, fn_env, out / "logs" / f"{name}.log")
            servers[name].start()
        for s in servers.values():
            s.wait_until("/readyz")
        bench = Bench(p, out, vegeta, db, tokens, fn_env, servers, spread, small, oha=oha)
        if oha_missing:
            bench.notes.append(
                f"oha unavailable ({oha_missing}): vegeta sent the high-rate reads too, so those "
                "steps are likely client-limited"
            )
        if "booking_to_confirmed" in wanted and confirm_unavailable(bench) is None:
            bench.confirm = ConfirmPipeline.start(bench)  # joins its group meanwhile

        results: dict[str, Any] = {
            "started_at": started,
            "command": "python -m benchmarks " + shlex.join(argv),
            "profile": vars(p),
            "knobs": knobs,
            "machine": machine(env, db.server_version()),
            "database": db.name,
            "scenarios": {},
            "notes": bench.notes,
        }
        if p.smoke:
            bench.notes.append("smoke run: tiny sizes, one run; the figures are not a measurement")
        failed: dict[str, str] = {}
        results["failed"] = failed
        for name in ALL + OPTIONAL:
            if name not in wanted:
                continue
            if name == "profile" and not p.profile:
                continue
            bench.log(f"scenario {name}")
            try:
                results["scenarios"][name] = bench.found[name] = _scenario(name, bench, results)
            except Exception as exc:  # noqa: BLE001 - one failed scenario must not lose the rest
                traceback.print_exc()
                failed[name] = f"{type(exc).__name__}: {exc}"
                bench.log(f"scenario {name} FAILED: {failed[name]}")
                bench.notes.append(f"scenario {name} FAILED ({failed[name]}): no figures")
        shares = [
            a.generator_cpu_s / a.wall_s
            for attacks in bench.plots.values()
            for a in attacks
            if a.wall_s
        ]
        per_request = [
            float(r["generator_cpu_ms_per_request"])
            for result in results["scenarios"].values()
            for r in generator_runs(result)
            if r.get("requests")
        ]
        if shares:
            results["generator_cpu_share"] = {
                "median": statistics.median(shares),
                "max": max(shares),
                "max_ms_per_request": max(per_request, default=None),
            }
        results["elapsed_s"] = time.monotonic() - t0
        print(report.write(results, bench.plots, out), flush=True)
        print(f"[bench] report: {out / 'report.md'}", flush=True)
        full = not p.smoke and set(ALL) <= set(wanted) and not failed
        written = summary.write(results, out, full=full)
        print(f"[bench] summary: {', '.join(str(w) for w in written)}", flush=True)
        if failed:
            print(f"[bench] FAILED scenarios: {', '.join(failed)}", file=sys.stderr, flush=True)
            return 1
    finally:
        if bench is not None and bench.confirm is not None:
            bench.confirm.stop()
        for s in servers.values():
            s.stop()
        if args.keep_db:
            print(f"[bench] kept database {db.name}", flush=True)
        else:
            db.drop()
    return 0


def _scenario(name: str, bench: Bench, results: dict[str, Any]) -> Any:
    p = bench.profile
    if name == "profile":
        rate = _profile_rate(results)
        duration = min(20.0, max(5.0, p.duration_s))
        return profile_spread(bench, rate, duration, VENV_BIN / "py-spy")
    return SCENARIOS[name](bench)


def _profile_rate(results: dict[str, Any]) -> int:
    """Profile at the highest sustainable spread-out rate (or a modest default)."""
    spread = results["scenarios"].get("spread")
    if spread and spread["max_sustainable_rate"]:
        return int(spread["max_sustainable_rate"])
    return 100


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: processes stopped, database dropped


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)  # also when started in the background (SIG_IGN)
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as exc:
        print(f"[bench] error: {exc}", file=sys.stderr)
        sys.exit(2)
