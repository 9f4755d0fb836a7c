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
    define_byte_adder,
    halt_at,
    make_cpu,
)


def _slot(code, n: int = 0) -> int:
    """Where a baseline block's exit n goes: its direct jump's target if patched,
    else what its exit slot holds."""
    value = ctypes.c_uint64.from_address(code.slots[n]).value
    address = ctypes.c_uint64.from_address(code.slots[n] + 8).value  # (jump_of)
    if address:
        rel32 = ctypes.c_int32.from_address(address).value
        if rel32:
            assert address + 4 + rel32 == value  # (slot and jump agree)
        else:
            assert not value or value & TAIL_JUMP_TAG  # (through the slot)
    return value


def test_chained_hops_between_baseline_blocks_do_not_enter_the_adapter() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe)
    cpu.state.set("r", 500_000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 500_000
    # A million hops: the only adapter entries are the run loop's, one per block (its
    # translation miss: the baseline tier translates the missed block only).
    blocks = len(list(cpu.tbs.blocks()))
    assert blocks == 2 and cpu.stats.native_entries == blocks
    assert cpu.tbs.baseline.adapter_entries == blocks
    assert cpu.counters()["tb"]["baseline_adapter_entries"] == blocks


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

    define_byte_adder(fe, lambda: cpu, smc)
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


# -- %acc: results passed in a register between stencils ---------------------------------

_BINARY = ("add", "sub", "mul", "and_", "or_", "xor", "shl", "shr", "sar", "rotl",
           "divu", "rem", "nand")


def _random_block(rng, b: Builder, pc: int) -> None:
    """A block of random integer ops over r0-r5, two locals, an i32 local and
    constants, with forward branches (labels), loads and stores to DATA: chains where
    an op reads what the previous one wrote, and places where that must not be
    assumed (after a label, an i32 write, a helper-free store)."""
    from llvmtcg.ir.types import I32

    b.insn_start(pc)
    locals_ = [b.temp(), b.temp()]
    narrow = b.temp(I32)
    for t in locals_:
        b.mov(t, c64(rng.getrandbits(64)))
    pool = R[:6] + locals_
    last = pool[0]
    pending: list = []
    for _ in range(40):
        # Read the last result most of the time (what %acc carries).
        a = last if rng.random() < 0.7 else rng.choice(pool)
        other = rng.choice(pool + [c64(rng.getrandbits(64)), c64(rng.randrange(64))])
        dst = rng.choice(pool)
        kind = rng.random()
        if kind < 0.6:
            getattr(b, rng.choice(_BINARY))(dst, *((other, a) if rng.random() < 0.3
                                                   else (a, other)))
        elif kind < 0.68:
            b.ext32s(dst, a)
        elif kind < 0.74:
            b.extr_i64_i32(narrow, a)
            b.ext_i32_i64(dst, narrow, signed=rng.random() < 0.5)
        elif kind < 0.8:
            b.setcond(rng.choice(list(Cond)), dst, a, other)
        elif kind < 0.86:
            address = b.temp()
            b.and_(address, a, c64(0xFF8))
            b.add(address, address, c64(DATA))
            if rng.random() < 0.5:
                b.qemu_st(rng.choice(pool), address, MemOp(3))
            else:
                b.qemu_ld(dst, address, MemOp(3))
        elif kind < 0.93:
            label = b.label()
            pending.append(label)
            b.brcond(rng.choice(list(Cond)), a, other, label)
        elif pending:
            b.set_label(pending.pop(0))
        last = dst
    for label in pending:
        b.set_label(label)
    for i, t in enumerate(locals_):
        b.xor(R[6 + i], t, R[6 + i])
    halt_at(b, pc + 4)


def test_results_passed_in_acc_give_the_llvm_tiers_results() -> None:
    import random

    from llvmtcg.runtime.native.baseline import acc_plan

    taken = 0
    for seed in range(12):
        fe = HandFrontend()
        built = []

        @fe.define(CODE)
        def _(b: Builder, seed=seed, built=built) -> None:
            _random_block(random.Random(seed), b, CODE)  # (the same block each time)
            built.append(b.block)

        start = [random.Random(seed).getrandbits(64) for _ in range(8)]
        results = []
        for baseline in (True, False):
            cpu = make_cpu(fe, baseline=baseline)
            memory = bytes(random.Random(seed).getrandbits(8) for _ in range(0x1000))
            cpu.memory.write(DATA, memory)
            for i, v in enumerate(start):
                cpu.state.set("r", v, i)
            cpu.pc = CODE
            assert cpu.run().reason is ExitReason.HALT
            assert cpu.tbs.stats["baseline_blocks" if baseline else "llvm_blocks"] == 1
            results.append(([cpu.state.get("r", i) for i in range(8)],
                            cpu.memory.read(DATA, 0x1000)))
        assert results[0] == results[1], f"seed {seed}"
        taken += sum(t is not None for t in acc_plan(built[0].ops)[0])
    assert taken > 100  # (the blocks do exercise %acc)
