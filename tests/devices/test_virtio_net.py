"""virtio-net driven through the virtio-mmio transport as Linux's virtio_net drives it."""

from __future__ import annotations

import struct

import pytest

from devices.virtio.device import VIRTIO_F_VERSION_1
from devices.virtio.mmio import INT_CONFIG_CHANGE, INT_USED_BUFFER, Reg, VirtioMmio
from devices.virtio.net import (
    MAX_PENDING_FRAMES,
    NET_HDR_SIZE,
    RX_QUEUE,
    TX_QUEUE,
    VIRTIO_NET_CTRL_MQ,
    VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
    VIRTIO_NET_ERR,
    VIRTIO_NET_F_CTRL_VQ,
    VIRTIO_NET_F_MAC,
    VIRTIO_NET_F_MQ,
    VIRTIO_NET_F_MRG_RXBUF,
    VIRTIO_NET_F_MTU,
    VIRTIO_NET_F_STATUS,
    VIRTIO_NET_OK,
    VirtioNet,
    default_mac,
    format_mac,
    parse_mac,
)
from devices.virtio.queue import VIRTIO_RING_F_EVENT_IDX
from tests.devices.virtio_driver import ByteRam, Driver, DriverQueue, IrqLine

MAC = bytes.fromhex("525400abcdef")
FRAME = bytes.fromhex("ffffffffffff525400abcdef0806") + bytes(range(46))


class Wire:
    """The backend side: records what the NIC sends."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)


class Nic:
    def __init__(self, accept: int | None = None, **options: object) -> None:
        self.ram, self.irq, self.wire = ByteRam(), IrqLine(), Wire()
        self.device = VirtioNet(MAC, self.wire, **options)  # type: ignore[arg-type]
        self.slot = VirtioMmio(self.irq, self.ram, self.device)
        self.driver = Driver(self.slot, self.ram)
        queues = self.driver.start(accept, queues=len(self.device.queue_max_sizes))
        self.rx, self.tx = queues[:2]
        self.ctrl = queues[2] if len(queues) > 2 else None

    def post_rx(self, size: int, count: int = 1) -> list:
        requests = [self.rx.add([], [size]) for _ in range(count)]
        self.rx.kick()
        return requests

    def transmit(self, frame: bytes, header: bytes = bytes(NET_HDR_SIZE)) -> None:
        self.tx.add([header, frame], [])
        self.tx.kick()


def header(data: bytes) -> tuple[int, ...]:
    return struct.unpack("<BBHHHHH", data[:NET_HDR_SIZE])


def test_features_config_and_mac() -> None:
    nic = Nic()
    features = nic.driver.device_features()
    assert features & VIRTIO_F_VERSION_1
    for bit in (VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_MRG_RXBUF):
        assert features & bit
    assert nic.slot.read(Reg.DEVICE_ID, 4) == 1
    assert bytes(nic.slot.read(Reg.CONFIG + i, 1) for i in range(6)) == MAC
    assert nic.slot.read(Reg.CONFIG + 6, 2) == 1  # VIRTIO_NET_S_LINK_UP
    assert nic.slot.read(Reg.CONFIG + 8, 2) == 0xFFFF  # beyond the config space
    nic.slot.write(Reg.CONFIG, 1, 0x11)  # the MAC is read-only with VERSION_1
    assert nic.slot.read(Reg.CONFIG, 1) == 0x52


def test_transmit_strips_the_header_and_completes() -> None:
    nic = Nic()
    nic.transmit(FRAME)
    assert nic.wire.frames == [FRAME]
    ((_, used_len),) = nic.tx.take_used()
    assert used_len == 0
    assert nic.driver.ack_interrupt() & INT_USED_BUFFER
    # A header split over two buffers and the frame in a third is the same frame.
    nic.tx.add([bytes(4), bytes(NET_HDR_SIZE - 4) + FRAME[:10], FRAME[10:]], [])
    nic.tx.kick()
    assert nic.wire.frames[-1] == FRAME


def test_transmit_shorter_than_the_header_needs_a_reset() -> None:
    nic = Nic()
    nic.tx.add([bytes(5)], [])
    nic.tx.kick()
    assert nic.slot.broken_reason is not None
    assert nic.wire.frames == []


def test_receive_into_mergeable_buffers() -> None:
    nic = Nic()
    (request,) = nic.post_rx(1526)
    nic.device.receive(FRAME)
    ((head, used_len),) = nic.rx.take_used()
    assert head == request.head and used_len == NET_HDR_SIZE + len(FRAME)
    data = nic.rx.read_in(request)
    assert header(data) == (0, 0, 0, 0, 0, 0, 1)  # num_buffers = 1
    assert data[NET_HDR_SIZE:used_len] == FRAME
    assert nic.irq.level


def test_a_large_frame_spans_several_mergeable_buffers() -> None:
    nic = Nic()
    requests = nic.post_rx(100, count=4)
    frame = bytes(range(256)) + bytes(30)  # 286 bytes + 12 of header = 3 buffers
    nic.device.receive(frame)
    used = nic.rx.take_used()
    assert [length for _, length in used] == [100, 100, 98]
    stream = b"".join(nic.rx.read_in(r) for r in requests[:3])[:NET_HDR_SIZE + len(frame)]
    assert header(stream)[-1] == 3
    assert stream[NET_HDR_SIZE:] == frame


def test_without_mrg_rxbuf_one_buffer_per_frame() -> None:
    offered = Nic().driver.device_features()
    nic = Nic(accept=offered & ~VIRTIO_NET_F_MRG_RXBUF)
    (request,) = nic.post_rx(1526)
    nic.device.receive(FRAME)
    ((_, used_len),) = nic.rx.take_used()
    assert used_len == NET_HDR_SIZE + len(FRAME)
    assert header(nic.rx.read_in(request))[-1] == 1


def test_frames_wait_for_buffers_and_are_bounded() -> None:
    nic = Nic()
    nic.device.receive(FRAME)
    nic.device.receive(FRAME[::-1])
    assert nic.rx.take_used() == [] and nic.device.pending_frames == 2
    requests = nic.post_rx(1526, count=2)  # the kick delivers them, in order
    used = nic.rx.take_used()
    assert len(used) == 2 and nic.device.pending_frames == 0
    assert nic.rx.read_in(requests[0])[NET_HDR_SIZE:][:len(FRAME)] == FRAME
    assert nic.rx.read_in(requests[1])[NET_HDR_SIZE:][:len(FRAME)] == FRAME[::-1]
    for _ in range(MAX_PENDING_FRAMES + 5):
        nic.device.receive(FRAME)
    assert nic.device.pending_frames == MAX_PENDING_FRAMES
    assert nic.device.dropped == 5


def test_nothing_is_received_before_driver_ok_or_with_the_link_down() -> None:
    ram, irq = ByteRam(), IrqLine()
    device = VirtioNet(MAC, Wire())
    VirtioMmio(irq, ram, device)
    device.receive(FRAME)  # the driver has not started: held, not written
    assert not irq.changes
    nic = Nic()
    nic.post_rx(1526)
    nic.device.set_link(False)
    assert nic.slot.read(Reg.CONFIG + 6, 2) == 0
    nic.device.receive(FRAME)
    nic.transmit(FRAME)
    assert nic.rx.take_used() == [] and nic.wire.frames == []


def test_reset_forgets_pending_frames() -> None:
    nic = Nic()
    nic.device.receive(FRAME)
    nic.driver.write(Reg.STATUS, 0)
    assert nic.device.pending_frames == 0


def test_event_idx_suppresses_rx_interrupts() -> None:
    nic = Nic()
    assert nic.driver.device_features() & VIRTIO_RING_F_EVENT_IDX
    nic.post_rx(1526, count=3)
    nic.device.receive(FRAME)  # the first use after setup always notifies
    assert nic.driver.ack_interrupt() == INT_USED_BUFFER and not nic.irq.level
    nic.rx.set_used_event(2)  # notify once used entry 2 (the third) is written
    nic.device.receive(FRAME)
    assert not nic.irq.level
    nic.device.receive(FRAME)
    assert nic.irq.level


def test_a_batch_is_received_in_order_with_one_notification() -> None:
    nic = Nic()
    queue = nic.slot.queue(RX_QUEUE)
    notified = []
    queue.interrupt = lambda: notified.append(queue.used_idx)
    requests = nic.post_rx(1526, count=2)
    nic.rx.set_used_event(0xFFFF)  # (the first use after setup notifies anyway)
    nic.device.receive_batch([FRAME, FRAME[::-1], FRAME[:20]])
    # The two buffers are used and published together, with one notification; the
    # third frame waits for a buffer.
    assert notified == [2]
    used = nic.rx.take_used()
    assert [head for head, _ in used] == [r.head for r in requests]
    assert [nic.rx.read_in(r)[NET_HDR_SIZE:NET_HDR_SIZE + 20] for r in requests] == [
        FRAME[:20], FRAME[::-1][:20]]
    assert nic.device.pending_frames == 1
    nic.device.receive_batch([FRAME])  # behind the held one
    assert nic.device.pending_frames == 2
    later = nic.post_rx(1526, count=2)  # the kick delivers them, in order
    assert nic.device.pending_frames == 0
    assert [nic.rx.read_in(r)[NET_HDR_SIZE:NET_HDR_SIZE + 20] for r in later] == [
        FRAME[:20], FRAME[:20]]
    assert nic.rx.read_in(later[0])[NET_HDR_SIZE + 20:NET_HDR_SIZE + 21] == b"\xaa"
    # used_event outside the batch's entries: no notification for it.
    nic.rx.take_used()
    nic.post_rx(1526, count=2)
    nic.rx.set_used_event(10)
    notified.clear()
    nic.device.receive_batch([FRAME, FRAME])
    assert notified == []


def test_mac_parsing_and_qemu_defaults() -> None:
    assert parse_mac("52:54:00:12:34:56") == bytes.fromhex("525400123456")
    assert parse_mac("1-2-3-4-5-6") == bytes(range(1, 7))
    for bad in ("zz", "52:54:00:12:34", "52:54:00:12:34:567", ""):
        assert parse_mac(bad) is None
    assert format_mac(default_mac(0)) == "52:54:00:12:34:56"
    assert format_mac(default_mac(1)) == "52:54:00:12:34:57"
    with pytest.raises(ValueError):
        VirtioNet(b"\0" * 5)


def test_queue_indices() -> None:
    nic = Nic()
    assert isinstance(nic.rx, DriverQueue) and nic.rx.index == RX_QUEUE
    assert nic.tx.index == TX_QUEUE
    nic.driver.write(Reg.QUEUE_SEL, 2)
    assert nic.driver.read(Reg.QUEUE_NUM_MAX) == 0  # two queues only


def test_set_link_changes_the_status_and_notifies_the_driver() -> None:
    nic = Nic()
    nic.driver.ack_interrupt()
    nic.device.set_link(False)
    assert nic.slot.read(Reg.CONFIG + 6, 2) == 0
    assert nic.driver.ack_interrupt() & INT_CONFIG_CHANGE
    nic.device.set_link(False)  # no change: no notification
    assert not nic.irq.level
    nic.device.set_link(True)
    assert nic.slot.read(Reg.CONFIG + 6, 2) == 1 and nic.irq.level


def test_host_mtu_is_offered_in_the_config_space() -> None:
    plain = Nic()
    assert not plain.driver.device_features() & (VIRTIO_NET_F_MTU | VIRTIO_NET_F_MQ)
    nic = Nic(host_mtu=1400)
    assert nic.driver.device_features() & VIRTIO_NET_F_MTU
    assert not nic.driver.device_features() & VIRTIO_NET_F_CTRL_VQ
    assert nic.slot.read(Reg.CONFIG + 8, 2) == 1  # max_virtqueue_pairs
    assert nic.slot.read(Reg.CONFIG + 10, 2) == 1400  # mtu
    assert nic.slot.read(Reg.CONFIG + 12, 2) == 0xFFFF  # beyond the config space
    nic.transmit(FRAME)  # the MTU is the driver's to keep: frames pass as before
    assert nic.wire.frames == [FRAME]


def ctrl_command(nic: Nic, command_class: int, command: int, data: bytes) -> int:
    assert nic.ctrl is not None
    request = nic.ctrl.add([bytes([command_class, command]), data], [1])
    nic.ctrl.kick()
    ((head, used_len),) = nic.ctrl.take_used()
    assert (head, used_len) == (request.head, 1)
    return nic.ctrl.read_in(request)[0]


def test_mq_has_one_pair_and_a_control_queue_that_sets_it() -> None:
    nic = Nic(multiqueue=True)
    features = nic.driver.device_features()
    assert features & VIRTIO_NET_F_MQ and features & VIRTIO_NET_F_CTRL_VQ
    assert nic.device.queue_max_sizes == (256, 256, 64)
    assert nic.slot.read(Reg.CONFIG + 8, 2) == 1  # max_virtqueue_pairs
    assert nic.slot.read(Reg.CONFIG + 10, 2) == 0xFFFF  # no mtu field without MTU
    pairs_set = (VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET)
    assert ctrl_command(nic, *pairs_set, struct.pack("<H", 1)) == VIRTIO_NET_OK
    assert ctrl_command(nic, *pairs_set, struct.pack("<H", 2)) == VIRTIO_NET_ERR
    assert ctrl_command(nic, *pairs_set, struct.pack("<H", 0)) == VIRTIO_NET_ERR
    assert ctrl_command(nic, 0, 0, b"\x01") == VIRTIO_NET_ERR  # RX class: not offered
    (request,) = nic.post_rx(1526)  # the data queues work as without mq
    nic.device.receive(FRAME)
    assert nic.rx.take_used() == [(request.head, NET_HDR_SIZE + len(FRAME))]


def test_mq_not_negotiated_refuses_pairs_set() -> None:
    nic = Nic(accept=VIRTIO_F_VERSION_1 | VIRTIO_NET_F_CTRL_VQ, multiqueue=True)
    assert ctrl_command(nic, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET,
                        struct.pack("<H", 1)) == VIRTIO_NET_ERR
