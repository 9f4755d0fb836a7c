"""Rules for control flow: labels and branches inside a block, guest instruction
boundaries, block exits (``exit_tb``, ``goto_tb``, ``lookup_and_goto_ptr``) and helper
calls.

Exits go through the emitter's exit paths, so the same rule serves a cheap-tier block
(``ret`` / ``musttail``) and a hot region (write back its registers first, or branch
to a member of the region).
"""

from __future__ import annotations

from llvmtcg.ir import cpu_layout as abi
from llvmtcg.ir import host_abi
from llvmtcg.ir.block import Op
from llvmtcg.ir.helper_decl import HelperFlag
from llvmtcg.ir.lower.emitter import Emitter, LoweringError
from llvmtcg.ir.lower.integer import compare
from llvmtcg.ir.lower.rule import RuleSet
from llvmtcg.ir.ops import ExitReason
from llvmtcg.ir.types import I32, I64, to_signed

RULES = RuleSet("control")
rule = RULES.rule


@rule("set_label")
def _set_label(em: Emitter, op: Op) -> None:
    if not em.terminated:
        em.emit(f"br label %{em.label(op.args[0])}")
    em.new_block(em.label(op.args[0]))


@rule("br")
def _br(em: Emitter, op: Op) -> None:
    em.terminate(f"br label %{em.label(op.args[0])}")


@rule("brcond")
def _brcond(em: Emitter, op: Op) -> None:
    cond, label = op.args
    c = compare(em, cond, *op.inputs)
    fallthrough = f"next{em.fresh()}"
    em.emit(f"br i1 {c}, label %{em.label(label)}, label %{fallthrough}")
    em.new_block(fallthrough)


@rule("insn_start")
def _insn_start(em: Emitter, op: Op) -> None:
    em.insn_pc = op.args[0]


@rule("exit_tb")
def _exit_tb(em: Emitter, op: Op) -> None:
    em.return_to_loop(str(int(op.args[0])))


@rule("goto_tb")
def _goto_tb(em: Emitter, op: Op) -> None:
    # Linked: tail-call the target through the exit slot. Not linked: set pc and return
    # the slot's address | CHAIN, so the run loop links it.
    n, dest = op.args
    member = em.branch_target(dest)
    if member is not None:  # a branch inside the function (region)
        em.terminate(f"br label %{member}")
        return
    slot = em.exit_slot(n, dest)
    target = em.value(f"load atomic ptr, ptr {slot} monotonic, align 8")
    linked = em.value(f"icmp ne ptr {target}, null")
    k = em.fresh()
    em.emit(f"br i1 {linked}, label %chain{k}, label %unchained{k}")
    em.new_block(f"chain{k}")
    em.chain_jump(target)
    em.new_block(f"unchained{k}")
    em.store_field("pc", I64, str(to_signed(dest, 64)))
    addr = em.value(f"ptrtoint ptr {slot} to i64")
    em.return_to_loop(em.value(f"or i64 {addr}, {int(ExitReason.CHAIN)}"))


@rule("lookup_and_goto_ptr")
def _lookup_and_goto_ptr(em: Emitter, op: Op) -> None:
    # Members of the function first (a region's head and call returns), then the jump
    # cache: {guest_pc, host_fn, tb_flags} entries indexed like abi.jmp_cache_index.
    pc = em.load_field("pc")
    em.profile_indirect_target(pc)
    entries = em.indirect_entries
    if entries:
        k = em.fresh()
        cases = " ".join(f"i64 {to_signed(p, 64)}, label %{label}"
                         for p, label in entries.items())
        em.emit(f"switch i64 {pc}, label %jc{k} [ {cases} ]")
        em.new_block(f"jc{k}")
    index = em.value(f"and i64 {em.value(f'lshr i64 {pc}, 1')}, {(1 << abi.JMP_CACHE_BITS) - 1}")
    offset = em.value(f"mul i64 {index}, {abi.JMP_CACHE_ENTRY_SIZE}")
    cache = em.value(f"inttoptr i64 {em.load_field('jmp_cache')} to ptr")
    entry = em.value(f"getelementptr i8, ptr {cache}, i64 {offset}")
    entry_pc = em.value(f"load i64, ptr {entry}, align 8")
    fn_ptr = em.value(f"getelementptr i8, ptr {entry}, i64 {abi.JMP_CACHE_FN}")
    fn = em.value(f"load ptr, ptr {fn_ptr}, align 8")
    # An entry is for (pc, tb_flags): code translated under other flags must not run.
    flags_ptr = em.value(f"getelementptr i8, ptr {entry}, i64 {abi.JMP_CACHE_FLAGS}")
    entry_flags = em.value(f"load i64, ptr {flags_ptr}, align 8")
    pc_hit = em.value(f"icmp eq i64 {entry_pc}, {pc}")
    flags = em.load_field("tb_flags")
    flags_hit = em.value(f"icmp eq i64 {entry_flags}, {flags}")
    hit = em.value(f"and i1 {pc_hit}, {flags_hit}")
    k = em.fresh()
    em.emit(f"br i1 {hit}, label %jc_hit{k}, label %jc_miss{k}")
    em.new_block(f"jc_hit{k}")
    em.tail_jump(fn)
    # A jump cache miss probes the native table of every translated block (which
    # refills the jump cache); only code not found there is Python's (LOOKUP).
    em.new_block(f"jc_miss{k}")
    found = em.value(host_abi.call(host_abi.TB_LOOKUP, [pc, flags], em.call_attrs))
    translated = em.value(f"icmp ne ptr {found}, null")
    em.emit(f"br i1 {translated}, label %tt_hit{k}, label %tt_miss{k}")
    em.new_block(f"tt_hit{k}")
    em.tail_jump(found)
    em.new_block(f"tt_miss{k}")
    em.return_to_loop(str(int(ExitReason.LOOKUP)))


@rule("call")
def _call(em: Emitter, op: Op) -> None:
    # The effect flags decide what is spilled: a helper without TAKES_CPU sees no guest
    # register; NO_WRITE_GLOBALS spares the reload; MAY_RAISE adds a status check.
    decl = em.helper(op.args[0])
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
    args += [f"{t.type} {em.read(t)}" for t in op.inputs]
    call = f"call {decl.ret or 'void'} @{decl.symbol}({', '.join(args)}){em.call_attrs}"
    if takes_cpu:  # the helper sees (and may change) the guest's registers
        em.flush_globals()
    result = em.value(call) if op.outputs else None
    if result is None:
        em.emit(call)
    if takes_cpu and not decl.flags & HelperFlag.NO_WRITE_GLOBALS:
        em.reload_globals()
    if result is not None:
        em.write(op.outputs[0], result)
    if decl.flags & HelperFlag.MAY_RAISE:
        status = em.load_field("helper_status", I32)
        em.branch_on_status(em.value(f"zext i32 {status} to i64"))
