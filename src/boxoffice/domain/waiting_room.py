"""The waiting room of a hot on-sale, as buyers and operators see it. Pure: no I/O.

An event in queue mode sells only to buyers the waiting room has admitted
(docs/adr/0014-waiting-room.md). The line's rules (places, the random draw of the pre-queue,
the serving counter, the capacity bound, the admission check of a booking) run in PostgreSQL:
db/migrations/R__waiting_room.sql. What is here: the shapes the API shows, the state of a
customer's place, the honest wait estimate, when to ask again (`Retry-After`), and the
"automatic" admission rate.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

# Retry-After bounds for a waiting buyer: near the front, ask again every 2 s; far back, at most
# every 30 s (a poll costs the server something: 100,000 buyers must not become the overload).
# A line's settings when PUT /events/{id}/queue leaves them out: their one home. The OpenAPI
# spec's `default`s (QueueInput) and the event_queue columns' DEFAULTs (V8) say the same, and
# tests/integration/test_sql_contract.py fails when they do not.
DEFAULT_ADMISSION_SECONDS = 600
DEFAULT_RANDOMISE_EARLY = True
DEFAULT_TICKETS_PER_BUYER = Decimal(2)

MIN_RETRY_SECONDS = 2
MAX_RETRY_SECONDS = 30
# A waiting buyer asks again after this share of the estimated wait (at least MIN, at most MAX):
# so the estimate is refreshed several times before the turn comes, and the buyer is at most
# ~one poll interval late for it.
RETRY_SHARE_OF_WAIT = 0.2
# An admitted buyer's client may re-read its admission (e.g. after a reload) this often.
ADMITTED_RETRY_SECONDS = 5
# A final answer (sold out, expired, closed) is final: ask again rarely.
FINAL_RETRY_SECONDS = 60


class LineState(StrEnum):
    """The line of an event: before the on-sale time, open, or stopped."""

    SCHEDULED = "scheduled"
    OPEN = "open"
    SOLD_OUT = "sold-out"
    CLOSED = "closed"  # the event was cancelled or has started


class PlaceState(StrEnum):
    """A customer's place, as GET /events/{id}/queue/me says."""

    WAITING = "waiting"
    ADMITTED = "admitted"
    EXPIRED = "expired"
    SOLD_OUT = "sold-out"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """What an operator sets on an event (PUT /events/{id}/queue)."""

    opens_at: datetime
    admission_rate: Decimal | None  # buyers per second; None: automatic
    admission_seconds: int
    randomise_early: bool
    tickets_per_buyer: Decimal


@dataclass(frozen=True, slots=True)
class Line:
    """An event's waiting room: its settings and its serving counter."""

    event_id: uuid.UUID
    settings: QueueSettings
    state: LineState
    drawn: bool  # the pre-queue has its random order (or needs none)
    served_up_to: int  # the serving counter: the highest place admitted so far
    joined: int  # places handed out
    admitted: int
    expired_unused: int
    current_rate: Decimal | None  # the rate the last tick applied (automatic: what it derived)
    sold_out_at: datetime | None
    # The database's clock when the line was read. Whether an admission is still valid is shown
    # by this clock, the one book_tickets enforces it by (check_admission: `expires_at > now()`),
    # never by the clock of the process that renders it.
    read_at: datetime

    @property
    def waiting(self) -> int:
        return max(0, self.joined - self.admitted)

    @property
    def effective_rate(self) -> Decimal | None:
        """Buyers per second as last applied (or as configured before the first tick)."""
        return self.current_rate or self.settings.admission_rate


@dataclass(frozen=True, slots=True)
class Place:
    """A customer's place in an event's line. Its id is the admission id."""

    id: uuid.UUID
    event_id: uuid.UUID
    arrival: int
    position: int | None  # None: in the pre-queue, before the draw at opening
    joined_at: datetime
    admitted_at: datetime | None = None
    expires_at: datetime | None = None
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlaceView:
    """Everything GET /events/{id}/queue/me shows (but the token, which the service signs)."""

    place: Place
    state: PlaceState
    people_ahead: int | None
    estimated_wait_seconds: int | None
    retry_after: int


@dataclass(frozen=True, slots=True)
class AdmissionClaims:
    """What a verified admission token proves: this customer may book this event until then."""

    admission_id: uuid.UUID
    event_id: uuid.UUID
    subject: str
    expires_at: datetime


def retry_after(wait_seconds: float) -> int:
    """When a waiting buyer should ask again: a fifth of the estimated wait, 2 to 30 s."""
    share = math.ceil(max(wait_seconds, 0.0) * RETRY_SHARE_OF_WAIT)
    return max(MIN_RETRY_SECONDS, min(MAX_RETRY_SECONDS, share))


def until_opening_retry(seconds_to_open: float) -> int:
    """Before the on-sale time: ask again no later than the opening (and at most every 30 s)."""
    return max(MIN_RETRY_SECONDS, min(MAX_RETRY_SECONDS, math.ceil(seconds_to_open)))


def view_place(place: Place, line: Line, now: datetime) -> PlaceView:
    """The state of `place` in `line` at `now`: admitted (until its window ends, then expired),
    waiting (with the people ahead and an estimate from the current admission rate), or the
    line's final state (sold out, closed) for those never admitted."""
    if place.admitted_at is not None:
        assert place.expires_at is not None
        if now < place.expires_at:
            left = (place.expires_at - now).total_seconds()
            retry = min(ADMITTED_RETRY_SECONDS, max(1, int(left)))
            return PlaceView(place, PlaceState.ADMITTED, 0, 0, retry)
        return PlaceView(place, PlaceState.EXPIRED, None, None, FINAL_RETRY_SECONDS)
    final = {LineState.SOLD_OUT: PlaceState.SOLD_OUT, LineState.CLOSED: PlaceState.CLOSED}
    if line.state in final:
        return PlaceView(place, final[line.state], None, None, FINAL_RETRY_SECONDS)
    return _waiting(place, line, now)


def _waiting(place: Place, line: Line, now: datetime) -> PlaceView:
    to_open = max(0.0, (line.settings.opens_at - now).total_seconds())
    if place.position is None:  # the pre-queue before the draw: no place yet, only the opening
        return PlaceView(place, PlaceState.WAITING, None, None, until_opening_retry(to_open))
    ahead = max(0, place.position - line.served_up_to - 1)
    rate = line.effective_rate
    wait = None if not rate or rate <= 0 else math.ceil((ahead + 1) / float(rate))
    if line.state is LineState.SCHEDULED:  # placed already (FIFO queue): the wait starts then
        wait = None if wait is None else wait + math.ceil(to_open)
        return PlaceView(place, PlaceState.WAITING, ahead, wait, until_opening_retry(to_open))
    return PlaceView(place, PlaceState.WAITING, ahead, wait, retry_after(float(wait or 0)))


def line_retry_after(line: Line) -> int:
    """How long a public status answer may be reused: the serving counter moves every second."""
    if line.state in (LineState.SOLD_OUT, LineState.CLOSED):
        return FINAL_RETRY_SECONDS
    return 1


def automatic_rate(capacity_per_second: Decimal, safety_factor: Decimal) -> Decimal:
    """Buyers admitted per second when an event's rate is "automatic": the purchase path's
    measured sustainable booking rate (bookings/s) times a safety factor, assuming an admitted
    buyer makes one booking. The controller shares it among the automatic queues open at once."""
    return (capacity_per_second * safety_factor).quantize(Decimal("0.01"))


def admission_window(admitted_at: datetime, seconds: int) -> datetime:
    return admitted_at + timedelta(seconds=seconds)
