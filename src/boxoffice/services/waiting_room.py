"""Waiting-room use cases: queue mode (operators), joining and waiting (buyers), the tick.

Each is one statement of the waiting-room store (db/migrations/R__waiting_room.sql). A waiting
buyer's poll is one indexed read (`my_place`); the public status of a line (`line_status`) is
served from a per-process cache for a second, and the front door caches it too, so thousands of
buyers polling cost about one read per second per line (docs/adr/0014-waiting-room.md).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from boxoffice import errors
from boxoffice.domain.identity import Principal
from boxoffice.domain.waiting_room import (
    AdmissionClaims,
    Line,
    PlaceState,
    PlaceView,
    QueueSettings,
    view_place,
)
from boxoffice.services.ports import Tick, WaitingRoomStore

# A tick admits at most this many seconds' worth of buyers at once (after a pause of the
# controller, the purchase path is not flooded).
MAX_BURST_SECONDS = 2.0
# How long a process reuses a line's public status.
LINE_CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """How the admission controller ticks, and what "automatic" means: built from configuration
    by the composition root (`boxoffice.bootstrap.Container.admission_policy`)."""

    tick_seconds: float
    auto_capacity: Decimal  # buyers/s shared by the automatic queues open at once
    max_burst_seconds: float = MAX_BURST_SECONDS


class Signer(Protocol):
    """Signs admission tokens (`boxoffice.adapters.admission_tokens.AdmissionSigner`)."""

    def sign(self, claims: AdmissionClaims, issued_at: datetime) -> str: ...


@dataclass(frozen=True, slots=True)
class MyPlace:
    view: PlaceView
    token: str | None  # the admission token, while admitted


def configure(
    store: WaitingRoomStore, event_id: uuid.UUID, settings: QueueSettings
) -> tuple[Line, bool]:
    """Put the event in queue mode, or change its settings (True when it is new)."""
    return store.configure(event_id, settings)


def remove(store: WaitingRoomStore, event_id: uuid.UUID) -> None:
    """End the event's queue mode: bookings no longer need an admission."""
    if not store.remove(event_id):
        raise errors.NotFound(f"event {event_id} has no waiting room")


def line(store: WaitingRoomStore, event_id: uuid.UUID) -> Line:
    found = store.line(event_id)
    if found is None:
        raise errors.NotFound(f"event {event_id} has no waiting room")
    return found


def join(
    store: WaitingRoomStore,
    principal: Principal,
    event_id: uuid.UUID,
) -> tuple[PlaceView, bool]:
    """The caller's place in the line (the same one when joining again), as of the database's
    clock (`Line.read_at`)."""
    place, current, created = store.join(event_id, principal.subject, uuid.uuid4())
    return view_place(place, current, current.read_at), created


def my_place(
    store: WaitingRoomStore,
    signer: Callable[[], Signer],
    principal: Principal,
    event_id: uuid.UUID,
) -> MyPlace:
    """Where the caller is: waiting (place, people ahead, estimate), admitted (with a token for
    the rest of the window), expired, sold out or closed, as of the database's clock (the one
    book_tickets checks the admission by). 404 when they never joined."""
    found = store.place(event_id, principal.subject)
    if found is None:
        raise errors.NotFound(f"you have no place in the line of event {event_id}")
    place, current = found
    at = current.read_at
    view = view_place(place, current, at)
    token = None
    if view.state is PlaceState.ADMITTED:
        assert place.expires_at is not None
        claims = AdmissionClaims(place.id, event_id, principal.subject, place.expires_at)
        token = signer().sign(claims, at)
    return MyPlace(view, token)


class LineCache:
    """Public line status per event, reused for `ttl` seconds in this process (a miss for one
    event makes one read however many threads ask at once)."""

    def __init__(
        self,
        store: Callable[[], WaitingRoomStore],
        ttl: float = LINE_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._lines: dict[uuid.UUID, tuple[float, Line | None]] = {}
        self._locks: dict[uuid.UUID, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, event_id: uuid.UUID) -> Line:
        cached = self._lines.get(event_id)
        if cached is None or self._clock() - cached[0] >= self._ttl:
            with self._guard:
                lock = self._locks.setdefault(event_id, threading.Lock())
            with lock:
                cached = self._lines.get(event_id)
                if cached is None or self._clock() - cached[0] >= self._ttl:
                    cached = (self._clock(), self._store().line(event_id))
                    if len(self._lines) > 10_000:  # events in queue mode are few
                        self._lines.clear()
                    self._lines[event_id] = cached
        if cached[1] is None:
            raise errors.NotFound(f"event {event_id} has no waiting room")
        return cached[1]


def tick(store: WaitingRoomStore, policy: AdmissionPolicy) -> list[Tick]:
    """Advance every open line's serving counter (the admission controller, every second)."""
    return store.advance(policy.auto_capacity, policy.max_burst_seconds)
