"""Reciprocal and reciprocal square root estimates (FRECPE, FRSQRTE, URECPE, URSQRTE),
run by the ``aarch64_estimate`` helper.

The results are the Arm ARM's tables (RecipEstimate, RecipSqrtEstimate: 8-bit
estimates computed with integers), not anything the host FP unit can give, so they
follow the pseudocode FPRecipEstimate / FPRSqrtEstimate / UnsignedRecipEstimate /
UnsignedRSqrtEstimate line by line, with FPCR.FZ (denormal inputs are zeros, FPSR.IDC;
FRECPE of a value so large that the estimate is denormal gives a zero with Underflow),
FPCR.DN and the rounding mode (FRECPE of a tiny value overflows to infinity or the
largest finite value). FEAT_RPRES's increased precision is not implemented (FPCR.AH
does not exist here).
"""

from __future__ import annotations

from functools import cache

from llvmtcg.frontends.aarch64.fp16 import (
    DOUBLE,
    DZC,
    FPCR_DN,
    FPCR_FZ,
    IDC,
    IOC,
    IXC,
    OFC,
    RM,
    RN,
    RP,
    SINGLE,
    UFC,
    FloatFormat,
)
from llvmtcg.frontends.aarch64.simd_lanes import join, split, vget, vset
from llvmtcg.ir import I64
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag

FRECPE, FRSQRTE, URECPE, URSQRTE = range(4)
# aarch64_estimate(operation, esize, count, rd, rn): Vd = the estimate of each of the
# ``count`` lanes of ``esize`` bits of Vn, zero above them.
ESTIMATE_HELPER = HelperDecl("aarch64_estimate", None, (I64, I64, I64, I64, I64),
                             HelperFlag.TAKES_CPU)


def register_helpers(registry) -> None:
    registry.register(ESTIMATE_HELPER, lambda cpu, *args: run(cpu.state, *args))


def run(state, operation: int, esize: int, count: int, rd: int, rn: int) -> None:
    fpcr = state.get("fpcr")
    flags = 0
    out = []
    for lane in split(vget(state, rn), esize, count):
        if operation == URECPE:
            out.append(unsigned_recip_estimate(lane))
            continue
        if operation == URSQRTE:
            out.append(unsigned_rsqrt_estimate(lane))
            continue
        fmt = SINGLE if esize == 32 else DOUBLE
        estimate = fp_recip_estimate if operation == FRECPE else fp_rsqrt_estimate
        result, lane_flags = estimate(lane, fmt, fpcr)
        out.append(result)
        flags |= lane_flags
    vset(state, rd, join(out, esize))
    if flags:
        state.set("fpsr", state.get("fpsr") | flags)


@cache
def recip_estimate(a: int) -> int:
    """RecipEstimate: a in 256..511 (0.5 <= a/512 < 1) -> 256..511 (1/x scaled by 256)."""
    a = a * 2 + 1
    b = (1 << 19) // a
    return (b + 1) // 2


@cache
def recip_sqrt_estimate(a: int) -> int:
    """RecipSqrtEstimate: a in 128..511 (0.25 <= a/512 < 1) -> 256..511."""
    if a < 256:
        a = a * 2 + 1
    else:
        a = (a >> 1) << 1
        a = (a + 1) * 2
    b = 512
    while a * (b + 1) * (b + 1) < 1 << 28:
        b += 1
    return (b + 1) // 2


def unsigned_recip_estimate(operand: int) -> int:
    if not operand >> 31:
        return 0xFFFF_FFFF
    return recip_estimate(operand >> 23) << 23


def unsigned_rsqrt_estimate(operand: int) -> int:
    if not operand >> 30:
        return 0xFFFF_FFFF
    return recip_sqrt_estimate(operand >> 23) << 23


def _unpack(operand: int, fmt: FloatFormat, fpcr: int) -> tuple[int, int, int, int]:
    """(sign, biased exponent, fraction, flags) with FZ flushing a denormal to zero."""
    sign = operand >> (fmt.bits - 1)
    exponent = operand >> fmt.mantissa & fmt.exp_max
    fraction = operand & ((1 << fmt.mantissa) - 1)
    if exponent == 0 and fraction and fpcr & FPCR_FZ:
        return sign, 0, 0, IDC
    return sign, exponent, fraction, 0


def _nan(operand: int, fmt: FloatFormat, fpcr: int) -> tuple[int, int] | None:
    """FPProcessNaN for a NaN operand (None for anything else)."""
    exponent = operand >> fmt.mantissa & fmt.exp_max
    fraction = operand & ((1 << fmt.mantissa) - 1)
    if exponent != fmt.exp_max or not fraction:
        return None
    quiet = 1 << (fmt.mantissa - 1)
    flags = 0 if fraction & quiet else IOC
    if fpcr & FPCR_DN:
        return fmt.exp_max << fmt.mantissa | quiet, flags
    return operand | quiet, flags


def _infinity(sign: int, fmt: FloatFormat) -> int:
    return sign << (fmt.bits - 1) | fmt.exp_max << fmt.mantissa


def _fraction52(fraction: int, fmt: FloatFormat) -> int:
    """The fraction as the pseudocode's 52-bit field (singles padded with zeros)."""
    return fraction << (52 - fmt.mantissa)


def fp_recip_estimate(operand: int, fmt: FloatFormat, fpcr: int) -> tuple[int, int]:
    nan = _nan(operand, fmt, fpcr)
    if nan is not None:
        return nan
    sign, exponent, fraction, flags = _unpack(operand, fmt, fpcr)
    sign_bit = sign << (fmt.bits - 1)
    if exponent == fmt.exp_max:  # infinity
        return sign_bit, flags
    if exponent == 0 and fraction == 0:
        return _infinity(sign, fmt), flags | DZC
    # |value| < 2**-128 (single) / 2**-1024 (double): the reciprocal overflows. These
    # are denormals whose fraction is below a quarter of the smallest normal.
    if exponent == 0 and fraction < 1 << (fmt.mantissa - 2):
        mode = fpcr >> 22 & 3
        to_infinity = (mode == RN or (mode == RP and not sign) or (mode == RM and sign))
        largest = sign_bit | ((fmt.exp_max << fmt.mantissa) - 1)
        return (_infinity(sign, fmt) if to_infinity else largest), flags | OFC | IXC
    # |value| >= 2**126 / 2**1022 with FZ: the estimate would be denormal.
    if fpcr & FPCR_FZ and exponent >= fmt.exp_max - 2:
        return sign_bit, flags | UFC
    frac = _fraction52(fraction, fmt)
    exp = exponent
    if exp == 0:
        if not frac >> 51 & 1:
            exp = -1
            frac = (frac & ((1 << 50) - 1)) << 2
        else:
            frac = (frac & ((1 << 51) - 1)) << 1
    scaled = 0x100 | frac >> 44
    result_exp = 2 * fmt.bias - 1 - exp  # 253 - exp for singles, 2045 - exp for doubles
    estimate = recip_estimate(scaled)
    frac = (estimate & 0xFF) << 44
    if result_exp == 0:
        frac = 1 << 51 | frac >> 1
    elif result_exp == -1:
        frac = 1 << 50 | frac >> 2
        result_exp = 0
    return sign_bit | result_exp << fmt.mantissa | frac >> (52 - fmt.mantissa), flags


def fp_rsqrt_estimate(operand: int, fmt: FloatFormat, fpcr: int) -> tuple[int, int]:
    nan = _nan(operand, fmt, fpcr)
    if nan is not None:
        return nan
    sign, exponent, fraction, flags = _unpack(operand, fmt, fpcr)
    if exponent == 0 and fraction == 0:
        return _infinity(sign, fmt), flags | DZC
    if sign:
        default_nan = fmt.exp_max << fmt.mantissa | 1 << (fmt.mantissa - 1)
        return default_nan, flags | IOC
    if exponent == fmt.exp_max:  # +infinity
        return 0, flags
    frac = _fraction52(fraction, fmt)
    exp = exponent
    if exp == 0:
        while not frac >> 51 & 1:
            frac = (frac << 1) & ((1 << 52) - 1)
            exp -= 1
        frac = (frac << 1) & ((1 << 52) - 1)
    # 0.25 <= scaled/512 < 1 with the exponent's parity kept: 0.5.. for an even exponent.
    scaled = 0x80 | frac >> 45 if exp & 1 else 0x100 | frac >> 44
    result_exp = (3 * fmt.bias - 1 - exp) // 2  # (380 - exp) / 2, (3068 - exp) / 2
    estimate = recip_sqrt_estimate(scaled)
    return result_exp << fmt.mantissa | (estimate & 0xFF) << (fmt.mantissa - 8), flags
