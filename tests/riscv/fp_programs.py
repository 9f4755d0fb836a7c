"""F/D test programs: one static riscv64 ELF runs many instruction kernels over input
tables and writes results and fflags to stdout. The same ELF runs under qemu-riscv64
and under our JIT (a two-syscall loader below), so the comparison is byte for byte.

A kernel executes one instruction (fixed rounding mode, or dyn with frm from the table)
for every row of its input table: three 64-bit operands (raw f-register patterns, so
unboxed singles can be tested, or integers), and frm. It records the destination
(f registers as raw 64 bits, boxing included) and fflags, cleared before each row.
"""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llvmtcg.frontends.riscv.arch import Riscv64Arch
from llvmtcg.frontends.riscv.cpu import CpuModel
from llvmtcg.ir import ExitReason
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.softmmu import GuestMemory, Perm

GCC = "riscv64-linux-gnu-gcc"
QEMU = "qemu-riscv64"
RM_NAMES = ("rne", "rtz", "rdn", "rup", "rmm", "", "", "dyn")
ROW_IN = 32  # a, b, c, frm
ROW_OUT = 16  # result, fflags


@dataclass(frozen=True, slots=True)
class InsnSpec:
    """How to run one instruction: operand kinds ('f' float register, 'x' integer),
    result kind, whether it has an rm field, and for instructions the assembler will
    not give an rm, the raw .insn r fields (funct7, rs2)."""

    mnemonic: str
    srcs: str
    dst: str
    has_rm: bool = True
    raw: tuple[int, int] | None = None

    @property
    def fmt_bits(self) -> int:
        """Width of the instruction's float format (of the operands, or the result)."""
        suffix = self.mnemonic.split(".")[-1] if "f" in self.srcs else self.mnemonic.split(".")[1]
        return 32 if suffix in ("s", "w") else 64

    def text(self, rm: int) -> str:
        """The instruction with rd f4/a6, sources f1-f3 / a3-a5."""
        regs = [("f" if k == "f" else "a")
                + str((1 if k == "f" else 3) + i) for i, k in enumerate(self.srcs)]
        rd = "f4" if self.dst == "f" else "a6"
        if self.raw is not None:
            funct7, rs2 = self.raw
            return f".insn r 0x53, {rm}, {funct7:#x}, {rd}, {regs[0]}, x{rs2}"
        operands = ", ".join([rd, *regs])
        if self.has_rm:
            operands += f", {RM_NAMES[rm]}"
        return f"{self.mnemonic} {operands}"


@dataclass
class Kernel:
    """One instruction in one rounding mode (rm field) over rows (a, b, c, frm)."""

    spec: InsnSpec
    rm: int
    rows: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.spec.mnemonic} rm={RM_NAMES[self.rm] or self.rm}"

    def source(self, index: int) -> str:
        spec = self.spec
        load = []
        for i, kind in enumerate(spec.srcs):
            if kind == "f":
                load += [f"  ld t0, {8 * i}(a0)", f"  fmv.d.x f{1 + i}, t0"]
            else:
                load += [f"  ld a{3 + i}, {8 * i}(a0)"]
        save = "  fmv.x.d t3, f4" if spec.dst == "f" else "  mv t3, a6"
        # Only dyn kernels need frm per row; fflags is read and cleared in one csrrw.
        set_frm = ["  ld t0, 24(a0)", "  fsrm t0"] if self.rm == 7 else []
        return "\n".join([
            f"kernel_{index}:",
            "  fsflags zero",
            "1:",
            *load,
            *set_frm,
            "  fmv.d.x f4, zero" if spec.dst == "f" else "  li a6, 0",
            f"  {spec.text(self.rm)}",
            "  csrrw t2, fflags, zero",
            save,
            "  sd t3, 0(a1)",
            "  sd t2, 8(a1)",
            f"  addi a0, a0, {ROW_IN}",
            f"  addi a1, a1, {ROW_OUT}",
            "  addi a2, a2, -1",
            "  bnez a2, 1b",
            "  ret",
        ])


def build(kernels: Sequence[Kernel], workdir: Path) -> Path:
    """A static ELF running every kernel, then write(1, results) and exit(0)."""
    table = bytearray()
    start, body = [".globl _start", "_start:"], []
    for i, k in enumerate(kernels):
        start += [f"  la a0, in_{i}", f"  la a1, out_{i}", f"  li a2, {len(k.rows)}",
                  f"  call kernel_{i}"]
        body.append(k.source(i))
        table += b"".join(struct.pack("<4Q", *(v & (2**64 - 1) for v in row)) for row in k.rows)
    total_out = sum(len(k.rows) for k in kernels) * ROW_OUT
    start += ["  li a0, 1", "  la a1, out_0", f"  li a2, {total_out}", "  li a7, 64", "  ecall",
              "  li a0, 0", "  li a7, 93", "  ecall"]
    data, bss, offset = [".section .data", ".balign 8"], [".section .bss", ".balign 8"], 0
    for i, k in enumerate(kernels):
        size = len(k.rows) * ROW_IN
        data.append(f'in_{i}: .incbin "table.bin", {offset}, {size}')
        bss.append(f"out_{i}: .skip {len(k.rows) * ROW_OUT}")
        offset += size
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "table.bin").write_bytes(bytes(table))
    source = "\n".join([".option norelax", ".text", *start, *body, *data, *bss]) + "\n"
    (workdir / "prog.S").write_text(source)
    elf = workdir / "prog"
    subprocess.run([GCC, "-nostdlib", "-static", "-march=rv64gc", "-mabi=lp64d",
                    "-Wl,--no-relax", "-o", str(elf), "prog.S"], cwd=workdir, check=True,
                   capture_output=True)
    return elf


def have_tools() -> bool:
    return shutil.which(GCC) is not None and shutil.which(QEMU) is not None


def run_qemu(elf: Path) -> bytes:
    result = subprocess.run([QEMU, str(elf)], capture_output=True, check=True, timeout=120)
    return result.stdout


def make_jit_cpu(optimize: int = 0) -> Cpu:
    return Cpu(Riscv64Arch(CpuModel()), GuestMemory(1 << 32),
               options=RuntimeOptions(optimize=optimize))


_jit_cpu = functools.cache(make_jit_cpu)


def run_jit(elf: Path, optimize: int = 0, cpu: Cpu | None = None) -> bytes:
    """Load the static ELF into a fresh address space and run it on our JIT (tier
    ``optimize``, or on ``cpu``); the only system calls it makes are write and exit."""
    from elftools.elf.elffile import ELFFile

    cpu = cpu or _jit_cpu(optimize)
    memory = cpu.memory
    for region in list(memory.regions()):
        memory.unmap(region.start, region.end - region.start)
    cpu.flush()
    with open(elf, "rb") as f:
        image = ELFFile(f)
        entry = image.header.e_entry
        for seg in image.iter_segments():
            if seg["p_type"] != "PT_LOAD":
                continue
            start = seg["p_vaddr"] & ~0xFFF
            end = (seg["p_vaddr"] + seg["p_memsz"] + 0xFFF) & ~0xFFF
            memory.map(start, end - start, Perm.RWX)
            memory.write(seg["p_vaddr"], seg.data(), check=None)
            flags = seg["p_flags"]
            perms = (Perm.R if flags & 4 else 0) | (Perm.W if flags & 2 else 0) | (
                Perm.X if flags & 1 else 0)
            memory.protect(start, end - start, perms)
    state = cpu.state
    for i in range(32):
        state.set("x", 0, i)
        state.set("f", 0, i)
    cpu.arch.reset(state)
    cpu.pc = entry
    out = bytearray()
    while True:
        exit_ = cpu.run()
        if exit_.reason is not ExitReason.SYSCALL:
            raise AssertionError(f"test program stopped with {exit_}")
        number = state.get("x", 17)
        a0, a1, a2 = (state.get("x", r) for r in (10, 11, 12))
        cpu.pc = exit_.pc + 4
        if number == 64:
            out += memory.read(a1, a2)
            state.set("x", a2, 10)
        elif number == 93:
            return bytes(out)
        else:
            raise AssertionError(f"unexpected syscall {number}")


def split_results(kernels: Sequence[Kernel], output: bytes) -> list[list[tuple[int, int]]]:
    """Per kernel, per row: (result, fflags)."""
    results, offset = [], 0
    for k in kernels:
        rows = []
        for _ in k.rows:
            rows.append(struct.unpack_from("<2Q", output, offset))
            offset += ROW_OUT
        results.append(rows)
    if offset != len(output):
        raise AssertionError(f"program wrote {len(output)} bytes, expected {offset}")
    return results
