"""Translation blocks: lookup, region translation, chaining, jump cache, invalidation.

A translation miss translates the block at the missed pc and, ahead of time, the
blocks its direct exits reach (bounded), and compiles them as one LLVM module. Direct
exits are linked by writing the target's entry address into the exit slot (a module
global the block tail-calls through); every link is recorded on the target so
invalidation can undo it. Code of invalidated blocks is released only at a safe point
(no native frame running), once every block of its module is gone.

Hot regions (see runtime/tiering.py) live here too: a :class:`HotRegion` is code of the
optimising tier that covers several cheap blocks (its ``members``). While it
is installed, lookups and new links of its head pc get the region; invalidating any
member retires it, and the cheap blocks take over again.
"""

from __future__ import annotations

import bisect
import ctypes
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir.block import Block
from llvmtcg.ir.lower import (
    INDIRECT_TARGETS,
    Lowering,
    counter_symbol,
    has_indirect_exit,
    slot_symbol,
    target_symbol,
)
from llvmtcg.log import TRANSLATION_LOG_ITEMS, Log
from llvmtcg.runtime.codecache import BlockMeta, CodeCache
from llvmtcg.runtime.exits import Access, FaultKind, GuestFault, MemFault
from llvmtcg.runtime.jit import CompiledModule, JitEngine
from llvmtcg.runtime.lookup_table import NO_CODE_PAGE, NativeLookup
from llvmtcg.runtime.native.baseline import (
    ArenaFull,
    BaselineCodegen,
    EmittedBlock,
    Unsupported,
)
from llvmtcg.runtime.native.baseline_cache import (
    BaselineBlockCache,
    PlacedBlock,
    wide_values,
)
from llvmtcg.runtime.softmmu import page_floor

if TYPE_CHECKING:
    from llvmtcg.arch import GuestArch


# (slots: a large program keeps tens of thousands of blocks; with the baseline
# blocks' address maps dropped, ~300 of their ~2,400 bytes each,
# tests/core/test_tb_memory.py)
@dataclass(eq=False, slots=True)
class CompiledCode:
    """Native code entered at a guest pc: a block, or a hot region of several. Its exit
    slots are linked to other code (``linked``) and other code's to it (``incoming``)."""

    pc: int
    name: str
    # (placed stored blocks have tuples: see BaselineBlockCache.place)
    ranges: Sequence[tuple[int, int]]
    module: CompiledModule
    entry: int
    slots: dict[int, int]  # exit slot n -> native address of the slot
    direct_targets: dict[int, int]  # exit slot n -> destination guest pc
    n_insns: int = 0
    flags: int = 0  # the translation flags (arch.tb_flags) the code was translated for
    phys_pc: int | None = None  # physical address of pc (None: untracked, user mode)
    # Physical [start, end) ranges of the guest bytes (None: the same as ``ranges``):
    # code pages are tracked physically, so a store through any mapping finds them.
    phys_ranges: Sequence[tuple[int, int]] | None = None
    linked: dict[int, CompiledCode] = field(default_factory=dict)  # outgoing links
    # (a list: links into one block are few, and an empty set costs 216 bytes)
    incoming: list[tuple[CompiledCode, int]] = field(default_factory=list)
    valid: bool = True

    def pages(self) -> set[int]:
        """The physical pages its guest bytes are on."""
        return pages_of(self.ranges if self.phys_ranges is None else self.phys_ranges)

    def overlaps(self, start: int, end: int) -> bool:
        """Whether its guest bytes overlap the physical range [start, end)."""
        ranges = self.ranges if self.phys_ranges is None else self.phys_ranges
        return any(s < end and start < e for s, e in ranges)

    def matches(self, flags: int, phys_pc: int | None) -> bool:
        """Whether this code is what runs at its pc under ``flags`` when the pc maps to
        ``phys_pc`` (QEMU's tb_lookup_cmp: pc, flags and the physical pc)."""
        return self.flags == flags and (phys_pc is None or self.phys_pc == phys_pc)


@dataclass(eq=False, slots=True)
class TranslationBlock(CompiledCode):
    """A block of the cheap tier (one guest basic block)."""

    return_pc: int | None = None  # the block ends with a call returning here (a hint)
    counter: int = 0  # address of the execution counter (an i32 counting down), or 0
    counter_start: int = 0  # the counter's value when it was last armed
    target_cell: int = 0  # address of recent indirect-jump targets (i64 array), or 0
    # Installed regions covering it (a tuple, replaced when it changes: most blocks
    # never have one, and an empty list per block was one more object for every full
    # pass of the cycle collector to scan)
    regions: tuple[HotRegion, ...] = ()
    # The next block at the same pc translated for other flags or another physical
    # page (a hash chain, like QEMU's qht bucket): by_pc holds the first.
    variant: TranslationBlock | None = None

    def executions(self) -> int:
        """Entries counted since the counter was last armed (0 without a counter)."""
        if not self.counter:
            return 0
        return (self.counter_start - ctypes.c_int32.from_address(self.counter).value) \
            & 0xFFFF_FFFF

    def indirect_targets(self) -> list[int]:
        """Distinct recent targets of the block's indirect jump (profiled)."""
        if not self.target_cell:
            return []
        cells = (ctypes.c_uint64 * INDIRECT_TARGETS).from_address(self.target_cell)
        return sorted({pc for pc in cells if pc != 0xFFFF_FFFF_FFFF_FFFF})

    def arm_counter(self, value: int) -> None:
        """Return HOT after ``value`` more entries (only call with no native code of
        this block running)."""
        if self.counter:
            ctypes.c_int32.from_address(self.counter).value = value
            self.counter_start = value


@dataclass(eq=False, slots=True)
class HotRegion(CompiledCode):
    """Optimised code of the tiering (runtime/tiering.py) standing for several blocks,
    entered at its head's pc."""

    members: tuple[TranslationBlock, ...] = ()  # the cheap blocks it covers, head first


_NO_ADDRESSES: dict[str, int] = {}


@dataclass(slots=True)
class PageIndex:
    """The guest byte ranges of the blocks on one code page (physical where tracked),
    sorted by start: ``starts[i]``, ``ends[i]`` and ``tbs[i]`` are one range, and
    ``reach[i]`` is the largest end of ranges 0..i. The blocks overlapping [start, end)
    are among those before ``bisect_left(starts, end)``, scanning down while ``reach``
    passes ``start``: a store costs a bisect and its few neighbours, not a visit of
    each block on the page (a Linux boot: ~150 blocks on the pages it overwrites).
    Blocks invalidated since it was made stay in it (``valid`` is False), so each
    invalidation does not rebuild it; a new block on the page drops it."""

    starts: list[int]
    ends: list[int]
    reach: list[int]
    tbs: list[CompiledCode]

    def overlapping(self, start: int, end: int) -> list[CompiledCode]:
        """The valid blocks whose bytes overlap [start, end)."""
        starts, ends, reach, tbs = self.starts, self.ends, self.reach, self.tbs
        found: list[CompiledCode] = []
        i = bisect.bisect_left(starts, end) - 1  # (the last range starting before end)
        while i >= 0 and reach[i] > start:
            if ends[i] > start and tbs[i].valid:
                found.append(tbs[i])
            i -= 1
        return found


def _page_index(page: int, tbs: Iterable[CompiledCode]) -> PageIndex:
    """The :class:`PageIndex` of the blocks ``tbs`` on ``page``."""
    page_end = page + abi.PAGE_SIZE
    entries = sorted(((s, e, tb) for tb in tbs
                      for s, e in (tb.ranges if tb.phys_ranges is None else tb.phys_ranges)
                      if s < page_end and e > page), key=lambda entry: entry[0])
    reach: list[int] = []
    top = 0
    for _, e, _ in entries:
        top = max(top, e)
        reach.append(top)
    return PageIndex([s for s, _, _ in entries], [e for _, e, _ in entries], reach,
                     [tb for _, _, tb in entries])


class ArenaCode:
    """The 'module' of one baseline block, whose code (``size`` bytes at its entry) and
    data live in the baseline arena. Once the block is invalidated and no native frame
    can be running it, :meth:`TbCache.release_pending` gives both back to the arena for
    reuse (unless the arena was reset since: ``generation``); a reset reclaims
    everything at once. (Slots only: a large program keeps tens of thousands.)"""

    __slots__ = ("live_blocks", "size", "generation")
    addresses = _NO_ADDRESSES  # (an emitted block keeps no symbol map)
    object = None

    def __init__(self, size: int, generation: int) -> None:
        self.live_blocks = 0
        self.size = size
        self.generation = generation

    def release(self) -> None:
        pass  # (the chunks go back through TbCache.release_pending, which owns the arena)

MAX_REGION_PAGES = 4  # guest pages one compiled region (cheap or hot) may span
# Stored baseline blocks one miss installs: the missed one and those its direct exits
# reach (they ran together last time; each one installed now is a miss fewer).
MAX_STORED_AHEAD = 64
# Blocks the baseline tier translates per miss (at most ``max_region_blocks``): the
# missed one only, as QEMU does. Translating ahead amortises LLVM's per-module cost;
# copy-and-patch has almost none, and a third of the blocks translated ahead never ran
# (hello: 432 of 1316). Measured (CPU s, medians, the 2-core host under load): cold
# Linux boot 8 -> 1 block: 15.3 -> 11.7 s (2: 13.9); cold hello 0.68 -> 0.61 s.
BASELINE_REGION_BLOCKS = 1
# The content memo (user mode, see TbCache._memo_take): invalidated baseline blocks
# kept, code and data, with the guest bytes they were translated from, at most this
# many in all and MEMO_VERSIONS per (pc, flags); a (pc, flags) whose lookups miss
# MEMO_GIVE_UP times in a row (code rewritten with new bytes each time) is no longer
# memoised.
MEMO_BLOCKS = 64
MEMO_VERSIONS = 4
MEMO_GIVE_UP = 16


_PAGE_MASK = abi.PAGE_MASK
# A store to a code page with at most this many blocks tests each (no PageIndex).
_SCAN_HOLDERS = 4
# A jump cache page flush with more pcs to clear than this empties the whole cache.
_JMP_CACHE_CLEAR_ALL = 16


def pages_of(ranges: Sequence[tuple[int, int]]) -> set[int]:
    """The guest pages that [start, end) ranges touch."""
    if len(ranges) == 1:  # (most blocks: one range on one page, asked per install)
        ((start, end),) = ranges
        first = start & _PAGE_MASK
        if start < end and end - first <= abi.PAGE_SIZE:
            return {first}
    return {p for start, end in ranges for p in range(page_floor(start), end, abi.PAGE_SIZE)}


def _discard(links: list[tuple[CompiledCode, int]], link: tuple[CompiledCode, int]) -> None:
    """Remove ``link`` from a block's ``incoming`` (if there)."""
    try:
        links.remove(link)
    except ValueError:
        pass


def _write_pointer(address: int, value: int) -> None:
    ctypes.c_uint64.from_address(address).value = value


class CodeAddressing(Protocol):
    """How guest code is addressed when the MMU translates it (system mode): blocks are
    then keyed by (pc, flags, physical pc) and their pages tracked physically. User
    mode has none: virtual == physical and the flags are constant."""

    def fetch(self, addr: int, size: int, flags: int) -> bytes:
        """Guest code bytes fetched as a block translated for ``flags`` would (its
        privilege's fetch MMU index); raises GuestFault."""
        ...

    def phys_addr(self, vaddr: int, flags: int) -> int:
        """The physical address code at ``vaddr`` is fetched from under ``flags``;
        raises GuestFault when it cannot be fetched."""
        ...

    def fetch_mmu_index(self, flags: int) -> int:
        """The MMU index (TLB table) fetches of code translated for ``flags`` use."""
        ...

    def code_reader(self, flags: int) -> Callable[[int, int], bytes]:
        """``fetch`` at ``flags`` for one translation (it may remember what it found
        while the guest's mappings cannot change)."""
        ...


_SLOTS_PER_ENTRY = abi.JMP_CACHE_ENTRY_SIZE // 8
assert abi.JMP_CACHE_INVALID_PC == 0xFFFF_FFFF_FFFF_FFFF  # jmp_cache_flush memsets 0xFF


class TbCache:
    """All translations of one guest address space.

    Args:
        arch: the guest architecture, which translates guest code.
        lowering: IR -> LLVM IR for this CPU layout and helper set.
        jit: the LLVM engine.
        fetch: reads guest code (the softmmu's fetch).
        max_region_blocks: how many blocks one translation miss may compile together.
        code_cache: where compiled regions persist across runs (None: no disk cache).
        flags: the translation flags (``arch.tb_flags``) lookups use when given none
            (user mode: the only flags there are); the code cache holds blocks of
            these flags only.
        addressing: system mode's code addressing (None: user mode, identity).
    """

    def __init__(self, arch: GuestArch, lowering: Lowering, jit: JitEngine,
                 fetch: Callable[[int, int], bytes], log: Log | None = None,
                 max_region_blocks: int = 8, code_cache: CodeCache | None = None,
                 flags: int = 0, addressing: CodeAddressing | None = None) -> None:
        self.arch = arch
        self.flags = flags
        self.addressing = addressing
        self.lowering = lowering
        self.jit = jit
        self.fetch = fetch
        self.log = log or Log()
        self.max_region_blocks = max_region_blocks
        self.code_cache = code_cache
        # The baseline tier (copy-and-patch into an arena), the default first tier;
        # None: every block goes through LLVM (FastISel).
        self.baseline: BaselineCodegen | None = None
        # Baseline blocks stored by earlier runs of the program (None: not kept).
        self.baseline_cache: BaselineBlockCache | None = None
        self.by_pc: dict[int, TranslationBlock] = {}  # cheap blocks
        self.regions: dict[int, HotRegion] = {}  # installed regions, by head pc
        self.region_retired: list[Callable[[HotRegion], None]] = []
        self.by_slot: dict[int, tuple[CompiledCode, int]] = {}
        self.by_page: dict[int, set[TranslationBlock]] = {}
        # Per code page, the sorted byte ranges of its blocks (made when a store first
        # asks, dropped when a block is added to the page or its last one goes): a
        # store to a code page finds the blocks it overlaps by bisection.
        self._page_spans: dict[int, PageIndex] = {}
        self.pending_release: list[CompiledModule] = []
        self.pending_chunks: list[TranslationBlock] = []  # invalidated baseline blocks
        # The content memo (see _memo_take). Per (pc, flags) whose baseline block was
        # invalidated by a write (invalidate_range): its memo lookups that missed in a
        # row (-1: given up, MEMO_GIVE_UP). The guest bytes of valid blocks emitted
        # at those (recorded at emission). Invalidated ones kept, by (pc, flags),
        # oldest first (the dict's order: least recently hit first), and as a set.
        self._rewritten: dict[tuple[int, int], int] = {}
        self._memo_bytes: dict[TranslationBlock, bytes] = {}
        self._memo: dict[tuple[int, int], list[tuple[bytes, TranslationBlock]]] = {}
        self._memo_held: set[TranslationBlock] = set()
        # Debugger breakpoints (guest pcs): no block is translated across one or
        # starting at one, so reaching one always returns to the run loop (see
        # ``RunLoop.breakpoints``). The code cache is not used while any is set.
        self.breakpoints: frozenset[int] = frozenset()
        self.new_code_page: list[Callable[[int], None]] = []  # a page gets its first block
        # System mode: code linked to that runs onto other pages, by those virtual
        # pages (see link): their TLB flushes unlink it.
        self._crossing_linked: dict[int, set[CompiledCode]] = {}
        self.code_page_freed: list[Callable[[int], None]] = []  # a page's last block went
        # Guest threads (user mode) share this cache, each on its own host thread:
        # translating, linking, invalidating and installing regions happen under
        # ``lock`` (QEMU's mmap_lock + tb_lock). Run loops hold it whenever they are not
        # in native code; ``in_native`` counts those that are, and code is released only
        # when it is 0 (no thread can be running it). Re-entrant: a slow path's
        # invalidation may come from the thread that already holds it.
        self.lock = threading.RLock()
        self.in_native = 0
        # One jump cache per CPU (their entries name code of this cache; invalidation
        # clears every CPU's). ``jmp_cache`` is the first CPU's.
        self.jmp_caches: list[ctypes.Array] = []
        self.jmp_cache = self.new_jump_cache()
        self.jmp_cache_address = ctypes.addressof(self.jmp_cache)
        # Behind the jump caches, a native table of every block (see
        # runtime/lookup_table.py): a jump cache miss looks there before returning
        # LOOKUP. System mode keys code by physical pc too, which the table cannot
        # check: there an entry holds only for the generation (the TLB contents) it
        # was written in, and ``get`` writes it again for the current one.
        self.lookup_table = NativeLookup(track_pages=addressing is not None)
        self._table_reserved = False  # (see _load_baseline)
        self.native_lookup = True
        self._names: dict[str, int] = {}
        self._pretranslated: Block | None = None  # (the baseline declined it)
        self._accessors: set[str] = set()
        self._accessor_modules: list[CompiledModule] = []
        self.stats = {"translated": 0, "links": 0, "unlinks": 0, "invalidated": 0,
                      "released_modules": 0, "insns_translated": 0, "regions_installed": 0,
                      "regions_retired": 0,
                      # Translation misses served by the frontend, lowering and LLVM (not
                      # the code cache): guest instructions and seconds spent.
                      "compiled_insns": 0, "compile_seconds": 0.0,
                      "cache_loads": 0, "cache_load_seconds": 0.0,
                      "baseline_blocks": 0, "llvm_blocks": 0, "arena_flushes": 0,
                      "memo_hits": 0}

    @property
    def lookup_cell(self) -> int:
        """What a CPU's ``tb_table`` field holds: the address of the lookup table's cell
        (with ``native_lookup`` off: of one that stays empty)."""
        table = self.lookup_table
        return table.cell_address if self.native_lookup else table.empty_cell_address

    def lookup_counters(self) -> dict[str, int]:
        """The native probe's counters: jump cache misses it served (hits), found nothing
        for (misses: LOOKUP exits follow), or took back (a concurrent invalidation)."""
        table = self.lookup_table
        return {"hits": table.hits, "misses": table.misses, "retracted": table.retracted,
                "entries": len(table)}

    # -- lookup and translation ------------------------------------------------------------
    def phys_pc(self, pc: int, flags: int) -> int | None:
        """The physical address of pc under ``flags`` (None in user mode, where it is
        pc); raises GuestFault when pc cannot be fetched."""
        return None if self.addressing is None else self.addressing.phys_addr(pc, flags)

    def lookup(self, pc: int, flags: int | None = None,
               phys_pc: int | None = None) -> TranslationBlock | None:
        """The cheap-tier block at pc for ``flags`` (default: :attr:`flags`) and, in
        system mode, physical pc ``phys_pc`` (None: any)."""
        flags = self.flags if flags is None else flags
        tb = self.by_pc.get(pc)
        while tb is not None and not (tb.matches(flags, phys_pc) and (
                phys_pc is None or tb.phys_ranges is None or len(tb.phys_ranges) == 1
                or self._other_pages_mapped(tb, flags))):
            tb = tb.variant
        return tb

    def best(self, pc: int, flags: int | None = None,
             phys_pc: int | None = None) -> CompiledCode | None:
        """The code to run at pc: its hot region if one is installed, else its block."""
        flags = self.flags if flags is None else flags
        region = self.regions.get(pc)
        if region is not None and region.matches(flags, phys_pc) and (
                phys_pc is None or self._other_pages_mapped(region, flags)):
            return region
        return self.lookup(pc, flags, phys_pc)

    def _other_pages_mapped(self, code: CompiledCode, flags: int) -> bool:
        """Whether the guest bytes of ``code`` beyond its first virtual page are still
        fetched from the physical pages they were translated from (QEMU's
        tb_lookup_cmp, which compares a TB's second page through get_page_addr_code):
        the head's physical pc alone does not tell a block that runs onto a page whose
        mapping changed since. A page that cannot be fetched now does not match."""
        phys = code.phys_ranges
        if self.addressing is None or phys is None or len(phys) == 1:
            return True
        head_page = page_floor(code.pc)
        i = 0
        for start, end in code.ranges:  # (split page by page, as _phys_ranges did)
            pos = start
            while pos < end:
                page = page_floor(pos)
                if page != head_page:
                    try:
                        if self.addressing.phys_addr(pos, flags) != phys[i][0]:
                            return False
                    except GuestFault:
                        return False
                pos = min(end, page + abi.PAGE_SIZE)
                i += 1
        return True

    def get(self, pc: int, flags: int | None = None) -> CompiledCode:
        """The code at pc for ``flags`` (default: :attr:`flags`), translating a region
        if needed (GuestFault if pc cannot be fetched)."""
        flags = self.flags if flags is None else flags
        if self.addressing is None:
            # (user mode, where the run loop asks at every entry: best() inlined, with
            # no physical pc to compare)
            region = self.regions.get(pc)
            if region is not None and region.flags == flags:
                return region
            tb = self.by_pc.get(pc)
            while tb is not None and tb.flags != flags:
                tb = tb.variant
            return tb if tb is not None else self.translate_region(pc, flags)
        phys = self.phys_pc(pc, flags)
        code = self.best(pc, flags, phys)
        if code is None:
            return self.translate_region(pc, flags)
        if phys is not None and self.native_lookup:
            # System mode: (pc, flags) is tb under the current mapping; the entry of
            # an earlier generation (or of another physical page) is stale.
            self.lookup_table.put(pc, flags, code.entry, self._code_page(code))
        return code

    def _code_page(self, code: CompiledCode) -> int:
        """The native table's code page tag of ``code`` (see NativeLookup.put): its
        physical page and fetch MMU index when all its guest bytes are on that page,
        else NO_CODE_PAGE (its entry then holds for one generation only: QEMU checks a
        block's second page too, and a region's members may be on other pages)."""
        if self.addressing is None or code.phys_pc is None:
            return NO_CODE_PAGE
        page = page_floor(code.phys_pc)
        for start, end in code.phys_ranges or ():
            if start < page or end > page + abi.PAGE_SIZE:
                return NO_CODE_PAGE
        return page | self.addressing.fetch_mmu_index(code.flags)

    def _fetch_for(self, flags: int) -> Callable[[int, int], bytes]:
        if self.addressing is None:
            return self.fetch
        return self.addressing.code_reader(flags)

    def _target(self, src: CompiledCode, dest: int) -> CompiledCode | None:
        """What src's direct exit to ``dest`` may be linked to: code at dest for src's
        flags (and, in system mode, dest's physical page now)."""
        phys = None
        if self.addressing is not None:
            if dest not in self.by_pc and dest not in self.regions:
                return None  # (no code at dest: no need to translate its address)
            try:
                phys = self.addressing.phys_addr(dest, src.flags)
            except GuestFault:
                return None
        return self.best(dest, src.flags, phys)

    def _unique(self, name: str) -> str:
        # Blocks retranslated after invalidation get a new symbol name.
        count = self._names.get(name, 0)
        self._names[name] = count + 1
        return name if count == 0 else f"{name}.{count}"

    def translate_region(self, pc: int, flags: int | None = None) -> TranslationBlock:
        flags = self.flags if flags is None else flags
        start = time.perf_counter()
        cached = (self.code_cache is not None and flags == self.flags
                  and self.addressing is None and not self.breakpoints)
        tbs = self._load_cached(pc) if cached and self.baseline is None else None
        linked = False  # (stored baseline blocks come linked: _install_placed)
        if tbs is None and self._memo and not self.breakpoints:
            tbs = self._memo_take(pc, flags)
        if tbs is None and self.baseline_cache is not None and not self.breakpoints:
            tbs = self._load_baseline(pc, flags)
            linked = tbs is not None
        if tbs is None and cached and self.baseline is not None \
                and self.code_cache.has_region(pc):
            # A block the baseline declined (too many locals: AArch64's vector FP
            # blocks) was compiled by LLVM and stored last run: load it rather than
            # translating and compiling it again on every warm start.
            tbs = self._load_cached(pc)
        if tbs is None:
            tbs = None
            if self.baseline is not None:
                tbs = self._translate_baseline(pc, flags)
            if tbs is None:
                tbs = self._translate_and_compile(pc, flags)
                self.stats["llvm_blocks"] += len(tbs)
            self.stats["compiled_insns"] += sum(tb.n_insns for tb in tbs)
            self.stats["compile_seconds"] += time.perf_counter() - start
        else:
            self.stats["cache_loads"] += 1
            self.stats["cache_load_seconds"] += time.perf_counter() - start
        for tb in () if linked else tbs:
            for n, dest in tb.direct_targets.items():
                target = self._target(tb, dest)
                if target is not None:
                    self.link(tb, n, target)
        return tbs[0]

    def _load_cached(self, pc: int) -> list[TranslationBlock] | None:
        region = self.code_cache.lookup(pc, self.fetch)
        if region is None:
            return None
        # Cached regions starting on the same page come along, linked as one library:
        # they ran last time, and a link costs several times what one more object in
        # it does (warm start of bench/programs/startup: 490 links -> ~70).
        batch = [region]
        names = {m.name for m in region.blocks}
        for other in self.code_cache.lookup_page(
                page_floor(pc), self.fetch, skip=lambda p: p == pc or p in self.by_pc):
            other_names = {m.name for m in other.blocks}
            if not other_names & names:  # symbols must not clash within one library
                batch.append(other)
                names |= other_names
        self._compile_accessors({a for r in batch for a in r.accessors})
        metas = [m for r in batch for m in r.blocks]
        exports = [e for meta in metas for e in self._symbols(meta)]
        module = self.jit.load_object([r.object for r in batch], exports,
                                      [m.name for m in region.blocks])
        # Blocks translated meanwhile by other misses keep their code; each pc once.
        fresh: dict[int, BlockMeta] = {}
        for m in metas:
            if (m.pc == pc or m.pc not in self.by_pc) and m.pc not in fresh:
                fresh[m.pc] = m
        return self._install(fresh.values(), module, self.flags)

    def _stop_at_breakpoints(self, fetch: Callable[[int, int], bytes], start: int
                             ) -> Callable[[int, int], bytes]:
        """``fetch`` for the block at ``start`` that ends the block before any other
        breakpoint: the translator fetches each instruction at its address, and a fetch
        fault after the first instruction ends the block there."""
        breakpoints = self.breakpoints

        def fetch_until_breakpoint(addr: int, size: int) -> bytes:
            if addr != start and addr in breakpoints:
                raise GuestFault(MemFault(addr, Access.FETCH, FaultKind.UNMAPPED))
            return fetch(addr, size)
        return fetch_until_breakpoint

    def _translate(self, pc: int, flags: int, fetch: Callable[[int, int], bytes]) -> Block:
        if self.breakpoints:
            fetch = self._stop_at_breakpoints(fetch, pc)
        return self.arch.translate(pc, flags, fetch, self.log)

    def translate_single(self, pc: int, flags: int) -> TranslationBlock:
        """Compile the one guest instruction at pc as a block of its own that is never
        looked up, linked or cached: its exits all return to the run loop (the caller
        empties the jump cache), so entering it executes exactly one instruction
        (single-stepping). Hand it back to :meth:`discard_single` after running it.
        GuestFault if pc cannot be fetched."""
        fetch = self._fetch_for(flags)

        def first_instruction_only(addr: int, size: int) -> bytes:
            if addr != pc:
                raise GuestFault(MemFault(addr, Access.FETCH, FaultKind.UNMAPPED))
            return fetch(addr, size)
        block = self.arch.translate(pc, flags, first_instruction_only, self.log)
        block.name = self._unique(block.name) + ".step"
        meta = self._meta(block)
        text = self.lowering.lower_module([block], self.jit.triple)
        self._compile_accessors(set(self.lowering.accessors_used))
        module = self.jit.compile(text, self._symbols(meta), [meta.name])
        module.object = None
        slots = {n: module.addresses[slot_symbol(meta.name, n)] for n in meta.slots}
        return TranslationBlock(pc, meta.name, [tuple(r) for r in meta.ranges], module,
                                module.addresses[meta.name], slots, dict(meta.targets),
                                meta.n_insns, flags)

    def discard_single(self, tb: TranslationBlock) -> None:
        """Release a block of :meth:`translate_single` (at the next safe point)."""
        tb.valid = False
        self.pending_release.append(tb.module)

    def _translate_baseline(self, pc: int, flags: int) -> list[TranslationBlock] | None:
        """The block at pc, and (up to BASELINE_REGION_BLOCKS) the blocks its direct
        exits reach, through the baseline tier; None if the block at pc needs the LLVM
        tier (speculative blocks it cannot emit are left for their own miss)."""
        baseline = self.baseline
        blocks = []
        limit = min(self.max_region_blocks, BASELINE_REGION_BLOCKS)
        fetch = self._fetch_for(flags)  # (also what _install_baseline reads again)
        for block in self._translate_ahead(pc, flags, limit, fetch):
            try:
                blocks.append((block, baseline.prepare(block)))
            except Unsupported as exc:
                if self.log.enabled("tier"):
                    self.log.write(f"baseline: {exc}: LLVM tier\n")
                if block.pc == pc:
                    self._pretranslated = block
                    return None
                continue
        tbs = []
        flushed = False
        for block, bounds in blocks:
            if self.lookup(block.pc, flags) is not None and block.pc != pc:
                continue
            block.name = self._unique(block.name)
            if self.log.enabled("op"):
                self.log.write(f"OP:\n{block}")
            if flushed:  # (constant pools went with the arena)
                bounds = baseline.prepare(block)
            try:
                emitted = baseline.emit(block, bounds)
            except ArenaFull:
                if self.in_native:
                    # Another guest thread runs native code, maybe in the arena: it
                    # cannot be reset under it. This block goes to the LLVM tier; the
                    # arena is flushed by a later translation with no thread in native code.
                    return tbs or None
                self.flush_arena()
                flushed = True
                tbs = []  # (flushed with everything else)
                # A block larger than the arena raises ArenaFull again: an error.
                emitted = baseline.emit(block, baseline.prepare(block))
            if self.log.enabled("out_asm"):
                self.log.write(baseline.disassemble(block.name, emitted))
            if self.jit.perf_map:
                self.jit.perf_map_entry(emitted.entry, emitted.size, block.name)
            self.stats["baseline_blocks"] += 1
            tbs.append(self._install_baseline(block, emitted, flags, fetch))
        if not tbs or tbs[0].pc != pc:  # (pc's block was flushed: emit it again)
            return self._translate_baseline(pc, flags)
        return tbs

    def flush_arena(self) -> None:
        """The baseline arena is full: drop every translation and start again (QEMU's
        tb_flush). Only at a safe point (no native frame running)."""
        if self.baseline_cache is not None:
            self.baseline_cache.note_arena_reset()  # (before: nothing to copy out)
        self.flush()
        self._memo_forget()  # (its chunks go with the arena)
        self.baseline.arena.reset()
        self.baseline.reset()
        self.stats["arena_flushes"] += 1
        if self.log.enabled("tier"):
            self.log.write("baseline: code arena full, translations flushed\n")

    def _translate_ahead(self, pc: int, flags: int, limit: int | None = None,
                         fetch: Callable[[int, int], bytes] | None = None) -> list[Block]:
        """The block at pc and, ahead of time, the blocks its direct exits reach,
        breadth first, up to ``limit`` (default ``max_region_blocks``) on at most
        MAX_REGION_PAGES pages (speculative translations that fail are skipped; a
        failure at pc is the guest's), read through ``fetch`` (default: a new
        :meth:`_fetch_for`)."""
        if fetch is None:
            fetch = self._fetch_for(flags)
        first, self._pretranslated = self._pretranslated, None
        if first is None or first.pc != pc:
            first = self._translate(pc, flags, fetch)
        blocks = [first]
        pages = pages_of(blocks[0].guest_ranges)
        seen = {pc}
        queue = list(blocks[0].direct_targets())
        limit = self.max_region_blocks if limit is None else limit
        while queue and len(blocks) < limit:
            target = queue.pop(0)
            if (target in seen or target in self.breakpoints
                    or self.lookup(target, flags) is not None):
                continue
            seen.add(target)
            if len(pages | {page_floor(target)}) > MAX_REGION_PAGES:
                continue  # a region spans few pages: a write to one invalidates it all
            try:
                block = self._translate(target, flags, fetch)
            except Exception:  # noqa: BLE001 - speculative: the guest may never go there
                continue
            block_pages = pages_of(block.guest_ranges)
            if len(pages | block_pages) > MAX_REGION_PAGES:
                continue  # (it ends on yet another page)
            pages |= block_pages
            blocks.append(block)
            queue.extend(block.direct_targets())
        return blocks

    def _translate_and_compile(self, pc: int, flags: int) -> list[TranslationBlock]:
        blocks = self._translate_ahead(pc, flags)
        for block in blocks:
            block.name = self._unique(block.name)
            if self.log.enabled("op"):
                self.log.write(f"OP:\n{block}")
        metas = tuple(self._meta(b) for b in blocks)
        text = self.lowering.lower_module(blocks, self.jit.triple)
        accessors = set(self.lowering.accessors_used)
        self._compile_accessors(accessors)
        exports = [e for meta in metas for e in self._symbols(meta)]
        module = self.jit.compile(text, exports, [m.name for m in metas])
        if (self.code_cache is not None and module.object is not None
                and flags == self.flags and self.addressing is None
                and not self.breakpoints):
            self.code_cache.store(metas, accessors, module.object, self.fetch)
        module.object = None
        return self._install(metas, module, flags)

    @staticmethod
    def _meta(block: Block) -> BlockMeta:
        slots = tuple(sorted({op.args[0] for op in block.ops if op.name == "goto_tb"}))
        targets = tuple((op.args[0], op.args[1]) for op in block.ops if op.name == "goto_tb")
        return BlockMeta(block.pc, block.name, tuple(block.guest_ranges), slots, targets,
                         block.n_insns, block.return_pc, has_indirect_exit(block))

    def _symbols(self, meta: BlockMeta) -> list[str]:
        profile = []
        if self.lowering.hot_threshold:
            profile.append(counter_symbol(meta.name))
            if meta.indirect:
                profile.append(target_symbol(meta.name))
        return [meta.name, *profile] + [slot_symbol(meta.name, n) for n in meta.slots]

    def _install(self, metas: Iterable[BlockMeta], module: CompiledModule, flags: int
                 ) -> list[TranslationBlock]:
        tbs = []
        for m in metas:
            slots = {n: module.addresses[slot_symbol(m.name, n)] for n in m.slots}
            ranges = [tuple(r) for r in m.ranges]
            phys_pc, phys_ranges = None, None
            if self.addressing is not None:
                phys_pc = self.addressing.phys_addr(m.pc, flags)
                phys_ranges = self._phys_ranges(ranges, flags)
            tb = TranslationBlock(m.pc, m.name, ranges, module,
                                  module.addresses[m.name], slots, dict(m.targets), m.n_insns,
                                  flags, phys_pc, phys_ranges, return_pc=m.return_pc)
            if self.lowering.hot_threshold:
                tb.counter = module.addresses[counter_symbol(m.name)]
                tb.counter_start = self.lowering.hot_threshold
                if m.indirect:
                    tb.target_cell = module.addresses[target_symbol(m.name)]
            self._insert(tb)
            tbs.append(tb)
        module.live_blocks = len(tbs)
        if not tbs:
            self.pending_release.append(module)
        return tbs

    def _load_baseline(self, pc: int, flags: int) -> list[TranslationBlock] | None:
        """The stored baseline block at pc whose guest bytes are unchanged, and the
        stored ones placed with it (its page's, the first time, and those its direct
        exits reach: BaselineBlockCache.select), placed in one piece and installed
        without the frontend or emission; None if pc's is not stored."""
        cache = self.baseline_cache
        by_pc, lookup = self.by_pc, self.lookup
        numbers = cache.select(pc, flags, self._fetch_for(flags),
                               lambda dest: dest in by_pc and lookup(dest, flags) is not None,
                               MAX_STORED_AHEAD)
        if not numbers:
            return None
        if not self._table_reserved:
            # (the file's blocks are mostly placed: the native table sized for them once)
            self._table_reserved = True
            self.lookup_table.reserve(cache.stats["file_blocks"])
        try:
            placed = cache.place(numbers)
        except ArenaFull:
            if self.in_native:
                return None  # (emission copes: see there)
            self.flush_arena()
            placed = cache.place(numbers[:1])  # (the others' own misses place them)
        if not placed or placed[0].pc != pc:
            return None
        return self._install_placed(placed, flags)

    def _install_placed(self, placed: list[PlacedBlock], flags: int
                        ) -> list[TranslationBlock]:
        """Install stored blocks placed together: what :meth:`_install_emitted` does
        for each, with what they share found once — in system mode, the physical page
        of their guest page (one MMU lookup, not two per block) and its code-page tag —
        and :meth:`_insert` inlined (their pcs have no block for ``flags`` yet, mostly:
        ``select`` leaves installed pcs out), their native-table entries put at once."""
        addressing = self.addressing
        generation = self.baseline.arena.generation
        hot = self.lowering.hot_threshold
        perf_map = self.jit.perf_map
        names = self._names
        by_pc, by_slot, by_page = self.by_pc, self.by_slot, self.by_page
        page_spans, regions = self._page_spans, self.regions
        native = self.native_lookup
        page_size = abi.PAGE_SIZE
        mmu_index = addressing.fetch_mmu_index(flags) if addressing is not None else 0
        phys_pages: dict[int, int] = {}  # guest page -> physical page (system mode)
        puts: list[tuple[int, int, int]] = []  # (pc, entry, code page): the native table's
        tbs = []
        insns = 0
        for block in placed:
            pc = block.pc
            # (_unique: a block placed again after invalidation gets a new name)
            name = f"tb_{pc:x}"
            count = names.get(name, 0)
            names[name] = count + 1
            if count:
                name = f"{name}.{count}"
            if perf_map:
                self.jit.perf_map_entry(block.entry, block.size, name)
            ranges = block.ranges
            page = pc & _PAGE_MASK
            start, end = ranges[0]
            one_page = len(ranges) == 1 and page <= start and end <= page + page_size
            phys_pc = phys_ranges = None
            code_page: int | None = NO_CODE_PAGE
            if addressing is not None:
                if one_page:
                    phys_page = phys_pages.get(page)
                    if phys_page is None:  # (looked up at pc: the check is pc's)
                        phys_page = phys_pages[page] = \
                            addressing.phys_addr(pc, flags) - (pc - page)
                    phys_pc = phys_page + (pc - page)
                    phys_ranges = ((phys_page + (start - page), phys_page + (end - page)),)
                    code_page = phys_page | mmu_index
                    page = phys_page  # (code pages are tracked physically)
                else:  # (its bytes are on two pages)
                    phys_pc = addressing.phys_addr(pc, flags)
                    phys_ranges = self._phys_ranges(ranges, flags)
                    code_page = None
            code = ArenaCode(block.size, generation)
            code.live_blocks = 1
            tb = TranslationBlock(pc, name, ranges, code, block.entry, block.slots,
                                  block.exits, block.n_insns, flags, phys_pc, phys_ranges,
                                  return_pc=block.return_pc)
            if block.counter:
                tb.counter = block.counter
                tb.counter_start = hot
                tb.target_cell = block.targets
            # -- _insert --
            if pc in by_pc:  # (another variant: flags or physical page)
                old = self.lookup(pc, flags, phys_pc)
                if old is not None:
                    self.invalidate(old)
                tb.variant = by_pc.get(pc)
            by_pc[pc] = tb
            for n, slot in block.slots.items():
                by_slot[slot] = (tb, n)
            for code_at in (page,) if one_page else tb.pages():
                if page_spans:
                    page_spans.pop(code_at, None)
                holders = by_page.get(code_at)
                if not holders:
                    if holders is None:
                        holders = by_page[code_at] = set()
                    for hook in self.new_code_page:
                        hook(code_at)
                holders.add(tb)
            if native:
                region = regions.get(pc)
                if region is None or region.flags != flags:
                    puts.append((pc, block.entry, self._code_page(tb)
                                 if code_page is None else code_page))
            insns += block.n_insns
            tbs.append(tb)
        if puts:
            self.lookup_table.put_many(flags, puts)
        self.stats["translated"] += len(tbs)
        self.stats["insns_translated"] += insns
        # Their direct exits linked, as translate_region links others': those to one
        # another linked by place() already (recorded here, as link() records them),
        # the others to code at their destination, at the physical page just looked up
        # when it is one of these (it is fetchable: placed), else through _target's
        # MMU lookup.
        best, link = self.best, self.link
        placed_pcs = {tb.pc for tb in tbs}
        links = 0
        for block, tb in zip(placed, tbs, strict=True):
            exits = tb.direct_targets
            if block.linked:
                for n, index in block.linked:
                    dst = tbs[index]
                    tb.linked[n] = dst
                    dst.incoming.append((tb, n))
                links += len(block.linked)
                if len(block.linked) == len(exits):
                    continue
                exits = {n: dest for n, dest in exits.items() if n not in tb.linked}
            for n, dest in exits.items():
                if addressing is None:
                    target = best(dest, flags)
                else:
                    page = dest & _PAGE_MASK
                    phys_page = phys_pages.get(page) if dest in placed_pcs else None
                    target = self._target(tb, dest) if phys_page is None \
                        else best(dest, flags, phys_page + (dest - page))
                if target is not None:
                    link(tb, n, target)
        self.stats["links"] += links
        return tbs

    def _install_baseline(self, block: Block, emitted: EmittedBlock, flags: int,
                          fetch: Callable[[int, int], bytes]) -> TranslationBlock:
        """Install a baseline block: what :meth:`_install` does for a compiled module,
        straight from the emitted addresses (no metadata record, no symbol names)."""
        targets = emitted.exits  # (goto_tb slot -> destination, found by prepare)
        tb = self._install_emitted(block.pc, block.name, block.guest_ranges, targets,
                                   block.n_insns, block.return_pc, emitted, flags)
        if self.breakpoints:
            return tb
        cache = self.baseline_cache
        store = cache is not None and cache.stores(block.pc, flags)
        memo = self._rewritten.get((block.pc, flags), -1) >= 0
        if store or memo:
            # (the bytes now, through the translation's reader — its pages found
            # already —: stored with the code, and what it stands for even if it is
            # invalidated and they change later)
            try:
                guest = b"".join([fetch(s, e - s) for s, e in block.guest_ranges])
            except GuestFault:
                return tb  # (unreadable now: not stored; cannot be, just translated)
            if store:
                cache.note_emitted(tb, emitted.size, wide_values(block), guest)
            if memo:
                self._memo_bytes[tb] = guest
        return tb

    def _install_emitted(self, pc: int, name: str, ranges: list[tuple[int, int]],
                         targets: dict[int, int], n_insns: int, return_pc: int | None,
                         emitted: EmittedBlock, flags: int) -> TranslationBlock:
        phys_pc = phys_ranges = None
        if self.addressing is not None:
            phys_pc = self.addressing.phys_addr(pc, flags)
            phys_ranges = self._phys_ranges(ranges, flags)
        code = ArenaCode(emitted.size, self.baseline.arena.generation)
        code.live_blocks = 1
        tb = TranslationBlock(pc, name, ranges, code, emitted.entry, emitted.slots,
                              targets, n_insns, flags, phys_pc, phys_ranges,
                              return_pc=return_pc)
        if emitted.counter:
            tb.counter = emitted.counter
            tb.counter_start = self.lowering.hot_threshold
            tb.target_cell = emitted.targets
        self._insert(tb)
        return tb

    def _phys_ranges(self, ranges: list[tuple[int, int]], flags: int
                     ) -> list[tuple[int, int]]:
        """``ranges`` (virtual, already fetched) as physical ranges, page by page."""
        out = []
        for start, end in ranges:
            pos = start
            while pos < end:
                stop = min(end, page_floor(pos) + abi.PAGE_SIZE)
                phys = self.addressing.phys_addr(pos, flags)
                out.append((phys, phys + stop - pos))
                pos = stop
        return out

    def install_region(self, name: str, members: list[TranslationBlock], obj: bytes,
                       exits: dict[int, int], accessors: set[str]) -> HotRegion:
        """Link a compiled region (``members[0]`` is its head) and swap it in: the exit
        slots and jump-cache entry that led to the head now lead to the region, and so
        will later links and lookups of the head's pc. Only call at a safe point."""
        self._compile_accessors(accessors)
        slot_names = {n: slot_symbol(name, n) for n in exits.values()}
        module = self.jit.load_object(obj, [name, *slot_names.values()], [name])
        head = members[0]
        ranges = sorted({r for m in members for r in m.ranges})
        region = HotRegion(head.pc, name, ranges, module, module.addresses[name],
                           {n: module.addresses[s] for n, s in slot_names.items()},
                           {n: dest for dest, n in exits.items()},
                           sum(m.n_insns for m in members), head.flags, head.phys_pc,
                           sorted({r for m in members for r in m.phys_ranges})
                           if head.phys_ranges is not None else None,
                           members=tuple(members))
        module.live_blocks = 1
        old = self.regions.get(head.pc)
        if old is not None:
            self.invalidate(old)
        self.regions[head.pc] = region
        for m in members:
            m.regions = (*m.regions, region)
        for n, slot in region.slots.items():
            self.by_slot[slot] = (region, n)
        for src, n in list(head.incoming):
            self.link(src, n, region)
        if self.native_lookup:
            self.lookup_table.put(region.pc, region.flags, region.entry,
                                   self._code_page(region))
        i = abi.jmp_cache_index(head.pc) * _SLOTS_PER_ENTRY
        for cache in self.jmp_caches:
            if cache[i] == head.pc and cache[i + 2] == head.flags:
                cache[i + 1] = region.entry
        for n, dest in region.direct_targets.items():
            target = self._target(region, dest)
            if target is not None:
                self.link(region, n, target)
        self.stats["regions_installed"] += 1
        return region

    def _compile_accessors(self, names: set[str]) -> None:
        """Compile the out-of-line memory accessors a module needs, once each."""
        missing = sorted(names - self._accessors)
        if not missing:
            return
        if self.code_cache is not None:
            # One cached object per accessor (they are the same in every process of
            # this translator), linked together; compile only those not cached yet.
            cached = {n: self.code_cache.lookup_accessor(n) for n in missing}
            objects = [obj for obj in cached.values() if obj is not None]
            if objects:
                have = [n for n, obj in cached.items() if obj is not None]
                module = self.jit.load_object(objects, have, have)
                self._add_accessors(have, module)
            missing = [n for n, obj in cached.items() if obj is None]
            for name in missing:
                module = self.jit.compile(self.lowering.accessor_module([name], self.jit.triple),
                                          [name], [name])
                self.code_cache.store_accessor(name, module.object)
                module.object = None
                self._add_accessors([name], module)
            return
        module = self.jit.compile(self.lowering.accessor_module(missing, self.jit.triple),
                                  missing, missing)
        module.object = None
        self._add_accessors(missing, module)

    def _add_accessors(self, names: list[str], module: CompiledModule) -> None:
        self.jit.add_imports({n: module.addresses[n] for n in names})
        self._accessors.update(names)
        self._accessor_modules.append(module)

    def _insert(self, tb: TranslationBlock, code_page: int | None = None) -> None:
        """Make ``tb`` the block at its pc (``code_page``: its native-table tag when
        known, see :meth:`_code_page`)."""
        old = self.lookup(tb.pc, tb.flags, tb.phys_pc)
        if old is not None:
            self.invalidate(old)
        tb.variant = self.by_pc.get(tb.pc)
        self.by_pc[tb.pc] = tb
        for n, slot in tb.slots.items():
            self.by_slot[slot] = (tb, n)
        by_page = self.by_page
        page_spans = self._page_spans
        for page in tb.pages():
            if page_spans:
                page_spans.pop(page, None)
            holders = by_page.get(page)
            if not holders:
                if holders is None:
                    holders = by_page[page] = set()
                for hook in self.new_code_page:
                    hook(page)
            holders.add(tb)
        if self.native_lookup:
            region = self.regions.get(tb.pc)
            if region is None or region.flags != tb.flags:
                self.lookup_table.put(tb.pc, tb.flags, tb.entry, self._code_page(tb)
                                      if code_page is None else code_page)
        self.stats["translated"] += 1
        self.stats["insns_translated"] += tb.n_insns

    # -- chaining --------------------------------------------------------------------------
    def slot_owner(self, slot_address: int) -> tuple[CompiledCode, int] | None:
        return self.by_slot.get(slot_address)

    def link(self, src: CompiledCode, n: int, dst: CompiledCode) -> None:
        """Patch src's exit n to tail-jump into dst."""
        if (not (src.valid and dst.valid) or src.direct_targets.get(n) != dst.pc
                or src.flags != dst.flags):
            return
        if self.addressing is not None and self._code_page(dst) == NO_CODE_PAGE:
            # System mode: dst's bytes leave its first page, whose mapping a link does
            # not check (goto_tb stays on the source's page). The link is undone by a
            # TLB flush of another of its pages (or a full one), after which a lookup
            # checks them again. (QEMU's tb_find declines such links instead: here
            # that would cost a CHAIN exit to Python at every execution.)
            head = page_floor(dst.pc)
            for page in pages_of(dst.ranges):
                if page != head:
                    self._crossing_linked.setdefault(page, set()).add(dst)
        old = src.linked.get(n)
        if old is dst:
            return
        if old is not None:
            _discard(old.incoming, (src, n))
        value = dst.entry
        if type(src.module) is ArenaCode:  # a baseline block: body to body, or tagged
            body = type(dst.module) is ArenaCode
            value = self.baseline.chain_value(dst.entry, body)
            jump = self.baseline.jump_of(src.slots[n])
            if jump:  # (a direct jump to the body; other code: through the slot)
                self.baseline.patch_jump(jump, value if body else None)
        _write_pointer(src.slots[n], value)
        src.linked[n] = dst
        dst.incoming.append((src, n))
        self.stats["links"] += 1

    def _unlink_exit(self, src: CompiledCode, n: int) -> None:
        if type(src.module) is ArenaCode:
            jump = self.baseline.jump_of(src.slots[n])
            if jump:
                self.baseline.patch_jump(jump, None)
        _write_pointer(src.slots[n], 0)
        src.linked.pop(n, None)
        self.stats["unlinks"] += 1

    # -- jump cache ------------------------------------------------------------------------
    def new_jump_cache(self) -> ctypes.Array:
        """An empty jump cache for one more CPU (a guest thread) sharing this cache;
        its address goes into that CPU's ``jmp_cache`` field."""
        n = 1 << abi.JMP_CACHE_BITS
        cache = (ctypes.c_uint64 * (_SLOTS_PER_ENTRY * n))()
        ctypes.memset(ctypes.addressof(cache), 0xFF, ctypes.sizeof(cache))
        with self.lock:
            self.jmp_caches.append(cache)
        return cache

    def drop_jump_cache(self, cache: ctypes.Array) -> None:
        """Forget a CPU's jump cache (its thread ended)."""
        with self.lock:
            self.jmp_caches = [c for c in self.jmp_caches if c is not cache]

    def jmp_cache_set(self, tb: CompiledCode, cache: ctypes.Array | None = None) -> None:
        """Enter tb in ``cache`` (a CPU's; default: the first CPU's)."""
        cache = self.jmp_cache if cache is None else cache
        i = abi.jmp_cache_index(tb.pc) * _SLOTS_PER_ENTRY
        cache[i] = tb.pc
        cache[i + 1] = tb.entry
        cache[i + 2] = tb.flags

    def jmp_cache_flush(self) -> None:
        """Empty the jump caches (system mode: on every TLB flush, since entries are
        keyed by virtual pc). An all-ones pc is odd, so it never matches."""
        for cache in self.jmp_caches:
            ctypes.memset(ctypes.addressof(cache), 0xFF, ctypes.sizeof(cache))
        if self._crossing_linked:
            self._unlink_crossing(None)

    def jmp_cache_flush_page(self, page: int) -> None:
        """Empty the jump cache entries of code starting on virtual page ``page`` (its
        address) or on the page before, which a block may run onto (QEMU's
        tb_jmp_cache_clear_page; system mode: a TLB flush of one page). The native table
        knows which pcs those can be: every jump cache entry is written from it (the
        native probe) or with it (``get`` and ``_insert`` put what the run loop enters),
        and an invalidation clears both. Without the table or its page index (user
        mode keeps none), every entry goes."""
        if page in self._crossing_linked:
            self._unlink_crossing(page)
        table = self.lookup_table
        if not (self.native_lookup and table.tracks_pages):
            self.jmp_cache_flush()
            return
        pcs = table.pcs_on_page(page) + table.pcs_on_page(page - abi.PAGE_SIZE)
        if len(pcs) > _JMP_CACHE_CLEAR_ALL:
            # The slots of two adjacent pages' pcs are the whole cache (its index is
            # pc >> 1, 2^JMP_CACHE_BITS slots): one memset beats visiting ~100 slots a
            # flush (a Linux boot's sfence.vma of a user page); the other entries refill
            # from the native table, in native code.
            for cache in self.jmp_caches:
                ctypes.memset(ctypes.addressof(cache), 0xFF, ctypes.sizeof(cache))
            return
        for pc in pcs:
            i = abi.jmp_cache_index(pc) * _SLOTS_PER_ENTRY
            for cache in self.jmp_caches:
                if cache[i] == pc:
                    cache[i] = abi.JMP_CACHE_INVALID_PC

    def _unlink_crossing(self, page: int | None) -> None:
        """Unlink the links into code that runs onto virtual page ``page`` (None: onto
        any page) beyond its first: that page's mapping may have changed."""
        with self.lock:
            if page is None:
                groups = list(self._crossing_linked.values())
                self._crossing_linked.clear()
            else:
                groups = [self._crossing_linked.pop(page, ())]
            for group in groups:
                for dst in group:
                    for src, n in dst.incoming:
                        self._unlink_exit(src, n)
                    dst.incoming.clear()

    def _jmp_cache_drop(self, code: CompiledCode) -> None:
        # Unconditionally, after the lookup table forgot the code: the native probe of
        # another thread may be refilling this slot from the table right now (it
        # checks the table again after writing; see runtime/lookup_table.py).
        i = abi.jmp_cache_index(code.pc) * _SLOTS_PER_ENTRY
        for cache in self.jmp_caches:
            cache[i] = abi.JMP_CACHE_INVALID_PC

    # -- invalidation ----------------------------------------------------------------------
    def invalidate(self, tb: CompiledCode) -> None:
        """Unlink tb everywhere and retire it (and the regions covering it); its code
        is released later."""
        if not tb.valid:
            return
        tb.valid = False
        if self.baseline_cache is not None:
            # (a block emitted this run and run is stored even so: its code is copied
            # out now, before it is released)
            self.baseline_cache.note_invalidated(tb)
        for src, n in list(tb.incoming):
            self._unlink_exit(src, n)
        tb.incoming.clear()
        for n, dst in list(tb.linked.items()):
            _discard(dst.incoming, (tb, n))
        tb.linked.clear()
        for slot in tb.slots.values():
            self.by_slot.pop(slot, None)
        if isinstance(tb, HotRegion):
            self._retire_region(tb)
            return
        for region in tb.regions:  # (retiring one replaces the tuple, not this one)
            self.invalidate(region)
        self._unchain(tb)
        self.lookup_table.drop(tb.pc, tb.flags, tb.entry)
        for page in tb.pages():
            # (the page's index keeps it, marked invalid: see PageIndex)
            holders = self.by_page.get(page)
            if holders is not None:
                holders.discard(tb)
                if not holders:
                    del self.by_page[page]
                    self._page_spans.pop(page, None)
                    for hook in self.code_page_freed:
                        hook(page)
        self._jmp_cache_drop(tb)
        self.stats["invalidated"] += 1
        module = tb.module
        module.live_blocks -= 1
        if module.live_blocks == 0:
            self.pending_release.append(module)  # (the run loop's cue for a safe point)
            if type(module) is ArenaCode:
                self.pending_chunks.append(tb)
                if self._memo_bytes:
                    guest = self._memo_bytes.pop(tb, None)
                    if guest is not None:
                        self._memo_put(guest, tb)

    def _unchain(self, tb: TranslationBlock) -> None:
        """Remove tb from its pc's chain of variants."""
        head = self.by_pc.get(tb.pc)
        if head is tb:
            if tb.variant is None:
                del self.by_pc[tb.pc]
            else:
                self.by_pc[tb.pc] = tb.variant
        else:
            while head is not None and head.variant is not tb:
                head = head.variant
            if head is not None:
                head.variant = tb.variant
        tb.variant = None

    def _retire_region(self, region: HotRegion) -> None:
        if self.regions.get(region.pc) is region:
            del self.regions[region.pc]
        for m in region.members:
            if region in m.regions:
                m.regions = tuple(r for r in m.regions if r is not region)
        # Lookups of the head's pc get the head block again (if it is still valid).
        head = region.members[0] if region.members else None
        if self.native_lookup and head is not None and head.valid \
                and self.regions.get(region.pc) is None:
            self.lookup_table.put(head.pc, head.flags, head.entry, self._code_page(head))
        else:
            self.lookup_table.drop(region.pc, region.flags, region.entry)
        self._jmp_cache_drop(region)
        self.stats["regions_retired"] += 1
        region.module.live_blocks -= 1
        if region.module.live_blocks == 0:
            self.pending_release.append(region.module)
        for hook in self.region_retired:
            hook(region)

    # -- the content memo ------------------------------------------------------------------
    # Code rewritten in place often comes back byte for byte (a guest JIT emitting the
    # same stub again, code patched and patched back, a library mapped again where it
    # was): the same bytes at the same pc under the same flags translate to the same
    # code (the premise of the persistent baseline cache too), so a miss there takes
    # the invalidated block back, code and data, instead of translating again. QEMU
    # does not; it is legal because the bytes are compared whole, every range of the
    # block, through the translation's fetch (unmapped or non-executable code never
    # matches). Only blocks at (pc, flags) once invalidated by a write record their
    # bytes (one fetch at emission): code never rewritten pays nothing.
    def _memo_put(self, guest: bytes, tb: TranslationBlock) -> None:
        """Keep invalidated ``tb`` (its chunks not given back) for its bytes ``guest``."""
        key = (tb.pc, tb.flags)
        if self._rewritten.get(key, -1) < 0:
            self.pending_chunks.append(tb)  # (given up meanwhile: freed after all)
            return
        entries = self._memo.pop(key, None) or []
        self._memo[key] = entries  # (last: most recently used)
        entries.append((guest, tb))
        self._memo_held.add(tb)
        if len(entries) > MEMO_VERSIONS:
            self._memo_drop(entries.pop(0)[1])
        while len(self._memo_held) > MEMO_BLOCKS:
            oldest_key = next(iter(self._memo))
            oldest = self._memo[oldest_key]
            self._memo_drop(oldest.pop(0)[1])
            if not oldest:
                del self._memo[oldest_key]

    def _memo_drop(self, tb: TranslationBlock) -> None:
        self._memo_held.discard(tb)
        self.pending_chunks.append(tb)  # (freed at the next release_pending)

    def _memo_forget(self) -> None:
        """Drop the memo (the arena is being reset: its chunks go with it)."""
        self._memo.clear()
        self._memo_held.clear()
        self._memo_bytes.clear()

    def _memo_take(self, pc: int, flags: int) -> list[TranslationBlock] | None:
        """The block at (pc, flags) taken back from the memo, installed (its direct
        exits unlinked, its HOT counter armed again) if the guest bytes at its ranges
        are the ones it was translated from; else None (translate)."""
        key = (pc, flags)
        entries = self._memo.get(key)
        if entries is None or not self.log.items.isdisjoint(TRANSLATION_LOG_ITEMS):
            return None  # (-d in_asm and the like show every translation)
        fetch = self.fetch
        fetched: dict[tuple[tuple[int, int], ...], bytes] = {}
        found = None
        for i, (guest, tb) in enumerate(entries):
            ranges = tuple(tb.ranges)
            current = fetched.get(ranges)
            if current is None:
                try:
                    current = fetched[ranges] = b"".join([fetch(s, e - s)
                                                          for s, e in ranges])
                except Exception:  # noqa: BLE001 - not fetchable now: translating raises
                    return None
            if current == guest:
                found = i
                break
        if found is None:
            misses = self._rewritten.get(key, 0) + 1
            if misses < MEMO_GIVE_UP:
                self._rewritten[key] = misses
            else:  # (new bytes every time: stop recording and comparing them)
                self._rewritten[key] = -1
                for _, tb in self._memo.pop(key):
                    self._memo_drop(tb)
            return None
        guest, tb = entries.pop(found)
        if not entries:
            del self._memo[key]
        self._memo_held.discard(tb)
        if tb.module.generation != self.baseline.arena.generation:
            return None  # (cannot be: an arena reset empties the memo)
        self._rewritten[key] = 0
        baseline = self.baseline
        for slot in tb.slots.values():
            if ctypes.c_uint64.from_address(slot).value:  # (linked before it was invalidated)
                jump = baseline.jump_of(slot)
                if jump:
                    baseline.patch_jump(jump, None)
                _write_pointer(slot, 0)
        if tb.counter:
            tb.arm_counter(self.lowering.hot_threshold)
        if tb.target_cell:
            ctypes.memset(tb.target_cell, 0xFF, 8 * INDIRECT_TARGETS)
        tb.valid = True
        tb.module.live_blocks = 1
        self._insert(tb)
        self._memo_bytes[tb] = guest
        self.stats["memo_hits"] += 1
        return [tb]

    def page_has_code(self, page: int) -> bool:
        return page in self.by_page

    def invalidate_range(self, start: int, end: int) -> int:
        """Invalidate every block translated from guest bytes in the physical range
        [start, end) (user mode: physical == virtual). Takes :attr:`lock` (a slow
        path's store to a code page calls it from native code)."""
        with self.lock:
            victims: set[CompiledCode] = set()
            by_page, page_spans = self.by_page, self._page_spans
            for page in range(page_floor(start), end, abi.PAGE_SIZE):
                holders = by_page.get(page)
                if not holders:
                    continue
                index = page_spans.get(page)
                if index is None:
                    if len(holders) <= _SCAN_HOLDERS:
                        # (a few blocks: each tested, no index made — a page whose one
                        # block is rewritten again and again made one every store)
                        victims.update([tb for tb in holders if tb.overlaps(start, end)])
                        continue
                    index = page_spans[page] = _page_index(page, holders)
                victims.update(index.overlapping(start, end))
            rewritten = self._rewritten
            for tb in victims:
                self.invalidate(tb)
                if self.addressing is None and type(tb.module) is ArenaCode:
                    rewritten.setdefault((tb.pc, tb.flags), 0)  # (memoised from now on)
            return len(victims)

    def flush(self) -> None:
        """Invalidate every block (QEMU's tb_flush)."""
        with self.lock:
            for tb in list(self.blocks()):
                self.invalidate(tb)
            self.lookup_table.clear()
            self.jmp_cache_flush()

    def release_pending(self) -> int:
        """Free the code of fully invalidated modules. Only call with no native frame
        of this cache running (the run loop does, between native calls)."""
        released = len(self.pending_release)
        self.lookup_table.release_old()
        for module in self.pending_release:
            module.release()
        self.pending_release.clear()
        # Baseline blocks' arena chunks, for reuse (those of an arena reset since are
        # gone already; with another thread in native code they wait for the reset).
        freed, self.pending_chunks = self.pending_chunks, []
        baseline = self.baseline
        if baseline is not None and not self.in_native:
            generation = baseline.arena.generation
            held = self._memo_held
            # (once each: a block the memo gave back and took again is listed twice)
            for tb in dict.fromkeys(freed) if held else freed:
                if tb.module.generation == generation and not tb.valid \
                        and tb not in held:
                    baseline.free(tb.entry, tb.module.size, tb.slots, tb.counter,
                                  tb.target_cell)
        self.stats["released_modules"] += released
        return released

    def blocks(self) -> Iterable[TranslationBlock]:
        """Every valid cheap-tier block (all variants of every pc)."""
        for head in list(self.by_pc.values()):
            tb = head
            while tb is not None:
                yield tb
                tb = tb.variant
