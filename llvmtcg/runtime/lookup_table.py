"""The native lookup of translated code: a hash table of every block, probed by native code.

An indirect jump (``lookup_and_goto_ptr``) first probes its CPU's jump cache inline (a
direct-mapped cache of 4096 entries); on a miss it calls ``llvmtcg_tb_lookup(cpu, pc,
flags)``, which probes this table, refills the jump cache entry and returns the code's
entry address (null: not translated, or not known here), so only a miss of both goes back
to Python as a LOOKUP exit (QEMU's tb_lookup: the jump cache, then the qht).

The table is open addressing with linear probing in native memory, keyed by (pc, flags):
``{pc, fn, flags, generation, code page tag}`` entries of 40 bytes (the jump cache's
layout, then the generation and the tag) after a 16-byte header ``{shift, mask}``; the
slot of a pc is ``(pc * HASH_MULTIPLIER) >> shift``. An empty entry's pc is all ones
and a deleted one's :data:`TOMBSTONE_PC` (both odd, so no guest pc matches).
:class:`NativeLookup` owns it (under ``TbCache.lock``) and native code reads it from any
thread without a lock:

* an entry is written fn and flags first, pc last, and deleted by overwriting its pc;
  an empty entry is never reused in place of a live one, so a probe always ends;
* growing builds a new table and swaps one pointer in the *cell* every CPU's
  ``tb_table`` field points to; old tables stay readable until no CPU runs native code
  (:meth:`NativeLookup.release_old`);
* the probe writes the jump cache entry, then (after a full fence) reads the cell and
  the entry again and takes the entry back if either changed: invalidation on another
  thread removes the entry and then clears every CPU's jump cache slot, so a stale entry
  cannot survive in a jump cache.

The cell also holds the probe's counters (hits, misses), read by ``TbCache.stats``, and
the current *generation*: an entry counts only if it was written in the current one.
System mode keys code by virtual pc here, as the jump cache does, although code is
translated by physical pc: an entry records that, under the address mapping of its
generation, the code at (pc, flags) is ``fn``. A TLB flush (a mapping may have changed)
starts a new generation (:meth:`NativeLookup.new_generation`), which makes every entry
stale at once, as QEMU flushes its jump cache; a flush of one page makes only the
entries of code on it stale (:meth:`NativeLookup.expire_page`). The run loop writes an
entry again (:meth:`NativeLookup.put`) when it finds the code by physical pc. A stale
entry is still taken when the probing CPU's TLB maps pc's page, for the entry's fetch
MMU index, to the physical page its code was translated from (the code page tag; QEMU's
tb_lookup by physical pc). User mode never changes generation.
"""

from __future__ import annotations

import ctypes

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir.host_abi import TB_LOOKUP

EMPTY_PC = 0xFFFF_FFFF_FFFF_FFFF
TOMBSTONE_PC = 0xFFFF_FFFF_FFFF_FFFD
HASH_MULTIPLIER = 0x9E37_79B9_7F4A_7C15  # 2^64 / golden ratio (Fibonacci hashing)
HEADER_WORDS = 2  # shift, mask
ENTRY_WORDS = 5  # pc, fn, flags (as the jump cache), generation, code page tag
ENTRY_GENERATION = 24  # byte offset of an entry's generation
ENTRY_CODE_PAGE = 32  # byte offset of an entry's code page tag (see put)
# A code page tag no TLB check matches (user mode, code not within one physical page):
# a stale entry with it is never taken. (Bit 11 set: a tag's physical page has it clear.)
NO_CODE_PAGE = 1 << (abi.PAGE_BITS - 1)
_MMU_IDX_MASK = NO_CODE_PAGE - 1
CELL_WORDS = 5  # table pointer, hits, misses, retracted, generation
CELL_GENERATION = 4  # (word index)
MIN_BITS = 12
_MASK64 = (1 << 64) - 1

assert abi.JMP_CACHE_ENTRY_SIZE == 24 and abi.JMP_CACHE_FN == 8 \
    and abi.JMP_CACHE_FLAGS == 16  # the probe copies an entry's first three words


def slot_of(pc: int, shift: int) -> int:
    """The first slot probed for pc (the native probe computes the same)."""
    return ((pc * HASH_MULTIPLIER) & _MASK64) >> shift


class _Table:
    """One table: a header and 2^bits entries in one ctypes buffer."""

    __slots__ = ("bits", "words", "address", "used")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        n = 1 << bits
        self.words = (ctypes.c_uint64 * (HEADER_WORDS + ENTRY_WORDS * n))()
        self.address = ctypes.addressof(self.words)
        ctypes.memset(self.address + 8 * HEADER_WORDS, 0xFF, 8 * ENTRY_WORDS * n)
        self.words[0] = 64 - bits
        self.words[1] = n - 1
        self.used = 0  # live entries and tombstones


class NativeLookup:
    """The table of one translation cache (see the module docstring). Not thread-safe:
    the owner calls it under its lock.

    Args:
        track_pages: keep an index of the keys by page, for :meth:`expire_page` and
            :meth:`pcs_on_page` (system mode's TLB flushes of one page); user mode has
            none and saves ~100 bytes a block.
    """

    def __init__(self, track_pages: bool = True) -> None:
        self.tracks_pages = track_pages
        self._cell = (ctypes.c_uint64 * CELL_WORDS)()
        self.cell_address = ctypes.addressof(self._cell)
        # A cell whose table stays empty: a CPU pointed at it always misses (single
        # steps must come back to the run loop after one instruction).
        self._empty_cell = (ctypes.c_uint64 * CELL_WORDS)()
        self._empty = _Table(1)
        self._empty_cell[0] = self._empty.address
        self.empty_cell_address = ctypes.addressof(self._empty_cell)
        self._slots: dict[tuple[int, int], int] = {}  # (pc, flags) -> entry index
        self._by_page: dict[int, set[tuple[int, int]]] = {}  # pc's page -> its keys
        self.retired: list[_Table] = []  # replaced tables, freed by release_old()
        self._table = _Table(MIN_BITS)
        self._cell[0] = self._table.address

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def hits(self) -> int:
        return self._cell[1]

    @property
    def misses(self) -> int:
        return self._cell[2]

    @property
    def retracted(self) -> int:
        return self._cell[3]

    @property
    def generation(self) -> int:
        return self._cell[CELL_GENERATION]

    def new_generation(self) -> None:
        """Make every entry stale (system mode: a TLB flush; see the module docstring)."""
        self._cell[CELL_GENERATION] = (self._cell[CELL_GENERATION] + 1) & _MASK64

    def expire_page(self, page: int) -> None:
        """Make the entries of code starting on virtual page ``page`` (its address)
        stale, until :meth:`put` again: a TLB flush of one page (nothing without
        ``tracks_pages``)."""
        stale = (self._cell[CELL_GENERATION] - 1) & _MASK64
        words = self._table.words
        if not self.tracks_pages:
            return  # (user mode: code is keyed by pc alone and never goes stale)
        for key in self._by_page.get(page >> abi.PAGE_BITS, ()):
            words[HEADER_WORDS + ENTRY_WORDS * self._slots[key] + 3] = stale

    def pcs_on_page(self, page: int) -> list[int]:
        """The pcs on virtual page ``page`` (its address) the table has entries for:
        every pc a jump cache can hold an entry of (both are filled from the table or
        alongside it; see TbCache.jmp_cache_flush_page). Needs ``tracks_pages``."""
        if not self.tracks_pages:
            raise ValueError("pcs_on_page needs a table that tracks pages")
        return [pc for pc, _flags in self._by_page.get(page >> abi.PAGE_BITS, ())]

    def get(self, pc: int, flags: int) -> int | None:
        """The entry address a probe finds for (pc, flags) in this generation, or None
        (a probe may also take an earlier generation's entry: see :meth:`put`)."""
        index = self._slots.get((pc, flags))
        if index is None:
            return None
        base = HEADER_WORDS + ENTRY_WORDS * index
        words = self._table.words
        return words[base + 1] if words[base + 3] == self._cell[CELL_GENERATION] else None

    def put(self, pc: int, flags: int, fn: int, code_page: int = NO_CODE_PAGE) -> None:
        """Record that code for (pc, flags) is entered at ``fn`` (in this generation).

        ``code_page`` (system mode) is the physical page the code was translated from
        ORed with its fetch MMU index, when all of its code is on that page: in a later
        generation the probe still takes the entry when the CPU's TLB maps pc's page
        there for that index (QEMU's tb_lookup by physical pc). :data:`NO_CODE_PAGE`:
        only in this generation."""
        words = self._table.words
        generation = self._cell[CELL_GENERATION]
        index = self._slots.get((pc, flags))
        if index is not None:
            base = HEADER_WORDS + ENTRY_WORDS * index
            # (each one aligned store, in this order: a probe that sees the new tag sees
            # the new fn; one that saw the old tag sees it changed when it checks again)
            words[base + 4] = NO_CODE_PAGE
            words[base + 1] = fn
            words[base + 4] = code_page
            words[base + 3] = generation  # (after fn: a probe that sees it sees fn)
            return
        table = self._table
        if 2 * (table.used + 1) > (1 << table.bits):
            self._rebuild(len(self._slots) + 1)
            table = self._table
            words = table.words
        mask = (1 << table.bits) - 1
        index = slot_of(pc, 64 - table.bits)
        while True:
            base = HEADER_WORDS + ENTRY_WORDS * index
            entry_pc = words[base]
            if entry_pc == EMPTY_PC or entry_pc == TOMBSTONE_PC:
                break
            index = (index + 1) & mask
        if entry_pc == EMPTY_PC:
            table.used += 1
        words[base + 1] = fn
        words[base + 2] = flags
        words[base + 3] = generation
        words[base + 4] = code_page
        words[base] = pc  # last: a concurrent probe sees a complete entry
        key = pc, flags
        self._slots[key] = index
        if self.tracks_pages:
            self._by_page.setdefault(pc >> abi.PAGE_BITS, set()).add(key)

    def reserve(self, count: int) -> None:
        """Make room for ``count`` more entries now, while the table is small: growing
        copies every entry (in Python), and a warm run placing tens of thousands of
        stored blocks grew it several times, ~0.1 s of a Linux boot."""
        if 2 * (self._table.used + count) > (1 << self._table.bits):
            # (no larger than growing one entry at a time would make it: at most half
            # full once they are in, as put keeps it; a larger table is more cache
            # misses for the probe)
            self._rebuild(len(self._slots) + count, 2)

    def put_many(self, flags: int, entries: list[tuple[int, int, int]]) -> None:
        """:meth:`put` of every (pc, fn, code page) of ``entries`` for ``flags`` (a page
        of stored blocks placed at once): the table grown once for all of them, then
        each new entry written as :meth:`put` writes it, with no call per entry."""
        table = self._table
        if 2 * (table.used + len(entries)) > (1 << table.bits):
            self._rebuild(len(self._slots) + len(entries))
            table = self._table
        words = table.words
        generation = self._cell[CELL_GENERATION]
        slots = self._slots
        by_page = self._by_page if self.tracks_pages else None
        shift = 64 - table.bits
        mask = (1 << table.bits) - 1
        put = self.put
        for pc, fn, code_page in entries:
            key = pc, flags
            if key in slots:
                put(pc, flags, fn, code_page)  # (an entry to overwrite in place)
                continue
            index = ((pc * HASH_MULTIPLIER) & _MASK64) >> shift
            while True:
                base = HEADER_WORDS + ENTRY_WORDS * index
                entry_pc = words[base]
                if entry_pc == EMPTY_PC or entry_pc == TOMBSTONE_PC:
                    break
                index = (index + 1) & mask
            if entry_pc == EMPTY_PC:
                table.used += 1
            words[base + 1] = fn
            words[base + 2] = flags
            words[base + 3] = generation
            words[base + 4] = code_page
            words[base] = pc  # last: a concurrent probe sees a complete entry
            slots[key] = index
            if by_page is not None:
                keys = by_page.get(pc >> abi.PAGE_BITS)
                if keys is None:
                    by_page[pc >> abi.PAGE_BITS] = {key}
                else:
                    keys.add(key)

    def drop(self, pc: int, flags: int, fn: int | None = None) -> None:
        """Forget (pc, flags) (only if it is entered at ``fn``, when given)."""
        index = self._slots.get((pc, flags))
        if index is None:
            return
        base = HEADER_WORDS + ENTRY_WORDS * index
        words = self._table.words
        if fn is not None and words[base + 1] != fn:
            return
        words[base] = TOMBSTONE_PC
        del self._slots[pc, flags]
        if self.tracks_pages:
            keys = self._by_page[pc >> abi.PAGE_BITS]
            keys.discard((pc, flags))
            if not keys:
                del self._by_page[pc >> abi.PAGE_BITS]

    def clear(self) -> None:
        """Forget everything (tb_flush)."""
        self._slots.clear()
        self._by_page.clear()
        self._swap(_Table(MIN_BITS))

    def _rebuild(self, live: int, room: int = 4) -> None:
        """Copy the entries into a new table of at least ``room`` x ``live`` entries."""
        bits = MIN_BITS
        while (1 << bits) < room * live:
            bits += 1
        old = self._table
        table = _Table(bits)
        mask = (1 << bits) - 1
        words, old_words = table.words, old.words
        slots = {}
        for key, old_index in self._slots.items():
            old_base = HEADER_WORDS + ENTRY_WORDS * old_index
            index = slot_of(key[0], 64 - bits)
            while words[HEADER_WORDS + ENTRY_WORDS * index] != EMPTY_PC:
                index = (index + 1) & mask
            base = HEADER_WORDS + ENTRY_WORDS * index
            words[base:base + ENTRY_WORDS] = old_words[old_base:old_base + ENTRY_WORDS]
            slots[key] = index
        table.used = len(slots)
        self._slots = slots
        self._swap(table)

    def _swap(self, table: _Table) -> None:
        self.retired.append(self._table)
        self._table = table
        self._cell[0] = table.address  # (one aligned store: probes see either table)

    def release_old(self) -> None:
        """Free replaced tables; only call when no CPU runs native code."""
        self.retired.clear()


def lookup_ir(layout: abi.CpuLayout) -> str:
    """LLVM IR of ``ptr llvmtcg_tb_lookup(ptr cpu, i64 pc, i64 flags)``: the probe of the
    table whose cell ``cpu.tb_table`` points to; on a hit it refills ``cpu.jmp_cache``'s
    entry for pc and returns the code's entry address, else null. The text names no
    address, so its object is the same in every process (cached with the entry glue)."""
    table_field = layout.offset("tb_table")
    jmp_cache_field = layout.offset("jmp_cache")
    entry = ENTRY_WORDS * 8
    header = HEADER_WORDS * 8
    jc_mask = (1 << abi.JMP_CACHE_BITS) - 1
    return f"""
define {TB_LOOKUP.conv} ptr @{TB_LOOKUP.symbol}(ptr %cpu, i64 %pc, i64 %flags) nounwind {{
entry:
  %cellp = getelementptr i8, ptr %cpu, i64 {table_field}
  %walkp = getelementptr i8, ptr %cpu, i64 {layout.offset("tlb_walk")}
  %cell.i = load i64, ptr %cellp, align 8
  %cell = inttoptr i64 %cell.i to ptr
  %tab = load atomic ptr, ptr %cell acquire, align 8
  %shift = load i64, ptr %tab, align 8
  %maskp = getelementptr i8, ptr %tab, i64 8
  %mask = load i64, ptr %maskp, align 8
  %h = mul i64 %pc, {HASH_MULTIPLIER - (1 << 64) if HASH_MULTIPLIER >= 1 << 63 else HASH_MULTIPLIER}
  %first = lshr i64 %h, %shift
  br label %probe
probe:
  %i = phi i64 [ %first, %entry ], [ %i.next, %next ]
  %off = mul i64 %i, {entry}
  %off.h = add i64 %off, {header}
  %e = getelementptr i8, ptr %tab, i64 %off.h
  %epc = load atomic i64, ptr %e acquire, align 8
  %is.pc = icmp eq i64 %epc, %pc
  br i1 %is.pc, label %check_flags, label %not_pc
check_flags:
  %efp = getelementptr i8, ptr %e, i64 {abi.JMP_CACHE_FLAGS}
  %ef = load i64, ptr %efp, align 8
  %is.flags = icmp eq i64 %ef, %flags
  br i1 %is.flags, label %check_gen, label %next
check_gen:
  %egp = getelementptr i8, ptr %e, i64 {ENTRY_GENERATION}
  %eg = load atomic i64, ptr %egp acquire, align 8
  %tagp = getelementptr i8, ptr %e, i64 {ENTRY_CODE_PAGE}
  %tag = load atomic i64, ptr %tagp acquire, align 8
  %genp = getelementptr i8, ptr %cell, i64 {8 * CELL_GENERATION}
  %gen = load i64, ptr %genp, align 8
  %is.gen = icmp eq i64 %eg, %gen
  br i1 %is.gen, label %found, label %check_tlb
check_tlb:
  ; an earlier generation's entry: still the code if this CPU's TLB maps pc's page
  ; for fetches at the entry's MMU index to the physical page it was translated from
  %idx = and i64 %tag, {_MMU_IDX_MASK}
  %tlb.t = mul i64 %idx, {layout.tlb_table_size}
  %vpn = lshr i64 %pc, {abi.PAGE_BITS}
  %tlb.slot = and i64 %vpn, {layout.tlb_mask}
  %tlb.s = mul i64 %tlb.slot, {abi.TLB_ENTRY_SIZE}
  %tlb.ts = add i64 %tlb.t, %tlb.s
  %tlb.o = add i64 %tlb.ts, {layout.tlb_offset}
  %te = getelementptr i8, ptr %cpu, i64 %tlb.o
  %tcodep = getelementptr i8, ptr %te, i64 {abi.TLB_ADDR_CODE}
  %tcode = load i64, ptr %tcodep, align 8
  %page = and i64 %pc, {-abi.PAGE_SIZE}
  %is.page = icmp eq i64 %tcode, %page
  br i1 %is.page, label %check_phys, label %check_walk
check_walk:
  ; no code entry for the page: the CPU's native page-table walker (system mode) may
  ; fill it (a fetch at the tag's MMU index), as the run loop would after a LOOKUP exit
  %wctx.i = load i64, ptr %walkp, align 8
  %wctx = inttoptr i64 %wctx.i to ptr
  %has.w = icmp ne i64 %wctx.i, 0
  %nocp = and i64 %tag, {NO_CODE_PAGE}
  %is.cp = icmp eq i64 %nocp, 0
  %can.w = and i1 %has.w, %is.cp
  br i1 %can.w, label %walk, label %next
walk:
  %wfn = load ptr, ptr %wctx, align 8
  %winfo.i = shl i64 %idx, 8
  %winfo = or i64 %winfo.i, 2
  %wok = call i64 %wfn(ptr %wctx, i64 %pc, i64 %winfo, ptr %te)
  %wdone = icmp ne i64 %wok, 0
  br i1 %wdone, label %check_phys, label %next
check_phys:
  %taddp = getelementptr i8, ptr %te, i64 {abi.TLB_ADDEND}
  %tadd = load i64, ptr %taddp, align 8
  %phys = add i64 %page, %tadd
  %ptag = or i64 %phys, %idx
  %is.phys = icmp eq i64 %ptag, %tag
  br i1 %is.phys, label %found, label %next
not_pc:
  %is.empty = icmp eq i64 %epc, -1
  br i1 %is.empty, label %miss, label %next
next:
  %i.inc = add i64 %i, 1
  %i.next = and i64 %i.inc, %mask
  br label %probe
miss:
  %missp = getelementptr i8, ptr %cell, i64 16
  %m = load i64, ptr %missp, align 8
  %m1 = add i64 %m, 1
  store i64 %m1, ptr %missp, align 8
  ret ptr null
found:
  %efnp = getelementptr i8, ptr %e, i64 {abi.JMP_CACHE_FN}
  %fn = load i64, ptr %efnp, align 8
  %jcp = getelementptr i8, ptr %cpu, i64 {jmp_cache_field}
  %jc.i = load i64, ptr %jcp, align 8
  %jc = inttoptr i64 %jc.i to ptr
  %pc.s = lshr i64 %pc, 1
  %slot = and i64 %pc.s, {jc_mask}
  %jco = mul i64 %slot, {abi.JMP_CACHE_ENTRY_SIZE}
  %je = getelementptr i8, ptr %jc, i64 %jco
  %jfnp = getelementptr i8, ptr %je, i64 {abi.JMP_CACHE_FN}
  %jfp = getelementptr i8, ptr %je, i64 {abi.JMP_CACHE_FLAGS}
  store atomic i64 {EMPTY_PC - (1 << 64)}, ptr %je monotonic, align 8
  store atomic i64 %fn, ptr %jfnp monotonic, align 8
  store atomic i64 %flags, ptr %jfp monotonic, align 8
  store atomic i64 %pc, ptr %je monotonic, align 8
  fence seq_cst
  %tab2 = load atomic ptr, ptr %cell acquire, align 8
  %epc2 = load atomic i64, ptr %e acquire, align 8
  %fn2 = load atomic i64, ptr %efnp acquire, align 8
  %tag2 = load atomic i64, ptr %tagp acquire, align 8
  %same.t = icmp eq ptr %tab2, %tab
  %same.pc = icmp eq i64 %epc2, %pc
  %same.fn = icmp eq i64 %fn2, %fn
  %same.tag = icmp eq i64 %tag2, %tag
  %same.a = and i1 %same.t, %same.pc
  %same.b = and i1 %same.fn, %same.tag
  %same = and i1 %same.a, %same.b
  br i1 %same, label %hit, label %retract
hit:
  %hitp = getelementptr i8, ptr %cell, i64 8
  %n = load i64, ptr %hitp, align 8
  %n1 = add i64 %n, 1
  store i64 %n1, ptr %hitp, align 8
  %target = inttoptr i64 %fn to ptr
  ret ptr %target
retract:
  ; invalidated meanwhile by another thread: take the jump cache entry back
  store atomic i64 {EMPTY_PC - (1 << 64)}, ptr %je monotonic, align 8
  %rp = getelementptr i8, ptr %cell, i64 24
  %r = load i64, ptr %rp, align 8
  %r1 = add i64 %r, 1
  store i64 %r1, ptr %rp, align 8
  ret ptr null
}}
"""
