"""The run loop: enter native code, and handle what makes it come back.

Native code returns only on a translation miss (an unlinked exit slot or a jump-cache
miss), an exception, a system call, halt, an exit request, or (once per block) when a
block turns hot; chained blocks and jump-cache hits stay in native code. :class:`Cpu`
ties one CPU state to its softmmu, translation cache, JIT and tiering.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir import host_fp
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.ir.helper_decl import HelperFlag
from llvmtcg.ir.lower_llvm import Lowering
from llvmtcg.ir.ops import EXIT_REASON_BITS, ExitReason
from llvmtcg.ir.types import FFlag, MemOp, RoundingMode
from llvmtcg.log import Log
from llvmtcg.runtime import helpers as helpers_mod
from llvmtcg.runtime import softfloat
from llvmtcg.runtime.codecache import CodeCache, fingerprint
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.exits import (
    EXCP_HELPER_ERROR,
    EXCP_MEM_FAULT,
    EXCP_MISALIGNED,
    CpuExit,
    FaultKind,
    GuestFault,
    MemFault,
)
from llvmtcg.runtime.helpers import HelperRegistry
from llvmtcg.runtime.jit import CompiledModule, JitEngine
from llvmtcg.runtime.softmmu import GuestMemory, Softmmu
from llvmtcg.runtime.tbcache import Frontend, TbCache
from llvmtcg.runtime.tiering import Tiering, sync_from_env, threshold_from_env

_REASON_MASK = (1 << EXIT_REASON_BITS) - 1

# -- slow-path entry points: one set per process, dispatching on the CPU-state address --
_cpus_by_address: dict[int, Cpu] = {}

_SLOW_LOAD_T = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32)
_SLOW_STORE_T = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64,
                                 ctypes.c_uint64, ctypes.c_uint32)


def _slow_path(body: Callable[[Cpu, int, MemOp, int], int | None]) -> Callable[..., int]:
    """Run a slow path; a fault or Python error becomes a nonzero status, never an
    exception crossing native frames."""

    def run(cpu: Cpu, addr: int, oi: int, value: int | None) -> int:
        memop_bits, mmu_idx = abi.decode_oi(oi)
        try:
            result = body(cpu, addr, MemOp.decode(memop_bits), mmu_idx) if value is None \
                else body(cpu, addr, MemOp.decode(memop_bits), mmu_idx, value)
        except GuestFault as fault:
            cpu.record_fault(fault.fault)
            return 1
        except BaseException as exc:  # noqa: BLE001 - an MMIO callback raised
            cpu.record_helper_error(exc)
            return 1
        if result is not None:
            cpu.state.set("slow_value", result)
        return 0

    return run


_run_load = _slow_path(lambda cpu, addr, memop, mmu: cpu.softmmu.load(addr, memop, mmu))
_run_store = _slow_path(lambda cpu, addr, memop, mmu, value:
                        cpu.softmmu.store(addr, value, memop, mmu))
_run_probe = _slow_path(lambda cpu, addr, memop, mmu: cpu.softmmu.probe_atomic(addr, memop, mmu))

_slow_load = _SLOW_LOAD_T(lambda c, addr, oi: _run_load(_cpus_by_address[c], addr, oi, None))
_slow_store = _SLOW_STORE_T(lambda c, addr, value, oi:
                            _run_store(_cpus_by_address[c], addr, oi, value))
_slow_probe = _SLOW_LOAD_T(lambda c, addr, oi: _run_probe(_cpus_by_address[c], addr, oi, None))

_SOFTFLOAT_T = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint32,
                                ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64)


def _run_softfloat(c: int, info: int, a: int, b: int, x: int) -> int:
    """Exact float op for what the host cannot round (see ir/host_fp.py). Its flags go
    into cpu.fp_env, which the callback thunk loads back into MXCSR."""
    cpu = _cpus_by_address[c]
    try:
        op, dst_bits, src_bits, rm = host_fp.decode_softfloat(info)
        bits, flags = softfloat.run_op(op, dst_bits, src_bits, rm, a, b, x)
    except BaseException as exc:  # noqa: BLE001 - must not unwind into native code
        cpu.record_helper_error(exc)
        return 0
    if flags:
        cpu.state.set("fp_env", cpu.state.get("fp_env") | host_fp.mxcsr_from_flags(flags))
    return bits


_softfloat = _SOFTFLOAT_T(_run_softfloat)

SLOW_PATH_SYMBOLS = {
    host_fp.SOFTFLOAT: ctypes.cast(_softfloat, ctypes.c_void_p).value,
    abi.SLOW_LOAD: ctypes.cast(_slow_load, ctypes.c_void_p).value,
    abi.SLOW_STORE: ctypes.cast(_slow_store, ctypes.c_void_p).value,
    abi.SLOW_PROBE: ctypes.cast(_slow_probe, ctypes.c_void_p).value,
}

# One native entry trampoline: a single ctypes prototype serves every block, and the
# GIL is released while guest code runs. It swaps the host's MXCSR for the guest's around
# the call: guest float ops round in the guest's dynamic mode and raise their flags in
# MXCSR, from where they return to cpu.fp_env for the run loop to collect.
_ENTER_IR = """
define i64 @llvmtcg_enter(ptr %fn, ptr %cpu, ptr %mem) {{
  %host = getelementptr i8, ptr %cpu, i64 {host_fp_env}
  %env = getelementptr i8, ptr %cpu, i64 {fp_env}
  call void asm sideeffect "stmxcsr $0", "=*m,~{{memory}}"(ptr elementtype(i32) %host)
  call void asm sideeffect "ldmxcsr $0", "*m,~{{memory}}"(ptr elementtype(i32) %env)
  %r = call i64 %fn(ptr %cpu, ptr %mem)
  call void asm sideeffect "stmxcsr $0", "=*m,~{{memory}}"(ptr elementtype(i32) %env)
  call void asm sideeffect "ldmxcsr $0", "*m,~{{memory}}"(ptr elementtype(i32) %host)
  ret i64 %r
}}
"""

# Python callbacks (slow paths, Python helpers) are entered through native thunks that
# do the reverse swap: the guest's MXCSR goes to cpu.fp_env and the host's is loaded,
# so Python float code in a callback rounds as Python expects and its flags do not leak
# into the guest; a callback may change cpu.fp_env (fcsr writes, soft-float flags), and
# the thunk loads it back on return. Callbacks without the CPU pointer keep the guest's
# MXCSR on the thunk's stack.
_SLOW_PATH_SIGNATURES = {  # symbol: (result, parameters after the CPU pointer)
    abi.SLOW_LOAD: ("i64", ("i64", "i32")),
    abi.SLOW_STORE: ("i64", ("i64", "i64", "i32")),
    abi.SLOW_PROBE: ("i64", ("i64", "i32")),
    host_fp.SOFTFLOAT: ("i64", ("i32", "i64", "i64", "i64")),
}
_STMXCSR = 'call void asm sideeffect "stmxcsr $0", "=*m,~{memory}"(ptr elementtype(i32) '
_LDMXCSR = 'call void asm sideeffect "ldmxcsr $0", "*m,~{memory}"(ptr elementtype(i32) '


def _callback_thunk(layout: CpuLayout, name: str, target: int, ret: str,
                    params: tuple[str, ...], takes_cpu: bool) -> str:
    args = ", ".join([*(["ptr %cpu"] if takes_cpu else []),
                      *(f"{t} %a{i}" for i, t in enumerate(params))])
    lines = [f"define {ret} @{name}({args}) {{"]
    if takes_cpu:
        lines += [f"  %env = getelementptr i8, ptr %cpu, i64 {layout.offset('fp_env')}",
                  f"  %host = getelementptr i8, ptr %cpu, i64 {layout.offset('host_fp_env')}"]
    else:
        lines += ["  %env = alloca i32, align 4", "  %host = alloca i32, align 4",
                  f"  store i32 {host_fp.MXCSR_MASK_ALL}, ptr %host, align 4"]
    call = f"call {ret} inttoptr (i64 {target} to ptr)({args})"
    lines += [f"  {_STMXCSR}%env)", f"  {_LDMXCSR}%host)",
              f"  %r = {call}" if ret != "void" else f"  {call}",
              f"  {_LDMXCSR}%env)", f"  ret {ret} %r" if ret != "void" else "  ret void", "}"]
    return "\n".join(lines)


def _callback_thunks(layout: CpuLayout, helpers: HelperRegistry) -> dict[str, str]:
    """symbol -> LLVM IR of its thunk (named ``<symbol>.thunk``)."""
    thunks = {}
    for symbol, (ret, params) in _SLOW_PATH_SIGNATURES.items():
        thunks[symbol] = _callback_thunk(layout, f"{symbol}.thunk", SLOW_PATH_SYMBOLS[symbol],
                                         ret, params, True)
    for symbol, (decl, address) in helpers.python_helpers().items():
        ret = str(decl.ret) if decl.ret else "void"
        thunks[symbol] = _callback_thunk(layout, f"{symbol}.thunk", address, ret,
                                         tuple(str(t) for t in decl.args),
                                         bool(decl.flags & HelperFlag.TAKES_CPU))
    return thunks


# The soft-float thunk behind LLVM's preserve_all convention (see host_fp): the wrapper
# saves whatever the C call may clobber.
def _preserve_all_wrapper(symbol: str, wrapper: str) -> str:
    """LLVM IR of ``<wrapper>.thunk``: the slow-path thunk ``<symbol>.thunk`` behind LLVM's
    preserve_all convention (the wrapper saves whatever the C call may clobber)."""
    ret, params = _SLOW_PATH_SIGNATURES[symbol]
    args = ["ptr %cpu", *(f"{t} %a{i}" for i, t in enumerate(params))]
    return (f'define preserve_allcc {ret} @"{wrapper}.thunk"({", ".join(args)}) nounwind {{\n'
            f'  %r = call {ret} @"{symbol}.thunk"({", ".join(args)})\n'
            f"  ret {ret} %r\n}}\n")


_ENTER_T = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


@dataclass
class ExecStats:
    native_entries: int = 0  # calls from Python into native code
    exits: dict[str, int] = field(default_factory=dict)


class Cpu:
    """One guest CPU: state, softmmu, translations and the run loop.

    A frontend whose guest has floating point provides two hooks: ``fp_rounding(state)``
    returns the guest's dynamic rounding mode (loaded into the host environment on every
    entry to native code) and ``fp_accrue(state, flags)`` receives the IEEE exception
    flags (:class:`FFlag`) guest float ops raised, after every return from native code.

    Args:
        layout: the CPU-state layout of the guest.
        frontend: translates guest code to IR.
        memory: the guest address space.
        helpers: helpers the frontend's IR calls.
        log: ``-d`` logging.
        max_region_blocks: blocks compiled together per translation miss.
        optimize: the JIT tier of first translations (see :class:`JitEngine`).
        cache_dir: keep compiled code in this persistent cache (None: no disk cache).
        hot_threshold: executions after which a block is hot and a region headed by it
            is compiled by the optimising tier (runtime/tiering.py); 0 turns tiering
            off. Default: ``$LLVMTCG_HOT_THRESHOLD``, else 1000.
        tier_sync: compile hot regions on the run loop's thread and use them at once,
            instead of in the background. Default: ``$LLVMTCG_TIER_SYNC``.
    """

    def __init__(self, layout: CpuLayout, frontend: Frontend, memory: GuestMemory,
                 helpers: HelperRegistry | None = None, log: Log | None = None,
                 max_region_blocks: int = 8, optimize: int = 0,
                 cache_dir: Path | None = None, hot_threshold: int | None = None,
                 tier_sync: bool | None = None) -> None:
        self.log = log or Log()
        self.frontend = frontend
        self.state = CpuState(layout)
        self.memory = memory
        self.helpers = helpers or HelperRegistry()
        self.jit = JitEngine(optimize=optimize, log=self.log)
        self.jit.add_imports(self.helpers.symbols())
        thunks = _callback_thunks(layout, self.helpers)
        enter_ir = _ENTER_IR.format(fp_env=layout.offset("fp_env"),
                                    host_fp_env=layout.offset("host_fp_env"))
        softfloat_pa = f"{host_fp.SOFTFLOAT_PRESERVE_ALL}.thunk"
        self._enter_module: CompiledModule = self.jit.compile(
            "\n".join([enter_ir, *thunks.values(),
                       _preserve_all_wrapper(host_fp.SOFTFLOAT, host_fp.SOFTFLOAT_PRESERVE_ALL)]),
            ["llvmtcg_enter", *(f"{symbol}.thunk" for symbol in thunks), softfloat_pa])
        addresses = self._enter_module.addresses
        self._enter = _ENTER_T(addresses["llvmtcg_enter"])
        # Blocks call Python only through the thunks.
        self.jit.add_imports({symbol: addresses[f"{symbol}.thunk"] for symbol in thunks})
        self.jit.add_imports({host_fp.SOFTFLOAT_PRESERVE_ALL: addresses[softfloat_pa]})
        # Optional frontend FP hooks: the guest's dynamic rounding mode, and where the
        # exception flags its float ops raised are accrued.
        self._fp_rounding = getattr(frontend, "fp_rounding", None)
        self._fp_accrue = getattr(frontend, "fp_accrue", None)
        # The cheap tier calls shared memory accessors (half the IR to compile); the
        # optimising tier expands the TLB probe inline.
        if hot_threshold is None:
            hot_threshold = threshold_from_env()
        count_insns = getattr(frontend, "counts_insns", False)
        lowering = Lowering(layout, self.helpers.declarations(), count_insns=count_insns,
                            inline_memory=optimize >= 1, hot_threshold=hot_threshold)
        code_cache = None
        if cache_dir is not None:
            code_cache = CodeCache(cache_dir, fingerprint(
                type(frontend).__qualname__, getattr(frontend, "model", None),
                sorted((f.name, f.offset, f.count) for f in layout.fields.values()),
                layout.tlb_bits, layout.n_mmu_idx, optimize, lowering.count_insns,
                lowering.inline_memory, lowering.hot_threshold,
                sorted(self.helpers.symbols())))
        self.tbs = TbCache(frontend, lowering, self.jit, self._fetch, self.log,
                           max_region_blocks, code_cache)
        self.softmmu = Softmmu(self.state, memory, self.tbs)
        self.tbs.new_code_page.append(self.state.tlb_flush_page)
        self.tbs.new_code_page.append(lambda page: memory.set_code_page(page, True))
        self.tbs.code_page_freed.append(lambda page: memory.set_code_page(page, False))
        self.state.set("page_table", memory.page_table)
        self.state.set("page_count", memory.page_count)
        memory.on_change.append(self._memory_changed)
        self.state.set("jmp_cache", self.tbs.jmp_cache_address)
        self.tiering: Tiering | None = None
        if hot_threshold:
            # Guest RAM is a GuestMemory (identity-mapped from %mem, with a page-flag
            # table): hot code checks the page flags inline and never misses a TLB.
            region_lowering = Lowering(layout, self.helpers.declarations(),
                                       count_insns=count_insns, inline_memory=True,
                                       flat_memory=True)
            self.tiering = Tiering(self.tbs, frontend, region_lowering,
                                   self.state.request_exit,
                                   sync_from_env() if tier_sync is None else tier_sync,
                                   self.log)
        self.stats = ExecStats()
        self.pending_error: BaseException | None = None
        self.fault: MemFault | None = None
        self._stop = False
        _cpus_by_address[self.state.address] = self

    def counters(self) -> dict[str, object]:
        """Translation, tiering, code-cache and run-loop counters (``$LLVMTCG_STATS``)."""
        out: dict[str, object] = {"native_entries": self.stats.native_entries,
                                  "exits": dict(self.stats.exits), "tb": dict(self.tbs.stats)}
        if self.tiering is not None:
            out["tier"] = dict(self.tiering.stats)
        if self.tbs.code_cache is not None:
            out["cache"] = dict(self.tbs.code_cache.stats)
        return out

    def close(self) -> None:
        _cpus_by_address.pop(self.state.address, None)
        if self.tiering is not None:
            self.tiering.close()

    # -- called from native code (through helpers and slow paths) -------------------------
    def record_fault(self, fault: MemFault) -> None:
        self.fault = fault
        index = EXCP_MISALIGNED if fault.kind is FaultKind.MISALIGNED else EXCP_MEM_FAULT
        self.state.set("exception_index", index)
        self.state.set("fault_addr", fault.addr)
        self.state.set("fault_access", int(fault.access))

    def raise_exception(self, index: int) -> None:
        """From a MAY_RAISE helper: leave the block with guest exception ``index``."""
        self.state.set("exception_index", index)
        self.state.set("helper_status", 1)

    def record_helper_error(self, exc: BaseException) -> None:
        if self.pending_error is None:
            self.pending_error = exc
        self.state.set("exception_index", EXCP_HELPER_ERROR)
        self.state.set("helper_status", 1)
        self.state.request_exit()

    # -- control from Python ------------------------------------------------------------
    @property
    def pc(self) -> int:
        return self.state.pc

    @pc.setter
    def pc(self, value: int) -> None:
        self.state.pc = value

    def stop(self) -> None:
        """Stop the run loop at the next block boundary (safe from any thread)."""
        self._stop = True
        self.state.request_exit()

    def _fetch(self, addr: int, size: int) -> bytes:
        return self.softmmu.fetch(addr, size)

    def _memory_changed(self, start: int, end: int) -> None:
        # Mappings changed: drop cached translations of addresses and the code there.
        self.state.tlb_flush()
        self.tbs.invalidate_range(start, end)

    def invalidate_range(self, start: int, end: int) -> int:
        """Drop translations of guest code in [start, end) (fence.i, explicit flush)."""
        return self.tbs.invalidate_range(start, end)

    def flush(self) -> None:
        self.tbs.flush()
        self.state.tlb_flush()

    # -- the loop -------------------------------------------------------------------------
    def _count(self, reason: ExitReason) -> None:
        self.stats.exits[reason.name] = self.stats.exits.get(reason.name, 0) + 1

    def run(self) -> CpuExit:
        """Run guest code from ``pc`` until an exception, syscall, halt or stop.

        Raises:
            Exception: whatever a Python helper or MMIO callback raised, re-raised here.
        """
        state = self.state
        tbs = self.tbs
        mem_base = self.memory.base
        previous = helpers_mod.current.cpu
        helpers_mod.current.cpu = self
        try:
            next_tb = None
            tiering = self.tiering
            while True:
                tbs.release_pending()
                if state.exit_requested:
                    state.set("exit_request", 0)
                    if self.pending_error is not None:
                        self._raise_pending()
                    if self._stop:
                        self._stop = False
                        return CpuExit(ExitReason.REQUESTED, state.pc)
                if tiering is not None and tiering.ready:
                    tiering.install_ready()
                if next_tb is None or not next_tb.valid:
                    try:
                        next_tb = tbs.get(state.pc)
                    except GuestFault as fault:
                        self.record_fault(fault.fault)
                        return self._exception_exit()
                self.stats.native_entries += 1
                state.set("fp_env", self._guest_fp_env())
                result = self._enter(next_tb.entry, state.address, mem_base)
                self._collect_fp_flags()
                reason = ExitReason(result & _REASON_MASK)
                self._count(reason)
                if self.log.enabled("exec"):
                    self.log.write(f"exit {reason.name} pc={state.pc:#x}")
                next_tb = None
                if reason is ExitReason.CHAIN:
                    owner = tbs.slot_owner(result & ~_REASON_MASK)
                    try:
                        next_tb = tbs.get(state.pc)
                    except GuestFault as fault:
                        self.record_fault(fault.fault)
                        return self._exception_exit()
                    if owner is not None:
                        tbs.link(owner[0], owner[1], next_tb)
                elif reason is ExitReason.LOOKUP:
                    try:
                        next_tb = tbs.get(state.pc)
                    except GuestFault as fault:
                        self.record_fault(fault.fault)
                        return self._exception_exit()
                    tbs.jmp_cache_set(next_tb)
                elif reason is ExitReason.EXCEPTION:
                    if self.pending_error is not None:
                        state.set("exit_request", 0)
                        self._raise_pending()
                    return self._exception_exit()
                elif reason is ExitReason.REQUESTED:
                    continue
                elif reason is ExitReason.HOT:
                    if tiering is not None:
                        tiering.hot(state.pc)
                else:  # HALT, SYSCALL
                    return CpuExit(reason, state.pc)
        finally:
            helpers_mod.current.cpu = previous
            tbs.release_pending()

    # -- the guest's FP environment ------------------------------------------------------
    def _guest_fp_env(self) -> int:
        rounding = self._fp_rounding(self.state) if self._fp_rounding else RoundingMode.RNE
        return host_fp.guest_mxcsr(rounding)

    def _collect_fp_flags(self) -> None:
        """Hand the exception flags guest float ops raised to the frontend's accrued
        flags and clear them (the rounding control stays)."""
        env = self.state.get("fp_env")
        if env & host_fp.MXCSR_FLAGS and self._fp_accrue is not None:
            self.state.set("fp_env", env & ~host_fp.MXCSR_FLAGS)
            self._fp_accrue(self.state, FFlag(host_fp.flags_from_mxcsr(env)))

    def _exception_exit(self) -> CpuExit:
        state = self.state
        index = state.get_signed("exception_index")
        fault = self.fault if index in (EXCP_MEM_FAULT, EXCP_MISALIGNED) else None
        self.fault = None
        state.set("helper_status", 0)
        state.set("exception_index", 0xFFFF_FFFF)
        return CpuExit(ExitReason.EXCEPTION, state.pc, index, fault)

    def _raise_pending(self) -> None:
        error, self.pending_error = self.pending_error, None
        self.state.set("helper_status", 0)
        self.state.set("exception_index", 0xFFFF_FFFF)
        raise error
