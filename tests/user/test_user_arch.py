"""User mode's per-architecture ABI (llvmtcg.user.arch) and the generic process built on
it, without a cross compiler: a hand-made ELF of two ebreaks."""

from __future__ import annotations

import signal
import struct

import pytest

from llvmtcg.arch import CpuModelError
from llvmtcg.frontends.riscv.cpu import LAYOUT, Cause
from llvmtcg.log import Log
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.user.arch import BadSignalFrame, UnknownUserArchError, user_arch, user_arch_names
from llvmtcg.user.elf import ElfError, is_guest_elf, parse_elf
from llvmtcg.user.guest import GuestKilled, GuestProcess
from llvmtcg.user.process import Process, UserConfig

ENTRY = 0x10078


def _ebreak_elf(machine: int = 243, elf_class: int = 2) -> bytes:
    """A static riscv64 ET_EXEC whose entry is ``ebreak``."""
    header = bytearray(64)
    header[:7] = bytes([0x7F, *b"ELF", elf_class, 1, 1])
    struct.pack_into("<HHIQQQIHHHHHH", header, 16, 2, machine, 1, ENTRY, 64, 0, 0, 64, 56,
                     1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x10000, 0x10000, 0x80, 0x1000, 0x1000)
    return bytes(header) + phdr + b"\x73\x00\x10\x00" * 2


def test_registry() -> None:
    assert user_arch_names() == ["aarch64", "riscv64"]
    riscv = user_arch("riscv64")
    assert riscv.name == "riscv64" and riscv.platform == "riscv64"
    assert riscv.syscall_insn_length == 4
    with pytest.raises(UnknownUserArchError) as info:
        user_arch("sparc64")
    assert str(info.value) == ("user mode does not run sparc64 programs "
                               "(it runs: aarch64, riscv64)")


def test_cpu_models() -> None:
    riscv = user_arch("riscv64")
    assert riscv.make_arch().model.name == "rv64"
    arch = riscv.make_arch("rv64,c=off")
    assert not arch.model.has("c") and riscv.hwcap(arch) & (1 << 2) == 0
    assert riscv.hwcap(riscv.make_arch()) & (1 << 2)  # 'c'
    with pytest.raises(CpuModelError, match="unknown CPU model 'rv32'"):
        riscv.make_arch("rv32")
    assert "zba" in riscv.cpu_help()


def test_syscall_registers() -> None:
    riscv, state = user_arch("riscv64"), CpuState(LAYOUT)
    for i in range(32):
        state.set("x", 100 + i, i)
    assert riscv.syscall_number(state) == 117  # a7
    assert riscv.syscall_args(state) == (110, 111, 112, 113, 114, 115)  # a0-a5
    riscv.set_syscall_result(state, -2)
    assert state.get_signed("x", 10) == -2


def test_exception_signals() -> None:
    riscv, state = user_arch("riscv64"), CpuState(LAYOUT)
    state.set("badinsn", 0x0000_0000)
    assert riscv.exception_signal(state, Cause.ILLEGAL_INSN) == \
        (signal.SIGILL, "illegal instruction 0x0000")
    assert riscv.exception_signal(state, Cause.BREAKPOINT) == \
        (signal.SIGTRAP, "breakpoint (ebreak)")
    assert riscv.exception_signal(state, Cause.INSN_ADDR_MISALIGNED)[0] == signal.SIGBUS
    assert riscv.exception_signal(state, Cause.LOAD_PAGE_FAULT) is None


def test_foreign_elfs_are_not_guest_programs() -> None:
    assert is_guest_elf(_ebreak_elf())
    assert not is_guest_elf(_ebreak_elf(machine=62))  # x86-64
    assert not is_guest_elf(_ebreak_elf(elf_class=1))  # 32-bit
    assert not is_guest_elf(b"#!/bin/sh\n")
    with pytest.raises(ElfError) as info:
        parse_elf(_ebreak_elf(machine=62), "prog")
    assert str(info.value) == \
        "prog: wrong architecture: a x86-64 ELF (llvmtcg-user runs aarch64, riscv64 programs)"
    with pytest.raises(ElfError, match="machine 4242 ELF"):
        parse_elf(_ebreak_elf(machine=4242), "prog")


def test_the_process_runs_the_program_through_its_arch(tmp_path) -> None:
    path = tmp_path / "ebreak"
    path.write_bytes(_ebreak_elf())
    image = parse_elf(path.read_bytes(), str(path))
    assert image.arch == "riscv64"
    process = Process(UserConfig(code_cache=False), image, [b"ebreak"], [], str(path), Log())
    try:
        assert isinstance(process, GuestProcess)
        assert process.machine == "riscv64"
        state = process.cpu.state
        assert process.arch.reg_read(state, "sp") == process.program.sp
        process.set_thread_pointer(0x1234)
        assert process.arch.reg_read(state, "tp") == 0x1234
        with pytest.raises(GuestKilled) as info:
            process.run()
        assert info.value.sig == signal.SIGTRAP
        assert info.value.detail == f"breakpoint (ebreak), pc {ENTRY:#x}"
    finally:
        process.cpu.close()
        process.memory.close()


def test_riscv64_signal_frame_layout_and_round_trip() -> None:
    """The rt_sigframe at Linux's offsets (siginfo 128, ucontext: uc_stack at 16,
    uc_sigmask at 40, uc_mcontext at 176 = sc_regs then the FP union), and sigreturn
    restores every register from it."""
    riscv = user_arch("riscv64")
    arch = riscv.make_arch()
    state = CpuState(LAYOUT)
    arch.reset(state)
    state.set("pc", 0x1000)
    for i in range(1, 32):
        state.set("x", 0x100 + i, i)
    for i in range(32):
        state.set("f", 0x4000_0000_0000_0000 + i, i)
    arch.reg_write(state, "fcsr", 0x45)  # frm 2, NX|... flags
    info = bytes(range(128))
    frame = riscv.build_signal_frame(arch, state, info, (0x7000, 1, 0x2000), 0xABCD)
    assert len(frame) == riscv.signal_frame_size == 1088
    assert frame[:128] == info
    assert struct.unpack_from("<QQ", frame, 128) == (0, 0)  # uc_flags, uc_link
    assert struct.unpack_from("<QiiQ", frame, 128 + 16) == (0x7000, 1, 0, 0x2000)
    assert struct.unpack_from("<Q", frame, 128 + 40) == (0xABCD,)
    assert struct.unpack_from("<QQ", frame, 128 + 176) == (0x1000, 0x101)  # pc, ra
    assert struct.unpack_from("<Q", frame, 128 + 176 + 256 + 8 * 31) == (
        0x4000_0000_0000_001F,)
    assert struct.unpack_from("<I", frame, 128 + 176 + 256 + 256) == (0x45,)
    riscv.enter_signal_handler(arch, state, 10, 0x8000, 0x2000, 0x3000)
    assert (state.pc, state.get("x", 1), state.get("x", 2), state.get("x", 10),
            state.get("x", 11), state.get("x", 12)) == (0x2000, 0x3000, 0x8000, 10, 0x8000,
                                                         0x8080)
    state.set("f", 0, 5)
    arch.reg_write(state, "fcsr", 0)
    mask, uc_stack = riscv.restore_signal_frame(arch, state, frame)
    assert (mask, uc_stack) == (0xABCD, (0x7000, 1, 0x2000))
    assert state.pc == 0x1000 and state.get("x", 10) == 0x10A and state.get("x", 2) == 0x102
    assert state.get("f", 5) == 0x4000_0000_0000_0005
    assert arch.reg_read(state, "fcsr") == 0x45
    bad = bytearray(frame)
    bad[128 + 176 + 256 + 516] = 1  # Q-state reserved word: the kernel refuses the frame
    with pytest.raises(BadSignalFrame):
        riscv.restore_signal_frame(arch, state, bytes(bad))
    # li a7, 139; ecall
    assert riscv.sigreturn_code == struct.pack("<II", 0x08B00893, 0x00000073)
