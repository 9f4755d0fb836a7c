"""Page tables built in real guest RAM for the MMU tests."""

from __future__ import annotations

from llvmtcg.frontends.riscv.priv.mmu import (
    PAGE_BITS,
    PAGING_MODES,
    PTE_A,
    PTE_D,
    PTE_PPN_SHIFT,
    PTE_R,
    PTE_V,
    PTE_W,
    PTE_X,
    GuestMemoryBus,
)
from llvmtcg.frontends.riscv.priv.state import SATP_MODE_SHIFT, SatpMode
from llvmtcg.runtime.softmmu import GuestMemory

RAM_BASE = 0x8000_0000
RAM_SIZE = 4 << 20
RWX_AD = PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D


class PageTables:
    """A root table and whatever tables ``map`` needs, allocated from RAM at RAM_BASE."""

    def __init__(self, mode: SatpMode) -> None:
        self.mode = mode
        self.levels, self.va_bits = PAGING_MODES[mode]
        self.memory = GuestMemory(size=1 << 32)
        self.memory.map(RAM_BASE, RAM_SIZE)
        self.bus = GuestMemoryBus(self.memory)
        self._next_free = RAM_BASE
        self.root = self.alloc()

    def close(self) -> None:
        self.memory.close()

    def alloc(self) -> int:
        page = self._next_free
        self._next_free += 1 << PAGE_BITS
        return page

    def satp(self, asid: int = 0) -> int:
        return (self.mode << SATP_MODE_SHIFT) | (asid << 44) | (self.root >> PAGE_BITS)

    def read_pte(self, addr: int) -> int:
        return self.bus.read_u64(addr)

    def write_pte(self, addr: int, pte: int) -> None:
        self.memory.write(addr, pte.to_bytes(8, "little"), check=None)

    def pte_addr(self, vaddr: int, level: int) -> int:
        """The address of vaddr's PTE at ``level``, creating pointer PTEs above it."""
        table = self.root
        for current in range(self.levels - 1, level, -1):
            addr = table + ((vaddr >> (PAGE_BITS + 9 * current)) & 0x1FF) * 8
            pte = self.read_pte(addr)
            if not pte & PTE_V:
                pte = (self.alloc() >> PAGE_BITS) << PTE_PPN_SHIFT | PTE_V
                self.write_pte(addr, pte)
            table = (pte >> PTE_PPN_SHIFT) << PAGE_BITS
        return table + ((vaddr >> (PAGE_BITS + 9 * level)) & 0x1FF) * 8

    def map(self, vaddr: int, paddr: int, flags: int = RWX_AD, level: int = 0) -> int:
        """Map vaddr with a leaf at ``level`` (raw flags, PPN from paddr); returns the
        PTE's address."""
        addr = self.pte_addr(vaddr, level)
        self.write_pte(addr, ((paddr >> PAGE_BITS) << PTE_PPN_SHIFT) | flags)
        return addr
