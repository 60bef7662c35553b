"""(2, profile) Where create_booking's time goes: a py-spy record of its worker during a
spread-out attack, summarised per category."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.bench import Bench
from benchmarks.load import attack


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
