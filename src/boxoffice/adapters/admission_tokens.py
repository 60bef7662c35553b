"""Admission tokens: short-lived Ed25519-signed JWTs (PyJWT + cryptography do the cryptography).

The waiting room signs one for an admitted buyer; create_booking verifies it in process (no
round trip) and passes what it proves to `book_tickets`, which decides (docs/adr/0014). Only
the waiting room holds the private key (`BOXOFFICE_ADMISSION_SIGNING_KEY`); create_booking holds
the public keys (`BOXOFFICE_ADMISSION_VERIFY_KEYS`, several during a key rotation), so a
compromised purchase path cannot mint admissions. Keys are 32 raw bytes, base64url-encoded.

Claims: `iss` = `boxoffice-waiting-room`, `aud` = `boxoffice-bookings`, `sub` = the customer
(the access token's subject), `evt` = the event id, `jti` = the admission id (the place),
`iat`, `exp` = end of the admission window. EdDSA only: the algorithm is ours, never the token's.
The window's end is checked by PostgreSQL's clock in `book_tickets` (one clock for all pods), so
an expired token is refused there as `admission-expired`; a token that is not ours (bad
signature, unknown key, wrong issuer/audience, malformed) is `admission-required` here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from boxoffice import errors
from boxoffice.domain.waiting_room import AdmissionClaims

ALGORITHM = "EdDSA"
ISSUER = "boxoffice-waiting-room"
AUDIENCE = "boxoffice-bookings"
MAX_TOKEN_BYTES = 2048
_REQUIRED = ("iss", "aud", "sub", "evt", "jti", "iat", "exp")


def _raw(text: str, name: str) -> bytes:
    value = text.strip()
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise errors.ConfigurationError(f"{name} is not base64url") from exc
    if len(raw) != 32:
        raise errors.ConfigurationError(f"{name} must be 32 bytes (base64url), got {len(raw)}")
    return raw


def encode_key(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable id of a public key (the token's `kid`): rotation needs no coordination."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return encode_key(hashlib.sha256(raw).digest()[:9])


def generate_signing_key() -> tuple[str, str]:
    """A new key pair: (signing key, verify key), both base64url (the local stack's setup)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return encode_key(seed), encode_key(public)


class AdmissionSigner:
    """Signs admission tokens (the waiting room)."""

    def __init__(self, signing_key: str) -> None:
        if not signing_key:
            raise errors.ConfigurationError(
                "BOXOFFICE_ADMISSION_SIGNING_KEY is not set: the waiting room cannot admit"
            )
        self._key = Ed25519PrivateKey.from_private_bytes(
            _raw(signing_key, "BOXOFFICE_ADMISSION_SIGNING_KEY")
        )
        self.kid = key_id(self._key.public_key())

    def sign(self, claims: AdmissionClaims, issued_at: datetime) -> str:
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": claims.subject,
            "evt": str(claims.event_id),
            "jti": str(claims.admission_id),
            "iat": int(issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})


class AdmissionVerifier:
    """Verifies admission tokens (create_booking): signature, issuer, audience, claims."""

    def __init__(self, verify_keys: str) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for text in filter(None, (k.strip() for k in verify_keys.split(","))):
            public = Ed25519PublicKey.from_public_bytes(
                _raw(text, "BOXOFFICE_ADMISSION_VERIFY_KEYS")
            )
            self._keys[key_id(public)] = public

    def verify(self, token: str) -> AdmissionClaims:
        if not self._keys:
            raise errors.ConfigurationError(
                "BOXOFFICE_ADMISSION_VERIFY_KEYS is not set: admission tokens cannot be checked"
            )
        if len(token) > MAX_TOKEN_BYTES:
            raise errors.AdmissionRequired("the admission token is not valid")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise errors.AdmissionRequired("the admission token is not valid (unknown key)")
            data: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                # The window's end is PostgreSQL's to judge (one clock: admission-expired), and
                # `iat` is informational (a pod's clock a second ahead must not refuse it).
                options={"require": list(_REQUIRED), "verify_exp": False, "verify_iat": False},
            )
            return AdmissionClaims(
                admission_id=uuid.UUID(str(data["jti"])),
                event_id=uuid.UUID(str(data["evt"])),
                subject=str(data["sub"]),
                expires_at=datetime.fromtimestamp(int(data["exp"]), UTC),
            )
        except jwt.PyJWTError as exc:
            raise errors.AdmissionRequired("the admission token is not valid") from exc
        except (ValueError, TypeError, OverflowError) as exc:  # claims of the wrong shape
            raise errors.AdmissionRequired("the admission token is not valid") from exc
