"""Opaque keyset-pagination cursors: (timestamp, id) of the last item of a page."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime


def encode_keyset(when: datetime, ident: uuid.UUID) -> str:
    raw = f"{when.isoformat()}|{ident}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_keyset(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raises ValueError for a cursor this service did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        at = datetime.fromisoformat(when)
        if at.tzinfo is None:
            raise ValueError("cursor time has no zone")
        return at, uuid.UUID(ident)
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("malformed cursor") from exc
