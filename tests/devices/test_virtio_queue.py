"""Split virtqueues: chains, indirect tables, the used ring, notification suppression and
the driver's mistakes."""

from __future__ import annotations

import pytest

from devices.virtio.queue import (
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    VIRTQ_AVAIL_F_NO_INTERRUPT,
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
    Buffer,
    DmaError,
    VirtioError,
    Virtqueue,
    need_event,
)
from tests.devices.virtio_driver import RAM_BASE, RAM_SIZE, ByteRam, Driver, DriverQueue

NEXT, WRITE, INDIRECT = VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT
ALL = VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX


class Pair:
    """A driver-side queue and the device-side Virtqueue over the same RAM."""

    def __init__(self, size: int = 8, features: int = ALL) -> None:
        self.ram = ByteRam()
        self.interrupts = 0
        self.driver = DriverQueue(Driver(None, self.ram), 0, size)
        self.device = Virtqueue(self.ram, size, self.driver.desc, self.driver.avail,
                                self.driver.used, features, self._interrupt)

    def _interrupt(self) -> None:
        self.interrupts += 1


def test_pop_chain_of_readable_and_writable_buffers() -> None:
    q = Pair()
    request = q.driver.add([b"head", b"er"], [3, 5])
    chain = q.device.pop()
    assert chain.head == request.head
    assert [b.length for b in chain.readable] == [4, 2]
    assert [Buffer(a, n) for a, n in request.in_buffers] == list(chain.writable)
    assert chain.read(0, 6) == b"header" and chain.read(3, 10) == b"der"
    assert chain.write(2, b"12345678") == 6  # truncated at the end of the writable part
    assert q.driver.read_in(request) == b"\xaa\xaa123" + b"456"
    assert q.device.pop() is None


def test_indirect_table_and_direct_then_indirect() -> None:
    q = Pair()
    request = q.driver.add([b"abc"], [4], indirect=True)
    chain = q.device.pop()
    assert chain.head == request.head and chain.read(0, 3) == b"abc"
    assert chain.writable_length == 4
    # The spec's "zero or more normal chained descriptors followed by a single
    # descriptor with VIRTQ_DESC_F_INDIRECT".
    ram, d = q.ram, q.driver
    data = ram.alloc(8)
    ram.write(data, b"direct!!")
    table = ram.alloc(32)
    out, in_ = ram.alloc(4), ram.alloc(4)
    ram.write(out, b"tabl")
    d.write_desc(0, out, 4, NEXT, 1, table=table)
    d.write_desc(1, in_, 4, WRITE, 0, table=table)
    d.write_desc(5, data, 8, NEXT, 6)
    d.write_desc(6, table, 32, INDIRECT)
    d.publish(5)
    chain = q.device.pop()
    assert chain.read(0, 12) == b"direct!!tabl" and chain.writable == (Buffer(in_, 4),)


def test_push_writes_used_ring_and_flush_publishes_it() -> None:
    q = Pair()
    first = q.driver.add([b"x"], [])
    second = q.driver.add([], [16])
    q.device.push(q.device.pop(), 0)
    q.device.push(q.device.pop(), 16)
    # The used idx moves once per batch (QEMU's virtqueue_flush), not per entry.
    assert q.driver.take_used() == []
    q.device.flush_used()
    assert q.driver.take_used() == [(first.head, 0), (second.head, 16)]
    third = q.driver.add([b"y"], [])
    q.device.push(q.device.pop(), 0)
    q.device.notify_used()  # (publishes too)
    assert q.driver.take_used() == [(third.head, 0)]


def test_indices_wrap_around_16_bits() -> None:
    q = Pair(size=4, features=0)
    q.driver.avail_idx = q.driver.last_used = 0xFFFE
    q.device.last_avail_idx = q.device.used_idx = 0xFFFE
    heads = [q.driver.add([b"a"], []).head for _ in range(3)]
    for _ in range(3):
        q.device.push(q.device.pop(), 0)
    q.device.flush_used()
    assert [head for head, _ in q.driver.take_used()] == heads
    assert q.device.used_idx == 1


def test_no_interrupt_flag_without_event_idx() -> None:
    q = Pair(features=0)
    q.driver.add([b"a"], [])
    q.device.push(q.device.pop(), 0)
    q.device.notify_used()
    assert q.interrupts == 1
    q.device.notify_used()  # nothing new: no notification
    assert q.interrupts == 1
    q.driver.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT)
    q.driver.add([b"a"], [])
    q.device.push(q.device.pop(), 0)
    q.device.notify_used()
    assert q.interrupts == 1


def test_event_idx_suppression() -> None:
    q = Pair()
    q.driver.set_avail_flags(VIRTQ_AVAIL_F_NO_INTERRUPT)  # ignored with EVENT_IDX
    q.driver.set_used_event(2)  # notify when the used entry with index 2 is written
    for _ in range(4):
        q.driver.add([b"a"], [])
    results = []
    for _ in range(4):
        q.device.push(q.device.pop(), 0)
        before = q.interrupts
        q.device.notify_used()
        results.append(q.interrupts - before)
    # The first check always notifies (nothing signalled yet, as QEMU); then only the
    # entry at used_event does.
    assert results == [1, 0, 1, 0]
    # Once it finds the ring empty, the device asks to be notified for the next
    # available entry (not before: it comes back for entries it knows of).
    assert q.driver.avail_event() == 0
    assert q.device.pop() is None
    assert q.driver.avail_event() == 4


def test_avail_idx_read_once_per_batch() -> None:
    q = Pair()
    heads = [q.driver.add([b"a"], []).head for _ in range(3)]
    first = q.device.pop()
    # The driver's index is not read again while entries are known available: a
    # (broken) index moved back does not undo them.
    q.ram.put_u16(q.driver.avail + 2, 1)
    assert [first.head, q.device.pop().head, q.device.pop().head] == heads
    q.ram.put_u16(q.driver.avail + 2, 3)
    assert q.device.pop() is None
    q.driver.add([b"b"], [])  # available after the device found the ring empty
    assert q.device.pop() is not None


def test_event_idx_batch_crossing_used_event() -> None:
    q = Pair()
    q.driver.add([b"a"], [])
    q.device.push(q.device.pop(), 0)
    q.device.notify_used()
    q.driver.set_used_event(2)
    for _ in range(3):
        q.driver.add([b"a"], [])
        q.device.push(q.device.pop(), 0)
    q.device.notify_used()  # entries 1..3 used at once: 2 is among them
    assert q.interrupts == 2


def test_need_event() -> None:
    assert need_event(5, 6, 5) and not need_event(6, 6, 5)
    assert need_event(0xFFFF, 1, 0xFFFE)  # window across the wrap
    assert not need_event(3, 1, 0xFFFE)


def setup_bad(q: Pair, *descs: tuple[int, int, int, int, int]) -> None:
    for index, addr, length, flags, next_index in descs:
        q.driver.write_desc(index, addr, length, flags, next_index)
    q.driver.publish(descs[0][0])


BUF = RAM_BASE + RAM_SIZE // 2


@pytest.mark.parametrize("descs, reason", [
    (((0, BUF, 4, NEXT, 1), (1, BUF, 4, NEXT, 0)), "loop"),
    (((0, BUF, 4, NEXT, 8),), "next 8"),
    (((0, BUF, 0, 0, 0),), "zero-sized"),
    (((0, BUF, 4, WRITE | NEXT, 1), (1, BUF, 4, 0, 0)), "readable buffer after"),
    (((0, BUF, 17, INDIRECT, 0),), "indirect table of 17"),
    (((0, BUF, 16, INDIRECT | NEXT, 1),), "VIRTQ_DESC_F_NEXT"),
    (((0, BUF, 0x7FFFFFFF, NEXT, 1), (1, BUF, 0x7FFFFFFF, NEXT, 2),
      (2, BUF, 0x7FFFFFFF, 0, 0)), "4 GiB"),
])
def test_malformed_chains(descs, reason: str) -> None:
    q = Pair()
    setup_bad(q, *descs)
    with pytest.raises(VirtioError, match=reason):
        q.device.pop()


def test_nested_indirect_and_indirect_not_negotiated() -> None:
    q = Pair()
    table = q.ram.alloc(16)
    q.driver.write_desc(0, BUF, 16, INDIRECT, table=table)
    setup_bad(q, (0, table, 16, INDIRECT, 0))
    with pytest.raises(VirtioError, match="inside an indirect table"):
        q.device.pop()
    q = Pair(features=0)
    setup_bad(q, (0, BUF, 16, INDIRECT, 0))
    with pytest.raises(VirtioError, match="without VIRTIO_F_INDIRECT_DESC"):
        q.device.pop()


def test_loop_inside_indirect_table() -> None:
    q = Pair()
    table = q.ram.alloc(32)
    q.driver.write_desc(0, BUF, 4, NEXT, 1, table=table)
    q.driver.write_desc(1, BUF, 4, NEXT, 0, table=table)
    setup_bad(q, (0, table, 32, INDIRECT, 0))
    with pytest.raises(VirtioError, match="loop"):
        q.device.pop()


def test_bad_ring_indices() -> None:
    q = Pair()
    q.ram.put_u16(q.driver.avail + 2, 9)  # 9 entries on a queue of 8
    with pytest.raises(VirtioError, match="available index"):
        q.device.pop()
    q = Pair()
    q.driver.publish(8)
    with pytest.raises(VirtioError, match="descriptor 8"):
        q.device.pop()


def test_rings_outside_ram() -> None:
    ram = ByteRam()
    queue = Virtqueue(ram, 8, 0x1000, 0x2000, 0x3000, ALL, lambda: None)
    with pytest.raises(DmaError):
        queue.pop()


def test_queue_size_must_be_power_of_two() -> None:
    with pytest.raises(VirtioError, match="power of 2"):
        Virtqueue(ByteRam(), 6, RAM_BASE, RAM_BASE, RAM_BASE, 0, lambda: None)
