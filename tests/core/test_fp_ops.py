"""The float IR ops, run as native code on both JIT tiers against the exact reference
(llvmtcg.runtime.softfloat), with their exception flags; plus the text form, builder
checks, and the host FP environment around native code and Python callbacks.

Operands travel through the i64 globals r[0..2]; binary32 operands are the low words.
The kernel's frontend has FP hooks (a dynamic rounding mode, and a set of accrued flags)
like a real guest's, so DYN and the flag path through MXCSR are exercised.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

import pytest

from llvmtcg.ir import (
    I32,
    I64,
    Builder,
    ExitReason,
    FCond,
    FFlag,
    IRError,
    IRType,
    RoundingMode,
    Temp,
)
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.runtime import softfloat as sf
from llvmtcg.runtime.helpers import HelperRegistry
from tests.core.support import CODE, HandFrontend, make_cpu, r

RNE, RTZ, RDN, RUP, RMM, DYN = RoundingMode
STATIC = (RNE, RTZ, RDN, RUP, RMM)
NV, NX = int(FFlag.INVALID), int(FFlag.INEXACT)


def f64(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def f32(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


VALUES = {
    32: [0, 0x80000000, f32(1.0), f32(-1.0), f32(1.5), f32(2.5), f32(-2.5), f32(0.5),
         0x3F800001, 0x33800000, 0x00800000, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0xFF7FFFFF,
         0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0x4F000000, 0xCF000001, 0x4F800000,
         0x5F000000, 0xDF000000, 0x3EAAAAAB, 0x4B800001],
    64: [0, 1 << 63, f64(1.0), f64(-1.0), f64(1.5), f64(2.5), f64(-2.5), f64(0.5),
         0x3FF0000000000001, f64(2.0**-53), 0x0010000000000000, 1, 0x800FFFFFFFFFFFFF,
         0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF, 0x7FF0000000000000, 0xFFF0000000000000,
         0x7FF8000000000000, 0x7FF0000000000001, f64(2.0**31 - 0.5), f64(-2.0**31 - 1),
         f64(2.0**63), f64(-2.0**63), f64(2.0**64), f64(1 / 3), f64(2.0**53 + 1)],
}
INTS = [0, 1, 3, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x1000001, 0x100000000000001,
        (1 << 63) - 1, 1 << 63, (1 << 64) - 1, 0x0123456789ABCDEF]
FTYPE = {32: I32, 64: I64}


class FpFrontend(HandFrontend):
    """A hand frontend with a guest FP environment."""

    def __init__(self) -> None:
        super().__init__()
        self.rounding = RNE
        self.flags = 0

    def fp_rounding(self, state) -> RoundingMode:
        return self.rounding

    def fp_accrue(self, state, flags: int) -> None:
        self.flags |= int(flags)


_PY_FLOAT = HelperDecl("py_float", I64, (I64,), HelperFlag.TAKES_CPU)


def _py_float(cpu, value: int) -> int:
    """Float code in Python, called from native code."""
    return f64(1.0 / (10.0 + value))


# Every tier: the baseline (copy-and-patch stencils of the lowering rules), and
# the LLVM block tier without (0: SROA + FastISel) and with (1) optimisation.
TIERS = {"baseline": {"baseline": True}, "tier0": {"baseline": False, "optimize": 0},
         "tier1": {"baseline": False, "optimize": 1}}


@pytest.fixture(scope="module", params=list(TIERS))
def machine(request):
    frontend = FpFrontend()
    helpers = HelperRegistry()
    helpers.register(_PY_FLOAT, _py_float)
    return frontend, make_cpu(frontend, helpers, **TIERS[request.param])


_next_pc = itertools.count(CODE, 4)


def _narrow(b: Builder, t: IRType, n: int) -> list[Temp]:
    """r[0..n-1] as operands of type t (binary32: the low word)."""
    if t is I64:
        return [b.glob(r(i)) for i in range(n)]
    temps = []
    for i in range(n):
        temps.append(b.temp(I32))
        b.extr_i64_i32(temps[-1], b.glob(r(i)))
    return temps


def _widen(b: Builder, value: Temp, out: str) -> None:
    if value.type is I64:
        b.mov(b.glob(out), value)
    else:
        b.ext_i32_i64(b.glob(out), value, signed=False)


def kernel(machine, emit: Callable[[Builder], None]):
    """Define a one-block kernel and return a runner: inputs -> (r[3], r[4], flags)."""
    frontend, cpu = machine
    pc = next(_next_pc)

    @frontend.define(pc)
    def _(b: Builder) -> None:
        emit(b)
        b.exit_tb(ExitReason.HALT)

    def run(inputs, rounding: RoundingMode = RNE) -> tuple[int, int, int]:
        for i, v in enumerate(inputs):
            cpu.state.set("r", v, i)
        frontend.rounding, frontend.flags = rounding, 0
        cpu.pc = pc
        assert cpu.run().reason is ExitReason.HALT
        return cpu.state.get("r", 3), cpu.state.get("r", 4), frontend.flags

    return run


def _canon(fmt: sf.Format, bits: int) -> int:
    return fmt.default_nan if fmt.is_nan(bits) else bits


ARITH = {
    "fadd": (2, lambda fmt, rm, a, b, c: sf.add(fmt, a, b, rm)),
    "fsub": (2, lambda fmt, rm, a, b, c: sf.sub(fmt, a, b, rm)),
    "fmul": (2, lambda fmt, rm, a, b, c: sf.mul(fmt, a, b, rm)),
    "fdiv": (2, lambda fmt, rm, a, b, c: sf.div(fmt, a, b, rm)),
    "fsqrt": (1, lambda fmt, rm, a, b, c: sf.sqrt(fmt, a, rm)),
    "fma": (3, lambda fmt, rm, a, b, c: sf.fma(fmt, a, b, c, rm)),
}


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("name", sorted(ARITH))
def test_arithmetic(machine, name, bits):
    n, ref = ARITH[name]
    fmt, t = sf.FORMATS[bits], FTYPE[bits]
    values = VALUES[bits]
    operands = list(itertools.product(values, repeat=n)) if n < 3 else [
        (a, b, c) for a, b, c in zip(values, values[5:] + values[:5], values[11:] + values[:11],
                                     strict=True)] + [
        (values[15], 0, values[17]), (0, values[15], values[17]), (values[2], values[2],
                                                                   values[3])]
    for rm in (*STATIC, DYN):
        def emit(b: Builder, rm=rm) -> None:
            dst = b.temp(t)
            getattr(b, name)(dst, *_narrow(b, t, n), rm)
            _widen(b, dst, r(3))
        run = kernel(machine, emit)
        for dyn_mode in (RNE, RTZ, RDN, RUP) if rm is DYN else (RNE,):
            effective = dyn_mode if rm is DYN else rm
            for ops in operands:
                got, _, flags = run(ops, dyn_mode)
                want, want_flags = ref(fmt, effective, *ops, *(0,) * (3 - n))
                assert (hex(_canon(fmt, got)), flags) == (hex(want), int(want_flags)), \
                    f"{name}.{bits} {effective} {[hex(o) for o in ops]}"


@pytest.mark.parametrize("bits", [32, 64])
def test_fmin_fmax_fsetcond_fclass(machine, bits):
    fmt, t = sf.FORMATS[bits], FTYPE[bits]

    def emit(b: Builder) -> None:
        x, y = _narrow(b, t, 2)
        lo, hi, cls = b.temp(t), b.temp(t), b.glob(r(4))
        b.fmin(lo, x, y)
        b.fmax(hi, x, y)
        b.fclass(cls, x)
        packed = b.glob(r(3))
        lo64, hi64 = b.temp(I64), b.temp(I64)
        if t is I32:
            b.ext_i32_i64(lo64, lo, signed=False)
            b.ext_i32_i64(hi64, hi, signed=False)
            b.deposit(packed, lo64, hi64, 32, 32)
        else:
            b.mov(packed, lo)
            b.mov(b.glob(r(5)), hi)
    run_minmax = kernel(machine, emit)
    runs = {}
    for cond in FCond:
        def emit_cmp(b: Builder, cond=cond) -> None:
            b.fsetcond(cond, b.glob(r(3)), *_narrow(b, t, 2))
        runs[cond] = kernel(machine, emit_cmp)
    frontend, cpu = machine
    for a, b_ in itertools.product(VALUES[bits], repeat=2):
        packed, cls, flags = run_minmax((a, b_))
        lo, hi = (packed & 0xFFFFFFFF, packed >> 32) if bits == 32 else (
            packed, cpu.state.get("r", 5))
        snan = fmt.is_snan(a) or fmt.is_snan(b_)
        assert flags == (NV if snan else 0)
        for got, maximum in ((lo, False), (hi, True)):
            if fmt.is_nan(a) and fmt.is_nan(b_):
                assert fmt.is_nan(got)
                continue
            if fmt.is_nan(a) or fmt.is_nan(b_):
                assert got == (b_ if fmt.is_nan(a) else a)
                continue
            va, vb = _ordered(fmt, a), _ordered(fmt, b_)
            want = (a if va >= vb else b_) if maximum else (a if va <= vb else b_)
            assert got == want, (hex(a), hex(b_), maximum)
        assert cls == _fclass(fmt, a)
        for cond, run in runs.items():
            got, _, flags = run((a, b_))
            want, want_flags = _fcompare(fmt, cond, a, b_)
            assert (got, flags) == (want, want_flags), (cond, hex(a), hex(b_))


def _ordered(fmt: sf.Format, bits: int):
    """A sort key with -0 < +0 and infinities at the ends."""
    if fmt.is_inf(bits):
        return (float("-inf") if fmt.sign(bits) else float("inf"), 0)
    return (fmt.value(bits), -fmt.sign(bits))


def _fclass(fmt: sf.Format, v: int) -> int:
    if fmt.is_nan(v):
        return 1 << (8 if fmt.is_snan(v) else 9)
    k = 3 if fmt.is_inf(v) else 0 if fmt.is_zero(v) else 1 if v & fmt.inf == 0 else 2
    return 1 << (3 - k if fmt.sign(v) else 4 + k)


def _fcompare(fmt: sf.Format, cond: FCond, a: int, b: int) -> tuple[int, int]:
    nan = fmt.is_nan(a) or fmt.is_nan(b)
    snan = fmt.is_snan(a) or fmt.is_snan(b)
    flags = NV if (nan if cond.signaling else snan) else 0
    if nan:
        return int(cond is FCond.UNORD), flags
    va, vb = _ordered(fmt, a)[0], _ordered(fmt, b)[0]
    result = {FCond.EQ: va == vb, FCond.SEQ: va == vb, FCond.LT: va < vb, FCond.QLT: va < vb,
              FCond.LE: va <= vb, FCond.QLE: va <= vb, FCond.UNORD: False}[cond]
    return int(result), flags


@pytest.mark.parametrize(("dst_bits", "signed"), [(32, True), (32, False), (64, True),
                                                  (64, False)])
@pytest.mark.parametrize("bits", [32, 64])
def test_float_to_int(machine, bits, dst_bits, signed):
    """ftoi/ftou report their flags in the second output, never in the host environment."""
    fmt, t, it = sf.FORMATS[bits], FTYPE[bits], FTYPE[dst_bits]
    for rm in (*STATIC, DYN):
        def emit(b: Builder, rm=rm) -> None:
            value, flags = b.temp(it), b.temp(I32)
            b.ftoi(value, flags, *_narrow(b, t, 1), rm, signed)
            _widen(b, value, r(3))
            _widen(b, flags, r(4))
        run = kernel(machine, emit)
        for dyn_mode in (RNE, RTZ, RDN, RUP) if rm is DYN else (RNE,):
            effective = dyn_mode if rm is DYN else rm
            for a in VALUES[bits] + [f64(-0.3) if bits == 64 else f32(-0.3)]:
                got, flags, host_flags = run((a,), dyn_mode)
                want, want_flags = sf.to_int(fmt, a, effective, dst_bits, signed)
                assert (hex(got), flags, host_flags) == (hex(want), int(want_flags), 0), \
                    (hex(a), effective)


@pytest.mark.parametrize(("src_bits", "signed"), [(32, True), (32, False), (64, True),
                                                  (64, False)])
@pytest.mark.parametrize("bits", [32, 64])
def test_int_to_float(machine, bits, src_bits, signed):
    fmt, t, it = sf.FORMATS[bits], FTYPE[bits], FTYPE[src_bits]
    for rm in STATIC:
        def emit(b: Builder, rm=rm) -> None:
            dst = b.temp(t)
            b.itof(dst, *_narrow(b, it, 1), rm, signed)
            _widen(b, dst, r(3))
        run = kernel(machine, emit)
        for v in INTS:
            v &= (1 << src_bits) - 1
            got, _, flags = run((v,))
            value = v - (1 << src_bits) if signed and v >> (src_bits - 1) else v
            want, want_flags = sf.from_int(fmt, value, rm)
            assert (hex(got), flags) == (hex(want), int(want_flags)), (hex(v), rm)


@pytest.mark.parametrize("rm", STATIC)
def test_convert_between_formats(machine, rm):
    def emit(b: Builder) -> None:
        narrow, wide = b.temp(I32), b.temp(I64)
        b.fcvt(narrow, b.glob(r(0)), rm)
        _widen(b, narrow, r(3))
        src = _narrow(b, I32, 2)[1]
        b.fcvt(wide, src)
        b.mov(b.glob(r(4)), wide)
    run = kernel(machine, emit)
    for d, s in zip(VALUES[64], VALUES[32], strict=True):
        got_narrow, got_wide, flags = run((d, s))
        want_narrow, fl1 = sf.convert(sf.F32, sf.F64, d, rm)
        want_wide, fl2 = sf.convert(sf.F64, sf.F32, s, rm)
        assert _canon(sf.F32, got_narrow) == want_narrow, hex(d)
        assert _canon(sf.F64, got_wide) == want_wide, hex(s)
        assert flags == int(fl1 | fl2)


def test_python_callbacks_run_in_the_host_environment(machine):
    """A helper's own float code rounds to nearest and its flags stay out of the guest,
    even while the guest's dynamic mode is RTZ and its ops raise flags around it."""
    def emit(b: Builder) -> None:
        third = b.temp(I64)
        b.fdiv(third, b.glob(r(0)), b.glob(r(1)), DYN)
        b.call(_PY_FLOAT.name, [b.glob(r(3))], [b.glob(r(2))])
        b.mov(b.glob(r(4)), third)
    run = kernel(machine, emit)
    got, third, flags = run((f64(1.0), f64(3.0), 0), RTZ)
    assert got == f64(0.1)  # 0x3fb999999999999a: rounded to nearest in Python
    assert third == 0x3FD5555555555555 and flags == NX  # the guest's own, in RTZ


def test_fpenv_ops(machine):
    """fpenv_flags takes what earlier ops raised (and clears it); fpenv_round changes
    the mode later DYN ops in the same block round in."""
    def emit(b: Builder) -> None:
        q, mode, flags = b.temp(I64), b.temp(I32), b.temp(I32)
        b.fdiv(q, b.glob(r(0)), b.glob(r(1)), DYN)  # 1/0: DZ
        b.fpenv_flags(flags)
        b.ext_i32_i64(b.glob(r(4)), flags, signed=False)
        b.extr_i64_i32(mode, b.glob(r(2)))
        b.fpenv_round(mode)
        b.fdiv(b.glob(r(3)), b.glob(r(0)), b.glob(r(5)), DYN)  # 1/3: NX, left raised
    frontend, cpu = machine
    run = kernel(machine, emit)
    cpu.state.set("r", f64(3.0), 5)
    for ordinal, third in ((0, 0x3FD5555555555555), (1, 0x3FD5555555555555),
                           (3, 0x3FD5555555555556), (4, 0x3FD5555555555555)):
        got, taken, flags = run((f64(1.0), 0, ordinal), RUP)
        assert (hex(got), taken, flags) == (hex(third), int(FFlag.DIVBYZERO), NX), ordinal


# -- text form and builder checks ------------------------------------------------------------

def test_text_form():
    b = Builder(0x1000)
    s, d, w = b.temp(I32), b.temp(I64), b.temp(I32)
    b.fadd(s, s, s, RNE)
    b.fma(d, d, d, d, DYN)
    b.fsetcond(FCond.LT, d, s, s)
    b.fclass(w, d)
    b.fcvt(d, s)
    b.itof(s, d, RMM, signed=False)
    b.ftoi(d, w, s, RTZ)
    b.fmin(d, d, d)
    b.fpenv_flags(w)
    b.fpenv_round(w)
    b.exit_tb(ExitReason.HALT)
    assert str(b.finish()).splitlines()[1:] == [
        " fadd_f32 tmp0,tmp0,tmp0,rne",
        " fma_f64 tmp1,tmp1,tmp1,tmp1,dyn",
        " fsetcond_i64_f32 tmp1,tmp0,tmp0,lt",
        " fclass_i32_f64 tmp2,tmp1",
        " fcvt_f64_f32 tmp1,tmp0,rne",
        " utof_f32_i64 tmp0,tmp1,rmm",
        " ftoi_i64_f32 tmp1,tmp2,tmp0,rtz",
        " fmin_f64 tmp1,tmp1,tmp1",
        " fpenv_flags tmp2",
        " fpenv_round tmp2",
        " exit_tb halt",
    ]


@pytest.mark.parametrize("build", [
    lambda b, s, d: b.fadd(s, s, d, RNE),
    lambda b, s, d: b.fadd(s, s, s, "rne"),
    lambda b, s, d: b.fma(d, d, d, s, RNE),
    lambda b, s, d: b.fcvt(s, s),
    lambda b, s, d: b.ftoi(d, d, s, RNE),
    lambda b, s, d: b.fsetcond("lt", d, s, s),
    lambda b, s, d: b.fsetcond(FCond.LT, d, s, d),
    lambda b, s, d: b.fpenv_flags(d),
    lambda b, s, d: b.fpenv_round(d),
])
def test_builder_rejects(build):
    b = Builder(0)
    with pytest.raises(IRError):
        build(b, b.temp(I32), b.temp(I64))
