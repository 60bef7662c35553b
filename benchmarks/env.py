"""Paths, the stack's environment, the pinned tools built into the project cache (the load
generators; stripe-mock, the Stripe API double of tests/integration), and the machine's
description."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
CACHE = Path(
    os.environ.get("BOXOFFICE_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "boxoffice"
)
VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
VEGETA = CACHE / "tools" / f"vegeta-{VEGETA_VERSION}" / "vegeta"
# The Stripe API double the payment adapter's tests run against (tests/integration/
# support_stripe_mock.py): it answers in Stripe's wire format and validates requests against
# Stripe's OpenAPI spec. Built from the Go module proxy like vegeta.
STRIPE_MOCK_MODULE = "github.com/stripe/stripe-mock"
STRIPE_MOCK_VERSION = "v0.203.0"
STRIPE_MOCK = CACHE / "tools" / f"stripe-mock-{STRIPE_MOCK_VERSION}" / "stripe-mock"
# The high-rate GET scenarios' client (benchmarks/load.py `attack_oha`): ~0.02 ms of client CPU per
# request where vegeta takes ~0.2 ms. Its TLS is never used (plain HTTP to 127.0.0.1): built with
# the system's OpenSSL (`native-tls`, needs libssl-dev) rather than the default rustls/aws-lc,
# whose C build takes minutes; oha does not build with no TLS at all.
OHA_CRATE = "oha"
OHA_VERSION = "1.16.0"
OHA_FEATURES = "native-tls"
OHA = CACHE / "tools" / f"oha-{OHA_VERSION}" / "bin" / "oha"


class BenchError(RuntimeError):
    """A precondition of the benchmark is not met (message says what to do)."""


def stack_env() -> dict[str, str]:
    """The stack's connection variables (`stack/boxo env`: the current ones, also those of
    services added since .state/env was written), over the process environment."""
    env = dict(os.environ)
    out = subprocess.run(
        [str(ROOT / "stack" / "boxo"), "env"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        m = re.match(r"(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2).strip("'\"")
    for name in ("BOXOFFICE_DATABASE_URL", "BOXOFFICE_OIDC_ISSUER", "BOXOFFICE_KEYCLOAK_URL"):
        if not env.get(name):
            raise BenchError(f"{name} is not set: start the stack first (`make up`)")
    return env


def ensure_topic(kafka: str, topic: str, partitions: int = 3, check: bool = True) -> None:
    """The Kafka topic `topic` exists (the stack's own admin script, `ensure-topics`)."""
    subprocess.run(
        [
            str(VENV_BIN / "python"),
            str(ROOT / "stack" / "kafka" / "kafka_admin.py"),
            "ensure-topics",
            kafka,
            f"{topic}:{partitions}",
        ],
        check=check,
        capture_output=True,
    )


def go_install(module: str, version: str, binary: Path) -> Path:
    """`binary`, built with `go install module@version` into its folder of the project cache on
    first use (GOPATH and the build cache in the project cache too; no cgo)."""
    if binary.exists():
        return binary
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise BenchError(
            f"{binary.name} {version} is not in {binary.parent} and there is no Go toolchain to "
            f"build it: install Go (https://go.dev/dl) or put a {binary.name} binary there"
        )
    tools = CACHE / "tools"
    env = dict(
        os.environ,
        GOBIN=str(binary.parent),
        GOPATH=str(tools / "gopath"),
        GOCACHE=str(tools / "gocache"),
        CGO_ENABLED="0",
    )
    print(f"[tools] building {binary.name} {version} into {binary.parent} (once)", flush=True)
    subprocess.run([go, "install", f"{module}@{version}"], env=env, check=True)
    return binary


def ensure_vegeta() -> Path:
    """The pinned vegeta binary, built with `go install` into the project cache on first use."""
    return go_install(VEGETA_MODULE, VEGETA_VERSION, VEGETA)


def ensure_stripe_mock() -> Path:
    """The pinned stripe-mock binary, built with `go install` into the project cache on first
    use (about a minute, once)."""
    return go_install(STRIPE_MOCK_MODULE, STRIPE_MOCK_VERSION, STRIPE_MOCK)


def ensure_oha() -> Path:
    """The pinned oha binary, built with `cargo install --locked` into the project cache on first
    use (a few minutes, once)."""
    if OHA.exists():
        return OHA
    cargo = shutil.which("cargo") or (
        str(Path.home() / ".cargo" / "bin" / "cargo")
        if (Path.home() / ".cargo" / "bin" / "cargo").exists()
        else None
    )
    if cargo is None:
        raise BenchError(
            f"oha {OHA_VERSION} is not in {OHA.parent} and there is no Rust toolchain to build "
            "it: install Rust (https://rustup.rs) or put an oha binary there"
        )
    root = OHA.parent.parent
    print(f"[bench] building oha {OHA_VERSION} into {root} (once, a few minutes)", flush=True)
    subprocess.run(
        [
            cargo,
            "install",
            OHA_CRATE,
            "--locked",
            "--version",
            OHA_VERSION,
            "--no-default-features",
            "--features",
            OHA_FEATURES,
            "--root",
            str(root),
        ],
        check=True,
    )
    return OHA


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine(env: dict[str, str], db_version: str) -> dict[str, Any]:
    """What the figures were measured on."""
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    versions = {}
    status = subprocess.run(
        [str(ROOT / "stack" / "boxo"), "status"], capture_output=True, text=True, check=False
    ).stdout
    for line in status.splitlines():
        m = re.match(r"(\w+)\s.*?version=(\S+)", line)
        if m:
            versions[m.group(1)] = m.group(2)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "postgresql": db_version,
        "kafka": versions.get("kafka", "unknown"),
        "keycloak": versions.get("keycloak", "unknown"),
        "vegeta": VEGETA_VERSION,
        "oha": OHA_VERSION,
        "git_commit": _first_line(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"]),
        "git_dirty": bool(
            subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
        ),
        "load_average_at_start": os.getloadavg(),
    }
