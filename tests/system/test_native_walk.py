"""The native TLB refill (frontends/riscv/priv/native_walk.py) against the Python fill.

Every case builds a page table in guest RAM, then fills one TLB entry twice from the
same memory: natively (the walker translated code calls on a miss) and through
``Softmmu.fill`` (priv/mmu.py). Whenever the walker fills, the Python path must fill
the same entry and leave the same A/D bits in memory; when it declines, Python decides
(faults, MMIO, ROM stores, code pages, PMP splits, untracked superpages). Random
cases cover every level of Sv39/48/57, the PTE bits, the MMU indices (U/S/SUM/MXR/M)
and the PMP layouts; fixed cases check that the common ones are native.
"""

from __future__ import annotations

import ctypes
import random
from collections.abc import Iterator

import pytest

from llvmtcg.frontends.riscv.priv import mmu
from llvmtcg.frontends.riscv.priv.mmu import (
    PTE_A,
    PTE_D,
    PTE_G,
    PTE_R,
    PTE_U,
    PTE_V,
    PTE_W,
    PTE_X,
)
from llvmtcg.frontends.riscv.priv.pmp import CFG_L, CFG_R, CFG_W, CFG_X
from llvmtcg.frontends.riscv.priv.state import AccessFault, MmuIdx, PageFault, SatpMode
from llvmtcg.frontends.riscv.system import Riscv64SystemArch, hart_of
from llvmtcg.ir import cpu_layout as abi
from llvmtcg.runtime.exits import Access, GuestFault
from llvmtcg.runtime.softmmu import GuestMemory, Perm
from llvmtcg.system import SystemCpu

RAM = 0x8000_0000
RAM_SIZE = 8 << 20
TABLES = RAM  # page tables: the first 256 KiB of RAM
TABLE_SPAN = 256 << 10
DATA = RAM + (1 << 20)
ROM = 0x2000_0000
MMIO = 0x1000_0000
HOLE = 0x4000_0000
NAPOT = 3 << 3
TOR = 1 << 3
LEVELS = {SatpMode.SV39: 3, SatpMode.SV48: 4, SatpMode.SV57: 5}


class _Device:
    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        pass


class Machine:
    def __init__(self) -> None:
        self.memory = memory = GuestMemory(1 << 33)
        memory.map(RAM, RAM_SIZE)
        memory.map(ROM, 1 << 20, Perm.R | Perm.X)
        memory.map_mmio(MMIO, 1 << 16, _Device())
        self.system = SystemCpu(Riscv64SystemArch(), memory)
        self.system.reset(RAM)
        self.cpu = self.system.cpu
        self.walker = self.cpu.softmmu.walker
        self.state = self.system.state
        self.csr = hart_of(self.state).csr
        self._next = TABLES

    def close(self) -> None:
        self.system.close()
        self.memory.close()

    # -- page tables ------------------------------------------------------------------
    def new_tables(self, mode: SatpMode) -> None:
        ctypes.memset(self.memory.base + TABLES, 0, TABLE_SPAN)
        self.mode, self.levels = mode, LEVELS[mode]
        self._next = TABLES
        self.root = self._alloc()
        self.csr.satp = (int(mode) << 60) | (self.root >> 12)

    def _alloc(self) -> int:
        page = self._next
        self._next += 4096
        assert self._next <= TABLES + TABLE_SPAN
        return page

    def _u64(self, paddr: int) -> ctypes.c_uint64:
        return ctypes.c_uint64.from_address(self.memory.base + paddr)

    def map(self, vaddr: int, paddr: int, flags: int, level: int = 0,
            pointer_flags: int = PTE_V) -> int:
        table = self.root
        for current in range(self.levels - 1, level, -1):
            addr = table + ((vaddr >> (12 + 9 * current)) & 0x1FF) * 8
            pte = self._u64(addr).value
            if not pte & PTE_V:
                pte = (self._alloc() >> 12) << 10 | pointer_flags
                self._u64(addr).value = pte
            table = ((pte >> 10) & ((1 << 44) - 1)) << 12
        addr = table + ((vaddr >> (12 + 9 * level)) & 0x1FF) * 8
        self._u64(addr).value = ((paddr >> 12) << 10) | flags
        return addr

    # -- PMP ----------------------------------------------------------------------------
    def set_pmp(self, entries: list[tuple[int, int]]) -> None:
        """(cfg, pmpaddr) from entry 0 up; the rest off."""
        pmp = self.csr.pmp
        pmp.reset()
        for i, (cfg, addr) in enumerate(entries):
            pmp.write_addr(i, addr)
            pmp.write_cfg(i, cfg)

    # -- the two fills ------------------------------------------------------------------
    def _snapshot(self) -> bytes:
        return ctypes.string_at(self.memory.base + TABLES, TABLE_SPAN)

    def _restore(self, saved: bytes) -> None:
        ctypes.memmove(self.memory.base + TABLES, saved, TABLE_SPAN)

    def _python_fill(self, vaddr: int, access: Access, mmu_idx: int) -> GuestFault | None:
        """Softmmu.fill with the Python walk only (tlb_fill asks the walker first)."""
        walkers = self.system.arch._walkers
        kept = dict(walkers)
        walkers.clear()
        self.walker.block("test", True)
        try:
            self.cpu.softmmu.fill(vaddr, access, mmu_idx)
        except GuestFault as exc:
            return exc
        finally:
            walkers.update(kept)
            self.walker.block("test", False)
        return None

    def _softmmu_fill(self, vaddr: int, access: Access,
                      mmu_idx: int) -> tuple[object, tuple[int, ...], bytes]:
        """Softmmu.fill as the slow paths make it (native first, code pages too)."""
        fault = None
        try:
            _, host = self.cpu.softmmu.fill(vaddr, access, mmu_idx)
        except GuestFault as exc:
            fault = exc.fault.kind
        else:
            assert host == 0 or host - self.memory.base & 0xFFF == vaddr & 0xFFF
        return fault, self.state.tlb_entry(mmu_idx, vaddr), self._snapshot()

    def compare_translate(self, vaddr: int, access: Access, mmu_idx: int) -> bool:
        """The walker's TRANSLATE_ONLY answer against mmu.translate's."""
        saved = self._snapshot()
        self.state.tlb_flush()
        native = self.walker.translate(vaddr, int(access), mmu_idx)
        native_memory = self._snapshot()
        self._restore(saved)
        try:
            found = mmu.translate(self.csr.satp, self.csr.pmp, hart_of(self.state).bus,
                                  vaddr, access, MmuIdx(mmu_idx))
        except (PageFault, AccessFault):
            found = None
        python_memory = self._snapshot()
        self._restore(saved)
        if native is not None:
            assert found is not None and found.cacheable, (hex(vaddr), access, mmu_idx)
            assert native == (found.paddr, found.perms, found.page_size)
            assert native_memory == python_memory
        else:
            assert native_memory in (saved, python_memory)
        return native is not None

    def compare(self, vaddr: int, access: Access, mmu_idx: int) -> bool:
        """Fill natively and in Python from the same memory; True when the walker
        filled (and then both agree). The translate-only answer is compared too."""
        translated = self.compare_translate(vaddr, access, mmu_idx)
        saved = self._snapshot()
        state = self.state
        state.tlb_flush()
        assert not self.walker.valid  # (a flush invalidates the published context)
        self.walker.publish()
        entry = state.tlb_entry_address(mmu_idx, vaddr)
        native = self.walker.fill(vaddr, int(access), mmu_idx, entry)
        native_entry = state.tlb_entry(mmu_idx, vaddr)
        native_memory = self._snapshot()
        self._restore(saved)
        state.tlb_flush()
        fault = self._python_fill(vaddr, access, mmu_idx)
        python_entry = state.tlb_entry(mmu_idx, vaddr)
        python_memory = self._snapshot()
        self._restore(saved)
        state.tlb_flush()
        slow_path = self._softmmu_fill(vaddr, access, mmu_idx)
        self._restore(saved)
        assert slow_path == (fault and fault.fault.kind, python_entry, python_memory)
        if native:
            assert translated  # (a fill is a translation and more)
            assert fault is None, (hex(vaddr), access, mmu_idx, fault)
            assert [hex(v) for v in native_entry] == [hex(v) for v in python_entry], (
                hex(vaddr), access, mmu_idx)
            assert native_memory == python_memory  # the same A/D updates
        else:  # (A/D bits it set before declining are those Python sets too)
            assert native_memory in (saved, python_memory)
        return native


@pytest.fixture
def machine() -> Iterator[Machine]:
    m = Machine()
    yield m
    m.close()


def _napot(base: int, size: int) -> int:
    return (base >> 2) | ((size >> 3) - 1)


FIRMWARE = RAM + (4 << 20)
OPENSBI_PMP = [(NAPOT, _napot(FIRMWARE, 128 << 10)),  # the firmware: S/U get nothing
               (NAPOT | CFG_R | CFG_W | CFG_X, (1 << 54) - 1)]  # everything else RWX


def _linux_like(machine: Machine, mode: SatpMode = SatpMode.SV39) -> None:
    machine.new_tables(mode)
    machine.set_pmp([(NAPOT | CFG_R | CFG_W | CFG_X, (1 << 54) - 1)])


def test_common_cases_are_native_and_equal(machine: Machine) -> None:
    _linux_like(machine)
    user, kernel = 0x4000, 0xFFFF_FFC0_0000_0000 | 0x1234000
    machine.map(user, DATA, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D)
    machine.map(kernel, DATA + 0x1000, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | PTE_G)
    assert machine.compare(user + 8, Access.READ, MmuIdx.U)
    assert machine.compare(user + 8, Access.WRITE, MmuIdx.U)
    assert machine.compare(user + 8, Access.READ, MmuIdx.S_SUM)
    assert not machine.compare(user + 8, Access.READ, MmuIdx.S)  # (a page fault)
    assert machine.compare(kernel, Access.FETCH, MmuIdx.S)
    assert machine.compare(kernel, Access.WRITE, MmuIdx.S)
    assert machine.compare(DATA, Access.WRITE, MmuIdx.M)  # M: no translation
    # A/D: the walker sets A (and D for a write) as mmu.py does.
    machine.map(user, DATA, PTE_V | PTE_R | PTE_W | PTE_U)
    assert machine.compare(user, Access.READ, MmuIdx.U)
    assert machine.compare(user, Access.WRITE, MmuIdx.U)


def test_counters_and_flush_invalidate(machine: Machine) -> None:
    _linux_like(machine)
    machine.map(0x4000, DATA, PTE_V | PTE_R | PTE_U | PTE_A)
    machine.state.tlb_flush()
    machine.walker.publish()
    entry = machine.state.tlb_entry_address(0, 0x4000)
    before = machine.walker.counters()
    assert machine.walker.fill(0x4000, int(Access.READ), 0, entry)
    assert not machine.walker.fill(0x4000, int(Access.WRITE), 0, entry)  # (no W)
    after = machine.walker.counters()
    assert after["native_fills"] == before["native_fills"] + 1
    assert after["native_fallbacks"] == before["native_fallbacks"] + 1
    assert machine.system.counters()["softmmu"]["native_fills"] == after["native_fills"]
    machine.cpu.tlb_flush()  # (satp or PMP changed): nothing until Python publishes
    assert not machine.walker.fill(0x4000, int(Access.READ), 0, entry)


def test_code_pages_mmio_rom_and_pmp_go_to_python(machine: Machine) -> None:
    machine.new_tables(SatpMode.SV39)
    machine.set_pmp(OPENSBI_PMP)
    rw = PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
    machine.map(0x10000, DATA, rw)
    machine.map(0x11000, MMIO, rw)
    machine.map(0x12000, ROM, rw)
    machine.map(0x13000, FIRMWARE + 0x8000, rw)  # inside the firmware's PMP entry
    machine.map(0x14000, HOLE, rw)
    machine.memory.set_code_page(DATA, True)
    machine.cpu.tbs.by_page[DATA] = set()
    assert machine.compare(0x10000, Access.READ, MmuIdx.S)  # (write tag: NOTDIRTY)
    assert not machine.compare(0x10000, Access.WRITE, MmuIdx.S)
    assert not machine.compare(0x11000, Access.READ, MmuIdx.S)
    assert machine.compare(0x12000, Access.READ, MmuIdx.S)
    assert not machine.compare(0x12000, Access.WRITE, MmuIdx.S)  # (ROM: stores dropped)
    assert not machine.compare(0x13000, Access.READ, MmuIdx.S)
    assert not machine.compare(0x14000, Access.READ, MmuIdx.S)
    # The slow path's own fill of a store to the code page is native (NOTDIRTY).
    before = machine.walker.counters()
    machine.state.tlb_flush()
    machine.cpu.softmmu.fill(0x10000, Access.WRITE, MmuIdx.S)
    after = machine.walker.counters()
    assert after["native_slow_fills"] == before["native_slow_fills"] + 1
    assert after["native_fills"] == before["native_fills"]  # (translated code's only)
    assert machine.state.tlb_entry(MmuIdx.S, 0x10000)[1] == 0x10000 | abi.TLB_NOTDIRTY
    # The Python fill's walk (TRANSLATE_ONLY) is native for all of them but PMP's.
    for vaddr in (0x10000, 0x11000, 0x12000, 0x14000):
        assert machine.compare_translate(vaddr, Access.WRITE, MmuIdx.S)
    assert not machine.compare_translate(0x13000, Access.READ, MmuIdx.S)
    # A page split by PMP entries is not uniform: Python checks each access.
    machine.set_pmp([(CFG_R | (2 << 3), (DATA + 0x100) >> 2), *OPENSBI_PMP[1:]])
    assert not machine.compare(0x10000, Access.READ, MmuIdx.S)
    # No PMP entry matches: S/U denied, M allowed (and M with a locked entry: its bits).
    machine.set_pmp([])
    machine.csr.pmp.write_cfg(0, 0)
    assert not machine.compare(0x10000, Access.READ, MmuIdx.S)
    assert machine.compare(DATA + 0x5000, Access.WRITE, MmuIdx.M)
    machine.set_pmp([(NAPOT | CFG_R, (1 << 54) - 1)])  # (not locked: M may do anything)
    assert machine.compare(DATA + 0x5000, Access.WRITE, MmuIdx.M)
    # A locked entry binds M too; the summary holds RWX ranges only: Python decides.
    machine.set_pmp([(NAPOT | CFG_R | CFG_L, (1 << 54) - 1)])
    assert not machine.compare(DATA + 0x5000, Access.READ, MmuIdx.M)
    assert not machine.compare(DATA + 0x5000, Access.WRITE, MmuIdx.M)


def test_superpages_need_a_tracked_range(machine: Machine) -> None:
    _linux_like(machine)
    kernel = 0xFFFF_FFFF_8000_0000
    machine.map(kernel, RAM + (2 << 20), PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D,
                level=1)
    assert not machine.compare(kernel + 0x3000, Access.READ, MmuIdx.S)
    assert machine.compare_translate(kernel + 0x3000, Access.READ, MmuIdx.S)
    assert machine.walker.translate(kernel + 0x3000, 0, 1) == (RAM + (2 << 20) + 0x3000, 7,
                                                               2 << 20)
    machine.cpu._add_large_page(kernel, 2 << 20)  # (what the Python fill does)
    assert machine.compare(kernel + 0x3000, Access.READ, MmuIdx.S)
    assert not machine.compare(kernel + (2 << 20), Access.READ, MmuIdx.S)  # (unmapped)
    machine.cpu.tlb_flush()  # forgets the ranges
    assert not machine.compare(kernel + 0x3000, Access.READ, MmuIdx.S)


def test_watchpoints_keep_the_walker_off(machine: Machine) -> None:
    _linux_like(machine)
    machine.map(0x4000, DATA, PTE_V | PTE_R | PTE_U | PTE_A)
    machine.cpu.set_watchpoints(((0x9000, 0x9008, None),))
    assert not machine.compare(0x4000, Access.READ, MmuIdx.U)
    machine.cpu.set_watchpoints(())
    assert machine.compare(0x4000, Access.READ, MmuIdx.U)


_PMP_LAYOUTS = [
    [(NAPOT | CFG_R | CFG_W | CFG_X, (1 << 54) - 1)],
    OPENSBI_PMP,
    # RAM only, the page tables read-only for S/U (no A/D updates there).
    [(NAPOT | CFG_R, _napot(TABLES, TABLE_SPAN)),
     (NAPOT | CFG_R | CFG_W | CFG_X, _napot(RAM, RAM_SIZE))],
    [(CFG_R | CFG_X | TOR, (DATA + (64 << 10)) >> 2),
     (NAPOT | CFG_R | CFG_W | CFG_X, (1 << 54) - 1)],
]


def test_random_walks_agree_with_python(machine: Machine) -> None:
    rng = random.Random(11)
    natives = translations = 0
    targets = [DATA, DATA + 0x5000, ROM, MMIO, HOLE, RAM + 0x2000, DATA + (64 << 10),
               FIRMWARE]
    leaf_bits = [PTE_V, PTE_R, PTE_W, PTE_X, PTE_U, PTE_G, PTE_A, PTE_D]
    cases = 1500
    for _case in range(cases):
        mode = rng.choice(list(LEVELS))
        machine.new_tables(mode)
        machine.set_pmp(rng.choices(_PMP_LAYOUTS, weights=(4, 4, 1, 1))[0])
        if rng.random() < 0.1:
            machine.csr.satp = 0  # Bare
        level = min(rng.randrange(LEVELS[mode]), rng.randrange(LEVELS[mode]))
        va_bits = 12 + 9 * LEVELS[mode]
        vaddr = rng.getrandbits(va_bits - 1) & ~0xFFF
        if rng.random() < 0.5:  # the upper half: sign-extended
            vaddr |= ~((1 << (va_bits - 1)) - 1) & ((1 << 64) - 1)
        if rng.random() < 0.05:
            vaddr ^= 1 << 62  # not canonical
        mmu_idx = rng.randrange(7)
        flags = PTE_V | PTE_A | PTE_D | PTE_R | PTE_W | PTE_X
        if mmu_idx in (MmuIdx.U, MmuIdx.U_MXR):
            flags |= PTE_U  # (mostly: the flips below clear it sometimes)
        for bit in leaf_bits:  # flip a few bits
            if rng.random() < 0.08:
                flags ^= bit
        if rng.random() < 0.05:
            flags |= 1 << rng.randrange(54, 64)  # reserved
        paddr = rng.choice(targets)
        if level and rng.random() < 0.7:
            paddr &= ~((1 << (12 + 9 * level)) - 1)  # (else: a misaligned superpage)
        pointer = PTE_V | (rng.choice([0, PTE_A, PTE_D, PTE_U, PTE_R])
                           if rng.random() < 0.1 else 0)
        machine.map(vaddr, paddr, flags, level, pointer)
        offset = rng.randrange(min(1 << (12 + 9 * level), RAM_SIZE)) & ~7
        if rng.random() < 0.5 and level:
            machine.cpu._add_large_page(vaddr, 1 << (12 + 9 * level))
        code = rng.random() < 0.2
        page = paddr & ~0xFFF
        machine.memory.set_code_page(page, code)
        if code:
            machine.cpu.tbs.by_page[page] = set()
        else:
            machine.cpu.tbs.by_page.pop(page, None)
        access = rng.choice([Access.READ, Access.WRITE, Access.FETCH])
        address = (vaddr + offset) & ((1 << 64) - 1)
        natives += machine.compare(address, access, mmu_idx)
        translations += machine.compare_translate(address, access, mmu_idx)
        machine.cpu.tlb_flush()
    assert natives > cases // 10  # (the comparison means something: 189 of 1500)
    assert translations > natives
