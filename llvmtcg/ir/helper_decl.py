"""Helper declarations: signature and effect flags (QEMU's DEF_HELPER_FLAGS).

The lowering turns the flags into LLVM function attributes, so LLVM keeps guest
registers in SSA across calls that cannot touch the CPU state, and into a status
check after helpers that can raise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from llvmtcg.ir.types import IRType


class HelperFlag(enum.Flag):
    """Effects of a helper.

    The CPU state is ``noalias`` in every block, so LLVM assumes that a helper which
    is not handed the CPU pointer (no TAKES_CPU) neither reads nor writes it: guest
    registers stay in SSA across such calls. Guest memory is not ``noalias``: any
    helper without NO_SIDE_EFFECTS is assumed to read and write it.
    """

    NONE = 0
    TAKES_CPU = enum.auto()  # the CPU-state pointer is passed as a hidden first argument
    NO_WRITE_GLOBALS = enum.auto()  # only reads the CPU state it is handed
    NO_SIDE_EFFECTS = enum.auto()  # a pure function of its arguments
    MAY_RAISE = enum.auto()  # may raise a guest exception or a Python error: check after


@dataclass(frozen=True, slots=True)
class HelperDecl:
    name: str
    ret: IRType | None
    args: tuple[IRType, ...]
    flags: HelperFlag = HelperFlag.NONE

    def __post_init__(self) -> None:
        if self.flags & HelperFlag.MAY_RAISE and not self.flags & HelperFlag.TAKES_CPU:
            # The status word lives in the CPU state; LLVM must see the helper may write it.
            raise ValueError(f"helper {self.name}: MAY_RAISE requires TAKES_CPU")
        if self.flags & HelperFlag.NO_SIDE_EFFECTS and self.flags & (
                HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE):
            raise ValueError(f"helper {self.name}: NO_SIDE_EFFECTS excludes CPU access")

    @property
    def symbol(self) -> str:
        return f"helper_{self.name}"

    def llvm_attributes(self) -> str:
        if self.flags & HelperFlag.NO_SIDE_EFFECTS:
            return "memory(none) nounwind willreturn"
        return "nounwind"

    def cpu_param_attributes(self) -> str:
        return "readonly" if self.flags & HelperFlag.NO_WRITE_GLOBALS else ""
