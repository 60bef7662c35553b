"""The composition root turns configuration into the services' policies: the services never read
`Settings` themselves (the import contract in pyproject.toml keeps it so)."""

from __future__ import annotations

from decimal import Decimal

from boxoffice import bootstrap
from boxoffice.config import Settings
from boxoffice.services.bookings import BookingPolicy
from boxoffice.services.waiting_room import MAX_BURST_SECONDS, AdmissionPolicy

BASE = {"BOXOFFICE_DATABASE_URL": "postgresql://x", "BOXOFFICE_OIDC_ISSUER": "http://i"}


def container(**env: str) -> bootstrap.Container:
    return bootstrap.Container(Settings.from_env({**BASE, **env}))


def test_booking_policy_carries_each_configured_limit_topic_and_source() -> None:
    c = container(
        BOXOFFICE_MAX_TICKETS_PER_ORDER="7",
        BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT="9",
        BOXOFFICE_IDEMPOTENCY_TTL_HOURS="48",
        BOXOFFICE_BOOKING_TOPIC="bookings-test",
        BOXOFFICE_EVENT_SOURCE="/test/source",
    )
    assert c.booking_policy == BookingPolicy(
        max_tickets_per_order=7,
        max_tickets_per_customer_per_event=9,
        idempotency_ttl_hours=48,
        topic="bookings-test",
        source="/test/source",
    )


def test_admission_policy_admits_the_safe_share_of_the_configured_booking_capacity() -> None:
    c = container(
        BOXOFFICE_ADMISSION_TICK_SECONDS="0.25",
        BOXOFFICE_BOOKING_CAPACITY_PER_SECOND="120",
        BOXOFFICE_ADMISSION_SAFETY_FACTOR="0.4",
    )
    assert c.admission_policy == AdmissionPolicy(
        tick_seconds=0.25, auto_capacity=Decimal("48.00"), max_burst_seconds=MAX_BURST_SECONDS
    )
