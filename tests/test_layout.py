"""The layer contract of the package, checked on its source (AST, nothing imported):

- the import graph of ``cgexplain/`` has no circle (function-local imports count too);
- no science package (reference, mapping, model, md, analysis, lrp, plots, geometry) imports
  ``cgexplain.workflow`` or ``cgexplain.cli``;
- ``cgexplain/settings.py`` imports nothing of cgexplain;
- cgexplain's own modules are imported at module top, except in the command line (its start-up);
- no function in ``cgexplain/workflow/`` is longer than 80 lines.

The checker is tested on a small synthetic package, so that it can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "cgexplain"
SCIENCE = ("reference", "mapping", "model", "md", "analysis", "lrp", "plots", "geometry")
LAZY_OWN_IMPORTS_ALLOWED = {"cgexplain.cli"}
MAX_WORKFLOW_FUNCTION_LINES = 80


def _module_name(pkg: Path, path: Path) -> str:
    rel = path.relative_to(pkg.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(pkg: Path) -> dict[str, list[tuple[str, bool, int]]]:
    """module -> [(imported cgexplain module, inside a function?, line)] of every module of ``pkg``."""
    modules = {_module_name(pkg, p): p for p in pkg.rglob("*.py")}
    root = pkg.name
    out: dict[str, list[tuple[str, bool, int]]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        local = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(f)}
        found = []
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == root:
                # ``from cgexplain.x import y``: y may be a module of the package or a name of x
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == root]
            for t in targets:
                while t not in modules and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in modules and t != name:
                    found.append((t, id(node) in local, node.lineno))
        out[name] = found
    return out


def _edges(graph: dict[str, list[tuple[str, bool, int]]]) -> dict[str, set[str]]:
    """module -> the modules it imports, a package's ``__init__`` counted for each of its modules
    (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first)."""
    edges: dict[str, set[str]] = {m: set() for m in graph}
    for m, targets in graph.items():
        for t, _, _ in targets:
            parts = t.split(".")
            for k in range(2, len(parts) + 1):
                parent = ".".join(parts[:k])
                if parent in graph and parent != m and not m.startswith(parent + "."):
                    edges[m].add(parent)
    return edges


def find_cycles(pkg: Path) -> list[list[str]]:
    """The import circles of ``pkg`` (strongly connected components of more than one module, or a
    module importing itself), each as a sorted list of module names (Tarjan's algorithm)."""
    edges = _edges(_imports(pkg))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root / "cgexplain"


def test_checker_finds_a_circle_and_a_lazy_import(tmp_path):
    pkg = _write(
        tmp_path,
        {
            "cgexplain/__init__.py": "",
            "cgexplain/a.py": "from cgexplain.b import f\n",
            "cgexplain/b.py": "def f():\n    from cgexplain import a\n",
            "cgexplain/c.py": "import numpy\n",
            "cgexplain/sub/__init__.py": "from cgexplain.sub.x import g\n",
            "cgexplain/sub/x.py": "def g():\n    return 1\n",
        },
    )
    assert find_cycles(pkg) == [["cgexplain.a", "cgexplain.b"]]
    lazy = [(m, t) for m, ts in _imports(pkg).items() for t, inside, _ in ts if inside]
    assert lazy == [("cgexplain.b", "cgexplain.a")]
    # a package's own __init__ importing its module is no circle
    assert not any("cgexplain.sub" in c for c in find_cycles(pkg))


def test_no_import_circle():
    cycles = find_cycles(PKG)
    assert cycles == [], f"import circles in cgexplain/: {cycles}"


def test_science_packages_do_not_import_the_workflow():
    bad = [
        f"{m} imports {t} (line {line})"
        for m, ts in _imports(PKG).items()
        if m.split(".")[1:2] and m.split(".")[1] in SCIENCE
        for t, _, line in ts
        if t.startswith(("cgexplain.workflow", "cgexplain.cli"))
    ]
    assert bad == []


def test_settings_is_a_leaf():
    assert _imports(PKG)["cgexplain.settings"] == []


def test_own_modules_are_imported_at_module_top():
    lazy = [f"{m} line {line}: {t}" for m, ts in _imports(PKG).items() if m not in LAZY_OWN_IMPORTS_ALLOWED for t, inside, line in ts if inside]
    assert lazy == [], "function-local imports of cgexplain modules hide the dependency graph: " + "; ".join(lazy)


@pytest.mark.parametrize("path", sorted((PKG / "workflow").rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_workflow_functions_are_short(path):
    tree = ast.parse(path.read_text())
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno + 1 > MAX_WORKFLOW_FUNCTION_LINES
    ]
    assert long == []
