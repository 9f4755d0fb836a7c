"""The runtime on hand-built IR: chaining, jump cache, exit requests, softmmu, helpers."""

from __future__ import annotations

import ctypes
import io
import threading

import pytest

from llvmtcg.ir import I32, I64, AtomicOp, Builder, Cond, ExitReason, MemOp, const
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.log import Log
from llvmtcg.runtime.exits import Access, FaultKind
from llvmtcg.runtime.helpers import HelperRegistry
from llvmtcg.runtime.jit import CompileError, JitEngine
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


def test_long_loop_of_chained_blocks_runs_without_returning_to_python() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, baseline=False)  # (counts LLVM modules; tests/native/test_baseline.py)
    cpu.state.set("r", 2_000_000, 1)
    cpu.pc = CODE
    exit_ = cpu.run()
    assert exit_.reason is ExitReason.HALT and exit_.pc == CODE + 8
    assert cpu.state.get("r", 0) == 2_000_000
    # Both blocks came from one region translation and were linked before running:
    # four million block executions, one entry into native code.
    assert cpu.stats.native_entries == 1
    assert fe.translations == [CODE, CODE + 4]
    assert cpu.jit.stats["modules"] == 2  # the entry trampoline and the region


def test_chain_is_patched_on_first_exit_and_undone_by_invalidation() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, max_region_blocks=1)  # no look-ahead: links are made lazily
    cpu.state.set("r", 1000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    first, second = cpu.tbs.lookup(CODE), cpu.tbs.lookup(CODE + 4)
    # CODE's exit came back unlinked (CHAIN) and was patched; CODE+4, translated
    # after CODE existed, was linked at translation. Then it stayed native.
    assert cpu.stats.exits["CHAIN"] == 1 and cpu.stats.native_entries == 2
    assert first.linked[0] is second and second.linked[0] is first
    assert (first, 0) in second.incoming

    cpu.tbs.invalidate(second)
    assert 0 not in first.linked and not second.valid
    import ctypes
    assert ctypes.c_uint64.from_address(first.slots[0]).value == 0
    cpu.state.set("r", 0, 0)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 1000
    assert fe.translations.count(CODE + 4) == 2  # retranslated after invalidation
    assert cpu.tbs.lookup(CODE).linked[0] is cpu.tbs.lookup(CODE + 4)


def test_indirect_jumps_hit_the_jump_cache_after_one_miss() -> None:
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
    # One LOOKUP exit for the target not yet translated (CODE's block was translated
    # before the first jump to it, so the native lookup table finds it), then 200k
    # indirect jumps in native code.
    assert cpu.stats.exits.get("LOOKUP", 0) == 1
    assert cpu.stats.native_entries == 2

    # Invalidating a block clears its jump-cache entry: the next jump misses again.
    cpu.tbs.invalidate(cpu.tbs.lookup(CODE + 0x100))
    cpu.state.set("r", 0, 0)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.stats.exits["LOOKUP"] == 2


def test_exit_request_stops_an_endless_chained_loop() -> None:
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        b.goto_tb(0, CODE + 4)

    @fe.define(CODE + 4)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 4)
        b.add(R[1], R[1], c64(1))
        b.goto_tb(0, CODE)

    cpu = make_cpu(fe)
    cpu.pc = CODE
    timer = threading.Timer(0.2, cpu.stop)
    timer.start()
    exit_ = cpu.run()
    timer.join()
    assert exit_.reason is ExitReason.REQUESTED
    assert exit_.pc in (CODE, CODE + 4)
    r0, r1 = cpu.state.get("r", 0), cpu.state.get("r", 1)
    assert r0 > 1000 and r0 - r1 == (1 if exit_.pc == CODE + 4 else 0)
    # One entry per block (the baseline tier translates the missed block only: CODE+4's
    # miss is a CHAIN exit), then the loop stays in native code until the request.
    assert cpu.stats.native_entries == 2


@pytest.mark.parametrize("native_refill", [True, False])
def test_tlb_miss_fill_then_hits(native_refill: bool) -> None:
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:  # r0 += mem64[DATA + 8]; r1 -= 1; loop while r1 != 0
        b.insn_start(CODE)
        t = b.temp()
        b.qemu_ld(t, c64(DATA + 8), MemOp(3))
        b.add(R[0], R[0], t)
        b.sub(R[1], R[1], c64(1))
        done = b.label()
        b.brcond(Cond.EQ, R[1], c64(0), done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe, flat_memory=False)  # (user-mode baseline code checks page flags)
    if not native_refill:
        cpu.state.set("page_count", 0)  # no page table: misses go to the Python slow path
    cpu.memory.write(DATA + 8, (5).to_bytes(8, "little"))
    cpu.state.set("r", 10_000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 50_000
    # One miss, filled natively from the page table or once by Python; then all hits.
    python_fills = 0 if native_refill else 1
    assert cpu.softmmu.stats["slow_loads"] == python_fills
    assert cpu.softmmu.stats["fills"] == python_fills
    read_tag, _, _, _ = cpu.state.tlb_entry(0, DATA)
    assert read_tag == DATA


def fault_block(fe: HandFrontend, access) -> None:
    """r2 = 7 ; <faulting access at insn CODE+4> ; r3 = 9 ; halt."""

    @fe.define(CODE, size=12)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.movi(R[2], 7)
        b.insn_start(CODE + 4)
        access(b)
        b.insn_start(CODE + 8)
        b.movi(R[3], 9)
        halt_at(b, CODE + 12)


@pytest.mark.parametrize("case", ["unmapped_load", "readonly_store", "beyond_space",
                                  "misaligned_atomic", "code_not_executable"])
def test_faults_leave_precise_state(case: str) -> None:
    fe = HandFrontend()
    ro = CODE  # the code region is read+execute only
    if case == "unmapped_load":
        fault_block(fe, lambda b: b.qemu_ld(R[4], c64(0x900000), MemOp(2)))
        expected = (0x900000, Access.READ, FaultKind.UNMAPPED)
    elif case == "readonly_store":
        fault_block(fe, lambda b: b.qemu_st(c64(0xAB), c64(ro + 0x80), MemOp(0)))
        expected = (ro + 0x80, Access.WRITE, FaultKind.PROTECTION)
    elif case == "beyond_space":
        fault_block(fe, lambda b: b.qemu_ld(R[4], c64(1 << 60), MemOp(3)))
        expected = (1 << 60, Access.READ, FaultKind.UNMAPPED)
    elif case == "misaligned_atomic":
        fault_block(fe, lambda b: b.atomic_rmw(AtomicOp.ADD, R[4], c64(DATA + 2), c64(1),
                                               MemOp(2)))
        expected = (DATA + 2, Access.WRITE, FaultKind.MISALIGNED)
    else:
        fault_block(fe, lambda b: None)
        expected = (DATA, Access.FETCH, FaultKind.PROTECTION)
    cpu = make_cpu(fe)
    cpu.pc = DATA if case == "code_not_executable" else CODE
    before = cpu.memory.read(ro + 0x80, 1)
    exit_ = cpu.run()
    assert exit_.reason is ExitReason.EXCEPTION
    assert (exit_.fault.addr, exit_.fault.access, exit_.fault.kind) == expected
    if case == "code_not_executable":
        assert exit_.pc == DATA
        return
    assert exit_.pc == CODE + 4  # the faulting instruction
    assert cpu.state.get("r", 2) == 7  # the instruction before it completed
    assert cpu.state.get("r", 3) == 0  # the one after it did not run
    assert cpu.state.get("r", 4) == 0
    assert cpu.memory.read(ro + 0x80, 1) == before


def test_misaligned_and_page_crossing_accesses_and_endianness() -> None:
    fe = HandFrontend()
    edge = DATA + 0x1000 - 3  # an 8-byte access here spans two pages

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.qemu_st(R[0], c64(edge), MemOp(3))
        b.qemu_ld(R[1], c64(edge), MemOp(3))
        b.qemu_ld(R[2], c64(edge + 1), MemOp(1, signed=True, big_endian=True))
        b.qemu_ld(R[3], c64(DATA + 1), MemOp(2, signed=True))
        b.qemu_st(R[0], c64(DATA + 0x21), MemOp(2, big_endian=True))
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe)
    cpu.memory.write(DATA, bytes([0, 0x11, 0x22, 0x33, 0x84]))
    cpu.state.set("r", 0x8877_6655_4433_2211, 0)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.memory.read(edge, 8) == bytes.fromhex("1122334455667788")
    assert cpu.state.get("r", 1) == 0x8877_6655_4433_2211
    assert cpu.state.get("r", 2) == 0x2233  # big-endian halfword
    assert cpu.state.get_signed("r", 3) == -0x7BCCDDEF  # 0x84332211 sign-extended
    assert cpu.memory.read(DATA + 0x21, 4) == bytes.fromhex("44332211")


class RecordingDevice:
    def __init__(self) -> None:
        self.log: list[tuple] = []

    def read(self, offset: int, size: int) -> int:
        self.log.append(("read", offset, size))
        return 0xF0 + offset

    def write(self, offset: int, size: int, value: int) -> None:
        self.log.append(("write", offset, size, value))


def test_mmio_accesses_reach_the_device_callbacks_every_time() -> None:
    fe = HandFrontend()
    mmio = 0x80000

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.qemu_ld(R[0], c64(mmio + 4), MemOp(2))
        b.qemu_st(c64(0x1234_5678_9ABC), c64(mmio + 8), MemOp(1))
        b.qemu_ld(R[1], c64(mmio + 4), MemOp(0, signed=True))
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe)
    device = RecordingDevice()
    cpu.memory.map_mmio(mmio, 0x1000, device)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert device.log == [("read", 4, 4), ("write", 8, 2, 0x9ABC), ("read", 4, 1)]
    assert cpu.state.get("r", 0) == 0xF4
    assert cpu.state.get_signed("r", 1) == -12  # 0xF4 as a signed byte


def test_store_to_translated_code_invalidates_before_it_completes() -> None:
    fe = HandFrontend()
    smc = DATA + 0x2000  # a writable+executable page holding "code"

    @fe.define(CODE)
    def _(b: Builder) -> None:  # r1 += 1; call the generated block; it returns here
        b.insn_start(CODE)
        b.add(R[1], R[1], c64(1))
        b.goto_tb(0, smc)

    def generated(b: Builder) -> None:
        # The "instruction" at smc is the byte stored there: the block loads it as a
        # constant, so retranslation is observable.
        byte = cpu.memory.read(smc, 1)[0]
        b.insn_start(smc)
        b.add(R[0], R[0], c64(byte))
        b.qemu_st(R[1], c64(smc), MemOp(0))  # rewrite our own code byte
        done = b.label()
        b.brcond(Cond.GEU, R[1], c64(3), done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 4)

    fe.blocks[smc] = (generated, 4)
    cpu = make_cpu(fe)
    cpu.memory.protect(DATA, 0x10000, Perm.RWX)
    cpu.memory.write(smc, b"\x05")
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    # Executions see bytes 5, 1, 2 — each store invalidated the block that held it.
    assert cpu.state.get("r", 0) == 5 + 1 + 2
    assert fe.translations.count(smc) == 3
    assert cpu.softmmu.stats["code_writes"] == 3
    assert cpu.tbs.stats["invalidated"] >= 3
    # The retired modules were released once native code had returned.
    assert cpu.tbs.stats["released_modules"] >= 2 and not cpu.tbs.pending_release


def test_explicit_invalidate_range_and_flush_release_code() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, baseline=False)  # LLVM modules (baseline code goes at a flush)
    cpu.state.set("r", 10, 1)
    cpu.pc = CODE
    cpu.run()
    module = cpu.tbs.lookup(CODE).module
    assert cpu.invalidate_range(CODE + 4, CODE + 5) == 1
    assert cpu.tbs.lookup(CODE) is not None and cpu.tbs.lookup(CODE + 4) is None
    assert not module.released  # CODE's block still lives in it
    cpu.flush()
    assert cpu.tbs.lookup(CODE) is None
    assert cpu.tbs.release_pending() == 1 and module.released


def test_python_helper_exception_is_reraised_from_the_run_loop() -> None:
    fe = HandFrontend()
    calls: list[int] = []

    def boom(cpu, value: int) -> int:
        calls.append(value)
        raise ValueError(f"helper saw {value}")

    helpers = HelperRegistry()
    helpers.register(HelperDecl("boom", I64, (I64,), HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE),
                     boom)

    @fe.define(CODE, size=8)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.movi(R[0], 1)
        b.insn_start(CODE + 4)
        b.call("boom", [R[1]], [c64(42)])
        b.movi(R[2], 3)  # must not run: the helper raised
        halt_at(b, CODE + 8)

    cpu = make_cpu(fe, helpers)
    cpu.pc = CODE
    with pytest.raises(ValueError, match="helper saw 42"):
        cpu.run()
    assert calls == [42]
    assert cpu.state.get("r", 0) == 1 and cpu.state.get("r", 2) == 0
    assert cpu.pc == CODE + 4
    # The error was consumed and the CPU is usable afterwards.
    assert cpu.state.get("helper_status") == 0
    assert cpu.pending_error is None and cpu.state.get("exit_request") == 0


def test_helpers_with_effect_flags_return_values() -> None:
    fe = HandFrontend()
    helpers = HelperRegistry()
    helpers.register(HelperDecl("mix", I64, (I64, I32), HelperFlag.NO_SIDE_EFFECTS),
                     lambda a, b: a * 3 + b)
    seen: list[int] = []
    helpers.register(HelperDecl("peek", None, (), HelperFlag.TAKES_CPU
                                | HelperFlag.NO_WRITE_GLOBALS),
                     lambda cpu: seen.append(cpu.state.get("r", 0)))

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.movi(R[0], 11)
        b.call("peek", [], [])  # must observe r0 == 11: the store precedes the call
        b.call("mix", [R[1]], [R[0], const(I32, -1)])
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe, helpers)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert seen == [11]
    assert cpu.state.get("r", 1) == 33 + 0xFFFF_FFFF


def test_atomics() -> None:
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.atomic_cmpxchg(R[0], c64(DATA), c64(5), c64(9), MemOp(3))  # succeeds
        b.atomic_cmpxchg(R[1], c64(DATA), c64(5), c64(1), MemOp(3))  # fails: mem is 9
        b.atomic_rmw(AtomicOp.ADD, R[2], c64(DATA + 8), c64(-1), MemOp(2, signed=True))
        b.atomic_rmw(AtomicOp.SMAX, R[3], c64(DATA + 16), c64(-5), MemOp(2, signed=True))
        b.atomic_rmw(AtomicOp.UMAX, R[4], c64(DATA + 20), c64(-5), MemOp(2))
        b.atomic_rmw(AtomicOp.XCHG, R[5], c64(DATA + 24), c64(0x77), MemOp(0))
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe)
    cpu.memory.write(DATA, (5).to_bytes(8, "little"))
    cpu.memory.write(DATA + 8, (0x8000_0000).to_bytes(4, "little"))
    cpu.memory.write(DATA + 16, (-7 & 0xFFFFFFFF).to_bytes(4, "little"))
    cpu.memory.write(DATA + 20, (3).to_bytes(4, "little"))
    cpu.memory.write(DATA + 24, b"\x66")
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 5 and cpu.state.get("r", 1) == 9
    assert int.from_bytes(cpu.memory.read(DATA, 8), "little") == 9
    assert cpu.state.get_signed("r", 2) == -0x8000_0000
    assert cpu.memory.read(DATA + 8, 4) == (0x7FFF_FFFF).to_bytes(4, "little")
    assert cpu.state.get_signed("r", 3) == -7
    assert cpu.memory.read(DATA + 16, 4) == (-5 & 0xFFFFFFFF).to_bytes(4, "little")
    assert cpu.state.get("r", 4) == 3
    assert cpu.memory.read(DATA + 20, 4) == (-5 & 0xFFFFFFFF).to_bytes(4, "little")
    assert cpu.state.get("r", 5) == 0x66 and cpu.memory.read(DATA + 24, 1) == b"\x77"


@pytest.mark.parametrize("baseline", [True, False])
def test_atomic_cmpxchg_pair(baseline: bool) -> None:
    """The 16 bytes change only when both doublewords match; old is always returned."""
    fe = HandFrontend()
    words = [0x1111_2222_3333_4444, 0x8555_6666_7777_8888]

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        # Low half wrong: fails. High half wrong: fails. Both right: succeeds.
        b.atomic_cmpxchg_pair((R[0], R[1]), c64(DATA + 16), (c64(words[0] + 1), c64(words[1])),
                              (c64(1), c64(2)))
        b.atomic_cmpxchg_pair((R[2], R[3]), c64(DATA + 16), (c64(words[0]), c64(words[1] - 1)),
                              (c64(3), c64(4)))
        b.atomic_cmpxchg_pair((R[4], R[5]), c64(DATA + 16), (c64(words[0]), c64(words[1])),
                              (c64(-5), c64(6)))
        b.atomic_cmpxchg_pair((R[6], R[7]), c64(DATA + 16), (c64(0), c64(0)), (c64(0), c64(0)))
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe, baseline=baseline)
    cpu.memory.write(DATA + 16, b"".join(w.to_bytes(8, "little") for w in words))
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert [cpu.state.get("r", i) for i in range(6)] == words * 3
    assert [cpu.state.get("r", i) for i in (6, 7)] == [(-5) & 0xFFFF_FFFF_FFFF_FFFF, 6]
    assert cpu.memory.read(DATA + 16, 16) == (-5 & (1 << 64) - 1).to_bytes(8, "little") \
        + (6).to_bytes(8, "little")


@pytest.mark.parametrize("baseline", [True, False])
def test_atomic_cmpxchg_pair_needs_16_byte_alignment(baseline: bool) -> None:
    fe = HandFrontend()
    fault_block(fe, lambda b: b.atomic_cmpxchg_pair((R[4], R[5]), c64(DATA + 8),
                                                    (c64(0), c64(0)), (c64(1), c64(1))))
    cpu = make_cpu(fe, baseline=baseline)
    cpu.pc = CODE
    exit_ = cpu.run()
    assert exit_.reason is ExitReason.EXCEPTION
    assert (exit_.fault.addr, exit_.fault.access, exit_.fault.kind) == (
        DATA + 8, Access.WRITE, FaultKind.MISALIGNED)
    assert exit_.pc == CODE + 4
    assert cpu.memory.read(DATA + 8, 16) == bytes(16)


def test_log_items_show_each_stage() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    out = io.StringIO()
    cpu = make_cpu(fe, log=Log("op,llvm,out_asm", out), baseline=False)
    cpu.state.set("r", 3, 1)
    cpu.pc = CODE
    cpu.run()
    text = out.getvalue()
    assert "OP:\nIN tb_10000 pc=0x10000\n ---- 0x0000000000010000\n add_i64 r[0],r[0],$0x1" in text
    assert "define i64 @tb_10000(ptr noalias %cpu, ptr %mem)" in text
    assert "musttail call i64" in text
    assert "OUT: host code for tb_10000, tb_10004" in text and "jmpq\t*" in text


def test_compile_errors_name_the_block_and_stage() -> None:
    jit = JitEngine()
    with pytest.raises(CompileError, match=r"parse failed for block\(s\) tb_1234: .*"):
        jit.compile("define i64 @tb_1234( {", ["tb_1234"], ["tb_1234"])
    with pytest.raises(CompileError, match=r"verify failed for block\(s\) tb_9"):
        jit.compile("define i64 @tb_9() {\nentry:\n  br label %entry\n  ret i64 0\n}\n",
                    ["tb_9"], ["tb_9"])


def test_region_translation_stays_within_a_few_pages() -> None:
    """A miss translates blocks its direct exits reach, but not ones that would make the
    region span more than MAX_REGION_PAGES guest pages: those wait for their own miss."""
    from llvmtcg.runtime.tbcache import MAX_REGION_PAGES

    fe = HandFrontend()
    chain = [CODE + i * 0x1000 for i in range(MAX_REGION_PAGES + 2)]  # one block a page
    for pc, nxt in zip(chain, chain[1:] + [None], strict=True):
        @fe.define(pc)
        def _(b: Builder, pc: int = pc, nxt: int | None = nxt) -> None:
            b.insn_start(pc)
            if nxt is None:
                halt_at(b, pc + 4)
            else:
                b.goto_tb(0, nxt)

    cpu = make_cpu(fe, baseline=False)  # (counts LLVM modules)
    cpu.pc = CODE
    assert cpu.run().pc == chain[-1] + 4
    # The first miss compiled the blocks on the first MAX_REGION_PAGES pages; the next
    # one waited for its own miss, and came with the rest.
    assert fe.translations == chain
    assert cpu.jit.stats["modules"] == 3  # the entry trampoline and two regions


def test_arenas_of_released_modules_are_unmapped() -> None:
    """Code loaded and released again and again (regions retired under self-modifying
    code) fills arena after arena; one nothing lives in any more is unmapped, so the
    engine's memory stays bounded by what is alive."""
    jit = JitEngine(arena_size=1 << 14)  # (16 bytes of code per load: ~1000 per arena)
    keep = jit.compile("define i64 @keep() {\n  ret i64 7\n}\n", ["keep"])
    text = "define i64 @f(i64 %x) {\n  %y = add i64 %x, 1\n  ret i64 %y\n}\n"
    obj = jit.compile(text, ["f"]).object
    first = jit.arena
    for _ in range(20_000):
        if jit.stats.get("arenas_freed", 0) >= 3:
            break
        module = jit.load_object(obj, ["f"])
        f = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(module.addresses["f"])
        assert f(41) == 42
        module.release()
    assert jit.stats.get("arenas_freed", 0) >= 3
    assert jit._arenas == [first, jit.arena]  # `keep`'s, and the one loading now
    assert ctypes.CFUNCTYPE(ctypes.c_int64)(keep.addresses["keep"])() == 7
