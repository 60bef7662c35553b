"""Catalogue rules: inventory shards, availability, page cursors."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxoffice.domain.catalogue import (
    Availability,
    Event,
    Venue,
    decode_cursor,
    encode_cursor,
    resize_shards,
    shards_for,
    split_capacity,
)
from boxoffice.domain.money import Money

VENUE = Venue(uuid.uuid4(), "Hall", "1 Main Street", "Springfield", 1000)


def event(
    starts_at: datetime = datetime(2030, 1, 1, 20, tzinfo=UTC),
    remaining: int = 10,
    cancelled: bool = False,
    started: bool = False,
    event_id: uuid.UUID | None = None,
) -> Event:
    return Event(
        id=event_id or uuid.uuid4(),
        venue=VENUE,
        name="Concert",
        description="",
        starts_at=starts_at,
        price=Money(Decimal("25.00"), "EUR"),
        capacity=100,
        remaining=remaining,
        cancelled=cancelled,
        started=started,
    )


# --- split_capacity / shards_for ------------------------------------------------------------


@given(st.integers(0, 2_000_000), st.integers(1, 64))
def test_split_capacity_sums_to_capacity_and_differs_by_at_most_one(
    capacity: int, shards: int
) -> None:
    parts = split_capacity(capacity, shards)
    assert len(parts) == shards
    assert sum(parts) == capacity
    assert max(parts) - min(parts) <= 1


def test_split_capacity_puts_the_remainder_on_the_first_rows() -> None:
    assert split_capacity(10, 4) == [3, 3, 2, 2]


@pytest.mark.parametrize(("capacity", "shards"), [(-1, 1), (10, 0), (10, -2)])
def test_split_capacity_rejects_negative_capacity_and_fewer_than_one_shard(
    capacity: int, shards: int
) -> None:
    with pytest.raises(ValueError, match="capacity"):
        split_capacity(capacity, shards)


@pytest.mark.parametrize(
    ("capacity", "shards"),
    [(1, 1), (999, 1), (1_000, 4), (9_999, 4), (10_000, 16), (1_000_000, 16)],
)
def test_shards_for_grows_with_capacity_at_the_documented_thresholds(
    capacity: int, shards: int
) -> None:
    assert shards_for(capacity) == shards


# --- resize_shards ----------------------------------------------------------------------------

shard = st.integers(0, 300).flatmap(lambda cap: st.tuples(st.just(cap), st.integers(0, cap)))


@given(st.lists(shard, min_size=1, max_size=16), st.integers(0, 5_000))
def test_resize_shards_keeps_every_sold_seat_or_refuses(
    shards: list[tuple[int, int]], new_total: int
) -> None:
    sold = sum(s for _, s in shards)
    caps = resize_shards(shards, new_total)
    if new_total < sold:
        assert caps is None
        return
    assert caps is not None
    assert len(caps) == len(shards)
    assert sum(caps) == new_total
    assert all(cap >= s for cap, (_, s) in zip(caps, shards, strict=True))
    old = [c for c, _ in shards]
    if new_total >= sum(old):
        assert all(n >= o for n, o in zip(caps, old, strict=True))  # growing never takes seats
    else:
        assert all(n <= o for n, o in zip(caps, old, strict=True))  # shrinking never adds any


@given(st.integers(1, 3_000), st.integers(1, 16), st.integers(0, 3_000))
def test_resize_shards_keeps_unsold_shards_even(capacity: int, shards: int, extra: int) -> None:
    caps = resize_shards([(c, 0) for c in split_capacity(capacity, shards)], capacity + extra)
    assert caps is not None
    assert max(caps) - min(caps) <= 1


def test_resize_shards_grows_the_smallest_rows_first() -> None:
    assert resize_shards([(5, 0), (3, 0), (4, 0)], 15) == [5, 5, 5]


def test_resize_shards_shrinks_the_rows_with_most_free_seats_first() -> None:
    shards = [(10, 9), (10, 2), (10, 6)]  # free seats: 1, 8, 4
    caps = resize_shards(shards, 24)
    assert caps is not None
    assert [cap - sold for cap, (_, sold) in zip(caps, shards, strict=True)] == [1, 3, 3]


def test_resize_shards_can_shrink_to_exactly_the_seats_sold() -> None:
    assert resize_shards([(10, 7), (10, 3)], 10) == [7, 3]


def test_resize_shards_refuses_to_go_below_the_seats_sold() -> None:
    assert resize_shards([(10, 7), (10, 3)], 9) is None


def test_resize_shards_to_the_same_total_changes_nothing() -> None:
    assert resize_shards([(4, 1), (3, 3)], 7) == [4, 3]


# --- availability -----------------------------------------------------------------------------


def test_event_with_seats_left_is_on_sale() -> None:
    assert event(remaining=1).availability is Availability.ON_SALE


@pytest.mark.parametrize("remaining", [0, -1])
def test_event_without_seats_left_is_sold_out(remaining: int) -> None:
    assert event(remaining=remaining).availability is Availability.SOLD_OUT


@pytest.mark.parametrize("remaining", [0, 10])
def test_cancelled_event_is_cancelled_whatever_is_left(remaining: int) -> None:
    assert event(remaining=remaining, cancelled=True).availability is Availability.CANCELLED


@given(st.integers(min_value=-5, max_value=50))
def test_started_event_is_no_longer_on_sale_whatever_is_left(remaining: int) -> None:
    # book_tickets refuses a started event (event-not-on-sale): the catalogue must not offer it.
    assert event(remaining=remaining, started=True).availability is Availability.SALES_ENDED


def test_a_cancelled_event_that_started_is_shown_cancelled() -> None:
    assert event(started=True, cancelled=True).availability is Availability.CANCELLED


# --- cursors ----------------------------------------------------------------------------------

offsets = st.integers(-23 * 60 + 1, 23 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.datetimes(timezones=st.one_of(st.just(UTC), offsets)), st.uuids())
def test_cursor_round_trips_start_time_and_id(starts_at: datetime, event_id: uuid.UUID) -> None:
    when, ident = decode_cursor(encode_cursor(event(starts_at=starts_at, event_id=event_id)))
    assert (when, ident) == (starts_at, event_id)
    assert when.utcoffset() == starts_at.utcoffset()


def test_cursor_is_url_safe_without_padding() -> None:
    cursor = encode_cursor(event())
    assert cursor.isascii()
    assert not set(cursor) & set("+/=")


def _b64(text: bytes) -> str:
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not-a-cursor",
        "!!!!",
        "é",
        _b64(b"\xff\xfe\x00garbage"),
        _b64(b"2030-01-01T20:00:00+00:00|not-a-uuid"),
        _b64(b"2030-01-01T20:00:00|" + str(uuid.uuid4()).encode()),  # no zone
        _b64(b"yesterday|" + str(uuid.uuid4()).encode()),
        _b64(str(uuid.uuid4()).encode()),
    ],
)
def test_decode_cursor_rejects_garbage_with_value_error(cursor: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - ValueError is the documented contract
        decode_cursor(cursor)


@given(st.text(max_size=80))
def test_decode_cursor_raises_nothing_but_value_error(cursor: str) -> None:
    try:
        when, _ = decode_cursor(cursor)
    except ValueError:
        return
    assert when.tzinfo is not None
