"""The hot-region function shape: several guest blocks as ONE function, for the
optimising tier.

A ``goto_tb`` to a member block is a branch; an indirect jump first compares its
target with the members it may reach (the head, call returns, profiled targets).
Guest registers live in allocas ("shadows") that SROA turns into SSA values across
the whole region; they are written back to the CPU state only where something outside
can see them: region exits (all through ``%retexit`` / ``%tailexit``), helpers that
take the CPU (reloaded after unless NO_WRITE_GLOBALS), and the fault and
exit-request paths, so guest state stays precise. i64 shadows used mostly as float
operands (FP registers) are kept as ``double``, so float chains stay in vector
registers. Cold calls use preserve_all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir.block import Block
from llvmtcg.ir.lower.emitter import UNLIKELY, Emitter, LoweringOptions
from llvmtcg.ir.lower.memory import page_table_ir
from llvmtcg.ir.lower.symbols import quote, slot_symbol
from llvmtcg.ir.lower.table import lower_ops
from llvmtcg.ir.ops import ExitReason
from llvmtcg.ir.types import I64, V128, IRType, Temp, TempKind, to_signed

# Float ops whose (first) operands are float values; the integer operand of itof/utof
# and the flags outputs of ftoi/ftou do not count.
_FLOAT_VALUE_OPS = frozenset({"fadd", "fsub", "fmul", "fdiv", "fsqrt", "fma", "fmin", "fmax",
                              "fsetcond", "fclass", "fcvt", "ftoi", "ftou", "fcanon"})

# Runtime fields a region may keep in SSA (besides the guest's own registers).
_SHADOWABLE_RUNTIME = frozenset({"insn_count"})


def float_shadows(blocks: list[Block], shadows: Mapping[int, IRType]) -> set[int]:
    """The i64 shadows used more as float operands than as integers (FP registers)."""
    score: dict[int, int] = {}
    for block in blocks:
        for op in block.ops:
            if op.name == "mov":
                continue  # neutral: a copy keeps whatever domain the value is in
            weight = 1 if op.name in _FLOAT_VALUE_OPS else -1
            for t in op.inputs:
                if t.kind is TempKind.GLOBAL and shadows.get(t.offset) is I64:
                    score[t.offset] = score.get(t.offset, 0) + weight
    return {o for o, v in score.items() if v > 0}


def exit_request_checks(blocks: list[Block], indirect: Mapping[int, str]) -> set[int]:
    """Indexes of the region members that check ``exit_request`` on entry: the head,
    members an indirect jump may branch to, and targets of branches from the same or a
    later member. Every cycle inside the region goes through one of those (a cycle
    has a step from a member to one at the same or a lower index), so a loop still
    stops when asked, without a check in every member it passes."""
    index = {b.pc: i for i, b in enumerate(blocks)}
    checked = {0} | {index[pc] for pc in indirect if pc in index}
    for j, block in enumerate(blocks):
        for op in block.ops:
            if op.name == "goto_tb":
                i = index.get(op.args[1])
                if i is not None and i <= j:
                    checked.add(i)
    return checked


def region_globals(options: LoweringOptions,
                   blocks: list[Block]) -> tuple[dict[int, IRType], list[int]]:
    """CPU-state fields a region keeps in SSA (the guest's registers it uses, and the
    instruction counter), and those it writes."""
    layout = options.layout
    runtime = ({name for name, _ in (*abi.RUNTIME_FIELDS, *abi.RUNTIME_TAIL_FIELDS)}
               - _SHADOWABLE_RUNTIME)
    runtime_offsets = {layout.offset(n) for n in runtime}
    shadows: dict[int, IRType] = {}
    written: set[int] = set()
    # A v128 register is one shadow; its i64 halves, when also used, are views of it
    # (vector_views), so both forms see the same value.
    vectors = {t.offset for b in blocks for op in b.ops for t in op.outputs + op.inputs
               if t.type is V128 and t.kind is TempKind.GLOBAL}
    for b in blocks:
        for op in b.ops:
            for i, t in enumerate(op.outputs + op.inputs):
                if t.kind is TempKind.GLOBAL and t.offset not in runtime_offsets:
                    offset = t.offset
                    if t.type is not V128 and vectors:
                        offset = _vector_base(offset, vectors)
                        shadows[offset] = (V128 if offset != t.offset or offset in vectors
                                           else t.type)
                    else:
                        shadows[offset] = t.type
                    if i < len(op.outputs):
                        written.add(offset)
    if options.count_insns and any(b.n_insns for b in blocks):
        ic = layout.offset("insn_count")
        shadows[ic] = I64
        written.add(ic)
    return shadows, sorted(written)


def _vector_base(offset: int, vectors: set[int]) -> int:
    """The v128 shadow an i64 field at ``offset`` is a half of (else ``offset``)."""
    if offset in vectors:
        return offset
    if offset - 8 in vectors:
        return offset - 8
    return offset


def vector_views(blocks: list[Block], shadows: Mapping[int, IRType]) -> dict[int, int]:
    """i64 fields that are halves of a v128 shadow: offset -> the shadow's offset."""
    views: dict[int, int] = {}
    for block in blocks:
        for op in block.ops:
            for t in op.outputs + op.inputs:
                if t.kind is TempKind.GLOBAL and t.type is not V128:
                    for base in (t.offset, t.offset - 8):
                        if shadows.get(base) is V128:
                            views[t.offset] = base
                            break
    return views


class RegionFunction(Emitter):
    """The emitter of a region: shadows for the CPU-state fields it uses, member
    blocks as branch targets, every exit through the write-back blocks."""

    __slots__ = ("name", "members", "indirect_entries", "shadows", "written", "exits",
                 "rets", "tails", "uses_page_table", "float_shadows", "views")

    cold_calls_preserve_all = True

    def __init__(self, options: LoweringOptions, name: str, blocks: list[Block],
                 indirect_targets: Iterable[int], accessors_used: set[str]) -> None:
        strictfp = any(op.definition.is_float for b in blocks for op in b.ops)
        super().__init__(options, blocks[0], accessors_used, strictfp)
        self.name = name
        self.members = {b.pc: f"m{i}" for i, b in enumerate(blocks)}  # pc -> entry label
        # Members an indirect jump branches to: the head, call returns, profiled targets.
        entries = {blocks[0].pc, *indirect_targets}
        entries |= {b.return_pc for b in blocks if b.return_pc is not None}
        self.indirect_entries = {pc: label for pc, label in self.members.items()
                                 if pc in entries}
        self.shadows, self.written = region_globals(options, blocks)  # offset -> type
        self.exits: dict[int, int] = {}  # destination pc outside the region -> slot
        self.rets: list[tuple[str, str]] = []  # (exit value, predecessor) into %retexit
        self.tails: list[tuple[str, str]] = []  # (host function, predecessor) into %tailexit
        self.uses_page_table = False  # flat memory checks: table and mask made in entry
        self.float_shadows = float_shadows(blocks, self.shadows)
        self.views = vector_views(blocks, self.shadows)  # i64 half -> its v128 shadow

    def shadow_type(self, offset: int) -> str:
        return "double" if offset in self.float_shadows else self.shadows[offset].llvm

    # -- operands: shadows --------------------------------------------------------------------
    def field_ptr(self, offset: int) -> str:
        base = self.views.get(offset)
        if base is not None and base != offset:
            return f"%sh{base}.hi"
        if offset in self.shadows:
            return f"%sh{offset}"
        return self.state_ptr(offset)

    def read(self, t: Temp) -> str:
        if t.kind is TempKind.GLOBAL and t.offset in self.float_shadows:
            d = self.value(f"load double, ptr %sh{t.offset}, align 8")
            return self.value(f"bitcast double {d} to i64")
        return Emitter.read(self, t)

    def write(self, t: Temp, value: str) -> None:
        if t.kind is TempKind.GLOBAL and t.offset in self.float_shadows:
            d = self.value(f"bitcast i64 {value} to double")
            self.emit(f"store double {d}, ptr %sh{t.offset}, align 8")
            return
        Emitter.write(self, t, value)

    # -- exits ----------------------------------------------------------------------------------
    def return_to_loop(self, value: str) -> None:
        self.rets.append((value, self.current_block))
        self.terminate("br label %retexit")

    def tail_jump(self, target: str) -> None:
        self.tails.append((target, self.current_block))
        self.terminate("br label %tailexit")

    def branch_target(self, dest: int) -> str | None:
        return self.members.get(dest)

    def exit_slot(self, n: int, dest: int) -> str:
        slot = self.exits.setdefault(dest, len(self.exits))
        return f"@{quote(slot_symbol(self.name, slot))}"

    def flush_globals(self) -> None:
        """Write the shadowed registers the region writes back to the CPU state."""
        for o in self.written:
            t, lt = self.shadows[o], self.shadow_type(o)
            v = self.value(f"load {lt}, ptr %sh{o}, align 8")
            self.emit(f"store {lt} {v}, ptr {self.state_ptr(o)}, align {t.align}")

    def reload_globals(self) -> None:
        """Reload every shadowed register from the CPU state (a helper wrote it)."""
        for o, t in self.shadows.items():
            lt = self.shadow_type(o)
            v = self.value(f"load {lt}, ptr {self.state_ptr(o)}, align {t.align}")
            self.emit(f"store {lt} {v}, ptr %sh{o}, align 8")

    def page_table_view(self) -> tuple[str, str]:
        # Fixed for the CPU's lifetime: computed once, in the region's entry (LLVM
        # cannot hoist the loads itself past the guest stores in between).
        self.uses_page_table = True
        return "%pt.table", "%pt.outside"


def lower_region_function(options: LoweringOptions, name: str, blocks: list[Block],
                          indirect_targets: Iterable[int],
                          accessors_used: set[str]) -> tuple[str, dict[int, int]]:
    """The function ``@name`` of a region (``blocks[0]`` is its entry; an indirect
    jump branches directly to the head, call returns and ``indirect_targets``) and its
    exits: destination pc -> exit slot number (symbol ``slot_symbol(name, n)``)."""
    em = RegionFunction(options, name, blocks, indirect_targets, accessors_used)
    checked = exit_request_checks(blocks, em.indirect_entries)
    for i, block in enumerate(blocks):
        em.block, em.prefix, em.terminated = block, f"m{i}.", True
        em.new_block(f"m{i}")
        if i in checked:
            em.emit(f"%m{i}.er = load atomic i32, ptr %er.p monotonic, align 4")
            em.emit(f"%m{i}.ers = icmp ne i32 %m{i}.er, 0")
            em.emit(f"br i1 %m{i}.ers, label %m{i}.req, label %m{i}.go{UNLIKELY}")
            em.new_block(f"m{i}.req")
            em.store_field("pc", I64, str(to_signed(block.pc, 64)))
            em.return_to_loop(str(int(ExitReason.REQUESTED)))
        else:
            em.emit(f"br label %m{i}.go")
        em.new_block(f"m{i}.go")
        if options.count_insns and block.n_insns:
            count = em.load_field("insn_count")
            em.store_field("insn_count", I64, em.value(f"add i64 {count}, {block.n_insns}"))
        lower_ops(em, block)
    for label, pc in em.fault_pcs.items():
        em.new_block(label)
        em.store_field("pc", I64, str(to_signed(pc, 64)))
        em.return_to_loop(str(int(ExitReason.EXCEPTION)))
    if em.rets:
        em.new_block("retexit")
        incoming = ", ".join(f"[ {v}, %{lbl} ]" for v, lbl in em.rets)
        em.emit(f"%ret.v = phi i64 {incoming}")
        em.flush_globals()
        em.terminate("ret i64 %ret.v")
    if em.tails:
        em.new_block("tailexit")
        incoming = ", ".join(f"[ {v}, %{lbl} ]" for v, lbl in em.tails)
        em.emit(f"%tail.fn = phi ptr {incoming}")
        em.flush_globals()
        em.musttail_return("%tail.fn")
    for offset in em.shadows:
        em.state_ptr(offset)
    head = []
    for i, block in enumerate(blocks):
        head += [f"  %m{i}.{t.name} = alloca {t.type.llvm}, align 8" for t in block.locals]
    head += [f"  %sh{o} = alloca {em.shadow_type(o)}, align 8" for o in em.shadows]
    head += [f"  %sh{base}.hi = getelementptr i8, ptr %sh{base}, i64 8"
             for base in sorted({b for o, b in em.views.items() if o != b})]
    if em.uses_mxcsr:
        head.append("  %mxcsr.p = alloca i32, align 4")
    head += [f"  {ptr} = getelementptr i8, ptr %cpu, i64 {o}"
             for o, ptr in em.field_ptrs.items()]
    er = options.layout.offset("exit_request")
    head.append(f"  %er.p = getelementptr i8, ptr %cpu, i64 {er}")
    if em.uses_page_table:
        for field_name in ("table", "count"):
            offset = options.layout.offset(f"page_{field_name}")
            head += [f"  %pt.{field_name}.p = getelementptr i8, ptr %cpu, i64 {offset}",
                     f"  %pt.{field_name}.v = load i64, ptr %pt.{field_name}.p, align 8"]
        lines, _, _ = page_table_ir("%pt.table.v", "%pt.count.v", "%pt.")
        head += [f"  {line}" for line in lines]
    for o, t in em.shadows.items():
        shadow_type = em.shadow_type(o)
        head += [f"  %in{o} = load {shadow_type}, ptr %fp{o}, align {t.align}",
                 f"  store {shadow_type} %in{o}, ptr %sh{o}, align 8"]
    head.append("  br label %m0")
    attrs = "nounwind strictfp" if em.strictfp else "nounwind"
    function = "\n".join([f"define i64 @{quote(name)}(ptr noalias %cpu, ptr %mem) {attrs} {{",
                          "entry:", *head, *em.lines, "}"])
    return function, dict(em.exits)
