"""Waiting for the running stack to get somewhere (order processing, emails, webhooks are
asynchronous): read until done, for at most `WAIT_S` seconds. Imported by the e2e tests; it sits
beside pdf_tickets.py so that a test importing an e2e module from elsewhere (tests/containers
does) finds it too."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

WAIT_S = 30.0

Body = dict[str, Any]


def wait_for(read: Callable[[], Body], done: Callable[[Body], bool]) -> Body:
    """What `read` returns once `done` holds for it, or its last answer after WAIT_S seconds (the
    caller asserts on it, so a timeout fails with what was last seen)."""
    deadline = time.monotonic() + WAIT_S
    body = read()
    while not done(body) and time.monotonic() < deadline:
        time.sleep(0.2)
        body = read()
    return body
