"""The CPU: one guest CPU state wired to its softmmu, translations, JIT, tiering and
run loop (``runtime/run_loop.py``).

The pieces: the entry trampoline and the native thunks in front of Python callbacks are
generated from the host ABI table (``ir/host_abi.py``) and compiled once per CPU; the
slow paths they call live in ``runtime/callbacks.py``; settings come from one
:class:`RuntimeOptions`.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from llvmtcg.arch import TB_FLAGS_BITS, GuestArch
from llvmtcg.ir import host_abi
from llvmtcg.ir.cpu_layout import PAGE_SIZE, CpuLayout
from llvmtcg.ir.lower import Lowering
from llvmtcg.ir.lower.emitter import LoweringOptions
from llvmtcg.log import Log
from llvmtcg.options import DEFAULT_OPTIONS, RuntimeOptions
from llvmtcg.runtime import callbacks, translator_objects
from llvmtcg.runtime import helpers as helpers_mod
from llvmtcg.runtime.codecache import fingerprint
from llvmtcg.runtime.cpu_state import SCRATCH_SLOTS, CpuState
from llvmtcg.runtime.exits import Access, CpuExit, FaultKind, GuestFault, MemFault
from llvmtcg.runtime.helpers import HelperRegistry
from llvmtcg.runtime.jit import CompiledModule, JitEngine
from llvmtcg.runtime.lookup_table import lookup_ir
from llvmtcg.runtime.native.arena import CodeArena
from llvmtcg.runtime.native.baseline import BaselineCodegen, library_for
from llvmtcg.runtime.native.baseline_cache import BaselineBlockCache
from llvmtcg.runtime.physmem import BusError
from llvmtcg.runtime.run_loop import ExecStats, RunLoop
from llvmtcg.runtime.softmmu import _ADDEND as _TLB_ADDEND  # (a TLB entry's layout)
from llvmtcg.runtime.softmmu import _ADDR_CODE as _TLB_ADDR_CODE
from llvmtcg.runtime.softmmu import (
    GuestMemory,
    MmioHandler,
    Perm,
    Region,
    Softmmu,
    page_floor,
)
from llvmtcg.runtime.tbcache import TbCache
from llvmtcg.runtime.tiering import Tiering


def _python_target(symbol: str) -> str:
    """The symbol a thunk imports the Python callback behind ``symbol`` under."""
    return f"{symbol}.py"


def native_glue_ir(layout: CpuLayout, helpers: HelperRegistry) -> tuple[str, list[str]]:
    """LLVM IR of a CPU's entry trampoline, of the thunks generated code calls Python
    through (slow paths, soft-float, Python helpers) and of the probe of the native
    lookup table (``llvmtcg_tb_lookup``), and the symbols it defines. The
    callbacks are imports (:func:`native_glue_imports`), so the text and its object are
    the same in every process."""
    fp_env, host_fp_env = layout.offset("fp_env"), layout.offset("host_fp_env")
    parts = [host_abi.trampoline_ir(fp_env, host_fp_env)]
    functions = [host_abi.ENTER.symbol]
    for fn in host_abi.CALLBACKS:
        parts.append(host_abi.thunk_ir(fn, _python_target(fn.symbol), fp_env, host_fp_env))
        functions.append(fn.thunk)
    for decl, _address in helpers.python_helpers().values():
        fn = host_abi.HostFunction.for_helper(decl)
        parts.append(host_abi.thunk_ir(fn, _python_target(fn.symbol), fp_env, host_fp_env))
        functions.append(fn.thunk)
    for fn in host_abi.HOST_FUNCTIONS.values():
        if fn.role is host_abi.Role.WRAPPER:
            parts.append(host_abi.preserve_all_wrapper_ir(fn))
            functions.append(fn.thunk)
    parts.append(lookup_ir(layout))
    functions.append(host_abi.TB_LOOKUP.symbol)
    return "\n".join(parts) + "\n", functions


def native_glue_imports(helpers: HelperRegistry) -> dict[str, int]:
    """The addresses of the Python callbacks :func:`native_glue_ir`'s thunks import."""
    imports = {_python_target(fn.symbol): callbacks.ADDRESSES[fn.symbol]
               for fn in host_abi.CALLBACKS}
    for decl, address in helpers.python_helpers().values():
        imports[_python_target(host_abi.HostFunction.for_helper(decl).symbol)] = address
    return imports


def code_cache_key(arch: GuestArch, layout: CpuLayout, helper_symbols: list[str],
                   options: RuntimeOptions, count_insns: bool, tb_flags: int = 0) -> str:
    """The code cache's namespace: everything that changes generated code — the guest
    (architecture and CPU model: ``arch.fingerprint()``; the translation flags), the
    state layout, the helper set and every codegen option
    (:meth:`RuntimeOptions.codegen_key`)."""
    return fingerprint(
        arch.fingerprint(), tb_flags, count_insns,
        sorted((f.name, f.offset, f.count) for f in layout.fields.values()),
        layout.tlb_bits, layout.n_mmu_idx, sorted(helper_symbols), options.codegen_key())


_MASK64 = (1 << 64) - 1
_ACCESS_PERM = {Access.READ: Perm.R, Access.WRITE: Perm.W, Access.FETCH: Perm.X}


# Superpage ranges (Cpu._add_large_page): how far one may grow before a superpage far
# away starts a range of its own, and how many there may be before they collapse.
_PAGE_FLOOR = ~(PAGE_SIZE - 1)
_string_at = ctypes.string_at
_u64_at = ctypes.c_uint64.from_address
# Bytes a code reader reads from a page at once (a block's instructions: ~20 bytes on
# average in a Linux boot; reading 64 costs what reading 4 does).
_CODE_WINDOW = 64
_LARGE_PAGE_SPAN = 1 << 30
_MAX_LARGE_PAGE_RANGES = 8


class _DecodeErrorsFault:
    """System mode: an MMIO access no device decodes (physmem's BusError: a hole in a
    device page) is a guest access fault, as QEMU turns MEMTX_DECODE_ERROR into one.
    Its address is ``base`` (the virtual address of the region's start) plus the
    offset: the softmmu reuses one for every access through the page's TLB entry."""

    __slots__ = ("handler", "base")

    def __init__(self, handler: MmioHandler, base: int) -> None:
        self.handler, self.base = handler, base

    def read(self, offset: int, size: int) -> int:
        try:
            return self.handler.read(offset, size)
        except BusError:
            raise GuestFault(MemFault((self.base + offset) & _MASK64, Access.READ,
                                      FaultKind.ACCESS_FAULT)) from None

    def write(self, offset: int, size: int, value: int) -> None:
        try:
            self.handler.write(offset, size, value)
        except BusError:
            raise GuestFault(MemFault((self.base + offset) & _MASK64, Access.WRITE,
                                      FaultKind.ACCESS_FAULT)) from None


class _RomStores:
    """System mode: a page of ROM as a guest store sees it. QEMU discards guest stores
    to ROM (memory_region_init_rom: read-only for the guest, no fault); loads through
    the same TLB entry read the ROM's bytes (at ``host``, the page's first byte)."""

    __slots__ = ("host",)

    def __init__(self, host: int) -> None:
        self.host = host

    def read(self, offset: int, size: int) -> int:
        return int.from_bytes(ctypes.string_at(self.host + offset, size), "little")

    def write(self, offset: int, size: int, value: int) -> None:
        pass


class Cpu:
    """One guest CPU: state, softmmu, translations and the run loop.

    Everything guest-specific comes from ``arch``: the state is laid out by
    ``arch.layout`` and reset by ``arch.reset``; blocks are translated by
    ``arch.translate`` for the translation flags in force (``state.tb_flags``, which the
    architecture keeps up to date; constant in user mode) and looked up by (pc, flags)
    — in system mode (``arch.system_mode``) also by the physical pc, with ``memory`` as
    the physical address space behind ``arch.tlb_fill``; around every native entry the
    guest's FP environment comes from ``arch.fp_rounding`` and the flags float ops raised
    go to ``arch.fp_accrue``.

    Args:
        arch: the guest architecture (and CPU model).
        memory: the guest address space.
        options: translation, tiering and code-cache settings.
        log: ``-d`` logging.
        exec_interrupt: what runs at an exit request, instead of the architecture's
            ``exec_interrupt`` (user mode: stop the loop if host signals arrived).
    """

    def __init__(self, arch: GuestArch, memory: GuestMemory,
                 options: RuntimeOptions = DEFAULT_OPTIONS, log: Log | None = None,
                 exec_interrupt: Callable[[CpuState], bool] | None = None) -> None:
        self.log = log or Log()
        self.options = options
        self.arch = arch
        layout = arch.layout
        self.state = CpuState(layout)
        arch.reset(self.state)
        self.tb_flags = arch.tb_flags(self.state)
        if not 0 <= self.tb_flags < 1 << TB_FLAGS_BITS:
            raise ValueError(f"{arch.name}: tb_flags {self.tb_flags:#x} does not fit in "
                             f"{TB_FLAGS_BITS} bits")
        self.state.tb_flags = self.tb_flags
        self.system_mode = arch.system_mode
        self.memory = memory
        # Aligned (base, mask) ranges that together hold every cached superpage.
        self._large_pages: list[tuple[int, int]] = []
        self.helpers = arch.helpers()
        count_insns = arch.counts_insns
        code_cache = None
        if options.cache_dir is not None:
            # (with the translator-only objects also kept in the stencil directory)
            code_cache = translator_objects.code_cache(options.cache_dir, code_cache_key(
                arch, layout, list(self.helpers.symbols()), options, count_insns,
                self.tb_flags), options.stencil_dir)
        self.jit = JitEngine(optimize=options.optimize, log=self.log,
                             perf_map=options.perf_map, object_store=code_cache)
        self.jit.add_imports(self.helpers.symbols())
        self.jit.add_imports(native_glue_imports(self.helpers))
        glue_ir, glue_symbols = native_glue_ir(layout, self.helpers)
        self._glue: CompiledModule = self.jit.compile_cached(glue_ir, glue_symbols)
        glue = self._glue.addresses
        self._enter = enter = host_abi.ctypes_prototype(host_abi.ENTER)(
            glue[host_abi.ENTER.symbol])
        # The CPUs sharing this one's translations and memory (guest threads, made by
        # :meth:`spawn`); this one first.
        self.group: list[Cpu] = [self]
        # Generated code calls Python only through the thunks, imported under the
        # callbacks' own symbols.
        self.jit.add_imports({symbol.removesuffix(".thunk"): address
                              for symbol, address in glue.items()
                              if symbol.endswith(".thunk")})
        self.jit.add_imports({host_abi.TB_LOOKUP.symbol: glue[host_abi.TB_LOOKUP.symbol]})
        # The cheap tier calls shared memory accessors (half the IR to compile); the
        # optimising tier expands the TLB probe inline.
        lowering = Lowering(layout, self.helpers.declarations(), count_insns=count_insns,
                            inline_memory=options.optimize >= 1,
                            hot_threshold=options.hot_threshold)
        self.tbs = TbCache(arch, lowering, self.jit, self._fetch, self.log,
                           options.max_region_blocks, code_cache, self.tb_flags,
                           addressing=self if self.system_mode else None)
        if self.system_mode:
            # ``memory`` is the physical address space; the architecture's MMU maps
            # virtual addresses to it. Code pages are physical pages, which any virtual
            # mapping may reach: a page's first block flushes every TLB entry (so
            # stores through all of them take the slow path). The page-flag table's
            # refill assumes virtual == physical: not set here (the walker below).
            self.softmmu = Softmmu(self.state, memory, self.tbs, self._mmu_translate)
            arch.attach_memory(self.state, memory, self.tbs.invalidate_range)
            self.tbs.new_code_page.append(lambda page: self.state.tlb_flush())
            # The architecture's page-table walk in native code, if it has one: TLB
            # misses on plain RAM are then filled without Python.
            make_walker = getattr(arch, "native_tlb_walker", None)
            if make_walker is not None:
                self.softmmu.walker = make_walker(self.state, memory, self.jit)
        else:
            self.softmmu = Softmmu(self.state, memory, self.tbs)
            # The translator fetches every instruction through this: the softmmu's
            # own method, not a method calling it (one Python call per instruction).
            self.tbs.fetch = self.softmmu.fetch
            self.tbs.new_code_page.append(self._code_page_added)
            self.state.set("page_table", memory.page_table)
            self.state.set("page_count", memory.page_count)
        self.tbs.new_code_page.append(lambda page: memory.set_code_page(page, True))
        self.tbs.code_page_freed.append(lambda page: memory.set_code_page(page, False))
        memory.on_change.append(self._memory_changed)
        self.jump_cache = self.tbs.jmp_cache
        self.state.set("jmp_cache", self.tbs.jmp_cache_address)
        self.state.set("tb_table", self.tbs.lookup_cell)
        self.arena: CodeArena | None = None
        if options.baseline:
            self._start_baseline(layout, count_insns, code_cache is not None)
        self.tiering: Tiering | None = None
        if options.hot_threshold:
            # With flat memory (a GuestMemory: identity-mapped from %mem, with a
            # page-flag table) hot code checks the page flags inline and never misses a
            # TLB.
            region_lowering = Lowering(layout, self.helpers.declarations(),
                                       count_insns=count_insns, inline_memory=True,
                                       flat_memory=options.flat_memory)
            self.tiering = Tiering(self.tbs, arch, region_lowering,
                                   self._request_exit_all, options.tier_sync, self.log)
        # The guest's FP environment around every native entry, and its interrupts at
        # exit requests.
        self.loop = RunLoop(self.state, self.tbs, self.tiering, enter, memory.base, self.log,
                            fp_rounding=arch.fp_rounding, fp_accrue=arch.fp_accrue,
                            exec_interrupt=exec_interrupt or arch.exec_interrupt,
                            do_interrupt=arch.do_interrupt if self.system_mode else None,
                            fp_control=arch.fp_control)
        callbacks.register(self)

    def spawn(self, exec_interrupt: Callable[[CpuState], bool] | None = None) -> Cpu:
        """Another CPU on the same memory and translations, for a new guest thread
        (user mode; QEMU's cpu_copy): a copy of this CPU's registers, its own TLB, jump
        cache and run loop, run from another host thread. Translation, linking and
        invalidation are shared under ``tbs.lock``.

        Raises:
            ValueError: in system mode (one CPU per machine here).
        """
        if self.system_mode:
            raise ValueError("system mode has no guest threads")
        new = object.__new__(Cpu)
        new.log, new.options, new.arch = self.log, self.options, self.arch
        layout = self.arch.layout
        new.state = CpuState(layout)
        ctypes.memmove(new.state.address, self.state.address, layout.size)
        new.state.clear_exit_request()
        new.state.set("helper_status", 0)
        new.state.set("exception_index", 0xFFFF_FFFF)
        new.state.tlb_flush()
        new.tb_flags, new.system_mode, new.memory = self.tb_flags, False, self.memory
        new.helpers, new.jit, new._glue, new._enter = (self.helpers, self.jit, self._glue,
                                                       self._enter)
        new.tbs, new.tiering, new.group = self.tbs, self.tiering, self.group
        new.arena = None  # the baseline arena is the first CPU's (it closes it)
        new.jump_cache = self.tbs.new_jump_cache()
        new.state.set("jmp_cache", ctypes.addressof(new.jump_cache))
        new.state.set("tb_table", self.tbs.lookup_cell)
        new.softmmu = Softmmu(new.state, self.memory, self.tbs)
        new.loop = RunLoop(new.state, self.tbs, self.tiering, self._enter, self.memory.base,
                           self.log, fp_rounding=self.arch.fp_rounding,
                           fp_accrue=self.arch.fp_accrue,
                           exec_interrupt=exec_interrupt or self.arch.exec_interrupt,
                           jmp_cache=new.jump_cache, fp_control=self.arch.fp_control)
        with self.tbs.lock:
            self.group.append(new)
        callbacks.register(new)
        return new

    def forked(self) -> None:
        """In the child of a fork: only this CPU's thread exists there; forget the
        others (their native code counted in ``tbs.in_native`` ran in the parent)."""
        for other in list(self.group):
            if other is not self:
                other.close()
        self.group[:] = [self]
        self.tbs.in_native = 0

    def _request_exit_all(self) -> None:
        for cpu in list(self.group):
            cpu.state.request_exit()

    def _code_page_added(self, page: int) -> None:
        # Stores to a code page must take every CPU's slow path (TLB_NOTDIRTY): set in
        # place on an entry that has the page writable (its slow stores then need no
        # walk: a rewrite loop walked at every rewrite when the entry was flushed);
        # refills set it (Softmmu.fill).
        for cpu in list(self.group):
            cpu.state.tlb_protect_page(page)

    def _start_baseline(self, layout: CpuLayout, count_insns: bool, cached: bool) -> None:
        """The baseline tier: stencils of this translator (user mode: flat memory,
        system mode: the TLB), a code arena, the emitter."""
        options = self.options
        flat = options.flat_memory and not self.system_mode
        stencil_options = LoweringOptions(layout, self.helpers.declarations(), count_insns,
                                          inline_memory=True,
                                          hot_threshold=options.hot_threshold,
                                          flat_memory=flat)
        key = fingerprint("baseline", code_cache_key(
            self.arch, layout, list(self.helpers.symbols()), options, count_insns,
            self.tb_flags), flat, SCRATCH_SLOTS)
        library = library_for(stencil_options, key, options.stencil_dir)
        self.arena = CodeArena(options.arena_size, max(options.arena_size // 4, 1 << 16))
        self.tbs.baseline = BaselineCodegen(library, self.arena, self.jit.imports,
                                            self.state.scratch_offset,
                                            self.tbs._compile_accessors,
                                            self.state.get("page_table"),
                                            self.state.get("page_count"))
        if options.cache_dir is not None and options.program:
            self.tbs.baseline_cache = BaselineBlockCache(options.cache_dir, key,
                                                         options.program, self.tbs.baseline)

    @property
    def stats(self) -> ExecStats:
        return self.loop.stats

    @property
    def pending_error(self) -> BaseException | None:
        """A Python error raised under native code, re-raised by :meth:`run`."""
        return self.loop.pending_error

    def counters(self) -> dict[str, object]:
        """Translation, tiering, code-cache and run-loop counters (``$LLVMTCG_STATS``)."""
        out: dict[str, object] = {"native_entries": self.stats.native_entries,
                                  "exits": dict(self.stats.exits), "tb": dict(self.tbs.stats),
                                  "lookup": self.tbs.lookup_counters()}
        if self.tbs.baseline is not None:
            out["tb"]["baseline_adapter_entries"] = self.tbs.baseline.adapter_entries
        if self.tiering is not None:
            out["tier"] = dict(self.tiering.stats)
        if self.tbs.code_cache is not None:
            out["cache"] = dict(self.tbs.code_cache.stats)
        if self.tbs.baseline_cache is not None:
            out["baseline_cache"] = dict(self.tbs.baseline_cache.stats)
        return out

    def save_translations(self) -> int:
        """Store the baseline blocks this run emitted for the program's next run (with
        ``RuntimeOptions.program`` and a cache directory; best effort). Returns the
        blocks the program's file holds now (0: nothing written)."""
        cache = self.tbs.baseline_cache
        if cache is None:
            return 0
        with self.tbs.lock:
            return cache.save()

    def close(self) -> None:
        callbacks.unregister(self)
        if self is not self.group[0]:  # a guest thread's CPU: the translations stay
            self.tbs.drop_jump_cache(self.jump_cache)
            with self.tbs.lock:
                if self in self.group:
                    self.group.remove(self)
            return
        if self.tiering is not None:
            self.tiering.close()
        if self.arena is not None:
            self.save_translations()
            self.tbs.flush()
            self.tbs.baseline = None
            self.arena.close()
            self.arena = None

    # -- called from native code (through helpers and slow paths) -------------------------
    def record_fault(self, fault: MemFault) -> None:
        self.loop.record_fault(fault)

    def raise_exception(self, index: int) -> None:
        """From a MAY_RAISE helper: leave the block with guest exception ``index``."""
        self.state.set("exception_index", index)
        self.state.set("helper_status", 1)

    def record_helper_error(self, exc: BaseException) -> None:
        """A Python helper or MMIO callback raised: leave native code soon; :meth:`run`
        re-raises ``exc``."""
        self.loop.record_helper_error(exc)

    # -- control from Python ------------------------------------------------------------
    @property
    def pc(self) -> int:
        return self.state.pc

    @pc.setter
    def pc(self, value: int) -> None:
        self.state.pc = value

    def stop(self) -> None:
        """Stop the run loop at the next block boundary (safe from any thread)."""
        self.loop.stop()

    def _fetch(self, addr: int, size: int) -> bytes:
        return self.softmmu.fetch(addr, size)

    # -- system mode: code addressing (tbcache.CodeAddressing) and the MMU --------------
    def fetch(self, addr: int, size: int, flags: int) -> bytes:
        return self.softmmu.fetch(addr, size, self.arch.fetch_mmu_index(flags))

    def code_reader(self, flags: int) -> Callable[[int, int], bytes]:
        """:meth:`fetch` at ``flags`` for one translation, which fetches each guest
        instruction (~5 a block; a Linux boot ~220k fetches, each through the TLB in
        Python): where the page's TLB code entry covers it — all of the page is
        executable RAM: no PMP entry splits it (the TLB caches no such page), not MMIO —
        the page's host bytes are read directly (the first fetch of a page tests the
        entry itself, the softmmu's own hit test; a miss goes through the softmmu,
        which fills it), :data:`_CODE_WINDOW` bytes at a time (to the page's end at
        most): the next instructions of the block are slices of that read. Valid while
        the reader's translation runs: nothing changes guest mappings meanwhile."""
        mmu_idx = self.arch.fetch_mmu_index(flags)
        softmmu = self.softmmu
        fetch, mem_base = softmmu.fetch, softmmu.mem_base
        entry_address = softmmu._tlb_entry_address  # noqa: SLF001 - the softmmu's TLB
        pages: dict[int, int] = {}  # guest page -> host address of its first byte
        start = -1  # the guest address of window's first byte
        window = b""

        def read(addr: int, size: int) -> bytes:
            nonlocal start, window
            offset = addr - start
            if offset >= 0 and offset + size <= len(window):
                return window[offset:offset + size]
            page = addr & _PAGE_FLOOR
            host = pages.get(page)
            if host is None:
                entry = entry_address(mmu_idx, addr)
                if _u64_at(entry + _TLB_ADDR_CODE).value != page:
                    data = fetch(addr, size, mmu_idx)  # (fills the entry, or raises)
                    if _u64_at(entry + _TLB_ADDR_CODE).value != page:
                        return data  # (not cacheable: every fetch through the softmmu)
                host = pages[page] = mem_base + (
                    (page + _u64_at(entry + _TLB_ADDEND).value) & 0xFFFF_FFFF_FFFF_FFFF)
            offset = addr - page
            if offset + size > PAGE_SIZE:
                return fetch(addr, size, mmu_idx)  # (across pages: the softmmu's own)
            window = _string_at(host + offset,
                                max(size, min(_CODE_WINDOW, PAGE_SIZE - offset)))
            start = addr
            return window[:size]
        return read

    def phys_addr(self, vaddr: int, flags: int) -> int:
        return self.softmmu.code_phys(vaddr, self.arch.fetch_mmu_index(flags))

    def fetch_mmu_index(self, flags: int) -> int:
        return self.arch.fetch_mmu_index(flags)

    def _mmu_translate(self, vaddr: int, access: Access, mmu_idx: int) -> tuple[Region, int]:
        """The softmmu's translator in system mode: the architecture's page walk, then
        the physical region there. The region is returned as seen from the virtual
        page (start shifted), so MMIO offsets come out right through any mapping."""
        found = self.arch.tlb_fill(self.state, vaddr, access, mmu_idx)
        if found.page_size > PAGE_SIZE:
            self._add_large_page(vaddr, found.page_size)
        region = self.memory.region(found.paddr)
        if region is None:
            raise GuestFault(MemFault(vaddr, access, FaultKind.ACCESS_FAULT))
        perms = found.perms & region.perms
        shift = page_floor(vaddr) - page_floor(found.paddr)
        if (access is Access.WRITE and region.mmio is None and found.perms & Perm.W
                and not region.perms & Perm.W):
            # ROM (system RAM is always writable): the store is discarded, as QEMU
            # does; the page is entered as MMIO without execute, so a fetch refills.
            page = page_floor(found.paddr)
            view = Region(page + shift, page + shift + PAGE_SIZE, Perm.R | Perm.W,
                          _RomStores(self.memory.base + page))
            return view, self.memory.base + page
        if not perms & _ACCESS_PERM[access]:
            raise GuestFault(MemFault(vaddr, access, FaultKind.ACCESS_FAULT))
        mmio = None if region.mmio is None else _DecodeErrorsFault(region.mmio,
                                                                   region.start + shift)
        view = Region(region.start + shift, region.end + shift, perms, mmio)
        return view, self.memory.base + page_floor(found.paddr)

    def _add_large_page(self, vaddr: int, size: int) -> None:
        """Record a cached superpage: widen the aligned range that already holds
        superpages near it (within _LARGE_PAGE_SPAN), or start a range of its own
        (QEMU's tlb_add_large_page keeps one range; Linux's linear map and its kernel
        image are far apart, and one range over both would make every sfence.vma of a
        page between them — fixmap, vmalloc — flush the whole TLB)."""
        mask = ~(size - 1)
        ranges = self._large_pages
        for index, (base, old_mask) in enumerate(ranges):
            widened = mask & old_mask
            while (base ^ vaddr) & widened:
                widened <<= 1
            if widened == old_mask:
                return  # (already inside)
            if ~widened + 1 <= _LARGE_PAGE_SPAN:
                ranges[index] = (base & widened, widened)
                self._publish_large_pages()
                return
        ranges.append((vaddr & mask, mask))
        if len(ranges) > _MAX_LARGE_PAGE_RANGES:  # (collapse to one range, as QEMU)
            base, widened = ranges[0]
            for other, other_mask in ranges[1:]:
                widened &= other_mask
                while (base ^ other) & widened:
                    widened <<= 1
            self._large_pages = [(base & widened, widened)]
        self._publish_large_pages()

    def _publish_large_pages(self) -> None:
        # The native walker fills superpage entries only inside these ranges (so
        # tlb_flush_page finds them), as the Python walk adds to them.
        if self.softmmu.walker is not None:
            self.softmmu.walker.set_large_pages(self._large_pages)

    def tlb_flush(self) -> None:
        """Drop every cached address translation (and the jump cache, keyed by virtual
        pc): satp writes, sfence.vma without an address, PMP changes."""
        self.state.tlb_flush()
        self.tbs.jmp_cache_flush()
        self.tbs.lookup_table.new_generation()
        self._large_pages = []
        self._publish_large_pages()

    def tlb_flush_page(self, vaddr: int) -> None:
        """Drop the translations of the page at ``vaddr`` in every MMU index (and the
        jump cache entries of code on it); an address inside a cached superpage drops
        everything, since the superpage's 4 KiB entries are not kept apart."""
        for base, mask in self._large_pages:
            if vaddr & mask == base:
                self.tlb_flush()
                return
        self.state.tlb_flush_page(vaddr)
        # Blocks that start on the page or on the one before (a block may run onto the
        # next page) were looked up through the flushed mapping (QEMU's
        # tb_jmp_cache_clear_page does the same two pages).
        self.tbs.jmp_cache_flush_page(page_floor(vaddr))
        self.tbs.lookup_table.expire_page(page_floor(vaddr))
        self.tbs.lookup_table.expire_page(page_floor(vaddr) - PAGE_SIZE)

    def _memory_changed(self, start: int, end: int) -> None:
        # Mappings changed: drop cached translations of addresses (every CPU's: another
        # thread's native code may be running; it sees the flush at its next access)
        # and the code there.
        for cpu in list(self.group):
            cpu.state.tlb_flush()
        self.tbs.invalidate_range(start, end)

    def invalidate_range(self, start: int, end: int) -> int:
        """Drop translations of guest code in [start, end) (fence.i, explicit flush)."""
        return self.tbs.invalidate_range(start, end)

    def flush(self) -> None:
        self.tbs.flush()
        for cpu in list(self.group):
            cpu.state.tlb_flush()

    # -- debugging (the gdbstub) ------------------------------------------------------------
    @property
    def breakpoints(self) -> frozenset[int]:
        return self.loop.breakpoints

    def set_breakpoints(self, pcs: frozenset[int]) -> None:
        """Make :meth:`run` stop with an EXCP_DEBUG exit whenever pc reaches one of
        ``pcs`` (virtual addresses). Implemented by translation: code already translated
        across a new breakpoint is dropped (system mode: all of it, since blocks are
        tracked by physical address), and new blocks end before breakpoints."""
        added = pcs - self.loop.breakpoints
        self.loop.breakpoints = self.tbs.breakpoints = frozenset(pcs)
        if not added:
            return  # (blocks that end early at a removed breakpoint are still right)
        if self.system_mode:
            self.tbs.flush()
        else:
            for pc in added:
                self.tbs.invalidate_range(pc, pc + 1)
            self.tbs.jmp_cache_flush()

    def set_watchpoints(self, watchpoints: tuple[tuple[int, int, Access | None], ...]
                        ) -> None:
        """Make :meth:`run` stop with an EXCP_DEBUG exit (``fault`` a WATCHPOINT
        :class:`MemFault` naming the watchpoint's start) before an access to a watched
        range: ``(start, end, Access.READ | Access.WRITE | None for either)``, virtual
        addresses. Their pages take the softmmu's slow path, which checks them."""
        softmmu = self.softmmu
        softmmu.watchpoints = tuple(watchpoints)
        softmmu.watch_pages = frozenset(
            page for start, end, _ in watchpoints
            for page in range(page_floor(start), max(end, start + 1), PAGE_SIZE))
        if not self.system_mode:
            self.memory.set_watch_pages(softmmu.watch_pages)
        if self.softmmu.walker is not None:  # (the Python fill checks watched pages)
            self.softmmu.walker.block("watch", bool(watchpoints))
        self.state.tlb_flush()  # (refills add or drop the slow-path flag)

    def step_over_watchpoint(self) -> CpuExit:
        """Execute the instruction a watchpoint stopped before, its access allowed."""
        self.softmmu.watch_suspended = True
        try:
            return self.step()
        finally:
            self.softmmu.watch_suspended = False

    def step(self) -> CpuExit:
        """Execute one guest instruction (see :meth:`RunLoop.step`)."""
        previous = helpers_mod.current.cpu
        helpers_mod.current.cpu = self
        try:
            return self.loop.step()
        finally:
            helpers_mod.current.cpu = previous

    def _debug_page(self, vaddr: int, access: Access) -> int:
        """Host address of guest virtual ``vaddr`` for a debugger's access, as the guest
        would make it now (user mode: the page's permissions; system mode: the MMU at
        the current privilege); GuestFault if it may not, or it is not RAM or ROM."""
        if self.system_mode:
            region, host_page = self._mmu_translate(
                vaddr, access, self.arch.mmu_index(self.state))
        else:
            region, host_page = self.memory.translate(vaddr, access, 0)
        if region.mmio is not None:  # device registers: reading has side effects
            raise GuestFault(MemFault(vaddr, access, FaultKind.PROTECTION))
        return host_page + (vaddr - page_floor(vaddr))

    def debug_read(self, vaddr: int, size: int) -> bytes:
        """Guest memory at virtual ``vaddr`` for a debugger (QEMU's
        cpu_memory_rw_debug); GuestFault at the first byte it cannot read."""
        out = bytearray()
        while size > 0:
            chunk = min(size, PAGE_SIZE - (vaddr & (PAGE_SIZE - 1)))
            out += ctypes.string_at(self._debug_page(vaddr, Access.READ), chunk)
            vaddr = (vaddr + chunk) & _MASK64
            size -= chunk
        return bytes(out)

    def debug_write(self, vaddr: int, data: bytes) -> None:
        """Store ``data`` at virtual ``vaddr`` for a debugger: every page is checked
        before anything is written (GuestFault), translations of the bytes are
        dropped."""
        spans = []
        pos, end = vaddr, vaddr + len(data)
        while pos < end:
            chunk = min(end - pos, PAGE_SIZE - (pos & (PAGE_SIZE - 1)))
            spans.append((self._debug_page(pos & _MASK64, Access.WRITE), pos - vaddr, chunk))
            pos += chunk
        for host, offset, chunk in spans:
            ctypes.memmove(host, data[offset:offset + chunk], chunk)
            physical = host - self.memory.base
            if self.tbs.page_has_code(page_floor(physical)):
                self.tbs.invalidate_range(physical, physical + chunk)

    def run(self) -> CpuExit:
        """Run guest code from ``pc`` until an exception, syscall, halt or stop (see
        :class:`RunLoop`).

        Raises:
            Exception: whatever a Python helper or MMIO callback raised, re-raised here.
        """
        previous = helpers_mod.current.cpu
        helpers_mod.current.cpu = self  # Python helpers find their CPU here
        try:
            return self.loop.run()
        finally:
            helpers_mod.current.cpu = previous
