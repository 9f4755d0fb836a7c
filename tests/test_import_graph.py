"""The import graph of ``llvmtcg``: no module takes part in an import cycle, and the
library imports nothing from ``machines``, ``devices`` or ``launcher``.

The graph is built from the source with ``ast`` (nothing is imported). Its edges are
the imports that run when a module is imported:

* module-level ``import`` / ``from ... import`` statements, including those in
  module-level ``try``/``if`` blocks and class bodies;
* NOT imports inside functions (they run when the function is called, after every
  module involved has finished importing), and NOT imports under
  ``if TYPE_CHECKING:`` (they never run; annotations are not evaluated);
* ``from pkg import name`` is an edge to the module ``pkg.name`` if there is one, else
  to ``pkg``; importing ``a.b.c`` also runs the packages ``a`` and ``a.b``, which are
  edges too, except a module's own enclosing packages (Python initialises those before
  the module starts, so they can never see it half-initialised).

A cycle is a strongly connected component of more than one module. (tests/test_layers.py
counts the imports this leaves out too, and finds no cycle either.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.import_graph import library_modules, strongly_connected_components

FORBIDDEN = ("machines", "devices", "launcher")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of a module body that run at import time (recursively)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_time_statements(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody"):
            yield from _import_time_statements(getattr(node, field, []) or [])
        for handler in getattr(node, "handlers", []) or []:
            yield from _import_time_statements(handler.body)
        for case in getattr(node, "cases", []) or []:
            yield from _import_time_statements(case.body)


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules (of ``known``) whose import the module ``name`` triggers at import time."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _import_time_statements(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names
                           if f"{base}.{alias.name}" in known)
    edges: set[str] = set()
    own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):  # the target and the packages it runs
            module = ".".join(parts[:i])
            if module in known and module not in own_packages and module != name:
                edges.add(module)
    return edges


def import_graph() -> dict[str, set[str]]:
    modules = library_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, (path, _) in modules.items()}


def import_cycles() -> list[set[str]]:
    return [c for c in strongly_connected_components(import_graph()) if len(c) > 1]


def _describe(cycles: list[set[str]]) -> str:
    return "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def test_no_module_of_llvmtcg_is_in_an_import_cycle() -> None:
    cycles = import_cycles()
    assert not cycles, f"import cycles: {_describe(cycles)}"


def test_the_lowering_is_in_no_import_cycle() -> None:
    for cycle in import_cycles():
        assert not any(m.startswith("llvmtcg.ir") for m in cycle), _describe([cycle])


def test_the_library_imports_no_machine_device_or_launcher_code() -> None:
    offenders = []
    for name, (path, _) in library_modules().items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):  # anywhere, function-local imports included
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            offenders += [f"{name} imports {n}" for n in names
                          if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


# -- the checker itself ---------------------------------------------------------------------

def _graph_of(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    modules = {}
    for p in sorted(tmp_path.rglob("*.py")):
        parts = list(p.relative_to(tmp_path).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = p
    return {n: imported_modules(n, p, set(modules)) for n, p in modules.items()}


def test_the_checker_sees_cycles_and_ignores_what_does_not_run(tmp_path: Path) -> None:
    graph = _graph_of(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "from .c import thing\n",
        "pkg/c.py": "import pkg.a\n",
        "pkg/d.py": ("from typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from pkg import e\n"
                     "def f():\n    from pkg import e\n"),
        "pkg/e.py": "try:\n    from pkg.d import f\nexcept ImportError:\n    pass\n",
    })
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert graph["pkg.d"] == set()
    assert graph["pkg.e"] == {"pkg.d"}
    cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert cycles == [{"pkg.a", "pkg.b", "pkg.c"}]


def test_a_package_init_importing_its_importer_is_a_cycle(tmp_path: Path) -> None:
    graph = _graph_of(tmp_path, {
        "p/__init__.py": "from q.m import x\n",
        "q/__init__.py": "",
        "q/m.py": "from p.sub import y\n",  # runs p/__init__, which imports q.m
        "p/sub.py": "y = 1\n",
    })
    assert graph["q.m"] == {"p", "p.sub"}
    cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert cycles == [{"p", "q.m"}]
