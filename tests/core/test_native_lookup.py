"""The native lookup table behind the jump cache (runtime/lookup_table.py): indirect
jumps to translated code stay in native code however their targets conflict in the
jump cache, and the table follows translation, invalidation, hot regions and tb_flush."""

from __future__ import annotations

import ctypes

from llvmtcg.ir import Builder, Cond, ExitReason, host_abi
from llvmtcg.ir import cpu_layout as abi
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.exits import EXCP_DEBUG
from llvmtcg.runtime.lookup_table import EMPTY_PC, NativeLookup
from llvmtcg.runtime.softmmu import GuestMemory, Perm
from tests.core.support import CODE, PC, HandFrontend, R, c64, halt_at, make_cpu

FAR = 0x100000  # targets 8 KiB apart: every one maps to the same jump cache entry
N_TARGETS = 64


def probe(cpu: Cpu, pc: int, flags: int | None = None) -> int:
    """Call the native probe as generated code does; returns the entry (0: none)."""
    fn = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                          ctypes.c_uint64)(cpu.jit.imports[host_abi.TB_LOOKUP.symbol])
    return fn(cpu.state.address, pc, cpu.tb_flags if flags is None else flags) or 0


def jump_cache_entry(cpu: Cpu, pc: int) -> tuple[int, int, int]:
    i = abi.jmp_cache_index(pc) * 3
    return tuple(cpu.jump_cache[i:i + 3])


def conflicting_targets(fe: HandFrontend) -> None:
    """CODE: r0 += 1; if r0 == r1 halt; jump to FAR + (r0 % 64) * 8192 (indirect).
    Each target: r3 += its number; jump to CODE (indirect)."""

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        done = b.label()
        b.add(R[0], R[0], c64(1))
        b.brcond(Cond.EQ, R[0], R[1], done)
        b.and_(R[2], R[0], c64(N_TARGETS - 1))
        b.shl(R[2], R[2], c64(13))
        b.add(PC, R[2], c64(FAR))
        b.lookup_and_goto_ptr()
        b.set_label(done)
        halt_at(b, CODE + 4)

    for k in range(N_TARGETS):
        pc = FAR + k * 8192

        @fe.define(pc)
        def _(b: Builder, pc: int = pc, k: int = k) -> None:
            b.insn_start(pc)
            b.add(R[3], R[3], c64(k))
            b.mov(PC, c64(CODE))
            b.lookup_and_goto_ptr()


def far_cpu(fe: HandFrontend, **options) -> Cpu:
    options.setdefault("hot_threshold", 0)
    memory = GuestMemory(1 << 24)
    memory.map(CODE, 0x10000, Perm.RX)
    memory.map(FAR, N_TARGETS * 8192, Perm.RX)
    return Cpu(fe, memory, options=RuntimeOptions(**options))


def run_conflicting(cpu: Cpu, jumps: int) -> None:
    cpu.state.set("r", 0, 0)
    cpu.state.set("r", 0, 3)
    cpu.state.set("r", jumps, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    n = jumps - 1
    assert cpu.state.get("r", 3) == sum(i % N_TARGETS for i in range(1, n + 1))


def test_conflicting_indirect_jumps_stay_in_native_code() -> None:
    fe = HandFrontend()
    conflicting_targets(fe)
    cpu = far_cpu(fe)
    run_conflicting(cpu, 20_000)
    # Every target shares one jump cache entry, so nearly every jump misses it; the
    # table serves them: one LOOKUP exit per target (its translation), no more.
    assert cpu.stats.exits["LOOKUP"] == N_TARGETS
    assert cpu.tbs.lookup_counters()["hits"] > 19_000
    before = cpu.stats.exits["LOOKUP"]
    run_conflicting(cpu, 20_000)  # all translated: not one exit to Python
    assert cpu.stats.exits["LOOKUP"] == before
    assert cpu.stats.native_entries == N_TARGETS + 2


def test_the_probe_refills_the_jump_cache_and_checks_the_flags() -> None:
    fe = HandFrontend()
    conflicting_targets(fe)
    cpu = far_cpu(fe)
    run_conflicting(cpu, 200)
    target = FAR + 5 * 8192
    entry = cpu.tbs.best(target).entry
    cpu.tbs.jmp_cache_flush()
    assert probe(cpu, target) == entry
    assert jump_cache_entry(cpu, target) == (target, entry, cpu.tb_flags)
    assert probe(cpu, target, cpu.tb_flags ^ 1) == 0  # other flags: other code
    assert probe(cpu, target + 4) == 0  # never translated


def test_invalidated_code_leaves_the_table() -> None:
    fe = HandFrontend()
    conflicting_targets(fe)
    cpu = far_cpu(fe)
    run_conflicting(cpu, 200)
    target = FAR + 7 * 8192
    assert probe(cpu, target) != 0
    entries = len(cpu.tbs.lookup_table)
    cpu.tbs.invalidate_range(target, target + 4)
    assert probe(cpu, target) == 0
    assert jump_cache_entry(cpu, target)[0] == EMPTY_PC
    assert len(cpu.tbs.lookup_table) == entries - 1
    lookups = cpu.stats.exits["LOOKUP"]
    run_conflicting(cpu, 200)  # retranslated at its next jump, once
    assert cpu.stats.exits["LOOKUP"] == lookups + 1
    assert probe(cpu, target) == cpu.tbs.best(target).entry


def test_flushing_the_arena_empties_the_table() -> None:
    fe = HandFrontend()
    conflicting_targets(fe)
    cpu = far_cpu(fe)
    run_conflicting(cpu, 200)
    assert len(cpu.tbs.lookup_table) == N_TARGETS + 1
    cpu.tbs.flush_arena()
    assert len(cpu.tbs.lookup_table) == 0
    assert all(probe(cpu, FAR + k * 8192) == 0 for k in range(N_TARGETS))
    run_conflicting(cpu, 200)  # everything translated again, and found again
    assert len(cpu.tbs.lookup_table) == N_TARGETS + 1
    assert cpu.tbs.stats["arena_flushes"] == 1


def test_hot_regions_are_looked_up_and_retired() -> None:
    fe = HandFrontend()
    conflicting_targets(fe)
    cpu = far_cpu(fe, hot_threshold=50, tier_sync=True)
    run_conflicting(cpu, 5_000)
    region = cpu.tbs.regions[CODE]
    assert probe(cpu, CODE) == region.entry
    head = region.members[0]
    # Invalidating a member other than the head retires the region: the head's block
    # is what lookups find again.
    other = next((m for m in region.members if m is not head), None)
    if other is not None:
        cpu.tbs.invalidate(other)
        assert probe(cpu, CODE) == head.entry
    else:
        cpu.tbs.invalidate(head)
        assert probe(cpu, CODE) == 0
    run_conflicting(cpu, 5_000)


def test_a_single_step_does_not_go_through_the_table() -> None:
    fe = HandFrontend()
    conflicting_targets(fe)
    cpu = far_cpu(fe)
    run_conflicting(cpu, 200)  # every target translated and in the table
    cpu.state.set("r", 0, 0)
    cpu.state.set("r", 10, 1)
    cpu.pc = CODE
    exit_ = cpu.step()  # one instruction: the indirect jump, and no further
    assert (exit_.reason, exit_.exception_index) == (ExitReason.EXCEPTION, EXCP_DEBUG)
    assert cpu.pc == FAR + 1 * 8192
    assert cpu.state.get("r", 0) == 1
    assert cpu.state.get("tb_table") == cpu.tbs.lookup_cell  # (restored)


def test_the_table_grows_and_forgets() -> None:
    table = NativeLookup()
    keys = [(0x1000 + 2 * i, i % 3) for i in range(20_000)]
    for pc, flags in keys:
        table.put(pc, flags, pc * 16)
    for pc, flags in keys[::2]:
        table.drop(pc, flags)
    table.drop(keys[1][0], keys[1][1], fn=123)  # entered elsewhere: kept
    assert len(table) == 10_000
    for i, (pc, flags) in enumerate(keys):
        assert table.get(pc, flags) == (None if i % 2 == 0 else pc * 16)
    table.put(keys[1][0], keys[1][1], 7)
    assert table.get(*keys[1]) == 7 and len(table) == 10_000
    table.clear()
    assert len(table) == 0 and table.get(*keys[1]) is None
    table.release_old()


def test_conflicting_jumps_also_in_a_small_cpu() -> None:
    # (make_cpu's memory: CODE only) an indirect jump to code never translated exits.
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.mov(PC, c64(CODE + 8))
        b.lookup_and_goto_ptr()

    @fe.define(CODE + 8)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 8)
        halt_at(b, CODE + 12)

    cpu = make_cpu(fe)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.stats.exits["LOOKUP"] == 1
    assert cpu.tbs.lookup_counters()["misses"] == 1


def test_a_new_generation_makes_every_entry_stale_until_put_again() -> None:
    """System mode: entries hold for the TLB contents they were written under."""
    table = NativeLookup()
    table.put(0x1000, 3, 0xAAA0)
    table.put(0x2000, 3, 0xBBB0)
    table.new_generation()
    assert table.get(0x1000, 3) is None and table.get(0x2000, 3) is None
    assert len(table) == 2  # (kept; a put in this generation revives one in place)
    table.put(0x1000, 3, 0xCCC0)
    assert table.get(0x1000, 3) == 0xCCC0 and table.get(0x2000, 3) is None
    for i in range(10_000):  # growing keeps each entry's generation
        table.put(0x10_0000 + 2 * i, 3, 16 * i)
    assert table.get(0x1000, 3) == 0xCCC0 and table.get(0x2000, 3) is None


def test_expiring_a_page_makes_only_its_entries_stale() -> None:
    table = NativeLookup()
    table.put(0x1000, 3, 0xAAA0)
    table.put(0x1FFE, 1, 0xBBB0)
    table.put(0x2000, 3, 0xCCC0)
    table.expire_page(0x1000)
    assert table.get(0x1000, 3) is None and table.get(0x1FFE, 1) is None
    assert table.get(0x2000, 3) == 0xCCC0
    table.put(0x1000, 3, 0xDDD0)  # found again by physical pc
    assert table.get(0x1000, 3) == 0xDDD0
    table.drop(0x1FFE, 1)
    table.expire_page(0x1000)  # (forgotten keys are no longer on the page)
    assert len(table) == 2 and table.get(0x1000, 3) is None


def test_a_page_flush_empties_only_the_jump_cache_entries_of_code_on_it() -> None:
    """A TLB flush of one page (Cpu.tlb_flush_page, system mode's sfence.vma with an
    address) drops the jump cache entries of code starting on that page or on the page
    before (a block may run onto it), and keeps the others."""
    fe = HandFrontend()
    conflicting_targets(fe)
    cpu = far_cpu(fe)
    cpu.tbs.lookup_table.tracks_pages = True  # (as in system mode; the table is empty)
    run_conflicting(cpu, 200)
    tbs, flags = cpu.tbs, cpu.tb_flags
    # Entries as the run loop or the probe would write them: table and jump cache.
    # (Distinct jump cache slots; the flushed page is 0x5000.)
    stale = [0x4100, 0x4FF0, 0x5000, 0x5800, 0x5FFE]
    kept = [0x3F00, 0x6000, 0x6400]
    for n, pc in enumerate(stale + kept):
        tbs.lookup_table.put(pc, flags, 0x10_0000 + 16 * n)
        i = abi.jmp_cache_index(pc) * 3
        cpu.jump_cache[i:i + 3] = [pc, 0x10_0000 + 16 * n, flags]
    code = jump_cache_entry(cpu, CODE)
    cpu.tlb_flush_page(0x5123)
    for pc in stale:
        assert jump_cache_entry(cpu, pc)[0] == EMPTY_PC, hex(pc)
    for pc in kept:
        assert jump_cache_entry(cpu, pc)[0] == pc, hex(pc)
    assert jump_cache_entry(cpu, CODE) == code  # (not on those pages either)
    for pc in stale + kept:
        tbs.lookup_table.drop(pc, flags)
        tbs.jmp_cache_flush_page(pc)
    # A page of real code: its entry goes, and the loop still runs (found again).
    target = FAR + 5 * 8192
    tbs.jmp_cache_set(tbs.best(target))
    cpu.tlb_flush_page(target)
    assert jump_cache_entry(cpu, target)[0] == EMPTY_PC
    run_conflicting(cpu, 200)


def test_a_page_flush_of_a_page_with_many_pcs_empties_the_jump_cache() -> None:
    """With more pcs on the flushed pages than _JMP_CACHE_CLEAR_ALL, a page flush
    empties every jump cache entry at once (their slots are the whole cache anyway):
    the entries of code on the page go, and the others are found again."""
    from llvmtcg.runtime.tbcache import _JMP_CACHE_CLEAR_ALL

    fe = HandFrontend()
    conflicting_targets(fe)
    cpu = far_cpu(fe)
    cpu.tbs.lookup_table.tracks_pages = True
    run_conflicting(cpu, 200)
    tbs, flags = cpu.tbs, cpu.tb_flags
    stale = [0x5000 + 8 * n for n in range(_JMP_CACHE_CLEAR_ALL + 1)]
    for n, pc in enumerate(stale):
        tbs.lookup_table.put(pc, flags, 0x10_0000 + 16 * n)
        i = abi.jmp_cache_index(pc) * 3
        cpu.jump_cache[i:i + 3] = [pc, 0x10_0000 + 16 * n, flags]
    cpu.tbs.jmp_cache_set(cpu.tbs.best(CODE))
    cpu.tlb_flush_page(0x5123)
    assert set(cpu.jump_cache[0::3]) == {EMPTY_PC}
    for pc in stale:
        tbs.lookup_table.drop(pc, flags)
    run_conflicting(cpu, 200)


def test_without_a_page_index_a_page_flush_empties_the_whole_jump_cache() -> None:
    """User mode keeps no page index in the table: a page flush (never needed there)
    falls back to emptying every entry, which is always correct."""
    fe = HandFrontend()
    conflicting_targets(fe)
    cpu = far_cpu(fe)
    assert not cpu.tbs.lookup_table.tracks_pages
    run_conflicting(cpu, 200)
    cpu.tbs.jmp_cache_set(cpu.tbs.best(CODE))
    cpu.tlb_flush_page(0x5000)
    assert set(cpu.jump_cache[0::3]) == {EMPTY_PC}
    run_conflicting(cpu, 200)


def test_put_many_writes_what_put_writes() -> None:
    # (a page of stored blocks placed at once: a batch that grows the table, with a
    # key entered already, overwritten in place)
    one, many = NativeLookup(), NativeLookup()
    for table in (one, many):
        table.put(0x2000, 3, 11, 0x5000)
    entries = [(0x10000 + 4 * i, 100 + i, 0x7000 | (i % 2)) for i in range(5000)]
    entries.append((0x2000, 12, 0x6000))
    for pc, fn, page in entries:
        one.put(pc, 3, fn, page)
    many.put_many(3, entries)
    assert len(one) == len(many) == 5000 + 1
    assert many.get(0x2000, 3) == 12 and many.get(0x10000, 4) is None
    for pc, fn, _ in entries:
        assert many.get(pc, 3) == one.get(pc, 3) == (12 if pc == 0x2000 else fn)
    # The same entries (what the probe reads: pc, fn, flags, generation, code page
    # tag), each where the probe looks for it, and the same page index.
    def entries_of(table: NativeLookup) -> set[tuple[int, ...]]:
        words = table._table.words
        out = set()
        for (pc, flags), index in table._slots.items():
            base = 2 + 5 * index
            assert words[base] == pc and words[base + 2] == flags
            out.add(tuple(words[base:base + 5]))
        return out

    assert entries_of(many) == entries_of(one)
    assert sorted(many.pcs_on_page(0x10000)) == sorted(one.pcs_on_page(0x10000))
    many.drop(0x10004, 3)
    assert many.get(0x10004, 3) is None and len(many) == 5000


def test_a_reserved_table_does_not_grow_while_filled() -> None:
    table = NativeLookup()
    table.put(0x1000, 0, 1)
    table.reserve(20_000)
    grown = table._table
    assert len(table.retired) == 1 and table.get(0x1000, 0) == 1
    table.put_many(0, [(0x2000 + 4 * i, i, 0) for i in range(10_000)])
    for i in range(10_000, 20_000):
        table.put(0x2000 + 4 * i, 0, i)
    assert table._table is grown and len(table) == 20_001
    assert table.get(0x2000 + 4 * 19_999, 0) == 19_999
    table.reserve(100)  # (room already: nothing copied)
    assert table._table is grown
