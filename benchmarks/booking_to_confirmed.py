"""(4) Booking -> confirmed: bookings at a fixed rate through the whole pipeline (create_booking,
the outbox relay, Kafka, the dispatcher, consume_order), timed to the order's confirmation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests

from benchmarks.bench import Bench, aggregate
from benchmarks.env import ROOT, VENV_BIN, ensure_topic
from benchmarks.load import Attack, attack
from benchmarks.servers import FunctionProcess, cpu_seconds, free_port, tree

DISPATCHER = ROOT / "stack" / "kafkasource" / "dispatcher.py"


def confirm_unavailable(b: Bench) -> str | None:
    """Why the booking -> CONFIRMED scenario cannot run here (what the stack lacks), or None.
    The smoke test fails on any unavailable scenario (tests/benchmarks)."""
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
        ensure_topic(kafka, topic)
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


def booking_to_confirmed(b: Bench) -> dict[str, Any]:  # noqa: PLR0915 - one pipeline
    """Bookings at a fixed rate through the whole pipeline: create_booking (own process, own
    topic) -> outbox relay -> Kafka -> the KafkaSource-contract dispatcher (own consumer group)
    -> consume_order (own process) -> order CONFIRMED in the benchmark database. Latency: the
    client's receipt of the 201 -> orders.confirmed_at (same host clock)."""
    reason = confirm_unavailable(b)
    if reason:
        return {"available": False, "reason": reason}
    p = b.profile
    # started early by the harness (its consumer group is assigned meanwhile), or now
    pipe = b.confirm if isinstance(b.confirm, ConfirmPipeline) else ConfirmPipeline.start(b)
    b.confirm = pipe
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
