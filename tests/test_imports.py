"""The package's import graph: no circles, and a numeric core that imports nothing above it.

Every import counts: at module level, inside functions, and under ``TYPE_CHECKING`` (a
circle there still ties two modules together for the reader and for mypy).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "greenai"

NUMERIC_CORE = ("greenai.curve", "greenai.windows", "greenai.timeline", "greenai.ledger")
NUMERIC_CORE_RECORDS = ("greenai.measurement", "greenai.parts", "greenai.jobrecord")
HIGHER = ("greenai.compress", "greenai.report", "greenai.distributed", "greenai.integrations")

KNOWN_CIRCLES: list[set[str]] = []
"""Circles still to untie (each entry is a whole circle); empty when the graph is clean."""


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    stubs = {_module_name(p, root): p for p in root.rglob("*.pyi")}  # C extensions
    return {**stubs, **{_module_name(p, root): p for p in root.rglob("*.py")}}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The greenai module that importing ``name`` runs (the longest existing prefix)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """``module -> modules of the package it imports``, counting every import statement."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from pkg import sub`` imports the submodule when there is one
                targets.update(
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                )
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                targets.add(node.args[0].value)
        resolved = {_resolve(t, modules) for t in targets if t.split(".")[0] == root.name}
        graph[name] = {t for t in resolved if t is not None and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for child in graph.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def test_the_walker_finds_a_circle_and_its_members() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [{"a", "b", "c"}]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_walker_sees_imports_in_functions_and_under_type_checking(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("import importlib\nimportlib.import_module('pkg.a')\n")
    (root / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n"
    )
    (root / "sub" / "c.py").write_text("from .b import x\nimport os\n")
    graph = import_graph(root)
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": set(),
        "pkg.sub.b": {"pkg.a"},
        "pkg.sub.c": {"pkg.sub.b"},
    }
    assert circles(graph) == [{"pkg.a", "pkg.sub.b"}]


def test_greenai_has_no_import_circle() -> None:
    found = circles(import_graph())
    new = [c for c in found if c not in KNOWN_CIRCLES]
    assert not new, f"import circles: {[sorted(c) for c in new]}"
    fixed = [c for c in KNOWN_CIRCLES if c not in found]
    assert not fixed, f"untied: remove {[sorted(c) for c in fixed]} from KNOWN_CIRCLES"


@pytest.mark.parametrize("module", NUMERIC_CORE + NUMERIC_CORE_RECORDS)
def test_the_numeric_core_imports_nothing_above_it(module: str) -> None:
    graph = import_graph()
    higher = sorted(m for m in _reach(graph, module) if m.startswith(HIGHER))
    assert not higher, f"{module} reaches {higher}"


def test_the_numeric_core_loads_without_torch() -> None:
    code = (
        "import sys\n"
        "import greenai.curve, greenai.windows, greenai.timeline, greenai.ledger\n"
        "import greenai.measurement\n"
        "from greenai.windows import across_offsets\n"
        "across_offsets([1.0, 2.0], 0.1)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'\n"
        "               or m.startswith(('greenai.compress', 'greenai.report',\n"
        "                                'greenai.distributed', 'greenai.integrations')))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


TRACKER_CORE = (
    "tracker.py",
    "run.py",
    "assembly.py",
    "jobview.py",
    "options.py",
    "work.py",
    "live.py",
    "decorate.py",
    "cuda_sync.py",
    "carbon/extras.py",
    "flags.py",
    "checks.py",
)


@pytest.mark.parametrize("name", TRACKER_CORE)
def test_the_tracker_core_reads_in_one_sitting(name: str) -> None:
    path = PACKAGE / name
    source = path.read_text()
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"  # type: ignore[operator]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > 60  # type: ignore[operator]
    ]
    assert not long, f"{name}: functions over 60 lines: {long}"
    assert source.count("\n") <= 400, f"{name} has {source.count(chr(10))} lines"


UNCERTAINTY_CORE = ("windows.py", "curve.py")
"""The uncertainty rules: each function reads in one sitting (modules may run longer)."""


@pytest.mark.parametrize("name", UNCERTAINTY_CORE)
def test_the_uncertainty_rules_read_in_one_sitting(name: str) -> None:
    source = (PACKAGE / name).read_text()
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"  # type: ignore[operator]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > 60  # type: ignore[operator]
    ]
    assert not long, f"{name}: functions over 60 lines: {long}"
