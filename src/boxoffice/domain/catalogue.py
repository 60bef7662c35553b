"""Venues and events, and the rules of what is on sale. Pure: no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from boxoffice.domain.cursor import decode_keyset, encode_keyset
from boxoffice.domain.money import Money
from boxoffice.domain.payments import CURRENCY_EXPONENTS
from boxoffice.errors import FieldError

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

# Ticket categories (issue 22): an event sells 1 to MAX_CATEGORIES of them, each with its own
# price and capacity. An event created without categories gets one, GENERAL_ADMISSION, at the
# event's price and capacity (as V12 did for every event that existed before).
MAX_CATEGORIES = 20
GENERAL_ADMISSION = "General admission"
# Decimal places of a price in a currency payments are not taken in (the API's MoneyInput).
DEFAULT_PRICE_DECIMALS = 2


class Availability(StrEnum):
    """Whether an event sells tickets (the Event schema's `status`). One rule, here and in
    `book_tickets` (db/migrations/R__booking.sql): an event is on sale while it is not cancelled,
    has not started and has seats left; sales end when the event starts."""

    ON_SALE = "ON_SALE"
    SOLD_OUT = "SOLD_OUT"
    SALES_ENDED = "SALES_ENDED"  # the event has started
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class Venue:
    id: uuid.UUID
    name: str
    address: str
    city: str
    capacity: int


@dataclass(frozen=True, slots=True)
class TicketCategory:
    """A category of an event's tickets: its own price and capacity; `remaining` is its capacity
    less what its inventory shards have sold (held seats included)."""

    id: uuid.UUID
    name: str
    price: Money
    capacity: int
    remaining: int
    position: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    id: uuid.UUID
    venue: Venue
    name: str
    description: str
    starts_at: datetime
    price: Money
    capacity: int
    remaining: int
    cancelled: bool
    # Whether it has started, by the database's clock when it was read (`starts_at <= now()`, the
    # comparison book_tickets makes), so that what is shown and what is sold agree.
    started: bool
    # In position order. `price` is the lowest of their prices ("from £25"), `capacity` and
    # `remaining` their sums.
    categories: tuple[TicketCategory, ...] = ()
    # Whether bookings of its priced categories are held until paid online (V12).
    online_payment: bool = False

    @property
    def availability(self) -> Availability:
        """In the order book_tickets refuses: cancelled, started, then seats."""
        if self.cancelled:
            return Availability.CANCELLED
        if self.started:
            return Availability.SALES_ENDED
        if self.remaining <= 0:
            return Availability.SOLD_OUT
        return Availability.ON_SALE

    def category_availability(self, category: TicketCategory) -> Availability:
        """A category is on sale while its event is and it has seats left of its own."""
        event = self.availability
        if event is not Availability.ON_SALE:
            return event
        return Availability.SOLD_OUT if category.remaining <= 0 else Availability.ON_SALE


@dataclass(frozen=True, slots=True)
class EventQuery:
    venue_id: uuid.UUID | None
    starts_from: datetime
    starts_to: datetime | None
    limit: int
    after: tuple[datetime, uuid.UUID] | None = None


def encode_cursor(event: Event) -> str:
    return encode_keyset(event.starts_at, event.id)


decode_cursor = decode_keyset  # raises ValueError for a cursor this service did not issue


def split_capacity(capacity: int, shards: int) -> list[int]:
    """Spread `capacity` seats over `shards` inventory rows as evenly as possible."""
    if capacity < 0 or shards < 1:
        raise ValueError("capacity must be >= 0 and shards >= 1")
    base, extra = divmod(capacity, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


def shards_for(capacity: int) -> int:
    """How many inventory rows an event gets (docs/adr/0002-hot-event-inventory.md)."""
    if capacity >= 10_000:
        return 16
    if capacity >= 1_000:
        return 4
    return 1


def resize_shards(shards: list[tuple[int, int]], new_total: int) -> list[int] | None:
    """New capacities for inventory rows given as (capacity, sold), adding up to `new_total`.

    Growth is spread over the rows with the least capacity; shrinking takes free seats from the
    rows with the most room. None when fewer than the seats already sold would remain.
    """
    caps = [cap for cap, _ in shards]
    delta = new_total - sum(caps)
    if new_total < sum(sold for _, sold in shards):
        return None
    while delta > 0:
        i = min(range(len(caps)), key=lambda k: caps[k])
        caps[i] += 1
        delta -= 1
    while delta < 0:
        i = max(range(len(caps)), key=lambda k: caps[k] - shards[k][1])
        caps[i] -= 1
        delta += 1
    return caps


# -- ticket categories of a new event -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CategorySpec:
    """A category as an organiser asks for it."""

    name: str
    price: Money
    capacity: int


@dataclass(frozen=True, slots=True)
class CategoryPlan:
    """A category as it is stored: its place in the list and its inventory shards
    (shard number, capacity), numbered on from the previous category's (shard numbers are unique
    per event)."""

    name: str
    price: Money
    capacity: int
    position: int
    shards: tuple[tuple[int, int], ...]


def price_decimals(currency: str) -> int:
    """Decimal places a price in `currency` may have: the currency's minor units when payments
    are taken in it (none for JPY), else two."""
    return CURRENCY_EXPONENTS.get(currency, DEFAULT_PRICE_DECIMALS)


def price_errors(price: Money, field: str, online_payment: bool) -> list[FieldError]:
    """A price is not negative, has no more decimal places than its currency, and is in a
    currency payments are taken in when the event is paid online."""
    found: list[FieldError] = []
    if price.amount < 0:
        found.append(FieldError(f"{field}.amount", "must not be negative"))
    places = price_decimals(price.currency)
    exponent = price.amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        found.append(
            FieldError(
                f"{field}.amount", f"{price.currency} amounts have at most {places} decimal places"
            )
        )
    if online_payment and price.currency not in CURRENCY_EXPONENTS:
        found.append(
            FieldError(
                f"{field}.currency",
                f"online payment is not available in {price.currency} "
                f"(only {', '.join(sorted(CURRENCY_EXPONENTS))})",
            )
        )
    return found


def category_errors(specs: Sequence[CategorySpec], online_payment: bool) -> list[FieldError]:
    """What is wrong with an event's categories: 1 to MAX_CATEGORIES of them, names unique
    (ignoring case and surrounding blanks), capacities above 0, prices valid (`price_errors`)
    and all in one currency."""
    if not 1 <= len(specs) <= MAX_CATEGORIES:
        return [FieldError("categories", f"must have 1 to {MAX_CATEGORIES} categories")]
    found: list[FieldError] = []
    seen: set[str] = set()
    currency = specs[0].price.currency
    for i, spec in enumerate(specs):
        field = f"categories.{i}"
        key = spec.name.strip().casefold()
        if not key:
            found.append(FieldError(f"{field}.name", "must not be blank"))
        elif key in seen:
            found.append(FieldError(f"{field}.name", f"another category is named {spec.name!r}"))
        seen.add(key)
        if spec.capacity <= 0:
            found.append(FieldError(f"{field}.capacity", "must be at least 1"))
        if spec.price.currency != currency:
            found.append(
                FieldError(
                    f"{field}.price.currency",
                    f"every category of an event is priced in one currency ({currency})",
                )
            )
        found.extend(price_errors(spec.price, f"{field}.price", online_payment))
    return found


def plan_categories(specs: Sequence[CategorySpec]) -> list[CategoryPlan]:
    """The categories' inventory: each one's capacity over `shards_for(its capacity)` shards
    (`split_capacity`), shard numbers contiguous across the event's categories, in their order."""
    plans: list[CategoryPlan] = []
    next_shard = 0
    for position, spec in enumerate(specs):
        caps = split_capacity(spec.capacity, shards_for(spec.capacity))
        shards = tuple((next_shard + i, cap) for i, cap in enumerate(caps))
        next_shard += len(caps)
        plans.append(CategoryPlan(spec.name, spec.price, spec.capacity, position, shards))
    return plans


def lowest_price(prices: Sequence[Money]) -> Money:
    """The event's price: the lowest of its categories' ("from £25")."""
    return min(prices, key=lambda m: m.amount)


def event_price_and_capacity(plans: Sequence[CategoryPlan]) -> tuple[Money, int]:
    return lowest_price([p.price for p in plans]), sum(p.capacity for p in plans)
