"""qcow2 reference counts: the refcount table, refcount blocks (through a TableCache),
cluster allocation and freeing.

Refcount blocks hold 2^refcount_order-bit big-endian counts (1 to 64 bits; sub-byte
widths pack from the least significant bit). Allocation takes the lowest free clusters.
A missing refcount block is placed, like QEMU's, inside the range it describes when it
can (it then counts itself); a full refcount table is replaced by a larger one built,
with the blocks that describe it, in a range no cluster uses yet, and switched to with
one header write, so no moment has an inconsistent table.
"""

from __future__ import annotations

import errno
import struct
from array import array
from collections.abc import Callable
from typing import NoReturn

from blockdev.errors import BlockError
from blockdev.node import BlockNode
from blockdev.qcow2.cache import TableCache, decode_be_array, encode_be_array
from blockdev.qcow2.format import REFT_OFFSET_MASK

_ENTRY = struct.Struct(">Q")


class _ArrayCodec:
    """Refcount blocks of 8-, 16-, 32- or 64-bit entries as host-order arrays."""

    def __init__(self, typecode: str, cluster_size: int) -> None:
        self.typecode = typecode
        self.entries = cluster_size // array(typecode).itemsize
        self.cluster_size = cluster_size

    def decode(self, data: bytes) -> array:
        return decode_be_array(self.typecode, data)

    def encode(self, block: array) -> bytes:
        return encode_be_array(block)

    def new(self) -> array:
        return array(self.typecode, bytes(self.cluster_size))

    @staticmethod
    def get(block: array, index: int) -> int:
        return block[index]

    @staticmethod
    def set(block: array, index: int, value: int) -> None:
        block[index] = value

    @staticmethod
    def first_zero(block: array, start: int) -> int:
        try:
            return block.index(0, start)
        except ValueError:
            return -1


class _BitCodec:
    """Refcount blocks of 1-, 2- or 4-bit entries, bit 0 the least significant."""

    def __init__(self, bits: int, cluster_size: int) -> None:
        self.bits = bits
        self.per_byte = 8 // bits
        self.mask = (1 << bits) - 1
        self.entries = cluster_size * self.per_byte
        self.cluster_size = cluster_size

    def decode(self, data: bytes) -> bytearray:
        return bytearray(data)

    def encode(self, block: bytearray) -> bytes:
        return bytes(block)

    def new(self) -> bytearray:
        return bytearray(self.cluster_size)

    def get(self, block: bytearray, index: int) -> int:
        shift = (index % self.per_byte) * self.bits
        return (block[index // self.per_byte] >> shift) & self.mask

    def set(self, block: bytearray, index: int, value: int) -> None:
        byte, shift = index // self.per_byte, (index % self.per_byte) * self.bits
        block[byte] = (block[byte] & ~(self.mask << shift)) | (value << shift)

    def first_zero(self, block: bytearray, start: int) -> int:
        for index in range(start, self.entries):
            if not self.get(block, index):
                return index
        return -1


def _codec(order: int, cluster_size: int) -> _ArrayCodec | _BitCodec:
    if order < 3:
        return _BitCodec(1 << order, cluster_size)
    typecode = {3: "B", 4: "H", 5: "I" if array("I").itemsize == 4 else "L", 6: "Q"}[order]
    return _ArrayCodec(typecode, cluster_size)


class Refcounts:
    """The refcount structures of one image.

    ``corrupt(message)`` reports metadata found inconsistent (it raises);
    ``freed(offset, kind)`` is told of each cluster whose count dropped to zero;
    ``move_table(offset, clusters)`` writes a new refcount table's place into the
    header (and flushes); ``overlaps(offset, length)`` names the metadata a byte range
    overlaps (None if none): a cluster counted free but holding metadata means the
    counts are wrong, and writing there would destroy the image (QEMU's overlap checks).
    """

    def __init__(self, file: BlockNode, cluster_bits: int, order: int, table_offset: int,
                 table_clusters: int, *, capacity: int, corrupt: Callable[[str], NoReturn],
                 freed: Callable[[int, str], None],
                 move_table: Callable[[int, int], None],
                 overlaps: Callable[[int, int], str | None]) -> None:
        self.file = file
        self.cluster_bits = cluster_bits
        self.cluster_size = 1 << cluster_bits
        self.order = order
        self.block_bits = cluster_bits + 3 - order
        self.block_mask = (1 << self.block_bits) - 1
        self.max_refcount = (1 << (1 << order)) - 1
        self.codec = _codec(order, self.cluster_size)
        self.table_offset = table_offset
        self.table_clusters = table_clusters
        self.table = decode_be_array("Q", file.read(table_offset, table_clusters << cluster_bits))
        self.cache: TableCache = TableCache(file, self.cluster_size, capacity,
                                            self.codec.decode, self.codec.encode)
        self.l2_cache: TableCache | None = None  # the driver's, for write ordering
        self.lazy = False  # lazy refcounts: L2 tables need not wait for refcounts
        self.free_hint = 0  # no free cluster below this index
        self.alloc_floor = 0  # allocate nothing below this index (refcount repair)
        self.layout_version = 0  # bumped when refcount blocks or the table move
        self._corrupt = corrupt
        self._freed = freed
        self._move_table = move_table
        self._overlaps = overlaps

    # -- reading --------------------------------------------------------------------------

    def block_offset(self, table_index: int) -> int:
        """The refcount block for ``table_index``, 0 if it has none."""
        if table_index >= len(self.table):
            return 0
        offset = self.table[table_index] & REFT_OFFSET_MASK
        if offset & (self.cluster_size - 1):
            self._corrupt(f"Refblock offset {offset:#x} unaligned "
                          f"(reftable index: {table_index:#x})")
        if offset and offset >= self.file.size:
            self._corrupt(f"Refblock offset {offset:#x} is past the end of the image file "
                          f"(reftable index: {table_index:#x})")
        return offset

    def get(self, cluster: int) -> int:
        offset = self.block_offset(cluster >> self.block_bits)
        if not offset:
            return 0
        return self.codec.get(self.cache.get(offset), cluster & self.block_mask)

    def block_offsets(self) -> list[int]:
        return [entry & REFT_OFFSET_MASK for entry in self.table if entry & REFT_OFFSET_MASK]

    # -- updating -------------------------------------------------------------------------

    def update(self, offset: int, length: int, addend: int, kind: str = "other") -> None:
        """Adds ``addend`` to the count of every cluster overlapping the byte range."""
        if length <= 0 or addend == 0:
            return
        if addend < 0 and self.l2_cache is not None:
            # A reference must be gone from the disk before its count drops.
            self.cache.set_dependency(self.l2_cache)
        first, last = offset >> self.cluster_bits, (offset + length - 1) >> self.cluster_bits
        if addend > 0:
            self._ensure_blocks(first, last - first + 1)
        freed: list[int] = []
        cluster = first
        while cluster <= last:
            table_index = cluster >> self.block_bits
            block_offset = self.block_offset(table_index)
            if not block_offset:
                self._corrupt(f"Cluster {cluster << self.cluster_bits:#x} is in use but "
                              "has no refcount block")
            block = self.cache.get(block_offset)
            end = min(last + 1, (table_index + 1) << self.block_bits)
            for index in range(cluster & self.block_mask, ((end - 1) & self.block_mask) + 1):
                value = self.codec.get(block, index) + addend
                if value < 0:
                    self.cache.mark_dirty(block_offset, block)
                    host = ((table_index << self.block_bits) | index) << self.cluster_bits
                    self._corrupt(f"Refcount of cluster {host:#x} would drop below zero")
                if value > self.max_refcount:
                    self.cache.mark_dirty(block_offset, block)
                    raise BlockError(f"Reference count overflow (refcounts are "
                                     f"{1 << self.order} bits wide)", errno.ERANGE)
                self.codec.set(block, index, value)
                if value == 0:
                    freed.append((table_index << self.block_bits) | index)
            self.cache.mark_dirty(block_offset, block)
            cluster = end
        if addend > 0 and self.l2_cache is not None:
            if self.lazy:
                self.l2_cache.depends_on_flush = True
            else:
                # A new reference reaches the disk only after the count covering it.
                self.l2_cache.set_dependency(self.cache)
        for cluster in freed:
            self.free_hint = min(self.free_hint, cluster)
            self._freed(cluster << self.cluster_bits, kind)

    def set(self, cluster: int, value: int) -> None:
        """Sets one count (refcount repair)."""
        if value > self.max_refcount:
            raise BlockError(f"Reference count overflow (refcounts are {1 << self.order} "
                             "bits wide)", errno.ERANGE)
        if value:
            self._ensure_blocks(cluster, 1)
        block_offset = self.block_offset(cluster >> self.block_bits)
        if not block_offset:
            return  # no block: the count is 0 already
        block = self.cache.get(block_offset)
        self.codec.set(block, cluster & self.block_mask, value)
        self.cache.mark_dirty(block_offset, block)
        if value == 0:
            self.free_hint = min(self.free_hint, cluster)

    def free(self, offset: int, length: int, kind: str = "other") -> None:
        self.update(offset, length, -1, kind)

    # -- allocation -----------------------------------------------------------------------

    def alloc(self, length: int) -> int:
        """Allocates contiguous clusters for ``length`` bytes (count 1 each); returns
        the offset of the first."""
        count = max(1, -(-length >> self.cluster_bits))
        while True:
            start = self._find_free(count)
            if self._ensure_blocks(start, count):
                continue  # metadata was placed meanwhile, perhaps in our run: look again
            self._check_free(start << self.cluster_bits, count << self.cluster_bits)
            self.update(start << self.cluster_bits, count << self.cluster_bits, 1)
            if self.free_hint == start:
                self.free_hint = start + count
            return start << self.cluster_bits

    def _find_free(self, count: int) -> int:
        scan_from = max(self.free_hint, self.alloc_floor)
        cluster = self._next_free(scan_from)
        if scan_from == self.free_hint:
            self.free_hint = cluster
        while True:
            run = 1
            while run < count and self.get(cluster + run) == 0:
                run += 1
            if run == count:
                return cluster
            cluster = self._next_free(cluster + run + 1)

    def _next_free(self, cluster: int) -> int:
        while True:
            table_index = cluster >> self.block_bits
            block_offset = self.block_offset(table_index)
            if not block_offset:
                return cluster
            index = self.codec.first_zero(self.cache.get(block_offset),
                                          cluster & self.block_mask)
            if index >= 0:
                return (table_index << self.block_bits) | index
            cluster = (table_index + 1) << self.block_bits

    def _check_free(self, offset: int, length: int) -> None:
        what = self._overlaps(offset, length)
        if what is not None:
            self._corrupt(f"Preventing invalid write on metadata (overlaps with {what})")

    def _ensure_blocks(self, first: int, count: int) -> bool:
        """Makes sure refcount blocks cover clusters ``first``..``first+count-1``;
        True if anything had to be allocated for that."""
        allocated = False
        last_index = (first + count - 1) >> self.block_bits
        for table_index in range(first >> self.block_bits, last_index + 1):
            while self._ensure_block(table_index):
                allocated = True
        return allocated

    def _ensure_block(self, table_index: int) -> bool:
        """One step towards a refcount block for ``table_index``: True if something was
        allocated (call again until False)."""
        if table_index >= len(self.table):
            self._grow_table(table_index)
            return True
        if self.block_offset(table_index):
            return False
        place = self._next_free(max(self.free_hint, self.alloc_floor))
        self._check_free(place << self.cluster_bits, self.cluster_size)
        block = self.codec.new()
        if place >> self.block_bits == table_index:
            self.codec.set(block, place & self.block_mask, 1)  # it counts itself
            self.file.write(place << self.cluster_bits, self.codec.encode(block))
        else:
            if self._ensure_block(place >> self.block_bits):
                return True  # the place's own block was made first; choose again
            self.file.write(place << self.cluster_bits, self.codec.encode(block))
            self.update(place << self.cluster_bits, self.cluster_size, 1)
            self.cache.write_dirty()
        self.file.flush()  # the block and its count, before the table points at it
        self.table[table_index] = place << self.cluster_bits
        self.file.write(self.table_offset + 8 * table_index,
                        _ENTRY.pack(place << self.cluster_bits))
        self.file.flush()
        self.layout_version += 1
        return True

    def _grow_table(self, needed_index: int) -> None:
        """Replaces the refcount table with one that has an entry ``needed_index``."""
        old_entries = len(self.table)
        entries_per_cluster = self.cluster_size // 8
        # Every cluster in a range past the old table's reach is free (it has no count),
        # so the new table and the blocks describing it go to the first such range that
        # also lies past anything allocated without a count yet (refcount repair).
        floor_index = -(-self.alloc_floor >> self.block_bits)
        first_index = max(old_entries, floor_index)
        meta_start = first_index << self.block_bits
        area_blocks = 1
        while True:
            entries = max(needed_index + 1, first_index + area_blocks,
                          old_entries + old_entries // 2 + 1)
            table_clusters = -(-entries // entries_per_cluster)
            area = area_blocks + table_clusters
            needed_blocks = -(-area >> self.block_bits)
            if needed_blocks <= area_blocks:
                break
            area_blocks = needed_blocks
        entries = table_clusters * entries_per_cluster
        blocks = []
        for k in range(area_blocks):
            block = self.codec.new()
            base = (first_index + k) << self.block_bits
            for cluster in range(max(base, meta_start),
                                 min(base + (1 << self.block_bits), meta_start + area)):
                self.codec.set(block, cluster - base, 1)
            blocks.append(block)
        new_table = array("Q", self.table)
        new_table.extend([0] * (entries - old_entries))
        for k in range(area_blocks):
            new_table[first_index + k] = (meta_start + k) << self.cluster_bits
        table_offset = (meta_start + area_blocks) << self.cluster_bits
        self._check_free(meta_start << self.cluster_bits, area << self.cluster_bits)
        self.cache.write_dirty()
        for k, block in enumerate(blocks):
            self.file.write((meta_start + k) << self.cluster_bits, self.codec.encode(block))
        self.file.write(table_offset, encode_be_array(new_table))
        self.file.flush()
        self._move_table(table_offset, table_clusters)
        old_offset, old_clusters = self.table_offset, self.table_clusters
        self.table, self.table_offset, self.table_clusters = new_table, table_offset, \
            table_clusters
        self.layout_version += 1
        self.update(old_offset, old_clusters << self.cluster_bits, -1)
