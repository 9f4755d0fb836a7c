"""A virtio driver for tests: drives a VirtioMmio slot register by register as Linux's
virtio_mmio and virtio_ring do, over guest RAM kept in a bytearray."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import devices.base
from devices.virtio.device import (
    STATUS_ACKNOWLEDGE,
    STATUS_DRIVER,
    STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
)
from devices.virtio.mmio import Reg, VirtioMmio
from devices.virtio.queue import (
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
)

RAM_BASE = 0x8000_0000
RAM_SIZE = 4 << 20


class ByteRam(devices.base.ByteRam):
    """devices.base.ByteRam at RAM_BASE, with a bump allocator for the driver."""

    def __init__(self, base: int = RAM_BASE, size: int = RAM_SIZE) -> None:
        super().__init__(size, base)
        self._next = base

    def alloc(self, size: int, align: int = 16) -> int:
        addr = -(-self._next // align) * align
        self._next = addr + size
        self._offset(addr, size)  # raises when the allocation does not fit
        return addr

    def u16(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 2), "little")

    def put_u16(self, addr: int, value: int) -> None:
        self.write(addr, value.to_bytes(2, "little"))


class IrqLine:
    """Records the level of an interrupt line."""

    def __init__(self) -> None:
        self.changes: list[bool] = []

    def __call__(self, level: bool) -> None:
        self.changes.append(level)

    @property
    def level(self) -> bool:
        return self.changes[-1] if self.changes else False


@dataclass
class Request:
    head: int
    in_buffers: list[tuple[int, int]]  # (addr, length) of the device-writable buffers


class DriverQueue:
    """The driver side of a split virtqueue."""

    def __init__(self, driver: Driver, index: int, size: int) -> None:
        self.driver, self.index, self.size = driver, index, size
        ram = driver.ram
        self.desc = ram.alloc(16 * size, 16)
        self.avail = ram.alloc(6 + 2 * size, 2)
        self.used = ram.alloc(6 + 8 * size, 4)
        self.free = list(range(size))
        self.avail_idx = 0
        self.last_used = 0

    def write_desc(self, index: int, addr: int, length: int, flags: int = 0,
                   next_index: int = 0, table: int | None = None) -> None:
        base = self.desc if table is None else table
        self.driver.ram.write(base + 16 * index,
                              struct.pack("<QIHH", addr, length, flags, next_index))

    def add(self, out: list[bytes], in_sizes: list[int], indirect: bool = False) -> Request:
        """Places a chain of device-readable buffers holding ``out`` then device-writable
        buffers of ``in_sizes`` bytes, and makes it available (not notified yet)."""
        ram = self.driver.ram
        buffers = []
        for data in out:
            addr = ram.alloc(len(data), 8)
            ram.write(addr, data)
            buffers.append((addr, len(data), 0))
        in_buffers = []
        for size in in_sizes:
            addr = ram.alloc(size, 8)
            ram.write(addr, b"\xaa" * size)  # the device must overwrite what it reports
            buffers.append((addr, size, VIRTQ_DESC_F_WRITE))
            in_buffers.append((addr, size))
        if indirect:
            table = ram.alloc(16 * len(buffers), 16)
            for i, (addr, length, flags) in enumerate(buffers):
                more = VIRTQ_DESC_F_NEXT if i + 1 < len(buffers) else 0
                self.write_desc(i, addr, length, flags | more, i + 1, table=table)
            head = self.free.pop(0)
            self.write_desc(head, table, 16 * len(buffers), VIRTQ_DESC_F_INDIRECT)
        else:
            indices = [self.free.pop(0) for _ in buffers]
            head = indices[0]
            for i, (addr, length, flags) in enumerate(buffers):
                last = i + 1 == len(buffers)
                self.write_desc(indices[i], addr, length,
                                flags | (0 if last else VIRTQ_DESC_F_NEXT),
                                0 if last else indices[i + 1])
        self.publish(head)
        return Request(head, in_buffers)

    def publish(self, head: int) -> None:
        ram = self.driver.ram
        ram.put_u16(self.avail + 4 + 2 * (self.avail_idx % self.size), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        ram.put_u16(self.avail + 2, self.avail_idx)

    def kick(self) -> None:
        self.driver.write(Reg.QUEUE_NOTIFY, self.index)

    def take_used(self) -> list[tuple[int, int]]:
        """The (id, len) entries the device used since the last call."""
        ram = self.driver.ram
        used_idx = ram.u16(self.used + 2)
        entries = []
        while self.last_used != used_idx:
            slot = self.last_used % self.size
            entries.append(struct.unpack("<II", ram.read(self.used + 4 + 8 * slot, 8)))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return entries

    def read_in(self, request: Request) -> bytes:
        """The device-writable buffers of ``request``, concatenated."""
        return b"".join(self.driver.ram.read(a, n) for a, n in request.in_buffers)

    def set_used_event(self, value: int) -> None:
        self.driver.ram.put_u16(self.avail + 4 + 2 * self.size, value)

    def avail_event(self) -> int:
        return self.driver.ram.u16(self.used + 4 + 8 * self.size)

    def set_avail_flags(self, flags: int) -> None:
        self.driver.ram.put_u16(self.avail, flags)


class Driver:
    def __init__(self, slot: VirtioMmio, ram: ByteRam) -> None:
        self.slot, self.ram = slot, ram

    def read(self, reg: int) -> int:
        return self.slot.read(reg, 4)

    def write(self, reg: int, value: int) -> None:
        self.slot.write(reg, 4, value)

    def device_features(self) -> int:
        self.write(Reg.DEVICE_FEATURES_SEL, 1)
        high = self.read(Reg.DEVICE_FEATURES)
        self.write(Reg.DEVICE_FEATURES_SEL, 0)
        return high << 32 | self.read(Reg.DEVICE_FEATURES)

    def add_status(self, bits: int) -> None:
        self.write(Reg.STATUS, self.read(Reg.STATUS) | bits)

    def negotiate(self, accept: int | None = None) -> bool:
        """Reset, ACKNOWLEDGE, DRIVER, write ``accept`` (default: every offered feature)
        as the driver features and set FEATURES_OK; returns whether the device kept
        FEATURES_OK."""
        assert self.read(Reg.MAGIC_VALUE) == 0x74726976
        assert self.read(Reg.VERSION) == 2
        self.write(Reg.STATUS, 0)
        assert self.read(Reg.STATUS) == 0
        self.add_status(STATUS_ACKNOWLEDGE)
        self.add_status(STATUS_DRIVER)
        if accept is None:
            accept = self.device_features()
        self.write(Reg.DRIVER_FEATURES_SEL, 1)
        self.write(Reg.DRIVER_FEATURES, accept >> 32)
        self.write(Reg.DRIVER_FEATURES_SEL, 0)
        self.write(Reg.DRIVER_FEATURES, accept & 0xFFFFFFFF)
        self.add_status(STATUS_FEATURES_OK)
        return bool(self.read(Reg.STATUS) & STATUS_FEATURES_OK)

    def setup_queue(self, index: int, size: int | None = None) -> DriverQueue:
        self.write(Reg.QUEUE_SEL, index)
        assert self.read(Reg.QUEUE_READY) == 0
        maximum = self.read(Reg.QUEUE_NUM_MAX)
        assert maximum > 0
        queue = DriverQueue(self, index, size or min(maximum, 64))
        self.write(Reg.QUEUE_NUM, queue.size)
        for low, address in ((Reg.QUEUE_DESC_LOW, queue.desc),
                             (Reg.QUEUE_DRIVER_LOW, queue.avail),
                             (Reg.QUEUE_DEVICE_LOW, queue.used)):
            self.write(low, address & 0xFFFFFFFF)
            self.write(low + 4, address >> 32)
        self.write(Reg.QUEUE_READY, 1)
        return queue

    def start(self, accept: int | None = None, queues: int = 1) -> list[DriverQueue]:
        """The whole Linux probe: negotiate (all offered features by default), set up
        ``queues`` queues, DRIVER_OK."""
        if not self.negotiate(accept):
            raise AssertionError("device refused FEATURES_OK")
        result = [self.setup_queue(i) for i in range(queues)]
        self.add_status(STATUS_DRIVER_OK)
        return result

    def ack_interrupt(self) -> int:
        status = self.read(Reg.INTERRUPT_STATUS)
        self.write(Reg.INTERRUPT_ACK, status)
        return status
