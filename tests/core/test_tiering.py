"""Hot-code tiering: promotion of hot blocks to optimised regions, and what must not
change when it happens (results, exit requests, precise faults, invalidation)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from llvmtcg.ir import I64, Builder, Cond, ExitReason, MemOp
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.ir.lower import region_function
from llvmtcg.options import (
    DEFAULT_HOT_THRESHOLD,
    ENV_HOT_THRESHOLD,
    ENV_TIER_SYNC,
    options_from_environment,
)
from llvmtcg.runtime.exits import EXCP_MEM_FAULT, Access
from llvmtcg.runtime.helpers import HelperRegistry
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


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "background"])
def test_hot_loop_is_promoted_to_one_region(sync: bool) -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, hot_threshold=100, tier_sync=sync)
    cpu.state.set("r", 5_000_000 if sync else 1 << 62, 1)
    cpu.pc = CODE
    if not sync:  # stop once the region runs (the background compile takes a while)
        def stop_when_installed() -> None:
            wait_for(lambda: cpu.tiering.stats["regions_installed"] >= 1)
            time.sleep(0.05)
            cpu.stop()
        threading.Thread(target=stop_when_installed).start()
        exit_ = cpu.run()
        assert exit_.reason is ExitReason.REQUESTED
        cpu.state.set("r", cpu.state.get("r", 0) + 5_000_000, 1)
        cpu.pc = exit_.pc
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == cpu.state.get("r", 1)
    region = cpu.tbs.regions[CODE]
    assert [m.pc for m in region.members] == [CODE, CODE + 4]
    assert cpu.tiering.stats["regions_installed"] == 1
    assert cpu.stats.exits["HOT"] >= 1
    # Both blocks are counted, but the loop head reached the threshold first, and the
    # other block was in its region, so one region was compiled.
    assert cpu.tiering.stats["regions_compiled"] == 1
    # The region's exit to the halt block is a normal exit slot; the loop never left
    # native code after the swap except for the one install request.
    assert cpu.stats.native_entries <= 8


def test_exit_request_stops_an_endless_loop_inside_a_region() -> None:
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

    cpu = make_cpu(fe, hot_threshold=50, tier_sync=True)
    cpu.pc = CODE
    timer = threading.Timer(0.3, cpu.stop)
    timer.start()
    exit_ = cpu.run()
    timer.join()
    assert exit_.reason is ExitReason.REQUESTED
    assert CODE in cpu.tbs.regions  # the request reached the region's code
    # Precise: registers as of the block boundary at exit_.pc.
    r0, r1 = cpu.state.get("r", 0), cpu.state.get("r", 1)
    assert exit_.pc in (CODE, CODE + 4)
    assert r0 > 10_000 and r0 - r1 == (1 if exit_.pc == CODE + 4 else 0)


def memory_program(fe: HandFrontend, helpers: HelperRegistry) -> None:
    """A loop over DATA: loads, stores, a helper reading and writing the registers, a
    pure helper, a data-dependent branch. r0 = index, r1 = count, r2..r5 results."""
    helpers.register(HelperDecl("scale", None, (), HelperFlag.TAKES_CPU),
                     lambda cpu: cpu.state.set("r", cpu.state.get("r", 2) * 3 + 1, 3))
    helpers.register(HelperDecl("mix", I64, (I64, I64), HelperFlag.NO_SIDE_EFFECTS),
                     lambda a, b: (a * 31 + b) & 0xFFFF_FFFF_FFFF_FFFF)

    @fe.define(CODE, size=16)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        addr = b.temp()
        b.and_(addr, R[0], c64(0x3FF))
        b.shl(addr, addr, c64(3))
        b.add(addr, addr, c64(DATA))
        b.qemu_ld(R[2], addr, MemOp(3))
        b.insn_start(CODE + 4)
        b.call("scale", [], [])
        b.call("mix", [R[4]], [R[4], R[3]])
        b.insn_start(CODE + 8)
        b.qemu_st(R[4], addr, MemOp(2))
        odd = b.label()
        t = b.temp()
        b.and_(t, R[4], c64(1))
        b.brcond(Cond.NE, t, c64(0), odd)
        b.goto_tb(0, CODE + 0x20)
        b.set_label(odd)
        b.goto_tb(1, CODE + 0x40)

    @fe.define(CODE + 0x20)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 0x20)
        b.add(R[5], R[5], c64(1))
        b.goto_tb(0, CODE + 0x40)

    @fe.define(CODE + 0x40)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 0x40)
        b.add(R[0], R[0], c64(1))
        done = b.label()
        b.brcond(Cond.GEU, R[0], R[1], done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 0x44)


@pytest.mark.parametrize("threshold", [1, 7, 300])
def test_results_are_identical_with_tiering_on_and_off(threshold: int) -> None:
    outcomes = []
    for hot in (0, threshold):
        fe, helpers = HandFrontend(), HelperRegistry()
        memory_program(fe, helpers)
        cpu = make_cpu(fe, helpers, hot_threshold=hot, tier_sync=True)
        cpu.memory.write(DATA, bytes(range(256)) * 32)
        cpu.state.set("r", 5000, 1)
        cpu.pc = CODE
        assert cpu.run().reason is ExitReason.HALT
        if hot:
            assert cpu.tiering.stats["regions_installed"] >= 1
        outcomes.append(([cpu.state.get("r", i) for i in range(8)],
                         cpu.memory.read(DATA, 0x2000)))
    assert outcomes[0] == outcomes[1]


def test_a_fault_inside_a_region_is_precise() -> None:
    """Walk loads up through DATA until they fall off its end (DATA + 0x10000)."""
    results = []
    for hot in (0, 100):
        fe = HandFrontend()

        @fe.define(CODE, size=12)
        def _(b: Builder) -> None:
            b.insn_start(CODE)
            b.add(R[1], R[1], c64(1))
            b.insn_start(CODE + 4)
            b.qemu_ld(R[2], R[0], MemOp(3))
            b.insn_start(CODE + 8)
            b.add(R[0], R[0], c64(8))
            b.add(R[3], R[3], R[2])
            b.goto_tb(0, CODE)

        cpu = make_cpu(fe, hot_threshold=hot, tier_sync=True)
        cpu.memory.write(DATA, b"\x01" * 0x10000)
        cpu.state.set("r", DATA, 0)
        cpu.pc = CODE
        exit_ = cpu.run()
        assert exit_.reason is ExitReason.EXCEPTION
        assert exit_.exception_index == EXCP_MEM_FAULT
        assert (exit_.fault.addr, exit_.fault.access) == (DATA + 0x10000, Access.READ)
        assert exit_.pc == CODE + 4  # the load, not its block
        if hot:
            assert CODE in cpu.tbs.regions
        results.append([cpu.state.get("r", i) for i in range(4)])
    assert results[0] == results[1]
    assert results[1][:2] == [DATA + 0x10000, 0x10000 // 8 + 1]


def test_store_into_a_hot_regions_code_retires_it() -> None:
    """The loop's second block rewrites the first block's code bytes once, on its
    2000th round, from inside the region."""
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        b.goto_tb(0, CODE + 0x100)

    @fe.define(CODE + 0x100)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 0x100)
        skip = b.label()
        b.brcond(Cond.NE, R[0], c64(2000), skip)
        b.qemu_st(R[0], c64(CODE), MemOp(0))  # self-modifying code
        b.set_label(skip)
        done = b.label()
        b.brcond(Cond.GEU, R[0], R[1], done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 0x104)

    cpu = make_cpu(fe, hot_threshold=100, tier_sync=True)
    cpu.memory.protect(CODE, 0x10000, Perm.RWX)
    cpu.state.set("r", 5000, 1)
    cpu.pc = CODE
    retired = []
    cpu.tbs.region_retired.append(retired.append)
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 5000
    assert cpu.tiering.stats["regions_retired"] == 1
    assert fe.translations.count(CODE) >= 2  # the cheap block came back, retranslated
    # The retired region's code was released once native code had returned.
    assert not cpu.tbs.pending_release and retired[0].module.released
    # Promoted again afterwards, from the new translation.
    assert cpu.tiering.stats["regions_installed"] == 2
    assert cpu.tbs.regions[CODE].members[0] is cpu.tbs.lookup(CODE)


def test_invalidate_range_and_flush_retire_regions() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, hot_threshold=100, tier_sync=True)
    cpu.state.set("r", 1000, 1)
    cpu.pc = CODE
    cpu.run()
    region = cpu.tbs.regions[CODE]
    assert cpu.invalidate_range(CODE + 4, CODE + 5) == 1  # a member, not the head
    assert not region.valid and CODE not in cpu.tbs.regions
    assert cpu.tbs.get(CODE) is cpu.tbs.lookup(CODE)  # the cheap block again
    cpu.tbs.release_pending()
    assert region.module.released
    cpu.state.set("r", 0, 0)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT and cpu.state.get("r", 0) == 1000
    cpu.flush()
    assert not cpu.tbs.regions and not cpu.tbs.by_pc


def test_calls_and_returns_stay_inside_the_region() -> None:
    """CODE calls FN (r7 = return address); FN returns through an indirect jump."""
    fe = HandFrontend()
    fn = CODE + 0x40

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[1], R[1], c64(1))
        b.movi(R[7], CODE + 8)
        b.call_returns_to(CODE + 8)
        b.goto_tb(0, fn)

    @fe.define(fn)
    def _(b: Builder) -> None:
        b.insn_start(fn)
        b.add(R[0], R[0], R[1])
        b.mov(PC, R[7])
        b.lookup_and_goto_ptr()

    @fe.define(CODE + 8)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 8)
        done = b.label()
        b.brcond(Cond.GEU, R[1], R[2], done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 12)

    cpu = make_cpu(fe, hot_threshold=100, tier_sync=True)
    cpu.state.set("r", 100_000, 2)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 100_000 * 100_001 // 2
    assert [m.pc for m in cpu.tbs.regions[CODE].members] == [CODE, fn, CODE + 8]
    # The return is a branch inside the region: no jump-cache misses after the first.
    assert cpu.stats.exits.get("LOOKUP", 0) <= 1


def test_indirect_jump_targets_seen_join_the_region() -> None:
    """A dispatch block jumps through r3 to one of two handlers, both back to it."""
    fe = HandFrontend()
    handlers = (CODE + 0x100, CODE + 0x200)

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        done = b.label()
        b.brcond(Cond.GEU, R[0], R[1], done)
        pick = b.temp()
        b.and_(pick, R[0], c64(1))
        b.shl(pick, pick, c64(8))
        b.add(PC, pick, c64(CODE + 0x100))
        b.lookup_and_goto_ptr()
        b.set_label(done)
        halt_at(b, CODE + 4)

    for i, pc in enumerate(handlers):
        @fe.define(pc)
        def _(b: Builder, pc=pc, i=i) -> None:
            b.insn_start(pc)
            b.add(R[2 + i], R[2 + i], c64(1))
            b.goto_tb(0, CODE)

    cpu = make_cpu(fe, hot_threshold=200, tier_sync=True)
    cpu.state.set("r", 50_000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert (cpu.state.get("r", 2), cpu.state.get("r", 3)) == (24_999, 25_000)
    members = {m.pc for r in cpu.tbs.regions.values() for m in r.members}
    assert {CODE, *handlers} <= members


def test_threshold_and_sync_come_from_the_environment(monkeypatch) -> None:
    # (Read by command-line layers: options_from_environment, not the runtime.)
    def threshold_from_env() -> int:
        return options_from_environment(os.environ).hot_threshold

    monkeypatch.setenv(ENV_HOT_THRESHOLD, "3")
    monkeypatch.setenv(ENV_TIER_SYNC, "1")
    assert threshold_from_env() == 3 and options_from_environment(os.environ).tier_sync
    monkeypatch.setenv(ENV_HOT_THRESHOLD, "0")
    assert threshold_from_env() == 0  # tiering off
    monkeypatch.setenv(ENV_HOT_THRESHOLD, "lots")
    assert threshold_from_env() == DEFAULT_HOT_THRESHOLD


def test_exit_request_checks_sit_where_every_internal_cycle_passes() -> None:
    """Head H -> A -> B -> A (a loop that does not pass the head), B -> C: only the
    head and A (a back-edge target) check exit_request; B and C need not."""
    fe = HandFrontend()
    pcs = {"H": CODE, "A": CODE + 0x10, "B": CODE + 0x20, "C": CODE + 0x30}

    def jump(at: int, *dests: int):
        def build(b: Builder) -> None:
            b.insn_start(at)
            b.add(R[0], R[0], c64(1))
            if len(dests) == 2:
                other = b.label()
                b.brcond(Cond.NE, R[0], R[1], other)
                b.goto_tb(0, dests[0])
                b.set_label(other)
                b.goto_tb(1, dests[1])
            else:
                b.goto_tb(0, dests[0])
        return build

    fe.define(pcs["H"])(jump(pcs["H"], pcs["A"]))
    fe.define(pcs["A"])(jump(pcs["A"], pcs["B"]))
    fe.define(pcs["B"])(jump(pcs["B"], pcs["A"], pcs["C"]))
    fe.define(pcs["C"])(jump(pcs["C"], pcs["H"] + 0x100))
    blocks = [fe.translate(pcs[k], 0, lambda addr, size: b"\0" * size) for k in "HABC"]
    assert region_function.exit_request_checks(blocks, {}) == {0, 1}
    # An indirect jump may land on any member it names: those check too.
    assert region_function.exit_request_checks(blocks, {pcs["C"]: "m3"}) == {0, 1, 3}


def test_fork_waits_for_llvmlites_lock_held_by_another_thread() -> None:
    """A thread holding llvmlite's lock when the process forks (the compile thread
    finalising llvmlite objects in a garbage collection) would leave the child waiting
    for it forever: the at-fork hook waits until it is free."""
    import llvmlite.binding as llvm

    from llvmtcg.runtime import tiering as tiering_mod
    from llvmtcg.runtime.jit import llvmlite_lock

    tiering_mod._background()  # a compile worker, and with it the at-fork hooks
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with llvmlite_lock():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    threading.Timer(0.2, release.set).start()  # the hook waits until then
    pid = os.fork()
    if pid == 0:  # the child: an llvmlite call must not block
        status = 1
        try:
            status = 0 if llvm.get_process_triple() else 2
        finally:
            os._exit(status)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    holder.join()
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0


def two_loops(fe: HandFrontend, second_bound: int = 1) -> None:
    """CODE: r0 += 1, loop while r0 < r1; then CODE+8: r2 += 1, loop while r2 <
    r[second_bound]; then halt. Two hot heads, neither inside the other's region."""
    for head, counter, bound, after in ((CODE, 0, 1, CODE + 8),
                                        (CODE + 8, 2, second_bound, None)):
        @fe.define(head)
        def _(b: Builder, head=head, counter=counter, bound=bound, after=after) -> None:
            b.insn_start(head)
            b.add(R[counter], R[counter], c64(1))
            done = b.label()
            b.brcond(Cond.GEU, R[counter], R[bound], done)
            b.goto_tb(0, head)
            b.set_label(done)
            if after is None:
                halt_at(b, head + 4)
            else:
                b.goto_tb(1, after)


def test_the_compile_budget_and_queue_bound_hold_regions_back() -> None:
    fe = HandFrontend()
    two_loops(fe)
    cpu = make_cpu(fe, hot_threshold=100)
    tiering = cpu.tiering
    # No compile time at all, and room for one waiting region.
    tiering.budget_share, tiering.budget_grant, tiering.max_queue = 0.0, 0.0, 1
    try:
        cpu.state.set("r", 2_000_000, 1)
        cpu.pc = CODE
        assert cpu.run().reason is ExitReason.HALT
        assert cpu.state.get("r", 0) == cpu.state.get("r", 2) == 2_000_000
        wait_for(lambda: tiering.stats["budget_waits"] == 1)
        time.sleep(0.3)  # (the compiler is waiting: nothing may come out of it)
        assert tiering.stats["regions_compiled"] == 0 and tiering.compile_cpu == 0.0
        # The first loop's region waits; the second loop turned hot with the queue full
        # (re-armed with a longer count, it turned hot again).
        assert [p.head.pc for p in tiering.queued] == [CODE]
        assert tiering.stats["queue_full"] >= 2
        assert CODE + 8 not in tiering.pending
    finally:
        cpu.close()  # (lets the process's compile thread go on to other CPUs' regions)
