"""Drive get_event's WSGI app in-process, for instruction counting under callgrind
(benchmarks/interpreters/run.sh: CPython 3.11 vs 3.12 vs 3.13 on the request path).

    python benchmarks/interpreters/drive.py MODE [--route event|healthz] [--warmup W] [-n N]

with BOXOFFICE_REGION_LIB naming the compiled region.c (run.sh builds it) and the dev stack's
environment (`.state/env`: the demo data's PostgreSQL).

MODE
  requests   build the app as the server does (functions_framework.create_app), send W warm-up
             requests, then N measured requests: only the N are inside bench_region().
  import     bench_region() = `import functions_framework, flask, psycopg` (nothing before it).
  create_app imports done first (outside), bench_region() = create_app(target, source).
  first      app built and imports done (outside), bench_region() = the first /events/{id}
             request (rule map compiled, pool opened, first connection made, first query).
  empty      bench_region() with an empty callback (the region's own overhead).

Run under: valgrind --tool=callgrind --collect-atstart=no ... (bench_region() switches collection
on and off with callgrind's client request).
Outside valgrind the region is just a call, so the script also runs (and checks) on its own.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions" / "get_event" / "main.py")
ROUTES = {
    "event": "/events/e0e00000-0000-4000-8000-000000000002",
    "healthz": "/healthz",
}

# PyDLL: the GIL stays held across the call.
_lib = ctypes.PyDLL(os.environ["BOXOFFICE_REGION_LIB"])
_CB = ctypes.CFUNCTYPE(None)
_lib.bench_region.argtypes = [_CB]
_lib.bench_region.restype = None


def region(fn: Callable[[], object]) -> None:
    """Run fn() inside bench_region(); re-raise what it raised (ctypes callbacks swallow)."""
    box: list[BaseException] = []

    def cb() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001
            box.append(exc)

    c = _CB(cb)
    _lib.bench_region(c)
    if box:
        raise box[0]


def base_environ(path: str) -> dict[str, Any]:
    from werkzeug.test import EnvironBuilder  # noqa: PLC0415 - not before the measured import

    b = EnvironBuilder(
        path=path,
        method="GET",
        base_url="http://127.0.0.1:28081",
        headers={"User-Agent": "pybench", "Accept": "application/json"},
    )
    env = b.get_environ()
    b.close()
    env.pop("wsgi.input", None)
    return env


def make_caller(app: Any, path: str) -> Callable[[], tuple[str, bytes]]:
    base = base_environ(path)
    status_box: list[str] = []

    def start_response(status: str, headers: object, exc_info: object = None) -> object:
        status_box.append(status)
        return lambda data: None

    def call() -> tuple[str, bytes]:
        env = dict(base)
        env["wsgi.input"] = io.BytesIO(b"")
        status_box.clear()
        it = app(env, start_response)
        try:
            body = b"".join(it)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        return status_box[0], body

    return call


def build_app(kind: str = "ff") -> Any:
    """ff: functions_framework.create_app, as the brief asks; server: the server's build_app
    (the same create_app, wrapped in boxoffice.web.queueing.RequestQueue, as the images run)."""
    if kind == "server":
        from boxoffice.config import ServerSettings  # noqa: PLC0415
        from boxoffice.processes.server import build_app as server_build_app  # noqa: PLC0415

        return server_build_app(Path(SOURCE), "handler", ServerSettings.from_env())
    import functions_framework  # noqa: PLC0415

    return functions_framework.create_app(target="handler", source=SOURCE)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["requests", "import", "create_app", "first", "empty"])
    p.add_argument("--route", choices=sorted(ROUTES), default="event")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("-n", type=int, default=2000)
    p.add_argument("--app", choices=["ff", "server"], default="ff")
    a = p.parse_args()
    os.chdir(os.path.dirname(SOURCE))

    if a.mode == "empty":
        region(lambda: None)
        print("empty region done")
        return 0
    if a.mode == "import":

        def do_import() -> None:
            import flask  # noqa: F401, PLC0415
            import functions_framework  # noqa: F401, PLC0415
            import psycopg  # noqa: F401, PLC0415

        region(do_import)
        print("imported", "functions_framework" in sys.modules)
        return 0

    import flask  # noqa: F401, PLC0415
    import functions_framework  # noqa: F401, PLC0415
    import psycopg  # noqa: F401, PLC0415

    if a.mode == "create_app":
        box: list[Any] = []
        region(lambda: box.append(build_app()))
        print("app built:", box[0])
        return 0

    app = build_app(a.app)
    call = make_caller(app, ROUTES[a.route])
    if a.mode == "first":
        out: list[tuple[str, bytes]] = []
        region(lambda: out.append(call()))
        status, body = out[0]
        print("first request:", status, len(body), body[:80])
        assert status.startswith("200"), (status, body)
        return 0

    status, body = call()
    print("check:", a.route, status, len(body), body[:100])
    assert status.startswith("200"), (status, body)
    for _ in range(a.warmup):
        call()
    n = a.n

    def loop() -> None:
        for _ in range(n):
            s, _b = call()
            if s[0] != "2":
                raise RuntimeError(s)

    region(loop)
    print(f"done: {n} measured requests on {a.route} ({a.app}) after {a.warmup} warm-up")
    return 0


def _shutdown() -> None:
    """Close the pool as the server does at a worker's exit (bootstrap.shutdown): without it,
    3.13's finalization cannot stop psycopg_pool's threads and waits 5 s for each."""
    if "boxoffice.bootstrap" in sys.modules:
        sys.modules["boxoffice.bootstrap"].shutdown()


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        _shutdown()
    sys.exit(rc)
