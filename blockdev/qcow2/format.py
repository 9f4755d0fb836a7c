"""qcow2 on-disk structures (QEMU's docs/interop/qcow2.txt): the header with its
extensions, L1/L2 entry bits, and the snapshot table entry. Parsing validates what it
reads and raises BlockError with QEMU's messages; serialising writes QEMU's layout.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from blockdev.errors import BlockError

MAGIC = 0x514649FB  # "QFI\xfb"
MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21  # QEMU's implementation limit (2 MiB clusters)
MAX_L1_BYTES = 32 << 20  # QCOW_MAX_L1_SIZE
MAX_REFTABLE_BYTES = 8 << 20  # QCOW_MAX_REFTABLE_SIZE
MAX_SNAPSHOTS = 65536
MAX_SNAPSHOT_EXTRA_DATA = 1024
MAX_SNAPSHOTS_BYTES = 64 << 20  # QCOW_MAX_SNAPSHOTS_SIZE
MAX_BACKING_FILE_NAME = 1023

# Fixed header: version 2 ends after snapshots_offset (72 bytes); version 3 adds the
# feature masks, refcount_order and header_length (104 bytes), then compression_type
# (one byte, padded to 112 as QEMU writes it).
HEADER_V2 = struct.Struct(">IIQIIQIIQQIIQ")
HEADER_V3 = struct.Struct(">QQQII")
V2_HEADER_LENGTH = 72
V3_MIN_HEADER_LENGTH = 104
V3_HEADER_LENGTH = 112
COMPRESSION_TYPE_OFFSET = 104

# Offsets of fields updated in place.
OFFSET_SIZE = 24
OFFSET_L1 = 36  # l1_size (4) then l1_table_offset (8)
OFFSET_REFTABLE = 48  # refcount_table_offset (8) then refcount_table_clusters (4)
OFFSET_SNAPSHOTS = 60  # nb_snapshots (4) then snapshots_offset (8)
OFFSET_INCOMPATIBLE = 72
OFFSET_AUTOCLEAR = 88

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_SUPPORTED = INCOMPAT_DIRTY | INCOMPAT_CORRUPT
COMPAT_LAZY_REFCOUNTS = 1 << 0
AUTOCLEAR_BITMAPS = 1 << 0
AUTOCLEAR_DATA_FILE_RAW = 1 << 1

FEATURE_INCOMPATIBLE, FEATURE_COMPATIBLE, FEATURE_AUTOCLEAR = 0, 1, 2
# The feature name table QEMU writes into version 3 images, in its order.
FEATURE_NAMES: tuple[tuple[int, int, str], ...] = (
    (FEATURE_INCOMPATIBLE, 0, "dirty bit"),
    (FEATURE_INCOMPATIBLE, 1, "corrupt bit"),
    (FEATURE_INCOMPATIBLE, 2, "external data file"),
    (FEATURE_INCOMPATIBLE, 3, "compression type"),
    (FEATURE_INCOMPATIBLE, 4, "extended L2 entries"),
    (FEATURE_COMPATIBLE, 0, "lazy refcounts"),
    (FEATURE_AUTOCLEAR, 0, "bitmaps"),
    (FEATURE_AUTOCLEAR, 1, "raw external data"),
)
_KNOWN_FEATURES = {(kind, bit): name for kind, bit, name in FEATURE_NAMES}
_FEATURE_ENTRY = struct.Struct(">BB46s")

EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441
_EXT_HEADER = struct.Struct(">II")

CRYPT_NONE = 0
COMPRESSION_ZLIB = 0
COMPRESSION_NAMES = {0: "zlib", 1: "zstd"}

# L1 and L2 entries.
L1E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
REFT_OFFSET_MASK = 0xFFFFFFFFFFFFFE00
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1 << 0
COMPRESSED_SECTOR = 512

# Snapshot table entry: l1_table_offset, l1_size, id_str_size, name_size, date_sec,
# date_nsec, vm_clock_nsec, vm_state_size, extra_data_size; then extra data
# (vm_state_size_large, disk_size, icount), id, name, padding to 8.
SNAPSHOT_HEADER = struct.Struct(">QIHHIIQII")
SNAPSHOT_EXTRA = struct.Struct(">QQQ")


@dataclass(slots=True)
class Header:
    """The image header and what its extensions say. ``unknown_fields`` (header bytes
    past the fields we know) and ``unknown_extensions`` are kept to be written back."""

    version: int
    cluster_bits: int
    size: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int = 0
    snapshots_offset: int = 0
    crypt_method: int = CRYPT_NONE
    incompatible_features: int = 0
    compatible_features: int = 0
    autoclear_features: int = 0
    refcount_order: int = 4
    header_length: int = V2_HEADER_LENGTH
    compression_type: int = COMPRESSION_ZLIB
    backing_file: str | None = None
    backing_format: str | None = None
    feature_table: dict[tuple[int, int], str] = field(default_factory=dict)
    unknown_fields: bytes = b""
    unknown_extensions: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    def feature_name(self, kind: int, bit: int) -> str | None:
        """The feature's name from the image's feature table, else QEMU's."""
        return self.feature_table.get((kind, bit)) or _KNOWN_FEATURES.get((kind, bit))


def parse_header(head: bytes, file_size: int) -> Header:
    """Parses the first cluster of an image (``head``, possibly shorter when the file
    is); ``file_size`` is the image file's length, for bounds checks."""
    if len(head) < 8 or struct.unpack(">I", head[:4])[0] != MAGIC:
        raise BlockError("Image is not in qcow2 format")
    version = struct.unpack(">I", head[4:8])[0]
    if version not in (2, 3):
        raise BlockError(f"Unsupported qcow2 version {version}")
    if len(head) < HEADER_V2.size:
        raise BlockError(f"qcow2 header is truncated ({len(head)} of {HEADER_V2.size} "
                         "bytes present)")
    (_, _, backing_offset, backing_size, cluster_bits, size, crypt_method, l1_size,
     l1_offset, reftable_offset, reftable_clusters, nb_snapshots,
     snapshots_offset) = HEADER_V2.unpack_from(head)
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise BlockError(f"Unsupported cluster size: 2^{cluster_bits}")
    header = Header(version=version, cluster_bits=cluster_bits, size=size, l1_size=l1_size,
                    l1_table_offset=l1_offset, refcount_table_offset=reftable_offset,
                    refcount_table_clusters=reftable_clusters, nb_snapshots=nb_snapshots,
                    snapshots_offset=snapshots_offset, crypt_method=crypt_method)
    cluster_size = 1 << cluster_bits
    if version == 3:
        if len(head) < V3_MIN_HEADER_LENGTH:
            raise BlockError(f"qcow2 header is truncated ({len(head)} of "
                             f"{V3_MIN_HEADER_LENGTH} bytes present)")
        (header.incompatible_features, header.compatible_features,
         header.autoclear_features, header.refcount_order,
         header.header_length) = HEADER_V3.unpack_from(head, HEADER_V2.size)
        if header.header_length < V3_MIN_HEADER_LENGTH:
            raise BlockError("qcow2 header too short")
        if header.header_length > cluster_size:
            raise BlockError("qcow2 header exceeds cluster size")
        if header.header_length > len(head):
            raise BlockError(f"qcow2 header is truncated ({len(head)} of "
                             f"{header.header_length} bytes present)")
        if header.header_length > COMPRESSION_TYPE_OFFSET:
            header.compression_type = head[COMPRESSION_TYPE_OFFSET]
            known_end = COMPRESSION_TYPE_OFFSET + 1
        else:
            known_end = V3_MIN_HEADER_LENGTH
        header.unknown_fields = bytes(head[known_end:header.header_length])
    if backing_offset > cluster_size:
        raise BlockError("Invalid backing file offset")
    extensions_end = backing_offset or cluster_size
    _parse_extensions(header, head, extensions_end)
    if backing_offset:
        if backing_size > min(MAX_BACKING_FILE_NAME, cluster_size - backing_offset):
            raise BlockError("Backing file name too long")
        if backing_offset + backing_size > len(head):
            raise BlockError("qcow2 header is truncated (the backing file name lies past "
                             "the end of the file)")
        header.backing_file = head[backing_offset:backing_offset + backing_size].decode(
            "utf-8", "surrogateescape")
    _validate(header, file_size)
    return header


def _parse_extensions(header: Header, head: bytes, end: int) -> None:
    offset = header.header_length
    end = min(end, len(head))
    while offset + _EXT_HEADER.size <= end:
        kind, length = _EXT_HEADER.unpack_from(head, offset)
        offset += _EXT_HEADER.size
        if kind == EXT_END:
            return
        if length > end - offset:
            raise BlockError("Header extension too large")
        data = bytes(head[offset:offset + length])
        offset += (length + 7) & ~7
        if kind == EXT_BACKING_FORMAT:
            if length >= 16:
                raise BlockError(f"ERROR: ext_backing_format: len={length} too large (>=16)")
            header.backing_format = data.decode("ascii", "replace")
        elif kind == EXT_FEATURE_TABLE:
            for i in range(0, length - _FEATURE_ENTRY.size + 1, _FEATURE_ENTRY.size):
                kind_, bit, name = _FEATURE_ENTRY.unpack_from(data, i)
                header.feature_table[(kind_, bit)] = name.split(b"\0")[0].decode(
                    "utf-8", "replace")
        else:
            header.unknown_extensions.append((kind, data))


def _validate(header: Header, file_size: int) -> None:
    """Checks of the tables' places and sizes (QEMU's qcow2_validate_table, plus the
    end of the file: a table past it means a truncated or damaged image)."""
    if header.header_length % 8 and header.version == 3:
        raise BlockError("qcow2 header length is not a multiple of 8")
    if header.refcount_order > 6:
        raise BlockError("Reference count entry width too large; may not exceed 64 bits")
    if header.refcount_table_clusters == 0:
        raise BlockError("Image does not contain a reference count table")
    cluster_size = header.cluster_size
    _validate_table("Reference count table", header.refcount_table_offset,
                    header.refcount_table_clusters * cluster_size, MAX_REFTABLE_BYTES,
                    cluster_size, file_size)
    _validate_table("Snapshot table", header.snapshots_offset,
                    header.nb_snapshots * SNAPSHOT_HEADER.size,
                    MAX_SNAPSHOTS * SNAPSHOT_HEADER.size, cluster_size, file_size)
    if header.nb_snapshots > MAX_SNAPSHOTS:
        raise BlockError("Snapshot table too large")
    _validate_table("Active L1 table", header.l1_table_offset, header.l1_size * 8,
                    MAX_L1_BYTES, cluster_size, file_size)
    if header.l1_size < size_to_l1(header.size, header.cluster_bits):
        raise BlockError("L1 table is too small")


def _validate_table(name: str, offset: int, length: int, max_length: int,
                    cluster_size: int, file_size: int) -> None:
    if length > max_length:
        raise BlockError(f"{name} too large")
    if offset % cluster_size or offset + length > (1 << 63) - 1:
        raise BlockError(f"{name} offset invalid")
    if length and offset + length > file_size:
        raise BlockError(f"{name} (offset {offset:#x}, {length} bytes) lies past the end "
                         f"of the image file ({file_size} bytes)")


def size_to_l1(size: int, cluster_bits: int) -> int:
    """L1 entries needed for a disk of ``size`` bytes (QEMU's size_to_l1)."""
    shift = cluster_bits + (cluster_bits - 3)
    return (size + (1 << shift) - 1) >> shift


def serialize_header(header: Header) -> bytes:
    """The header area as QEMU lays it out: the fixed fields, the extensions (backing
    format, feature name table in version 3, kept unknown ones, end), then the backing
    file name. It must fit in the first cluster."""
    backing = (header.backing_file or "").encode("utf-8", "surrogateescape")
    fixed = bytearray()
    fixed += HEADER_V2.pack(MAGIC, header.version, 0, len(backing) if backing else 0,
                            header.cluster_bits, header.size, header.crypt_method,
                            header.l1_size, header.l1_table_offset,
                            header.refcount_table_offset, header.refcount_table_clusters,
                            header.nb_snapshots, header.snapshots_offset)
    if header.version >= 3:
        length = max(header.header_length, V3_HEADER_LENGTH)
        fixed += HEADER_V3.pack(header.incompatible_features, header.compatible_features,
                                header.autoclear_features, header.refcount_order, length)
        fixed += bytes([header.compression_type])
        fixed += header.unknown_fields
        fixed += bytes(length - len(fixed))
        del fixed[length:]
    extensions = bytearray()

    def extension(kind: int, data: bytes) -> None:
        extensions.extend(_EXT_HEADER.pack(kind, len(data)) + data)
        extensions.extend(bytes(-len(data) % 8))

    if header.backing_format and backing:
        extension(EXT_BACKING_FORMAT, header.backing_format.encode("ascii"))
    if header.version >= 3:
        extension(EXT_FEATURE_TABLE, b"".join(_FEATURE_ENTRY.pack(kind, bit, name.encode())
                                              for kind, bit, name in FEATURE_NAMES))
    for kind, data in header.unknown_extensions:
        extension(kind, data)
    extension(EXT_END, b"")
    area = fixed + extensions
    if backing:
        struct.pack_into(">Q", area, 8, len(area))
        area += backing
    if len(area) > header.cluster_size:
        raise BlockError("the qcow2 header does not fit in the first cluster")
    return bytes(area)


# -- snapshot table ---------------------------------------------------------------------


@dataclass(slots=True)
class Snapshot:
    """One internal snapshot (a snapshot table entry)."""

    id: str
    name: str
    l1_table_offset: int
    l1_size: int
    date_sec: int = 0
    date_nsec: int = 0
    vm_clock_nsec: int = 0
    vm_state_size: int = 0
    disk_size: int = 0
    icount: int = 0  # -1 (all ones) when not recorded
    unknown_extra: bytes = b""


def parse_snapshot_table(read: Callable[[int, int], bytes], table_offset: int, count: int,
                         disk_size: int, cluster_size: int,
                         file_size: int) -> tuple[list[Snapshot], int]:
    """The ``count`` snapshots of the table at ``table_offset`` (``read(offset, n)``
    reads the image file) and the table's length in bytes."""
    snapshots: list[Snapshot] = []
    offset = table_offset

    def take(n: int) -> bytes:
        nonlocal offset
        if offset + n > file_size:
            raise BlockError("Snapshot table is truncated")
        data = read(offset, n)
        offset += n
        return data

    for i in range(count):
        (l1_offset, l1_size, id_size, name_size, date_sec, date_nsec, vm_clock,
         vm_state_32, extra_size) = SNAPSHOT_HEADER.unpack(take(SNAPSHOT_HEADER.size))
        if extra_size > MAX_SNAPSHOT_EXTRA_DATA:
            raise BlockError(f"Too much extra metadata in snapshot table entry {i}")
        extra = take(extra_size)
        snapshot_id = take(id_size).decode("utf-8", "replace")
        name = take(name_size).decode("utf-8", "replace")
        offset = table_offset + ((offset - table_offset + 7) & ~7)
        if offset - table_offset > MAX_SNAPSHOTS_BYTES:
            raise BlockError("Snapshot table exceeds the maximum size")
        vm_state_size, size, icount = vm_state_32, disk_size, -1
        if len(extra) >= 8:
            vm_state_size = struct.unpack_from(">Q", extra, 0)[0]
        if len(extra) >= 16:
            size = struct.unpack_from(">Q", extra, 8)[0]
        if len(extra) >= 24:
            icount = struct.unpack_from(">q", extra, 16)[0]
        if l1_offset % cluster_size:
            raise BlockError(f"Snapshot L1 table offset invalid (snapshot {snapshot_id})")
        if l1_size * 8 > MAX_L1_BYTES:
            raise BlockError(f"Snapshot L1 table too large (snapshot {snapshot_id})")
        if l1_size and l1_offset + l1_size * 8 > file_size:
            raise BlockError(f"Snapshot L1 table of snapshot {snapshot_id} lies past the end "
                             "of the image file")
        snapshots.append(Snapshot(id=snapshot_id, name=name, l1_table_offset=l1_offset,
                                  l1_size=l1_size, date_sec=date_sec, date_nsec=date_nsec,
                                  vm_clock_nsec=vm_clock, vm_state_size=vm_state_size,
                                  disk_size=size, icount=icount,
                                  unknown_extra=bytes(extra[SNAPSHOT_EXTRA.size:])))
    return snapshots, offset - table_offset


def serialize_snapshot_table(snapshots: list[Snapshot]) -> bytes:
    out = bytearray()
    for sn in snapshots:
        ident, name = sn.id.encode(), sn.name.encode()
        extra = SNAPSHOT_EXTRA.pack(sn.vm_state_size, sn.disk_size,
                                    sn.icount & 0xFFFFFFFFFFFFFFFF) + sn.unknown_extra
        vm_state_32 = sn.vm_state_size if sn.vm_state_size < 1 << 32 else 0
        out += SNAPSHOT_HEADER.pack(sn.l1_table_offset, sn.l1_size, len(ident), len(name),
                                    sn.date_sec, sn.date_nsec, sn.vm_clock_nsec,
                                    vm_state_32, len(extra))
        out += extra + ident + name
        out += bytes(-len(out) % 8)
    return bytes(out)
