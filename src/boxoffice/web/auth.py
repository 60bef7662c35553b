"""Bearer-token extraction: the Authorization header is checked before any parsing."""

from __future__ import annotations

from typing import Protocol

from flask import Request

from boxoffice import errors
from boxoffice.domain.identity import Principal

__all__ = ["MAX_AUTHORIZATION_HEADER", "Principal", "TokenVerifier", "bearer_token"]

# A Keycloak access token with many roles is ~2 KiB; anything far larger is refused unparsed, as
# the HTTP server and the front door refuse any header field over 8 KiB
# (boxoffice.processes.server).
MAX_AUTHORIZATION_HEADER = 8192


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Principal: ...


def bearer_token(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    if not header:
        raise errors.Unauthorized("an access token is required (Authorization: Bearer <token>)")
    if len(header) > MAX_AUTHORIZATION_HEADER:
        raise errors.HeaderTooLarge("Authorization header is too large")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.InvalidToken("Authorization header must be 'Bearer <token>'")
    return token.strip()
