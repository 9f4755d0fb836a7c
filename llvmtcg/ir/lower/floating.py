"""Rules for the float ops (semantics in ir/ops.py).

Arithmetic is LLVM's constrained intrinsics with ``round.dynamic`` and
``fpexcept.strict``: LLVM neither folds, deletes nor reorders them, and they raise
their exceptions in MXCSR, which holds the guest's environment while native code runs
(see ir/host_fp.py). A static rounding mode other than DYN is loaded into MXCSR.RC
around the op and the previous RC restored after it (keeping the flags the op raised);
ties-to-away, which x86 lacks, calls the exact soft-float helper (separate rules with a
higher priority). Conversions to integers round with roundeven/trunc/floor/ceil/
nearbyint (no MXCSR change) and compute saturation and flags with compares and
selects. fmin/fmax, fclass and NaN tests are integer operations on the bit patterns.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from llvmtcg.ir import host_abi, host_fp
from llvmtcg.ir.block import Op
from llvmtcg.ir.lower.emitter import Emitter
from llvmtcg.ir.lower.rule import RuleSet
from llvmtcg.ir.types import I32, I64, FCond, FFlag, IRType, RoundingMode, Temp

RULES = RuleSet("floating")
rule = RULES.rule

_FLOAT = {I32: "float", I64: "double"}
_SUFFIX = {I32: "f32", I64: "f64"}
_MAN_BITS = {I32: 23, I64: 52}
_STRICT = 'metadata !"fpexcept.strict"'
_DYNAMIC = 'metadata !"round.dynamic"'
_ROUND_INTEGRAL = {RoundingMode.RNE: "roundeven", RoundingMode.RTZ: "trunc",
                   RoundingMode.RDN: "floor", RoundingMode.RUP: "ceil"}
_FCMP = {  # FCond -> (LLVM predicate, signalling)
    FCond.EQ: ("oeq", False), FCond.SEQ: ("oeq", True), FCond.LT: ("olt", True),
    FCond.LE: ("ole", True), FCond.QLT: ("olt", False), FCond.QLE: ("ole", False),
    FCond.UNORD: ("uno", False),
}


def _abs_mask(t: IRType) -> int:
    return (1 << (t.bits - 1)) - 1


def _inf(t: IRType) -> int:
    return ((1 << (t.bits - 1 - _MAN_BITS[t])) - 1) << _MAN_BITS[t]


def _fconst(value: float) -> str:
    """An LLVM float/double literal (hex of the binary64; exact for float values)."""
    return f"0x{struct.unpack('<Q', struct.pack('<d', value))[0]:016X}"


# -- small emitters ------------------------------------------------------------------------

def _as_float(em: Emitter, bits: str, t: IRType) -> str:
    return em.value(f"bitcast {t} {bits} to {_FLOAT[t]}")


def _as_bits(em: Emitter, value: str, t: IRType) -> str:
    return em.value(f"bitcast {_FLOAT[t]} {value} to {t}")


def _constrained(em: Emitter, name: str, ret: str, args: list[str],
                 rounding: bool = True) -> str:
    operands = [*args, *([_DYNAMIC] if rounding else []), _STRICT]
    return em.value(f"call {ret} @llvm.experimental.constrained.{name}"
                    f"({', '.join(operands)}){em.call_attrs}")


def _fcmp(em: Emitter, pred: str, t: IRType, a: str, b: str, signaling: bool = False) -> str:
    ft = _FLOAT[t]
    kind = "fcmps" if signaling else "fcmp"
    return em.value(f"call i1 @llvm.experimental.constrained.{kind}.{_SUFFIX[t]}({ft} {a}, "
                    f'{ft} {b}, metadata !"{pred}", {_STRICT}){em.call_attrs}')


def _is_nan(em: Emitter, t: IRType, bits: str) -> str:
    magnitude = em.value(f"and {t} {bits}, {_abs_mask(t)}")
    return em.value(f"icmp ugt {t} {magnitude}, {_inf(t)}")


def _read_mxcsr(em: Emitter) -> str:
    slot = em.mxcsr_scratch()
    em.emit(host_abi.save_mxcsr(slot, em.call_attrs))
    return em.value(f"load i32, ptr {slot}, align 4")


def _write_mxcsr(em: Emitter, value: str) -> None:
    slot = em.mxcsr_scratch()
    em.emit(f"store i32 {value}, ptr {slot}, align 4")
    em.emit(host_abi.load_mxcsr(slot, em.call_attrs))


def _raise_host_flags(em: Emitter, mxcsr_flags: str) -> None:
    """OR exception flags (MXCSR layout, i32) into the live MXCSR."""
    _write_mxcsr(em, em.value(f"or i32 {_read_mxcsr(em)}, {mxcsr_flags}"))


def _rounded(em: Emitter, rm: RoundingMode, emit: Callable[[], str]) -> str:
    """Emit an op in rounding mode rm: DYN as is, a static mode with MXCSR.RC set to it
    around the op; the flags the op raised stay in MXCSR."""
    if rm is RoundingMode.DYN:
        return emit()
    rc_mask = host_fp.MXCSR_RC_MASK
    old = _read_mxcsr(em)
    cleared = em.value(f"and i32 {old}, {~rc_mask}")
    _write_mxcsr(em, em.value(f"or i32 {cleared}, {host_fp.mxcsr_rounding_bits(rm)}"))
    result = emit()
    now = em.value(f"and i32 {_read_mxcsr(em)}, {~rc_mask}")
    previous = em.value(f"and i32 {old}, {rc_mask}")
    _write_mxcsr(em, em.value(f"or i32 {now}, {previous}"))
    return result


def _softfloat(em: Emitter, name: str, dst: IRType, src: IRType, rm: RoundingMode,
               operands: list[Temp]) -> str:
    """Call the exact soft-float helper. It raises its flags in the guest environment
    (cpu.fp_env), which the runtime's callback thunk loads back into MXCSR."""
    info = host_fp.encode_softfloat(name, dst.bits, src.bits, rm)
    args = []
    for t in operands:
        v = em.read(t)
        args.append(v if t.type is I64 else em.value(f"zext i32 {v} to i64"))
    args += ["0"] * (3 - len(args))
    # Hot regions keep float values in vector registers across this (cold) call.
    callee = host_abi.SOFTFLOAT_PRESERVE_ALL if em.cold_calls_preserve_all \
        else host_abi.SOFTFLOAT
    result = em.value(host_abi.call(callee, [str(info), *args], em.call_attrs))
    return result if dst is I64 else em.value(f"trunc i64 {result} to i32")


# -- arithmetic -----------------------------------------------------------------------------

_LLVM_ARITH = {"fadd": "fadd", "fsub": "fsub", "fmul": "fmul", "fdiv": "fdiv",
               "fsqrt": "sqrt", "fma": "fma"}


def ties_away(op: Op) -> bool:
    """The op rounds ties away from zero, which x86 cannot."""
    return op.args[0] is RoundingMode.RMM


@rule("fadd", "fsub", "fmul", "fdiv", "fsqrt", "fma", when=ties_away, priority=1)
def _arith_ties_away(em: Emitter, op: Op) -> None:
    dst = op.outputs[0]
    t = dst.type
    em.write(dst, _softfloat(em, op.name, t, t, op.args[0], list(op.inputs)))


@rule("fadd", "fsub", "fmul", "fdiv", "fsqrt", "fma")
def _arith(em: Emitter, op: Op) -> None:
    dst = op.outputs[0]
    t = dst.type
    rm = op.args[0]
    ft = _FLOAT[t]
    bits = [em.read(x) for x in op.inputs]
    values = [_as_float(em, b, t) for b in bits]
    if op.name in ("fadd", "fsub", "fma"):
        # LLVM folds a constrained op on constants whose result is exact, even with
        # round.dynamic; but the sign of an exact zero sum (x + -x) depends on the
        # rounding mode. An opaque copy of one operand keeps constants out of reach.
        values[0] = em.value(f'call {ft} asm "", "=x,0"({ft} {values[0]}){em.call_attrs}')
    name = f"{_LLVM_ARITH[op.name]}.{_SUFFIX[t]}"
    result = _as_bits(em, _rounded(em, rm, lambda: _constrained(
        em, name, ft, [f"{ft} {v}" for v in values])), t)
    if op.name == "fma":
        _fma_invalid_fixup(em, t, bits[0], bits[1], result)
    em.write(dst, result)


def _fma_invalid_fixup(em: Emitter, t: IRType, a: str, b: str, result: str) -> None:
    """x86 FMA does not signal invalid for 0*inf + quiet NaN; the op does. Checked only
    when the result is a NaN (off the hot path)."""
    k = em.fresh()
    em.emit(f"br i1 {_is_nan(em, t, result)}, label %fma_nan{k}, label %fma_done{k}")
    em.new_block(f"fma_nan{k}")
    abs_a = em.value(f"and {t} {a}, {_abs_mask(t)}")
    abs_b = em.value(f"and {t} {b}, {_abs_mask(t)}")
    a_inf, b_inf = (em.value(f"icmp eq {t} {x}, {_inf(t)}") for x in (abs_a, abs_b))
    a_zero, b_zero = (em.value(f"icmp eq {t} {x}, 0") for x in (abs_a, abs_b))
    inf_zero = em.value(f"and i1 {a_inf}, {b_zero}")
    zero_inf = em.value(f"and i1 {a_zero}, {b_inf}")
    invalid = em.value(f"or i1 {inf_zero}, {zero_inf}")
    _raise_host_flags(em, em.value(f"select i1 {invalid}, i32 {host_fp.MXCSR_IE}, i32 0"))
    em.emit(f"br label %fma_done{k}")
    em.new_block(f"fma_done{k}")


# -- conversions ----------------------------------------------------------------------------

def widening(op: Op) -> bool:
    return op.outputs[0].type is I64


@rule("fcvt", when=widening, priority=2)
def _fcvt_widen(em: Emitter, op: Op) -> None:
    # binary32 -> binary64 is exact: no rounding mode.
    value = _as_float(em, em.read(op.inputs[0]), I32)
    result = _constrained(em, "fpext.f64.f32", "double", [f"float {value}"],
                          rounding=False)
    em.write(op.outputs[0], _as_bits(em, result, I64))


@rule("fcvt", when=ties_away, priority=1)
def _fcvt_narrow_ties_away(em: Emitter, op: Op) -> None:
    em.write(op.outputs[0], _softfloat(em, "fcvt", I32, I64, op.args[0], [op.inputs[0]]))


@rule("fcvt")
def _fcvt_narrow(em: Emitter, op: Op) -> None:
    dst, src = op.outputs[0], op.inputs[0]
    rm = op.args[0]
    value = _as_float(em, em.read(src), I64)
    result = _rounded(em, rm, lambda: _constrained(em, "fptrunc.f32.f64", "float",
                                                   [f"double {value}"]))
    em.write(dst, _as_bits(em, result, I32))


def _exact_conversion(op: Op) -> bool:
    """Every integer of the operand's type is a float of the result's (i32 -> binary64)."""
    return op.inputs[0].type.bits <= _MAN_BITS[op.outputs[0].type] + 1


def rounded_ties_away(op: Op) -> bool:
    """An integer conversion that can round, rounding ties away from zero."""
    return op.args[0] is RoundingMode.RMM and not _exact_conversion(op)


@rule("itof", "utof", when=rounded_ties_away, priority=1)
def _int_to_float_ties_away(em: Emitter, op: Op) -> None:
    dst, src = op.outputs[0], op.inputs[0]
    em.write(dst, _softfloat(em, op.name, dst.type, src.type, op.args[0], [src]))


@rule("itof", "utof")
def _int_to_float(em: Emitter, op: Op) -> None:
    dst, src = op.outputs[0], op.inputs[0]
    rm = op.args[0]
    t = dst.type
    exact = _exact_conversion(op)
    value = em.read(src)
    name = f"{'sitofp' if op.name == 'itof' else 'uitofp'}.{_SUFFIX[t]}.{src.type}"

    def emit() -> str:
        return _constrained(em, name, _FLOAT[t], [f"{src.type} {value}"])

    result = emit() if exact else _rounded(em, rm, emit)
    em.write(dst, _as_bits(em, result, t))


def _round_integral(em: Emitter, t: IRType, x: str, bits: str, rm: RoundingMode) -> str:
    """x (not a NaN) rounded to an integral value in rm, raising no exception."""
    ft, fs = _FLOAT[t], _SUFFIX[t]
    if rm in _ROUND_INTEGRAL:
        return _constrained(em, f"{_ROUND_INTEGRAL[rm]}.{fs}", ft, [f"{ft} {x}"],
                            rounding=False)
    if rm is RoundingMode.DYN:
        return _constrained(em, f"nearbyint.{fs}", ft, [f"{ft} {x}"])
    # Ties away from zero: t = trunc(x); |x - t| >= 0.5 ? t + copysign(1, x) : t. The
    # subtraction is exact; infinities are kept out of it (inf - inf is invalid) and the
    # addition only sees |t| < 2**p, where it is exact too.
    magnitude = em.value(f"and {t} {bits}, {_abs_mask(t)}")
    infinite = em.value(f"icmp eq {t} {magnitude}, {_inf(t)}")
    finite = em.value(f"select i1 {infinite}, {ft} 0.0, {ft} {x}")
    whole = _constrained(em, f"trunc.{fs}", ft, [f"{ft} {finite}"], rounding=False)
    frac = _constrained(em, f"fsub.{fs}", ft, [f"{ft} {finite}", f"{ft} {whole}"])
    frac_abs = em.value(f"call {ft} @llvm.fabs.{fs}({ft} {frac}){em.call_attrs}")
    away = _fcmp(em, "oge", t, frac_abs, _fconst(0.5))
    small = em.value(f"select i1 {away}, {ft} {whole}, {ft} 0.0")
    one = em.value(f"call {ft} @llvm.copysign.{fs}({ft} 1.0, {ft} {finite}){em.call_attrs}")
    bumped = _constrained(em, f"fadd.{fs}", ft, [f"{ft} {small}", f"{ft} {one}"])
    rounded = em.value(f"select i1 {away}, {ft} {bumped}, {ft} {whole}")
    return em.value(f"select i1 {infinite}, {ft} {x}, {ft} {rounded}")


@rule("ftoi", "ftou")
def _float_to_int(em: Emitter, op: Op) -> None:
    dst, flags_out = op.outputs
    src = op.inputs[0]
    rm = op.args[0]
    t, it = src.type, dst.type
    ft, fs = _FLOAT[t], _SUFFIX[t]
    n = it.bits
    signed = op.name == "ftoi"
    bits = em.read(src)
    nan = _is_nan(em, t, bits)
    clean = em.value(f"select i1 {nan}, {t} 0, {t} {bits}")  # NaNs never reach FP ops
    x = _as_float(em, clean, t)
    r = _round_integral(em, t, x, clean, rm)
    if signed:
        low = _fcmp(em, "oge", t, r, _fconst(-2.0 ** (n - 1)))
    else:
        low = _fcmp(em, "ogt", t, r, _fconst(-1.0))
    high = _fcmp(em, "olt", t, r, _fconst(2.0 ** (n - 1 if signed else n)))
    in_range = em.value(f"and i1 {low}, {high}")
    fits = em.value(f"select i1 {nan}, i1 false, i1 {in_range}")
    safe = em.value(f"select i1 {fits}, {ft} {r}, {ft} 0.0")
    conv = "fptosi" if signed else "fptoui"
    value = _constrained(em, f"{conv}.{it}.{fs}", str(it), [f"{ft} {safe}"], rounding=False)
    negative = em.value(f"icmp slt {t} {bits}, 0")
    if signed:
        by_sign = em.value(f"select i1 {negative}, {it} {-(1 << (n - 1))}, "
                           f"{it} {(1 << (n - 1)) - 1}")
        saturated = em.value(f"select i1 {nan}, {it} 0, {it} {by_sign}")
    else:
        to_zero = em.value(f"or i1 {nan}, {negative}")
        saturated = em.value(f"select i1 {to_zero}, {it} 0, {it} -1")
    em.write(dst, em.value(f"select i1 {fits}, {it} {value}, {it} {saturated}"))
    unchanged = em.value(f"icmp eq {t} {_as_bits(em, r, t)}, {clean}")
    inexact = em.value(f"select i1 {unchanged}, i32 0, i32 {int(FFlag.INEXACT)}")
    em.write(flags_out, em.value(f"select i1 {fits}, i32 {inexact}, i32 {int(FFlag.INVALID)}"))


# -- comparisons, min/max, class ------------------------------------------------------------

@rule("fsetcond")
def _fsetcond(em: Emitter, op: Op) -> None:
    a, b = op.inputs
    t = a.type
    pred, signaling = _FCMP[op.args[0]]
    fa, fb = _as_float(em, em.read(a), t), _as_float(em, em.read(b), t)
    c = _fcmp(em, pred, t, fa, fb, signaling)
    em.write(op.outputs[0], em.value(f"zext i1 {c} to {op.outputs[0].type}"))


@rule("fmin", "fmax")
def _fminmax(em: Emitter, op: Op) -> None:
    # minimumNumber/maximumNumber on bit patterns: mapping sign-magnitude to a signed
    # integer key orders all non-NaN values (-0 < +0). A quiet compare, whose result is
    # unused, raises invalid exactly when an operand is a signalling NaN.
    t = op.outputs[0].type
    a, b = em.read(op.inputs[0]), em.read(op.inputs[1])
    _fcmp(em, "oeq", t, _as_float(em, a, t), _as_float(em, b, t))
    keys = []
    for v in (a, b):
        sign = em.value(f"ashr {t} {v}, {t.bits - 1}")
        keys.append(em.value(f"xor {t} {v}, {em.value(f'lshr {t} {sign}, 1')}"))
    a_less = em.value(f"icmp slt {t} {keys[0]}, {keys[1]}")
    first, second = (a, b) if op.name == "fmin" else (b, a)
    ordered = em.value(f"select i1 {a_less}, {t} {first}, {t} {second}")
    b_nan, a_nan = _is_nan(em, t, b), _is_nan(em, t, a)
    either = em.value(f"select i1 {a_nan}, {t} {b}, {t} {ordered}")
    em.write(op.outputs[0], em.value(f"select i1 {b_nan}, {t} {a}, {t} {either}"))


@rule("fcanon")
def _fcanon(em: Emitter, op: Op) -> None:
    # A quiet unordered compare and a select of doubles: the value never leaves the
    # vector registers (the integer test on the bits moved it to a GPR and back).
    # The compare raises nothing for quiet NaNs, the only NaNs arithmetic returns.
    t = op.outputs[0].type
    ft = _FLOAT[t]
    value = _as_float(em, em.read(op.inputs[0]), t)
    nan = _fcmp(em, "uno", t, value, value)
    canonical = "0x7FF8000000000000"  # LLVM writes float constants as doubles too
    em.write(op.outputs[0], _as_bits(em, em.value(
        f"select i1 {nan}, {ft} {canonical}, {ft} {value}"), t))


@rule("fclass")
def _fclass(em: Emitter, op: Op) -> None:
    src, dst = op.inputs[0], op.outputs[0]
    t = src.type
    v = em.read(src)
    magnitude = em.value(f"and {t} {v}, {_abs_mask(t)}")
    inf = _inf(t)
    is_zero = em.value(f"icmp eq {t} {magnitude}, 0")
    is_subnormal = em.value(f"icmp ult {t} {magnitude}, {1 << _MAN_BITS[t]}")
    is_inf = em.value(f"icmp eq {t} {magnitude}, {inf}")
    is_nan = em.value(f"icmp ugt {t} {magnitude}, {inf}")
    # Magnitude class 0 zero, 1 subnormal, 2 normal, 3 infinity.
    m = em.value(f"select i1 {is_inf}, i32 3, i32 2")
    m = em.value(f"select i1 {is_subnormal}, i32 1, i32 {m}")
    m = em.value(f"select i1 {is_zero}, i32 0, i32 {m}")
    negative = em.value(f"icmp slt {t} {v}, 0")
    below = em.value(f"sub i32 3, {m}")
    above = em.value(f"add i32 4, {m}")
    index = em.value(f"select i1 {negative}, i32 {below}, i32 {above}")
    quiet = em.value(f"and {t} {v}, {1 << (_MAN_BITS[t] - 1)}")
    is_quiet = em.value(f"icmp ne {t} {quiet}, 0")
    nan_index = em.value(f"select i1 {is_quiet}, i32 9, i32 8")
    index = em.value(f"select i1 {is_nan}, i32 {nan_index}, i32 {index}")
    out = dst.type
    wide = index if out is I32 else em.value(f"zext i32 {index} to i64")
    em.write(dst, em.value(f"shl {out} 1, {wide}"))



# -- the host FP environment ---------------------------------------------------------------

@rule("fpenv_flags")
def _fpenv_flags(em: Emitter, op: Op) -> None:
    env = _read_mxcsr(em)
    # MXCSR IE/ZE/OE/UE/PE (bits 0, 2, 3, 4, 5) -> FFlag NV/DZ/OF/UF/NX (16, 8, 4, 2, 1).
    parts = [em.value(f"shl i32 {em.value(f'and i32 {env}, 1')}, 4"),
             em.value(f"shl i32 {em.value(f'and i32 {env}, 4')}, 1"),
             em.value(f"and i32 {em.value(f'lshr i32 {env}, 1')}, 4"),
             em.value(f"and i32 {em.value(f'lshr i32 {env}, 3')}, 2"),
             em.value(f"and i32 {em.value(f'lshr i32 {env}, 5')}, 1")]
    flags = parts[0]
    for part in parts[1:]:
        flags = em.value(f"or i32 {flags}, {part}")
    _write_mxcsr(em, em.value(f"and i32 {env}, {~host_fp.MXCSR_FLAGS}"))
    em.write(op.outputs[0], flags)


# MXCSR.RC by RoundingMode ordinal (RNE, RTZ, RDN, RUP; the rest RNE), 2 bits each.
_RC_TABLE = sum(host_fp.mxcsr_rounding_bits(rm) >> host_fp.MXCSR_RC_SHIFT << (2 * i)
                for i, rm in enumerate(RoundingMode) if host_fp.has_rounding_control(rm))


@rule("fpenv_round")
def _fpenv_round(em: Emitter, op: Op) -> None:
    index = em.value(f"and i32 {em.read(op.inputs[0])}, 7")
    shift = em.value(f"shl i32 {index}, 1")
    rc = em.value(f"and i32 {em.value(f'lshr i32 {_RC_TABLE}, {shift}')}, 3")
    cleared = em.value(f"and i32 {_read_mxcsr(em)}, {~host_fp.MXCSR_RC_MASK}")
    field = em.value(f"shl i32 {rc}, {host_fp.MXCSR_RC_SHIFT}")
    _write_mxcsr(em, em.value(f"or i32 {cleared}, {field}"))
