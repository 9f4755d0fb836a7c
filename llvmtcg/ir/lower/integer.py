"""Rules for integer, logic, shift, compare and width-changing ops.

Every op is lowered so that no input produces LLVM undefined behaviour or poison (the
semantics are in ir/ops.py): shift counts are reduced modulo the width, division
guards its divisor, clz/ctz use the intrinsics' defined-at-zero form.
"""

from __future__ import annotations

from llvmtcg.ir.block import Op
from llvmtcg.ir.lower.emitter import Emitter, LoweringError
from llvmtcg.ir.lower.rule import RuleSet
from llvmtcg.ir.types import Cond, IRType, Temp, to_signed

RULES = RuleSet("integer")
rule = RULES.rule

ICMP = {
    Cond.EQ: "eq", Cond.NE: "ne", Cond.LT: "slt", Cond.GE: "sge", Cond.LE: "sle",
    Cond.GT: "sgt", Cond.LTU: "ult", Cond.GEU: "uge", Cond.LEU: "ule", Cond.GTU: "ugt",
}


def compare(em: Emitter, cond: Cond, a: Temp, b: Temp) -> str:
    """``icmp`` of two temps; returns the i1."""
    return em.value(f"icmp {ICMP[cond]} {a.type} {em.read(a)}, {em.read(b)}")


@rule("mov")
def _mov(em: Emitter, op: Op) -> None:
    em.write(op.outputs[0], em.read(op.inputs[0]))


_SIMPLE_BINARY = {"add": "add", "sub": "sub", "mul": "mul", "and": "and", "or": "or",
                  "xor": "xor"}


@rule(*_SIMPLE_BINARY)
def _binary(em: Emitter, op: Op) -> None:
    t = op.outputs[0].type
    a, b = em.read(op.inputs[0]), em.read(op.inputs[1])
    em.write(op.outputs[0], em.value(f"{_SIMPLE_BINARY[op.name]} {t} {a}, {b}"))


@rule("andc", "orc", "eqv", "nand", "nor")
def _inverted_logic(em: Emitter, op: Op) -> None:
    t = op.outputs[0].type
    a, b = em.read(op.inputs[0]), em.read(op.inputs[1])
    if op.name in ("andc", "orc"):
        nb = em.value(f"xor {t} {b}, -1")
        r = em.value(f"{'and' if op.name == 'andc' else 'or'} {t} {a}, {nb}")
    else:
        inner = {"eqv": "xor", "nand": "and", "nor": "or"}[op.name]
        r = em.value(f"xor {t} {em.value(f'{inner} {t} {a}, {b}')}, -1")
    em.write(op.outputs[0], r)


@rule("neg", "not")
def _neg_not(em: Emitter, op: Op) -> None:
    t = op.outputs[0].type
    a = em.read(op.inputs[0])
    r = em.value(f"sub {t} 0, {a}") if op.name == "neg" else em.value(f"xor {t} {a}, -1")
    em.write(op.outputs[0], r)


_SHIFT = {"shl": "shl", "shr": "lshr", "sar": "ashr"}


def constant_count(op: Op) -> bool:
    return op.inputs[1].is_const


@rule("shl", "shr", "sar", when=constant_count, priority=1)
def _shift_by_constant(em: Emitter, op: Op) -> None:
    # The count is reduced here, so no mask is computed at run time.
    t = op.outputs[0].type
    a = em.read(op.inputs[0])
    count = op.inputs[1].value % t.bits
    em.write(op.outputs[0], em.value(f"{_SHIFT[op.name]} {t} {a}, {count}"))


@rule("shl", "shr", "sar")
def _shift(em: Emitter, op: Op) -> None:
    # LLVM shifts by the width or more are poison; the op takes the count modulo it.
    t = op.outputs[0].type
    a = em.read(op.inputs[0])
    count = em.value(f"and {t} {em.read(op.inputs[1])}, {t.bits - 1}")
    em.write(op.outputs[0], em.value(f"{_SHIFT[op.name]} {t} {a}, {count}"))


@rule("rotl", "rotr")
def _rotate(em: Emitter, op: Op) -> None:
    # Funnel shifts take the count modulo the width, as the op is defined.
    t = op.outputs[0].type
    a, b = em.read(op.inputs[0]), em.read(op.inputs[1])
    fn = "fshl" if op.name == "rotl" else "fshr"
    em.write(op.outputs[0], em.value(f"call {t} @llvm.{fn}.{t}({t} {a}, {t} {a}, {t} {b})"
                                     f"{em.call_attrs}"))


@rule("div", "divu", "rem", "remu")
def _divide(em: Emitter, op: Op) -> None:
    # A zero divisor, and MIN / -1 for signed ops, are replaced by 1 before dividing,
    # then the defined result is selected: x/0 = -1, x%0 = x, MIN/-1 = MIN, MIN%-1 = 0.
    t = op.outputs[0].type
    a, b = em.read(op.inputs[0]), em.read(op.inputs[1])
    zero = em.value(f"icmp eq {t} {b}, 0")
    unsafe = zero
    if op.name in ("div", "rem"):
        minimum = -(1 << (t.bits - 1))
        is_min = em.value(f"icmp eq {t} {a}, {minimum}")
        is_m1 = em.value(f"icmp eq {t} {b}, -1")
        overflow = em.value(f"and i1 {is_min}, {is_m1}")
        unsafe = em.value(f"or i1 {zero}, {overflow}")
    divisor = em.value(f"select i1 {unsafe}, {t} 1, {t} {b}")
    llvm_op = {"div": "sdiv", "divu": "udiv", "rem": "srem", "remu": "urem"}[op.name]
    q = em.value(f"{llvm_op} {t} {a}, {divisor}")
    on_zero = "-1" if op.name in ("div", "divu") else a
    em.write(op.outputs[0], em.value(f"select i1 {zero}, {t} {on_zero}, {t} {q}"))


def _wide_product(em: Emitter, op: Op, a_ext: str, b_ext: str) -> tuple[str, str]:
    t = op.inputs[0].type
    w = f"i{t.bits * 2}"
    a = em.value(f"{a_ext} {t} {em.read(op.inputs[0])} to {w}")
    b = em.value(f"{b_ext} {t} {em.read(op.inputs[1])} to {w}")
    p = em.value(f"mul {w} {a}, {b}")
    lo = em.value(f"trunc {w} {p} to {t}")
    hi = em.value(f"trunc {w} {em.value(f'lshr {w} {p}, {t.bits}')} to {t}")
    return lo, hi


_WIDE_EXTS = {"mulu2": ("zext", "zext"), "muls2": ("sext", "sext"),
              "mulsu2": ("sext", "zext"), "muluh": ("zext", "zext"), "mulsh": ("sext", "sext")}


@rule("mulu2", "muls2", "mulsu2")
def _mul2(em: Emitter, op: Op) -> None:
    lo, hi = _wide_product(em, op, *_WIDE_EXTS[op.name])
    em.write(op.outputs[0], lo)
    em.write(op.outputs[1], hi)


@rule("mulsh", "muluh")
def _mul_high(em: Emitter, op: Op) -> None:
    em.write(op.outputs[0], _wide_product(em, op, *_WIDE_EXTS[op.name])[1])


@rule("clz", "ctz")
def _count_zeros(em: Emitter, op: Op) -> None:
    t = op.outputs[0].type
    a, fallback = em.read(op.inputs[0]), em.read(op.inputs[1])
    # i1 false: the intrinsic is defined (= width) for zero; the op returns `fallback`.
    n = em.value(f"call {t} @llvm.{'ctlz' if op.name == 'clz' else 'cttz'}.{t}({t} {a}, i1 false)"
                 f"{em.call_attrs}")
    zero = em.value(f"icmp eq {t} {a}, 0")
    em.write(op.outputs[0], em.value(f"select i1 {zero}, {t} {fallback}, {t} {n}"))


@rule("ctpop")
def _ctpop(em: Emitter, op: Op) -> None:
    t = op.outputs[0].type
    em.write(op.outputs[0], em.value(f"call {t} @llvm.ctpop.{t}({t} {em.read(op.inputs[0])})"
                                     f"{em.call_attrs}"))


def _narrow_then_extend(em: Emitter, value: str, t: IRType, bits: int, ext: str) -> str:
    if bits == t.bits:
        return value
    narrow = em.value(f"trunc {t} {value} to i{bits}")
    return em.value(f"{ext} i{bits} {narrow} to {t}")


@rule("ext8s", "ext8u", "ext16s", "ext16u", "ext32s", "ext32u")
def _extend(em: Emitter, op: Op) -> None:
    t = op.outputs[0].type
    bits = int(op.name[3:-1])
    ext = "sext" if op.name.endswith("s") else "zext"
    em.write(op.outputs[0], _narrow_then_extend(em, em.read(op.inputs[0]), t, bits, ext))


@rule("bswap16", "bswap32", "bswap64")
def _bswap(em: Emitter, op: Op) -> None:
    # Swap the low N bits; the result is zero-extended to the temp's width.
    t = op.outputs[0].type
    bits = int(op.name[5:])
    if bits > t.bits:
        raise LoweringError(f"{op.name} on {t}")
    v = em.read(op.inputs[0])
    narrow = v if bits == t.bits else em.value(f"trunc {t} {v} to i{bits}")
    swapped = em.value(f"call i{bits} @llvm.bswap.i{bits}(i{bits} {narrow}){em.call_attrs}")
    if bits < t.bits:
        swapped = em.value(f"zext i{bits} {swapped} to {t}")
    em.write(op.outputs[0], swapped)


@rule("extract", "sextract")
def _extract(em: Emitter, op: Op) -> None:
    t = op.outputs[0].type
    ofs, length = op.args
    v = em.read(op.inputs[0])
    # Shift the field to the top, then back down with a logical or arithmetic shift.
    up = em.value(f"shl {t} {v}, {t.bits - ofs - length}")
    down = "ashr" if op.name == "sextract" else "lshr"
    em.write(op.outputs[0], em.value(f"{down} {t} {up}, {t.bits - length}"))


@rule("deposit")
def _deposit(em: Emitter, op: Op) -> None:
    t = op.outputs[0].type
    ofs, length = op.args
    base, field = em.read(op.inputs[0]), em.read(op.inputs[1])
    mask = ((1 << length) - 1) << ofs
    kept = em.value(f"and {t} {base}, {to_signed(~mask, t.bits)}")
    moved = em.value(f"shl {t} {field}, {ofs}")
    inserted = em.value(f"and {t} {moved}, {to_signed(mask, t.bits)}")
    em.write(op.outputs[0], em.value(f"or {t} {kept}, {inserted}"))


@rule("setcond")
def _setcond(em: Emitter, op: Op) -> None:
    c = compare(em, op.args[0], *op.inputs)
    em.write(op.outputs[0], em.value(f"zext i1 {c} to {op.outputs[0].type}"))


@rule("movcond")
def _movcond(em: Emitter, op: Op) -> None:
    t = op.outputs[0].type
    c = compare(em, op.args[0], op.inputs[0], op.inputs[1])
    vt, vf = em.read(op.inputs[2]), em.read(op.inputs[3])
    em.write(op.outputs[0], em.value(f"select i1 {c}, {t} {vt}, {t} {vf}"))


@rule("ext_i32_i64", "extu_i32_i64")
def _ext_i32_i64(em: Emitter, op: Op) -> None:
    ext = "sext" if op.name == "ext_i32_i64" else "zext"
    em.write(op.outputs[0], em.value(f"{ext} i32 {em.read(op.inputs[0])} to i64"))


@rule("extrl_i64_i32", "extrh_i64_i32")
def _extr_i64_i32(em: Emitter, op: Op) -> None:
    v = em.read(op.inputs[0])
    if op.name == "extrh_i64_i32":
        v = em.value(f"lshr i64 {v}, 32")
    em.write(op.outputs[0], em.value(f"trunc i64 {v} to i32"))
