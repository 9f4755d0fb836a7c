"""Creating new qcow2 images (for -snapshot overlays and tests), laid out as
``qemu-img create -f qcow2`` does: header, refcount table, refcount block, L1 table."""

from __future__ import annotations

import os

from blockdev.errors import BlockError
from blockdev.qcow2.cache import encode_be_array
from blockdev.qcow2.format import (
    COMPAT_LAZY_REFCOUNTS,
    MAX_CLUSTER_BITS,
    MIN_CLUSTER_BITS,
    V2_HEADER_LENGTH,
    V3_HEADER_LENGTH,
    Header,
    serialize_header,
    size_to_l1,
)
from blockdev.qcow2.refcount import _codec

DEFAULT_CLUSTER_SIZE = 65536


def create_qcow2(filename: str | os.PathLike[str], size: int, *, version: int = 3,
                 cluster_size: int = DEFAULT_CLUSTER_SIZE, refcount_bits: int = 16,
                 lazy_refcounts: bool = False, backing_file: str | None = None,
                 backing_format: str | None = None) -> None:
    """Creates (or truncates) ``filename`` as an empty qcow2 image of ``size`` bytes."""
    if version not in (2, 3):
        raise BlockError(f"Unsupported qcow2 version {version}")
    cluster_bits = cluster_size.bit_length() - 1
    if cluster_size != 1 << cluster_bits or not \
            MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise BlockError("Cluster size must be a power of two between 512 and 2048k")
    order = refcount_bits.bit_length() - 1
    if refcount_bits != 1 << order or order > 6:
        raise BlockError("Refcount width must be a power of two and may not exceed 64 bits")
    if version == 2 and refcount_bits != 16:
        raise BlockError("Different refcount widths than 16 bits require compatibility "
                         "level 1.1 or above (use compat=1.1 or greater)")
    if version == 2 and lazy_refcounts:
        raise BlockError("Lazy refcounts only supported with compatibility level 1.1 and "
                         "above (use compat=1.1 or greater)")
    if size < 0 or size % 512:
        raise BlockError("Image size must be a multiple of 512 bytes")
    if backing_format and not backing_file:
        raise BlockError("Backing format cannot be used without backing file")
    l1_size = size_to_l1(size, cluster_bits)
    l1_clusters = -(-l1_size * 8 // cluster_size)
    codec = _codec(order, cluster_size)
    # Header, refcount table, refcount blocks, L1 table: enough blocks to count them all.
    table_clusters = blocks = 1
    while True:
        used = 1 + table_clusters + blocks + l1_clusters
        need_blocks = -(-used // codec.entries)
        need_table = -(-need_blocks * 8 // cluster_size)
        if need_blocks <= blocks and need_table <= table_clusters:
            break
        blocks, table_clusters = max(blocks, need_blocks), max(table_clusters, need_table)
    table_offset = cluster_size
    blocks_offset = table_offset + table_clusters * cluster_size
    l1_offset = blocks_offset + blocks * cluster_size
    header = Header(version=version, cluster_bits=cluster_bits, size=size, l1_size=l1_size,
                    l1_table_offset=l1_offset, refcount_table_offset=table_offset,
                    refcount_table_clusters=table_clusters, refcount_order=order,
                    compatible_features=COMPAT_LAZY_REFCOUNTS if lazy_refcounts else 0,
                    header_length=V3_HEADER_LENGTH if version == 3 else V2_HEADER_LENGTH,
                    backing_file=backing_file, backing_format=backing_format)
    table = [0] * (table_clusters * cluster_size // 8)
    block_data = []
    for k in range(blocks):
        table[k] = blocks_offset + k * cluster_size
        block = codec.new()
        for cluster in range(k * codec.entries, min(used, (k + 1) * codec.entries)):
            codec.set(block, cluster - k * codec.entries, 1)
        block_data.append(codec.encode(block))
    from array import array
    image = bytearray(serialize_header(header).ljust(cluster_size, b"\0"))
    image += encode_be_array(array("Q", table))
    for data in block_data:
        image += data
    image += bytes(l1_size * 8)  # the file ends with the L1 entries, as QEMU's does
    fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, image)
        os.fsync(fd)
    finally:
        os.close(fd)
