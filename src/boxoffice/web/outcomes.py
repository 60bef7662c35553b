"""Each operation's outcome counted at the HTTP edge (metrics): what was refused with a 4xx (by
kind) and what succeeded. A 5xx is not a refusal: the server's own error metrics count it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from boxoffice import errors, metrics
from boxoffice.services.ports import Booked

BOOKING_REFUSALS: dict[type[errors.BoxofficeError], str] = {
    errors.SoldOut: "sold_out",
    errors.TicketLimitExceeded: "limit_exceeded",
    errors.AdmissionRequired: "admission_required",
    errors.AdmissionExpired: "admission_expired",
}


@contextmanager
def refusals(count: Callable[[errors.BoxofficeError], None]) -> Iterator[None]:
    """Count each 4xx problem raised in the block (`count(exc)`), then let it propagate."""
    try:
        yield
    except errors.BoxofficeError as exc:
        if exc.status < 500:
            count(exc)
        raise


def booking_refused(exc: errors.BoxofficeError) -> None:
    metrics.BOOKINGS.labels(BOOKING_REFUSALS.get(type(exc), "rejected")).inc()


def booked(result: Booked) -> None:
    if result.replayed:
        metrics.BOOKINGS.labels("replayed").inc()
        return
    assert result.booking is not None
    metrics.BOOKINGS.labels("created").inc()
    metrics.TICKETS_RESERVED.inc(result.booking.quantity)


def queue_join_refused(_exc: errors.BoxofficeError) -> None:
    metrics.WAITING_ROOM_JOINS.labels("refused").inc()
