"""Refcount repair for images left dirty (lazy refcounts, or a crash while the dirty
bit was set): every reference is counted from the L1/L2 tables of the active image and
of all snapshots plus the metadata itself, and the refcount blocks are made to agree
(QEMU repairs a dirty image this way when opening it writable)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blockdev.errors import BlockError
from blockdev.qcow2.cache import decode_be_array
from blockdev.qcow2.format import L1E_OFFSET_MASK, L2E_OFFSET_MASK

if TYPE_CHECKING:
    from array import array

    from blockdev.qcow2.node import Qcow2Node


@dataclass(frozen=True, slots=True)
class RepairResult:
    raised: int  # counts that were too low (references without a count)
    lowered: int  # counts that were too high (leaks)


def count_references(node: Qcow2Node) -> Counter[int]:
    """Expected refcount of every host cluster, from everything but the refcount
    structures themselves."""
    from blockdev.qcow2.node import Cluster, cluster_kind

    cb, cs = node.cluster_bits, node.cluster_size
    file_size = node.file.size
    expected: Counter[int] = Counter()

    def add(offset: int, length: int) -> None:
        for cluster in range(offset >> cb, ((offset + length - 1) >> cb) + 1):
            expected[cluster] += 1

    def walk(l1: array, what: str) -> None:
        for l1_index, l1_entry in enumerate(l1):
            l2_offset = l1_entry & L1E_OFFSET_MASK
            if not l2_offset:
                continue
            if l2_offset & (cs - 1) or l2_offset >= file_size:
                raise BlockError(f"{what} L1 entry {l1_index} points to an invalid L2 "
                                 f"table offset {l2_offset:#x}")
            add(l2_offset, cs)
            table = decode_be_array("Q", node.file.read(l2_offset, cs))
            for l2_index, entry in enumerate(table):
                if not entry:
                    continue
                kind = cluster_kind(entry)
                if kind == Cluster.COMPRESSED:
                    add(*node._compressed_range(entry))
                elif kind in (Cluster.NORMAL, Cluster.ZERO_ALLOC):
                    host = entry & L2E_OFFSET_MASK
                    if host & (cs - 1) or host >= file_size:
                        raise BlockError(f"L2 entry {l2_index} of the table at "
                                         f"{l2_offset:#x} points to an invalid offset "
                                         f"{host:#x}")
                    add(host, cs)

    add(0, cs)
    if len(node.l1):
        add(node.header.l1_table_offset, len(node.l1) * 8)
    walk(node.l1, "active")
    for sn in node.snapshots:
        if sn.l1_size:
            add(sn.l1_table_offset, sn.l1_size * 8)
            walk(node._read_snapshot_l1(sn), f"snapshot {sn.id}")
    if node.header.nb_snapshots:
        add(node.header.snapshots_offset, node._snapshot_table_bytes)
    return expected


def _refcount_structures(node: Qcow2Node) -> Counter[int]:
    refcounts = node.refcounts
    counted: Counter[int] = Counter()
    first = refcounts.table_offset >> node.cluster_bits
    for cluster in range(first, first + refcounts.table_clusters):
        counted[cluster] += 1
    for block in refcounts.block_offsets():
        counted[block >> node.cluster_bits] += 1
    return counted


def repair_refcounts(node: Qcow2Node) -> RepairResult:
    """Makes every refcount equal to the number of references and COPIED flags
    exact."""
    refcounts = node.refcounts
    data = count_references(node)
    expected = data + _refcount_structures(node)
    last_used = max(expected, default=0)
    # New refcount blocks must not land on clusters in use whose count is missing.
    refcounts.alloc_floor = max(last_used + 1, -(-node.file.size >> node.cluster_bits))
    raised = lowered = 0
    try:
        for cluster, count in sorted(expected.items()):
            if refcounts.get(cluster) < count:
                refcounts.set(cluster, count)
                raised += 1
        # Blocks allocated above count themselves; compare everything now.
        expected = data + _refcount_structures(node)
        for table_index in range(len(refcounts.table)):
            if not refcounts.block_offset(table_index):
                continue
            base = table_index << refcounts.block_bits
            for cluster in range(base, base + (1 << refcounts.block_bits)):
                count = refcounts.get(cluster)
                if count != expected.get(cluster, 0):
                    if count < expected.get(cluster, 0):
                        raised += 1
                    else:
                        lowered += 1
                    refcounts.set(cluster, expected.get(cluster, 0))
    finally:
        refcounts.alloc_floor = 0
    refcounts.free_hint = 0
    node._flush_metadata()
    node._fix_copied_flags()
    return RepairResult(raised, lowered)
