"""A block's IR (a list of ops) and its stable text form."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from llvmtcg.ir.ops import OPS, OpDef, OpFlag
from llvmtcg.ir.types import IRType, Temp


class Op(NamedTuple):
    """One IR operation: an immutable record. (A named tuple rather than a frozen
    dataclass: frontends build a few per guest instruction, and a frozen dataclass
    costs three times as much to construct.)"""

    name: str
    outputs: tuple[Temp, ...] = ()
    inputs: tuple[Temp, ...] = ()
    args: tuple[object, ...] = ()

    @property
    def definition(self) -> OpDef:
        return OPS[self.name]

    @property
    def type(self) -> IRType | None:
        temps = self.outputs + self.inputs
        return temps[0].type if temps else None

    def __str__(self) -> str:
        if self.name == "insn_start":
            return f" ---- {self.args[0]:#018x}"
        if self.name == "call":
            text = " call " + str(self.args[0])
            operands = [str(t) for t in self.outputs] + ["<-"] + [str(t) for t in self.inputs]
            return text + " " + ",".join(operands)
        name = self.name
        if self.definition.is_float and not self.definition.is_vector:
            name = f"{name}_{_float_suffix(self)}"
        elif self.definition.flags & OpFlag.TYPED and self.type is not None:
            name = f"{name}_{self.type}"
        operands = [str(t) for t in self.outputs + self.inputs]
        operands += [_format_arg(a) for a in self.args]
        return f" {name} {','.join(operands)}".rstrip()


_INT_RESULT = frozenset({"fsetcond", "fclass", "ftoi", "ftou"})
_INT_OPERAND = frozenset({"itof", "utof"})


def _float_suffix(op: Op) -> str:
    """f32/f64 for float temps, i32/i64 for integers; result then operand if they differ
    (fadd_f64, fcvt_f64_f32, ftoi_i64_f32, itof_f32_i32)."""
    out, src = op.outputs[0], op.inputs[0]
    result = ("i" if op.name in _INT_RESULT else "f") + str(out.type.bits)
    operand = ("i" if op.name in _INT_OPERAND else "f") + str(src.type.bits)
    return result if result == operand else f"{result}_{operand}"


def _format_arg(arg: object) -> str:
    if isinstance(arg, enum.Enum):
        return str(arg.name).lower() if isinstance(arg, int) else str(arg)
    if isinstance(arg, bool):
        return str(int(arg))
    if isinstance(arg, int):
        return f"${arg:#x}"
    return str(arg)


@dataclass(slots=True)
class Block:
    """The IR of one translation block, as built by a frontend.

    ``guest_ranges`` lists the guest bytes the block was translated from, as
    (start, end) pairs; writes to them invalidate the block.
    """

    pc: int
    ops: list[Op] = field(default_factory=list)
    locals: list[Temp] = field(default_factory=list)
    n_labels: int = 0
    guest_size: int = 0
    n_insns: int = 0
    name: str = ""
    # The block ends with a call returning to this pc (a hint for hot regions, which
    # keep a call's continuation with the call: see Builder.call_returns_to).
    return_pc: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"tb_{self.pc:x}"

    @property
    def guest_ranges(self) -> list[tuple[int, int]]:
        return [(self.pc, self.pc + max(self.guest_size, 1))]

    def direct_targets(self) -> list[int]:
        """Destinations of goto_tb exits, for translating regions ahead of time."""
        return [op.args[1] for op in self.ops if op.name == "goto_tb"]

    def __str__(self) -> str:
        return f"IN {self.name} pc={self.pc:#x}\n" + "\n".join(str(op) for op in self.ops) + "\n"
