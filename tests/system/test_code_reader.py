"""System mode's code reader (``Cpu.code_reader``): what a translation fetches is
what the softmmu's fetch gives, though it reads a page's bytes a window at a time."""

from __future__ import annotations

import pytest

from llvmtcg.frontends.riscv.priv.csr import Csr
from llvmtcg.frontends.riscv.system import Riscv64SystemArch
from llvmtcg.ir import cpu_layout as abi
from llvmtcg.runtime.exits import GuestFault
from llvmtcg.runtime.softmmu import GuestMemory
from llvmtcg.system import SystemCpu

RAM = 0x8000_0000
SIZE = 0x4000  # (RAM ends here: the page after it is unmapped)


def make_cpu() -> tuple[SystemCpu, GuestMemory]:
    memory = GuestMemory(1 << 32)
    memory.map(RAM, SIZE)
    memory.write(RAM, bytes((i * 7 + (i >> 8)) & 0xFF for i in range(SIZE)), check=None)
    cpu = SystemCpu(Riscv64SystemArch(), memory)
    cpu.reset(RAM)
    csr = cpu.state.arch_state.csr  # PMP: every mode may access everything
    csr.write(Csr.PMPADDR0, (1 << 64) - 1)
    csr.write(Csr.PMPCFG0, 0x1F)
    return cpu, memory


def test_the_reader_gives_the_softmmus_bytes() -> None:
    cpu, _ = make_cpu()
    flags = cpu.state.tb_flags
    page = abi.PAGE_SIZE
    # Instruction-sized fetches in a row (served from one window), across a window's
    # end, at a page's end, across pages, and larger than a window (the install's
    # read of a block's bytes).
    fetches = [(RAM + i, 4) for i in range(0, 200, 2)] + [
        (RAM + page - 4, 4), (RAM + page - 2, 2), (RAM + page - 2, 4),
        (RAM + page + 60, 4), (RAM + 2 * page - 8, 8), (RAM + 100, 300),
        (RAM + 3 * page - 100, 100), (RAM + 10, 2)]
    reader = cpu.cpu.code_reader(flags)
    for addr, size in fetches:
        assert reader(addr, size) == cpu.cpu.fetch(addr, size, flags), (hex(addr), size)
    cpu.close()


def test_a_fetch_the_softmmu_refuses_raises() -> None:
    cpu, _ = make_cpu()
    flags = cpu.state.tb_flags
    reader = cpu.cpu.code_reader(flags)
    assert reader(RAM + SIZE - 4, 4) == cpu.cpu.fetch(RAM + SIZE - 4, 4, flags)
    with pytest.raises(GuestFault):
        reader(RAM + SIZE, 4)  # (unmapped)
    with pytest.raises(GuestFault):
        reader(RAM + SIZE - 2, 4)  # (its last 2 bytes are)
    cpu.close()


def test_each_translation_reads_the_bytes_of_its_time() -> None:
    cpu, memory = make_cpu()
    flags = cpu.state.tb_flags
    before = cpu.cpu.code_reader(flags)
    old = before(RAM + 8, 4)
    memory.write(RAM + 8, b"\x13\x05\x10\x00", check=None)  # (code changed since)
    assert cpu.cpu.code_reader(flags)(RAM + 8, 4) == b"\x13\x05\x10\x00" != old
    cpu.close()
