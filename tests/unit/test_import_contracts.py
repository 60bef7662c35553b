"""The import contracts of pyproject.toml ([tool.importlinter], run by `make lint`) fail on a
back-arrow: each case adds one wrong import to a copy of the package and runs lint-imports on
it with the project's own contracts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports_with(tmp_path: Path, module: str, line: str) -> str:
    """lint-imports' report on a copy of src/boxoffice where `module` (a path under the
    package) ends with `line` (a module of its own when it does not exist)."""
    shutil.copytree(
        ROOT / "src/boxoffice",
        tmp_path / "src/boxoffice",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / "src/boxoffice" / module
    with target.open("a") as f:
        f.write(f"\n{line}\n")
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "domain/money.py",
            "import boxoffice.adapters.postgres",
            "boxoffice.domain is not allowed to import boxoffice.adapters",
        ),
        (
            "services/bookings.py",
            "from boxoffice.config import Settings",
            "boxoffice.services is not allowed to import boxoffice.config",
        ),
        (
            "adapters/postgres.py",
            "from boxoffice.web import problems",
            "boxoffice.adapters is not allowed to import boxoffice.web",
        ),
        (
            "web/render.py",
            "from boxoffice import bootstrap",
            "boxoffice.web is not allowed to import boxoffice.bootstrap",
        ),
        (
            "metrics.py",
            "from boxoffice.services import relay",
            "boxoffice.metrics is not allowed to import boxoffice.services",
        ),
        (
            "services/catalogue.py",
            "import flask",
            "boxoffice.services is not allowed to import flask",
        ),
        (
            "domain/catalogue.py",
            "import psycopg",
            "boxoffice.domain is not allowed to import psycopg",
        ),
        (
            "domain/bookings.py",
            "from boxoffice import metrics",
            "boxoffice.domain is not allowed to import boxoffice.metrics",
        ),
    ],
    ids=lambda v: v.removesuffix(".py").replace("/", ".") if v.endswith(".py") else "",
)
def test_a_wrong_import_breaks_the_contract_that_forbids_it(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    assert broken in lint_imports_with(tmp_path, module, line)


def test_a_module_placed_in_no_layer_breaks_the_exhaustive_layers_contract(
    tmp_path: Path,
) -> None:
    report = lint_imports_with(tmp_path, "helpers.py", "import json")
    assert "The following modules are not listed as layers:\n\n- boxoffice.helpers" in report
