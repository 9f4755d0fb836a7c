"""llvmtcg: guest machine code -> TCG-like IR -> LLVM IR -> native code.

The embedding API (``Emulator``, ``Perm``, ``Hook``, ``EmulatorError``, …) and the
per-architecture register enums (``llvmtcg.riscv64``) are imported on first use, so
``import llvmtcg.ir`` does not load the runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llvmtcg.emulator import (  # noqa: F401 - the names __getattr__ provides
        Context,
        Emulator,
        EmulatorError,
        ErrorKind,
        Hook,
        MemAccess,
        Perm,
        Reg,
    )

_API_NAMES = frozenset({"Context", "Emulator", "EmulatorError", "ErrorKind", "Hook",
                        "MemAccess", "Perm", "Reg"})
_ARCH_MODULES = frozenset({"riscv64"})

__all__ = ["Context", "Emulator", "EmulatorError", "ErrorKind", "Hook", "MemAccess", "Perm",
           "Reg", "riscv64"]


def __getattr__(name: str) -> Any:
    if name in _API_NAMES:
        return getattr(importlib.import_module("llvmtcg.emulator"), name)
    if name in _ARCH_MODULES:
        return importlib.import_module(f"llvmtcg.{name}")
    raise AttributeError(f"module 'llvmtcg' has no attribute {name!r}")
