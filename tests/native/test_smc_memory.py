"""Self-modifying code in a loop: every rewrite invalidates a baseline block and
translates its new code, and the arena space of the retired translations is reused, so
the arena (code and data), the translation tables and the native lookup table stay the
same size however many rewrites there are (bench/programs/smc.c is the benchmark)."""

from __future__ import annotations

from llvmtcg.ir import Builder, ExitReason, MemOp
from llvmtcg.runtime.softmmu import Perm
from tests.core.support import CODE, DATA, HandFrontend, R, c64, define_byte_adder, make_cpu

SMC = DATA + 0x2000  # a writable and executable page holding generated "code"


def _rewrite_loop() -> tuple[HandFrontend, object]:
    """CODE: r0 += 1; store r0's low byte at SMC; goto SMC. SMC's code adds the byte
    it finds there to r2 (a constant of its translation), then loops back until
    r0 == r1."""
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        b.qemu_st(R[0], c64(SMC), MemOp(0))
        b.goto_tb(0, SMC)

    define_byte_adder(fe, lambda: cpu, SMC)
    cpu = make_cpu(fe)
    cpu.memory.protect(DATA, 0x10000, Perm.RWX)
    return fe, cpu


def _run(cpu, rewrites: int) -> None:
    cpu.state.set("r", 0, 0)
    cpu.state.set("r", 0, 2)
    cpu.state.set("r", rewrites, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    # Every iteration ran the code it had just written: no stale translation ran.
    assert cpu.state.get("r", 2) == sum(i & 0xFF for i in range(1, rewrites + 1))


def test_rewriting_code_keeps_the_arena_and_tables_the_same_size() -> None:
    fe, cpu = _rewrite_loop()
    tbs = cpu.tbs
    arena = tbs.baseline.arena
    _run(cpu, 50)
    tbs.release_pending()
    warm = (arena.code_used, arena.data_used, len(tbs.by_slot), len(tbs.by_page),
            len(tbs.lookup_table), len(tbs.by_pc))
    before = fe.translations.count(SMC)
    fills = cpu.softmmu.stats["fills"]
    _run(cpu, 3000)
    tbs.release_pending()
    assert fe.translations.count(SMC) - before == 3000  # one translation per rewrite
    # No walk per rewrite: the page's TLB entry gets TLB_NOTDIRTY in place when the page
    # gets code again (it was flushed: a walk at each store), and is made clean in
    # place when the store leaves the page without code (it was refilled: another).
    assert cpu.softmmu.stats["fills"] - fills <= 10, cpu.softmmu.stats
    assert tbs.stats["invalidated"] >= 3000 and tbs.stats["arena_flushes"] == 0
    assert (arena.code_used, arena.data_used, len(tbs.by_slot), len(tbs.by_page),
            len(tbs.lookup_table), len(tbs.by_pc)) == warm


def test_a_store_beside_the_code_on_its_page_invalidates_nothing() -> None:
    """invalidate_range rejects a store to a code page that misses every block's bytes
    (the page's merged spans), and still finds a block translated after the spans were
    made (each rewrite in _run retranslates SMC: a stale span would run old code)."""
    _, cpu = _rewrite_loop()
    _run(cpu, 3)
    tbs = cpu.tbs
    tb = tbs.lookup(SMC)
    end = max(e for _, e in (tb.ranges if tb.phys_ranges is None else tb.phys_ranges))
    assert tbs.invalidate_range(end + 64, end + 72) == 0 and tb.valid
    assert tbs.invalidate_range(SMC - 8, SMC) == 0 and tb.valid
    _run(cpu, 5)  # (new translations of SMC since the spans were made)
    tb = tbs.lookup(SMC)
    assert tbs.invalidate_range(SMC, SMC + 1) == 1 and not tb.valid


def test_page_index_finds_the_blocks_a_range_overlaps() -> None:
    """The page index finds overlapping blocks by bisection, including a long block
    starting before shorter ones (its reach), blocks running in from the page before,
    and skips blocks invalidated since it was made."""
    from types import SimpleNamespace

    from llvmtcg.runtime.tbcache import _page_index

    page = 0x1000
    a = SimpleNamespace(ranges=[(0x1010, 0x1100)], phys_ranges=None, valid=True)
    b = SimpleNamespace(ranges=[(0, 4)], phys_ranges=[(0x1020, 0x1030), (0x1040, 0x1044)],
                        valid=True)
    c = SimpleNamespace(ranges=[(0x1200, 0x1210)], phys_ranges=None, valid=True)
    d = SimpleNamespace(ranges=[(0xFF8, 0x1008)], phys_ranges=None, valid=True)  # (from before)
    e = SimpleNamespace(ranges=[(0x1FFC, 0x2004)], phys_ranges=None, valid=True)  # (onto next)
    index = _page_index(page, [a, b, c, d, e])

    def found(start: int, end: int) -> set[int]:
        return {id(tb) for tb in index.overlapping(start, end)}

    assert found(0x1000, 0x1004) == {id(d)}
    assert found(0x1008, 0x1010) == set()  # (between d and a)
    assert found(0x1038, 0x1040) == {id(a)}  # (inside a's reach, between b's ranges)
    assert found(0x1040, 0x1041) == {id(a), id(b)}
    assert found(0x1100, 0x1200) == set()
    assert found(0x1000, 0x2000) == {id(x) for x in (a, b, c, d, e)}
    assert found(0x2000, 0x2008) == {id(e)}  # (the part on the next page)
    a.valid = False
    assert found(0x1038, 0x1041) == {id(b)}


def test_code_rewritten_back_to_earlier_bytes_is_taken_back_from_the_memo() -> None:
    """Rewrites cycling through four contents: once the memo holds the four
    translations, each miss takes one back (bytes compared) instead of translating;
    each runs as the bytes are now (r2's sum), the links it had in its last life undone
    and made again, and the arena and tables stay the same size (held chunks are not
    freed, taken-back ones not freed twice)."""
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        b.and_(R[3], R[0], c64(3))
        b.qemu_st(R[3], c64(SMC), MemOp(0))
        b.goto_tb(0, SMC)

    define_byte_adder(fe, lambda: cpu, SMC)
    cpu = make_cpu(fe)
    cpu.memory.protect(DATA, 0x10000, Perm.RWX)
    tbs = cpu.tbs
    arena = tbs.baseline.arena

    def run(rewrites: int) -> None:
        cpu.state.set("r", 0, 0)
        cpu.state.set("r", 0, 2)
        cpu.state.set("r", rewrites, 1)
        cpu.pc = CODE
        assert cpu.run().reason is ExitReason.HALT
        assert cpu.state.get("r", 2) == sum(i & 3 for i in range(1, rewrites + 1))

    run(50)
    tbs.release_pending()
    warm = (arena.code_used, arena.data_used, len(tbs.by_slot), len(tbs.by_page),
            len(tbs.lookup_table), len(tbs.by_pc))
    before, hits = fe.translations.count(SMC), tbs.stats["memo_hits"]
    run(3000)
    tbs.release_pending()
    assert fe.translations.count(SMC) == before  # (all four were in the memo)
    assert tbs.stats["memo_hits"] - hits >= 3000
    assert (arena.code_used, arena.data_used, len(tbs.by_slot), len(tbs.by_page),
            len(tbs.lookup_table), len(tbs.by_pc)) == warm
