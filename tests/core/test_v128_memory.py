"""16-byte guest loads and stores (qemu_ld/qemu_st of a v128 temp) on every tier:
the bytes moved, page crossings, and faults compared with the two doubleword accesses
they replace (same fault address and kind, same registers and memory afterwards), a
store into translated code, and a hot region's flat-memory form.

q0 = r[0..1], q1 = r[2..3] (the layout's i64 registers, as in test_vector_ops).
"""

from __future__ import annotations

import itertools

import pytest

from llvmtcg.ir import I64, V128, Builder, Cond, ExitReason, IRError, MemOp, Temp
from llvmtcg.ir.parse import parse_block
from llvmtcg.ir.types import TempKind
from llvmtcg.runtime.softmmu import Perm
from tests.core.support import CODE, DATA, LAYOUT, HandFrontend, R, c64, halt_at, make_cpu
from tests.core.test_fp_ops import TIERS

Q = [Temp(TempKind.GLOBAL, V128, f"q{i}", offset=LAYOUT.globals()[f"r[{2 * i}]"].offset)
     for i in range(2)]
PAGE = 0x1000
DATA_END = DATA + 0x10000  # make_cpu maps DATA..DATA_END read/write; above is unmapped
PATTERN = bytes(range(0x40, 0x50))
LO, HI = int.from_bytes(PATTERN[:8], "little"), int.from_bytes(PATTERN[8:], "little")


def _set_q1(cpu) -> None:
    cpu.state.set("r", LO, 2)
    cpu.state.set("r", HI, 3)


def _q0(cpu) -> tuple[int, int]:
    return cpu.state.get("r", 0), cpu.state.get("r", 1)


# Offsets from a page boundary: inside, the last fit, and every page-crossing split.
OFFSETS = [0, 8, 0x7F1, PAGE - 16, *range(PAGE - 15, PAGE), PAGE + 3]


@pytest.mark.parametrize("tier", list(TIERS))
def test_store_then_load_16_bytes_at_any_offset(tier: str) -> None:
    fe = HandFrontend()
    pcs = itertools.count(CODE, 4)
    cases = []
    for offset in OFFSETS:
        addr = DATA + PAGE + offset
        pc = next(pcs)

        @fe.define(pc)
        def _(b: Builder, addr: int = addr, pc: int = pc) -> None:
            b.insn_start(pc)
            b.qemu_st(Q[1], c64(addr), MemOp(3))
            b.qemu_ld(Q[0], c64(addr), MemOp(3))
            halt_at(b, pc + 4)

        cases.append((pc, addr))
    cpu = make_cpu(fe, **TIERS[tier])
    _set_q1(cpu)
    for pc, addr in cases:
        cpu.memory.write(addr - 1, bytes(18))
        cpu.state.set("r", 0, 0)
        cpu.state.set("r", 0, 1)
        cpu.pc = pc
        assert cpu.run().reason is ExitReason.HALT
        assert cpu.memory.read(addr - 1, 18) == bytes(1) + PATTERN + bytes(1), hex(addr)
        assert _q0(cpu) == (LO, HI), hex(addr)


@pytest.mark.parametrize("tier", list(TIERS))
def test_big_endian_doublewords(tier: str) -> None:
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.qemu_st(Q[1], c64(DATA + 0x100), MemOp(3, big_endian=True))
        b.qemu_ld(Q[0], c64(DATA + 0x200), MemOp(3, big_endian=True))
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe, **TIERS[tier])
    _set_q1(cpu)
    cpu.memory.write(DATA + 0x200, PATTERN)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.memory.read(DATA + 0x100, 16) == PATTERN[7::-1] + PATTERN[:7:-1]
    assert _q0(cpu) == (int.from_bytes(PATTERN[:8], "big"), int.from_bytes(PATTERN[8:], "big"))


def _v128_access(store: bool, addr: int, memop: MemOp):
    def emit(b: Builder) -> None:
        if store:
            b.qemu_st(Q[1], c64(addr), memop)
        else:
            b.qemu_ld(Q[0], c64(addr), memop)
    return emit


def _doubleword_accesses(store: bool, addr: int, memop: MemOp):
    """What the frontends emitted before: two i64 accesses, a load's halves written
    only after both succeeded."""
    def emit(b: Builder) -> None:
        if store:
            b.qemu_st(R[2], c64(addr), memop)
            b.qemu_st(R[3], c64(addr + 8), memop)
            return
        lo, hi = b.temp(I64), b.temp(I64)
        b.qemu_ld(lo, c64(addr), memop)
        b.qemu_ld(hi, c64(addr + 8), memop)
        b.mov(R[0], lo)
        b.mov(R[1], hi)
    return emit


def _run_faulting(tier: str, access, readonly_page: bool) -> tuple:
    fe = HandFrontend()

    @fe.define(CODE, size=12)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.movi(R[4], 7)
        b.insn_start(CODE + 4)
        access(b)
        b.insn_start(CODE + 8)
        b.movi(R[5], 9)
        halt_at(b, CODE + 12)

    cpu = make_cpu(fe, **TIERS[tier])
    _set_q1(cpu)
    cpu.state.set("r", 0x1111, 0)
    cpu.state.set("r", 0x2222, 1)
    window = (DATA + 0x2FF0, 0x20) if readonly_page else (DATA_END - 0x20, 0x20)
    cpu.memory.write(window[0], bytes(range(0x20)))
    if readonly_page:
        cpu.memory.protect(DATA + 0x3000, PAGE, Perm.R)
    cpu.pc = CODE
    exit_ = cpu.run()
    fault = exit_.fault
    return (exit_.reason, exit_.pc, fault and (fault.addr, fault.access, fault.kind),
            [cpu.state.get("r", i) for i in range(6)], cpu.memory.read(*window))


# (store, address, the page after the first half read-only instead of unmapped)
FAULTS = [(False, DATA_END - 8, False), (False, DATA_END - 12, False),
          (False, DATA_END - 3, False), (False, DATA_END, False), (True, DATA_END - 8, False),
          (True, DATA_END - 5, False), (True, DATA_END - 13, False),
          (True, DATA + 0x3000 - 8, True), (True, DATA + 0x3000 - 11, True),
          (True, DATA + 0x3000, True), (False, 1 << 60, False), (False, -8 & (1 << 64) - 1,
                                                                  False)]


@pytest.mark.parametrize("tier", list(TIERS))
@pytest.mark.parametrize(("store", "addr", "readonly"), FAULTS)
def test_faults_match_two_doubleword_accesses(tier: str, store: bool, addr: int,
                                              readonly: bool) -> None:
    memop = MemOp(3)
    got = _run_faulting(tier, _v128_access(store, addr, memop), readonly)
    want = _run_faulting(tier, _doubleword_accesses(store, addr, memop), readonly)
    assert got[0] is ExitReason.EXCEPTION and got[1] == CODE + 4
    assert got == want


@pytest.mark.parametrize("tier", list(TIERS))
@pytest.mark.parametrize("addr", [DATA + 0x104, DATA + 0x10C])
def test_alignment_faults_match_two_doubleword_accesses(tier: str, addr: int) -> None:
    memop = MemOp(3, align_log2=3)
    for store in (False, True):
        got = _run_faulting(tier, _v128_access(store, addr, memop), False)
        want = _run_faulting(tier, _doubleword_accesses(store, addr, memop), False)
        assert got[0] is ExitReason.EXCEPTION
        assert got == want


@pytest.mark.parametrize("tier", list(TIERS))
def test_a_16_byte_store_into_translated_code_invalidates_it(tier: str) -> None:
    fe = HandFrontend()
    smc = DATA + 0x2000

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[5], R[5], c64(1))
        b.goto_tb(0, smc)

    def generated(b: Builder) -> None:
        # The "instruction" is the byte at smc + 4, which the 16-byte store at smc
        # rewrites with the low byte of r[2] (incremented each time round).
        byte = cpu.memory.read(smc + 4, 1)[0]
        b.insn_start(smc)
        b.add(R[4], R[4], c64(byte))
        b.add(R[2], R[2], c64(1 << 32))
        b.qemu_st(Q[1], c64(smc), MemOp(3))
        done = b.label()
        b.brcond(Cond.GEU, R[5], c64(3), done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 4)

    # (8 bytes: its guest bytes must hold the byte it reads, as a frontend's fetches
    # do — what it stands for is compared when code comes back, see TbCache._memo_take)
    fe.blocks[smc] = (generated, 8)
    cpu = make_cpu(fe, **TIERS[tier])
    cpu.memory.protect(DATA, 0x10000, Perm.RWX)
    cpu.memory.write(smc, bytes(4) + b"\x05")
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 4) == 5 + 1 + 2  # each store invalidated the block
    assert fe.translations.count(smc) == 3


def test_a_hot_region_moves_16_bytes_at_every_offset() -> None:
    """A hot region (flat memory, one page-flag test) copies 16 bytes from r[6] to
    r[7], both advancing by 13 bytes a time round, so the accesses take every offset
    in a page, crossings included."""
    fe = HandFrontend()
    loop, done = CODE + 0x100, CODE + 0x104

    @fe.define(loop)
    def _(b: Builder) -> None:
        b.insn_start(loop)
        b.qemu_ld(Q[1], R[6], MemOp(3))
        b.qemu_st(Q[1], R[7], MemOp(3))
        b.add(R[6], R[6], c64(13))
        b.add(R[7], R[7], c64(13))
        b.add(R[0], R[0], c64(1))
        skip = b.label()
        b.brcond(Cond.GEU, R[0], R[1], skip)
        b.goto_tb(0, loop)
        b.set_label(skip)
        b.goto_tb(1, done)

    @fe.define(done)
    def _(b: Builder) -> None:
        b.exit_tb(ExitReason.HALT)

    n = 700  # 13 * 700 bytes: more than two pages
    cpu = make_cpu(fe, hot_threshold=20, tier_sync=True)
    source = bytes((i * 7 + 3) & 0xFF for i in range(13 * n + 16))
    cpu.memory.write(DATA, source)
    for i, v in enumerate([0, n, 0, 0, 0, 0, DATA, DATA + 0x8000]):
        cpu.state.set("r", v, i)
    cpu.pc = loop
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.tbs.stats["regions_installed"] >= 1
    assert cpu.memory.read(DATA + 0x8000, 13 * n + 3) == source[:13 * n + 3]
    last = DATA + 13 * (n - 1)
    assert (cpu.state.get("r", 2), cpu.state.get("r", 3)) == (
        int.from_bytes(cpu.memory.read(last, 8), "little"),
        int.from_bytes(cpu.memory.read(last + 8, 8), "little"))


def test_text_form_round_trips() -> None:
    b = Builder(CODE, LAYOUT.globals())
    b.insn_start(CODE)
    b.qemu_ld(Q[0], R[6], MemOp(3))
    b.qemu_st(Q[1], R[7], MemOp(3, big_endian=True))
    b.exit_tb(ExitReason.HALT)
    block = b.finish()
    text = str(block)
    assert " qemu_ld_v128 q0,r[6],leuq,$0x0\n" in text
    parsed = parse_block(text, {**LAYOUT.globals(), **{q.name: q for q in Q}})
    assert parsed.ops == block.ops


@pytest.mark.parametrize("memop", [MemOp(2), MemOp(3, signed=True), MemOp(3, align_log2=4)])
def test_builder_rejects_other_memops_for_v128(memop: MemOp) -> None:
    b = Builder(CODE, LAYOUT.globals())
    with pytest.raises(IRError, match="two doublewords"):
        b.qemu_ld(Q[0], R[6], memop)
    with pytest.raises(IRError, match="two doublewords"):
        b.qemu_st(Q[0], R[6], memop)
