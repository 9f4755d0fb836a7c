"""The block node: one vertex of the block graph and the I/O interface all nodes share.

A node is what a device (virtio-blk) or a parent node reads and writes: ``size`` bytes
of disk, ``read``/``write``/``flush``/``discard``/``write_zeroes`` with byte offsets.
Failures raise OSError (BlockError for those with a message for the user). Reads past
``size`` (the tail of a last partial sector) return zeros.
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

SECTOR_SIZE = 512


class BlockBackend(Protocol):
    """Storage behind a device (virtio-blk): any BlockNode, or a plain raw file.

    ``size`` is the disk size in bytes; ``read`` returns exactly ``length`` bytes (zeros
    past the end of the data). Failures raise OSError; the guest then sees IOERR.
    """

    size: int
    read_only: bool

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes) -> None: ...

    def flush(self) -> None:
        """Makes completed writes durable (fsync)."""
        ...

    def discard(self, offset: int, length: int) -> None:
        """The range's contents are no longer needed (a hint; reads return anything)."""
        ...

    def write_zeroes(self, offset: int, length: int, may_unmap: bool) -> None:
        """The range reads as zeros afterwards; ``may_unmap`` allows deallocating it."""
        ...


@dataclass(frozen=True, slots=True)
class NodeFlags:
    """Options a node passes down to the children it opens, as QEMU's open flags are
    inherited (BDRV_O_UNMAP, cache.no-flush, force-share, file.locking)."""

    discard: bool = False  # discard=unmap: guest discards reach the image and the host
    no_flush: bool = False  # cache.no-flush=on (cache=unsafe): flushes do nothing
    force_share: bool = False  # share every permission (read-only nodes only)
    locking: str = "auto"  # the file driver's locking option: on, off, auto


DEFAULT_FLAGS = NodeFlags()


class BlockNode(ABC):
    """A node of the block graph.

    ``children`` maps a child role ("file", "backing") to the node in it. ``filename`` is
    the image file's path (a format node reports its file child's, as QEMU's
    ``bs->filename``).
    """

    driver: ClassVar[str]

    def __init__(self, node_name: str, read_only: bool, flags: NodeFlags) -> None:
        self.node_name = node_name
        self.read_only = read_only
        self.flags = flags
        self.size = 0
        self.children: dict[str, BlockNode] = {}
        # Children this node opened itself and so closes; others belong to the graph.
        self.owned_children: list[BlockNode] = []
        self.closed = False

    @property
    def filename(self) -> str:
        file = self.children.get("file")
        return file.filename if file is not None else ""

    @property
    def backing(self) -> BlockNode | None:
        return self.children.get("backing")

    @abstractmethod
    def read(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes from ``offset``."""

    @abstractmethod
    def write(self, offset: int, data: bytes) -> None:
        """Writes ``data`` at ``offset``."""

    @abstractmethod
    def flush(self) -> None:
        """Makes every completed write durable (it reaches the disk)."""

    @abstractmethod
    def discard(self, offset: int, length: int) -> None:
        """The range's contents are no longer needed (a hint: ignored unless the node
        was opened with discard=unmap, QEMU's default being discard=ignore)."""

    @abstractmethod
    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        """The range reads as zeros afterwards; ``may_unmap`` allows deallocating it."""

    def close(self) -> None:
        """Writes back what is cached and releases the node and the children it owns."""
        if self.closed:
            return
        self.closed = True
        try:
            self._close()
        finally:
            for child in self.owned_children:
                child.close()

    def make_read_only(self) -> None:
        """Reopens the node (and its file child) read-only, as QEMU does to the image
        under a new external snapshot: what is cached is written first."""
        if self.read_only:
            return
        self.flush()
        self.read_only = True
        file = self.children.get("file")
        if file is not None:
            file.make_read_only()

    def _close(self) -> None:  # noqa: B027 - most nodes have nothing of their own to close
        """The node's own part of ``close``."""

    def __enter__(self) -> BlockNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers for implementations ------------------------------------------------------

    def _check_writable(self) -> None:
        if self.read_only:
            raise OSError(errno.EPERM, f"block node '{self.node_name}' is read-only")

    def _check_request(self, offset: int, length: int) -> None:
        """A request must lie inside the disk, whose last partial sector counts whole."""
        end = -(-self.size // SECTOR_SIZE) * SECTOR_SIZE
        if offset < 0 or length < 0 or offset + length > end:
            raise OSError(errno.EINVAL, f"request {offset:#x}+{length:#x} is outside "
                                        f"block node '{self.node_name}' ({self.size} bytes)")

    def _clip(self, offset: int, length: int) -> int:
        """How many bytes of a checked request lie before ``size``."""
        return max(0, min(length, self.size - offset))
