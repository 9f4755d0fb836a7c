"""The physical address space of system mode: named RAM, ROM and MMIO regions.

:class:`PhysicalAddressSpace` sits on a :class:`~llvmtcg.runtime.softmmu.GuestMemory`
(one host reservation, physical address ``a`` at host ``base + a``), so RAM and ROM
pages take the softmmu's fast path, and MMIO goes to a device's ``read(offset, size)`` /
``write(offset, size, value)``. Unlike GuestMemory, which lets a new mapping replace
what was there (mmap semantics), the bus refuses a region that overlaps another and
names both; the one sanctioned overlap is an explicit :meth:`add_overlay` (QEMU's
``memory_region_add_subregion_overlap``, which spike uses to put HTIF's mailboxes at
the ELF's ``tohost``/``fromhost`` symbols inside RAM).

Granularity. RAM and ROM are whole pages. Devices need not be: QEMU's UART is 8 bytes
and a virtio-mmio slot 0x200. The pages an MMIO region touches are mapped in
GuestMemory as one *window* that finds the region by physical address, so several
small devices may share a page, and an access to a hole (a part of the page no region
covers) raises :class:`BusError` — what QEMU reports as a decode error and RISC-V
turns into an access fault. A page cannot mix RAM/ROM with MMIO except through an
overlay, whose window serves the bytes around the overlay from a copy of the RAM page.

Rules the system-mode softmmu applies on top (they need the faulting virtual address,
which only it knows): a guest store to ROM is discarded (QEMU's ``TLB_DISCARD_WRITE``);
an access with no region, or a :class:`BusError` from a window, is an access fault.

Loaders write RAM and ROM with :meth:`load`; bus masters use :meth:`dma_read` /
:meth:`dma_write`, which reach RAM only and invalidate translated code they overwrite
through ``on_code_write`` listeners (QEMU's ``invalidate_and_set_dirty``).
"""

from __future__ import annotations

import bisect
import ctypes
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.runtime.softmmu import GuestMemory, MmioHandler, Perm, page_ceil, page_floor

DEFAULT_SPACE_SIZE = 1 << 38  # 256 GiB of physical addresses (RAM at 2 GiB and up)


class RegionKind(enum.Enum):
    """What a region is; the value is the word ``info mtree`` prints for it."""

    RAM = "ram"
    ROM = "rom"
    MMIO = "i/o"


@dataclass(frozen=True, slots=True)
class PhysRegion:
    name: str
    base: int
    size: int
    kind: RegionKind
    handler: MmioHandler | None = None
    overlay: bool = False  # an MMIO region laid over RAM on purpose (add_overlay)

    @property
    def end(self) -> int:
        """First address after the region."""
        return self.base + self.size

    def __str__(self) -> str:
        return f"'{self.name}' [{self.base:#x}, {self.end:#x})"


class RegionError(ValueError):
    """A region that cannot be added: it overlaps another, or breaks a size rule."""


class BusError(Exception):
    """An access that no region serves (QEMU's MEMTX_DECODE_ERROR), or a DMA/loader
    access outside the memory it may reach."""

    def __init__(self, addr: int, size: int, is_write: bool, reason: str) -> None:
        super().__init__(f"{'write' if is_write else 'read'} of {size} bytes at {addr:#x}: "
                         f"{reason}")
        self.addr = addr
        self.size = size
        self.is_write = is_write


class _Window:
    """An MmioHandler for a page-aligned span in GuestMemory: dispatches each access by
    physical address to the MMIO region that holds it; with ``backing`` (overlay
    pages), addresses outside every region are the RAM bytes kept there."""

    __slots__ = ("space", "start", "end", "backing")

    def __init__(self, space: PhysicalAddressSpace, start: int, end: int,
                 backing: bytearray | None = None) -> None:
        self.space = space
        self.start = start
        self.end = end
        self.backing = backing

    def read(self, offset: int, size: int) -> int:
        addr = self.start + offset
        region = self.space._mmio_at(addr)
        if region is not None:
            assert region.handler is not None
            return region.handler.read(addr - region.base, size)
        if self.backing is not None:
            return int.from_bytes(self.backing[offset:offset + size], "little")
        raise BusError(addr, size, False, "no device or memory there")

    def write(self, offset: int, size: int, value: int) -> None:
        addr = self.start + offset
        region = self.space._mmio_at(addr)
        if region is not None:
            assert region.handler is not None
            region.handler.write(addr - region.base, size, value)
            return
        if self.backing is not None:
            self.backing[offset:offset + size] = value.to_bytes(size, "little")
            return
        raise BusError(addr, size, True, "no device or memory there")


class PhysicalAddressSpace:
    """Named, non-overlapping RAM, ROM and MMIO regions over one GuestMemory.

    Args:
        size: bytes of physical address space (a reservation, not committed memory).
        memory: an existing GuestMemory to build on (its current mappings are left
            alone; normally the space creates its own).
    """

    def __init__(self, size: int = DEFAULT_SPACE_SIZE, memory: GuestMemory | None = None) -> None:
        self.memory = memory if memory is not None else GuestMemory(size)
        self._regions: list[PhysRegion] = []  # sorted by base; overlays included
        self._bases: list[int] = []
        self._mmio: list[PhysRegion] = []  # sorted by base: what windows dispatch to
        self._mmio_bases: list[int] = []
        self._windows: list[_Window] = []  # sorted by start, disjoint page spans
        self._overlays: list[PhysRegion] = []  # the only regions that may overlap RAM
        self.on_code_write: list[Callable[[int, int], object]] = []  # (start, end)
        # Every DMA write, before it is made: harts drop LR reservations on the range.
        self.on_dma_write: list[Callable[[int, int], object]] = []  # (start, end)

    def close(self) -> None:
        self.memory.close()

    # -- adding regions -------------------------------------------------------------------
    def add_ram(self, name: str, base: int, size: int) -> PhysRegion:
        """Zero-filled RAM at [base, base+size); both page aligned."""
        region = PhysRegion(name, base, size, RegionKind.RAM)
        self._check_memory_region(region)
        self._check_free(region)
        self.memory.map(base, size, Perm.RWX)
        self._remember(region)
        return region

    def add_rom(self, name: str, base: int, data_or_size: bytes | int) -> PhysRegion:
        """ROM at ``base``: read-only and executable for the guest, writable by
        :meth:`load`. Given bytes, the region is that data rounded up to whole pages
        (the rest reads as zeros); given a size, it is zero-filled."""
        if isinstance(data_or_size, int):
            size, data = data_or_size, b""
        else:
            data = bytes(data_or_size)
            size = page_ceil(len(data)) if data else 0
        region = PhysRegion(name, base, size, RegionKind.ROM)
        self._check_memory_region(region)
        self._check_free(region)
        self.memory.map(base, size, Perm.RX)
        self._remember(region)
        if data:
            self.memory.write(base, data, check=None)
        return region

    def add_mmio(self, name: str, base: int, size: int, handler: MmioHandler) -> PhysRegion:
        """A device's register space at [base, base+size); any size and alignment. The
        handler sees offsets from ``base``."""
        region = PhysRegion(name, base, size, RegionKind.MMIO, handler)
        self._check_bounds(region)
        self._check_free(region)
        self._remember(region)
        self._map_window(page_floor(base), page_ceil(region.end))
        return region

    def add_overlay(self, name: str, base: int, size: int, handler: MmioHandler) -> PhysRegion:
        """An MMIO region laid over RAM on purpose: accesses inside it go to the
        handler, the rest of its pages stay RAM (served from a copy of those pages, so
        they are not executable and take the slow path)."""
        region = PhysRegion(name, base, size, RegionKind.MMIO, handler, overlay=True)
        self._check_bounds(region)
        ram = self.region_at(base)
        if (ram is None or ram.kind is not RegionKind.RAM or region.end > ram.end
                or any(r is not ram for r in self._overlapping(region))):
            raise RegionError(f"overlay {region} must lie inside one RAM region "
                              f"and cover no other region")
        start, end = page_floor(base), page_ceil(region.end)
        if self._windows_in(start, end):
            raise RegionError(f"overlay {region} shares a page with another overlay")
        backing = bytearray(ctypes.string_at(self.memory.base + start, end - start))
        self._remember(region)
        self._install_window(_Window(self, start, end, backing))
        return region

    def _check_bounds(self, region: PhysRegion) -> None:
        if not region.name:
            raise RegionError("a region needs a name")
        if region.size <= 0:
            raise RegionError(f"region {region.name!r} has size {region.size:#x}")
        if region.base < 0 or region.end > self.memory.size:
            raise RegionError(f"region {region} is outside the physical address space "
                              f"[0, {self.memory.size:#x})")

    def _check_memory_region(self, region: PhysRegion) -> None:
        self._check_bounds(region)
        if region.base % abi.PAGE_SIZE or region.size % abi.PAGE_SIZE:
            raise RegionError(f"{region.kind.value} region {region} is not made of whole "
                              f"{abi.PAGE_SIZE}-byte pages")

    def _check_free(self, region: PhysRegion) -> None:
        # An overlay is named before the RAM beneath it: it is the more specific clash.
        for other in sorted(self._overlapping(region), key=lambda r: not r.overlay):
            raise RegionError(f"region {region} overlaps region {other}")

    def _overlapping(self, region: PhysRegion) -> Iterator[PhysRegion]:
        return (r for r in self._regions if r.base < region.end and region.base < r.end)

    def _remember(self, region: PhysRegion) -> None:
        i = bisect.bisect(self._bases, region.base)
        self._regions.insert(i, region)
        self._bases.insert(i, region.base)
        if region.kind is RegionKind.MMIO:
            j = bisect.bisect(self._mmio_bases, region.base)
            self._mmio.insert(j, region)
            self._mmio_bases.insert(j, region.base)
        if region.overlay:
            self._overlays.append(region)

    # -- windows ------------------------------------------------------------------------
    def _windows_in(self, start: int, end: int) -> list[_Window]:
        return [w for w in self._windows if w.start < end and start < w.end]

    def _map_window(self, start: int, end: int) -> None:
        """Map [start, end) as one window, merged with windows it touches (so one
        page is never served by two windows)."""
        for window in self._windows_in(start, end):
            start, end = min(start, window.start), max(end, window.end)
        self._install_window(_Window(self, start, end))

    def _install_window(self, window: _Window) -> None:
        self._windows = [w for w in self._windows
                         if not (w.start < window.end and window.start < w.end)]
        bisect.insort(self._windows, window, key=lambda w: w.start)
        self.memory.map_mmio(window.start, window.end - window.start, window)

    def _window_at(self, addr: int) -> _Window | None:
        i = bisect.bisect([w.start for w in self._windows], addr) - 1
        if i >= 0 and addr < self._windows[i].end:
            return self._windows[i]
        return None

    def _mmio_at(self, addr: int) -> PhysRegion | None:
        i = bisect.bisect(self._mmio_bases, addr) - 1
        if i >= 0 and addr < self._mmio[i].end:
            return self._mmio[i]
        return None

    # -- looking things up ----------------------------------------------------------------
    def region_at(self, addr: int) -> PhysRegion | None:
        """The region holding ``addr`` (an overlay before the RAM beneath it)."""
        return self._mmio_at(addr) or self._memory_region_at(addr)

    def regions(self) -> list[PhysRegion]:
        """Every region, by base address."""
        return list(self._regions)

    def mtree(self) -> str:
        """The regions as QEMU's ``info mtree`` prints the system address space."""
        lines = ["address-space: memory",
                 "  0000000000000000-ffffffffffffffff (prio 0, i/o): system"]
        for r in self._regions:
            prio = 1 if r.overlay else 0
            lines.append(f"    {r.base:016x}-{r.end - 1:016x} (prio {prio}, {r.kind.value}): "
                         f"{r.name}")
        return "\n".join(lines) + "\n"

    # -- loaders: RAM and ROM, ignoring guest permissions ---------------------------------
    def load(self, addr: int, data: bytes) -> None:
        """Write ``data`` into RAM or ROM at ``addr`` (firmware, kernel, device tree);
        BusError if any byte is elsewhere. Bytes under an overlay go to the RAM beneath
        it, which the guest does not see (QEMU's ROM loader skips device regions)."""
        self._check_memory(addr, len(data), True, (RegionKind.RAM, RegionKind.ROM),
                           through_overlays=True)
        self._copy_in(addr, data)

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes of RAM or ROM at ``addr`` (loaders, debuggers, tests); under
        an overlay, the RAM beneath it."""
        self._check_memory(addr, size, False, (RegionKind.RAM, RegionKind.ROM),
                           through_overlays=True)
        return self._copy_out(addr, size)

    # -- bus masters: RAM only ------------------------------------------------------------
    # Devices move data with many small accesses (ring indices, descriptors, one page
    # per buffer): an access inside one RAM region with no overlay anywhere (every
    # machine but spike with HTIF in RAM) is checked with one bisect and copied with one
    # ctypes call; anything else takes the general path, which names what is in the way.
    def _ram_host(self, addr: int, size: int) -> int | None:
        """Host address of [addr, addr+size) when it lies in one RAM region and no
        overlay exists; None when the general path must decide."""
        if self._overlays or size <= 0:
            return None
        i = bisect.bisect(self._bases, addr) - 1
        if i < 0:
            return None
        region = self._regions[i]
        if region.kind is not RegionKind.RAM or addr + size > region.base + region.size:
            return None
        return self.memory.base + addr

    def dma_read(self, addr: int, size: int) -> bytes:
        host = self._ram_host(addr, size)
        if host is not None:
            return ctypes.string_at(host, size)
        self._check_memory(addr, size, False, (RegionKind.RAM,), through_overlays=False)
        return self._copy_out(addr, size)

    def dma_write(self, addr: int, data: bytes) -> None:
        """Store into RAM as a device does; the on_dma_write listeners hear of it first
        (harts drop LR reservations there) and translated code in the pages written is
        invalidated first (the on_code_write listeners)."""
        host = self._ram_host(addr, len(data))
        if host is None:
            self._check_memory(addr, len(data), True, (RegionKind.RAM,),
                               through_overlays=False)
        if data:
            for listener in self.on_dma_write:
                listener(addr, addr + len(data))
        if data and self.on_code_write:
            end = addr + len(data)
            for page in range(page_floor(addr), end, abi.PAGE_SIZE):
                flags = ctypes.c_uint8.from_address(self.memory.page_table
                                                    + (page >> abi.PAGE_BITS)).value
                if flags & abi.PAGE_CODE:
                    for listener in self.on_code_write:
                        listener(addr, end)
                    break
        if host is None:
            self._copy_in(addr, data)
        elif type(data) is bytes:
            ctypes.memmove(host, data, len(data))
        else:  # (a bytearray or memoryview: ctypes.memmove takes only bytes)
            memoryview((ctypes.c_char * len(data)).from_address(host)).cast("B")[:] = data

    def _check_memory(self, addr: int, size: int, is_write: bool,
                      kinds: tuple[RegionKind, ...], *, through_overlays: bool) -> None:
        if size < 0:
            raise BusError(addr, size, is_write, "negative size")
        pos, end = addr, addr + size
        while pos < end:
            region = self._memory_region_at(pos)
            if region is None or region.kind not in kinds:
                what = "nothing" if region is None else f"{region.kind.value} region {region}"
                allowed = " or ".join(k.name for k in kinds)
                raise BusError(addr, size, is_write, f"{pos:#x} is {what}, not {allowed}")
            pos = region.end
        if through_overlays:
            return
        # (Only overlays can overlap the RAM checked above.)
        for region in self._overlays:
            if region.base < end and addr < region.end:
                raise BusError(addr, size, is_write, f"{region} is a device")

    def _memory_region_at(self, addr: int) -> PhysRegion | None:
        """The region at ``addr`` ignoring overlays (regions other than overlays never
        overlap, so only the last one starting at or below ``addr`` can hold it)."""
        i = bisect.bisect(self._bases, addr) - 1
        while i >= 0 and self._regions[i].overlay:
            i -= 1
        if i >= 0 and addr < self._regions[i].end:
            return self._regions[i]
        return None

    def _copy_in(self, addr: int, data: bytes) -> None:
        pos, view = addr, memoryview(data)
        while view:
            window = self._window_at(pos)
            if window is not None and window.backing is not None:
                chunk = min(len(view), window.end - pos)
                window.backing[pos - window.start:pos - window.start + chunk] = view[:chunk]
            else:
                chunk = min(len(view), self._next_window_start(pos) - pos)
                self.memory.write(pos, bytes(view[:chunk]), check=None)
            pos += chunk
            view = view[chunk:]

    def _copy_out(self, addr: int, size: int) -> bytes:
        out, pos, end = bytearray(), addr, addr + size
        while pos < end:
            window = self._window_at(pos)
            if window is not None and window.backing is not None:
                chunk = min(end, window.end) - pos
                out += window.backing[pos - window.start:pos - window.start + chunk]
            else:
                chunk = min(end, self._next_window_start(pos)) - pos
                out += ctypes.string_at(self.memory.base + pos, chunk)
            pos += chunk
        return bytes(out)

    def _next_window_start(self, addr: int) -> int:
        for window in self._windows:
            if window.start > addr:
                return window.start
        return 1 << 64
