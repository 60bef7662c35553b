"""Scenario `waiting_room` (optional: `--scenarios waiting_room`): a hot on-sale through the
waiting room (docs/adr/0014-waiting-room.md), buyers behaving as browsers.

`wr_buyers` (20,000) buyers arrive over `wr_arrival_s` seconds for an event of `wr_seats` (5,000)
seats in queue mode (automatic rate unless `--wr-rate`; early arrivals drawn at random at
opening, `wr_open_after_s` into the arrivals). Each buyer, one coroutine of an asyncio client
with keep-alive connections through a real front door (nginx, the one template):

1. joins (`POST /events/{id}/queue`), asking again after `Retry-After` on 503;
2. polls as the README tells a browser to: the public line status `GET /events/{id}/queue`
   (cached by the front door) every `retry_after(estimated wait)` seconds, or with
   `--wr-poll me` its own `GET .../queue/me` every `Retry-After`; it reads `.../queue/me` once its
   place has come (`servedUpTo` >= position or, in the pre-queue, once drawn); a line that says
   `sold-out` or `closed` is final for a buyer whose place has not come, as in the storefront
   (storefront/public/assets/line.js): nobody reads `.../queue/me` to learn it;
3. once admitted, books 2 tickets with its admission token (its own Idempotency-Key, retried on
   503), else learns `sold-out`.

Its own processes, on the benchmark database: waiting_room, create_booking, the admission
controller and the front door; buyers' access tokens come from a benchmark issuer (an RSA key
and a JWKS endpoint of the harness: Keycloak would need 20,000 users), verified by the functions
exactly as Keycloak's. Reported: time to sell out, booking latency of admitted buyers, polls and
CPU per waiting buyer (front door, waiting_room, PostgreSQL), client timeouts, and the SQL
checks (exactly the capacity sold, every booking admitted, nobody admitted twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import shutil
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import numpy as np
from cryptography.hazmat.primitives.asymmetric import rsa

from benchmarks.env import ROOT, VENV_BIN, BenchError
from benchmarks.fixtures import VENUE
from benchmarks.load import CLIENT_LIMIT_SHARE
from benchmarks.servers import (
    FunctionProcess,
    cpu_seconds,
    free_port,
    frontdoor,
    postgres_backends,
    start_process,
    wait_http,
)
from boxoffice.adapters.admission_tokens import generate_signing_key
from boxoffice.domain.catalogue import split_capacity
from boxoffice.domain.waiting_room import retry_after

ISSUER = "http://bench-issuer/realms/boxoffice"
TIMEOUT_S = 10.0
BACKOFF_CAP_S = 30.0  # the storefront's (storefront/public/assets/line.js)
TICKETS = 2


# -- the benchmark issuer --------------------------------------------------------------------------


class Issuer:
    """An RS256 key and its JWKS on 127.0.0.1 (a thread): tokens for thousands of buyers."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(65537, 2048)
        self.kid = f"bench-{uuid.uuid4().hex[:8]}"
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        body = json.dumps({"keys": [jwk]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.jwks_url = f"http://127.0.0.1:{self._server.server_address[1]}/certs"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def token(self, subject: str, roles: list[str], lifetime: int = 3600) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": "boxoffice-api",
            "sub": subject,
            "typ": "Bearer",
            "iat": now,
            "exp": now + lifetime,
            "realm_access": {"roles": roles},
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- a minimal asyncio HTTP/1.1 client (keep-alive; every answer here has a Content-Length) ------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float = 0.0  # on the wire: from sending to the whole answer (no wait for a connection)

    def json(self) -> Any:
        return json.loads(self.body)


class Pool:
    """Keep-alive connections to one host:port, at most `size` at once."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> Answer:
        async with self._slots:
            while True:
                reused = bool(self._idle)
                conn = self._idle.pop() if reused else None
                if conn is None:
                    conn = await asyncio.open_connection(self.host, self.port)
                reader, writer = conn
                sent = time.monotonic()
                try:
                    answer, keep = await asyncio.wait_for(
                        self._exchange(reader, writer, method, path, headers, body), TIMEOUT_S
                    )
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    writer.close()
                    if reused and not getattr(exc, "partial", b""):
                        continue  # the server closed an idle keep-alive connection: a new one
                    raise
                except BaseException:
                    writer.close()
                    raise
                answer.seconds = time.monotonic() - sent
                if keep:
                    self._idle.append(conn)
                else:
                    writer.close()
                return answer

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[Answer, bool]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        got = {}
        for f in fields:
            if ":" in f:
                k, v = f.split(":", 1)
                got[k.strip().lower()] = v.strip()
        data = await reader.readexactly(int(got.get("content-length", "0")))
        keep = got.get("connection", "").lower() != "close"
        return Answer(int(status_line.split(" ", 2)[1]), got, data), keep


# -- the buyers ------------------------------------------------------------------------------------


@dataclass
class Stats:
    requests: dict[str, int] = field(default_factory=dict)  # by kind
    overloaded: dict[str, int] = field(default_factory=dict)  # 503 answers, by kind
    timeouts: int = 0  # no answer within TIMEOUT_S
    connection_errors: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # unexpected statuses
    booking_ms: list[float] = field(default_factory=list)  # the answering attempt, on the wire
    booking_total_ms: list[float] = field(default_factory=list)  # from the first try, with retries
    outcomes: dict[str, int] = field(default_factory=dict)
    waited_s: list[float] = field(default_factory=list)  # joined -> learned admitted / final
    join_s: list[float] = field(default_factory=list)  # arrival -> joined (503s retried)
    # When each buyer who never got a turn learned the final state, and when it joined (wall
    # clock): a buyer can only learn it once in the line, so its lag counts from the later one.
    sold_out_learned: list[float] = field(default_factory=list)
    joined_wall: list[float] = field(default_factory=list)
    last_retry_before_final: list[float] = field(default_factory=list)
    joined_by: float = 0.0
    joins_done: int = 0  # buyers whose join was answered (a place, or sold out)

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class Buyers:
    def __init__(self, pool: Pool, event: uuid.UUID, tokens: list[str], poll: str) -> None:
        self.pool = pool
        self.event = event
        self.tokens = tokens
        self.poll = poll
        self.stats = Stats()
        self.rng = random.Random(14)

    async def call(
        self,
        kind: str,
        method: str,
        path: str,
        i: int | None,
        body: Any = None,
        backoff: bool = False,
        **headers: str,
    ) -> Answer:
        """One request as a browser makes it: after 503, again after its Retry-After plus up to a
        second at random; with `backoff` (joining, as the storefront joins) plus a random share of
        a window that doubles with each refusal in a row up to BACKOFF_CAP_S ("full jitter"), so
        a crowd refused together does not come back together."""
        refused = 0
        h = dict(headers)
        if i is not None:
            h["Authorization"] = f"Bearer {self.tokens[i]}"
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        while True:
            self.stats.count(self.stats.requests, kind)
            try:
                answer = await self.pool.request(method, path, h, data)
            except TimeoutError:
                self.stats.timeouts += 1
                await asyncio.sleep(1.0)
                continue
            except (OSError, asyncio.IncompleteReadError):
                self.stats.connection_errors += 1
                await asyncio.sleep(1.0)
                continue
            if answer.status != 503:
                return answer
            self.stats.count(self.stats.overloaded, kind)
            spread = min(BACKOFF_CAP_S, 2.0**refused) if backoff else 1.0
            refused += 1
            wait = float(answer.headers.get("retry-after", "1"))
            await asyncio.sleep(wait + self.rng.uniform(0.0, spread))

    async def buyer(self, i: int, arrive_at: float) -> None:
        await asyncio.sleep(max(0.0, arrive_at - time.monotonic()))
        base = f"/events/{self.event}/queue"
        joined = await self.call("join", "POST", base, i, backoff=True)
        t_join = time.monotonic()
        joined_wall = time.time()
        self.stats.joins_done += 1
        self.stats.join_s.append(t_join - arrive_at)
        if joined.status == 409 and joined.json().get("type", "").endswith("/sold-out"):
            # The line had stopped before this buyer got a place: the join's answer said so.
            self.stats.count(self.stats.outcomes, "sold-out at joining")
            self.stats.sold_out_learned.append(joined_wall)
            self.stats.joined_wall.append(joined_wall)
            self.stats.last_retry_before_final.append(0.0)
            return
        if joined.status not in (200, 201):
            self.stats.count(self.stats.errors, f"join {joined.status}")
            return
        self.stats.joined_by = max(self.stats.joined_by, t_join)
        place = joined.json()
        state = place["state"]
        retry = float(joined.headers.get("retry-after", "2"))
        last = 0.0  # the interval before the last poll
        while True:
            if state == "waiting":
                state, place, retry = await self._poll(i, base, place, retry)
            if state == "admitted":
                self.stats.waited_s.append(time.monotonic() - t_join)
                await self._book(i, place)
                return
            if state in ("sold-out", "closed", "expired"):
                self.stats.waited_s.append(time.monotonic() - t_join)
                self.stats.count(self.stats.outcomes, state)
                self.stats.sold_out_learned.append(time.time())
                self.stats.joined_wall.append(joined_wall)
                self.stats.last_retry_before_final.append(last)
                return
            last = retry * self.rng.uniform(0.9, 1.1)
            await asyncio.sleep(last)
            state = "waiting"

    async def _poll(
        self, i: int, base: str, place: dict[str, Any], retry: float
    ) -> tuple[str, dict[str, Any], float]:
        """One poll; (state, place, seconds until the next)."""
        if self.poll == "line":
            line = (await self.call("line", "GET", base, None)).json()
            position = place.get("position")
            came = (position is None and line["drawn"]) or (
                position is not None and line["servedUpTo"] >= position
            )
            if line["state"] in ("sold-out", "closed") and not came:
                return line["state"], place, retry
            if not came:
                rate = line["currentRate"] or 1.0
                if position is None:  # the pre-queue, before the draw
                    return "waiting", place, 2.0
                return "waiting", place, float(retry_after((position - line["servedUpTo"]) / rate))
        me = await self.call("me", "GET", f"{base}/me", i)
        if me.status != 200:
            self.stats.count(self.stats.errors, f"me {me.status}")
            return "closed", place, retry
        place = me.json()
        return place["state"], place, float(me.headers.get("retry-after", "2"))

    async def _book(self, i: int, place: dict[str, Any]) -> None:
        key = str(uuid.uuid4())
        started = time.monotonic()
        while True:
            answer = await self.call(
                "book",
                "POST",
                "/bookings",
                i,
                {"eventId": str(self.event), "ticketCount": TICKETS},
                **{"Idempotency-Key": key, "Admission-Token": place["admission"]["token"]},
            )
            if answer.status != 503:
                break
        self.stats.booking_ms.append(1000 * answer.seconds)
        self.stats.booking_total_ms.append(1000 * (time.monotonic() - started))
        slug = "booked" if answer.status == 201 else answer.json().get("type", "").rsplit("/")[-1]
        self.stats.count(self.stats.outcomes, slug or str(answer.status))


# -- the scenario ----------------------------------------------------------------------------------


def _seed_buyers(b: Any, buyers: int) -> None:
    with (
        b.db.connect() as conn,
        conn.cursor().copy(
            "COPY customer (subject, name, email, address_line1, postal_code, city, country)"
            " FROM STDIN"
        ) as copy,
    ):
        for i in range(buyers):
            copy.write_row((_subject(i), f"Buyer {i}", f"w{i}@x.test", "1", "B", "C", "GB"))


def _subject(i: int) -> str:
    return f"wr-bench-{i:06d}"


def _seed_event(b: Any, seats: int) -> uuid.UUID:
    event = uuid.uuid4()
    with b.db.connect() as conn, conn.transaction():
        conn.execute(
            """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency,
                                      capacity)
                   VALUES (%s, %s, 'bench on-sale', now() + interval '30 days', 55, 'GBP', %s)""",
            (event, VENUE, seats),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, %s, %s)",
                [(event, s, c) for s, c in enumerate(split_capacity(seats, 16))],
            )
    return event


def waiting_room(b: Any) -> dict[str, Any]:
    p = b.profile
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        return {"available": False, "reason": "nginx is not installed (stack/boxo up installs it)"}
    out: dict[str, Any] = {"available": True, "runs": {}}
    issuer = Issuer()
    b.log(f"waiting room: seeding {p.wr_buyers} buyers, signing their tokens")
    _seed_buyers(b, p.wr_buyers)
    tokens = [issuer.token(_subject(i), ["customer"]) for i in range(p.wr_buyers)]
    admin = issuer.token("wr-bench-admin", ["admin", "customer"])
    signing, verify = generate_signing_key()
    env = dict(b.env)
    env.update(
        BOXOFFICE_OIDC_ISSUER=ISSUER,
        BOXOFFICE_JWKS_URL=issuer.jwks_url,
        BOXOFFICE_ADMISSION_SIGNING_KEY=signing,
        BOXOFFICE_ADMISSION_VERIFY_KEYS=verify,
        BOXOFFICE_BOOKING_CAPACITY_PER_SECOND=str(p.wr_capacity_per_s),
    )
    logs = b.out / "logs"
    procs: dict[str, Any] = {}
    stack = contextlib.ExitStack()
    try:
        for name in ("waiting_room", "create_booking"):
            procs[name] = FunctionProcess(name, env, logs / f"wr-{name}.log")
            procs[name].start()
        port = free_port()
        procs["admission"] = start_process(
            "admission",
            [str(VENV_BIN / "python"), "-m", "boxoffice.processes.admission", "--host", "127.0.0.1",
             "--port", str(port)],
            env, logs / "wr-admission.log", ROOT,
        )  # fmt: skip
        for name in ("waiting_room", "create_booking"):
            procs[name].wait_until("/readyz")
        wait_http(f"http://127.0.0.1:{port}/healthz", procs["admission"])
        upstreams = {
            "waiting_room": procs["waiting_room"].port,
            "create_booking": procs["create_booking"].port,
            "get_event": b.servers["get_event"].port,
            "get_customer": b.servers["get_customer"].port,
        }
        door = stack.enter_context(frontdoor(upstreams, logs / "wr-frontdoor.log"))
        procs["frontdoor"], base = door
        fd_port = int(base.rsplit(":", 1)[1])
        for mode in p.wr_poll_modes:
            event = _seed_event(b, p.wr_seats)
            out["runs"][mode] = _run(b, procs, fd_port, event, tokens, admin, mode)
    finally:
        for proc in procs.values():
            proc.stop()
        stack.close()
        issuer.stop()
    out.update(
        buyers=p.wr_buyers,
        seats=p.wr_seats,
        arrival_s=p.wr_arrival_s,
        rate="automatic" if p.wr_rate is None else p.wr_rate,
        capacity_per_s=p.wr_capacity_per_s,
    )
    return out


def _cpu(procs: dict[str, Any], database: str) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {name: proc.cpu() for name, proc in procs.items()}
    out["postgres"] = cpu_seconds(postgres_backends(database))
    out["client"] = usage.ru_utime + usage.ru_stime
    return out


def _delta(a: dict[str, float], z: dict[str, float]) -> dict[str, float]:
    return {k: z.get(k, 0.0) - a.get(k, 0.0) for k in {*a, *z}}


def _run(
    b: Any,
    procs: dict[str, Any],
    fd_port: int,
    event: uuid.UUID,
    tokens: list[str],
    admin: str,
    mode: str,
) -> dict[str, Any]:
    p = b.profile
    warm_event = _seed_event(b, 100)
    rng = random.Random(2026)
    now = time.monotonic()
    opens_in = p.wr_open_after_s
    arrivals = sorted(now + 1.0 + rng.uniform(0, p.wr_arrival_s) for _ in tokens)

    async def main() -> tuple[Buyers, dict[str, dict[str, float]], dict[str, float]]:
        pool = Pool("127.0.0.1", fd_port, p.wr_connections)
        buyers = Buyers(pool, event, tokens, mode)
        settings = {
            "opensAt": _iso(time.time() + 1.0 + opens_in),
            "admissionRate": "automatic" if p.wr_rate is None else p.wr_rate,
            "admissionSeconds": 120,
            "randomiseEarlyArrivals": True,
            "expectedTicketsPerBuyer": TICKETS,
        }
        put = await pool.request(
            "PUT",
            f"/events/{event}/queue",
            {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
            json.dumps(settings).encode(),
        )
        if put.status != 201:
            raise BenchError(f"PUT /events/{event}/queue: {put.status} {put.body[:200]!r}")
        # Warm both functions as a running system would be: signing keys fetched, pools open,
        # the outbox relay started (a booking of an event that is not in queue mode).
        auth = {"Authorization": f"Bearer {tokens[0]}"}
        for _ in range(3):
            for path in ("/bookings?limit=1", f"/events/{event}/queue/me"):
                await pool.request("GET", path, auth)
        warm = json.dumps({"eventId": str(warm_event), "ticketCount": 1}).encode()
        headers = {**auth, "Content-Type": "application/json"}
        for _ in range(5):
            headers["Idempotency-Key"] = str(uuid.uuid4())
            await pool.request("POST", "/bookings", headers, warm)
        await asyncio.sleep(2.0)
        marks: dict[str, dict[str, float]] = {}
        times: dict[str, float] = {}

        def mark(name: str) -> None:
            marks[name] = {
                **_cpu(procs, b.db.name),
                **{f"requests:{k}": float(v) for k, v in buyers.stats.requests.items()},
            }
            times[name] = time.time()

        mark("start")
        tasks = [asyncio.create_task(buyers.buyer(i, t)) for i, t in enumerate(arrivals)]
        await asyncio.wait_for(
            _until(lambda: buyers.stats.joins_done >= len(tokens)), p.wr_timeout_s
        )
        mark("joined")
        await asyncio.wait_for(_until(lambda: _sold_out(b, event)), p.wr_timeout_s)
        mark("sold_out")
        _, pending = await asyncio.wait(tasks, timeout=p.wr_timeout_s)
        for t in pending:
            t.cancel()
        mark("end")
        times["unfinished"] = len(pending)
        return buyers, marks, times

    b.log(f"waiting room ({mode} polling): {len(tokens)} buyers, {p.wr_seats} seats")
    buyers, marks, times = asyncio.run(main())
    result = _result(mode, buyers.stats, marks, times, _checks(b, event))
    b.log(
        f"waiting room ({mode}): sold {result['sold']}/{result['capacity']} in "
        f"{result['sell_out_s']:.1f} s after opening, booking p99 "
        f"{result['booking_p99_ms']:.0f} ms, {result['polls_per_waiting_buyer_per_s']:.3f} polls/s"
        f" per waiting buyer, timeouts {result['client_timeouts']}"
    )
    return result


def _result(
    mode: str,
    s: Stats,
    marks: dict[str, dict[str, float]],
    times: dict[str, float],
    checks: dict[str, Any],
) -> dict[str, Any]:
    """One run's figures, from the buyers' stats, the CPU marks and the SQL checks."""
    buyer_seconds = checks["waiting_buyer_seconds"]
    polls = s.requests.get("line", 0) + s.requests.get("me", 0)
    window, steady, steady_polls, steady_s = _cpu_window(marks, times)
    per_poll = {
        k: 1000 * steady[k] / steady_polls if steady_polls else float("nan")
        for k in ("frontdoor", "waiting_room", "postgres")
    }
    poll_rate = polls / buyer_seconds if buyer_seconds else float("nan")
    booking = np.array(s.booking_ms or [float("nan")])
    lags = [
        t - max(checks["sold_out_at"], j)
        for t, j in zip(s.sold_out_learned, s.joined_wall, strict=True)
    ]
    late = sum(j > checks["sold_out_at"] for j in s.joined_wall)
    join_s = np.array(s.join_s or [float("nan")])
    within = [lag <= r + 2.0 for lag, r in zip(lags, s.last_retry_before_final, strict=True)]
    joining_s = times["joined"] - times["start"]
    # The client is this process (asyncio, one coroutine per buyer): its CPU over the run.
    client_s = marks["end"]["client"] - marks["start"]["client"]
    run_s = times["end"] - times["start"]
    sent = sum(s.requests.values())
    return {
        "poll": mode,
        "sell_out_s": checks["sell_out_s"],
        "booking_p50_ms": float(np.percentile(booking, 50)),
        "booking_p99_ms": float(np.percentile(booking, 99)),
        "booking_with_retries_p99_ms": float(
            np.percentile(np.array(s.booking_total_ms or [float("nan")]), 99)
        ),
        "requests": s.requests,
        "overloaded_503": s.overloaded,
        "client_timeouts": s.timeouts,
        "connection_errors": s.connection_errors,
        "unexpected": s.errors,
        "outcomes": s.outcomes,
        "unfinished_buyers": int(times["unfinished"]),
        "join_p50_s": float(np.percentile(join_s, 50)),
        "join_p99_s": float(np.percentile(join_s, 99)),
        "join_max_s": float(np.max(join_s)),
        "joined_after_sold_out": int(late),
        "joins_answered": s.joins_done,
        "joins_per_s": s.joins_done / joining_s if joining_s > 0 else float("nan"),
        "generator": "harness (Python asyncio)",
        "generator_cpu_s": client_s,
        "generator_cpu_share": client_s / run_s if run_s > 0 else 0.0,
        "generator_cpu_ms_per_request": 1000 * client_s / sent if sent else float("nan"),
        "client_limited": run_s > 0 and client_s / run_s > CLIENT_LIMIT_SHARE,
        "wait_p50_s": statistics.median(s.waited_s) if s.waited_s else float("nan"),
        "wait_max_s": max(s.waited_s) if s.waited_s else float("nan"),
        "polls_per_waiting_buyer_per_s": poll_rate,
        "cpu_window": window,
        "steady_polls_per_s": steady_polls / max(1e-9, steady_s),
        "cpu_ms_per_poll": per_poll,
        "cpu_ms_per_waiting_buyer_per_s": {k: v * poll_rate for k, v in per_poll.items()},
        "cpu_s": {k: v for k, v in _delta(marks["start"], marks["end"]).items() if ":" not in k},
        "phases_s": {
            "joining": times["joined"] - times["start"],
            "selling": times["sold_out"] - times["joined"],
            "after": times["end"] - times["sold_out"],
        },
        "sold_out_learned_max_lag_s": max(lags) if lags else float("nan"),
        "sold_out_learned_within_one_poll": all(within),
        **checks,
    }


def _cpu_window(
    marks: dict[str, dict[str, float]], times: dict[str, float]
) -> tuple[str, dict[str, float], float, float]:
    """The steady part of the sale (everyone in line, seats left): its CPU deltas, polls and
    seconds. When the joins took longer than the sale (the last buyers joined after the sell-out)
    there is no such part: then the whole sale, start -> sold out, joins included (an upper
    bound)."""
    window, first = "steady", "joined"
    if times["sold_out"] - times["joined"] < 1.0:
        window, first = "whole sale", "start"
    delta = _delta(marks[first], marks["sold_out"])
    polls = delta.get("requests:line", 0.0) + delta.get("requests:me", 0.0)
    return window, delta, polls, times["sold_out"] - times[first]


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime  # noqa: PLC0415

    return datetime.fromtimestamp(epoch, UTC).isoformat()


async def _until(check: Any, every: float = 0.5) -> None:
    while not await asyncio.to_thread(check):
        await asyncio.sleep(every)


def _sold_out(b: Any, event: uuid.UUID) -> bool:
    with b.db.connect() as conn:
        row = conn.execute(
            "SELECT sold_out_at IS NOT NULL FROM event_queue WHERE event_id = %s", (event,)
        ).fetchone()
        return bool(row and row[0])


def _checks(b: Any, event: uuid.UUID) -> dict[str, Any]:
    """SQL: what was sold, by whom, when; admissions and the waiting they took."""
    with b.db.connect() as conn:
        inv = conn.execute(
            """SELECT sum(capacity), sum(sold), bool_and(sold <= capacity) FROM event_inventory
                WHERE event_id = %s""",
            (event,),
        ).fetchone()
        q = conn.execute(
            """SELECT extract(epoch FROM opens_at), extract(epoch FROM sold_out_at), admitted
                 FROM event_queue WHERE event_id = %s""",
            (event,),
        ).fetchone()
        row = conn.execute(
            """SELECT coalesce(sum(b.quantity), 0), count(*), extract(epoch FROM max(b.created_at)),
                      count(*) FILTER (WHERE NOT EXISTS (
                        SELECT 1 FROM queue_entry e WHERE e.event_id = b.event_id
                           AND e.customer_id = b.customer_id AND e.used_at <= b.created_at))
                 FROM booking b WHERE b.event_id = %s AND b.status <> 'CANCELLED'""",
            (event,),
        ).fetchone()
        admitted = conn.execute(
            """SELECT count(*), extract(epoch FROM min(e.admitted_at)),
                      extract(epoch FROM max(e.admitted_at)),
                      coalesce(sum(extract(epoch FROM coalesce(e.admitted_at, q.sold_out_at)
                                                      - e.joined_at)), 0)
                 FROM queue_entry e JOIN event_queue q USING (event_id)
                WHERE e.event_id = %s""",
            (event,),
        ).fetchone()
        counted = conn.execute(
            "SELECT count(*) FROM queue_entry WHERE event_id = %s AND admitted_at IS NOT NULL",
            (event,),
        ).fetchone()
    for found in (inv, q, row, admitted, counted):
        assert found is not None
    opens, sold_out_at = float(q[0]), float(q[1] or "nan")
    last_sale = float(row[2] or "nan")
    span = float(admitted[2] or 0) - float(admitted[1] or 0)
    return {
        "capacity": int(inv[0]),
        "sold": int(inv[1]),
        "shards_within_capacity": bool(inv[2]),
        "booked": int(row[0]),
        "bookings": int(row[1]),
        "bookings_without_admission": int(row[3]),
        "exactly_capacity_sold": int(inv[1]) == int(inv[0]) == int(row[0]),
        "admitted": int(q[2]),
        "admitted_rows": int(counted[0]),
        "nobody_admitted_twice": int(q[2]) == int(counted[0]),
        "admitted_rate_per_s": int(counted[0]) / span if span > 0 else float("nan"),
        "sell_out_s": last_sale - opens,
        "sold_out_at": sold_out_at,
        "waiting_buyer_seconds": max(0.0, float(admitted[3])),
    }


# -- the report's rows -----------------------------------------------------------------------------


def report_rows(w: dict[str, Any], smoke: bool) -> list[tuple[str, str, str, str, str, str]]:
    """Rows of the results table (scenario, figure, value, detail, target, verdict)."""
    name = "7 waiting room"
    if not w.get("available"):
        return [(name, "not available: " + w.get("reason", ""), "-", "", "", "not measured")]

    def verdict(ok: bool) -> str:
        return "n/a (smoke)" if smoke else ("met" if ok else "NOT met")

    out = []
    for mode, r in w["runs"].items():
        label = f"{w['buyers']:,} buyers, {w['seats']:,} seats, {mode} polling"
        out += [
            (name, f"{label}: time to sell out (from opening)", f"{r['sell_out_s']:,.1f} s",
             f"{r['sold']:,}/{r['capacity']:,} sold, admitted {r['admitted_rate_per_s']:.1f}/s",
             "", ""),
            (name, "booking p50 · p99 (admitted buyers, answering attempt on the wire)",
             f"{r['booking_p50_ms']:,.0f} · {r['booking_p99_ms']:,.0f} ms",
             f"with retries after 503: p99 {r['booking_with_retries_p99_ms']:,.0f} ms", "", ""),
            (name, "joining: arrival -> place p50 · p99 · max (503s retried after Retry-After)",
             f"{r['join_p50_s']:,.1f} · {r['join_p99_s']:,.1f} · {r['join_max_s']:,.1f} s",
             f"{r['joined_after_sold_out']:,} joined after the sell-out", "", ""),
            (name, "joins answered per second (all buyers / time until the last had an answer)",
             f"{r['joins_per_s']:,.1f}/s", f"{r['joins_answered']:,} joins in "
             f"{r['phases_s']['joining']:,.1f} s", "", ""),
            (name, "polls per waiting buyer per second",
             f"{r['polls_per_waiting_buyer_per_s']:.3f}/s",
             f"steady {r['steady_polls_per_s']:,.0f} polls/s in all", "", ""),
            (name, f"CPU per waiting buyer, {r.get('cpu_window', 'steady')} "
             "(front door · waiting_room · PostgreSQL)",
             " · ".join(f"{r['cpu_ms_per_waiting_buyer_per_s'][k]:.3f}"
                        for k in ("frontdoor", "waiting_room", "postgres")) + " ms/s",
             "per poll (upper bound: also admissions, bookings"
             + (", joins" if r.get("cpu_window") == "whole sale" else "") + "): "
             + " · ".join(f"{r['cpu_ms_per_poll'][k]:.3f}"
                          for k in ("frontdoor", "waiting_room", "postgres")) + " ms", "", ""),
            (name, "client timeouts · 503 answers (retried)",
             f"{r['client_timeouts']} · {sum(r['overloaded_503'].values()):,}",
             ", ".join(f"{k} {v}" for k, v in r["overloaded_503"].items()) or "none",
             "0 timeouts", verdict(r["client_timeouts"] == 0)),
            (name, "exactly capacity sold · every booking admitted · nobody admitted twice (SQL)",
             f"{r['exactly_capacity_sold']} · {r['bookings_without_admission'] == 0} · "
             f"{r['nobody_admitted_twice']}", f"{r['bookings']:,} bookings", "all True",
             "met" if r["exactly_capacity_sold"] and r["bookings_without_admission"] == 0
             and r["nobody_admitted_twice"] else "NOT met"),
            (name, "waiting buyers told sold-out within one poll interval",
             str(r["sold_out_learned_within_one_poll"]),
             f"slowest learned {r['sold_out_learned_max_lag_s']:.1f} s after the line stopped"
             " (or after joining, if later)",
             "all", verdict(bool(r["sold_out_learned_within_one_poll"]))),
        ]  # fmt: skip
    return out
