"""The code of dataclasses' generated methods, compiled once and kept across processes.

``@dataclass`` writes each class's ``__init__``, ``__repr__``, ``__eq__``,
``__setattr__``... as Python source and compiles it with ``exec`` when the class is
made: ~0.1 ms of ``compile`` per method, ~30 ms of a warm ``llvmtcg-user`` start-up
(~70 classes on its import path, ~340 methods) — the largest single item of importing
llvmtcg. :func:`install` has ``dataclasses`` run code objects compiled from the same
source instead, kept in a ``marshal`` file next to the package's ``.pyc`` files (in
``llvmtcg/__pycache__``, under the interpreter's cache tag and bytecode magic, as a
``.pyc`` is): the methods are the ones ``exec`` would have made from that source —
the source is the key, and the globals and locals are still the ones ``dataclasses``
passes — so nothing about the classes changes but the time taken to make them.

:func:`save` writes the file when this process compiled methods it did not hold
(a changed class, a new Python): never with ``sys.dont_write_bytecode``, as for
``.pyc`` files; a file that cannot be read is ignored (and replaced at the next save).
"""

from __future__ import annotations

import builtins
import dataclasses
import marshal
import os
import sys

# (the frozen import machinery, loaded already: importlib.util would cost ~10 ms)
from _frozen_importlib_external import MAGIC_NUMBER

FILE = os.path.join(os.path.dirname(__file__), "__pycache__",
                    f"dataclass-methods.{sys.implementation.cache_tag}.marshal")
# An entry per distinct source; a file past this many (sources of classes since
# changed) is rewritten with this process's entries only.
_MAX_ENTRIES = 4096

_code: dict[str, object] = {}  # method source -> code object
_used: set[str] = set()
_path: str | None = None  # the file read (None: not installed)
compiled = 0  # method sources this process compiled (not found in the file)
_saved = 0  # ... of which the file has the first _saved


def _exec(source: object, globals: dict | None = None, locals: dict | None = None) -> None:
    """``exec`` for ``dataclasses``: a source string runs as the code compiled from it
    once (``dont_inherit``: compiled as ``dataclasses``' own ``exec`` compiles it, not
    with this module's ``__future__`` flags)."""
    global compiled
    if type(source) is not str:
        builtins.exec(source, globals, locals)
        return
    code = _code.get(source)
    if code is None:
        code = _code[source] = compile(source, "<string>", "exec", dont_inherit=True)
        compiled += 1
    _used.add(source)
    builtins.exec(code, globals, locals)


def install(path: str = FILE) -> None:
    """Make ``dataclasses`` run the code kept in ``path`` (read now; the tests name
    another file). Once a process: later calls change nothing."""
    global _path
    if _path is not None:
        return
    _path = path
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:len(MAGIC_NUMBER)] == MAGIC_NUMBER:
            table = marshal.loads(memoryview(data)[len(MAGIC_NUMBER):])
            if type(table) is dict:
                _code.update(table)
    except (OSError, EOFError, ValueError, TypeError):
        pass  # (none yet, or unreadable: compiled as usual, then saved)
    # (a module global shadows the builtin for dataclasses' own calls only)
    dataclasses.exec = _exec  # type: ignore[attr-defined]


def save() -> None:
    """Write the kept code if this process compiled any (best effort: temporary file
    renamed into place, so concurrent processes leave one whole file)."""
    global _saved
    path = _path
    if path is None or compiled == _saved or sys.dont_write_bytecode:
        return
    _saved = compiled
    table = dict(_code)  # (a copy: another thread may be making a class)
    if len(table) > _MAX_ENTRIES:
        table = {source: table[source] for source in set(_used) if source in table}
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "wb") as f:
            f.write(MAGIC_NUMBER)
            marshal.dump(table, f)
        os.replace(temporary, path)
    except (OSError, ValueError):
        try:
            os.unlink(temporary)
        except OSError:
            pass
