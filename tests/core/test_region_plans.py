"""Region formation that converges (runtime/tiering.py): a region's plan persists in
the code cache, so a head forms the same region in every run whatever the timing of
compiles; queued regions whose head went cold are dropped, not compiled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llvmtcg.ir import Builder, Cond, ExitReason
from llvmtcg.runtime.tiering import GRANT_PER_LOADED
from tests.core.support import CODE, HandFrontend, R, c64, halt_at, make_cpu
from tests.core.test_tiering import two_loops, wait_for


def branchy_loop(fe: HandFrontend) -> None:
    """CODE: r0 += 1; if r2 != 0 goto CODE+4 else CODE+8.  CODE+4: r3 += 1.
    CODE+8: loop to CODE while r0 < r1, then halt. Whether CODE+4 runs is input."""

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        skip = b.label()
        b.brcond(Cond.EQ, R[2], c64(0), skip)
        b.goto_tb(0, CODE + 4)
        b.set_label(skip)
        b.goto_tb(1, CODE + 8)

    @fe.define(CODE + 4)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 4)
        b.add(R[3], R[3], c64(1))
        b.goto_tb(0, CODE + 8)

    @fe.define(CODE + 8)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 8)
        done = b.label()
        b.brcond(Cond.GEU, R[0], R[1], done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 12)


@dataclass
class Run:
    tier: dict
    cache: dict
    region: list[int] | None  # members of the region installed at CODE


def run_branchy(cache_dir: Path, taken: bool, compile_now: bool, start: int = CODE) -> Run:
    """One 'process' of branchy_loop; compile_now: compile regions at once (else the
    background compiler gets no budget: regions are planned, never compiled)."""
    fe = HandFrontend()
    branchy_loop(fe)
    cpu = make_cpu(fe, cache_dir=cache_dir, hot_threshold=100, tier_sync=compile_now)
    cpu.memory.protect(CODE, 0x1000, 7)
    cpu.memory.write(CODE, bytes(range(16)))
    if not compile_now:
        cpu.tiering.budget_share, cpu.tiering.budget_grant = 0.0, 0.0
    cpu.state.set("r", 10_000, 1)
    cpu.state.set("r", int(taken), 2)
    cpu.pc = start
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 3) == (10_000 if taken else 0)
    region = cpu.tbs.regions.get(CODE)
    run = Run(dict(cpu.tiering.stats), dict(cpu.tbs.code_cache.stats),
              None if region is None else [m.pc for m in region.members])
    cpu.close()
    return run


def test_a_head_forms_the_region_an_earlier_run_planned(tmp_path: Path) -> None:
    # Run 1 takes the branch: its hot loop's region is planned with CODE+4 in it, but
    # never compiled (no compile budget: as when a run ends with regions queued).
    run = run_branchy(tmp_path / "cache", taken=True, compile_now=False)
    assert run.tier["regions_compiled"] == 0 and run.region is None
    assert run.cache.get("plan_stores") == 1
    # Run 2 does not take it (CODE+4 never runs), yet forms and compiles the region
    # run 1 planned, so the region and its cache key do not depend on which run (or
    # which timing of compiles) got to compile it.
    run = run_branchy(tmp_path / "cache", taken=False, compile_now=True)
    assert run.tier["plans_reused"] == 1
    assert run.region == [CODE, CODE + 4, CODE + 8]
    # Without the plan the same run forms a different region.
    run = run_branchy(tmp_path / "fresh", taken=False, compile_now=True)
    assert run.tier["plans_reused"] == 0
    assert run.region == [CODE, CODE + 8]
    # And a run after run 2 loads what run 2 compiled: nothing left to compile.
    run = run_branchy(tmp_path / "cache", taken=True, compile_now=False)
    assert run.tier["regions_loaded"] == 1 and run.tier["regions_compiled"] == 0
    assert run.region == [CODE, CODE + 4, CODE + 8]


def test_a_plan_for_other_code_is_not_used(tmp_path: Path) -> None:
    run_branchy(tmp_path, taken=True, compile_now=False)
    fe = HandFrontend()
    branchy_loop(fe)
    cpu = make_cpu(fe, cache_dir=tmp_path, hot_threshold=100, tier_sync=True)
    cpu.memory.protect(CODE, 0x1000, 7)
    cpu.memory.write(CODE, bytes(range(4)) + b"\xff" * 12)  # other bytes at CODE+4
    cpu.state.set("r", 10_000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.tiering.stats["plans_reused"] == 0
    assert [m.pc for m in cpu.tbs.regions[CODE].members] == [CODE, CODE + 8]
    cpu.close()


def test_queued_regions_whose_head_went_cold_are_dropped() -> None:
    fe = HandFrontend()
    two_loops(fe, second_bound=4)  # (a short loop to r1, then a long one to r4)
    cpu = make_cpu(fe, hot_threshold=100)
    tiering = cpu.tiering
    tiering.budget_share, tiering.budget_grant, tiering.cold_after = 0.0, 0.0, 0.0
    try:
        cpu.state.set("r", 150, 1)
        cpu.state.set("r", 100_000, 4)
        cpu.pc = CODE
        assert cpu.run().reason is ExitReason.HALT
        # The first loop turned hot at 100 iterations and ended at 150, fewer than
        # the threshold after its region was queued; the second loop's head ran on
        # (100k times) after its region was queued.
        assert [p.head.pc for p in tiering.queued] == [CODE, CODE + 8]
        tiering.budget_grant = 1e9  # the compiler may go on: it drops one, compiles one
        wait_for(lambda: len(tiering.ready) == 2)
        tiering.install_ready()
        assert tiering.stats["regions_cold"] == 1 and tiering.stats["regions_compiled"] == 1
        assert CODE not in tiering.pending and CODE not in cpu.tbs.regions
        assert CODE + 8 in cpu.tbs.regions
    finally:
        cpu.close()


def test_a_plan_queued_twice_and_never_compiled_is_given_up(tmp_path: Path) -> None:
    # Runs that end with the region still queued (no compile budget here; in real runs,
    # a hot set costing more compile time than a run's budget): each queues it again,
    # and the cache would never converge. After max_plan_queued (2) such runs, the head
    # stays in the cheap tier and nothing is queued.
    for queued in (1, 2):
        run = run_branchy(tmp_path, taken=True, compile_now=False)
        assert run.tier["regions_compiled"] == 0 and run.tier["plans_spent"] == 0
        assert run.tier["plans_reused"] == queued - 1
        plans = [p for p in tmp_path.glob("*/p*") if not p.name.endswith(".tmp")]
        assert len(plans) == 1  # the same plan, its count raised
    run = run_branchy(tmp_path, taken=True, compile_now=True)
    assert run.tier["plans_spent"] == 1
    assert run.tier["regions_compiled"] == 0 and run.region is None
    # Entered at CODE+8, a member of that plan, which then turns hot first: not the
    # head of a region of its own either (that region would be given up in turn).
    run = run_branchy(tmp_path, taken=True, compile_now=True, start=CODE + 8)
    assert run.tier["plans_spent_covered"] == 1
    assert run.tier["regions_compiled"] == 0 and not run.region
    # Other code at the head is another plan: it gets its own two tries.
    run = run_branchy(tmp_path / "other", taken=True, compile_now=True)
    assert run.tier["regions_compiled"] == 1 and run.tier["plans_spent"] == 0


def test_regions_from_the_code_cache_take_from_the_compile_grant(tmp_path: Path) -> None:
    run_branchy(tmp_path, taken=True, compile_now=True)  # its region goes to the cache
    fe = HandFrontend()
    branchy_loop(fe)
    cpu = make_cpu(fe, cache_dir=tmp_path, hot_threshold=100)
    tiering = cpu.tiering
    try:
        cpu.memory.protect(CODE, 0x1000, 7)
        cpu.memory.write(CODE, bytes(range(16)))
        # As if this run had compiled for nearly the whole grant, with no share.
        tiering.budget_share = 0.0
        tiering.compile_cpu = tiering.budget_grant - GRANT_PER_LOADED / 2
        assert tiering._over_budget() == 0.0  # a new program: the grant is there
        cpu.state.set("r", 10_000, 1)
        cpu.state.set("r", 1, 2)
        cpu.pc = CODE
        assert cpu.run().reason is ExitReason.HALT
        assert tiering.stats["regions_loaded"] == 1
        # A program run before (its hot loop came from the cache): less grant, and
        # what the compiler spent is past it.
        assert tiering._over_budget() == float("inf")
    finally:
        cpu.close()
