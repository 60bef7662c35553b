"""(5) The function images (`make images`): each image's size (its own layer and the layers the
seven share; gzip-compressed as a registry or `kind load` moves it), and the container's cold start:
from `docker run` (read-only, uid 10001, host network, as the stack runs it) to the first 200 on a
real route, the container's start included. Images are built first (a warm build when nothing
changed: its time is reported too)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks.bench import Bench, aggregate
from benchmarks.env import ROOT

STACK = ROOT / "stack" / "boxo"
UNITS = {"B": 1e-6, "kB": 1e-3, "KB": 1e-3, "MB": 1.0, "GB": 1e3}
UNITS |= {"KiB": 1024 / 1e6, "MiB": 1024**2 / 1e6, "GiB": 1024**3 / 1e6}


def _stack(script: str) -> str:
    return subprocess.run(
        ["bash", "-c", f'source "{STACK}" && {script}'],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout.strip()


def _mb(text: str) -> float:
    """Docker's human sizes (238MB, 12.3kB, 45.2MiB) in MB."""
    m = re.fullmatch(r"([\d.]+)\s*([kKMG]?i?B)", text.strip())
    if m is None:
        raise ValueError(f"not a size: {text!r}")
    return float(m[1]) * UNITS[m[2]]


def _routes(b: Bench) -> dict[str, tuple[str, dict[str, str] | None]]:
    auth = {"Authorization": f"Bearer {b.tokens.ensure(1)[0][1]}"}
    return {
        "get_event": (f"/events/{b.spread[0]}", None),
        "get_customer": ("/customers/me", auth),
        "create_booking": ("/bookings?limit=5", auth),
        "check_in": ("/.well-known/ticket-keys", None),
        "consume_order": ("/readyz", None),  # Kafka-triggered: no read route
        "housekeeping": ("/readyz", None),  # schedule-triggered
        "waiting_room": ("/readyz", None),
        "payment_webhook": ("/readyz", None),  # signed POSTs from the provider only
    }


def _cold_start(
    b: Bench, docker: str, image: str, route: str, headers: dict[str, str] | None, port: int
) -> dict[str, float]:
    name = f"boxoffice-bench-{port}"
    env = [f"--env={k}={v}" for k, v in b.env.items() if k.startswith("BOXOFFICE_")]
    args = ["--env=LISTEN_HOST=127.0.0.1", f"--env=PORT={port}", *env]
    url = f"http://127.0.0.1:{port}"
    tmpfs = "/tmp"  # noqa: S108 - the container's own writable /tmp
    started = time.monotonic()
    subprocess.run(
        [docker, "run", "-d", "--name", name, "--network", "host", "--read-only",
         "--tmpfs", tmpfs, "--user", "10001:10001", "--cap-drop", "ALL", *args, image],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        healthz = first = None
        while first is None:
            assert time.monotonic() - started < 60, f"{image} never answered {route}"
            try:
                if healthz is None and requests.get(f"{url}/healthz", timeout=2).ok:
                    healthz = time.monotonic() - started
                if healthz is not None and requests.get(url + route, headers=headers, timeout=5).ok:
                    first = time.monotonic() - started
            except requests.ConnectionError:
                pass
            time.sleep(0.01)
        stats = subprocess.run(
            [docker, "stats", "--no-stream", "--format", "{{.MemUsage}}", name],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return {
            "healthz_s": healthz or first,
            "first_route_s": first,
            "memory_mb": _mb(stats.split("/")[0]),
        }
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True, check=False)


def containers(b: Bench) -> dict[str, Any]:
    started = time.monotonic()
    _stack("images_build >/dev/null 2>&1")
    build_s = time.monotonic() - started
    docker = _stack('bx_docker version >/dev/null 2>&1; echo "$BX_DOCKER_CLI"')
    functions = _stack("images_functions").split()
    df = subprocess.run(
        [docker, "system", "df", "-v", "--format", "{{json .Images}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    by_name = {f"{i['Repository']}:{i['Tag']}": i for i in json.loads(df)}
    out: dict[str, Any] = {"warm_build_s": round(build_s, 1), "images": {}}
    routes = _routes(b)
    port = 28990
    for fn in functions:
        image = _stack(f"image_name {fn}")
        row = by_name[image]
        figures: dict[str, Any] = {
            "image": image,
            "size_mb": _mb(row["Size"]),
            "shared_mb": _mb(row["SharedSize"]),
            "own_mb": _mb(row["UniqueSize"]),
        }
        route, headers = routes[fn]
        samples = []
        for i in range(b.profile.cold_repeats):
            sample = _cold_start(b, docker, image, route, headers, port)
            b.log(
                f"container cold start {fn} #{i + 1}: /healthz {sample['healthz_s']:.3f}s, "
                f"{route} {sample['first_route_s']:.3f}s, {sample['memory_mb']:.0f} MB"
            )
            samples.append({**sample, "errors": {}})
        agg = aggregate(samples)
        agg.pop("errors")
        figures["cold_start"] = {**agg, "route": route}
        out["images"][fn] = figures
    first = _stack(f"image_name {functions[0]}")
    save = subprocess.Popen([docker, "save", first], stdout=subprocess.PIPE)
    gz = subprocess.run(["gzip", "-6"], stdin=save.stdout, capture_output=True, check=True)
    save.wait()
    out["compressed_mb"] = {"image": first, "gzip_mb": round(len(gz.stdout) / 1e6, 1)}
    out["base"] = Path(_stack("images_base 2>/dev/null")).name
    return out
