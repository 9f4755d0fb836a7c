"""Lowering of the float ops (semantics in ir/ops.py) to LLVM IR: rules in the same table.

Arithmetic is LLVM's constrained intrinsics with ``round.dynamic`` and
``fpexcept.strict``: LLVM neither folds, deletes nor reorders them, and they raise
their exceptions in MXCSR, which holds the guest's environment while native code runs
(see ir/host_fp.py). A static rounding mode other than DYN is loaded into MXCSR.RC
around the op and the previous RC restored after it (keeping the flags the op raised);
ties-to-away, which x86 lacks, calls the exact soft-float helper. Conversions to
integers round with roundeven/trunc/floor/ceil/nearbyint (no MXCSR change) and
compute saturation and flags with compares and selects. fmin/fmax, fclass and NaN
tests are integer operations on the bit patterns.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from llvmtcg.ir import host_abi, host_fp
from llvmtcg.ir.block import Op
from llvmtcg.ir.lower_llvm import Lowering, _rule
from llvmtcg.ir.types import I32, I64, FCond, FFlag, IRType, RoundingMode, Temp

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

def _as_float(lw: Lowering, bits: str, t: IRType) -> str:
    return lw._val(f"bitcast {t} {bits} to {_FLOAT[t]}")


def _as_bits(lw: Lowering, value: str, t: IRType) -> str:
    return lw._val(f"bitcast {_FLOAT[t]} {value} to {t}")


def _constrained(lw: Lowering, name: str, ret: str, args: list[str],
                 rounding: bool = True) -> str:
    operands = [*args, *([_DYNAMIC] if rounding else []), _STRICT]
    return lw._val(f"call {ret} @llvm.experimental.constrained.{name}"
                   f"({', '.join(operands)}){lw.call_attrs}")


def _fcmp(lw: Lowering, pred: str, t: IRType, a: str, b: str, signaling: bool = False) -> str:
    ft = _FLOAT[t]
    kind = "fcmps" if signaling else "fcmp"
    return lw._val(f"call i1 @llvm.experimental.constrained.{kind}.{_SUFFIX[t]}({ft} {a}, "
                   f'{ft} {b}, metadata !"{pred}", {_STRICT}){lw.call_attrs}')


def _is_nan(lw: Lowering, t: IRType, bits: str) -> str:
    magnitude = lw._val(f"and {t} {bits}, {_abs_mask(t)}")
    return lw._val(f"icmp ugt {t} {magnitude}, {_inf(t)}")


def _read_mxcsr(lw: Lowering) -> str:
    lw._st.mxcsr_slot = True
    lw._emit(host_abi.save_mxcsr("%mxcsr.p", lw.call_attrs))
    return lw._val("load i32, ptr %mxcsr.p, align 4")


def _write_mxcsr(lw: Lowering, value: str) -> None:
    lw._st.mxcsr_slot = True
    lw._emit(f"store i32 {value}, ptr %mxcsr.p, align 4")
    lw._emit(host_abi.load_mxcsr("%mxcsr.p", lw.call_attrs))


def _raise_host_flags(lw: Lowering, mxcsr_flags: str) -> None:
    """OR exception flags (MXCSR layout, i32) into the live MXCSR."""
    _write_mxcsr(lw, lw._val(f"or i32 {_read_mxcsr(lw)}, {mxcsr_flags}"))


def _rounded(lw: Lowering, rm: RoundingMode, emit: Callable[[], str]) -> str:
    """Emit an op in rounding mode rm: DYN as is, a static mode with MXCSR.RC set to it
    around the op; the flags the op raised stay in MXCSR."""
    if rm is RoundingMode.DYN:
        return emit()
    rc_mask = host_fp.MXCSR_RC_MASK
    old = _read_mxcsr(lw)
    cleared = lw._val(f"and i32 {old}, {~rc_mask}")
    _write_mxcsr(lw, lw._val(f"or i32 {cleared}, {host_fp.mxcsr_rounding_bits(rm)}"))
    result = emit()
    now = lw._val(f"and i32 {_read_mxcsr(lw)}, {~rc_mask}")
    previous = lw._val(f"and i32 {old}, {rc_mask}")
    _write_mxcsr(lw, lw._val(f"or i32 {now}, {previous}"))
    return result


def _softfloat(lw: Lowering, name: str, dst: IRType, src: IRType, rm: RoundingMode,
               operands: list[Temp]) -> str:
    """Call the exact soft-float helper. It raises its flags in the guest environment
    (cpu.fp_env), which the runtime's callback thunk loads back into MXCSR."""
    info = host_fp.encode_softfloat(name, dst.bits, src.bits, rm)
    args = []
    for t in operands:
        v = lw.read(t)
        args.append(v if t.type is I64 else lw._val(f"zext i32 {v} to i64"))
    args += ["0"] * (3 - len(args))
    # Hot regions keep float values in vector registers across this (cold) call.
    callee = host_abi.SOFTFLOAT_PRESERVE_ALL if lw._st.region is not None else host_abi.SOFTFLOAT
    result = lw._val(host_abi.call(callee, [str(info), *args], lw.call_attrs))
    return result if dst is I64 else lw._val(f"trunc i64 {result} to i32")


# -- arithmetic -----------------------------------------------------------------------------

_LLVM_ARITH = {"fadd": "fadd", "fsub": "fsub", "fmul": "fmul", "fdiv": "fdiv",
               "fsqrt": "sqrt", "fma": "fma"}


@_rule("fadd", "fsub", "fmul", "fdiv", "fsqrt", "fma")
def _arith(lw: Lowering, op: Op) -> None:
    dst = op.outputs[0]
    t = dst.type
    rm = op.args[0]
    if rm is RoundingMode.RMM:
        lw.write(dst, _softfloat(lw, op.name, t, t, rm, list(op.inputs)))
        return
    ft = _FLOAT[t]
    bits = [lw.read(x) for x in op.inputs]
    values = [_as_float(lw, b, t) for b in bits]
    if op.name in ("fadd", "fsub", "fma"):
        # LLVM folds a constrained op on constants whose result is exact, even with
        # round.dynamic; but the sign of an exact zero sum (x + -x) depends on the
        # rounding mode. An opaque copy of one operand keeps constants out of reach.
        values[0] = lw._val(f'call {ft} asm "", "=x,0"({ft} {values[0]}){lw.call_attrs}')
    name = f"{_LLVM_ARITH[op.name]}.{_SUFFIX[t]}"
    result = _as_bits(lw, _rounded(lw, rm, lambda: _constrained(
        lw, name, ft, [f"{ft} {v}" for v in values])), t)
    if op.name == "fma":
        _fma_invalid_fixup(lw, t, bits[0], bits[1], result)
    lw.write(dst, result)


def _fma_invalid_fixup(lw: Lowering, t: IRType, a: str, b: str, result: str) -> None:
    """x86 FMA does not signal invalid for 0*inf + quiet NaN; the op does. Checked only
    when the result is a NaN (off the hot path)."""
    k = lw._n()
    lw._emit(f"br i1 {_is_nan(lw, t, result)}, label %fma_nan{k}, label %fma_done{k}")
    lw._new_block(f"fma_nan{k}")
    abs_a = lw._val(f"and {t} {a}, {_abs_mask(t)}")
    abs_b = lw._val(f"and {t} {b}, {_abs_mask(t)}")
    a_inf, b_inf = (lw._val(f"icmp eq {t} {x}, {_inf(t)}") for x in (abs_a, abs_b))
    a_zero, b_zero = (lw._val(f"icmp eq {t} {x}, 0") for x in (abs_a, abs_b))
    inf_zero = lw._val(f"and i1 {a_inf}, {b_zero}")
    zero_inf = lw._val(f"and i1 {a_zero}, {b_inf}")
    invalid = lw._val(f"or i1 {inf_zero}, {zero_inf}")
    _raise_host_flags(lw, lw._val(f"select i1 {invalid}, i32 {host_fp.MXCSR_IE}, i32 0"))
    lw._emit(f"br label %fma_done{k}")
    lw._new_block(f"fma_done{k}")


# -- conversions ----------------------------------------------------------------------------

@_rule("fcvt")
def _fcvt(lw: Lowering, op: Op) -> None:
    dst, src = op.outputs[0], op.inputs[0]
    rm = op.args[0]
    if dst.type is I64:  # binary32 -> binary64 is exact
        value = _as_float(lw, lw.read(src), I32)
        result = _constrained(lw, "fpext.f64.f32", "double", [f"float {value}"],
                              rounding=False)
        lw.write(dst, _as_bits(lw, result, I64))
        return
    if rm is RoundingMode.RMM:
        lw.write(dst, _softfloat(lw, "fcvt", I32, I64, rm, [src]))
        return
    value = _as_float(lw, lw.read(src), I64)
    result = _rounded(lw, rm, lambda: _constrained(lw, "fptrunc.f32.f64", "float",
                                                   [f"double {value}"]))
    lw.write(dst, _as_bits(lw, result, I32))


@_rule("itof", "utof")
def _int_to_float(lw: Lowering, op: Op) -> None:
    dst, src = op.outputs[0], op.inputs[0]
    rm = op.args[0]
    t = dst.type
    exact = src.type.bits <= _MAN_BITS[t] + 1  # i32 -> binary64 never rounds
    if rm is RoundingMode.RMM and not exact:
        lw.write(dst, _softfloat(lw, op.name, t, src.type, rm, [src]))
        return
    value = lw.read(src)
    name = f"{'sitofp' if op.name == 'itof' else 'uitofp'}.{_SUFFIX[t]}.{src.type}"

    def emit() -> str:
        return _constrained(lw, name, _FLOAT[t], [f"{src.type} {value}"])

    result = emit() if exact else _rounded(lw, rm, emit)
    lw.write(dst, _as_bits(lw, result, t))


def _round_integral(lw: Lowering, t: IRType, x: str, bits: str, rm: RoundingMode) -> str:
    """x (not a NaN) rounded to an integral value in rm, raising no exception."""
    ft, fs = _FLOAT[t], _SUFFIX[t]
    if rm in _ROUND_INTEGRAL:
        return _constrained(lw, f"{_ROUND_INTEGRAL[rm]}.{fs}", ft, [f"{ft} {x}"],
                            rounding=False)
    if rm is RoundingMode.DYN:
        return _constrained(lw, f"nearbyint.{fs}", ft, [f"{ft} {x}"])
    # Ties away from zero: t = trunc(x); |x - t| >= 0.5 ? t + copysign(1, x) : t. The
    # subtraction is exact; infinities are kept out of it (inf - inf is invalid) and the
    # addition only sees |t| < 2**p, where it is exact too.
    magnitude = lw._val(f"and {t} {bits}, {_abs_mask(t)}")
    infinite = lw._val(f"icmp eq {t} {magnitude}, {_inf(t)}")
    finite = lw._val(f"select i1 {infinite}, {ft} 0.0, {ft} {x}")
    whole = _constrained(lw, f"trunc.{fs}", ft, [f"{ft} {finite}"], rounding=False)
    frac = _constrained(lw, f"fsub.{fs}", ft, [f"{ft} {finite}", f"{ft} {whole}"])
    frac_abs = lw._val(f"call {ft} @llvm.fabs.{fs}({ft} {frac}){lw.call_attrs}")
    away = _fcmp(lw, "oge", t, frac_abs, _fconst(0.5))
    small = lw._val(f"select i1 {away}, {ft} {whole}, {ft} 0.0")
    one = lw._val(f"call {ft} @llvm.copysign.{fs}({ft} 1.0, {ft} {finite}){lw.call_attrs}")
    bumped = _constrained(lw, f"fadd.{fs}", ft, [f"{ft} {small}", f"{ft} {one}"])
    rounded = lw._val(f"select i1 {away}, {ft} {bumped}, {ft} {whole}")
    return lw._val(f"select i1 {infinite}, {ft} {x}, {ft} {rounded}")


@_rule("ftoi", "ftou")
def _float_to_int(lw: Lowering, op: Op) -> None:
    dst, flags_out = op.outputs
    src = op.inputs[0]
    rm = op.args[0]
    t, it = src.type, dst.type
    ft, fs = _FLOAT[t], _SUFFIX[t]
    n = it.bits
    signed = op.name == "ftoi"
    bits = lw.read(src)
    nan = _is_nan(lw, t, bits)
    clean = lw._val(f"select i1 {nan}, {t} 0, {t} {bits}")  # NaNs never reach FP ops
    x = _as_float(lw, clean, t)
    r = _round_integral(lw, t, x, clean, rm)
    if signed:
        low = _fcmp(lw, "oge", t, r, _fconst(-2.0 ** (n - 1)))
    else:
        low = _fcmp(lw, "ogt", t, r, _fconst(-1.0))
    high = _fcmp(lw, "olt", t, r, _fconst(2.0 ** (n - 1 if signed else n)))
    in_range = lw._val(f"and i1 {low}, {high}")
    fits = lw._val(f"select i1 {nan}, i1 false, i1 {in_range}")
    safe = lw._val(f"select i1 {fits}, {ft} {r}, {ft} 0.0")
    conv = "fptosi" if signed else "fptoui"
    value = _constrained(lw, f"{conv}.{it}.{fs}", str(it), [f"{ft} {safe}"], rounding=False)
    negative = lw._val(f"icmp slt {t} {bits}, 0")
    if signed:
        by_sign = lw._val(f"select i1 {negative}, {it} {-(1 << (n - 1))}, "
                          f"{it} {(1 << (n - 1)) - 1}")
        saturated = lw._val(f"select i1 {nan}, {it} 0, {it} {by_sign}")
    else:
        to_zero = lw._val(f"or i1 {nan}, {negative}")
        saturated = lw._val(f"select i1 {to_zero}, {it} 0, {it} -1")
    lw.write(dst, lw._val(f"select i1 {fits}, {it} {value}, {it} {saturated}"))
    unchanged = lw._val(f"icmp eq {t} {_as_bits(lw, r, t)}, {clean}")
    inexact = lw._val(f"select i1 {unchanged}, i32 0, i32 {int(FFlag.INEXACT)}")
    lw.write(flags_out, lw._val(f"select i1 {fits}, i32 {inexact}, i32 {int(FFlag.INVALID)}"))


# -- comparisons, min/max, class ------------------------------------------------------------

@_rule("fsetcond")
def _fsetcond(lw: Lowering, op: Op) -> None:
    a, b = op.inputs
    t = a.type
    pred, signaling = _FCMP[op.args[0]]
    fa, fb = _as_float(lw, lw.read(a), t), _as_float(lw, lw.read(b), t)
    c = _fcmp(lw, pred, t, fa, fb, signaling)
    lw.write(op.outputs[0], lw._val(f"zext i1 {c} to {op.outputs[0].type}"))


@_rule("fmin", "fmax")
def _fminmax(lw: Lowering, op: Op) -> None:
    # minimumNumber/maximumNumber on bit patterns: mapping sign-magnitude to a signed
    # integer key orders all non-NaN values (-0 < +0). A quiet compare, whose result is
    # unused, raises invalid exactly when an operand is a signalling NaN.
    t = op.outputs[0].type
    a, b = lw.read(op.inputs[0]), lw.read(op.inputs[1])
    _fcmp(lw, "oeq", t, _as_float(lw, a, t), _as_float(lw, b, t))
    keys = []
    for v in (a, b):
        sign = lw._val(f"ashr {t} {v}, {t.bits - 1}")
        keys.append(lw._val(f"xor {t} {v}, {lw._val(f'lshr {t} {sign}, 1')}"))
    a_less = lw._val(f"icmp slt {t} {keys[0]}, {keys[1]}")
    first, second = (a, b) if op.name == "fmin" else (b, a)
    ordered = lw._val(f"select i1 {a_less}, {t} {first}, {t} {second}")
    b_nan, a_nan = _is_nan(lw, t, b), _is_nan(lw, t, a)
    either = lw._val(f"select i1 {a_nan}, {t} {b}, {t} {ordered}")
    lw.write(op.outputs[0], lw._val(f"select i1 {b_nan}, {t} {a}, {t} {either}"))


@_rule("fcanon")
def _fcanon(lw: Lowering, op: Op) -> None:
    # A quiet unordered compare and a select of doubles: the value never leaves the
    # vector registers (the integer test on the bits moved it to a GPR and back).
    # The compare raises nothing for quiet NaNs, the only NaNs arithmetic returns.
    t = op.outputs[0].type
    ft = _FLOAT[t]
    value = _as_float(lw, lw.read(op.inputs[0]), t)
    nan = _fcmp(lw, "uno", t, value, value)
    canonical = "0x7FF8000000000000"  # LLVM writes float constants as doubles too
    lw.write(op.outputs[0], _as_bits(lw, lw._val(
        f"select i1 {nan}, {ft} {canonical}, {ft} {value}"), t))


@_rule("fclass")
def _fclass(lw: Lowering, op: Op) -> None:
    src, dst = op.inputs[0], op.outputs[0]
    t = src.type
    v = lw.read(src)
    magnitude = lw._val(f"and {t} {v}, {_abs_mask(t)}")
    inf = _inf(t)
    is_zero = lw._val(f"icmp eq {t} {magnitude}, 0")
    is_subnormal = lw._val(f"icmp ult {t} {magnitude}, {1 << _MAN_BITS[t]}")
    is_inf = lw._val(f"icmp eq {t} {magnitude}, {inf}")
    is_nan = lw._val(f"icmp ugt {t} {magnitude}, {inf}")
    # Magnitude class 0 zero, 1 subnormal, 2 normal, 3 infinity.
    m = lw._val(f"select i1 {is_inf}, i32 3, i32 2")
    m = lw._val(f"select i1 {is_subnormal}, i32 1, i32 {m}")
    m = lw._val(f"select i1 {is_zero}, i32 0, i32 {m}")
    negative = lw._val(f"icmp slt {t} {v}, 0")
    below = lw._val(f"sub i32 3, {m}")
    above = lw._val(f"add i32 4, {m}")
    index = lw._val(f"select i1 {negative}, i32 {below}, i32 {above}")
    quiet = lw._val(f"and {t} {v}, {1 << (_MAN_BITS[t] - 1)}")
    is_quiet = lw._val(f"icmp ne {t} {quiet}, 0")
    nan_index = lw._val(f"select i1 {is_quiet}, i32 9, i32 8")
    index = lw._val(f"select i1 {is_nan}, i32 {nan_index}, i32 {index}")
    out = dst.type
    wide = index if out is I32 else lw._val(f"zext i32 {index} to i64")
    lw.write(dst, lw._val(f"shl {out} 1, {wide}"))



# -- the host FP environment ---------------------------------------------------------------

@_rule("fpenv_flags")
def _fpenv_flags(lw: Lowering, op: Op) -> None:
    env = _read_mxcsr(lw)
    # MXCSR IE/ZE/OE/UE/PE (bits 0, 2, 3, 4, 5) -> FFlag NV/DZ/OF/UF/NX (16, 8, 4, 2, 1).
    parts = [lw._val(f"shl i32 {lw._val(f'and i32 {env}, 1')}, 4"),
             lw._val(f"shl i32 {lw._val(f'and i32 {env}, 4')}, 1"),
             lw._val(f"and i32 {lw._val(f'lshr i32 {env}, 1')}, 4"),
             lw._val(f"and i32 {lw._val(f'lshr i32 {env}, 3')}, 2"),
             lw._val(f"and i32 {lw._val(f'lshr i32 {env}, 5')}, 1")]
    flags = parts[0]
    for part in parts[1:]:
        flags = lw._val(f"or i32 {flags}, {part}")
    _write_mxcsr(lw, lw._val(f"and i32 {env}, {~host_fp.MXCSR_FLAGS}"))
    lw.write(op.outputs[0], flags)


# MXCSR.RC by RoundingMode ordinal (RNE, RTZ, RDN, RUP; the rest RNE), 2 bits each.
_RC_TABLE = sum(host_fp.mxcsr_rounding_bits(rm) >> host_fp.MXCSR_RC_SHIFT << (2 * i)
                for i, rm in enumerate(RoundingMode) if host_fp.has_rounding_control(rm))


@_rule("fpenv_round")
def _fpenv_round(lw: Lowering, op: Op) -> None:
    index = lw._val(f"and i32 {lw.read(op.inputs[0])}, 7")
    shift = lw._val(f"shl i32 {index}, 1")
    rc = lw._val(f"and i32 {lw._val(f'lshr i32 {_RC_TABLE}, {shift}')}, 3")
    cleared = lw._val(f"and i32 {_read_mxcsr(lw)}, {~host_fp.MXCSR_RC_MASK}")
    field = lw._val(f"shl i32 {rc}, {host_fp.MXCSR_RC_SHIFT}")
    _write_mxcsr(lw, lw._val(f"or i32 {cleared}, {field}"))
