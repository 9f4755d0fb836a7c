"""The LLVM engine: LLVM IR text -> optimised module -> object code -> LLJIT library.

Objects are produced by our own TargetMachine and handed to LLJIT as object images,
so the same bytes can later be cached on disk. Each compiled module is one LLJIT
library with its own ResourceTracker; releasing the tracker frees the code.

:class:`ObjectCompiler` is the optimising tier's half: IR text -> object code in a
private LLVM context with its own TargetMachine, safe to run on a worker thread while
the main thread compiles and links cheap blocks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import os
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import llvmlite.binding as llvm
from llvmlite.binding import ffi

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
        perf_map: name every linked function in /tmp/perf-<pid>.map for Linux perf.
    """

    _PIPELINES = {
        0: ("sroa",),
        1: ("sroa", "instruction_combine", "new_gvn", "dead_store_elimination",
            "simplify_cfg"),
    }

    def __init__(self, optimize: int = 0, log: Log | None = None,
                 perf_map: bool = False) -> None:
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
        # Imports live in one library of absolute symbols that every module links
        # against (a new one whenever imports are added; old ones stay for the modules
        # linked to them): defining the imports in each module's own library cost
        # ~0.25 ms per link (0.58 -> 0.34 ms per cached object).
        self._imports_library: str | None = None
        self._imports_trackers: list[object] = []
        self.perf_map = perf_map
        self._perf_map_file = None
        self._perf_map_pid = 0
        self.stats = {"modules": 0, "functions": 0}

    def add_imports(self, symbols: Mapping[str, int]) -> None:
        """Addresses of native symbols (helpers, slow paths) modules may call."""
        if any(self.imports.get(name) != address for name, address in symbols.items()):
            self.imports.update(symbols)
            self._imports_library = None

    def _current_imports_library(self) -> str:
        if self._imports_library is None:
            builder = llvm.JITLibraryBuilder()
            for name, address in self.imports.items():
                builder.import_symbol(name, address)
            name = f"imports{next(self._names)}"
            self._imports_trackers.append(builder.link(self.lljit, name))
            self._imports_library = name
        return self._imports_library

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
        addresses = {e: tracker[e] for e in exports}
        self._perf_map([obj], addresses)
        return CompiledModule(name, addresses, tracker, object_size=len(obj), object=obj)

    def inspect(self, ir_text: str) -> tuple[str, str]:
        """The LLVM IR of a module after this engine's optimisation pipeline, and the
        host assembly it compiles to (nothing is linked; for the embedding API's
        ``Emulator.translation``).

        Raises:
            CompileError: the module does not parse, verify or compile.
        """
        stage = "parse"
        try:
            module = llvm.parse_assembly(ir_text)
            stage = "verify"
            module.verify()
            stage = "optimise"
            self._optimise(module)
            stage = "codegen"
            return str(module), self.target_machine.emit_assembly(module)
        except (RuntimeError, ValueError) as exc:
            raise CompileError(stage, ["<inspect>"], str(exc)) from exc

    def load_object(self, obj: bytes | list[bytes], exports: Iterable[str],
                    blocks: Iterable[str] = ()) -> CompiledModule:
        """Link previously compiled object code (from the code cache). Several objects
        (whose symbols differ) link as one library: a link costs ~0.3-0.7 ms, plus
        ~0.15 ms per object."""
        blocks = list(blocks) or ["<module>"]
        exports = list(exports)
        objs = [obj] if isinstance(obj, bytes) else obj
        try:
            tracker = self._link(objs, exports)
        except (RuntimeError, ValueError) as exc:
            raise CompileError("link", blocks, str(exc)) from exc
        self.stats["loaded"] = self.stats.get("loaded", 0) + len(objs)
        self.stats["loaded_libraries"] = self.stats.get("loaded_libraries", 0) + 1
        addresses = {e: tracker[e] for e in exports}
        self._perf_map(objs, addresses)
        return CompiledModule(tracker.name, addresses, tracker,
                              object_size=sum(map(len, objs)))

    def _perf_map(self, objs: list[bytes], addresses: Mapping[str, int]) -> None:
        """With ``perf_map``: name our functions for Linux ``perf`` in
        /tmp/perf-<pid>.map, as QEMU's -perfmap does."""
        if not self.perf_map:
            return
        if self._perf_map_file is None or self._perf_map_pid != os.getpid():
            self._perf_map_pid = os.getpid()  # (a forked child writes its own map)
            self._perf_map_file = open(f"/tmp/perf-{os.getpid()}.map", "a",  # noqa: SIM115
                                       buffering=1)
        for obj in objs:
            for name, size in elf_function_sizes(obj).items():
                if name in addresses and size:
                    self._perf_map_file.write(f"{addresses[name]:x} {size:x} {name}\n")

    def _link(self, obj: bytes | list[bytes], exports: list[str]):
        objs = [obj] if isinstance(obj, bytes) else obj
        imports = self._current_imports_library()
        builder = llvm.JITLibraryBuilder()
        for o in objs:
            builder.add_object_img(o)
        builder.add_jit_library(imports)
        for name in exports:
            builder.export_symbol(name)
        return builder.link(self.lljit, f"m{next(self._names)}")


_ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_ELF_SECTION = struct.Struct("<IIQQQQIIQQ")
_ELF_SYMBOL = struct.Struct("<IBBHQQ")
_SHT_SYMTAB, _STT_FUNC = 2, 2


def elf_function_sizes(obj: bytes) -> dict[str, int]:
    """Function symbols of an ELF64 relocatable object and their sizes ({} if the bytes
    are not one)."""
    try:
        header = _ELF_HEADER.unpack_from(obj)
        if header[0][:4] != b"\x7fELF":
            return {}
        shoff, shentsize, shnum = header[6], header[11], header[12]
        sections = [_ELF_SECTION.unpack_from(obj, shoff + i * shentsize) for i in range(shnum)]
        out: dict[str, int] = {}
        for sh in sections:
            if sh[1] != _SHT_SYMTAB:
                continue
            strtab = sections[sh[6]]
            strings = obj[strtab[4]:strtab[4] + strtab[5]]
            for off in range(sh[4], sh[4] + sh[5], _ELF_SYMBOL.size):
                name_off, info, _, _, _, size = _ELF_SYMBOL.unpack_from(obj, off)
                if info & 0xF == _STT_FUNC:
                    end = strings.index(b"\0", name_off)
                    out[strings[name_off:end].decode()] = size
        return out
    except (struct.error, IndexError, ValueError, UnicodeDecodeError):
        return {}


def llvmlite_lock() -> threading.RLock:
    """llvmlite's process-wide lock, taken around every ``ffi.lib`` call. No other thread
    may hold it when the process forks: the child would wait for it forever (a garbage
    collection on the compile thread can finalise llvmlite objects, and take it, at any
    time)."""
    return ffi.lib._lock._lock


def _unlocked(name: str):
    """The raw ctypes function behind ``llvmlite.binding.ffi.lib.<name>``.

    llvmlite serialises every LLVM call behind one process-wide lock. LLVM itself only
    needs that for shared state (the global context, one TargetMachine); a worker that
    owns its context, module, pass builder and TargetMachine may run concurrently with
    the main thread, and must, or a 50 ms optimising compile would stall every
    translation miss of the guest.
    """
    return getattr(ffi.lib, name)._cfn


class ObjectCompiler:
    """Optimising compiles, IR text -> object code, for one thread at a time.

    Everything LLVM touches is private to this object (a context per module, a
    TargetMachine, a pass builder per module), so it can work on a background thread
    next to a :class:`JitEngine` used by the main thread. Codegen is O2.

    The pass pipeline is ours, built fresh for each module (llvmlite's pipelines must
    not be reused across modules): SROA turns the region's register shadows into SSA,
    then the scalar clean-ups. Measured on the hot regions of the benchmarks, LLVM's
    default O2 module pipeline took 4x as long (0.72 s against 0.17 s for nine qsort
    regions) for no faster code (fib 38, crc32 x400: within noise), and a region
    that is installed sooner runs for longer.
    """

    PIPELINE = ("sroa", "instruction_combine", "simplify_cfg", "new_gvn",
                "dead_store_elimination", "simplify_cfg")

    def __init__(self) -> None:
        _init_llvm()
        target = llvm.Target.from_default_triple()
        cpu, features = host_target()
        # Same code model and relocations as JitEngine: objects go to the same LLJIT.
        self.target_machine = target.create_target_machine(
            cpu=cpu, features=features, opt=2, reloc="static", codemodel="large")
        self.triple = llvm.get_process_triple()
        self.lock = threading.Lock()  # held for the duration of one compile

    def compile(self, ir_text: str, blocks: Iterable[str] = (), log: Log | None = None
                ) -> bytes:
        """Object code of one module; ``log`` gets ``-d llvm`` and ``-d out_asm``.

        Raises:
            CompileError: naming ``blocks`` and the stage that failed.
        """
        blocks = list(blocks) or ["<module>"]
        stage = "parse"
        with self.lock:
            context = llvm.create_context()
            module = None
            try:
                module = self._parse(ir_text, context)
                stage = "verify"
                with ffi.OutputString() as message:
                    if _unlocked("LLVMPY_VerifyModule")(module, message):
                        raise RuntimeError(str(message))
                stage = "optimise"
                pto = llvm.create_pipeline_tuning_options(speed_level=2)
                pb = llvm.create_pass_builder(self.target_machine, pto)
                mpm = llvm.create_new_module_pass_manager()
                for name in self.PIPELINE:
                    getattr(mpm, f"add_{name}_pass")()
                _unlocked("LLVMPY_RunNewModulePassManager")(mpm, module, pb)
                if log is not None and log.enabled("llvm"):
                    log.write(f"LLVM IR (optimising tier) for {', '.join(blocks)}:\n{module}")
                if log is not None and log.enabled("out_asm"):
                    asm = self.target_machine.emit_assembly(module)
                    log.write(f"OUT: host code (optimising tier) for {', '.join(blocks)}:\n{asm}")
                stage = "codegen"
                return self._emit(module)
            except (RuntimeError, ValueError) as exc:
                raise CompileError(stage, blocks, str(exc)) from exc
            finally:
                if module is not None:
                    module.close()
                context.close()

    @staticmethod
    def _parse(ir_text: str, context) -> llvm.ModuleRef:
        buffer = ctypes.c_char_p(ir_text.encode())
        with ffi.OutputString() as message:
            handle = _unlocked("LLVMPY_ParseAssembly")(context, buffer, message)
            if message:
                if handle:
                    llvm.ModuleRef(handle, context).close()
                raise RuntimeError(f"LLVM IR parsing error\n{message}")
        return llvm.ModuleRef(handle, context)

    def _emit(self, module: llvm.ModuleRef) -> bytes:
        with ffi.OutputString() as message:
            buffer = _unlocked("LLVMPY_TargetMachineEmitToMemory")(
                self.target_machine, module, 1, message)
            if not buffer:
                raise RuntimeError(str(message))
        try:
            start = ffi.lib.LLVMPY_GetBufferStart(buffer)
            return ctypes.string_at(start, ffi.lib.LLVMPY_GetBufferSize(buffer))
        finally:
            ffi.lib.LLVMPY_DisposeMemoryBuffer(buffer)
