"""The floor app (main.py's `handler`) as a plain WSGI app built by functions-framework itself
(`functions_framework.create_app`), for servers other than boxoffice.processes.server: gunicorn
(`gunicorn ... wsgi:app`) and granian (`granian --interface wsgi wsgi:app`), run in this
directory. Benchmark scenario `runtime` (benchmarks/runtime.py)."""

from __future__ import annotations

from pathlib import Path

import functions_framework

app = functions_framework.create_app(  # type: ignore[no-untyped-call]
    target="handler", source=str(Path(__file__).with_name("main.py"))
)
