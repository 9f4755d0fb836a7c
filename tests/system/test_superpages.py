"""Cached superpages and sfence.vma of one page (llvmtcg.runtime.cpu_exec.Cpu): a page
inside a cached superpage flushes everything (its 4 KiB entries are not kept apart),
one outside every superpage range flushes only itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llvmtcg.frontends.riscv.system import Riscv64SystemArch
from llvmtcg.runtime.exits import Access
from llvmtcg.runtime.softmmu import GuestMemory
from llvmtcg.system import SharedCode, SystemCpu

RAM = 0x8000_0000
LINEAR_MAP = 0xFF60_0000_0000_0000  # Linux's linear map (2 MiB pages here)
KERNEL = 0xFFFF_FFFF_8000_0000  # its kernel image mapping
FIXMAP = 0xFF1B_FFFF_FEBF_C000  # a 4 KiB page between them (fixmap)
MEGA2 = 2 << 20


@pytest.fixture
def cpu() -> Iterator[SystemCpu]:
    memory = GuestMemory(1 << 33)
    memory.map(RAM, 4 << 20)
    system = SystemCpu(Riscv64SystemArch(), memory)
    SharedCode([system])
    system.reset(RAM)
    yield system
    system.close()
    memory.close()


def _generation(system: SystemCpu) -> int:
    return system.cpu.tbs.lookup_table._cell[4]  # (CELL_GENERATION)


def _cached(system: SystemCpu, vaddr: int) -> bool:
    return system.cpu.softmmu.cached_read_phys(vaddr, 1) is not None


def _fill(system: SystemCpu, vaddr: int) -> None:
    system.state.set_tlb_entry(1, vaddr, vaddr & ~0xFFF, vaddr & ~0xFFF, vaddr & ~0xFFF,
                               RAM - (vaddr & ~0xFFF))


def test_a_page_between_superpage_ranges_flushes_only_itself(cpu: SystemCpu) -> None:
    runtime = cpu.cpu
    for i in range(64):  # 128 MiB of the linear map in 2 MiB pages: one range
        runtime._add_large_page(LINEAR_MAP + i * MEGA2, MEGA2)
    runtime._add_large_page(KERNEL, MEGA2)
    assert len(runtime._large_pages) == 2
    _fill(cpu, KERNEL + 0x1000)
    _fill(cpu, FIXMAP)
    generation = _generation(cpu)
    runtime.tlb_flush_page(FIXMAP)
    assert not _cached(cpu, FIXMAP)
    assert _cached(cpu, KERNEL + 0x1000)  # the rest of the TLB stays
    assert _generation(cpu) == generation  # and so does the code lookup


def test_a_page_inside_a_superpage_flushes_everything(cpu: SystemCpu) -> None:
    runtime = cpu.cpu
    runtime._add_large_page(LINEAR_MAP, MEGA2)
    runtime._add_large_page(KERNEL, MEGA2)
    _fill(cpu, FIXMAP)
    generation = _generation(cpu)
    runtime.tlb_flush_page(KERNEL + 0x5000)
    assert not _cached(cpu, FIXMAP)
    assert _generation(cpu) != generation
    assert runtime._large_pages == []  # (a full flush forgets them)


def test_many_scattered_superpages_collapse_into_one_range(cpu: SystemCpu) -> None:
    runtime = cpu.cpu
    for i in range(9):  # nine superpages 4 GiB apart: more ranges than kept
        runtime._add_large_page(LINEAR_MAP + (i << 32), MEGA2)
    assert len(runtime._large_pages) == 1
    base, mask = runtime._large_pages[0]
    assert all((LINEAR_MAP + (i << 32)) & mask == base for i in range(9))


def test_the_walker_reports_superpages(cpu: SystemCpu) -> None:
    """(The fill path records them: a 2 MiB leaf read through the page walk.)"""
    from llvmtcg.frontends.riscv.priv.state import Priv
    from llvmtcg.frontends.riscv.system import hart_of, sync_flags
    memory = cpu.cpu.memory
    root, l1 = RAM + 0x100000, RAM + 0x101000

    def w64(addr: int, value: int) -> None:
        memory.write(addr, value.to_bytes(8, "little"), check=None)
    w64(root + ((KERNEL >> 30) & 0x1FF) * 8, ((l1 >> 12) << 10) | 1)
    w64(l1 + ((KERNEL >> 21) & 0x1FF) * 8, ((RAM >> 12) << 10) | 0xCF)  # 2 MiB leaf
    csr = hart_of(cpu.state).csr
    csr.write(0x3B0, (1 << 54) - 1, Priv.M)  # PMP: everything for S
    csr.write(0x3A0, 0x1F, Priv.M)
    csr.write(0x180, (8 << 60) | (root >> 12), Priv.M)
    csr.priv = Priv.S
    sync_flags(cpu.state, csr)
    cpu.cpu.softmmu.fill(KERNEL + 0x3000, Access.READ, 1)
    assert cpu.cpu._large_pages == [(KERNEL, ~(MEGA2 - 1))]
