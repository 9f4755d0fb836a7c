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


def _is_drive(name: str, node: BlockNode) -> bool:
    """A -drive (a named backend over an automatically named node), not a -blockdev."""
    return node.node_name != name


def _backends(block: BlockDevices) -> list[tuple[str, Any]]:
    """The drives as QEMU lists its BlockBackends: -drive ones (named) first, then the
    anonymous ones devices made for -blockdev nodes."""
    drives = list(block.drives.items())
    return ([(n, d) for n, d in drives if _is_drive(n, d.backend)]
            + [(n, d) for n, d in drives if not _is_drive(n, d.backend)])


def query_block(block: BlockDevices | None) -> list[dict[str, Any]]:
    if block is None:
        return []
    result = []
    for name, drive in _backends(block):
        node = drive.backend
        if not _is_drive(name, node) and name not in block.attached:
            continue  # a -blockdev node no device uses: no BlockBackend
        entry: dict[str, Any] = {"device": name if _is_drive(name, node) else "",
                                 "locked": False, "removable": False, "type": "unknown",
                                 "inserted": node_info(node, drive.write_cache)}
        if name in block.attached:
            entry["qdev"] = block.attached[name]
        result.append(entry)
    return result


def query_named_block_nodes(block: BlockDevices | None) -> list[dict[str, Any]]:
    if block is None:
        return []
    return [node_info(node) for node in block.graph.nodes.values()
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
                   for name, node in block.graph.nodes.items() if node.driver != "reserved"]
    else:
        entries = []
        for name, drive in _backends(block):
            node = drive.backend
            title = f"{name} ({node.node_name})" if _is_drive(name, node) else name
            attached = block.attached.get(name)
            if not _is_drive(name, node) and attached is None:
                continue  # a -blockdev node no device uses: no BlockBackend
            entries.append(_node_lines(title, node, _cache(node, drive.write_cache),
                                       attached))
    wanted = [w for w in words if w != "-n"]
    if wanted:
        entries = [e for e in entries if e.split(":")[0].split(" ")[0] == wanted[0]]
    return "\n".join(entries)


class BlockCommandError(Exception):
    """A block command that cannot be done (QMP GenericError)."""


def blockdev_snapshot_sync(machine: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """QMP ``blockdev-snapshot-sync``: an external snapshot. A new qcow2 overlay (or,
    with ``mode: existing``, the image already at ``snapshot-file``) goes on top of
    the drive named by ``device`` (a -drive id) or ``node-name``; the device writes
    to it from now on and the old image stays as it was (its backing file)."""
    from blockdev.errors import BlockError

    block: BlockDevices | None = machine.block
    device, node_name = arguments.get("device"), arguments.get("node-name")
    name = device if device is not None else node_name
    drive = block.drives.get(name) if block is not None and name is not None else None
    if drive is None:
        raise BlockCommandError(f"Cannot find device='{device or ''}' nor "
                                f"node-name='{node_name or ''}'")
    fmt = arguments.get("format", "qcow2")
    if fmt != "qcow2":
        raise BlockCommandError(f"Unknown driver '{fmt}'" if fmt != "raw" else
                                "Driver 'raw' does not support backing files")
    mode = arguments.get("mode", "absolute-paths")
    if mode not in ("absolute-paths", "existing"):
        raise BlockCommandError(f"Parameter 'mode' does not accept value '{mode}'")
    base = drive.backend
    if base.read_only:
        raise BlockCommandError(f"Node '{base.node_name}' is read only")
    assert block is not None and name is not None
    try:
        overlay = block.graph.external_snapshot(
            base, arguments["snapshot-file"], node_name=arguments.get("snapshot-node-name"),
            existing=mode == "existing")
    except (BlockError, OSError) as exc:
        raise BlockCommandError(str(exc) if isinstance(exc, BlockError)
                                else f"Could not create '{arguments['snapshot-file']}': "
                                     f"{exc.strerror}") from None
    from dataclasses import replace
    block.drives[name] = replace(drive, backend=overlay)
    for device_object in _devices(machine):
        if getattr(device_object, "backend", None) is base:
            device_object.backend = overlay
    return {}


def _devices(machine: Any) -> list[object]:
    """The devices behind the machine's virtio slots."""
    return [getattr(r, "device", None) for r in machine.resettables
            if getattr(r, "device", None) is not None]
