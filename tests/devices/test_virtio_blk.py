"""virtio-blk on a raw file, driven through the virtio-mmio transport."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from devices.virtio.blk import (
    MAX_REQUEST_SECTORS,
    VIRTIO_BLK_F_BLK_SIZE,
    VIRTIO_BLK_F_CONFIG_WCE,
    VIRTIO_BLK_F_DISCARD,
    VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_F_WRITE_ZEROES,
    RawFileBackend,
    RequestType,
    Status,
    VirtioBlk,
)
from devices.virtio.device import STATUS_DEVICE_NEEDS_RESET, VIRTIO_F_VERSION_1
from devices.virtio.mmio import INT_CONFIG_CHANGE, INT_USED_BUFFER, Reg, VirtioMmio
from devices.virtio.queue import VIRTIO_RING_F_EVENT_IDX
from tests.devices.virtio_driver import ByteRam, Driver, DriverQueue, IrqLine, Request

DISK_SECTORS = 64


class CountingBackend(RawFileBackend):
    """A raw file that counts flushes (fsync cannot be observed otherwise)."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(range(256)) * (DISK_SECTORS * 2))
    return path


class Blk:
    def __init__(self, backend: RawFileBackend, serial: str = "", accept: int | None = None):
        self.ram, self.irq = ByteRam(), IrqLine()
        self.device = VirtioBlk(backend, serial)
        self.slot = VirtioMmio(self.irq, self.ram, self.device)
        self.driver = Driver(self.slot, self.ram)
        (self.queue,) = self.driver.start(accept)

    def submit(self, kind: int, sector: int = 0, out: bytes = b"",
               data_in: int = 0) -> tuple[Request, int, bytes]:
        """One request, waited for: returns it, its used length and its status byte
        preceded by the data read."""
        header = struct.pack("<IIQ", kind, 0, sector)
        request = self.queue.add([header, out] if out else [header],
                                 [data_in, 1] if data_in else [1])
        self.queue.kick()
        ((head, length),) = self.queue.take_used()
        assert head == request.head
        return request, length, self.queue.read_in(request)

    def status(self, kind: int, **kwargs) -> int:
        return self.submit(kind, **kwargs)[2][-1]

    def config(self, offset: int, size: int) -> int:
        return self.slot.read(Reg.CONFIG + offset, size)


def test_features_and_config(image: Path) -> None:
    with RawFileBackend(image) as backend:
        blk = Blk(backend)
        features = blk.driver.device_features()
        for bit in (VIRTIO_F_VERSION_1, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE,
                    VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_CONFIG_WCE, VIRTIO_BLK_F_DISCARD,
                    VIRTIO_BLK_F_WRITE_ZEROES):
            assert features & bit
        assert not features & VIRTIO_BLK_F_RO
        assert blk.driver.read(Reg.DEVICE_ID) == 2
        assert blk.config(0, 4) | blk.config(4, 4) << 32 == DISK_SECTORS  # capacity
        assert blk.config(0, 8) == DISK_SECTORS
        assert blk.config(12, 4) == 254  # seg_max, QEMU's
        assert blk.config(20, 4) == 512  # blk_size
        assert blk.config(32, 1) == 1  # writeback
        assert blk.config(34, 2) == 1  # num_queues
        assert blk.config(36, 4) == MAX_REQUEST_SECTORS  # max_discard_sectors
        assert blk.config(40, 4) == 1 and blk.config(44, 4) == 1
        assert blk.config(56, 1) == 1  # write_zeroes_may_unmap: the last field
        assert blk.config(57, 1) == 0xFF  # beyond the configuration space
        assert blk.config(56, 2) == 0xFFFF


def test_read_write_flush_round_trip(image: Path) -> None:
    with RawFileBackend(image) as backend:
        blk = Blk(backend)
        data = os.urandom(3 * 512)
        # Data spread over several descriptors, as Linux's scatter-gather lists are.
        header = struct.pack("<IIQ", RequestType.OUT, 0, 5)
        request = blk.queue.add([header, data[:700], data[700:]], [1])
        blk.queue.kick()
        assert blk.queue.take_used() == [(request.head, 1)]
        assert blk.queue.read_in(request) == bytes([Status.OK])
        assert blk.status(RequestType.FLUSH) == Status.OK
        assert image.read_bytes()[5 * 512:8 * 512] == data
        request = blk.queue.add([struct.pack("<IIQ", RequestType.IN, 0, 5)], [1000, 536, 1])
        blk.queue.kick()
        assert blk.queue.take_used() == [(request.head, 3 * 512 + 1)]
        assert blk.queue.read_in(request) == data + bytes([Status.OK])
        # Interrupts: one used-buffer notification is pending, the line is high.
        assert blk.irq.level and blk.driver.ack_interrupt() == INT_USED_BUFFER


def test_indirect_descriptors(image: Path) -> None:
    with RawFileBackend(image) as backend:
        blk = Blk(backend)
        request = blk.queue.add([struct.pack("<IIQ", RequestType.IN, 0, 1)], [512, 1],
                                indirect=True)
        blk.queue.kick()
        assert blk.queue.take_used() == [(request.head, 513)]
        assert blk.queue.read_in(request) == image.read_bytes()[512:1024] + b"\0"


@pytest.mark.parametrize("kind, sector, data_len", [
    (RequestType.IN, DISK_SECTORS, 512),  # starts past the end
    (RequestType.IN, DISK_SECTORS - 1, 1024),  # runs past the end
    (RequestType.IN, 2**64 - 1, 512),
    (RequestType.IN, 0, 100),  # not whole sectors
    (RequestType.OUT, DISK_SECTORS, 512),
])
def test_out_of_range_is_ioerr(image: Path, kind: int, sector: int, data_len: int) -> None:
    before = image.read_bytes()
    with RawFileBackend(image) as backend:
        blk = Blk(backend)
        if kind == RequestType.IN:
            _, length, data = blk.submit(kind, sector, data_in=data_len)
            assert length == 0  # only the status byte at the end was written
            assert data[:-1] == b"\xaa" * data_len
        else:
            _, length, data = blk.submit(kind, sector, out=b"x" * data_len)
        assert data[-1] == Status.IOERR
        assert not blk.slot.status & STATUS_DEVICE_NEEDS_RESET
    assert image.read_bytes() == before


def test_last_sector_of_unaligned_image(tmp_path: Path) -> None:
    path = tmp_path / "odd.img"
    path.write_bytes(b"\x11" * 1000)
    with RawFileBackend(path) as backend:
        blk = Blk(backend)
        assert blk.config(0, 8) == 2  # rounded up, as QEMU's raw format
        _, _, data = blk.submit(RequestType.IN, 1, data_in=512)
        assert data == b"\x11" * 488 + bytes(24) + bytes([Status.OK])


def test_read_only_device(image: Path) -> None:
    before = image.read_bytes()
    with RawFileBackend(image, read_only=True) as backend:
        blk = Blk(backend)
        features = blk.driver.device_features()
        assert features & VIRTIO_BLK_F_RO
        assert not features & (VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES)
        assert blk.status(RequestType.OUT, sector=0, out=b"y" * 512) == Status.IOERR
        assert blk.status(RequestType.WRITE_ZEROES, out=bytes(16)) == Status.UNSUPP
        assert blk.status(RequestType.FLUSH) == Status.OK
        assert blk.submit(RequestType.IN, 0, data_in=512)[2] == before[:512] + b"\0"
    assert image.read_bytes() == before


def test_get_id(image: Path) -> None:
    with RawFileBackend(image) as backend:
        blk = Blk(backend, serial="llvmtcg-disk0")
        _, length, data = blk.submit(RequestType.GET_ID, data_in=20)
        assert length == 21
        assert data == b"llvmtcg-disk0".ljust(20, b"\0") + b"\0"
        blk = Blk(backend, serial="S" * 25)  # only 20 bytes fit, without a NUL
        assert blk.submit(RequestType.GET_ID, data_in=20)[2][:20] == b"S" * 20


def test_serial_must_be_ascii(image: Path) -> None:
    with RawFileBackend(image) as backend, pytest.raises(ValueError, match="ASCII"):
        VirtioBlk(backend, serial="dísk")


def test_unsupported_request(image: Path) -> None:
    with RawFileBackend(image) as backend:
        blk = Blk(backend)
        assert blk.status(10) == Status.UNSUPP  # GET_LIFETIME: not offered
        assert blk.status(0x1234) == Status.UNSUPP


def segment(sector: int, sectors: int, flags: int = 0) -> bytes:
    return struct.pack("<QII", sector, sectors, flags)


def test_write_zeroes_and_discard(image: Path) -> None:
    with RawFileBackend(image) as backend:
        blk = Blk(backend)
        assert blk.status(RequestType.WRITE_ZEROES, out=segment(2, 3)) == Status.OK
        assert blk.status(RequestType.WRITE_ZEROES, out=segment(10, 2, 1)) == Status.OK
        assert blk.status(RequestType.DISCARD, out=segment(20, 1)) == Status.OK
        content = image.read_bytes()
        assert content[2 * 512:5 * 512] == bytes(3 * 512)
        assert content[10 * 512:12 * 512] == bytes(2 * 512)
        assert content[5 * 512:10 * 512] == (bytes(range(256)) * 20)[:5 * 512]
        # The spec's UNSUPP cases: unmap on discard, unknown flags; more segments than
        # max_*_seg (1) too, as QEMU.
        assert blk.status(RequestType.DISCARD, out=segment(0, 1, 1)) == Status.UNSUPP
        assert blk.status(RequestType.WRITE_ZEROES, out=segment(0, 1, 2)) == Status.UNSUPP
        two = segment(0, 1) + segment(4, 1)
        assert blk.status(RequestType.WRITE_ZEROES, out=two) == Status.UNSUPP
        assert blk.status(RequestType.DISCARD, out=segment(DISK_SECTORS, 1)) == Status.IOERR
        assert blk.status(RequestType.WRITE_ZEROES,
                          out=segment(0, MAX_REQUEST_SECTORS + 1)) == Status.IOERR


def test_writeback_cache_modes(image: Path) -> None:
    with CountingBackend(image) as backend:
        blk = Blk(backend)
        assert blk.status(RequestType.OUT, out=bytes(512)) == Status.OK
        assert backend.flushes == 0  # writeback: stable only after FLUSH
        blk.slot.write(Reg.CONFIG + 32, 1, 0)  # CONFIG_WCE: switch to writethrough
        assert blk.config(32, 1) == 0
        assert blk.status(RequestType.OUT, out=bytes(512)) == Status.OK
        assert backend.flushes == 1
        blk.driver.write(Reg.STATUS, 0)  # reset: back to writeback
        assert blk.config(32, 1) == 1
    with CountingBackend(image) as backend:
        # Neither FLUSH nor CONFIG_WCE negotiated: every write must be stable at once.
        blk = Blk(backend, accept=VIRTIO_F_VERSION_1)
        assert blk.config(32, 1) == 0
        assert blk.status(RequestType.OUT, out=bytes(512)) == Status.OK
        assert blk.status(RequestType.WRITE_ZEROES, out=segment(0, 1)) == Status.UNSUPP
        assert backend.flushes == 1
    with CountingBackend(image) as backend:
        # CONFIG_WCE without FLUSH: writeback starts at 0 (the spec).
        blk = Blk(backend, accept=VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_CONFIG_WCE)
        assert blk.config(32, 1) == 0


def test_host_io_error_is_ioerr(image: Path) -> None:
    backend = RawFileBackend(image)
    blk = Blk(backend)
    backend.close()  # every host call now fails with EBADF
    assert blk.status(RequestType.IN, data_in=512) == Status.IOERR
    assert blk.status(RequestType.OUT, out=bytes(512)) == Status.IOERR
    assert blk.status(RequestType.FLUSH) == Status.IOERR
    assert not blk.slot.status & STATUS_DEVICE_NEEDS_RESET


def test_event_idx_batches_notifications(image: Path) -> None:
    with RawFileBackend(image) as backend:
        blk = Blk(backend)
        assert blk.slot.negotiated_features & VIRTIO_RING_F_EVENT_IDX
        queue: DriverQueue = blk.queue
        queue.set_used_event(5)  # interested only once the sixth request is done
        for sector in range(3):
            queue.add([struct.pack("<IIQ", RequestType.IN, 0, sector)], [512, 1])
        queue.kick()
        assert len(queue.take_used()) == 3 and blk.irq.level  # first notification
        blk.driver.ack_interrupt()
        for sector in range(2):
            queue.add([struct.pack("<IIQ", RequestType.IN, 0, sector)], [512, 1])
        queue.kick()
        assert len(queue.take_used()) == 2 and not blk.irq.level  # used idx 5 < 6
        queue.add([struct.pack("<IIQ", RequestType.IN, 0, 0)], [512, 1])
        queue.kick()
        assert blk.irq.level


def test_malformed_requests_need_reset(image: Path) -> None:
    with RawFileBackend(image) as backend:
        blk = Blk(backend)
        blk.queue.add([b"short"], [1])  # header of 5 bytes
        blk.queue.kick()
        assert blk.slot.status & STATUS_DEVICE_NEEDS_RESET
        assert blk.driver.read(Reg.INTERRUPT_STATUS) & INT_CONFIG_CHANGE
        assert blk.queue.take_used() == []
        blk = Blk(backend)
        blk.queue.add([struct.pack("<IIQ", RequestType.IN, 0, 0)], [])  # no status byte
        blk.queue.kick()
        assert "status byte" in blk.slot.broken_reason
        blk = Blk(backend)
        # A data buffer outside guest RAM: the device stops, no exception escapes.
        header = struct.pack("<IIQ", RequestType.IN, 0, 0)
        request = blk.queue.add([header], [512, 1])
        blk.queue.write_desc(request.head + 1, 0x1000, 512, 2 | 1, request.head + 2)
        blk.queue.kick()
        assert "outside guest RAM" in blk.slot.broken_reason
