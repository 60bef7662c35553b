"""stripe-mock, the Stripe API double: Stripe's own mock server, which answers in Stripe's wire
format and validates every request against Stripe's OpenAPI spec. It is stateless: a create
returns a fixture object that reflects some of the parameters (amount, currency), a retrieve
returns a fixture under the asked id, and idempotency keys are echoed back but not honoured.

The binary is built from the Go module proxy into the project cache by `benchmarks.env`
(`ensure_stripe_mock`, the mechanism that builds vegeta), once; each run starts it on a free
loopback port.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from support_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
TEST_API_KEY = "sk_test_boxoffice"  # stripe-mock takes any key that looks like a test-mode one


def stripe_mock_binary() -> Path:
    """The pinned stripe-mock (built on first use, about a minute; needs Go)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from benchmarks.env import ensure_stripe_mock; print(ensure_stripe_mock())",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout
    return Path(out.strip().splitlines()[-1])


@contextmanager
def running_stripe_mock() -> Iterator[str]:
    """A stripe-mock listening on 127.0.0.1 only; yields its base URL."""
    binary = stripe_mock_binary()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Its request log goes to a file, so that it never blocks on a full pipe.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(binary), "-http-addr", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise RuntimeError(f"stripe-mock exited with {process.returncode}: {output}")
                try:
                    answer = requests.get(
                        f"{base}/v1/payment_intents/pi_ready", auth=(TEST_API_KEY, ""), timeout=1
                    )
                    if answer.status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"stripe-mock did not answer on {base} within 30 s")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
