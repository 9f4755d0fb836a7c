"""An address bus of MmioDevices: x86 port I/O, or MMIO for an accelerator that sees
guest accesses one at a time (KVM's exits).

A device is added at a base with its ``size``; overlapping another is refused naming
both (Firecracker's bus rule). An access is dispatched to the device whose range holds
its first byte, with the offset into it; an access that runs past the device's end, or
hits no device, is *unassigned*: reads return ``unassigned`` (all ones for x86 port
I/O, QEMU's ``unassigned_io_read``; 0 for MMIO) masked to the size and writes are
dropped, each reported to the optional ``log``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from devices.base import GuestErrorLog, MmioDevice, size_mask


class BusOverlap(ValueError):
    """A device added where another one is."""


@dataclass(frozen=True, slots=True)
class BusEntry:
    name: str
    base: int
    size: int
    device: MmioDevice

    @property
    def end(self) -> int:
        return self.base + self.size


class DeviceBus:
    def __init__(self, name: str, *, unassigned: int = 0,
                 log: GuestErrorLog | None = None) -> None:
        self.name = name
        self.unassigned = unassigned
        self._log = log
        self._bases: list[int] = []
        self._entries: list[BusEntry] = []

    def add(self, base: int, device: MmioDevice, name: str | None = None,
            size: int | None = None) -> BusEntry:
        entry = BusEntry(name or device.name, base, device.size if size is None else size,
                         device)
        if entry.size <= 0:
            raise ValueError(f"{entry.name}: empty range")
        for other in self._entries:
            if entry.base < other.end and other.base < entry.end:
                raise BusOverlap(f"{self.name}: {entry.name} [{entry.base:#x}, "
                                 f"{entry.end:#x}) overlaps {other.name} [{other.base:#x}, "
                                 f"{other.end:#x})")
        index = bisect.bisect(self._bases, base)
        self._bases.insert(index, base)
        self._entries.insert(index, entry)
        return entry

    def find(self, addr: int) -> BusEntry | None:
        index = bisect.bisect(self._bases, addr) - 1
        if index >= 0 and addr < self._entries[index].end:
            return self._entries[index]
        return None

    def entries(self) -> list[BusEntry]:
        return list(self._entries)

    def read(self, addr: int, size: int) -> int:
        entry = self.find(addr)
        if entry is None or addr + size > entry.end:
            self._unassigned("read", addr, size)
            return self.unassigned & size_mask(size)
        return entry.device.read(addr - entry.base, size) & size_mask(size)

    def write(self, addr: int, size: int, value: int) -> None:
        entry = self.find(addr)
        if entry is None or addr + size > entry.end:
            self._unassigned("write", addr, size)
            return
        entry.device.write(addr - entry.base, size, value & size_mask(size))

    def _unassigned(self, what: str, addr: int, size: int) -> None:
        if self._log is not None:
            self._log(f"{self.name}: unassigned {what} of {size} bytes at {addr:#x}")
