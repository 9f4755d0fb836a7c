"""Every arithmetic, logic and control-flow IR op, run as native code.

Blocks are built by hand, lowered to LLVM, JIT-compiled and executed on a real
:class:`Cpu`; register results are compared with a pure-Python reference of the
semantics documented in ``llvmtcg/ir/ops.py``, at edge values.

Inputs and outputs travel through the i64 globals ``r[0]..r[7]``. An i32 kernel
narrows its inputs with ``extr_i64_i32`` (the high halves carry garbage, which must
not leak in) and widens its results with an unsigned ``ext_i32_i64``. One CPU is shared
by the module; each kernel is translated once and then run for many inputs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import pytest

from llvmtcg.ir import I32, I64, Builder, Cond, ExitReason, IRError, IRType, Label, Temp, const
from llvmtcg.ir.lower import Lowering, LoweringError
from tests.core.support import CODE, LAYOUT, HandFrontend, make_cpu, r

WIDTHS = (I32, I64)
N_REGS = 8
HIGH_GARBAGE = 0xA5C3_5A3C_0000_0000  # OR-ed into the high half of i32 kernel inputs
UNWRITTEN = 0xDEAD_BEEF_CAFE_F00D  # preset in output registers


# -- reference semantics -------------------------------------------------------------------

def sx(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def smin(t: IRType) -> int:
    return 1 << (t.bits - 1)


def smax(t: IRType) -> int:
    return smin(t) - 1


def _tdiv(a: int, b: int) -> int:
    """C-style division, truncating towards zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def ref_div(a: int, b: int, w: int) -> int:
    sa, sb = sx(a, w), sx(b, w)
    if sb == 0:
        return -1
    if sa == -(1 << (w - 1)) and sb == -1:
        return sa
    return _tdiv(sa, sb)


def ref_rem(a: int, b: int, w: int) -> int:
    sa, sb = sx(a, w), sx(b, w)
    if sb == 0:
        return sa
    if sa == -(1 << (w - 1)) and sb == -1:
        return 0
    return sa - sb * _tdiv(sa, sb)


def ref_rotl(a: int, n: int, w: int) -> int:
    n %= w
    return (a << n) | (a >> (w - n))


def ref_rotr(a: int, n: int, w: int) -> int:
    n %= w
    return (a >> n) | (a << (w - n))


def ref_clz(a: int, w: int) -> int:
    return w - a.bit_length()


def ref_ctz(a: int) -> int:
    return (a & -a).bit_length() - 1


# Binary ops: (a, b, width) -> result (masked by the caller); a and b are unsigned.
BINARY: dict[str, Callable[[int, int, int], int]] = {
    "add": lambda a, b, w: a + b,
    "sub": lambda a, b, w: a - b,
    "mul": lambda a, b, w: a * b,
    "and": lambda a, b, w: a & b,
    "or": lambda a, b, w: a | b,
    "xor": lambda a, b, w: a ^ b,
    "andc": lambda a, b, w: a & ~b,
    "orc": lambda a, b, w: a | ~b,
    "eqv": lambda a, b, w: ~(a ^ b),
    "nand": lambda a, b, w: ~(a & b),
    "nor": lambda a, b, w: ~(a | b),
    "shl": lambda a, b, w: a << (b % w),
    "shr": lambda a, b, w: a >> (b % w),
    "sar": lambda a, b, w: sx(a, w) >> (b % w),
    "rotl": ref_rotl,
    "rotr": ref_rotr,
    "div": ref_div,
    "divu": lambda a, b, w: a // b if b else -1,
    "rem": ref_rem,
    "remu": lambda a, b, w: a % b if b else a,
    "mulsh": lambda a, b, w: (sx(a, w) * sx(b, w)) >> w,
    "muluh": lambda a, b, w: (a * b) >> w,
    "clz": lambda a, b, w: ref_clz(a, w) if a else b,
    "ctz": lambda a, b, w: ref_ctz(a) if a else b,
}
SHIFTS = ("shl", "shr", "sar", "rotl", "rotr")
DIVISIONS = ("div", "divu", "rem", "remu")
ARITH = tuple(n for n in BINARY if n not in SHIFTS + DIVISIONS + ("clz", "ctz"))


def _bswap(bits: int) -> Callable[[int, int], int]:
    def swap(a: int, w: int) -> int:
        return int.from_bytes((a & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")
    return swap


def _ext(bits: int, signed: bool) -> Callable[[int, int], int]:
    def extend(a: int, w: int) -> int:
        return sx(a, bits) if signed else a & ((1 << bits) - 1)
    return extend


UNARY: dict[str, Callable[[int, int], int]] = {
    "neg": lambda a, w: -a,
    "not": lambda a, w: ~a,
    "ctpop": lambda a, w: a.bit_count(),
    "bswap16": _bswap(16),
    "bswap32": _bswap(32),
    "bswap64": _bswap(64),
    **{f"ext{n}{s}": _ext(n, s == "s") for n in (8, 16, 32) for s in "su"},
}
UNARY_CASES = [(name, t) for name in UNARY for t in WIDTHS
               if not (name == "bswap64" and t is I32)]

MUL2: dict[str, Callable[[int, int, int], int]] = {
    "mulu2": lambda a, b, w: a * b,
    "muls2": lambda a, b, w: sx(a, w) * sx(b, w),
    "mulsu2": lambda a, b, w: sx(a, w) * b,  # a signed, b unsigned
}

_COND_REF: dict[Cond, Callable[[int, int], bool]] = {
    Cond.EQ: lambda a, b: a == b, Cond.NE: lambda a, b: a != b,
    Cond.LT: lambda a, b: a < b, Cond.GE: lambda a, b: a >= b,
    Cond.LE: lambda a, b: a <= b, Cond.GT: lambda a, b: a > b,
    Cond.LTU: lambda a, b: a < b, Cond.GEU: lambda a, b: a >= b,
    Cond.LEU: lambda a, b: a <= b, Cond.GTU: lambda a, b: a > b,
}
_SIGNED_CONDS = {Cond.LT, Cond.GE, Cond.LE, Cond.GT}


def ref_cond(cond: Cond, a: int, b: int, w: int) -> bool:
    if cond in _SIGNED_CONDS:
        a, b = sx(a, w), sx(b, w)
    return _COND_REF[cond](a, b)


# -- edge values ---------------------------------------------------------------------------

def edges(t: IRType) -> list[int]:
    """Operands for two-input ops (all pairs are tried)."""
    m = t.mask
    return sorted({0, 1, 2, 7, 0x80, 0xFF, smax(t), smin(t), smin(t) + 1, m, m - 1,
                   -7 & m, 0x5555_5555_5555_5555 & m, 0x0123_4567_89AB_CDEF & m})


def unary_inputs(t: IRType) -> list[int]:
    m = t.mask
    return sorted({*edges(t), 0x7F, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x1_8000, 0x8000_0000,
                   0x7FFF_FFFF, 0xFFFF_FFFF & m, 0x1_0000_0000 & m, 0xAAAA_AAAA_AAAA_AAAA & m,
                   0xFEDC_BA98_7654_3210 & m, 0x8080_8080_8080_8080 & m, 3 << (t.bits - 2)})


def shift_counts(t: IRType) -> list[int]:
    w, m = t.bits, t.mask
    return sorted({0, 1, w - 1, w, w + 1, 2 * w + 3, 255, 0x1_0000_0005 & m, smin(t),
                   smax(t), m, m - 1})


def shift_values(t: IRType) -> list[int]:
    m = t.mask
    return [1, 0x0123_4567_89AB_CDEF & m, smin(t), smin(t) | 1, smax(t), m,
            0x5555_5555_5555_5555 & m]


def cond_values(t: IRType) -> list[int]:
    """Boundary values for comparisons: signed and unsigned extremes, -1 and 0."""
    m = t.mask
    return [0, 1, 2, m, m - 1, smin(t), smin(t) + 1, smax(t), smax(t) - 1]


def operand_pairs(t: IRType, name: str) -> list[tuple[int, int]]:
    if name in SHIFTS:
        return list(itertools.product(shift_values(t), shift_counts(t)))
    if name in ("clz", "ctz"):
        fallbacks = [0, t.bits, 0x1234, t.mask]
        return list(itertools.product(unary_inputs(t), fallbacks))
    if name in DIVISIONS:
        m = t.mask
        extra = [(-7 & m, 2), (7, -2 & m), (-7 & m, -2 & m), (7, 2), (smin(t), m),
                 (0, 0), (m, 0), (smin(t), 0), (smax(t), m), (m, m)]
        return list(itertools.product(edges(t), edges(t))) + extra
    return list(itertools.product(edges(t), edges(t)))


# -- the test rig --------------------------------------------------------------------------

Emit = Callable[[Builder, Sequence[Temp], Sequence[Temp]], None]


class Rig:
    """One CPU running hand-built kernels; a kernel maps r[0..n_in) to r[n_in..)."""

    def __init__(self, **options: object) -> None:
        self.frontend = HandFrontend()
        self.cpu = make_cpu(self.frontend, **options)
        self.g = LAYOUT.globals()
        self._next_pc = CODE
        self._kernels: dict[object, tuple[int, tuple[IRType, ...], int]] = {}

    def reg(self, i: int) -> Temp:
        return self.g[r(i)]

    def kernel(self, key: object, ins: Sequence[IRType], outs: Sequence[IRType],
               emit: Emit) -> object:
        """Register a block (once per key) that loads typed inputs, runs ``emit`` and
        stores typed outputs; returns the key to pass to :meth:`run`."""
        if key in self._kernels:
            return key
        assert len(ins) + len(outs) <= N_REGS
        pc = self._next_pc
        self._next_pc += 4

        def build(b: Builder) -> None:
            b.insn_start(pc)
            in_temps = []
            for i, t in enumerate(ins):
                if t is I64:
                    in_temps.append(self.reg(i))
                else:
                    narrow = b.temp(I32)
                    b.extr_i64_i32(narrow, self.reg(i))
                    in_temps.append(narrow)
            out_temps = [self.reg(len(ins) + j) if t is I64 else b.temp(I32)
                         for j, t in enumerate(outs)]
            emit(b, in_temps, out_temps)
            for j, (t, temp) in enumerate(zip(outs, out_temps, strict=True)):
                if t is I32:
                    b.ext_i32_i64(self.reg(len(ins) + j), temp, signed=False)
            b.movi(self.g["pc"], pc + 2)
            b.exit_tb(ExitReason.HALT)

        self.frontend.define(pc)(build)
        self._kernels[key] = (pc, tuple(ins), len(outs))
        return key

    def run(self, key: object, *inputs: int) -> list[int]:
        """Run a kernel once; returns its outputs as unsigned i64 register values."""
        pc, ins, n_out = self._kernels[key]
        state = self.cpu.state
        for i, (t, value) in enumerate(zip(ins, inputs, strict=True)):
            state.set("r", value | (HIGH_GARBAGE ^ (i << 40) if t is I32 else 0), i)
        for j in range(len(ins), N_REGS):
            state.set("r", UNWRITTEN, j)
        self.cpu.pc = pc
        exit_ = self.cpu.run()
        assert exit_.reason is ExitReason.HALT and exit_.pc == pc + 2, exit_
        return [state.get("r", len(ins) + j) for j in range(n_out)]

    def close(self) -> None:
        self.cpu.close()


# Every tier: the baseline (copy-and-patch stencils of the lowering rules), and
# the LLVM block tier without (0: SROA + FastISel) and with (1) optimisation.
TIERS = {"baseline": {"baseline": True}, "tier0": {"baseline": False, "optimize": 0},
         "tier1": {"baseline": False, "optimize": 1}}


@pytest.fixture(scope="module", params=list(TIERS))
def rig(request: pytest.FixtureRequest) -> Iterable[Rig]:
    """One CPU per module and JIT tier (0: SROA + FastISel; 1: optimising pipeline)."""
    rig = Rig(**TIERS[request.param])
    yield rig
    rig.close()


def check(failures: list[str]) -> None:
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:20])


def emit_op(name: str) -> Callable[..., None]:
    """The Builder method for an op name (``and`` -> ``and_``)."""
    return getattr(Builder, name + "_" if name in ("and", "or", "not") else name)


def run_binary(rig: Rig, t: IRType, name: str,
               pairs: Iterable[tuple[int, int]]) -> list[str]:
    method = emit_op(name)
    key = rig.kernel(("binary", name, t), (t, t), (t,),
                     lambda b, i, o: method(b, o[0], i[0], i[1]))
    failures = []
    for a, bv in pairs:
        (got,) = rig.run(key, a, bv)
        want = BINARY[name](a, bv, t.bits) & t.mask
        if got != want:
            failures.append(f"{name}_{t}({a:#x}, {bv:#x}) = {got:#x}, want {want:#x}")
    return failures


# -- arithmetic and logic ------------------------------------------------------------------

@pytest.mark.parametrize("t", WIDTHS, ids=str)
@pytest.mark.parametrize("name", ARITH)
def test_arith_logic(rig: Rig, name: str, t: IRType) -> None:
    check(run_binary(rig, t, name, operand_pairs(t, name)))


@pytest.mark.parametrize("t", WIDTHS, ids=str)
@pytest.mark.parametrize("name", SHIFTS)
def test_shift_rotate(rig: Rig, name: str, t: IRType) -> None:
    check(run_binary(rig, t, name, operand_pairs(t, name)))


@pytest.mark.parametrize("t", WIDTHS, ids=str)
@pytest.mark.parametrize("name", SHIFTS)
def test_shift_count_known_out_of_range(rig: Rig, name: str, t: IRType) -> None:
    """A count the optimiser can prove >= width (b | width): still taken modulo width.

    Without the lowering's mask LLVM may fold such a shift to poison, whereas host
    shift instructions happen to mask run-time counts themselves.
    """
    method = emit_op(name)

    def emit(b: Builder, i: Sequence[Temp], o: Sequence[Temp]) -> None:
        count = b.temp(t)
        b.or_(count, i[1], const(t, t.bits))
        method(b, o[0], i[0], count)

    key = rig.kernel(("shift-large", name, t), (t, t), (t,), emit)
    failures = []
    for a, bv in itertools.product(shift_values(t), range(0, t.bits, 5)):
        (got,) = rig.run(key, a, bv)
        want = BINARY[name](a, bv | t.bits, t.bits) & t.mask
        if got != want:
            failures.append(f"{name}_{t}({a:#x}, {bv | t.bits:#x}) = {got:#x}, want {want:#x}")
    check(failures)


@pytest.mark.parametrize("t", WIDTHS, ids=str)
@pytest.mark.parametrize("name", DIVISIONS)
def test_divide(rig: Rig, name: str, t: IRType) -> None:
    check(run_binary(rig, t, name, operand_pairs(t, name)))


@pytest.mark.parametrize("t", WIDTHS, ids=str)
@pytest.mark.parametrize("name", ["clz", "ctz"])
def test_count_zeros(rig: Rig, name: str, t: IRType) -> None:
    check(run_binary(rig, t, name, operand_pairs(t, name)))


@pytest.mark.parametrize("t", WIDTHS, ids=str)
@pytest.mark.parametrize("name", ["mulsh", "muluh"])
def test_multiply_high(rig: Rig, name: str, t: IRType) -> None:
    check(run_binary(rig, t, name, operand_pairs(t, name)))


def test_division_edge_cases_spelled_out() -> None:
    """The reference itself, against the rules in ops.py (so the rig tests mean something)."""
    m64 = I64.mask
    assert ref_div(5, 0, 64) & m64 == m64 and ref_rem(5, 0, 64) == 5
    assert ref_div(0, 0, 64) & m64 == m64 and ref_rem(0, 0, 64) == 0
    assert ref_div(1 << 63, m64, 64) & m64 == 1 << 63 and ref_rem(1 << 63, m64, 64) == 0
    assert ref_div(-7 & m64, 2, 64) == -3 and ref_rem(-7 & m64, 2, 64) == -1
    assert ref_div(7, -2 & m64, 64) == -3 and ref_rem(7, -2 & m64, 64) == 1


@pytest.mark.parametrize(("name", "t"), UNARY_CASES, ids=[f"{n}-{t}" for n, t in UNARY_CASES])
def test_unary(rig: Rig, name: str, t: IRType) -> None:
    method = emit_op(name)
    key = rig.kernel(("unary", name, t), (t,), (t,), lambda b, i, o: method(b, o[0], i[0]))
    failures = []
    for a in unary_inputs(t):
        (got,) = rig.run(key, a)
        want = UNARY[name](a, t.bits) & t.mask
        if got != want:
            failures.append(f"{name}_{t}({a:#x}) = {got:#x}, want {want:#x}")
    check(failures)


@pytest.mark.parametrize("t", WIDTHS, ids=str)
@pytest.mark.parametrize("kind", list(MUL2))
def test_mul2(rig: Rig, kind: str, t: IRType) -> None:
    key = rig.kernel(("mul2", kind, t), (t, t), (t, t),
                     lambda b, i, o: b.mul2(kind, o[0], o[1], i[0], i[1]))
    failures = []
    for a, bv in itertools.product(edges(t), edges(t)):
        lo, hi = rig.run(key, a, bv)
        product = MUL2[kind](a, bv, t.bits)
        want = (product & t.mask, (product >> t.bits) & t.mask)
        if (lo, hi) != want:
            failures.append(f"{kind}_{t}({a:#x}, {bv:#x}) = (lo {lo:#x}, hi {hi:#x}), "
                            f"want (lo {want[0]:#x}, hi {want[1]:#x})")
    check(failures)


def test_width_changes(rig: Rig) -> None:
    """ext_i32_i64 (signed and unsigned) of extr_i64_i32 (low and high)."""

    def emit(b: Builder, i: Sequence[Temp], o: Sequence[Temp]) -> None:
        lo, hi = b.temp(I32), b.temp(I32)
        b.extr_i64_i32(lo, i[0])
        b.extr_i64_i32(hi, i[0], high=True)
        b.ext_i32_i64(o[0], lo)
        b.ext_i32_i64(o[1], lo, signed=False)
        b.ext_i32_i64(o[2], hi)
        b.ext_i32_i64(o[3], hi, signed=False)
        b.ext_i32_i64(o[4], const(I32, -5))
        b.ext_i32_i64(o[5], const(I32, -5), signed=False)

    key = rig.kernel("width", (I64,), (I64,) * 6, emit)
    for a in unary_inputs(I64):
        lo, hi = a & 0xFFFF_FFFF, a >> 32
        want = [sx(lo, 32) & I64.mask, lo, sx(hi, 32) & I64.mask, hi,
                -5 & I64.mask, 0xFFFF_FFFB]
        assert rig.run(key, a) == want, hex(a)


# -- bit fields ----------------------------------------------------------------------------

FIELDS = {
    I32: [(0, 1), (0, 8), (0, 32), (31, 1), (16, 16), (1, 31), (0, 31), (8, 8), (3, 5),
          (24, 8), (13, 17), (4, 28)],
    I64: [(0, 1), (0, 8), (0, 64), (63, 1), (32, 32), (1, 63), (0, 63), (31, 2),
          (13, 17), (60, 4), (0, 32), (32, 31), (7, 50)],
}
FIELD_CASES = [(t, ofs, n) for t in WIDTHS for ofs, n in FIELDS[t]]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


@pytest.mark.parametrize("t", WIDTHS, ids=str)
@pytest.mark.parametrize("signed", [False, True], ids=["extract", "sextract"])
def test_extract(rig: Rig, t: IRType, signed: bool) -> None:
    failures = []
    for chunk in _chunks(FIELDS[t], N_REGS - 1):
        def emit(b: Builder, i: Sequence[Temp], o: Sequence[Temp], chunk=chunk) -> None:
            for out, (ofs, n) in zip(o, chunk, strict=True):
                b.extract(out, i[0], ofs, n, signed=signed)

        key = rig.kernel(("extract", t, signed, tuple(chunk)), (t,), (t,) * len(chunk), emit)
        for a in unary_inputs(t):
            for got, (ofs, n) in zip(rig.run(key, a), chunk, strict=True):
                field = (a >> ofs) & ((1 << n) - 1)
                want = (sx(field, n) if signed else field) & t.mask
                if got != want:
                    failures.append(f"extract_{t}({a:#x}, ofs={ofs}, len={n}, "
                                    f"signed={signed}) = {got:#x}, want {want:#x}")
    check(failures)


@pytest.mark.parametrize("t", WIDTHS, ids=str)
def test_deposit(rig: Rig, t: IRType) -> None:
    failures = []
    m = t.mask
    values = [0, m, 0x0123_4567_89AB_CDEF & m, 0xAAAA_AAAA_AAAA_AAAA & m, smin(t), 1]
    for chunk in _chunks(FIELDS[t], N_REGS - 2):
        def emit(b: Builder, i: Sequence[Temp], o: Sequence[Temp], chunk=chunk) -> None:
            for out, (ofs, n) in zip(o, chunk, strict=True):
                b.deposit(out, i[0], i[1], ofs, n)

        key = rig.kernel(("deposit", t, tuple(chunk)), (t, t), (t,) * len(chunk), emit)
        for base, field in itertools.product(values, values):
            for got, (ofs, n) in zip(rig.run(key, base, field), chunk, strict=True):
                fmask = ((1 << n) - 1) << ofs
                want = (base & ~fmask | (field << ofs) & fmask) & m
                if got != want:
                    failures.append(f"deposit_{t}({base:#x}, {field:#x}, ofs={ofs}, "
                                    f"len={n}) = {got:#x}, want {want:#x}")
    check(failures)


def test_deposit_in_place(rig: Rig) -> None:
    """dst may be the base operand itself (read before written)."""

    def emit(b: Builder, i: Sequence[Temp], o: Sequence[Temp]) -> None:
        b.mov(o[0], i[0])
        b.deposit(o[0], o[0], i[1], 8, 16)
        b.deposit(o[0], o[0], o[0], 40, 24)

    key = rig.kernel("deposit-in-place", (I64, I64), (I64,), emit)
    base, field = 0x1122_3344_5566_7788, 0xFFFF_FFFF_FFFF_ABCD
    first = 0x1122_3344_55AB_CD88
    assert rig.run(key, base, field) == [first & ~(0xFFFFFF << 40) | (first & 0xFFFFFF) << 40]


# -- comparisons and control flow ----------------------------------------------------------

COND_CASES = [(cond, t) for cond in Cond for t in WIDTHS]
COND_IDS = [f"{cond}-{t}" for cond, t in COND_CASES]


@pytest.mark.parametrize(("cond", "t"), COND_CASES, ids=COND_IDS)
def test_setcond(rig: Rig, cond: Cond, t: IRType) -> None:
    key = rig.kernel(("setcond", cond, t), (t, t), (t,),
                     lambda b, i, o: b.setcond(cond, o[0], i[0], i[1]))
    failures = []
    for a, bv in itertools.product(cond_values(t), cond_values(t)):
        (got,) = rig.run(key, a, bv)
        want = int(ref_cond(cond, a, bv, t.bits))
        if got != want:
            failures.append(f"setcond_{t} {cond} ({a:#x}, {bv:#x}) = {got}, want {want}")
    check(failures)


def _movcond_values(t: IRType) -> tuple[int, int]:
    return 0x1111_2222_3333_4444 & t.mask, 0x8888_9999_AAAA_BBBB & t.mask


@pytest.mark.parametrize(("cond", "t"), COND_CASES, ids=COND_IDS)
def test_movcond(rig: Rig, cond: Cond, t: IRType) -> None:
    key = rig.kernel(("movcond", cond, t), (t, t, t, t), (t,),
                     lambda b, i, o: b.movcond(cond, o[0], i[0], i[1], i[2], i[3]))
    vt, vf = _movcond_values(t)
    failures = []
    for a, bv in itertools.product(cond_values(t), cond_values(t)):
        (got,) = rig.run(key, a, bv, vt, vf)
        want = vt if ref_cond(cond, a, bv, t.bits) else vf
        if got != want:
            failures.append(f"movcond_{t} {cond} ({a:#x}, {bv:#x}) = {got:#x}, want {want:#x}")
    check(failures)


@pytest.mark.parametrize(("ct", "vt"), [(I32, I64), (I64, I32)], ids=["cmp32-val64",
                                                                          "cmp64-val32"])
def test_movcond_mixed_types(rig: Rig, ct: IRType, vt: IRType) -> None:
    """The compared pair and the selected values may have different types."""
    key = rig.kernel(("movcond-mixed", ct), (ct, ct, vt, vt), (vt,),
                     lambda b, i, o: b.movcond(Cond.LTU, o[0], i[0], i[1], i[2], i[3]))
    v_true, v_false = _movcond_values(vt)
    for a, bv in itertools.product(cond_values(ct), cond_values(ct)):
        want = v_true if ref_cond(Cond.LTU, a, bv, ct.bits) else v_false
        assert rig.run(key, a, bv, v_true, v_false) == [want], (hex(a), hex(bv))


@pytest.mark.parametrize(("cond", "t"), COND_CASES, ids=COND_IDS)
def test_brcond(rig: Rig, cond: Cond, t: IRType) -> None:
    """A forward brcond: 2 when taken, 1 when it falls through."""

    def emit(b: Builder, i: Sequence[Temp], o: Sequence[Temp]) -> None:
        taken, done = b.label(), b.label()
        b.brcond(cond, i[0], i[1], taken)
        b.movi(o[0], 1)
        b.br(done)
        b.set_label(taken)
        b.movi(o[0], 2)
        b.set_label(done)

    key = rig.kernel(("brcond", cond, t), (t, t), (t,), emit)
    outcomes = set()
    failures = []
    for a, bv in itertools.product(cond_values(t), cond_values(t)):
        (got,) = rig.run(key, a, bv)
        want = 2 if ref_cond(cond, a, bv, t.bits) else 1
        outcomes.add(want)
        if got != want:
            failures.append(f"brcond_{t} {cond} ({a:#x}, {bv:#x}) -> {got}, want {want}")
    assert outcomes == {1, 2}  # both directions were exercised
    check(failures)


@pytest.mark.parametrize("t", WIDTHS, ids=str)
def test_brcond_backward_loop(rig: Rig, t: IRType) -> None:
    """A loop inside one block: a backward brcond to a label set earlier."""

    def emit(b: Builder, i: Sequence[Temp], o: Sequence[Temp]) -> None:
        top, done = b.label(), b.label()
        n = b.temp(t)
        b.mov(n, i[0])
        b.movi(o[0], 0)  # iterations
        b.movi(o[1], 0)  # sum of i[1] over the iterations
        b.brcond(Cond.EQ, n, const(t, 0), done)
        b.set_label(top)
        b.add(o[0], o[0], const(t, 1))
        b.add(o[1], o[1], i[1])
        b.sub(n, n, const(t, 1))
        b.brcond(Cond.NE, n, const(t, 0), top)
        b.set_label(done)

    key = rig.kernel(("loop", t), (t, t), (t, t), emit)
    for count in (0, 1, 2, 37, 1000):
        assert rig.run(key, count, 3) == [count, 3 * count & t.mask], count


def test_brcond_constant_operands_and_exits(rig: Rig) -> None:
    """Branches around block exits, with constant operands: each path leaves the block
    through its own exit_tb, and code after an exit is only reachable via a label."""
    pc, base = CODE + 0xF000, 0x30000

    def build(b: Builder) -> None:
        b.insn_start(pc)
        r0, r1 = rig.reg(0), rig.reg(1)
        second, third = b.label(), b.label()
        b.brcond(Cond.GTU, r0, const(I64, 10), second)
        b.movi(r1, 0x111)
        b.movi(rig.g["pc"], base + 0x100)
        b.exit_tb(ExitReason.HALT)
        b.set_label(second)
        b.brcond(Cond.LT, const(I64, -1), r0, third)  # -1 < r0 (signed)
        b.movi(r1, 0x222)
        b.movi(rig.g["pc"], base + 0x200)
        b.exit_tb(ExitReason.HALT)
        b.set_label(third)
        b.movi(r1, 0x333)
        b.movi(rig.g["pc"], base + 0x300)
        b.exit_tb(ExitReason.HALT)

    rig.frontend.define(pc)(build)
    state = rig.cpu.state
    for value, want in ((3, 0x111), (10, 0x111), (11, 0x333), (-1 & I64.mask, 0x222),
                        (1 << 63, 0x222), (smax(I64), 0x333)):
        state.set("r", value, 0)
        rig.cpu.pc = pc
        exit_ = rig.cpu.run()
        assert exit_.reason is ExitReason.HALT
        assert (state.get("r", 1), exit_.pc) == (want, base + (want & 0xF00)), hex(value)


# -- constant operands (the lowering specialises them) -------------------------------------

CONST_CASES = [(name, t) for name in (*SHIFTS, *DIVISIONS, "clz", "ctz", "mulsh", "muluh",
                                      "sub", "andc") for t in WIDTHS]


@pytest.mark.parametrize(("name", "t"), CONST_CASES, ids=[f"{n}-{t}" for n, t in CONST_CASES])
def test_constant_operands(rig: Rig, name: str, t: IRType) -> None:
    """op(reg, const), op(const, reg) and op(const, const), each in one block per chunk."""
    method = emit_op(name)
    m = t.mask
    if name in SHIFTS:
        consts = shift_counts(t) + [2 * t.bits, 3 * t.bits - 1]
        lhs_values = shift_values(t)
    elif name in DIVISIONS:
        consts = [0, 1, 2, -1 & m, -2 & m, smin(t), smax(t), 7, -7 & m, m - 1]
        lhs_values = edges(t)
    else:
        consts = [0, 1, t.bits, m, smin(t), 0x1234]
        lhs_values = unary_inputs(t)[::2]
    failures = []

    def report(kind: str, a: int, bv: int, got: int) -> None:
        want = BINARY[name](a, bv, t.bits) & m
        if got != want:
            failures.append(f"{name}_{t}({a:#x}, {bv:#x}) [{kind}] = {got:#x}, want {want:#x}")

    for chunk in _chunks(consts, N_REGS - 1):
        def emit_rhs(b: Builder, i: Sequence[Temp], o: Sequence[Temp], chunk=chunk) -> None:
            for out, c in zip(o, chunk, strict=True):
                method(b, out, i[0], const(t, c))

        def emit_lhs(b: Builder, i: Sequence[Temp], o: Sequence[Temp], chunk=chunk) -> None:
            for out, c in zip(o, chunk, strict=True):
                method(b, out, const(t, c), i[0])

        rhs = rig.kernel(("const-rhs", name, t, tuple(chunk)), (t,), (t,) * len(chunk),
                         emit_rhs)
        lhs = rig.kernel(("const-lhs", name, t, tuple(chunk)), (t,), (t,) * len(chunk),
                         emit_lhs)
        for a in lhs_values:
            for got, c in zip(rig.run(rhs, a), chunk, strict=True):
                report("reg, const", a, c, got)
        operands = shift_counts(t) if name in SHIFTS else lhs_values
        for bv in operands:
            for got, c in zip(rig.run(lhs, bv), chunk, strict=True):
                report("const, reg", c, bv, got)

    # Both operands constant: folded entirely by LLVM.
    pairs = list(itertools.product(lhs_values[::3], consts))
    for chunk in _chunks(pairs, N_REGS):
        def emit_both(b: Builder, i: Sequence[Temp], o: Sequence[Temp], chunk=chunk) -> None:
            for out, (a, c) in zip(o, chunk, strict=True):
                method(b, out, const(t, a), const(t, c))

        both = rig.kernel(("const-both", name, t, tuple(chunk)), (), (t,) * len(chunk),
                          emit_both)
        for got, (a, c) in zip(rig.run(both), chunk, strict=True):
            report("const, const", a, c, got)
    check(failures)


# -- golden IR text ------------------------------------------------------------------------

def test_golden_text_arith() -> None:
    g = LAYOUT.globals()
    b = Builder(0x1000, g)
    b.insn_start(0x1000)
    t = b.temp(I32)
    b.extr_i64_i32(t, g["r[1]"])
    b.shl(t, t, const(I32, 3))
    b.ext_i32_i64(g["r[0]"], t)
    b.deposit(g["r[2]"], g["r[2]"], g["r[0]"], 8, 4)
    b.mul2("mulu2", g["r[3]"], g["r[4]"], g["r[0]"], const(I64, -1))
    b.goto_tb(0, 0x1004)
    assert str(b.finish()) == (
        "IN tb_1000 pc=0x1000\n"
        " ---- 0x0000000000001000\n"
        " extrl_i64_i32 tmp0,r[1]\n"
        " shl_i32 tmp0,tmp0,$0x3\n"
        " ext_i32_i64 r[0],tmp0\n"
        " deposit_i64 r[2],r[2],r[0],$0x8,$0x4\n"
        " mulu2_i64 r[3],r[4],r[0],$0xffffffffffffffff\n"
        " goto_tb $0x0,$0x1004\n"
    )


def test_golden_text_control_flow() -> None:
    g = LAYOUT.globals()
    b = Builder(0x2000, g)
    b.insn_start(0x2000)
    skip = b.label()
    b.brcond(Cond.LTU, g["r[0]"], const(I64, 16), skip)
    b.setcond(Cond.GE, g["r[1]"], g["r[0]"], g["r[2]"])
    b.movcond(Cond.NE, g["r[3]"], g["r[0]"], const(I64, 0), g["r[1]"], g["r[2]"])
    b.set_label(skip)
    b.clz(g["r[4]"], g["r[0]"], const(I64, 64))
    b.mov(g["pc"], const(I64, 0x2004))
    b.exit_tb(ExitReason.HALT)
    assert str(b.finish()) == (
        "IN tb_2000 pc=0x2000\n"
        " ---- 0x0000000000002000\n"
        " brcond_i64 r[0],$0x10,ltu,$L0\n"
        " setcond_i64 r[1],r[0],r[2],ge\n"
        " movcond_i64 r[3],r[0],$0x0,r[1],r[2],ne\n"
        " set_label $L0\n"
        " clz_i64 r[4],r[0],$0x40\n"
        " mov_i64 pc,$0x2004\n"
        " exit_tb halt\n"
    )


# -- IR errors -----------------------------------------------------------------------------

def _builder() -> tuple[Builder, dict[str, Temp]]:
    g = LAYOUT.globals()
    return Builder(0x1000, g), g


def test_irerror_type_mismatch() -> None:
    b, g = _builder()
    t32 = b.temp(I32)
    with pytest.raises(IRError, match="types differ"):
        b.add(g["r[0]"], g["r[1]"], t32)
    with pytest.raises(IRError, match="types differ"):
        b.mov(t32, g["r[0]"])
    with pytest.raises(IRError, match="types differ"):
        b.setcond(Cond.EQ, g["r[0]"], t32, t32)
    with pytest.raises(IRError, match="types differ"):
        b.movcond(Cond.EQ, g["r[0]"], g["r[1]"], t32, g["r[2]"], g["r[3]"])
    with pytest.raises(IRError, match="types differ"):
        b.brcond(Cond.EQ, g["r[0]"], const(I32, 0), b.label())
    with pytest.raises(IRError, match="types differ"):
        b.mul2("mulu2", g["r[0]"], t32, g["r[1]"], g["r[2]"])
    with pytest.raises(IRError):
        b.ext_i32_i64(t32, g["r[0]"])
    with pytest.raises(IRError):
        b.extr_i64_i32(g["r[0]"], t32)
    assert b.block.ops == []  # nothing was emitted by the failed calls


def test_irerror_write_to_constant() -> None:
    b, g = _builder()
    with pytest.raises(IRError, match="constant"):
        b.mov(const(I64, 1), g["r[0]"])
    with pytest.raises(IRError, match="constant"):
        b.add(const(I64, 1), g["r[0]"], g["r[1]"])
    with pytest.raises(IRError, match="constant"):
        b.mul2("muls2", g["r[0]"], const(I64, 0), g["r[1]"], g["r[2]"])


@pytest.mark.parametrize(("t", "ofs", "length"), [
    (I32, 0, 0), (I32, 0, 33), (I32, 1, 32), (I32, 31, 2), (I32, -1, 4), (I32, 32, 1),
    (I64, 0, 0), (I64, 0, 65), (I64, 60, 5), (I64, 64, 1), (I64, -8, 8), (I64, 3, -1),
])
def test_irerror_bad_fields(t: IRType, ofs: int, length: int) -> None:
    b, _ = _builder()
    dst, src = b.temp(t), b.temp(t)
    with pytest.raises(IRError, match="does not fit"):
        b.extract(dst, src, ofs, length)
    with pytest.raises(IRError, match="does not fit"):
        b.extract(dst, src, ofs, length, signed=True)
    with pytest.raises(IRError, match="does not fit"):
        b.deposit(dst, src, src, ofs, length)


def test_irerror_missing_terminator() -> None:
    b, g = _builder()
    with pytest.raises(IRError, match="block exit"):
        b.finish()  # empty
    b.insn_start(0x1000)
    b.add(g["r[0]"], g["r[0]"], const(I64, 1))
    with pytest.raises(IRError, match="block exit"):
        b.finish()
    label = b.label()
    b.brcond(Cond.EQ, g["r[0]"], g["r[1]"], label)  # side effects, but not a terminator
    b.set_label(label)
    with pytest.raises(IRError, match="block exit"):
        b.finish()


def test_irerror_unset_label() -> None:
    b, g = _builder()
    used, _never_used = b.label(), b.label()
    b.brcond(Cond.EQ, g["r[0]"], g["r[1]"], used)
    b.exit_tb(ExitReason.HALT)
    with pytest.raises(IRError, match="never set"):
        b.finish()
    b2, _ = _builder()
    b2.br(Label(5))
    with pytest.raises(IRError, match="never set"):
        b2.finish()


def test_irerror_other_arguments() -> None:
    b, g = _builder()
    with pytest.raises(IRError):
        b.mul2("mulx2", g["r[0]"], g["r[1]"], g["r[2]"], g["r[3]"])
    with pytest.raises(IRError):
        b.goto_tb(2, 0x1000)
    with pytest.raises(IRError):
        b.exit_tb(ExitReason.CHAIN)
    with pytest.raises(IRError):
        b.glob("r[99]")
    with pytest.raises(IRError, match="outputs"):
        b.emit("add", (), (g["r[0]"], g["r[1]"]))


def test_bswap64_on_i32_is_a_lowering_error() -> None:
    b, g = _builder()
    t = b.temp(I32)
    b.bswap64(t, t)
    b.mov(g["pc"], const(I64, 0))
    b.exit_tb(ExitReason.HALT)
    with pytest.raises(LoweringError, match="bswap64"):
        Lowering(LAYOUT, {}).lower_function(b.finish())
