"""What a virtio device type (blk, rng, ...) provides to a transport.

The transport (virtio-mmio) owns the registers, feature negotiation, the device status
and the queues' addresses; a device only describes itself and handles its queues.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from devices.base import StateValue
from devices.virtio.queue import Virtqueue

# Device IDs (virtio 1.x, "Device Types").
VIRTIO_ID_BLOCK = 2
VIRTIO_ID_ENTROPY = 4

# Transport-independent feature bits beyond the device-specific ones (bits 24-40).
VIRTIO_F_VERSION_1 = 1 << 32

# Device status bits.
STATUS_ACKNOWLEDGE = 1
STATUS_DRIVER = 2
STATUS_DRIVER_OK = 4
STATUS_FEATURES_OK = 8
STATUS_DEVICE_NEEDS_RESET = 64
STATUS_FAILED = 128


class VirtioDevice(Protocol):
    """A device type behind a virtio transport.

    ``features`` are the device-specific bits it offers (the transport adds
    VIRTIO_F_VERSION_1 and the ring features). ``queue_max_sizes`` has one entry per
    virtqueue: the largest size the driver may choose.
    """

    name: str
    device_id: int
    features: int
    queue_max_sizes: tuple[int, ...]

    def config(self) -> bytes:
        """The device configuration space as the driver sees it now."""
        ...

    def write_config(self, offset: int, data: bytes) -> None:
        """A driver write to the configuration space (fields not writable are ignored)."""
        ...

    def set_features(self, features: int) -> bool:
        """Applies the features the driver accepted (a subset of the offered ones, incl.
        transport bits); False refuses them, and FEATURES_OK is not set."""
        ...

    def handle_queue(self, index: int, queue: Virtqueue) -> None:
        """The driver notified queue ``index``: take its available chains and push them
        used. Raise VirtioError (or let DmaError through) for the driver's mistakes."""
        ...

    def reset(self) -> None:
        """Back to the state after power-on (the driver wrote 0 to the status)."""
        ...

    # savevm (devices.base.Stateful): the device's own state; the transport saves
    # its registers and the queues.
    state_version: ClassVar[int]

    def save_state(self) -> dict[str, StateValue]: ...

    def load_state(self, saved: dict[str, StateValue]) -> None: ...
