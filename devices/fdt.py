"""Flattened device trees: build one for a machine, or read one back.

A thin typed layer over the ``fdt`` package (pure Python, PyPI ``fdt``; ``pylibfdt``
ships no wheel and needs SWIG and a compiler). Property values are kept in the
library's own classes (cells, strings, bytes, empty), so ``to_dts()`` prints them the
way dtc does; ``FdtNode.raw(name)`` gives every property as its exact bytes, which is
what tests compare.

Device modules add their own nodes (``uart16550.add_fdt_node(tree, base, irq,
plic_phandle)``); the machine creates the tree, the cpus and the root properties.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import fdt as _fdt

DTB_VERSION = 17
_MAX_CELL = 0xFFFF_FFFF


class FdtError(ValueError):
    """A malformed blob, a missing node or property, or a value a tree cannot hold."""


def _check_name(kind: str, name: str) -> None:
    if not name or not name.isascii() or not name.isprintable() or "/" in name:
        raise FdtError(f"invalid device-tree {kind} name {name!r}")


def _check_string(value: str) -> None:
    if not value or not value.isascii() or not value.isprintable():
        raise FdtError(f"device-tree strings must be non-empty printable ASCII: {value!r}")


def _raw_value(prop: _fdt.Property) -> bytes:
    if isinstance(prop, _fdt.PropWords):
        return struct.pack(f">{len(prop.data)}I", *prop.data)
    if isinstance(prop, _fdt.PropStrings):
        return b"".join(s.encode("ascii") + b"\0" for s in prop.data)
    if isinstance(prop, _fdt.PropBytes):
        return bytes(prop.data)
    return b""


class FdtNode:
    """One node of a DeviceTree; setters replace a property of the same name."""

    def __init__(self, tree: DeviceTree, node: _fdt.Node, path: str) -> None:
        self._tree = tree
        self._node = node
        self.path = path

    @property
    def name(self) -> str:
        return self._node.name

    # --- setters -------------------------------------------------------------------

    def prop_u32(self, name: str, *values: int) -> FdtNode:
        """A list of 32-bit cells (``<1 2 3>``)."""
        for value in values:
            if not 0 <= value <= _MAX_CELL:
                raise FdtError(f"{self.path}: {name}: {value:#x} does not fit a 32-bit cell")
        return self._set(_fdt.PropWords(name, *values))

    prop_cells = prop_u32

    def prop_u64(self, name: str, *values: int) -> FdtNode:
        """Each value as two cells, high then low (``reg`` with #address-cells = 2)."""
        cells: list[int] = []
        for value in values:
            if not 0 <= value < 1 << 64:
                raise FdtError(f"{self.path}: {name}: {value:#x} does not fit 64 bits")
            cells += [value >> 32, value & _MAX_CELL]
        return self.prop_u32(name, *cells)

    def prop_str(self, name: str, value: str) -> FdtNode:
        return self.prop_strings(name, value)

    def prop_strings(self, name: str, *values: str) -> FdtNode:
        """A string list (``"a", "b"``: each NUL-terminated)."""
        if not values:
            raise FdtError(f"{self.path}: {name}: a string list needs at least one string")
        for value in values:
            _check_string(value)
        return self._set(_fdt.PropStrings(name, *values))

    def prop_empty(self, name: str) -> FdtNode:
        """A property with no value (``interrupt-controller;``)."""
        return self._set(_fdt.Property(name))

    def prop_bytes(self, name: str, data: bytes) -> FdtNode:
        if not data:
            return self.prop_empty(name)
        return self._set(_fdt.PropBytes(name, data=bytes(data)))

    def phandle(self) -> int:
        """This node's phandle, allocating and setting one if it has none."""
        if self.has("phandle"):
            return self.u32("phandle")
        value = self._tree.alloc_phandle()
        self.prop_u32("phandle", value)
        return value

    def _set(self, prop: _fdt.Property) -> FdtNode:
        _check_name("property", prop.name)
        props = self._node.props
        index = next((i for i, p in enumerate(props) if p.name == prop.name), None)
        if index is None:
            self._node.append(prop)
        else:  # replace in place, keeping the property order
            prop.set_parent(self._node)
            props[index] = prop
        if prop.name == "phandle":
            self._tree._note_phandle(self.u32("phandle"))
        return self

    # --- getters -------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return self._node.get_property(name) is not None

    def raw(self, name: str) -> bytes:
        """The property's value exactly as it is in the blob."""
        prop = self._node.get_property(name)
        if prop is None:
            raise FdtError(f"{self.path}: no property {name!r}")
        return _raw_value(prop)

    def u32s(self, name: str) -> list[int]:
        raw = self.raw(name)
        if len(raw) % 4:
            raise FdtError(f"{self.path}: {name} is not a list of cells ({len(raw)} bytes)")
        return list(struct.unpack(f">{len(raw) // 4}I", raw))

    def u32(self, name: str) -> int:
        cells = self.u32s(name)
        if len(cells) != 1:
            raise FdtError(f"{self.path}: {name} has {len(cells)} cells, not 1")
        return cells[0]

    def strings(self, name: str) -> list[str]:
        raw = self.raw(name)
        if not raw.endswith(b"\0"):
            raise FdtError(f"{self.path}: {name} is not a string list")
        return [s.decode("ascii", "replace") for s in raw[:-1].split(b"\0")]

    def string(self, name: str) -> str:
        values = self.strings(name)
        if len(values) != 1:
            raise FdtError(f"{self.path}: {name} holds {len(values)} strings, not 1")
        return values[0]

    def properties(self) -> dict[str, bytes]:
        """Every property, in blob order, as raw bytes."""
        return {p.name: _raw_value(p) for p in self._node.props}

    def children(self) -> list[str]:
        return [child.name for child in self._node.nodes]


class DeviceTree:
    """A device tree under construction, or one read from a blob."""

    def __init__(self) -> None:
        self._fdt = _fdt.FDT(entries=[])  # the default `entries` list is shared by all
        self._fdt.header.version = DTB_VERSION
        self._next_phandle = 1

    @classmethod
    def from_dtb(cls, data: bytes) -> DeviceTree:
        try:
            parsed = _fdt.parse_dtb(bytes(data))
        except Exception as exc:  # the library raises bare Exception/AssertionError
            raise FdtError(f"not a valid flattened device tree: {exc}") from exc
        tree = cls()
        tree._fdt = parsed
        for path in tree.paths():
            node = tree.get_node(path)
            if node.has("phandle"):
                tree._note_phandle(node.u32("phandle"))
        return tree

    def to_dtb(self) -> bytes:
        return self._fdt.to_dtb(version=DTB_VERSION)

    def to_dts(self) -> str:
        return self._fdt.to_dts()

    def node(self, path: str) -> FdtNode:
        """The node at ``path``, created (with any missing parents) if absent."""
        node = self._fdt.root
        for name in self._split(path):
            child = node.get_subnode(name)
            if child is None:
                _check_name("node", name)
                child = _fdt.Node(name)
                node.append(child)
            node = child
        return FdtNode(self, node, self._normal(path))

    def get_node(self, path: str) -> FdtNode:
        """The node at ``path``; FdtError if it does not exist."""
        node = self._fdt.root
        for name in self._split(path):
            node = node.get_subnode(name)
            if node is None:
                raise FdtError(f"no device-tree node {self._normal(path)}")
        return FdtNode(self, node, self._normal(path))

    def has_node(self, path: str) -> bool:
        try:
            self.get_node(path)
        except FdtError:
            return False
        return True

    def paths(self) -> Iterator[str]:
        """Every node path, parents before children."""
        def walk(node: _fdt.Node, path: str) -> Iterator[str]:
            yield path
            for child in node.nodes:
                yield from walk(child, f"{path.rstrip('/')}/{child.name}")
        return walk(self._fdt.root, "/")

    def alloc_phandle(self) -> int:
        value = self._next_phandle
        self._next_phandle += 1
        return value

    def find_phandle(self, phandle: int) -> str | None:
        """Path of the node whose phandle is ``phandle``."""
        for path in self.paths():
            node = self.get_node(path)
            if node.has("phandle") and node.u32("phandle") == phandle:
                return path
        return None

    def _note_phandle(self, value: int) -> None:
        self._next_phandle = max(self._next_phandle, value + 1)

    @staticmethod
    def _split(path: str) -> list[str]:
        if not path.startswith("/"):
            raise FdtError(f"device-tree paths are absolute: {path!r}")
        return [name for name in path.split("/") if name]

    @classmethod
    def _normal(cls, path: str) -> str:
        return "/" + "/".join(cls._split(path))


def node_name(name: str, base: int) -> str:
    """A unit name the way QEMU prints it: ``serial@10000000``."""
    return f"{name}@{base:x}"


def reg(node: FdtNode, base: int, size: int) -> None:
    """``reg`` for a parent with #address-cells = #size-cells = 2 (QEMU's /soc)."""
    node.prop_u64("reg", base, size)
