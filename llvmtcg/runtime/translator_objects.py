"""Objects that depend on the translator only, kept with the stencil library.

The memory accessors (``xacc.<name>``) and the modules compiled from the same IR text
in every process (``xmod.<digest>``: the entry trampoline and thunks, the host signal
catcher) are compiled by LLVM once per translator fingerprint. The code cache keeps
them, but a run with an empty code cache (a fresh ``-cache-dir``, CI, a first run in a
new directory) would compile them again, importing llvmlite (~65 MB and ~0.15 s of CPU)
for a handful of small functions. :class:`CodeCacheWithTranslatorObjects` keeps a
second copy in the stencil directory, which outlives code caches (as the stencil
library does, ``runtime/native/baseline.py``), so a run with a warm stencil directory
compiles nothing with LLVM until code turns hot.
"""

from __future__ import annotations

from pathlib import Path

from llvmtcg.runtime.codecache import DEFAULT_MAX_BYTES, CodeCache

__all__ = ["CodeCacheWithTranslatorObjects", "code_cache"]


class CodeCacheWithTranslatorObjects(CodeCache):
    """A :class:`CodeCache` whose accessor and module entries are also read from and
    written to ``translator``: the cache of the same fingerprint in the stencil
    directory. Entries found only there are copied into the code cache."""

    def __init__(self, directory: Path, fingerprint: str, stencil_dir: Path,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(directory, fingerprint, max_bytes)
        self.translator = CodeCache(stencil_dir, fingerprint)

    def lookup_accessor(self, name: str) -> bytes | None:
        obj = super().lookup_accessor(name)
        if obj is None:
            obj = self.translator.lookup_accessor(name)
            if obj is not None:
                super().store_accessor(name, obj)
        return obj

    def store_accessor(self, name: str, obj: bytes) -> None:
        super().store_accessor(name, obj)
        self.translator.store_accessor(name, obj)

    def lookup_module(self, key: str) -> bytes | None:
        obj = super().lookup_module(key)
        if obj is None:
            obj = self.translator.lookup_module(key)
            if obj is not None:
                super().store_module(key, obj)
        return obj

    def store_module(self, key: str, obj: bytes) -> None:
        super().store_module(key, obj)
        self.translator.store_module(key, obj)


def code_cache(directory: Path, fingerprint: str, stencil_dir: Path | None) -> CodeCache:
    """The code cache in ``directory``, backed by the stencil directory's copy of the
    translator objects when there is one and it is another directory."""
    if stencil_dir is None or Path(stencil_dir).resolve() == Path(directory).resolve():
        return CodeCache(directory, fingerprint)
    return CodeCacheWithTranslatorObjects(directory, fingerprint, stencil_dir)
