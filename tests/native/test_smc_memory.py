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
    _run(cpu, 3000)
    tbs.release_pending()
    assert fe.translations.count(SMC) - before == 3000  # one translation per rewrite
    assert tbs.stats["invalidated"] >= 3000 and tbs.stats["arena_flushes"] == 0
    assert (arena.code_used, arena.data_used, len(tbs.by_slot), len(tbs.by_page),
            len(tbs.lookup_table), len(tbs.by_pc)) == warm
