"""Internal VM snapshots: ``savevm``, ``loadvm``, ``delvm``, ``info snapshots`` and
``-loadvm``, as QEMU 7.2's migration/savevm.c and block/snapshot.c do them.

The disks taking part are QEMU's (bdrv_all_snapshots_includes_bs): every writable
node that a drive or device uses, or that no other node uses; each must be qcow2
("Device '…' is writable but does not support snapshots" otherwise). The first one
holds the VM state (machines/vmstate.py's stream, in its VM-state area); every disk
gets an internal snapshot of the same name at the same moment, with the VM stopped.
Snapshot table entries carry the VM-state size (on the first disk only, 0 elsewhere),
the date, the virtual clock, and icount -1 (not recorded), as QEMU writes them.

Loading reverts every disk to the snapshot first (as QEMU), then reads and applies the
VM state; a state that cannot be loaded leaves the VM stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from blockdev.errors import BlockError
from blockdev.node import BlockNode
from blockdev.qcow2.node import Qcow2Node
from machines import vmstate

if TYPE_CHECKING:
    from blockdev.qcow2.format import Snapshot
    from machines.machine import Machine

ICOUNT_NOT_RECORDED = -1


class SnapshotError(Exception):
    """A snapshot command that cannot be done; the message is QEMU's."""


@dataclass(frozen=True, slots=True)
class SnapshotDisk:
    """A disk taking part in VM snapshots: its device or node name, and its node."""

    name: str
    node: Qcow2Node


def snapshot_disks(machine: Machine, *, strict: bool = True) -> list[SnapshotDisk]:
    """The writable disks a VM snapshot covers, in drive order; SnapshotError when one
    of them cannot take snapshots (QEMU's bdrv_all_can_snapshot), or with ``strict``
    False those that can (what ``info snapshots`` looks at)."""
    block = machine.block
    if block is None:
        return []
    used_by_nodes = {id(child) for node in block.graph.nodes.values()
                     for child in node.children.values()}
    disks: list[SnapshotDisk] = []
    seen: set[int] = set()
    for name, drive in block.drives.items():
        node = drive.backend
        if id(node) in seen or node.read_only:
            continue
        is_drive_root = name in block.attached or (isinstance(node, BlockNode)
                                                    and node.node_name != name)
        if id(node) in used_by_nodes and not is_drive_root:
            continue  # a -blockdev node under another one (a qcow2's file)
        seen.add(id(node))
        if not isinstance(node, Qcow2Node):
            if not strict:
                continue
            raise SnapshotError(f"Device '{name}' is writable but does not support snapshots")
        disks.append(SnapshotDisk(name, node))
    return disks


def named_disks(machine: Machine, devices: list[str]) -> list[SnapshotDisk]:
    """The disks named by node name (QMP snapshot-save/-load/-delete ``devices``)."""
    if not devices:
        raise SnapshotError("At least one device is required for snapshot")
    nodes = machine.block.graph.nodes if machine.block is not None else {}
    disks = []
    for name in devices:
        node = nodes.get(name)
        if node is None:
            raise SnapshotError(f"No block device node '{name}'")
        if not isinstance(node, Qcow2Node) or node.read_only:
            raise SnapshotError(f"Device '{name}' is writable but does not support snapshots"
                                if not node.read_only else
                                f"Device '{name}' is read-only")
        disks.append(SnapshotDisk(name, node))
    return disks


def _select(machine: Machine, devices: list[str] | None,
            vmstate: str | None) -> tuple[list[SnapshotDisk], SnapshotDisk]:
    """The disks and the one holding the VM state: QMP's explicit ones, else QEMU's
    defaults (every snapshot disk; the first holds the state)."""
    disks = snapshot_disks(machine) if devices is None else named_disks(machine, devices)
    if vmstate is None:
        return disks, _vmstate_disk(disks)
    for disk in disks:
        if disk.name == vmstate:
            return disks, disk
    nodes = machine.block.graph.nodes if machine.block is not None else {}
    if vmstate not in nodes:
        raise SnapshotError(f"vmstate block device '{vmstate}' does not exist")
    raise SnapshotError(f"vmstate block device '{vmstate}' does not exist in device list")


def _vmstate_disk(disks: list[SnapshotDisk]) -> SnapshotDisk:
    if not disks:
        raise SnapshotError("no block device can store vmstate for snapshot")
    return disks[0]


def _has(node: Qcow2Node, name: str) -> bool:
    try:
        node.find_snapshot(name)
    except BlockError:
        return False
    return True


def default_name(now: float | None = None) -> str:
    """QEMU's name for ``savevm`` without one: vm-YYYYMMDDHHMMSS, local time."""
    return time.strftime("vm-%Y%m%d%H%M%S", time.localtime(now))


def save_vm(machine: Machine, name: str | None = None, *, overwrite: bool = True,
            devices: list[str] | None = None, vmstate_disk: str | None = None) -> str:
    """Takes snapshot ``name`` (QEMU's save_snapshot; the caller has stopped the VM):
    an existing snapshot of that name is replaced when ``overwrite`` (HMP savevm), else
    refused (QMP snapshot-save, which also names the disks and the VM-state one).
    Returns the name."""
    disks, holder = _select(machine, devices, vmstate_disk)
    if name is not None:
        existing = [disk for disk in disks if _has(disk.node, name)]
        if existing and not overwrite:
            raise SnapshotError(f"Snapshot '{name}' already exists in one or more devices")
    else:
        name = default_name()
    data = vmstate.save(machine)
    clock_ns = machine.clock.now_ns()
    date_ns = time.time_ns()
    try:
        for disk in disks:
            while _has(disk.node, name):  # (a name may repeat in an image qemu-img made)
                disk.node.delete_snapshot(name)
        holder.node.write_vm_state(0, data)
        for disk in disks:
            disk.node.create_snapshot(name, vm_state_size=len(data) if disk is holder else 0,
                                      vm_clock_nsec=clock_ns, icount=ICOUNT_NOT_RECORDED,
                                      date_ns=date_ns)
            disk.node.flush()
    except OSError as exc:
        raise SnapshotError(f"Error while creating snapshot on '{disk.name}': "
                            f"{exc}") from None
    return name


def load_vm(machine: Machine, name: str, *, devices: list[str] | None = None,
            vmstate_disk: str | None = None) -> None:
    """Reverts the disks and the machine to snapshot ``name`` (QEMU's load_snapshot;
    the caller has stopped the VM and does not restart it when this raises)."""
    disks = snapshot_disks(machine) if devices is None else named_disks(machine, devices)
    if not all(_has(disk.node, name) for disk in disks):
        raise SnapshotError(f"Snapshot '{name}' does not exist in one or more devices")
    disks, holder = _select(machine, devices, vmstate_disk)
    snapshot = holder.node.find_snapshot(name)
    if snapshot.vm_state_size == 0:
        raise SnapshotError("This is a disk-only snapshot. Revert to it  offline using "
                            "qemu-img")
    try:
        for disk in disks:
            disk.node.apply_snapshot(name)
        data = holder.node.read_vm_state(0, snapshot.vm_state_size)
    except OSError as exc:
        raise SnapshotError(f"Could not load snapshot '{name}' on '{disk.name}': "
                            f"{exc}") from None
    try:
        vmstate.load(machine, data)
    except vmstate.VmStateError as exc:
        raise SnapshotError(f"{exc}\nError -22 while loading VM state") from None


def delete_vm(machine: Machine, name: str, *, devices: list[str] | None = None) -> None:
    """Deletes snapshot ``name`` wherever it is (QEMU's delvm: no error when no disk
    has it)."""
    disks = snapshot_disks(machine) if devices is None else named_disks(machine, devices)
    for disk in disks:
        try:
            while _has(disk.node, name):
                disk.node.delete_snapshot(name)
        except OSError as exc:
            raise SnapshotError(f"Could not delete snapshot '{name}' on '{disk.name}': "
                                f"{exc}") from None


# -- info snapshots ---------------------------------------------------------------------------

def size_to_str(value: int) -> str:
    """QEMU's size_to_str: three significant digits, binary units, a unit switched to
    the next one from 1000 up ("459 KiB", "0.977 MiB", "0 B")."""
    _, exponent = math.frexp(value / (1000.0 / 1024.0))
    unit = int((exponent - 1) / 10)  # (C's division truncates)
    text = f"{value / (1 << (unit * 10)):.3g}"
    return f"{text} {('', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei')[unit]}B"


_HEADER = f"{'ID':<10}{'TAG':<17}{'VM SIZE':>8}{'DATE':>20}{'VM CLOCK':>13}{'ICOUNT':>11}"


def snapshot_line(sn: Snapshot, ident: str | None = None) -> str:
    """One row of ``info snapshots`` (QEMU's bdrv_snapshot_dump)."""
    date = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sn.date_sec))
    seconds = sn.vm_clock_nsec // 1_000_000_000
    clock = (f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}."
             f"{sn.vm_clock_nsec // 1_000_000 % 1000:03d}")
    icount = "" if sn.icount in (-1, (1 << 64) - 1) else str(sn.icount)
    return (f"{ident if ident is not None else sn.id:<9} {sn.name:<16} "
            f"{size_to_str(sn.vm_state_size):>8}{date:>20}{clock:>13}{icount:>11}")


def info_snapshots(machine: Machine) -> str:
    """``info snapshots`` (QEMU's hmp_info_snapshots): the snapshots on the VM-state
    disk that every other disk has too, then each disk's other ones."""
    disks = snapshot_disks(machine, strict=False)
    holder = _vmstate_disk(disks)
    if not any(disk.node.snapshots for disk in disks):
        return "There is no snapshot available.\n"
    complete = [sn for sn in holder.node.snapshots
                if all(_has(disk.node, sn.name) for disk in disks)]
    lines = ["List of snapshots present on all disks:", _HEADER]
    lines += [snapshot_line(sn, "--") for sn in complete] or ["None"]
    for disk in disks:
        partial = [sn for sn in disk.node.snapshots if sn not in complete]
        if disk is not holder:
            names = {sn.name for sn in complete}
            partial = [sn for sn in disk.node.snapshots if sn.name not in names]
        if partial:
            lines += ["", f"List of partial (non-loadable) snapshots on '{disk.name}':",
                      _HEADER]
            lines += [snapshot_line(sn) for sn in partial]
    return "\n".join(lines) + "\n"
