"""The waiting room's pure parts (domain/waiting_room.py), its admission tokens
(adapters/admission_tokens.py, real Ed25519 keys) and what its use cases add around a fake store
(services/waiting_room.py). The line's rules run in PostgreSQL and are tested there:
tests/integration/test_waiting_room_rules.py."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import jwt
import pytest

from boxoffice import errors
from boxoffice.adapters.admission_tokens import (
    AdmissionSigner,
    AdmissionVerifier,
    generate_signing_key,
)
from boxoffice.domain.identity import Principal
from boxoffice.domain.waiting_room import (
    AdmissionClaims,
    Line,
    LineState,
    Place,
    PlaceState,
    QueueSettings,
    automatic_rate,
    retry_after,
    view_place,
)
from boxoffice.services import waiting_room
from boxoffice.services.ports import Tick

NOW = datetime(2030, 6, 1, 9, 0, tzinfo=UTC)
EVENT = uuid.UUID("e0000000-0000-4000-8000-0000000000aa")
ALICE = Principal("sub-alice", frozenset({"customer"}))
SETTINGS = QueueSettings(
    opens_at=NOW - timedelta(minutes=5),
    admission_rate=Decimal(10),
    admission_seconds=600,
    randomise_early=True,
    tickets_per_buyer=Decimal(2),
)


def a_line(**changes: object) -> Line:
    line = Line(
        event_id=EVENT,
        settings=SETTINGS,
        state=LineState.OPEN,
        drawn=True,
        served_up_to=100,
        joined=1000,
        admitted=100,
        expired_unused=0,
        current_rate=Decimal(10),
        sold_out_at=None,
        read_at=NOW,
    )
    return replace(line, **changes)  # type: ignore[arg-type]


def a_place(**changes: object) -> Place:
    place = Place(uuid.uuid4(), EVENT, arrival=400, position=401, joined_at=NOW)
    return replace(place, **changes)  # type: ignore[arg-type]


# -- the state of a place ----------------------------------------------------------------------


def test_a_waiting_buyer_sees_the_people_ahead_and_a_wait_at_the_current_rate() -> None:
    view = view_place(a_place(position=401), a_line(served_up_to=100), NOW)
    assert view.state is PlaceState.WAITING
    assert view.people_ahead == 300
    assert view.estimated_wait_seconds == 31  # 301 places at 10/s, rounded up
    assert view.retry_after == 7  # a fifth of the wait


def test_the_next_buyer_in_line_has_nobody_ahead() -> None:
    view = view_place(a_place(position=101), a_line(served_up_to=100), NOW)
    assert (view.people_ahead, view.estimated_wait_seconds, view.retry_after) == (0, 1, 2)


@pytest.mark.parametrize(
    ("wait", "retry"), [(0, 2), (5, 2), (10, 2), (11, 3), (50, 10), (150, 30), (10_000, 30)]
)
def test_retry_after_is_a_fifth_of_the_wait_between_2_and_30_seconds(wait: int, retry: int) -> None:
    assert retry_after(wait) == retry


def test_an_admitted_buyer_is_admitted_until_the_window_ends_then_expired() -> None:
    place = a_place(admitted_at=NOW - timedelta(minutes=1), expires_at=NOW + timedelta(seconds=3))
    view = view_place(place, a_line(), NOW)
    assert (view.state, view.people_ahead, view.retry_after) == (PlaceState.ADMITTED, 0, 3)
    later = view_place(place, a_line(), NOW + timedelta(seconds=3))
    assert later.state is PlaceState.EXPIRED
    assert later.estimated_wait_seconds is None


def test_an_admission_outlives_a_sell_out() -> None:
    place = a_place(admitted_at=NOW, expires_at=NOW + timedelta(minutes=10))
    line = a_line(state=LineState.SOLD_OUT, sold_out_at=NOW)
    assert view_place(place, line, NOW).state is PlaceState.ADMITTED


@pytest.mark.parametrize(
    ("line_state", "place_state"),
    [(LineState.SOLD_OUT, PlaceState.SOLD_OUT), (LineState.CLOSED, PlaceState.CLOSED)],
)
def test_waiting_buyers_see_the_lines_final_state_and_ask_again_rarely(
    line_state: LineState, place_state: PlaceState
) -> None:
    view = view_place(a_place(), a_line(state=line_state), NOW)
    assert view.state is place_state
    assert (view.people_ahead, view.estimated_wait_seconds, view.retry_after) == (None, None, 60)


def test_the_pre_queue_has_no_place_before_the_draw_and_asks_again_by_the_opening() -> None:
    line = a_line(
        state=LineState.SCHEDULED,
        drawn=False,
        settings=replace(SETTINGS, opens_at=NOW + timedelta(seconds=12)),
        served_up_to=0,
    )
    view = view_place(a_place(position=None), line, NOW)
    assert (view.state, view.people_ahead, view.estimated_wait_seconds) == (
        PlaceState.WAITING,
        None,
        None,
    )
    assert view.retry_after == 12
    far = replace(line, settings=replace(SETTINGS, opens_at=NOW + timedelta(hours=2)))
    assert view_place(a_place(position=None), far, NOW).retry_after == 30


def test_a_fifo_place_before_the_opening_waits_for_the_opening_plus_its_turn() -> None:
    line = a_line(
        state=LineState.SCHEDULED,
        settings=replace(SETTINGS, opens_at=NOW + timedelta(seconds=20), randomise_early=False),
        served_up_to=0,
    )
    view = view_place(a_place(position=50), line, NOW)
    assert view.estimated_wait_seconds == 25  # 20 s to the opening + 50 places at 10/s
    assert view.retry_after == 20


def test_an_automatic_line_without_a_rate_yet_gives_no_estimate() -> None:
    line = a_line(settings=replace(SETTINGS, admission_rate=None), current_rate=None)
    view = view_place(a_place(), line, NOW)
    assert view.estimated_wait_seconds is None
    assert view.retry_after == 2


def test_the_automatic_rate_is_the_measured_capacity_times_the_safety_factor() -> None:
    assert automatic_rate(Decimal(200), Decimal("0.5")) == Decimal("100.00")
    assert automatic_rate(Decimal(333), Decimal("0.25")) == Decimal("83.25")


# -- admission tokens ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return generate_signing_key()


def _claims(**changes: object) -> AdmissionClaims:
    c = AdmissionClaims(uuid.uuid4(), EVENT, "sub-alice", NOW + timedelta(minutes=10))
    return replace(c, **changes)  # type: ignore[arg-type]


def test_a_signed_admission_verifies_to_what_it_was_signed_with(keys: tuple[str, str]) -> None:
    signing, verify = keys
    claims = _claims()
    token = AdmissionSigner(signing).sign(claims, NOW)
    assert AdmissionVerifier(verify).verify(token) == claims


def test_an_expired_admission_still_verifies_the_database_judges_its_window(
    keys: tuple[str, str],
) -> None:
    signing, verify = keys
    claims = _claims(expires_at=datetime(2001, 1, 1, tzinfo=UTC))
    token = AdmissionSigner(signing).sign(claims, datetime(2000, 12, 31, tzinfo=UTC))
    assert AdmissionVerifier(verify).verify(token).expires_at == claims.expires_at


def test_verification_accepts_any_of_several_keys_during_a_rotation(keys: tuple[str, str]) -> None:
    old_signing, old_verify = keys
    new_signing, new_verify = generate_signing_key()
    verifier = AdmissionVerifier(f"{new_verify}, {old_verify}")
    for signing in (old_signing, new_signing):
        assert verifier.verify(AdmissionSigner(signing).sign(_claims(), NOW))


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "case", ["other-key", "tampered", "garbage", "hs256", "none-alg", "wrong-audience", "too-long"]
)
def test_tokens_not_signed_by_the_waiting_room_are_admission_required(
    keys: tuple[str, str], case: str
) -> None:
    signing, verify = keys
    token = AdmissionSigner(signing).sign(_claims(), NOW)
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    if case == "other-key":
        token = AdmissionSigner(generate_signing_key()[0]).sign(_claims(), NOW)
    elif case == "tampered":
        token = f"{head}.{_b64({**claims, 'sub': 'sub-mallory'})}.{sig}"
    elif case == "garbage":
        token = "not.a.token"
    elif case == "hs256":  # the public key used as an HMAC secret
        kid = json.loads(base64.urlsafe_b64decode(head + "=="))["kid"]
        token = jwt.encode(claims, verify.encode(), algorithm="HS256", headers={"kid": kid})
    elif case == "none-alg":
        kid = json.loads(base64.urlsafe_b64decode(head + "=="))["kid"]
        token = f"{_b64({'alg': 'none', 'kid': kid})}.{payload}."
    elif case == "wrong-audience":
        private = AdmissionSigner(signing)
        token = jwt.encode(
            {**claims, "aud": "someone-else"},
            private._key,
            algorithm="EdDSA",
            headers={"kid": private.kid},
        )
    else:
        token = token + "A" * 3000
    with pytest.raises(errors.AdmissionRequired):
        AdmissionVerifier(verify).verify(token)


@pytest.mark.parametrize("missing", ["sub", "evt", "jti", "exp"])
def test_a_token_without_a_claim_it_must_carry_is_refused(
    keys: tuple[str, str], missing: str
) -> None:
    signing, verify = keys
    private = AdmissionSigner(signing)
    claims = {
        "iss": "boxoffice-waiting-room",
        "aud": "boxoffice-bookings",
        "sub": "sub-alice",
        "evt": str(EVENT),
        "jti": str(uuid.uuid4()),
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 600,
    }
    del claims[missing]
    token = jwt.encode(claims, private._key, algorithm="EdDSA", headers={"kid": private.kid})
    with pytest.raises(errors.AdmissionRequired):
        AdmissionVerifier(verify).verify(token)


@pytest.mark.parametrize("key", ["", "short", "!!!not-base64!!!"])
def test_missing_or_malformed_keys_are_configuration_errors(key: str) -> None:
    with pytest.raises(errors.ConfigurationError):
        AdmissionSigner(key)
    if key:
        with pytest.raises(errors.ConfigurationError):
            AdmissionVerifier(key)
    else:
        with pytest.raises(errors.ConfigurationError):
            AdmissionVerifier("").verify("x.y.z")


# -- use cases around a fake store ---------------------------------------------------------------


@dataclass
class FakeRoom:
    line_: Line | None = None
    place_: Place | None = None
    reads: int = 0
    removed: bool = True
    ticks: list[Tick] = field(default_factory=list)

    def configure(self, event_id: uuid.UUID, settings: QueueSettings) -> tuple[Line, bool]:
        self.line_ = a_line(settings=settings)
        return self.line_, True

    def remove(self, event_id: uuid.UUID) -> bool:
        return self.removed

    def line(self, event_id: uuid.UUID) -> Line | None:
        self.reads += 1
        return self.line_

    def join(
        self, event_id: uuid.UUID, subject: str, place_id: uuid.UUID
    ) -> tuple[Place, Line, bool]:
        assert self.line_ is not None
        created = self.place_ is None
        if self.place_ is None:
            self.place_ = a_place(id=place_id)
        return self.place_, self.line_, created

    def place(self, event_id: uuid.UUID, subject: str) -> tuple[Place, Line] | None:
        if self.place_ is None or self.line_ is None:
            return None
        return self.place_, self.line_

    def advance(self, auto_capacity: Decimal, max_burst: float) -> list[Tick]:
        return self.ticks


class RecordingSigner:
    def __init__(self) -> None:
        self.signed: list[AdmissionClaims] = []

    def sign(self, claims: AdmissionClaims, issued_at: datetime) -> str:
        self.signed.append(claims)
        return "signed-token"


def test_only_an_admitted_place_gets_a_token_bound_to_the_caller_and_the_event() -> None:
    signer = RecordingSigner()
    room = FakeRoom(line_=a_line())
    waiting_room.join(room, ALICE, EVENT)
    waiting = waiting_room.my_place(room, lambda: signer, ALICE, EVENT)
    assert (waiting.view.state, waiting.token) == (PlaceState.WAITING, None)
    assert signer.signed == []

    assert room.place_ is not None
    room.place_ = replace(room.place_, admitted_at=NOW, expires_at=NOW + timedelta(minutes=10))
    admitted = waiting_room.my_place(room, lambda: signer, ALICE, EVENT)
    assert admitted.token == "signed-token"
    assert signer.signed == [
        AdmissionClaims(room.place_.id, EVENT, ALICE.subject, NOW + timedelta(minutes=10))
    ]


def test_admission_validity_is_shown_by_the_databases_clock_not_the_processs() -> None:
    # book_tickets checks `expires_at > now()` by the database's clock: the place shows the same.
    signer = RecordingSigner()
    this_process = datetime.now(UTC)
    ends = this_process + timedelta(hours=1)  # by this process's clock: 1 h of window left
    room = FakeRoom(line_=a_line(read_at=ends), place_=a_place(admitted_at=NOW, expires_at=ends))
    mine = waiting_room.my_place(room, lambda: signer, ALICE, EVENT)
    assert (mine.view.state, mine.token, signer.signed) == (PlaceState.EXPIRED, None, [])

    room.line_ = a_line(read_at=ends - timedelta(seconds=1))
    mine = waiting_room.my_place(room, lambda: signer, ALICE, EVENT)
    assert (mine.view.state, mine.token) == (PlaceState.ADMITTED, "signed-token")


def test_joining_again_returns_the_same_place_and_says_so() -> None:
    room = FakeRoom(line_=a_line())
    first, created = waiting_room.join(room, ALICE, EVENT)
    again, created_again = waiting_room.join(room, ALICE, EVENT)
    assert (created, created_again) == (True, False)
    assert again.place == first.place


def test_a_customer_who_never_joined_gets_404_and_so_does_a_line_that_does_not_exist() -> None:
    with pytest.raises(errors.NotFound):
        waiting_room.my_place(FakeRoom(line_=a_line()), RecordingSigner, ALICE, EVENT)
    with pytest.raises(errors.NotFound):
        waiting_room.line(FakeRoom(), EVENT)
    with pytest.raises(errors.NotFound):
        waiting_room.remove(FakeRoom(removed=False), EVENT)


def test_the_line_cache_reads_each_line_once_a_second() -> None:
    room = FakeRoom(line_=a_line())
    clock = [100.0]
    cache = waiting_room.LineCache(lambda: room, ttl=1.0, clock=lambda: clock[0])
    for _ in range(50):
        cache.get(EVENT)
    clock[0] += 0.99
    cache.get(EVENT)
    assert room.reads == 1
    clock[0] += 0.02
    cache.get(EVENT)
    assert room.reads == 2
    missing = waiting_room.LineCache(FakeRoom, clock=lambda: clock[0])
    with pytest.raises(errors.NotFound):
        missing.get(EVENT)
