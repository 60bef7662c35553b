"""JSON renderings of domain objects, as the OpenAPI spec describes them (camelCase)."""

from __future__ import annotations

from typing import Any

from boxoffice.domain.bookings import Booking
from boxoffice.domain.catalogue import Event, Venue
from boxoffice.domain.customers import Customer


def venue_json(venue: Venue) -> dict[str, Any]:
    return {
        "id": str(venue.id),
        "name": venue.name,
        "address": venue.address,
        "city": venue.city,
        "capacity": venue.capacity,
    }


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "name": event.name,
        "description": event.description,
        "startsAt": event.starts_at.isoformat(),
        "venue": {"id": str(event.venue.id), "name": event.venue.name, "city": event.venue.city},
        "price": event.price.to_json(),
        "capacity": {"total": event.capacity, "remaining": event.remaining},
        "status": event.availability.value,
    }


def customer_json(customer: Customer) -> dict[str, Any]:
    p = customer.profile
    return {
        "id": str(customer.id),
        "name": p.name,
        "email": p.email,
        "address": {
            "line1": p.address.line1,
            "line2": p.address.line2,
            "postalCode": p.address.postal_code,
            "city": p.address.city,
            "country": p.address.country,
        },
    }


def booking_json(booking: Booking) -> dict[str, Any]:
    return {
        "id": str(booking.id),
        "eventId": str(booking.event_id),
        "status": booking.status.value,
        "quantity": booking.quantity,
        "unitPrice": booking.unit_price.to_json(),
        "total": booking.total.to_json(),
        "createdAt": booking.created_at.isoformat(),
        "cancelledAt": booking.cancelled_at.isoformat() if booking.cancelled_at else None,
    }
