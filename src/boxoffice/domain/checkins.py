"""Check-in at the door: what a scan is and what it did (docs/adr/0015-tickets-and-check-in.md).

A scan names the scanner's selected event (`eventId` in the request: one scanner account can
work several events, one gate at a time), the gate, and a client-generated scan id. The scan id
makes a scan safe to send again: the same scan of the same ticket is answered with the admission
it made (`replayed`), never with `already-checked-in`. Pure: no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class ScanOutcome(StrEnum):
    """What one scan did; the refusals are the slugs of their problem types."""

    ADMITTED = "admitted"
    REPLAYED = "replayed"  # this scan was recorded before: its admission, unchanged
    ALREADY_CHECKED_IN = "already-checked-in"
    TICKET_CANCELLED = "ticket-cancelled"
    WRONG_EVENT = "wrong-event"
    TICKET_NOT_FOUND = "ticket-not-found"
    INVALID_TICKET_CODE = "invalid-ticket-code"

    @property
    def admits(self) -> bool:
        return self in (ScanOutcome.ADMITTED, ScanOutcome.REPLAYED)

    @property
    def metric_label(self) -> str:
        return self.value.replace("-", "_")


@dataclass(frozen=True, slots=True)
class Station:
    """Who scans where: the scanner's selected event, the gate (or device) name, the scanner's
    token subject."""

    event_id: uuid.UUID
    gate: str
    scanner: str


@dataclass(frozen=True, slots=True)
class Scan:
    """One scanned code. `scanned_at` is set for scans an offline gate uploads later (the
    device's time); online scans are admitted at the server's time."""

    code: str
    scan_id: uuid.UUID
    scanned_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScanAttempt:
    """A scan whose code names a ticket, as the database applies it."""

    ticket_id: uuid.UUID
    event_id: uuid.UUID
    scan_id: uuid.UUID
    gate: str
    scanner: str
    scanned_at: datetime | None
    legacy_code: str | None  # set for pre-Ed25519 codes: compared with the stored code


@dataclass(frozen=True, slots=True)
class Admission:
    at: datetime
    gate: str
    scan_id: uuid.UUID
    offline: bool


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """What the database did with a scan. `admission` is this scan's (admitted, replayed) or
    the earlier one that admitted the ticket (already-checked-in)."""

    outcome: ScanOutcome
    ticket_event_id: uuid.UUID | None = None
    seq: int | None = None
    quantity: int | None = None
    holder: str | None = None
    admission: Admission | None = None


@dataclass(frozen=True, slots=True)
class ScanResult:
    scan_id: uuid.UUID
    ticket_id: uuid.UUID | None  # None when the code named no ticket at all
    record: ScanRecord
    detail: str

    @property
    def outcome(self) -> ScanOutcome:
        return self.record.outcome


@dataclass(frozen=True, slots=True)
class CheckInSummary:
    event_id: uuid.UUID
    issued: int  # valid tickets (not cancelled)
    admitted: int
    offline_conflicts: int  # scans offline gates admitted for tickets already admitted
    by_gate: tuple[tuple[str, int], ...] = ()
