"""Run hand-assembled RISC-V snippets on the translator (no ELF, no syscalls).

The snippet is assembled with the Debian cross assembler at test time, placed at CODE,
and run until it executes ``ebreak`` (appended automatically).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from llvmtcg.frontends.riscv.arch import Riscv64Arch
from llvmtcg.frontends.riscv.cpu import Cause, CpuModel
from llvmtcg.ir import ExitReason
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.exits import CpuExit
from llvmtcg.runtime.softmmu import GuestMemory, Perm

CODE = 0x10000
DATA = 0x80000
DATA_SIZE = 0x10000
AS = "riscv64-linux-gnu-as"
LD = "riscv64-linux-gnu-ld"
OBJCOPY = "riscv64-linux-gnu-objcopy"
MARCH = "rv64gc_zba_zbb_zbs"

needs_cross = pytest.mark.skipif(shutil.which(AS) is None,
                                 reason="riscv64-linux-gnu binutils not installed (make setup)")


@functools.cache
def assemble(source: str, march: str = MARCH) -> bytes:
    """Flat binary of ``source`` followed by ebreak, linked to run at CODE."""
    with tempfile.TemporaryDirectory() as tmp:
        src, obj, exe = Path(tmp, "s.S"), Path(tmp, "s.o"), Path(tmp, "s.elf")
        binary = Path(tmp, "s.bin")
        src.write_text(f".option norelax\n.text\n{source}\nebreak\n")
        subprocess.run([AS, f"-march={march}", "-o", str(obj), str(src)], check=True,
                       capture_output=True)
        # Linking applies pc-relative relocations (la, call) for the load address.
        subprocess.run([LD, f"-Ttext={CODE:#x}", "-e", f"{CODE:#x}", "-o", str(exe), str(obj)],
                       check=True, capture_output=True)
        subprocess.run([OBJCOPY, "-O", "binary", "-j", ".text", str(exe), str(binary)],
                       check=True)
        return binary.read_bytes()


@functools.lru_cache(maxsize=4)
def _shared_cpu(model: CpuModel, optimize: int = 0, hot_threshold: int | None = None) -> Cpu:
    memory = GuestMemory(1 << 24)
    memory.map(CODE, 0x40000, Perm.RX)
    memory.map(DATA, DATA_SIZE, Perm.RW)
    tiering = {} if hot_threshold is None else {"hot_threshold": hot_threshold,
                                                "tier_sync": True}
    return Cpu(Riscv64Arch(model), memory, options=RuntimeOptions(optimize=optimize, **tiering))


def run(source: str, regs: dict[int, int] | None = None, data: bytes = b"",
        model: CpuModel | None = None, march: str = MARCH,
        optimize: int = 0, hot_threshold: int | None = None) -> tuple[Cpu, CpuExit]:
    """Assemble and run a snippet; registers x1..x31 from ``regs``; DATA filled from
    ``data``; ``optimize`` picks the JIT tier; ``hot_threshold`` (with synchronous
    compiles) makes code that runs that often move to optimised regions. Returns the
    CPU and its exit (BREAKPOINT at the appended ebreak)."""
    cpu = _shared_cpu(model or CpuModel(), optimize, hot_threshold)
    code = assemble(source, march)
    cpu.flush()
    cpu.memory.protect(CODE, 0x40000, Perm.RWX)
    cpu.memory.write(CODE, code)
    cpu.memory.protect(CODE, 0x40000, Perm.RX)
    cpu.memory.write(DATA, data.ljust(DATA_SIZE, b"\0"))
    state = cpu.state
    for i in range(32):
        state.set("x", 0, i)
        state.set("f", 0, i)
    for reg, value in (regs or {}).items():
        state.set("x", value, reg)
    cpu.arch.reset(state)
    state.set("insn_count", 0)
    cpu.pc = CODE
    return cpu, cpu.run()


def run_ok(source: str, **kwargs) -> Cpu:
    """Run a snippet that must reach its final ebreak."""
    cpu, exit_ = run(source, **kwargs)
    assert exit_.reason is ExitReason.EXCEPTION and exit_.exception_index == Cause.BREAKPOINT, \
        f"snippet stopped with {exit_}"
    return cpu


def x(cpu: Cpu, reg: int) -> int:
    return cpu.state.get("x", reg)


def xs(cpu: Cpu, reg: int) -> int:
    return cpu.state.get_signed("x", reg)
