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

A *region* (``Lowering.lower_region``) is several blocks lowered as ONE function, for
the optimising tier: a ``goto_tb`` to a member block is a branch, guest registers live
in allocas ("shadows") that SROA turns into SSA values across the whole region, and
they are written back to the CPU state only where something outside can see them:
region exits, helpers that take the CPU, and the fault and exit-request paths (so
state stays precise). Every member still checks ``exit_request`` on entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir import host_abi
from llvmtcg.ir.block import Block, Op
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.ir.ops import EXIT_REASON_BITS, ExitReason
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


def counter_symbol(block_name: str) -> str:
    """The module global counting down a block's executions to its HOT exit."""
    return f"{block_name}.count"


def target_symbol(block_name: str) -> str:
    """The module global recording recent targets of a block's indirect jump (with
    execution counters only): hot regions include targets seen there. It is an array
    of INDIRECT_TARGETS pcs, written round robin (slot = the counter's low bits)."""
    return f"{block_name}.target"


INDIRECT_TARGETS = 4


# Float ops whose (first) operands are float values; the integer operand of itof/utof
# and the flags outputs of ftoi/ftou do not count.
_FLOAT_VALUE_OPS = frozenset({"fadd", "fsub", "fmul", "fdiv", "fsqrt", "fma", "fmin", "fmax",
                              "fsetcond", "fclass", "fcvt", "ftoi", "ftou", "fcanon"})


def _float_shadows(blocks: list[Block], shadows: Mapping[int, IRType]) -> set[int]:
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


def _exit_request_checks(blocks: list[Block], indirect: Mapping[int, str]) -> set[int]:
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


def has_indirect_exit(block: Block) -> bool:
    return any(op.name == "lookup_and_goto_ptr" for op in block.ops)


# Runtime fields a region may keep in SSA (besides the guest's own registers).
_SHADOWABLE_RUNTIME = frozenset({"insn_count"})


@dataclass(slots=True)
class _Region:
    """Lowering state of one region function."""

    name: str
    members: dict[int, str]  # guest pc of a member block -> its entry label
    indirect: dict[int, str]  # members an indirect jump branches to: head, call returns
    shadows: dict[int, IRType]  # CPU-state offset -> type, kept in an alloca
    written: list[int]  # shadowed offsets some member writes: written back at exits
    exits: dict[int, int]  # destination pc outside the region -> exit slot number
    rets: list[tuple[str, str]]  # (i64 exit value, predecessor label) into %retexit
    tails: list[tuple[str, str]]  # (host function, predecessor label) into %tailexit
    uses_page_table: bool = False  # flat memory checks: page_table/page_count loaded once
    # i64 shadows holding binary64 values (FP registers): kept as doubles, so float
    # chains stay in vector registers; bit patterns are unchanged by the bitcasts.
    float_shadows: set[int] = field(default_factory=set)

    def shadow_type(self, offset: int) -> str:
        return "double" if offset in self.float_shadows else str(self.shadows[offset])

    def exit_slot(self, dest: int) -> int:
        return self.exits.setdefault(dest, len(self.exits))


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
    prefix: str = ""  # names of labels and locals: unique per member block of a region
    current: str = "entry"  # the LLVM basic block being emitted
    region: _Region | None = None


class Lowering:
    """Lowers blocks against one CPU layout and helper set.

    Args:
        layout: the CPU-state layout (field offsets, TLB geometry).
        helpers: declarations of the helpers blocks may call, by name.
        count_insns: add each block's instruction count to ``insn_count`` on entry.
        inline_memory: expand every guest access's TLB probe inline (fast code), with a
            call to the shared accessor only on a miss, rather than calling the accessor
            for every access (about half the LLVM IR for memory-heavy blocks, so much
            faster to compile). Accessors a module calls are listed in
            ``accessors_used``; :meth:`accessor_module` defines them.
        hot_threshold: if nonzero, each block counts its executions down from this in a
            module global (:func:`counter_symbol`) and returns HOT, once, on reaching 0.
        flat_memory: with ``inline_memory``, check an access against the page-flag
            table (``page_table``/``page_count``) instead of probing the TLB: valid
            when guest RAM is identity-mapped from ``%mem`` (a GuestMemory), as in user
            mode. Same work as a TLB hit, but it never misses, however scattered the
            accesses (a TLB of 1024 pages covers 4 MiB).
    """

    def __init__(self, layout: abi.CpuLayout, helpers: Mapping[str, HelperDecl],
                 count_insns: bool = False, inline_memory: bool = True,
                 hot_threshold: int = 0, flat_memory: bool = False) -> None:
        self.layout = layout
        self.helpers = helpers
        self.count_insns = count_insns
        self.inline_memory = inline_memory
        self.flat_memory = flat_memory
        self.hot_threshold = hot_threshold
        self.accessors_used: set[str] = set()

    # -- module ---------------------------------------------------------------------------
    def lower_module(self, blocks: Iterable[Block], triple: str = "") -> str:
        blocks = list(blocks)
        self.accessors_used = set()
        out: list[str] = []
        if triple:
            out.append(f'target triple = "{triple}"')
        for b in blocks:
            for n in sorted({op.args[0] for op in b.ops if op.name == "goto_tb"}):
                out.append(f"@{_q(slot_symbol(b.name, n))} = global ptr null, align 8")
            if self.hot_threshold:
                out.append(f"@{_q(counter_symbol(b.name))} = global i32 "
                           f"{self.hot_threshold}, align 4")
                if has_indirect_exit(b):
                    cells = ", ".join(["i64 -1"] * INDIRECT_TARGETS)
                    out.append(f"@{_q(target_symbol(b.name))} = global "
                               f"[{INDIRECT_TARGETS} x i64] [{cells}], align 8")
        out += self._declarations(blocks)
        functions = [self.lower_function(b) for b in blocks]
        for name in sorted(self.accessors_used):
            out.append(_accessor_declaration(name))
        return "\n".join(out + functions) + "\n"

    def _declarations(self, blocks: list[Block]) -> list[str]:
        out = host_abi.declarations(host_abi.BLOCK_IMPORTS)
        used_helpers = {op.args[0] for b in blocks for op in b.ops if op.name == "call"}
        for name in sorted(used_helpers):
            decl = self._helper(name)
            out.append(host_abi.declaration(host_abi.HostFunction.for_helper(decl),
                                            decl.llvm_attributes()))
        return out

    # -- region -----------------------------------------------------------------------------
    def lower_region(self, name: str, blocks: Iterable[Block], triple: str = "",
                     indirect_targets: Iterable[int] = ()) -> tuple[str, dict[int, int]]:
        """One function ``@name`` for a region: ``blocks[0]`` is its entry, and a
        ``goto_tb`` to any member's pc is a branch to that member. An indirect jump
        first compares its target with the head, the continuations of calls made in
        the region (returns) and ``indirect_targets``, and branches there on a match.

        Returns the module text and the region's exits: destination pc -> exit slot
        number (the slot's symbol is ``slot_symbol(name, n)``).
        """
        blocks = list(blocks)
        self.accessors_used = set()
        shadows, written = self._region_globals(blocks)
        members = {b.pc: f"m{i}" for i, b in enumerate(blocks)}
        entries = {blocks[0].pc, *indirect_targets}
        entries |= {b.return_pc for b in blocks if b.return_pc is not None}
        indirect = {pc: label for pc, label in members.items() if pc in entries}
        region = _Region(name, members, indirect, shadows, written, {}, [], [])
        region.float_shadows = _float_shadows(blocks, shadows)
        st = _FnState(blocks[0], [], fault_pcs={}, field_ptrs={}, region=region)
        st.strictfp = any(op.definition.is_float for b in blocks for op in b.ops)
        self._st = st
        er = self.layout.offset("exit_request")
        checked = _exit_request_checks(blocks, indirect)
        for i, block in enumerate(blocks):
            st.block, st.prefix, st.terminated = block, f"m{i}.", True
            self._new_block(f"m{i}")
            if i in checked:
                self._emit(f"%m{i}.er = load atomic i32, ptr %er.p monotonic, align 4")
                self._emit(f"%m{i}.ers = icmp ne i32 %m{i}.er, 0")
                self._emit(f"br i1 %m{i}.ers, label %m{i}.req, label %m{i}.go{UNLIKELY}")
                self._new_block(f"m{i}.req")
                self.store_field("pc", I64, str(_signed(block.pc, 64)))
                self._region_ret(str(int(ExitReason.REQUESTED)))
            else:
                self._emit(f"br label %m{i}.go")
            self._new_block(f"m{i}.go")
            if self.count_insns and block.n_insns:
                count = self.load_field("insn_count")
                self.store_field("insn_count", I64,
                                 self._val(f"add i64 {count}, {block.n_insns}"))
            self._lower_ops(block)
        for label, pc in st.fault_pcs.items():
            self._new_block(label)
            self.store_field("pc", I64, str(_signed(pc, 64)))
            self._region_ret(str(int(ExitReason.EXCEPTION)))
        if region.rets:
            self._new_block("retexit")
            incoming = ", ".join(f"[ {v}, %{lbl} ]" for v, lbl in region.rets)
            self._emit(f"%ret.v = phi i64 {incoming}")
            self._region_sync_out()
            self._terminate("ret i64 %ret.v")
        if region.tails:
            self._new_block("tailexit")
            incoming = ", ".join(f"[ {v}, %{lbl} ]" for v, lbl in region.tails)
            self._emit(f"%tail.fn = phi ptr {incoming}")
            self._region_sync_out()
            _tail_call(self, "%tail.fn")
        for offset in shadows:
            self._real_field_ptr(offset)
        head = []
        for i, block in enumerate(blocks):
            head += [f"  %m{i}.{t.name} = alloca {t.type}, align 8" for t in block.locals]
        head += [f"  %sh{o} = alloca {region.shadow_type(o)}, align 8" for o in shadows]
        if st.mxcsr_slot:
            head.append("  %mxcsr.p = alloca i32, align 4")
        head += [f"  {ptr} = getelementptr i8, ptr %cpu, i64 {o}"
                 for o, ptr in st.field_ptrs.items()]
        head.append(f"  %er.p = getelementptr i8, ptr %cpu, i64 {er}")
        if region.uses_page_table:
            for field_name in ("table", "count"):
                offset = self.layout.offset(f"page_{field_name}")
                head += [f"  %pt.{field_name}.p = getelementptr i8, ptr %cpu, i64 {offset}",
                         f"  %pt.{field_name}.v = load i64, ptr %pt.{field_name}.p, align 8"]
            lines, _, _ = _page_table_ir("%pt.table.v", "%pt.count.v", "%pt.")
            head += [f"  {line}" for line in lines]
        for o, t in shadows.items():
            st_ = region.shadow_type(o)
            head += [f"  %in{o} = load {st_}, ptr %fp{o}, align {t.bits // 8}",
                     f"  store {st_} %in{o}, ptr %sh{o}, align 8"]
        head.append("  br label %m0")
        attrs = "nounwind strictfp" if st.strictfp else "nounwind"
        function = "\n".join([f"define i64 @{_q(name)}(ptr noalias %cpu, ptr %mem) {attrs} {{",
                              "entry:", *head, *st.lines, "}"])
        out = [f'target triple = "{triple}"'] if triple else []
        out += [f"@{_q(slot_symbol(name, n))} = global ptr null, align 8"
                for n in sorted(region.exits.values())]
        out += self._declarations(blocks)
        out += [_accessor_declaration(a) for a in sorted(self.accessors_used)]
        return "\n".join([*out, function]) + "\n", dict(region.exits)

    def _region_globals(self, blocks: list[Block]) -> tuple[dict[int, IRType], list[int]]:
        """CPU-state fields a region keeps in SSA (the guest's registers it uses, and
        the instruction counter), and those it writes."""
        runtime = {name for name, _ in abi.RUNTIME_FIELDS} - _SHADOWABLE_RUNTIME
        runtime_offsets = {self.layout.offset(n) for n in runtime}
        shadows: dict[int, IRType] = {}
        written: set[int] = set()
        for b in blocks:
            for op in b.ops:
                for i, t in enumerate(op.outputs + op.inputs):
                    if t.kind is TempKind.GLOBAL and t.offset not in runtime_offsets:
                        shadows[t.offset] = t.type
                        if i < len(op.outputs):
                            written.add(t.offset)
        if self.count_insns and any(b.n_insns for b in blocks):
            ic = self.layout.offset("insn_count")
            shadows[ic] = I64
            written.add(ic)
        return shadows, sorted(written)

    def _region_ret(self, value: str) -> None:
        """Leave the region returning ``value`` (after writing back its registers)."""
        self._st.region.rets.append((value, self._st.current))
        self._terminate("br label %retexit")

    def _region_tail(self, target: str) -> None:
        """Leave the region by tail-calling ``target`` (after writing back)."""
        self._st.region.tails.append((target, self._st.current))
        self._terminate("br label %tailexit")

    def _region_sync_out(self) -> None:
        """Write the shadowed registers the region writes back to the CPU state."""
        region = self._st.region
        for o in region.written:
            t, lt = region.shadows[o], region.shadow_type(o)
            v = self._val(f"load {lt}, ptr %sh{o}, align 8")
            self._emit(f"store {lt} {v}, ptr {self._real_field_ptr(o)}, align {t.bits // 8}")

    def _region_sync_in(self) -> None:
        """Reload every shadowed register from the CPU state (a helper wrote it)."""
        region = self._st.region
        for o, t in region.shadows.items():
            lt = region.shadow_type(o)
            v = self._val(f"load {lt}, ptr {self._real_field_ptr(o)}, align {t.bits // 8}")
            self._emit(f"store {lt} {v}, ptr %sh{o}, align 8")

    def accessor_module(self, names: Iterable[str], triple: str = "") -> str:
        """LLVM IR defining the out-of-line memory accessors ``names``."""
        out = [f'target triple = "{triple}"'] if triple else []
        out += host_abi.declarations(host_abi.ACCESSOR_IMPORTS)
        for name in names:
            kind, memop, mmu_idx, _ = _parse_accessor_name(name)
            ret, params = _ACCESSOR_SIGNATURES[kind]
            self._st = _FnState(Block(0, name=name), [])
            _accessor_body(self, kind, memop, mmu_idx)
            out.append(f"define {_accessor_cc(name)}{ret} @{name}({params}) nounwind {{\n"
                       "entry:")
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
        st.strictfp = any(op.definition.is_float for op in block.ops)
        self._st = st
        name = _q(block.name)
        self._lower_ops(block)
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
        if self.hot_threshold:
            counter = f"@{_q(counter_symbol(block.name))}"
            head += [f"  %hc = load i32, ptr {counter}, align 4",
                     "  %hc.n = add i32 %hc, -1",
                     f"  store i32 %hc.n, ptr {counter}, align 4",
                     "  %hc.z = icmp eq i32 %hc.n, 0",
                     "  br i1 %hc.z, label %hot, label %counted",
                     "hot:",
                     *self._store_pc_lines(block.pc, "hot"),
                     f"  ret i64 {int(ExitReason.HOT)}",
                     "counted:"]
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
        return "\n".join(head + st.lines + tail) + "\n}\n"

    def _lower_ops(self, block: Block) -> None:
        st = self._st
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
        self._st.current = label

    def _terminate(self, text: str) -> None:
        self._emit(text)
        self._st.terminated = True

    def _field_ptr(self, offset: int) -> str:
        """Where a CPU-state field is read and written: its shadow alloca inside a
        region that keeps it in SSA, else the field itself."""
        region = self._st.region
        if region is not None and offset in region.shadows:
            return f"%sh{offset}"
        return self._real_field_ptr(offset)

    def _real_field_ptr(self, offset: int) -> str:
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
            return self._val(f"load {t.type}, ptr %{self._st.prefix}{t.name}, align 8")
        ptr = self._field_ptr(t.offset)
        region = self._st.region
        if region is not None and t.offset in region.float_shadows:
            d = self._val(f"load double, ptr {ptr}, align 8")
            return self._val(f"bitcast double {d} to i64")
        return self._val(f"load {t.type}, ptr {ptr}, align {t.type.bits // 8}")

    def write(self, t: Temp, value: str) -> None:
        if t.kind is TempKind.LOCAL:
            self._emit(f"store {t.type} {value}, ptr %{self._st.prefix}{t.name}, align 8")
            return
        ptr = self._field_ptr(t.offset)
        region = self._st.region
        if region is not None and t.offset in region.float_shadows:
            d = self._val(f"bitcast i64 {value} to double")
            self._emit(f"store double {d}, ptr {ptr}, align 8")
            return
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
        self._emit(f"br i1 {bad}, label %{self.fault_label()}, label %{ok}{UNLIKELY}")
        self._new_block(ok)


# Branch weights for the paths code almost always takes (a TLB hit, no fault, no exit
# request): LLVM lays out and allocates registers for the hot path first.
LIKELY = ', !prof !{!"branch_weights", i32 2000, i32 1}'
UNLIKELY = ', !prof !{!"branch_weights", i32 1, i32 2000}'


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


_PLAIN_NAME = re.compile(r"[A-Za-z0-9._$]+")


def _q(name: str) -> str:
    """Quote a symbol name when it has characters LLVM identifiers cannot."""
    if _PLAIN_NAME.fullmatch(name):
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

def _label(lw: Lowering, label: Label) -> str:
    return f"{lw._st.prefix}L{label.index}"


@_rule("set_label")
def _set_label(lw: Lowering, op: Op) -> None:
    if not lw._st.terminated:
        lw._emit(f"br label %{_label(lw, op.args[0])}")
    lw._new_block(_label(lw, op.args[0]))


@_rule("br")
def _br(lw: Lowering, op: Op) -> None:
    lw._terminate(f"br label %{_label(lw, op.args[0])}")


@_rule("brcond")
def _brcond(lw: Lowering, op: Op) -> None:
    cond, label = op.args
    c = _compare(lw, cond, *op.inputs)
    fallthrough = f"next{lw._n()}"
    lw._emit(f"br i1 {c}, label %{_label(lw, label)}, label %{fallthrough}")
    lw._new_block(fallthrough)


@_rule("insn_start")
def _insn_start(lw: Lowering, op: Op) -> None:
    lw._st.insn_pc = op.args[0]


@_rule("exit_tb")
def _exit_tb(lw: Lowering, op: Op) -> None:
    if lw._st.region is not None:
        lw._region_ret(str(int(op.args[0])))
    else:
        lw._terminate(f"ret i64 {int(op.args[0])}")


@_rule("goto_tb")
def _goto_tb(lw: Lowering, op: Op) -> None:
    n, dest = op.args
    region = lw._st.region
    if region is not None:
        if dest in region.members:  # a branch inside the region
            lw._terminate(f"br label %{region.members[dest]}")
            return
        slot = f"@{_q(slot_symbol(region.name, region.exit_slot(dest)))}"
    else:
        slot = f"@{_q(slot_symbol(lw._st.block.name, n))}"
    target = lw._val(f"load atomic ptr, ptr {slot} monotonic, align 8")
    linked = lw._val(f"icmp ne ptr {target}, null")
    k = lw._n()
    lw._emit(f"br i1 {linked}, label %chain{k}, label %unchained{k}")
    lw._new_block(f"chain{k}")
    if region is not None:
        lw._region_tail(target)
    else:
        _tail_call(lw, target)
    lw._new_block(f"unchained{k}")
    lw.store_field("pc", I64, str(_signed(dest, 64)))
    addr = lw._val(f"ptrtoint ptr {slot} to i64")
    value = lw._val(f"or i64 {addr}, {int(ExitReason.CHAIN)}")
    if region is not None:
        lw._region_ret(value)
    else:
        lw._terminate(f"ret i64 {value}")


def _tail_call(lw: Lowering, target: str) -> None:
    r = lw._val(f"musttail call i64 {target}(ptr noalias %cpu, ptr %mem){lw.call_attrs}")
    lw._terminate(f"ret i64 {r}")


@_rule("lookup_and_goto_ptr")
def _lookup_and_goto_ptr(lw: Lowering, op: Op) -> None:
    pc = lw.load_field("pc")
    region = lw._st.region
    if region is None and lw.hot_threshold:  # profile the target for hot regions
        i = lw._val(f"and i32 %hc.n, {INDIRECT_TARGETS - 1}")
        cell = lw._val(f"getelementptr i64, ptr @{_q(target_symbol(lw._st.block.name))}, "
                       f"i32 {i}")
        lw._emit(f"store i64 {pc}, ptr {cell}, align 8")
    if region is not None and region.indirect:
        k = lw._n()
        cases = " ".join(f"i64 {_signed(p, 64)}, label %{label}"
                         for p, label in region.indirect.items())
        lw._emit(f"switch i64 {pc}, label %jc{k} [ {cases} ]")
        lw._new_block(f"jc{k}")
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
    if lw._st.region is not None:
        lw._region_tail(fn)
        lw._new_block(f"jc_miss{k}")
        lw._region_ret(str(int(ExitReason.LOOKUP)))
        return
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


def _inline_probe(lw: Lowering, addr: str, memop: MemOp, mmu_idx: int, kind: str,
                  slow: str) -> tuple[str, str | None]:
    """(hit i1, TLB entry or None) for an inline access; see :func:`_host_pointer`.
    May branch to label ``slow`` itself before computing ``hit``."""
    if lw.flat_memory:
        return _page_flags_ok(lw, addr, memop, kind, slow), None
    which = abi.TLB_ADDR_READ if kind == "ld" else abi.TLB_ADDR_WRITE
    return _tlb_probe(lw, addr, memop, mmu_idx, which)


def _page_flags_ok(lw: Lowering, addr: str, memop: MemOp, kind: str, slow: str) -> str:
    """Whether guest RAM at ``addr`` can be accessed directly: inside the guest space
    and naturally aligned (so on one page; misaligned accesses take the accessor,
    which handles them) — else a branch to ``slow`` — and, as the returned i1, the
    page has the permission and no reason for the slow path (MMIO; translated code on
    the page, for stores and atomics).

    ``page_count`` is a power of two (GuestMemory), so the first test is one AND of
    the address with ``~(page_count * PAGE_SIZE - 1) | alignment mask``."""
    if lw._st.region is not None:
        # Fixed for the CPU's lifetime: computed once, in the region's entry (LLVM
        # cannot hoist the loads itself past the guest stores in between).
        lw._st.region.uses_page_table = True
        table, outside = "%pt.table", "%pt.outside"
    else:
        lines, table, outside = _page_table_ir(lw.load_field("page_table"),
                                               lw.load_field("page_count"), f"%pt{lw._n()}.")
        for line in lines:
            lw._emit(line)
    align_log2 = max(memop.align_log2, memop.size_log2)
    mask = outside
    if align_log2:
        mask = lw._val(f"or i64 {outside}, {(1 << align_log2) - 1}")
    bad = lw._val(f"and i64 {addr}, {mask}")
    inside = lw._val(f"icmp eq i64 {bad}, 0")
    k = lw._n()
    lw._emit(f"br i1 {inside}, label %pf{k}, label %{slow}{LIKELY}")
    lw._new_block(f"pf{k}")
    page_index = lw._val(f"lshr i64 {addr}, {abi.PAGE_BITS}")
    flag_ptr = lw._val(f"getelementptr i8, ptr {table}, i64 {page_index}")
    flags = lw._val(f"load i8, ptr {flag_ptr}, align 1")
    needed = _PAGE_OK_BITS[kind]
    masked = lw._val(f"and i8 {flags}, {needed}")
    return lw._val(f"icmp eq i8 {masked}, {needed}")


# The derived page-table bits (kept by GuestMemory) that say "plain RAM with the
# permission this access needs" (loads; stores and atomics: also no translated code).
_PAGE_OK_BITS = {"ld": abi.PAGE_LOAD_OK, "st": abi.PAGE_STORE_OK,
                 "at": abi.PAGE_LOAD_OK | abi.PAGE_STORE_OK}


def _page_table_ir(table: str, count: str, prefix: str) -> tuple[list[str], str, str]:
    """Instructions turning the page_table and page_count fields' values into the
    table pointer and ``~(count * PAGE_SIZE - 1)`` (the address bits that are 0
    everywhere inside a guest space of ``count`` pages, a power of two), named with
    ``prefix``; returns (instructions, table pointer, outside mask)."""
    lines = [f"{prefix}table = inttoptr i64 {table} to ptr",
             f"{prefix}size = shl i64 {count}, {abi.PAGE_BITS}",
             f"{prefix}limit = add i64 {prefix}size, -1",
             f"{prefix}outside = xor i64 {prefix}limit, -1"]
    return lines, f"{prefix}table", f"{prefix}outside"


def _host_pointer(lw: Lowering, addr: str, entry: str | None) -> str:
    if entry is None:  # flat memory: guest RAM is identity-mapped from %mem
        return lw._val(f"getelementptr i8, ptr %mem, i64 {addr}")
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


def accessor_name(kind: str, memop: MemOp, mmu_idx: int, on_miss: bool = False) -> str:
    """The accessor's symbol. ``on_miss``: the variant inline probes call on a TLB miss,
    with LLVM's preserve_all calling convention: the caller's registers survive the
    (cold) call, so hot code around it keeps guest registers in host registers instead
    of spilling them for a call that hardly ever happens."""
    return f"llvmtcg_{kind}_{memop.encode():02x}_{mmu_idx}{'_pa' if on_miss else ''}"


def _parse_accessor_name(name: str) -> tuple[str, MemOp, int, bool]:
    _, kind, bits, mmu, *pa = name.split("_")
    return kind, MemOp.decode(int(bits, 16)), int(mmu), bool(pa)


def _accessor_cc(name: str) -> str:
    return "preserve_allcc " if _parse_accessor_name(name)[3] else ""


def _accessor_declaration(name: str) -> str:
    ret, params = _ACCESSOR_SIGNATURES[_parse_accessor_name(name)[0]]
    types = ", ".join(p.split()[0] for p in params.split(", "))
    return f"declare {_accessor_cc(name)}{ret} @{name}({types}) nounwind"


def _branch_on_ok(lw: Lowering, ok: str) -> None:
    cont = f"ok{lw._n()}"
    lw._emit(f"br i1 {ok}, label %{cont}, label %{lw.fault_label()}{LIKELY}")
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
    needed = _PAGE_OK_BITS[kind]
    masked = lw._val(f"and i64 {flags}, {needed}")
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
        status = lw._val(host_abi.call(host_abi.SLOW_LOAD, ["%addr", str(oi)]))
    elif kind == "st":
        status = lw._val(host_abi.call(host_abi.SLOW_STORE, ["%addr", "%value", str(oi)]))
    else:
        status = lw._val(host_abi.call(host_abi.SLOW_PROBE, ["%addr", str(oi)]))
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
        value = _accessor_load(lw, memop, mmu_idx, addr)
        if t is I32:
            value = lw._val(f"trunc i64 {value} to i32")
        lw.write(dst, value)
        return
    k = lw._n()
    hit, entry = _inline_probe(lw, addr, memop, mmu_idx, "ld", f"ld_slow{k}")
    lw._emit(f"br i1 {hit}, label %ld_fast{k}, label %ld_slow{k}{LIKELY}")
    lw._new_block(f"ld_fast{k}")
    ptr = _host_pointer(lw, addr, entry)
    raw = lw._val(f"load i{memop.bits}, ptr {ptr}, align 1")
    if memop.big_endian and memop.bits > 8:
        raw = _bswap_value(lw, raw, memop.bits)
    if memop.bits < t.bits:
        raw = lw._val(f"{'sext' if memop.signed else 'zext'} i{memop.bits} {raw} to {t}")
    lw._emit(f"br label %ld_done{k}")
    lw._new_block(f"ld_slow{k}")
    # A miss calls the shared accessor: it refills the TLB natively when it can, else
    # takes the Python slow path; the value comes back extended to 64 bits.
    slow = _accessor_load(lw, memop, mmu_idx, addr, on_miss=True)
    if t is I32:
        slow = lw._val(f"trunc i64 {slow} to i32")
    slow_block = lw._st.current
    lw._emit(f"br label %ld_done{k}")
    lw._new_block(f"ld_done{k}")
    value = lw._val(f"phi {t} [ {raw}, %ld_fast{k} ], [ {slow}, %{slow_block} ]")
    lw.write(dst, value)


def _accessor_load(lw: Lowering, memop: MemOp, mmu_idx: int, addr: str,
                   on_miss: bool = False) -> str:
    """Call the accessor for a load; leave through the fault exit if it fails."""
    name = accessor_name("ld", memop, mmu_idx, on_miss)
    lw.accessors_used.add(name)
    pair = lw._val(f"call {_accessor_cc(name)}{{ i64, i1 }} @{name}(ptr %cpu, ptr %mem, "
                   f"i64 {addr}){lw.call_attrs}")
    _branch_on_ok(lw, lw._val(f"extractvalue {{ i64, i1 }} {pair}, 1"))
    return lw._val(f"extractvalue {{ i64, i1 }} {pair}, 0")


def _accessor_store(lw: Lowering, memop: MemOp, mmu_idx: int, addr: str, value: str,
                    type_: IRType, on_miss: bool = False) -> None:
    name = accessor_name("st", memop, mmu_idx, on_miss)
    lw.accessors_used.add(name)
    wide = value if type_ is I64 else lw._val(f"zext i32 {value} to i64")
    ok = lw._val(f"call {_accessor_cc(name)}i1 @{name}(ptr %cpu, ptr %mem, i64 {addr}, "
                 f"i64 {wide}){lw.call_attrs}")
    _branch_on_ok(lw, ok)


def _accessor_atomic(lw: Lowering, memop: MemOp, mmu_idx: int, addr: str,
                     on_miss: bool = False) -> str:
    name = accessor_name("at", memop, mmu_idx, on_miss)
    lw.accessors_used.add(name)
    pair = lw._val(f"call {_accessor_cc(name)}{{ ptr, i1 }} @{name}(ptr %cpu, ptr %mem, "
                   f"i64 {addr}){lw.call_attrs}")
    _branch_on_ok(lw, lw._val(f"extractvalue {{ ptr, i1 }} {pair}, 1"))
    return lw._val(f"extractvalue {{ ptr, i1 }} {pair}, 0")


@_rule("qemu_st")
def _qemu_st(lw: Lowering, op: Op) -> None:
    src, addr_temp = op.inputs
    memop, mmu_idx = op.args
    value = lw.read(src)
    addr = lw.read(addr_temp)
    if not lw.inline_memory:
        _accessor_store(lw, memop, mmu_idx, addr, value, src.type)
        return
    k = lw._n()
    hit, entry = _inline_probe(lw, addr, memop, mmu_idx, "st", f"st_slow{k}")
    lw._emit(f"br i1 {hit}, label %st_fast{k}, label %st_slow{k}{LIKELY}")
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
    _accessor_store(lw, memop, mmu_idx, addr, value, src.type, on_miss=True)
    lw._emit(f"br label %st_done{k}")
    lw._new_block(f"st_done{k}")


def _atomic_pointer(lw: Lowering, addr: str, memop: MemOp, mmu_idx: int) -> str:
    """The host address of an atomic access: inline TLB hit, or the accessor, which
    fills the entry (natively or through the slow path's probe) or faults.

    Only the address comes back, never the access itself, so the operation is always
    one host atomic instruction.
    """
    if not lw.inline_memory:
        return _accessor_atomic(lw, memop, mmu_idx, addr)
    k = lw._n()
    hit, entry = _inline_probe(lw, addr, memop, mmu_idx, "at", f"at_slow{k}")
    lw._emit(f"br i1 {hit}, label %at_fast{k}, label %at_slow{k}{LIKELY}")
    lw._new_block(f"at_fast{k}")
    fast = _host_pointer(lw, addr, entry)
    lw._emit(f"br label %at_go{k}")
    lw._new_block(f"at_slow{k}")
    slow = _accessor_atomic(lw, memop, mmu_idx, addr, on_miss=True)
    slow_block = lw._st.current
    lw._emit(f"br label %at_go{k}")
    lw._new_block(f"at_go{k}")
    return lw._val(f"phi ptr [ {fast}, %at_fast{k} ], [ {slow}, %{slow_block} ]")


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
    takes_cpu = bool(decl.flags & HelperFlag.TAKES_CPU)
    if takes_cpu:
        args.append(f"ptr {decl.cpu_param_attributes()} %cpu".replace("  ", " "))
    args += [f"{t.type} {lw.read(t)}" for t in op.inputs]
    call = f"call {decl.ret or 'void'} @{decl.symbol}({', '.join(args)}){lw.call_attrs}"
    in_region = lw._st.region is not None and takes_cpu
    if in_region:  # the helper sees (and may change) the guest's registers
        lw._region_sync_out()
    result = lw._val(call) if op.outputs else None
    if result is None:
        lw._emit(call)
    if in_region and not decl.flags & HelperFlag.NO_WRITE_GLOBALS:
        lw._region_sync_in()
    if result is not None:
        lw.write(op.outputs[0], result)
    if decl.flags & HelperFlag.MAY_RAISE:
        status = lw.load_field("helper_status", I32)
        lw.branch_on_status(lw._val(f"zext i32 {status} to i64"))


# The float rules register themselves in _LOWER.
from llvmtcg.ir import lower_float  # noqa: E402, F401, I001
