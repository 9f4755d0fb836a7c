"""The LLVM engine: LLVM IR text -> optimised module -> object code -> LLJIT library.

Objects are produced by our own TargetMachine and handed to LLJIT as object images,
so the same bytes can later be cached on disk. Each compiled module is one LLJIT
library with its own ResourceTracker; releasing the tracker frees the code.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import llvmlite.binding as llvm

from llvmtcg.log import Log

_initialised = False


def _init_llvm() -> None:
    global _initialised
    if not _initialised:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_native_asmparser()  # inline asm (ldmxcsr/stmxcsr)
        _initialised = True


def host_target() -> tuple[str, str]:
    """(CPU name, feature string) code is generated for: the host's, so FP code gets
    SSE4.1 rounding, FMA and AVX encodings where the host has them."""
    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


@functools.cache
def libm_symbols() -> dict[str, int]:
    """libm entry points LLVM may call for float intrinsics the host lacks (fma without
    FMA, floor/ceil/trunc without SSE4.1): all correctly rounded in glibc."""
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    names = [f"{base}{suffix}" for base in ("fma", "floor", "ceil", "trunc", "roundeven",
                                            "nearbyint", "rint", "sqrt")
             for suffix in ("", "f")]
    return {n: ctypes.cast(getattr(libm, n), ctypes.c_void_p).value
            for n in names if hasattr(libm, n)}


class CompileError(Exception):
    """LLVM rejected a module; names the blocks and the stage that failed."""

    def __init__(self, stage: str, blocks: Iterable[str], detail: str) -> None:
        names = ", ".join(blocks)
        super().__init__(f"{stage} failed for block(s) {names}: {detail.strip()}")
        self.stage = stage


@dataclass(eq=False)
class CompiledModule:
    """Native code of one module; alive until :meth:`release`."""

    name: str
    addresses: dict[str, int]
    tracker: object | None
    live_blocks: int = 0
    object_size: int = 0
    object: bytes | None = None  # the object code, kept until the code cache has it
    released: bool = field(default=False)

    def release(self) -> None:
        """Free the module's code. Callers guarantee no native frame is running in it."""
        if not self.released:
            self.tracker = None  # dropping the last reference disposes the tracker
            self.released = True


class JitEngine:
    """Compiles LLVM IR text to native code.

    Args:
        optimize: 0 = the cheap tier (SROA, then FastISel codegen: ~1 ms per block);
            1 = also instcombine, GVN, DSE and simplifycfg, with optimising codegen
            (several times slower to compile; for hot code).
        log: where ``-d llvm`` and ``-d out_asm`` output goes.
    """

    _PIPELINES = {
        0: ("sroa",),
        1: ("sroa", "instruction_combine", "new_gvn", "dead_store_elimination",
            "simplify_cfg"),
    }

    def __init__(self, optimize: int = 0, log: Log | None = None) -> None:
        _init_llvm()
        if optimize not in self._PIPELINES:
            raise ValueError(f"optimize must be one of {sorted(self._PIPELINES)}")
        target = llvm.Target.from_default_triple()
        self.cpu_name, self.cpu_features = host_target()
        # The large code model reaches constant pools (FP code has them) and imports
        # through 64-bit absolute relocations: RuntimeDyld's PC-relative 32-bit ones
        # overflow when a module's code and data land more than 2 GiB apart, which big
        # guest-memory reservations make happen (docs/ARCHITECTURE.md, Floating point).
        self.target_machine = target.create_target_machine(
            cpu=self.cpu_name, features=self.cpu_features,
            opt=0 if optimize == 0 else 2, reloc="static", codemodel="large")
        self.triple = llvm.get_process_triple()
        self.lljit = llvm.create_lljit_compiler(self.target_machine)
        self.optimize = optimize
        self.log = log or Log()
        self.imports: dict[str, int] = dict(libm_symbols())
        self._names = itertools.count()
        self.stats = {"modules": 0, "functions": 0}

    def add_imports(self, symbols: Mapping[str, int]) -> None:
        """Addresses of native symbols (helpers, slow paths) modules may call."""
        self.imports.update(symbols)

    def _optimise(self, module: llvm.ModuleRef) -> None:
        # A fresh pass manager per module: llvmlite's prebuilt pipelines must not be
        # reused across modules.
        pto = llvm.create_pipeline_tuning_options(speed_level=self.optimize)
        pb = llvm.create_pass_builder(self.target_machine, pto)
        mpm = llvm.create_new_module_pass_manager()
        for name in self._PIPELINES[self.optimize]:
            getattr(mpm, f"add_{name}_pass")()
        mpm.run(module, pb)

    def compile(self, ir_text: str, exports: Iterable[str],
                blocks: Iterable[str] = ()) -> CompiledModule:
        """Compile one module and return the addresses of ``exports``.

        Raises:
            CompileError: naming ``blocks`` and the stage (parse, verify, optimise,
                codegen, link) that failed.
        """
        blocks = list(blocks) or ["<module>"]
        exports = list(exports)
        stage = "parse"
        try:
            module = llvm.parse_assembly(ir_text)
            stage = "verify"
            module.verify()
            stage = "optimise"
            self._optimise(module)
            if self.log.enabled("llvm"):
                self.log.write(f"LLVM IR for {', '.join(blocks)}:\n{module}")
            if self.log.enabled("out_asm"):
                asm = self.target_machine.emit_assembly(module)
                self.log.write(f"OUT: host code for {', '.join(blocks)}:\n{asm}")
            stage = "codegen"
            obj = self.target_machine.emit_object(module)
            stage = "link"
            tracker = self._link(obj, exports)
            name = tracker.name
        except (RuntimeError, ValueError) as exc:
            raise CompileError(stage, blocks, str(exc)) from exc
        self.stats["modules"] += 1
        self.stats["functions"] += len(blocks)
        return CompiledModule(name, {e: tracker[e] for e in exports}, tracker,
                              object_size=len(obj), object=obj)

    def load_object(self, obj: bytes, exports: Iterable[str],
                    blocks: Iterable[str] = ()) -> CompiledModule:
        """Link previously compiled object code (from the code cache)."""
        blocks = list(blocks) or ["<module>"]
        exports = list(exports)
        try:
            tracker = self._link(obj, exports)
        except (RuntimeError, ValueError) as exc:
            raise CompileError("link", blocks, str(exc)) from exc
        self.stats["loaded"] = self.stats.get("loaded", 0) + 1
        return CompiledModule(tracker.name, {e: tracker[e] for e in exports}, tracker,
                              object_size=len(obj))

    def _link(self, obj: bytes, exports: list[str]):
        builder = llvm.JITLibraryBuilder().add_object_img(obj)
        for name, address in self.imports.items():
            builder.import_symbol(name, address)
        for name in exports:
            builder.export_symbol(name)
        return builder.link(self.lljit, f"m{next(self._names)}")
