"""Sv39/Sv48/Sv57 walks: every level, every fault kind, A/D updates, SUM/MXR, PMP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llvmtcg.frontends.riscv.priv.mmu import (
    PTE_A,
    PTE_D,
    PTE_PPN_SHIFT,
    PTE_R,
    PTE_U,
    PTE_V,
    PTE_W,
    PTE_X,
    BusError,
    translate,
)
from llvmtcg.frontends.riscv.priv.pmp import CFG_L, CFG_R, CFG_W, CFG_X, Pmp, PmpMode
from llvmtcg.frontends.riscv.priv.state import (
    AccessFault,
    ExcCause,
    MmuIdx,
    PageFault,
    SatpMode,
)
from llvmtcg.runtime.exits import Access
from llvmtcg.runtime.softmmu import Perm
from tests.riscv.priv.support import RAM_BASE, RWX_AD, PageTables

NO_PMP = Pmp(0)  # no entries: S and U may access everything (§3.7.1, last paragraph)
MODES = [SatpMode.SV39, SatpMode.SV48, SatpMode.SV57]
PAGE_FAULTS = {Access.FETCH: 12, Access.READ: 13, Access.WRITE: 15}
ACCESS_FAULTS = {Access.FETCH: 1, Access.READ: 5, Access.WRITE: 7}


@pytest.fixture(params=MODES, ids=lambda m: m.name)
def pt(request) -> Iterator[PageTables]:
    tables = PageTables(request.param)
    yield tables
    tables.close()


def make(mode: SatpMode) -> PageTables:
    return PageTables(mode)


def walk(pt: PageTables, vaddr: int, access: Access = Access.READ,
         idx: MmuIdx = MmuIdx.S, pmp: Pmp = NO_PMP, size: int = 1):
    return translate(pt.satp(), pmp, pt.bus, vaddr, access, idx, size)


def fault(pt: PageTables, vaddr: int, access: Access = Access.READ, idx: MmuIdx = MmuIdx.S,
          pmp: Pmp = NO_PMP, kind: type = PageFault):
    with pytest.raises(kind) as info:
        walk(pt, vaddr, access, idx, pmp)
    return info.value


# -- levels ----------------------------------------------------------------------------------

LEVEL_CASES = [(mode, level) for mode in MODES for level in range(len(MODES) + 2)
               if level < {SatpMode.SV39: 3, SatpMode.SV48: 4, SatpMode.SV57: 5}[mode]]


@pytest.mark.parametrize(("mode", "level"), LEVEL_CASES,
                         ids=[f"{m.name}-L{lvl}" for m, lvl in LEVEL_CASES])
def test_leaf_at_every_level(mode: SatpMode, level: int) -> None:
    # "Any level of PTE may be a leaf PTE ... pa.ppn[i-1:0] = va.vpn[i-1:0]": the page
    # offset below the leaf's level comes from the virtual address.
    pt = make(mode)
    page_size = 1 << (12 + 9 * level)
    leaf_base = page_size * 3  # aligned to its size
    vaddr = (0x5 << (12 + 9 * level)) + 0x123 + (page_size - 0x1000 if level else 0)
    pt.map(vaddr, leaf_base, RWX_AD, level)
    result = walk(pt, vaddr)
    assert result.paddr == leaf_base + (vaddr & (page_size - 1))
    assert result.page_size == page_size
    assert result.perms == Perm.RWX
    pt.close()


def test_upper_half_addresses_translate(pt: PageTables) -> None:
    # Sign-extended addresses are canonical; their top VPN is in the upper half of the
    # root table (vpn[top] >= 256).
    vaddr = -(1 << (pt.va_bits - 1)) + 0x7000 + 0x42 & ((1 << 64) - 1)
    pt.map(vaddr, RAM_BASE + 0x10_0000)
    assert walk(pt, vaddr).paddr == RAM_BASE + 0x10_0042


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_non_canonical_address_page_faults(mode: SatpMode) -> None:
    # Sv39: "must have bits 63–39 all equal to bit 38, or else a page-fault exception
    # will occur" (and likewise 47 for Sv48, 56 for Sv57).
    pt = make(mode)
    pt.map(0x1000, RAM_BASE)
    bad = (1 << pt.va_bits) | 0x1000  # bit va_bits set, bit va_bits-1 clear
    for access in Access:
        exc = fault(pt, bad, access)
        assert exc.cause == PAGE_FAULTS[access] and exc.tval == bad
    top = 1 << (pt.va_bits - 1)  # the top bit set but the bits above it clear
    assert fault(pt, top).tval == top
    pt.close()


# -- invalid PTEs ------------------------------------------------------------------------------

@pytest.mark.parametrize("access", list(Access), ids=lambda a: a.name)
def test_invalid_pte_fault_cause_and_tval(pt: PageTables, access: Access) -> None:
    # "If pte.v=0 ... raise a page-fault exception corresponding to the original access
    # type"; causes 12 (instruction), 13 (load), 15 (store/AMO).
    vaddr = 0x40_3ABC
    pt.map(vaddr, RAM_BASE, RWX_AD & ~PTE_V)
    exc = fault(pt, vaddr, access)
    assert exc.cause == PAGE_FAULTS[access] and exc.tval == vaddr


def test_write_without_read_is_reserved(pt: PageTables) -> None:
    # "or if pte.r=0 and pte.w=1 ... raise a page-fault exception"
    pt.map(0x2000, RAM_BASE, PTE_V | PTE_W | PTE_A | PTE_D)
    assert fault(pt, 0x2000).cause == ExcCause.LOAD_PAGE_FAULT
    pt.map(0x3000, RAM_BASE, PTE_V | PTE_W | PTE_X | PTE_A | PTE_D)
    assert fault(pt, 0x3000, Access.FETCH).cause == ExcCause.INSN_PAGE_FAULT


@pytest.mark.parametrize("bit", [63, 62, 61, 60, 54], ids=lambda b: f"bit{b}")
def test_reserved_pte_bits_fault(pt: PageTables, bit: int) -> None:
    # Bit 63 (N) without Svnapot, 62:61 (PBMT) without Svpbmt and 60:54: "If any of these
    # bits are set, a page-fault exception is raised."
    addr = pt.map(0x5000, RAM_BASE)
    pt.write_pte(addr, pt.read_pte(addr) | 1 << bit)
    assert fault(pt, 0x5000).cause == ExcCause.LOAD_PAGE_FAULT


@pytest.mark.parametrize("bit", [PTE_D, PTE_A, PTE_U], ids=["D", "A", "U"])
def test_non_leaf_reserved_bits_fault(pt: PageTables, bit: int) -> None:
    # "For non-leaf PTEs, the D, A, and U bits are reserved for future standard use"
    # and step 3 faults on "any bits ... reserved for future standard use".
    pt.map(0x6000, RAM_BASE)
    root_pte = pt.root + ((0x6000 >> (12 + 9 * (pt.levels - 1))) & 0x1FF) * 8
    pt.write_pte(root_pte, pt.read_pte(root_pte) | bit)
    assert fault(pt, 0x6000).cause == ExcCause.LOAD_PAGE_FAULT


def test_pointer_at_level_zero_faults(pt: PageTables) -> None:
    # "If i<0, stop and raise a page-fault exception"
    addr = pt.pte_addr(0x7000, 0)
    pt.write_pte(addr, (pt.alloc() >> 12) << PTE_PPN_SHIFT | PTE_V)
    assert fault(pt, 0x7000, Access.WRITE).cause == ExcCause.STORE_PAGE_FAULT


def test_misaligned_superpage_faults(pt: PageTables) -> None:
    # "If i>0 and pte.ppn[i-1:0] != 0, this is a misaligned superpage; stop and raise a
    # page-fault exception"
    vaddr = 0x4020_0000
    pt.map(vaddr, 0x8000_1000, RWX_AD, level=1)  # a 2 MiB page at a 4 KiB boundary
    exc = fault(pt, vaddr + 0x10, Access.FETCH)
    assert exc.cause == ExcCause.INSN_PAGE_FAULT and exc.tval == vaddr + 0x10


# -- permissions ------------------------------------------------------------------------------

def test_rwx_bits(pt: PageTables) -> None:
    pt.map(0x1000, RAM_BASE, PTE_V | PTE_R | PTE_A | PTE_D)
    pt.map(0x2000, RAM_BASE, PTE_V | PTE_X | PTE_A)
    pt.map(0x3000, RAM_BASE, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
    assert walk(pt, 0x1000).perms == Perm.R
    assert fault(pt, 0x1000, Access.WRITE).cause == ExcCause.STORE_PAGE_FAULT
    assert fault(pt, 0x1000, Access.FETCH).cause == ExcCause.INSN_PAGE_FAULT
    assert walk(pt, 0x2000, Access.FETCH).perms == Perm.X
    # "When MXR=0, only loads from pages marked readable (R=1) will succeed."
    assert fault(pt, 0x2000, Access.READ).cause == ExcCause.LOAD_PAGE_FAULT
    assert walk(pt, 0x3000, Access.WRITE).perms == Perm.RW


def test_mxr_makes_executable_pages_readable(pt: PageTables) -> None:
    # "When MXR=1, loads from pages marked either readable or executable (R=1 or X=1)
    # will succeed."
    pt.map(0x2000, RAM_BASE, PTE_V | PTE_X | PTE_A)
    assert walk(pt, 0x2000, Access.READ, MmuIdx.S_MXR).perms == Perm.R | Perm.X
    assert fault(pt, 0x2000, Access.WRITE, MmuIdx.S_MXR).cause == ExcCause.STORE_PAGE_FAULT
    pt.map(0x3000, RAM_BASE, PTE_V | PTE_X | PTE_U | PTE_A)
    assert walk(pt, 0x3000, Access.READ, MmuIdx.U_MXR).paddr == RAM_BASE
    assert fault(pt, 0x3000, Access.READ, MmuIdx.U).cause == ExcCause.LOAD_PAGE_FAULT


def test_user_pages_from_supervisor(pt: PageTables) -> None:
    # "When SUM=0, S-mode memory accesses to pages that are accessible by U-mode (U=1)
    # will fault. When SUM=1, these accesses are permitted." "Irrespective of SUM, the
    # supervisor may not execute code on pages with U=1."
    pt.map(0x1000, RAM_BASE, RWX_AD | PTE_U)
    for access in (Access.READ, Access.WRITE, Access.FETCH):
        assert fault(pt, 0x1000, access, MmuIdx.S).cause == PAGE_FAULTS[access]
    assert walk(pt, 0x1000, Access.READ, MmuIdx.S_SUM).perms == Perm.RW
    assert walk(pt, 0x1000, Access.WRITE, MmuIdx.S_SUM_MXR).perms == Perm.RW
    assert fault(pt, 0x1000, Access.FETCH, MmuIdx.S_SUM).cause == ExcCause.INSN_PAGE_FAULT
    assert walk(pt, 0x1000, Access.FETCH, MmuIdx.U).perms == Perm.RWX


def test_user_mode_needs_u_bit(pt: PageTables) -> None:
    # "U-mode software may only access the page when U=1."
    pt.map(0x1000, RAM_BASE, RWX_AD)
    for access in Access:
        exc = fault(pt, 0x1000 + 8, access, MmuIdx.U)
        assert exc.cause == PAGE_FAULTS[access] and exc.tval == 0x1008


def test_machine_mode_and_bare_do_not_translate(pt: PageTables) -> None:
    assert walk(pt, 0x1234_5678, Access.WRITE, MmuIdx.M).paddr == 0x1234_5678
    bare = translate(0, NO_PMP, pt.bus, 0xFFFF_0000_0000_1000, Access.FETCH, MmuIdx.U)
    assert bare.paddr == 0xFFFF_0000_0000_1000 and bare.perms == Perm.RWX


# -- accessed and dirty bits ------------------------------------------------------------------

def test_read_sets_a_only_and_withholds_write(pt: PageTables) -> None:
    # "When a virtual page is accessed and the A bit is clear, or is written and the D
    # bit is clear, the implementation sets the corresponding bit(s) in the PTE."
    addr = pt.map(0x1000, RAM_BASE, PTE_V | PTE_R | PTE_W)
    result = walk(pt, 0x1000, Access.READ)
    assert pt.read_pte(addr) & (PTE_A | PTE_D) == PTE_A
    assert result.perms == Perm.R  # a store must walk again to set D
    result = walk(pt, 0x1000, Access.WRITE)
    assert pt.read_pte(addr) & (PTE_A | PTE_D) == PTE_A | PTE_D
    assert result.perms == Perm.RW


def test_write_sets_a_and_d_and_fetch_sets_a(pt: PageTables) -> None:
    data = pt.map(0x1000, RAM_BASE, PTE_V | PTE_R | PTE_W)
    code = pt.map(0x2000, RAM_BASE, PTE_V | PTE_X)
    walk(pt, 0x1000, Access.WRITE)
    walk(pt, 0x2000, Access.FETCH)
    assert pt.read_pte(data) & (PTE_A | PTE_D) == PTE_A | PTE_D
    assert pt.read_pte(code) & (PTE_A | PTE_D) == PTE_A


def test_denied_access_updates_nothing(pt: PageTables) -> None:
    # Step 5 (permission check) comes before step 7 (A/D update).
    addr = pt.map(0x1000, RAM_BASE, PTE_V | PTE_R)
    fault(pt, 0x1000, Access.WRITE)
    assert pt.read_pte(addr) & (PTE_A | PTE_D) == 0


class RacingBus:
    """The real bus, with another hart storing ``racing_pte`` into the PTE just before
    the walker's first compare-and-swap (so it fails)."""

    def __init__(self, pt: PageTables, pte_addr: int, racing_pte: int) -> None:
        self.pt, self.pte_addr, self.racing_pte = pt, pte_addr, racing_pte
        self.swaps = 0

    def read_u64(self, paddr: int) -> int:
        return self.pt.bus.read_u64(paddr)

    def cmpxchg_u64(self, paddr: int, old: int, new: int) -> bool:
        self.swaps += 1
        if self.swaps == 1:
            self.pt.write_pte(self.pte_addr, self.racing_pte)
        return self.pt.bus.cmpxchg_u64(paddr, old, new)


def test_ad_update_race_restarts_the_walk(pt: PageTables) -> None:
    # "Compare pte to the value of the PTE ... If the comparison fails, return to step 2"
    addr = pt.map(0x1000, RAM_BASE, PTE_V | PTE_R | PTE_W)
    moved = ((RAM_BASE + 0x3000) >> 12) << PTE_PPN_SHIFT | PTE_V | PTE_R | PTE_W
    bus = RacingBus(pt, addr, moved)
    result = translate(pt.satp(), NO_PMP, bus, 0x1010, Access.WRITE, MmuIdx.S)
    assert bus.swaps == 2 and result.paddr == RAM_BASE + 0x3010
    assert pt.read_pte(addr) == moved | PTE_A | PTE_D


def test_ad_update_race_with_invalidation_faults(pt: PageTables) -> None:
    addr = pt.map(0x1000, RAM_BASE, PTE_V | PTE_R)
    bus = RacingBus(pt, addr, 0)
    with pytest.raises(PageFault):
        translate(pt.satp(), NO_PMP, bus, 0x1000, Access.READ, MmuIdx.S)
    assert pt.read_pte(addr) == 0


# -- access faults: PMP and PMA ----------------------------------------------------------------

def napot(base: int, size: int) -> int:
    return (base >> 2) | ((size >> 3) - 1)


def pmp_allowing(*entries: tuple[int, int, int]) -> Pmp:
    """A PMP with NAPOT entries (base, size, R/W/X) in priority order."""
    pmp = Pmp(16)
    for i, (base, size, perms) in enumerate(entries):
        pmp.write_addr(i, napot(base, size))
        pmp.write_cfg(i, PmpMode.NAPOT << 3 | perms)
    return pmp


def test_pmp_on_page_table_reads(pt: PageTables) -> None:
    # "If accessing pte violates a PMA or PMP check, raise an access-fault exception
    # corresponding to the original access type."; page-table accesses are checked
    # with the effective privilege S even for a U-mode access.
    pt.map(0x1000, 0x1000_0000, RWX_AD | PTE_U)
    data_only = pmp_allowing((0x1000_0000, 0x1000, CFG_R | CFG_W | CFG_X))
    for access in Access:
        exc = fault(pt, 0x1000, access, MmuIdx.U, data_only, AccessFault)
        assert exc.cause == ACCESS_FAULTS[access] and exc.tval == 0x1000
    both = pmp_allowing((0x1000_0000, 0x1000, CFG_R | CFG_W | CFG_X),
                        (RAM_BASE, 1 << 20, CFG_R))
    assert walk(pt, 0x1000, Access.READ, MmuIdx.U, both).paddr == 0x1000_0000


def test_pmp_on_ad_update(pt: PageTables) -> None:
    # Step 7: "If a store to pte would violate a PMA or PMP check, raise an access-fault
    # exception corresponding to the original access type."
    addr = pt.map(0x1000, 0x1000_0000, PTE_V | PTE_R | PTE_W)
    pmp = pmp_allowing((0x1000_0000, 0x1000, CFG_R | CFG_W), (RAM_BASE, 1 << 20, CFG_R))
    assert fault(pt, 0x1000, Access.READ, MmuIdx.S, pmp, AccessFault).cause == 5
    assert pt.read_pte(addr) & PTE_A == 0


def test_pmp_on_final_address(pt: PageTables) -> None:
    pt.map(0x1000, 0x1000_0000, RWX_AD)
    pmp = pmp_allowing((0x1000_0000, 0x1000, CFG_R), (RAM_BASE, 1 << 20, CFG_R | CFG_W))
    result = walk(pt, 0x1000, Access.READ, MmuIdx.S, pmp)
    assert result.perms == Perm.R and result.cacheable  # PMP takes W and X away
    exc = fault(pt, 0x1004, Access.WRITE, MmuIdx.S, pmp, AccessFault)
    assert exc.cause == ExcCause.STORE_ACCESS_FAULT and exc.tval == 0x1004
    assert fault(pt, 0x1000, Access.FETCH, MmuIdx.S, pmp, AccessFault).cause == 1


def test_pmp_splitting_a_page_is_not_cacheable() -> None:
    pt = make(SatpMode.SV39)
    pt.map(0x1000, 0x1000_0000, RWX_AD)
    pmp = pmp_allowing((0x1000_0000, 0x800, CFG_R), (RAM_BASE, 1 << 20, CFG_R))
    result = walk(pt, 0x1000, Access.READ, MmuIdx.S, pmp)
    assert not result.cacheable and result.perms == Perm.R
    assert fault(pt, 0x1800, Access.READ, MmuIdx.S, pmp, AccessFault).cause == 5
    pt.close()


def test_locked_pmp_denies_machine_mode() -> None:
    pt = make(SatpMode.SV39)
    pmp = Pmp(16)
    pmp.write_addr(0, napot(0x2000_0000, 0x1000))
    pmp.write_cfg(0, CFG_L | PmpMode.NAPOT << 3 | CFG_R)
    assert walk(pt, 0x2000_0010, Access.READ, MmuIdx.M, pmp).paddr == 0x2000_0010
    exc = fault(pt, 0x2000_0010, Access.WRITE, MmuIdx.M, pmp, AccessFault)
    assert exc.cause == ExcCause.STORE_ACCESS_FAULT and exc.tval == 0x2000_0010
    pt.close()


def test_page_table_outside_memory_is_an_access_fault(pt: PageTables) -> None:
    # A PMA violation (no memory at the PTE's address) is an access fault, not a page
    # fault.
    satp = (pt.mode << 60) | (0x4000_0000 >> 12)
    with pytest.raises(AccessFault) as info:
        translate(satp, NO_PMP, pt.bus, 0x1000, Access.FETCH, MmuIdx.S)
    assert info.value.cause == ExcCause.INSN_ACCESS_FAULT
    with pytest.raises(BusError):
        pt.bus.cmpxchg_u64(0x4000_0000, 0, 1)


def test_mprv_translates_machine_mode_data_accesses() -> None:
    # "When MPRV=1, load and store memory addresses are translated and protected ... as
    # though the current privilege mode were set to MPP. Instruction address-translation
    # and protection are unaffected".
    from llvmtcg.frontends.riscv.priv.csr import Csr, CsrFile
    from llvmtcg.frontends.riscv.priv.state import Mstatus

    pt = make(SatpMode.SV48)
    pt.map(0x1000, RAM_BASE + 0x5000, RWX_AD | PTE_U)
    hart = CsrFile(cycles=lambda: 0, instret=lambda: 0)
    with pytest.raises(AccessFault):  # S-mode walks need a PMP entry (16 exist)
        translate(pt.satp(), hart.pmp, pt.bus, 0x1010, Access.READ, MmuIdx.S_SUM)
    hart.write(Csr.PMPADDR0, (1 << 54) - 1)  # all of memory, as OpenSBI sets up
    hart.write(Csr.PMPCFG0, PmpMode.NAPOT << 3 | CFG_R | CFG_W | CFG_X)
    hart.write(Csr.SATP, pt.satp())
    hart.write(Csr.MSTATUS, Mstatus.MPRV | (1 << 11) | Mstatus.SUM)  # MPP = S
    data = translate(hart.satp, hart.pmp, pt.bus, 0x1010, Access.READ, hart.data_mmu_index())
    assert data.paddr == RAM_BASE + 0x5010
    fetch = translate(hart.satp, hart.pmp, pt.bus, 0x1010, Access.FETCH,
                      hart.fetch_mmu_index())
    assert fetch.paddr == 0x1010
    hart.write(Csr.MSTATUS, Mstatus.MPRV | (1 << 11))  # without SUM the U page faults
    with pytest.raises(PageFault):
        translate(hart.satp, hart.pmp, pt.bus, 0x1010, Access.READ, hart.data_mmu_index())
    pt.close()


def test_ad_update_in_read_only_memory_is_an_access_fault() -> None:
    # A page table in ROM whose A bit is clear cannot be updated: a PMA violation on the
    # store to the PTE ("If a store to pte would violate a PMA or PMP check, raise an
    # access-fault exception corresponding to the original access type").
    pt = make(SatpMode.SV39)
    addr = pt.map(0x1000, RAM_BASE, PTE_V | PTE_R | PTE_X)
    pt.memory.protect(RAM_BASE, 1 << 20, Perm.R)
    exc = fault(pt, 0x1000, Access.FETCH, kind=AccessFault)
    assert exc.cause == ExcCause.INSN_ACCESS_FAULT and exc.tval == 0x1000
    assert pt.read_pte(addr) & PTE_A == 0
    pt.close()
