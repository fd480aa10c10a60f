"""The modules of ``promptver`` import each other without cycles.

Every ``import``/``from … import`` in every module counts — at module level, inside functions
and under ``if TYPE_CHECKING:`` alike. A lazy import (kept inside a function for start-up cost)
or a type-only one is still a dependency a reader has to follow, and a cycle through it means two
layers know each other (the four cycles of issue 17 ran through exactly such imports). So the
rule is simply: dependencies point down, never back. Where a lower layer needs to name a type
from above, it declares the shape it uses (a ``Protocol``, as ``promptver.store.routing`` and
``promptver.analysis`` do) or the type moves down.

What is not an edge: a package's ``__init__`` being run because a submodule of it is imported
(``promptver.store.db`` does not depend on ``promptver.store``'s re-exports); only importing a
name *from* the package itself (``from promptver.metrics import X`` with ``X`` not a submodule)
is an edge to the package. The graph is read with ``ast`` (no import happens, no dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: one import edge: (importer, imported, line of the import in the importer)
Edge = tuple[str, str, int]


def module_files(root: Path, package: str = "promptver") -> dict[str, tuple[Path, bool]]:
    """Dotted module name → (file, is a package ``__init__``) for every module of ``package``."""
    out: dict[str, tuple[Path, bool]] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts.pop()
        out[".".join(parts)] = (path, is_pkg)
    return out


def _known(name: str, modules: dict[str, tuple[Path, bool]]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (None: not ours)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or None


def import_edges(modules: dict[str, tuple[Path, bool]]) -> list[Edge]:
    """Every import between two modules of the package (see the module doc for what counts)."""
    edges: list[Edge] = []
    for name, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):  # every node: function bodies and TYPE_CHECKING blocks too
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the package containing this module
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                # ``from pkg import sub`` imports the submodule; ``from pkg import name``, pkg
                targets = [
                    f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                    for a in node.names
                ]
            for target in targets:
                mod = _known(target, modules)
                if mod is not None and mod != name:
                    edges.append((name, mod, node.lineno))
    return edges


def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges, in order) per strongly connected group of modules."""
    graph: dict[str, dict[str, int]] = {}
    for a, b, line in edges:
        graph.setdefault(a, {}).setdefault(b, line)
        graph.setdefault(b, {})
    # Tarjan's strongly connected components, iteratively (no recursion limit to hit)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    group = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        group.append(w)
                        if w == v:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    cycles = []
    for group in groups:
        members = set(group)
        first = group[0]
        # breadth-first inside the group: the shortest way from `first` back to itself
        came_from: dict[str, str] = {}
        frontier = [first]
        while frontier and first not in came_from:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w in members and w not in came_from:
                        came_from[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [first]
        while True:
            path.append(came_from[path[-1]])
            if path[-1] == first:
                break
        path.reverse()
        cycles.append([(a, b, graph[a][b]) for a, b in zip(path, path[1:])])
    return cycles


def describe(cycle: list[Edge]) -> str:
    return " -> ".join([f"{a} (line {line})" for a, _, line in cycle] + [cycle[-1][1]])


def test_promptver_has_no_import_cycle() -> None:
    modules = module_files(ROOT)
    assert "promptver.workspace" in modules and "promptver.store.db" in modules
    cycles = find_cycles(import_edges(modules))
    assert not cycles, "import cycles inside promptver (dependencies must point down):\n" + (
        "\n".join(describe(c) for c in cycles)
    )


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, tuple[Path, bool]]:
    for rel, text in files.items():
        p = tmp_path / "promptver" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return module_files(tmp_path)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # module level
        ({"a.py": "import promptver.b\n", "b.py": "from promptver import a\n"}, ["a", "b"]),
        # inside a function, and a relative import
        (
            {"a.py": "def f():\n    from .b import x\n", "b.py": "from promptver.a import y\n"},
            ["a", "b"],
        ),
        # type-only, three modules long, in a subpackage
        (
            {
                "s/__init__.py": "",
                "s/a.py": "from promptver.s import b\n",
                "s/b.py": "from promptver.c import z\n",
                "c.py": (
                    "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n    from promptver.s.a import Thing\n"
                ),
            },
            ["c", "s.a", "s.b"],
        ),
        # a name re-exported by a package, imported by one of its submodules
        (
            {
                "m/__init__.py": "from promptver.m.x import f\n",
                "m/x.py": "from promptver.m import g\n",
            },
            ["m", "m.x"],
        ),
    ],
)
def test_a_new_cycle_is_found_and_named(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    cycles = find_cycles(import_edges(_package(tmp_path, files)))
    assert len(cycles) == 1
    assert sorted(a for a, _, _ in cycles[0]) == [f"promptver.{m}" for m in expected]
    text = describe(cycles[0])
    assert text.count(" -> ") == len(expected) and "line " in text


def test_layered_imports_are_not_cycles(tmp_path: Path) -> None:
    files = {
        "__init__.py": "from promptver.top import T\n",
        "top.py": "from promptver.store import db\nfrom promptver import errors\n",
        "store/__init__.py": "from promptver.store.db import Database\n",
        "store/db.py": "from promptver.errors import E\nfrom . import helpers\n",
        "store/helpers.py": "import os\n",
        "errors.py": "def f():\n    import json\n",
    }
    assert find_cycles(import_edges(_package(tmp_path, files))) == []
