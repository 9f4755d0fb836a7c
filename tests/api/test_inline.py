"""Instrumentation compiled into translated code: the edge-coverage map, execution
counters, the comparison log, conditional hooks and compiled memory-hook ranges. Each
is checked against the same run's Python hooks (the events the inline form must
reproduce), in cheap blocks and in hot regions (the loops run past the hot threshold)."""

from __future__ import annotations

from collections import Counter

import pytest

from llvmtcg import Emulator, EmulatorError, ErrorKind, Hook, MemAccess, Reg
from llvmtcg.emulator import coverage_location
from llvmtcg.options import RuntimeOptions
from tests.api.support import CODE, assemble, needs_cross

pytestmark = needs_cross
DATA = 0x20000
ITERATIONS = 1500  # > the hot threshold (1000): the loop also runs as a hot region
# Two paths through the loop body (every fourth iteration skips a block), a load, a
# store and both kinds of compare (branches, slt).
LOOP = f"""
    li t0, {ITERATIONS}
    li a0, 0
    li a1, 0
    lui s0, {DATA >> 12}
1:  addi a0, a0, 1
    andi t1, a0, 3
    beqz t1, 2f
    addi a1, a1, 1
    ld t2, 0(s0)
    add t2, t2, a0
    sd t2, 0(s0)
2:  slti t3, a0, 100
    addi t0, t0, -1
    bnez t0, 1b
    nop
"""
TIERS = {"baseline": RuntimeOptions(tier_sync=True),
         "llvm": RuntimeOptions(tier_sync=True, baseline=False)}


@pytest.fixture(params=list(TIERS))
def emu(request: pytest.FixtureRequest):
    emulator = Emulator("riscv64", options=TIERS[request.param])
    emulator.mem_map(CODE, 0x1000)
    emulator.mem_map(DATA, 0x1000)
    code = assemble(LOOP)
    emulator.mem_write(CODE, code)
    emulator.end = CODE + len(code)  # type: ignore[attr-defined]
    yield emulator
    emulator.close()


def run(emu: Emulator) -> None:
    emu.emu_start(CODE, emu.end)  # type: ignore[attr-defined]
    assert emu.reg_read("a0") == ITERATIONS


def edge_map(blocks: list[int], bits: int) -> bytearray:
    """The AFL map a Python block hook computes from the blocks it saw."""
    expected, prev = bytearray(1 << bits), 0
    for pc in blocks:
        location = coverage_location(pc, bits)
        expected[location ^ prev] = (expected[location ^ prev] + 1) & 0xFF
        prev = location >> 1
    return expected


def test_coverage_map_equals_the_map_of_a_block_hook(emu: Emulator) -> None:
    coverage = bytearray(1 << 12)
    emu.coverage_map(coverage)
    blocks: list[int] = []
    emu.hook_add(Hook.BLOCK, lambda e, address, size, _: blocks.append(address))
    run(emu)
    assert len(blocks) > 2 * ITERATIONS
    assert coverage == edge_map(blocks, 12)
    # A second run adds to the map (prev_loc starts again at 0).
    first = list(blocks)
    run(emu)
    assert coverage == _sum_maps(edge_map(first, 12), edge_map(blocks[len(first):], 12))


def _sum_maps(a: bytearray, b: bytearray) -> bytearray:
    return bytearray((x + y) & 0xFF for x, y in zip(a, b, strict=True))


def _cover_one_edge_loop(tier: str, seen: list[int] | None) -> tuple[bytearray, list[int]]:
    """The coverage map of a block looping on itself, and the blocks a BLOCK hook saw
    (with ``seen``: it also records the loop edge's count at each block)."""
    code = assemble(f"li t0, {ITERATIONS}\n1: addi t0, t0, -1\nbnez t0, 1b\nnop")
    emu = Emulator("riscv64", options=TIERS[tier])
    emu.mem_map(CODE, 0x1000)
    emu.mem_write(CODE, code)
    coverage = bytearray(1 << 12)
    emu.coverage_map(coverage)
    blocks: list[int] = []
    if seen is not None:
        edge = coverage_location(CODE + 4, 12) ^ coverage_location(CODE + 4, 12) >> 1

        def on_block(e, address, size, _):
            blocks.append(address)
            seen.append(coverage[edge])  # (this block's own hit counted first)

        emu.hook_add(Hook.BLOCK, on_block)
    emu.emu_start(CODE, CODE + len(code))
    emu.close()
    return coverage, blocks


@pytest.mark.parametrize("tier", list(TIERS))
def test_coverage_of_a_loop_on_one_edge_is_exact_and_current_for_callbacks(tier: str) -> None:
    # Translated code holds back the hits of the same edge (write combining): the map
    # must still be exact (wrapping at 256) after the run, and up to date whenever a
    # callback runs.
    seen: list[int] = []
    plain, _ = _cover_one_edge_loop(tier, None)
    hooked, blocks = _cover_one_edge_loop(tier, seen)
    assert plain == hooked == edge_map(blocks, 12)
    # (blocks: the first iteration, the loop's 1499 (the first entered from the
    # first), the block at `until`, which reports itself)
    assert seen[1:-1] == [i & 0xFF for i in range(ITERATIONS - 1)] and seen[-1] == seen[-2]


def test_coverage_map_without_hooks_and_switched_off(emu: Emulator) -> None:
    coverage = memoryview(bytearray(1 << 16))
    emu.coverage_map(coverage)
    run(emu)
    assert 3 <= sum(1 for b in coverage if b) < 20  # a handful of edges, counted in place
    snapshot = bytes(coverage)
    emu.coverage_map(None)
    run(emu)
    assert bytes(coverage) == snapshot


def test_counters_are_exact(emu: Emulator) -> None:
    emu.counters_enable(Hook.BLOCK | Hook.CODE)
    blocks: list[int] = []
    insns: list[int] = []
    emu.hook_add(Hook.BLOCK, lambda e, address, size, _: blocks.append(address))
    emu.hook_add(Hook.CODE, lambda e, address, size, _: insns.append(address))
    run(emu)
    assert emu.counts(Hook.BLOCK) == Counter(blocks)
    assert emu.counts(Hook.CODE) == Counter(insns)
    loop_head = CODE + 16
    assert emu.counts(Hook.CODE)[loop_head] == ITERATIONS
    assert emu.counts(Hook.CODE)[CODE + 28] == ITERATIONS - ITERATIONS // 4  # the skipped path
    emu.counters_reset()
    assert emu.counts(Hook.CODE) == {}
    emu.counters_disable(Hook.CODE)
    first_run = len(blocks)
    run(emu)
    assert emu.counts(Hook.CODE) == {}
    assert emu.counts(Hook.BLOCK) == Counter(blocks[first_run:])


def test_instruction_counters_in_a_range(emu: Emulator) -> None:
    emu.counters_enable(Hook.CODE, begin=CODE + 16, end=CODE + 24)
    run(emu)
    assert emu.counts(Hook.CODE) == {CODE + 16: ITERATIONS, CODE + 20: ITERATIONS,
                                     CODE + 24: ITERATIONS}


def test_cmplog_records_every_compare_in_order(emu: Emulator) -> None:
    log = emu.cmplog(1 << 14)
    assert log is not None
    run(emu)
    records = log.records()
    assert log.total == len(records) == 3 * ITERATIONS
    first = records[:3]
    assert [(r.pc, r.cond, r.bits, r.a, r.b) for r in first] == [
        (CODE + 24, "eq", 64, 1, 0),  # beqz t1 (a0 & 3 == 1)
        (CODE + 44, "lt", 64, 1, 100),  # slti t3, a0, 100
        (CODE + 52, "ne", 64, ITERATIONS - 1, 0)]  # bnez t0
    assert records[-1] == records[-1].__class__(CODE + 52, "ne", 64, 0, 0)
    # A small ring keeps the newest records.
    small = emu.cmplog(4)
    assert small is not None
    run(emu)
    assert small.total == 3 * ITERATIONS and small.records() == records[-4:]
    small.clear()
    assert small.records() == []


def test_conditional_hook_fires_exactly_when_the_predicate_holds(emu: Emulator) -> None:
    everything: list[tuple[int, int]] = []
    chosen: list[tuple[int, int]] = []
    blocks: list[tuple[int, int]] = []
    emu.hook_add(Hook.CODE, lambda e, address, size, _:
                 everything.append((address, e.reg_read("a0"))))
    emu.hook_add(Hook.CODE, lambda e, address, size, data: chosen.append((address, data)),
                 user_data=7, when=Reg("a0") == 1234)
    emu.hook_add(Hook.BLOCK, lambda e, address, size, _: blocks.append((address, size)),
                 begin=CODE + 16, end=CODE + 16, when=Reg("t0") < 3)
    run(emu)
    assert chosen == [(address, 7) for address, a0 in everything if a0 == 1234]
    assert len(chosen) == 10  # from the andi after a0 = 1234 to the next addi
    assert blocks == [(CODE + 16, 12)] * 2  # t0 == 2 and t0 == 1 at the loop head


def test_memory_hook_ranges_are_compiled(emu: Emulator) -> None:
    inside: list[tuple[int, int, int]] = []
    outside: list[int] = []
    emu.hook_add(Hook.MEM_WRITE, lambda e, access, address, size, value, _:
                 inside.append((access, address, size)), begin=DATA, end=DATA + 7)
    emu.hook_add(Hook.MEM_READ, lambda e, access, address, size, value, _:
                 outside.append(address), begin=DATA + 8, end=DATA + 0xFFF)
    run(emu)
    assert inside == [(MemAccess.WRITE, DATA, 8)] * (ITERATIONS - ITERATIONS // 4)
    assert outside == []
    ir = emu.translation(CODE + 28).ir
    assert "call api_mem" in ir and "brcond_i64" in ir


def test_mem_fetch_reports_each_instruction_executed(emu: Emulator) -> None:
    fetches: list[tuple[int, int, int]] = []
    codes: list[tuple[int, int]] = []
    emu.hook_add(Hook.MEM_FETCH, lambda e, access, address, size, value, _:
                 fetches.append((access, address, size)), begin=CODE, end=CODE + 20)
    emu.hook_add(Hook.CODE, lambda e, address, size, _: codes.append((address, size)),
                 begin=CODE, end=CODE + 20)
    run(emu)
    assert fetches == [(MemAccess.FETCH, address, size) for address, size in codes]


def test_instrumentation_errors(emu: Emulator) -> None:
    for bad in (b"\0" * 64, bytearray(48), bytearray(1)):
        with pytest.raises(EmulatorError) as info:
            emu.coverage_map(bad)
        assert info.value.kind is ErrorKind.ARG
    with pytest.raises(EmulatorError) as info:
        emu.cmplog(100)
    assert info.value.kind is ErrorKind.ARG
    with pytest.raises(EmulatorError) as info:
        emu.hook_add(Hook.MEM_READ, print, when=Reg("a0") == 1)
    assert info.value.kind is ErrorKind.HOOK
    with pytest.raises(EmulatorError) as info:
        emu.hook_add(Hook.CODE, print, when=Reg("zero") == 1)
    assert info.value.kind is ErrorKind.ARG
    with pytest.raises(EmulatorError) as info:
        emu.counters_enable(Hook.MEM_READ)
    assert info.value.kind is ErrorKind.HOOK
    with pytest.raises(TypeError):
        Reg("a0") == "five"  # noqa: B015 - the comparison itself raises


def test_counter_array_grows_past_its_first_size() -> None:
    with Emulator("riscv64") as emu:
        emu.mem_map(CODE, 0x2000)
        code = assemble("addi a0, a0, 1\n" * 1500)
        emu.mem_write(CODE, code)
        emu.counters_enable(Hook.CODE)
        emu.emu_start(CODE, CODE + len(code))
        emu.emu_start(CODE, CODE + len(code))
        assert emu.counts(Hook.CODE) == {CODE + 4 * i: 2 for i in range(1500)}
        assert emu.reg_read("a0") == 3000
