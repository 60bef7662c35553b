"""The test floors (tests/floors.py): a run asked for a whole group fails when that group passed
fewer tests than its floor, whatever the reason (tests deleted, deselected, skipped), and passes
when every floor holds. Each case runs pytest on a small suite of its own (pytester)."""

from __future__ import annotations

import pytest

FLOORS = """
[floors]
alpha = 2
beta = 1
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """tests/alpha with two passing tests, tests/beta with one, and the floors above."""
    pytester.makefile(".toml", **{"tests/floors": FLOORS})
    pytester.makepyfile(
        **{
            "tests/alpha/test_a": "def test_one():\n    pass\n\ndef test_two():\n    pass\n",
            "tests/beta/test_b": "def test_three():\n    pass\n",
        }
    )
    return pytester


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest("-p", "floors", "--floors", "tests/floors.toml", *args)


def test_every_floor_held_passes_and_lists_each_group(suite: pytest.Pytester) -> None:
    result = run(suite, "tests")
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["tests/alpha: 2 passed (floor 2)", "tests/beta: 1 passed (floor 1)"]
    )


def test_a_group_with_fewer_tests_than_its_floor_fails_the_run(suite: pytest.Pytester) -> None:
    (suite.path / "tests" / "alpha" / "test_a.py").write_text("def test_one():\n    pass\n")
    result = run(suite, "tests")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FLOOR BROKEN: tests/alpha: 1 passed, fewer than its floor of 2"])


def test_a_deleted_group_fails_the_run(suite: pytest.Pytester) -> None:
    (suite.path / "tests" / "beta" / "test_b.py").unlink()
    result = run(suite, "tests")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FLOOR BROKEN: tests/beta: 0 passed, fewer than its floor of 1"])


def test_a_group_emptied_by_deselection_fails_the_run(suite: pytest.Pytester) -> None:
    result = run(suite, "tests", "-k", "not three")
    result.assert_outcomes(passed=2, deselected=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FLOOR BROKEN: tests/beta: 0 passed*"])


def test_everything_deselected_fails_as_a_broken_floor(suite: pytest.Pytester) -> None:
    result = run(suite, "tests", "-k", "nothing_is_called_this")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FLOOR BROKEN: tests/alpha: 0 passed*"])


def test_skipped_tests_do_not_count_towards_a_floor(suite: pytest.Pytester) -> None:
    (suite.path / "tests" / "beta" / "test_b.py").write_text(
        "import pytest\n\n@pytest.mark.skip(reason='off')\ndef test_three():\n    pass\n"
    )
    result = run(suite, "tests")
    result.assert_outcomes(passed=2, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FLOOR BROKEN: tests/beta: 0 passed*"])


def test_a_group_without_a_floor_fails_the_run(suite: pytest.Pytester) -> None:
    suite.makepyfile(**{"tests/gamma/test_c": "def test_four():\n    pass\n"})
    result = run(suite, "tests")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FLOOR BROKEN: tests/gamma has no floor*"])


def test_a_run_of_one_group_checks_that_group_only(suite: pytest.Pytester) -> None:
    result = run(suite, "tests/alpha")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["tests/alpha: 2 passed (floor 2)"])
    result.stdout.no_fnmatch_line("tests/beta*")


def test_a_run_of_single_files_checks_no_group(suite: pytest.Pytester) -> None:
    result = run(suite, "tests/alpha/test_a.py::test_one")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*test floors*")


def test_a_floor_file_without_floors_is_a_usage_error(suite: pytest.Pytester) -> None:
    (suite.path / "tests" / "floors.toml").write_text("[floors]\nalpha = 0\n")
    result = run(suite, "tests")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*floors must be whole numbers >= 1: alpha*"])
