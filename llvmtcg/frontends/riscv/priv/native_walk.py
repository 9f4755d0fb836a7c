"""The TLB refill in native code: the common case of :func:`mmu.translate` without Python.

A TLB miss in translated code (the shared memory accessors, ``ir/lower/
accessor_function.py``) calls the function whose address is the first word of the
*walk context* the CPU state's ``tlb_walk`` field points to. For RISC-V that is
:func:`walker_ir`'s ``llvmtcg_riscv_tlb_walk``, compiled once per host (it comes from
the code cache with the entry glue's other modules): it walks the Sv39/Sv48/Sv57 page
table in guest RAM, checks the leaf exactly as :func:`mmu._walk` and
:func:`mmu._leaf_perms` do, sets A/D with a host compare-and-swap, and writes the TLB
entry :meth:`Softmmu.fill` would write (``addr_read/addr_write/addr_code/addend``).
It answers 0 — the access goes to the Python slow path, which walks again and decides —
whenever the case is not simple:

- the context is not *valid*: every full TLB flush (satp, PMP, privilege state,
  mappings; ``CpuState.tlb_flush``) clears it and the next Python fill publishes satp
  and the PMP summary again, so the walker never sees a stale satp or PMP;
- any fault (page fault or access fault: Python raises it with the right cause);
- a PTE or the final page outside the PMP summary: up to :data:`MAX_RANGES` physical
  ranges where every byte matches one PMP rule granting S/U (or M) R, W and X, so
  every PTE read, A/D update and the final page are allowed there and uniform;
- a PTE or the final page that is not plain RAM in the physical page-flag table
  (``GuestMemory.page_table``: MMIO, ROM for a write, holes), an A/D update of a page
  holding translated code (Python's bus invalidates that code) or a lost race;
- a write (or atomic) to a page holding translated code (the slow path invalidates);
- a superpage not inside one of the CPU's tracked superpage ranges
  (``Cpu._large_pages``, published by :meth:`NativeWalker.set_large_pages`):
  ``sfence.vma`` relies on them to flush the 4 KiB entries of a superpage;
- debugger watchpoints (the context is left invalid while any are set) and SMP
  machines (``SharedCode``: code pages are per hart there; never enabled).

The walker counts what it filled and what it left to Python in the context
(``$LLVMTCG_STATS``: ``softmmu.native_fills`` / ``native_fallbacks`` for translated
code's misses, ``native_slow_fills`` / ``native_slow_fallbacks`` for the slow path's
own fills, ``native_translations`` / ``native_translate_fallbacks`` for the Python
fill's walks).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Protocol

from llvmtcg.frontends.riscv.priv.mmu import (
    PTE_A,
    PTE_D,
    PTE_NONLEAF_RESERVED,
    PTE_PPN_MASK,
    PTE_R,
    PTE_RESERVED,
    PTE_U,
    PTE_V,
    PTE_W,
    PTE_X,
)
from llvmtcg.frontends.riscv.priv.pmp import Pmp
from llvmtcg.frontends.riscv.priv.state import SATP_PPN_MASK, Priv
from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir.types import to_signed
from llvmtcg.runtime.softmmu import GuestMemory

SYMBOL = "llvmtcg_riscv_tlb_walk"
# An ``info`` bit: only translate (for the Python fill, which then looks the physical
# region up itself): answer paddr, permissions and page size in the context's out_*
# fields instead of filling an entry, whatever the physical page is (MMIO, ROM, code).
TRANSLATE_ONLY = 1 << 16
# An ``info`` bit: a store may fill a page holding translated code (NOTDIRTY on the
# write tag): for the Python slow path, which invalidates that code itself; translated
# code never sets it (its probe would miss again).
CODE_OK = 1 << 17
MAX_RANGES = 8  # PMP ranges per privilege class and superpage ranges in the context
_MASK64 = (1 << 64) - 1
_PHYS_LIMIT = 1 << 56  # RV64 physical addresses (pmpaddr holds bits 55:2)


class WalkContext(ctypes.Structure):
    """What the walker reads (and counts into): one per CPU, pointed to by the CPU
    state's ``tlb_walk`` field. Empty range slots never match (lo > hi; base 1, mask 0)."""

    _fields_ = [
        ("fn", ctypes.c_uint64),  # the walker's address (the accessors call through it)
        ("valid", ctypes.c_uint64),  # 0: every miss goes to Python (which publishes)
        ("satp", ctypes.c_uint64),
        ("phys_table", ctypes.c_uint64),  # GuestMemory.page_table of physical memory
        ("phys_pages", ctypes.c_uint64),  # its entries
        ("mem_base", ctypes.c_uint64),  # host address of physical address 0
        ("fills", ctypes.c_uint64),  # entries filled for translated code
        ("fallbacks", ctypes.c_uint64),  # ... and misses it left to the slow path
        ("slow_fills", ctypes.c_uint64),  # the same for the slow path's own fills
        ("slow_fallbacks", ctypes.c_uint64),  # (CODE_OK) and code lookups from Python
        ("translations", ctypes.c_uint64),  # TRANSLATE_ONLY calls that answered
        ("translate_fallbacks", ctypes.c_uint64),  # ... and that left it to Python
        ("out_paddr", ctypes.c_uint64),  # TRANSLATE_ONLY's answer
        ("out_perms", ctypes.c_uint64),
        ("out_page_bits", ctypes.c_uint64),  # log2 of the page (superpage) size
        ("pmp_su", ctypes.c_uint64 * (2 * MAX_RANGES)),  # [lo, hi) pairs: S/U have RWX
        ("pmp_m", ctypes.c_uint64 * (2 * MAX_RANGES)),  # the same for M
        ("large", ctypes.c_uint64 * (2 * MAX_RANGES)),  # (base, mask): Cpu._large_pages
    ]


_OFF = {name: getattr(WalkContext, name).offset for name, _ in WalkContext._fields_}
_WALK_FN = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64,
                            ctypes.c_uint64, ctypes.c_void_p)


class _Jit(Protocol):
    def compile_cached(self, ir_text: str, exports: list[str]) -> object: ...


def pmp_ranges(pmp: Pmp, priv: Priv, limit: int = MAX_RANGES) -> list[tuple[int, int]]:
    """Physical ranges [lo, hi) in which every byte's PMP answer for ``priv`` is R, W
    and X *from one rule* (or from no rule: the default), largest first, at most
    ``limit``. A 4 KiB page inside one of them is what ``Pmp.page_perms`` calls
    uniform with RWX, so the walker may treat it as allowed for every access: ranges
    of different rules are not merged (a page across their border is not uniform)."""
    rules = pmp._rules  # (start, end, cfg) in priority order
    points = sorted({0, _PHYS_LIMIT, *(p for s, e, _ in rules for p in (s, e)
                                       if 0 < p < _PHYS_LIMIT)})
    out: list[list[int]] = []
    last_key: int | None = None
    for lo, hi in zip(points, points[1:], strict=False):
        key, granted = -1, pmp._default(priv)
        for index, (start, stop, cfg) in enumerate(rules):
            if start <= lo and hi <= stop:  # (no boundary inside [lo, hi): whole or none)
                key, granted = index, pmp._granted(cfg, priv)
                break
        if granted & 7 != 7:
            last_key = None
            continue
        if out and last_key == key and out[-1][1] == lo:
            out[-1][1] = hi
        else:
            out.append([lo, hi])
        last_key = key
    out.sort(key=lambda r: r[0] - r[1])  # (largest first)
    return [(lo, hi) for lo, hi in out[:limit]]


class NativeWalker:
    """One CPU's walk context and the Python side of the native refill.

    Args:
        state: the CPU state (its ``tlb_walk`` field is pointed at the context, and
            its TLB flushes clear ``valid``).
        memory: the physical address space (its page-flag table and host base).
        jit: compiles (or loads from the code cache) the walker.
        csr: returns the hart's current CSR file (satp and PMP); the hart's
            ``CsrFile`` is replaced at reset, so it is asked at every publication.
    """

    def __init__(self, state, memory: GuestMemory, jit: _Jit,
                 csr: Callable[[], object]) -> None:
        module = jit.compile_cached(walker_ir(), [SYMBOL])
        self.module = module  # (keeps the code mapped)
        self.address = module.addresses[SYMBOL]  # type: ignore[attr-defined]
        self.ctx = ctx = WalkContext()
        ctx.fn = self.address
        ctx.phys_table = memory.page_table
        ctx.phys_pages = min(memory.page_count, memory.size >> abi.PAGE_BITS)
        ctx.mem_base = memory.base
        self.ctx_address = ctypes.addressof(ctx)
        self._call = _WALK_FN(self.address)
        self._csr = csr
        # Why the walker must not run (never published while any): "watch", "smp".
        self.blocked: set[str] = set()
        self._pmp: Pmp | None = None  # the PMP (and its rule list) the summary is of
        self._pmp_rules: object = None
        self.set_large_pages([])
        state.set("tlb_walk", self.ctx_address)
        state.tlb_flush_clears = self.ctx_address + _OFF["valid"]

    @property
    def valid(self) -> bool:
        return bool(self.ctx.valid)

    def publish(self) -> None:
        """Give the walker the current satp and PMP summary (after a TLB flush cleared
        them). Called by the Python fill, so it runs after the flush that any satp or
        PMP write makes."""
        if self.blocked:
            self.ctx.valid = 0
            return
        csr = self._csr()
        ctx = self.ctx
        ctx.satp = csr.satp  # type: ignore[attr-defined]
        pmp = csr.pmp  # type: ignore[attr-defined]
        # (a flush per new code page and sfence.vma: summarise PMP only when its rules
        # changed — Pmp replaces its rule list on every change)
        if pmp is not self._pmp or pmp._rules is not self._pmp_rules:
            self._pmp, self._pmp_rules = pmp, pmp._rules
            for field, priv in (("pmp_su", Priv.S), ("pmp_m", Priv.M)):
                ranges = pmp_ranges(pmp, priv)
                slots = getattr(ctx, field)
                for i in range(MAX_RANGES):
                    lo, hi = ranges[i] if i < len(ranges) else (1, 0)
                    slots[2 * i], slots[2 * i + 1] = lo, hi
        ctx.valid = 1

    def block(self, reason: str, blocked: bool) -> None:
        """Keep the walker off while ``reason`` holds (debugger watchpoints: the Python
        fill checks watched pages; SMP: code pages are tracked per hart)."""
        if blocked:
            self.blocked.add(reason)
            self.ctx.valid = 0
        else:
            self.blocked.discard(reason)

    def set_large_pages(self, ranges: list[tuple[int, int]]) -> None:
        """The CPU's superpage ranges (base, mask) changed: the walker fills a
        superpage's entries only inside them (more than it can hold: none)."""
        slots = self.ctx.large
        for i in range(MAX_RANGES):
            base, mask = ranges[i] if len(ranges) <= MAX_RANGES and i < len(ranges) else (1, 0)
            slots[2 * i], slots[2 * i + 1] = base & _MASK64, mask & _MASK64

    def fill(self, vaddr: int, access: int, mmu_idx: int, entry: int,
             code_ok: bool = False) -> bool:
        """Try the native walk from Python (the softmmu's fills): True when it filled
        the TLB entry at host address ``entry``; ``code_ok``: see :data:`CODE_OK`."""
        if not self.ctx.valid:
            return False
        info = access | (mmu_idx << 8) | (CODE_OK if code_ok else 0)
        return bool(self._call(self.ctx_address, vaddr & _MASK64, info, entry))

    def translate(self, vaddr: int, access: int, mmu_idx: int) -> tuple[int, int, int] | None:
        """(physical address, Perm bits for the page, page size) as
        :func:`mmu.translate` answers for a simple walk, or None (Python walks: a fault,
        a PMP split, an A/D update it leaves to Python)."""
        ctx = self.ctx
        if not ctx.valid:
            self.publish()
            if not ctx.valid:
                return None
        if not self._call(self.ctx_address, vaddr & _MASK64,
                          access | (mmu_idx << 8) | TRANSLATE_ONLY, None):
            return None
        return ctx.out_paddr, ctx.out_perms, 1 << ctx.out_page_bits

    def counters(self) -> dict[str, int]:
        ctx = self.ctx
        return {"native_fills": ctx.fills, "native_fallbacks": ctx.fallbacks,
                "native_slow_fills": ctx.slow_fills,
                "native_slow_fallbacks": ctx.slow_fallbacks,
                "native_translations": ctx.translations,
                "native_translate_fallbacks": ctx.translate_fallbacks}


def _ranges_ir(lines: list[str], tag: str, field: str, lo: str, hi: str) -> str:
    """Straight-line IR: i1 "[lo, hi) lies inside one of the context's ranges"."""
    acc = "false"
    for i in range(MAX_RANGES):
        p = f"%{tag}.p{i}"
        lines += [f"  {p}lo = getelementptr i8, ptr %ctx, i64 {_OFF[field] + 16 * i}",
                  f"  {p}hi = getelementptr i8, ptr %ctx, i64 {_OFF[field] + 16 * i + 8}",
                  f"  {p}l = load i64, ptr {p}lo, align 8",
                  f"  {p}h = load i64, ptr {p}hi, align 8",
                  f"  {p}a = icmp ule i64 {p}l, {lo}",
                  f"  {p}b = icmp ule i64 {hi}, {p}h",
                  f"  {p}c = and i1 {p}a, {p}b",
                  f"  {p}o = or i1 {acc}, {p}c"]
        acc = f"{p}o"
    return acc


def _large_ir(lines: list[str], addr: str, size_mask: str) -> str:
    """i1: the superpage of ``addr`` (offset bits ``size_mask``) is inside a range."""
    acc = "false"
    for i in range(MAX_RANGES):
        p = f"%lg.p{i}"
        off = _OFF["large"] + 16 * i
        lines += [f"  {p}bp = getelementptr i8, ptr %ctx, i64 {off}",
                  f"  {p}mp = getelementptr i8, ptr %ctx, i64 {off + 8}",
                  f"  {p}base = load i64, ptr {p}bp, align 8",
                  f"  {p}mask = load i64, ptr {p}mp, align 8",
                  f"  {p}am = and i64 {addr}, {p}mask",
                  f"  {p}in = icmp eq i64 {p}am, {p}base",
                  f"  {p}big = and i64 {p}mask, {size_mask}",  # range at least as large
                  f"  {p}fits = icmp eq i64 {p}big, 0",
                  f"  {p}c = and i1 {p}in, {p}fits",
                  f"  {p}o = or i1 {acc}, {p}c"]
        acc = f"{p}o"
    return acc


def _flags_ir(lines: list[str], tag: str, page: str) -> str:
    """i64: the physical page-flag byte of page number ``page`` (the caller checked
    ``page < phys_pages``)."""
    lines += [f"  %{tag}.tp = getelementptr i8, ptr %ctx, i64 {_OFF['phys_table']}",
              f"  %{tag}.t = load i64, ptr %{tag}.tp, align 8",
              f"  %{tag}.tptr = inttoptr i64 %{tag}.t to ptr",
              f"  %{tag}.fp = getelementptr i8, ptr %{tag}.tptr, i64 {page}",
              f"  %{tag}.f8 = load i8, ptr %{tag}.fp, align 1",
              f"  %{tag}.f = zext i8 %{tag}.f8 to i64"]
    return f"%{tag}.f"


def _count(lines: list[str], field: str) -> None:
    lines += [f"  %cnt.{field}.p = getelementptr i8, ptr %ctx, i64 {_OFF[field]}",
              f"  %cnt.{field}.v = load i64, ptr %cnt.{field}.p, align 8",
              f"  %cnt.{field}.n = add i64 %cnt.{field}.v, 1",
              f"  store i64 %cnt.{field}.n, ptr %cnt.{field}.p, align 8"]


def walker_ir() -> str:
    """LLVM IR of ``i64 llvmtcg_riscv_tlb_walk(ptr ctx, i64 addr, i64 info, ptr entry)``:
    ``info`` is the access (0 read, 1 write or atomic, 2 fetch) | MMU index << 8,
    ``entry`` the TLB entry to fill. Returns 1 when it filled the entry (the access may
    be retried: its tag is clean), 0 when Python must handle the miss. The same text in
    every process (no addresses in it), so the code cache keeps its object."""
    rwx_bits = PTE_R | PTE_W
    page_mask = to_signed(abi.PAGE_MASK, 64)
    invalid = to_signed(abi.TLB_INVALID, 64)
    L: list[str] = [f"define i64 @{SYMBOL}(ptr %ctx, i64 %addr, i64 %info, ptr %tlbe) "
                    "nounwind {", "entry:"]
    L += [f"  %validp = getelementptr i8, ptr %ctx, i64 {_OFF['valid']}",
          "  %valid = load i64, ptr %validp, align 8",
          "  %access = and i64 %info, 3",
          "  %mmus = lshr i64 %info, 8",
          "  %mmu = and i64 %mmus, 255",
          "  %pclass = and i64 %mmu, 3",
          "  %mxrb = and i64 %mmu, 4",
          "  %mxr = icmp ne i64 %mxrb, 0",
          "  %isM = icmp eq i64 %pclass, 3",
          "  %isU = icmp eq i64 %pclass, 0",
          "  %sum = icmp eq i64 %pclass, 2",
          "  %isW = icmp eq i64 %access, 1",
          "  %isX = icmp eq i64 %access, 2",
          f"  %cob = and i64 %info, {CODE_OK}",
          "  %nocodeok = icmp eq i64 %cob, 0",
          "  %cok = icmp ne i64 %cob, 0",
          f"  %tob = and i64 %info, {TRANSLATE_ONLY}",
          "  %tonly = icmp ne i64 %tob, 0",
          "  %notonly = xor i1 %tonly, true",
          "  %needx = select i1 %isX, i64 4, i64 1",
          "  %need = select i1 %isW, i64 2, i64 %needx",
          f"  %pagesp = getelementptr i8, ptr %ctx, i64 {_OFF['phys_pages']}",
          "  %pages = load i64, ptr %pagesp, align 8",
          f"  %basep = getelementptr i8, ptr %ctx, i64 {_OFF['mem_base']}",
          "  %membase = load i64, ptr %basep, align 8",
          "  %memptr = inttoptr i64 %membase to ptr",
          "  %isvalid = icmp ne i64 %valid, 0",
          "  br i1 %isvalid, label %start, label %fail",
          "start:",
          f"  %satpp = getelementptr i8, ptr %ctx, i64 {_OFF['satp']}",
          "  %satp = load i64, ptr %satpp, align 8",
          "  %mode = lshr i64 %satp, 60",
          "  %bare = icmp eq i64 %mode, 0",
          "  %nowalk = or i1 %isM, %bare",
          "  br i1 %nowalk, label %phys, label %paging",
          # satp.MODE 8/9/10 = Sv39/48/57: LEVELS = MODE - 5, VA bits 12 + 9 * LEVELS.
          "paging:",
          "  %m8 = sub i64 %mode, 8",
          "  %modeok = icmp ult i64 %m8, 3",
          "  %levels = sub i64 %mode, 5",
          "  %lv9 = mul i64 %levels, 9",
          "  %vash = add i64 %lv9, 11",  # VA bits - 1
          "  %top = ashr i64 %addr, %vash",
          "  %top1 = add i64 %top, 1",
          "  %canon = icmp ult i64 %top1, 2",  # all ones or all zeros above the VA
          "  %go = and i1 %modeok, %canon",
          f"  %rootppn = and i64 %satp, {SATP_PPN_MASK}",
          "  %root = shl i64 %rootppn, 12",
          "  %toplevel = sub i64 %levels, 1",
          "  br i1 %go, label %level, label %fail",
          # One level: read the PTE (RAM, inside the S/U PMP summary), check it.
          "level:",
          "  %table = phi i64 [ %root, %paging ], [ %next, %nonleaf ]",
          "  %lvl = phi i64 [ %toplevel, %paging ], [ %lvldec, %nonleaf ]",
          "  %l9 = mul i64 %lvl, 9",
          "  %lsh = add i64 %l9, 12",
          "  %vpn = lshr i64 %addr, %lsh",
          "  %idx = and i64 %vpn, 511",
          "  %idx8 = shl i64 %idx, 3",
          "  %pteaddr = add i64 %table, %idx8",
          "  %ptepage = lshr i64 %pteaddr, 12",
          "  %ptein = icmp ult i64 %ptepage, %pages",
          "  br i1 %ptein, label %pteflags, label %fail",
          "pteflags:"]
    ptf = _flags_ir(L, "ptf", "%ptepage")
    L += [f"  %ptf.rs = and i64 {ptf}, {abi.PAGE_R | abi.PAGE_SLOW}",
          f"  %ptf.ok = icmp eq i64 %ptf.rs, {abi.PAGE_R}",
          "  %ptelo = and i64 %pteaddr, -4096",
          "  %ptehi = add i64 %ptelo, 4096"]
    pte_pmp = _ranges_ir(L, "ptpmp", "pmp_su", "%ptelo", "%ptehi")
    L += [f"  %pteok = and i1 %ptf.ok, {pte_pmp}",
          "  br i1 %pteok, label %readpte, label %fail",
          "readpte:",
          "  %pteptr = getelementptr i8, ptr %memptr, i64 %pteaddr",
          "  %pte = load atomic i64, ptr %pteptr monotonic, align 8",
          f"  %pv = and i64 %pte, {PTE_V}",
          "  %notv = icmp eq i64 %pv, 0",
          f"  %prw = and i64 %pte, {rwx_bits}",
          f"  %wnor = icmp eq i64 %prw, {PTE_W}",  # W without R
          f"  %pres = and i64 %pte, {PTE_RESERVED}",
          "  %hasres = icmp ne i64 %pres, 0",
          "  %bad1 = or i1 %notv, %wnor",
          "  %bad = or i1 %bad1, %hasres",
          "  %ppnsh = lshr i64 %pte, 10",
          f"  %ppn = and i64 %ppnsh, {PTE_PPN_MASK}",
          f"  %prx = and i64 %pte, {PTE_R | PTE_X}",
          "  %isleaf = icmp ne i64 %prx, 0",
          "  br i1 %bad, label %fail, label %kind",
          "kind:",
          "  br i1 %isleaf, label %leaf, label %nonleaf",
          "nonleaf:",
          f"  %nlr = and i64 %pte, {PTE_NONLEAF_RESERVED}",
          "  %nlbad = icmp ne i64 %nlr, 0",
          "  %next = shl i64 %ppn, 12",
          "  %lvldec = sub i64 %lvl, 1",
          "  %last = icmp eq i64 %lvl, 0",  # no leaf PTE
          "  %nlfail = or i1 %nlbad, %last",
          "  br i1 %nlfail, label %fail, label %level",
          # The leaf: mmu._leaf_perms. PTE bits R/W/X (1..3) shifted right by one are
          # Perm R/W/X (1/2/4).
          "leaf:",
          "  %p0s = lshr i64 %pte, 1",
          "  %p0 = and i64 %p0s, 7",
          f"  %px = and i64 %pte, {PTE_X}",
          "  %hasx = icmp ne i64 %px, 0",
          "  %mxrx = and i1 %mxr, %hasx",
          "  %p0r = or i64 %p0, 1",
          "  %p1 = select i1 %mxrx, i64 %p0r, i64 %p0",
          f"  %pu = and i64 %pte, {PTE_U}",
          "  %hasu = icmp ne i64 %pu, 0",
          "  %p1nx = and i64 %p1, 3",  # S never executes U pages
          "  %p1s = select i1 %sum, i64 %p1nx, i64 0",  # ... and reads/writes with SUM
          "  %sperm = select i1 %hasu, i64 %p1s, i64 %p1",
          "  %uperm = select i1 %hasu, i64 %p1, i64 0",
          "  %perms = select i1 %isU, i64 %uperm, i64 %sperm",
          "  %pn = and i64 %perms, %need",
          "  %denied = icmp eq i64 %pn, 0",
          # "If i>0 and pte.ppn[i-1:0] != 0, this is a misaligned superpage"
          "  %lowbits = shl i64 1, %l9",
          "  %lowmask = sub i64 %lowbits, 1",
          "  %ppnlow = and i64 %ppn, %lowmask",
          "  %misal = icmp ne i64 %ppnlow, 0",
          "  %lfail = or i1 %denied, %misal",
          f"  %dbit = select i1 %isW, i64 {PTE_D}, i64 0",
          f"  %wa = or i64 %pte, {PTE_A}",
          "  %wanted = or i64 %wa, %dbit",
          "  %update = icmp ne i64 %wanted, %pte",
          "  br i1 %lfail, label %fail, label %ad",
          "ad:",
          "  br i1 %update, label %adcheck, label %addone",
          # A/D update: only on writable RAM without translated code (Python's bus
          # invalidates such code; the PMP summary ranges are RWX), one cmpxchg, and a
          # lost race goes to Python (which walks again from the root).
          "adcheck:",
          f"  %ptf.wc = and i64 {ptf}, {abi.PAGE_W | abi.PAGE_CODE | abi.PAGE_SLOW}",
          f"  %adok = icmp eq i64 %ptf.wc, {abi.PAGE_W}",
          "  br i1 %adok, label %adswap, label %fail",
          "adswap:",
          "  %cx = cmpxchg ptr %pteptr, i64 %pte, i64 %wanted seq_cst seq_cst, align 8",
          "  %cxok = extractvalue { i64, i1 } %cx, 1",
          "  br i1 %cxok, label %addone, label %fail",
          "addone:",
          "  %pte2 = phi i64 [ %pte, %ad ], [ %wanted, %adswap ]",
          f"  %pd = and i64 %pte2, {PTE_D}",
          "  %hasd = icmp ne i64 %pd, 0",
          "  %permsnw = and i64 %perms, 5",  # W only once D is set
          "  %perms2 = select i1 %hasd, i64 %perms, i64 %permsnw",
          "  %sizem = shl i64 1, %lsh",
          "  %offm = sub i64 %sizem, 1",  # superpage offset bits
          "  %pbase = shl i64 %ppn, 12",
          "  %notoff = xor i64 %offm, -1",
          "  %pbase2 = and i64 %pbase, %notoff",
          "  %voff = and i64 %addr, %offm",
          "  %wpaddr = or i64 %pbase2, %voff",
          "  %islarge = icmp ne i64 %lvl, 0",
          "  %golarge = and i1 %islarge, %notonly",  # (Python records the superpage)
          "  br i1 %golarge, label %large, label %phys",
          "large:"]
    in_large = _large_ir(L, "%addr", "%offm")
    L += [f"  br i1 {in_large}, label %phys, label %fail",
          # The physical page: plain RAM allowing the access (region perms), inside
          # the PMP summary of the privilege class; then the entry.
          "phys:",
          "  %paddr = phi i64 [ %addr, %start ], [ %wpaddr, %addone ], [ %wpaddr, %large ]",
          "  %tperms = phi i64 [ 7, %start ], [ %perms2, %addone ], [ %perms2, %large ]",
          "  %pbits = phi i64 [ 12, %start ], [ %lsh, %addone ], [ %lsh, %large ]",
          "  %ppage = lshr i64 %paddr, 12",
          "  %plo = shl i64 %ppage, 12",
          "  %phi = add i64 %plo, 4096"]
    su = _ranges_ir(L, "psu", "pmp_su", "%plo", "%phi")
    m = _ranges_ir(L, "pm", "pmp_m", "%plo", "%phi")
    L += [f"  %pmpok = select i1 %isM, i1 {m}, i1 {su}",
          "  br i1 %tonly, label %tout, label %physram",
          # TRANSLATE_ONLY: the page is uniform RWX for PMP, so mmu._check_pmp would
          # answer these permissions; the caller looks the physical region up.
          "tout:",
          "  br i1 %pmpok, label %tstore, label %fail",
          "tstore:"]
    for field, value in (("out_paddr", "%paddr"), ("out_perms", "%tperms"),
                         ("out_page_bits", "%pbits")):
        L += [f"  %{field}.p = getelementptr i8, ptr %ctx, i64 {_OFF[field]}",
              f"  store i64 {value}, ptr %{field}.p, align 8"]
    _count(L, "translations")
    L += ["  ret i64 1",
          "physram:",
          "  %pin = icmp ult i64 %ppage, %pages",
          "  br i1 %pin, label %pflags, label %fail",
          "pflags:"]
    pf = _flags_ir(L, "pf", "%ppage")
    L += [f"  %pslow = and i64 {pf}, {abi.PAGE_SLOW}",
          "  %notslow = icmp eq i64 %pslow, 0",
          f"  %region = and i64 {pf}, 7",
          "  %final = and i64 %tperms, %region",
          "  %fn = and i64 %final, %need",
          "  %allowed = icmp ne i64 %fn, 0",
          f"  %pcode = and i64 {pf}, {abi.PAGE_CODE}",
          "  %hascode = icmp ne i64 %pcode, 0",
          "  %wcode0 = and i1 %isW, %hascode",  # the slow path invalidates that code
          "  %wcode = and i1 %wcode0, %nocodeok",
          "  %ok1 = and i1 %pmpok, %notslow",
          "  %ok2 = and i1 %ok1, %allowed",
          "  %nwc = xor i1 %wcode, true",
          "  %ok = and i1 %ok2, %nwc",
          "  br i1 %ok, label %fill, label %fail",
          "fill:",
          f"  %vpage = and i64 %addr, {page_mask}",
          "  %fr = and i64 %final, 1",
          "  %hr = icmp ne i64 %fr, 0",
          f"  %tr = select i1 %hr, i64 %vpage, i64 {invalid}",
          "  %fw = and i64 %final, 2",
          "  %hw = icmp ne i64 %fw, 0",
          f"  %nd = select i1 %hascode, i64 {abi.TLB_NOTDIRTY}, i64 0",
          "  %vw = or i64 %vpage, %nd",
          f"  %tw = select i1 %hw, i64 %vw, i64 {invalid}",
          "  %fx = and i64 %final, 4",
          "  %hx = icmp ne i64 %fx, 0",
          f"  %tx = select i1 %hx, i64 %vpage, i64 {invalid}",
          "  %addend = sub i64 %plo, %vpage"]
    for offset, value in ((abi.TLB_ADDR_READ, "%tr"), (abi.TLB_ADDR_WRITE, "%tw"),
                          (abi.TLB_ADDR_CODE, "%tx"), (abi.TLB_ADDEND, "%addend")):
        L += [f"  %e{offset} = getelementptr i8, ptr %tlbe, i64 {offset}",
              f"  store i64 {value}, ptr %e{offset}, align 8"]
    L += [f"  %fillf = select i1 %nocodeok, i64 {_OFF['fills']}, i64 {_OFF['slow_fills']}",
          "  %fillp = getelementptr i8, ptr %ctx, i64 %fillf",
          "  %filln = load i64, ptr %fillp, align 8",
          "  %filln1 = add i64 %filln, 1",
          "  store i64 %filln1, ptr %fillp, align 8"]
    L += ["  ret i64 1",
          "fail:",
          f"  %failc = select i1 %cok, i64 {_OFF['slow_fallbacks']}, i64 {_OFF['fallbacks']}",
          f"  %failf = select i1 %tonly, i64 {_OFF['translate_fallbacks']}, i64 %failc",
          "  %failp = getelementptr i8, ptr %ctx, i64 %failf",
          "  %failn = load i64, ptr %failp, align 8",
          "  %failn1 = add i64 %failn, 1",
          "  store i64 %failn1, ptr %failp, align 8",
          "  ret i64 0", "}"]
    return "\n".join(L) + "\n"
