"""QEMU's block layer for the system emulator: a graph of block nodes.

Protocol nodes (``file``, ``host_device``) reach host files; format nodes (``raw``,
``qcow2``) interpret them; a temporary qcow2 overlay implements ``-snapshot``. Every node
offers the interface devices use (``size``, ``read_only``, ``read``, ``write``,
``flush``, ``discard``, ``write_zeroes``). Open nodes from QEMU-style option dicts with
``open_node`` or a ``BlockGraph``. Nothing here depends on the CPU or the machines.
"""

from blockdev.errors import BlockError
from blockdev.file import FileNode, HostDeviceNode
from blockdev.graph import BlockGraph, open_node, unflatten
from blockdev.node import BlockBackend, BlockNode, NodeFlags
from blockdev.probe import probe_format
from blockdev.qcow2 import Qcow2Node, Snapshot, create_qcow2
from blockdev.raw import RawNode

__all__ = [
    "BlockBackend", "BlockError", "BlockGraph", "BlockNode", "FileNode", "HostDeviceNode",
    "NodeFlags", "Qcow2Node", "RawNode", "Snapshot", "create_qcow2", "open_node",
    "probe_format", "unflatten",
]
