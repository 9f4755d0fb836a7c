"""The qcow2 format node: guest clusters mapped through L1/L2 tables onto host clusters
of the file child, with copy-on-write, backing files, zero and compressed clusters,
internal snapshots, and QEMU's rules for keeping the image consistent.

Write ordering (what makes ``kill -9`` at any moment leave leaks, never corruption):
a data cluster is written before the L2 entry that points at it is changed (in the
cache, written later); an L2 table reaches the disk only after the refcount blocks
counting what it references (TableCache dependencies, see cache.py); a reference is
removed from the disk before its count drops; a new L2 table, a new L1 table, a new
snapshot table and a new refcount table are written and flushed before the entry or
header field pointing at them is written. ``flush`` writes both caches and fsyncs.

Corruption found at run time (an entry pointing outside the file, into metadata, or
unaligned) is QEMU's qcow2_signal_corruption: with a writable image the corrupt bit is
set in the header and the node refuses all further I/O; either way the request fails
with EIO and a message goes to ``warn``.
"""

from __future__ import annotations

import errno
import struct
import time
import zlib
from array import array
from collections.abc import Callable
from enum import Enum
from typing import NoReturn

from blockdev.errors import BlockError
from blockdev.node import DEFAULT_FLAGS, BlockNode, NodeFlags
from blockdev.qcow2.cache import TableCache, decode_be_array, encode_be_array
from blockdev.qcow2.format import (
    COMPAT_LAZY_REFCOUNTS,
    COMPRESSED_SECTOR,
    COMPRESSION_NAMES,
    COMPRESSION_ZLIB,
    CRYPT_NONE,
    FEATURE_INCOMPATIBLE,
    INCOMPAT_CORRUPT,
    INCOMPAT_DIRTY,
    INCOMPAT_SUPPORTED,
    L1E_OFFSET_MASK,
    L2E_OFFSET_MASK,
    MAX_CLUSTER_BITS,
    OFFSET_AUTOCLEAR,
    OFFSET_INCOMPATIBLE,
    OFFSET_L1,
    OFFSET_REFTABLE,
    OFFSET_SIZE,
    OFFSET_SNAPSHOTS,
    OFLAG_COMPRESSED,
    OFLAG_COPIED,
    OFLAG_ZERO,
    REFT_OFFSET_MASK,
    Header,
    Snapshot,
    parse_header,
    parse_snapshot_table,
    serialize_header,
    serialize_snapshot_table,
    size_to_l1,
)
from blockdev.qcow2.refcount import Refcounts

_ENTRY = struct.Struct(">Q")
_L2_CACHE_MAX_BYTES = 32 << 20  # QEMU 7.2's default maximum L2 cache
_REFCOUNT_CACHE_TABLES = 16


class Cluster(Enum):
    """What a guest cluster's L2 entry says (QEMU's QCow2ClusterType)."""

    UNALLOCATED = 0  # read from the backing file, or zeros
    ZERO_PLAIN = 1  # reads as zeros, no host cluster
    ZERO_ALLOC = 2  # reads as zeros, a host cluster kept for it
    NORMAL = 3
    COMPRESSED = 4


def cluster_kind(entry: int) -> Cluster:
    if entry & OFLAG_COMPRESSED:
        return Cluster.COMPRESSED
    if entry & OFLAG_ZERO:
        return Cluster.ZERO_ALLOC if entry & L2E_OFFSET_MASK else Cluster.ZERO_PLAIN
    return Cluster.NORMAL if entry & L2E_OFFSET_MASK else Cluster.UNALLOCATED


Warn = Callable[[str], None]


class Qcow2Node(BlockNode):
    """A qcow2 image on ``file``. The backing file named in the header is opened by the
    graph and attached with ``attach_backing`` (``backing_filename`` and
    ``backing_format`` say what it is)."""

    driver = "qcow2"

    def __init__(self, file: BlockNode, *, node_name: str, read_only: bool,
                 flags: NodeFlags = DEFAULT_FLAGS, warn: Warn | None = None,
                 lazy_refcounts: bool | None = None, l2_cache_size: int | None = None,
                 refcount_cache_size: int | None = None) -> None:
        super().__init__(node_name, read_only, flags)
        self.children["file"] = file
        self._warn: Warn = warn or (lambda message: None)
        self._unusable = False  # after a fatal corruption, as QEMU's bs->drv = NULL
        self._corruption_reported = False
        self.header = header = self._read_header(file)
        self._check_features(header, read_only)
        self.version = header.version
        self.cluster_bits = header.cluster_bits
        self.cluster_size = 1 << header.cluster_bits
        self.l2_bits = header.cluster_bits - 3
        self.l2_entries = 1 << self.l2_bits
        self.l1_shift = header.cluster_bits + self.l2_bits
        self.size = header.size
        self.backing_filename = header.backing_file
        self.backing_format = header.backing_format
        # Compressed cluster descriptors: host offset below csize_shift, sector count above.
        self._csize_shift = 62 - (self.cluster_bits - 8)
        self._csize_mask = (1 << (self.cluster_bits - 8)) - 1
        self._coffset_mask = (1 << self._csize_shift) - 1
        self._last_decompressed: tuple[int, bytes] | None = None
        if lazy_refcounts is None:
            lazy_refcounts = bool(header.compatible_features & COMPAT_LAZY_REFCOUNTS)
        if lazy_refcounts and self.version < 3:
            raise BlockError("Lazy refcounts require a qcow2 image with at least qemu 1.1 "
                             "compatibility level")
        self.lazy_refcounts = lazy_refcounts

        self.l1 = decode_be_array("Q", file.read(header.l1_table_offset, header.l1_size * 8))
        l2_tables = (l2_cache_size // self.cluster_size if l2_cache_size
                     else min(max(len(self.l1), 16), _L2_CACHE_MAX_BYTES >> self.cluster_bits))
        self.l2_cache: TableCache[array] = TableCache(
            file, self.cluster_size, l2_tables, lambda data: decode_be_array("Q", data),
            encode_be_array)
        self.refcounts = Refcounts(
            file, self.cluster_bits, header.refcount_order, header.refcount_table_offset,
            header.refcount_table_clusters,
            capacity=(refcount_cache_size // self.cluster_size if refcount_cache_size
                      else _REFCOUNT_CACHE_TABLES),
            corrupt=self._signal_corruption, freed=self._cluster_freed,
            move_table=self._write_reftable_location, overlaps=self._overlaps)
        self.refcounts.l2_cache = self.l2_cache
        self.refcounts.lazy = lazy_refcounts
        self._check_refcount_table()
        self.snapshots, self._snapshot_table_bytes = parse_snapshot_table(
            file.read, header.snapshots_offset, header.nb_snapshots, header.size,
            self.cluster_size, file.size)
        self._metadata: dict[int, str] | None = None
        self._metadata_version = -1

        if not read_only:
            if header.autoclear_features:
                # We maintain none of the autoclear features (bitmaps): their data
                # becomes stale with our first write, so the bits go first.
                header.autoclear_features = 0
                self._write_header_field(OFFSET_AUTOCLEAR, ">Q", 0)
            if header.incompatible_features & INCOMPAT_DIRTY:
                from blockdev.qcow2.check import repair_refcounts
                try:
                    repair_refcounts(self)
                except BlockError as error:
                    raise BlockError(f"Could not repair dirty image: {error}") from None
                self._mark_clean()

    # -- opening --------------------------------------------------------------------------

    @staticmethod
    def _read_header(file: BlockNode) -> Header:
        head = file.read(0, min(file.size, 4096))
        if len(head) >= 24 and head[:4] == b"QFI\xfb":
            cluster_bits = struct.unpack_from(">I", head, 20)[0]
            if 12 < cluster_bits <= MAX_CLUSTER_BITS:
                head = file.read(0, min(file.size, 1 << cluster_bits))
        return parse_header(head, file.size)

    @staticmethod
    def _check_features(header: Header, read_only: bool) -> None:
        unsupported = header.incompatible_features & ~INCOMPAT_SUPPORTED
        if unsupported:
            # QEMU's report_unsupported_feature: names from the image's feature table
            # (ours for the features QEMU has and we lack), then the unnamed bits.
            names = []
            for bit in range(64):
                name = header.feature_name(FEATURE_INCOMPATIBLE, bit)
                if unsupported >> bit & 1 and name is not None:
                    names.append(name)
                    unsupported &= ~(1 << bit)
            if unsupported:
                names.append(f"Unknown incompatible feature: {unsupported:x}")
            raise BlockError(f"Unsupported qcow2 feature(s): {', '.join(names)}",
                             errno.ENOTSUP)
        if header.crypt_method != CRYPT_NONE:
            raise BlockError("Encrypted qcow2 images are not supported", errno.ENOTSUP)
        if header.compression_type != COMPRESSION_ZLIB:
            name = COMPRESSION_NAMES.get(header.compression_type, str(header.compression_type))
            raise BlockError(f"qcow2: unsupported compression type: {name}", errno.ENOTSUP)
        if header.incompatible_features & INCOMPAT_CORRUPT and not read_only:
            raise BlockError("qcow2: Image is corrupt; cannot be opened read/write",
                             errno.EACCES)

    def _check_refcount_table(self) -> None:
        """Refcount blocks are written in place, so one placed on the header or the
        tables would destroy them: refuse such an image at once."""
        cb, header = self.cluster_bits, self.header
        reftable = range(header.refcount_table_offset >> cb,
                         (header.refcount_table_offset >> cb) + header.refcount_table_clusters)
        l1_end = header.l1_table_offset + 8 * header.l1_size
        l1 = range(header.l1_table_offset >> cb, -(-l1_end >> cb) if header.l1_size else 0)
        for index, entry in enumerate(self.refcounts.table):
            offset = entry & REFT_OFFSET_MASK
            if not offset:
                continue
            cluster = offset >> cb
            if offset & (self.cluster_size - 1) or offset >= self.file.size or \
                    cluster == 0 or cluster in reftable or cluster in l1:
                raise BlockError(f"Invalid reference count table entry {index}: refcount "
                                 f"block offset {offset:#x}")

    def attach_backing(self, backing: BlockNode | None) -> None:
        if backing is None:
            self.children.pop("backing", None)
        else:
            self.children["backing"] = backing

    @property
    def file(self) -> BlockNode:
        return self.children["file"]

    @property
    def corrupt(self) -> bool:
        return bool(self.header.incompatible_features & INCOMPAT_CORRUPT)

    @property
    def dirty(self) -> bool:
        return bool(self.header.incompatible_features & INCOMPAT_DIRTY)

    # -- header updates -------------------------------------------------------------------

    def _write_header_field(self, offset: int, fmt: str, *values: int) -> None:
        """Writes header fields in place and flushes."""
        self.file.write(offset, struct.pack(fmt, *values))
        self.file.flush()

    def _write_reftable_location(self, offset: int, clusters: int) -> None:
        self._write_header_field(OFFSET_REFTABLE, ">QI", offset, clusters)
        self.header.refcount_table_offset = offset
        self.header.refcount_table_clusters = clusters
        self._metadata = None

    def rewrite_header(self) -> None:
        """Writes the whole header area (fields, extensions, backing file name)."""
        self.file.write(0, serialize_header(self.header))
        self.file.flush()

    def _mark_dirty(self) -> None:
        """Lazy refcounts: refcounts on disk may lag from now on, so the image says so
        before the first change (QEMU's qcow2_mark_dirty)."""
        if self.lazy_refcounts and not self.dirty:
            self.file.flush()
            features = self.header.incompatible_features | INCOMPAT_DIRTY
            self._write_header_field(OFFSET_INCOMPATIBLE, ">Q", features)
            self.header.incompatible_features = features

    def _mark_clean(self) -> None:
        if self.dirty:
            self._flush_metadata()
            features = self.header.incompatible_features & ~INCOMPAT_DIRTY
            self._write_header_field(OFFSET_INCOMPATIBLE, ">Q", features)
            self.header.incompatible_features = features

    # -- corruption -----------------------------------------------------------------------

    def _signal_corruption(self, message: str) -> NoReturn:
        fatal = not self.read_only
        if not self._corruption_reported:
            self._corruption_reported = True
            if fatal:
                self._warn(f"qcow2: Marking image as corrupt: {message}; further corruption "
                           "events will be suppressed")
            else:
                self._warn(f"qcow2: Image is corrupt: {message}; further non-fatal "
                           "corruption events will be suppressed")
        if fatal and not self._unusable:
            self._unusable = True
            self.l2_cache.forget_all()
            self.refcounts.cache.forget_all()
            features = self.header.incompatible_features | INCOMPAT_CORRUPT
            try:
                self._write_header_field(OFFSET_INCOMPATIBLE, ">Q", features)
                self.header.incompatible_features = features
            except OSError:
                pass
        raise BlockError(f"qcow2 image '{self.filename}' is corrupt: {message}", errno.EIO)

    def _check_usable(self) -> None:
        if self._unusable:
            raise BlockError(f"qcow2 image '{self.filename}' was found corrupt and is no "
                             "longer usable", errno.EIO)

    def metadata_map(self) -> dict[int, str]:
        """Host cluster index -> what metadata lives there (QEMU's overlap checks)."""
        if self._metadata is not None and self._metadata_version == \
                self.refcounts.layout_version:
            return self._metadata
        cb = self.cluster_bits
        meta: dict[int, str] = {0: "qcow2_header"}

        def add(offset: int, length: int, what: str) -> None:
            for cluster in range(offset >> cb, (offset + length - 1 >> cb) + 1 if length
                                 else offset >> cb):
                meta.setdefault(cluster, what)

        add(self.header.l1_table_offset, len(self.l1) * 8, "active L1 table")
        add(self.refcounts.table_offset, self.refcounts.table_clusters << cb,
            "refcount table")
        for block in self.refcounts.block_offsets():
            meta.setdefault(block >> cb, "refcount block")
        add(self.header.snapshots_offset, self._snapshot_table_bytes, "snapshot table")
        for sn in self.snapshots:
            add(sn.l1_table_offset, sn.l1_size * 8, "inactive L1 table")
        for entry in self.l1:
            if entry & L1E_OFFSET_MASK:
                meta.setdefault((entry & L1E_OFFSET_MASK) >> cb, "active L2 table")
        self._metadata, self._metadata_version = meta, self.refcounts.layout_version
        return meta

    def _overlaps(self, offset: int, length: int) -> str | None:
        meta = self.metadata_map()
        for cluster in range(offset >> self.cluster_bits,
                             ((offset + length - 1) >> self.cluster_bits) + 1):
            what = meta.get(cluster)
            if what is not None:
                return what
        return None

    def _check_l2_offset(self, offset: int, l1_index: int) -> None:
        if offset & (self.cluster_size - 1):
            self._signal_corruption(f"L2 table offset {offset:#x} unaligned "
                                    f"(L1 index: {l1_index:#x})")
        if offset >= self.file.size:
            self._signal_corruption(f"L2 table offset {offset:#x} is past the end of the "
                                    f"image file (L1 index: {l1_index:#x})")
        what = self.metadata_map().get(offset >> self.cluster_bits)
        if what not in (None, "active L2 table"):
            self._signal_corruption(f"L2 table offset {offset:#x} overlaps with {what} "
                                    f"(L1 index: {l1_index:#x})")

    def _check_data_offset(self, host: int, l2_offset: int, l2_index: int) -> None:
        where = f"(L2 offset: {l2_offset:#x}, L2 index: {l2_index:#x})"
        if host & (self.cluster_size - 1):
            self._signal_corruption(f"Cluster allocation offset {host:#x} unaligned {where}")
        if host >= self.file.size:
            self._signal_corruption(f"Data cluster offset {host:#x} is past the end of the "
                                    f"image file {where}")
        what = self.metadata_map().get(host >> self.cluster_bits)
        if what is not None:
            self._signal_corruption(f"Data cluster offset {host:#x} overlaps with {what} "
                                    f"{where}")

    # -- mapping --------------------------------------------------------------------------

    def _l2_table(self, l1_index: int) -> tuple[int, array] | None:
        """The L2 table for ``l1_index`` (for reading), None if unallocated."""
        if l1_index >= len(self.l1):
            return None
        offset = self.l1[l1_index] & L1E_OFFSET_MASK
        if not offset:
            return None
        self._check_l2_offset(offset, l1_index)
        return offset, self.l2_cache.get(offset)

    def _writable_l2(self, l1_index: int) -> tuple[int, array]:
        """The L2 table for ``l1_index``, allocated or copied (when shared with a
        snapshot) so that it may be changed."""
        if l1_index >= len(self.l1):
            self._grow_l1(l1_index + 1)
        entry = self.l1[l1_index]
        old = entry & L1E_OFFSET_MASK
        if old:
            self._check_l2_offset(old, l1_index)
            if entry & OFLAG_COPIED:
                return old, self.l2_cache.get(old)
        new = self.refcounts.alloc(self.cluster_size)
        table = array("Q", self.l2_cache.get(old)) if old else \
            array("Q", bytes(self.cluster_size))
        self.l2_cache.put(new, table)
        self.l2_cache.flush()  # the table before the L1 entry that points at it
        self.l1[l1_index] = new | OFLAG_COPIED
        self._write_l1_entry(l1_index)
        self._metadata = None
        if old:
            self.refcounts.free(old, self.cluster_size)
        return new, table

    def _write_l1_entry(self, index: int) -> None:
        self.file.write(self.header.l1_table_offset + 8 * index, _ENTRY.pack(self.l1[index]))
        self.file.flush()

    def _write_l1(self) -> None:
        self.file.write(self.header.l1_table_offset, encode_be_array(self.l1))
        self.file.flush()

    def _grow_l1(self, min_entries: int) -> None:
        """Moves the active L1 table to a larger place (QEMU's qcow2_grow_l1_table)."""
        new_size = max(min_entries, len(self.l1))
        if new_size == len(self.l1):
            return
        new_l1 = array("Q", self.l1)
        new_l1.extend([0] * (new_size - len(self.l1)))
        offset = self.refcounts.alloc(new_size * 8)
        self.refcounts.cache.flush()  # the new table's counts first
        self.file.write(offset, encode_be_array(new_l1))
        self.file.flush()
        self._write_header_field(OFFSET_L1, ">IQ", new_size, offset)
        old_offset, old_size = self.header.l1_table_offset, len(self.l1)
        self.header.l1_table_offset, self.header.l1_size, self.l1 = offset, new_size, new_l1
        self._metadata = None
        if old_size:
            self.refcounts.free(old_offset, old_size * 8)

    def _cluster_freed(self, offset: int, kind: str) -> None:
        """A host cluster's count dropped to zero."""
        self.l2_cache.forget(offset)
        if self._last_decompressed and self._last_decompressed[0] >> self.cluster_bits == \
                offset >> self.cluster_bits:
            self._last_decompressed = None
        if self._metadata is not None and (offset >> self.cluster_bits) in self._metadata:
            self._metadata = None
        if kind in ("request", "snapshot"):  # QEMU's pass-discard-request/-snapshot
            self.file.discard(offset, self.cluster_size)

    def _compressed_range(self, entry: int) -> tuple[int, int]:
        """Host offset and length of a compressed cluster's data."""
        offset = entry & self._coffset_mask
        sectors = ((entry >> self._csize_shift) & self._csize_mask) + 1
        return offset, sectors * COMPRESSED_SECTOR - (offset & (COMPRESSED_SECTOR - 1))

    def _free_entry(self, entry: int, kind: str = "other") -> None:
        """Drops the reference an L2 entry held."""
        match cluster_kind(entry):
            case Cluster.NORMAL | Cluster.ZERO_ALLOC:
                self.refcounts.free(entry & L2E_OFFSET_MASK, self.cluster_size, kind)
            case Cluster.COMPRESSED:
                self.refcounts.free(*self._compressed_range(entry), kind)
            case _:
                pass

    def _decompress(self, entry: int, l2_offset: int, l2_index: int) -> bytes:
        offset, length = self._compressed_range(entry)
        if self._last_decompressed and self._last_decompressed[0] == offset:
            return self._last_decompressed[1]
        if offset >= self.file.size:
            self._signal_corruption(f"Compressed cluster offset {offset:#x} is past the end "
                                    f"of the image file (L2 offset: {l2_offset:#x}, L2 "
                                    f"index: {l2_index:#x})")
        data = self.file.read(offset, length)
        try:
            # Raw deflate (no zlib header), window 2^12, as QEMU writes it; the stream
            # may end anywhere once a whole cluster came out.
            out = zlib.decompressobj(-12).decompress(data, self.cluster_size)
        except zlib.error as error:
            raise OSError(errno.EIO, f"compressed cluster at {offset:#x} is damaged: "
                                     f"{error}") from None
        if len(out) != self.cluster_size:
            raise OSError(errno.EIO, f"compressed cluster at {offset:#x} is damaged: it "
                                     f"inflates to {len(out)} bytes")
        self._last_decompressed = (offset, out)
        return out

    def _read_backing(self, guest: int, length: int) -> bytes:
        backing = self.backing
        if backing is None or guest >= backing.size:
            return bytes(length)
        inside = min(length, backing.size - guest)
        data = backing.read(guest, inside)
        return data if inside == length else data + bytes(length - inside)

    def _reads_zero(self, entry: int, guest: int) -> bool:
        """Whether a cluster reads as zeros without looking at its data."""
        kind = cluster_kind(entry)
        if kind in (Cluster.ZERO_PLAIN, Cluster.ZERO_ALLOC):
            return True
        return kind == Cluster.UNALLOCATED and (self.backing is None
                                                or guest >= self.backing.size)

    def _read_cluster(self, cluster: int, entry: int, l2_offset: int, l2_index: int) -> bytes:
        """The whole of guest cluster ``cluster`` as mapped by ``entry``."""
        match cluster_kind(entry):
            case Cluster.NORMAL:
                host = entry & L2E_OFFSET_MASK
                self._check_data_offset(host, l2_offset, l2_index)
                return self.file.read(host, self.cluster_size)
            case Cluster.COMPRESSED:
                return self._decompress(entry, l2_offset, l2_index)
            case Cluster.UNALLOCATED:
                return self._read_backing(cluster << self.cluster_bits, self.cluster_size)
            case _:
                return bytes(self.cluster_size)

    # -- reading --------------------------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        self._check_usable()
        self._check_request(offset, length)
        out = bytearray(length)
        self._read_into(out, offset, self._clip(offset, length))
        return bytes(out)

    def _read_into(self, out: bytearray, guest: int, length: int) -> None:
        """Fills ``out[:length]`` from guest offset ``guest``; contiguous host clusters
        are read with one call."""
        cs, cb = self.cluster_size, self.cluster_bits
        run_host = run_pos = run_length = 0
        pos = 0
        while pos < length:
            at = guest + pos
            within = at & (cs - 1)
            n = min(cs - within, length - pos)
            located = self._l2_table(at >> self.l1_shift)
            l2_index = (at >> cb) & (self.l2_entries - 1)
            entry = located[1][l2_index] if located else 0
            kind = cluster_kind(entry)
            if kind == Cluster.NORMAL:
                host = entry & L2E_OFFSET_MASK
                self._check_data_offset(host, located[0], l2_index)  # type: ignore[index]
                if run_length and run_host + run_length == host + within:
                    run_length += n
                else:
                    if run_length:
                        out[run_pos:run_pos + run_length] = self.file.read(run_host, run_length)
                    run_host, run_pos, run_length = host + within, pos, n
            else:
                if run_length:
                    out[run_pos:run_pos + run_length] = self.file.read(run_host, run_length)
                    run_length = 0
                if kind == Cluster.UNALLOCATED:
                    if self.backing is not None:
                        out[pos:pos + n] = self._read_backing(at, n)
                elif kind == Cluster.COMPRESSED:
                    data = self._decompress(entry, located[0], l2_index)  # type: ignore[index]
                    out[pos:pos + n] = data[within:within + n]
            pos += n
        if run_length:
            out[run_pos:run_pos + run_length] = self.file.read(run_host, run_length)

    # -- writing --------------------------------------------------------------------------

    def write(self, offset: int, data: bytes) -> None:
        self._check_writable()
        self._check_usable()
        self._check_request(offset, len(data))
        view = memoryview(data)[:self._clip(offset, len(data))]
        if view:
            self._write_guest(offset, view)

    def _write_guest(self, guest: int, data: memoryview) -> None:
        self._mark_dirty()
        pos = 0
        while pos < len(data):
            at = guest + pos
            l1_index = at >> self.l1_shift
            end = min(len(data), ((l1_index + 1) << self.l1_shift) - guest)
            self._write_in_l2(l1_index, at, data[pos:end])
            pos = end

    def _write_in_l2(self, l1_index: int, guest: int, data: memoryview) -> None:
        """Writes data lying within one L2 table's range."""
        cs, cb = self.cluster_size, self.cluster_bits
        l2_offset, table = self._writable_l2(l1_index)
        writes: list[tuple[int, bytes | memoryview]] = []  # (host offset, bytes)
        new_clusters: list[tuple[int, bytes | memoryview]] = []  # (L2 index, contents)
        reused: list[tuple[int, int, bytes | memoryview]] = []  # (L2 index, host, contents)
        old_entries: list[int] = []
        end = guest + len(data)
        for cluster in range(guest >> cb, ((end - 1) >> cb) + 1):
            l2_index = cluster & (self.l2_entries - 1)
            entry = table[l2_index]
            start = cluster << cb
            lo, hi = max(guest, start), min(end, start + cs)
            piece = data[lo - guest:hi - guest]
            kind = cluster_kind(entry)
            if kind == Cluster.NORMAL and entry & OFLAG_COPIED:
                host = entry & L2E_OFFSET_MASK
                self._check_data_offset(host, l2_offset, l2_index)
                writes.append((host + lo - start, piece))
                continue
            if hi - lo == cs:
                contents: bytes | memoryview = piece
            else:  # copy-on-write: the rest of the cluster keeps what it read as
                merged = bytearray(self._read_cluster(cluster, entry, l2_offset, l2_index))
                merged[lo - start:hi - start] = piece
                contents = merged
            if kind == Cluster.ZERO_ALLOC and entry & OFLAG_COPIED:
                host = entry & L2E_OFFSET_MASK  # its own preallocated cluster
                self._check_data_offset(host, l2_offset, l2_index)
                reused.append((l2_index, host, contents))
            else:
                new_clusters.append((l2_index, contents))
                old_entries.append(entry)
        if new_clusters:
            base = self.refcounts.alloc(len(new_clusters) << cb)
            for k, (l2_index, contents) in enumerate(new_clusters):
                reused.append((l2_index, base + (k << cb), contents))
        for _, host, contents in reused:
            writes.append((host, contents))
        self._write_data(writes)
        # Only now do the L2 entries change (the data is in the file before them).
        for l2_index, host, _ in reused:
            table[l2_index] = host | OFLAG_COPIED
        if reused:
            self.l2_cache.mark_dirty(l2_offset, table)
        for entry in old_entries:
            self._free_entry(entry)

    def _write_data(self, writes: list[tuple[int, bytes | memoryview]]) -> None:
        """Writes host ranges, merging adjacent ones into one call."""
        writes.sort(key=lambda item: item[0])
        i = 0
        while i < len(writes):
            start, first = writes[i]
            parts = [first]
            end = start + len(first)
            i += 1
            while i < len(writes) and writes[i][0] == end:
                parts.append(writes[i][1])
                end += len(writes[i][1])
                i += 1
            self.file.write(start, parts[0] if len(parts) == 1 else b"".join(parts))

    # -- discard and zeroes ---------------------------------------------------------------

    def discard(self, offset: int, length: int) -> None:
        if not self.flags.discard or self.read_only:
            return  # discard=ignore, QEMU's default
        self._check_usable()
        self._check_request(offset, length)
        cs = self.cluster_size
        start = -(-offset // cs) * cs
        end = min(offset + length, self.size)
        end = end if end == self.size else end // cs * cs  # a partial last cluster counts
        if end > start:
            self._mark_dirty()
            self._change_entries(start, end, self._discarded_entry, "request")

    def _discarded_entry(self, entry: int) -> tuple[int, bool]:
        """QEMU's discard_in_l2_slice (not a full discard): a discarded cluster reads
        as zeros in version 3 when something (data, a backing file) would show."""
        kind = cluster_kind(entry)
        allocated = kind in (Cluster.NORMAL, Cluster.ZERO_ALLOC, Cluster.COMPRESSED)
        if not (allocated or self.backing is not None):
            return entry, False
        return (OFLAG_ZERO if self.version >= 3 else 0), allocated

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        self._check_writable()
        self._check_usable()
        self._check_request(offset, length)
        length = self._clip(offset, length)
        if not length:
            return
        self._mark_dirty()
        unmap = may_unmap and self.flags.discard
        cs = self.cluster_size
        end = offset + length
        start_whole = -(-offset // cs) * cs
        end_whole = end if end == self.size else end // cs * cs
        if self.version < 3 or end_whole <= start_whole:
            self._write_zero_bytes(offset, end)
            return
        self._write_zero_bytes(offset, start_whole)
        self._change_entries(start_whole, end_whole,
                             lambda entry: self._zeroed_entry(entry, unmap), "request")
        self._write_zero_bytes(end_whole, end)

    def _zeroed_entry(self, entry: int, unmap: bool) -> tuple[int, bool]:
        """QEMU's zero_in_l2_slice: set the zero flag, dropping the host cluster when
        allowed to (and always for a compressed one)."""
        kind = cluster_kind(entry)
        drop = kind == Cluster.COMPRESSED or (
            unmap and kind in (Cluster.NORMAL, Cluster.ZERO_ALLOC))
        return ((0 if drop else entry) | OFLAG_ZERO), drop

    def _write_zero_bytes(self, start: int, end: int) -> None:
        """Zeros by writing them, skipping clusters that already read as zeros."""
        cs, cb = self.cluster_size, self.cluster_bits
        pos = start
        while pos < end:
            n = min(cs - (pos & (cs - 1)), end - pos)
            located = self._l2_table(pos >> self.l1_shift)
            entry = located[1][(pos >> cb) & (self.l2_entries - 1)] if located else 0
            if not self._reads_zero(entry, pos):
                self._write_guest(pos, memoryview(bytes(n)))
            pos += n

    def _change_entries(self, start: int, end: int,
                        change: Callable[[int], tuple[int, bool]], kind: str) -> None:
        """Applies ``change(entry) -> (new entry, free the old one)`` to the whole
        clusters of [start, end)."""
        cb = self.cluster_bits
        cluster, last = start >> cb, (end - 1) >> cb
        while cluster <= last:
            l1_index = cluster >> self.l2_bits
            stop = min(last + 1, (l1_index + 1) << self.l2_bits)
            located = self._l2_table(l1_index)
            if located is None and self.backing is None:
                cluster = stop  # unallocated without a backing file reads zeros already
                continue
            table = located[1] if located else None
            changes = []
            for c in range(cluster, stop):
                entry = table[c & (self.l2_entries - 1)] if table is not None else 0
                new, drop = change(entry)
                if new != entry:
                    changes.append((c & (self.l2_entries - 1), new, entry if drop else 0))
            if changes:
                l2_offset, table = self._writable_l2(l1_index)
                for l2_index, new, _ in changes:
                    table[l2_index] = new
                self.l2_cache.mark_dirty(l2_offset, table)
                for _, _, old in changes:
                    if old:
                        self._free_entry(old, kind)
            cluster = stop

    # -- flush and close ------------------------------------------------------------------

    def _flush_metadata(self) -> None:
        self.l2_cache.write_dirty()
        self.refcounts.cache.write_dirty()
        self.l2_cache.write_dirty()
        self.file.flush()

    def flush(self) -> None:
        if self.read_only or self._unusable:
            return
        self._flush_metadata()

    def _close(self) -> None:
        if self.read_only or self._unusable:
            return
        self._flush_metadata()
        self._mark_clean()

    def make_read_only(self) -> None:
        if not self.read_only and not self._unusable:
            self._flush_metadata()
            self._mark_clean()  # as at close: a read-only image is left clean
        super().make_read_only()

    # -- VM state ---------------------------------------------------------------------------

    def vm_state_offset(self) -> int:
        """Where the VM state area starts: the first L1 entry past the disk."""
        return size_to_l1(self.size, self.cluster_bits) << self.l1_shift

    def write_vm_state(self, position: int, data: bytes) -> None:
        self._check_writable()
        self._check_usable()
        if data:
            self._write_guest(self.vm_state_offset() + position, memoryview(data))

    def read_vm_state(self, position: int, length: int) -> bytes:
        self._check_usable()
        out = bytearray(length)
        self._read_into(out, self.vm_state_offset() + position, length)
        return bytes(out)

    # -- internal snapshots -----------------------------------------------------------------

    def find_snapshot(self, ident: str) -> Snapshot:
        """The snapshot with ID ``ident``, else the first named ``ident`` (QEMU's
        find_snapshot_by_id_or_name)."""
        for sn in self.snapshots:
            if sn.id == ident:
                return sn
        for sn in self.snapshots:
            if sn.name == ident:
                return sn
        raise BlockError(f"Snapshot '{ident}' not found in '{self.filename}'", errno.ENOENT)

    def create_snapshot(self, name: str, *, vm_state_size: int = 0, vm_clock_nsec: int = 0,
                        icount: int = 0, date_ns: int | None = None) -> Snapshot:
        """Makes the current disk (and a VM state already written with
        ``write_vm_state``) snapshot ``name``; returns its table entry."""
        self._check_writable()
        self._check_usable()
        if self.refcounts.max_refcount < 2:
            raise BlockError("Cannot create a snapshot: 1-bit refcounts cannot count a "
                             "shared cluster", errno.ERANGE)
        if len(name.encode()) > 0xFFFF:
            raise BlockError("Snapshot name too long")
        self._mark_dirty()
        numeric = [int(sn.id) for sn in self.snapshots if sn.id.isdigit()]
        ident = str(max(numeric, default=0) + 1)
        date_ns = time.time_ns() if date_ns is None else date_ns
        l1_offset = self.refcounts.alloc(len(self.l1) * 8) if len(self.l1) else 0
        if len(self.l1):
            self.file.write(l1_offset, encode_be_array(self.l1))
        # Every cluster of the active tree gains the snapshot's reference; the active
        # entries lose COPIED (their clusters are shared now).
        if self._update_tree_refcounts(self.l1, 1):
            self._flush_metadata()
            self._write_l1()
        sn = Snapshot(id=ident, name=name, l1_table_offset=l1_offset, l1_size=len(self.l1),
                      date_sec=date_ns // 10**9, date_nsec=date_ns % 10**9,
                      vm_clock_nsec=vm_clock_nsec, vm_state_size=vm_state_size,
                      disk_size=self.size, icount=icount)
        self._write_snapshot_table([*self.snapshots, sn])
        if vm_state_size:
            # The active tree needs the VM state no more (QEMU discards it too).
            state = self.vm_state_offset()
            span = -(-vm_state_size // self.cluster_size) * self.cluster_size
            self._change_entries(state, state + span, self._discarded_entry, "other")
        return sn

    def delete_snapshot(self, ident: str) -> None:
        self._check_writable()
        self._check_usable()
        sn = self.find_snapshot(ident)
        self._mark_dirty()
        # The table stops referencing the snapshot first; then its clusters lose it.
        self._write_snapshot_table([s for s in self.snapshots if s is not sn])
        l1 = self._read_snapshot_l1(sn)
        self._update_tree_refcounts(l1, -1, kind="snapshot")
        if sn.l1_size:
            self.refcounts.free(sn.l1_table_offset, sn.l1_size * 8, "snapshot")
        self._flush_metadata()
        self._fix_copied_flags()

    def apply_snapshot(self, ident: str) -> None:
        """Makes the disk what it was when snapshot ``ident`` was taken (QEMU's
        qcow2_snapshot_goto)."""
        self._check_writable()
        self._check_usable()
        sn = self.find_snapshot(ident)
        self._mark_dirty()
        if sn.disk_size != self.size:
            self._grow_l1(size_to_l1(sn.disk_size, self.cluster_bits))
            self._write_header_field(OFFSET_SIZE, ">Q", sn.disk_size)
            self.header.size = self.size = sn.disk_size
        if sn.l1_size > len(self.l1):
            self._grow_l1(sn.l1_size)
        new_l1 = self._read_snapshot_l1(sn)
        new_l1.extend([0] * (len(self.l1) - len(new_l1)))
        # The snapshot's tree gains the active reference before the L1 points at it...
        self._update_tree_refcounts(new_l1, 1)
        self._flush_metadata()
        old_l1, self.l1 = self.l1, new_l1
        self._write_l1()
        self._metadata = None
        self._last_decompressed = None
        # ...and the old tree loses it after.
        self._update_tree_refcounts(old_l1, -1)
        self._flush_metadata()
        self._fix_copied_flags()

    def _read_snapshot_l1(self, sn: Snapshot) -> array:
        return decode_be_array("Q", self.file.read(sn.l1_table_offset, sn.l1_size * 8))

    def _fix_copied_flags(self) -> None:
        """Sets COPIED in the active tree wherever a count dropped to 1 (after the counts
        are on disk: a COPIED flag must never be ahead of its count)."""
        if self._update_tree_refcounts(self.l1, 0, set_copied=True):
            self._write_l1()
        self.flush()

    def _update_tree_refcounts(self, l1: array, addend: int, *, set_copied: bool = False,
                               kind: str = "other") -> bool:
        """Adds ``addend`` to the count of every L2 table and data cluster reachable
        from ``l1`` (QEMU's qcow2_update_snapshot_refcount) and clears COPIED where a
        count is no longer 1 (sets it where it is 1 when ``set_copied``). Changes
        ``l1``'s flags in place; True if any changed."""
        cb = self.cluster_bits
        l1_changed = False
        for l1_index, l1_entry in enumerate(l1):
            l2_offset = l1_entry & L1E_OFFSET_MASK
            if not l2_offset:
                continue
            self._check_l2_offset(l2_offset, l1_index)
            table = self.l2_cache.get(l2_offset)
            changed = False
            for l2_index, entry in enumerate(table):
                if not entry:
                    continue
                kind_ = cluster_kind(entry)
                if kind_ == Cluster.COMPRESSED:
                    if addend:
                        self.refcounts.update(*self._compressed_range(entry), addend, kind)
                    continue
                host = entry & L2E_OFFSET_MASK
                if not host:
                    continue
                if addend:
                    self.refcounts.update(host, self.cluster_size, addend, kind)
                new = self._copied(entry, self.refcounts.get(host >> cb), set_copied)
                if new != entry:
                    table[l2_index] = new
                    changed = True
            if changed:
                self.l2_cache.mark_dirty(l2_offset, table)
            if addend:
                self.refcounts.update(l2_offset, self.cluster_size, addend, kind)
            new = self._copied(l1_entry, self.refcounts.get(l2_offset >> cb), set_copied)
            if new != l1_entry:
                l1[l1_index] = new
                l1_changed = True
        return l1_changed

    @staticmethod
    def _copied(entry: int, refcount: int, set_copied: bool) -> int:
        if refcount == 1:
            return entry | OFLAG_COPIED if set_copied else entry
        return entry & ~OFLAG_COPIED

    def _write_snapshot_table(self, snapshots: list[Snapshot]) -> None:
        """Writes a new snapshot table, points the header at it, frees the old one."""
        data = serialize_snapshot_table(snapshots)
        offset = self.refcounts.alloc(len(data)) if data else 0
        if data:
            self.file.write(offset, data)
        self._flush_metadata()  # the table and its counts before the header names it
        self._write_header_field(OFFSET_SNAPSHOTS, ">IQ", len(snapshots), offset)
        old_offset, old_length = self.header.snapshots_offset, self._snapshot_table_bytes
        self.header.nb_snapshots, self.header.snapshots_offset = len(snapshots), offset
        self.snapshots, self._snapshot_table_bytes = snapshots, len(data)
        self._metadata = None
        if old_length:
            self.refcounts.free(old_offset, old_length, "snapshot")
