"""The block graph: opening nodes from option dicts in QEMU's -blockdev shape.

    open_node({"driver": "qcow2", "node-name": "hd", "read-only": True,
               "file": {"driver": "file", "filename": "disk.qcow2"}})

A child ("file", "backing") is a dict (opened as a new node), a string (the node name
of a node already in the graph), or, for "backing", None (no backing file). Without
"backing", a qcow2 node opens the backing file its header names (relative to the
image's directory; format from the header's backing-format extension, else probed).
Without "driver", the format is probed from the image's first bytes as for ``-drive``
without ``format=``; probing raw for a writable image prints QEMU's warning and
protects block 0. Flattened keys ("file.filename") are accepted too.

Options are inherited by the children a node opens, as QEMU's open flags are:
``discard``, ``cache.no-flush``, ``force-share``, ``locking`` (when not set on the
child), and ``read-only`` (a backing file is always read-only).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from blockdev.errors import BlockError
from blockdev.file import FileNode, HostDeviceNode
from blockdev.node import BlockNode, NodeFlags
from blockdev.probe import PROBE_BYTES, probe_format
from blockdev.qcow2.create import create_qcow2
from blockdev.qcow2.node import Qcow2Node
from blockdev.raw import RawNode

Warn = Callable[[str], None]

FORMAT_DRIVERS = ("raw", "qcow2")
PROTOCOL_DRIVERS = ("file", "host_device")

_NODE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,30}")
_SIZE = re.compile(r"(\d+)\s*([kKmMgGtTpPeE]?)[bB]?")
_SIZE_SUFFIX = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


def _warn_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class _Options:
    """One node's options, taken one by one; what is left at the end is an error."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self._options = dict(options)

    def has(self, key: str) -> bool:
        return key in self._options

    def take(self, key: str, default: Any = None) -> Any:
        return self._options.pop(key, default)

    def string(self, key: str, default: str | None = None, *,
               required: bool = False) -> str | None:
        if key not in self._options:
            if required:
                raise BlockError(f"Parameter '{key}' is missing")
            return default
        value = self._options.pop(key)
        if not isinstance(value, str):
            raise BlockError(f"Invalid parameter type for '{key}', expected: string")
        return value

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        if key not in self._options:
            return default
        value = self._options.pop(key)
        if isinstance(value, bool):
            return value
        if value in ("on", "true", "yes"):
            return True
        if value in ("off", "false", "no"):
            return False
        raise BlockError(f"Parameter '{key}' expects 'on' or 'off'")

    def size(self, key: str, default: int | None = None) -> int | None:
        if key not in self._options:
            return default
        value = self._options.pop(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
        if not match:
            raise BlockError(f"Parameter '{key}' expects a non-negative number below 2^64")
        return int(match.group(1)) << _SIZE_SUFFIX[match.group(2).lower()]

    def choice(self, key: str, values: dict[str, Any], default: Any) -> Any:
        if key not in self._options:
            return default
        value = self._options.pop(key)
        if isinstance(value, bool):
            value = "on" if value else "off"
        if value not in values:
            raise BlockError(f"Parameter '{key}' does not accept value '{value}'")
        return values[value]

    def finish(self) -> None:
        for key in self._options:
            raise BlockError(f"Parameter '{key}' is unexpected")


def unflatten(options: Mapping[str, Any]) -> dict[str, Any]:
    """{"file.filename": "x"} -> {"file": {"filename": "x"}} (nested dicts kept)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, Mapping):
            value = unflatten(value)
        head, dot, rest = key.partition(".")
        if not dot:
            if isinstance(out.get(key), dict) and isinstance(value, dict):
                out[key].update(value)
            else:
                out[key] = value
            continue
        child = out.setdefault(head, {})
        if not isinstance(child, dict):
            raise BlockError(f"Parameter '{head}' is given both as a value and as options")
        child.update(unflatten({rest: value}))
    return out


@dataclass(slots=True)
class _Context:
    """What opening one top node carries down to the nodes it opens."""

    flags: NodeFlags
    read_only: bool
    chain: frozenset[tuple[int, int]] = field(default_factory=frozenset)  # files above


class BlockGraph:
    """Named block nodes. ``warn`` receives QEMU's warnings (stderr by default)."""

    def __init__(self, warn: Warn | None = None) -> None:
        self.nodes: dict[str, BlockNode] = {}
        self.warn = warn or _warn_stderr
        self._next_auto_name = 0

    # -- opening --------------------------------------------------------------------------

    def open(self, options: Mapping[str, Any]) -> BlockNode:
        """Opens a node (and the children its options describe) from QEMU-style
        options; raises BlockError with QEMU's message on failure."""
        context = _Context(flags=NodeFlags(), read_only=False)
        return self._open(unflatten(options), context)

    def open_image(self, filename: str, *, format: str | None = None,
                   read_only: bool = False, snapshot: bool = False,
                   node_name: str | None = None,
                   extra: Mapping[str, Any] | None = None,
                   tmpdir: str | None = None) -> BlockNode:
        """The ``-drive file=…,format=…,readonly=…,snapshot=…`` case: a format node on a
        file node, the format probed when not given; with ``snapshot`` a temporary
        qcow2 overlay on top, in a file already deleted, as QEMU's -snapshot."""
        options: dict[str, Any] = dict(unflatten(extra or {}))
        file_options = options.setdefault("file", {})
        if not isinstance(file_options, dict):
            raise BlockError("Parameter 'file' must describe a file here")
        file_options.setdefault("driver", "file")
        file_options["filename"] = filename
        if format is not None:
            options["driver"] = format
        if node_name is not None and not snapshot:
            options["node-name"] = node_name
        options["read-only"] = read_only or snapshot
        node = self.open(options)
        if snapshot:
            try:
                node = self.add_temporary_overlay(node, node_name=node_name, tmpdir=tmpdir)
            except BaseException:
                self.close_node(node)
                raise
        return node

    def add_temporary_overlay(self, base: BlockNode, *, node_name: str | None = None,
                              tmpdir: str | None = None) -> Qcow2Node:
        """A writable qcow2 overlay of ``base`` in a temporary file that is deleted at
        once, so writes never reach ``base`` (QEMU's bdrv_append_temp_snapshot)."""
        fd, path = tempfile.mkstemp(prefix="vl.", dir=tmpdir)
        os.close(fd)
        try:
            create_qcow2(path, -(-base.size // 512) * 512)
            file = FileNode(path, node_name=self._auto_name(), read_only=False,
                            flags=replace(base.flags, locking="off"))
        finally:
            os.unlink(path)  # the open descriptor keeps it alive until closed
        overlay = self._overlay(file, base, node_name)
        overlay.owned_children.append(base)
        return overlay

    def external_snapshot(self, base: BlockNode, filename: str, *,
                          node_name: str | None = None, existing: bool = False) -> Qcow2Node:
        """A qcow2 overlay ``filename`` on top of ``base`` (QEMU's blockdev-snapshot-sync):
        created empty with ``base`` as its backing file (absolute path and format in
        the header), or with ``existing`` an image already there, opened as it is with
        ``base`` as its backing node. Writes go to the overlay from now on."""
        if node_name is not None and node_name in self.nodes:
            raise BlockError(f"Duplicate nodes with node-name='{node_name}'")
        if not existing:
            base.flush()
            backing = os.path.abspath(base.filename) if base.filename else None
            create_qcow2(filename, -(-base.size // 512) * 512, backing_file=backing,
                         backing_format=base.driver if backing else None)
        file = FileNode(filename, node_name=self._auto_name(), read_only=False,
                        flags=base.flags)
        self._complete(file.node_name, file)
        try:
            overlay = self._overlay(file, base, node_name)
        except BaseException:
            self.nodes.pop(file.node_name, None)
            raise
        return overlay

    def _overlay(self, file: FileNode, base: BlockNode, node_name: str | None) -> Qcow2Node:
        """The qcow2 node on ``file`` (which it owns) backed by ``base``, registered as
        ``node_name``; on failure ``file`` is closed and the name freed."""
        name = self._register(node_name)
        try:
            overlay = Qcow2Node(file, node_name=name, read_only=False, flags=base.flags,
                                warn=self.warn)
        except BaseException:
            file.close()
            self.nodes.pop(name, None)
            raise
        overlay.owned_children.append(file)
        overlay.attach_backing(base)
        self._complete(name, overlay)
        return overlay

    def _open(self, options: dict[str, Any], context: _Context) -> BlockNode:
        opts = _Options(options)
        driver = opts.string("driver")
        if driver is None and opts.has("filename"):
            driver = "file"  # a bare filename names the file protocol, as in QEMU
        node_name = opts.string("node-name")
        if node_name is not None and not _NODE_NAME.fullmatch(node_name):
            raise BlockError(f"Invalid node-name: '{node_name}'")
        if node_name is not None and node_name in self.nodes:
            raise BlockError(f"Duplicate nodes with node-name='{node_name}'")
        read_only = opts.boolean("read-only", context.read_only)
        auto_read_only = opts.boolean("auto-read-only", False)
        force_share = opts.boolean("force-share", context.flags.force_share)
        discard = opts.choice("discard", {"ignore": False, "off": False, "unmap": True,
                                          "on": True}, context.flags.discard)
        cache = opts.take("cache", {})
        if not isinstance(cache, dict):
            raise BlockError("Parameter 'cache' expects an object")
        cache_opts = _Options(cache)
        if cache_opts.boolean("direct", False):
            raise BlockError("cache.direct=on (O_DIRECT) is not supported")
        no_flush = cache_opts.boolean("no-flush", context.flags.no_flush)
        cache_opts.finish()
        if force_share and not read_only:
            raise BlockError("force-share=on can only be used with read-only images")
        flags = replace(context.flags, discard=discard, no_flush=no_flush,
                        force_share=force_share)
        child_context = replace(context, flags=flags, read_only=read_only)
        if driver is None:
            return self._open_probed(opts, node_name, child_context, auto_read_only)
        name = self._register(node_name)
        try:
            node = self._open_driver(driver, opts, name, child_context, auto_read_only,
                                     probed=False)
        except BaseException:
            self.nodes.pop(name, None)
            raise
        self._complete(name, node)
        return node

    def _open_driver(self, driver: str, opts: _Options, name: str, context: _Context,
                     auto_read_only: bool, *, probed: bool,
                     file: BlockNode | None = None) -> BlockNode:
        """Opens ``driver``; a format node's file child is ``file`` when the caller
        opened it (probing), else it comes from the options."""
        if driver in PROTOCOL_DRIVERS:
            return self._open_protocol(driver, opts, name, context, auto_read_only)
        if driver not in FORMAT_DRIVERS:
            raise BlockError(f"Unknown driver '{driver}'" if driver not in _KNOWN_FORMATS
                             else f"Block format '{driver}' is not supported (only raw and "
                                  "qcow2 are)")
        settings = _format_settings(driver, opts)  # bad options fail before any open
        child = opts.take("file") if file is None else None
        opts.finish()
        owned = False
        if file is None:
            file, owned = self._open_child(child, "file", context)
        try:
            node = self._open_format(driver, settings, name, context, file, probed)
        except BaseException:
            if owned:
                self.close_node(file)
            raise
        if owned:
            node.owned_children.append(file)
        return node

    def _open_protocol(self, driver: str, opts: _Options, name: str, context: _Context,
                       auto_read_only: bool) -> BlockNode:
        filename = opts.string("filename", required=True)
        locking = opts.choice("locking", {"on": "on", "off": "off", "auto": "auto"},
                              context.flags.locking)
        opts.take("aio")  # threads/native/io_uring: every request is synchronous here
        opts.finish()
        if context.chain:  # a backing file: it must not be one of the images above it
            try:
                st = os.stat(filename)
            except OSError:
                pass  # opening reports it
            else:
                if (st.st_dev, st.st_ino) in context.chain:
                    raise BlockError(f"Backing file '{filename}' creates an infinite loop")
        node_class = FileNode if driver == "file" else HostDeviceNode
        return node_class(filename, node_name=name, read_only=context.read_only,
                          flags=replace(context.flags, locking=locking),
                          auto_read_only=auto_read_only)

    def _open_format(self, driver: str, settings: dict[str, Any], name: str,
                     context: _Context, file: BlockNode, probed: bool) -> BlockNode:
        read_only, flags = context.read_only, context.flags
        if not read_only and file.read_only:
            raise BlockError(f"Block node '{file.node_name}' is read-only")
        if driver == "raw":
            if probed and not read_only:
                self.warn(
                    f"WARNING: Image format was not specified for '{file.filename}' and "
                    "probing guessed raw.\n"
                    "         Automatically detecting the format is dangerous for raw "
                    "images, write operations on block 0 will be restricted.\n"
                    "         Specify the 'raw' format explicitly to remove the "
                    "restrictions.")
            return RawNode(file, node_name=name, read_only=read_only, flags=flags,
                           offset=settings["offset"], size=settings["size"], probed=probed)
        node = Qcow2Node(file, node_name=name, read_only=read_only, flags=flags,
                         warn=self.warn, lazy_refcounts=settings["lazy-refcounts"],
                         l2_cache_size=settings["l2-cache-size"],
                         refcount_cache_size=settings["refcount-cache-size"])
        try:
            child, owned = self._open_backing(node, settings, context, file)
        except BaseException:
            node.close()
            raise
        node.attach_backing(child)
        if child is not None and owned:
            node.owned_children.append(child)
        return node

    def _open_backing(self, node: Qcow2Node, settings: dict[str, Any], context: _Context,
                      file: BlockNode) -> tuple[BlockNode | None, bool]:
        """The backing node and whether ``node`` owns it."""
        has_backing, backing = "backing" in settings, settings.get("backing")
        if has_backing and backing is None:
            return None, False
        chain = context.chain | ({file.identity} if isinstance(file, FileNode) else set())
        backing_context = replace(context, read_only=True, chain=chain)
        if isinstance(backing, str):
            return self._reference(backing), False
        if has_backing:
            return self._open(backing, backing_context), True
        if not node.backing_filename:
            return None, False
        options = _backing_options(node.backing_filename, node.filename,
                                   node.backing_format)
        try:
            return self._open(options, backing_context), True
        except BlockError as error:
            raise BlockError(f"Could not open backing file: {error}", error.errno or 0,
                             error.hint) from None

    def _open_child(self, child: Any, role: str,
                    context: _Context) -> tuple[BlockNode, bool]:
        """The child in ``role`` (options or a node name) and whether it was opened here
        (and so is owned)."""
        if child is None:
            raise BlockError(f"Parameter '{role}' is missing")
        if isinstance(child, str):
            node = self._reference(child)
            if not context.read_only and node.read_only:
                raise BlockError(f"Block node '{child}' is read-only")
            return node, False
        if not isinstance(child, dict):
            raise BlockError(f"Parameter '{role}' expects an object or a node name")
        return self._open(child, context), True

    def _open_probed(self, opts: _Options, node_name: str | None, context: _Context,
                     auto_read_only: bool) -> BlockNode:
        file, owned = self._open_child(opts.take("file"), "file", context)
        try:
            head = file.read(0, min(file.size, PROBE_BYTES))
            driver = probe_format(head)
            if driver not in FORMAT_DRIVERS:
                raise BlockError(f"Could not open '{file.filename}': image format "
                                 f"'{driver}' is not supported (only raw and qcow2 are)")
            name = self._register(node_name)
            try:
                node = self._open_driver(driver, opts, name, context, auto_read_only,
                                         probed=True, file=file)
            except BaseException:
                self.nodes.pop(name, None)
                raise
        except BaseException:
            if owned:
                self.close_node(file)
            raise
        if owned:
            node.owned_children.append(file)
        self._complete(name, node)
        return node

    def _reference(self, name: str) -> BlockNode:
        node = self.nodes.get(name)
        if node is None:
            raise BlockError(f"Cannot find device='' nor node-name='{name}'")
        return node

    def _register(self, node_name: str | None) -> str:
        """Reserves a node name (an automatic '#blockN' one when none is given)."""
        name = node_name if node_name is not None else self._auto_name()
        self.nodes[name] = _RESERVED
        return name

    def _complete(self, name: str, node: BlockNode) -> None:
        """Registers an opened node last in ``nodes``, which so lists nodes in the order
        they were completed (children before parents): QEMU's query-named-block-nodes
        lists them newest first."""
        self.nodes.pop(name, None)
        self.nodes[name] = node

    def _auto_name(self) -> str:
        self._next_auto_name += 1
        return f"#block{self._next_auto_name:03d}"

    # -- lookup and closing ---------------------------------------------------------------

    def get(self, name: str) -> BlockNode:
        return self._reference(name)

    def close_node(self, node: BlockNode) -> None:
        """Closes a node and the children it owns, and forgets their names."""
        node.close()
        self._forget(node)

    def _forget(self, node: BlockNode) -> None:
        if self.nodes.get(node.node_name) is node:
            del self.nodes[node.node_name]
        for child in node.owned_children:
            self._forget(child)

    def close_all(self) -> None:
        parents = {id(child) for node in self.nodes.values() for child in
                   node.children.values()}
        for node in [n for n in self.nodes.values() if id(n) not in parents]:
            node.close()
        for node in list(self.nodes.values()):
            node.close()
        self.nodes.clear()


class _Reserved(BlockNode):
    """Stands for a node name while its node is being opened."""

    driver = "reserved"

    def read(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def write(self, offset: int, data: bytes) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def discard(self, offset: int, length: int) -> None:
        raise NotImplementedError

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        raise NotImplementedError


_RESERVED = _Reserved("", True, NodeFlags())
_KNOWN_FORMATS = ("qcow", "qed", "vmdk", "vpc", "vhdx", "vdi", "luks", "parallels",
                  "bochs", "cloop", "dmg")


def _format_settings(driver: str, opts: _Options) -> dict[str, Any]:
    """A format driver's own options, checked."""
    if driver == "raw":
        return {"offset": opts.size("offset", 0), "size": opts.size("size")}
    settings = {"lazy-refcounts": opts.boolean("lazy-refcounts"),
                "l2-cache-size": opts.size("l2-cache-size"),
                "refcount-cache-size": opts.size("refcount-cache-size")}
    if opts.has("backing"):
        backing = opts.take("backing")
        if backing is not None and not isinstance(backing, str | dict):
            raise BlockError("Parameter 'backing' expects an object, a node name or null")
        settings["backing"] = backing
    return settings


def _backing_options(backing: str, image: str, backing_format: str | None) -> dict[str, Any]:
    """Options for a backing file named in an image header."""
    if backing.startswith("json:"):
        try:
            options = json.loads(backing[5:])
        except ValueError:
            raise BlockError(f"Could not parse the JSON options of backing file "
                             f"'{backing}'") from None
        if not isinstance(options, dict):
            raise BlockError(f"Backing file '{backing}' has JSON options that are not an "
                             "object")
        options = unflatten(options)
    else:
        path = backing[5:] if backing.startswith("file:") else backing
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", path) and not os.path.exists(path):
            raise BlockError(f"Unknown protocol '{path.split(':')[0]}' of backing file "
                             f"'{backing}'")
        if not os.path.isabs(path):
            path = os.path.join(os.path.dirname(image), path)
        options = {"file": {"driver": "file", "filename": path}}
    if backing_format is not None and "driver" not in options:
        options["driver"] = backing_format
    return options


def open_node(options: Mapping[str, Any], *, graph: BlockGraph | None = None,
              warn: Warn | None = None) -> BlockNode:
    """Opens a node from QEMU-style options (see the module docstring), in ``graph``
    or a new one."""
    return (graph or BlockGraph(warn)).open(options)
