"""services/housekeeping.prune with an in-memory store: batches until one comes back short,
a per-table batch budget that bounds a pass, and the rows-pruned metric."""

from __future__ import annotations

from boxoffice import metrics
from boxoffice.services.housekeeping import Policy, prune


class FakeStore:
    def __init__(self, due: dict[str, int]) -> None:
        self.due = dict(due)
        self.calls: list[tuple[str, int, int]] = []

    def prune_batch(self, table: str, batch: int, retention_days: int) -> int:
        self.calls.append((table, batch, retention_days))
        n = min(batch, self.due.get(table, 0))
        self.due[table] = self.due.get(table, 0) - n
        return n


def counted(table: str) -> float:
    value: float = metrics.ROWS_PRUNED.labels(table)._value.get()
    return value


def test_a_pass_deletes_in_batches_until_a_batch_comes_back_short() -> None:
    store = FakeStore({"a": 2500, "b": 0})
    before = counted("idempotency_record")

    report = prune(store, ("a", "b"), Policy(batch=1000, order_event_retention_days=35))

    assert report.pruned == {"a": 2500, "b": 0}
    assert report.complete is True
    assert [c[0] for c in store.calls] == ["a", "a", "a", "b"]
    assert all(c[1:] == (1000, 35) for c in store.calls)
    assert counted("idempotency_record") == before  # only the tables pruned are counted


def test_a_full_last_batch_needs_one_more_to_see_nothing_is_left() -> None:
    store = FakeStore({"a": 2000})
    report = prune(store, ("a",), Policy(batch=1000))
    assert report.pruned == {"a": 2000}
    assert len(store.calls) == 3
    assert report.complete is True


def test_the_batch_budget_bounds_a_pass_and_reports_it_incomplete() -> None:
    store = FakeStore({"order_event": 10_000})
    before = counted("order_event")

    report = prune(store, ("order_event",), Policy(batch=100, max_batches=5))

    assert report.pruned == {"order_event": 500}
    assert report.complete is False
    assert store.due["order_event"] == 9500
    assert counted("order_event") - before == 500


def test_outbox_rows_are_pruned_with_their_own_retention() -> None:
    store = FakeStore({"order_event": 5, "outbox": 5})
    report = prune(
        store,
        ("order_event", "outbox"),
        Policy(batch=10, order_event_retention_days=35, outbox_retention_days=7),
    )
    assert report.pruned == {"order_event": 5, "outbox": 5}
    assert store.calls == [("order_event", 10, 35), ("outbox", 10, 7)]
