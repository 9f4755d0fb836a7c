"""Hot-code tiering: execution counters, region formation, background optimising
compiles, and swapping regions in.

Cheap-tier blocks count their executions down in a module global; the entry that
reaches zero returns HOT to the run loop, once. The run loop hands the block to
:meth:`Tiering.hot`, which collects a *region* — the block and the already executed
blocks its direct exits reach, bounded — snapshots their guest bytes and queues the
region for the process's background compiler. That thread re-translates the members
from the snapshot, lowers them as one function (``Lowering.lower_region``: guest
registers in SSA across the region, inline TLB probes, internal branches for internal
jumps) and compiles it with LLVM's O2 pipeline while the guest keeps running. It then
requests an exit; at that safe point the run loop calls :meth:`Tiering.install_ready`,
which links the object and swaps the region in (``TbCache.install_region``) unless a
member was invalidated meanwhile. Retiring a region (any member invalidated) requests
an exit too, so a running region stops at its next block boundary.

A region's plan (its members) goes to the persistent code cache when it is formed, and
the same head forms the same region from it in later runs: what a region covers, and
its cache key, do not depend on the timing of compiles, so a region not compiled before
a run ended is the same region in the next, and the cache converges.
"""

from __future__ import annotations

import atexit
import os
import queue
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llvmtcg.ir.block import Block
from llvmtcg.ir.lower import Lowering
from llvmtcg.log import Log
from llvmtcg.runtime.codecache import CachedHotRegion, CachedRegionPlan
from llvmtcg.runtime.exits import Access, FaultKind, GuestFault, MemFault
from llvmtcg.runtime.host_fds import FD_GATE
from llvmtcg.runtime.jit import CompileError, ObjectCompiler, llvmlite_lock
from llvmtcg.runtime.tbcache import MAX_REGION_PAGES, HotRegion, TbCache, TranslationBlock

if TYPE_CHECKING:
    from llvmtcg.arch import GuestArch


# Seconds of the compile grant that a region loaded from the code cache stands for (about
# a region's compile: 20-250 ms, more for the largest).
GRANT_PER_LOADED = 0.25


@dataclass(eq=False)
class RegionPlan:
    """A region chosen for compilation: its member blocks (head first) and a snapshot
    of the guest bytes they were translated from."""

    name: str
    members: list[TranslationBlock]
    code: list[tuple[int, bytes]]
    indirect_targets: set[int] = field(default_factory=set)  # seen at members' jumps
    queued: int = 0  # times runs queued it before (its plan in the code cache says)
    # When it was queued and its head's count then (the compile thread drops plans
    # whose head has hardly run since: retired or rarely entered code).
    queued_at: float = 0.0
    queued_executions: int = 0

    @property
    def head(self) -> TranslationBlock:
        return self.members[0]


@dataclass(eq=False)
class RegionCode:
    plan: RegionPlan
    object: bytes = b""
    exits: dict[int, int] = field(default_factory=dict)
    accessors: set[str] = field(default_factory=set)
    error: BaseException | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0


class RegionError(Exception):
    """A member re-translated differently from the block it stands for."""


class RegionDropped(Exception):
    """A queued region was not compiled (a member invalidated before its turn)."""


class RegionCold(RegionDropped):
    """A queued region was not compiled: its head hardly ran while it waited."""


def _snapshot_fetch(code: list[tuple[int, bytes]]) -> Callable[[int, int], bytes]:
    def fetch(addr: int, size: int) -> bytes:
        for start, data in code:
            if start <= addr and addr + size <= start + len(data):
                return data[addr - start:addr - start + size]
        # Past the snapshot: the original block ended here, so this one does too.
        raise GuestFault(MemFault(addr, Access.FETCH, FaultKind.UNMAPPED))
    return fetch


class Tiering:
    """Promotes hot code of one TbCache to optimised regions.

    Args:
        tbs: the translations whose blocks count executions (their lowering has a
            nonzero ``hot_threshold``).
        arch: translates members again, from a snapshot of their bytes (not logged:
            they were logged when first translated).
        lowering: lowers regions (owned by this object: used on the compile thread).
        request_exit: makes the running guest return to the run loop soon.
        sync: compile on the caller's thread and install at once (tests, debugging).
        max_blocks, max_insns: bounds of one region.
        budget_share, budget_grant: the background compiler spends at most
            ``budget_grant + budget_share * guest CPU seconds since start`` seconds of
            its thread's CPU time on this CPU's regions; past that, it waits (a 2-core
            host runs the guest on the other core, so compiling never takes more than
            that share from it; the grant lets a program's first hot loops compile at
            once). Guest CPU time is the process's CPU time less the compiles': on a
            loaded host, where the guest gets less than a core, compiling slows down
            with it (measured against wall time it took 40% of a run's CPU). Each
            region loaded from the code cache takes ``GRANT_PER_LOADED`` off the grant
            (a program run before: its first hot loops are cached).
        max_queue: regions waiting to be compiled at most; a block turning hot while
            the queue is full is re-armed with a longer count (still hot then: queued).
        cold_after: seconds a queued region may wait; past that, if its head ran fewer
            than ``hot_threshold`` times since it was queued, it is dropped, not compiled
            (the head is re-armed: still hot later, it comes back).
        max_plan_queued: times a region's plan may be queued, over every run sharing the
            code cache (counted in the plan's entry), without a compiled region coming
            of it (the budget ran out, the run ended, its head went cold); then its head
            is left to the cheap tier. Without a bound a program whose hot set costs more
            compile time than one run's budget compiled in every run, never converging.
    """

    def __init__(self, tbs: TbCache, arch: GuestArch, lowering: Lowering,
                 request_exit: Callable[[], None], sync: bool = False,
                 log: Log | None = None, max_blocks: int = 64, max_insns: int = 256,
                 budget_share: float = 0.25, budget_grant: float = 2.0,
                 max_queue: int = 256, cold_after: float = 2.0,
                 max_plan_queued: int = 2) -> None:
        self.tbs = tbs
        self.arch = arch
        self.lowering = lowering
        self.request_exit = request_exit
        self.sync = sync
        self.log = log or Log()
        self.threshold = tbs.lowering.hot_threshold
        self.max_blocks = max_blocks
        self.max_insns = max_insns
        self.pending: dict[int, RegionPlan] = {}  # by head pc, until installed or dropped
        # Member pc -> pending plans that cover it (asked at every HOT exit: with a long
        # queue, scanning the plans' members made each exit slow).
        self.pending_members: dict[int, int] = {}
        self.ready: deque[RegionCode] = deque()  # compiled, waiting for a safe point
        self.retired_at: dict[int, int] = {}  # head pc -> regions retired there
        self.deferred: dict[int, int] = {}  # head pc -> times its region was put off
        self.queue_full_at: dict[int, int] = {}  # pc -> times it was hot, queue full
        self.closed = False
        self._names = 0
        self.budget_share = budget_share
        self.budget_grant = budget_grant
        self.max_queue = max_queue
        self.cold_after = cold_after
        self.max_plan_queued = max_plan_queued
        # Blocks of plans given up on (pc -> block; a block translated again at the pc
        # is other code): they do not head regions of their own either, or every block
        # of a loop whose region was given up would try in turn.
        self.spent: dict[int, TranslationBlock] = {}
        self.started_cpu = _guest_cpu()
        # Plans submitted and not yet taken by the compile thread (it takes the hottest
        # first); shared with that thread, under queue_lock.
        self.queued: list[RegionPlan] = []
        self.queue_lock = threading.Lock()
        self.compile_cpu = 0.0  # compile thread CPU seconds spent on this CPU's regions
        self.stats = {"hot": 0, "deferred": 0, "regions_compiled": 0, "regions_loaded": 0,
                      "regions_installed": 0, "regions_discarded": 0, "regions_retired": 0,
                      "compile_errors": 0, "regions_dropped": 0, "regions_cold": 0,
                      "queue_full": 0, "plans_reused": 0, "plans_spent": 0,
                      "plans_spent_covered": 0,
                      "region_load_seconds": 0.0,
                      "region_member_seconds": 0.0,
                      "budget_waits": 0, "compile_cpu": 0.0,
                      "compile_seconds": 0.0, "region_blocks": 0, "region_insns": 0}
        tbs.region_retired.append(self._retired)
        _live.add(self)

    # -- run loop side ---------------------------------------------------------------------
    def hot(self, pc: int) -> None:
        """The block at pc returned HOT: queue a region headed by it (or re-arm it)."""
        self.stats["hot"] += 1
        tb = self.tbs.lookup(pc)
        if tb is None or not tb.valid or pc in self.pending or pc in self.tbs.regions:
            return
        if pc in self.pending_members:
            return  # the region on its way covers it (its install re-arms the counter)
        if self.spent.get(pc) is tb:
            return  # in a region given up on (see max_plan_queued)
        # (CPU time of this thread: on a loaded host wall time says little)
        load_start = time.thread_time()
        loaded = self._install_cached(pc)
        self.stats["region_load_seconds"] += time.thread_time() - load_start
        if loaded:
            return
        if not self.sync and len(self.queued) >= self.max_queue:
            # The compiler is behind: hot code that stays hot comes back (and the
            # hottest waiting regions go first meanwhile).
            # (Backing off: each HOT exit is a trip to Python, and a queue that stays
            # full — compiles slower than code turns hot — made thousands of them.)
            self.stats["queue_full"] += 1
            waits = self.queue_full_at[pc] = self.queue_full_at.get(pc, 0) + 1
            tb.arm_counter(_counter(self.threshold << min(2 * waits, 16)))
            return
        # A region formed at this head before (in this process or an earlier run) is
        # formed the same way again: its blocks do not depend on the timing of compiles
        # and installs, so neither does its cache key.
        plan = self._planned(tb)
        if plan is None and self.tbs.code_cache is not None and \
                self.tbs.code_cache.spent_plan_covers(pc, self.tbs.fetch,
                                                      self.max_plan_queued):
            # Inside a region given up on in earlier runs (its head may not have turned
            # hot yet in this one): a plan of its own would start the same again.
            self.stats["plans_spent_covered"] += 1
            self.spent[pc] = tb
            return
        if plan is None:
            members = self._collect(tb)
            if self._mostly_pending(members):
                # Another way into code a region on its way mostly covers: see whether
                # it stays hot once that region runs (and, if so, give it its own).
                # (Decided before the members' bytes are fetched: most HOT exits of a
                # large program end here.)
                self.deferred[pc] = self.deferred.get(pc, 0) + 1
                tb.arm_counter(_counter(self.threshold << min(3 * self.deferred[pc], 24)))
                self.stats["deferred"] += 1
                return
            plan = self._plan(members)
            if plan is None:
                return
        elif plan.queued >= self.max_plan_queued:
            # Queued that often, never compiled: its compile costs more than the runs
            # can spare (or its head does not stay hot). The cheap code keeps it; the
            # head asks again only after a very long count.
            self.stats["plans_spent"] += 1
            for m in plan.members:
                self.spent[m.pc] = m
            return
        plan.queued += 1
        self._store_plan(plan)
        self._add_pending(plan)
        if self.log.enabled("tier"):
            inside = ", ".join(r.name for r in tb.regions)
            self.log.write(f"tier: hot {pc:#x}: region {plan.name} of "
                           f"{len(plan.members)} blocks "
                           f"({sum(m.n_insns for m in plan.members)} insns)"
                           + (f", entering {inside} from outside" if inside else ""))
        if self.sync:
            self._install(self._build(plan, _sync_compiler()))
        else:
            plan.queued_at = time.monotonic()
            plan.queued_executions = tb.executions()
            with self.queue_lock:
                self.queued.append(plan)
            _background().submit(self)

    def install_ready(self) -> None:
        """Install compiled regions (call at a safe point: no native code running)."""
        while self.ready:
            self._install(self.ready.popleft())

    def close(self) -> None:
        self.closed = True
        self.pending.clear()
        self.pending_members.clear()
        self.spent.clear()
        self.ready.clear()
        with self.queue_lock:
            self.queued.clear()

    # -- the compile thread's side ---------------------------------------------------------
    def _take_plan(self) -> RegionPlan | None:
        """The queued region to compile next: the one whose head ran most since it was
        queued. Regions a member of which was invalidated meanwhile are dropped, and so
        are regions that waited ``cold_after`` seconds while their head ran fewer than
        ``threshold`` times (code the program has left: compiling it would be wasted)."""
        now = time.monotonic()
        dropped: list[tuple[RegionPlan, RegionDropped]] = []
        with self.queue_lock:
            live = []
            for p in self.queued:
                if not all(m.valid for m in p.members):
                    dropped.append((p, RegionDropped("a member was invalidated")))
                elif now - p.queued_at > self.cold_after and \
                        p.head.executions() - p.queued_executions < self.threshold:
                    dropped.append((p, RegionCold("its head hardly ran while it waited")))
                else:
                    live.append(p)
            if not live:
                self.queued.clear()
                plan = None
            else:
                plan = max(live, key=lambda p: p.head.executions() - p.queued_executions)
                live.remove(plan)
                self.queued[:] = live
        for gone, why in dropped:
            self._delivered(RegionCode(gone, error=why))
        return plan

    def _over_budget(self) -> float:
        """Seconds the compile thread must wait before compiling for this CPU again."""
        # The grant is for a program's first hot loops. A run that finds its regions in
        # the code cache is a program run before (its first hot loops are there), and
        # what it compiles is the rest of a hot set, which the share pays for: each
        # region loaded takes GRANT_PER_LOADED off the grant (a few regions shared with
        # other programs, libc's, say, leave most of it).
        grant = max(0.0, self.budget_grant - GRANT_PER_LOADED * self.stats["regions_loaded"])
        allowed = grant + self.budget_share * (_guest_cpu() - self.started_cpu)
        if self.compile_cpu < allowed:
            return 0.0
        if self.budget_share <= 0:
            return float("inf")
        return (self.compile_cpu - allowed) / self.budget_share + 0.01

    # -- region formation ------------------------------------------------------------------
    def _collect(self, head: TranslationBlock) -> list[TranslationBlock]:
        """The blocks of a region headed by ``head``, head first."""
        members = [head]
        pages = head.pages()
        seen = {head.pc}
        insns = head.n_insns
        # Members must be warm relative to the head (a quarter of its executions):
        # rarely taken paths (a loop's exit, error handling) stay in the cheap tier,
        # behind an exit slot, and cost the optimising compile (~1 ms per guest
        # instruction) nothing.
        warm = max(1, head.executions() // 4)
        queue_ = deque(_successors(head))
        while queue_ and len(members) < self.max_blocks:
            pc = queue_.popleft()
            if pc in seen:
                continue
            seen.add(pc)
            tb = self.tbs.lookup(pc)
            if tb is None or not tb.valid:
                continue
            if tb.executions() < warm and not tb.regions:
                # (A member of an installed region is warm: its cheap code just does
                # not run any more.)
                continue
            if insns + tb.n_insns > self.max_insns:
                continue
            if len(pages | tb.pages()) > MAX_REGION_PAGES:
                continue
            members.append(tb)
            pages |= tb.pages()
            insns += tb.n_insns
            queue_.extend(_successors(tb))
        return members

    def _plan(self, members: list[TranslationBlock]) -> RegionPlan | None:
        """A region of ``members`` with a snapshot of their guest bytes (None: the code
        cannot be fetched any more)."""
        try:
            code = [(start, self.tbs.fetch(start, end - start))
                    for tb in members for start, end in tb.ranges]
        except GuestFault:
            return None
        self._names += 1
        targets = {t for m in members for t in m.indirect_targets()}
        return RegionPlan(f"rg_{members[0].pc:x}.{self._names}", members, code, targets)

    def _store_plan(self, plan: RegionPlan) -> None:
        if self.tbs.code_cache is not None:
            self.tbs.code_cache.store_region_plan(CachedRegionPlan(
                tuple(m.pc for m in plan.members),
                tuple(sorted({r for m in plan.members for r in m.ranges})),
                tuple(sorted(plan.indirect_targets)), plan.queued), self.tbs.fetch)

    def _planned(self, head: TranslationBlock) -> RegionPlan | None:
        """The region headed by ``head`` as an earlier run formed it (its plan in the
        code cache), if the guest code and blocks are the same now."""
        cache = self.tbs.code_cache
        if cache is None:
            return None
        cached = cache.lookup_region_plan(head.pc, self.tbs.fetch)
        if cached is None:
            return None
        members = self._members(cached.members, cached.ranges, f"plan at {head.pc:#x}")
        if members is None or members[0] is not head:
            return None
        try:
            code = [(start, self.tbs.fetch(start, end - start)) for start, end in cached.ranges]
        except GuestFault:
            return None
        self._names += 1
        self.stats["plans_reused"] += 1
        return RegionPlan(f"rg_{head.pc:x}.{self._names}", members, code,
                          set(cached.indirect_targets), queued=cached.queued)

    def _members(self, pcs: tuple[int, ...], ranges: tuple[tuple[int, int], ...],
                 what: str) -> list[TranslationBlock] | None:
        """The blocks at ``pcs`` as translated now, if together they cover exactly
        ``ranges``. Members this run has not reached yet are translated now (from the
        code cache, usually): the region was formed in a run where they had run, and
        would otherwise be formed differently each time the program starts."""
        members = []
        for member_pc in pcs:
            member = self.tbs.lookup(member_pc)
            if member is None:
                try:
                    self.tbs.get(member_pc)
                except (GuestFault, CompileError):
                    return None
                member = self.tbs.lookup(member_pc)
            if member is None or not member.valid:
                return None
            members.append(member)
        if sorted({r for m in members for r in m.ranges}) != list(ranges):
            if self.log.enabled("tier"):
                self.log.write(f"tier: cached {what} does not fit the blocks as "
                               "translated now")
            return None
        return members

    def _install_cached(self, pc: int) -> bool:
        """Install a region headed at ``pc`` from the persistent code cache, if one
        there matches the guest code and blocks as they are now."""
        cache = self.tbs.code_cache
        if cache is None:
            return False
        cached = cache.lookup_hot_region(pc, self.tbs.fetch)
        if cached is None:
            return False
        start = time.thread_time()
        members = self._members(cached.members, cached.ranges, cached.name)
        self.stats["region_member_seconds"] += time.thread_time() - start
        if members is None:
            return False
        try:
            self.tbs.install_region(cached.name, members, cached.object, cached.exits,
                                    set(cached.accessors))
        except CompileError as exc:
            self._link_failed(cached.name, exc)
            return False
        self._after_install(members)
        self.stats["regions_loaded"] += 1
        if self.log.enabled("tier"):
            self.log.write(f"tier: {pc:#x}: region {cached.name} from the code cache")
        return True

    def _link_failed(self, name: str, exc: CompileError) -> None:
        # The optimising tier is an optimisation: its failure leaves the cheap code
        # running, never the guest dead.
        self.stats["compile_errors"] += 1
        if self.log.enabled("tier"):
            self.log.write(f"tier: {name} not installed: {exc}")

    def _after_install(self, members: list[TranslationBlock]) -> None:
        self.stats["regions_installed"] += 1
        self.stats["region_blocks"] += len(members)
        self.stats["region_insns"] += sum(m.n_insns for m in members)
        for m in members[1:]:
            # Inside the region now; if its cheap code still runs often, it is entered
            # from outside (an indirect jump, say) and earns a region of its own.
            m.arm_counter(self.threshold * 8)

    def _add_pending(self, plan: RegionPlan) -> None:
        self.pending[plan.head.pc] = plan
        for m in {m.pc for m in plan.members}:
            self.pending_members[m] = self.pending_members.get(m, 0) + 1

    def _remove_pending(self, plan: RegionPlan) -> None:
        del self.pending[plan.head.pc]
        for m in {m.pc for m in plan.members}:
            left = self.pending_members[m] - 1
            if left:
                self.pending_members[m] = left
            else:
                del self.pending_members[m]

    def _mostly_pending(self, members: list[TranslationBlock]) -> bool:
        inside = sum(1 for m in members if m.pc in self.pending_members)
        return len(members) > 1 and inside * 2 >= len(members)

    def _build(self, plan: RegionPlan, compiler: ObjectCompiler) -> RegionCode:
        """Translate, lower and compile a region (on the compile thread)."""
        result = RegionCode(plan)
        start = time.perf_counter()
        cpu_start = time.thread_time()
        try:
            fetch = _snapshot_fetch(plan.code)
            blocks: list[Block] = []
            for i, tb in enumerate(plan.members):
                block = self.arch.translate(tb.pc, tb.flags, fetch)
                if block.n_insns != tb.n_insns or \
                        [tuple(r) for r in block.guest_ranges] != list(tb.ranges):
                    raise RegionError(f"{tb.name} translated differently for {plan.name}")
                block.name = f"{plan.name}.m{i}"
                blocks.append(block)
            text, result.exits = self.lowering.lower_region(
                plan.name, blocks, compiler.triple, plan.indirect_targets)
            result.accessors = set(self.lowering.accessors_used)
            result.object = compiler.compile(text, [plan.name], self.log)
        except Exception as exc:  # noqa: BLE001 - reported at install; the guest goes on
            result.error = exc
        result.seconds = time.perf_counter() - start
        result.cpu_seconds = time.thread_time() - cpu_start
        self.compile_cpu += result.cpu_seconds
        _add_compile_cpu(result.cpu_seconds)
        return result

    def _delivered(self, result: RegionCode) -> None:
        """From the compile thread: a region is ready; get the run loop to install it."""
        if self.closed:
            return
        self.ready.append(result)
        self.request_exit()

    def _install(self, result: RegionCode) -> None:
        plan = result.plan
        if self.pending.get(plan.head.pc) is not plan:
            return
        self._remove_pending(plan)
        if isinstance(result.error, RegionCold):
            self.stats["regions_cold"] += 1
            # Counting again: the head, and members that turned hot while this region
            # covered them (they were not given regions of their own then).
            for m in plan.members:
                if m.valid:
                    m.arm_counter(self.threshold)
            return
        if isinstance(result.error, RegionDropped):
            self.stats["regions_dropped"] += 1
            return
        self.stats["compile_seconds"] += result.seconds
        self.stats["compile_cpu"] += result.cpu_seconds
        if result.error is not None:
            self.stats["compile_errors"] += 1
            if self.log.enabled("tier"):
                self.log.write(f"tier: {plan.name} not compiled: {result.error}")
            return
        self.stats["regions_compiled"] += 1
        if not all(m.valid for m in plan.members):
            self.stats["regions_discarded"] += 1
            if plan.head.valid:
                plan.head.arm_counter(self.threshold)
            return
        try:
            region = self.tbs.install_region(plan.name, plan.members, result.object,
                                             result.exits, result.accessors)
        except CompileError as exc:
            self._link_failed(plan.name, exc)
            return
        self._after_install(plan.members)
        if self.tbs.code_cache is not None:
            self.tbs.code_cache.store_hot_region(CachedHotRegion(
                plan.name, tuple(m.pc for m in plan.members), tuple(region.ranges),
                result.exits, tuple(sorted(result.accessors)), result.object),
                self.tbs.fetch)
        if self.log.enabled("tier"):
            self.log.write(f"tier: installed {plan.name} at {region.pc:#x} "
                           f"({result.seconds * 1e3:.1f} ms, {len(result.object)} bytes)")

    def _retired(self, region: HotRegion) -> None:
        self.stats["regions_retired"] += 1
        self.request_exit()  # it may be running: stop it at its next block boundary
        if self.log.enabled("tier"):
            self.log.write(f"tier: retired {region.name}")
        retired = self.retired_at[region.pc] = self.retired_at.get(region.pc, 0) + 1
        head = region.members[0]
        if head.valid and retired < 4:  # hot again later: promote again, with backoff
            head.arm_counter(self.threshold << (2 * retired))


def _counter(value: int) -> int:
    """A count for ``TranslationBlock.arm_counter`` (an int32 in native memory)."""
    return min(value, 0x7FFF_FFFF)


def _successors(tb: TranslationBlock) -> list[int]:
    """Where a region grows from tb: its direct exits, the continuation of the call it
    ends with (the return then stays inside the region), and recent targets of its
    indirect jump (a function pointer's callee, a switch's cases)."""
    targets = list(tb.direct_targets.values())
    if tb.return_pc is not None:
        targets.append(tb.return_pc)
    return targets + tb.indirect_targets()


# -- the process's compile thread -------------------------------------------------------------

_compile_cpu_total = 0.0  # CPU seconds of the compile thread's region builds, this process


def _add_compile_cpu(seconds: float) -> None:
    global _compile_cpu_total
    _compile_cpu_total += seconds


def _guest_cpu() -> float:
    """CPU seconds this process spent on other things than compiling regions (the guest,
    translation, the runtime)."""
    return time.process_time() - _compile_cpu_total


_live: weakref.WeakSet[Tiering] = weakref.WeakSet()


class _BackgroundCompiler:
    """One worker thread for every CPU of the process, compiling regions in order."""

    def __init__(self) -> None:
        self.compiler = ObjectCompiler()
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.stopped = False
        # Cleared while a fork waits: the worker finishes the compile under way but
        # starts no other (a fork waiting for the compiler's lock would otherwise wait
        # for the whole queue: the lock is not fair, and the worker takes it again for
        # the next region before the forking thread wakes; with many regions queued
        # that took minutes).
        self.may_compile = threading.Event()
        self.may_compile.set()
        # Held for a whole job (take a plan, translate its members, lower, compile,
        # deliver), which a fork waits for, not just for the compile: translating and
        # lowering take locks too (the frontend's, made on first use, and the import
        # locks of the modules it imports then; the lowering's caches), and a child that
        # inherited one held by this thread (which it does not have) waited for it
        # forever at its first translation.
        self.busy = threading.Lock()
        self.first_compile = True
        self.thread = threading.Thread(target=self._run, name="llvmtcg-tier", daemon=True)
        self.thread.start()

    def submit(self, tiering: Tiering) -> None:
        """``tiering`` queued a plan (the worker takes its hottest when its turn comes)."""
        self.jobs.put(weakref.ref(tiering))

    def _run(self) -> None:
        # Process signals go to the guest's thread, never here (they must interrupt its
        # blocking syscalls; see llvmtcg.user.host_signals).
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        while True:
            ref = self.jobs.get()
            self.may_compile.wait()
            tiering = ref()
            if self.stopped:
                return
            if tiering is None or tiering.closed:
                continue
            waited = False
            while not self.stopped and not tiering.closed:
                wait = tiering._over_budget()
                if not wait:
                    break
                if not waited:
                    tiering.stats["budget_waits"] += 1
                    waited = True
                time.sleep(min(wait, 0.1))
            if self.first_compile:
                # It imports llvmlite and initialises LLVM, which open files: not while
                # a guest call makes a descriptor (see host_fds). (The gate before the
                # job lock: a guest call blocked in accept() must not hold up a fork.)
                with FD_GATE.emulator_files():
                    self.first_compile = not self._job(tiering)
            else:
                self._job(tiering)
            del tiering

    def _job(self, tiering: Tiering) -> bool:
        """Compile ``tiering``'s next plan, if it has one; whether it had."""
        with self.busy:
            plan = tiering._take_plan()
            if plan is None or self.stopped or tiering.closed:
                return False
            built = tiering._build(plan, self.compiler)
            tiering._delivered(built)
            del built
            return True

    def stop(self) -> None:
        """Let no compile start or run on (at exit: LLVM's static destructors must not
        run under a compile)."""
        self.stopped = True
        self.compiler.lock.acquire()


_worker: _BackgroundCompiler | None = None
_worker_lock = threading.Lock()
_sync: ObjectCompiler | None = None


def _background() -> _BackgroundCompiler:
    global _worker
    with _worker_lock:
        if _worker is None:
            _install_process_hooks()
            _worker = _BackgroundCompiler()
        return _worker


def _sync_compiler() -> ObjectCompiler:
    global _sync
    if _sync is None:
        _sync = ObjectCompiler()
    return _sync


_hooks_installed = False


def _install_process_hooks() -> None:
    """At-exit and at-fork hooks, installed with the first worker (never at import:
    importing the runtime starts nothing). Registered once per process; a forked child
    inherits them."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_stop_worker)
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def _stop_worker() -> None:
    if _worker is not None:
        _worker.stop()


def _before_fork() -> None:
    # No compile may be under way when the process forks: the child would inherit
    # LLVM in the middle of it. Nor may the compile thread hold llvmlite's lock (outside
    # a compile too: a garbage collection there finalises llvmlite objects), or the
    # child waits for it forever. (Compiler lock first: a compile takes llvmlite's.)
    # (llvmlite may not be imported yet: the compile thread imports it in its first
    # compile, under the compiler lock, so whether it is cannot change until release.)
    global _held_llvmlite_lock
    if _worker is not None:
        _worker.may_compile.clear()
        _worker.busy.acquire()
        _worker.compiler.lock.acquire()
        _held_llvmlite_lock = llvmlite_lock()
        _held_llvmlite_lock.acquire()


def _release_fork_locks() -> None:
    global _held_llvmlite_lock
    if _held_llvmlite_lock is not None:
        _held_llvmlite_lock.release()
        _held_llvmlite_lock = None
    if _worker is not None:
        _worker.compiler.lock.release()
        _worker.busy.release()
        _worker.may_compile.set()


_held_llvmlite_lock = None


def _after_fork_in_parent() -> None:
    _release_fork_locks()


def _after_fork_in_child() -> None:
    # The worker thread does not exist in the child: start another one on demand and
    # give it the plans the parent's worker had not finished.
    global _worker, _compile_cpu_total
    if _worker is None:
        return
    _release_fork_locks()
    _worker = None
    _compile_cpu_total = 0.0  # (a new process: its CPU time starts at zero)
    for tiering in list(_live):
        if tiering.closed:
            continue
        tiering.started_cpu = 0.0  # (what the parent compiled stays spent)
        tiering.queue_lock = threading.Lock()  # (the parent's worker may have held it)
        waiting = {id(r.plan) for r in tiering.ready}
        with tiering.queue_lock:
            queued = {id(p) for p in tiering.queued}
            for plan in tiering.pending.values():
                if id(plan) not in waiting and id(plan) not in queued:
                    tiering.queued.append(plan)  # the parent's worker had it under way
            count = len(tiering.queued)
        for _ in range(count):
            _background().submit(tiering)

