"""A reference model of RISC-V F/D (unprivileged spec 20191213) on exact arithmetic.

IEEE arithmetic comes from llvmtcg.runtime.softfloat (Fractions, every rounding mode);
this file adds the RISC-V rules: NaN boxing, canonical NaNs, saturating conversions,
minimumNumber/maximumNumber, quiet/signalling compares and fclass.
"""

from __future__ import annotations

from llvmtcg.ir.types import FFlag, RoundingMode
from llvmtcg.runtime import softfloat as sf

MODES = (RoundingMode.RNE, RoundingMode.RTZ, RoundingMode.RDN, RoundingMode.RUP,
         RoundingMode.RMM)
NV, NX = int(FFlag.INVALID), int(FFlag.INEXACT)
BOX = 0xFFFF_FFFF_0000_0000
M64 = (1 << 64) - 1


def unbox(value: int, bits: int) -> int:
    if bits == 64:
        return value & M64
    return value & 0xFFFF_FFFF if value >> 32 == 0xFFFF_FFFF else sf.F32.default_nan


def box(value: int, bits: int) -> int:
    return value | BOX if bits == 32 else value


def canonical(fmt: sf.Format, value: int) -> int:
    return fmt.default_nan if fmt.is_nan(value) else value


def sext(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return (value - (1 << bits) if value >> (bits - 1) else value) & M64


def _fclass(fmt: sf.Format, v: int) -> int:
    if fmt.is_nan(v):
        return 1 << (8 if fmt.is_snan(v) else 9)
    neg = fmt.sign(v)
    if fmt.is_inf(v):
        k = 3
    elif fmt.is_zero(v):
        k = 0
    elif v & fmt.inf == 0:
        k = 1
    else:
        k = 2
    return 1 << (3 - k if neg else 4 + k)


def _minmax(fmt: sf.Format, a: int, b: int, maximum: bool) -> tuple[int, int]:
    flags = NV if fmt.is_snan(a) or fmt.is_snan(b) else 0
    if fmt.is_nan(a) and fmt.is_nan(b):
        return fmt.default_nan, flags
    if fmt.is_nan(a):
        return b, flags
    if fmt.is_nan(b):
        return a, flags
    va, vb = fmt.value(a), fmt.value(b)
    if va == vb:  # only zeros can differ in bits: -0 < +0
        pick_a = (fmt.sign(a) == 0) if maximum else (fmt.sign(a) == 1)
    else:
        pick_a = (va > vb) if maximum else (va < vb)
    return (a if pick_a else b), flags


def _compare(fmt: sf.Format, a: int, b: int, kind: str) -> tuple[int, int]:
    nan = fmt.is_nan(a) or fmt.is_nan(b)
    if kind == "eq":
        flags = NV if fmt.is_snan(a) or fmt.is_snan(b) else 0
    else:
        flags = NV if nan else 0
    if nan:
        return 0, flags
    va = 0 if fmt.is_zero(a) else (fmt.value(a) if not fmt.is_inf(a) else None)
    vb = 0 if fmt.is_zero(b) else (fmt.value(b) if not fmt.is_inf(b) else None)
    key = [_order_key(fmt, x, v) for x, v in ((a, va), (b, vb))]
    result = {"eq": key[0] == key[1], "lt": key[0] < key[1], "le": key[0] <= key[1]}[kind]
    return int(result), flags


def _order_key(fmt: sf.Format, bits: int, value):
    if value is None:  # infinity
        return float("-inf") if fmt.sign(bits) else float("inf")
    return value


def _to_int(fmt: sf.Format, a: int, rm: RoundingMode, bits: int, signed: bool) -> tuple[int, int]:
    if fmt.is_nan(a):
        hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        return sext(hi, bits), NV
    value, flags = sf.to_int(fmt, a, rm, bits, signed)
    return sext(value, bits), int(flags)


def execute(mnemonic: str, rm: RoundingMode, a: int, b: int, c: int) -> tuple[int, int]:
    """(rd value as 64 bits, fflags) of one instruction on raw operand registers."""
    name, *suffix = mnemonic.split(".")
    if name == "fcvt":
        return _convert(suffix[0], suffix[1], rm, a)
    if name in ("fmv",):
        return _move(suffix[0], suffix[1], a)
    bits = 32 if suffix[0] == "s" else 64
    fmt = sf.FORMATS[bits]
    x, y, z = (unbox(v, bits) for v in (a, b, c))
    if name in ("fadd", "fsub", "fmul", "fdiv"):
        fn = {"fadd": sf.add, "fsub": sf.sub, "fmul": sf.mul, "fdiv": sf.div}[name]
        r, flags = fn(fmt, x, y, rm)
        return box(canonical(fmt, r), bits), int(flags)
    if name == "fsqrt":
        r, flags = sf.sqrt(fmt, x, rm)
        return box(canonical(fmt, r), bits), int(flags)
    if name in ("fmadd", "fmsub", "fnmsub", "fnmadd"):
        if name in ("fnmsub", "fnmadd"):
            x ^= fmt.sign_bit
        if name in ("fmsub", "fnmadd"):
            z ^= fmt.sign_bit
        r, flags = sf.fma(fmt, x, y, z, rm)
        return box(canonical(fmt, r), bits), int(flags)
    if name in ("fsgnj", "fsgnjn", "fsgnjx"):
        sign = {"fsgnj": y, "fsgnjn": ~y, "fsgnjx": x ^ y}[name] & fmt.sign_bit
        return box((x & ~fmt.sign_bit) | sign, bits), 0
    if name in ("fmin", "fmax"):
        r, flags = _minmax(fmt, x, y, name == "fmax")
        return box(canonical(fmt, r), bits), flags
    if name in ("feq", "flt", "fle"):
        return _compare(fmt, x, y, name[1:])
    if name == "fclass":
        return _fclass(fmt, x), 0
    raise ValueError(mnemonic)


def _convert(to: str, frm: str, rm: RoundingMode, a: int) -> tuple[int, int]:
    ints = {"w": (32, True), "wu": (32, False), "l": (64, True), "lu": (64, False)}
    if to in ints:
        bits = 32 if frm == "s" else 64
        return _to_int(sf.FORMATS[bits], unbox(a, bits), rm, *ints[to])
    bits = 32 if to == "s" else 64
    fmt = sf.FORMATS[bits]
    if frm in ints:
        width, signed = ints[frm]
        value = a & ((1 << width) - 1)
        if signed and value >> (width - 1):
            value -= 1 << width
        r, flags = sf.from_int(fmt, value, rm)
        return box(r, bits), int(flags)
    src_bits = 32 if frm == "s" else 64
    r, flags = sf.convert(fmt, sf.FORMATS[src_bits], unbox(a, src_bits), rm)
    return box(canonical(fmt, r), bits), int(flags)


def _move(to: str, frm: str, a: int) -> tuple[int, int]:
    if to == "x":
        return (sext(a, 32) if frm == "w" else a & M64), 0
    return (box(a & 0xFFFF_FFFF, 32) if to == "w" else a & M64), 0
