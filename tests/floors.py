"""Test floors: a pytest plugin that fails the run when a group of tests passed fewer tests than
the floor recorded for it, so a deleted folder, a broken collection or a `-k` that deselects a
whole group cannot leave the run green.

A group is a top-level folder of the tests (tests/unit, tests/browser, ...). Floors live in a TOML
file (`tests/floors.toml`, table `[floors]`: group = minimum count of passed tests) that is
switched on with `--floors PATH` (`make test` and `make unit` do). A group is checked when the run
was asked for all of it: one of pytest's arguments (or `testpaths` when none) is the group's
folder or a folder above it. `pytest tests/unit/test_config.py` checks nothing; `pytest tests -k
booking` checks every group and fails the ones the selection emptied.

Only passed tests count: a skipped, deselected, failed or xfailed test does not. A group whose
folder collected tests but has no floor fails too (a new group is given its floor when added).
"""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

import pytest


class FloorCheck:
    """The floors of one run and what it counted (registered as a plugin by `--floors`)."""

    def __init__(self, config: pytest.Config, tests_root: Path, floors: dict[str, int]) -> None:
        self.config = config
        self.tests_root = tests_root  # the folder the groups are in (the floor file's folder)
        self.floors = floors
        self.wanted = {g for g in floors if self._asked_for(g)}
        self.group_of: dict[str, str] = {}  # nodeid -> group
        self.passed: Counter[str] = Counter()

    def _asked_for(self, group: str) -> bool:
        """One of the run's arguments names the group's whole folder (itself or a parent)."""
        here = self.config.invocation_params.dir
        folder = (self.tests_root / group).resolve()
        return any(
            folder.is_relative_to((here / arg.split("::", 1)[0]).resolve())
            for arg in self.config.args
        )

    def shortfalls(self) -> list[str]:
        """One line per broken floor (empty: every floor held)."""
        lines = []
        for group in sorted(self.wanted):
            floor = self.floors.get(group)
            if floor is None:
                lines.append(
                    f"tests/{group} has no floor: add `{group} = <count>` to the floor file"
                )
            elif self.passed[group] < floor:
                lines.append(
                    f"tests/{group}: {self.passed[group]} passed, fewer than its floor of {floor}"
                )
        return lines

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:  # after -k / -m deselection
            try:
                parts = item.path.resolve().relative_to(self.tests_root).parts
            except ValueError:
                continue
            if len(parts) > 1:
                self.group_of[item.nodeid] = parts[0]
        # A folder that collected tests but has no floor is checked too (it needs one).
        unfloored = set(self.group_of.values()) - set(self.floors)
        self.wanted |= {g for g in unfloored if self._asked_for(g)}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.passed and not hasattr(report, "wasxfail"):
            group = self.group_of.get(report.nodeid)
            if group is not None:
                self.passed[group] += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR):
            return
        if self.shortfalls():
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.wanted:
            return
        shortfalls = self.shortfalls()
        terminalreporter.section("test floors", sep="-", red=bool(shortfalls), bold=True)
        for group in sorted(self.wanted):
            floor = self.floors.get(group, "none")
            terminalreporter.line(f"tests/{group}: {self.passed[group]} passed (floor {floor})")
        for line in shortfalls:
            terminalreporter.line(f"FLOOR BROKEN: {line}", red=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--floors",
        metavar="PATH",
        default=None,
        help="fail the run when a group of tests (a top-level folder next to PATH) passed fewer "
        "tests than its floor in PATH (TOML, table [floors]: group = minimum)",
    )


def load(path: Path) -> dict[str, int]:
    """`[floors]` of the TOML file at `path`: group -> minimum number of passed tests."""
    with path.open("rb") as f:
        table = tomllib.load(f).get("floors")
    if not isinstance(table, dict) or not table:
        raise pytest.UsageError(f"{path}: no [floors] table")
    bad = [g for g, n in table.items() if not isinstance(n, int) or isinstance(n, bool) or n < 1]
    if bad:
        raise pytest.UsageError(f"{path}: floors must be whole numbers >= 1: {', '.join(bad)}")
    return dict(table)


def pytest_configure(config: pytest.Config) -> None:
    option = config.getoption("floors", default=None)
    if not option:
        return
    path = (config.invocation_params.dir / option).resolve()
    if not path.is_file():
        raise pytest.UsageError(f"--floors {option}: no such file")
    config.pluginmanager.register(FloorCheck(config, path.parent, load(path)), "floor-check")
