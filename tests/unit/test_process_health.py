"""The long-running processes' health/metrics server (boxoffice.processes.health) and their one
start-up (boxoffice.processes.startup): exit 2 on configuration errors, SIGTERM stops the worker
after its pass."""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from boxoffice import metrics
from boxoffice.background import BackgroundWorker
from boxoffice.processes import admission, documents, health, relay, startup
from boxoffice.services.ports import Progress


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - a local test server
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


@pytest.fixture
def state() -> dict[str, bool]:
    return {"healthy": True}


@pytest.fixture
def base(state: dict[str, bool]) -> Iterator[str]:
    server = health.serve(lambda: state["healthy"], 0, "127.0.0.1", "ticks failing")
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/_/health", "/_/ready"])
def test_health_is_200_while_healthy_and_503_with_the_reason_when_not(
    base: str, state: dict[str, bool], path: str
) -> None:
    status, content_type, body = get(base + path)
    assert (status, content_type, json.loads(body)) == (200, "application/json", {"status": "ok"})
    state["healthy"] = False
    status, _, body = get(base + path)
    assert (status, json.loads(body)) == (503, {"status": "ticks failing"})


def test_metrics_shows_the_process_registry_in_the_prometheus_format(base: str) -> None:
    metrics.WAITING_ROOM_TICKS.labels("ok").inc()
    status, content_type, body = get(base + "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert b'boxoffice_waiting_room_ticks_total{outcome="ok"}' in body


def test_anything_else_is_a_404(base: str) -> None:
    status, _, body = get(base + "/nope")
    assert (status, json.loads(body)) == (404, {"status": "not found"})


@pytest.mark.parametrize("main", [admission.main, documents.main, relay.main])
def test_a_process_exits_2_when_its_configuration_is_incomplete(
    monkeypatch: pytest.MonkeyPatch, main: object
) -> None:
    for name in list(os.environ):
        if name.startswith("BOXOFFICE_"):
            monkeypatch.delenv(name)
    assert main(["--once"]) == startup.EXIT_CONFIGURATION  # type: ignore[operator]


def test_sigterm_stops_the_worker_after_its_pass_while_health_is_served() -> None:
    seen: dict[str, object] = {}
    inside = threading.Event()
    release = threading.Event()

    def one_pass() -> Progress:
        inside.set()
        release.wait(5)
        return Progress.WORKED

    worker = BackgroundWorker("t", one_pass, interval=60)

    def operator() -> None:
        assert inside.wait(5)
        server_port = seen["port"]
        seen["health"] = get(f"http://127.0.0.1:{server_port}/healthz")[0]
        os.kill(os.getpid(), signal.SIGTERM)  # handled in the main thread: stop after the pass
        release.set()

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    real_serve = health.serve

    def serve_and_note(*args: object, **kwargs: object) -> object:
        server = real_serve(*args, **kwargs)  # type: ignore[arg-type]
        seen["port"] = server.server_port
        return server

    threading.Thread(target=operator, daemon=True).start()
    try:
        health.serve = serve_and_note  # type: ignore[assignment]
        code = startup.run_until_signalled(
            worker, startup.logging.getLogger("test"), port=0, host="127.0.0.1"
        )
    finally:
        health.serve = real_serve  # type: ignore[assignment]
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert code == 0
    assert seen["health"] == 200
    assert release.is_set()  # the pass was let finish before the loop ended
