"""The virtio-mmio transport, driven register by register as Linux does."""

from __future__ import annotations

import pytest

from devices.virtio.device import (
    STATUS_ACKNOWLEDGE,
    STATUS_DEVICE_NEEDS_RESET,
    STATUS_DRIVER,
    STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
    VIRTIO_F_VERSION_1,
)
from devices.virtio.mmio import (
    INT_CONFIG_CHANGE,
    INT_USED_BUFFER,
    FdtNode,
    Phandle,
    Reg,
    VirtioMmio,
    fdt_node,
)
from devices.virtio.queue import VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC
from devices.virtio.rng import VirtioRng
from tests.devices.virtio_driver import ByteRam, Driver, IrqLine


def make(device=None) -> tuple[VirtioMmio, Driver, IrqLine]:
    ram, irq = ByteRam(), IrqLine()
    slot = VirtioMmio(irq, ram, device)
    return slot, Driver(slot, ram), irq


def rng_source(n: int) -> bytes:
    return bytes(i & 0xFF for i in range(n))


def test_empty_slot_reads_as_qemus_placeholder() -> None:
    slot, driver, irq = make()
    assert driver.read(Reg.MAGIC_VALUE) == 0x74726976
    assert driver.read(Reg.VERSION) == 2
    assert driver.read(Reg.DEVICE_ID) == 0
    assert driver.read(Reg.VENDOR_ID) == 0x554D4551
    driver.write(Reg.STATUS, STATUS_ACKNOWLEDGE)
    driver.write(Reg.QUEUE_NOTIFY, 0)
    for reg in (Reg.DEVICE_FEATURES, Reg.QUEUE_NUM_MAX, Reg.STATUS, Reg.INTERRUPT_STATUS):
        assert driver.read(reg) == 0
    assert slot.read(Reg.CONFIG, 4) == 0
    assert irq.changes == []


def test_identification_and_features() -> None:
    _, driver, _ = make(VirtioRng(rng_source))
    assert driver.read(Reg.DEVICE_ID) == 4
    features = driver.device_features()
    assert features & VIRTIO_F_VERSION_1  # bit 32: in the second word
    assert features & VIRTIO_RING_F_INDIRECT_DESC and features & VIRTIO_RING_F_EVENT_IDX
    driver.write(Reg.DEVICE_FEATURES_SEL, 1)
    assert driver.read(Reg.DEVICE_FEATURES) == 1
    driver.write(Reg.DEVICE_FEATURES_SEL, 2)
    assert driver.read(Reg.DEVICE_FEATURES) == 0


def test_feature_negotiation() -> None:
    slot, driver, _ = make(VirtioRng(rng_source))
    assert driver.negotiate(VIRTIO_F_VERSION_1)
    assert driver.read(Reg.STATUS) == STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK
    assert slot.negotiated_features == VIRTIO_F_VERSION_1
    # After FEATURES_OK the driver features are fixed until a reset.
    driver.write(Reg.DRIVER_FEATURES, VIRTIO_RING_F_EVENT_IDX)
    assert slot.negotiated_features == VIRTIO_F_VERSION_1
    assert driver.negotiate()  # everything offered
    assert slot.negotiated_features == driver.device_features()


@pytest.mark.parametrize("accept", [
    0,  # no VIRTIO_F_VERSION_1: a legacy driver, which a version 2 device cannot serve
    VIRTIO_F_VERSION_1 | 1 << 0,  # a feature the device did not offer
    VIRTIO_F_VERSION_1 | 1 << 40,
])
def test_features_ok_refused(accept: int) -> None:
    slot, driver, _ = make(VirtioRng(rng_source))
    assert not driver.negotiate(accept)
    assert driver.read(Reg.STATUS) == STATUS_ACKNOWLEDGE | STATUS_DRIVER
    assert slot.negotiated_features == 0


def test_features_beyond_64_bits_refused() -> None:
    _, driver, _ = make(VirtioRng(rng_source))
    driver.write(Reg.STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER)
    driver.write(Reg.DRIVER_FEATURES_SEL, 1)
    driver.write(Reg.DRIVER_FEATURES, 1)
    driver.write(Reg.DRIVER_FEATURES_SEL, 2)
    driver.write(Reg.DRIVER_FEATURES, 1)
    driver.add_status(STATUS_FEATURES_OK)
    assert not driver.read(Reg.STATUS) & STATUS_FEATURES_OK


def test_queue_registers() -> None:
    _, driver, _ = make(VirtioRng(rng_source))
    driver.negotiate()
    driver.write(Reg.QUEUE_SEL, 0)
    assert driver.read(Reg.QUEUE_NUM_MAX) == 1024  # QEMU's value
    driver.write(Reg.QUEUE_SEL, 1)  # rng has one queue
    assert driver.read(Reg.QUEUE_NUM_MAX) == 0
    driver.write(Reg.QUEUE_READY, 1)
    assert driver.read(Reg.QUEUE_READY) == 0
    queue = driver.setup_queue(0, 16)
    assert driver.read(Reg.QUEUE_READY) == 1
    driver.write(Reg.QUEUE_READY, 0)
    assert driver.read(Reg.QUEUE_READY) == 0
    assert queue.size == 16


@pytest.mark.parametrize("size", [0, 3, 2048])
def test_bad_queue_size_needs_reset(size: int) -> None:
    slot, driver, _ = make(VirtioRng(rng_source))
    driver.negotiate()
    driver.write(Reg.QUEUE_SEL, 0)
    driver.write(Reg.QUEUE_NUM, size)
    driver.write(Reg.QUEUE_READY, 1)
    assert driver.read(Reg.QUEUE_READY) == 0
    assert driver.read(Reg.STATUS) & STATUS_DEVICE_NEEDS_RESET
    assert "size" in slot.broken_reason


def test_used_buffer_interrupt_and_ack() -> None:
    _, driver, irq = make(VirtioRng(rng_source))
    (queue,) = driver.start()
    request = queue.add([], [8])
    assert not irq.level
    queue.kick()
    assert queue.take_used() == [(request.head, 8)]
    assert queue.read_in(request) == rng_source(8)
    assert irq.level
    assert driver.read(Reg.INTERRUPT_STATUS) == INT_USED_BUFFER
    driver.write(Reg.INTERRUPT_ACK, INT_USED_BUFFER)
    assert not irq.level and driver.read(Reg.INTERRUPT_STATUS) == 0


def test_buffers_not_consumed_before_driver_ok() -> None:
    _, driver, irq = make(VirtioRng(rng_source))
    driver.negotiate()
    queue = driver.setup_queue(0)
    queue.add([], [8])
    queue.kick()
    assert queue.take_used() == [] and not irq.level
    driver.add_status(STATUS_DRIVER_OK)
    queue.kick()
    assert len(queue.take_used()) == 1 and irq.level


def test_reset_clears_interrupts_and_queues() -> None:
    slot, driver, irq = make(VirtioRng(rng_source))
    (queue,) = driver.start()
    queue.add([], [4])
    queue.kick()
    assert irq.level
    driver.write(Reg.STATUS, 0)
    assert driver.read(Reg.STATUS) == 0
    assert driver.read(Reg.INTERRUPT_STATUS) == 0 and not irq.level
    driver.write(Reg.QUEUE_SEL, 0)
    assert driver.read(Reg.QUEUE_READY) == 0
    assert slot.negotiated_features == 0
    # The driver can bring the device up again.
    (queue,) = driver.start()
    request = queue.add([], [4])
    queue.kick()
    assert queue.take_used() == [(request.head, 4)]


def test_driver_error_marks_device_broken() -> None:
    slot, driver, irq = make(VirtioRng(rng_source))
    (queue,) = driver.start()
    queue.write_desc(0, queue.desc, 16, 0x1 | 0x2, 0)  # NEXT to itself: a loop
    queue.publish(0)
    queue.kick()  # no exception escapes
    status = driver.read(Reg.STATUS)
    assert status & STATUS_DEVICE_NEEDS_RESET and status & STATUS_DRIVER_OK
    assert driver.read(Reg.INTERRUPT_STATUS) == INT_CONFIG_CHANGE and irq.level
    assert "loop" in slot.broken_reason
    # Further notifications are ignored until reset; the driver cannot clear the bit.
    driver.ack_interrupt()
    driver.write(Reg.STATUS, status & ~STATUS_DEVICE_NEEDS_RESET)
    assert driver.read(Reg.STATUS) & STATUS_DEVICE_NEEDS_RESET
    queue.add([], [4])
    queue.kick()
    assert queue.take_used() == [] and not irq.level
    driver.write(Reg.STATUS, 0)
    assert driver.read(Reg.STATUS) == 0 and slot.broken_reason is None


def test_config_change_notification_and_generation() -> None:
    slot, driver, irq = make(VirtioRng(rng_source))
    generation = driver.read(Reg.CONFIG_GENERATION)
    slot.config_changed()  # before DRIVER_OK: no notification, but a new generation
    assert driver.read(Reg.CONFIG_GENERATION) != generation and not irq.level
    driver.start()
    slot.config_changed()
    assert driver.read(Reg.INTERRUPT_STATUS) == INT_CONFIG_CHANGE and irq.level


def test_register_access_sizes() -> None:
    slot, driver, _ = make(VirtioRng(rng_source))
    assert slot.read(Reg.MAGIC_VALUE, 1) == 0  # registers are 32-bit only, as in QEMU
    assert slot.read(Reg.MAGIC_VALUE, 8) == 2 << 32 | 0x74726976  # split in two
    slot.write(Reg.STATUS, 1, STATUS_ACKNOWLEDGE)
    assert driver.read(Reg.STATUS) == 0
    # No shared memory regions: length and base read as all ones.
    assert driver.read(Reg.SHM_LEN_LOW) == driver.read(Reg.SHM_BASE_HIGH) == 0xFFFFFFFF


def test_fdt_node_matches_qemu_virt() -> None:
    # From qemu-virt-256M.dts (QEMU 7.2, -M virt): virtio_mmio@10001000 { interrupts =
    # <0x01>; interrupt-parent = <&plic>; reg = <0x00 0x10001000 0x00 0x1000>;
    # compatible = "virtio,mmio"; }
    node = fdt_node(0x10001000, 1)
    assert node == FdtNode("/soc/virtio_mmio@10001000", (
        ("compatible", "virtio,mmio"),
        ("reg", (0, 0x10001000, 0, 0x1000)),
        ("interrupt-parent", Phandle("plic")),
        ("interrupts", (1,)),
    ))
    assert fdt_node(0x10008000, 8).path.endswith("virtio_mmio@10008000")


def test_completion_outside_a_notify() -> None:
    # How a device uses buffers later (e.g. a received packet): through complete().
    slot, driver, irq = make(VirtioRng(rng_source))
    (queue,) = driver.start()
    request = queue.add([], [4])  # made available, no notify
    slot.complete(0, lambda q: q.push(q.pop(), 0))
    assert queue.take_used() == [(request.head, 0)] and irq.level
    driver.ack_interrupt()
    queue.publish(1000)  # a head outside the queue
    slot.complete(0, lambda q: q.pop())
    assert driver.read(Reg.STATUS) & STATUS_DEVICE_NEEDS_RESET
    assert driver.read(Reg.INTERRUPT_STATUS) == INT_CONFIG_CHANGE
    slot.complete(1, lambda q: q.pop())  # no such queue: nothing happens
