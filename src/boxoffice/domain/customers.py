"""Customer profiles, linked to the identity provider's subject."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    line2: str
    postal_code: str
    city: str
    country: str


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    email: str
    address: Address


@dataclass(frozen=True, slots=True)
class Customer:
    id: uuid.UUID
    subject: str
    profile: Profile
