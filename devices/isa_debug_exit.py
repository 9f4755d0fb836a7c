"""QEMU's ``isa-debug-exit`` (hw/misc/debugexit.c): a write of ``value`` ends the
emulator with exit status ``(value << 1) | 1``, so a guest can report any status and
never exits 0 by accident.

``-device isa-debug-exit,iobase=0xf4,iosize=4`` puts it on the port bus; QEMU's
defaults are iobase 0x501, iosize 2. Any write of 1..4 bytes anywhere in the range
exits (QEMU's ``valid`` sizes); the status the host sees is the C ``exit()`` status,
truncated to 8 bits. QEMU's device has no read callback; reads here return 0.
"""

from __future__ import annotations

from collections.abc import Callable

from devices.base import AccessRules, GuestErrorLog

DEFAULT_IOBASE = 0x501
DEFAULT_IOSIZE = 0x02

_RULES = AccessRules(min_size=1, max_size=4, unaligned=True)


def exit_status(value: int) -> int:
    """The host exit status of a write of ``value`` (QEMU: ``exit((val << 1) | 1)``)."""
    return ((value << 1) | 1) & 0xFF


class IsaDebugExit:
    name = "isa-debug-exit"

    def __init__(self, on_exit: Callable[[int], None], *, size: int = DEFAULT_IOSIZE,
                 log: GuestErrorLog | None = None) -> None:
        if size <= 0:
            raise ValueError("isa-debug-exit: iosize must be positive")
        self.size = size
        self._on_exit = on_exit
        self._log = log

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if not _RULES.allows(offset, size, self.size):
            if self._log is not None:
                self._log(f"isa-debug-exit: invalid {size}-byte write at {offset:#x}")
            return
        self._on_exit(exit_status(value))
