"""The monitors' block commands, in QEMU 7.2's shapes: QMP ``query-block`` and
``query-named-block-nodes``, HMP ``info block [-n]``.

``block`` is the machine's machines.virtio_devices.BlockDevices: the drives (by
-drive id or -blockdev node-name), the graph of every node, and which device each
drive is attached to (its QOM path).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blockdev.node import BlockNode
    from machines.virtio_devices import BlockDevices


def _cache(node: BlockNode, write_cache: bool = True) -> dict[str, bool]:
    return {"writeback": write_cache, "direct": False, "no-flush": node.flags.no_flush}


def _cache_text(cache: dict[str, bool]) -> str:
    text = "writeback" if cache["writeback"] else "writethrough"
    if cache["direct"]:
        text += ", direct"
    if cache["no-flush"]:
        text += ", ignore flushes"
    return text


def _backing_depth(node: BlockNode) -> int:
    depth, backing = 0, node.backing
    while backing is not None:
        depth += 1
        backing = backing.backing
    return depth


def _image_info(node: BlockNode) -> dict[str, Any]:
    info: dict[str, Any] = {"filename": node.filename, "format": node.driver,
                            "virtual-size": node.size, "dirty-flag": False}
    try:
        info["actual-size"] = os.stat(node.filename).st_blocks * 512
    except OSError:
        pass
    cluster_size = getattr(node, "cluster_size", None)
    if cluster_size is not None:
        info["cluster-size"] = cluster_size
    if node.backing is not None:
        info["backing-filename"] = node.backing.filename
        info["full-backing-filename"] = node.backing.filename
        info["backing-image"] = _image_info(node.backing)
    return info


def node_info(node: BlockNode, write_cache: bool = True) -> dict[str, Any]:
    """QMP's BlockDeviceInfo of ``node``."""
    info: dict[str, Any] = {
        "file": node.filename, "node-name": node.node_name, "ro": node.read_only,
        "drv": node.driver, "encrypted": False, "detect_zeroes": "off",
        "backing_file_depth": _backing_depth(node), "write_threshold": 0,
        "cache": _cache(node, write_cache), "image": _image_info(node),
    }
    for key in ("bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr"):
        info[key] = 0
    if node.backing is not None:
        info["backing_file"] = node.backing.filename
    return info


def _is_drive(block: BlockDevices, name: str) -> bool:
    """A -drive (a named BlockBackend), not a -blockdev or blockdev-add node (which
    keeps its name when an external snapshot puts another node on top)."""
    return name not in block.monitor_owned


def _backends(block: BlockDevices) -> list[tuple[str, Any]]:
    """The drives as QEMU lists its BlockBackends: -drive ones (named) first, then the
    anonymous ones devices made for -blockdev nodes."""
    drives = list(block.drives.items())
    return ([(n, d) for n, d in drives if _is_drive(block, n)]
            + [(n, d) for n, d in drives if not _is_drive(block, n)])


def query_block(block: BlockDevices | None) -> list[dict[str, Any]]:
    if block is None:
        return []
    result = []
    for name, drive in _backends(block):
        node = drive.backend
        if not _is_drive(block, name) and name not in block.attached:
            continue  # a -blockdev node no device uses: no BlockBackend
        entry: dict[str, Any] = {"device": name if _is_drive(block, name) else "",
                                 "locked": False, "removable": False, "type": "unknown",
                                 "inserted": node_info(node, drive.write_cache)}
        if name in block.attached:
            entry["qdev"] = block.attached[name]
        result.append(entry)
    return result


def query_named_block_nodes(block: BlockDevices | None) -> list[dict[str, Any]]:
    if block is None:
        return []
    return [node_info(node) for node in reversed(block.graph.nodes.values())
            if node.driver != "reserved"]


def _node_lines(title: str, node: BlockNode, cache: dict[str, bool],
                attached: str | None) -> str:
    mode = ", read-only" if node.read_only else ""
    text = f"{title}: {node.filename} ({node.driver}{mode})\n"
    if attached is not None:
        text += f"    Attached to:      {attached}\n"
    text += f"    Cache mode:       {_cache_text(cache)}\n"
    if node.backing is not None:
        text += (f"    Backing file:     {node.backing.filename} (chain depth: "
                 f"{_backing_depth(node)})\n")
    return text


def info_block(block: BlockDevices | None, args: str) -> str:
    """``info block`` (drives and attached -blockdev nodes) or ``info block -n``
    (every named node)."""
    if block is None:
        return ""
    words = args.split()
    if "-n" in words:
        entries = [_node_lines(name, node, _cache(node), None)
                   for name, node in reversed(block.graph.nodes.items())
                   if node.driver != "reserved"]
    else:
        entries = []
        for name, drive in _backends(block):
            node = drive.backend
            title = f"{name} ({node.node_name})" if _is_drive(block, name) else node.node_name
            attached = block.attached.get(name)
            if not _is_drive(block, name) and attached is None:
                continue  # a -blockdev node no device uses: no BlockBackend
            entries.append(_node_lines(title, node, _cache(node, drive.write_cache),
                                       attached))
    wanted = [w for w in words if w != "-n"]
    if wanted:
        entries = [e for e in entries if e.split(":")[0].split(" ")[0] == wanted[0]]
    return "\n".join(entries)


class BlockCommandError(Exception):
    """A block command that cannot be done (QMP GenericError)."""


# QEMU 7.2's BlockdevDriver enum: blockdev-add refuses other names before looking further.
QEMU_BLOCK_DRIVERS = frozenset((
    "blkdebug", "blklogwrites", "blkreplay", "blkverify", "bochs", "cloop", "compress",
    "copy-before-write", "copy-on-read", "dmg", "file", "snapshot-access", "ftp", "ftps",
    "gluster", "host_cdrom", "host_device", "http", "https", "io_uring", "iscsi", "luks",
    "nbd", "nfs", "null-aio", "null-co", "nvme", "nvme-io_uring", "parallels", "preallocate",
    "qcow", "qcow2", "qed", "quorum", "raw", "rbd", "replication", "ssh", "throttle", "vdi",
    "vhdx", "virtio-blk-vfio-pci", "virtio-blk-vhost-user", "virtio-blk-vhost-vdpa",
    "vmdk", "vpc", "vvfat"))


def _block_layer(machine: Any) -> BlockDevices:
    block: BlockDevices | None = machine.block
    if block is None:
        raise BlockCommandError("this machine has no block layer (only 'virt' has one)")
    return block


def _lookup(block: BlockDevices, device: str | None, node_name: str | None) -> BlockNode:
    """QEMU's bdrv_lookup_bs: a -drive's root node by id, else a node by name."""
    if device is not None and device in block.drives and _is_drive(block, device):
        return block.drives[device].backend
    if node_name is not None:
        node = block.graph.nodes.get(node_name)
        if node is not None and node.driver != "reserved":
            return node
    raise BlockCommandError(f"Cannot find device='{device or ''}' nor "
                            f"node-name='{node_name or ''}'")


def _backing_parent(block: BlockDevices, node: BlockNode) -> BlockNode | None:
    """The node that has ``node`` as its backing file (QEMU then blocks most
    operations on ``node``); of several, the newest, whose blocker QEMU names."""
    for parent in reversed(block.graph.nodes.values()):
        if parent.backing is node:
            return parent
    return None


def _check_not_backing(block: BlockDevices, node: BlockNode) -> None:
    parent = _backing_parent(block, node)
    if parent is not None:
        raise BlockCommandError(f"Node '{node.node_name}' is busy: node is used as backing "
                                f"hd of '{parent.node_name}'")


def _has_backend(block: BlockDevices, node: BlockNode) -> bool:
    """Whether a BlockBackend holds ``node``: a -drive's, or a device's on a node."""
    return any(drive.backend is node and (_is_drive(block, name) or name in block.attached)
               for name, drive in block.drives.items())


def _in_use(block: BlockDevices, node: BlockNode) -> bool:
    """Whether something reads ``node``: a BlockBackend, or a node in use above it
    (QEMU's permissions come from the users at the top of the graph)."""
    if _has_backend(block, node):
        return True
    return any(node in parent.children.values() and _in_use(block, parent)
               for parent in block.graph.nodes.values())


def blockdev_add(machine: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """QMP ``blockdev-add``: a node (and the children its options describe) opened
    as ``-blockdev`` opens it, owned by the monitor until ``blockdev-del``."""
    from blockdev.errors import BlockError

    block = _block_layer(machine)
    driver = arguments.get("driver")
    if driver is None:
        raise BlockCommandError("Parameter 'driver' is missing")
    if not isinstance(driver, str):
        raise BlockCommandError("Invalid parameter type for 'driver', expected: string")
    if driver not in QEMU_BLOCK_DRIVERS:
        raise BlockCommandError(f"Parameter 'driver' does not accept value '{driver}'")
    name = arguments.get("node-name")
    if not isinstance(name, str):
        raise BlockCommandError("'node-name' must be specified for the root node")
    if name in block.drives and _is_drive(block, name):
        raise BlockCommandError(f"node-name={name} is conflicting with a device id")
    try:
        node = block.graph.open(arguments)
    except OSError as exc:
        if isinstance(exc, BlockError):
            raise BlockCommandError(str(exc)) from None
        raise BlockCommandError(exc.strerror or str(exc)) from None
    from machines.virtio_devices import Drive
    block.drives[name] = Drive(name, node)
    block.monitor_owned.add(name)
    return {}


def blockdev_del(machine: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """QMP ``blockdev-del``: closes a node ``blockdev-add`` or ``-blockdev`` made,
    with QEMU's checks in QEMU's order (no device uses it, it is no other node's
    backing file or child, the monitor owns it)."""
    block = _block_layer(machine)
    name = arguments["node-name"]
    node = block.graph.nodes.get(name)
    if node is None or node.driver == "reserved":
        raise BlockCommandError(f"Failed to find node with node-name='{name}'")
    if _has_backend(block, node):
        raise BlockCommandError(f"Node {name} is in use")
    _check_not_backing(block, node)
    if name not in block.monitor_owned:
        raise BlockCommandError(f"Node {name} is not owned by the monitor")
    if any(node in parent.children.values() for parent in block.graph.nodes.values()):
        raise BlockCommandError(f"Block device {name} is in use")
    block.graph.close_node(node)
    block.monitor_owned.discard(name)
    block.drives.pop(name, None)
    return {}


def blockdev_snapshot(machine: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """QMP ``blockdev-snapshot``: ``overlay`` (a node added without a backing file,
    e.g. ``blockdev-add`` with ``"backing": null``) goes on top of ``node``; whatever
    used ``node`` (a device, a drive) uses the overlay from now on."""
    block = _block_layer(machine)
    base = _lookup(block, arguments["node"], arguments["node"])
    _check_not_backing(block, base)
    if not base.read_only:
        base.flush()
    overlay = _lookup(block, arguments["overlay"], arguments["overlay"])
    if _in_use(block, overlay):
        raise BlockCommandError("The overlay is already in use")
    if overlay.backing is not None:
        raise BlockCommandError("The overlay already has a backing image")
    attach = getattr(overlay, "attach_backing", None)
    if attach is None:
        raise BlockCommandError("The overlay does not support backing images")
    chain: BlockNode | None = base
    while chain is not None:
        if chain is overlay:
            raise BlockCommandError(f"Making '{base.node_name}' a backing child of "
                                    f"'{overlay.node_name}' would create a cycle")
        chain = chain.backing
    attach(base)
    _put_on_top(machine, block, base, overlay)
    base.make_read_only()
    return {}


def _put_on_top(machine: Any, block: BlockDevices, base: BlockNode,
                overlay: BlockNode) -> None:
    """Every drive and device that used ``base`` uses ``overlay`` from now on."""
    from dataclasses import replace
    for name, drive in list(block.drives.items()):
        if drive.backend is base and (_is_drive(block, name) or name in block.attached):
            block.drives[name] = replace(drive, backend=overlay)
    for device_object in _devices(machine):
        if getattr(device_object, "backend", None) is base:
            device_object.backend = overlay


def blockdev_snapshot_sync(machine: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """QMP ``blockdev-snapshot-sync``: an external snapshot. A new qcow2 overlay (or,
    with ``mode: existing``, the image already at ``snapshot-file``) goes on top of
    the drive named by ``device`` (a -drive id) or of the node ``node-name`` (any
    node, one ``blockdev-add`` made too); whatever used it writes to the overlay from
    now on and the old image stays as it was (its backing file)."""
    from blockdev.errors import BlockError

    block = _block_layer(machine)
    device, node_name = arguments.get("device"), arguments.get("node-name")
    base = _lookup(block, device, node_name)
    fmt = arguments.get("format", "qcow2")
    if fmt != "qcow2":
        raise BlockCommandError(f"Unknown driver '{fmt}'" if fmt != "raw" else
                                "Driver 'raw' does not support backing files")
    mode = arguments.get("mode", "absolute-paths")
    if mode not in ("absolute-paths", "existing"):
        raise BlockCommandError(f"Parameter 'mode' does not accept value '{mode}'")
    _check_not_backing(block, base)
    if base.read_only:
        raise BlockCommandError(f"Node '{base.node_name}' is read only")
    used = _in_use(block, base)
    try:
        overlay = block.graph.external_snapshot(
            base, arguments["snapshot-file"], node_name=arguments.get("snapshot-node-name"),
            existing=mode == "existing")
    except (BlockError, OSError) as exc:
        raise BlockCommandError(str(exc) if isinstance(exc, BlockError)
                                else f"Could not create '{arguments['snapshot-file']}': "
                                     f"{exc.strerror}") from None
    _put_on_top(machine, block, base, overlay)
    base.make_read_only()
    if not used:
        # Nothing holds the new overlay (the base had no user to pass it to): QEMU
        # frees it at once, and so lists and deletes it no more.
        block.graph.close_node(overlay)
    return {}


def _devices(machine: Any) -> list[object]:
    """The devices behind the machine's virtio slots."""
    return [getattr(r, "device", None) for r in machine.resettables
            if getattr(r, "device", None) is not None]
