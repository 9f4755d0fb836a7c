"""The LLVM engine: LLVM IR text -> optimised module -> object code -> loaded native code.

Objects are produced by our own TargetMachine and loaded by our own relocating loader
(``runtime/native/loader.py``) into a :class:`CodeArena`, the same way whether LLVM
just made them or the code cache kept them, so a run whose code is all cached never
needs LLVM: llvmlite is imported by :func:`llvm_binding` only, the first time something
is compiled (on the main thread for a translation miss, on the compile thread for a
hot region). Loaded code stays in the arena until it is reset.

:class:`ObjectCompiler` is the optimising tier's half: IR text -> object code in a
private LLVM context with its own TargetMachine, safe to run on a worker thread while
the main thread compiles and links cheap blocks.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.util
import itertools
import os
import struct
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from llvmtcg.log import Log
from llvmtcg.runtime.native import loader
from llvmtcg.runtime.native.arena import ArenaFull, CodeArena

if TYPE_CHECKING:
    import llvmlite.binding as llvm_types

_llvm = None  # llvmlite.binding once llvm_binding() imported it
_llvm_import_lock = threading.Lock()


def llvm_binding():
    """``llvmlite.binding``, imported and initialised for the host on first use. The one
    place llvmtcg imports llvmlite: nothing on the start-up path may (importing and
    initialising it costs ~0.1-0.2 s and ~40 MB), so only compiling calls this."""
    global _llvm
    if _llvm is None:
        with _llvm_import_lock:
            if _llvm is None:
                import llvmlite.binding as llvm

                llvm.initialize_native_target()
                llvm.initialize_native_asmprinter()
                llvm.initialize_native_asmparser()  # inline asm (ldmxcsr/stmxcsr)
                _llvm = llvm
    return _llvm


def host_target() -> tuple[str, str]:
    """(CPU name, feature string) code is generated for: the host's, so FP code gets
    SSE4.1 rounding, FMA and AVX encodings where the host has them."""
    llvm = llvm_binding()
    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


@functools.cache
def code_identity() -> tuple[str, ...]:
    """What the object code LLVM makes here depends on besides its input, found without
    importing llvmlite (the code cache's key must be known on a warm start): the LLVM
    build (llvmlite's shared library: path, size, modification time) and the host CPU
    LLVM targets (:func:`host_target` derives name and features from CPUID, which
    /proc/cpuinfo's vendor, family, model, stepping and flags report)."""
    spec = importlib.util.find_spec("llvmlite")  # finds the package without importing it
    library = "llvmlite: not installed"
    if spec is not None and spec.submodule_search_locations:
        binding = Path(next(iter(spec.submodule_search_locations))) / "binding"
        for path in sorted(binding.glob("libllvmlite*")):
            st = path.stat()
            library = f"{path}:{st.st_size}:{st.st_mtime_ns}"
    cpu = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor describes them all
                key, _, value = line.partition(":")
                cpu[key.strip()] = value.strip()
    except OSError:
        pass
    fields = ("vendor_id", "cpu family", "model", "stepping", "flags")
    return (os.uname().machine, library,
            *(cpu.get(k, "") for k in fields))


@functools.cache
def libm_symbols() -> dict[str, int]:
    """libm entry points LLVM may call for float intrinsics the host lacks (fma without
    FMA, floor/ceil/trunc without SSE4.1): all correctly rounded in glibc."""
    try:  # (glibc's soname: ctypes.util.find_library runs ldconfig in a child process)
        libm = ctypes.CDLL("libm.so.6")
    except OSError:
        from ctypes.util import find_library  # noqa: PLC0415 - another libc

        libm = ctypes.CDLL(find_library("m"))
    names = [f"{base}{suffix}" for base in ("fma", "floor", "ceil", "trunc", "roundeven",
                                            "nearbyint", "rint", "sqrt")
             for suffix in ("", "f")]
    return {n: ctypes.cast(getattr(libm, n), ctypes.c_void_p).value
            for n in names if hasattr(libm, n)}


_process = ctypes.CDLL(None)


class _Imports(dict):
    """Symbols loaded code may import: ours first, then the process's own (``memcpy``,
    ``memset`` and the like, which LLVM may call for intrinsics), as LLJIT resolved them."""

    def get(self, name: str, default: int | None = None) -> int | None:
        address = dict.get(self, name)
        if address is None:
            try:
                address = ctypes.cast(getattr(_process, name), ctypes.c_void_p).value
            except AttributeError:
                return default
        return address


class ObjectStore(Protocol):
    """Where :meth:`JitEngine.compile_cached` keeps objects between processes (the code
    cache)."""

    def lookup_module(self, key: str) -> bytes | None: ...

    def store_module(self, key: str, obj: bytes) -> None: ...


class CompileError(Exception):
    """LLVM rejected a module; names the blocks and the stage that failed."""

    def __init__(self, stage: str, blocks: Iterable[str], detail: str) -> None:
        names = ", ".join(blocks)
        super().__init__(f"{stage} failed for block(s) {names}: {detail.strip()}")
        self.stage = stage


# The code zone of the JIT engine's arenas (the data zone is a quarter of it):
# LLVM-compiled objects are a few KB to a few hundred KB each.
JIT_ARENA_CODE = 32 << 20


@dataclass(eq=False)
class CompiledModule:
    """Native code of one module; alive until :meth:`release`."""

    name: str
    addresses: dict[str, int]
    loaded: tuple[loader.LoadedObject, ...] = ()
    live_blocks: int = 0
    object_size: int = 0
    object: bytes | None = None  # the object code, kept until the code cache has it
    released: bool = field(default=False)
    arenas: tuple[CodeArena, ...] = field(default=(), repr=False)  # where its code is
    # Told when the module is released (JitEngine: frees an arena nothing lives in).
    on_release: Callable[[CompiledModule], None] | None = field(default=None, repr=False)

    def release(self) -> None:
        """Forget the module's code. Callers guarantee no native frame is running in it.
        (Its arena is unmapped once no module in it is alive and another arena takes
        new code, not before.)"""
        if self.released:
            return
        self.released = True
        if self.on_release is not None:
            self.on_release(self)


class JitEngine:
    """Compiles LLVM IR text to native code and loads object code.

    Args:
        optimize: 0 = the cheap tier (SROA, then FastISel codegen: ~1 ms per block);
            1 = also instcombine, GVN, DSE and simplifycfg, with optimising codegen
            (several times slower to compile; for hot code).
        log: where ``-d llvm`` and ``-d out_asm`` output goes.
        perf_map: name every linked function in /tmp/perf-<pid>.map for Linux perf.
        object_store: where :meth:`compile_cached` finds and keeps objects.

    LLVM is only imported by the first compile; loading objects never needs it.
    """

    _PIPELINES = {
        0: ("sroa",),
        1: ("sroa", "instruction_combine", "new_gvn", "dead_store_elimination",
            "simplify_cfg"),
    }

    def __init__(self, optimize: int = 0, log: Log | None = None,
                 perf_map: bool = False, object_store: ObjectStore | None = None,
                 arena_size: int = JIT_ARENA_CODE) -> None:
        if optimize not in self._PIPELINES:
            raise ValueError(f"optimize must be one of {sorted(self._PIPELINES)}")
        self.optimize = optimize
        self.log = log or Log()
        self.object_store = object_store
        self.imports: _Imports = _Imports(libm_symbols())
        self._names = itertools.count()
        self._target_machine = None
        self._host: tuple[str, str] | None = None
        self._triple: str | None = None
        # Where loaded code goes. Objects use the large code model (64-bit absolute
        # references only), so a full arena is followed by another one; one that no live
        # module is left in is then unmapped (code rewritten or retired again and again
        # — self-modifying code, regions retired — would otherwise keep every arena
        # it ever filled). Arenas hold JIT_ARENA_CODE bytes of code, so that happens in
        # steps of tens of MB rather than the baseline arena's hundreds.
        self.arena_size = arena_size
        self.arena = CodeArena(arena_size, max(arena_size // 4, 1 << 16))
        self._arenas = [self.arena]
        self._live_modules: dict[int, int] = {id(self.arena): 0}  # arena -> live modules
        self._finalizer = weakref.finalize(self, _close_arenas, self._arenas)
        self.perf_map = perf_map
        self._perf_map_file = None
        self._perf_map_pid = 0
        self.stats = {"modules": 0, "functions": 0}

    @property
    def cpu_name(self) -> str:
        """The host CPU code is generated for (LLVM's name; imports LLVM)."""
        if self._host is None:
            self._host = host_target()
        return self._host[0]

    @property
    def cpu_features(self) -> str:
        """The CPU features code is generated for (LLVM's feature string)."""
        if self._host is None:
            self._host = host_target()
        return self._host[1]

    @property
    def target_machine(self) -> llvm_types.TargetMachine:
        """This engine's TargetMachine (made, and LLVM imported, on first use)."""
        if self._target_machine is None:
            llvm = llvm_binding()
            cpu_name, cpu_features = self.cpu_name, self.cpu_features
            # The large code model reaches constant pools (FP code has them) and imports
            # through 64-bit absolute relocations: 32-bit PC-relative ones would overflow
            # when a module's code and its imports land more than 2 GiB apart, which big
            # guest-memory reservations make happen (docs/ARCHITECTURE.md, Floating
            # point).
            self._target_machine = llvm.Target.from_default_triple().create_target_machine(
                cpu=cpu_name, features=cpu_features, opt=0 if self.optimize == 0 else 2,
                reloc="static", codemodel="large")
        return self._target_machine

    @property
    def triple(self) -> str:
        """The host's target triple, which lowered modules name."""
        if self._triple is None:
            self._triple = llvm_binding().get_process_triple()
        return self._triple

    def add_imports(self, symbols: Mapping[str, int]) -> None:
        """Addresses of native symbols (helpers, slow paths) modules may call."""
        self.imports.update(symbols)

    def _optimise(self, module: llvm_types.ModuleRef) -> None:
        # A fresh pass manager per module: llvmlite's prebuilt pipelines must not be
        # reused across modules.
        llvm = llvm_binding()
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
        obj = self._compile_object(ir_text, blocks)
        module = self._load([obj], list(exports), blocks)
        self.stats["modules"] += 1
        self.stats["functions"] += len(blocks)
        module.object = obj
        return module

    def compile_cached(self, ir_text: str, exports: Iterable[str],
                       blocks: Iterable[str] = ()) -> CompiledModule:
        """:meth:`compile`, through the object store: a module whose text was compiled
        before (the entry trampoline, thunks, the signal catcher: the same text in
        every process) is loaded from there without LLVM. The text must name every
        address it uses as an import, never as a constant."""
        if self.object_store is None:
            return self.compile(ir_text, exports, blocks)
        key = hashlib.sha256(ir_text.encode()).hexdigest()[:32]
        obj = self.object_store.lookup_module(key)
        if obj is not None:
            try:
                module = self._load([obj], list(exports), list(blocks) or ["<module>"])
                self.stats["cached_modules"] = self.stats.get("cached_modules", 0) + 1
                return module
            except CompileError:
                pass  # (e.g. an import the object names no longer exists): compile anew
        module = self.compile(ir_text, exports, blocks)
        self.object_store.store_module(key, module.object)
        return module

    def _compile_object(self, ir_text: str, blocks: list[str]) -> bytes:
        stage = "parse"
        try:
            llvm = llvm_binding()
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
            return self.target_machine.emit_object(module)
        except (RuntimeError, ValueError) as exc:
            raise CompileError(stage, blocks, str(exc)) from exc

    def inspect(self, ir_text: str) -> tuple[str, str]:
        """The LLVM IR of a module after this engine's optimisation pipeline, and the
        host assembly it compiles to (nothing is linked; for the embedding API's
        ``Emulator.translation``).

        Raises:
            CompileError: the module does not parse, verify or compile.
        """
        stage = "parse"
        try:
            module = llvm_binding().parse_assembly(ir_text)
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
        """Load previously compiled object code (from the code cache) and return the
        addresses of ``exports``. Several objects load as one module; each may use the
        symbols of those before it.

        Raises:
            CompileError: an object does not load (stage "link").
        """
        blocks = list(blocks) or ["<module>"]
        objs = [obj] if isinstance(obj, bytes) else obj
        module = self._load(objs, list(exports), blocks)
        self.stats["loaded"] = self.stats.get("loaded", 0) + len(objs)
        self.stats["loaded_libraries"] = self.stats.get("loaded_libraries", 0) + 1
        return module

    def _load(self, objs: list[bytes], exports: list[str], blocks: list[str]
              ) -> CompiledModule:
        loaded: list[loader.LoadedObject] = []
        arenas: list[CodeArena] = []  # the arenas the module's objects went into
        symbols: dict[str, int] = {}
        sizes: dict[str, int] = {}
        imports = self.imports
        try:
            for obj in objs:
                if symbols:
                    imports = _Imports(self.imports)
                    imports.update(symbols)
                try:
                    done = loader.load_object(self.arena, obj, imports)
                except ArenaFull:
                    self._next_arena(len(obj))
                    done = loader.load_object(self.arena, obj, imports)
                if not arenas or arenas[-1] is not self.arena:
                    arenas.append(self.arena)
                loaded.append(done)
                symbols.update(done.symbols)
                sizes.update(done.sizes)
            addresses = {e: symbols[e] for e in exports}
        except (loader.LoaderError, ArenaFull) as exc:
            raise CompileError("link", blocks, str(exc)) from exc
        except KeyError as exc:
            raise CompileError("link", blocks, f"symbol {exc.args[0]!r} is not defined") \
                from None
        if self.perf_map:
            self._write_perf_map(addresses, sizes)
        for arena in arenas:
            self._live_modules[id(arena)] += 1
        module = CompiledModule(f"m{next(self._names)}", addresses, tuple(loaded),
                                object_size=sum(map(len, objs)), arenas=tuple(arenas),
                                on_release=self._module_released)
        return module

    def _next_arena(self, size: int) -> None:
        """The current arena is full: load into a new one (big enough for an object of
        ``size`` bytes); the old one goes once nothing lives in it."""
        full = self.arena
        code = max(self.arena_size, 2 * size)
        self.arena = CodeArena(code, max(code // 4, 1 << 16))
        self._arenas.append(self.arena)
        self._live_modules[id(self.arena)] = 0
        self._free_if_dead(full)

    def _module_released(self, module: CompiledModule) -> None:
        for arena in module.arenas:
            self._live_modules[id(arena)] -= 1
            self._free_if_dead(arena)

    def _free_if_dead(self, arena: CodeArena) -> None:
        if arena is self.arena or self._live_modules.get(id(arena)) != 0:
            return
        del self._live_modules[id(arena)]
        self._arenas.remove(arena)
        arena.close()
        self.stats["arenas_freed"] = self.stats.get("arenas_freed", 0) + 1

    def _write_perf_map(self, addresses: Mapping[str, int], sizes: Mapping[str, int]) -> None:
        """Name our functions for Linux ``perf`` in /tmp/perf-<pid>.map, as QEMU's
        -perfmap does."""
        for name, address in addresses.items():
            if sizes.get(name):
                self.perf_map_entry(address, sizes[name], name)

    def perf_map_entry(self, address: int, size: int, name: str) -> None:
        """With ``perf_map``: one line of /tmp/perf-<pid>.map (code generated without
        LLVM, like baseline blocks, is named here too)."""
        if not self.perf_map:
            return
        if self._perf_map_file is None or self._perf_map_pid != os.getpid():
            self._perf_map_pid = os.getpid()  # (a forked child writes its own map)
            self._perf_map_file = open(f"/tmp/perf-{os.getpid()}.map", "a",  # noqa: SIM115
                                       buffering=1)
        self._perf_map_file.write(f"{address:x} {size:x} {name}\n")


def _close_arenas(arenas: list[CodeArena]) -> None:
    for arena in arenas:
        arena.close()


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


class _NoLock:
    """Stands for llvmlite's lock while llvmlite is not imported (nothing to hold)."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def __enter__(self) -> _NoLock:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def llvmlite_lock() -> threading.RLock | _NoLock:
    """llvmlite's process-wide lock, taken around every ``ffi.lib`` call. No other thread
    may hold it when the process forks: the child would wait for it forever (a garbage
    collection on the compile thread can finalise llvmlite objects, and take it, at any
    time). A stand-in while llvmlite is not imported (then no thread can hold it)."""
    ffi = sys.modules.get("llvmlite.binding.ffi")
    if ffi is None:
        return _NoLock()
    return ffi.lib._lock._lock


def _unlocked(name: str):
    """The raw ctypes function behind ``llvmlite.binding.ffi.lib.<name>``.

    llvmlite serialises every LLVM call behind one process-wide lock. LLVM itself only
    needs that for shared state (the global context, one TargetMachine); a worker that
    owns its context, module, pass builder and TargetMachine may run concurrently with
    the main thread, and must, or a 50 ms optimising compile would stall every
    translation miss of the guest.
    """
    return getattr(llvm_binding().ffi.lib, name)._cfn


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
        self.lock = threading.Lock()  # held for the duration of one compile
        self._target_machine = None
        self._triple: str | None = None

    @property
    def target_machine(self) -> llvm_types.TargetMachine:
        """The optimising TargetMachine; made (and LLVM imported, on the calling thread:
        the compile thread's first compile) on first use."""
        if self._target_machine is None:
            llvm = llvm_binding()
            cpu, features = host_target()
            # Same code model and relocations as JitEngine: objects load the same way.
            self._target_machine = llvm.Target.from_default_triple().create_target_machine(
                cpu=cpu, features=features, opt=2, reloc="static", codemodel="large")
        return self._target_machine

    @property
    def triple(self) -> str:
        """The host's target triple. Under the compile lock: the first use may import
        llvmlite, and no fork may happen in the middle of that (the child would inherit
        the import's locks held by a thread it does not have)."""
        if self._triple is None:
            with self.lock:
                self._triple = llvm_binding().get_process_triple()
        return self._triple

    def compile(self, ir_text: str, blocks: Iterable[str] = (), log: Log | None = None
                ) -> bytes:
        """Object code of one module; ``log`` gets ``-d llvm`` and ``-d out_asm``.

        Raises:
            CompileError: naming ``blocks`` and the stage that failed.
        """
        blocks = list(blocks) or ["<module>"]
        stage = "parse"
        with self.lock:
            llvm = llvm_binding()
            ffi = llvm.ffi
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
    def _parse(ir_text: str, context) -> llvm_types.ModuleRef:
        llvm = llvm_binding()
        ffi = llvm.ffi
        buffer = ctypes.c_char_p(ir_text.encode())
        with ffi.OutputString() as message:
            handle = _unlocked("LLVMPY_ParseAssembly")(context, buffer, message)
            if message:
                if handle:
                    llvm.ModuleRef(handle, context).close()
                raise RuntimeError(f"LLVM IR parsing error\n{message}")
        return llvm.ModuleRef(handle, context)

    def _emit(self, module: llvm_types.ModuleRef) -> bytes:
        ffi = llvm_binding().ffi
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
