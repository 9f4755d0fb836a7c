"""Differential tests: random instruction sequences under llvmtcg and qemu-riscv64.

The final register files (every sequence) and the scratch memory must match exactly.
A failure names the seed, the sequence and the first differing register.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.riscv import diffgen
from tests.riscv.harness import DATA, MARCH, needs_cross, run_ok

GCC = "riscv64-linux-gnu-gcc"
QEMU = "qemu-riscv64"

pytestmark = [needs_cross, pytest.mark.skipif(shutil.which(QEMU) is None,
                                              reason="qemu-riscv64 not installed (make setup)")]


def qemu_output(case: diffgen.Case, tmp: Path) -> bytes:
    src, exe = tmp / f"case{case.seed}.S", tmp / f"case{case.seed}"
    src.write_text(diffgen.elf_source(case))
    subprocess.run([GCC, "-nostdlib", "-static", f"-march={MARCH}", "-o", str(exe), str(src)],
                   check=True, capture_output=True)
    result = subprocess.run([QEMU, str(exe)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def our_output(case: diffgen.Case, **kwargs) -> bytes:
    cpu = run_ok(case.body(), regs={diffgen.BASE: DATA}, data=case.scratch(), **kwargs)
    mem = cpu.memory.read(DATA + diffgen.MEM_OFF, diffgen.MEM_SIZE)
    return mem + cpu.memory.read(DATA + diffgen.OUT_OFF, case.out_size())


def explain(case: diffgen.Case, ours: bytes, theirs: bytes) -> str:
    mem = diffgen.MEM_SIZE
    if ours[:mem] != theirs[:mem]:
        at = next(i for i in range(mem) if ours[i] != theirs[i])
        return f"seed {case.seed}: scratch memory differs first at offset {at:#x}"
    slots = [(f"x{r}", 8 * r) for r in diffgen.USABLE]
    if case.fp:
        slots += [("fcsr", 0)] + [(f"f{r}", diffgen.FP_OFF + 8 * r) for r in range(32)]
    for i, seq in enumerate(case.sequences):
        base = mem + i * diffgen.SEQ_STRIDE
        for reg, off in slots:
            a = int.from_bytes(ours[base + off:base + off + 8], "little")
            b = int.from_bytes(theirs[base + off:base + off + 8], "little")
            if a != b:
                init = "\n".join(f"  x{n} = {case.inits[i][n]:#x}" for n in diffgen.USABLE)
                if case.fp:
                    init += f"\n  frm = {case.inits[i][0]}\n" + "\n".join(
                        f"  f{n} = {case.inits[i][32 + n]:#x}" for n in range(32))
                return (f"seed {case.seed}, sequence {i}: {reg} is {a:#x}, qemu says {b:#x}\n"
                        f"sequence:\n  " + "\n  ".join(seq) + f"\ninitial registers:\n{init}")
    return f"seed {case.seed}: outputs differ"


def check(case: diffgen.Case, tmp: Path, **kwargs) -> None:
    theirs = qemu_output(case, tmp)
    ours = our_output(case, **kwargs)
    assert len(theirs) == len(ours)
    assert ours == theirs, explain(case, ours, theirs)


@pytest.mark.parametrize("seed", range(16))
def test_random_integer_sequences_match_qemu(seed: int, tmp_path: Path) -> None:
    check(diffgen.make_case(seed), tmp_path)


@pytest.mark.parametrize("seed", range(1000, 1024))
def test_random_fp_sequences_match_qemu(seed: int, tmp_path: Path) -> None:
    check(diffgen.make_case(seed, fp=True), tmp_path)


@pytest.mark.parametrize("seed", [3, 11, 1004])
def test_random_sequences_match_qemu_in_hot_regions(seed: int, tmp_path: Path) -> None:
    """The same, with every block promoted to an optimised region the first time it
    runs (regions of one block and its already executed successors)."""
    check(diffgen.make_case(seed, fp=seed >= 1000), tmp_path, hot_threshold=1)
