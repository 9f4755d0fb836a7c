"""The embedding API's inline instrumentation, as the caller sees it: register
predicates for conditional hooks (:class:`Reg`) and the comparison log
(:class:`CmpLog`). What the translator emits for them is in ``instrument.py``."""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass

from llvmtcg.emulator.instrument import CMPLOG_ENTRY, CMPLOG_FIELD, CMPLOG_HEAD_FIELD, CONDITIONS
from llvmtcg.ir.types import Cond
from llvmtcg.runtime.cpu_state import CpuState


@dataclass(frozen=True, slots=True)
class Predicate:
    """``register cond value``, compared unsigned at the register's width (what
    ``Reg("a0") == 5`` makes); see :meth:`Emulator.hook_add`'s ``when``."""

    register: enum.IntEnum | int | str
    cond: Cond
    value: int


class Reg:
    """A guest register in a hook predicate: ``Reg("a0") == 5``, ``Reg("sp") < 0x8000``
    (unsigned comparisons: ``==, !=, <, <=, >, >=``).

    Args:
        register: a name, enum member or number, as :meth:`Emulator.reg_read` takes.
    """

    __slots__ = ("register",)
    __hash__ = None  # type: ignore[assignment] - == makes a Predicate

    def __init__(self, register: enum.IntEnum | int | str) -> None:
        self.register = register

    def __eq__(self, value: object) -> Predicate:  # type: ignore[override]
        return Predicate(self.register, Cond.EQ, _int(value))

    def __ne__(self, value: object) -> Predicate:  # type: ignore[override]
        return Predicate(self.register, Cond.NE, _int(value))

    def __lt__(self, value: int) -> Predicate:
        return Predicate(self.register, Cond.LTU, _int(value))

    def __le__(self, value: int) -> Predicate:
        return Predicate(self.register, Cond.LEU, _int(value))

    def __gt__(self, value: int) -> Predicate:
        return Predicate(self.register, Cond.GTU, _int(value))

    def __ge__(self, value: int) -> Predicate:
        return Predicate(self.register, Cond.GEU, _int(value))

    def __repr__(self) -> str:
        return f"Reg({self.register!r})"


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"a register is compared with an int, not {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class CmpRecord:
    """One logged comparison: a conditional branch or a set-on-compare of guest code.

    Attributes:
        pc: the guest instruction.
        cond: the condition the code tests (``"eq"``, ``"ne"``, ``"lt"``, ``"ltu"``, …;
            signed unless ``u``), as the IR has it.
        bits: the operands' width (32 or 64).
        a, b: the operands, unsigned.
    """

    pc: int
    cond: str
    bits: int
    a: int
    b: int


class CmpLog:
    """A ring buffer of :class:`CmpRecord`, written by translated code
    (:meth:`Emulator.cmplog`): the newest ``capacity`` records are kept.

    Args:
        state: the CPU state whose fields point at the ring and count the records.
        capacity: records kept; a power of two.
    """

    def __init__(self, state: CpuState, capacity: int) -> None:
        self.capacity = capacity
        self._state = state
        self._ring = (ctypes.c_uint64 * (capacity * CMPLOG_ENTRY // 8))()
        state.set(CMPLOG_FIELD, ctypes.addressof(self._ring))
        state.set(CMPLOG_HEAD_FIELD, 0)

    @property
    def total(self) -> int:
        """Records written since the last :meth:`clear` (older ones are overwritten)."""
        return self._state.get(CMPLOG_HEAD_FIELD)

    def records(self) -> list[CmpRecord]:
        """The kept records, oldest first."""
        total, ring, words = self.total, self._ring, CMPLOG_ENTRY // 8
        out = []
        for n in range(max(0, total - self.capacity), total):
            i = (n % self.capacity) * words
            info = ring[i + 3]
            out.append(CmpRecord(ring[i], CONDITIONS[info & 0xFF].value, info >> 8,
                                 ring[i + 1], ring[i + 2]))
        return out

    def clear(self) -> None:
        """Forget every record."""
        self._state.set(CMPLOG_HEAD_FIELD, 0)
