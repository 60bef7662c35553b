"""Check-in rules with an in-memory fake of the repository (the real exactly-once guard is SQL:
tests/integration/test_check_in*.py): what reaches the database, in which order, and how each
outcome becomes an answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from boxoffice import errors
from boxoffice.domain.checkins import (
    Admission,
    CheckInSummary,
    Scan,
    ScanAttempt,
    ScanOutcome,
    ScanRecord,
    Station,
)
from boxoffice.domain.tickets import TicketKeys, TicketSigner
from boxoffice.services import checkins
from boxoffice.services.ports import CheckInUnitOfWorkFactory

SIGNER = TicketSigner.generate()
KEYS = TicketKeys([SIGNER.public_key])
EVENT = uuid.uuid4()
STATION = Station(EVENT, "north-1", "scanner-subject")
NOW = datetime(2031, 3, 14, 19, 0, tzinfo=UTC)


@dataclass
class FakeCheckIns:
    """Admits each ticket once, like check_in_ticket; records every call."""

    admitted: dict[uuid.UUID, Admission] = field(default_factory=dict)
    calls: list[ScanAttempt] = field(default_factory=list)
    commits: int = 0

    def check_in(self, scan: ScanAttempt) -> ScanRecord:
        self.calls.append(scan)
        first = self.admitted.get(scan.ticket_id)
        if first is not None:
            outcome = (
                ScanOutcome.REPLAYED
                if first.scan_id == scan.scan_id
                else ScanOutcome.ALREADY_CHECKED_IN
            )
            return ScanRecord(outcome, EVENT, 1, 1, "Bob", first)
        at = scan.scanned_at or NOW
        self.admitted[scan.ticket_id] = Admission(
            at, scan.gate, scan.scan_id, bool(scan.scanned_at)
        )
        return ScanRecord(ScanOutcome.ADMITTED, EVENT, 1, 1, "Bob", self.admitted[scan.ticket_id])

    def summary(self, event_id: uuid.UUID) -> CheckInSummary | None:
        return CheckInSummary(event_id, 10, len(self.admitted), 0) if event_id == EVENT else None


def factory(repo: FakeCheckIns) -> CheckInUnitOfWorkFactory:
    class Uow:
        checkins = repo

        def commit(self) -> None:
            repo.commits += 1

    @contextmanager
    def make(*, one_statement: bool = False) -> Iterator[Uow]:
        yield Uow()

    return make


def test_a_valid_code_is_applied_once_in_one_committed_transaction() -> None:
    repo = FakeCheckIns()
    ticket = uuid.uuid4()

    result = checkins.check_in(
        factory(repo), KEYS, STATION, Scan(SIGNER.code(ticket, EVENT), uuid.uuid4())
    )

    assert result.outcome is ScanOutcome.ADMITTED
    assert [(c.ticket_id, c.event_id, c.gate, c.legacy_code) for c in repo.calls] == [
        (ticket, EVENT, "north-1", None)
    ]
    assert repo.commits == 1


def test_an_invalid_code_never_reaches_the_database() -> None:
    repo = FakeCheckIns()
    forged = TicketSigner.generate().code(uuid.uuid4(), EVENT)

    result = checkins.check_in(factory(repo), KEYS, STATION, Scan(forged, uuid.uuid4()))

    assert result.outcome is ScanOutcome.INVALID_TICKET_CODE
    assert (repo.calls, repo.commits) == ([], 0)
    assert isinstance(checkins.refusal(result), errors.InvalidTicketCode)


def test_refusals_become_problems_with_what_the_gate_shows() -> None:
    ticket, scan_id = uuid.uuid4(), uuid.uuid4()
    first = Admission(NOW, "south-2", uuid.uuid4(), True)
    cases = {
        ScanOutcome.ALREADY_CHECKED_IN: (errors.AlreadyCheckedIn, 409),
        ScanOutcome.TICKET_CANCELLED: (errors.TicketCancelled, 409),
        ScanOutcome.WRONG_EVENT: (errors.WrongEvent, 409),
        ScanOutcome.TICKET_NOT_FOUND: (errors.TicketNotFound, 404),
        ScanOutcome.INVALID_TICKET_CODE: (errors.InvalidTicketCode, 422),
    }
    for outcome, (cls, status) in cases.items():
        record = ScanRecord(outcome, uuid.uuid4(), 1, 2, "Bob", first)
        error = checkins.refusal(checkins.ScanResult(scan_id, ticket, record, "detail"))
        assert (type(error), error.status, error.slug) == (cls, status, outcome.value)
    record = ScanRecord(ScanOutcome.ALREADY_CHECKED_IN, EVENT, 1, 1, "Bob", first)
    already = checkins.refusal(checkins.ScanResult(scan_id, ticket, record, "x"))
    assert already.extensions["firstCheckIn"] == {
        "at": NOW.isoformat(),
        "gate": "south-2",
        "offline": True,
    }
    assert already.extensions["ticketId"] == str(ticket)


def test_batch_results_keep_the_upload_order_while_tickets_are_applied_in_id_order() -> None:
    repo = FakeCheckIns()
    tickets = [uuid.uuid4() for _ in range(6)]
    scans = [
        Scan(SIGNER.code(t, EVENT), uuid.uuid4(), NOW + timedelta(minutes=i))
        for i, t in enumerate(tickets)
    ]
    scans.insert(2, Scan("garbage", uuid.uuid4(), NOW))

    results = checkins.upload(factory(repo), KEYS, STATION, scans)

    assert [r.scan_id for r in results] == [s.scan_id for s in scans]
    assert [r.outcome for r in results].count(ScanOutcome.ADMITTED) == 6
    assert results[2].outcome is ScanOutcome.INVALID_TICKET_CODE
    assert [c.ticket_id for c in repo.calls] == sorted(tickets)  # no lock-order cycles
    assert repo.commits == 1


def test_the_same_ticket_twice_in_an_upload_admits_the_earlier_scan() -> None:
    repo = FakeCheckIns()
    ticket = uuid.uuid4()
    code = SIGNER.code(ticket, EVENT)
    later = Scan(code, uuid.uuid4(), NOW + timedelta(minutes=5))
    earlier = Scan(code, uuid.uuid4(), NOW)

    results = checkins.upload(factory(repo), KEYS, STATION, [later, earlier])

    assert [r.outcome for r in results] == [ScanOutcome.ALREADY_CHECKED_IN, ScanOutcome.ADMITTED]
    assert repo.admitted[ticket].scan_id == earlier.scan_id


def test_summary_of_an_unknown_event_is_404() -> None:
    with pytest.raises(errors.NotFound):
        checkins.summary(factory(FakeCheckIns()), uuid.uuid4())
