"""RISC-V's implementation of the guest-architecture contract: registers by enum and
name on a real CPU state, reset, the FP hooks, the code-cache fingerprint."""

from __future__ import annotations

import pytest

from llvmtcg.arch import UnknownRegisterError, arch_by_name
from llvmtcg.frontends.riscv.arch import Riscv64Arch
from llvmtcg.frontends.riscv.cpu import ABI_NAMES, FP_ABI_NAMES, LAYOUT, CpuModel, Reg
from llvmtcg.frontends.riscv.priv.state import FsState, MmuIdx, Priv, TbFlags
from llvmtcg.ir import FFlag, RoundingMode
from llvmtcg.runtime.cpu_state import CpuState
from tests.riscv.harness import CODE, assemble, needs_cross, run_ok

M64 = (1 << 64) - 1


@pytest.fixture
def state() -> CpuState:
    state = CpuState(LAYOUT)
    Riscv64Arch().reset(state)
    return state


def test_registered_as_riscv64() -> None:
    assert arch_by_name("riscv64") is Riscv64Arch
    assert Riscv64Arch.registers is Reg and Riscv64Arch.layout is LAYOUT


def test_register_numbers_are_gdbs() -> None:
    assert [Reg[f"X{i}"] for i in range(32)] == list(range(32))
    assert Reg.PC == 32 and Reg.F0 == 33 and Reg.F31 == 64
    assert (Reg.FFLAGS, Reg.FRM, Reg.FCSR) == (66, 67, 68)
    # ABI names are the canonical names, as gdb shows them; xN/fN/fp are aliases.
    assert Reg(10).name == "A0" and Reg(2).name == "SP" and Reg(43).name == "FA0"
    assert Reg.FP is Reg.S0 is Reg.X8 and Reg.ZERO is Reg.X0 and Reg.FT11 is Reg.F31


def test_every_register_round_trips_through_the_state(state: CpuState) -> None:
    arch = Riscv64Arch()
    values = {reg: (0x0123_4567_89AB_CDEF * (reg + 1)) & M64 for reg in Reg if reg not in
              (Reg.ZERO, Reg.FFLAGS, Reg.FRM, Reg.FCSR)}
    for reg, value in values.items():
        arch.reg_write(state, reg, value)
    for reg, value in values.items():
        assert arch.reg_read(state, reg) == value, reg.name
    # ... and they are the state fields the translator uses.
    assert state.get("x", 10) == values[Reg.A0] and state.get("f", 10) == values[Reg.FA0]
    assert state.pc == values[Reg.PC]


def test_names_and_aliases(state: CpuState) -> None:
    arch = Riscv64Arch()
    for i, name in enumerate(ABI_NAMES[1:], start=1):
        arch.reg_write(state, name, 1000 + i)
        assert arch.reg_read(state, f"x{i}") == 1000 + i == state.get("x", i)
    for i, name in enumerate(FP_ABI_NAMES):
        arch.reg_write(state, name.upper(), 2000 + i)
        assert arch.reg_read(state, f"F{i}") == 2000 + i == state.get("f", i)
    assert arch.reg_read(state, "fp") == arch.reg_read(state, "s0") == 1008
    with pytest.raises(UnknownRegisterError, match="riscv64 has no register 'x32'"):
        arch.reg_read(state, "x32")


def test_x0_reads_zero_and_ignores_writes(state: CpuState) -> None:
    arch = Riscv64Arch()
    arch.reg_write(state, Reg.ZERO, 42)
    arch.reg_write(state, "x0", 42)
    assert arch.reg_read(state, "zero") == 0 and state.get("x", 0) == 0


def test_fcsr_is_frm_and_fflags(state: CpuState) -> None:
    arch = Riscv64Arch()
    arch.reg_write(state, Reg.FCSR, 0xFFFF_FF95)  # frm 4, fflags 0x15; the rest is not kept
    assert (state.get("frm"), state.get("fflags")) == (4, 0x15)
    assert arch.reg_read(state, Reg.FCSR) == 0x95
    arch.reg_write(state, "fflags", 0xFF)
    arch.reg_write(state, "frm", 0xF9)
    assert (arch.reg_read(state, "fflags"), arch.reg_read(state, "frm")) == (0x1F, 1)
    assert arch.reg_read(state, "fcsr") == 0x3F


def test_reset_and_fp_hooks(state: CpuState) -> None:
    arch = Riscv64Arch()
    assert state.get_signed("load_res") == -1  # no LR/SC reservation
    flags = arch.tb_flags(state)  # U-mode, user MMU index, FP on, no paging
    assert TbFlags.priv(flags) is Priv.U and TbFlags.mmu_idx(flags) is MmuIdx.U
    assert TbFlags.fs(flags) is FsState.DIRTY and not flags & TbFlags.PAGING
    assert arch.mmu_index(state) == MmuIdx.U
    arch.reg_write(state, "frm", 1)
    assert arch.fp_rounding(state) is RoundingMode.RTZ
    arch.fp_accrue(state, FFlag.INEXACT | FFlag.OVERFLOW)
    assert arch.reg_read(state, "fflags") == 0x5


def test_fingerprint_names_the_cpu_model() -> None:
    default = Riscv64Arch().fingerprint()
    assert default == Riscv64Arch(CpuModel.parse("rv64")).fingerprint()
    assert default[0] == "riscv64"
    assert Riscv64Arch(CpuModel.parse("rv64,zba=false")).fingerprint() != default


@needs_cross
def test_registers_after_running_guest_code() -> None:
    source = """
        li a0, -5
        li s0, 0x1234
        fcvt.d.l fa0, a0
        li t0, 0x43
        csrw fcsr, t0
    """
    cpu = run_ok(source)
    arch = cpu.arch
    assert arch.reg_read(cpu.state, "a0") == (-5) & M64
    assert arch.reg_read(cpu.state, Reg.FP) == 0x1234
    assert arch.reg_read(cpu.state, "fa0") == 0xC014_0000_0000_0000  # -5.0
    assert arch.reg_read(cpu.state, "fcsr") == 0x43
    code = assemble(source)
    ebreak = 2 if code[-2:] == b"\x02\x90" else 4  # c.ebreak or ebreak, appended last
    assert arch.reg_read(cpu.state, "pc") == CODE + len(code) - ebreak
