"""RV64GC in system mode: M/S/U privilege, traps, interrupts and Sv39/48/57 paging.

:class:`Riscv64SystemArch` is the :class:`GuestArch` of a hart that runs firmware and
kernels. The privileged state is the pure-Python model of ``priv/`` (a
:class:`CsrFile` per hart, created by :meth:`reset` and kept in ``state.arch_state``);
translated code reaches it through two helpers (CSR instructions, and the privileged
instructions mret/sret/wfi/sfence.vma plus marking FS dirty). Whatever changes the
translation flags (privilege, MMU index, FS, paging) updates ``state.tb_flags`` at once,
so the next lookup finds the blocks translated for the new state.

- exceptions from blocks (illegal instruction, ecall, ebreak, memory faults) reach
  :meth:`do_interrupt`, which maps them to a cause and tval and enters the trap handler;
- interrupts are taken between blocks by :meth:`exec_interrupt` when the run loop
  handles an exit request (CSR writes that may unmask one and devices changing a line
  request one);
- :meth:`tlb_fill` is the softmmu's page-table walk (priv/mmu.py with PMP) over the
  physical memory the CPU attaches (:meth:`attach_memory`).
"""

from __future__ import annotations

import ctypes
import functools
import time as time_mod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from llvmtcg.arch import DebugFeature, DebugRegister, PageTranslation
from llvmtcg.frontends.riscv import native_time, trans_system
from llvmtcg.frontends.riscv.arch import Riscv64Arch
from llvmtcg.frontends.riscv.cpu import REG_CSR0, RISCV_FIELDS, CpuModel
from llvmtcg.frontends.riscv.frontend import RiscvFrontend
from llvmtcg.frontends.riscv.priv import mmu, native_walk, trap
from llvmtcg.frontends.riscv.priv.csr import (
    CsrEffect,
    CsrFile,
    HartConfig,
    csr_name,
    csr_numbers,
)
from llvmtcg.frontends.riscv.priv.state import (
    MASK64,
    N_MMU_IDX,
    AccessFault,
    ExcCause,
    IllegalInstruction,
    IrqCause,
    PageFault,
    Priv,
    TbFlags,
)
from llvmtcg.ir import Block
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.log import Log
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.exits import (
    EXCP_MEM_FAULT,
    EXCP_MISALIGNED,
    Access,
    FaultKind,
    GuestFault,
    MemFault,
)
from llvmtcg.runtime.helpers import HelperRegistry
from llvmtcg.runtime.softmmu import GuestMemory

# gdb's number of its virtual privilege-level register (RISCV_PRIV_REGNUM).
GDB_PRIV_REGNUM = REG_CSR0 + 4096

# The same registers as user mode, with one TLB table per MMU index.
SYSTEM_LAYOUT = CpuLayout(RISCV_FIELDS, n_mmu_idx=N_MMU_IDX, tlb_bits=10)
TIMEBASE_HZ = 10_000_000  # QEMU virt's mtime frequency (the default time source)

_MISALIGNED = {Access.FETCH: ExcCause.INSN_ADDR_MISALIGNED,
               Access.READ: ExcCause.LOAD_ADDR_MISALIGNED,
               Access.WRITE: ExcCause.STORE_ADDR_MISALIGNED}


class _HostTime:
    """A 10 MHz clock from the host's monotonic time (when no machine timer is given)."""

    __slots__ = ()

    def __call__(self) -> int:
        return time_mod.monotonic_ns() // (1_000_000_000 // TIMEBASE_HZ)

    def time_base(self) -> tuple[int, int, int]:
        return 0, 1_000_000_000 // TIMEBASE_HZ, 0  # (see Aclint.time_base)


host_time = _HostTime()


class TimeBaseSource(Protocol):
    """What can describe a ``time`` source as a function of the host's monotonic clock
    (devices/aclint.py ``Aclint.time_base``): ``(epoch_ns, ns_per_tick, delta)`` or
    None. Such an object may have ``time_base_listeners``, called when that changes."""

    def time_base(self) -> tuple[int, int, int] | None: ...


def _time_base_owner(time: Callable[[], int]) -> TimeBaseSource | None:
    """What describes ``time`` as a function of the host clock (native_time): the
    callable itself or, for a bound method such as ``Aclint.mtime``, its object, when
    it has ``time_base()``; else None (the time CSR then always takes the helper)."""
    for owner in (time, getattr(time, "__self__", None)):
        if callable(getattr(owner, "time_base", None)):
            return owner  # type: ignore[return-value]
    return None


def publish_time(state: CpuState, csr: CsrFile, owner: TimeBaseSource | None) -> None:
    """Publish the time base of ``owner`` (see _time_base_owner) for translated code's
    native reads of ``time`` (native_time.py), or switch them off when there is none."""
    base = owner.time_base() if owner is not None else None
    if base is not None:
        epoch, div, delta = base
        state.set("time_epoch", epoch)
        state.set("time_div", div)
        state.set("time_delta", delta)
    csr.native_time = base is not None and base[1] > 0


class _CodeTrackingBus(mmu.GuestMemoryBus):
    """The physical memory the page-table walker reads; its A/D updates invalidate
    translated code in the page they write (a page table sharing a page with code)."""

    __slots__ = ("invalidate",)

    def __init__(self, memory: GuestMemory, invalidate: Callable[[int, int], int]) -> None:
        super().__init__(memory)
        self.invalidate = invalidate

    def cmpxchg_u64(self, paddr: int, old: int, new: int) -> bool:
        done = super().cmpxchg_u64(paddr, old, new)
        if done:
            self.invalidate(paddr, paddr + mmu.PTE_SIZE)
        return done


@dataclass(slots=True)
class Hart:
    """The per-CPU privileged state (``state.arch_state``)."""

    csr: CsrFile
    # The CPU state's irq_pending field (ctypes view): mip & mie, for translated code
    # that sets sstatus.SIE inline (publish_pending keeps it up to date).
    irq_pending: ctypes.c_uint64
    bus: mmu.PhysMemory | None = None  # set by attach_memory
    # Called with the Sstc deadline (csr.timer_deadline) after writes that may move it.
    timer_listener: Callable[[int | None], None] | None = None
    # What left translated code for the privileged model, by (kind, detail): ("csr",
    # 0x180), ("trap", 13), ("irq", 5), ("priv", PRIV_SRET), ...: $LLVMTCG_STATS.
    stats: Counter[tuple[str, object]] = field(default_factory=Counter)


def hart_of(state: CpuState) -> Hart:
    hart = state.arch_state
    if not isinstance(hart, Hart):
        raise RuntimeError("the CPU state has no RISC-V hart (Riscv64SystemArch.reset)")
    return hart


def publish_pending(hart: Hart) -> None:
    """Tell translated code which interrupts are pending and enabled in mie (whatever
    the global enables and the privilege): nonzero makes an inline write that sets
    sstatus.SIE ask for an exit, so that the run loop decides (exec_interrupt). Called
    wherever mip or mie may have changed on the CPU's thread: CSR writes, the exit
    request of every device line change and of the Sstc timer (exec_interrupt), and
    state loads."""
    csr = hart.csr
    hart.irq_pending.value = csr.mip & csr.mie


def sync_flags(state: CpuState, csr: CsrFile) -> None:
    """Publish the flags of the hart's current state to translated code and lookups."""
    state.tb_flags = csr.tb_flags()


class Riscv64SystemArch(Riscv64Arch):
    """A RV64GC hart with M, S and U modes (not registered by name: the user-mode
    ``riscv64`` is what ELF programs get).

    Args:
        model: the extensions.
        hartid: mhartid.
        time: the platform timer (the CLINT's mtime) for the ``time`` CSR and Sstc;
            default: the host's monotonic clock at 10 MHz.
    """

    layout = SYSTEM_LAYOUT
    system_mode = True
    # CPU-state fields publish_time derives from the machine's timer at reset and load:
    # savevm does not keep them (they name this process's host clock).
    derived_fields = ("time_access", "time_epoch", "time_div", "time_delta")

    def __init__(self, model: CpuModel | None = None, *, hartid: int = 0,
                 time: Callable[[], int] | None = None) -> None:
        super().__init__(model)
        self.frontend = RiscvFrontend(self.model, system=True)
        self.hartid = hartid
        self.time = time or host_time
        # The native page-table walkers by CPU-state address (native_tlb_walker): the
        # Python fill asks them first (tlb_fill).
        self._walkers: dict[int, native_walk.NativeWalker] = {}
        # The CPU states this hart's model was reset in (normally one), whose native
        # time parameters follow the timer's (Aclint.time_base_listeners).
        self._time_owner = _time_base_owner(self.time)
        self._time_states: list[CpuState] = []
        listeners = getattr(self._time_owner, "time_base_listeners", None)
        if listeners is not None:
            listeners.append(self._time_base_changed)

    def __repr__(self) -> str:
        return f"Riscv64SystemArch({self.model!r}, hartid={self.hartid})"

    def helpers(self) -> HelperRegistry:
        registry = super().helpers()
        registry.register(trans_system.SYS_CSR_HELPER, sys_csr_helper)
        registry.register(trans_system.PRIV_HELPER, priv_helper)
        layout = self.layout
        registry.register(trans_system.TIME_HELPER, native_time.time_helper_address(
            *(layout.offset(name) for name in ("time_epoch", "time_div", "time_delta"))))
        return registry

    def translate(self, pc: int, flags: int, fetch, log: Log | None = None) -> Block:
        return self.frontend.translate(pc, fetch, log, flags)

    def fingerprint(self) -> tuple:
        return (self.name, "system", repr(self.model))

    def tb_flags(self, state: CpuState) -> int:
        return hart_of(state).csr.tb_flags()

    def mmu_index(self, state: CpuState) -> int:
        return int(hart_of(state).csr.data_mmu_index())

    def fetch_mmu_index(self, flags: int) -> int:
        # (fetch_mmu_index(TbFlags.priv(flags)) without enum calls: the fetch index of a
        # privilege is its encoding, asked at every exit that looks code up)
        return flags & TbFlags.PRIV_MASK

    # -- what a debugger sees --------------------------------------------------------------
    @functools.cached_property
    def _debug_csrs(self) -> tuple[int, ...]:
        probe = CsrFile(HartConfig(hartid=self.hartid, model=self.model),
                        cycles=lambda: 0, instret=lambda: 0, time=self.time)
        # fflags/frm/fcsr are in the FP feature (and not in the privileged model).
        return tuple(n for n in csr_numbers() if n > 3 and probe.exists(n))

    def debug_features(self) -> tuple[DebugFeature, ...]:
        """User mode's registers, the CSRs (gdb's org.gnu.gdb.riscv.csr, numbered 65 +
        the CSR number as gdb's riscv-tdep does) and the privilege level (gdb's
        virtual ``priv`` register, 65 + 4096)."""
        csrs = DebugFeature("org.gnu.gdb.riscv.csr", tuple(
            DebugRegister(REG_CSR0 + n, csr_name(n), 64, "int", "csr")
            for n in self._debug_csrs))
        virtual = DebugFeature("org.gnu.gdb.riscv.virtual",
                               (DebugRegister(GDB_PRIV_REGNUM, "priv", 64, "int", "system"),))
        return (*super().debug_features(), csrs, virtual)

    def debug_reg_read(self, state: CpuState, number: int) -> int | None:
        csr = hart_of(state).csr
        if number == GDB_PRIV_REGNUM:
            return int(csr.priv)
        csrno = number - REG_CSR0
        if csrno in self._debug_csrs:
            try:
                return csr.read(csrno, Priv.M)
            except IllegalInstruction:
                return None
        return super().debug_reg_read(state, number)

    def debug_reg_write(self, state: CpuState, number: int, value: int) -> bool:
        """Registers as the debugger writes them; a CSR or privilege write takes
        effect as the guest's own would (flags, and the caller flushes the TLB)."""
        csr = hart_of(state).csr
        csrno = number - REG_CSR0
        if number == GDB_PRIV_REGNUM:
            if value not in (Priv.U, Priv.S, Priv.M):
                return False
            csr.priv = Priv(value)
        elif csrno in self._debug_csrs:
            try:
                csr.write(csrno, value & MASK64, Priv.M)
            except IllegalInstruction:
                return False
        else:
            return super().debug_reg_write(state, number, value)
        sync_flags(state, csr)
        publish_pending(hart_of(state))
        state.tlb_flush()  # (satp, PMP, privilege: the caller flushes the jump cache)
        return True

    # -- state ------------------------------------------------------------------------------
    def reset(self, state: CpuState) -> None:
        """Registers as user mode resets them, and a new hart in M-mode (priv/csr.py)."""
        super().reset(state)
        bus = state.arch_state.bus if isinstance(state.arch_state, Hart) else None
        csr = CsrFile(HartConfig(hartid=self.hartid, model=self.model),
                      cycles=lambda: state.get("insn_count"),
                      instret=lambda: state.get("insn_count"),
                      time=self.time, on_interrupt=state.request_exit,
                      mstatus_cell=state.cell("mstatus"),
                      sscratch_cell=state.cell("sscratch"),
                      cells={name: state.cell(name) for name in CsrFile.CELL_FIELDS})
        state.arch_state = hart = Hart(csr, state.cell("irq_pending"), bus)
        sync_flags(state, csr)
        publish_pending(hart)
        if not any(known is state for known in self._time_states):
            self._time_states.append(state)
        publish_time(state, csr, self._time_owner)

    def _time_base_changed(self) -> None:
        for state in self._time_states:
            if isinstance(state.arch_state, Hart):
                publish_time(state, state.arch_state.csr, self._time_owner)

    def attach_memory(self, state: CpuState, memory: GuestMemory,
                      invalidate: Callable[[int, int], int]) -> None:
        hart_of(state).bus = _CodeTrackingBus(memory, invalidate)

    def native_tlb_walker(self, state: CpuState, memory: GuestMemory,
                          jit: object) -> native_walk.NativeWalker:
        """The page-table walk in native code that fills TLB misses on plain RAM."""
        walker = native_walk.NativeWalker(state, memory, jit,  # type: ignore[arg-type]
                                          lambda: hart_of(state).csr)
        self._walkers[state.address] = walker
        return walker

    def set_irq(self, state: CpuState, line: int, level: bool) -> None:
        hart_of(state).csr.set_irq_line(IrqCause(line), level)

    def on_timer_change(self, state: CpuState,
                        listener: Callable[[int | None], None]) -> None:
        """Sstc: ``listener(deadline)`` after every CSR write that may move the timer."""
        hart = hart_of(state)
        hart.timer_listener = listener
        listener(hart.csr.timer_deadline)

    def wakes(self, state: CpuState) -> bool:
        return trap.wfi_wakes(hart_of(state).csr)

    def counters(self, state: CpuState) -> dict[str, int]:
        out: dict[str, int] = {}
        for (kind, detail), count in hart_of(state).stats.items():
            if kind == "csr":
                detail = csr_name(detail)  # type: ignore[arg-type]
            elif kind == "priv":
                detail = _PRIV_OP_NAMES[detail]  # type: ignore[index]
            out[f"{kind} {detail}".strip()] = count
        return dict(sorted(out.items()))

    def save_state(self, state: CpuState) -> dict[str, object]:
        return {"hartid": self.hartid, "csr": hart_of(state).csr.save_state()}

    def load_state(self, state: CpuState, saved: dict[str, object]) -> None:
        """The CSR file as saved; the translation flags follow, and the timer
        listener is told the restored Sstc deadline."""
        if saved.get("hartid") != self.hartid:
            raise ValueError(f"saved state of hart {saved.get('hartid')} loaded into hart "
                             f"{self.hartid}")
        hart = hart_of(state)
        hart.csr.load_state(saved["csr"])  # type: ignore[arg-type]
        sync_flags(state, hart.csr)
        publish_pending(hart)
        publish_time(state, hart.csr, self._time_owner)  # (the clock was restored)
        if hart.timer_listener is not None:
            hart.timer_listener(hart.csr.timer_deadline)
        state.request_exit()  # a restored pending interrupt is taken first

    # -- traps and interrupts -----------------------------------------------------------------
    def do_interrupt(self, state: CpuState, exception_index: int,
                     fault: MemFault | None = None) -> None:
        csr = hart_of(state).csr
        pc = state.pc
        tval = 0
        if exception_index in (EXCP_MEM_FAULT, EXCP_MISALIGNED) and fault is not None:
            cause = _fault_cause(fault)
            tval = fault.addr
        else:
            cause = ExcCause(exception_index)
            if cause == ExcCause.ILLEGAL_INSN:
                tval = state.get("badinsn")
            elif cause == ExcCause.BREAKPOINT:
                tval = pc  # "mtval is written with the faulting virtual address"
        hart_of(state).stats["trap", int(cause)] += 1
        state.pc = trap.take_trap(csr, int(cause), False, tval, pc)
        state.set("load_res", MASK64)  # a trap clears the LR reservation (QEMU does)
        sync_flags(state, csr)

    def exec_interrupt(self, state: CpuState) -> bool:
        hart = hart_of(state)
        csr = hart.csr
        publish_pending(hart)  # (a device line or the Sstc timer asked for this exit)
        irq = trap.pending_interrupt(csr)
        if irq is None:
            hart.stats["irq", "none"] += 1
            return False
        hart.stats["irq", int(irq)] += 1
        state.pc = trap.take_trap(csr, int(irq), True, 0, state.pc)
        sync_flags(state, csr)
        return True

    # -- the MMU ---------------------------------------------------------------------------------
    def tlb_fill(self, state: CpuState, vaddr: int, access: Access,
                 mmu_idx: int) -> PageTranslation:
        hart = hart_of(state)
        if hart.bus is None:
            raise RuntimeError("Riscv64SystemArch: no physical memory attached")
        walker = self._walkers.get(state.address)
        if walker is not None:  # (the common walks, without the Python walker)
            native = walker.translate(vaddr, access, mmu_idx)
            if native is not None:
                return PageTranslation(*native)
        csr = hart.csr
        hart.stats["tlb_fill", ""] += 1
        try:
            found = mmu.translate(csr.satp, csr.pmp, hart.bus, vaddr & MASK64, access,
                                  mmu_idx)  # type: ignore[arg-type]  # (an int: no enum call)
        except PageFault:
            raise GuestFault(MemFault(vaddr, access, FaultKind.PAGE_FAULT)) from None
        except AccessFault:
            raise GuestFault(MemFault(vaddr, access, FaultKind.ACCESS_FAULT)) from None
        return PageTranslation(found.paddr, found.perms, found.page_size)


_PRIV_OP_NAMES = {trans_system.PRIV_MRET: "mret", trans_system.PRIV_SRET: "sret",
                  trans_system.PRIV_WFI: "wfi", trans_system.PRIV_SFENCE_VMA: "sfence.vma",
                  trans_system.PRIV_MARK_FS_DIRTY: "fs_dirty"}


def _fault_cause(fault: MemFault) -> ExcCause:
    if fault.kind is FaultKind.PAGE_FAULT:
        return mmu.PAGE_FAULT[fault.access]
    if fault.kind is FaultKind.MISALIGNED:
        return _MISALIGNED[fault.access]
    return mmu.ACCESS_FAULT[fault.access]  # PMP/PMA, no memory, MMIO atomics


# -- the helpers translated code calls -------------------------------------------------------

def _apply(cpu, csr: CsrFile, effect: int) -> None:
    """Carry out a CSR write's :class:`CsrEffect` bits (every CSR instruction and trap
    return comes here: the common ones, sstatus.SIE/SUM toggles and scratch
    registers, must cost little)."""
    if not effect:
        return
    state = cpu.state
    if effect & _TLB_FLUSH:
        cpu.tlb_flush()
    if effect & _TB_FLAGS:
        sync_flags(state, csr)
    if effect & (_TIMER | _INTERRUPTS):
        publish_pending(hart_of(state))
    if effect & _TIMER:
        listener = hart_of(state).timer_listener
        if listener is not None:
            listener(csr.timer_deadline)
        state.request_exit()  # the machine re-arms its timers, and interrupts are checked
    elif effect & _INTERRUPTS and trap.pending_interrupt(csr) is not None:
        # Take the interrupt the write unmasked at the next block boundary. Most writes
        # (sstatus.SIE/SUM toggles, trap returns) unmask nothing: their blocks go on in
        # native code instead of leaving to the run loop (a REQUESTED exit each).
        # Device lines ask for their own exit when they change (set_irq_line).
        state.request_exit()


_TB_FLAGS, _TLB_FLUSH = CsrEffect.TB_FLAGS, CsrEffect.TLB_FLUSH
_INTERRUPTS, _TIMER = CsrEffect.INTERRUPTS, CsrEffect.TIMER


def _illegal(cpu) -> int:
    cpu.raise_exception(int(ExcCause.ILLEGAL_INSN))  # tval: badinsn, set by the block
    return 0


def sys_csr_helper(cpu, csrno: int, value: int, op_and_write: int) -> int:
    """csrrw/csrrs/csrrc (and immediates): CsrFile.rmw at the current privilege; see
    trans_system._csr for the packing of ``op_and_write``."""
    hart = hart_of(cpu.state)
    hart.stats["csr", csrno] += 1
    csr = hart.csr
    op, writes = op_and_write & 0xFF, bool(op_and_write >> 8)
    if op == trans_system.CSR_WRITE:
        new, mask = value, MASK64
    elif op == trans_system.CSR_SET:
        new, mask = MASK64, value
    else:
        new, mask = 0, value
    try:
        old, effect = csr.rmw(csrno, new, mask, writes=writes)
    except IllegalInstruction:
        return _illegal(cpu)
    _apply(cpu, csr, effect)
    return old


def priv_helper(cpu, op: int, arg: int, arg2: int) -> int:
    """mret/sret (returns the pc to continue at), wfi (legality), sfence.vma (``arg``:
    the address, ``arg2``: 1 for all), and marking FS dirty."""
    state = cpu.state
    hart = hart_of(state)
    hart.stats["priv", op] += 1
    csr = hart.csr
    try:
        if op in (trans_system.PRIV_MRET, trans_system.PRIV_SRET):
            pc = trap.mret(csr) if op == trans_system.PRIV_MRET else trap.sret(csr)
            state.set("load_res", MASK64)
            sync_flags(state, csr)  # (the privilege changed)
            _apply(cpu, csr, CsrEffect.INTERRUPTS)  # xIE may have been restored
            return pc
        if op == trans_system.PRIV_WFI:
            trap.check_wfi(csr)
        elif op == trans_system.PRIV_SFENCE_VMA:
            trap.check_sfence_vma(csr)
            if arg2:
                cpu.tlb_flush()
            else:
                cpu.tlb_flush_page(arg)
        elif op == trans_system.PRIV_MARK_FS_DIRTY:
            csr.mark_fs_dirty()
            sync_flags(state, csr)
    except IllegalInstruction:
        return _illegal(cpu)
    return 0
