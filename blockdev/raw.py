"""The ``raw`` format node: its file child's bytes, optionally a window of them
(``offset``, ``size``), as QEMU's raw-format driver."""

from __future__ import annotations

import errno

from blockdev.errors import BlockError
from blockdev.node import DEFAULT_FLAGS, SECTOR_SIZE, BlockNode, NodeFlags
from blockdev.probe import RAW_BLOCK0_BYTES, probe_format


class RawNode(BlockNode):
    """Raw image on ``file``. ``probed``: the format was guessed, so a guest may not
    write a block 0 that would make the image probe as another format next time (QEMU's
    protection against a guest turning its disk into a qcow2 naming a host file)."""

    driver = "raw"

    def __init__(self, file: BlockNode, *, node_name: str, read_only: bool,
                 flags: NodeFlags = DEFAULT_FLAGS, offset: int = 0, size: int | None = None,
                 probed: bool = False) -> None:
        super().__init__(node_name, read_only, flags)
        self.children["file"] = file
        file_size = file.size
        if offset < 0 or (size is not None and size < 0):
            raise BlockError("offset and size of a raw node must not be negative")
        if size is not None and size % SECTOR_SIZE:
            raise BlockError(f"Specified size is not multiple of {SECTOR_SIZE}")
        if offset > file_size or (size is not None and offset + size > file_size):
            raise BlockError(f"The sum of offset ({offset}) and size ({size or 0}) has to "
                             "be smaller or equal to the actual size of the containing file "
                             f"({file_size})")
        self.offset = offset
        self.has_size = size is not None
        self.size = size if size is not None else file_size - offset
        self.probed = probed

    @property
    def file(self) -> BlockNode:
        return self.children["file"]

    def read(self, offset: int, length: int) -> bytes:
        self._check_request(offset, length)
        inside = self._clip(offset, length)
        data = self.file.read(self.offset + offset, inside) if inside else b""
        return data + bytes(length - inside)

    def write(self, offset: int, data: bytes) -> None:
        self._check_writable()
        self._check_request(offset, len(data))
        if self.has_size:  # a window: the tail of its last sector is not ours to write
            data = data[:self._clip(offset, len(data))]
        if self.probed and offset < RAW_BLOCK0_BYTES and data:
            self._check_block0(offset, data)
        self.file.write(self.offset + offset, data)

    def _check_block0(self, offset: int, data: bytes) -> None:
        head = bytearray(self.file.read(self.offset, RAW_BLOCK0_BYTES))
        n = min(len(data), RAW_BLOCK0_BYTES - offset)
        head[offset:offset + n] = data[:n]
        if probe_format(bytes(head)) != "raw":
            raise OSError(errno.EPERM, "writing a format header to block 0 of a raw image "
                                       "whose format was probed is not allowed")

    def flush(self) -> None:
        self.file.flush()

    def discard(self, offset: int, length: int) -> None:
        if self.flags.discard and not self.read_only:
            self._check_request(offset, length)
            self.file.discard(self.offset + offset, self._clip(offset, length))

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        self._check_writable()
        self._check_request(offset, length)
        if self.has_size:
            length = self._clip(offset, length)
        if self.probed and offset < RAW_BLOCK0_BYTES and length:
            self._check_block0(offset, bytes(min(length, RAW_BLOCK0_BYTES)))
        self.file.write_zeroes(self.offset + offset, length,
                               may_unmap and self.flags.discard)
