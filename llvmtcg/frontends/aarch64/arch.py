"""AArch64 as a guest architecture: the :class:`GuestArch` contract for A64 at EL0.

User mode only, so far: ``tb_flags`` is one constant (EL0, MMU index 0). The layout
keeps room for EL1/EL2: the exception level, the MMU regime and SVE/FP enables would
become tb_flags bits and MMU indices, and system registers a file beside the state.
"""

from __future__ import annotations

import enum

from llvmtcg.arch import GuestArch, register_arch
from llvmtcg.arch.contract import DebugFeature, DebugRegister, ExceptionEvents
from llvmtcg.frontends.aarch64 import estimate, fp16, trans_branch, trans_dp
from llvmtcg.frontends.aarch64.cpu import (
    LAYOUT,
    MMU_USER,
    REG_CPSR,
    REG_FPCR,
    REG_FPSR,
    REG_PC,
    REG_SP,
    REG_TPIDR,
    REG_V0,
    CpuModel,
    Excp,
    Reg,
)
from llvmtcg.frontends.aarch64.frontend import Aarch64Frontend
from llvmtcg.ir import Block
from llvmtcg.ir.types import FFlag, RoundingMode
from llvmtcg.log import Log
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.helpers import HelperRegistry

EM_AARCH64 = 183
M64 = (1 << 64) - 1
# FPCR.RMode (bits 23:22): RN, RP, RM, RZ.
_RMODES = (RoundingMode.RNE, RoundingMode.RUP, RoundingMode.RDN, RoundingMode.RTZ)
# FFlag bit k is FPSR bit 4 - k (IXC UFC OFC DZC IOC).
_FPSR_OF_FFLAG = ((FFlag.INVALID, 1 << 0), (FFlag.DIVBYZERO, 1 << 1),
                  (FFlag.OVERFLOW, 1 << 2), (FFlag.UNDERFLOW, 1 << 3),
                  (FFlag.INEXACT, 1 << 4))

# gdb's target description for AArch64 (its features org.gnu.gdb.aarch64.core and
# .fpu, as gdb and QEMU number them): V registers are a union of vector views.
_VECTOR_TYPES = "".join(
    f'<vector id="{name}" type="{element}" count="{count}"/>'
    for name, element, count in (
        ("v2d", "ieee_double", 2), ("v2u", "uint64", 2), ("v2i", "int64", 2),
        ("v4f", "ieee_single", 4), ("v4u", "uint32", 4), ("v4i", "int32", 4),
        ("v8u", "uint16", 8), ("v8i", "int16", 8), ("v16u", "uint8", 16),
        ("v16i", "int8", 16), ("v1u", "uint128", 1), ("v1i", "int128", 1)))
_VIEWS = (("vnd", (("f", "v2d"), ("u", "v2u"), ("s", "v2i"))),
          ("vns", (("f", "v4f"), ("u", "v4u"), ("s", "v4i"))),
          ("vnh", (("u", "v8u"), ("s", "v8i"))),
          ("vnb", (("u", "v16u"), ("s", "v16i"))),
          ("vnq", (("u", "v1u"), ("s", "v1i"))),
          ("aarch64v", (("d", "vnd"), ("s", "vns"), ("h", "vnh"), ("b", "vnb"),
                        ("q", "vnq"))))
_UNION_TYPES = "".join(
    f'<union id="{name}">' + "".join(f'<field name="{f}" type="{t}"/>' for f, t in fields)
    + "</union>" for name, fields in _VIEWS)
GDB_CORE_FEATURE = DebugFeature("org.gnu.gdb.aarch64.core", tuple(
    [DebugRegister(i, f"x{i}", 64) for i in range(31)]
    + [DebugRegister(REG_SP, "sp", 64, "data_ptr"), DebugRegister(REG_PC, "pc", 64, "code_ptr"),
       DebugRegister(REG_CPSR, "cpsr", 32)]))  # an int, as QEMU describes it
GDB_FPU_FEATURE = DebugFeature("org.gnu.gdb.aarch64.fpu", tuple(
    [DebugRegister(REG_V0 + i, f"v{i}", 128, "aarch64v", "vector") for i in range(32)]
    + [DebugRegister(REG_FPSR, "fpsr", 32, "int", "float"),
       DebugRegister(REG_FPCR, "fpcr", 32, "int", "float")]), _VECTOR_TYPES + _UNION_TYPES)


@register_arch
class Aarch64Arch(GuestArch):
    """A64 at EL0, configured by a :class:`CpuModel`."""

    name = "aarch64"
    elf_machine = EM_AARCH64
    layout = LAYOUT
    registers = Reg
    exception_events = ExceptionEvents(illegal_insn=Excp.UDEF, breakpoint=Excp.BKPT,
                                       syscall=Excp.SWI, syscall_length=4)

    gdb_architecture = "aarch64"

    def __init__(self, model: CpuModel | None = None) -> None:
        self.model = model or CpuModel()
        self.frontend = Aarch64Frontend(self.model)

    def debug_features(self) -> tuple[DebugFeature, ...]:
        return (GDB_CORE_FEATURE, GDB_FPU_FEATURE)

    def __repr__(self) -> str:
        return f"Aarch64Arch({self.model!r})"

    def helpers(self) -> HelperRegistry:
        registry = HelperRegistry()
        trans_branch.register_helpers(registry)
        trans_dp.register_helpers(registry)
        fp16.register_helpers(registry)
        estimate.register_helpers(registry)
        return registry

    def translate(self, pc: int, flags: int, fetch, log: Log | None = None) -> Block:
        return self.frontend.translate(pc, fetch, log)

    def fingerprint(self) -> tuple:
        return (self.name, repr(self.model))

    def mmu_index(self, state: CpuState) -> int:
        return MMU_USER

    # -- state ----------------------------------------------------------------------------
    def reset(self, state: CpuState) -> None:
        state.set("excl_addr", M64)
        state.set("zf", 1)  # Z clear

    def reg_read(self, state: CpuState, reg: enum.IntEnum | int | str) -> int:
        reg = self.register(reg)
        if reg <= REG_SP:
            return state.get("x", reg)
        if reg == REG_PC:
            return state.get("pc")
        if reg == REG_CPSR:
            return (state.get("nf") >> 63 << 31 | (state.get("zf") == 0) << 30
                    | state.get("cf") << 29 | state.get("vf") >> 63 << 28)
        if REG_V0 <= reg < REG_V0 + 32:
            n = reg - REG_V0
            return state.get("v", 2 * n) | state.get("v", 2 * n + 1) << 64
        if reg == REG_FPSR:
            return state.get("fpsr")
        if reg == REG_FPCR:
            return state.get("fpcr")
        assert reg == REG_TPIDR
        return state.get("tpidr_el0")

    def register_global(self, reg: enum.IntEnum) -> str | None:
        if reg <= REG_SP:
            return f"x[{int(reg)}]"
        return "pc" if reg == REG_PC else None  # (NZCV is four fields, V a pair)

    def reg_write(self, state: CpuState, reg: enum.IntEnum | int | str, value: int) -> None:
        reg = self.register(reg)
        if reg <= REG_SP:
            state.set("x", value & M64, reg)
        elif reg == REG_PC:
            state.set("pc", value & M64)
        elif reg == REG_CPSR:
            state.set("nf", M64 if value >> 31 & 1 else 0)
            state.set("zf", 0 if value >> 30 & 1 else 1)
            state.set("cf", value >> 29 & 1)
            state.set("vf", M64 if value >> 28 & 1 else 0)
        elif REG_V0 <= reg < REG_V0 + 32:
            n = reg - REG_V0
            state.set("v", value & M64, 2 * n)
            state.set("v", value >> 64 & M64, 2 * n + 1)
        elif reg == REG_FPSR:
            state.set("fpsr", value & trans_branch.FPSR_MASK)
        elif reg == REG_FPCR:
            state.set("fpcr", value & trans_branch.FPCR_MASK)
        else:
            state.set("tpidr_el0", value & M64)

    # -- the guest's FP environment (for the run loop) -------------------------------------
    fp_control = "fpcr"

    def fp_rounding(self, state: CpuState) -> RoundingMode:
        return _RMODES[state.get("fpcr") >> 22 & 3]

    def fp_accrue(self, state: CpuState, flags: FFlag) -> None:
        bits = 0
        for flag, fpsr_bit in _FPSR_OF_FFLAG:
            if flags & flag:
                bits |= fpsr_bit
        if bits:
            state.set("fpsr", state.get("fpsr") | bits)
