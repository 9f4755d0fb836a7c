"""Runtime options: one frozen object passed down from the command line or the API.

Library code takes a :class:`RuntimeOptions` and never reads the environment. The
command-line layers (``llvmtcg-user``, later launchers) build one with
:func:`options_from_environment`, which is where ``$LLVMTCG_*`` variables are read.

Every field says whether it changes generated code (``codegen`` in its metadata). The
persistent code cache keys its entries with :meth:`RuntimeOptions.codegen_key`, built
from every such field, so a new option that changes code can never share cache entries
with code made without it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_HOT_THRESHOLD = 1000

# Environment variables (read by command-line layers only, through
# options_from_environment).
ENV_HOT_THRESHOLD = "LLVMTCG_HOT_THRESHOLD"  # executions before a block is hot; 0: no tiering
ENV_TIER_SYNC = "LLVMTCG_TIER_SYNC"  # 1: compile hot regions at once, on the run loop's thread
ENV_PERF_MAP = "LLVMTCG_PERF_MAP"  # nonempty: write /tmp/perf-<pid>.map
ENV_CACHE_DIR = "LLVMTCG_CACHE_DIR"  # where the persistent code cache lives
ENV_STENCIL_DIR = "LLVMTCG_STENCIL_DIR"  # where baseline stencil libraries live
ENV_BASELINE = "LLVMTCG_BASELINE"  # 0: no baseline tier (every block through LLVM)


def option(default: Any, *, codegen: bool) -> Any:
    """A :class:`RuntimeOptions` field; ``codegen``: whether its value changes the code
    the runtime generates (and so the code cache's key)."""
    return field(default=default, metadata={"codegen": codegen})


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """How a :class:`~llvmtcg.runtime.cpu_exec.Cpu` translates and runs guest code.

    Attributes:
        optimize: the JIT tier of first translations: 0 (SROA, FastISel) or 1 (a few
            optimisation passes, O2 codegen). See :class:`JitEngine`.
        hot_threshold: executions after which a block is hot and a region headed by it
            is compiled by the optimising tier (runtime/tiering.py); 0 turns tiering
            off. Blocks count down from it in their code.
        flat_memory: hot regions check guest accesses against the page-flag table
            instead of probing the TLB (valid because a GuestMemory maps guest RAM at
            ``%mem + address``).
        max_region_blocks: blocks compiled together per translation miss (a cached
            module serves whichever grouping asks for its guest bytes, so this does
            not change the cache key).
        tier_sync: compile hot regions on the run loop's thread and use them at once,
            instead of in the background (tests, debugging).
        cache_dir: keep compiled code in this persistent cache (None: no disk cache).
        perf_map: name generated functions for Linux perf in /tmp/perf-<pid>.map.
        baseline: translate blocks with the copy-and-patch baseline tier
            (runtime/native/baseline.py) rather than LLVM; blocks it cannot emit still
            go to LLVM. Hot code goes to the LLVM hot-region tier either way.
        arena_size: bytes of the baseline tier's code arena (its data zone is a
            quarter of it); when full, every translation is flushed.
        stencil_dir: where the baseline tier's stencil libraries are kept, one per
            translator fingerprint (None: built in memory once per process). Not the
            code cache: an empty or disabled code cache does not rebuild them.
        program: names the guest program (``baseline_cache.program_key``): with a
            ``cache_dir``, its baseline blocks are kept in one file under that name and
            a later run installs them instead of translating (None: not kept).
    """

    optimize: int = option(0, codegen=True)
    hot_threshold: int = option(DEFAULT_HOT_THRESHOLD, codegen=True)
    flat_memory: bool = option(True, codegen=True)
    max_region_blocks: int = option(8, codegen=False)
    tier_sync: bool = option(False, codegen=False)
    cache_dir: Path | None = option(None, codegen=False)
    perf_map: bool = option(False, codegen=False)
    baseline: bool = option(True, codegen=False)
    arena_size: int = option(256 << 20, codegen=False)
    stencil_dir: Path | None = option(None, codegen=False)
    program: str | None = option(None, codegen=False)

    def __post_init__(self) -> None:
        if self.optimize not in (0, 1):
            raise ValueError(f"optimize must be 0 or 1, not {self.optimize!r}")
        if self.hot_threshold < 0:
            raise ValueError(f"hot_threshold must be >= 0, not {self.hot_threshold!r}")
        if self.arena_size < 1 << 16:
            raise ValueError(f"arena_size must be >= 64 KiB, not {self.arena_size!r}")
        if self.max_region_blocks < 1:
            raise ValueError(f"max_region_blocks must be >= 1, not {self.max_region_blocks!r}")

    def codegen_key(self) -> tuple[tuple[str, object], ...]:
        """(name, value) of every field that changes generated code."""
        return tuple((f.name, getattr(self, f.name)) for f in fields(self)
                     if f.metadata["codegen"])


DEFAULT_OPTIONS = RuntimeOptions()


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """$LLVMTCG_CACHE_DIR, else $XDG_CACHE_HOME/llvmtcg, else ~/.cache/llvmtcg."""
    if environ.get(ENV_CACHE_DIR):
        return Path(environ[ENV_CACHE_DIR])
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(environ.get("XDG_CACHE_HOME") or Path(home) / ".cache") / "llvmtcg"


def default_stencil_dir(environ: Mapping[str, str]) -> Path:
    """$LLVMTCG_STENCIL_DIR, else $XDG_CACHE_HOME/llvmtcg, else ~/.cache/llvmtcg (not
    $LLVMTCG_CACHE_DIR: a fresh code cache keeps the stencils)."""
    if environ.get(ENV_STENCIL_DIR):
        return Path(environ[ENV_STENCIL_DIR])
    home = environ.get("HOME") or os.path.expanduser("~")
    return Path(environ.get("XDG_CACHE_HOME") or Path(home) / ".cache") / "llvmtcg"


def options_from_environment(environ: Mapping[str, str], *, code_cache: bool = True,
                             cache_dir: str | Path | None = None, perf_map: bool = False,
                             **overrides: Any) -> RuntimeOptions:
    """Options for a command-line launcher: the ``$LLVMTCG_*`` variables of ``environ``
    under the launcher's own flags.

    Args:
        environ: the launcher's environment (``os.environ``).
        code_cache: use the persistent code cache, in ``cache_dir`` or else
            :func:`default_cache_dir`.
        perf_map: -perfmap was given (``$LLVMTCG_PERF_MAP`` turns it on too).
        overrides: other :class:`RuntimeOptions` fields.
    """
    threshold = DEFAULT_HOT_THRESHOLD
    try:  # (an unparsable value keeps the default, as it always has)
        if environ.get(ENV_HOT_THRESHOLD, "").strip():
            threshold = max(0, int(environ[ENV_HOT_THRESHOLD]))
    except ValueError:
        pass
    directory = None
    if code_cache:
        directory = Path(cache_dir) if cache_dir else default_cache_dir(environ)
    values: dict[str, Any] = {
        "hot_threshold": threshold,
        "tier_sync": environ.get(ENV_TIER_SYNC, "").strip() not in ("", "0"),
        "perf_map": perf_map or bool(environ.get(ENV_PERF_MAP)),
        "cache_dir": directory,
        "stencil_dir": default_stencil_dir(environ),
        "baseline": environ.get(ENV_BASELINE, "").strip() != "0",
    }
    return RuntimeOptions(**{**values, **overrides})
