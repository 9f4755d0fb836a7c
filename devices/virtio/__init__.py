"""virtio devices on the virtio-mmio transport (version 2): split virtqueues,
virtio-blk, virtio-net and virtio-rng."""

from devices.virtio.blk import BlockBackend, RawFileBackend, VirtioBlk
from devices.virtio.device import VirtioDevice
from devices.virtio.mmio import FdtNode, Phandle, VirtioMmio, fdt_node
from devices.virtio.net import VirtioNet
from devices.virtio.queue import Chain, DmaError, VirtioError, Virtqueue
from devices.virtio.rng import VirtioRng

__all__ = [
    "BlockBackend", "Chain", "DmaError", "FdtNode", "Phandle", "RawFileBackend",
    "VirtioBlk", "VirtioDevice", "VirtioError", "VirtioMmio", "VirtioNet", "VirtioRng",
    "Virtqueue",
    "fdt_node",
]
