"""virtio-rng (virtio 1.x, "Entropy Device"): fills device-writable buffers with random
bytes from the host."""

from __future__ import annotations

import os
from collections.abc import Callable

from devices.virtio.device import VIRTIO_ID_ENTROPY
from devices.virtio.queue import Virtqueue

QUEUE_MAX_SIZE = 1024  # QEMU's QueueNumMax for every virtio-mmio queue
# The spec lets the device fill less than a whole buffer; this bounds one request's
# cost whatever size the driver offers.
MAX_BYTES_PER_BUFFER = 64 * 1024


class VirtioRng:
    """An entropy device (device ID 4) with one request queue; ``source(n)`` returns n
    random bytes (the host's os.urandom by default)."""

    name = "virtio-rng-device"
    device_id = VIRTIO_ID_ENTROPY
    features = 0
    queue_max_sizes = (QUEUE_MAX_SIZE,)

    def __init__(self, source: Callable[[int], bytes] = os.urandom) -> None:
        self.source = source

    state_version = 1

    def reset(self) -> None:
        pass  # no state beyond the transport's

    def save_state(self) -> dict[str, object]:
        return {}

    def load_state(self, saved: dict[str, object]) -> None:
        pass

    def config(self) -> bytes:
        return b""

    def write_config(self, offset: int, data: bytes) -> None:
        pass  # no configuration space

    def set_features(self, features: int) -> bool:
        return True

    def handle_queue(self, index: int, queue: Virtqueue) -> None:
        while (chain := queue.pop()) is not None:
            # Device-readable buffers are a driver error the spec leaves undefined;
            # like QEMU, only the writable ones are filled.
            length = min(chain.writable_length, MAX_BYTES_PER_BUFFER)
            queue.push(chain, chain.write(0, self.source(length)) if length else 0)
