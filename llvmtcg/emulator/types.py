"""The embedding API's vocabulary: permissions, hook types, memory-access kinds and
errors, numbered as Unicorn numbers them (``UC_PROT_*``, ``UC_HOOK_*``, ``UC_MEM_*``,
``UC_ERR_*``) so code written against Unicorn ports by renaming."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Perm(enum.IntFlag):
    """Guest page permissions (Unicorn's ``UC_PROT_*``)."""

    NONE = 0
    READ = 1
    WRITE = 2
    EXEC = 4
    ALL = 7


class Hook(enum.IntFlag):
    """Hook types for :meth:`Emulator.hook_add` (Unicorn's ``UC_HOOK_*`` values).

    Callback signatures (Unicorn's Python binding's):

    - ``INTR``: ``cb(emu, intno, user_data)``
    - ``CODE``, ``BLOCK``: ``cb(emu, address, size, user_data)``
    - ``MEM_READ``, ``MEM_WRITE``, ``MEM_READ_AFTER``, ``MEM_FETCH``: ``cb(emu, access,
      address, size, value, user_data)`` (value: 0 for reads and fetches, the value
      stored or loaded otherwise, as a signed 64-bit integer as Unicorn's binding
      passes it; an atomic is a read and a write, see ``emulator/instrument.py``; a
      fetch is reported once per instruction executed, before it, with the
      instruction's address and length)
    - ``MEM_*_UNMAPPED``, ``MEM_*_PROT``: the same, returning True to retry the access
      (after mapping or unprotecting the page)
    - ``INSN_INVALID``: ``cb(emu, user_data)``, returning True to continue (at the pc
      the callback left)
    """

    INTR = 1
    CODE = 4
    BLOCK = 8
    MEM_READ_UNMAPPED = 16
    MEM_WRITE_UNMAPPED = 32
    MEM_FETCH_UNMAPPED = 64
    MEM_READ_PROT = 128
    MEM_WRITE_PROT = 256
    MEM_FETCH_PROT = 512
    MEM_READ = 1024
    MEM_WRITE = 2048
    MEM_FETCH = 4096
    MEM_READ_AFTER = 8192
    INSN_INVALID = 16384
    MEM_UNMAPPED = MEM_READ_UNMAPPED | MEM_WRITE_UNMAPPED | MEM_FETCH_UNMAPPED
    MEM_PROT = MEM_READ_PROT | MEM_WRITE_PROT | MEM_FETCH_PROT
    MEM_INVALID = MEM_UNMAPPED | MEM_PROT


class MemAccess(enum.IntEnum):
    """The ``access`` argument of memory hooks (Unicorn's ``UC_MEM_*``)."""

    READ = 16
    WRITE = 17
    FETCH = 18
    READ_UNMAPPED = 19
    WRITE_UNMAPPED = 20
    FETCH_UNMAPPED = 21
    WRITE_PROT = 22
    READ_PROT = 23
    FETCH_PROT = 24
    READ_AFTER = 25


class ErrorKind(enum.IntEnum):
    """What went wrong (Unicorn's ``UC_ERR_*`` numbers)."""

    NOMEM = 1  # the range is not mapped (mem_unmap, mem_protect)
    ARCH = 2  # no such architecture or CPU model
    READ_UNMAPPED = 6
    WRITE_UNMAPPED = 7
    FETCH_UNMAPPED = 8
    HOOK = 9  # a bad hook type or handle
    INSN_INVALID = 10
    MAP = 11  # the range overlaps an existing mapping
    WRITE_PROT = 12
    READ_PROT = 13
    FETCH_PROT = 14
    ARG = 15  # an invalid argument (alignment, size, register name, permissions)
    READ_UNALIGNED = 16
    WRITE_UNALIGNED = 17
    FETCH_UNALIGNED = 18
    EXCEPTION = 21  # a guest exception nothing handled (ecall/ebreak without INTR hook)


class EmulatorError(Exception):
    """An error of the embedding API, like Unicorn's ``UcError``.

    Attributes:
        kind: what went wrong.
        address: the guest address involved (faulting access), or None.
        pc: the guest pc when it happened (during ``emu_start``), or None.
    """

    def __init__(self, kind: ErrorKind, message: str, *, address: int | None = None,
                 pc: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.address = address
        self.pc = pc

    @property
    def errno(self) -> int:
        """Unicorn's error number (``UcError.errno``)."""
        return int(self.kind)


@dataclass(frozen=True, slots=True)
class Context:
    """Saved registers (:meth:`Emulator.context_save`): the pc and the guest part of
    the CPU state (every register field of the architecture's layout), as bytes."""

    arch: str
    pc: int
    registers: bytes
