"""The device model's interfaces: devices see register offsets only."""
from __future__ import annotations
from collections.abc import Callable
from typing import Protocol

class MmioDevice(Protocol):
    name: str
    size: int
    def read(self, offset: int, size: int) -> int: ...
    def write(self, offset: int, size: int, value: int) -> None: ...

IrqLine = Callable[[bool], None]   # level-triggered: line(True) raises, line(False) lowers

class GuestRam(Protocol):          # DMA view of guest physical memory, for bus masters
    def read(self, addr: int, size: int) -> bytes: ...
    def write(self, addr: int, data: bytes) -> None: ...
