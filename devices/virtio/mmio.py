"""The virtio-mmio transport, version 2 (virtio 1.x, "Virtio Over MMIO").

One register block per slot: identification, 64-bit feature negotiation in two 32-bit
words, per-queue setup selected by QueueSel, the device status, the interrupt status and
the device configuration space at 0x100. A slot without a device reads as QEMU's empty
slots do: the magic, version and vendor, and DeviceID 0 (drivers skip it).

QEMU 7.2 presents virtio-mmio as the legacy version 1 by default (its
``virtio-mmio.force-legacy`` property defaults to true; ``-global
virtio-mmio.force-legacy=false`` gives version 2). We implement only version 2, the
standard one; Linux and U-Boot drive both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from devices.base import GuestRam, IrqLine, StateError, StateValue, load_fields, save_fields
from devices.virtio.device import (
    STATUS_DEVICE_NEEDS_RESET,
    STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
    VIRTIO_F_VERSION_1,
    VirtioDevice,
)
from devices.virtio.queue import (
    VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
    DmaError,
    VirtioError,
    Virtqueue,
)

log = logging.getLogger(__name__)

MAGIC_VALUE = 0x74726976  # "virt"
VERSION = 2
VENDOR_ID = 0x554D4551  # "QEMU"


class Reg(IntEnum):
    """Register offsets."""

    MAGIC_VALUE = 0x000
    VERSION = 0x004
    DEVICE_ID = 0x008
    VENDOR_ID = 0x00C
    DEVICE_FEATURES = 0x010
    DEVICE_FEATURES_SEL = 0x014
    DRIVER_FEATURES = 0x020
    DRIVER_FEATURES_SEL = 0x024
    QUEUE_SEL = 0x030
    QUEUE_NUM_MAX = 0x034
    QUEUE_NUM = 0x038
    QUEUE_READY = 0x044
    QUEUE_NOTIFY = 0x050
    INTERRUPT_STATUS = 0x060
    INTERRUPT_ACK = 0x064
    STATUS = 0x070
    QUEUE_DESC_LOW = 0x080
    QUEUE_DESC_HIGH = 0x084
    QUEUE_DRIVER_LOW = 0x090
    QUEUE_DRIVER_HIGH = 0x094
    QUEUE_DEVICE_LOW = 0x0A0
    QUEUE_DEVICE_HIGH = 0x0A4
    SHM_SEL = 0x0AC
    SHM_LEN_LOW = 0x0B0
    SHM_LEN_HIGH = 0x0B4
    SHM_BASE_LOW = 0x0B8
    SHM_BASE_HIGH = 0x0BC
    CONFIG_GENERATION = 0x0FC
    CONFIG = 0x100


# InterruptStatus bits.
INT_USED_BUFFER = 1
INT_CONFIG_CHANGE = 2

# What every device gets from this transport and its split queues.
TRANSPORT_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX

# QEMU maps 0x200 bytes per slot (registers and config space); the device tree
# describes each slot as 0x1000, the stride of the slots.
REGION_SIZE = 0x200
SLOT_SIZE = 0x1000

_FEATURE_WORDS = 2  # 64 feature bits: DeviceFeaturesSel/DriverFeaturesSel 0 and 1


@dataclass(slots=True)
class _QueueRegisters:
    """The driver-programmed registers of one queue, and the queue once it is ready."""

    size: int = 0
    desc: int = 0
    driver: int = 0
    device: int = 0
    queue: Virtqueue | None = None  # QueueReady is 1 exactly when this is set


def _set_low(value: int, low: int) -> int:
    return (value & ~0xFFFFFFFF) | (low & 0xFFFFFFFF)


def _set_high(value: int, high: int) -> int:
    return (value & 0xFFFFFFFF) | ((high & 0xFFFFFFFF) << 32)


class VirtioMmio:
    """One virtio-mmio slot (an MmioDevice); ``device`` None is an empty slot.

    ``irq`` is the slot's interrupt line, high while InterruptStatus is non-zero;
    ``ram`` is the guest memory the queues live in.
    """

    size = REGION_SIZE

    def __init__(self, irq: IrqLine, ram: GuestRam, device: VirtioDevice | None = None,
                 name: str = "virtio-mmio") -> None:
        self.name = name
        self.irq = irq
        self.ram = ram
        self.device = device
        self._irq_level = False
        # Not reset with the device: a driver comparing generations across a reset
        # must still see any change.
        self.config_generation = 0
        self.broken_reason: str | None = None  # why the device needs a reset, if it does
        # A device that uses buffers on its own (a NIC receiving) is given the transport
        # (``complete``, ``config_changed``).
        bind = getattr(device, "bind_transport", None)
        if bind is not None:
            bind(self)
        self.reset()

    # -- state --------------------------------------------------------------------------

    def reset(self) -> None:
        """Device reset: by the driver writing 0 to Status, or by the machine."""
        self.status = 0
        self.interrupt_status = 0
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.driver_features = 0
        self._driver_features_unknown = False  # bits written to words beyond 64
        self.negotiated_features = 0
        self.queue_sel = 0
        self.broken_reason = None
        queues = self.device.queue_max_sizes if self.device else ()
        self._queues = [_QueueRegisters() for _ in queues]
        if self.device is not None:
            self.device.reset()
        self._update_irq()

    # -- savevm ----------------------------------------------------------------------------

    state_version = 1
    _STATE_FIELDS = ("status", "interrupt_status", "device_features_sel", "driver_features_sel",
                     "driver_features", "_driver_features_unknown", "negotiated_features",
                     "queue_sel", "broken_reason", "config_generation")
    _QUEUE_FIELDS = ("last_avail_idx", "used_idx", "_unsignalled", "_signalled_used",
                     "_signalled_used_valid")

    def save_state(self) -> dict[str, StateValue]:
        """The transport's registers, each queue (its layout and, when ready, the
        device's ring positions) and the device's own state."""
        state = save_fields(self, self._STATE_FIELDS)
        queues: list[StateValue] = []
        for regs in self._queues:
            entry = {"size": regs.size, "desc": regs.desc, "driver": regs.driver,
                     "device": regs.device, "ready": regs.queue is not None}
            if regs.queue is not None:
                entry.update(save_fields(regs.queue, self._QUEUE_FIELDS))
            queues.append(entry)
        state["queues"] = queues
        state["device"] = ({"id": self.device.device_id, "version": self.device.state_version,
                            "state": self.device.save_state()}
                           if self.device is not None else None)
        return state

    def load_state(self, saved: dict[str, StateValue]) -> None:
        device, queues = saved.get("device"), saved.get("queues")
        if self.device is None:
            if device is not None:
                raise StateError(f"{self.name}: saved with a device, now an empty slot")
        elif (not isinstance(device, dict) or device.get("id") != self.device.device_id
              or device.get("version") != self.device.state_version):
            raise StateError(f"{self.name}: saved with another device or version than "
                             f"{self.device.name} v{self.device.state_version}")
        if not isinstance(queues, list) or len(queues) != len(self._queues):
            raise StateError(f"{self.name}: saved queues do not fit the device")
        load_fields(self, self._STATE_FIELDS, saved)
        rebuilt = []
        for entry in queues:
            regs = _QueueRegisters(entry["size"], entry["desc"], entry["driver"],
                                   entry["device"])
            if entry["ready"]:
                try:
                    regs.queue = Virtqueue(self.ram, regs.size, regs.desc, regs.driver,
                                           regs.device, self.negotiated_features,
                                           self._used_buffer_interrupt)
                except VirtioError as error:
                    raise StateError(f"{self.name}: saved queue: {error}") from None
                load_fields(regs.queue, self._QUEUE_FIELDS, entry)
            rebuilt.append(regs)
        self._queues = rebuilt
        if self.device is not None:
            self.device.load_state(device["state"])
        self._irq_level = self.interrupt_status != 0
        self.irq(self._irq_level)

    @property
    def offered_features(self) -> int:
        return self.device.features | TRANSPORT_FEATURES if self.device else 0

    def _update_irq(self) -> None:
        level = self.interrupt_status != 0
        if level != self._irq_level:
            self._irq_level = level
            self.irq(level)

    def _selected(self) -> _QueueRegisters | None:
        return self._queues[self.queue_sel] if self.queue_sel < len(self._queues) else None

    # -- notifications ------------------------------------------------------------------

    def _used_buffer_interrupt(self) -> None:
        self.interrupt_status |= INT_USED_BUFFER
        self._update_irq()

    def config_changed(self) -> None:
        """The device's configuration space changed (e.g. a resized disk)."""
        self.config_generation = (self.config_generation + 1) & 0xFFFFFFFF
        if self.status & STATUS_DRIVER_OK:
            self.interrupt_status |= INT_CONFIG_CHANGE
            self._update_irq()

    def device_error(self, reason: str) -> None:
        """The driver broke the protocol: the device stops until reset, status gets
        DEVICE_NEEDS_RESET and the driver a configuration change notification (QEMU's
        virtio_error)."""
        log.error("%s: %s", self.name, reason)
        self.broken_reason = reason
        self.status |= STATUS_DEVICE_NEEDS_RESET
        self.config_changed()

    def queue(self, index: int) -> Virtqueue | None:
        """Queue ``index`` if the driver made it ready."""
        return self._queues[index].queue if index < len(self._queues) else None

    def complete(self, index: int, action: Callable[[Virtqueue], None]) -> None:
        """For devices that use buffers outside a QueueNotify (e.g. received packets):
        runs ``action`` on ready queue ``index`` unless the device is stopped, then sends
        the used-buffer notification it calls for; the driver's errors in ``action``
        stop the device as during a notify."""
        queue = self.queue(index)
        if (queue is None or self.broken_reason is not None
                or not self.status & STATUS_DRIVER_OK):
            return
        self._run(queue, lambda: action(queue))

    def _run(self, queue: Virtqueue, action: Callable[[], None]) -> None:
        try:
            try:
                action()
            finally:
                # Chains used before an error are still reported to the driver.
                queue.notify_used()
        except (VirtioError, DmaError) as error:
            self.device_error(str(error))

    def _queue_notify(self, index: int) -> None:
        queue = self.queue(index)
        if (queue is None or self.broken_reason is not None
                or not self.status & STATUS_DRIVER_OK):
            return
        self._run(queue, lambda: self.device.handle_queue(index, queue))

    # -- feature negotiation and status ---------------------------------------------------

    def _accept_features(self) -> bool:
        accepted = self.driver_features
        if (self._driver_features_unknown or accepted & ~self.offered_features
                or not accepted & VIRTIO_F_VERSION_1):
            return False
        if not self.device.set_features(accepted):
            return False
        self.negotiated_features = accepted
        for regs in self._queues:
            if regs.queue is not None:
                regs.queue.features = accepted
        return True

    def _write_status(self, value: int) -> None:
        value &= 0xFF
        if value == 0:
            self.reset()
            return
        if value & STATUS_FEATURES_OK and not self.status & STATUS_FEATURES_OK:
            if not self._accept_features():
                value &= ~STATUS_FEATURES_OK
        # DEVICE_NEEDS_RESET is the device's bit: the driver cannot clear it.
        self.status = value | (self.status & STATUS_DEVICE_NEEDS_RESET)

    def _write_queue_ready(self, regs: _QueueRegisters, value: int) -> None:
        if not value:
            regs.queue = None
            return
        if regs.queue is not None:
            return
        index = self.queue_sel
        if not 0 < regs.size <= self.device.queue_max_sizes[index]:
            self.device_error(f"queue {index}: size {regs.size} outside 1.."
                              f"{self.device.queue_max_sizes[index]}")
            return
        try:
            regs.queue = Virtqueue(self.ram, regs.size, regs.desc, regs.driver, regs.device,
                                   self.negotiated_features, self._used_buffer_interrupt)
        except VirtioError as error:
            self.device_error(f"queue {index}: {error}")

    # -- MmioDevice ---------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if offset >= Reg.CONFIG:
            return self._read_config(offset - Reg.CONFIG, size)
        if size == 8:  # QEMU splits wider accesses into 32-bit ones
            return self.read(offset, 4) | self.read(offset + 4, 4) << 32
        if size != 4:
            return 0  # registers are 32-bit only; QEMU reads other sizes as 0
        if self.device is None:
            return {Reg.MAGIC_VALUE: MAGIC_VALUE, Reg.VERSION: VERSION,
                    Reg.VENDOR_ID: VENDOR_ID}.get(offset, 0)
        regs = self._selected()
        match offset:
            case Reg.MAGIC_VALUE:
                return MAGIC_VALUE
            case Reg.VERSION:
                return VERSION
            case Reg.DEVICE_ID:
                return self.device.device_id
            case Reg.VENDOR_ID:
                return VENDOR_ID
            case Reg.DEVICE_FEATURES:
                if self.device_features_sel >= _FEATURE_WORDS:
                    return 0
                return (self.offered_features >> (32 * self.device_features_sel)) & 0xFFFFFFFF
            case Reg.QUEUE_NUM_MAX:
                return self.device.queue_max_sizes[self.queue_sel] if regs else 0
            case Reg.QUEUE_READY:
                return int(regs is not None and regs.queue is not None)
            case Reg.INTERRUPT_STATUS:
                return self.interrupt_status
            case Reg.STATUS:
                return self.status
            case Reg.SHM_LEN_LOW | Reg.SHM_LEN_HIGH | Reg.SHM_BASE_LOW | Reg.SHM_BASE_HIGH:
                return 0xFFFFFFFF  # no shared memory regions: length and base all ones
            case Reg.CONFIG_GENERATION:
                return self.config_generation
        return 0  # write-only or unknown register

    def write(self, offset: int, size: int, value: int) -> None:
        if offset >= Reg.CONFIG:
            self._write_config(offset - Reg.CONFIG, size, value)
            return
        if size == 8:
            self.write(offset, 4, value & 0xFFFFFFFF)
            self.write(offset + 4, 4, value >> 32)
            return
        if size != 4 or self.device is None:
            return
        value &= 0xFFFFFFFF
        regs = self._selected()
        match offset:
            case Reg.DEVICE_FEATURES_SEL:
                self.device_features_sel = value
            case Reg.DRIVER_FEATURES:
                self._write_driver_features(value)
            case Reg.DRIVER_FEATURES_SEL:
                self.driver_features_sel = value
            case Reg.QUEUE_SEL:
                self.queue_sel = value
            case Reg.QUEUE_NOTIFY:
                self._queue_notify(value)
            case Reg.INTERRUPT_ACK:
                self.interrupt_status &= ~value
                self._update_irq()
            case Reg.STATUS:
                self._write_status(value)
            case Reg.QUEUE_READY if regs:
                self._write_queue_ready(regs, value)
            case _ if regs and regs.queue is None:
                # Queue layout registers; the driver must not change them while ready.
                self._write_queue_layout(regs, offset, value)

    def _write_driver_features(self, value: int) -> None:
        if self.status & STATUS_FEATURES_OK:
            return  # negotiation is over until the next reset
        if self.driver_features_sel >= _FEATURE_WORDS:
            self._driver_features_unknown |= value != 0
            return
        shift = 32 * self.driver_features_sel
        self.driver_features = (self.driver_features & ~(0xFFFFFFFF << shift)) | value << shift

    @staticmethod
    def _write_queue_layout(regs: _QueueRegisters, offset: int, value: int) -> None:
        match offset:
            case Reg.QUEUE_NUM:
                regs.size = value
            case Reg.QUEUE_DESC_LOW:
                regs.desc = _set_low(regs.desc, value)
            case Reg.QUEUE_DESC_HIGH:
                regs.desc = _set_high(regs.desc, value)
            case Reg.QUEUE_DRIVER_LOW:
                regs.driver = _set_low(regs.driver, value)
            case Reg.QUEUE_DRIVER_HIGH:
                regs.driver = _set_high(regs.driver, value)
            case Reg.QUEUE_DEVICE_LOW:
                regs.device = _set_low(regs.device, value)
            case Reg.QUEUE_DEVICE_HIGH:
                regs.device = _set_high(regs.device, value)

    # -- configuration space --------------------------------------------------------------

    def _read_config(self, offset: int, size: int) -> int:
        if self.device is None:
            return 0
        config = self.device.config()
        if offset + size > len(config):
            return (1 << (8 * size)) - 1  # beyond the config space: all ones, as QEMU
        return int.from_bytes(config[offset:offset + size], "little")

    def _write_config(self, offset: int, size: int, value: int) -> None:
        if self.device is None or offset + size > len(self.device.config()):
            return
        self.device.write_config(offset, (value & ((1 << (8 * size)) - 1)).to_bytes(size,
                                                                                  "little"))


@dataclass(frozen=True, slots=True)
class Phandle:
    """A property value naming another node; the FDT builder puts that node's phandle."""

    label: str


# Property values: str (string), tuple of int (32-bit cells), Phandle (one cell), None
# (empty property).
FdtValue = str | tuple[int, ...] | Phandle | None


@dataclass(frozen=True, slots=True)
class FdtNode:
    """A device-tree node to add: ``path`` from the root, properties in QEMU's order."""

    path: str
    properties: tuple[tuple[str, FdtValue], ...]


def fdt_node(base: int, irq: int, interrupt_parent: str = "plic",
             size: int = SLOT_SIZE, parent: str = "/soc") -> FdtNode:
    """The node QEMU's ``virt`` machine gives a virtio-mmio slot at ``base`` with PLIC
    source ``irq`` (the parent bus has #address-cells = #size-cells = 2)."""
    return FdtNode(
        path=f"{parent}/virtio_mmio@{base:x}",
        properties=(
            ("compatible", "virtio,mmio"),
            ("reg", (base >> 32, base & 0xFFFFFFFF, size >> 32, size & 0xFFFFFFFF)),
            ("interrupt-parent", Phandle(interrupt_parent)),
            ("interrupts", (irq,)),
        ),
    )
