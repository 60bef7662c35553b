"""Ticket codes that a gate can verify offline (docs/adr/0015-tickets-and-check-in.md).

A code is `BX1.<KID>.<BASE32(ticket id ‖ event id ‖ signature)>`, 167 characters of the QR
alphanumeric alphabet (upper case, digits, `.`), so it fits a version 7 QR code (45x45 modules)
at error correction level M:

- `BX1` is the format version;
- `KID` names the signing key: the first 8 base32 characters of SHA-256 of its raw Ed25519 public
  key (derived, so a key and its id can never disagree);
- the payload is the ticket's UUID (16 bytes), its event's UUID (16 bytes) and the Ed25519
  signature (64 bytes) over `ASCII("BX1.<KID>.") ‖ ticket id ‖ event id`, base32 (RFC 4648)
  without padding.

A scanner that holds the published public keys (`/.well-known/ticket-keys`, JWKS) checks the
signature and the event without calling home. Codes issued before this format (`<base64url ticket
id>.<HMAC>`, ADR 7) are "legacy": they are recognised here but can only be verified online, by
comparing them with the code stored for the ticket.

Pure: no I/O. Key material comes from configuration (`BOXOFFICE_TICKET_SIGNING_KEY`,
`BOXOFFICE_TICKET_PUBLIC_KEYS`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from boxoffice.errors import ConfigurationError, InvalidTicketCode

VERSION = "BX1"
KID_CHARS = 8
SIGNATURE_BYTES = 64
PAYLOAD_BYTES = 16 + 16 + SIGNATURE_BYTES
PAYLOAD_CHARS = 154  # ceil(96 * 8 / 5)
CODE_CHARS = len(VERSION) + 1 + KID_CHARS + 1 + PAYLOAD_CHARS  # 167
MAX_CODE_CHARS = 200  # anything longer is not a code of ours (requests are bounded anyway)
SIGNING_KEY_VAR = "BOXOFFICE_TICKET_SIGNING_KEY"
PUBLIC_KEYS_VAR = "BOXOFFICE_TICKET_PUBLIC_KEYS"

_CODE = re.compile(rf"^{VERSION}\.([A-Z2-7]{{{KID_CHARS}}})\.([A-Z2-7]{{{PAYLOAD_CHARS}}})$")
_LEGACY = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


def _unb32(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The key's id: 8 base32 characters of SHA-256 of its raw public key."""
    return _b32(hashlib.sha256(_raw_public(public_key)).digest())[:KID_CHARS]


def _message(kid: str, ticket_id: uuid.UUID, event_id: uuid.UUID) -> bytes:
    return f"{VERSION}.{kid}.".encode() + ticket_id.bytes + event_id.bytes


@dataclass(frozen=True, slots=True)
class SignedTicket:
    """What a verified code says: this ticket, of this event, signed with key `kid`."""

    kid: str
    ticket_id: uuid.UUID
    event_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class LegacyCode:
    """A pre-Ed25519 HMAC code: names its ticket, verifiable only against the stored code."""

    ticket_id: uuid.UUID
    code: str


class TicketSigner:
    """Signs new ticket codes with the current private key (consume_order)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.kid = key_id(self.public_key)

    @classmethod
    def generate(cls) -> TicketSigner:
        return cls(Ed25519PrivateKey.generate())

    def code(self, ticket_id: uuid.UUID, event_id: uuid.UUID) -> str:
        signature = self._key.sign(_message(self.kid, ticket_id, event_id))
        payload = _b32(ticket_id.bytes + event_id.bytes + signature)
        return f"{VERSION}.{self.kid}.{payload}"

    def private_text(self) -> str:
        """The private key as configured: base64url of its 32-byte seed."""
        return b64url(
            self._key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def public_text(self) -> str:
        """The public key as `BOXOFFICE_TICKET_PUBLIC_KEYS` lists it: base64url, 43 chars."""
        return b64url(_raw_public(self.public_key))


def load_signer(raw: str) -> TicketSigner:
    """The signing key from configuration: base64url of the 32-byte Ed25519 seed (what
    `python -m boxoffice.processes.ticketkeys new` prints) or a PKCS#8 PEM (`openssl genpkey
    -algorithm ed25519`). ConfigurationError (503) when missing or not an Ed25519 private key."""
    text = raw.strip()
    if not text:
        raise ConfigurationError(f"{SIGNING_KEY_VAR} must be set (an Ed25519 private key)")
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            seed = _unb64url(text)
            if len(seed) != 32:
                raise ValueError("not 32 bytes")
            key = Ed25519PrivateKey.from_private_bytes(seed)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ConfigurationError(
            f"{SIGNING_KEY_VAR} is not an Ed25519 private key (base64url seed or PKCS#8 PEM)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError(f"{SIGNING_KEY_VAR} is a private key, but not an Ed25519 one")
    return TicketSigner(key)


class TicketKeys:
    """The public keys whose codes are accepted: the current signing key's and older ones not yet
    retired (check_in). Retiring a key = removing it: its codes are refused from then on."""

    def __init__(self, public_keys: list[Ed25519PublicKey]) -> None:
        self._by_kid = {key_id(k): k for k in public_keys}

    @property
    def kids(self) -> list[str]:
        return list(self._by_kid)

    def jwks(self) -> dict[str, Any]:
        """The JWKS document published at /.well-known/ticket-keys (RFC 7517, RFC 8037 OKP)."""
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": b64url(_raw_public(key)),
                    "kid": kid,
                    "use": "sig",
                    "alg": "EdDSA",
                }
                for kid, key in self._by_kid.items()
            ]
        }

    def verify(self, code: str) -> SignedTicket:
        """The ticket a `BX1` code names, or InvalidTicketCode (422) when it is malformed, signed
        with a key that is not (or no longer) trusted, or its signature does not verify."""
        found = _CODE.match(code.strip().upper())
        if found is None:
            raise InvalidTicketCode("not a ticket code of this system")
        kid, payload = found.groups()
        key = self._by_kid.get(kid)
        if key is None:
            raise InvalidTicketCode(f"signed with key {kid}, which is not (or no longer) trusted")
        raw = _unb32(payload)
        if _b32(raw) != payload:  # the last character's 2 spare bits must be zero: one spelling
            raise InvalidTicketCode("not a ticket code of this system")
        ticket_id, event_id = uuid.UUID(bytes=raw[:16]), uuid.UUID(bytes=raw[16:32])
        try:
            key.verify(raw[32:], _message(kid, ticket_id, event_id))
        except InvalidSignature as exc:
            raise InvalidTicketCode("the code's signature does not verify") from exc
        return SignedTicket(kid, ticket_id, event_id)


def load_public_keys(raw: str) -> TicketKeys:
    """`BOXOFFICE_TICKET_PUBLIC_KEYS`: base64url raw Ed25519 public keys separated by commas or
    whitespace. ConfigurationError (503) when empty or when an entry is not a public key."""
    entries = [e for e in re.split(r"[\s,]+", raw.strip()) if e]
    if not entries:
        raise ConfigurationError(f"{PUBLIC_KEYS_VAR} must list at least one Ed25519 public key")
    keys = []
    for entry in entries:
        try:
            data = _unb64url(entry)
            if len(data) != 32:
                raise ValueError("not 32 bytes")
            keys.append(Ed25519PublicKey.from_public_bytes(data))
        except (ValueError, binascii.Error) as exc:
            raise ConfigurationError(
                f"{PUBLIC_KEYS_VAR}: {entry[:12]!r}... is not a base64url Ed25519 public key"
            ) from exc
    return TicketKeys(keys)


def parse_code(keys: TicketKeys, code: str) -> SignedTicket | LegacyCode:
    """A scanned code: a verified `BX1` code, or a legacy HMAC code (to be compared with the
    stored code); InvalidTicketCode for anything else."""
    if len(code) > MAX_CODE_CHARS:
        raise InvalidTicketCode("not a ticket code of this system")
    legacy = _LEGACY.match(code.strip())
    if legacy is not None:
        raw = _unb64url(legacy.group(1))
        if len(raw) == 16:
            return LegacyCode(uuid.UUID(bytes=raw), code.strip())
    return keys.verify(code)
