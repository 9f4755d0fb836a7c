"""The IR: typed temps, TCG-style ops, a builder for frontends and the LLVM lowering.

This package is pure Python and never imports llvmlite.binding.
"""

from llvmtcg.ir.block import Block, Op
from llvmtcg.ir.builder import Builder, IRError
from llvmtcg.ir.ops import ExitReason
from llvmtcg.ir.types import (
    I32,
    I64,
    V128,
    AtomicOp,
    Cond,
    FCond,
    FFlag,
    IRType,
    Label,
    MemOp,
    RoundingMode,
    Temp,
    TempKind,
    const,
)

__all__ = [
    "AtomicOp", "Block", "Builder", "Cond", "ExitReason", "FCond", "FFlag", "I32", "I64",
    "IRError", "IRType", "Label", "MemOp", "Op", "RoundingMode", "Temp", "TempKind", "V128",
    "const",
]
