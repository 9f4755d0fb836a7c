"""Spike's HTIF (host-target interface) as QEMU 7.2 has it (hw/char/riscv_htif.c): two
64-bit mailboxes, ``tohost`` (guest to emulator) and ``fromhost`` (the reply).

A tohost value is ``device << 56 | command << 48 | payload`` (48 bits). It is handled
when its high 32-bit half is written (the low half first, and only into an empty
tohost; a 64-bit store does both, in that order):

    device 0, command 0, payload odd   exit: ``on_exit(payload >> 1)`` — riscv-tests
                                       write ``code << 1 | 1``, 1 meaning pass
    device 1, command 1                putchar: the low payload byte goes to ``write``
    device 1, command 0                getchar request: remembered, nothing answered

Afterwards tohost reads 0 and fromhost holds ``device << 56 | command << 48 | reply``
(putchar replies 0x100 | byte). An input byte lands in fromhost as ``0x100 | byte``
tagged with the last getchar request. QEMU overwrites fromhost with every byte that
arrives; here ``can_receive()`` holds input back until the guest has made a getchar
request and cleared fromhost, so none is lost.

The mailboxes sit at fixed offsets of a small region: by default fromhost at +0 and
tohost at +8 of 0x1000000 (spike without ELF symbols); ``HtifLayout.at`` places them
at an ELF's ``tohost``/``fromhost`` symbols.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from devices.base import (
    AccessRules,
    GuestErrorLog,
    StateValue,
    load_fields,
    save_fields,
    size_mask,
)
from devices.fdt import DeviceTree

SPIKE_HTIF_BASE = 0x1000000
SPIKE_HTIF_FDT_SIZE = 0x1000

DEV_SYSTEM, DEV_CONSOLE = 0, 1
CMD_GETC, CMD_PUTC = 0, 1

# QEMU sets no .valid limits (any size, aligned) and implements 32-bit halves.
_RULES = AccessRules(min_size=1, max_size=8)
_MASK48 = (1 << 48) - 1


@dataclass(frozen=True, slots=True)
class HtifLayout:
    """Where the HTIF region is and where the two mailboxes are inside it."""

    base: int
    size: int
    tohost_offset: int
    fromhost_offset: int

    @classmethod
    def at(cls, tohost: int, fromhost: int) -> HtifLayout:
        """The region spanning the 8-byte mailboxes at these guest addresses."""
        if abs(tohost - fromhost) < 8:
            raise ValueError(f"HTIF tohost {tohost:#x} and fromhost {fromhost:#x} overlap")
        base = min(tohost, fromhost)
        return cls(base, max(tohost, fromhost) + 8 - base, tohost - base, fromhost - base)

    @classmethod
    def spike_default(cls) -> HtifLayout:
        return cls.at(tohost=SPIKE_HTIF_BASE + 8, fromhost=SPIKE_HTIF_BASE)


class Htif:
    name = "htif"
    state_version = 1
    _STATE_FIELDS = ("tohost", "fromhost", "_getc_request", "_tohost_open")

    def __init__(self, write: Callable[[bytes], object], on_exit: Callable[[int], None], *,
                 layout: HtifLayout | None = None, log: GuestErrorLog | None = None) -> None:
        self.layout = layout if layout is not None else HtifLayout.spike_default()
        self.size = self.layout.size
        self._write = write
        self._on_exit = on_exit
        self._log = log
        self.tohost = 0
        self.fromhost = 0
        self._getc_request = 0  # the last device 1 command 0 value (QEMU's pending_read)
        self._tohost_open = False  # the low half went into an empty tohost

    # --- registers ------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if not _RULES.allows(offset, size, self.size):
            self._bad(f"invalid read of {size} bytes at {offset:#x}")
            return 0
        if size == 8:
            return self._read32(offset) | self._read32(offset + 4) << 32
        return self._read32(offset) & size_mask(size)

    def write(self, offset: int, size: int, value: int) -> None:
        if not _RULES.allows(offset, size, self.size):
            self._bad(f"invalid write of {size} bytes at {offset:#x}")
            return
        value &= size_mask(size)
        if size == 8:
            self._write32(offset, value & 0xFFFF_FFFF)
            self._write32(offset + 4, value >> 32)
        else:
            self._write32(offset, value)

    # --- console input ------------------------------------------------------------

    def save_state(self) -> dict[str, StateValue]:
        return save_fields(self, self._STATE_FIELDS)

    def load_state(self, saved: dict[str, StateValue]) -> None:
        load_fields(self, self._STATE_FIELDS, saved)

    def can_receive(self) -> int:
        """1 when the guest waits for a byte (a getchar request, fromhost empty)."""
        pending = self._getc_request >> 56 == DEV_CONSOLE and self.fromhost == 0
        return 1 if pending else 0

    def receive(self, data: bytes) -> None:
        """One input byte (QEMU ignores deliveries of any other length)."""
        if len(data) != 1:
            return
        self.fromhost = (self._getc_request >> 48 << 48) | 0x100 | data[0]

    # --- internals ------------------------------------------------------------------

    def _read32(self, offset: int) -> int:
        tohost, fromhost = self.layout.tohost_offset, self.layout.fromhost_offset
        if offset == tohost:
            return self.tohost & 0xFFFF_FFFF
        if offset == tohost + 4:
            return self.tohost >> 32
        if offset == fromhost:
            return self.fromhost & 0xFFFF_FFFF
        if offset == fromhost + 4:
            return self.fromhost >> 32
        self._bad(f"invalid read at {offset:#x}")
        return 0

    def _write32(self, offset: int, value: int) -> None:
        tohost, fromhost = self.layout.tohost_offset, self.layout.fromhost_offset
        if offset == tohost:
            self._tohost_open = self.tohost == 0
            if self._tohost_open:
                self.tohost = value
        elif offset == tohost + 4:
            if self._tohost_open:  # stays open, as in QEMU
                self.tohost |= value << 32
                self._handle(self.tohost)
        elif offset == fromhost:
            self.fromhost = value
        elif offset == fromhost + 4:
            self.fromhost |= value << 32
        else:
            self._bad(f"invalid write at {offset:#x}")

    def _handle(self, value: int) -> None:
        device, command, payload = value >> 56, (value >> 48) & 0xFF, value & _MASK48
        reply = 0
        if device == DEV_SYSTEM and command == 0 and payload & 1:
            self._on_exit(payload >> 1)
            return
        if device == DEV_SYSTEM:
            self._bad("syscall proxy not supported" if command == 0
                      else f"device 0: unknown command {command}")
        elif device == DEV_CONSOLE and command == CMD_GETC:
            self._getc_request = value
            self.tohost = 0
            return
        elif device == DEV_CONSOLE and command == CMD_PUTC:
            byte = payload & 0xFF
            self._write(bytes((byte,)))
            reply = 0x100 | byte
        else:
            self._bad(f"unknown device {device} or command {command}")
        self.fromhost = (value >> 48 << 48) | reply
        self.tohost = 0

    def _bad(self, message: str) -> None:
        if self._log is not None:
            self._log(f"{self.name}: {message}")


def add_fdt_node(tree: DeviceTree, base: int | None = SPIKE_HTIF_BASE, *,
                 reg_size: int = SPIKE_HTIF_FDT_SIZE) -> str:
    """QEMU spike's ``/htif`` node; ``base=None`` when the mailboxes come from ELF
    symbols (QEMU then gives no ``reg``)."""
    node = tree.node("/htif")
    node.prop_str("compatible", "ucb,htif0")
    if base is not None:
        node.prop_u64("reg", base, reg_size)
    return node.path
