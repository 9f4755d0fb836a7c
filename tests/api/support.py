"""Running the same scenario on llvmtcg's Emulator and on Unicorn.

A scenario is a function of an engine (``Emulator`` or ``unicorn.Uc``) and a register
resolver (a name -> what that engine's ``reg_read`` takes); it returns what it observed.
The engines share Unicorn's API, hook and permission numbers, so one scenario drives both.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llvmtcg import Emulator

AS = "riscv64-linux-gnu-as"
OBJCOPY = "riscv64-linux-gnu-objcopy"
CODE = 0x10000

needs_cross = pytest.mark.skipif(shutil.which(AS) is None,
                                 reason="riscv64-linux-gnu binutils not installed")
unicorn = pytest.importorskip("unicorn")
riscv_const = pytest.importorskip("unicorn.riscv_const")

Resolve = Callable[[str], Any]
Scenario = Callable[[Any, Resolve], Any]


@functools.cache
def assemble(source: str, march: str = "rv64g") -> bytes:
    """The flat machine code of ``source`` (position independent snippets only)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, obj, binary = Path(tmp, "s.S"), Path(tmp, "s.o"), Path(tmp, "s.bin")
        src.write_text(f".option norelax\n.text\n{source}\n")
        subprocess.run([AS, f"-march={march}", "-o", str(obj), str(src)], check=True,
                       capture_output=True)
        subprocess.run([OBJCOPY, "-O", "binary", "-j", ".text", str(obj), str(binary)],
                       check=True)
        return binary.read_bytes()


def ours() -> tuple[Emulator, Resolve]:
    return Emulator("riscv64"), lambda name: name


def theirs() -> tuple[Any, Resolve]:
    uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64)
    return uc, lambda name: getattr(riscv_const, f"UC_RISCV_REG_{name.upper()}")


def error_of(engine_error: BaseException) -> int:
    """Unicorn's error number of an EmulatorError or UcError."""
    return engine_error.errno  # type: ignore[attr-defined]


def both(scenario: Scenario) -> tuple[Any, Any]:
    """(what the scenario observed on llvmtcg, on Unicorn)."""
    results = []
    for make in (ours, theirs):
        engine, resolve = make()
        results.append(scenario(engine, resolve))
        if isinstance(engine, Emulator):
            engine.close()
    return results[0], results[1]


def run_catching(engine: Any, begin: int, until: int, **kwargs: int) -> int:
    """emu_start, returning 0 or the error number it raised."""
    try:
        engine.emu_start(begin, until, **kwargs)
    except (unicorn.UcError, Exception) as e:  # noqa: BLE001 - both engines' errors
        if not hasattr(e, "errno"):
            raise
        return error_of(e)
    return 0
