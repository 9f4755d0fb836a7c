"""virtio-blk (virtio 1.x, "Block Device") over a BlockBackend.

One request queue. Each request is a 16-byte header {le32 type, le32 reserved, le64
sector} in device-readable buffers, then data, then a status byte at the very end of
the device-writable buffers. Requests the device cannot do complete with IOERR or
UNSUPP; only a malformed chain (no header, no status byte) is a protocol error that
needs a device reset. Feature set and configuration values follow QEMU 7.2's
``virtio-blk-device`` defaults (except GEOMETRY, not offered: QEMU guesses it from an MBR
partition table; Linux uses it only for HDIO_GETGEO).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from enum import IntEnum

from blockdev.node import BlockBackend
from devices.base import StateValue, load_fields, save_fields
from devices.virtio.device import VIRTIO_ID_BLOCK
from devices.virtio.queue import Chain, VirtioError, Virtqueue

SECTOR_SIZE = 512

# Feature bits.
VIRTIO_BLK_F_SEG_MAX = 1 << 2
VIRTIO_BLK_F_RO = 1 << 5
VIRTIO_BLK_F_BLK_SIZE = 1 << 6
VIRTIO_BLK_F_FLUSH = 1 << 9
VIRTIO_BLK_F_TOPOLOGY = 1 << 10
VIRTIO_BLK_F_CONFIG_WCE = 1 << 11
VIRTIO_BLK_F_DISCARD = 1 << 13
VIRTIO_BLK_F_WRITE_ZEROES = 1 << 14


class RequestType(IntEnum):
    """The request header's type field."""

    IN = 0
    OUT = 1
    FLUSH = 4
    GET_ID = 8
    DISCARD = 11
    WRITE_ZEROES = 13


# A legacy flag some old drivers still set; ignored, as QEMU does.
VIRTIO_BLK_T_BARRIER = 0x80000000


class Status(IntEnum):
    """The request's status byte."""

    OK = 0
    IOERR = 1
    UNSUPP = 2


VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1
VIRTIO_BLK_ID_BYTES = 20

# QEMU's limits: one request at most INT_MAX bytes (BDRV_REQUEST_MAX_SECTORS), one
# discard/write-zeroes segment per request, seg_max = queue-size (256) - 2.
MAX_REQUEST_SECTORS = (2**31 - 1) // SECTOR_SIZE
SEG_MAX = 254
QUEUE_MAX_SIZE = 1024  # QEMU's QueueNumMax for every virtio-mmio queue

_HEADER = struct.Struct("<IIQ")
_SEGMENT = struct.Struct("<QII")  # virtio_blk_discard_write_zeroes
_CHUNK = 1 << 20  # data moves between guest and backend in pieces of this size

# Offsets into virtio_blk_config.
_WRITEBACK_OFFSET = 32
_CONFIG_SIZE_BASE = 36  # up to num_queues
_CONFIG_SIZE_DISCARD = 48  # up to discard_sector_alignment
_CONFIG_SIZE_WRITE_ZEROES = 57  # up to write_zeroes_may_unmap
_CONFIG = struct.Struct("<QII HBB I BBHI BBH III II B")


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
try:
    _fallocate = ctypes.CDLL(None, use_errno=True).fallocate
    _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
except AttributeError:  # not Linux: no hole punching, zeros are written instead
    _fallocate = None


def _punch_hole(fd: int, offset: int, length: int) -> bool:
    """Deallocates a file range (it then reads as zeros); False if the file system
    cannot."""
    if _fallocate is None:
        return False
    if _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EOPNOTSUPP, errno.ENOSYS):
        return False
    raise OSError(code, os.strerror(code))


class RawFileBackend:
    """A raw disk image file. The disk is the file's size rounded up to a whole sector
    (the tail reads as zeros), as QEMU's raw format does."""

    def __init__(self, path: str | os.PathLike[str], read_only: bool = False) -> None:
        flags = (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC
        self.path = os.fspath(path)
        self.fd = os.open(self.path, flags)
        self.read_only = read_only
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        while len(data) < length:
            more = os.pread(self.fd, length - len(data), offset + len(data))
            if not more:  # end of file: the rest of the last sector reads as zeros
                return data + bytes(length - len(data))
            data += more
        return data

    def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            done = os.pwrite(self.fd, view, offset)
            view, offset = view[done:], offset + done

    def flush(self) -> None:
        os.fsync(self.fd)

    def discard(self, offset: int, length: int) -> None:
        _punch_hole(self.fd, offset, length)

    def write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        if may_unmap and _punch_hole(self.fd, offset, length):
            return
        zeros = bytes(min(length, _CHUNK))
        for start in range(0, length, _CHUNK):
            self.write(offset + start, zeros[:min(_CHUNK, length - start)])

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> RawFileBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VirtioBlk:
    """A virtio block device (device ID 2) on ``backend``; ``serial`` is the string
    VIRTIO_BLK_T_GET_ID returns (ASCII, at most 20 bytes are used, as in QEMU)."""

    name = "virtio-blk-device"
    device_id = VIRTIO_ID_BLOCK
    queue_max_sizes = (QUEUE_MAX_SIZE,)

    def __init__(self, backend: BlockBackend, serial: str = "", *,
                 write_cache: bool = True) -> None:
        if not serial.isascii():
            raise ValueError(f"virtio-blk serial {serial!r} is not ASCII")
        self.backend = backend
        self.serial = serial.encode("ascii")[:VIRTIO_BLK_ID_BYTES]
        # Sectors are rounded up: the last partial sector of an image is readable.
        self.capacity = -(-backend.size // SECTOR_SIZE)
        features = (VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH
                    | VIRTIO_BLK_F_TOPOLOGY | VIRTIO_BLK_F_CONFIG_WCE)
        if backend.read_only:
            features |= VIRTIO_BLK_F_RO
        else:
            features |= VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES
        self.features = features
        # The drive's cache mode: writeback (QEMU's default) or writethrough.
        self.default_write_cache = write_cache
        self.reset()

    state_version = 1
    _STATE_FIELDS = ("negotiated", "write_cache")

    def reset(self) -> None:
        self.negotiated = 0
        self.write_cache = self.default_write_cache  # until the driver changes it

    def save_state(self) -> dict[str, StateValue]:
        """The driver's choices; the disk itself is the block layer's (savevm takes an
        internal snapshot of it)."""
        return save_fields(self, self._STATE_FIELDS)

    def load_state(self, saved: dict[str, StateValue]) -> None:
        load_fields(self, self._STATE_FIELDS, saved)

    # -- configuration --------------------------------------------------------------------

    def set_features(self, features: int) -> bool:
        self.negotiated = features
        if features & VIRTIO_BLK_F_CONFIG_WCE:
            # The spec: with CONFIG_WCE but not FLUSH, writeback starts at 0.
            if not features & VIRTIO_BLK_F_FLUSH:
                self.write_cache = False
        else:
            # Without FLUSH the driver cannot flush: every write must be stable.
            self.write_cache = bool(features & VIRTIO_BLK_F_FLUSH)
        return True

    def config(self) -> bytes:
        data = _CONFIG.pack(
            self.capacity, 0, SEG_MAX,
            0, 0, 0,  # geometry: not offered
            SECTOR_SIZE,
            0, 0, 0, 0,  # topology: 512-byte physical blocks, no alignment hints
            int(self.write_cache), 0, 1,  # writeback, unused0, num_queues
            MAX_REQUEST_SECTORS, 1, 1,  # discard: max sectors, max segments, alignment
            MAX_REQUEST_SECTORS, 1, 1,  # write zeroes: max sectors, max segments, may unmap
        )
        size = _CONFIG_SIZE_BASE
        if self.features & VIRTIO_BLK_F_DISCARD:
            size = _CONFIG_SIZE_DISCARD
        if self.features & VIRTIO_BLK_F_WRITE_ZEROES:
            size = _CONFIG_SIZE_WRITE_ZEROES
        return data[:size]

    def write_config(self, offset: int, data: bytes) -> None:
        # Only the writeback byte is writable, and only once CONFIG_WCE is negotiated.
        if (self.negotiated & VIRTIO_BLK_F_CONFIG_WCE
                and offset <= _WRITEBACK_OFFSET < offset + len(data)):
            self.write_cache = data[_WRITEBACK_OFFSET - offset] != 0

    # -- requests -------------------------------------------------------------------------

    def handle_queue(self, index: int, queue: Virtqueue) -> None:
        while (chain := queue.pop()) is not None:
            queue.push(chain, self._request(chain))

    def _request(self, chain: Chain) -> int:
        """Does one request; returns the used length (bytes written from the start of the
        writable buffers: everything when the data and the status byte were written, 0
        when only the status byte at the end was)."""
        if chain.readable_length < _HEADER.size:
            raise VirtioError("virtio-blk request header too short")
        if not chain.writable:
            raise VirtioError("virtio-blk request without a status byte")
        kind, _reserved, sector = _HEADER.unpack(chain.read(0, _HEADER.size))
        kind &= ~VIRTIO_BLK_T_BARRIER
        data_in = chain.writable_length - 1  # device-writable bytes before the status
        data_out = chain.readable_length - _HEADER.size
        written = 0
        try:
            match kind:
                case RequestType.IN:
                    status = self._read(chain, sector, data_in)
                    written = data_in if status == Status.OK else 0
                case RequestType.OUT:
                    status = self._write(chain, sector, data_out)
                case RequestType.FLUSH:
                    self.backend.flush()
                    status = Status.OK
                case RequestType.GET_ID:
                    written = chain.write(0, self.serial.ljust(VIRTIO_BLK_ID_BYTES, b"\0")
                                          [:min(data_in, VIRTIO_BLK_ID_BYTES)])
                    status = Status.OK
                case RequestType.DISCARD | RequestType.WRITE_ZEROES:
                    status = self._discard_or_write_zeroes(chain, kind, data_out)
                case _:
                    status = Status.UNSUPP
        except OSError:
            status, written = Status.IOERR, 0
        chain.write(data_in, bytes([status]))
        return written + 1 if written == data_in else written

    def _range_ok(self, sector: int, length: int) -> bool:
        sectors, partial = divmod(length, SECTOR_SIZE)
        return (not partial and sectors <= MAX_REQUEST_SECTORS
                and sector <= self.capacity and sectors <= self.capacity - sector)

    def _read(self, chain: Chain, sector: int, length: int) -> int:
        if not self._range_ok(sector, length):
            return Status.IOERR
        offset = sector * SECTOR_SIZE
        for start in range(0, length, _CHUNK):
            n = min(_CHUNK, length - start)
            chain.write(start, self.backend.read(offset + start, n))
        return Status.OK

    def _write(self, chain: Chain, sector: int, length: int) -> int:
        if self.backend.read_only or not self._range_ok(sector, length):
            return Status.IOERR
        offset = sector * SECTOR_SIZE
        for start in range(0, length, _CHUNK):
            n = min(_CHUNK, length - start)
            self.backend.write(offset + start, chain.read(_HEADER.size + start, n))
        self._complete_write()
        return Status.OK

    def _complete_write(self) -> None:
        if not self.write_cache:
            self.backend.flush()  # writethrough: stable before completion

    def _discard_or_write_zeroes(self, chain: Chain, kind: int, length: int) -> int:
        write_zeroes = kind == RequestType.WRITE_ZEROES
        feature = VIRTIO_BLK_F_WRITE_ZEROES if write_zeroes else VIRTIO_BLK_F_DISCARD
        # One segment per request (max_discard_seg = max_write_zeroes_seg = 1).
        if not self.negotiated & feature or length != _SEGMENT.size:
            return Status.UNSUPP
        sector, sectors, flags = _SEGMENT.unpack(chain.read(_HEADER.size, _SEGMENT.size))
        if sectors > MAX_REQUEST_SECTORS or not self._range_ok(sector, sectors * SECTOR_SIZE):
            return Status.IOERR
        unmap = bool(flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
        if flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP or (unmap and not write_zeroes):
            return Status.UNSUPP
        offset, length = sector * SECTOR_SIZE, sectors * SECTOR_SIZE
        if write_zeroes:
            self.backend.write_zeroes(offset, length, unmap)
            self._complete_write()
        else:
            self.backend.discard(offset, length)
        return Status.OK
