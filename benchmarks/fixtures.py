"""Benchmark fixtures: a throw-away database, Keycloak benchmark users and their tokens.

Nothing here touches the dev database's data: the benchmark database is created next to it
(the `boxoffice` role has CREATEDB), migrated with the project's migrations, seeded, and dropped
at the end. Keycloak users `bench-0001`... are created once in realm `boxoffice` (idempotent)
and kept: they are only useful with the password below, which is a dev-realm password like the
demo users'.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import requests
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from benchmarks.env import ROOT, BenchError
from boxoffice.domain.catalogue import shards_for, split_capacity

BENCH_PASSWORD = "bench-dev-password"  # noqa: S105 - dev realm only, like the demo users'
VENUE = uuid.UUID("7e0e0000-0000-4000-8000-0000000000be")


# -- the database ------------------------------------------------------------------------------


def _migrations() -> list[Any]:
    def version(p: Any) -> tuple[int, ...]:
        found = re.match(r"V([\d_.]+)__", p.name)
        assert found, p
        return tuple(int(x) for x in re.split(r"[._]", found.group(1)) if x)

    # Flyway's order: versioned migrations by version, then the repeatable ones (R__) by name.
    folder = ROOT / "db" / "migrations"
    return sorted(folder.glob("V*__*.sql"), key=version) + sorted(folder.glob("R__*.sql"))


@dataclass
class BenchDatabase:
    shared_url: str
    name: str
    url: str = ""

    @classmethod
    def create(cls, shared_url: str, migrate: str) -> BenchDatabase:
        """A new database `bx_bench_<time>`, migrated with Flyway (`stack/boxo migrate`) or, for
        hand runs (`--migrate sql`), by executing the same migration files directly (no JVM)."""
        name = f"bx_bench_{time.strftime('%Y%m%d%H%M%S')}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(shared_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        params = conninfo_to_dict(shared_url)
        params["dbname"] = name
        db = cls(shared_url, name, make_conninfo("", **params))
        try:
            if migrate == "flyway":
                out = subprocess.run(
                    [str(ROOT / "stack" / "boxo"), "migrate", "--database", name],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if out.returncode != 0:
                    raise BenchError(f"flyway migration failed:\n{out.stdout}\n{out.stderr}")
            else:
                with psycopg.connect(db.url, autocommit=True) as conn:
                    for migration in _migrations():
                        conn.execute(migration.read_text(encoding="utf-8").encode())
        except BaseException:
            db.drop()
            raise
        return db

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)

    def drop(self) -> None:
        with psycopg.connect(self.shared_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )

    def server_version(self) -> str:
        with self.connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    # -- seeding -------------------------------------------------------------------------------

    def seed_venue(self) -> None:
        with self.connect() as conn:
            conn.execute(
                """INSERT INTO venue (id, name, address, city, capacity)
                   VALUES (%s, 'Benchmark Arena', '1 Load Road', 'Benchville', 1000000)""",
                (VENUE,),
            )

    def make_events(
        self, count: int, capacity: int, shards: int | None = None, tag: str = "event"
    ) -> list[uuid.UUID]:
        """`count` events of `capacity` seats over `shards` rows (default: shards_for)."""
        k = shards or shards_for(capacity)
        ids = [uuid.uuid4() for _ in range(count)]
        with self.connect() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency,
                                      capacity)
                   VALUES (%s, %s, %s, now() + %s * interval '1 hour', 30.00, 'GBP', %s)""",
                [(e, VENUE, f"bench {tag} {i}", 24 + i, capacity) for i, e in enumerate(ids)],
            )
            cur.executemany(
                "INSERT INTO event_inventory (event_id, shard, capacity) VALUES (%s, %s, %s)",
                [(e, s, c) for e in ids for s, c in enumerate(split_capacity(capacity, k))],
            )
        return ids

    def make_held_events(
        self, count: int, capacity: int, categories: int = 3, tag: str = "holds"
    ) -> dict[uuid.UUID, list[uuid.UUID]]:
        """`count` events paid online (every booking a seat hold, ADR 20), each with `categories`
        priced categories splitting `capacity`, each category over its own shards
        (shards_for its capacity); event id -> its category ids."""
        out: dict[uuid.UUID, list[uuid.UUID]] = {}
        events, cats, shards = [], [], []
        for i in range(count):
            event = uuid.uuid4()
            out[event] = []
            events.append((event, VENUE, f"bench {tag} {i}", 24 + i, capacity))
            shard = 0
            for k, cap in enumerate(split_capacity(capacity, categories)):
                category = uuid.uuid4()
                out[event].append(category)
                cats.append((category, event, f"Category {k}", 30 + 10 * k, cap, k))
                for c in split_capacity(cap, shards_for(cap)):
                    shards.append((event, shard, category, c))
                    shard += 1
        with self.connect() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO event (id, venue_id, name, starts_at, ticket_price, currency,
                                      capacity, online_payment)
                   VALUES (%s, %s, %s, now() + %s * interval '1 hour', 30.00, 'GBP', %s, true)""",
                events,
            )
            cur.executemany(
                """INSERT INTO ticket_category (id, event_id, name, price, capacity, position)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                cats,
            )
            cur.executemany(
                """INSERT INTO event_inventory (event_id, shard, category_id, capacity)
                   VALUES (%s, %s, %s, %s)""",
                shards,
            )
        return out

    def seed_customers(self, subjects: list[str]) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO customer (id, subject, name, email, address_line1, postal_code,
                                         city, country)
                   VALUES (%s, %s, %s, %s, '1 Load Road', 'B1 1BB', 'Benchville', 'GB')
                   ON CONFLICT (subject) DO NOTHING""",
                [
                    (uuid.uuid4(), s, f"Bench Buyer {i}", f"bench{i}@example.test")
                    for i, s in enumerate(subjects)
                ],
            )

    def held_bookings(self, event_ids: list[uuid.UUID]) -> dict[str, int]:
        """Bookings of the events by status (a hold scenario: all HELD)."""
        with self.connect() as conn:
            rows = conn.execute(
                """SELECT status, count(*) FROM booking WHERE event_id = ANY(%s)
                    GROUP BY status""",
                (event_ids,),
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def inventory_check(self, event_ids: list[uuid.UUID]) -> dict[str, Any]:
        """Sold vs capacity and vs live bookings, per event, straight from SQL."""
        with self.connect() as conn:
            rows = conn.execute(
                """SELECT i.event_id, SUM(i.capacity), SUM(i.sold),
                          bool_and(i.sold BETWEEN 0 AND i.capacity),
                          COALESCE((SELECT SUM(b.quantity) FROM booking b
                                     WHERE b.event_id = i.event_id
                                       AND b.status NOT IN ('CANCELLED', 'EXPIRED')), 0),
                          COALESCE((SELECT SUM(a.quantity) FROM booking_allocation a
                                     WHERE a.event_id = i.event_id), 0)
                     FROM event_inventory i WHERE i.event_id = ANY(%s)
                    GROUP BY i.event_id""",
                (event_ids,),
            ).fetchall()
        capacity = sum(int(r[1]) for r in rows)
        sold = sum(int(r[2]) for r in rows)
        booked = sum(int(r[4]) for r in rows)
        allocated = sum(int(r[5]) for r in rows)
        return {
            "events": len(rows),
            "capacity": capacity,
            "sold": sold,
            "booked": booked,
            "allocated": allocated,
            "oversold": sum(max(0, int(r[2]) - int(r[1])) for r in rows),
            "shards_within_capacity": all(bool(r[3]) for r in rows),
            "consistent": sold == booked == allocated,
        }


# -- Keycloak ----------------------------------------------------------------------------------


@dataclass
class Keycloak:
    base: str  # e.g. http://127.0.0.1:28080
    realm: str = "boxoffice"
    client_id: str = "boxoffice-web"
    _admin_token: str = ""

    def _admin(self) -> dict[str, str]:
        if not self._admin_token:
            r = requests.post(
                f"{self.base}/realms/master/protocol/openid-connect/token",
                data={
                    "grant_type": "password",
                    "client_id": "admin-cli",
                    "username": "admin",
                    "password": "admin",  # dev bootstrap admin (README)
                },
                timeout=30,
            )
            if r.status_code != 200:
                raise BenchError(f"Keycloak admin login failed: {r.status_code} {r.text[:200]}")
            self._admin_token = r.json()["access_token"]
        return {"Authorization": f"Bearer {self._admin_token}"}

    def ensure_users(self, count: int) -> dict[str, str]:
        """Users bench-0001..bench-NNNN with role `customer`; returns username -> user id."""
        api = f"{self.base}/admin/realms/{self.realm}"
        existing: dict[str, str] = {}
        first = 0
        while True:
            r = requests.get(
                f"{api}/users",
                params={
                    "search": "bench-",
                    "first": str(first),
                    "max": "500",
                    "briefRepresentation": "true",
                },
                headers=self._admin(),
                timeout=30,
            )
            r.raise_for_status()
            page = r.json()
            existing.update({u["username"]: u["id"] for u in page})
            if len(page) < 500:
                break
            first += 500
        wanted = [f"bench-{i:04d}" for i in range(1, count + 1)]
        missing = [u for u in wanted if u not in existing]
        if missing:
            role = requests.get(f"{api}/roles/customer", headers=self._admin(), timeout=30)
            role.raise_for_status()
            print(
                f"[bench] creating {len(missing)} Keycloak users in realm {self.realm}", flush=True
            )

            def create(username: str) -> tuple[str, str]:
                n = username.split("-")[1]
                r = requests.post(
                    f"{api}/users",
                    json={
                        "username": username,
                        "enabled": True,
                        "emailVerified": True,
                        "email": f"{username}@example.test",
                        "firstName": "Bench",
                        "lastName": f"Buyer {n}",
                        "requiredActions": [],
                        "credentials": [
                            {"type": "password", "value": BENCH_PASSWORD, "temporary": False}
                        ],
                    },
                    headers=self._admin(),
                    timeout=60,
                )
                if r.status_code not in (201, 409):
                    raise BenchError(f"creating {username}: {r.status_code} {r.text[:200]}")
                found = requests.get(
                    f"{api}/users",
                    params={"username": username, "exact": "true"},
                    headers=self._admin(),
                    timeout=30,
                )
                found.raise_for_status()
                user_id = found.json()[0]["id"]
                mapped = requests.post(
                    f"{api}/users/{user_id}/role-mappings/realm",
                    json=[role.json()],
                    headers=self._admin(),
                    timeout=30,
                )
                if mapped.status_code not in (204, 409):
                    raise BenchError(f"role for {username}: {mapped.status_code} {mapped.text}")
                return username, user_id

            with ThreadPoolExecutor(4) as pool:
                existing.update(dict(pool.map(create, missing)))
        return {u: existing[u] for u in wanted}

    def password_token(self, username: str, password: str) -> dict[str, Any]:
        r = requests.post(
            f"{self.base}/realms/{self.realm}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": self.client_id,
                "username": username,
                "password": password,
            },
            timeout=60,
        )
        if r.status_code != 200:
            raise BenchError(f"token for {username}: {r.status_code} {r.text[:200]}")
        data: dict[str, Any] = r.json()
        return data


@dataclass
class TokenPool:
    """Access tokens of the benchmark users, refreshed by password grant when they would expire
    within the next `min_valid` seconds."""

    keycloak: Keycloak
    users: dict[str, str]  # username -> subject
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # username -> (jwt, exp)

    def ensure(self, min_valid: float) -> list[tuple[str, str]]:
        """[(subject, access token)], each valid for at least `min_valid` more seconds."""
        now = time.time()
        stale = [u for u in self.users if self.tokens.get(u, ("", 0.0))[1] - now < min_valid]

        def fetch(user: str) -> tuple[str, tuple[str, float]]:
            data = self.keycloak.password_token(user, BENCH_PASSWORD)
            return user, (data["access_token"], time.time() + float(data["expires_in"]) - 5)

        if stale:
            with ThreadPoolExecutor(4) as pool:
                self.tokens.update(dict(pool.map(fetch, stale)))
        return [(self.users[u], self.tokens[u][0]) for u in self.users]


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))
