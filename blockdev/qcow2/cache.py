"""Write-back caches of one-cluster metadata tables (L2 tables, refcount blocks) with
QEMU's ordering rules (block/qcow2-cache.c).

A cache may *depend* on another: before any of its dirty tables is written, every
dirty table of the other cache is written and the file flushed. The qcow2 driver sets
"L2 tables depend on refcount blocks" when it increments a refcount (a new reference
reaches the disk only after the count that covers it) and "refcount blocks depend on L2
tables" when it decrements one (a reference disappears before its count drops). With
that, an image killed at any moment has refcounts >= references: leaks, not corruption.
``depends_on_flush`` asks only for a flush of the file first (lazy refcounts: data
before the L2 entries that point at it).
"""

from __future__ import annotations

import sys
from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from blockdev.node import BlockNode

T = TypeVar("T")

_BIG_ENDIAN_HOST = sys.byteorder == "big"


def decode_be_array(typecode: str, data: bytes) -> array:
    """Big-endian table entries as a host-order array."""
    table = array(typecode)
    table.frombytes(data)
    if not _BIG_ENDIAN_HOST and table.itemsize > 1:
        table.byteswap()
    return table


def encode_be_array(table: array) -> bytes:
    if _BIG_ENDIAN_HOST or table.itemsize == 1:
        return table.tobytes()
    copy = array(table.typecode, table)
    copy.byteswap()
    return copy.tobytes()


class TableCache(Generic[T]):
    """Up to ``capacity`` tables of ``table_size`` bytes, keyed by file offset, least
    recently used evicted first (written back if dirty)."""

    def __init__(self, file: BlockNode, table_size: int, capacity: int,
                 decode: Callable[[bytes], T], encode: Callable[[T], bytes]) -> None:
        self.file = file
        self.table_size = table_size
        self.capacity = max(2, capacity)
        self._decode = decode
        self._encode = encode
        self._tables: OrderedDict[int, T] = OrderedDict()
        self._dirty: set[int] = set()
        self.depends: TableCache | None = None
        self.depends_on_flush = False

    def get(self, offset: int) -> T:
        table = self._tables.get(offset)
        if table is not None:
            self._tables.move_to_end(offset)
            return table
        table = self._decode(self.file.read(offset, self.table_size))
        self._insert(offset, table)
        return table

    def cached(self, offset: int) -> bool:
        return offset in self._tables

    def put(self, offset: int, table: T) -> None:
        """Installs a new table (to be written later) at ``offset``."""
        self._tables.pop(offset, None)
        self._insert(offset, table)
        self._dirty.add(offset)

    def mark_dirty(self, offset: int, table: T) -> None:
        """``table``, read from ``offset``, was changed."""
        if self._tables.get(offset) is not table:
            self.put(offset, table)
        else:
            self._dirty.add(offset)

    def forget(self, offset: int) -> None:
        """The cluster at ``offset`` was freed: its table must never be written."""
        self._tables.pop(offset, None)
        self._dirty.discard(offset)

    def forget_all(self) -> None:
        self._tables.clear()
        self._dirty.clear()

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def _insert(self, offset: int, table: T) -> None:
        while len(self._tables) >= self.capacity:
            victim = next(iter(self._tables))
            if victim in self._dirty:
                self._write_dependencies()
                self._write_one(victim)
            del self._tables[victim]
        self._tables[offset] = table

    def _write_one(self, offset: int) -> None:
        self.file.write(offset, self._encode(self._tables[offset]))
        self._dirty.discard(offset)

    def _write_dependencies(self) -> None:
        if self.depends is not None:
            dependency, self.depends = self.depends, None
            dependency.flush()
        elif self.depends_on_flush:
            self.file.flush()
        self.depends_on_flush = False

    def write_dirty(self) -> None:
        """Writes every dirty table (after what they depend on), without a flush."""
        if not self._dirty:
            return
        self._write_dependencies()
        for offset in sorted(self._dirty):
            self._write_one(offset)

    def flush(self) -> None:
        """Writes every dirty table and flushes the file (QEMU's qcow2_cache_flush)."""
        self.write_dirty()
        self.file.flush()

    def set_dependency(self, dependency: TableCache) -> None:
        """From now on, this cache's tables are written only after ``dependency``'s."""
        if dependency.depends is not None:
            # The other way round was required so far: satisfy that first.
            dependency._write_dependencies()
        if self.depends is not None and self.depends is not dependency:
            self._write_dependencies()
        self.depends = dependency
