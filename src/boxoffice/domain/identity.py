"""Who is calling: the verified subject of an access token and its roles."""

from __future__ import annotations

from dataclasses import dataclass

CUSTOMER_ROLE = "customer"
ADMIN_ROLE = "admin"
SCANNER_ROLE = "scanner"  # door staff: check_in


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    roles: frozenset[str]
    username: str = ""

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles
