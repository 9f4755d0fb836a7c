"""AdvSIMD floating point (vector, scalar and by-element forms) as inline IR, lane by lane.

Each lane runs the scalar generators of trans_fp.py (host FP in the dynamic rounding
mode, Arm's NaN rules composed on the NaN path, FPSR flags from the host), so a vector
operation gives exactly what its scalar counterpart gives on every lane. Lanes are
single (sz=0) or double (sz=1) precision; half precision arithmetic (FEAT_FP16) is not
implemented and not advertised. Results are assembled in temporaries and written
last, so Vd may be a source.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from llvmtcg.frontends.aarch64 import estimate, fp16
from llvmtcg.frontends.aarch64.trans_fp import (
    DOUBLE,
    FPCR,
    FPCR_DN,
    FPCR_FZ,
    SINGLE,
    _Format,
    flush_inputs,
    gen_fcvt,
    gen_fcvt_half,
    gen_fixed_to_fp,
    gen_flush_to_zero,
    gen_fp_arith,
    gen_fp_fma,
    gen_fp_minmax,
    gen_fp_sqrt,
    gen_fp_to_fixed,
    gen_frint,
    gen_is_signalling,
    gen_nan_fixup,
    gen_zero_times_inf,
)
from llvmtcg.frontends.aarch64.translate import VQ, ZERO, DisasContext, V, gen_accrue_fflags
from llvmtcg.ir import I32, I64, V128, Builder, Cond, Label, Temp, const
from llvmtcg.ir.ops import pack_permute
from llvmtcg.ir.types import FCond, FFlag, RoundingMode

DYN = RoundingMode.DYN
LaneOp = Callable[[DisasContext, _Format, Temp, Temp, Temp], Temp]


# -- lanes --------------------------------------------------------------------------------------

def read_lane(ctx: DisasContext, reg: int, fmt: _Format, index: int) -> Temp:
    b = ctx.builder
    half = V[2 * reg + index * fmt.bits // 64]
    if fmt is DOUBLE:
        return half
    lane = b.temp(I32)
    b.extr_i64_i32(lane, half, high=bool(index & 1))
    return lane


def write_lanes(ctx: DisasContext, reg: int, fmt: _Format, lanes: list[Temp]) -> None:
    """Vd = the lanes, zero above them (a 64-bit vector or a scalar clears the rest)."""
    b = ctx.builder
    halves: list[Temp] = []
    if fmt is DOUBLE:
        halves = list(lanes)
    else:
        for i in range(0, len(lanes), 2):
            half = b.temp(I64)
            b.ext_i32_i64(half, lanes[i], signed=False)
            if i + 1 < len(lanes):
                upper = b.temp(I64)
                b.ext_i32_i64(upper, lanes[i + 1], signed=False)
                b.deposit(half, half, upper, 32, 32)
            halves.append(half)
    b.mov(V[2 * reg], halves[0])
    if len(halves) > 1:
        b.mov(V[2 * reg + 1], halves[1])
    else:
        b.movi(V[2 * reg + 1], 0)


def _format(a, scalar: bool) -> tuple[_Format, int] | None:
    """(lane format, lane count) from sz (bit 22) and Q; None where unallocated."""
    sz = a.size & 1
    fmt = DOUBLE if sz else SINGLE
    if scalar:
        return fmt, 1
    if sz and not a.q:
        return None
    return fmt, (128 if a.q else 64) // fmt.bits


def _vector_shape(a) -> tuple[_Format, int, int] | None:
    """(lane format, vece, oprsz) of the vector form, for the vector ops; None where
    unallocated."""
    shape = _format(a, False)
    if shape is None:
        return None
    fmt, count = shape
    return fmt, (3 if fmt is DOUBLE else 2), count * fmt.bits // 8


def gen_lanes(ctx: DisasContext, a, op: LaneOp, scalar: bool = False) -> bool:
    """Vd[i] = op(Vn[i], Vm[i], Vd[i]) for every lane."""
    shape = _format(a, scalar)
    if shape is None:
        return False
    fmt, count = shape
    out = [op(ctx, fmt, read_lane(ctx, a.rn, fmt, i), read_lane(ctx, a.rm, fmt, i),
              read_lane(ctx, a.rd, fmt, i)) for i in range(count)]
    write_lanes(ctx, a.rd, fmt, out)
    return True


def gen_vector_fast(ctx: DisasContext, a, name: str, lane_path: Callable[[], bool],
                    element: tuple[int, int] | None = None, negate: bool = False) -> bool:
    """The vector op ``name`` (vfadd .. vfma: Vd = Vn op Vm, or Vn * Vm + Vd) on host
    vector registers, with ``lane_path`` (the lane-by-lane generators) where Arm's rules
    and the host's differ: when FPCR.FZ is set, and when a result lane is a NaN (Arm
    picks which NaN). The lane path then computes from the same operands, raising the
    same exceptions again (the flags are cumulative), so the guest sees exactly what
    the lane path alone gives. ``element``: Vm's lane (reg, index) broadcast;
    ``negate``: Vn negated first (FMLS)."""
    shape = _vector_shape(a)
    if shape is None:
        return False
    fmt, vece, oprsz = shape

    def sources() -> tuple[Temp, ...]:
        b = ctx.builder
        n, m = VQ[a.rn], VQ[a.rm]
        if element is not None:
            m = b.temp(V128)
            b.vector("vdupe", m, (VQ[element[0]],), vece, 16, element[1])
        if negate:
            sign, negated = b.temp(V128), b.temp(V128)
            b.vector("vdup", sign, (const(I64, fmt.sign),), vece, 16)
            b.vector("vxor", negated, (n, sign), vece, 16)
            n = negated
        return (n, m, VQ[a.rd]) if name == "vfma" else (n, m)
    return gen_vector_or_lanes(ctx, name, vece, oprsz, VQ[a.rd], sources, lane_path)


def gen_vector_or_lanes(ctx: DisasContext, name: str, vece: int, oprsz: int, dst: Temp,
                        sources: Callable[[], tuple[Temp, ...]],
                        lane_path: Callable[[], bool]) -> bool:
    """dst = the vector float op ``name`` of ``sources()`` (emitted after the FZ test)
    unless FPCR.FZ is set or a result lane is a NaN: then ``lane_path``, from the
    same operands (see gen_vector_fast)."""
    return gen_unless_fz(ctx, lambda lanes: _vector_fast_path(
        ctx, name, vece, oprsz, dst, sources, lanes), lane_path)


def _vector_fast_path(ctx: DisasContext, name: str, vece: int, oprsz: int, dst: Temp,
                      sources: Callable[[], tuple[Temp, ...]], lanes: Label) -> None:
    """gen_vector_or_lanes's vector path: to ``lanes`` where a result lane is odd."""
    b = ctx.builder
    result, odd = b.temp(V128), b.temp(I64)
    b.vector(name, result, sources(), vece, oprsz, DYN)
    if name in ("vfmul", "vfdiv", "vfma"):
        # Arm detects tininess before rounding, x86 after: a product or quotient that
        # rounded up to the smallest normal may owe Underflow, which the lane path
        # works out (a sum cannot be tiny and inexact). One test for both: the
        # magnitude (a signed lane) is above infinity's or the smallest normal's.
        bits = 8 << vece
        fmt = DOUBLE if bits == 64 else SINGLE
        mask, magnitude, limit, nan, edge, tiny = (b.temp(V128) for _ in range(6))
        b.vector("vdup", mask, (const(I64, ~fmt.sign & (1 << bits) - 1),), vece, 16)
        b.vector("vand", magnitude, (result, mask), vece, 16)
        b.vector("vdup", limit, (const(I64, fmt.exp_mask),), vece, 16)
        b.vector("vcmp", nan, (magnitude, limit), vece, oprsz, Cond.GT)
        b.vector("vdup", edge, (const(I64, 1 << fmt.mantissa),), vece, 16)
        b.vector("vcmp", tiny, (magnitude, edge), vece, oprsz, Cond.EQ)
        b.vector("vor", nan, (nan, tiny), vece, oprsz)
        b.vector("vany", odd, (nan,), vece, oprsz)
    else:
        b.vector("vfanynan", odd, (result,), vece, oprsz)
    b.brcond(Cond.NE, odd, const(I64, 0), lanes)
    b.vector("vmov", dst, (result,), 0, 16)


def gen_unless_fz(ctx: DisasContext, vector_path: Callable[[Label], None],
                  lane_path: Callable[[], bool]) -> bool:
    """The vector path (which may branch to the label it is given) unless FPCR.FZ is
    set (denormals are zeros: only the lane path knows), else — or where the vector
    path branched — ``lane_path``, which must take what the vector path took."""
    b = ctx.builder
    lanes, done = b.label(), b.label()
    fz = b.temp(I32)
    b.and_(fz, FPCR, const(I32, FPCR_FZ))
    b.brcond(Cond.NE, fz, const(I32, 0), lanes)
    vector_path(lanes)
    b.br(done)
    b.set_label(lanes)
    if not lane_path():
        raise AssertionError("the lane path rejected an encoding the vector path took")
    b.set_label(done)
    return True


def _fast(name: str, op: LaneOp, negate: bool = False):
    """A three-same vector translator: the vector op, the lanes where they differ."""
    def trans(ctx: DisasContext, a) -> bool:
        if _format(a, False) is None:
            return False
        return gen_vector_fast(ctx, a, name, lambda: gen_lanes(ctx, a, op), negate=negate)
    return trans


def _fast_elem(name: str, op: LaneOp, negate: bool = False):
    """A by-element vector translator (Vm's lane broadcast)."""
    def trans(ctx: DisasContext, a) -> bool:
        if not a.size & 2 or _format(a, False) is None or _element(a) is None:
            return False
        return gen_vector_fast(ctx, a, name, lambda: gen_by_element(ctx, a, op),
                               element=_element(a), negate=negate)
    return trans


def gen_pairwise(ctx: DisasContext, a, op: LaneOp) -> bool:
    """Vd[i] = op of adjacent lanes of Vn (first half of Vd) and Vm (second half)."""
    shape = _format(a, False)
    if shape is None:
        return False
    fmt, count = shape
    out = []
    for reg in (a.rn, a.rm):
        for i in range(0, count, 2):
            x, y = read_lane(ctx, reg, fmt, i), read_lane(ctx, reg, fmt, i + 1)
            out.append(op(ctx, fmt, x, y, x))
    write_lanes(ctx, a.rd, fmt, out)
    return True


def _element(a) -> tuple[int, int] | None:
    """(Vm, lane) of an FP by-element encoding (imm = H:L:M), None if unallocated."""
    h, l_, m = a.imm >> 2 & 1, a.imm >> 1 & 1, a.imm & 1
    if a.size & 1:
        return (None if l_ else (m << 4 | a.rm, h))
    return m << 4 | a.rm, h << 1 | l_


def gen_by_element(ctx: DisasContext, a, op: LaneOp, scalar: bool = False) -> bool:
    if not a.size & 2:
        return False  # size 0x: half precision (FEAT_FP16)
    shape, element = _format(a, scalar), _element(a)
    if shape is None or element is None:
        return False
    fmt, count = shape
    y = read_lane(ctx, element[0], fmt, element[1])
    out = [op(ctx, fmt, read_lane(ctx, a.rn, fmt, i), y, read_lane(ctx, a.rd, fmt, i))
           for i in range(count)]
    write_lanes(ctx, a.rd, fmt, out)
    return True


# -- lane operations ------------------------------------------------------------------------

def _arith(op: Callable) -> LaneOp:
    return lambda ctx, fmt, x, y, d: gen_fp_arith(ctx, fmt, op, x, y)


def _minmax(op: Callable, number: bool) -> LaneOp:
    return lambda ctx, fmt, x, y, d: gen_fp_minmax(ctx, fmt, op, number, x, y)


def _negate(ctx: DisasContext, fmt: _Format, x: Temp) -> Temp:
    t = ctx.builder.temp(fmt.ty)
    ctx.builder.xor(t, x, const(fmt.ty, fmt.sign))
    return t


def _abs(ctx: DisasContext, fmt: _Format, x: Temp) -> Temp:
    t = ctx.builder.temp(fmt.ty)
    ctx.builder.and_(t, x, const(fmt.ty, ~fmt.sign))
    return t


def _fmla(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
    return gen_fp_fma(ctx, fmt, x, y, d)


def _fmls(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
    return gen_fp_fma(ctx, fmt, _negate(ctx, fmt, x), y, d)  # the operand is negated


def _fabd(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
    return _abs(ctx, fmt, gen_fp_arith(ctx, fmt, Builder.fsub, x, y))


def _constant(fmt: _Format, value: float) -> int:
    """The bit pattern of a small exactly representable value (2.0, 1.5, 0.5 ...)."""
    if fmt is DOUBLE:
        return struct.unpack("<Q", struct.pack("<d", value))[0]
    return struct.unpack("<I", struct.pack("<f", value))[0]


def _fmulx(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
    """FMULX: FMUL, except that 0 * inf is 2.0 with the sign of the product (no
    Invalid): those operands become (+-2.0, 1.0) before the multiplication."""
    b, ty = ctx.builder, fmt.ty

    def compute(inputs: list[Temp]) -> Temp:
        x, y = inputs
        special = gen_zero_times_inf(ctx, fmt, x, y)
        two, x2, y2, r = b.temp(ty), b.temp(ty), b.temp(ty), b.temp(ty)
        b.xor(two, x, y)
        b.and_(two, two, const(ty, fmt.sign))
        b.or_(two, two, const(ty, _constant(fmt, 2.0)))
        b.movcond(Cond.NE, x2, special, const(ty, 0), two, x)
        b.movcond(Cond.NE, y2, special, const(ty, 0), const(ty, _constant(fmt, 1.0)), y)
        b.fmul(r, x2, y2, DYN)
        gen_nan_fixup(ctx, fmt, r, [x, y])
        return r

    def truncated(inputs: list[Temp]) -> Temp:  # (never 0 * inf: only for tiny results)
        r = b.temp(ty)
        b.fmul(r, inputs[0], inputs[1], RoundingMode.RTZ)
        return r
    return gen_flush_to_zero(ctx, fmt, [x, y], compute, truncated=truncated)


def _frecps(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
    """FRECPS: 2.0 - x*y fused (FPRecipStepFused: x negated first, so a NaN x comes
    out negated; 0 * inf gives +2.0 without Invalid)."""
    return _step(ctx, fmt, x, y, rsqrt=False)


def _frsqrts(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
    """FRSQRTS: (3.0 - x*y) / 2 rounded once (FPRSqrtStepFused; 0 * inf gives +1.5)."""
    return _step(ctx, fmt, x, y, rsqrt=True)


def _step(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, rsqrt: bool) -> Temp:
    b, ty = ctx.builder, fmt.ty

    def compute(inputs: list[Temp]) -> Temp:
        n, m = inputs
        special = gen_zero_times_inf(ctx, fmt, n, m)
        n2, m2, r = b.temp(ty), b.temp(ty), b.temp(ty)
        b.movcond(Cond.NE, n2, special, const(ty, 0), const(ty, 0), n)
        b.movcond(Cond.NE, m2, special, const(ty, 0), const(ty, 0), m)
        if not rsqrt:
            b.fma(r, n2, m2, const(ty, _constant(fmt, 2.0)), DYN)
        else:
            # (3 + n*m) / 2 with one rounding: 1.5 + (n/2)*m when halving n is exact
            # (a normal n above the lowest binade; the fused result cannot overflow
            # where 3 + n*m would not), else (3 + n*m) rounded, then halved, which is
            # then exact: |n| < 2**-125 (or 0, inf) keeps |n*m| < 8 and 3 + n*m, when
            # nonzero, far above the subnormals.
            exponent, halvable, low, high = b.temp(ty), b.temp(ty), b.temp(ty), b.temp(ty)
            b.and_(exponent, n2, const(ty, fmt.exp_mask))
            b.setcond(Cond.GEU, low, exponent, const(ty, 2 << fmt.mantissa))
            b.setcond(Cond.LTU, high, exponent, const(ty, fmt.exp_mask))
            b.and_(halvable, low, high)
            half_n, addend, scale = b.temp(ty), b.temp(ty), b.temp(ty)
            b.sub(half_n, n2, const(ty, 1 << fmt.mantissa))
            b.movcond(Cond.NE, n2, halvable, const(ty, 0), half_n, n2)
            b.movcond(Cond.NE, addend, halvable, const(ty, 0), const(ty, _constant(fmt, 1.5)),
                      const(ty, _constant(fmt, 3.0)))
            b.movcond(Cond.NE, scale, halvable, const(ty, 0), const(ty, _constant(fmt, 1.0)),
                      const(ty, _constant(fmt, 0.5)))
            b.fma(r, n2, m2, addend, DYN)
            b.fmul(r, r, scale, DYN)
        gen_nan_fixup(ctx, fmt, r, [n, m])
        return r
    return gen_flush_to_zero(ctx, fmt, [_negate(ctx, fmt, x), y], compute)


def _frecpx(ctx: DisasContext, fmt: _Format, x: Temp) -> Temp:
    """FRECPX: the sign, the exponent inverted (the largest finite exponent for zeros
    and denormals), a zero fraction; NaNs as arithmetic gives them."""
    b, ty = ctx.builder, fmt.ty

    def compute(inputs: list[Temp]) -> Temp:
        (x,) = inputs
        exponent, r, sign = b.temp(ty), b.temp(ty), b.temp(ty)
        b.and_(exponent, x, const(ty, fmt.exp_mask))
        b.xor(r, exponent, const(ty, fmt.exp_mask))
        b.movcond(Cond.EQ, r, exponent, const(ty, 0),
                  const(ty, fmt.exp_mask - (1 << fmt.mantissa)), r)
        b.and_(sign, x, const(ty, fmt.sign))
        b.or_(r, r, sign)
        force = b.temp(ty)  # a NaN operand
        b.setcond(Cond.GTU, force, _abs(ctx, fmt, x), const(ty, fmt.exp_mask))
        invalid = b.temp(I32)  # (no float op runs: a signalling NaN raises it here)
        if ty is I64:
            b.extr_i64_i32(invalid, gen_is_signalling(ctx, fmt, x))
        else:
            b.mov(invalid, gen_is_signalling(ctx, fmt, x))
        b.shl(invalid, invalid, const(I32, FFlag.INVALID.bit_length() - 1))
        gen_accrue_fflags(ctx, invalid)
        gen_nan_fixup(ctx, fmt, r, [x], force=force)
        return r
    return gen_flush_to_zero(ctx, fmt, [x], compute, flush_result=False)


def _mask(ctx: DisasContext, fmt: _Format, cond: FCond, x: Temp, y: Temp) -> Temp:
    """All ones if (x cond y), else zero."""
    b, ty = ctx.builder, fmt.ty
    x, y = flush_inputs(ctx, fmt, [x, y])
    t = b.temp(ty)
    b.fsetcond(cond, t, x, y)
    b.neg(t, t)
    return t


def _compare(cond: FCond, swap: bool = False, absolute: bool = False) -> LaneOp:
    def op(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
        if absolute:
            x, y = _abs(ctx, fmt, x), _abs(ctx, fmt, y)
        return _mask(ctx, fmt, cond, y, x) if swap else _mask(ctx, fmt, cond, x, y)
    return op


def _compare_zero(cond: FCond, swap: bool = False) -> LaneOp:
    def op(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
        zero = const(fmt.ty, 0)
        return _mask(ctx, fmt, cond, zero, x) if swap else _mask(ctx, fmt, cond, x, zero)
    return op


def _unary(fn: Callable[[DisasContext, _Format, Temp], Temp]) -> LaneOp:
    return lambda ctx, fmt, x, y, d: fn(ctx, fmt, x)


def _frint(mode: RoundingMode, exact: bool = False) -> LaneOp:
    return lambda ctx, fmt, x, y, d: gen_frint(ctx, fmt, x, mode, exact)


def _to_int(mode: RoundingMode, signed: bool) -> LaneOp:
    def op(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
        b = ctx.builder
        r, flags = b.temp(fmt.ty), b.temp(I32)
        (x,) = flush_inputs(ctx, fmt, [x])
        b.ftoi(r, flags, x, mode, signed=signed)
        gen_accrue_fflags(ctx, flags)
        return r
    return op


def _from_int(signed: bool) -> LaneOp:
    def op(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, d: Temp) -> Temp:
        r = ctx.builder.temp(fmt.ty)
        ctx.builder.itof(r, x, DYN, signed=signed)
        return r
    return op


def _vector(op: LaneOp):
    def trans(ctx: DisasContext, a) -> bool:
        return gen_lanes(ctx, a, op)
    return trans


def _scalar(op: LaneOp):
    def trans(ctx: DisasContext, a) -> bool:
        return gen_lanes(ctx, a, op, scalar=True)
    return trans


FADD = _arith(Builder.fadd)
FMAX = _minmax(Builder.fmax, False)
FMIN = _minmax(Builder.fmin, False)
FMAXNM = _minmax(Builder.fmax, True)
FMINNM = _minmax(Builder.fmin, True)
FCMEQ = _compare(FCond.EQ)
FCMGE = _compare(FCond.LE, swap=True)
FCMGT = _compare(FCond.LT, swap=True)
FACGE = _compare(FCond.LE, swap=True, absolute=True)
FACGT = _compare(FCond.LT, swap=True, absolute=True)

# Three registers of the same type.
trans_fadd_v = _fast("vfadd", FADD)
trans_fsub_v = _fast("vfsub", _arith(Builder.fsub))
trans_fmul_v = _fast("vfmul", _arith(Builder.fmul))
trans_fdiv_v = _fast("vfdiv", _arith(Builder.fdiv))
def _order_keys(ctx: DisasContext, x: Temp, vece: int) -> Temp:
    """The float lanes of x as signed integers in the floats' order (-0 below +0): a
    negative lane's bits but the sign flipped. Its own inverse."""
    b, bits = ctx.builder, 8 << vece
    flip, key = b.temp(V128), b.temp(V128)
    b.vector("vsari", flip, (x,), vece, 16, bits - 1)
    b.vector("vshri", flip, (flip,), vece, 16, 1)
    b.vector("vxor", key, (x, flip), vece, 16)
    return key


def _vector_minmax(name: str, lane_op: LaneOp, pairwise: bool = False):
    """FMAX/FMIN/FMAXNM/FMINNM (vector): without NaN operands and FZ all four are the
    larger (smaller) lane in the floats' order with -0 < +0, and raise nothing: an
    integer vsmax/vsmin of order keys. A NaN operand (Arm's NaN rules, and where
    FMAXNM differs) or FPCR.FZ (denormals are zeros) takes the lane path. Pairwise
    (FMAXP..): of UZP1 and UZP2 of Vn:Vm."""
    def trans(ctx: DisasContext, a) -> bool:
        shape = _vector_shape(a)
        if shape is None:
            return False
        fmt, vece, oprsz = shape

        def vector_path(lanes: Label) -> None:
            b = ctx.builder
            for reg in (a.rn, a.rm):
                nan = b.temp(I64)
                b.vector("vfanynan", nan, (VQ[reg],), vece, oprsz)
                b.brcond(Cond.NE, nan, const(I64, 0), lanes)
            x, y = VQ[a.rn], VQ[a.rm]
            if pairwise:
                x, y = b.temp(V128), b.temp(V128)
                b.vector("vuzp1", x, (VQ[a.rn], VQ[a.rm]), vece, oprsz)
                b.vector("vuzp2", y, (VQ[a.rn], VQ[a.rm]), vece, oprsz)
            picked = b.temp(V128)
            b.vector(name, picked, (_order_keys(ctx, x, vece), _order_keys(ctx, y, vece)),
                     vece, 16)
            b.vector("vmov", VQ[a.rd], (_order_keys(ctx, picked, vece),), 0, oprsz)
        return gen_unless_fz(ctx, vector_path, lambda: (
            gen_pairwise if pairwise else gen_lanes)(ctx, a, lane_op))
    return trans


trans_fmax_v = _vector_minmax("vsmax", FMAX)
trans_fmin_v = _vector_minmax("vsmin", FMIN)
trans_fmaxnm_v = _vector_minmax("vsmax", FMAXNM)
trans_fminnm_v = _vector_minmax("vsmin", FMINNM)
trans_fmaxp_v = _vector_minmax("vsmax", FMAX, pairwise=True)
trans_fminp_v = _vector_minmax("vsmin", FMIN, pairwise=True)
trans_fmaxnmp_v = _vector_minmax("vsmax", FMAXNM, pairwise=True)
trans_fminnmp_v = _vector_minmax("vsmin", FMINNM, pairwise=True)
trans_fmla_v = _fast("vfma", _fmla)
trans_fmls_v = _fast("vfma", _fmls, negate=True)
trans_fabd_v = _vector(_fabd)


def _vector_compare(cond: FCond, lane_op: LaneOp, swap: bool = False,
                    absolute: bool = False, zero: bool = False):
    """FCMEQ/FCMGE/FCMGT/FACGE/FACGT and the compares with zero (vector): one vfcmp
    (cmpps/cmppd: the same invalid rules as Arm's quiet EQ and signalling GE/GT), the
    lane path when FPCR.FZ is set (denormal operands are zeros, with IDC)."""
    def trans(ctx: DisasContext, a) -> bool:
        shape = _vector_shape(a)
        if shape is None:
            return False
        fmt, vece, oprsz = shape

        def vector_path(lanes: Label) -> None:
            b = ctx.builder
            x, y = VQ[a.rn], VQ[a.rm]
            if zero:
                y = b.temp(V128)
                b.vector("vdup", y, (ZERO,), vece, 16)
            if absolute:
                sign, abs_x, abs_y = b.temp(V128), b.temp(V128), b.temp(V128)
                b.vector("vdup", sign, (const(I64, fmt.sign),), vece, 16)
                b.vector("vandc", abs_x, (x, sign), vece, 16)
                b.vector("vandc", abs_y, (y, sign), vece, 16)
                x, y = abs_x, abs_y
            b.vector("vfcmp", VQ[a.rd], (y, x) if swap else (x, y), vece, oprsz, cond)
        return gen_unless_fz(ctx, vector_path, lambda: gen_lanes(ctx, a, lane_op))
    return trans


trans_fcmeq_v = _vector_compare(FCond.EQ, FCMEQ)
trans_fcmge_v = _vector_compare(FCond.LE, FCMGE, swap=True)
trans_fcmgt_v = _vector_compare(FCond.LT, FCMGT, swap=True)
trans_facge_v = _vector_compare(FCond.LE, FACGE, swap=True, absolute=True)
trans_facgt_v = _vector_compare(FCond.LT, FACGT, swap=True, absolute=True)


def trans_faddp_v(ctx: DisasContext, a) -> bool:
    """FADDP (vector): UZP1 + UZP2 of Vn:Vm (the first and second of each pair) added
    as one vector op (the lane path where FZ is set or a sum is a NaN)."""
    shape = _vector_shape(a)
    if shape is None:
        return False
    fmt, vece, oprsz = shape

    def sources() -> tuple[Temp, ...]:
        b = ctx.builder
        first, second = b.temp(V128), b.temp(V128)
        b.vector("vuzp1", first, (VQ[a.rn], VQ[a.rm]), vece, oprsz)
        b.vector("vuzp2", second, (VQ[a.rn], VQ[a.rm]), vece, oprsz)
        return first, second
    return gen_vector_or_lanes(ctx, "vfadd", vece, oprsz, VQ[a.rd], sources,
                               lambda: gen_pairwise(ctx, a, FADD))
trans_fmulx_v = _vector(_fmulx)
trans_frecps_v = _vector(_frecps)
trans_frsqrts_v = _vector(_frsqrts)
trans_fmulx_s = _scalar(_fmulx)
trans_frecps_s = _scalar(_frecps)
trans_frsqrts_s = _scalar(_frsqrts)
trans_frecpx_s = _scalar(_unary(_frecpx))
trans_fabd_s = _scalar(_fabd)
trans_fcmeq_s = _scalar(FCMEQ)
trans_fcmge_s = _scalar(FCMGE)
trans_fcmgt_s = _scalar(FCMGT)
trans_facge_s = _scalar(FACGE)
trans_facgt_s = _scalar(FACGT)

# Two-register miscellaneous (vector and scalar).
FCMGT0 = _compare_zero(FCond.LT, swap=True)
FCMGE0 = _compare_zero(FCond.LE, swap=True)
FCMEQ0 = _compare_zero(FCond.EQ)
FCMLE0 = _compare_zero(FCond.LE)
FCMLT0 = _compare_zero(FCond.LT)
CONVERSIONS = {
    "fcvtns": _to_int(RoundingMode.RNE, True), "fcvtnu": _to_int(RoundingMode.RNE, False),
    "fcvtms": _to_int(RoundingMode.RDN, True), "fcvtmu": _to_int(RoundingMode.RDN, False),
    "fcvtas": _to_int(RoundingMode.RMM, True), "fcvtau": _to_int(RoundingMode.RMM, False),
    "fcvtps": _to_int(RoundingMode.RUP, True), "fcvtpu": _to_int(RoundingMode.RUP, False),
    "fcvtzs": _to_int(RoundingMode.RTZ, True), "fcvtzu": _to_int(RoundingMode.RTZ, False),
    "scvtf": _from_int(True), "ucvtf": _from_int(False),
}


def _sign_bit(name: str):
    """FABS/FNEG vector: the sign bits cleared (vandc) or flipped (vxor); no exceptions
    and no NaN processing (as the lane forms), so always the vector op."""
    def trans(ctx: DisasContext, a) -> bool:
        shape = _vector_shape(a)
        if shape is None:
            return False
        fmt, vece, oprsz = shape
        b = ctx.builder
        sign = b.temp(V128)
        b.vector("vdup", sign, (const(I64, fmt.sign),), vece, 16)
        b.vector(name, VQ[a.rd], (VQ[a.rn], sign), vece, oprsz)
        return True
    return trans


trans_fabs_v = _sign_bit("vandc")
trans_fneg_v = _sign_bit("vxor")


def trans_fsqrt_v(ctx: DisasContext, a) -> bool:
    """FSQRT (vector): sqrtps/sqrtpd, the lane path under FZ or for a NaN result (a
    NaN or negative operand). A root is never tiny: no Underflow to work out."""
    shape = _vector_shape(a)
    if shape is None:
        return False
    _, vece, oprsz = shape
    return gen_vector_or_lanes(ctx, "vfsqrt", vece, oprsz, VQ[a.rd], lambda: (VQ[a.rn],),
                               lambda: gen_lanes(ctx, a, _unary(gen_fp_sqrt)))
trans_frintn_v = _vector(_frint(RoundingMode.RNE))
trans_frintm_v = _vector(_frint(RoundingMode.RDN))
trans_frintp_v = _vector(_frint(RoundingMode.RUP))
trans_frintz_v = _vector(_frint(RoundingMode.RTZ))
trans_frinta_v = _vector(_frint(RoundingMode.RMM))
trans_frintx_v = _vector(_frint(DYN, exact=True))
trans_frinti_v = _vector(_frint(DYN))
trans_fcmgt0_v = _vector_compare(FCond.LT, FCMGT0, swap=True, zero=True)
trans_fcmge0_v = _vector_compare(FCond.LE, FCMGE0, swap=True, zero=True)
trans_fcmeq0_v = _vector_compare(FCond.EQ, FCMEQ0, zero=True)
trans_fcmle0_v = _vector_compare(FCond.LE, FCMLE0, zero=True)
trans_fcmlt0_v = _vector_compare(FCond.LT, FCMLT0, zero=True)
trans_fcmgt0_s = _scalar(FCMGT0)
trans_fcmge0_s = _scalar(FCMGE0)
trans_fcmeq0_s = _scalar(FCMEQ0)
trans_fcmle0_s = _scalar(FCMLE0)
trans_fcmlt0_s = _scalar(FCMLT0)
for _name, _op in CONVERSIONS.items():
    globals()[f"trans_{_name}_v"] = _vector(_op)
    globals()[f"trans_{_name}_s"] = _scalar(_op)


def _from_int_vector(signed: bool):
    """SCVTF/UCVTF (vector, integer): one vector conversion in FPCR's rounding mode.
    Exact as the lane path: integers are never NaNs, never denormal results (FZ has
    nothing to flush) and raise only Inexact, which the host raises too."""
    def trans(ctx: DisasContext, a) -> bool:
        shape = _vector_shape(a)
        if shape is None:
            return False
        _, vece, oprsz = shape
        ctx.builder.vector("vitof" if signed else "vutof", VQ[a.rd], (VQ[a.rn],), vece,
                           oprsz, DYN)
        return True
    return trans


trans_scvtf_v = _from_int_vector(True)
trans_ucvtf_v = _from_int_vector(False)


def _to_lanes_unless_all(ctx: DisasContext, fits: Temp, vece: int, oprsz: int,
                         lanes: Label) -> None:
    """Branch to ``lanes`` unless every lane of the compare mask ``fits`` is set."""
    b = ctx.builder
    out, some_out = b.temp(V128), b.temp(I64)
    b.vector("vnot", out, (fits,), vece, oprsz)
    b.vector("vany", some_out, (out,), vece, oprsz)
    b.brcond(Cond.NE, some_out, const(I64, 0), lanes)


def _magnitude_below(ctx: DisasContext, fits: Temp, x: Temp, limit: Temp, fmt: _Format,
                     vece: int, oprsz: int) -> None:
    """fits = |x| < limit per lane (a quiet compare: a NaN lane is not below)."""
    b = ctx.builder
    sign, magnitude = b.temp(V128), b.temp(V128)
    b.vector("vdup", sign, (const(I64, fmt.sign),), vece, 16)
    b.vector("vandc", magnitude, (x, sign), vece, 16)
    b.vector("vfcmp", fits, (magnitude, limit), vece, oprsz, FCond.QLT)


def _strictly_between(ctx: DisasContext, fits: Temp, low: Temp, x: Temp, limit: Temp,
                      vece: int, oprsz: int) -> None:
    """fits = low < x < limit per lane (quiet compares: a NaN lane is not between)."""
    b = ctx.builder
    above = b.temp(V128)
    b.vector("vfcmp", fits, (x, limit), vece, oprsz, FCond.QLT)
    b.vector("vfcmp", above, (low, x), vece, oprsz, FCond.QLT)
    b.vector("vand", fits, (fits, above), vece, oprsz)


def _truncate_vector(signed: bool):
    """FCVTZS/FCVTZU (vector, integer): when FZ is clear and every lane is in range —
    magnitude below 2**(esize-1) for FCVTZS; above -1 and below 2**(esize-1) for
    FCVTZU, where a lane in (-1, 0] truncates to the 0 the signed conversion gives —
    (quiet compares: a NaN is in no range), one truncating vector conversion, whose only
    possible exception is Inexact, as Arm's. Otherwise the lane path (saturation, NaN
    to 0, Invalid, FZ's flushing); the compares raised Invalid only for a signalling
    NaN, which the lane path raises too."""
    def trans(ctx: DisasContext, a) -> bool:
        shape = _vector_shape(a)
        if shape is None:
            return False
        fmt, vece, oprsz = shape
        bias = (fmt.exp_mask >> fmt.mantissa) >> 1

        def vector_path(lanes: Label) -> None:
            b = ctx.builder
            limit, fits = b.temp(V128), b.temp(V128)
            # 2**(esize-1) as a float: the exponent field of bias + esize - 1.
            b.vector("vdup", limit, (const(I64, (bias + fmt.bits - 1) << fmt.mantissa),),
                     vece, 16)
            if signed:
                _magnitude_below(ctx, fits, VQ[a.rn], limit, fmt, vece, oprsz)
            else:
                minus_one = b.temp(V128)
                b.vector("vdup", minus_one, (const(I64, fmt.sign | bias << fmt.mantissa),),
                         vece, 16)
                _strictly_between(ctx, fits, minus_one, VQ[a.rn], limit, vece, oprsz)
            _to_lanes_unless_all(ctx, fits, vece, oprsz, lanes)
            b.vector("vftosi", VQ[a.rd], (VQ[a.rn],), vece, oprsz)
        return gen_unless_fz(ctx, vector_path, lambda: gen_lanes(
            ctx, a, CONVERSIONS["fcvtzs" if signed else "fcvtzu"]))
    return trans


trans_fcvtzs_v = _truncate_vector(True)
trans_fcvtzu_v = _truncate_vector(False)


def _round_vector(name: str, mode: RoundingMode, signed: bool):
    """FCVTNS/NU, FCVTMS/MU, FCVTPS/PU (vector, integer): when FZ is clear and every
    lane is in range — magnitude below 2**(mantissa-1), and not below -0 for the
    unsigned forms (quiet compares: a NaN is in no range) — each lane rounded to an
    integral value in ``mode`` as (x + 1.5*2**mantissa) - 1.5*2**mantissa (the sum is
    in the binade of unit spacing, so it rounds x's fraction away in that mode and is
    inexact exactly when x is not integral: Arm's only exception here; the difference
    is exact), then converted exactly by vftosi. Otherwise the lane path (larger
    values, NaN, saturation, ties away from zero: no x86 mode, FZ)."""
    lane_op = CONVERSIONS[name]

    def trans(ctx: DisasContext, a) -> bool:
        shape = _vector_shape(a)
        if shape is None:
            return False
        fmt, vece, oprsz = shape
        bias = (fmt.exp_mask >> fmt.mantissa) >> 1

        def vector_path(lanes: Label) -> None:
            b = ctx.builder
            limit, fits = b.temp(V128), b.temp(V128)
            b.vector("vdup", limit, (const(I64, (bias + fmt.mantissa - 1) << fmt.mantissa),),
                     vece, 16)
            _magnitude_below(ctx, fits, VQ[a.rn], limit, fmt, vece, oprsz)
            if not signed:
                zero, above = b.temp(V128), b.temp(V128)
                b.vector("vdup", zero, (ZERO,), vece, 16)
                b.vector("vfcmp", above, (zero, VQ[a.rn]), vece, oprsz, FCond.QLE)
                b.vector("vand", fits, (fits, above), vece, oprsz)
            _to_lanes_unless_all(ctx, fits, vece, oprsz, lanes)
            magic, shifted, rounded = (b.temp(V128) for _ in range(3))
            # 1.5 * 2**mantissa: exponent bias + mantissa, the fraction's top bit set.
            b.vector("vdup", magic, (const(I64, (bias + fmt.mantissa) << fmt.mantissa
                                           | 1 << (fmt.mantissa - 1)),), vece, 16)
            b.vector("vfadd", shifted, (VQ[a.rn], magic), vece, oprsz, mode)
            b.vector("vfsub", rounded, (shifted, magic), vece, oprsz, mode)
            b.vector("vftosi", VQ[a.rd], (rounded,), vece, oprsz)
        return gen_unless_fz(ctx, vector_path, lambda: gen_lanes(ctx, a, lane_op))
    return trans


for _name, _mode in (("n", RoundingMode.RNE), ("m", RoundingMode.RDN),
                     ("p", RoundingMode.RUP)):
    for _signed in (True, False):
        _conversion = f"fcvt{_name}{'s' if _signed else 'u'}"
        globals()[f"trans_{_conversion}_v"] = _round_vector(_conversion, _mode, _signed)


def _round_away_vector(signed: bool):
    """FCVTAS/FCVTAU (vector, integer): ties away from zero, which x86 has no mode for.
    When FZ is clear and every lane is in range — magnitude below 2**(esize-1) for
    FCVTAS; above -0.5 and below 2**(esize-1) for FCVTAU (-0.5 rounds to -1:
    saturation) — each lane truncated by vftosi (Inexact exactly when the lane is not
    integral: Arm's only exception here), the fraction x - trunc(x) taken (exact: no
    exception) and compared with +-0.5 (quiet compares, no NaN in range), and the
    truncation moved one away from zero where the fraction is at least a half.
    Otherwise the lane path (saturation, NaN, Invalid, FZ)."""
    lane_op = CONVERSIONS["fcvtas" if signed else "fcvtau"]

    def trans(ctx: DisasContext, a) -> bool:
        shape = _vector_shape(a)
        if shape is None:
            return False
        fmt, vece, oprsz = shape
        bias = (fmt.exp_mask >> fmt.mantissa) >> 1
        half_bits = (bias - 1) << fmt.mantissa

        def vector_path(lanes: Label) -> None:
            b = ctx.builder
            limit, fits, half, minus_half = (b.temp(V128) for _ in range(4))
            b.vector("vdup", limit, (const(I64, (bias + fmt.bits - 1) << fmt.mantissa),),
                     vece, 16)
            b.vector("vdup", half, (const(I64, half_bits),), vece, 16)
            b.vector("vdup", minus_half, (const(I64, fmt.sign | half_bits),), vece, 16)
            if signed:
                _magnitude_below(ctx, fits, VQ[a.rn], limit, fmt, vece, oprsz)
            else:
                _strictly_between(ctx, fits, minus_half, VQ[a.rn], limit, vece, oprsz)
            _to_lanes_unless_all(ctx, fits, vece, oprsz, lanes)
            truncated, back, fraction, up, down, result = (b.temp(V128) for _ in range(6))
            b.vector("vftosi", truncated, (VQ[a.rn],), vece, oprsz)
            # (both exact: any rounding mode gives them, so FPCR's, with no switch; x - x
            # is -0 rounding down, which compares as +0)
            b.vector("vitof", back, (truncated,), vece, oprsz, DYN)
            b.vector("vfsub", fraction, (VQ[a.rn], back), vece, oprsz, DYN)
            b.vector("vfcmp", up, (half, fraction), vece, oprsz, FCond.QLE)
            b.vector("vfcmp", down, (fraction, minus_half), vece, oprsz, FCond.QLE)
            b.vector("vsub", result, (truncated, up), vece, oprsz)  # (a set mask is -1)
            b.vector("vadd", VQ[a.rd], (result, down), vece, oprsz)
        return gen_unless_fz(ctx, vector_path, lambda: gen_lanes(ctx, a, lane_op))
    return trans


trans_fcvtas_v = _round_away_vector(True)
trans_fcvtau_v = _round_away_vector(False)


# Scalar pairwise: the two lanes of Vn (singles from its low half, doubles from all).
def _pairwise_scalar(op: LaneOp):
    def trans(ctx: DisasContext, a) -> bool:
        fmt = DOUBLE if a.size & 1 else SINGLE
        x, y = read_lane(ctx, a.rn, fmt, 0), read_lane(ctx, a.rn, fmt, 1)
        write_lanes(ctx, a.rd, fmt, [op(ctx, fmt, x, y, x)])
        return True
    return trans


def trans_faddp_s(ctx: DisasContext, a) -> bool:
    """FADDP (scalar): of doubles, Vn's lanes 0 + 1 as a one-lane vector op (the lane
    path where FZ is set or the sum is a NaN); of singles, the lane path."""
    if not a.size & 1:
        return _faddp_scalar_lanes(ctx, a)

    def sources() -> tuple[Temp, ...]:
        upper = ctx.builder.temp(V128)
        ctx.builder.vector("vdupe", upper, (VQ[a.rn],), 3, 16, 1)
        return VQ[a.rn], upper
    return gen_vector_or_lanes(ctx, "vfadd", 3, 8, VQ[a.rd], sources,
                               lambda: _faddp_scalar_lanes(ctx, a))


_faddp_scalar_lanes = _pairwise_scalar(FADD)
trans_fmaxp_s = _pairwise_scalar(FMAX)
trans_fminp_s = _pairwise_scalar(FMIN)
trans_fmaxnmp_s = _pairwise_scalar(FMAXNM)
trans_fminnmp_s = _pairwise_scalar(FMINNM)


# Across lanes (only the four-single form exists without FEAT_FP16): a pairwise tree,
# op(op(e0, e1), op(e2, e3)), as the Arm ARM's Reduce.
def _across(op: LaneOp):
    def trans(ctx: DisasContext, a) -> bool:
        if not a.q or a.size & 1:
            return False
        e = [read_lane(ctx, a.rn, SINGLE, i) for i in range(4)]
        low, high = op(ctx, SINGLE, e[0], e[1], e[0]), op(ctx, SINGLE, e[2], e[3], e[2])
        write_lanes(ctx, a.rd, SINGLE, [op(ctx, SINGLE, low, high, low)])
        return True
    return trans


def _across_vector(name: str, lane_op: LaneOp):
    """FMAXV/FMINV/FMAXNMV/FMINNMV: without NaN lanes and FZ, the largest (smallest)
    lane in the floats' order with -0 < +0, raising nothing (as _vector_minmax): two
    vsmax/vsmin steps over order keys, each against the lanes swapped by a vperm. A
    NaN lane or FPCR.FZ takes the lane path (Arm's Reduce tree)."""
    lane_path = _across(lane_op)

    def trans(ctx: DisasContext, a) -> bool:
        if not a.q or a.size & 1:
            return False

        def vector_path(lanes: Label) -> None:
            b = ctx.builder
            nan = b.temp(I64)
            b.vector("vfanynan", nan, (VQ[a.rn],), 2, 16)
            b.brcond(Cond.NE, nan, const(I64, 0), lanes)
            acc = _order_keys(ctx, VQ[a.rn], 2)
            for swap in ([2, 3, 0, 1], [1, 0, 3, 2]):
                other, picked = b.temp(V128), b.temp(V128)
                b.vector("vperm", other, (acc, acc), 2, 16, pack_permute(swap))
                b.vector(name, picked, (acc, other), 2, 16)
                acc = picked
            low = b.temp(V128)
            b.vector("vdup", low, (const(I64, 0xFFFF_FFFF),), 3, 8)  # (lane 0 only)
            b.vector("vand", VQ[a.rd], (_order_keys(ctx, acc, 2), low), 0, 16)
        return gen_unless_fz(ctx, vector_path, lambda: lane_path(ctx, a))
    return trans


trans_fmaxnmv_v = _across_vector("vsmax", FMAXNM)
trans_fmaxv_v = _across_vector("vsmax", FMAX)
trans_fminnmv_v = _across_vector("vsmin", FMINNM)
trans_fminv_v = _across_vector("vsmin", FMIN)


# Long and narrow conversions between single and double precision.
def trans_fcvtl_v(ctx: DisasContext, a) -> bool:
    """FCVTL/FCVTL2: the singles of Vn's lower (upper) half widened to doubles."""
    if not a.size & 1:  # half to single
        return gen_fcvt_half(ctx, fp16.FCVTL_H, a.rn, a.rd, a.q)
    out = []
    for i in range(2):
        out.append(gen_fcvt(ctx, SINGLE, DOUBLE, read_lane(ctx, a.rn, SINGLE, 2 * a.q + i)))
    write_lanes(ctx, a.rd, DOUBLE, out)
    return True


def trans_fcvtn_v(ctx: DisasContext, a) -> bool:
    """FCVTN/FCVTN2: the doubles of Vn narrowed to singles in Vd's lower half (upper
    half, keeping the lower)."""
    if not a.size & 1:  # single to half
        return gen_fcvt_half(ctx, fp16.FCVTN_H, a.rn, a.rd, a.q)
    b = ctx.builder
    narrow = []
    for i in range(2):
        narrow.append(gen_fcvt(ctx, DOUBLE, SINGLE, read_lane(ctx, a.rn, DOUBLE, i)))
    half = b.temp(I64)
    b.ext_i32_i64(half, narrow[0], signed=False)
    upper = b.temp(I64)
    b.ext_i32_i64(upper, narrow[1], signed=False)
    b.deposit(half, half, upper, 32, 32)
    if a.q:
        b.mov(V[2 * a.rd + 1], half)
    else:
        b.mov(V[2 * a.rd], half)
        b.movi(V[2 * a.rd + 1], 0)
    return True


# By element.
def _elem(op: LaneOp, scalar: bool = False):
    def trans(ctx: DisasContext, a) -> bool:
        return gen_by_element(ctx, a, op, scalar)
    return trans


trans_fmla_elem = _fast_elem("vfma", _fmla)
trans_fmls_elem = _fast_elem("vfma", _fmls, negate=True)
trans_fmul_elem = _fast_elem("vfmul", _arith(Builder.fmul))
trans_fmla_elem_s = _elem(_fmla, scalar=True)
trans_fmls_elem_s = _elem(_fmls, scalar=True)
trans_fmul_elem_s = _elem(_arith(Builder.fmul), scalar=True)
trans_fmulx_elem = _elem(_fmulx)
trans_fmulx_elem_s = _elem(_fmulx, scalar=True)


# Conversions between floating point and fixed point (#fbits), vector and scalar: the
# shift-by-immediate encodings, immh selecting the lane size (01xx single, 1xxx
# double; 001x half precision is FEAT_FP16), fbits = 2 * lane bits - immh:immb.
def _fixed(to_fixed: bool, signed: bool, scalar: bool):
    def trans(ctx: DisasContext, a) -> bool:
        immh = a.imm >> 3
        if immh < 4 or (immh >= 8 and not a.q and not scalar):
            return False
        fmt = DOUBLE if immh >= 8 else SINGLE
        fbits = 2 * fmt.bits - a.imm
        count = 1 if scalar else (128 if a.q else 64) // fmt.bits
        out = []
        for i in range(count):
            x = read_lane(ctx, a.rn, fmt, i)
            out.append(gen_fp_to_fixed(ctx, fmt, x, fbits, signed, fmt.ty) if to_fixed
                       else gen_fixed_to_fp(ctx, fmt, x, fbits, signed))
        write_lanes(ctx, a.rd, fmt, out)
        return True
    return trans


trans_scvtf_fix_v = _fixed(False, True, False)
trans_ucvtf_fix_v = _fixed(False, False, False)
trans_fcvtzs_fix_v = _fixed(True, True, False)
trans_fcvtzu_fix_v = _fixed(True, False, False)
trans_scvtf_fix_s = _fixed(False, True, True)
trans_ucvtf_fix_s = _fixed(False, False, True)
trans_fcvtzs_fix_s = _fixed(True, True, True)
trans_fcvtzu_fix_s = _fixed(True, False, True)


# Estimates (estimate.py, in a helper: Arm's tables, not host arithmetic).
def _estimate(operation: int, scalar: bool = False):
    def trans(ctx: DisasContext, a) -> bool:
        sz = a.size & 1
        if operation in (estimate.URECPE, estimate.URSQRTE) and sz:
            return False
        esize = 64 if sz else 32
        if scalar:
            count = 1
        elif esize == 64 and not a.q:
            return False
        else:
            count = (128 if a.q else 64) // esize
        ctx.builder.call(estimate.ESTIMATE_HELPER.name, (), tuple(
            const(I64, x) for x in (operation, esize, count, a.rd, a.rn)))
        return True
    return trans


trans_frecpe_v = _estimate(estimate.FRECPE)
trans_frsqrte_v = _estimate(estimate.FRSQRTE)
trans_urecpe_v = _estimate(estimate.URECPE)
trans_ursqrte_v = _estimate(estimate.URSQRTE)
trans_frecpe_s = _estimate(estimate.FRECPE, scalar=True)
trans_frsqrte_s = _estimate(estimate.FRSQRTE, scalar=True)


def _fcvtxn(ctx: DisasContext, x: Temp) -> Temp:
    """FCVTXN: a double to single precision rounded to odd (towards zero, then the
    lowest bit set if that was inexact), so that a later rounding to a narrower format
    is correct. NaNs as FCVT gives them."""
    b = ctx.builder

    def compute(inputs: list[Temp]) -> Temp:
        (x,) = inputs
        r, back, inexact, finite = b.temp(I32), b.temp(I64), b.temp(I64), b.temp(I64)
        b.fcvt(r, x, RoundingMode.RTZ)
        b.fcvt(back, r, RoundingMode.RTZ)  # exact (or a NaN)
        b.setcond(Cond.NE, inexact, back, x)
        b.setcond(Cond.LEU, finite, _abs(ctx, DOUBLE, x), const(I64, DOUBLE.exp_mask))
        b.and_(inexact, inexact, finite)
        odd = b.temp(I32)
        b.extr_i64_i32(odd, inexact)
        b.or_(r, r, odd)
        done, dn = b.label(), b.temp(I32)
        b.brcond(Cond.NE, finite, const(I64, 0), done)
        b.and_(dn, FPCR, const(I32, FPCR_DN))
        b.brcond(Cond.EQ, dn, const(I32, 0), done)
        b.movi(r, SINGLE.default_nan)
        b.set_label(done)
        return r
    return gen_flush_to_zero(ctx, DOUBLE, [x], compute, result_fmt=SINGLE)


def trans_fcvtxn_v(ctx: DisasContext, a) -> bool:
    """FCVTXN/FCVTXN2: two doubles to singles in Vd's lower half (upper, keeping the
    lower); sz = 0 is unallocated."""
    if not a.size & 1:
        return False
    b = ctx.builder
    narrow = [_fcvtxn(ctx, read_lane(ctx, a.rn, DOUBLE, i)) for i in range(2)]
    half, upper = b.temp(I64), b.temp(I64)
    b.ext_i32_i64(half, narrow[0], signed=False)
    b.ext_i32_i64(upper, narrow[1], signed=False)
    b.deposit(half, half, upper, 32, 32)
    if a.q:
        b.mov(V[2 * a.rd + 1], half)
    else:
        b.mov(V[2 * a.rd], half)
        b.movi(V[2 * a.rd + 1], 0)
    return True


def trans_fcvtxn_s(ctx: DisasContext, a) -> bool:
    if not a.size & 1:
        return False
    write_lanes(ctx, a.rd, SINGLE, [_fcvtxn(ctx, read_lane(ctx, a.rn, DOUBLE, 0))])
    return True
