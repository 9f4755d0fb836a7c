"""Value types, temps, labels, conditions and MemOp: the atoms the IR is made of."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class IRType(enum.Enum):
    I32 = 32
    I64 = 64
    # A 128-bit vector (an AdvSIMD register): held in LLVM as <2 x i64>; vector ops
    # (ir/ops.py) view it as lanes of their element size. No constants of this type.
    V128 = 128

    # bits, mask and the text are plain attributes of each member (set below): the
    # lowering formats and asks for them tens of thousands of times per second, and
    # enum properties and Enum.__format__ cost several times a plain lookup.
    bits: int
    mask: int
    text: str
    llvm: str  # the LLVM type of a temp's value (text, but <2 x i64> for v128)
    align: int  # the alignment of a CPU-state field of this type (bytes, at most 8)
    consts: dict[int, Temp]  # const() of this type, by value

    def __str__(self) -> str:
        return self.text

    def __format__(self, spec: str) -> str:
        return format(self.text, spec)


for _t in IRType:
    _t.bits = _t.value
    _t.mask = (1 << _t.value) - 1
    _t.text = f"i{_t.value}"
    _t.llvm = _t.text
    _t.align = min(_t.value // 8, 8)
    _t.consts = {}
IRType.V128.text = "v128"
IRType.V128.llvm = "<2 x i64>"
I32 = IRType.I32
I64 = IRType.I64
V128 = IRType.V128


class TempKind(enum.Enum):
    GLOBAL = "global"  # backed by a field of the CPU state
    LOCAL = "local"  # lives for one block (may be assigned several times)
    CONST = "const"


@dataclass(frozen=True, slots=True)
class Temp:
    """A typed IR value. Globals carry their CPU-state offset; constants their value."""

    kind: TempKind
    type: IRType
    name: str
    value: int = 0  # constants: the value, already masked to the type's width
    offset: int = 0  # globals: byte offset in the CPU state
    # What an op's code depends on besides the opcode: width, and whether a constant
    # and then whether one below 2**31 (a 4-byte immediate for x86), as one int (bits
    # * 4 + 0, 1 or 3), derived; the baseline tier keys stencils by it.
    shape: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kind = 0
        if self.kind is TempKind.CONST:
            kind = 3 if self.value < 1 << 31 else 1
        object.__setattr__(self, "shape", self.type.bits * 4 + kind)

    def __str__(self) -> str:
        if self.kind is TempKind.CONST:
            return f"${self.value:#x}"
        return self.name

    @property
    def is_const(self) -> bool:
        return self.kind is TempKind.CONST


_CONST = TempKind.CONST  # (an enum member through its class costs a slow lookup)
_MAX_CACHED_CONSTS = 1 << 15  # per type


def const(type_: IRType, value: int) -> Temp:
    """A constant temp; the value is reduced modulo 2**width (two's complement).

    Constants are values, so equal ones are shared: frontends ask for one per guest
    instruction or so, and a dict lookup costs a quarter of building a frozen Temp."""
    consts = type_.consts  # (a plain attribute: hashing an enum member is slow)
    temp = consts.get(value)
    if temp is None:
        if len(consts) >= _MAX_CACHED_CONSTS:
            consts.clear()  # (bounded: guest immediates and addresses are unbounded)
        temp = consts[value] = Temp(_CONST, type_, "", value & type_.mask)
    return temp


def to_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@dataclass(frozen=True, slots=True)
class Label:
    index: int

    def __str__(self) -> str:
        return f"$L{self.index}"


class Cond(enum.Enum):
    """Comparison conditions (TCG's TCGCond); `u` suffix = unsigned."""

    EQ = "eq"
    NE = "ne"
    LT = "lt"
    GE = "ge"
    LE = "le"
    GT = "gt"
    LTU = "ltu"
    GEU = "geu"
    LEU = "leu"
    GTU = "gtu"

    def __str__(self) -> str:
        return self.value

    def evaluate(self, a: int, b: int, bits: int) -> bool:
        """Reference semantics, used by tests and constant folding."""
        if self in (Cond.LT, Cond.GE, Cond.LE, Cond.GT):
            a, b = to_signed(a, bits), to_signed(b, bits)
        else:
            a, b = a & ((1 << bits) - 1), b & ((1 << bits) - 1)
        return {
            Cond.EQ: a == b, Cond.NE: a != b,
            Cond.LT: a < b, Cond.GE: a >= b, Cond.LE: a <= b, Cond.GT: a > b,
            Cond.LTU: a < b, Cond.GEU: a >= b, Cond.LEU: a <= b, Cond.GTU: a > b,
        }[self]


class RoundingMode(enum.Enum):
    """Rounding direction of a float op (IEEE 754 roundTiesToEven, roundTowardZero,
    roundTowardNegative, roundTowardPositive, roundTiesToAway), or DYN: the host
    environment's current mode, which the run loop sets from the guest's dynamic mode
    (see :class:`llvmtcg.runtime.run_loop.RunLoop`). The declaration order gives the
    ordinals ``fpenv_round`` takes (0 RNE .. 4 RMM)."""

    RNE = "rne"
    RTZ = "rtz"
    RDN = "rdn"
    RUP = "rup"
    RMM = "rmm"
    DYN = "dyn"

    def __str__(self) -> str:
        return self.value


class FCond(enum.Enum):
    """Float comparisons. Quiet ones signal invalid only for a signalling NaN operand,
    signalling ones for any NaN (IEEE 754 compareQuiet* / compareSignaling*). Every
    condition but UNORD is false when an operand is a NaN."""

    EQ = "eq"  # quiet equal
    SEQ = "seq"  # signalling equal
    LT = "lt"  # signalling less
    LE = "le"  # signalling less or equal
    QLT = "qlt"  # quiet less
    QLE = "qle"  # quiet less or equal
    UNORD = "uno"  # quiet unordered

    def __str__(self) -> str:
        return self.value

    @property
    def signaling(self) -> bool:
        return self in (FCond.SEQ, FCond.LT, FCond.LE)


class FFlag(enum.IntFlag):
    """IEEE exception flags, as float ops report them (SoftFloat's encoding, which is
    also RISC-V's fflags layout)."""

    INEXACT = 1
    UNDERFLOW = 2
    OVERFLOW = 4
    DIVBYZERO = 8
    INVALID = 16


class AtomicOp(enum.Enum):
    XCHG = "xchg"
    ADD = "add"
    AND = "and"
    OR = "or"
    XOR = "xor"
    SMIN = "smin"
    SMAX = "smax"
    UMIN = "umin"
    UMAX = "umax"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class MemOp:
    """Size, signedness, endianness and alignment of one guest memory access.

    ``size_log2`` is 0..3 (1, 2, 4, 8 bytes). ``align_log2`` is the required
    alignment (0 = byte aligned, i.e. misaligned accesses are allowed); it may exceed
    the size by one step (16 bytes): the address check of ``atomic_cmpxchg_pair``,
    whose two doublewords are located like one 8-byte access at a 16-byte boundary.
    """

    size_log2: int
    signed: bool = False
    big_endian: bool = False
    align_log2: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.size_log2 <= 3:
            raise ValueError(f"MemOp size_log2 {self.size_log2} out of range 0..3")
        if not 0 <= self.align_log2 <= 4:
            raise ValueError(f"MemOp align_log2 {self.align_log2} out of range 0..4")

    @property
    def size(self) -> int:
        return 1 << self.size_log2

    @property
    def bits(self) -> int:
        return 8 << self.size_log2

    def aligned(self) -> MemOp:
        """The same access with natural alignment required."""
        return MemOp(self.size_log2, self.signed, self.big_endian, self.size_log2)

    def encode(self) -> int:
        """Pack into the small integer passed to slow-path helpers."""
        return (self.size_log2 | (self.signed << 2) | (self.big_endian << 3)
                | (self.align_log2 << 4))

    @classmethod
    def decode(cls, bits: int) -> MemOp:
        return cls(bits & 3, bool(bits & 4), bool(bits & 8), (bits >> 4) & 7)

    def __str__(self) -> str:
        # TCG spelling: [al<N>+]{le,be}{u,s}{b,w,l,q}; bytes have no endianness.
        sign = "s" if self.signed else "u"
        width = "bwlq"[self.size_log2]
        text = f"{sign}{width}" if self.size_log2 == 0 else (
            f"{'be' if self.big_endian else 'le'}{sign}{width}")
        if self.align_log2:
            text = f"al{1 << self.align_log2}+{text}"
        return text


# How atomic_cmpxchg_pair locates its 16 bytes: an 8-byte access 16-byte aligned, so
# the TLB, the page checks and the slow path's probe see a single page.
PAIR_MEMOP = MemOp(3, align_log2=4)

MO_UB = MemOp(0)
MO_SB = MemOp(0, signed=True)
MO_LEUW = MemOp(1)
MO_LESW = MemOp(1, signed=True)
MO_LEUL = MemOp(2)
MO_LESL = MemOp(2, signed=True)
MO_LEUQ = MemOp(3)
