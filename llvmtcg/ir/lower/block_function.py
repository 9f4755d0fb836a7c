"""The cheap-tier function shape: one guest block as
``define i64 @tb_<pc>(ptr noalias %cpu, ptr %mem)``.

The entry block computes the CPU-state field pointers the body uses, checks
``exit_request`` (returning REQUESTED with ``pc`` set to the block's own pc), counts
down the execution counter to the HOT exit (with tiering) and adds the block's
instruction count (with ``count_insns``). Globals are loads and stores of CPU-state
fields (``%cpu`` is ``noalias``, so LLVM keeps them in SSA between guest memory
accesses); locals are allocas that SROA promotes. Exits return to the run loop or
``musttail`` into the next block; faults leave through one exit per guest instruction
that stores its pc and returns EXCEPTION.
"""

from __future__ import annotations

from llvmtcg.ir.block import Block
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.ir.lower.emitter import Emitter, LoweringOptions
from llvmtcg.ir.lower.memory import load_page_table_view
from llvmtcg.ir.lower.symbols import (
    INDIRECT_TARGETS,
    counter_symbol,
    has_indirect_exit,
    quote,
    slot_symbol,
    target_symbol,
)
from llvmtcg.ir.lower.table import lower_ops
from llvmtcg.ir.ops import ExitReason
from llvmtcg.ir.types import to_signed


class BlockFunction(Emitter):
    """The emitter of a cheap-tier block: exits are ``ret`` and ``musttail``."""

    __slots__ = ()

    def return_to_loop(self, value: str) -> None:
        self.terminate(f"ret i64 {value}")

    def tail_jump(self, target: str) -> None:
        self.musttail_return(target)

    def exit_slot(self, n: int, dest: int) -> str:
        return f"@{quote(slot_symbol(self.block.name, n))}"

    def profile_indirect_target(self, pc: str) -> None:
        if self.options.hot_threshold:  # hot regions include the targets seen here
            i = self.value(f"and i32 %hc.n, {INDIRECT_TARGETS - 1}")
            cell = self.value(f"getelementptr i64, ptr @{quote(target_symbol(self.block.name))}, "
                              f"i32 {i}")
            self.emit(f"store i64 {pc}, ptr {cell}, align 8")

    def page_table_view(self) -> tuple[str, str]:
        return load_page_table_view(self)


def block_globals(block: Block, hot_threshold: int) -> list[str]:
    """Definitions of the module globals a block's function uses: its exit slots, and
    with tiering its execution counter and indirect-target profile."""
    out = []
    for n in sorted({op.args[0] for op in block.ops if op.name == "goto_tb"}):
        out.append(f"@{quote(slot_symbol(block.name, n))} = global ptr null, align 8")
    if hot_threshold:
        out.append(f"@{quote(counter_symbol(block.name))} = global i32 "
                   f"{hot_threshold}, align 4")
        if has_indirect_exit(block):
            cells = ", ".join(["i64 -1"] * INDIRECT_TARGETS)
            out.append(f"@{quote(target_symbol(block.name))} = global "
                       f"[{INDIRECT_TARGETS} x i64] [{cells}], align 8")
    return out


def _store_pc_lines(layout: CpuLayout, pc: int, tag: str) -> list[str]:
    return [f"  %{tag}.pcp = getelementptr i8, ptr %cpu, i64 {layout.offset('pc')}",
            f"  store i64 {to_signed(pc, 64)}, ptr %{tag}.pcp, align 8"]


def lower_block_function(options: LoweringOptions, block: Block,
                         accessors_used: set[str]) -> str:
    """The LLVM function of ``block`` (memory accessors it calls are added to
    ``accessors_used``)."""
    strictfp = any(op.definition.is_float for op in block.ops)
    em = BlockFunction(options, block, accessors_used, strictfp)
    lower_ops(em, block)
    layout = options.layout
    attrs = "nounwind strictfp" if strictfp else "nounwind"
    head = [f"define i64 @{quote(block.name)}(ptr noalias %cpu, ptr %mem) {attrs} {{", "entry:"]
    for t in block.locals:
        head.append(f"  %{t.name} = alloca {t.type.llvm}, align 8")
    if em.uses_mxcsr:
        head.append("  %mxcsr.p = alloca i32, align 4")
    for offset, ptr in em.field_ptrs.items():
        head.append(f"  {ptr} = getelementptr i8, ptr %cpu, i64 {offset}")
    er = layout.offset("exit_request")
    head += [
        f"  %er.p = getelementptr i8, ptr %cpu, i64 {er}",
        "  %er = load atomic i32, ptr %er.p monotonic, align 4",
        "  %er.set = icmp ne i32 %er, 0",
        "  br i1 %er.set, label %exit_requested, label %body",
        "exit_requested:",
        *_store_pc_lines(layout, block.pc, "er"),
        f"  ret i64 {int(ExitReason.REQUESTED)}",
        "body:",
    ]
    if options.hot_threshold:
        counter = f"@{quote(counter_symbol(block.name))}"
        head += [f"  %hc = load i32, ptr {counter}, align 4",
                 "  %hc.n = add i32 %hc, -1",
                 f"  store i32 %hc.n, ptr {counter}, align 4",
                 "  %hc.z = icmp eq i32 %hc.n, 0",
                 "  br i1 %hc.z, label %hot, label %counted",
                 "hot:",
                 *_store_pc_lines(layout, block.pc, "hot"),
                 f"  ret i64 {int(ExitReason.HOT)}",
                 "counted:"]
    if options.count_insns and block.n_insns:
        ic = layout.offset("insn_count")
        head += [f"  %ic.p = getelementptr i8, ptr %cpu, i64 {ic}",
                 "  %ic = load i64, ptr %ic.p, align 8",
                 f"  %ic.new = add i64 %ic, {block.n_insns}",
                 "  store i64 %ic.new, ptr %ic.p, align 8"]
    tail: list[str] = []
    for label, pc in em.fault_pcs.items():
        tail += [f"{label}:", *_store_pc_lines(layout, pc, label),
                 f"  ret i64 {int(ExitReason.EXCEPTION)}"]
    return "\n".join(head + em.lines + tail) + "\n}\n"
