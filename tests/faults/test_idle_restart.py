"""A PostgreSQL restart while functions are idle costs nobody a request (issue 19, item 3).

On a stack of the test's own (harness.FaultStack: PostgreSQL on :14432, migrated, with the demo
data; get_event, get_customer, check_in and waiting_room on :1408x, started by the stack's own
`fn_start`, each with its usual worker processes): every worker's pool holds connections, the
functions go idle, PostgreSQL is stopped with `-m immediate` and started again, and the first
requests after it accepts connections (a real route of each function, then /readyz eight times,
so that every worker is asked) must all succeed. The dev stack is never touched but for tokens.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from .harness import DATABASE_FUNCTIONS, ROOT, FaultStack

pytestmark = pytest.mark.faults

READINESS_CALLS = 8


@pytest.fixture(scope="module")
def stack() -> Iterator[FaultStack]:
    """PostgreSQL and the database-only functions, under the dev stack's state directory (as in
    test_faults.py: PostgreSQL runs as the `postgres` user); deleted afterwards."""
    base = Path(os.environ.get("BOXOFFICE_STATE_DIR") or ROOT / ".state")
    state = base / "faults" / f"idle-{os.getpid()}"
    s = FaultStack(state)
    try:
        s.start_database()
        s.start_functions(*DATABASE_FUNCTIONS)
        yield s
    finally:
        s.stop()
        logs = Path(os.environ.get("BOXOFFICE_FAULT_LOGS", "/tmp/boxoffice-fault-logs"))  # noqa: S108
        shutil.rmtree(logs / "idle-restart", ignore_errors=True)
        shutil.copytree(state / "logs", logs / "idle-restart", dirs_exist_ok=True)
        shutil.rmtree(state, ignore_errors=True)


def routes(
    stack: FaultStack, token: Callable[[str], str], event: uuid.UUID
) -> dict[str, Callable[[], requests.Response]]:
    """One real route of each function, with the database behind it."""

    def bearer(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(user)}"}

    opens_at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return {
        "get_event": lambda: requests.get(f"{stack.url('get_event')}/events/{event}", timeout=10),
        "get_customer": lambda: requests.get(
            f"{stack.url('get_customer')}/customers/me", headers=bearer("alice"), timeout=10
        ),
        "check_in": lambda: requests.get(
            f"{stack.url('check_in')}/events/{event}/checkins/summary",
            headers=bearer("sam"),
            timeout=10,
        ),
        "waiting_room": lambda: requests.put(
            f"{stack.url('waiting_room')}/events/{event}/queue",
            json={"opensAt": opens_at},
            headers=bearer("olivia"),
            timeout=10,
        ),
    }


def ready(stack: FaultStack, function: str) -> requests.Response:
    return requests.get(f"{stack.url(function)}/readyz", timeout=10)


def test_functions_idle_through_a_postgres_restart_answer_their_first_requests(
    stack: FaultStack, access_token: Callable[[str], str], tmp_path: Path
) -> None:
    event = stack.new_event()
    route = routes(stack, access_token, event)
    # Every worker of every function opens its pool and grows it past one connection.
    for function in DATABASE_FUNCTIONS:
        with ThreadPoolExecutor(8) as pool:
            warm = list(pool.map(lambda _, f=function: ready(stack, f), range(48)))
        assert {r.status_code for r in warm} == {200}, function
        answer = route[function]()
        assert answer.status_code in (200, 201), (function, answer.text)
    time.sleep(2)  # idle

    stack.restart_postgres_immediately()
    healthy_at = time.monotonic()

    answers: dict[str, list[tuple[str, int, str]]] = {}
    for function in DATABASE_FUNCTIONS:
        first = route[function]()
        calls = [("route", first.status_code, first.text[:200])]
        for _ in range(READINESS_CALLS):
            r = ready(stack, function)
            calls.append(("readyz", r.status_code, r.text[:200]))
        answers[function] = calls
    elapsed = time.monotonic() - healthy_at

    figures = {
        "seconds_from_healthy_to_last_answer": round(elapsed, 3),
        "statuses": {f: [status for _, status, _ in calls] for f, calls in answers.items()},
    }
    (tmp_path / "idle-restart.json").write_text(json.dumps(figures, indent=2))
    print(f"\nfault suite idle-restart: {json.dumps(figures)}")

    failed = {
        f: [c for c in calls if c[1] not in (200, 201)]
        for f, calls in answers.items()
        if any(c[1] not in (200, 201) for c in calls)
    }
    assert failed == {}, figures
