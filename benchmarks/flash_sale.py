"""(3) Flash sale: one hot event sold out by a constant-rate attack; exactly its capacity
sold, nothing oversold, the sell-out time from the database."""

from __future__ import annotations

import functools
import math
import uuid
from typing import Any

from benchmarks.bench import Bench, aggregate
from benchmarks.load import Attack, attack


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
