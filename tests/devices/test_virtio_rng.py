"""virtio-rng through the virtio-mmio transport."""

from __future__ import annotations

from devices.virtio.device import STATUS_DEVICE_NEEDS_RESET
from devices.virtio.mmio import INT_CONFIG_CHANGE, Reg, VirtioMmio
from devices.virtio.rng import MAX_BYTES_PER_BUFFER, VirtioRng
from tests.devices.virtio_driver import ByteRam, Driver, IrqLine


class CountingSource:
    """A deterministic entropy source: 0, 1, 2, ... across calls."""

    def __init__(self) -> None:
        self.next = 0

    def __call__(self, n: int) -> bytes:
        data = bytes((self.next + i) & 0xFF for i in range(n))
        self.next += n
        return data


def start(source=None):
    ram, irq = ByteRam(), IrqLine()
    slot = VirtioMmio(irq, ram, VirtioRng(source) if source else VirtioRng())
    driver = Driver(slot, ram)
    (queue,) = driver.start()
    return slot, driver, queue, irq


def test_fills_buffers_from_source() -> None:
    _, driver, queue, irq = start(CountingSource())
    assert driver.read(Reg.DEVICE_ID) == 4
    first = queue.add([], [16])
    second = queue.add([], [8, 8])  # one chain of two buffers
    queue.kick()
    assert queue.take_used() == [(first.head, 16), (second.head, 16)]
    assert queue.read_in(first) == bytes(range(16))
    assert queue.read_in(second) == bytes(range(16, 32))
    assert irq.level


def test_default_source_is_random() -> None:
    _, _, queue, _ = start()
    requests = [queue.add([], [64]) for _ in range(2)]
    queue.kick()
    assert [length for _, length in queue.take_used()] == [64, 64]
    first, second = (queue.read_in(r) for r in requests)
    assert first != second and first != b"\xaa" * 64


def test_large_buffer_partly_filled() -> None:
    _, _, queue, _ = start(CountingSource())
    request = queue.add([], [MAX_BYTES_PER_BUFFER + 100])
    queue.kick()
    assert queue.take_used() == [(request.head, MAX_BYTES_PER_BUFFER)]
    assert queue.read_in(request)[MAX_BYTES_PER_BUFFER:] == b"\xaa" * 100


def test_readable_only_buffer_gets_nothing() -> None:
    _, _, queue, _ = start(CountingSource())
    request = queue.add([b"not for the device"], [])
    queue.kick()
    assert queue.take_used() == [(request.head, 0)]


def test_malformed_chains_need_reset() -> None:
    slot, driver, queue, irq = start(CountingSource())
    queue.write_desc(0, queue.desc, 16, 2 | 1, 1)
    queue.write_desc(1, queue.desc, 16, 2 | 1, 0)  # 0 -> 1 -> 0: a loop
    queue.publish(0)
    queue.kick()
    assert driver.read(Reg.STATUS) & STATUS_DEVICE_NEEDS_RESET
    assert driver.read(Reg.INTERRUPT_STATUS) == INT_CONFIG_CHANGE and irq.level
    slot, driver, queue, irq = start(CountingSource())
    queue.write_desc(0, 0x10_0000_0000, 64, 2)  # a buffer beyond guest RAM
    queue.publish(0)
    queue.kick()
    assert driver.read(Reg.STATUS) & STATUS_DEVICE_NEEDS_RESET
    assert queue.take_used() == []
