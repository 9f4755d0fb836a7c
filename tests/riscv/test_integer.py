"""Hand-assembled snippets checking RV64 I, M, A, Zicsr, Zifencei, B and C at edge values."""

from __future__ import annotations

import io

import pytest

from llvmtcg.frontends.riscv.arch import Riscv64Arch
from llvmtcg.frontends.riscv.cpu import Cause, CpuModel
from llvmtcg.ir import ExitReason
from llvmtcg.log import Log
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.exits import FaultKind
from llvmtcg.runtime.softmmu import GuestMemory, Perm
from tests.riscv.harness import CODE, DATA, assemble, needs_cross, run, run_ok, x, xs

pytestmark = needs_cross

M64 = (1 << 64) - 1
MIN64 = 1 << 63


def test_x0_is_zero_and_ignores_writes() -> None:
    cpu = run_ok("li x0, 5\naddi a0, x0, 7\nadd x0, a0, a0\nmv a1, x0")
    assert x(cpu, 0) == 0 and x(cpu, 10) == 7 and x(cpu, 11) == 0


def test_word_forms_sign_extend() -> None:
    cpu = run_ok("""
        addw a0, a1, a2
        addiw a3, a1, 1
        sllw a4, a2, a5
        srlw a6, a1, a5
        sraw a7, a1, a5
        subw t0, zero, a2
        slliw t1, a2, 31
        sraiw t2, a1, 31
    """, regs={11: 0x7FFF_FFFF, 12: 1, 15: 33})
    assert x(cpu, 10) == 0xFFFF_FFFF_8000_0000
    assert x(cpu, 13) == 0xFFFF_FFFF_8000_0000
    assert x(cpu, 14) == 2  # shift count 33 uses the low 5 bits
    assert x(cpu, 16) == 0x3FFF_FFFF
    assert x(cpu, 17) == 0x3FFF_FFFF
    assert x(cpu, 5) == M64
    assert x(cpu, 6) == 0xFFFF_FFFF_8000_0000
    assert x(cpu, 7) == 0


@pytest.mark.parametrize(("op", "a", "b", "expected"), [
    ("div", 7, 0, M64), ("divu", 7, 0, M64), ("rem", 7, 0, 7), ("remu", 7, 0, 7),
    ("div", MIN64, M64, MIN64), ("rem", MIN64, M64, 0),
    ("div", -7 & M64, 2, -3 & M64), ("rem", -7 & M64, 2, -1 & M64),
    ("divw", 0x8000_0000, M64, 0xFFFF_FFFF_8000_0000), ("remw", 0x8000_0000, M64, 0),
    ("divuw", 5, 0, M64), ("remuw", 0xFFFF_FFFF_0000_0009, 0, 9),
    ("remw", 0x1_8000_0001, 0, 0xFFFF_FFFF_8000_0001),
    ("mulh", MIN64, MIN64, 1 << 62), ("mulhu", M64, M64, M64 - 1),
    ("mulhsu", M64, M64, M64), ("mulw", 0x1_0000_0003, 0x7FFF_FFFF, 0x7FFF_FFFD),
])
def test_m_extension_edges(op: str, a: int, b: int, expected: int) -> None:
    cpu = run_ok(f"{op} a0, a1, a2", regs={11: a, 12: b})
    assert x(cpu, 10) == expected


def test_lr_sc_reservations() -> None:
    cpu = run_ok("""
        lui s0, 0x80
        sc.d a0, a1, (s0)      # no reservation: fails, memory unchanged
        lr.d a2, (s0)
        sc.d a3, a1, (s0)      # succeeds
        sc.d a4, a5, (s0)      # reservation consumed: fails
        lr.w a6, (s0)
        sw zero, 0(s0)         # memory no longer holds what LR read
        sc.w a7, a1, (s0)
        ld t0, 0(s0)
    """, regs={11: 0x1234, 15: 0x9999}, data=(0xFFFF_FFFF_8765_4321).to_bytes(8, "little"))
    assert x(cpu, 10) == 1
    assert x(cpu, 12) == 0xFFFF_FFFF_8765_4321
    assert x(cpu, 13) == 0 and x(cpu, 14) == 1
    assert x(cpu, 16) == 0x1234  # lr.w sign-extends the word it read
    assert x(cpu, 17) == 1 and x(cpu, 5) == 0


def test_amos_return_old_value_and_sign_extend_words() -> None:
    cpu = run_ok("""
        lui s0, 0x80
        amoadd.w a0, a1, (s0)
        amomaxu.d a2, a3, 8(s0)
        amomin.w.aqrl a4, a5, (s0)
        amoswap.d a6, a7, 8(s0)
        ld t0, 0(s0)
        ld t1, 8(s0)
    """.replace("8(s0)", "(s1)"), regs={9: DATA + 8, 11: 1, 13: 5, 15: -3 & M64, 17: 42},
        data=(0x7FFF_FFFF).to_bytes(8, "little") + (3).to_bytes(8, "little"))
    assert x(cpu, 10) == 0x7FFF_FFFF
    assert x(cpu, 12) == 3
    assert x(cpu, 14) == 0xFFFF_FFFF_8000_0000  # old word 0x80000000, sign-extended
    assert x(cpu, 16) == 5
    assert x(cpu, 5) == 0x8000_0000 and x(cpu, 6) == 42


def test_misaligned_amo_faults_precisely() -> None:
    cpu, exit_ = run("li a0, 1\nlui s0, 0x80\namoadd.w a1, a0, (s1)\nli a2, 9",
                     regs={9: DATA + 2, 11: 77})
    assert exit_.reason is ExitReason.EXCEPTION and exit_.fault.kind is FaultKind.MISALIGNED
    assert exit_.pc == CODE + 2 + 4  # c.li, lui, then the amo
    assert x(cpu, 11) == 77 and x(cpu, 12) == 0


def test_misaligned_loads_and_stores_are_performed() -> None:
    cpu = run_ok("""
        lui s0, 0x80
        sd a1, 3(s0)
        ld a0, 3(s0)
        li t0, 0x80ffd
        sd a1, 0(t0)       # crosses into the next page
        lw a2, 2(t0)
        lhu a3, 0(t0)
    """, regs={11: 0x1122_3344_5566_7788})
    assert x(cpu, 10) == 0x1122_3344_5566_7788
    assert x(cpu, 12) == 0x3344_5566 and x(cpu, 13) == 0x7788
    assert cpu.memory.read(DATA + 0xFFD, 8) == (0x1122_3344_5566_7788).to_bytes(8, "little")


def test_zba_zbb_zbs() -> None:
    cpu = run_ok("""
        sh3add.uw a0, a1, a2
        clzw a3, a1
        ctz a4, zero
        cpopw a5, a1
        orc.b a6, a7
        rev8 t0, a7
        rolw t1, a1, a2
        roriw t2, a1, 4
        bexti s0, a1, 63
        binvi s1, zero, 63
        max t3, a1, a2
        minu t4, a1, a2
        sext.h t5, a1
        zext.h t6, a1
    """, regs={11: 0xFFFF_FFFF_0000_8001, 12: 3, 17: 0x0001_0080_0000_7F00})
    assert x(cpu, 10) == (0x8001 << 3) + 3
    assert x(cpu, 13) == 16
    assert x(cpu, 14) == 64
    assert x(cpu, 15) == 2
    assert x(cpu, 16) == 0x00FF_00FF_0000_FF00
    assert x(cpu, 5) == 0x007F_0000_8000_0100
    assert x(cpu, 6) == 0x4_0008  # 0x00008001 rotated left by 3
    assert x(cpu, 7) == 0x1000_0800
    assert x(cpu, 8) == 1 and x(cpu, 9) == MIN64
    assert x(cpu, 28) == 3 and x(cpu, 29) == 3
    assert x(cpu, 30) == 0xFFFF_FFFF_FFFF_8001 and x(cpu, 31) == 0x8001


@pytest.mark.parametrize(("value", "expected"), [
    (0, 32), (1, 0), (0x8000_0000, 31), (0x1_0000_0000, 32),
    (0x8000_0000_0000_0000, 32),  # qemu-riscv64 7.2 answers 63 here, against the spec
    (0xFFFF_FFFF_0000_0100, 8)])
def test_ctzw_counts_only_the_low_word(value: int, expected: int) -> None:
    cpu = run_ok("ctzw a0, a1", regs={11: value})
    assert x(cpu, 10) == expected


def test_extension_guards_make_instructions_illegal() -> None:
    no_zbb = CpuModel.parse("rv64,zbb=false,m=off")
    for insn in ("clz a0, a1", "mul a0, a1, a2"):
        cpu, exit_ = run(insn, model=no_zbb)
        assert exit_.exception_index == Cause.ILLEGAL_INSN and exit_.pc == CODE
        assert cpu.state.get("badinsn") == int.from_bytes(assemble(insn)[:4], "little")


@pytest.mark.parametrize("word", [".2byte 0", ".word 0", ".word 0xffffffff",
                                  ".2byte 0x6101",  # c.addi16sp sp, 0 (reserved)
                                  ".2byte 0x6081",  # c.lui x1, 0 (reserved)
                                  ".2byte 0x8002",  # c.jr x0 (reserved)
                                  "csrr a0, mstatus", "csrw cycle, a0", "mret"])
def test_illegal_encodings(word: str) -> None:
    _, exit_ = run(word)
    assert exit_.reason is ExitReason.EXCEPTION
    assert exit_.exception_index == Cause.ILLEGAL_INSN and exit_.pc == CODE


def test_user_csrs() -> None:
    cpu = run_ok("""
        csrw fcsr, a1
        csrr a0, fflags
        csrr a2, frm
        csrwi fflags, 0x1
        csrrsi a3, fflags, 0x4
        csrrc a4, fcsr, a5
        csrr a6, fcsr
        rdtime t0
        rdcycle t1
        rdinstret t2
    """, regs={11: 0xFF, 15: 0x7})
    assert x(cpu, 10) == 0x1F and x(cpu, 12) == 0x7
    assert x(cpu, 13) == 0x1 and x(cpu, 14) == 0xE5 and x(cpu, 16) == 0xE0
    assert x(cpu, 5) > 0 and x(cpu, 6) > 0
    assert x(cpu, 7) == 9  # instructions retired before rdinstret


def test_self_modifying_code_via_fence_i() -> None:
    memory = GuestMemory(1 << 24)
    memory.map(CODE, 0x1000, Perm.RWX)
    cpu = Cpu(Riscv64Arch(), memory)
    new = int.from_bytes(assemble("c.li a0, 10")[:2], "little")
    program = assemble(f"""
        li a0, 0
    top:
        la t0, patched
        li t1, {new}
        sh t1, 0(t0)
        fence.i
    patched:
        c.li a0, 1
        addi a1, a1, 1
        li t2, 2
        bne a1, t2, top
    """)
    memory.write(CODE, program)
    cpu.pc = CODE
    exit_ = cpu.run()
    assert exit_.exception_index == Cause.BREAKPOINT
    assert x(cpu, 10) == 10 and x(cpu, 11) == 2


def test_ecall_exits_with_syscall_and_ebreak_traps() -> None:
    cpu, exit_ = run("li a7, 93\necall\nli a0, 5")
    assert exit_.reason is ExitReason.SYSCALL and exit_.pc == CODE + 4
    cpu.pc = exit_.pc + 4
    exit_ = cpu.run()
    assert exit_.exception_index == Cause.BREAKPOINT and xs(cpu, 10) == 5


def test_log_shows_every_stage_of_a_block() -> None:
    out = io.StringIO()
    log = Log("in_asm,op,llvm,out_asm", out)
    memory = GuestMemory(1 << 24)
    memory.map(CODE, 0x1000, Perm.RX)
    memory.write(CODE, assemble("addi a0, a0, 1\nc.add a0, a1"), check=None)
    cpu = Cpu(Riscv64Arch(), memory, log=log,
              options=RuntimeOptions(baseline=False))  # (-d llvm: the LLVM block tier)
    cpu.pc = CODE
    cpu.run()
    text = out.getvalue()
    assert "IN: 0x10000\n0x0000000000010000:      0505  c.addi a0, 1" in text
    assert " add_i64 x[10],x[10],$0x1" in text  # -d op
    assert "define i64 @tb_10000" in text  # -d llvm
    assert "OUT: host code for tb_10000" in text  # -d out_asm
