"""Guest memory and the softmmu slow path.

:class:`GuestMemory` is the page map of user mode (and of the embedding API): one host
reservation with the guest address space inside it, plus MMIO regions served by Python
callbacks. :class:`Softmmu` fills a CPU's TLB from an address translator (the page map
here; a page-table walker in system mode) and performs the accesses the inline fast
path cannot: TLB misses, MMIO, accesses crossing a page, writes to pages holding
translated code, and faults.
"""

from __future__ import annotations

import bisect
import ctypes
import mmap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir.types import MemOp
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.exits import Access, FaultKind, GuestFault, MemFault


class Perm:
    R = 1
    W = 2
    X = 4
    RW = 3
    RX = 5
    RWX = 7


# The permission an access needs (module-level: hashing enum members per call is slow).
_NEEDED = {Access.READ: Perm.R, Access.WRITE: Perm.W, Access.FETCH: Perm.X}
_FETCH = Access.FETCH
_PAGE_FLOOR = ~(abi.PAGE_SIZE - 1)
_string_at = ctypes.string_at
_u64_at = ctypes.c_uint64.from_address
_ADDR_WRITE, _ADDR_CODE, _ADDEND = 8, 16, 24  # byte offsets in a TLB entry {read, write,
# code, addend}
_NOTDIRTY = abi.TLB_NOTDIRTY
_MMIO = abi.TLB_MMIO
# A store that continues an in-order run of stores to a code page (each starting where
# the last ended) which has invalidated this many blocks invalidates the rest of the
# page: a page being cleared or copied over is not run in between (its code is gone
# piecemeal already). Invalidating more blocks than a store overlaps is always correct
# (they are translated again when run); data written beside live code invalidates
# nothing, so it never starts such a run.
SMC_OVERWRITE_BLOCKS = 4


class MmioHandler(Protocol):
    """A device region: sees offsets only (TinyEMU style)."""

    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...


@dataclass(slots=True)
class Region:
    start: int
    end: int  # exclusive
    perms: int
    mmio: MmioHandler | None = None


# What Softmmu.fill returns for a page the native walker filled: RAM (its callers look
# at ``mmio`` only; the host address comes with it).
_RAM = Region(0, 0, Perm.RWX)


# The process's own symbols (libc is loaded): ctypes.util.find_library runs
# ``ldconfig -p`` in a child process, ~0.1 s of CPU on every start.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc_mremap = _libc.mremap
_libc_mremap.restype = ctypes.c_void_p
_libc_mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int,
                         ctypes.c_void_p]
_MREMAP_MAYMOVE, _MREMAP_FIXED = 1, 2
_MAP_FAILED = ctypes.c_void_p(-1).value
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
_MAP_FIXED = 0x10
_PROT_NONE = 0


def _host_mmap(addr: int | None, size: int, prot: int, flags: int) -> int:
    result = _libc.mmap(addr, size, prot, flags, -1, 0)
    if result in (None, _MAP_FAILED):
        raise OSError(ctypes.get_errno(), f"host mmap of {size:#x} bytes failed")
    return result


def page_floor(addr: int) -> int:
    return addr & abi.PAGE_MASK


def page_ceil(addr: int) -> int:
    return (addr + abi.PAGE_SIZE - 1) & abi.PAGE_MASK


class GuestMemory:
    """A guest address space [0, size) reserved in host memory.

    Guest address ``a`` lives at host address ``base + a``, so the TLB addend of every
    RAM page is 0 relative to ``base`` (which blocks receive as ``%mem``). Unmapped
    guest pages are PROT_NONE on the host; guest permissions are enforced by the TLB.

    Args:
        size: bytes of guest address space (reserved, not committed).
    """

    def __init__(self, size: int = 1 << 38) -> None:
        if size <= 0 or size % abi.PAGE_SIZE:
            raise ValueError("guest memory size must be a positive multiple of the page size")
        self.size = size
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE
        self.base = _host_mmap(None, size, _PROT_NONE, flags)
        # One flag byte per guest page (abi.PAGE_*), read by the native TLB refill and by
        # hot code's inline checks; pages never mapped are never touched, so only used
        # parts of it take memory. Its length is a power of two (entries past `size`
        # stay 0), so hot code tests "inside the guest space" with one AND.
        self.page_count = 1 << ((size >> abi.PAGE_BITS) - 1).bit_length()
        self.page_table = _host_mmap(None, self.page_count,
                                     mmap.PROT_READ | mmap.PROT_WRITE, flags)
        self._code_pages: set[int] = set()
        self._watch_pages: set[int] = set()  # a debugger watches them: always slow
        self._starts: list[int] = []
        self._regions: list[Region] = []
        self.on_change: list[Callable[[int, int], None]] = []  # (start, end) listeners

    def close(self) -> None:
        if getattr(self, "base", 0):
            _libc.munmap(self.base, self.size)
            _libc.munmap(self.page_table, self.page_count)
            self.base = 0

    def __del__(self) -> None:
        self.close()

    # -- the page map --------------------------------------------------------------------
    def _check_range(self, start: int, size: int) -> int:
        if start % abi.PAGE_SIZE or size <= 0:
            raise ValueError(f"range {start:#x}+{size:#x} is not page aligned and non-empty")
        end = start + page_ceil(size)
        if start < 0 or end > self.size:
            raise ValueError(f"range {start:#x}-{end:#x} is outside the guest address space "
                             f"[0, {self.size:#x})")
        return end

    def _carve(self, start: int, end: int) -> None:
        """Remove [start, end) from the region list, splitting regions at the edges."""
        kept: list[Region] = []
        for r in self._regions:
            if r.end <= start or r.start >= end:
                kept.append(r)
                continue
            if r.start < start:
                kept.append(Region(r.start, start, r.perms, r.mmio))
            if r.end > end:
                kept.append(Region(end, r.end, r.perms, r.mmio))
        kept.sort(key=lambda r: r.start)
        self._regions = kept
        self._starts = [r.start for r in kept]
        self._set_page_flags(start, end, 0)

    def _insert(self, region: Region) -> None:
        self._carve(region.start, region.end)
        i = bisect.bisect(self._starts, region.start)
        self._regions.insert(i, region)
        self._starts.insert(i, region.start)
        flags = region.perms & (abi.PAGE_R | abi.PAGE_W | abi.PAGE_X)
        self._set_page_flags(region.start, region.end,
                             flags | (abi.PAGE_SLOW if region.mmio is not None else 0))
        for listener in self.on_change:
            listener(region.start, region.end)

    def _set_page_flags(self, start: int, end: int, flags: int) -> None:
        first = start >> abi.PAGE_BITS
        ctypes.memset(self.page_table + first, abi.with_fast_bits(flags),
                      (end - start) >> abi.PAGE_BITS)
        for page in self._code_pages:
            if start <= page < end:
                byte = self._flag_byte(page)
                byte.value = abi.with_fast_bits(byte.value | abi.PAGE_CODE)
        for page in self._watch_pages:
            if start <= page < end:
                byte = self._flag_byte(page)
                byte.value = abi.with_fast_bits(byte.value | abi.PAGE_SLOW)

    def _flag_byte(self, page: int) -> ctypes.c_uint8:
        return ctypes.c_uint8.from_address(self.page_table + (page >> abi.PAGE_BITS))

    def set_code_page(self, page: int, has_code: bool) -> None:
        """Record whether a page holds translated code (its stores must be checked)."""
        if not 0 <= page < self.size:
            return
        byte = self._flag_byte(page)
        if has_code:
            self._code_pages.add(page)
            byte.value = abi.with_fast_bits(byte.value | abi.PAGE_CODE)
        else:
            self._code_pages.discard(page)
            byte.value = abi.with_fast_bits(byte.value & ~abi.PAGE_CODE)

    def set_watch_pages(self, pages: frozenset[int]) -> None:
        """Pages a debugger watches: the native TLB refill leaves them to the slow
        path (which checks the watchpoints)."""
        for page in self._watch_pages - pages:
            if 0 <= page < self.size and (r := self.region(page)) is not None:
                byte = self._flag_byte(page)
                slow = abi.PAGE_SLOW if r.mmio is not None else 0
                byte.value = abi.with_fast_bits((byte.value & ~abi.PAGE_SLOW) | slow)
        self._watch_pages = {p for p in pages if 0 <= p < self.size}
        for page in self._watch_pages:
            byte = self._flag_byte(page)
            byte.value = abi.with_fast_bits(byte.value | abi.PAGE_SLOW)

    def map(self, start: int, size: int, perms: int = Perm.RWX) -> None:
        """Map zero-filled RAM at [start, start+size) (replacing what was there)."""
        end = self._check_range(start, size)
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED
        _host_mmap(self.base + start, end - start, mmap.PROT_READ | mmap.PROT_WRITE, flags)
        self._insert(Region(start, end, perms))

    def map_host(self, start: int, size: int, perms: int, *, shared: bool = False,
                 fd: int = -1, offset: int = 0, host_prot: int | None = None) -> None:
        """Map [start, start+size) with a host mmap of its own: a file (``fd`` at
        ``offset``) and/or shared memory (MAP_SHARED), so stores reach the file or the
        processes that share it. ``host_prot`` defaults to read+write, which a shared
        mapping of a read-only file refuses (the caller passes the guest's protection
        then). Raises OSError with the host's errno when the host mmap fails.
        """
        end = self._check_range(start, size)
        flags = (mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE) | _MAP_FIXED
        if fd < 0:
            flags |= mmap.MAP_ANONYMOUS
        prot = mmap.PROT_READ | mmap.PROT_WRITE if host_prot is None else host_prot
        result = _libc.mmap(self.base + start, end - start, prot, flags, fd, offset)
        if result in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            raise OSError(err, f"host mmap of {end - start:#x} bytes failed")
        self._insert(Region(start, end, perms))

    def map_alias(self, start: int, size: int, perms: int, host: int) -> None:
        """Map [start, start+size) to the same pages as the host's shared mapping at
        ``host`` (a second mapping of them, mremap with old size 0: zero copy, so
        stores by either side are seen by the other). Raises OSError with the host's
        errno when it refuses (EINVAL: ``host`` is not page-aligned shared memory)."""
        end = self._check_range(start, size)
        result = _libc_mremap(host, 0, end - start, _MREMAP_MAYMOVE | _MREMAP_FIXED,
                              self.base + start)
        if result in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            self._release_host(start, end)  # (keep the range reserved)
            raise OSError(err, "host mremap of a shared mapping failed")
        self._insert(Region(start, end, perms))

    def remap(self, old: int, old_size: int, new: int, new_size: int) -> None:
        """Move and/or resize the mapping at [old, old+old_size) to [new, new+new_size)
        with a host mremap, so its contents and backing (file, shared) stay the same.
        The guest permissions are those of the page at ``old``. The destination must
        be free except for the old range itself (growing in place: ``new == old``).
        Raises OSError with the host's errno when the host refuses.
        """
        self._check_range(old, old_size)
        end = self._check_range(new, new_size)
        region = self.region(old)
        if region is None:
            raise OSError(14, f"no mapping at {old:#x}")  # EFAULT
        perms = region.perms
        old_end = old + page_ceil(old_size)
        if new == old:
            if end > old_end:  # release the host reservation the mapping grows into
                _libc.munmap(self.base + old_end, end - old_end)
            result = _libc_mremap(self.base + old, old_end - old, end - new, 0, 0)
        else:
            result = _libc_mremap(self.base + old, old_end - old, end - new,
                                  _MREMAP_MAYMOVE | _MREMAP_FIXED, self.base + new)
        if result in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            if new == old and end > old_end:
                self._release_host(old_end, end)
            raise OSError(err, "host mremap failed")
        if new != old:
            self._release_host(old, old_end)  # keep the old range reserved
            self._carve(old, old_end)
            for listener in self.on_change:
                listener(old, old_end)
        self._insert(Region(new, end, perms))

    def is_free(self, start: int, size: int) -> bool:
        """True if no page of [start, start+size) is mapped (and the range fits)."""
        end = start + page_ceil(size)
        if start < 0 or end > self.size or size <= 0:
            return False
        i = bisect.bisect(self._starts, start) - 1
        if i >= 0 and self._regions[i].end > start:
            return False
        return i + 1 >= len(self._regions) or self._regions[i + 1].start >= end

    def find_free(self, size: int, low: int, high: int, align: int = abi.PAGE_SIZE) -> int | None:
        """The highest ``align``-aligned start of ``size`` unmapped bytes inside
        [low, high) (a top-down search, like Linux's mmap), or None."""
        size = page_ceil(size)
        top = min(high, self.size)
        low = max(low, 0)
        for r in reversed(self._regions):
            if r.start >= top:
                continue  # above the window
            if r.end < top:  # a gap [r.end, top)
                candidate = (top - size) & ~(align - 1)
                if candidate >= max(r.end, low):
                    return candidate
            top = r.start
            if top - size < low:
                return None
        candidate = (top - size) & ~(align - 1)
        return candidate if candidate >= low else None

    def map_mmio(self, start: int, size: int, handler: MmioHandler, perms: int = Perm.RW) -> None:
        end = self._check_range(start, size)
        self._release_host(start, end)
        self._insert(Region(start, end, perms, handler))

    def unmap(self, start: int, size: int) -> None:
        end = self._check_range(start, size)
        self._release_host(start, end)
        self._carve(start, end)
        for listener in self.on_change:
            listener(start, end)

    def protect(self, start: int, size: int, perms: int) -> None:
        """Change guest permissions of mapped RAM in [start, start+size)."""
        end = self._check_range(start, size)
        pieces = [r for r in self._regions if r.start < end and r.end > start]
        for r in pieces:
            lo, hi = max(r.start, start), min(r.end, end)
            self._insert(Region(lo, hi, perms, r.mmio))

    def _release_host(self, start: int, end: int) -> None:
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED | _MAP_NORESERVE
        _host_mmap(self.base + start, end - start, _PROT_NONE, flags)

    def region(self, addr: int) -> Region | None:
        i = bisect.bisect(self._starts, addr) - 1
        if i >= 0 and addr < self._regions[i].end:
            return self._regions[i]
        return None

    def regions(self) -> list[Region]:
        return list(self._regions)

    # -- the translator the softmmu uses ------------------------------------------------
    def translate(self, vaddr: int, access: Access, mmu_idx: int) -> tuple[Region, int]:
        """(region, host address of the page) for a guest access, or raise GuestFault."""
        i = bisect.bisect(self._starts, vaddr) - 1  # (self.region, inlined: per fetch)
        if i < 0 or vaddr >= (region := self._regions[i]).end:
            raise GuestFault(MemFault(vaddr, access, FaultKind.UNMAPPED))
        if not region.perms & _NEEDED[access]:
            raise GuestFault(MemFault(vaddr, access, FaultKind.PROTECTION))
        return region, self.base + (vaddr & _PAGE_FLOOR)

    # -- Python-side access (loaders, syscalls, the embedding API) ----------------------
    def _host_span(self, addr: int, size: int, access: Access) -> int:
        end = addr + size
        pos = addr
        while pos < end:
            region, _ = self.translate(pos, access, 0)
            if region.mmio is not None:
                raise GuestFault(MemFault(pos, access, FaultKind.PROTECTION))
            pos = region.end
        return self.base + addr

    def read(self, addr: int, size: int, *, check: Access = Access.READ) -> bytes:
        """Guest bytes at addr; raises GuestFault unless every byte is readable RAM."""
        if size == 0:
            return b""
        return ctypes.string_at(self._host_span(addr, size, check), size)

    def write(self, addr: int, data: bytes, *, check: Access | None = Access.WRITE) -> None:
        """Store bytes at addr. ``check=None`` ignores guest permissions (loaders)."""
        if not data:
            return
        if check is None:
            for pos in range(page_floor(addr), addr + len(data), abi.PAGE_SIZE):
                if (r := self.region(pos)) is None or r.mmio is not None:
                    raise GuestFault(MemFault(max(pos, addr), Access.WRITE, FaultKind.UNMAPPED))
            host = self.base + addr
        else:
            host = self._host_span(addr, len(data), check)
        ctypes.memmove(host, data, len(data))


class CodeWriteListener(Protocol):
    def page_has_code(self, page: int) -> bool: ...

    def invalidate_range(self, start: int, end: int) -> int: ...


Translator = Callable[[int, Access, int], tuple[Region, int]]


class NativeTlbWalker(Protocol):
    """A native TLB refill (system mode): see riscv/priv/native_walk.py."""

    @property
    def valid(self) -> bool: ...

    def publish(self) -> None: ...

    def fill(self, vaddr: int, access: int, mmu_idx: int, entry: int,
             code_ok: bool = False) -> bool: ...

    def set_large_pages(self, ranges: list[tuple[int, int]]) -> None: ...

    def block(self, reason: str, blocked: bool) -> None: ...

    def counters(self) -> dict[str, int]: ...


class Softmmu:
    """One CPU's TLB filling and slow paths.

    Args:
        cpu: the CPU state holding the TLB tables.
        memory: host memory (``%mem`` base) and the default translator.
        code: where writes to pages holding translations are reported.
        translator: ``(vaddr, access, mmu_idx) -> (region, host page address)`` or
            GuestFault; defaults to the page map. System mode plugs a page-table walk in.
    """

    def __init__(self, cpu: CpuState, memory: GuestMemory, code: CodeWriteListener,
                 translator: Translator | None = None) -> None:
        self.cpu = cpu
        self.memory = memory
        self.code = code
        self.translate = translator or memory.translate
        self._fetch_via_tlb = translator is not None
        self.mem_base = memory.base
        layout = cpu.layout
        self._tlb_base = cpu.address + layout.tlb_offset
        self._tlb_table_size, self._tlb_mask = layout.tlb_table_size, layout.tlb_mask
        self.stats = {"fills": 0, "slow_loads": 0, "slow_stores": 0, "code_writes": 0,
                      "code_overwrites": 0, "mmio_hits": 0}
        # The device regions of the MMIO entries fill put in the TLB, by entry address:
        # (page, region as the page sees it). An access whose TLB tag is that page with
        # only TLB_MMIO uses it without a walk, as QEMU keeps MMIO pages in its TLB
        # (the iotlb). Only fill writes MMIO tags (the native walker leaves MMIO to it,
        # flushes write all-ones), so a tag equal to page | TLB_MMIO is this fill's.
        self._mmio_entries: dict[int, tuple[int, Region]] = {}
        # Stores to code pages overwriting in address order: where the last one ended
        # (physical) and how many blocks the run of them invalidated so far.
        self._smc_next = -1
        self._smc_victims = 0
        self._smc_swept = -1  # the page the run invalidated to its end (once a page)
        # A debugger's watchpoints: (start, end, Access.READ / WRITE / None for both).
        # Their pages take the slow path (a flag bit in the TLB tags), which stops an
        # access to a watched byte before it happens (a WATCHPOINT fault).
        self.watchpoints: tuple[tuple[int, int, Access | None], ...] = ()
        self.watch_pages: frozenset[int] = frozenset()
        self.watch_suspended = False  # (the debugger steps over the access it stopped)
        # System mode: the architecture's native page-table walker (e.g.
        # riscv/priv/native_walk.NativeWalker), which translated code calls on a TLB
        # miss. Its context is published here, at the first fill after a TLB flush
        # invalidated it; every fill tries it before walking in Python.
        self.walker: NativeTlbWalker | None = None

    def counters(self) -> dict[str, int]:
        """The slow-path counts, and the native walker's fills and fallbacks."""
        out = dict(self.stats)
        if self.walker is not None:
            out.update(self.walker.counters())
        return out

    def _check_watch(self, addr: int, size: int, access: Access) -> None:
        end = addr + size
        for start, stop, kind in self.watchpoints:
            if start < end and addr < stop and (kind is None or kind is access):
                raise GuestFault(MemFault(start, access, FaultKind.WATCHPOINT))

    def fill(self, vaddr: int, access: Access, mmu_idx: int) -> tuple[Region, int]:
        """Translate vaddr for access, install its page in the TLB, and return the
        region and the host address of vaddr (0 for MMIO)."""
        walker = self.walker
        if walker is not None:
            if not walker.valid:
                walker.publish()
            # Plain RAM: the native walk fills the entry (a store to a page with code
            # too: NOTDIRTY, the caller invalidates); Python only for the rest.
            entry = self._tlb_entry_address(mmu_idx, vaddr)
            if walker.fill(vaddr, access, mmu_idx, entry, code_ok=True):
                return _RAM, self.mem_base + ((vaddr + _u64_at(entry + _ADDEND).value)
                                              & 0xFFFF_FFFF_FFFF_FFFF)
        region, host_page = self.translate(vaddr, access, mmu_idx)
        page = vaddr & _PAGE_FLOOR
        flags = 0
        if region.mmio is not None:
            flags = abi.TLB_MMIO
            self._mmio_entries[self._tlb_entry_address(mmu_idx, vaddr)] = (page, region)
        invalid = abi.TLB_INVALID
        read = page | flags if region.perms & Perm.R else invalid
        write = page | flags if region.perms & Perm.W else invalid
        # Code pages are tracked physically (the host offset of the page).
        if write != invalid and self.code.page_has_code(host_page - self.mem_base):
            write |= abi.TLB_NOTDIRTY
        code = page | flags if region.perms & Perm.X else invalid
        if page in self.watch_pages:  # (any flag bit makes the fast path miss)
            read = read if read == invalid else read | abi.TLB_NOTDIRTY
            write = write if write == invalid else write | abi.TLB_NOTDIRTY
        addend = 0 if region.mmio is not None else host_page - self.mem_base - page
        self.cpu.set_tlb_entry(mmu_idx, vaddr, read, write, code, addend)
        self.stats["fills"] += 1
        host = 0 if region.mmio is not None else host_page + (vaddr - page)
        return region, host

    # -- accesses within one page ---------------------------------------------------------
    def _cached_mmio(self, entry: int, tag: int, page: int) -> Region | None:
        """The device region of a current MMIO TLB entry (``tag``: its read or write
        tag), or None."""
        if tag == page | _MMIO:
            cached = self._mmio_entries.get(entry)
            if cached is not None and cached[0] == page:
                return cached[1]
        return None

    def _read_page(self, addr: int, size: int, mmu_idx: int) -> int:
        entry = self._tlb_entry_address(mmu_idx, addr)
        region = self._cached_mmio(entry, _u64_at(entry).value, addr & _PAGE_FLOOR)
        if region is not None:  # (QEMU's io_readx after a TLB hit: no walk)
            self.stats["mmio_hits"] += 1
            return region.mmio.read(addr - region.start, size) & ((1 << (8 * size)) - 1)
        region, host = self.fill(addr, Access.READ, mmu_idx)
        if region.mmio is not None:
            return region.mmio.read(addr - region.start, size) & ((1 << (8 * size)) - 1)
        return int.from_bytes(ctypes.string_at(host, size), "little")

    def _write_page(self, addr: int, size: int, value: int, mmu_idx: int) -> None:
        entry = self._tlb_entry_address(mmu_idx, addr)
        tag = _u64_at(entry + _ADDR_WRITE).value
        if tag == (addr & _PAGE_FLOOR) | _MMIO:
            region = self._cached_mmio(entry, tag, addr & _PAGE_FLOOR)
            if region is not None:  # (QEMU's io_writex after a TLB hit: no walk)
                self.stats["mmio_hits"] += 1
                region.mmio.write(addr - region.start, size, value & ((1 << (8 * size)) - 1))
                return
        if tag == (addr & _PAGE_FLOOR) | _NOTDIRTY:
            # The entry is current and only says the page holds translated code (or is
            # watched: checked before): no walk, as QEMU's notdirty_write after a TLB
            # hit. (Stores to a page whose code stays, e.g. data beside it, come here.)
            phys = (addr + _u64_at(entry + _ADDEND).value) & 0xFFFF_FFFF_FFFF_FFFF
            host = self.mem_base + phys
        else:
            region, host = self.fill(addr, Access.WRITE, mmu_idx)
            if region.mmio is not None:
                region.mmio.write(addr - region.start, size, value & ((1 << (8 * size)) - 1))
                return
            phys = host - self.mem_base
        page = page_floor(phys)
        code = self.code
        if code.page_has_code(page):
            # Invalidate the blocks the store overlaps before it completes; when none
            # is left on the page, refill: its writes take the fast path again (QEMU's
            # tlb_unprotect_code; while some remain the entry stays as it is).
            self.stats["code_writes"] += 1
            end = phys + size
            if phys == self._smc_next:
                if self._smc_victims >= SMC_OVERWRITE_BLOCKS and page != self._smc_swept:
                    # The page is being overwritten in order (a freed page cleared,
                    # another copied over it) and has already taken that many of its
                    # blocks: the store's run goes on to the end of the page, so
                    # invalidate up to there now, not a block per store (a page of
                    # blocks cleared 8 bytes a store is ~500 slow stores). Once per
                    # page and run: code translated again meanwhile is running (the
                    # copy loop's own, after the bytes it copies to) and stays.
                    end = page + abi.PAGE_SIZE
                    self._smc_swept = page
                    self.stats["code_overwrites"] += 1
            else:
                self._smc_victims = 0
                self._smc_swept = -1
            self._smc_next = phys + size
            self._smc_victims += code.invalidate_range(phys, end)
            if not code.page_has_code(page):
                # The entry is current (it was, or was just filled): clear its flag in
                # place rather than walking again (a rewrite loop paid two fills a
                # rewrite). A watched page keeps it: its stores stay slow.
                write_tag = _u64_at(entry + _ADDR_WRITE)
                vpage = addr & _PAGE_FLOOR
                if write_tag.value == vpage | _NOTDIRTY and vpage not in self.watch_pages:
                    write_tag.value = vpage
                else:
                    self.fill(addr, Access.WRITE, mmu_idx)
                if end != phys + size:
                    # The run's next slow store is on the next page (this one's are
                    # fast now): when it starts there, it goes on (Linux frees its
                    # init code a page after the other, and a page whose blocks sit
                    # at its end would cost a slow store for each 8 bytes before).
                    self._smc_next = page + abi.PAGE_SIZE
        elif _u64_at(entry + _ADDR_WRITE).value == (addr & _PAGE_FLOOR) | _NOTDIRTY \
                and page_floor(addr) not in self.watch_pages:
            # A stale NOTDIRTY: the page's code went (through another mapping, or by
            # a DMA write) since the entry was filled. Unprotect the entry (QEMU's
            # tlb_set_dirty), or every store through it comes here.
            _u64_at(entry + _ADDR_WRITE).value = addr & _PAGE_FLOOR
        ctypes.memmove(host, value.to_bytes(size, "little"), size)

    @staticmethod
    def _check_alignment(addr: int, memop: MemOp, access: Access) -> None:
        if addr & ((1 << memop.align_log2) - 1):
            raise GuestFault(MemFault(addr, access, FaultKind.MISALIGNED))

    @staticmethod
    def _crosses_page(addr: int, size: int) -> bool:
        return (addr & (abi.PAGE_SIZE - 1)) + size > abi.PAGE_SIZE

    # -- the slow paths (called from native code through softmmu callbacks) -------------
    def load(self, addr: int, memop: MemOp, mmu_idx: int) -> int:
        """The value of a guest load, byte-swapped and sign-extended to 64 bits."""
        self.stats["slow_loads"] += 1
        self._check_alignment(addr, memop, Access.READ)
        size = memop.size
        if self.watchpoints and not self.watch_suspended:
            self._check_watch(addr, size, Access.READ)
        if self._crosses_page(addr, size):
            first = abi.PAGE_SIZE - (addr & (abi.PAGE_SIZE - 1))
            low = self._read_page(addr, first, mmu_idx)
            high = self._read_page(addr + first, size - first, mmu_idx)
            raw = low | (high << (8 * first))
        else:
            raw = self._read_page(addr, size, mmu_idx)
        if memop.big_endian:
            raw = int.from_bytes(raw.to_bytes(size, "little"), "big")
        if memop.signed and raw >> (memop.bits - 1):
            raw -= 1 << memop.bits
        return raw & 0xFFFF_FFFF_FFFF_FFFF

    def store(self, addr: int, value: int, memop: MemOp, mmu_idx: int) -> None:
        self.stats["slow_stores"] += 1
        self._check_alignment(addr, memop, Access.WRITE)
        size = memop.size
        if self.watchpoints and not self.watch_suspended:
            self._check_watch(addr, size, Access.WRITE)
        value &= (1 << memop.bits) - 1
        if memop.big_endian:
            value = int.from_bytes(value.to_bytes(size, "big"), "little")
        if self._crosses_page(addr, size):
            first = abi.PAGE_SIZE - (addr & (abi.PAGE_SIZE - 1))
            # Check both pages before writing either: a fault leaves memory unchanged.
            self.translate(addr, Access.WRITE, mmu_idx)
            self.translate(addr + first, Access.WRITE, mmu_idx)
            self._write_page(addr, first, value & ((1 << (8 * first)) - 1), mmu_idx)
            self._write_page(addr + first, size - first, value >> (8 * first), mmu_idx)
        else:
            self._write_page(addr, size, value, mmu_idx)

    def probe_atomic(self, addr: int, memop: MemOp, mmu_idx: int) -> int:
        """Make addr writable RAM in the TLB for an atomic access; return its addend."""
        self._check_alignment(addr, memop, Access.WRITE)
        if self.watchpoints and not self.watch_suspended:  # (reads and writes)
            size = max(memop.size, 1 << memop.align_log2)
            self._check_watch(addr, size, Access.READ)
            self._check_watch(addr, size, Access.WRITE)
        self.translate(addr, Access.READ, mmu_idx)
        region, host = self.fill(addr, Access.WRITE, mmu_idx)
        if region.mmio is not None:
            raise GuestFault(MemFault(addr, Access.WRITE, FaultKind.MMIO_ATOMIC))
        phys = host - self.mem_base
        if self.code.page_has_code(page_floor(phys)):
            self.stats["code_writes"] += 1
            # (a pair's 16 bytes: its alignment, larger than the size, covers them)
            self.code.invalidate_range(phys, phys + max(memop.size, 1 << memop.align_log2))
        return self.cpu.tlb_entry(mmu_idx, addr)[3]

    def _tlb_entry_address(self, mmu_idx: int, vaddr: int) -> int:
        # (CpuState.tlb_entry_address without its calls: code lookups ask at every exit)
        return (self._tlb_base + mmu_idx * self._tlb_table_size
                + ((vaddr >> abi.PAGE_BITS) & self._tlb_mask) * abi.TLB_ENTRY_SIZE)

    def cached_read_phys(self, vaddr: int, mmu_idx: int) -> int | None:
        """The physical address (host offset) the TLB maps ``vaddr`` to for reads of
        RAM at ``mmu_idx``, or None when it holds no such entry. Fills nothing, walks
        nothing: for questions asked between accesses (which reservation a DMA write
        hits)."""
        entry = self._tlb_entry_address(mmu_idx, vaddr)
        if _u64_at(entry).value != vaddr & _PAGE_FLOOR:  # (MMIO and watched pages: flags)
            return None
        return (vaddr + _u64_at(entry + _ADDEND).value) & 0xFFFF_FFFF_FFFF_FFFF

    def code_phys(self, vaddr: int, mmu_idx: int) -> int:
        """The physical address (host offset) code at ``vaddr`` is fetched from at
        ``mmu_idx``: from the TLB's code entry when it has one, else by filling it
        (raises GuestFault when vaddr is not executable)."""
        page = vaddr & _PAGE_FLOOR
        entry = self._tlb_entry_address(mmu_idx, vaddr)
        if _u64_at(entry + _ADDR_CODE).value == page:  # executable RAM (MMIO has a flag)
            return (vaddr + _u64_at(entry + _ADDEND).value) & 0xFFFF_FFFF_FFFF_FFFF
        region, host = self.fill(vaddr, Access.FETCH, mmu_idx)
        if region.mmio is not None:
            raise GuestFault(MemFault(vaddr, Access.FETCH, FaultKind.PROTECTION))
        return host - self.mem_base

    def fetch(self, addr: int, size: int, mmu_idx: int = 0) -> bytes:
        """Guest code bytes for the translator (raises GuestFault if not executable)."""
        offset = addr & (abi.PAGE_SIZE - 1)
        if offset + size <= abi.PAGE_SIZE:  # (every fetch but a page-crossing one)
            return _string_at(self._code_host_page(addr, mmu_idx) + offset, size)
        out = b""
        while size > 0:
            chunk = min(size, abi.PAGE_SIZE - (addr & (abi.PAGE_SIZE - 1)))
            out += _string_at(self._code_host_page(addr, mmu_idx)
                              + (addr - page_floor(addr)), chunk)
            addr += chunk
            size -= chunk
        return out

    def _code_host_page(self, addr: int, mmu_idx: int) -> int:
        """The host address of the page code at ``addr`` is fetched from. System mode
        (a translator given): from the TLB's code entry when it has one, else filling
        it — a page walk per fetched instruction cost a quarter of a Linux boot."""
        if self._fetch_via_tlb:
            page = addr & _PAGE_FLOOR
            entry = self._tlb_entry_address(mmu_idx, addr)
            if _u64_at(entry + _ADDR_CODE).value == page:  # executable RAM (MMIO: flag)
                return self.mem_base + ((page + _u64_at(entry + _ADDEND).value)
                                        & 0xFFFF_FFFF_FFFF_FFFF)
            region, host = self.fill(addr, _FETCH, mmu_idx)
            if region.mmio is not None:
                raise GuestFault(MemFault(addr, _FETCH, FaultKind.PROTECTION))
            return host - (addr - page)
        region, host_page = self.translate(addr, _FETCH, mmu_idx)
        if region.mmio is not None:
            raise GuestFault(MemFault(addr, _FETCH, FaultKind.PROTECTION))
        return host_page
