"""The emitter: the API lowering rules write LLVM IR text through.

One :class:`Emitter` holds one LLVM function while it is written. A rule (see
``rule.py``) gets the emitter and one IR op and appends instructions; it never sees
which function shape it is writing (a cheap-tier block, a hot region, an accessor):
everything that differs between shapes — where CPU-state fields live, how the
function is left — is a method the shape overrides (``block_function.py``,
``region_function.py``, ``accessor_function.py``).

The API, by group:

* text: :meth:`~Emitter.emit` one instruction, :meth:`~Emitter.value` one instruction
  whose result is a fresh ``%vN`` (returned), :meth:`~Emitter.fresh` a number unique in
  the function for labels (``f"next{em.fresh()}"``), :meth:`~Emitter.new_block` and
  :meth:`~Emitter.terminate`; :attr:`~Emitter.current_block` is the basic block being
  written (for phis), :attr:`~Emitter.terminated` whether it has ended,
  :attr:`~Emitter.call_attrs` the call-site attributes every call must carry;
* operands: :meth:`~Emitter.read` the value of a temp or constant,
  :meth:`~Emitter.write` a temp, :meth:`~Emitter.label` an IR label's LLVM name;
* CPU state: :meth:`~Emitter.field_ptr`, :meth:`~Emitter.load_field`,
  :meth:`~Emitter.store_field`, :meth:`~Emitter.mxcsr_scratch`;
* the function's exits (all return the exit value of ``ir.ops.ExitReason`` to the run
  loop, or jump to other translated code): :meth:`~Emitter.fault_label` /
  :meth:`~Emitter.branch_on_status` / :meth:`~Emitter.branch_on_ok` (a fault in the
  current guest instruction), :meth:`~Emitter.return_to_loop`,
  :meth:`~Emitter.tail_jump`, and for ``goto_tb`` / ``lookup_and_goto_ptr``:
  :meth:`~Emitter.branch_target`, :meth:`~Emitter.exit_slot`,
  :attr:`~Emitter.indirect_entries`, :meth:`~Emitter.profile_indirect_target`;
* calls out of the function: :meth:`~Emitter.helper` (a declaration),
  :meth:`~Emitter.flush_globals` / :meth:`~Emitter.reload_globals` around a helper
  that sees the CPU state, :meth:`~Emitter.use_accessor`,
  :attr:`~Emitter.cold_calls_preserve_all`;
* guest memory: :meth:`~Emitter.page_table_view` (flat-memory checks).

Value names (``%vN``), label numbers and the order of emitted lines are part of the
output: the golden tests in ``tests/ir/lowering`` pin them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from llvmtcg.ir.block import Block
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.ir.helper_decl import HelperDecl
from llvmtcg.ir.types import I64, V128, IRType, Label, Temp, TempKind, to_signed


class LoweringError(Exception):
    """An op the lowering cannot express (unknown helper, unknown opcode)."""


# Branch weights for the paths code almost always takes (a TLB hit, no fault, no exit
# request): LLVM lays out and allocates registers for the hot path first.
LIKELY = ', !prof !{!"branch_weights", i32 2000, i32 1}'
UNLIKELY = ', !prof !{!"branch_weights", i32 1, i32 2000}'


@dataclass(frozen=True, slots=True)
class LoweringOptions:
    """What every function of one :class:`~llvmtcg.ir.lower.Lowering` is lowered
    against (the arguments of its constructor, documented there)."""

    layout: CpuLayout
    helpers: Mapping[str, HelperDecl]
    count_insns: bool = False
    inline_memory: bool = True
    hot_threshold: int = 0
    flat_memory: bool = False


class Emitter:
    """One LLVM function being written (see the module docstring for the API).

    Args:
        options: the lowering's options (layout, helpers, memory forms).
        block: the guest block whose ops are being lowered (a region changes it per
            member; an accessor has a placeholder).
        accessors_used: where the names of memory accessors the function calls are
            collected (the lowering declares them and the runtime links them).
        strictfp: the function has float ops: every call in it must be ``strictfp``.
    """

    __slots__ = ("options", "layout", "block", "lines", "terminated", "current_block",
                 "insn_pc", "prefix", "strictfp", "call_attrs", "accessors_used",
                 "fault_pcs", "field_ptrs", "uses_mxcsr", "_counter")

    # Cold calls (slow paths, soft-float) use LLVM's preserve_all convention, so the
    # caller keeps its values in registers across them (hot regions).
    cold_calls_preserve_all = False

    def __init__(self, options: LoweringOptions, block: Block, accessors_used: set[str],
                 strictfp: bool = False) -> None:
        self.options = options
        self.layout = options.layout
        self.block = block
        self.lines: list[str] = []
        self.terminated = False
        self.current_block = "entry"
        self.insn_pc = 0  # the guest instruction being lowered (insn_start): faults report it
        self.prefix = ""  # prefix of label and local names (unique per member of a region)
        self.strictfp = strictfp
        self.call_attrs = " strictfp" if strictfp else ""
        self.accessors_used = accessors_used
        self.fault_pcs: dict[str, int] = {}  # fault exit label -> guest pc it reports
        self.field_ptrs: dict[int, str] = {}  # CPU-state offset -> pointer made in entry
        self.uses_mxcsr = False  # the function needs the %mxcsr.p scratch slot
        self._counter = 0

    # -- text ------------------------------------------------------------------------------
    def fresh(self) -> int:
        """A number not used before in this function (value names, labels)."""
        self._counter += 1
        return self._counter

    def emit(self, text: str) -> None:
        """Append one instruction to the current basic block."""
        self.lines.append("  " + text)

    def value(self, expr: str) -> str:
        """Emit ``%vN = expr`` and return ``%vN``."""
        self._counter += 1
        name = f"%v{self._counter}"
        self.lines.append(f"  {name} = {expr}")
        return name

    def new_block(self, label: str) -> None:
        """Start the basic block ``label`` (the previous one must have ended)."""
        self.lines.append(f"{label}:")
        self.terminated = False
        self.current_block = label

    def terminate(self, text: str) -> None:
        """Emit the terminator of the current basic block."""
        self.lines.append("  " + text)
        self.terminated = True

    def label(self, label: Label) -> str:
        """The LLVM name (without ``%``) of an IR label."""
        return f"{self.prefix}L{label.index}"

    # -- operands --------------------------------------------------------------------------
    def read(self, t: Temp) -> str:
        """The value of ``t``: a literal for a constant, else a load."""
        kind = t.kind
        if kind is TempKind.CONST:
            if t.type is V128:
                raise LoweringError(f"a v128 constant ({t}): vectors are built with vdup")
            return str(to_signed(t.value, t.type.bits))
        if kind is TempKind.LOCAL:
            return self.value(f"load {t.type.llvm}, ptr %{self.prefix}{t.name}, align 8")
        ptr = self.field_ptr(t.offset)
        return self.value(f"load {t.type.llvm}, ptr {ptr}, align {t.type.align}")

    def write(self, t: Temp, value: str) -> None:
        """Store ``value`` (of ``t``'s type) into the temp ``t``."""
        if t.kind is TempKind.LOCAL:
            self.lines.append(f"  store {t.type.llvm} {value}, ptr %{self.prefix}{t.name}, "
                              "align 8")
            return
        ptr = self.field_ptr(t.offset)
        self.lines.append(f"  store {t.type.llvm} {value}, ptr {ptr}, align {t.type.align}")

    # -- CPU state -------------------------------------------------------------------------
    def state_ptr(self, offset: int) -> str:
        """A pointer to the CPU-state field at ``offset`` itself, computed once in the
        function's entry block."""
        ptr = self.field_ptrs.get(offset)
        if ptr is None:
            ptr = self.field_ptrs[offset] = f"%fp{offset}"
        return ptr

    # Where a rule reads and writes a field: the field itself, except in a region,
    # which keeps the fields it shadows in allocas.
    field_ptr = state_ptr

    def load_field(self, name: str, type_: IRType = I64) -> str:
        """Load the CPU-state field ``name``."""
        ptr = self.field_ptr(self.layout.offset(name))
        return self.value(f"load {type_}, ptr {ptr}, align {type_.bits // 8}")

    def store_field(self, name: str, type_: IRType, value: str) -> None:
        """Store ``value`` into the CPU-state field ``name``."""
        ptr = self.field_ptr(self.layout.offset(name))
        self.emit(f"store {type_} {value}, ptr {ptr}, align {type_.bits // 8}")

    def mxcsr_scratch(self) -> str:
        """A 4-byte slot (allocated in the entry block) for ``stmxcsr``/``ldmxcsr``."""
        self.uses_mxcsr = True
        return "%mxcsr.p"

    # -- faults ------------------------------------------------------------------------------
    def fault_label(self) -> str:
        """The exit for a fault in the current guest instruction (shared per insn): it
        stores the instruction's pc and returns EXCEPTION."""
        label = f"fault.{self.insn_pc:x}"
        self.fault_pcs[label] = self.insn_pc
        return label

    def branch_on_status(self, status: str) -> None:
        """Continue if the slow-path or helper status (i64) is 0, else take the fault
        exit."""
        bad = self.value(f"icmp ne i64 {status}, 0")
        ok = f"ok{self.fresh()}"
        self.emit(f"br i1 {bad}, label %{self.fault_label()}, label %{ok}{UNLIKELY}")
        self.new_block(ok)

    def branch_on_ok(self, ok: str) -> None:
        """Continue if ``ok`` (i1) is true, else take the fault exit."""
        cont = f"ok{self.fresh()}"
        self.emit(f"br i1 {ok}, label %{cont}, label %{self.fault_label()}{LIKELY}")
        self.new_block(cont)

    # -- leaving the function (each shape implements these) -----------------------------------
    def return_to_loop(self, value: str) -> None:
        """End the current basic block by returning the exit value ``value`` (i64) to
        the run loop, with the guest state in the CPU state."""
        raise LoweringError(f"{type(self).__name__} has no guest exits")

    def tail_jump(self, target: str) -> None:
        """End the current basic block by tail-calling the translated code at
        ``target`` (a ptr), with the guest state in the CPU state."""
        raise LoweringError(f"{type(self).__name__} has no guest exits")

    def chain_jump(self, target: str) -> None:
        """End the current basic block by jumping through a linked exit slot's value
        ``target`` (a ptr); the baseline tier encodes slots its own way."""
        self.tail_jump(target)

    def branch_target(self, dest: int) -> str | None:
        """The label of the guest code at ``dest`` if it is part of this function (a
        region member), else None."""
        return None

    def exit_slot(self, n: int, dest: int) -> str:
        """The global (``@name``) holding the target of direct exit ``n`` to guest pc
        ``dest``."""
        raise LoweringError(f"{type(self).__name__} has no guest exits")

    # Members of this function an indirect jump branches to directly: guest pc -> label.
    indirect_entries: Mapping[int, str] = {}

    def profile_indirect_target(self, pc: str) -> None:
        """Record ``pc`` (i64), the target of an indirect jump, if the function
        profiles them (cheap-tier blocks with execution counters)."""

    def musttail_return(self, target: str) -> None:
        """``musttail`` call the translated code at ``target`` and return its result."""
        r = self.value(f"musttail call i64 {target}(ptr noalias %cpu, ptr %mem){self.call_attrs}")
        self.terminate(f"ret i64 {r}")

    # -- calls ---------------------------------------------------------------------------------
    def helper(self, name: str) -> HelperDecl:
        """The declaration of helper ``name``."""
        try:
            return self.options.helpers[name]
        except KeyError:
            raise LoweringError(f"call to undeclared helper {name!r}") from None

    def flush_globals(self) -> None:
        """Make the CPU state current before a helper that reads it (a region writes
        back the registers it keeps in SSA; a block keeps none)."""

    def reload_globals(self) -> None:
        """Reload what the function keeps of the CPU state after a helper wrote it."""

    def use_accessor(self, name: str) -> None:
        """Record a call to the memory accessor ``name`` (declared, then linked)."""
        self.accessors_used.add(name)

    # -- guest memory ------------------------------------------------------------------------
    def page_table_view(self) -> tuple[str, str]:
        """(page-flag table pointer, outside mask) for a flat-memory check; see
        ``memory.page_table_ir``."""
        raise LoweringError(f"{type(self).__name__} has no flat-memory checks")
