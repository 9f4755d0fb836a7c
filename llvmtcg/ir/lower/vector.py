"""Rules for the vector ops (semantics in ir/ops.py): LLVM vector types, so the host's
SSE/AVX does the work.

A v128 value is ``<2 x i64>``; each rule views it as the op's lanes (``<16 x i8>`` ..
``<2 x double>``), or for ``oprsz`` 8 as the lanes of its low half only (so a float op
raises no exception for the unused high lanes), and puts the result back with the
high half zeroed. Float ops are the constrained intrinsics the scalar float rules use
(strict exceptions, the dynamic rounding mode or a static one set around the op);
shifts take constant counts below the lane width, so nothing is poison.
"""

from __future__ import annotations

from llvmtcg.ir import host_fp
from llvmtcg.ir.block import Op
from llvmtcg.ir.lower.emitter import Emitter
from llvmtcg.ir.lower.floating import _FCMP, _raise_host_flags, _rounded
from llvmtcg.ir.lower.integer import ICMP
from llvmtcg.ir.lower.rule import RuleSet
from llvmtcg.ir.ops import unpack_permute

RULES = RuleSet("vector")
rule = RULES.rule

V128 = "<2 x i64>"
_STRICT = 'metadata !"fpexcept.strict"'
_DYNAMIC = 'metadata !"round.dynamic"'


def lane_type(vece: int, oprsz: int, float_lanes: bool = False) -> tuple[str, int, str]:
    """(LLVM vector type, lane count, lane type) of ``oprsz`` bytes of vece lanes."""
    bits = 8 << vece
    count = oprsz * 8 // bits
    lane = {32: "float", 64: "double"}[bits] if float_lanes else f"i{bits}"
    return f"<{count} x {lane}>", count, lane


def lanes(em: Emitter, value: str, vece: int, oprsz: int, float_lanes: bool = False) -> str:
    """``value`` (a v128) as the op's lanes."""
    ty = lane_type(vece, oprsz, float_lanes)[0]
    if oprsz == 16:
        return em.value(f"bitcast {V128} {value} to {ty}")
    low = em.value(f"extractelement {V128} {value}, i32 0")
    return em.value(f"bitcast i64 {low} to {ty}")


def packed(em: Emitter, value: str, vece: int, oprsz: int, float_lanes: bool = False) -> str:
    """Lanes back into a v128 (the high half zero for oprsz 8)."""
    ty = lane_type(vece, oprsz, float_lanes)[0]
    if oprsz == 16:
        return em.value(f"bitcast {ty} {value} to {V128}")
    low = em.value(f"bitcast {ty} {value} to i64")
    return em.value(f"insertelement {V128} zeroinitializer, i64 {low}, i32 0")


def _inputs(em: Emitter, op: Op, float_lanes: bool = False) -> list[str]:
    vece, oprsz = op.args[0], op.args[1]
    return [lanes(em, em.read(t), vece, oprsz, float_lanes) for t in op.inputs]


def _result(em: Emitter, op: Op, value: str, float_lanes: bool = False) -> None:
    em.write(op.outputs[0], packed(em, value, op.args[0], op.args[1], float_lanes))


def _splat(vece: int, oprsz: int, value: int) -> str:
    ty, count, lane = lane_type(vece, oprsz)
    return f"<{', '.join([f'{lane} {value}'] * count)}>"


# -- integer ------------------------------------------------------------------------------

_BINARY = {"vadd": "add", "vsub": "sub", "vmul": "mul", "vand": "and", "vor": "or",
           "vxor": "xor"}


@rule(*_BINARY)
def _binary(em: Emitter, op: Op) -> None:
    ty = lane_type(op.args[0], op.args[1])[0]
    a, b = _inputs(em, op)
    _result(em, op, em.value(f"{_BINARY[op.name]} {ty} {a}, {b}"))


@rule("vandc")
def _andc(em: Emitter, op: Op) -> None:
    ty = lane_type(op.args[0], op.args[1])[0]
    a, b = _inputs(em, op)
    nb = em.value(f"xor {ty} {b}, {_splat(op.args[0], op.args[1], -1)}")
    _result(em, op, em.value(f"and {ty} {a}, {nb}"))


_INTRINSIC_BINARY = {"vsmin": "smin", "vsmax": "smax", "vumin": "umin", "vumax": "umax",
                     "vssadd": "sadd.sat", "vusadd": "uadd.sat", "vsssub": "ssub.sat",
                     "vussub": "usub.sat"}


def _vector_suffix(vece: int, oprsz: int, float_lanes: bool = False) -> str:
    _, count, lane = lane_type(vece, oprsz, float_lanes)
    return f"v{count}{'f' if float_lanes else 'i'}{8 << vece}"


@rule(*_INTRINSIC_BINARY)
def _intrinsic_binary(em: Emitter, op: Op) -> None:
    vece, oprsz = op.args[0], op.args[1]
    ty = lane_type(vece, oprsz)[0]
    a, b = _inputs(em, op)
    fn = f"llvm.{_INTRINSIC_BINARY[op.name]}.{_vector_suffix(vece, oprsz)}"
    _result(em, op, em.value(f"call {ty} @{fn}({ty} {a}, {ty} {b}){em.call_attrs}"))


@rule("vneg", "vnot", "vabs")
def _unary(em: Emitter, op: Op) -> None:
    vece, oprsz = op.args[0], op.args[1]
    ty = lane_type(vece, oprsz)[0]
    (a,) = _inputs(em, op)
    if op.name == "vneg":
        r = em.value(f"sub {ty} zeroinitializer, {a}")
    elif op.name == "vnot":
        r = em.value(f"xor {ty} {a}, {_splat(vece, oprsz, -1)}")
    else:  # (i1 false: the most negative lane is itself, not poison)
        r = em.value(f"call {ty} @llvm.abs.{_vector_suffix(vece, oprsz)}({ty} {a}, i1 false)"
                     f"{em.call_attrs}")
    _result(em, op, r)


@rule("vmov")
def _vmov(em: Emitter, op: Op) -> None:
    value = em.read(op.inputs[0])
    if op.args[1] == 8:
        low = em.value(f"extractelement {V128} {value}, i32 0")
        value = em.value(f"insertelement {V128} zeroinitializer, i64 {low}, i32 0")
    em.write(op.outputs[0], value)


@rule("vcmp")
def _vcmp(em: Emitter, op: Op) -> None:
    vece, oprsz, cond = op.args
    ty, count, _ = lane_type(vece, oprsz)
    a, b = _inputs(em, op)
    c = em.value(f"icmp {ICMP[cond]} {ty} {a}, {b}")
    _result(em, op, em.value(f"sext <{count} x i1> {c} to {ty}"))


_SHIFT = {"vshli": "shl", "vshri": "lshr", "vsari": "ashr"}


@rule(*_SHIFT)
def _shift(em: Emitter, op: Op) -> None:
    vece, oprsz, count = op.args
    ty = lane_type(vece, oprsz)[0]
    (a,) = _inputs(em, op)
    _result(em, op, em.value(f"{_SHIFT[op.name]} {ty} {a}, {_splat(vece, oprsz, count)}"))


@rule("vdup")
def _vdup(em: Emitter, op: Op) -> None:
    vece, oprsz = op.args[0], op.args[1]
    ty, count, lane = lane_type(vece, oprsz)
    x = em.read(op.inputs[0])
    if lane != "i64":
        x = em.value(f"trunc i64 {x} to {lane}")
    one = em.value(f"insertelement {ty} poison, {lane} {x}, i32 0")
    splat = em.value(f"shufflevector {ty} {one}, {ty} poison, <{count} x i32> zeroinitializer")
    _result(em, op, splat)


def _shuffle(em: Emitter, op: Op, a: str, b: str, indexes: list[int]) -> None:
    ty = lane_type(op.args[0], op.args[1])[0]
    mask = ", ".join(f"i32 {i}" for i in indexes)
    _result(em, op, em.value(f"shufflevector {ty} {a}, {ty} {b}, <{len(indexes)} x i32> "
                             f"<{mask}>"))


@rule("vdupe")
def _vdupe(em: Emitter, op: Op) -> None:
    vece, oprsz, index = op.args
    full_ty = lane_type(vece, 16)[0]
    whole = lanes(em, em.read(op.inputs[0]), vece, 16)  # the lane may be in the high half
    count = lane_type(vece, oprsz)[1]
    mask = ", ".join([f"i32 {index}"] * count)
    splat = em.value(f"shufflevector {full_ty} {whole}, {full_ty} poison, <{count} x i32> "
                     f"<{mask}>")
    _result(em, op, splat)


def permute_indexes(name: str, count: int) -> list[int]:
    """The shufflevector mask of an Arm permute of two vectors of ``count`` lanes
    (indexes >= count pick from the second)."""
    half = count // 2
    if name in ("vzip1", "vzip2"):
        base = 0 if name == "vzip1" else half
        return [base + i // 2 + (count if i % 2 else 0) for i in range(count)]
    if name in ("vuzp1", "vuzp2"):
        return [2 * i + (name == "vuzp2") for i in range(count)]
    odd = name == "vtrn2"
    return [(i + odd if i % 2 == 0 else count + i - 1 + odd) for i in range(count)]


@rule("vzip1", "vzip2", "vuzp1", "vuzp2", "vtrn1", "vtrn2")
def _permute(em: Emitter, op: Op) -> None:
    if op.args[0] == 0 and op.name in ("vuzp1", "vuzp2"):
        _uzp_bytes(em, op)
        return
    a, b = _inputs(em, op)
    count = lane_type(op.args[0], op.args[1])[1]
    _shuffle(em, op, a, b, permute_indexes(op.name, count))


def _uzp_bytes(em: Emitter, op: Op) -> None:
    """UZP1/UZP2 of bytes (ADDP/UMAXP/UMINP of bytes are made of them: glibc's string
    routines) without a constant pool: as a byte shufflevector LLVM picks a pshufb or
    vpermt2b mask from memory (written when the baseline block cache could not store
    blocks reaching a pool; it relocates them now, but a register op still beats a
    load). The odd bytes are the words shifted right by
    8, packed with packuswb (no lane above 255: no saturation); the even bytes are a
    plain even-lane shuffle (vpmovwb on AVX-512 hosts). For oprsz 8 both low halves
    go into one vector first (the result's high half is zero)."""
    a, b = (em.read(t) for t in op.inputs)
    if op.args[1] == 8:
        lo_a = em.value(f"extractelement {V128} {a}, i32 0")
        lo_b = em.value(f"extractelement {V128} {b}, i32 0")
        both = em.value(f"insertelement {V128} poison, i64 {lo_a}, i32 0")
        a, b = em.value(f"insertelement {V128} {both}, i64 {lo_b}, i32 1"), None
    ty = "<16 x i8>"
    if op.name == "vuzp1":
        x = em.value(f"bitcast {V128} {a} to {ty}")
        if b is None:  # (the 8 even bytes of both halves, then zeros)
            other, mask = "zeroinitializer", [2 * i for i in range(8)] + [16] * 8
        else:
            other, mask = em.value(f"bitcast {V128} {b} to {ty}"), list(range(0, 32, 2))
        indexes = ", ".join(f"i32 {i}" for i in mask)
        r = em.value(f"shufflevector {ty} {x}, {ty} {other}, <16 x i32> <{indexes}>")
    else:
        words = []
        for v in (a, b):
            if v is None:
                words.append("zeroinitializer")
                continue
            w = em.value(f"bitcast {V128} {v} to <8 x i16>")
            words.append(em.value(f"lshr <8 x i16> {w}, {_splat(1, 16, 8)}"))
        r = em.value(f"call {ty} @llvm.x86.sse2.packuswb.128(<8 x i16> {words[0]}, "
                     f"<8 x i16> {words[1]}){em.call_attrs}")
    em.write(op.outputs[0], em.value(f"bitcast {ty} {r} to {V128}"))


@rule("vperm")
def _vperm(em: Emitter, op: Op) -> None:
    # One shufflevector of the whole inputs' lanes (as a byte shuffle LLVM may take a
    # pshufb/vpermt2b mask from a constant pool: such baseline blocks are stored all the
    # same, baseline_cache relocates their pool references).
    vece, oprsz, mask = op.args
    count = lane_type(vece, oprsz)[1]
    a, b = (lanes(em, em.read(t), vece, 16) for t in op.inputs)
    ty = lane_type(vece, 16)[0]
    indexes = ", ".join(f"i32 {i}" for i in unpack_permute(mask, count))
    _result(em, op, em.value(f"shufflevector {ty} {a}, {ty} {b}, <{count} x i32> "
                             f"<{indexes}>"))


@rule("vctpop")
def _vctpop(em: Emitter, op: Op) -> None:
    vece, oprsz = op.args
    ty = lane_type(vece, oprsz)[0]
    (a,) = _inputs(em, op)
    _result(em, op, em.value(f"call {ty} @llvm.ctpop.{_vector_suffix(vece, oprsz)}({ty} {a})"
                             f"{em.call_attrs}"))


@rule("vclz", "vbitrev")
def _vclz(em: Emitter, op: Op) -> None:
    # (ctlz with i1 false: a zero lane gives the lane width, not poison)
    vece, oprsz = op.args
    ty = lane_type(vece, oprsz)[0]
    (a,) = _inputs(em, op)
    suffix = _vector_suffix(vece, oprsz)
    call = (f"@llvm.ctlz.{suffix}({ty} {a}, i1 false)" if op.name == "vclz"
            else f"@llvm.bitreverse.{suffix}({ty} {a})")
    _result(em, op, em.value(f"call {ty} {call}{em.call_attrs}"))


@rule("vshlv", "vshrv", "vsarv")
def _variable_shift(em: Emitter, op: Op) -> None:
    # LLVM's shift by a lane of the lane width or more is poison: the count is clamped
    # to width - 1 (an arithmetic shift by that is the sign copies), and the logical
    # shifts select 0 where it was out of range (AVX2/AVX-512's vpsllv/vpsrlv give 0
    # there themselves: LLVM folds the select into them).
    vece, oprsz = op.args
    ty, count, _ = lane_type(vece, oprsz)
    a, b = _inputs(em, op)
    top = _splat(vece, oprsz, (8 << vece) - 1)
    clamped = em.value(f"call {ty} @llvm.umin.{_vector_suffix(vece, oprsz)}({ty} {b}, "
                       f"{ty} {top}){em.call_attrs}")
    shifted = em.value(f"{_VSHIFT[op.name]} {ty} {a}, {clamped}")
    if op.name != "vsarv":
        inside = em.value(f"icmp ule {ty} {b}, {top}")
        shifted = em.value(f"select <{count} x i1> {inside}, {ty} {shifted}, {ty} "
                           "zeroinitializer")
    _result(em, op, shifted)


_VSHIFT = {"vshlv": "shl", "vshrv": "lshr", "vsarv": "ashr"}


@rule("vtbl")
def _vtbl(em: Emitter, op: Op) -> None:
    # pshufb picks table[index & 15] (zero where bit 7 is set); indices of 16 and more
    # take the fallback's byte instead. Computed on all 16 bytes (integer lanes: no
    # side effects), the high half cleared after for oprsz 8.
    table, indices, fallback = (lanes(em, em.read(t), 0, 16) for t in op.inputs)
    ty = "<16 x i8>"
    picked = em.value(f"call {ty} @llvm.x86.ssse3.pshuf.b.128({ty} {table}, {ty} {indices})"
                      f"{em.call_attrs}")
    inside = em.value(f"icmp ult {ty} {indices}, {_splat(0, 16, 16)}")
    result = packed(em, em.value(f"select <16 x i1> {inside}, {ty} {picked}, {ty} {fallback}"),
                    0, 16)
    if op.args[1] == 8:
        low = em.value(f"extractelement {V128} {result}, i32 0")
        result = em.value(f"insertelement {V128} zeroinitializer, i64 {low}, i32 0")
    em.write(op.outputs[0], result)


# -- float --------------------------------------------------------------------------------

_FLOAT_BINARY = {"vfadd": "fadd", "vfsub": "fsub", "vfmul": "fmul", "vfdiv": "fdiv",
                 "vfsqrt": "sqrt"}


@rule(*_FLOAT_BINARY, "vfma")
def _float_arith(em: Emitter, op: Op) -> None:
    vece, oprsz, rm = op.args
    ty = lane_type(vece, oprsz, True)[0]
    values = [em.read(t) for t in op.inputs]
    if op.name in ("vfadd", "vfsub", "vfma"):
        # As the scalar rule: LLVM folds an exact constrained sum of known values even
        # with round.dynamic, but the sign of x + -x depends on the mode. (The copy is
        # of the whole register: a 64-bit vector has no "x" operand.)
        values[0] = em.value(f'call {V128} asm "", "=x,0"({V128} {values[0]})'
                             f"{em.call_attrs}")
    operands = [lanes(em, v, vece, oprsz, True) for v in values]
    name = _FLOAT_BINARY.get(op.name, "fma")
    args = ", ".join([*(f"{ty} {x}" for x in operands), _DYNAMIC, _STRICT])
    suffix = _vector_suffix(vece, oprsz, True)

    def emit() -> str:
        return em.value(f"call {ty} @llvm.experimental.constrained.{name}.{suffix}({args})"
                        f"{em.call_attrs}")
    result = _rounded(em, rm, emit)
    if op.name == "vfma":
        _fma_invalid_fixup(em, op, result)
    _result(em, op, result, True)


@rule("vfcmp")
def _vfcmp(em: Emitter, op: Op) -> None:
    # The scalar fsetcond's constrained compare (cmpps/cmppd with an ordered quiet or
    # signalling predicate), its <n x i1> widened to lane masks.
    vece, oprsz, cond = op.args
    ty, count, _ = lane_type(vece, oprsz, True)
    a, b = _inputs(em, op, True)
    pred, signaling = _FCMP[cond]
    kind = "fcmps" if signaling else "fcmp"
    c = em.value(f"call <{count} x i1> @llvm.experimental.constrained.{kind}."
                 f"{_vector_suffix(vece, oprsz, True)}({ty} {a}, {ty} {b}, "
                 f'metadata !"{pred}", {_STRICT}){em.call_attrs}')
    _result(em, op, em.value(f"sext <{count} x i1> {c} to {lane_type(vece, oprsz)[0]}"))


@rule("vftosi")
def _vftosi(em: Emitter, op: Op) -> None:
    # cvttps2dq/cvttpd2qq (or per lane cvttsd2si): in range (the op's contract) the
    # constrained conversion is exact but for Inexact, which it raises.
    vece, oprsz = op.args
    ty = lane_type(vece, oprsz, True)[0]
    int_ty = lane_type(vece, oprsz)[0]
    (value,) = _inputs(em, op, True)
    suffix = f"{_vector_suffix(vece, oprsz)}.{_vector_suffix(vece, oprsz, True)}"
    _result(em, op, em.value(f"call {int_ty} @llvm.experimental.constrained.fptosi."
                             f"{suffix}({ty} {value}, {_STRICT}){em.call_attrs}"))


@rule("vitof", "vutof")
def _int_to_float(em: Emitter, op: Op) -> None:
    # As the scalar itof/utof rule: the constrained conversion (cvtdq2ps, vcvtqq2pd..)
    # rounds in the op's mode and raises Inexact in MXCSR; integer lanes are never NaNs
    # and never give a denormal, so nothing else differs from the scalar op.
    vece, oprsz, rm = op.args
    ty = lane_type(vece, oprsz, True)[0]
    (value,) = _inputs(em, op)
    name = "sitofp" if op.name == "vitof" else "uitofp"
    suffix = f"{_vector_suffix(vece, oprsz, True)}.{_vector_suffix(vece, oprsz)}"
    src_ty = lane_type(vece, oprsz)[0]

    def emit() -> str:
        return em.value(f"call {ty} @llvm.experimental.constrained.{name}.{suffix}("
                        f"{src_ty} {value}, {_DYNAMIC}, {_STRICT}){em.call_attrs}")
    _result(em, op, _rounded(em, rm, emit), True)


def _any_lane(em: Emitter, count: int, mask: str) -> str:
    """i1: some lane of ``mask`` (<count x i1>) is set."""
    bits = em.value(f"bitcast <{count} x i1> {mask} to i{count}")
    return em.value(f"icmp ne i{count} {bits}, 0")


def _nan_lanes(em: Emitter, vece: int, oprsz: int, a: str) -> str:
    """<count x i1>: which lanes of ``a`` (integer lanes) are NaNs."""
    ty = lane_type(vece, oprsz)[0]
    bits = 8 << vece
    man = 23 if bits == 32 else 52
    magnitude = em.value(f"and {ty} {a}, {_splat(vece, oprsz, (1 << (bits - 1)) - 1)}")
    inf = ((1 << (bits - 1 - man)) - 1) << man
    return em.value(f"icmp ugt {ty} {magnitude}, {_splat(vece, oprsz, inf)}")


def _fma_invalid_fixup(em: Emitter, op: Op, result: str) -> None:
    """x86 FMA does not signal invalid for 0*inf + quiet NaN; the op does (as the
    scalar rule). Checked only when some lane of the result is a NaN."""
    vece, oprsz = op.args[0], op.args[1]
    ty, count, _ = lane_type(vece, oprsz)
    bits = 8 << vece
    man = 23 if bits == 32 else 52
    inf = ((1 << (bits - 1 - man)) - 1) << man
    as_int = em.value(f"bitcast {lane_type(vece, oprsz, True)[0]} {result} to {ty}")
    k = em.fresh()
    em.emit(f"br i1 {_any_lane(em, count, _nan_lanes(em, vece, oprsz, as_int))}, "
            f"label %vfma_nan{k}, label %vfma_done{k}")
    em.new_block(f"vfma_nan{k}")
    a, b = (lanes(em, em.read(t), vece, oprsz) for t in op.inputs[:2])
    abs_mask = _splat(vece, oprsz, (1 << (bits - 1)) - 1)
    abs_a, abs_b = (em.value(f"and {ty} {x}, {abs_mask}") for x in (a, b))
    a_inf, b_inf = (em.value(f"icmp eq {ty} {x}, {_splat(vece, oprsz, inf)}")
                    for x in (abs_a, abs_b))
    a_zero, b_zero = (em.value(f"icmp eq {ty} {x}, zeroinitializer") for x in (abs_a, abs_b))
    inf_zero = em.value(f"and <{count} x i1> {a_inf}, {b_zero}")
    zero_inf = em.value(f"and <{count} x i1> {a_zero}, {b_inf}")
    invalid = _any_lane(em, count, em.value(f"or <{count} x i1> {inf_zero}, {zero_inf}"))
    _raise_host_flags(em, em.value(f"select i1 {invalid}, i32 {host_fp.MXCSR_IE}, i32 0"))
    em.emit(f"br label %vfma_done{k}")
    em.new_block(f"vfma_done{k}")


@rule("vany")
def _vany(em: Emitter, op: Op) -> None:
    vece, oprsz = op.args
    ty, count, _ = lane_type(vece, oprsz)
    (a,) = _inputs(em, op)
    nonzero = em.value(f"icmp ne {ty} {a}, zeroinitializer")
    em.write(op.outputs[0], em.value(f"zext i1 {_any_lane(em, count, nonzero)} to i64"))


@rule("vfanynan")
def _vfanynan(em: Emitter, op: Op) -> None:
    # On the bit patterns (no exceptions): |x| above the infinity pattern.
    vece, oprsz = op.args
    (a,) = _inputs(em, op)
    some = _any_lane(em, lane_type(vece, oprsz)[1], _nan_lanes(em, vece, oprsz, a))
    em.write(op.outputs[0], em.value(f"zext i1 {some} to i64"))
