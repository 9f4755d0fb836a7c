"""The qcow2 format driver (QEMU's docs/interop/qcow2.txt, versions 2 and 3)."""

from blockdev.qcow2.create import create_qcow2
from blockdev.qcow2.format import Snapshot
from blockdev.qcow2.node import Qcow2Node

__all__ = ["Qcow2Node", "Snapshot", "create_qcow2"]
