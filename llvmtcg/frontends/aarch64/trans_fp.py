"""Scalar floating point (single and double precision) on the host FP unit.

Arithmetic uses the IR's IEEE float ops in the dynamic rounding mode (the run loop
loads FPCR.RMode; MSR FPCR changes it at once), so results and FPSR's cumulative flags
are the host's, which IEEE 754 fixes. What IEEE leaves open is Arm's business and is
composed here with integer ops on the NaN path only: which NaN a result is (the first
signalling NaN operand quieted, else the first quiet NaN, else the default NaN
0x7fc00000/0x7ff8000000000000), FMAX/FMIN propagating NaNs, FMAXNM/FMINNM doing so for
signalling NaNs. Conversions to integer saturate (NaN: 0) with their flags in FPSR.
FPCR.DN (default NaN) is tested on the NaN path only. FPCR.FZ (flush to zero) is tested
once per operation: with it set, denormal inputs become zeros (FPSR.IDC) and denormal
results zeros with Underflow but not Inexact, the operation's host flags being taken
apart from earlier ones for that (gen_flush_to_zero).
"""

from __future__ import annotations

from collections.abc import Callable

from llvmtcg.frontends.aarch64 import fp16
from llvmtcg.frontends.aarch64.simd_lanes import expand_imm
from llvmtcg.frontends.aarch64.translate import (
    CF,
    GLOBALS,
    INVERT,
    NF,
    VF,
    ZF,
    DisasContext,
    V,
    gen_accrue_fflags,
    gen_set_nzcv,
    gen_test_cc,
)
from llvmtcg.ir import I32, I64, Builder, Cond, Temp, const
from llvmtcg.ir.types import FCond, FFlag, IRType, RoundingMode

DYN = RoundingMode.DYN
FPCR = GLOBALS["fpcr"]
FPSR = GLOBALS["fpsr"]
FPCR_FZ = 1 << 24
FPCR_DN = 1 << 25
FPSR_IDC = 1 << 7


class _Format:
    """Bit layout of binary32 / binary64."""

    def __init__(self, ty: IRType, mantissa: int, bias: int) -> None:
        self.ty = ty
        self.bits = ty.bits
        self.mantissa = mantissa
        self.sign = 1 << (self.bits - 1)
        self.exp_mask = ((1 << (self.bits - 1 - mantissa)) - 1) << mantissa  # = +inf
        self.quiet = 1 << (mantissa - 1)
        self.default_nan = self.exp_mask | self.quiet
        self.integral_limit = (bias + mantissa) << mantissa  # 2**mantissa


SINGLE = _Format(I32, 23, 127)
DOUBLE = _Format(I64, 52, 1023)
_FORMATS = {0: SINGLE, 1: DOUBLE}


def read_fp(ctx: DisasContext, reg: int, fmt: _Format) -> Temp:
    if fmt is DOUBLE:
        return V[2 * reg]
    value = ctx.builder.temp(I32)
    ctx.builder.extr_i64_i32(value, V[2 * reg])
    return value


def write_fp(ctx: DisasContext, reg: int, value: Temp) -> None:
    """A scalar write: the rest of the vector register becomes zero."""
    b = ctx.builder
    if value.type is I64:
        b.mov(V[2 * reg], value)
    else:
        b.ext_i32_i64(V[2 * reg], value, signed=False)
    b.movi(V[2 * reg + 1], 0)


def gen_is_signalling(ctx: DisasContext, fmt: _Format, x: Temp) -> Temp:
    """1 if x is a signalling NaN, else 0 (same type as x)."""
    b, ty = ctx.builder, fmt.ty
    t, result = b.temp(ty), b.temp(ty)
    b.and_(t, x, const(ty, ~fmt.sign))
    b.sub(t, t, const(ty, fmt.exp_mask + 1))
    b.setcond(Cond.LTU, result, t, const(ty, fmt.quiet - 1))
    return result


def gen_nan_fixup(ctx: DisasContext, fmt: _Format, result: Temp, operands: list[Temp],
                  force: Temp | None = None, fma_addend_rule: bool = False) -> None:
    """Make ``result`` Arm's NaN when it is a NaN (or when ``force`` is nonzero): the
    first signalling operand quieted, else the first quiet NaN operand, else the
    default NaN. With ``fma_addend_rule`` (operands = addend, op1, op2), a quiet-NaN
    addend with op1*op2 = 0*inf gives the default NaN."""
    b, ty = ctx.builder, fmt.ty
    done, nan_path = b.label(), b.label()
    magnitude = b.temp(ty)
    if force is not None:
        b.brcond(Cond.NE, force, const(ty, 0), nan_path)
    b.and_(magnitude, result, const(ty, ~fmt.sign))
    b.brcond(Cond.LEU, magnitude, const(ty, fmt.exp_mask), done)
    b.set_label(nan_path)
    b.movi(result, fmt.default_nan)
    dn = b.temp(I32)
    b.and_(dn, FPCR, const(I32, FPCR_DN))
    b.brcond(Cond.NE, dn, const(I32, 0), done)  # FPCR.DN: the default NaN
    quiet_nan = const(ty, fmt.exp_mask | fmt.quiet)
    for x in reversed(operands):  # the first quiet NaN wins: apply it last
        m = b.temp(ty)
        b.and_(m, x, const(ty, ~fmt.sign))
        b.movcond(Cond.GEU, result, m, quiet_nan, x, result)
    if fma_addend_rule:
        addend, op1, op2 = operands
        zero_times_inf = gen_zero_times_inf(ctx, fmt, op1, op2)
        m = b.temp(ty)
        b.and_(m, addend, const(ty, ~fmt.sign))
        b.setcond(Cond.GEU, m, m, quiet_nan)
        b.and_(m, m, zero_times_inf)
        b.movcond(Cond.NE, result, m, const(ty, 0), const(ty, fmt.default_nan), result)
    for x in reversed(operands):
        snan, quieted = gen_is_signalling(ctx, fmt, x), b.temp(ty)
        b.or_(quieted, x, const(ty, fmt.quiet))
        b.movcond(Cond.NE, result, snan, const(ty, 0), quieted, result)
    b.set_label(done)


def gen_zero_times_inf(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp) -> Temp:
    b, ty = ctx.builder, fmt.ty
    mx, my = b.temp(ty), b.temp(ty)
    b.and_(mx, x, const(ty, ~fmt.sign))
    b.and_(my, y, const(ty, ~fmt.sign))
    xz, xi, yz, yi, r1, r2 = (b.temp(ty) for _ in range(6))
    b.setcond(Cond.EQ, xz, mx, const(ty, 0))
    b.setcond(Cond.EQ, xi, mx, const(ty, fmt.exp_mask))
    b.setcond(Cond.EQ, yz, my, const(ty, 0))
    b.setcond(Cond.EQ, yi, my, const(ty, fmt.exp_mask))
    b.and_(r1, xz, yi)
    b.and_(r2, xi, yz)
    b.or_(r1, r1, r2)
    return r1


# -- flush to zero ---------------------------------------------------------------------------

def gen_flush_to_zero(ctx: DisasContext, fmt: _Format, operands: list[Temp],
                      compute: Callable[[list[Temp]], Temp], flush_result: bool = True,
                      result_fmt: _Format | None = None,
                      truncated: Callable[[list[Temp]], Temp] | None = None) -> Temp:
    """compute(operands) with FPCR.FZ honoured: when it is set, denormal operands are
    zeros of their sign (FPSR.IDC), and a denormal result (of ``result_fmt``) is a
    zero with Underflow but not Inexact.

    Arm flushes by the exact result: one below the smallest normal that rounds up to
    it is flushed too (the host calls it normal). ``truncated(operands)``, the bare
    operation rounded towards zero, tells those apart when the rounded result is the
    smallest normal and inexact: the exact one was below iff the truncated one is
    (operations whose results can round up to it: multiplication, division, fused
    multiply-add, narrowing conversion)."""
    b, ty = ctx.builder, fmt.ty
    fz = b.temp(I32)
    b.and_(fz, FPCR, const(I32, FPCR_FZ))
    inputs = []
    for x in operands:
        t = b.temp(ty)
        b.mov(t, x)
        inputs.append(t)
    plain = b.label()
    b.brcond(Cond.EQ, fz, const(I32, 0), plain)
    _take_host_flags(ctx)  # so that the flags taken below are this operation's
    for t in inputs:
        _flush_input(ctx, fmt, t)
    b.set_label(plain)
    result = compute(inputs)
    if flush_result:
        out = result_fmt or fmt
        done, unflushed = b.label(), b.label()
        b.brcond(Cond.EQ, fz, const(I32, 0), unflushed)
        raised, exponent, tiny = b.temp(I32), b.temp(out.ty), b.temp(out.ty)
        b.fpenv_flags(raised)
        b.and_(exponent, result, const(out.ty, out.exp_mask))
        b.setcond(Cond.EQ, tiny, exponent, const(out.ty, 0))
        # Tiny: a denormal, or a zero that is not exact (it underflowed).
        magnitude, nonzero, underflowed = b.temp(out.ty), b.temp(out.ty), b.temp(I32)
        b.and_(magnitude, result, const(out.ty, ~out.sign))
        b.setcond(Cond.NE, nonzero, magnitude, const(out.ty, 0))
        b.and_(underflowed, raised, const(I32, int(FFlag.UNDERFLOW | FFlag.INEXACT)))
        b.setcond(Cond.NE, underflowed, underflowed, const(I32, 0))
        if out.ty is I64:
            wide = b.temp(I64)
            b.ext_i32_i64(wide, underflowed, signed=False)
            b.or_(nonzero, nonzero, wide)
        else:
            b.or_(nonzero, nonzero, underflowed)
        b.and_(tiny, tiny, nonzero)
        if truncated is not None:
            exact_known, inexact = b.label(), b.temp(I32)
            b.brcond(Cond.NE, magnitude, const(out.ty, 1 << out.mantissa), exact_known)
            b.and_(inexact, raised, const(I32, int(FFlag.INEXACT)))
            b.brcond(Cond.EQ, inexact, const(I32, 0), exact_known)
            below, ignored = b.temp(out.ty), b.temp(I32)
            b.and_(below, truncated(inputs), const(out.ty, ~out.sign))
            b.fpenv_flags(ignored)  # (the recomputation's own exceptions)
            b.setcond(Cond.LTU, below, below, const(out.ty, 1 << out.mantissa))
            b.or_(tiny, tiny, below)
            b.set_label(exact_known)
        flushed_flags, zero = b.temp(I32), b.temp(out.ty)
        b.and_(flushed_flags, raised, const(I32, ~int(FFlag.INEXACT)))
        b.or_(flushed_flags, flushed_flags, const(I32, int(FFlag.UNDERFLOW)))
        tiny32 = b.temp(I32)
        if out.ty is I64:
            b.extr_i64_i32(tiny32, tiny)
        else:
            b.mov(tiny32, tiny)
        b.movcond(Cond.NE, raised, tiny32, const(I32, 0), flushed_flags, raised)
        b.and_(zero, result, const(out.ty, out.sign))
        b.movcond(Cond.NE, result, tiny, const(out.ty, 0), zero, result)
        gen_accrue_fflags(ctx, raised)
        b.br(done)
        b.set_label(unflushed)
        if truncated is not None:
            _underflow_before_rounding(ctx, out, result, lambda: truncated(inputs))
        b.set_label(done)
    return result


def _underflow_before_rounding(ctx: DisasContext, out: _Format, result: Temp,
                               truncated: Callable[[], Temp]) -> None:
    """Without FZ: Arm detects tininess before rounding, the host after, so a result
    that rounded up to the smallest normal from below owes Underflow (it is inexact
    then). The truncated operation tells: the exact result was below iff it is. (The
    host flags so far are taken first; the recomputation's own are dropped.)"""
    b = ctx.builder
    done = b.label()
    magnitude = b.temp(out.ty)
    b.and_(magnitude, result, const(out.ty, ~out.sign))
    b.brcond(Cond.NE, magnitude, const(out.ty, 1 << out.mantissa), done)
    _take_host_flags(ctx)
    below, ignored, flags = b.temp(out.ty), b.temp(I32), b.temp(I32)
    b.and_(below, truncated(), const(out.ty, ~out.sign))
    b.fpenv_flags(ignored)
    b.movi(flags, 0)
    b.movcond(Cond.LTU, flags, below, const(out.ty, 1 << out.mantissa),
              const(I32, int(FFlag.UNDERFLOW)), flags)
    gen_accrue_fflags(ctx, flags)
    b.set_label(done)


def flush_inputs(ctx: DisasContext, fmt: _Format, operands: list[Temp]) -> list[Temp]:
    """The operands, denormals flushed to zero when FPCR.FZ is set (for operations
    whose result is not a float: compares, conversions to integers)."""
    out: list[Temp] = []

    def keep(inputs: list[Temp]) -> Temp:
        out.extend(inputs)
        return inputs[0]
    gen_flush_to_zero(ctx, fmt, operands, keep, flush_result=False)
    return out


def _take_host_flags(ctx: DisasContext) -> None:
    raised = ctx.builder.temp(I32)
    ctx.builder.fpenv_flags(raised)
    gen_accrue_fflags(ctx, raised)


def _flush_input(ctx: DisasContext, fmt: _Format, x: Temp) -> None:
    """x = a zero of its sign if it is denormal, setting FPSR.IDC."""
    b, ty = ctx.builder, fmt.ty
    exponent, magnitude, denormal = b.temp(ty), b.temp(ty), b.temp(ty)
    b.and_(exponent, x, const(ty, fmt.exp_mask))
    b.and_(magnitude, x, const(ty, ~fmt.sign))
    b.setcond(Cond.EQ, denormal, exponent, const(ty, 0))
    nonzero = b.temp(ty)
    b.setcond(Cond.NE, nonzero, magnitude, const(ty, 0))
    b.and_(denormal, denormal, nonzero)
    zero = b.temp(ty)
    b.and_(zero, x, const(ty, fmt.sign))
    b.movcond(Cond.NE, x, denormal, const(ty, 0), zero, x)
    idc = b.temp(I32)
    if ty is I64:
        b.extr_i64_i32(idc, denormal)
    else:
        b.mov(idc, denormal)
    b.shl(idc, idc, const(I32, 7))
    b.or_(FPSR, FPSR, idc)


# -- one source ---------------------------------------------------------------------------

def _sign_op(ctx: DisasContext, a, op: Callable[[Builder, Temp, Temp, Temp], None],
             mask_of: Callable[[_Format], int]) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    r = ctx.builder.temp(fmt.ty)
    op(ctx.builder, r, read_fp(ctx, a.rn, fmt), const(fmt.ty, mask_of(fmt)))
    write_fp(ctx, a.rd, r)
    return True


def trans_fabs(ctx: DisasContext, a) -> bool:
    return _sign_op(ctx, a, Builder.and_, lambda f: ~f.sign)


def trans_fneg(ctx: DisasContext, a) -> bool:
    return _sign_op(ctx, a, Builder.xor, lambda f: f.sign)


def trans_fsqrt(ctx: DisasContext, a) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    write_fp(ctx, a.rd, gen_fp_sqrt(ctx, fmt, read_fp(ctx, a.rn, fmt)))
    return True


def gen_fp_sqrt(ctx: DisasContext, fmt: _Format, x: Temp) -> Temp:
    def compute(inputs: list[Temp]) -> Temp:
        r = ctx.builder.temp(fmt.ty)
        ctx.builder.fsqrt(r, inputs[0], DYN)
        gen_nan_fixup(ctx, fmt, r, inputs)
        return r
    return gen_flush_to_zero(ctx, fmt, [x], compute)


def gen_fcvt_half(ctx: DisasContext, operation: int, rn: int, rd: int, q: int = 0) -> bool:
    """A conversion with a half-precision side (fp16.py, in the helper)."""
    ctx.builder.call(fp16.FCVT_HALF_HELPER.name, (), tuple(
        const(I64, x) for x in (operation, rn, rd, q)))
    return True


def _fcvt(ctx: DisasContext, a, target: _Format) -> bool:
    if a.ftype == 3:  # from half
        operation = fp16.FCVT_H_TO_S if target is SINGLE else fp16.FCVT_H_TO_D
        return gen_fcvt_half(ctx, operation, a.rn, a.rd)
    fmt = _FORMATS.get(a.ftype)
    if fmt is None or fmt is target:
        return False
    write_fp(ctx, a.rd, gen_fcvt(ctx, fmt, target, read_fp(ctx, a.rn, fmt)))
    return True


def gen_fcvt(ctx: DisasContext, fmt: _Format, target: _Format, x: Temp) -> Temp:
    """FCVT between single and double: a NaN keeps its sign and payload's top bits,
    quieted (as the host converts it), or is the default NaN under FPCR.DN."""
    def compute(inputs: list[Temp]) -> Temp:
        b = ctx.builder
        r = b.temp(target.ty)
        b.fcvt(r, inputs[0], DYN)
        done = b.label()
        magnitude, dn = b.temp(target.ty), b.temp(I32)
        b.and_(magnitude, r, const(target.ty, ~target.sign))
        b.brcond(Cond.LEU, magnitude, const(target.ty, target.exp_mask), done)
        b.and_(dn, FPCR, const(I32, FPCR_DN))
        b.brcond(Cond.EQ, dn, const(I32, 0), done)
        b.movi(r, target.default_nan)
        b.set_label(done)
        return r

    def truncated(inputs: list[Temp]) -> Temp:
        r = ctx.builder.temp(target.ty)
        ctx.builder.fcvt(r, inputs[0], RoundingMode.RTZ)
        return r
    return gen_flush_to_zero(ctx, fmt, [x], compute, result_fmt=target,
                             truncated=truncated if target.bits < fmt.bits else None)


def trans_fcvt_to_h(ctx: DisasContext, a) -> bool:
    if a.ftype not in (0, 1):
        return False
    operation = fp16.FCVT_S_TO_H if a.ftype == 0 else fp16.FCVT_D_TO_H
    return gen_fcvt_half(ctx, operation, a.rn, a.rd)


def trans_fcvt_to_s(ctx: DisasContext, a) -> bool:
    return _fcvt(ctx, a, SINGLE)


def trans_fcvt_to_d(ctx: DisasContext, a) -> bool:
    return _fcvt(ctx, a, DOUBLE)


def _frint(ctx: DisasContext, a, mode: RoundingMode, exact: bool = False) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    write_fp(ctx, a.rd, gen_frint(ctx, fmt, read_fp(ctx, a.rn, fmt), mode, exact))
    return True


def gen_frint(ctx: DisasContext, fmt: _Format, x: Temp, mode: RoundingMode,
              exact: bool = False) -> Temp:
    """Round to an integral value in ``mode``: through an integer of the same width
    (every float of magnitude below 2**mantissa fits), keeping the sign of zero;
    larger values, infinities and NaNs are already integral (NaNs are quieted)."""
    return gen_flush_to_zero(ctx, fmt, [x], lambda inputs: _frint_value(
        ctx, fmt, inputs[0], mode, exact), flush_result=False)


def _frint_value(ctx: DisasContext, fmt: _Format, x: Temp, mode: RoundingMode,
                 exact: bool) -> Temp:
    b, ty = ctx.builder, fmt.ty
    r = b.temp(ty)
    magnitude, integer, sign = b.temp(ty), b.temp(ty), b.temp(ty)
    flags = b.temp(I32)
    large, done, keep = b.label(), b.label(), b.label()
    b.and_(magnitude, x, const(ty, ~fmt.sign))
    b.brcond(Cond.GEU, magnitude, const(ty, fmt.integral_limit), large)
    b.ftoi(integer, flags, x, mode)
    b.itof(r, integer, RoundingMode.RNE)  # exact
    b.and_(sign, x, const(ty, fmt.sign))
    b.or_(r, r, sign)
    if exact:  # FRINTX: inexact when the value changed
        b.and_(flags, flags, const(I32, int(FFlag.INEXACT)))
        gen_accrue_fflags(ctx, flags)
    b.br(done)
    b.set_label(large)
    b.brcond(Cond.LEU, magnitude, const(ty, fmt.exp_mask), keep)
    b.fadd(r, x, x, RoundingMode.RNE)  # a NaN: quieted, invalid if signalling
    gen_nan_fixup(ctx, fmt, r, [x])
    b.br(done)
    b.set_label(keep)
    b.mov(r, x)
    b.set_label(done)
    return r


def trans_frintn(ctx: DisasContext, a) -> bool:
    return _frint(ctx, a, RoundingMode.RNE)


def trans_frintp(ctx: DisasContext, a) -> bool:
    return _frint(ctx, a, RoundingMode.RUP)


def trans_frintm(ctx: DisasContext, a) -> bool:
    return _frint(ctx, a, RoundingMode.RDN)


def trans_frintz(ctx: DisasContext, a) -> bool:
    return _frint(ctx, a, RoundingMode.RTZ)


def trans_frinta(ctx: DisasContext, a) -> bool:
    return _frint(ctx, a, RoundingMode.RMM)


def trans_frintx(ctx: DisasContext, a) -> bool:
    return _frint(ctx, a, DYN, exact=True)


def trans_frinti(ctx: DisasContext, a) -> bool:
    return _frint(ctx, a, DYN)


# -- two and three sources ----------------------------------------------------------------

def _arith(ctx: DisasContext, a, op: Callable, negate: bool = False) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    b = ctx.builder
    r = gen_fp_arith(ctx, fmt, op, read_fp(ctx, a.rn, fmt), read_fp(ctx, a.rm, fmt))
    if negate:  # FNMUL: the rounded product negated (a NaN's sign flips too)
        b.xor(r, r, const(fmt.ty, fmt.sign))
    write_fp(ctx, a.rd, r)
    return True


def gen_fp_arith(ctx: DisasContext, fmt: _Format, op: Callable, x: Temp, y: Temp) -> Temp:
    """x op y (a Builder float op) in the dynamic rounding mode, with Arm's NaNs."""
    def compute(inputs: list[Temp]) -> Temp:
        r = ctx.builder.temp(fmt.ty)
        op(ctx.builder, r, inputs[0], inputs[1], DYN)
        gen_nan_fixup(ctx, fmt, r, inputs)
        return r

    def truncated(inputs: list[Temp]) -> Temp:
        r = ctx.builder.temp(fmt.ty)
        op(ctx.builder, r, inputs[0], inputs[1], RoundingMode.RTZ)
        return r
    return gen_flush_to_zero(ctx, fmt, [x, y], compute, truncated=truncated)


def trans_fadd(ctx: DisasContext, a) -> bool:
    return _arith(ctx, a, Builder.fadd)


def trans_fsub(ctx: DisasContext, a) -> bool:
    return _arith(ctx, a, Builder.fsub)


def trans_fmul(ctx: DisasContext, a) -> bool:
    return _arith(ctx, a, Builder.fmul)


def trans_fdiv(ctx: DisasContext, a) -> bool:
    return _arith(ctx, a, Builder.fdiv)


def trans_fnmul(ctx: DisasContext, a) -> bool:
    return _arith(ctx, a, Builder.fmul, negate=True)


def _minmax(ctx: DisasContext, a, op: Callable, number: bool) -> bool:
    """FMAX/FMIN propagate any NaN; FMAXNM/FMINNM prefer a number to a quiet NaN."""
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    write_fp(ctx, a.rd, gen_fp_minmax(ctx, fmt, op, number, read_fp(ctx, a.rn, fmt),
                                      read_fp(ctx, a.rm, fmt)))
    return True


def gen_fp_minmax(ctx: DisasContext, fmt: _Format, op: Callable, number: bool, x: Temp,
                  y: Temp) -> Temp:
    b, ty = ctx.builder, fmt.ty

    def compute(inputs: list[Temp]) -> Temp:
        x, y = inputs
        r = b.temp(ty)
        op(b, r, x, y)
        force = b.temp(ty)
        if number:
            other = gen_is_signalling(ctx, fmt, y)
            b.or_(force, gen_is_signalling(ctx, fmt, x), other)
        else:
            b.fsetcond(FCond.UNORD, force, x, y)
        gen_nan_fixup(ctx, fmt, r, [x, y], force=force)
        return r
    return gen_flush_to_zero(ctx, fmt, [x, y], compute, flush_result=False)


def trans_fmax(ctx: DisasContext, a) -> bool:
    return _minmax(ctx, a, Builder.fmax, False)


def trans_fmin(ctx: DisasContext, a) -> bool:
    return _minmax(ctx, a, Builder.fmin, False)


def trans_fmaxnm(ctx: DisasContext, a) -> bool:
    return _minmax(ctx, a, Builder.fmax, True)


def trans_fminnm(ctx: DisasContext, a) -> bool:
    return _minmax(ctx, a, Builder.fmin, True)


def _fma(ctx: DisasContext, a, negate_product: bool, negate_addend: bool) -> bool:
    """Fused multiply-add with operands (not results) negated, as Arm specifies, so
    signs of zeros and NaNs come out right in every rounding mode."""
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    b, ty = ctx.builder, fmt.ty
    n, m, addend = read_fp(ctx, a.rn, fmt), read_fp(ctx, a.rm, fmt), read_fp(ctx, a.ra, fmt)
    if negate_product:
        t = b.temp(ty)
        b.xor(t, n, const(ty, fmt.sign))
        n = t
    if negate_addend:
        t = b.temp(ty)
        b.xor(t, addend, const(ty, fmt.sign))
        addend = t
    write_fp(ctx, a.rd, gen_fp_fma(ctx, fmt, n, m, addend))
    return True


def gen_fp_fma(ctx: DisasContext, fmt: _Format, n: Temp, m: Temp, addend: Temp) -> Temp:
    """addend + n * m, fused, with Arm's NaNs."""
    def compute(inputs: list[Temp]) -> Temp:
        n, m, addend = inputs
        r = ctx.builder.temp(fmt.ty)
        ctx.builder.fma(r, n, m, addend, DYN)
        gen_nan_fixup(ctx, fmt, r, [addend, n, m], fma_addend_rule=True)
        return r

    def truncated(inputs: list[Temp]) -> Temp:
        r = ctx.builder.temp(fmt.ty)
        ctx.builder.fma(r, *inputs, RoundingMode.RTZ)
        return r
    return gen_flush_to_zero(ctx, fmt, [n, m, addend], compute, truncated=truncated)


def trans_fmadd(ctx: DisasContext, a) -> bool:
    return _fma(ctx, a, False, False)


def trans_fmsub(ctx: DisasContext, a) -> bool:
    return _fma(ctx, a, True, False)


def trans_fnmadd(ctx: DisasContext, a) -> bool:
    return _fma(ctx, a, True, True)


def trans_fnmsub(ctx: DisasContext, a) -> bool:
    return _fma(ctx, a, False, True)


# -- compare and select -------------------------------------------------------------------

def gen_fp_compare(ctx: DisasContext, fmt: _Format, x: Temp, y: Temp, signalling: bool
                   ) -> None:
    """NZCV from comparing x with y: equal 0110, less 1000, greater 0010, unordered
    0011. FCMPE signals invalid for any NaN, FCMP only for signalling ones."""
    b = ctx.builder
    x, y = flush_inputs(ctx, fmt, [x, y])
    less, equal, unordered = ctx.temp(), ctx.temp(), ctx.temp()
    b.fsetcond(FCond.LT if signalling else FCond.QLT, less, x, y)
    b.fsetcond(FCond.EQ, equal, x, y)
    b.fsetcond(FCond.UNORD, unordered, x, y)
    b.neg(NF, less)
    b.xor(ZF, equal, const(I64, 1))
    b.xor(CF, less, const(I64, 1))
    b.neg(VF, unordered)


def _fcmp(ctx: DisasContext, a, zero: bool, signalling: bool) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    y = const(fmt.ty, 0) if zero else read_fp(ctx, a.rm, fmt)
    gen_fp_compare(ctx, fmt, read_fp(ctx, a.rn, fmt), y, signalling)
    return True


def trans_fcmp(ctx: DisasContext, a) -> bool:
    return _fcmp(ctx, a, False, False)


def trans_fcmp_zero(ctx: DisasContext, a) -> bool:
    return _fcmp(ctx, a, True, False)


def trans_fcmpe(ctx: DisasContext, a) -> bool:
    return _fcmp(ctx, a, False, True)


def trans_fcmpe_zero(ctx: DisasContext, a) -> bool:
    return _fcmp(ctx, a, True, True)


def _fccmp(ctx: DisasContext, a, signalling: bool) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    b = ctx.builder
    x, y = read_fp(ctx, a.rn, fmt), read_fp(ctx, a.rm, fmt)
    test = gen_test_cc(ctx, a.cond)
    if test is None:
        gen_fp_compare(ctx, fmt, x, y, signalling)
        return True
    fail, done = b.label(), b.label()
    b.brcond(INVERT[test[0]], test[1], test[2], fail)
    gen_fp_compare(ctx, fmt, x, y, signalling)
    b.br(done)
    b.set_label(fail)
    gen_set_nzcv(ctx, a.nzcv)
    b.set_label(done)
    return True


def trans_fccmp(ctx: DisasContext, a) -> bool:
    return _fccmp(ctx, a, False)


def trans_fccmpe(ctx: DisasContext, a) -> bool:
    return _fccmp(ctx, a, True)


def trans_fcsel(ctx: DisasContext, a) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    b = ctx.builder
    x, y, r = read_fp(ctx, a.rn, fmt), read_fp(ctx, a.rm, fmt), b.temp(fmt.ty)
    test = gen_test_cc(ctx, a.cond)
    if test is None:
        b.mov(r, x)
    else:
        b.movcond(test[0], r, test[1], test[2], x, y)
    write_fp(ctx, a.rd, r)
    return True


def trans_fmov_imm(ctx: DisasContext, a) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    value = expand_imm(a.ftype, 15, a.imm)  # op=0: single, op=1: double (VFPExpandImm)
    write_fp(ctx, a.rd, const(fmt.ty, value))
    return True


# -- conversions between floating point and integers --------------------------------------

def _int_to_fp(ctx: DisasContext, a, signed: bool) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    b = ctx.builder
    src = ctx.get_x(a.rn)
    if not a.sf:
        word = b.temp(I32)
        b.extr_i64_i32(word, src)
        src = word
    r = b.temp(fmt.ty)
    b.itof(r, src, DYN, signed=signed)
    write_fp(ctx, a.rd, r)
    return True


def trans_scvtf(ctx: DisasContext, a) -> bool:
    return _int_to_fp(ctx, a, True)


def trans_ucvtf(ctx: DisasContext, a) -> bool:
    return _int_to_fp(ctx, a, False)


def _fp_to_int(ctx: DisasContext, a, mode: RoundingMode, signed: bool) -> bool:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None:
        return False
    b = ctx.builder
    dst = b.temp(I64 if a.sf else I32)
    flags = b.temp(I32)
    (x,) = flush_inputs(ctx, fmt, [read_fp(ctx, a.rn, fmt)])
    b.ftoi(dst, flags, x, mode, signed=signed)
    gen_accrue_fflags(ctx, flags)
    if not a.sf:
        wide = ctx.temp()
        b.ext_i32_i64(wide, dst, signed=False)
        dst = wide
    ctx.set_x(a.rd, dst)
    return True


def _conversion(mode: RoundingMode, signed: bool):
    def trans(ctx: DisasContext, a) -> bool:
        return _fp_to_int(ctx, a, mode, signed)
    return trans


trans_fcvtns = _conversion(RoundingMode.RNE, True)
trans_fcvtnu = _conversion(RoundingMode.RNE, False)
trans_fcvtas = _conversion(RoundingMode.RMM, True)
trans_fcvtau = _conversion(RoundingMode.RMM, False)
trans_fcvtps = _conversion(RoundingMode.RUP, True)
trans_fcvtpu = _conversion(RoundingMode.RUP, False)
trans_fcvtms = _conversion(RoundingMode.RDN, True)
trans_fcvtmu = _conversion(RoundingMode.RDN, False)
trans_fcvtzs = _conversion(RoundingMode.RTZ, True)
trans_fcvtzu = _conversion(RoundingMode.RTZ, False)


# -- conversions between floating point and fixed point (#fbits) -----------------------------

def _fixed_point(ctx: DisasContext, a) -> tuple[_Format, int] | None:
    fmt = _FORMATS.get(a.ftype)
    if fmt is None or (not a.sf and a.scale < 32):
        return None
    return fmt, 64 - a.scale


def _power_of_two(fmt: _Format, exponent: int) -> int:
    """The bit pattern of 2**exponent (a normal number of ``fmt``)."""
    bias = (fmt.exp_mask >> fmt.mantissa) >> 1
    return (exponent + bias) << fmt.mantissa


def _fixed_to_fp(ctx: DisasContext, a, signed: bool) -> bool:
    shape = _fixed_point(ctx, a)
    if shape is None:
        return False
    fmt, fbits = shape
    src = ctx.get_x(a.rn)
    if not a.sf:
        word = ctx.builder.temp(I32)
        ctx.builder.extr_i64_i32(word, src)
        src = word
    write_fp(ctx, a.rd, gen_fixed_to_fp(ctx, fmt, src, fbits, signed))
    return True


def gen_fixed_to_fp(ctx: DisasContext, fmt: _Format, src: Temp, fbits: int,
                    signed: bool) -> Temp:
    """SCVTF/UCVTF #fbits: the integer src rounded once, then scaled by 2**-fbits,
    which is exact (the smallest result, 2**-64, is a normal single)."""
    b = ctx.builder
    r = b.temp(fmt.ty)
    b.itof(r, src, DYN, signed=signed)
    b.fmul(r, r, const(fmt.ty, _power_of_two(fmt, -fbits)), DYN)
    return r


def _fp_to_fixed(ctx: DisasContext, a, signed: bool) -> bool:
    shape = _fixed_point(ctx, a)
    if shape is None:
        return False
    fmt, fbits = shape
    dst = gen_fp_to_fixed(ctx, fmt, read_fp(ctx, a.rn, fmt), fbits, signed,
                          I64 if a.sf else I32)
    if not a.sf:
        wide = ctx.temp()
        ctx.builder.ext_i32_i64(wide, dst, signed=False)
        dst = wide
    ctx.set_x(a.rd, dst)
    return True


def gen_fp_to_fixed(ctx: DisasContext, fmt: _Format, x: Temp, fbits: int, signed: bool,
                    result_type: IRType) -> Temp:
    """FCVTZS/FCVTZU #fbits: x * 2**fbits made by adding fbits to the exponent (so no
    overflow flag can come from the scaling), then converted towards zero. Zeros and
    subnormals stay as they are (they convert to 0 either way); a finite value that
    would overflow becomes the largest finite one (the conversion saturates either
    way); infinities and NaNs stay."""
    b, ty = ctx.builder, fmt.ty
    (x,) = flush_inputs(ctx, fmt, [x])
    exponent, scaled, huge = b.temp(ty), b.temp(ty), b.temp(ty)
    b.and_(exponent, x, const(ty, fmt.exp_mask))
    b.add(scaled, x, const(ty, fbits << fmt.mantissa))
    b.and_(huge, x, const(ty, fmt.sign))
    b.or_(huge, huge, const(ty, fmt.exp_mask - (1 << fmt.mantissa)))
    limit = fmt.exp_mask - (fbits << fmt.mantissa)
    b.movcond(Cond.GEU, scaled, exponent, const(ty, limit), huge, scaled)
    b.movcond(Cond.EQ, scaled, exponent, const(ty, fmt.exp_mask), x, scaled)
    b.movcond(Cond.EQ, scaled, exponent, const(ty, 0), x, scaled)
    dst = b.temp(result_type)
    flags = b.temp(I32)
    b.ftoi(dst, flags, scaled, RoundingMode.RTZ, signed=signed)
    gen_accrue_fflags(ctx, flags)
    return dst


def trans_scvtf_fix(ctx: DisasContext, a) -> bool:
    return _fixed_to_fp(ctx, a, True)


def trans_ucvtf_fix(ctx: DisasContext, a) -> bool:
    return _fixed_to_fp(ctx, a, False)


def trans_fcvtzs_fix(ctx: DisasContext, a) -> bool:
    return _fp_to_fixed(ctx, a, True)


def trans_fcvtzu_fix(ctx: DisasContext, a) -> bool:
    return _fp_to_fixed(ctx, a, False)
