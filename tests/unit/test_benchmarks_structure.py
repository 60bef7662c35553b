"""The benchmark harness's shape (read from its source, nothing imported or run): no import
cycle among the modules of benchmarks/ (also imports inside functions and under TYPE_CHECKING),
and every scenario a run can name is a module's function in the registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "benchmarks"


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: set[str], package: str = PACKAGE) -> set[str]:
    """The package's modules that module `name` imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                anchor = here[: len(here) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    # `import a.b.c` imports a.b.c; the package `a` itself is no edge worth a cycle
    return {m for m in found if m in known and m not in (name, package)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    found = modules(root, package)
    return {name: imports_of(name, path, set(found), package) for name, path in found.items()}


def test_no_module_of_the_benchmarks_imports_itself_through_others() -> None:
    graph = import_graph()
    assert len(graph) > 10, sorted(graph)  # the harness was found
    assert cycles(graph) == []


def test_the_report_and_the_overload_scenario_do_not_import_each_other() -> None:
    graph = import_graph()
    assert "benchmarks.report" not in graph["benchmarks.overload"]
    assert "benchmarks.table" in graph["benchmarks.overload"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from pkg import b", [["pkg.a", "pkg.b"]]),
        ("from pkg.b import thing", [["pkg.a", "pkg.b"]]),
        ("import pkg.b", [["pkg.a", "pkg.b"]]),
        ("from . import b", [["pkg.a", "pkg.b"]]),
        ("def f():\n    from pkg import b\n", [["pkg.a", "pkg.b"]]),
        ("if TYPE_CHECKING:\n    from .b import B\n", [["pkg.a", "pkg.b"]]),
        ("import json", []),
    ],
)
def test_the_cycle_check_finds_a_cycle_however_the_import_is_written(
    tmp_path: Path, source: str, expected: list[list[str]]
) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(source + "\n")
    (package / "b.py").write_text("from pkg.a import something\n")
    (package / "c.py").write_text("from pkg import b\n")
    assert cycles(import_graph(tmp_path, "pkg")) == expected


def test_every_scenario_a_run_can_name_has_a_function_in_a_module_of_its_own() -> None:
    tree = ast.parse((ROOT / PACKAGE / "scenarios.py").read_text(encoding="utf-8"))
    values: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    values[target.id] = node.value
    names = [ast.literal_eval(e) for key in ("ALL", "OPTIONAL") for e in values[key].elts]  # type: ignore[attr-defined]
    registry = values["SCENARIOS"]
    assert isinstance(registry, ast.Dict)
    entries = {
        ast.literal_eval(k): ast.unparse(v)
        for k, v in zip(registry.keys, registry.values, strict=True)
        if k
    }
    # `profile` is the harness's own (it needs the spread-out scenario's rate)
    assert sorted(entries) == sorted(set(names) - {"profile"})
    for name, function in entries.items():
        module, _, attribute = function.partition(".")
        source = ROOT / PACKAGE / f"{module}.py"
        assert source.exists(), (name, function)
        defined = {
            n.name
            for n in ast.parse(source.read_text(encoding="utf-8")).body
            if isinstance(n, ast.FunctionDef)
        }
        assert attribute in defined, (name, function)
    assert (
        len(modules()) >= 18
    )  # one module per scenario (catalogue, spread, ... token_verification)
