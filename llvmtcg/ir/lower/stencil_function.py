"""The baseline tier's function shape: one IR op as a copy-and-patch stencil.

The baseline tier (``runtime/native/baseline.py``) does not write a second
implementation of the IR: each stencil is the LLVM function the op's own lowering rule
writes, run through :class:`StencilFunction`, an :class:`Emitter` whose operands are
*holes* (see ``runtime/native/stencils.py``) instead of fixed temps:

* a temp operand is a CPU-state slot (a global's field, or a block-local's fixed slot
  in the scratch area after the state) reached through a U31 offset hole ``s<i>``, or
  a constant, an I64 hole ``c<i>``. Rules see every operand as a global temp, so no
  rule specialises on a constant's value (the stencil serves every value);
* jumps to IR labels, the current instruction's fault exit and the next stencil are
  ``ghccc`` tail calls of LABEL holes;
* leaving the block for the run loop returns the exit value to the C entry adapter
  the chain was entered through. Going to other translated code (chaining, jump
  cache), a baseline block jumps straight to the target's *body* (after its adapter)
  when the target is a baseline block, keeping the adapter's frame (every adapter is
  the same code); any other target's entry address goes back to the adapter tagged
  with :data:`TAIL_JUMP_TAG`, which jumps there *after* popping its frame. Either way
  a chain of any length runs in constant stack;
* a ``goto_tb``'s exit slot and the execution counter are I64 holes holding data
  addresses; the destination pc is an I64 hole;
* calls to helpers, memory accessors and slow-path thunks go through I64 import holes
  (``imp.<symbol>``), filled with the symbol's address in the process that uses the
  stencil.

So a stencil has, by construction, the semantics of the LLVM lowering of its op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llvmtcg.ir.block import Block, Op
from llvmtcg.ir.lower.emitter import LIKELY, UNLIKELY, Emitter, LoweringOptions
from llvmtcg.ir.lower.symbols import INDIRECT_TARGETS
from llvmtcg.ir.ops import OPS
from llvmtcg.ir.types import I64, Label, Temp, TempKind

# A block's body returns ``address | TAIL_JUMP_TAG`` to its C entry adapter to jump to
# translated code at ``address`` (an entry point, 16-byte aligned): the exit reasons
# use the values 0-6 of the low 3 bits.
TAIL_JUMP_TAG = 7

HOLE = "hole."
# Per-process constants of the baseline arena, filled when a stencil is bound (like
# imports): its code zone's start and size, and where a block's body starts after its
# entry adapter.
ARENA_BASE = "arena.base"
ARENA_SIZE = "arena.size"
ARENA_BODY = "arena.body"
# The page-flag table and the outside mask of flat guest memory (page_table_view).
ARENA_PAGES = "arena.pages"
ARENA_OUTSIDE = "arena.outside"
# Every stencil is ``ghccc i64 (ptr %cpu, ptr %mem, i64 %acc)``: ``%acc`` (r12) carries
# the i64 result of the previous stencil, so a following op reading that temp can take
# it from the register instead of reloading the CPU state (the store was made too:
# the state stays precise).
ACC = "%acc"
ARGS = "ptr %cpu, ptr %mem, i64 %acc"
# A goto_tb destination the rule writes as a literal: replaced by the hole "dest". Any
# value no guest pc takes in practice, spelled the way to_signed prints it.
_DEST_SENTINEL = 0x5EC7_1E1D_B0A7_0000
_DEST_TEXT = str(_DEST_SENTINEL)

_SYMBOL = re.compile(r'@("[^"]+"|[A-Za-z_.$][\w.$]*)')


@dataclass(frozen=True, slots=True)
class OperandSpec:
    """One hole of a generated stencil: its name and kind (``u31``, ``i64``,
    ``label``)."""

    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class StencilSource:
    """The LLVM function of one op shape, named ``@"stencil.<name>"``, its holes in
    emission order (slots, constants, labels, the op's own holes, imports last) and
    the non-intrinsic symbols it calls (imports)."""

    name: str
    operands: tuple[OperandSpec, ...]
    function: str
    imports: tuple[str, ...]


# A constant below this is a 4-byte hole (``k<i>``, U31): x86 takes it as an
# immediate (sign- or zero-extended, the same value either way), where a larger one
# needs a 10-byte ``movabs`` into a register first.
SMALL_CONST_LIMIT = 1 << 31


# Ops whose constant count is part of the stencil (one stencil per count): x86 shifts
# and rotates by an immediate, where a count in a hole needs a register.
LITERAL_COUNT_OPS = frozenset({"shl", "shr", "sar", "rotl", "rotr"})


def literal_input(op: Op) -> int | None:
    """The input of ``op`` its stencil has as a literal (a constant shift count), or
    None: every constant is a hole."""
    if op.name in LITERAL_COUNT_OPS and op.inputs[1].is_const:
        return 1
    return None


def operand_kinds(op: Op) -> str:
    """'s' (a slot), 'k' (a constant below SMALL_CONST_LIMIT) or 'c' (any other
    constant) per output then input temp."""
    return "".join(("k" if t.value < SMALL_CONST_LIMIT else "c") if t.is_const else "s"
                   for t in (*op.outputs, *op.inputs))


def shape_key(op: Op, take: int | None = None, store: bool = True) -> str:
    """What makes two ops share a stencil: opcode, operand kinds and types, the
    non-temp arguments other than labels and a goto_tb's destination, which input
    (if any) comes in ``%acc``, and whether the result is stored (``/n``: it is
    passed on in ``%acc`` only, see :func:`stencil_source`)."""
    types = ".".join(str(t.type.bits) for t in (*op.outputs, *op.inputs))
    if op.name in ("brcond", "goto_tb"):
        args = op.args[:1]
    else:
        args = op.args
    text = ",".join(_arg_text(a) for a in args)
    key = f"{op.name}/{operand_kinds(op)}/{types}/{text}"
    literal = literal_input(op)
    if literal is not None:
        key += f"/={op.inputs[literal].value}"
    if take is not None:
        key += f"/t{take}"
    return key if store else key + "/n"


def _arg_text(arg: object) -> str:
    if hasattr(arg, "encode") and hasattr(arg, "size_log2"):  # MemOp
        return f"m{arg.encode():x}"
    if hasattr(arg, "value") and not isinstance(arg, int):  # enums
        return str(arg.value)
    return str(arg)


def stencil_name(key: str) -> str:
    """A symbol-safe name for a shape key."""
    return re.sub(r"[^\w.]", "_", key)


class StencilFunction(Emitter):
    """The emitter of one stencil (see the module docstring)."""

    __slots__ = ("roles", "labels_used", "uses_fault", "take", "unstored", "result")

    def __init__(self, options: LoweringOptions, block: Block, strictfp: bool,
                 roles: dict[str, str], take: str | None = None,
                 unstored: str | None = None) -> None:
        super().__init__(options, block, set(), strictfp)
        self.roles = roles  # placeholder temp name -> hole name ("s0", "k1", "c2")
        self.labels_used: list[int] = []
        self.uses_fault = False
        self.take = take  # the placeholder read from %acc instead of its slot
        # The output placeholder written to no slot (its value goes on in %acc), and
        # what the rule wrote to it: (value, basic block) per write.
        self.unstored = unstored
        self.result: list[tuple[str, str]] = []

    # -- operands are holes ------------------------------------------------------------
    def _slot_ptr(self, hole: str) -> str:
        return self.value(f'getelementptr i8, ptr %cpu, i64 ptrtoint (ptr @"{HOLE}{hole}" '
                          f"to i64)")

    def read(self, t: Temp) -> str:
        if t.name == self.take:
            return ACC
        if t.name == self.unstored and self.result:
            return self.result[-1][0]
        hole = self.roles.get(t.name)
        if hole is None:
            return super().read(t)
        if hole[0] in "ck":
            wide = self.value(f'add i64 ptrtoint (ptr @"{HOLE}{hole}" to i64), 0')
            return wide if t.type is I64 else self.value(f"trunc i64 {wide} to {t.type}")
        return self.value(f"load {t.type.llvm}, ptr {self._slot_ptr(hole)}, align 4")

    def write(self, t: Temp, value: str) -> None:
        if t.name == self.unstored:
            self.result.append((value, self.current_block))
            return
        hole = self.roles[t.name]
        self.emit(f"store {t.type.llvm} {value}, ptr {self._slot_ptr(hole)}, align 4")

    def label(self, label: Label) -> str:
        if label.index not in self.labels_used:
            self.labels_used.append(label.index)
        return f"L{label.index}"

    # -- exits ---------------------------------------------------------------------------
    def fault_label(self) -> str:
        self.uses_fault = True
        return "fault"

    def return_to_loop(self, value: str) -> None:
        self.terminate(f"ret i64 {value}")

    def tail_jump(self, target: str) -> None:
        # ``target`` is a C entry point (a jump cache or lookup table entry). A baseline
        # block's (its address in the baseline arena's code zone) is entered at its
        # body, after its adapter; any other goes through this block's adapter.
        address = self.value(f"ptrtoint ptr {target} to i64")
        offset = self.value(f'sub i64 {address}, ptrtoint (ptr @"{HOLE}{ARENA_BASE}" to i64)')
        inside = self.value(f'icmp ult i64 {offset}, ptrtoint (ptr @"{HOLE}{ARENA_SIZE}" '
                            "to i64)")
        k = self.fresh()
        self.emit(f"br i1 {inside}, label %body{k}, label %adapter{k}{LIKELY}")
        self.new_block(f"body{k}")
        body = self.value(f'add i64 {address}, ptrtoint (ptr @"{HOLE}{ARENA_BODY}" to i64)')
        self._jump_to_body(self.value(f"inttoptr i64 {body} to ptr"))
        self.new_block(f"adapter{k}")
        self.terminate(f"ret i64 {self.value(f'or i64 {address}, {TAIL_JUMP_TAG}')}")

    def chain_jump(self, target: str) -> None:
        # A baseline block's exit slot holds the target's body (8-byte aligned) when
        # the target is a baseline block, else its C entry | TAIL_JUMP_TAG
        # (BaselineCodegen.chain_value).
        address = self.value(f"ptrtoint ptr {target} to i64")
        tag = self.value(f"and i64 {address}, {TAIL_JUMP_TAG}")
        tagged = self.value(f"icmp ne i64 {tag}, 0")
        k = self.fresh()
        self.emit(f"br i1 {tagged}, label %adapter{k}, label %body{k}{UNLIKELY}")
        self.new_block(f"adapter{k}")
        self.terminate(f"ret i64 {address}")
        self.new_block(f"body{k}")
        self._jump_to_body(target)

    def _jump_to_body(self, body: str) -> None:
        # The target's body runs on this block's adapter frame (all adapters are the
        # same code), with the CPU state and memory base where ghccc keeps them.
        r = self.value(f"musttail call ghccc i64 {body}({ARGS}){self.call_attrs}")
        self.terminate(f"ret i64 {r}")

    def exit_slot(self, n: int, dest: int) -> str:
        return f'@"{HOLE}slot"'

    def profile_indirect_target(self, pc: str) -> None:
        if self.options.hot_threshold:
            count = self.value(f'load i32, ptr @"{HOLE}counter", align 4')
            i = self.value(f"and i32 {count}, {INDIRECT_TARGETS - 1}")
            cell = self.value(f'getelementptr i64, ptr @"{HOLE}targets", i32 {i}')
            self.emit(f"store i64 {pc}, ptr {cell}, align 8")

    def page_table_view(self) -> tuple[str, str]:
        # Fixed for the CPU's lifetime (as a region's): per-process constants.
        return (f'@"{HOLE}{ARENA_PAGES}"',
                f'ptrtoint (ptr @"{HOLE}{ARENA_OUTSIDE}" to i64)')


def stencil_source(options: LoweringOptions, op: Op, take: int | None = None,
                   store: bool = True) -> StencilSource:
    """The stencil of ``op``'s shape (:func:`shape_key`), lowered by the op's rule;
    with ``take``, input ``take`` (an i64 temp) is read from ``%acc``, where the
    previous stencil left it. Without ``store``, the op's one i64 result is not
    stored to its slot, only passed on in ``%acc`` (the caller knows the next op
    takes it from there and overwrites the slot, and cannot fault); a rule whose result
    is not one value at the stencil's end (written on several paths) gets the storing
    stencil under this shape's name."""
    if not store and not (len(op.outputs) == 1 and op.outputs[0].type is I64):
        raise ValueError(f"{op.name}: only an op with one i64 result can leave it unstored")
    roles: dict[str, str] = {}
    operands: list[OperandSpec] = []
    taken = None if take is None else len(op.outputs) + take
    literal = literal_input(op)
    if literal is not None:
        literal += len(op.outputs)

    def placeholder(t: Temp, i: int) -> Temp:
        if i == literal:
            return t  # (the rule sees the constant itself)
        if not t.is_const:
            hole, kind = f"s{i}", "u31"
        elif t.value < SMALL_CONST_LIMIT:
            hole, kind = f"k{i}", "u31"
        else:
            hole, kind = f"c{i}", "i64"
        if i != taken and (store or i != 0):
            operands.append(OperandSpec(hole, kind))
        name = f"$op{i}"
        roles[name] = hole
        return Temp(TempKind.GLOBAL, t.type, name, offset=0)

    temps = [placeholder(t, i) for i, t in enumerate((*op.outputs, *op.inputs))]
    outputs, inputs = tuple(temps[:len(op.outputs)]), tuple(temps[len(op.outputs):])
    # Labels are named by their position in the args (the stencil serves any label).
    args = tuple(Label(i) if isinstance(a, Label) else a for i, a in enumerate(op.args))
    if op.name == "goto_tb":
        args = (op.args[0], _DEST_SENTINEL)
    shaped = Op(op.name, outputs, inputs, args)
    block = Block(0, [shaped], name="stencil")
    strictfp = OPS[op.name].is_float
    em = StencilFunction(options, block, strictfp, roles,
                         None if taken is None else f"$op{taken}",
                         None if store else "$op0")
    # (the rule table is imported by the stencils made, not at import: a warm start makes
    # none)
    from llvmtcg.ir.lower.table import TABLE  # noqa: PLC0415

    lower = TABLE.select(shaped)
    lower(em, shaped)
    name = stencil_name(shape_key(op, take, store))
    if not store and (em.terminated or len(em.result) != 1
                      or em.result[0][1] != em.current_block):
        stored = stencil_source(options, op, take)
        function = stored.function.replace(f'@"stencil.{stored.name}"',
                                           f'@"stencil.{name}"', 1)
        return StencilSource(name, stored.operands, function, stored.imports)
    tail: list[str] = []
    if not em.terminated:
        # An op with one i64 result leaves it in %acc for the next stencil (reloaded
        # here: LLVM forwards the store it just made), any other passes %acc on.
        give = ACC
        if not store:
            give = em.result[0][0]
        elif len(outputs) == 1 and outputs[0].type is I64:
            give = em.value(f"load i64, ptr {em._slot_ptr('s0')}, align 4")
        tail += [f'  %next = musttail call ghccc i64 @"hole.next"(ptr %cpu, ptr %mem, '
                 f"i64 {give}){em.call_attrs}", "  ret i64 %next"]
    for index in em.labels_used:
        operands.append(OperandSpec(f"L{index}", "label"))
    for index in em.labels_used:
        tail += [f"L{index}:",
                 f'  %t.L{index} = musttail call ghccc i64 @"{HOLE}L{index}"'
                 f"({ARGS}){em.call_attrs}",
                 f"  ret i64 %t.L{index}"]
    if em.uses_fault:
        operands.append(OperandSpec("fault", "label"))
        tail += ["fault:",
                 f'  %t.fault = musttail call ghccc i64 @"{HOLE}fault"({ARGS})'
                 f"{em.call_attrs}",
                 "  ret i64 %t.fault"]
    head = ["entry:"]
    if em.uses_mxcsr:
        head.append("  %mxcsr.p = alloca i32, align 4")
    for offset, ptr in em.field_ptrs.items():
        head.append(f"  {ptr} = getelementptr i8, ptr %cpu, i64 {offset}")
    body = "\n".join(head + em.lines + tail)
    extra = []
    if _DEST_TEXT in body:
        body = body.replace(_DEST_TEXT, f'ptrtoint (ptr @"{HOLE}dest" to i64)')
        extra.append(OperandSpec("dest", "i64"))
    for hole, kind in (("slot", "i64"), ("counter", "i64"), ("targets", "i64"),
                       (ARENA_BASE, "i64"), (ARENA_SIZE, "u31"), (ARENA_BODY, "u31"),
                       (ARENA_PAGES, "i64"), (ARENA_OUTSIDE, "i64")):
        if f'@"{HOLE}{hole}"' in body:
            extra.append(OperandSpec(hole, kind))
    operands += extra
    # Calls of anything but intrinsics and holes go through import holes: the address
    # of a cell holding the callee's address (rel32 may not reach it from the arena).
    imports: list[str] = []
    lines = []
    for line in body.split("\n"):
        for match in _SYMBOL.finditer(line):
            symbol = match.group(1).strip('"')
            if symbol.startswith(("llvm.", HOLE)) or not line.startswith("  "):
                continue
            if symbol not in imports:
                imports.append(symbol)
            pointer = f"%imp{len(lines)}.{imports.index(symbol)}"
            lines.append(f'  {pointer} = load ptr, ptr @"{HOLE}imp.{symbol}", align 8')
            line = line.replace(match.group(0), pointer)
        lines.append(line)
    body = "\n".join(lines)
    operands += [OperandSpec(f"imp.{s}", "i64") for s in imports]
    attrs = "nounwind strictfp" if strictfp else "nounwind"
    function = (f'define ghccc i64 @"stencil.{name}"({ARGS}) {attrs} {{\n'
                f"{body}\n}}\n")
    return StencilSource(name, tuple(operands), function, tuple(imports))


__all__ = ["ACC", "ARENA_BASE", "ARENA_BODY", "ARENA_OUTSIDE", "ARENA_PAGES",
           "ARENA_SIZE", "ARGS", "LITERAL_COUNT_OPS", "SMALL_CONST_LIMIT",
           "TAIL_JUMP_TAG", "OperandSpec", "StencilFunction", "StencilSource",
           "literal_input", "shape_key", "stencil_source"]
