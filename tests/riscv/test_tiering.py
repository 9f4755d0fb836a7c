"""RISC-V programs whose hot code moves to optimised regions give the same results as
in the cheap tier: loops, calls and returns, counters, self-modifying code, FP state."""

from __future__ import annotations

import pytest

from llvmtcg.frontends.riscv.arch import Riscv64Arch
from llvmtcg.frontends.riscv.cpu import Cause
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.exits import EXCP_MEM_FAULT, Access
from llvmtcg.runtime.softmmu import GuestMemory, Perm
from tests.riscv.harness import CODE, DATA, assemble, needs_cross, run, run_ok, x

pytestmark = needs_cross

REGS = [1, 2, 5, 6, 7, 8, 9, *range(10, 32)]

# fib(18) by naive recursion (calls, returns through ra, stack traffic), then a loop
# over memory mixing loads, stores, branches and M/B instructions.
PROGRAM = f"""
    li sp, {DATA + 0x8000}
    li a0, 18
    call fib
    mv s2, a0
    li t0, {DATA}
    li t1, 3000
    li s3, 0
loop:
    andi t2, t1, 0xff
    slli t2, t2, 3
    add t2, t2, t0
    ld t3, 0(t2)
    mul t4, t3, t1
    add t4, t4, s3
    rori t4, t4, 7
    sd t4, 0(t2)
    xor s3, s3, t4
    addi t1, t1, -1
    bnez t1, loop
    rdinstret s4
    j end
fib:
    li t0, 2
    blt a0, t0, 1f
    addi sp, sp, -16
    sd ra, 8(sp)
    sd a0, 0(sp)
    addi a0, a0, -1
    call fib
    ld t0, 0(sp)
    sd a0, 0(sp)
    addi a0, t0, -2
    call fib
    ld t0, 0(sp)
    add a0, a0, t0
    ld ra, 8(sp)
    addi sp, sp, 16
1:  ret
end:
"""


def final_state(hot_threshold: int) -> tuple[list[int], bytes, Cpu]:
    cpu = run_ok(PROGRAM, data=bytes(range(256)) * 16, hot_threshold=hot_threshold)
    return [x(cpu, r) for r in REGS], cpu.memory.read(DATA, 0x1000), cpu


@pytest.mark.parametrize("threshold", [1, 5, 200])
def test_hot_regions_compute_what_the_cheap_tier_computes(threshold: int) -> None:
    cheap, cheap_memory, _ = final_state(0)
    hot, hot_memory, cpu = final_state(threshold)
    assert cheap[REGS.index(18)] == 2584  # fib(18)
    assert hot == cheap and hot_memory == cheap_memory
    assert cpu.tiering.stats["regions_installed"] >= 1
    assert cpu.stats.exits.get("HOT", 0) >= 1


def test_recursion_returns_stay_inside_the_region() -> None:
    _, _, cpu = final_state(50)
    regions = cpu.tbs.regions.values()
    # A region holds fib together with the continuations of its recursive calls.
    fib = next(r for r in regions if any(m.return_pc is not None for m in r.members))
    returns = {m.return_pc for m in fib.members if m.return_pc is not None}
    assert returns <= {m.pc for m in fib.members}


def test_self_modifying_code_inside_a_hot_loop() -> None:
    """From round 1500 on, the loop patches its own `c.li a0, 1` into `c.li a0, 10`
    (then fence.i), from inside its optimised region."""
    new = int.from_bytes(assemble("c.li a0, 10")[:2], "little")
    program = assemble(f"""
        li a1, 0
        li a2, 0
        li t3, 1500
        li t4, 3000
    top:
        blt a1, t3, patched
        la t0, patched
        li t1, {new}
        sh t1, 0(t0)
        fence.i
    patched:
        c.li a0, 1
        add a2, a2, a0
        addi a1, a1, 1
        bne a1, t4, top
    """)
    sums = []
    for threshold in (0, 50):
        memory = GuestMemory(1 << 24)
        memory.map(CODE, 0x1000, Perm.RWX)
        cpu = Cpu(Riscv64Arch(), memory,
                  options=RuntimeOptions(hot_threshold=threshold, tier_sync=True))
        memory.write(CODE, program)
        cpu.pc = CODE
        assert cpu.run().exception_index == Cause.BREAKPOINT
        sums.append(x(cpu, 12))
        if threshold:
            assert cpu.tiering.stats["regions_retired"] >= 1
    assert sums[0] == sums[1] == 1500 * 1 + 1500 * 10


def test_fp_environment_inside_a_hot_loop() -> None:
    """Rounding mode switches and accrued flags in a loop that becomes a region."""
    source = """
        li t0, 1000
        li t1, 3
        fcvt.d.l f1, t1
        li t1, 1
        fcvt.d.l f2, t1
        fmv.d.x f3, zero
    1:  andi t2, t0, 3
        fsrm t2
        fdiv.d f4, f2, f1
        fadd.d f3, f3, f4
        fmv.x.d t3, f4
        xor s2, s2, t3
        addi t0, t0, -1
        bnez t0, 1b
        frflags s3
        fmv.x.d s4, f3
    """
    results = []
    for threshold in (0, 20):
        cpu = run_ok(source, hot_threshold=threshold)
        results.append((x(cpu, 18), x(cpu, 19), x(cpu, 20)))
    assert results[0] == results[1]
    assert results[0][1] == 1  # NX


def test_memory_edge_cases_inside_a_hot_loop() -> None:
    """Hot code checks the page flags inline (flat memory): misaligned accesses that
    cross a page go the slow way and still work; a store into read-only code and a load
    past the end of DATA fault precisely, with the registers of the cheap tier."""
    source = f"""
        li t0, {DATA + 0x1000 - 5}
        li t1, 400
    1:  ld t2, 0(t0)
        sd t2, 8(t0)
        lw t3, 3(t0)
        add s2, s2, t2
        add s3, s3, t3
        addi t0, t0, 1
        addi t1, t1, -1
        bnez t1, 1b
        li t0, {DATA + 0x10000 - 0x800}
    2:  ld t2, 0(t0)
        add s4, s4, t2
        addi t0, t0, 7
        j 2b
    """
    data = bytes((i * 37 + 11) & 0xff for i in range(0x4000))
    results = []
    for threshold in (0, 5):
        cpu, exit_ = run(source, data=data, hot_threshold=threshold)
        assert exit_.exception_index == EXCP_MEM_FAULT and exit_.fault.access is Access.READ
        assert DATA + 0x10000 - 8 < exit_.fault.addr + 8 <= DATA + 0x10000 + 8
        if threshold:
            assert cpu.tiering.stats["regions_installed"] >= 2
        results.append((exit_.pc, exit_.fault.addr, [x(cpu, r) for r in REGS],
                        cpu.memory.read(DATA, 0x2000)))
    assert results[0] == results[1]
    store = f"""
        li t0, {CODE}
        li t1, 300
    1:  addi t1, t1, -1
        bnez t1, 1b
        sb t1, 0(t0)
    """
    for threshold in (0, 5):
        cpu, exit_ = run(store, hot_threshold=threshold)
        assert exit_.exception_index == EXCP_MEM_FAULT and exit_.fault.access is Access.WRITE
        assert exit_.fault.addr == CODE
