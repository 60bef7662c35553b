"""Housekeeping: prune expired idempotency keys, old order-event dedupe rows and published outbox
events past their retention, in bounded batches (docs/adr/0013-housekeeping.md). Run by the
`housekeeping` function on a schedule (Knative PingSource; locally a periodic trigger started by
`stack/boxo up`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from boxoffice import metrics


class PruneStore(Protocol):
    def prune_batch(self, table: str, batch: int, retention_days: int) -> int: ...


@dataclass(frozen=True)
class Policy:
    order_event_retention_days: int = 35
    batch: int = 1000
    max_batches: int = 100  # per table and pass: a pass is bounded even with a huge backlog
    outbox_retention_days: int = 7

    def retention_days(self, table: str) -> int:
        """Days a row of `table` is kept (idempotency keys: until their own expiry)."""
        return self.outbox_retention_days if table == "outbox" else self.order_event_retention_days


@dataclass
class PruneReport:
    pruned: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False: a table still had due rows when its batch budget ran out
    seconds: float = 0.0


def prune(store: PruneStore, tables: tuple[str, ...], policy: Policy) -> PruneReport:
    """One pass: for each table, batches until one comes back short (nothing more is due) or
    `max_batches` ran. Safe to run concurrently (batches skip each other's rows)."""
    started = time.monotonic()
    report = PruneReport()
    for table in tables:
        total = 0
        for _ in range(policy.max_batches):
            deleted = store.prune_batch(table, policy.batch, policy.retention_days(table))
            total += deleted
            metrics.ROWS_PRUNED.labels(table).inc(deleted)
            if deleted < policy.batch:
                break
        else:
            report.complete = False
        report.pruned[table] = total
    report.seconds = time.monotonic() - started
    return report
