"""A parser of the IR's text form (``str(block)``, ``-d op``), for tests written in IR.

``parse_block(str(block), globals_, helpers)`` gives a block whose text is identical.
The text names temps but does not declare them, so types are recovered from where a
temp is used:

* globals by name from ``globals_`` (:meth:`CpuLayout.globals`);
* constants and locals (every other name; ``tmpN`` by convention) from the op: its
  type suffix (``add_i64``; ``fcvt_f64_f32``: result then operand), the fixed types of
  mixed-type ops (addresses are i64, ``ftoi``'s flags and ``fpenv_*`` operands i32,
  the width changes' names), and a helper's declared signature for ``call``;
* ``movcond``'s compared operands have their own type, taken from one of them that is
  typed elsewhere (a global or a local); if both are untyped constants, the result's.

The block's locals are the locals the text uses (``tmpN`` in N order, others in order
of first use), ``n_labels`` covers every label named, ``n_insns`` counts the
``insn_start`` lines; ``guest_size`` and ``return_pc`` are not part of the text.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

from llvmtcg.ir.block import Block, Op
from llvmtcg.ir.helper_decl import HelperDecl
from llvmtcg.ir.ops import OPS, VECTOR_I64_TEMPS, ExitReason, OpFlag
from llvmtcg.ir.types import (
    I32,
    I64,
    V128,
    AtomicOp,
    Cond,
    FCond,
    IRType,
    Label,
    MemOp,
    RoundingMode,
    Temp,
    TempKind,
    const,
)


class IRParseError(Exception):
    """Text that is not the IR's text form (with the line number)."""


# What each op's non-temp arguments are, by position (ops.py gives only their count).
_ROUNDED = {name: (RoundingMode,) for name in
            "fadd fsub fmul fdiv fsqrt fma fcvt itof utof ftoi ftou".split()}
ARG_KINDS: dict[str, tuple[type, ...]] = {
    **_ROUNDED,
    "setcond": (Cond,), "movcond": (Cond,), "brcond": (Cond, Label),
    "set_label": (Label,), "br": (Label,),
    "extract": (int, int), "sextract": (int, int), "deposit": (int, int),
    "qemu_ld": (MemOp, int), "qemu_st": (MemOp, int), "atomic_cmpxchg": (MemOp, int),
    "atomic_cmpxchg_pair": (MemOp, int),
    "atomic_rmw": (AtomicOp, MemOp, int),
    "host_ld": (int, int), "host_st": (int, int),
    "fsetcond": (FCond,),
    "call": (str,), "insn_start": (int,), "goto_tb": (int, int), "exit_tb": (ExitReason,),
    # Vector ops: vece, oprsz, then their own.
    **{name: (int, int, *{"vcmp": (Cond,), "vshli": (int,), "vshri": (int,), "vsari": (int,),
                          "vdupe": (int,), "vperm": (int,), "vfadd": (RoundingMode,),
                          "vfsub": (RoundingMode,),
                          "vfmul": (RoundingMode,), "vfdiv": (RoundingMode,),
                          "vfma": (RoundingMode,), "vitof": (RoundingMode,),
                          "vutof": (RoundingMode,), "vfcmp": (FCond,),
                          "vfsqrt": (RoundingMode,), "vpmull": (int,)}.get(name, ()))
       for name, definition in OPS.items() if definition.is_vector},
}

_TYPE_NAMES = {"i32": I32, "i64": I64, "f32": I32, "f64": I64, "v128": V128}
# Mixed-type ops: the type of each temp (outputs then inputs) apart from the suffix's.
_ADDRESS_SECOND = frozenset({"qemu_ld", "qemu_st", "atomic_cmpxchg", "atomic_rmw",
                             "host_ld", "host_st"})
_FIXED = {"ext_i32_i64": (I64, I32), "extu_i32_i64": (I64, I32),
          "extrl_i64_i32": (I32, I64), "extrh_i64_i32": (I32, I64),
          "fpenv_flags": (I32,), "fpenv_round": (I32,)}
_MEMOP = re.compile(r"(?:al(\d+)\+)?(?:(le|be)(?=[us][wlq]))?([us])([bwlq])")
_HEADER = re.compile(r"IN (\S+) pc=(0x[0-9a-f]+)")
_INSN_START = re.compile(r" ---- (0x[0-9a-f]{16})")
_LOCAL_INDEX = re.compile(r"tmp(\d+)")


@dataclass(slots=True)
class _Line:
    number: int
    opcode: str
    temps: list[str]  # names / $constants, outputs then inputs
    n_out: int
    types: list[IRType | str | None]  # per temp: a type, a group name, or unknown
    args: tuple[object, ...]


def parse_blocks(text: str, globals_: Mapping[str, Temp],
                 helpers: Mapping[str, HelperDecl] | None = None) -> list[Block]:
    """Every block in ``text`` (each starts with its ``IN`` line)."""
    chunks: list[list[tuple[int, str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("IN "):
            chunks.append([])
        elif not line.strip():
            continue
        elif not chunks:
            raise IRParseError(f"line {number}: expected 'IN <name> pc=<pc>', got {line!r}")
        chunks[-1].append((number, line))
    return [_parse_chunk(chunk, globals_, helpers or {}) for chunk in chunks]


def parse_block(text: str, globals_: Mapping[str, Temp],
                helpers: Mapping[str, HelperDecl] | None = None) -> Block:
    """The one block in ``text``."""
    blocks = parse_blocks(text, globals_, helpers)
    if len(blocks) != 1:
        raise IRParseError(f"expected one block, found {len(blocks)}")
    return blocks[0]


def _parse_chunk(chunk: list[tuple[int, str]], globals_: Mapping[str, Temp],
                 helpers: Mapping[str, HelperDecl]) -> Block:
    number, header = chunk[0]
    m = _HEADER.fullmatch(header)
    if m is None:
        raise IRParseError(f"line {number}: expected 'IN <name> pc=<pc>', got {header!r}")
    block = Block(int(m.group(2), 16), name=m.group(1))
    lines = [_parse_line(n, text, helpers) for n, text in chunk[1:]]
    local_types = _infer_local_types(lines, globals_)
    labels = [a.index for line in lines for a in line.args if isinstance(a, Label)]
    block.n_labels = max(labels) + 1 if labels else 0
    for line in lines:
        temps = [_temp(line, i, name, globals_, local_types) for i, name in
                 enumerate(line.temps)]
        block.ops.append(Op(line.opcode, tuple(temps[:line.n_out]), tuple(temps[line.n_out:]),
                            line.args))
        if line.opcode == "insn_start":
            block.n_insns += 1
    block.locals = [Temp(TempKind.LOCAL, t, name) for name, t in
                    sorted(local_types.items(), key=_local_order(lines))]
    return block


def _local_order(lines: list[_Line]):
    first_use: dict[str, int] = {}
    for line in lines:
        for name in line.temps:
            first_use.setdefault(name, len(first_use))

    def key(item: tuple[str, IRType]) -> tuple[int, int]:
        m = _LOCAL_INDEX.fullmatch(item[0])
        return (0, int(m.group(1))) if m else (1, first_use[item[0]])
    return key


def _parse_line(number: int, text: str, helpers: Mapping[str, HelperDecl]) -> _Line:
    def fail(why: str) -> IRParseError:
        return IRParseError(f"line {number}: {why}: {text!r}")

    m = _INSN_START.fullmatch(text)
    if m is not None:
        return _Line(number, "insn_start", [], 0, [], (int(m.group(1), 16),))
    if not text.startswith(" ") or text.startswith("  "):
        raise fail("an op line starts with one space")
    mnemonic, _, rest = text[1:].partition(" ")
    operands = rest.split(",") if rest else []
    if mnemonic == "call":
        return _parse_call(number, rest, helpers, fail)
    opcode, suffix = _split_mnemonic(mnemonic, fail)
    definition = OPS[opcode]
    n_temps = definition.n_out + definition.n_in
    if len(operands) != n_temps + definition.n_args:
        raise fail(f"{opcode} takes {n_temps} temps and {definition.n_args} arguments")
    kinds = ARG_KINDS.get(opcode, ())
    args = tuple(_parse_arg(kind, token, fail) for kind, token in
                 zip(kinds, operands[n_temps:], strict=True))
    types = _temp_types(opcode, suffix, definition.n_out, definition.n_in, fail)
    return _Line(number, opcode, operands[:n_temps], definition.n_out, types, args)


def _parse_call(number: int, rest: str, helpers: Mapping[str, HelperDecl], fail) -> _Line:
    name, _, operands = rest.partition(" ")
    outputs, arrow, inputs = operands.partition("<-")
    if not arrow:
        raise fail("a call's operands are 'outputs,<-,inputs'")
    outs = [t for t in outputs.split(",") if t]
    ins = [t for t in inputs.split(",") if t]
    decl = helpers.get(name)
    types: list[IRType | str | None] = [None] * (len(outs) + len(ins))
    if decl is not None:
        if len(ins) != len(decl.args) or len(outs) != (decl.ret is not None):
            raise fail(f"helper {name} is declared {decl.ret} ({len(decl.args)} arguments)")
        types = [*([decl.ret] if outs else []), *decl.args]
    return _Line(number, "call", outs + ins, len(outs), types, (name,))


def _split_mnemonic(mnemonic: str, fail) -> tuple[str, list[IRType]]:
    if mnemonic in OPS:
        return mnemonic, []
    parts = mnemonic.split("_")
    for k in range(len(parts) - 1, 0, -1):
        opcode = "_".join(parts[:k])
        if opcode in OPS:
            try:
                return opcode, [_TYPE_NAMES[p] for p in parts[k:]]
            except KeyError:
                raise fail(f"bad type suffix on {opcode}") from None
    raise fail(f"unknown op {mnemonic!r}")


def _temp_types(opcode: str, suffix: list[IRType], n_out: int, n_in: int,
                fail) -> list[IRType | str | None]:
    flags = OPS[opcode].flags
    n = n_out + n_in
    if opcode in _FIXED:
        return list(_FIXED[opcode])
    if flags & OpFlag.VECTOR:
        if suffix:
            raise fail(f"{opcode} takes no type suffix")
        scalars = VECTOR_I64_TEMPS.get(opcode, ())
        return [I64 if i in scalars else V128 for i in range(n)]
    if flags & OpFlag.FLOAT:
        if not 1 <= len(suffix) <= 2:
            raise fail(f"{opcode} needs a result and operand suffix")
        result, operand = suffix[0], suffix[-1]
        outputs = [result, I32][:n_out]  # ftoi/ftou: the flags are i32
        return [*outputs, *[operand] * n_in]
    if not flags & OpFlag.TYPED or n == 0:
        if suffix:
            raise fail(f"{opcode} takes no type suffix")
        return []
    if len(suffix) != 1:
        raise fail(f"{opcode} needs one type suffix")
    t = suffix[0]
    types: list[IRType | str | None] = [t] * n
    if opcode in _ADDRESS_SECOND:
        types[1] = I64
    if opcode == "movcond":
        types[1] = types[2] = "movcond.compare"
    return types


def _parse_arg(kind: type, token: str, fail) -> object:
    if kind is int:
        if not token.startswith("$0x"):
            raise fail(f"expected a $0x.. number, got {token!r}")
        return int(token[1:], 16)
    if kind is Label:
        if not token.startswith("$L") or not token[2:].isdigit():
            raise fail(f"expected a label $Ln, got {token!r}")
        return Label(int(token[2:]))
    if kind is MemOp:
        m = _MEMOP.fullmatch(token)
        if m is None:
            raise fail(f"bad MemOp {token!r}")
        align, endian, sign, width = m.groups()
        size_log2 = "bwlq".index(width)
        if (endian is None) != (size_log2 == 0):
            raise fail(f"bad MemOp {token!r}")
        align_log2 = (int(align).bit_length() - 1) if align else 0
        return MemOp(size_log2, sign == "s", endian == "be", align_log2)
    if kind is str:
        return token
    assert issubclass(kind, enum.Enum)
    for member in kind:
        text = member.name.lower() if isinstance(member, int) else str(member)
        if text == token:
            return member
    raise fail(f"{token!r} is not a {kind.__name__}")


def _infer_local_types(lines: list[_Line], globals_: Mapping[str, Temp]) -> dict[str, IRType]:
    """Types of the locals, from the positions that fix them."""
    found: dict[str, IRType] = {}

    def note(line: _Line, name: str, t: IRType) -> None:
        if name.startswith("$") or name in globals_:
            return
        if found.setdefault(name, t) is not t:
            raise IRParseError(f"line {line.number}: {name} is used as {found[name]} "
                               f"and as {t}")

    for line in lines:
        for name, t in zip(line.temps, line.types, strict=True):
            if isinstance(t, IRType):
                note(line, name, t)
    for line in lines:  # groups (movcond's compared pair) take a member's known type
        for name, t in zip(line.temps, line.types, strict=True):
            if isinstance(t, str):
                note(line, name, _group_type(line, t, globals_, found))
    for line in lines:
        for name, t in zip(line.temps, line.types, strict=True):
            if t is None and not name.startswith("$") and name not in globals_ \
                    and name not in found:
                raise IRParseError(f"line {line.number}: the type of {name} is not known "
                                   "(declare the helper)")
    return found


def _group_type(line: _Line, group: str, globals_: Mapping[str, Temp],
                found: Mapping[str, IRType]) -> IRType:
    for name, t in zip(line.temps, line.types, strict=True):
        if t == group:
            if name in globals_:
                return globals_[name].type
            if name in found:
                return found[name]
    first = line.types[0]
    assert isinstance(first, IRType)
    return first


def _temp(line: _Line, i: int, name: str, globals_: Mapping[str, Temp],
          local_types: Mapping[str, IRType]) -> Temp:
    if name.startswith("$"):
        t = line.types[i]
        if isinstance(t, str):
            t = _group_type(line, t, globals_, local_types)
        if t is None:
            raise IRParseError(f"line {line.number}: the type of constant {name} is not "
                               "known (declare the helper)")
        try:
            return const(t, int(name[1:], 16))
        except ValueError:
            raise IRParseError(f"line {line.number}: bad constant {name!r}") from None
    temp = globals_.get(name)
    if temp is not None:
        return temp
    if not name or "$" in name or " " in name:
        raise IRParseError(f"line {line.number}: bad temp name {name!r}")
    return Temp(TempKind.LOCAL, local_types[name], name)
