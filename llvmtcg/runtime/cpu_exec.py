"""The run loop: enter native code, and handle what makes it come back.

Native code returns only on a translation miss (an unlinked exit slot or a jump-cache
miss), an exception, a system call, halt, or an exit request; chained blocks and
jump-cache hits stay in native code. :class:`Cpu` ties one CPU state to its softmmu,
translation cache and JIT.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.ir.lower_llvm import Lowering
from llvmtcg.ir.ops import EXIT_REASON_BITS, ExitReason
from llvmtcg.ir.types import MemOp
from llvmtcg.log import Log
from llvmtcg.runtime import helpers as helpers_mod
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

SLOW_PATH_SYMBOLS = {
    abi.SLOW_LOAD: ctypes.cast(_slow_load, ctypes.c_void_p).value,
    abi.SLOW_STORE: ctypes.cast(_slow_store, ctypes.c_void_p).value,
    abi.SLOW_PROBE: ctypes.cast(_slow_probe, ctypes.c_void_p).value,
}

# One native entry trampoline: a single ctypes prototype serves every block, and the
# GIL is released while guest code runs.
_ENTER_IR = """
define i64 @llvmtcg_enter(ptr %fn, ptr %cpu, ptr %mem) {
  %r = call i64 %fn(ptr %cpu, ptr %mem)
  ret i64 %r
}
"""
_ENTER_T = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


@dataclass
class ExecStats:
    native_entries: int = 0  # calls from Python into native code
    exits: dict[str, int] = field(default_factory=dict)


class Cpu:
    """One guest CPU: state, softmmu, translations and the run loop.

    Args:
        layout: the CPU-state layout of the guest.
        frontend: translates guest code to IR.
        memory: the guest address space.
        helpers: helpers the frontend's IR calls.
        log: ``-d`` logging.
        max_region_blocks: blocks compiled together per translation miss.
        optimize: the JIT tier (see :class:`JitEngine`).
    """

    def __init__(self, layout: CpuLayout, frontend: Frontend, memory: GuestMemory,
                 helpers: HelperRegistry | None = None, log: Log | None = None,
                 max_region_blocks: int = 8, optimize: int = 0) -> None:
        self.log = log or Log()
        self.frontend = frontend
        self.state = CpuState(layout)
        self.memory = memory
        self.helpers = helpers or HelperRegistry()
        self.jit = JitEngine(optimize=optimize, log=self.log)
        self.jit.add_imports(SLOW_PATH_SYMBOLS)
        self.jit.add_imports(self.helpers.symbols())
        self._enter_module: CompiledModule = self.jit.compile(_ENTER_IR, ["llvmtcg_enter"])
        self._enter = _ENTER_T(self._enter_module.addresses["llvmtcg_enter"])
        # The cheap tier calls shared memory accessors (half the IR to compile); the
        # optimising tier expands the TLB probe inline.
        lowering = Lowering(layout, self.helpers.declarations(),
                            count_insns=getattr(frontend, "counts_insns", False),
                            inline_memory=optimize >= 1)
        self.tbs = TbCache(frontend, lowering, self.jit, self._fetch, self.log,
                           max_region_blocks)
        self.softmmu = Softmmu(self.state, memory, self.tbs)
        self.tbs.new_code_page.append(self.state.tlb_flush_page)
        memory.on_change.append(self._memory_changed)
        self.state.set("jmp_cache", self.tbs.jmp_cache_address)
        self.stats = ExecStats()
        self.pending_error: BaseException | None = None
        self.fault: MemFault | None = None
        self._stop = False
        _cpus_by_address[self.state.address] = self

    def close(self) -> None:
        _cpus_by_address.pop(self.state.address, None)

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
            while True:
                tbs.release_pending()
                if state.exit_requested:
                    state.set("exit_request", 0)
                    if self.pending_error is not None:
                        self._raise_pending()
                    if self._stop:
                        self._stop = False
                        return CpuExit(ExitReason.REQUESTED, state.pc)
                if next_tb is None or not next_tb.valid:
                    try:
                        next_tb = tbs.get(state.pc)
                    except GuestFault as fault:
                        self.record_fault(fault.fault)
                        return self._exception_exit()
                self.stats.native_entries += 1
                result = self._enter(next_tb.entry, state.address, mem_base)
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
                else:  # HALT, SYSCALL
                    return CpuExit(reason, state.pc)
        finally:
            helpers_mod.current.cpu = previous
            tbs.release_pending()

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
