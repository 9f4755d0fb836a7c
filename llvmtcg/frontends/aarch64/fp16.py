"""Conversions between half precision and single/double precision (FCVT, FCVTL,
FCVTN with half operands), run by the ``aarch64_fcvt_half`` helper.

The host FP unit has no half-precision type in the IR, so these are computed exactly
with integers, as the Arm ARM's FPConvert/FPRound pseudocode does: the current FPCR
rounding mode, Arm's tininess (before rounding) for Underflow, FPCR.DN (default NaN),
FPCR.FZ for single and double inputs, and FPCR.AHP (the alternative half format: no
infinities or NaNs); the exceptions go to FPSR's cumulative bits.
"""

from __future__ import annotations

from typing import NamedTuple

from llvmtcg.frontends.aarch64.simd_lanes import M64, split, vget, vset
from llvmtcg.ir import I64
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag

IOC, DZC, OFC, UFC, IXC, IDC = 1, 2, 4, 8, 16, 128
FPCR_AHP = 1 << 26
FPCR_FZ = 1 << 24
FPCR_DN = 1 << 25


class FloatFormat(NamedTuple):
    bits: int
    mantissa: int  # stored fraction bits
    bias: int

    @property
    def exp_max(self) -> int:
        return (1 << (self.bits - 1 - self.mantissa)) - 1


HALF = FloatFormat(16, 10, 15)
SINGLE = FloatFormat(32, 23, 127)
DOUBLE = FloatFormat(64, 52, 1023)

# Rounding modes as FPCR.RMode numbers them.
RN, RP, RM, RZ = range(4)


def convert(value: int, src: FloatFormat, dst: FloatFormat, fpcr: int) -> tuple[int, int]:
    """The ``src`` bit pattern converted to ``dst``: (bits, FPSR exception bits)."""
    ahp = bool(fpcr & FPCR_AHP)
    sign = value >> (src.bits - 1) & 1
    exp = value >> src.mantissa & src.exp_max
    frac = value & ((1 << src.mantissa) - 1)
    dst_sign = sign << (dst.bits - 1)
    special = exp == src.exp_max and not (src is HALF and ahp)
    if special and frac:  # NaN
        quiet = frac >> (src.mantissa - 1) & 1
        flags = 0 if quiet else IOC
        if dst is HALF and ahp:
            return dst_sign, IOC  # AHP has no NaN: zero, Invalid
        if fpcr & FPCR_DN:
            return _default_nan(dst), flags
        shift = src.mantissa - dst.mantissa
        payload = frac >> shift if shift >= 0 else frac << -shift
        payload |= 1 << (dst.mantissa - 1)
        return dst_sign | dst.exp_max << dst.mantissa | payload, flags
    if special:  # infinity
        if dst is HALF and ahp:
            return dst_sign | 0x7FFF, IOC
        return dst_sign | dst.exp_max << dst.mantissa, 0
    if exp == 0 and frac == 0:
        return dst_sign, 0
    if exp == 0 and src is not HALF and fpcr & FPCR_FZ:
        return dst_sign, IDC  # a denormal input flushed (half inputs would need FZ16)
    # |value| = significand * 2**power exactly.
    if exp == 0:
        significand, power = frac, 1 - src.bias - src.mantissa
    else:
        significand, power = frac | 1 << src.mantissa, exp - src.bias - src.mantissa
    return _round(sign, significand, power, dst, fpcr, ahp and dst is HALF)


def _default_nan(fmt: FloatFormat) -> int:
    return fmt.exp_max << fmt.mantissa | 1 << (fmt.mantissa - 1)


def _round(sign: int, significand: int, power: int, dst: FloatFormat, fpcr: int,
           ahp: bool) -> tuple[int, int]:
    """FPRound of sign * significand * 2**power into ``dst``."""
    min_exp = 1 - dst.bias  # of the smallest normal number
    top = significand.bit_length() - 1 + power  # floor(log2 |value|)
    tiny = top < min_exp
    quantum = (min_exp if tiny else top) - dst.mantissa  # log2 of the last place
    shift = quantum - power
    if shift <= 0:
        whole, rest, half = significand << -shift, 0, 0
    else:
        whole, rest = significand >> shift, significand & ((1 << shift) - 1)
        half = 1 << (shift - 1)
    mode = fpcr >> 22 & 3
    if rest:
        if mode == RN:
            up = rest > half or (rest == half and whole & 1)
        elif mode == RP:
            up = not sign
        elif mode == RM:
            up = bool(sign)
        else:
            up = False
        whole += up
    flags = IXC if rest else 0
    if tiny and rest:
        flags |= UFC
    # whole * 2**quantum, whole < 2**(mantissa + 1) unless rounding carried.
    if whole >> (dst.mantissa + 1):
        whole >>= 1
        quantum += 1
    biased = quantum + dst.mantissa + dst.bias if whole >> dst.mantissa else 0
    dst_sign = sign << (dst.bits - 1)
    limit = dst.exp_max + 1 if ahp else dst.exp_max
    if biased >= limit:  # overflow
        if ahp:
            return dst_sign | 0x7FFF, IOC
        largest = (dst.exp_max << dst.mantissa) - 1
        to_infinity = (mode == RN or (mode == RP and not sign) or (mode == RM and sign))
        return dst_sign | (dst.exp_max << dst.mantissa if to_infinity else largest), OFC | IXC
    fraction = whole & ((1 << dst.mantissa) - 1)
    return dst_sign | biased << dst.mantissa | fraction, flags


# -- the helper -----------------------------------------------------------------------------

FCVT_H_TO_S, FCVT_H_TO_D, FCVT_S_TO_H, FCVT_D_TO_H, FCVTL_H, FCVTN_H = range(6)
# aarch64_fcvt_half(operation, rn, rd, q)
FCVT_HALF_HELPER = HelperDecl("aarch64_fcvt_half", None, (I64, I64, I64, I64),
                              HelperFlag.TAKES_CPU)


def register_helpers(registry) -> None:
    registry.register(FCVT_HALF_HELPER, lambda cpu, *args: run(cpu.state, *args))


def run(state, operation: int, rn: int, rd: int, q: int) -> None:
    fpcr = state.get("fpcr")
    flags = 0
    if operation <= FCVT_D_TO_H:
        src, dst = {FCVT_H_TO_S: (HALF, SINGLE), FCVT_H_TO_D: (HALF, DOUBLE),
                    FCVT_S_TO_H: (SINGLE, HALF), FCVT_D_TO_H: (DOUBLE, HALF)}[operation]
        value = vget(state, rn) & ((1 << src.bits) - 1)
        result, flags = convert(value, src, dst, fpcr)
        vset(state, rd, result)
    elif operation == FCVTL_H:  # four halves of Vn's lower (upper) half to singles
        lanes = split(vget(state, rn) >> (64 * q) & M64, 16, 4)
        out = 0
        for i, lane in enumerate(lanes):
            result, f = convert(lane, HALF, SINGLE, fpcr)
            out |= result << (32 * i)
            flags |= f
        vset(state, rd, out)
    else:  # FCVTN: four singles to halves in Vd's lower (upper, keeping the lower) half
        lanes = split(vget(state, rn), 32, 4)
        out = 0
        for i, lane in enumerate(lanes):
            result, f = convert(lane, SINGLE, HALF, fpcr)
            out |= result << (16 * i)
            flags |= f
        vset(state, rd, (vget(state, rd) & M64) | out << 64 if q else out)
    if flags:
        state.set("fpsr", state.get("fpsr") | flags)
