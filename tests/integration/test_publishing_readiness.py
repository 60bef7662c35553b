"""A function that publishes events is not ready without Kafka (docs/adr/0005-outbox-relay.md,
amendment of issue 20): create_booking's real server with BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS empty
(its default) serves /healthz but answers /readyz 503 problem+json with the reason, and
`stack/boxo status` shows the functions unhealthy and why. With Kafka configured (a topic of the
test's own) the same server is ready."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests
from support_kafka import own_topic
from support_servers import running_function

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_create_booking_without_kafka_is_live_but_not_ready_and_status_says_why(
    tmp_path: Path,
) -> None:
    env = {"BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS": "", "WORKERS": "1"}  # the default, spelled out
    with running_function("create_booking", tmp_path, env, wait_for="/healthz") as fn:
        ready = requests.get(f"{fn.url}/readyz", timeout=10)
        port = fn.url.rsplit(":", 1)[1]
        status = subprocess.run(
            [str(ROOT / "stack" / "boxo"), "status"],
            env={**os.environ, "BOXOFFICE_CREATE_BOOKING_PORT": port},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert ready.status_code == 503, ready.text
    assert ready.headers["Content-Type"].startswith("application/problem+json")
    problem = ready.json()
    assert problem["type"].endswith("/service-misconfigured")
    assert problem["detail"].startswith("BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS is empty")
    assert status.returncode == 3, status.stdout + status.stderr
    [line] = [x for x in status.stdout.splitlines() if x.startswith("functions ")]
    assert "unhealthy" in line
    assert "create_booking not ready (BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS is empty" in line


def test_create_booking_with_kafka_configured_is_ready(tmp_path: Path) -> None:
    with (
        own_topic("it-ready") as kafka,
        running_function("create_booking", tmp_path, {**kafka, "WORKERS": "1"}) as fn,
    ):
        ready = requests.get(f"{fn.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready"}
