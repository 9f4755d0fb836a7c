"""RV64GC as a guest architecture: the :class:`GuestArch` contract for RISC-V.

User mode only, so far: the hart is always in U-mode without paging, its FP unit on
(Linux user mode cannot turn it off), so ``tb_flags`` is one constant in the layout of
:class:`llvmtcg.frontends.riscv.priv.state.TbFlags`, and data accesses use the user
MMU index.
"""

from __future__ import annotations

import enum
import threading
from typing import TYPE_CHECKING

from llvmtcg.arch import DebugFeature, DebugRegister, GuestArch, register_arch
from llvmtcg.arch.contract import ExceptionEvents
from llvmtcg.frontends.riscv import fpu, insn_length, trans_rvf, trans_system
from llvmtcg.frontends.riscv.cpu import (
    ABI_NAMES,
    CSR_FCSR,
    CSR_FFLAGS,
    CSR_FRM,
    FP_ABI_NAMES,
    LAYOUT,
    MMU_USER,
    REG_CSR0,
    REG_F0,
    REG_PC,
    CpuModel,
    Reg,
)
from llvmtcg.frontends.riscv.priv.state import (
    ExcCause,
    FsState,
    MmuIdx,
    Mstatus,
    Priv,
    set_field,
    tb_flags,
)
from llvmtcg.ir import Block
from llvmtcg.log import Log
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.helpers import HelperRegistry

if TYPE_CHECKING:
    from llvmtcg.frontends.riscv.frontend import RiscvFrontend

EM_RISCV = 243
# U-mode, MMU index U, mstatus.FS Dirty (FP instructions legal; nothing to mark when
# they write), satp Bare. The translator does not read the flags yet.
USER_TB_FLAGS = tb_flags(Priv.U, set_field(0, Mstatus.FS, FsState.DIRTY), satp=0)
assert MMU_USER == MmuIdx.U
_FFLAGS, _FRM = Reg.FFLAGS, Reg.FRM
_FFLAGS_MASK, _FRM_MASK = 0x1F, 0x7

# gdb's RISC-V target description (gdb/features/riscv/64bit-cpu.xml, 64bit-fpu.xml, as
# QEMU sends them): registers named and numbered as gdb's riscv-tdep expects.
_POINTERS = {"ra": "code_ptr", "sp": "data_ptr", "gp": "data_ptr", "tp": "data_ptr"}
GDB_CPU_FEATURE = DebugFeature("org.gnu.gdb.riscv.cpu", tuple(
    [DebugRegister(i, name, 64, _POINTERS.get(name, "int")) for i, name in enumerate(ABI_NAMES)]
    + [DebugRegister(REG_PC, "pc", 64, "code_ptr")]))
GDB_FPU_FEATURE = DebugFeature(
    "org.gnu.gdb.riscv.fpu",
    tuple([DebugRegister(REG_F0 + i, name, 64, "riscv_double", "float")
           for i, name in enumerate(FP_ABI_NAMES)]
          + [DebugRegister(REG_CSR0 + csr, name, 32, "int", "float")
             for csr, name in ((CSR_FFLAGS, "fflags"), (CSR_FRM, "frm"), (CSR_FCSR, "fcsr"))]),
    '<union id="riscv_double"><field name="float" type="ieee_single"/>'
    '<field name="double" type="ieee_double"/></union>')


@register_arch
class Riscv64Arch(GuestArch):
    """RV64GC (+Zba/Zbb/Zbs), configured by a :class:`CpuModel`.

    Args:
        model: which extensions the CPU has (default: all of RV64GC and Zb[abs]).
    """

    name = "riscv64"
    elf_machine = EM_RISCV
    layout = LAYOUT
    registers = Reg
    counts_insns = True  # instret is counted per block
    # mcause values; ecall has no compressed form. Unicorn reports ecall as INTR 8 too.
    exception_events = ExceptionEvents(illegal_insn=ExcCause.ILLEGAL_INSN,
                                       breakpoint=ExcCause.BREAKPOINT,
                                       syscall=ExcCause.U_ECALL, syscall_length=4)
    gdb_architecture = "riscv:rv64"
    gdb_stop_before_watchpoint = True  # (as QEMU's RISC-V; gdb's riscv expects it)

    def __init__(self, model: CpuModel | None = None) -> None:
        self.model = model or CpuModel()
        self._frontend: RiscvFrontend | None = None
        self._frontend_lock = threading.Lock()

    @property
    def frontend(self) -> RiscvFrontend:
        """The translator, made on the first translation (a warm start, whose blocks
        are all placed from the block cache, never imports it: ~2 ms); one per arch
        object, whichever thread (run loop, region compiler) asks first."""
        if self._frontend is None:
            with self._frontend_lock:
                if self._frontend is None:
                    from llvmtcg.frontends.riscv.frontend import (  # noqa: PLC0415
                        RiscvFrontend,
                    )

                    self._frontend = RiscvFrontend(self.model)
        return self._frontend

    @frontend.setter
    def frontend(self, frontend: RiscvFrontend) -> None:
        self._frontend = frontend

    def __repr__(self) -> str:
        return f"Riscv64Arch({self.model!r})"

    # -- translation ----------------------------------------------------------------------
    def insn_length(self, first_parcel: int) -> int:
        return insn_length(first_parcel)  # 2 unless the low bits are 0b11

    def helpers(self) -> HelperRegistry:
        registry = HelperRegistry()
        trans_system.register_helpers(registry)
        trans_rvf.register_helpers(registry)
        return registry

    def translate(self, pc: int, flags: int, fetch, log: Log | None = None) -> Block:
        return self.frontend.translate(pc, fetch, log)

    def fingerprint(self) -> tuple:
        return (self.name, repr(self.model))  # CpuModel's repr is sorted: stable

    def tb_flags(self, state: CpuState) -> int:
        return USER_TB_FLAGS

    def mmu_index(self, state: CpuState) -> int:
        return MMU_USER

    def debug_features(self) -> tuple[DebugFeature, ...]:
        if self.model.has("f"):
            return (GDB_CPU_FEATURE, GDB_FPU_FEATURE)
        return (GDB_CPU_FEATURE,)

    # -- state ----------------------------------------------------------------------------
    def reset(self, state: CpuState) -> None:
        """Architectural reset values of a user-mode CPU (registers are zero)."""
        state.set("load_res", -1)
        state.set("frm", 0)
        state.set("fflags", 0)

    def reg_read(self, state: CpuState, reg: enum.IntEnum | int | str) -> int:
        reg = self.register(reg)
        if reg < REG_PC:
            return state.get("x", reg) if reg else 0  # x0 is hard-wired to zero
        if reg == REG_PC:
            return state.get("pc")
        if reg < REG_CSR0:
            return state.get("f", reg - REG_F0)
        if reg is _FFLAGS:
            return state.get("fflags")
        if reg is _FRM:
            return state.get("frm")
        return state.get("frm") << 5 | state.get("fflags")

    def register_global(self, reg: enum.IntEnum) -> str | None:
        if 0 < reg < REG_PC:
            return f"x[{int(reg)}]"
        if reg == REG_PC:
            return "pc"
        if REG_F0 <= reg < REG_CSR0:
            return f"f[{reg - REG_F0}]"
        return None  # x0 (constant zero), the CSRs (fcsr is two fields)

    def reg_write(self, state: CpuState, reg: enum.IntEnum | int | str, value: int) -> None:
        reg = self.register(reg)
        if reg < REG_PC:
            if reg:  # writes to x0 are ignored
                state.set("x", value, reg)
        elif reg == REG_PC:
            state.set("pc", value)
        elif reg < REG_CSR0:
            state.set("f", value, reg - REG_F0)
        elif reg is _FFLAGS:
            state.set("fflags", value & _FFLAGS_MASK)
        elif reg is _FRM:
            state.set("frm", value & _FRM_MASK)
        else:  # fcsr: frm in bits 7:5, fflags in 4:0 (the rest reads as zero)
            state.set("fflags", value & _FFLAGS_MASK)
            state.set("frm", (value >> 5) & _FRM_MASK)

    # -- the guest's FP environment (for the run loop) -------------------------------------
    # Plain functions, not methods: the run loop calls them around every native entry.
    fp_rounding = staticmethod(fpu.fp_rounding)
    fp_control = "frm"
    fp_accrue = staticmethod(fpu.fp_accrue)
