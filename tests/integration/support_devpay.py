"""devpay (stack/devpay/devpay.py), the local stack's payment provider, as a process of the test
on a free loopback port, and a webhook endpoint for it to deliver to that keeps what it receives.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from support_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DEVPAY = ROOT / "stack" / "devpay" / "devpay.py"
DEVPAY_API_KEY = "sk_test_devpay"


@dataclass(frozen=True)
class Received:
    body: bytes
    signature: str


@dataclass
class WebhookEndpoint:
    """An HTTP endpoint on 127.0.0.1 that answers 200 to every POST and keeps it."""

    port: int
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/payments/webhook"

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        """What it has received once `predicate` holds for it (fails after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.snapshot()
            if predicate(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"webhooks not received as expected within {timeout} s: {got}")
            time.sleep(0.05)


@contextmanager
def webhook_endpoint(port: int | None = None) -> Iterator[WebhookEndpoint]:
    endpoint = WebhookEndpoint(port or free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with endpoint.lock:
                endpoint.received.append(Received(body, self.headers.get("Stripe-Signature", "")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", endpoint.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def running_devpay(
    webhook_urls: list[str], webhook_secret: str, retry_delay: float = 0.2
) -> Iterator[str]:
    """devpay delivering to `webhook_urls`, signing with `webhook_secret`; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [sys.executable, str(DEVPAY), "--port", str(port), "--webhook-secret", webhook_secret]
    args += ["--retry-delay", str(retry_delay)]
    for url in webhook_urls:
        args += ["--webhook-url", url]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise RuntimeError(f"devpay exited with {process.returncode}: {output}")
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"devpay did not answer on {base} within 20 s")
                time.sleep(0.05)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
