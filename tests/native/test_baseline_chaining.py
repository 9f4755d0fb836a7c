"""Baseline blocks jump body to body: a linked exit slot or a jump-cache hit leading to
another baseline block skips the target's C entry adapter (the adapter counts its
entries, ``BaselineCodegen.adapter_entries``); links to other code go through the
adapter; invalidating a linked target still unlinks it.
"""

from __future__ import annotations

import ctypes

from llvmtcg.ir import Builder, Cond, ExitReason, MemOp
from llvmtcg.ir.lower.stencil_function import TAIL_JUMP_TAG
from llvmtcg.runtime.softmmu import Perm
from tests.core.support import (
    CODE,
    DATA,
    PC,
    HandFrontend,
    R,
    c64,
    counting_loop,
    halt_at,
    make_cpu,
)


def _slot(code, n: int = 0) -> int:
    return ctypes.c_uint64.from_address(code.slots[n]).value


def test_chained_hops_between_baseline_blocks_do_not_enter_the_adapter() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe)
    cpu.state.set("r", 500_000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 500_000
    assert cpu.stats.native_entries == 1
    # A million hops: the only adapter entry is the run loop's.
    assert cpu.tbs.baseline.adapter_entries == 1
    assert cpu.counters()["tb"]["baseline_adapter_entries"] == 1


def test_a_baseline_link_holds_the_targets_body_and_invalidation_clears_it() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, max_region_blocks=1)  # links made lazily, through CHAIN exits
    cpu.state.set("r", 1000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    first, second = cpu.tbs.lookup(CODE), cpu.tbs.lookup(CODE + 4)
    body = cpu.tbs.baseline.body_offset
    assert body % 16 == 0 and body > 0
    assert _slot(first) == second.entry + body and _slot(second) == first.entry + body
    assert cpu.tbs.baseline.adapter_entries == cpu.stats.native_entries == 2

    # The linked target goes away; its new translation counts r2 too.
    cpu.tbs.invalidate(second)
    assert _slot(first) == 0 and 0 not in first.linked

    @fe.define(CODE + 4)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 4)
        b.add(R[2], R[2], c64(1))
        done = b.label()
        b.brcond(Cond.GEU, R[0], R[1], done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 8)

    cpu.state.set("r", 0, 0)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 1000 and cpu.state.get("r", 2) == 1000
    new = cpu.tbs.lookup(CODE + 4)
    assert new is not second and _slot(first) == new.entry + body


def test_self_modifying_store_unlinks_a_body_to_body_link_before_it_is_taken() -> None:
    fe = HandFrontend()
    smc = DATA + 0x2000  # a writable+executable page holding "code"

    @fe.define(CODE)
    def _(b: Builder) -> None:  # r0 += 1; if r3: store r3 at smc, r3 = 0; goto smc
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        skip = b.label()
        b.brcond(Cond.EQ, R[3], c64(0), skip)
        b.qemu_st(R[3], c64(smc), MemOp(0))
        b.mov(R[3], c64(0))
        b.set_label(skip)
        b.goto_tb(0, smc)

    def generated(b: Builder) -> None:
        # The "instruction" at smc is its byte, a constant of the block: r2 += byte.
        byte = cpu.memory.read(smc, 1)[0]
        b.insn_start(smc)
        b.add(R[2], R[2], c64(byte))
        done = b.label()
        b.brcond(Cond.GEU, R[0], R[1], done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 4)

    fe.blocks[smc] = (generated, 4)
    cpu = make_cpu(fe)
    cpu.memory.protect(DATA, 0x10000, Perm.RWX)
    cpu.memory.write(smc, b"\x05")
    cpu.state.set("r", 100, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 2) == 500
    first = cpu.tbs.lookup(CODE)
    assert _slot(first) == cpu.tbs.lookup(smc).entry + cpu.tbs.baseline.body_offset
    # Again, storing 7 over the linked target in the first iteration: the store
    # unlinks CODE's slot before CODE's goto_tb reads it, so every hop runs the new
    # translation.
    cpu.state.set("r", 0, 0)
    cpu.state.set("r", 0, 2)
    cpu.state.set("r", 7, 3)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 2) == 700
    assert fe.translations.count(smc) == 2
    assert _slot(first) == cpu.tbs.lookup(smc).entry + cpu.tbs.baseline.body_offset


def test_indirect_jumps_between_baseline_blocks_enter_the_body() -> None:
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:  # r0 += 1; jump to r2 (indirect)
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        b.mov(PC, R[2])
        b.lookup_and_goto_ptr()

    @fe.define(CODE + 0x100)
    def _(b: Builder) -> None:  # if r0 == r1 halt; else jump to CODE (indirect)
        b.insn_start(CODE + 0x100)
        done = b.label()
        b.brcond(Cond.EQ, R[0], R[1], done)
        b.mov(PC, c64(CODE))
        b.lookup_and_goto_ptr()
        b.set_label(done)
        halt_at(b, CODE + 0x104)

    cpu = make_cpu(fe)
    cpu.state.set("r", 100_000, 1)
    cpu.state.set("r", CODE + 0x100, 2)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 100_000
    assert cpu.stats.native_entries == 2  # (one LOOKUP exit, as in tests/core)
    assert cpu.tbs.baseline.adapter_entries == 2  # 200k jump-cache hops: none


def test_links_between_baseline_blocks_and_hot_regions_go_through_adapters() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, hot_threshold=50, tier_sync=True)
    cpu.state.set("r", 200_000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 200_000
    region = cpu.tbs.regions[CODE]
    # Baseline slots linked to the (LLVM) region hold its C entry, tagged.
    incoming = [src for src, _ in region.incoming if src is not region]
    assert incoming
    for src in incoming:
        value = _slot(src)
        assert value == region.entry | TAIL_JUMP_TAG and value & TAIL_JUMP_TAG
