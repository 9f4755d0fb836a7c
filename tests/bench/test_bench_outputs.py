"""The benchmarks' correctness (not their speed): with small inputs, every program prints
the same output natively, under qemu-riscv64 and under llvmtcg (empty and warm cache).
bench/run itself exits non-zero on any difference."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(any(shutil.which(t) is None for t in
                        ("gcc", "riscv64-linux-gnu-gcc", "qemu-riscv64")),
                    reason="needs gcc, riscv64-linux-gnu-gcc and qemu-riscv64 (make setup)")
def test_benchmarks_agree_with_native_and_qemu() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run"), "--small",
                             "--runs", "1"], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    names = sorted(p.stem for p in (ROOT / "bench" / "programs").glob("*.c"))
    printed = [line.split()[0] for line in result.stdout.splitlines()[1:-1]]
    assert printed == names
