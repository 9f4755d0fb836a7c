"""Snapshots of an emulator's registers and memory, restored by copying back only the
pages the guest (or the API) wrote since the last snapshot or restore.

Translated code marks the pages it stores to (``instrument.py``: a byte per guest page
and a list of the pages newly marked, no Python per store); :meth:`Emulator.mem_write`
marks them from Python. A :class:`Snapshot` holds a copy of every mapped region, taken
when it is made. Restoring the snapshot the memory last started from (the latest
snapshot or restore) with the same mappings copies back the listed pages only; any
other restore (another snapshot, changed mappings, a list that overflowed) copies
everything. Translated code of a page a restore rewrites is dropped, as for
``mem_write``.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
from dataclasses import dataclass

from llvmtcg.emulator.instrument import (
    DIRTY_COUNT_FIELD,
    DIRTY_LIST_CAPACITY,
    DIRTY_LIST_FIELD,
    DIRTY_MAP_FIELD,
)
from llvmtcg.emulator.types import Context
from llvmtcg.ir.cpu_layout import PAGE_BITS
from llvmtcg.runtime.cpu_state import CpuState

_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)


@dataclass(frozen=True)
class RegionCopy:
    """One mapped region and its bytes when the snapshot was made."""

    start: int
    end: int  # exclusive
    perms: int
    data: bytes

    @functools.cached_property
    def view(self) -> memoryview:
        """``data`` without copies when sliced."""
        return memoryview(self.data)


@dataclass(frozen=True, eq=False)  # (no slots: the emulator refers to it weakly)
class Snapshot:
    """The registers and memory of an emulator at one moment (:meth:`Emulator.snapshot`).

    Attributes:
        arch: the architecture it was taken from.
        context: the registers.
        regions: the mapped regions and their contents.
    """

    arch: str
    context: Context
    regions: tuple[RegionCopy, ...]

    def region_of(self, page: int) -> RegionCopy | None:
        for region in self.regions:
            if region.start <= page < region.end:
                return region
        return None


class DirtyPages:
    """The dirty-page map and list translated code writes (see the module docstring).

    Args:
        state: the CPU state whose fields point at them.
        page_count: guest pages the map covers (a power of two).
    """

    def __init__(self, state: CpuState, page_count: int) -> None:
        self.page_count = page_count
        self._map = mmap.mmap(-1, page_count,
                              flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
        self._map_view = (ctypes.c_uint8 * page_count).from_buffer(self._map)
        self._list = (ctypes.c_uint64 * DIRTY_LIST_CAPACITY)()
        state.set(DIRTY_MAP_FIELD, ctypes.addressof(self._map_view))
        state.set(DIRTY_LIST_FIELD, ctypes.addressof(self._list))
        self._count = ctypes.c_uint64.from_address(
            state.address + state.layout.offset(DIRTY_COUNT_FIELD))
        self._count.value = 0

    def close(self) -> None:
        del self._map_view
        self._map.close()

    def mark(self, start: int, end: int) -> None:
        """Mark the pages of [start, end) (writes made from Python)."""
        view, count = self._map_view, self._count
        for page in range(start >> PAGE_BITS, ((end - 1) >> PAGE_BITS) + 1):
            page &= self.page_count - 1
            if view[page]:
                continue
            view[page] = 1
            listed = count.value
            if listed < DIRTY_LIST_CAPACITY:
                self._list[listed] = page
                count.value = listed + 1

    def take(self) -> list[int] | None:
        """The guest addresses of the dirty pages (None: too many were listed, so
        all are to be treated as dirty), and clear the map and the list."""
        count = self._count.value
        self._count.value = 0
        if count >= DIRTY_LIST_CAPACITY:
            self._map.madvise(mmap.MADV_DONTNEED)  # (zero again, and uncommitted)
            return None
        pages = self._list[:count]
        view = self._map_view
        for page in pages:
            view[page] = 0
        return [page << PAGE_BITS for page in pages]

