"""Layering rules, checked on the import graph of ``llvmtcg`` (parsed with ``ast``).

Every import counts: module level, inside functions, and under ``TYPE_CHECKING`` (a
stricter graph than tests/test_import_graph.py's, which has only the imports that run
when a module is imported): a dependency is a dependency, whenever it is resolved. An
import of ``a.b.c`` is an edge to ``a.b.c`` alone, and a module's own enclosing
packages are never edges (Python initialises them first). Modules imported by name through
``importlib`` — the architecture registries' lazily loaded entries — are not edges,
by design: that is how generic code finds an ISA without depending on it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from tests.import_graph import library_modules, strongly_connected_components

RISCV = "llvmtcg.frontends.riscv"


def modules() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package)."""
    return library_modules()


def _resolve(name: str) -> str | None:
    """The llvmtcg module ``name`` is, or is defined in (``pkg.attr`` -> ``pkg``)."""
    mods = modules()
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(module: str) -> set[str]:
    """Every dotted name ``module`` imports (absolute; relative imports resolved):
    ``from m import x`` gives ``m.x`` when that is a module, else ``m``."""
    path, is_package = modules()[module]
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                names.add(full if full in modules() else source)
    return names


@functools.cache
def import_graph() -> dict[str, frozenset[str]]:
    """llvmtcg module -> the llvmtcg modules it imports. A module's own enclosing
    packages are no edges: Python initialises them before the module runs."""
    graph = {}
    for module in modules():
        own_packages = {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}
        targets = {_resolve(name) for name in _imported_names(module)
                   if name == "llvmtcg" or name.startswith("llvmtcg.")}
        graph[module] = frozenset(t for t in targets
                                  if t is not None and t != module and t not in own_packages)
    return graph


def reachable(module: str) -> set[str]:
    graph, seen, todo = import_graph(), set(), [module]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def cycles() -> list[set[str]]:
    """Strongly connected components of more than one module."""
    graph = {module: set(targets) for module, targets in import_graph().items()}
    return [c for c in strongly_connected_components(graph) if len(c) > 1]


def is_generic(module: str) -> bool:
    """Modules that must not know any particular guest ISA: the runtime, the IR, the
    architecture contract, and user mode except its per-architecture ABI modules."""
    if module.startswith("llvmtcg.user.arch."):
        return False  # llvmtcg/user/arch/<isa>.py
    layer = module.split(".")[1] if "." in module else ""
    return layer in ("runtime", "ir", "arch", "user", "log", "options")


def test_the_graph_sees_imports() -> None:
    """The parser finds what we know is there (a guard against a vacuous graph)."""
    graph = import_graph()
    assert "llvmtcg.runtime.tbcache" in graph["llvmtcg.runtime.cpu_exec"]
    assert "llvmtcg.frontends.riscv.frontend" in graph["llvmtcg.frontends.riscv.arch"]
    assert "llvmtcg.frontends.decodetree" in graph["llvmtcg.frontends.riscv"]  # relative
    assert "llvmtcg.user.guest" in graph["llvmtcg.user.syscalls.files"]  # TYPE_CHECKING
    assert RISCV + ".arch" in reachable("llvmtcg.user.arch.riscv64")


def test_generic_layers_do_not_import_riscv() -> None:
    generic = [m for m in modules() if is_generic(m)]
    assert "llvmtcg.user.process" in generic and "llvmtcg.runtime.cpu_exec" in generic
    offenders = {m: sorted(t for t in reachable(m) if t == RISCV or t.startswith(RISCV + "."))
                 for m in generic}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_syscalls_do_not_import_the_process() -> None:
    syscall_modules = [m for m in modules() if m.startswith("llvmtcg.user.syscalls")]
    assert len(syscall_modules) >= 8
    for module in syscall_modules:
        assert "llvmtcg.user.process" not in reachable(module), module


def test_no_cycles_even_through_type_only_or_function_level_imports() -> None:
    assert [sorted(c) for c in cycles()] == []
