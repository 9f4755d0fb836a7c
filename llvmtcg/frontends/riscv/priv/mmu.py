"""Address translation: Sv39, Sv48 and Sv57 page-table walks plus PMP (§4.3.2, §4.4-4.6).

:func:`translate` maps one access at one MMU index to a physical address and the
permissions the TLB may cache for the whole 4 KiB page, or raises the exception the
access takes:

- :class:`PageFault` (12/13/15, tval = the virtual address): non-canonical address,
  invalid PTE (V=0, W without R, reserved bits), no leaf, permission denied by R/W/X,
  U with SUM/MXR, misaligned superpage;
- :class:`AccessFault` (1/5/7, tval = the virtual address): PMP or PMA (no memory)
  denies a page-table read, an A/D update or the final physical access.

A and D are set by the walker (QEMU 7.2's hardware update, not Svade faults), with a
compare-and-swap on the PTE that restarts the walk when the PTE changed under it.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Protocol

from llvmtcg.frontends.riscv.priv.pmp import ACCESS_PERM, PAGE_SIZE, Pmp
from llvmtcg.frontends.riscv.priv.state import (
    MMU_CONTEXTS,
    SATP_MODE_SHIFT,
    SATP_PPN_MASK,
    AccessFault,
    ExcCause,
    MmuIdx,
    PageFault,
    Priv,
    SatpMode,
)
from llvmtcg.runtime.exits import Access
from llvmtcg.runtime.softmmu import GuestMemory, Perm

PAGE_BITS = 12
PTE_SIZE = 8
_u64_at = ctypes.c_uint64.from_address  # (a host little-endian u64: x86-64)

# PTE bits (Figure 4.21).
PTE_V, PTE_R, PTE_W, PTE_X = 1 << 0, 1 << 1, 1 << 2, 1 << 3
PTE_U, PTE_G, PTE_A, PTE_D = 1 << 4, 1 << 5, 1 << 6, 1 << 7
PTE_PPN_SHIFT = 10
PTE_PPN_MASK = (1 << 44) - 1
# Bit 63 (N, Svnapot), 62:61 (PBMT, Svpbmt) and 60:54: none of those extensions is
# implemented, so "If any of these bits are set, a page-fault exception is raised."
PTE_RESERVED = ((1 << 10) - 1) << 54
# "For non-leaf PTEs, the D, A, and U bits are reserved for future standard use" and
# step 3 faults on "any bits or encodings that are reserved for future standard use".
PTE_NONLEAF_RESERVED = PTE_D | PTE_A | PTE_U

# satp.MODE -> (levels, virtual address bits).
PAGING_MODES = {SatpMode.SV39: (3, 39), SatpMode.SV48: (4, 48), SatpMode.SV57: (5, 57)}

PAGE_FAULT = {Access.FETCH: ExcCause.INSN_PAGE_FAULT, Access.READ: ExcCause.LOAD_PAGE_FAULT,
              Access.WRITE: ExcCause.STORE_PAGE_FAULT}
_READ, _S = Access.READ, Priv.S  # (module globals: enum attribute lookups cost)
ACCESS_FAULT = {Access.FETCH: ExcCause.INSN_ACCESS_FAULT,
                Access.READ: ExcCause.LOAD_ACCESS_FAULT,
                Access.WRITE: ExcCause.STORE_ACCESS_FAULT}


class BusError(Exception):
    """Raised by a :class:`PhysMemory` for a physical address it cannot access as asked
    (no memory there, or an atomic update of something that is not RAM). The walker
    turns it into an access fault: a PMA violation."""


class PhysMemory(Protocol):
    """The physical address space as the page-table walker sees it."""

    def read_u64(self, paddr: int) -> int:
        """The little-endian 64-bit value at ``paddr`` (raises BusError)."""
        ...

    def cmpxchg_u64(self, paddr: int, old: int, new: int) -> bool:
        """Atomically replace the value at ``paddr`` by ``new`` if it is ``old``;
        return whether it was (raises BusError)."""
        ...


class GuestMemoryBus:
    """:class:`PhysMemory` over a :class:`GuestMemory` used as the physical address
    space: RAM regions are read and updated directly, MMIO regions are read through
    their device (page tables in device memory are unusual but allowed), and A/D
    updates of MMIO or read-only memory fail as PMA violations.

    The compare-and-swap is atomic with respect to the guest because the walk runs on
    the hart's own thread while its translated code is stopped in the slow path; a
    multi-threaded SMP model will need a host atomic here. The update bypasses the
    softmmu's store path, so it does not invalidate translated code in the page (a page
    table sharing a page with code would be a guest bug anyway).
    """

    __slots__ = ("memory", "_ram")

    def __init__(self, memory: GuestMemory) -> None:
        self.memory = memory
        # The readable RAM region page tables were last read from: (start, end) or None.
        # Every walk reads 3-5 PTEs, nearly always from the same RAM.
        self._ram: tuple[int, int] | None = None
        memory.on_change.append(self._forget_ram)

    def _forget_ram(self, start: int, end: int) -> None:
        self._ram = None  # (the map changed: look the region up again)

    def read_u64(self, paddr: int) -> int:
        ram = self._ram
        if ram is not None and ram[0] <= paddr and paddr + PTE_SIZE <= ram[1]:
            return _u64_at(self.memory.base + paddr).value
        region = self.memory.region(paddr)
        if region is None or paddr + PTE_SIZE > region.end:
            raise BusError(f"no memory at {paddr:#x}")
        if region.mmio is not None:
            return region.mmio.read(paddr - region.start, PTE_SIZE) & ((1 << 64) - 1)
        value = int.from_bytes(self.memory.read(paddr, PTE_SIZE, check=Access.READ), "little")
        self._ram = (region.start, region.end)  # (read() checked it is readable RAM)
        return value

    def cmpxchg_u64(self, paddr: int, old: int, new: int) -> bool:
        region = self.memory.region(paddr)
        if (region is None or region.mmio is not None or not region.perms & Perm.W
                or paddr + PTE_SIZE > region.end):
            raise BusError(f"no writable RAM at {paddr:#x} for a page-table update")
        current = int.from_bytes(self.memory.read(paddr, PTE_SIZE, check=Access.READ), "little")
        if current != old:
            return False
        self.memory.write(paddr, new.to_bytes(PTE_SIZE, "little"), check=None)
        return True


@dataclass(frozen=True, slots=True)
class Translation:
    """The result of :func:`translate`.

    ``perms`` are the Perm bits every access to the 4 KiB page holding ``paddr`` gets
    at the same MMU index until the next TLB flush: page-table R/W/X after U/SUM/MXR,
    W only once D is set (so the first store walks again and sets it), intersected with
    PMP. ``cacheable`` is False when PMP entries split that page: then only this access
    was checked and the TLB must not keep the page.
    """

    paddr: int
    perms: int
    page_size: int
    cacheable: bool = True


def _leaf_perms(pte: int, priv: Priv, sum_: bool, mxr: bool) -> int:
    """What a leaf PTE allows at this privilege with these SUM/MXR bits (§4.3.1,
    §3.1.6.3): MXR makes executable pages readable; U-mode needs U=1; S-mode may read
    and write U pages only with SUM and never executes them."""
    perms = 0
    if pte & PTE_R or (mxr and pte & PTE_X):
        perms |= Perm.R
    if pte & PTE_W:
        perms |= Perm.W
    if pte & PTE_X:
        perms |= Perm.X
    if priv == Priv.U and not pte & PTE_U:
        return 0
    if priv == Priv.S and pte & PTE_U:
        perms &= ~Perm.X
        if not sum_:
            perms &= ~Perm.RW
    return perms


def translate(satp: int, pmp: Pmp, memory: PhysMemory, vaddr: int, access: Access,
              mmu_idx: MmuIdx, size: int = 1) -> Translation:
    """Translate an access of ``size`` bytes at ``vaddr`` made at ``mmu_idx``.

    The MMU index fixes the effective privilege and SUM/MXR (see :class:`MmuIdx`), so a
    TLB filled from the result stays right for that index. M-mode and satp.MODE=Bare
    do not translate. Page-table reads and A/D updates are checked by PMP with
    privilege S ("The effective privilege mode for implicit page-table accesses is S").

    Raises:
        PageFault: the translation itself fails.
        AccessFault: PMP or missing memory denies a page-table access or the access.
    """
    ctx = MMU_CONTEXTS[mmu_idx]  # (an int works as the key: MmuIdx is an IntEnum)
    mode = satp >> SATP_MODE_SHIFT
    if ctx.priv == Priv.M or mode == SatpMode.BARE:
        paddr, perms, page_size = vaddr, Perm.RWX, PAGE_SIZE
    else:
        paddr, perms, page_size = _walk(satp, mode, pmp, memory, vaddr, access, ctx.priv,
                                        ctx.sum, ctx.mxr)
    return _check_pmp(pmp, paddr, perms, page_size, vaddr, access, ctx.priv, size)


def _check_pmp(pmp: Pmp, paddr: int, perms: int, page_size: int, vaddr: int,
               access: Access, priv: Priv, size: int) -> Translation:
    if not pmp.allows(paddr, size, access, priv):
        raise AccessFault(ACCESS_FAULT[access], vaddr, f"PMP denies {paddr:#x}")
    pmp_perms, uniform = pmp.page_perms(paddr & ~(PAGE_SIZE - 1), priv)
    if not uniform:
        return Translation(paddr, ACCESS_PERM[access], page_size, cacheable=False)
    return Translation(paddr, perms & pmp_perms, page_size)


def _walk(satp: int, mode: int, pmp: Pmp, memory: PhysMemory, vaddr: int, access: Access,
          priv: Priv, sum_: bool, mxr: bool) -> tuple[int, int, int]:
    """The §4.3.2 algorithm with LEVELS and VA width of ``mode``; returns (physical
    address, leaf permissions, page size)."""
    levels, va_bits = PAGING_MODES[mode]  # (an int key: SatpMode is an IntEnum)

    def page_fault(reason: str) -> PageFault:
        return PageFault(PAGE_FAULT[access], vaddr, reason)

    def access_fault(reason: str) -> AccessFault:
        return AccessFault(ACCESS_FAULT[access], vaddr, reason)

    # "must have bits 63–39 all equal to bit 38, or else a page-fault exception will
    # occur" (Sv39; 47 for Sv48, 56 for Sv57).
    top = vaddr >> (va_bits - 1)
    if top not in (0, (1 << (65 - va_bits)) - 1):
        raise page_fault(f"non-canonical address for {SatpMode(mode).name}")
    while True:  # restarted when an A/D update loses a race
        table = (satp & SATP_PPN_MASK) << PAGE_BITS
        for level in range(levels - 1, -1, -1):
            pte_addr = table + ((vaddr >> (PAGE_BITS + 9 * level)) & 0x1FF) * PTE_SIZE
            if not pmp.allows(pte_addr, PTE_SIZE, _READ, _S):
                raise access_fault(f"PMP denies the PTE at {pte_addr:#x}")
            try:
                pte = memory.read_u64(pte_addr)
            except BusError as exc:
                raise access_fault(str(exc)) from None
            if not pte & PTE_V or (pte & PTE_W and not pte & PTE_R) or pte & PTE_RESERVED:
                raise page_fault(f"invalid PTE {pte:#x} at {pte_addr:#x}")
            ppn = (pte >> PTE_PPN_SHIFT) & PTE_PPN_MASK
            if not pte & (PTE_R | PTE_X):  # a pointer to the next level
                if pte & PTE_NONLEAF_RESERVED:
                    raise page_fault(f"non-leaf PTE {pte:#x} has D, A or U set")
                table = ppn << PAGE_BITS
                continue
            perms = _leaf_perms(pte, priv, sum_, mxr)
            if not perms & ACCESS_PERM[access]:
                raise page_fault(f"PTE {pte:#x} denies {access.name.lower()} in "
                                 f"{priv.name}-mode")
            # "If i>0 and pte.ppn[i−1:0] ≠ 0, this is a misaligned superpage"
            if ppn & ((1 << (9 * level)) - 1):
                raise page_fault(f"misaligned superpage PTE {pte:#x}")
            wanted = pte | PTE_A | (PTE_D if access == Access.WRITE else 0)
            if wanted != pte:
                if not pmp.allows(pte_addr, PTE_SIZE, Access.WRITE, Priv.S):
                    raise access_fault(f"PMP denies the A/D update at {pte_addr:#x}")
                try:
                    updated = memory.cmpxchg_u64(pte_addr, pte, wanted)
                except BusError as exc:
                    raise access_fault(str(exc)) from None
                if not updated:
                    # "If the comparison fails, return to step 2"; like QEMU we walk
                    # again from the root, which also re-reads the upper levels.
                    break
                pte = wanted
            if not pte & PTE_D:
                perms &= ~Perm.W  # the first store must walk again to set D
            page_size = 1 << (PAGE_BITS + 9 * level)
            paddr = ((ppn << PAGE_BITS) & ~(page_size - 1)) | (vaddr & (page_size - 1))
            return paddr, perms, page_size
        else:
            raise page_fault("no leaf PTE")
