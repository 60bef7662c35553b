"""The stack's real Prometheus scrapes every running function: a request served by the running
get_event / get_customer process shows up in `boxoffice_http_requests_total` as Prometheus sees
it, and each function's `up` is 1.

Needs the running stack (`stack/boxo up`): BOXOFFICE_PROMETHEUS_URL, BOXOFFICE_GET_EVENT_URL and
BOXOFFICE_GET_CUSTOMER_URL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.integration

SCRAPE_WAIT_S = 20.0
REQUESTS_SENT = 3

# (function, its URL variable, path, method, route template as labelled, expected status)
PROBES = [
    ("get_event", "BOXOFFICE_GET_EVENT_URL", "/events/not-a-uuid", "/events/<event_id>", "400"),
    ("get_customer", "BOXOFFICE_GET_CUSTOMER_URL", "/customers/me", "/customers/me", "401"),
]


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack (`stack/boxo up`) and export its environment "
            "(`set -a; . .state/env; set +a`)",
            pytrace=False,
        )
    return value.rstrip("/")


@pytest.fixture(scope="module")
def prometheus() -> Callable[[str], list[tuple[dict[str, str], float]]]:
    """`prometheus(promql)` -> [(labels, value)] from the real Prometheus's query API."""
    url = _env("BOXOFFICE_PROMETHEUS_URL")

    def query(promql: str) -> list[tuple[dict[str, str], float]]:
        response = requests.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success", body
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    return query


def _wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


@pytest.mark.parametrize(
    ("function", "url_var", "path", "route", "status"), PROBES, ids=[p[0] for p in PROBES]
)
def test_prometheus_scrapes_the_request_counter_of_each_running_function(
    prometheus: Callable[[str], list[tuple[dict[str, str], float]]],
    function: str,
    url_var: str,
    path: str,
    route: str,
    status: str,
) -> None:
    base = _env(url_var)
    series = (
        f'boxoffice_http_requests_total{{function="{function}",route="{route}",'
        f'method="GET",status="{status}"}}'
    )

    def scraped() -> float:
        return sum(value for _, value in prometheus(series))

    # The baseline is what Prometheus last scraped, at most what the process has counted; the
    # counter only grows, so once our requests are scraped it is at least baseline + ours.
    before = scraped()
    for _ in range(REQUESTS_SENT):
        response = requests.get(f"{base}{path}", timeout=5)
        assert response.status_code == int(status), response.text
        assert response.headers["Content-Type"].startswith("application/problem+json")

    exposed = requests.get(f"{base}/metrics", timeout=5)
    assert exposed.status_code == 200
    assert "boxoffice_http_requests_total{" in exposed.text

    assert _wait_for(lambda: scraped() >= before + REQUESTS_SENT, SCRAPE_WAIT_S), (
        f"{series} went from {before} to {scraped()} in Prometheus within {SCRAPE_WAIT_S}s, "
        f"expected at least +{REQUESTS_SENT}"
    )
    (labels, _), *_ = prometheus(series)
    assert labels["job"] == "functions"
    assert labels["function"] == function


@pytest.mark.parametrize("function", [p[0] for p in PROBES])
def test_every_running_function_is_up_in_prometheus(
    prometheus: Callable[[str], list[tuple[dict[str, str], float]]], function: str
) -> None:
    # The instance the stack runs now (series of an earlier run on other ports may linger).
    instance = urlsplit(_env(f"BOXOFFICE_{function.upper()}_URL")).netloc

    def up() -> bool:
        result = prometheus(f'up{{job="functions",function="{function}",instance="{instance}"}}')
        return len(result) == 1 and result[0][1] == 1.0

    assert _wait_for(up, SCRAPE_WAIT_S), prometheus(f'up{{function="{function}"}}')
