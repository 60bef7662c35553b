"""Check-in (check_in): verify a scanned code, admit its ticket exactly once, answer what
happened; batches of scans an offline gate admitted while disconnected; the event's counts.

The signature of a code is checked here (`boxoffice.domain.tickets`); whether the ticket is
valid, for this event, and not yet admitted is decided by the database in one guarded statement
(`check_in_ticket`, db/migrations/V6), so two gates scanning one code at once admit it once
(docs/adr/0015-tickets-and-check-in.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from boxoffice import errors, metrics
from boxoffice.domain.checkins import (
    CheckInSummary,
    Scan,
    ScanAttempt,
    ScanOutcome,
    ScanRecord,
    ScanResult,
    Station,
)
from boxoffice.domain.tickets import LegacyCode, TicketKeys, parse_code
from boxoffice.services.ports import CheckInUnitOfWorkFactory

_DETAILS = {
    ScanOutcome.ADMITTED: "admitted",
    ScanOutcome.REPLAYED: "this scan was already recorded: admitted",
    ScanOutcome.ALREADY_CHECKED_IN: "the ticket was already checked in",
    ScanOutcome.TICKET_CANCELLED: "the ticket, its booking or its event is cancelled",
    ScanOutcome.WRONG_EVENT: "the ticket is for another event",
    ScanOutcome.TICKET_NOT_FOUND: "no ticket has this code",
    ScanOutcome.INVALID_TICKET_CODE: "the code does not match its ticket",
}


def _attempt(keys: TicketKeys, station: Station, scan: Scan) -> ScanAttempt | ScanResult:
    """The scan as the database applies it, or its result when the code is not one of ours."""
    try:
        parsed = parse_code(keys, scan.code)
    except errors.InvalidTicketCode as exc:
        record = ScanRecord(ScanOutcome.INVALID_TICKET_CODE)
        return ScanResult(scan.scan_id, None, record, exc.detail)
    legacy = parsed.code if isinstance(parsed, LegacyCode) else None
    return ScanAttempt(
        parsed.ticket_id,
        station.event_id,
        scan.scan_id,
        station.gate,
        station.scanner,
        scan.scanned_at,
        legacy,
    )


def _result(attempt: ScanAttempt, record: ScanRecord) -> ScanResult:
    return ScanResult(attempt.scan_id, attempt.ticket_id, record, _DETAILS[record.outcome])


def _count(results: Sequence[ScanResult], mode: str) -> None:
    for result in results:
        metrics.TICKETS_CHECKED_IN.labels(result.outcome.metric_label, mode).inc()


def check_in(
    uow: CheckInUnitOfWorkFactory, keys: TicketKeys, station: Station, scan: Scan
) -> ScanResult:
    """One scan at an online gate, in one transaction. The result says what happened;
    `refusal(result)` is the problem to answer when it did not admit."""
    attempt = _attempt(keys, station, scan)
    if isinstance(attempt, ScanResult):
        _count([attempt], "online")
        return attempt
    with uow(one_statement=True) as tx:
        record = tx.checkins.check_in(attempt)
        tx.commit()
    result = _result(attempt, record)
    _count([result], "online")
    return result


def _ticket_order(item: tuple[int, ScanAttempt]) -> tuple[uuid.UUID, float, int]:
    i, attempt = item
    at = attempt.scanned_at.timestamp() if attempt.scanned_at else 0.0
    return attempt.ticket_id, at, i


def upload(
    uow: CheckInUnitOfWorkFactory, keys: TicketKeys, station: Station, scans: Sequence[Scan]
) -> list[ScanResult]:
    """Scans an offline gate admitted while disconnected, in one transaction, results in the
    order given. A scan of a ticket that was admitted by another scan meanwhile (another gate,
    online or offline, or the same ticket twice) is reported `already-checked-in` with the
    admission that counts, and recorded as a conflict. Sending the same upload again is safe:
    its admissions come back `replayed`. Tickets are applied in ticket-id order so that two
    concurrent uploads never wait for each other in a cycle."""
    results: dict[int, ScanResult] = {}
    attempts: list[tuple[int, ScanAttempt]] = []
    for i, scan in enumerate(scans):
        attempt = _attempt(keys, station, scan)
        if isinstance(attempt, ScanResult):
            results[i] = attempt
        else:
            attempts.append((i, attempt))
    attempts.sort(key=_ticket_order)
    with uow() as tx:
        for i, attempt in attempts:
            results[i] = _result(attempt, tx.checkins.check_in(attempt))
        tx.commit()
    ordered = [results[i] for i in range(len(scans))]
    _count(ordered, "offline")
    return ordered


def refusal(result: ScanResult) -> errors.BoxofficeError:
    """The problem+json error of a scan that did not admit, with what the gate needs to show."""
    r = result.record
    ticket = {"ticketId": str(result.ticket_id)} if result.ticket_id else {}
    if r.outcome is ScanOutcome.ALREADY_CHECKED_IN and r.admission is not None:
        a = r.admission
        first = {"at": a.at.isoformat(), "gate": a.gate, "offline": a.offline}
        return errors.AlreadyCheckedIn(
            f"first admitted at {a.at.isoformat()} through gate {a.gate!r}",
            **ticket,
            firstCheckIn=first,
        )
    if r.outcome is ScanOutcome.WRONG_EVENT:
        return errors.WrongEvent(result.detail, **ticket, ticketEventId=str(r.ticket_event_id))
    if r.outcome is ScanOutcome.TICKET_CANCELLED:
        return errors.TicketCancelled(result.detail, **ticket)
    if r.outcome is ScanOutcome.TICKET_NOT_FOUND:
        return errors.TicketNotFound(result.detail)
    return errors.InvalidTicketCode(result.detail)


def summary(uow: CheckInUnitOfWorkFactory, event_id: uuid.UUID) -> CheckInSummary:
    with uow(one_statement=True) as tx:
        found = tx.checkins.summary(event_id)
    if found is None:
        raise errors.NotFound(f"event {event_id} does not exist")
    return found
