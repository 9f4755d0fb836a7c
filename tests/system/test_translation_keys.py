"""Translation keys in system mode: blocks by (pc, flags, physical pc), the jump cache
compares flags, and code pages are physical."""

from __future__ import annotations

from llvmtcg.frontends.riscv.priv.csr import Csr
from llvmtcg.frontends.riscv.priv.state import FsState, Mstatus, Priv, set_field, tb_flags
from llvmtcg.frontends.riscv.system import Riscv64SystemArch
from llvmtcg.ir import cpu_layout as abi
from llvmtcg.runtime.softmmu import GuestMemory
from llvmtcg.system import SystemCpu

RAM = 0x8000_0000
ADDI_A0_1, JALR_RA = 0x00100513, 0x00008067  # addi a0, zero, 1; ret


def make_cpu() -> SystemCpu:
    memory = GuestMemory(1 << 32)
    memory.map(RAM, 0x10000)
    code = ADDI_A0_1.to_bytes(4, "little") + JALR_RA.to_bytes(4, "little")
    memory.write(RAM, code, check=None)
    cpu = SystemCpu(Riscv64SystemArch(), memory)
    cpu.reset(RAM)
    csr = cpu.state.arch_state.csr  # PMP: S and U may access everything
    csr.write(Csr.PMPADDR0, (1 << 64) - 1)
    csr.write(Csr.PMPCFG0, 0x1F)
    return cpu


def test_blocks_are_keyed_by_pc_and_flags() -> None:
    cpu = make_cpu()
    tbs = cpu.cpu.tbs
    m_flags = tb_flags(Priv.M, 0, 0)
    s_flags = tb_flags(Priv.S, set_field(0, Mstatus.FS, FsState.DIRTY), 0)
    assert cpu.state.tb_flags == m_flags  # published by reset
    in_m = tbs.get(RAM, m_flags)
    in_s = tbs.get(RAM, s_flags)
    assert in_m is not in_s and (in_m.flags, in_s.flags) == (m_flags, s_flags)
    assert tbs.lookup(RAM, m_flags) is in_m and tbs.lookup(RAM, s_flags) is in_s
    assert in_m.phys_pc == RAM and in_m.pages() == {RAM}
    # The jump cache hits only for the flags it was filled with.
    tbs.jmp_cache_set(in_s)
    i = abi.jmp_cache_index(RAM) * (abi.JMP_CACHE_ENTRY_SIZE // 8)
    assert list(tbs.jmp_cache[i:i + 3]) == [RAM, in_s.entry, s_flags]
    # Invalidating one variant leaves the other.
    tbs.invalidate(in_s)
    assert tbs.lookup(RAM, s_flags) is None and tbs.lookup(RAM, m_flags) is in_m
    assert tbs.jmp_cache[i] == abi.JMP_CACHE_INVALID_PC
    # A store to the physical page invalidates what is left.
    assert tbs.invalidate_range(RAM + 4, RAM + 8) == 1
    assert tbs.lookup(RAM, m_flags) is None and not tbs.by_pc
    cpu.close()


def test_tlb_flush_empties_the_jump_cache() -> None:
    cpu = make_cpu()
    tbs = cpu.cpu.tbs
    tbs.jmp_cache_set(tbs.get(RAM, cpu.state.tb_flags))
    cpu.cpu.tlb_flush()
    i = abi.jmp_cache_index(RAM) * (abi.JMP_CACHE_ENTRY_SIZE // 8)
    assert tbs.jmp_cache[i] == abi.JMP_CACHE_INVALID_PC
    cpu.close()


def test_goto_tb_stays_on_the_block_page_under_paging() -> None:
    """QEMU's translator_use_goto_tb: with fetches translated, a jump to another page
    is an indirect exit (looked up by pc and flags), not a chainable one."""
    arch = Riscv64SystemArch()
    jal_next_page = 0x0000106F  # jal zero, +0x1000
    code = jal_next_page.to_bytes(4, "little")

    def fetch(addr: int, size: int) -> bytes:
        return code[addr - 0x1000:addr - 0x1000 + size]

    paging = tb_flags(Priv.S, 0, 8 << 60)
    bare = tb_flags(Priv.S, 0, 0)
    with_paging = arch.translate(0x1000, paging, fetch)
    without = arch.translate(0x1000, bare, fetch)
    assert with_paging.direct_targets() == [] and "lookup_and_goto_ptr" in str(with_paging)
    assert without.direct_targets() == [0x2000]
