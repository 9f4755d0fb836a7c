"""Lowering: IR blocks -> LLVM IR text (one module holds several blocks).

Each block becomes ``define i64 @<name>(ptr noalias %cpu, ptr %mem)`` returning an
exit value (see :class:`ExitReason`). ``%cpu`` is the CPU state; ``%mem`` is the base
that TLB addends are relative to, so guest memory is always addressed by
``getelementptr`` from it. Globals are loads and stores of CPU-state fields (the
``noalias`` lets LLVM keep them in SSA between guest memory operations); locals are
allocas that SROA promotes.

Lowering is a table: one function per opcode in ``_LOWER``. Every op is lowered so
that no input produces LLVM undefined behaviour (see ir/ops.py for the semantics).
Float ops live in ``lower_float.py``, which adds its rules to the same table. A block
with float ops is a ``strictfp`` function: its float ops are constrained intrinsics
and every call in it is a ``strictfp`` call, so LLVM neither folds nor reorders them
across changes of the rounding mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir import host_fp
from llvmtcg.ir.block import Block, Op
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.ir.ops import EXIT_REASON_BITS, ExitReason, OpFlag
from llvmtcg.ir.types import I32, I64, AtomicOp, Cond, IRType, Label, MemOp, Temp, TempKind

assert EXIT_REASON_BITS == 3  # exit slots are 8-byte aligned: their low 3 bits are free


class LoweringError(Exception):
    """An op the lowering cannot express (unknown helper, unknown opcode)."""


_ICMP = {
    Cond.EQ: "eq", Cond.NE: "ne", Cond.LT: "slt", Cond.GE: "sge", Cond.LE: "sle",
    Cond.GT: "sgt", Cond.LTU: "ult", Cond.GEU: "uge", Cond.LEU: "ule", Cond.GTU: "ugt",
}
_ATOMICRMW = {
    AtomicOp.XCHG: "xchg", AtomicOp.ADD: "add", AtomicOp.AND: "and", AtomicOp.OR: "or",
    AtomicOp.XOR: "xor", AtomicOp.SMIN: "min", AtomicOp.SMAX: "max",
    AtomicOp.UMIN: "umin", AtomicOp.UMAX: "umax",
}


def slot_symbol(block_name: str, n: int) -> str:
    """The module global holding exit slot n's target (a host function pointer)."""
    return f"{block_name}.slot{n}"


@dataclass(slots=True)
class _FnState:
    block: Block
    lines: list[str]
    counter: int = 0
    insn_pc: int = 0
    fault_pcs: dict[str, int] | None = None
    terminated: bool = False
    strictfp: bool = False  # the block has float ops
    mxcsr_slot: bool = False  # the block reads or writes MXCSR through %mxcsr.p
    field_ptrs: dict[int, str] | None = None  # CPU-state field pointers made in entry


class Lowering:
    """Lowers blocks against one CPU layout and helper set.

    Args:
        layout: the CPU-state layout (field offsets, TLB geometry).
        helpers: declarations of the helpers blocks may call, by name.
        count_insns: add each block's instruction count to ``insn_count`` on entry.
        inline_memory: expand every guest access's TLB probe inline (fast code) rather
            than calling a shared accessor per MemOp (about half the LLVM IR for
            memory-heavy blocks, so much faster to compile). Accessors a module calls
            are listed in ``accessors_used``; :meth:`accessor_module` defines them.
    """

    def __init__(self, layout: abi.CpuLayout, helpers: Mapping[str, HelperDecl],
                 count_insns: bool = False, inline_memory: bool = True) -> None:
        self.layout = layout
        self.helpers = helpers
        self.count_insns = count_insns
        self.inline_memory = inline_memory
        self.accessors_used: set[str] = set()

    # -- module ---------------------------------------------------------------------------
    def lower_module(self, blocks: Iterable[Block], triple: str = "") -> str:
        blocks = list(blocks)
        self.accessors_used = set()
        out: list[str] = []
        if triple:
            out.append(f'target triple = "{triple}"')
        used_helpers: set[str] = set()
        for b in blocks:
            for n in sorted({op.args[0] for op in b.ops if op.name == "goto_tb"}):
                out.append(f"@{_q(slot_symbol(b.name, n))} = global ptr null, align 8")
            used_helpers |= {op.args[0] for op in b.ops if op.name == "call"}
        out.append(f"declare i64 @{abi.SLOW_LOAD}(ptr, i64, i32) nounwind")
        out.append(f"declare i64 @{abi.SLOW_STORE}(ptr, i64, i64, i32) nounwind")
        out.append(f"declare i64 @{abi.SLOW_PROBE}(ptr, i64, i32) nounwind")
        out.append(f"declare i64 @{host_fp.SOFTFLOAT}(ptr, i32, i64, i64, i64) nounwind")
        for name in sorted(used_helpers):
            decl = self._helper(name)
            ret = str(decl.ret) if decl.ret else "void"
            params = (["ptr"] if decl.flags & HelperFlag.TAKES_CPU else [])
            params += [str(t) for t in decl.args]
            out.append(f"declare {ret} @{decl.symbol}({', '.join(params)}) "
                       f"{decl.llvm_attributes()}")
        functions = [self.lower_function(b) for b in blocks]
        for name in sorted(self.accessors_used):
            out.append(_accessor_declaration(name))
        return "\n".join(out + functions) + "\n"

    def accessor_module(self, names: Iterable[str], triple: str = "") -> str:
        """LLVM IR defining the out-of-line memory accessors ``names``."""
        out = [f'target triple = "{triple}"'] if triple else []
        out += [f"declare i64 @{abi.SLOW_LOAD}(ptr, i64, i32) nounwind",
                f"declare i64 @{abi.SLOW_STORE}(ptr, i64, i64, i32) nounwind",
                f"declare i64 @{abi.SLOW_PROBE}(ptr, i64, i32) nounwind"]
        for name in names:
            kind, memop, mmu_idx = _parse_accessor_name(name)
            ret, params = _ACCESSOR_SIGNATURES[kind]
            self._st = _FnState(Block(0, name=name), [])
            _accessor_body(self, kind, memop, mmu_idx)
            out.append(f"define {ret} @{name}({params}) nounwind {{\nentry:")
            out += self._st.lines
            out.append("}")
        return "\n".join(out) + "\n"

    def _helper(self, name: str) -> HelperDecl:
        try:
            return self.helpers[name]
        except KeyError:
            raise LoweringError(f"call to undeclared helper {name!r}") from None

    # -- function -------------------------------------------------------------------------
    def lower_function(self, block: Block) -> str:
        st = _FnState(block, [], fault_pcs={}, field_ptrs={})
        st.strictfp = any(op.definition.flags & OpFlag.FLOAT for op in block.ops)
        self._st = st
        name = _q(block.name)
        body: list[str] = []
        st.lines = body
        for op in block.ops:
            if st.terminated and op.name != "set_label":
                # Ops after an exit and before the next label are unreachable; give them
                # a block of their own so the function stays well formed.
                self._new_block(f"dead{self._n()}")
            fn = _LOWER.get(op.name)
            if fn is None:
                raise LoweringError(f"{block.name}: no lowering for op {op.name}")
            fn(self, op)
        if not st.terminated:
            raise LoweringError(f"{block.name}: falls off its end without a block exit")
        attrs = "nounwind strictfp" if st.strictfp else "nounwind"
        head = [f"define i64 @{name}(ptr noalias %cpu, ptr %mem) {attrs} {{", "entry:"]
        for t in block.locals:
            head.append(f"  %{t.name} = alloca {t.type}, align 8")
        if st.mxcsr_slot:
            head.append("  %mxcsr.p = alloca i32, align 4")
        for offset, ptr in st.field_ptrs.items():
            head.append(f"  {ptr} = getelementptr i8, ptr %cpu, i64 {offset}")
        er = self.layout.offset("exit_request")
        head += [
            f"  %er.p = getelementptr i8, ptr %cpu, i64 {er}",
            "  %er = load atomic i32, ptr %er.p monotonic, align 4",
            "  %er.set = icmp ne i32 %er, 0",
            "  br i1 %er.set, label %exit_requested, label %body",
            "exit_requested:",
            *self._store_pc_lines(block.pc, "er"),
            f"  ret i64 {int(ExitReason.REQUESTED)}",
            "body:",
        ]
        if self.count_insns and block.n_insns:
            ic = self.layout.offset("insn_count")
            head += [f"  %ic.p = getelementptr i8, ptr %cpu, i64 {ic}",
                     "  %ic = load i64, ptr %ic.p, align 8",
                     f"  %ic.new = add i64 %ic, {block.n_insns}",
                     "  store i64 %ic.new, ptr %ic.p, align 8"]
        tail: list[str] = []
        for label, pc in (st.fault_pcs or {}).items():
            tail += [f"{label}:", *self._store_pc_lines(pc, label),
                     f"  ret i64 {int(ExitReason.EXCEPTION)}"]
        return "\n".join(head + body + tail) + "\n}\n"

    def _store_pc_lines(self, pc: int, tag: str) -> list[str]:
        return [f"  %{tag}.pcp = getelementptr i8, ptr %cpu, i64 {self.layout.offset('pc')}",
                f"  store i64 {_signed(pc, 64)}, ptr %{tag}.pcp, align 8"]

    # -- emission helpers -------------------------------------------------------------------
    @property
    def call_attrs(self) -> str:
        """Call-site attributes: in a strictfp function every call must be strictfp."""
        return " strictfp" if self._st.strictfp else ""

    def _n(self) -> int:
        self._st.counter += 1
        return self._st.counter

    def _emit(self, text: str) -> None:
        self._st.lines.append("  " + text)

    def _val(self, expr: str) -> str:
        """Emit ``%vN = expr`` and return ``%vN``."""
        name = f"%v{self._n()}"
        self._emit(f"{name} = {expr}")
        return name

    def _new_block(self, label: str) -> None:
        self._st.lines.append(f"{label}:")
        self._st.terminated = False

    def _terminate(self, text: str) -> None:
        self._emit(text)
        self._st.terminated = True

    def _field_ptr(self, offset: int) -> str:
        """A pointer to a CPU-state field, computed once in the entry block."""
        ptrs = self._st.field_ptrs
        if ptrs is None:
            return self._val(f"getelementptr i8, ptr %cpu, i64 {offset}")
        ptr = ptrs.get(offset)
        if ptr is None:
            ptr = ptrs[offset] = f"%fp{offset}"
        return ptr

    def read(self, t: Temp) -> str:
        if t.kind is TempKind.CONST:
            return str(_signed(t.value, t.type.bits))
        if t.kind is TempKind.LOCAL:
            return self._val(f"load {t.type}, ptr %{t.name}, align 8")
        ptr = self._field_ptr(t.offset)
        return self._val(f"load {t.type}, ptr {ptr}, align {t.type.bits // 8}")

    def write(self, t: Temp, value: str) -> None:
        if t.kind is TempKind.LOCAL:
            self._emit(f"store {t.type} {value}, ptr %{t.name}, align 8")
            return
        ptr = self._field_ptr(t.offset)
        self._emit(f"store {t.type} {value}, ptr {ptr}, align {t.type.bits // 8}")

    def load_field(self, name: str, type_: IRType = I64) -> str:
        ptr = self._field_ptr(self.layout.offset(name))
        return self._val(f"load {type_}, ptr {ptr}, align {type_.bits // 8}")

    def store_field(self, name: str, type_: IRType, value: str) -> None:
        ptr = self._field_ptr(self.layout.offset(name))
        self._emit(f"store {type_} {value}, ptr {ptr}, align {type_.bits // 8}")

    def fault_label(self) -> str:
        """The exit for a fault in the current guest instruction (shared per insn)."""
        label = f"fault.{self._st.insn_pc:x}"
        self._st.fault_pcs[label] = self._st.insn_pc
        return label

    def branch_on_status(self, status: str) -> None:
        """Continue if the slow path or helper status is 0, else take the fault exit."""
        bad = self._val(f"icmp ne i64 {status}, 0")
        ok = f"ok{self._n()}"
        self._emit(f"br i1 {bad}, label %{self.fault_label()}, label %{ok}")
        self._new_block(ok)


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _q(name: str) -> str:
    """Quote a symbol name when it has characters LLVM identifiers cannot."""
    if all(c.isalnum() or c in "._$" for c in name):
        return name
    return '"' + name.replace('"', "") + '"'


# ---------------------------------------------------------------------------------------
# The table: one lowering function per opcode.

_Lower = Callable[[Lowering, Op], None]
_LOWER: dict[str, _Lower] = {}


def _rule(*names: str) -> Callable[[_Lower], _Lower]:
    def register(fn: _Lower) -> _Lower:
        for n in names:
            _LOWER[n] = fn
        return fn
    return register


@_rule("mov")
def _mov(lw: Lowering, op: Op) -> None:
    lw.write(op.outputs[0], lw.read(op.inputs[0]))


_SIMPLE_BINARY = {"add": "add", "sub": "sub", "mul": "mul", "and": "and", "or": "or",
                  "xor": "xor"}


@_rule(*_SIMPLE_BINARY)
def _binary(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    a, b = lw.read(op.inputs[0]), lw.read(op.inputs[1])
    lw.write(op.outputs[0], lw._val(f"{_SIMPLE_BINARY[op.name]} {t} {a}, {b}"))


@_rule("andc", "orc", "eqv", "nand", "nor")
def _inverted_logic(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    a, b = lw.read(op.inputs[0]), lw.read(op.inputs[1])
    if op.name in ("andc", "orc"):
        nb = lw._val(f"xor {t} {b}, -1")
        r = lw._val(f"{'and' if op.name == 'andc' else 'or'} {t} {a}, {nb}")
    else:
        inner = {"eqv": "xor", "nand": "and", "nor": "or"}[op.name]
        r = lw._val(f"xor {t} {lw._val(f'{inner} {t} {a}, {b}')}, -1")
    lw.write(op.outputs[0], r)


@_rule("neg", "not")
def _neg_not(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    a = lw.read(op.inputs[0])
    r = lw._val(f"sub {t} 0, {a}") if op.name == "neg" else lw._val(f"xor {t} {a}, -1")
    lw.write(op.outputs[0], r)


@_rule("shl", "shr", "sar")
def _shift(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    a = lw.read(op.inputs[0])
    count_temp = op.inputs[1]
    if count_temp.is_const:  # constant counts are reduced here; no mask at run time
        count = str(count_temp.value % t.bits)
    else:
        count = lw._val(f"and {t} {lw.read(count_temp)}, {t.bits - 1}")
    llvm_op = {"shl": "shl", "shr": "lshr", "sar": "ashr"}[op.name]
    lw.write(op.outputs[0], lw._val(f"{llvm_op} {t} {a}, {count}"))


@_rule("rotl", "rotr")
def _rotate(lw: Lowering, op: Op) -> None:
    # Funnel shifts take the count modulo the width, as the op is defined.
    t = op.outputs[0].type
    a, b = lw.read(op.inputs[0]), lw.read(op.inputs[1])
    fn = "fshl" if op.name == "rotl" else "fshr"
    lw.write(op.outputs[0], lw._val(f"call {t} @llvm.{fn}.{t}({t} {a}, {t} {a}, {t} {b})"
                                    f"{lw.call_attrs}"))


@_rule("div", "divu", "rem", "remu")
def _divide(lw: Lowering, op: Op) -> None:
    # A zero divisor, and MIN / -1 for signed ops, are replaced by 1 before dividing,
    # then the defined result is selected: x/0 = -1, x%0 = x, MIN/-1 = MIN, MIN%-1 = 0.
    t = op.outputs[0].type
    a, b = lw.read(op.inputs[0]), lw.read(op.inputs[1])
    zero = lw._val(f"icmp eq {t} {b}, 0")
    unsafe = zero
    if op.name in ("div", "rem"):
        minimum = -(1 << (t.bits - 1))
        is_min = lw._val(f"icmp eq {t} {a}, {minimum}")
        is_m1 = lw._val(f"icmp eq {t} {b}, -1")
        overflow = lw._val(f"and i1 {is_min}, {is_m1}")
        unsafe = lw._val(f"or i1 {zero}, {overflow}")
    divisor = lw._val(f"select i1 {unsafe}, {t} 1, {t} {b}")
    llvm_op = {"div": "sdiv", "divu": "udiv", "rem": "srem", "remu": "urem"}[op.name]
    q = lw._val(f"{llvm_op} {t} {a}, {divisor}")
    on_zero = "-1" if op.name in ("div", "divu") else a
    lw.write(op.outputs[0], lw._val(f"select i1 {zero}, {t} {on_zero}, {t} {q}"))


def _wide_product(lw: Lowering, op: Op, a_ext: str, b_ext: str) -> tuple[str, str]:
    t = op.inputs[0].type
    w = f"i{t.bits * 2}"
    a = lw._val(f"{a_ext} {t} {lw.read(op.inputs[0])} to {w}")
    b = lw._val(f"{b_ext} {t} {lw.read(op.inputs[1])} to {w}")
    p = lw._val(f"mul {w} {a}, {b}")
    lo = lw._val(f"trunc {w} {p} to {t}")
    hi = lw._val(f"trunc {w} {lw._val(f'lshr {w} {p}, {t.bits}')} to {t}")
    return lo, hi


_WIDE_EXTS = {"mulu2": ("zext", "zext"), "muls2": ("sext", "sext"),
              "mulsu2": ("sext", "zext"), "muluh": ("zext", "zext"), "mulsh": ("sext", "sext")}


@_rule("mulu2", "muls2", "mulsu2")
def _mul2(lw: Lowering, op: Op) -> None:
    lo, hi = _wide_product(lw, op, *_WIDE_EXTS[op.name])
    lw.write(op.outputs[0], lo)
    lw.write(op.outputs[1], hi)


@_rule("mulsh", "muluh")
def _mul_high(lw: Lowering, op: Op) -> None:
    lw.write(op.outputs[0], _wide_product(lw, op, *_WIDE_EXTS[op.name])[1])


@_rule("clz", "ctz")
def _count_zeros(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    a, fallback = lw.read(op.inputs[0]), lw.read(op.inputs[1])
    # i1 false: the intrinsic is defined (= width) for zero; the op returns `fallback`.
    n = lw._val(f"call {t} @llvm.{'ctlz' if op.name == 'clz' else 'cttz'}.{t}({t} {a}, i1 false)"
                f"{lw.call_attrs}")
    zero = lw._val(f"icmp eq {t} {a}, 0")
    lw.write(op.outputs[0], lw._val(f"select i1 {zero}, {t} {fallback}, {t} {n}"))


@_rule("ctpop")
def _ctpop(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    lw.write(op.outputs[0], lw._val(f"call {t} @llvm.ctpop.{t}({t} {lw.read(op.inputs[0])})"
                                    f"{lw.call_attrs}"))


def _narrow_then_extend(lw: Lowering, value: str, t: IRType, bits: int, ext: str) -> str:
    if bits == t.bits:
        return value
    narrow = lw._val(f"trunc {t} {value} to i{bits}")
    return lw._val(f"{ext} i{bits} {narrow} to {t}")


@_rule("ext8s", "ext8u", "ext16s", "ext16u", "ext32s", "ext32u")
def _extend(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    bits = int(op.name[3:-1])
    ext = "sext" if op.name.endswith("s") else "zext"
    lw.write(op.outputs[0], _narrow_then_extend(lw, lw.read(op.inputs[0]), t, bits, ext))


@_rule("bswap16", "bswap32", "bswap64")
def _bswap(lw: Lowering, op: Op) -> None:
    # Swap the low N bits; the result is zero-extended to the temp's width.
    t = op.outputs[0].type
    bits = int(op.name[5:])
    if bits > t.bits:
        raise LoweringError(f"{op.name} on {t}")
    v = lw.read(op.inputs[0])
    narrow = v if bits == t.bits else lw._val(f"trunc {t} {v} to i{bits}")
    swapped = lw._val(f"call i{bits} @llvm.bswap.i{bits}(i{bits} {narrow}){lw.call_attrs}")
    if bits < t.bits:
        swapped = lw._val(f"zext i{bits} {swapped} to {t}")
    lw.write(op.outputs[0], swapped)


@_rule("extract", "sextract")
def _extract(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    ofs, length = op.args
    v = lw.read(op.inputs[0])
    # Shift the field to the top, then back down with a logical or arithmetic shift.
    up = lw._val(f"shl {t} {v}, {t.bits - ofs - length}")
    down = "ashr" if op.name == "sextract" else "lshr"
    lw.write(op.outputs[0], lw._val(f"{down} {t} {up}, {t.bits - length}"))


@_rule("deposit")
def _deposit(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    ofs, length = op.args
    base, field = lw.read(op.inputs[0]), lw.read(op.inputs[1])
    mask = ((1 << length) - 1) << ofs
    kept = lw._val(f"and {t} {base}, {_signed(~mask, t.bits)}")
    moved = lw._val(f"shl {t} {field}, {ofs}")
    inserted = lw._val(f"and {t} {moved}, {_signed(mask, t.bits)}")
    lw.write(op.outputs[0], lw._val(f"or {t} {kept}, {inserted}"))


def _compare(lw: Lowering, cond: Cond, a: Temp, b: Temp) -> str:
    return lw._val(f"icmp {_ICMP[cond]} {a.type} {lw.read(a)}, {lw.read(b)}")


@_rule("setcond")
def _setcond(lw: Lowering, op: Op) -> None:
    c = _compare(lw, op.args[0], *op.inputs)
    lw.write(op.outputs[0], lw._val(f"zext i1 {c} to {op.outputs[0].type}"))


@_rule("movcond")
def _movcond(lw: Lowering, op: Op) -> None:
    t = op.outputs[0].type
    c = _compare(lw, op.args[0], op.inputs[0], op.inputs[1])
    vt, vf = lw.read(op.inputs[2]), lw.read(op.inputs[3])
    lw.write(op.outputs[0], lw._val(f"select i1 {c}, {t} {vt}, {t} {vf}"))


@_rule("ext_i32_i64", "extu_i32_i64")
def _ext_i32_i64(lw: Lowering, op: Op) -> None:
    ext = "sext" if op.name == "ext_i32_i64" else "zext"
    lw.write(op.outputs[0], lw._val(f"{ext} i32 {lw.read(op.inputs[0])} to i64"))


@_rule("extrl_i64_i32", "extrh_i64_i32")
def _extr_i64_i32(lw: Lowering, op: Op) -> None:
    v = lw.read(op.inputs[0])
    if op.name == "extrh_i64_i32":
        v = lw._val(f"lshr i64 {v}, 32")
    lw.write(op.outputs[0], lw._val(f"trunc i64 {v} to i32"))


# -- control flow ---------------------------------------------------------------------------

def _label(label: Label) -> str:
    return f"L{label.index}"


@_rule("set_label")
def _set_label(lw: Lowering, op: Op) -> None:
    if not lw._st.terminated:
        lw._emit(f"br label %{_label(op.args[0])}")
    lw._new_block(_label(op.args[0]))


@_rule("br")
def _br(lw: Lowering, op: Op) -> None:
    lw._terminate(f"br label %{_label(op.args[0])}")


@_rule("brcond")
def _brcond(lw: Lowering, op: Op) -> None:
    cond, label = op.args
    c = _compare(lw, cond, *op.inputs)
    fallthrough = f"next{lw._n()}"
    lw._emit(f"br i1 {c}, label %{_label(label)}, label %{fallthrough}")
    lw._new_block(fallthrough)


@_rule("insn_start")
def _insn_start(lw: Lowering, op: Op) -> None:
    lw._st.insn_pc = op.args[0]


@_rule("exit_tb")
def _exit_tb(lw: Lowering, op: Op) -> None:
    lw._terminate(f"ret i64 {int(op.args[0])}")


@_rule("goto_tb")
def _goto_tb(lw: Lowering, op: Op) -> None:
    n, dest = op.args
    slot = f"@{_q(slot_symbol(lw._st.block.name, n))}"
    target = lw._val(f"load atomic ptr, ptr {slot} monotonic, align 8")
    linked = lw._val(f"icmp ne ptr {target}, null")
    k = lw._n()
    lw._emit(f"br i1 {linked}, label %chain{k}, label %unchained{k}")
    lw._new_block(f"chain{k}")
    _tail_call(lw, target)
    lw._new_block(f"unchained{k}")
    lw.store_field("pc", I64, str(_signed(dest, 64)))
    addr = lw._val(f"ptrtoint ptr {slot} to i64")
    lw._terminate(f"ret i64 {lw._val(f'or i64 {addr}, {int(ExitReason.CHAIN)}')}")


def _tail_call(lw: Lowering, target: str) -> None:
    r = lw._val(f"musttail call i64 {target}(ptr noalias %cpu, ptr %mem){lw.call_attrs}")
    lw._terminate(f"ret i64 {r}")


@_rule("lookup_and_goto_ptr")
def _lookup_and_goto_ptr(lw: Lowering, op: Op) -> None:
    pc = lw.load_field("pc")
    index = lw._val(f"and i64 {lw._val(f'lshr i64 {pc}, 1')}, {(1 << abi.JMP_CACHE_BITS) - 1}")
    offset = lw._val(f"mul i64 {index}, {abi.JMP_CACHE_ENTRY_SIZE}")
    cache = lw._val(f"inttoptr i64 {lw.load_field('jmp_cache')} to ptr")
    entry = lw._val(f"getelementptr i8, ptr {cache}, i64 {offset}")
    entry_pc = lw._val(f"load i64, ptr {entry}, align 8")
    fn_ptr = lw._val(f"getelementptr i8, ptr {entry}, i64 8")
    fn = lw._val(f"load ptr, ptr {fn_ptr}, align 8")
    hit = lw._val(f"icmp eq i64 {entry_pc}, {pc}")
    k = lw._n()
    lw._emit(f"br i1 {hit}, label %jc_hit{k}, label %jc_miss{k}")
    lw._new_block(f"jc_hit{k}")
    _tail_call(lw, fn)
    lw._new_block(f"jc_miss{k}")
    lw._terminate(f"ret i64 {int(ExitReason.LOOKUP)}")


# -- guest memory ----------------------------------------------------------------------------

def _tlb_probe(lw: Lowering, addr: str, memop: MemOp, mmu_idx: int, which: int) -> tuple[str, str]:
    """Emit the inline TLB compare; returns (hit i1, entry pointer).

    As in QEMU, the compared address keeps the bits that must be zero for the access's
    alignment, and for accesses allowed to be misaligned it is the address of the last
    byte rounded the same way, so an access that crosses a page misses.
    """
    layout = lw.layout
    page_index = lw._val(f"lshr i64 {addr}, {abi.PAGE_BITS}")
    index = lw._val(f"and i64 {page_index}, {layout.tlb_mask}")
    offset = lw._val(f"mul i64 {index}, {abi.TLB_ENTRY_SIZE}")
    base = layout.tlb_offset + mmu_idx * layout.tlb_table_size
    entry_off = lw._val(f"add i64 {offset}, {base}")
    entry = lw._val(f"getelementptr i8, ptr %cpu, i64 {entry_off}")
    tag_ptr = lw._val(f"getelementptr i8, ptr {entry}, i64 {which}")
    tag = lw._val(f"load i64, ptr {tag_ptr}, align 8")
    align_mask = (1 << memop.align_log2) - 1
    size_mask = memop.size - 1
    compared = addr
    if memop.align_log2 < memop.size_log2:
        compared = lw._val(f"add i64 {addr}, {size_mask - align_mask}")
    masked = lw._val(f"and i64 {compared}, {_signed(abi.PAGE_MASK | align_mask, 64)}")
    hit = lw._val(f"icmp eq i64 {masked}, {tag}")
    return hit, entry


def _host_pointer(lw: Lowering, addr: str, entry: str) -> str:
    addend_ptr = lw._val(f"getelementptr i8, ptr {entry}, i64 {abi.TLB_ADDEND}")
    addend = lw._val(f"load i64, ptr {addend_ptr}, align 8")
    offset = lw._val(f"add i64 {addr}, {addend}")
    return lw._val(f"getelementptr i8, ptr %mem, i64 {offset}")


def _bswap_value(lw: Lowering, value: str, bits: int) -> str:
    return lw._val(f"call i{bits} @llvm.bswap.i{bits}(i{bits} {value}){lw.call_attrs}")


def _oi(memop: MemOp, mmu_idx: int) -> int:
    return abi.encode_oi(memop.encode(), mmu_idx)


# -- out-of-line accessors (one per kind, MemOp and MMU index) --------------------------------

_ACCESSOR_SIGNATURES = {
    "ld": ("{ i64, i1 }", "ptr noalias %cpu, ptr %mem, i64 %addr"),
    "st": ("i1", "ptr noalias %cpu, ptr %mem, i64 %addr, i64 %value"),
    "at": ("{ ptr, i1 }", "ptr noalias %cpu, ptr %mem, i64 %addr"),
}


def accessor_name(kind: str, memop: MemOp, mmu_idx: int) -> str:
    return f"llvmtcg_{kind}_{memop.encode():02x}_{mmu_idx}"


def _parse_accessor_name(name: str) -> tuple[str, MemOp, int]:
    _, kind, bits, mmu = name.split("_")
    return kind, MemOp.decode(int(bits, 16)), int(mmu)


def _accessor_declaration(name: str) -> str:
    ret, params = _ACCESSOR_SIGNATURES[_parse_accessor_name(name)[0]]
    types = ", ".join(p.split()[0] for p in params.split(", "))
    return f"declare {ret} @{name}({types}) nounwind"


def _branch_on_ok(lw: Lowering, ok: str) -> None:
    cont = f"ok{lw._n()}"
    lw._emit(f"br i1 {ok}, label %{cont}, label %{lw.fault_label()}")
    lw._new_block(cont)


def _ret_ok(lw: Lowering, ret: str, type_: str, value: str) -> None:
    """Return {value, true} (aggregate constants cannot hold SSA values)."""
    zero = "0" if type_ == "i64" else "null"
    pair = lw._val(f"insertvalue {ret} {{ {type_} {zero}, i1 true }}, {type_} {value}, 0")
    lw._emit(f"ret {ret} {pair}")


def _native_refill(lw: Lowering, kind: str, memop: MemOp, mmu_idx: int, entry: str) -> None:
    """TLB miss: fill the entry from the page table and probe again, or go to ``slow``.

    Only plain guest RAM with the access's permissions qualifies (and, for stores and
    atomics, no translated code on the page); page-crossing and misaligned accesses
    are left to the slow path, which splits them or raises the fault.
    """
    lw._new_block("refill")
    table = lw.load_field("page_table")
    count = lw.load_field("page_count")
    page_index = lw._val(f"lshr i64 %addr, {abi.PAGE_BITS}")
    in_table = lw._val(f"icmp ult i64 {page_index}, {count}")  # count is 0 without a table
    offset_in_page = lw._val(f"and i64 %addr, {abi.PAGE_SIZE - 1}")
    fits = lw._val(f"icmp ule i64 {offset_in_page}, {abi.PAGE_SIZE - memop.size}")
    aligned = "true"
    if memop.align_log2:
        low = lw._val(f"and i64 %addr, {(1 << memop.align_log2) - 1}")
        aligned = lw._val(f"icmp eq i64 {low}, 0")
    candidate = lw._val(f"and i1 {in_table}, {fits}")
    candidate = lw._val(f"and i1 {candidate}, {aligned}")
    lw._emit(f"br i1 {candidate}, label %lookup, label %slow")
    lw._new_block("lookup")
    table_ptr = lw._val(f"inttoptr i64 {table} to ptr")
    flag_ptr = lw._val(f"getelementptr i8, ptr {table_ptr}, i64 {page_index}")
    flags = lw._val(f"zext i8 {lw._val(f'load i8, ptr {flag_ptr}, align 1')} to i64")
    needed = {"ld": abi.PAGE_R, "st": abi.PAGE_W, "at": abi.PAGE_R | abi.PAGE_W}[kind]
    forbidden = abi.PAGE_SLOW | (abi.PAGE_CODE if kind != "ld" else 0)
    masked = lw._val(f"and i64 {flags}, {needed | forbidden}")
    good = lw._val(f"icmp eq i64 {masked}, {needed}")
    lw._emit(f"br i1 {good}, label %fill, label %slow")
    lw._new_block("fill")
    page = lw._val(f"and i64 %addr, {_signed(abi.PAGE_MASK, 64)}")

    def tag(bit: int, extra: str = "") -> str:
        has = lw._val(f"icmp ne i64 {lw._val(f'and i64 {flags}, {bit}')}, 0")
        value = page
        if extra:
            value = lw._val(f"or i64 {page}, {extra}")
        return lw._val(f"select i1 {has}, i64 {value}, i64 -1")

    code_bit = lw._val(f"and i64 {flags}, {abi.PAGE_CODE}")
    has_code = lw._val(f"icmp ne i64 {code_bit}, 0")
    notdirty = lw._val(f"select i1 {has_code}, i64 {abi.TLB_NOTDIRTY}, i64 0")
    for field_offset, value in ((abi.TLB_ADDR_READ, tag(abi.PAGE_R)),
                                (abi.TLB_ADDR_WRITE, tag(abi.PAGE_W, notdirty)),
                                (abi.TLB_ADDR_CODE, tag(abi.PAGE_X)), (abi.TLB_ADDEND, "0")):
        ptr = lw._val(f"getelementptr i8, ptr {entry}, i64 {field_offset}")
        lw._emit(f"store i64 {value}, ptr {ptr}, align 8")
    lw._emit("br label %probe")


def _accessor_body(lw: Lowering, kind: str, memop: MemOp, mmu_idx: int) -> None:
    """The inline fast path and slow-path call, returning success instead of exiting."""
    ret = _ACCESSOR_SIGNATURES[kind][0]
    which = abi.TLB_ADDR_READ if kind == "ld" else abi.TLB_ADDR_WRITE
    lw._emit("br label %probe")
    lw._new_block("probe")
    hit, entry = _tlb_probe(lw, "%addr", memop, mmu_idx, which)
    lw._emit(f"br i1 {hit}, label %fast, label %refill")
    _native_refill(lw, kind, memop, mmu_idx, entry)
    lw._new_block("fast")
    ptr = _host_pointer(lw, "%addr", entry)
    w = f"i{memop.bits}"
    if kind == "ld":
        raw = lw._val(f"load {w}, ptr {ptr}, align 1")
        if memop.big_endian and memop.bits > 8:
            raw = lw._val(f"call {w} @llvm.bswap.{w}({w} {raw})")
        if memop.bits < 64:
            raw = lw._val(f"{'sext' if memop.signed else 'zext'} {w} {raw} to i64")
        _ret_ok(lw, ret, "i64", raw)
    elif kind == "st":
        narrow = "%value" if memop.bits == 64 else lw._val(f"trunc i64 %value to {w}")
        if memop.big_endian and memop.bits > 8:
            narrow = lw._val(f"call {w} @llvm.bswap.{w}({w} {narrow})")
        lw._emit(f"store {w} {narrow}, ptr {ptr}, align 1")
        lw._emit("ret i1 true")
    else:
        _ret_ok(lw, ret, "ptr", ptr)
    lw._new_block("slow")
    oi = _oi(memop, mmu_idx)
    if kind == "ld":
        status = lw._val(f"call i64 @{abi.SLOW_LOAD}(ptr %cpu, i64 %addr, i32 {oi})")
    elif kind == "st":
        status = lw._val(f"call i64 @{abi.SLOW_STORE}(ptr %cpu, i64 %addr, i64 %value, i32 {oi})")
    else:
        status = lw._val(f"call i64 @{abi.SLOW_PROBE}(ptr %cpu, i64 %addr, i32 {oi})")
    bad = lw._val(f"icmp ne i64 {status}, 0")
    lw._emit(f"br i1 {bad}, label %fail, label %done")
    lw._new_block("done")
    if kind == "st":
        lw._emit("ret i1 true")
    elif kind == "ld":
        _ret_ok(lw, ret, "i64", lw.load_field("slow_value"))
    else:
        host = lw._val(f"getelementptr i8, ptr %mem, i64 {lw.load_field('slow_value')}")
        host = lw._val(f"getelementptr i8, ptr {host}, i64 %addr")
        _ret_ok(lw, ret, "ptr", host)
    lw._new_block("fail")
    lw._emit(f"ret {ret} zeroinitializer")


@_rule("qemu_ld")
def _qemu_ld(lw: Lowering, op: Op) -> None:
    dst = op.outputs[0]
    memop, mmu_idx = op.args
    t = dst.type
    addr = lw.read(op.inputs[0])
    if not lw.inline_memory:
        name = accessor_name("ld", memop, mmu_idx)
        lw.accessors_used.add(name)
        pair = lw._val(f"call {{ i64, i1 }} @{name}(ptr %cpu, ptr %mem, i64 {addr})"
                       f"{lw.call_attrs}")
        _branch_on_ok(lw, lw._val(f"extractvalue {{ i64, i1 }} {pair}, 1"))
        value = lw._val(f"extractvalue {{ i64, i1 }} {pair}, 0")
        if t is I32:
            value = lw._val(f"trunc i64 {value} to i32")
        lw.write(dst, value)
        return
    hit, entry = _tlb_probe(lw, addr, memop, mmu_idx, abi.TLB_ADDR_READ)
    k = lw._n()
    lw._emit(f"br i1 {hit}, label %ld_fast{k}, label %ld_slow{k}")
    lw._new_block(f"ld_fast{k}")
    ptr = _host_pointer(lw, addr, entry)
    raw = lw._val(f"load i{memop.bits}, ptr {ptr}, align 1")
    if memop.big_endian and memop.bits > 8:
        raw = _bswap_value(lw, raw, memop.bits)
    if memop.bits < t.bits:
        raw = lw._val(f"{'sext' if memop.signed else 'zext'} i{memop.bits} {raw} to {t}")
    lw._emit(f"br label %ld_done{k}")
    lw._new_block(f"ld_slow{k}")
    status = lw._val(f"call i64 @{abi.SLOW_LOAD}(ptr %cpu, i64 {addr}, "
                     f"i32 {_oi(memop, mmu_idx)}){lw.call_attrs}")
    lw.branch_on_status(status)
    slow_block = lw._st.lines[-1].rstrip(":")
    # The slow path returns the value already swapped and extended to 64 bits.
    slow = lw.load_field("slow_value")
    if t is I32:
        slow = lw._val(f"trunc i64 {slow} to i32")
    lw._emit(f"br label %ld_done{k}")
    lw._new_block(f"ld_done{k}")
    value = lw._val(f"phi {t} [ {raw}, %ld_fast{k} ], [ {slow}, %{slow_block} ]")
    lw.write(dst, value)


@_rule("qemu_st")
def _qemu_st(lw: Lowering, op: Op) -> None:
    src, addr_temp = op.inputs
    memop, mmu_idx = op.args
    value = lw.read(src)
    addr = lw.read(addr_temp)
    if not lw.inline_memory:
        name = accessor_name("st", memop, mmu_idx)
        lw.accessors_used.add(name)
        wide = value if src.type is I64 else lw._val(f"zext i32 {value} to i64")
        ok = lw._val(f"call i1 @{name}(ptr %cpu, ptr %mem, i64 {addr}, i64 {wide})"
                     f"{lw.call_attrs}")
        _branch_on_ok(lw, ok)
        return
    hit, entry = _tlb_probe(lw, addr, memop, mmu_idx, abi.TLB_ADDR_WRITE)
    k = lw._n()
    lw._emit(f"br i1 {hit}, label %st_fast{k}, label %st_slow{k}")
    lw._new_block(f"st_fast{k}")
    ptr = _host_pointer(lw, addr, entry)
    narrow = value
    if memop.bits < src.type.bits:
        narrow = lw._val(f"trunc {src.type} {value} to i{memop.bits}")
    if memop.big_endian and memop.bits > 8:
        narrow = _bswap_value(lw, narrow, memop.bits)
    lw._emit(f"store i{memop.bits} {narrow}, ptr {ptr}, align 1")
    lw._emit(f"br label %st_done{k}")
    lw._new_block(f"st_slow{k}")
    wide = value if src.type is I64 else lw._val(f"zext i32 {value} to i64")
    status = lw._val(f"call i64 @{abi.SLOW_STORE}(ptr %cpu, i64 {addr}, i64 {wide}, "
                     f"i32 {_oi(memop, mmu_idx)}){lw.call_attrs}")
    lw.branch_on_status(status)
    lw._emit(f"br label %st_done{k}")
    lw._new_block(f"st_done{k}")


def _atomic_pointer(lw: Lowering, addr: str, memop: MemOp, mmu_idx: int) -> str:
    """Probe the write TLB for an atomic access; the slow path fills it or faults.

    The probe helper returns the addend (in cpu.slow_value) rather than doing the
    access, so the operation itself is always one host atomic instruction.
    """
    if not lw.inline_memory:
        name = accessor_name("at", memop, mmu_idx)
        lw.accessors_used.add(name)
        pair = lw._val(f"call {{ ptr, i1 }} @{name}(ptr %cpu, ptr %mem, i64 {addr})"
                       f"{lw.call_attrs}")
        _branch_on_ok(lw, lw._val(f"extractvalue {{ ptr, i1 }} {pair}, 1"))
        return lw._val(f"extractvalue {{ ptr, i1 }} {pair}, 0")
    hit, entry = _tlb_probe(lw, addr, memop, mmu_idx, abi.TLB_ADDR_WRITE)
    k = lw._n()
    lw._emit(f"br i1 {hit}, label %at_fast{k}, label %at_slow{k}")
    lw._new_block(f"at_fast{k}")
    addend_ptr = lw._val(f"getelementptr i8, ptr {entry}, i64 {abi.TLB_ADDEND}")
    fast_addend = lw._val(f"load i64, ptr {addend_ptr}, align 8")
    lw._emit(f"br label %at_go{k}")
    lw._new_block(f"at_slow{k}")
    status = lw._val(f"call i64 @{abi.SLOW_PROBE}(ptr %cpu, i64 {addr}, "
                     f"i32 {_oi(memop, mmu_idx)}){lw.call_attrs}")
    lw.branch_on_status(status)
    slow_block = lw._st.lines[-1].rstrip(":")
    slow_addend = lw.load_field("slow_value")
    lw._emit(f"br label %at_go{k}")
    lw._new_block(f"at_go{k}")
    addend = lw._val(f"phi i64 [ {fast_addend}, %at_fast{k} ], [ {slow_addend}, %{slow_block} ]")
    offset = lw._val(f"add i64 {addr}, {addend}")
    return lw._val(f"getelementptr i8, ptr %mem, i64 {offset}")


def _atomic_result(lw: Lowering, old: str, memop: MemOp, dst: Temp) -> None:
    if memop.big_endian and memop.bits > 8:
        old = _bswap_value(lw, old, memop.bits)
    if memop.bits < dst.type.bits:
        old = lw._val(f"{'sext' if memop.signed else 'zext'} i{memop.bits} {old} to {dst.type}")
    lw.write(dst, old)


def _atomic_operand(lw: Lowering, value: Temp, memop: MemOp) -> str:
    v = lw.read(value)
    if memop.bits < value.type.bits:
        v = lw._val(f"trunc {value.type} {v} to i{memop.bits}")
    if memop.big_endian and memop.bits > 8:
        v = _bswap_value(lw, v, memop.bits)
    return v


@_rule("atomic_cmpxchg")
def _atomic_cmpxchg(lw: Lowering, op: Op) -> None:
    addr_t, expected_t, new_t = op.inputs
    memop, mmu_idx = op.args
    addr = lw.read(addr_t)
    expected = _atomic_operand(lw, expected_t, memop)
    new = _atomic_operand(lw, new_t, memop)
    ptr = _atomic_pointer(lw, addr, memop, mmu_idx)
    w = f"i{memop.bits}"
    pair = lw._val(f"cmpxchg ptr {ptr}, {w} {expected}, {w} {new} seq_cst seq_cst, "
                   f"align {memop.size}")
    _atomic_result(lw, lw._val(f"extractvalue {{ {w}, i1 }} {pair}, 0"), memop, op.outputs[0])


@_rule("atomic_rmw")
def _atomic_rmw(lw: Lowering, op: Op) -> None:
    addr_t, value_t = op.inputs
    kind, memop, mmu_idx = op.args
    if memop.big_endian and kind not in (AtomicOp.XCHG, AtomicOp.AND, AtomicOp.OR,
                                         AtomicOp.XOR):
        raise LoweringError(f"atomic {kind} on big-endian memory is not supported")
    addr = lw.read(addr_t)
    value = _atomic_operand(lw, value_t, memop)
    ptr = _atomic_pointer(lw, addr, memop, mmu_idx)
    w = f"i{memop.bits}"
    old = lw._val(f"atomicrmw {_ATOMICRMW[kind]} ptr {ptr}, {w} {value} seq_cst, "
                  f"align {memop.size}")
    _atomic_result(lw, old, memop, op.outputs[0])


# -- helpers ---------------------------------------------------------------------------------

@_rule("call")
def _call(lw: Lowering, op: Op) -> None:
    decl = lw._helper(op.args[0])
    if len(op.inputs) != len(decl.args):
        raise LoweringError(f"call {decl.name}: {len(op.inputs)} arguments, "
                            f"declared {len(decl.args)}")
    for temp, type_ in zip(op.inputs, decl.args, strict=True):
        if temp.type is not type_:
            raise LoweringError(f"call {decl.name}: argument {temp} is {temp.type}, "
                                f"declared {type_}")
    if (decl.ret is None) != (not op.outputs) or (
            op.outputs and op.outputs[0].type is not decl.ret):
        raise LoweringError(f"call {decl.name}: result does not match declared {decl.ret}")
    args = []
    if decl.flags & HelperFlag.TAKES_CPU:
        args.append(f"ptr {decl.cpu_param_attributes()} %cpu".replace("  ", " "))
    args += [f"{t.type} {lw.read(t)}" for t in op.inputs]
    call = f"call {decl.ret or 'void'} @{decl.symbol}({', '.join(args)}){lw.call_attrs}"
    if op.outputs:
        lw.write(op.outputs[0], lw._val(call))
    else:
        lw._emit(call)
    if decl.flags & HelperFlag.MAY_RAISE:
        status = lw.load_field("helper_status", I32)
        lw.branch_on_status(lw._val(f"zext i32 {status} to i64"))


# The float rules register themselves in _LOWER.
from llvmtcg.ir import lower_float  # noqa: E402, F401, I001
