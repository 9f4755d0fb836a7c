"""The LLVM engine: LLVM IR text -> optimised module -> object code -> LLJIT library.

Objects are produced by our own TargetMachine and handed to LLJIT as object images,
so the same bytes can later be cached on disk. Each compiled module is one LLJIT
library with its own ResourceTracker; releasing the tracker frees the code.
"""

from __future__ import annotations

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
        _initialised = True


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
        self.target_machine = target.create_target_machine(
            opt=0 if optimize == 0 else 2, reloc="pic", codemodel="default")
        self.triple = llvm.get_process_triple()
        self.lljit = llvm.create_lljit_compiler(self.target_machine)
        self.optimize = optimize
        self.log = log or Log()
        self.imports: dict[str, int] = {}
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
            builder = llvm.JITLibraryBuilder().add_object_img(obj)
            for name, address in self.imports.items():
                builder.import_symbol(name, address)
            for name in exports:
                builder.export_symbol(name)
            name = f"m{next(self._names)}"
            tracker = builder.link(self.lljit, name)
        except (RuntimeError, ValueError) as exc:
            raise CompileError(stage, blocks, str(exc)) from exc
        self.stats["modules"] += 1
        self.stats["functions"] += len(blocks)
        return CompiledModule(name, {e: tracker[e] for e in exports}, tracker,
                              object_size=len(obj))
