"""The local Prometheus answers its query API and scrapes itself.

Needs the local stack (`stack/boxo up`) and BOXOFFICE_PROMETHEUS_URL (exported by `.state/env`).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.integration

FIRST_SCRAPE_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def prometheus_url() -> str:
    url = os.environ.get("BOXOFFICE_PROMETHEUS_URL")
    if not url:
        pytest.fail(
            "BOXOFFICE_PROMETHEUS_URL is not set: start the stack (`stack/boxo up`) and export "
            "its environment (`set -a; . .state/env; set +a`)",
            pytrace=False,
        )
    return url.rstrip("/")


def _query(prometheus_url: str, promql: str) -> dict[str, Any]:
    response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_prometheus_is_ready(prometheus_url: str) -> None:
    response = requests.get(f"{prometheus_url}/-/ready", timeout=5)
    assert response.status_code == 200


def test_query_api_answers_with_success(prometheus_url: str) -> None:
    body = _query(prometheus_url, "up")
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"


def test_prometheus_scrapes_itself(prometheus_url: str) -> None:
    deadline = time.monotonic() + FIRST_SCRAPE_TIMEOUT_S
    result: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        result = _query(prometheus_url, 'up{job="prometheus"}')["data"]["result"]
        if result and result[0]["value"][1] == "1":
            break
        time.sleep(0.5)
    assert result, f"no self-scrape sample within {FIRST_SCRAPE_TIMEOUT_S}s"
    assert result[0]["value"][1] == "1", result


def test_function_targets_are_discovered_from_files(prometheus_url: str) -> None:
    # The functions job exists (file_sd on $BOXOFFICE_STATE_DIR/prometheus/targets/*.json), even
    # when no function process is running.
    response = requests.get(f"{prometheus_url}/api/v1/status/config", timeout=5)
    assert response.status_code == 200
    config = response.json()["data"]["yaml"]
    assert "job_name: functions" in config
    assert "file_sd_configs" in config
