"""Exact IEEE 754 binary32/binary64 arithmetic in Python, in every rounding mode.

Native code calls this (through the ``llvmtcg_softfloat`` helper) only for what the
host cannot round, i.e. roundTiesToAway; tests use it as the reference model. Every
operation returns ``(bits, flags)`` with :class:`FFlag` flags; tininess is detected
after rounding and underflow is signalled only with inexact (as x86, RISC-V and the
IR define it). A NaN result is the default quiet NaN (positive, zero payload); callers
that care about NaN payloads select their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt
from typing import TYPE_CHECKING

from llvmtcg.ir.types import FFlag, RoundingMode

if TYPE_CHECKING:
    from fractions import Fraction

RNE, RTZ, RDN, RUP, RMM = (RoundingMode.RNE, RoundingMode.RTZ, RoundingMode.RDN,
                           RoundingMode.RUP, RoundingMode.RMM)
NV, DZ, OF, UF, NX = (FFlag.INVALID, FFlag.DIVBYZERO, FFlag.OVERFLOW, FFlag.UNDERFLOW,
                      FFlag.INEXACT)


@dataclass(frozen=True, slots=True)
class Format:
    """An IEEE binary interchange format."""

    bits: int
    exp_bits: int

    @property
    def man_bits(self) -> int:
        return self.bits - self.exp_bits - 1

    @property
    def precision(self) -> int:
        return self.man_bits + 1

    @property
    def bias(self) -> int:
        return (1 << (self.exp_bits - 1)) - 1

    @property
    def emin(self) -> int:
        return 1 - self.bias

    @property
    def emax(self) -> int:
        return self.bias

    @property
    def sign_bit(self) -> int:
        return 1 << (self.bits - 1)

    @property
    def inf(self) -> int:
        return ((1 << self.exp_bits) - 1) << self.man_bits

    @property
    def quiet_bit(self) -> int:
        return 1 << (self.man_bits - 1)

    @property
    def default_nan(self) -> int:
        return self.inf | self.quiet_bit

    @property
    def max_finite(self) -> int:
        return self.inf - 1

    # -- classification ----------------------------------------------------------------
    def is_nan(self, bits: int) -> bool:
        return bits & (self.sign_bit - 1) > self.inf

    def is_snan(self, bits: int) -> bool:
        return self.is_nan(bits) and not bits & self.quiet_bit

    def is_inf(self, bits: int) -> bool:
        return bits & (self.sign_bit - 1) == self.inf

    def is_zero(self, bits: int) -> bool:
        return bits & (self.sign_bit - 1) == 0

    def sign(self, bits: int) -> int:
        return bits >> (self.bits - 1) & 1

    def magnitude(self, bits: int) -> Fraction:
        """The absolute value of a finite operand, exactly."""
        from fractions import Fraction  # noqa: PLC0415 - ~10 ms to import; slow path only

        man, exp = _decode(self, bits)

        return Fraction(man << exp) if exp >= 0 else Fraction(man, 1 << -exp)

    def value(self, bits: int) -> Fraction:
        """The signed value of a finite operand, exactly."""
        m = self.magnitude(bits)
        return -m if self.sign(bits) else m

    def zero(self, sign: int) -> int:
        return self.sign_bit if sign else 0

    def infinity(self, sign: int) -> int:
        return self.inf | (self.sign_bit if sign else 0)


F32 = Format(32, 8)
F64 = Format(64, 11)
FORMATS = {32: F32, 64: F64}

Result = tuple[int, FFlag]


def _decode(fmt: Format, bits: int) -> tuple[int, int]:
    """(mantissa, exponent) of a finite operand's magnitude: mantissa * 2**exponent."""
    exp = (bits >> fmt.man_bits) & ((1 << fmt.exp_bits) - 1)
    frac = bits & ((1 << fmt.man_bits) - 1)
    if exp == 0:
        return frac, fmt.emin - fmt.man_bits
    return frac | (1 << fmt.man_bits), exp - fmt.bias - fmt.man_bits


def _round_int(man: int, shift: int, sticky: bool, sign: int,
               rm: RoundingMode) -> tuple[int, bool]:
    """(n, inexact): (man + sticky*epsilon) / 2**shift rounded to an integer in rm."""
    if shift <= 0:
        n, rest, half = man << -shift, 0, 1
    else:
        n, rest, half = man >> shift, man & ((1 << shift) - 1), 1 << (shift - 1)
    if rest == 0 and not sticky:
        return n, False
    if rm is RNE:
        up = rest > half or (rest == half and (sticky or n & 1 == 1))
    elif rm is RMM:
        up = rest >= half
    elif rm is RTZ:
        up = False
    elif rm is RDN:
        up = sign == 1
    elif rm is RUP:
        up = sign == 0
    else:
        raise ValueError(f"softfloat: no static rounding mode {rm}")
    return n + up, True


def round_exact(fmt: Format, sign: int, man: int, exp: int, rm: RoundingMode,
                sticky: bool = False) -> Result:
    """Round the nonzero value (-1)**sign * (man + sticky*epsilon) * 2**exp into fmt.

    ``sticky`` marks a value strictly between man and man+1 units; man must then have
    at least precision+2 bits so no rounding boundary falls inside that interval.
    """
    p = fmt.precision
    e = man.bit_length() - 1 + exp  # floor(log2(value))
    # Tininess after rounding: round to p bits as if the exponent range were unbounded.
    n, _ = _round_int(man, e - p + 1 - exp, sticky, sign, rm)
    tiny = e + (n >> p) < fmt.emin
    q = max(e, fmt.emin) - p + 1
    n, inexact = _round_int(man, q - exp, sticky, sign, rm)
    flags = FFlag(0)
    if inexact:
        flags |= NX
        if tiny:
            flags |= UF
    if n >> p:  # rounding carried into a new binade
        n >>= 1
        q += 1
    if n == 0:
        return fmt.zero(sign), flags
    if n >> (p - 1) == 0:  # subnormal (q is the subnormal quantum)
        return fmt.zero(sign) | n, flags
    exp_out = q + p - 1
    if exp_out > fmt.emax:
        flags |= OF | NX
        to_inf = rm in (RNE, RMM) or (rm is RDN and sign) or (rm is RUP and not sign)
        return (fmt.infinity(sign) if to_inf else fmt.zero(sign) | fmt.max_finite), flags
    return fmt.zero(sign) | ((exp_out + fmt.bias) << fmt.man_bits) | (n - (1 << (p - 1))), flags


def _round_signed(fmt: Format, man: int, exp: int, rm: RoundingMode,
                  zero_sign: int) -> Result:
    """Round the signed integer man * 2**exp (zero gets zero_sign)."""
    if man == 0:
        return fmt.zero(zero_sign), FFlag(0)
    return round_exact(fmt, int(man < 0), abs(man), exp, rm)


def _signed_decode(fmt: Format, bits: int) -> tuple[int, int]:
    man, exp = _decode(fmt, bits)
    return (-man if fmt.sign(bits) else man), exp


def _aligned_sum(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (ma, ea), (mb, eb) = a, b
    e = min(ea, eb)
    return (ma << (ea - e)) + (mb << (eb - e)), e


def _nan(fmt: Format, *operands: int) -> Result:
    invalid = any(fmt.is_snan(x) for x in operands)
    return fmt.default_nan, NV if invalid else FFlag(0)


def _exact_zero_sign(rm: RoundingMode) -> int:
    """Sign of an exact zero sum of operands that are not both zeros of one sign."""
    return 1 if rm is RDN else 0


# -- operations -------------------------------------------------------------------------------

def add(fmt: Format, a: int, b: int, rm: RoundingMode) -> Result:
    if fmt.is_nan(a) or fmt.is_nan(b):
        return _nan(fmt, a, b)
    sa, sb = fmt.sign(a), fmt.sign(b)
    if fmt.is_inf(a) or fmt.is_inf(b):
        if fmt.is_inf(a) and fmt.is_inf(b) and sa != sb:
            return fmt.default_nan, NV
        return (a if fmt.is_inf(a) else b), FFlag(0)
    both_zero_same = fmt.is_zero(a) and fmt.is_zero(b) and sa == sb
    zero_sign = sa if both_zero_same else _exact_zero_sign(rm)
    man, exp = _aligned_sum(_signed_decode(fmt, a), _signed_decode(fmt, b))
    return _round_signed(fmt, man, exp, rm, zero_sign)


def sub(fmt: Format, a: int, b: int, rm: RoundingMode) -> Result:
    return add(fmt, a, b ^ fmt.sign_bit, rm)


def mul(fmt: Format, a: int, b: int, rm: RoundingMode) -> Result:
    if fmt.is_nan(a) or fmt.is_nan(b):
        return _nan(fmt, a, b)
    sign = fmt.sign(a) ^ fmt.sign(b)
    if fmt.is_inf(a) or fmt.is_inf(b):
        if fmt.is_zero(a) or fmt.is_zero(b):
            return fmt.default_nan, NV
        return fmt.infinity(sign), FFlag(0)
    (ma, ea), (mb, eb) = _decode(fmt, a), _decode(fmt, b)
    if ma == 0 or mb == 0:
        return fmt.zero(sign), FFlag(0)
    return round_exact(fmt, sign, ma * mb, ea + eb, rm)


def div(fmt: Format, a: int, b: int, rm: RoundingMode) -> Result:
    if fmt.is_nan(a) or fmt.is_nan(b):
        return _nan(fmt, a, b)
    sign = fmt.sign(a) ^ fmt.sign(b)
    if fmt.is_inf(a):
        return (fmt.default_nan, NV) if fmt.is_inf(b) else (fmt.infinity(sign), FFlag(0))
    if fmt.is_inf(b):
        return fmt.zero(sign), FFlag(0)
    if fmt.is_zero(b):
        return (fmt.default_nan, NV) if fmt.is_zero(a) else (fmt.infinity(sign), DZ)
    if fmt.is_zero(a):
        return fmt.zero(sign), FFlag(0)
    (ma, ea), (mb, eb) = _decode(fmt, a), _decode(fmt, b)
    k = max(fmt.precision + 3 + mb.bit_length() - ma.bit_length(), 0)
    q, rest = divmod(ma << k, mb)
    return round_exact(fmt, sign, q, ea - eb - k, rm, rest != 0)


def sqrt(fmt: Format, a: int, rm: RoundingMode) -> Result:
    if fmt.is_nan(a):
        return _nan(fmt, a)
    if fmt.is_zero(a):
        return a, FFlag(0)
    if fmt.sign(a):
        return fmt.default_nan, NV
    if fmt.is_inf(a):
        return a, FFlag(0)
    man, exp = _decode(fmt, a)
    if exp & 1:  # make the exponent even so the root's exponent is exp/2
        man, exp = man << 1, exp - 1
    # s = floor(sqrt(man * 4**k)) with at least p+3 bits; an inexact root lies strictly
    # between s and s+1 units, which the sticky bit records.
    k = max(fmt.precision + 3 - man.bit_length() // 2, 0)
    scaled = man << (2 * k)
    s = isqrt(scaled)
    return round_exact(fmt, 0, s, exp // 2 - k, rm, s * s != scaled)


def fma(fmt: Format, a: int, b: int, c: int, rm: RoundingMode) -> Result:
    """a*b + c with one rounding; invalid for 0*inf even when c is a quiet NaN."""
    inf_times_zero = ((fmt.is_inf(a) and fmt.is_zero(b)) or
                      (fmt.is_zero(a) and fmt.is_inf(b)))
    if inf_times_zero:
        return fmt.default_nan, NV
    if fmt.is_nan(a) or fmt.is_nan(b) or fmt.is_nan(c):
        return _nan(fmt, a, b, c)
    sp = fmt.sign(a) ^ fmt.sign(b)
    sc = fmt.sign(c)
    if fmt.is_inf(a) or fmt.is_inf(b):
        if fmt.is_inf(c) and sc != sp:
            return fmt.default_nan, NV
        return fmt.infinity(sp), FFlag(0)
    if fmt.is_inf(c):
        return c, FFlag(0)
    product_zero = fmt.is_zero(a) or fmt.is_zero(b)
    both_zero_same = product_zero and fmt.is_zero(c) and sp == sc
    zero_sign = sp if both_zero_same else _exact_zero_sign(rm)
    (ma, ea), (mb, eb) = _decode(fmt, a), _decode(fmt, b)
    product = (-(ma * mb) if sp else ma * mb, ea + eb)
    man, exp = _aligned_sum(product, _signed_decode(fmt, c))
    return _round_signed(fmt, man, exp, rm, zero_sign)


def convert(dst: Format, src: Format, a: int, rm: RoundingMode) -> Result:
    """Between formats; NaNs become dst's default NaN (invalid for a signalling one)."""
    if src.is_nan(a):
        return dst.default_nan, NV if src.is_snan(a) else FFlag(0)
    sign = src.sign(a)
    if src.is_inf(a):
        return dst.infinity(sign), FFlag(0)
    if src.is_zero(a):
        return dst.zero(sign), FFlag(0)
    man, exp = _decode(src, a)
    return round_exact(dst, sign, man, exp, rm)


def from_int(fmt: Format, value: int, rm: RoundingMode) -> Result:
    """The integer ``value`` (any Python int) rounded into fmt; zero is +0."""
    return _round_signed(fmt, value, 0, rm, 0)


def round_to_integral(fmt: Format, a: int, rm: RoundingMode) -> tuple[int | None, bool]:
    """(integral value, inexact) of a finite operand rounded in rm; (None, False) for NaN
    and infinities."""
    if fmt.is_nan(a) or fmt.is_inf(a):
        return None, False
    man, exp = _decode(fmt, a)
    n, inexact = _round_int(man, -exp, False, fmt.sign(a), rm)
    return (-n if fmt.sign(a) else n), inexact


def to_int(fmt: Format, a: int, rm: RoundingMode, bits: int, signed: bool) -> tuple[int, FFlag]:
    """The IR's ftoi/ftou: the integer (two's complement in ``bits``) and its flags.

    Out of range: saturated by the operand's sign with INVALID; NaN gives 0 with INVALID.
    """
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    mask = (1 << bits) - 1
    if fmt.is_nan(a):
        return 0, NV
    value, inexact = round_to_integral(fmt, a, rm)
    if value is None or not lo <= value <= hi:
        return (lo if fmt.sign(a) else hi) & mask, NV
    return value & mask, NX if inexact else FFlag(0)


def run_op(op: str, dst_bits: int, src_bits: int, rm: RoundingMode,
           a: int, b: int = 0, c: int = 0) -> Result:
    """Dispatch one IR float op by name (the native helper's entry)."""
    fmt = FORMATS[dst_bits]
    if op in ("itof", "utof"):
        value = a & ((1 << src_bits) - 1)
        if op == "itof" and value >> (src_bits - 1):
            value -= 1 << src_bits
        return from_int(fmt, value, rm)
    if op == "fcvt":
        return convert(fmt, FORMATS[src_bits], a, rm)
    if op == "fsqrt":
        return sqrt(fmt, a, rm)
    if op == "fma":
        return fma(fmt, a, b, c, rm)
    return {"fadd": add, "fsub": sub, "fmul": mul, "fdiv": div}[op](fmt, a, b, rm)
