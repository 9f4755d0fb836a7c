"""The baseline tier (copy-and-patch blocks) as the default first tier: chaining in
constant stack, mixing with LLVM code, arena exhaustion, W^X while code runs, the
stencil library's persistence and ``-d out_asm``.

The op semantics (tests/core/test_ops.py, test_fp_ops.py) and the runtime contract
(tests/core/test_runtime.py: chaining undone, jump cache, precise faults,
self-modifying code, exit requests) run on the baseline as the default tier.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from llvmtcg.ir import I64, Builder, Cond, ExitReason
from llvmtcg.ir.block import Op
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.ir.lower.emitter import LoweringOptions
from llvmtcg.log import Log
from llvmtcg.runtime.helpers import HelperRegistry
from llvmtcg.runtime.native.baseline import LIBRARY_FILE, BaselineLibrary
from llvmtcg.runtime.native.stencils import HoleKind
from tests.core.support import (
    CODE,
    LAYOUT,
    PC,
    HandFrontend,
    R,
    c64,
    counting_loop,
    halt_at,
    make_cpu,
)


def test_millions_of_chained_hops_run_in_one_native_entry_in_constant_stack() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe)
    cpu.state.set("r", 3_000_000, 1)
    cpu.pc = CODE
    exit_ = cpu.run()
    assert exit_.reason is ExitReason.HALT and cpu.state.get("r", 0) == 3_000_000
    # Six million hops between two baseline blocks, one native entry per block (its
    # translation miss; then they are linked): every hop leaves the block's frame
    # before jumping (a frame per hop would overflow the 8 MiB stack long before).
    assert cpu.stats.native_entries == 2
    assert cpu.tbs.stats["baseline_blocks"] == 2 and cpu.tbs.stats["llvm_blocks"] == 0
    assert cpu.arena.contains(cpu.tbs.lookup(CODE).entry)


def test_baseline_blocks_and_hot_regions_chain_into_each_other() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, hot_threshold=50, tier_sync=True)
    cpu.state.set("r", 2_000_000, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == 2_000_000
    assert cpu.tbs.stats["regions_installed"] >= 1
    region = cpu.tbs.regions[CODE]
    assert not cpu.arena.contains(region.entry)  # LLVM code, linked from baseline slots
    assert cpu.stats.native_entries <= 4


def test_arena_exhaustion_flushes_everything_and_the_run_goes_on() -> None:
    fe = HandFrontend()
    n = 3000
    for i in range(n):  # a chain of distinct blocks, looped `rounds` times
        pc = CODE + 4 * i

        @fe.define(pc)
        def _(b: Builder, pc: int = pc, last: bool = i == n - 1) -> None:
            b.insn_start(pc)
            b.add(R[0], R[0], c64(1))
            b.add(R[2], R[2], R[0])
            if not last:
                b.goto_tb(0, pc + 4)
                return
            b.add(R[3], R[3], c64(1))
            done = b.label()
            b.brcond(Cond.EQ, R[3], R[1], done)
            b.goto_tb(0, CODE)
            b.set_label(done)
            halt_at(b, pc + 4)

    cpu = make_cpu(fe, arena_size=1 << 16)
    cpu.state.set("r", 3, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    total = 3 * n
    assert cpu.state.get("r", 0) == total
    assert cpu.state.get("r", 2) == total * (total + 1) // 2
    assert cpu.tbs.stats["arena_flushes"] >= 2


def test_no_page_is_writable_and_executable_while_baseline_code_runs() -> None:
    seen: list[list[tuple[int, str]]] = []

    def maps(cpu) -> int:
        # The arena's mappings (libffi's closures for Python callbacks are not ours).
        arena = cpu_ref[0].arena
        end = arena.base + arena.reservation_size
        with open("/proc/self/maps") as f:
            rows = [line.split()[:2] for line in f]
        seen.append([(int(r.split("-")[0], 16), perms) for r, perms in rows
                     if arena.base <= int(r.split("-")[0], 16) < end])
        return 0

    helpers = HelperRegistry()
    helpers.register(HelperDecl("maps", I64, (), HelperFlag.TAKES_CPU), maps)
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.call("maps", [R[0]], [])
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe, helpers)
    cpu_ref = [cpu]
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.tbs.stats["baseline_blocks"] == 1
    (mappings,) = seen
    assert "r-xs" in {perms for _, perms in mappings}, mappings  # the code zone
    assert all(not ("w" in perms and "x" in perms) for _, perms in mappings), mappings


def test_out_asm_shows_baseline_code() -> None:
    fe = HandFrontend()
    counting_loop(fe)
    out = io.StringIO()
    cpu = make_cpu(fe, log=Log("out_asm", out))
    cpu.state.set("r", 3, 1)
    cpu.pc = CODE
    cpu.run()
    text = out.getvalue()
    assert f"OUT: host code for tb_{CODE:x} [baseline," in text
    assert "r13" in text and "ret" in text  # the CPU pointer lives in r13


# -- the stencil library ---------------------------------------------------------------

def _options() -> LoweringOptions:
    return LoweringOptions(LAYOUT, {}, False, True, 0, False)


def _ops() -> list[Op]:
    return [Op("add", (R[0],), (R[1], R[2])), Op("sub", (R[0],), (R[1], c64(5)))]


def test_library_is_stored_per_fingerprint_read_back_and_rebuilt_when_corrupt(
        tmp_path: Path) -> None:
    first = BaselineLibrary(_options(), "fp1", tmp_path)
    first.ensure(_ops())
    assert first.stats["compiled"] > 2 and (tmp_path / "fp1" / LIBRARY_FILE).exists()

    again = BaselineLibrary(_options(), "fp1", tmp_path)
    again.ensure(_ops())
    assert again.stats["compiled"] == 0 and again.stats["loaded"] == len(first.stencils)
    assert again.stencils.keys() == first.stencils.keys()
    add = next(name for name in again.stencils if name.startswith("add_"))
    assert again.stencils[add].code == first.stencils[add].code
    assert any(h.kind is HoleKind.ABS32 for h in again.stencils[add].holes)

    # Another fingerprint (another translator) builds its own.
    other = BaselineLibrary(_options(), "fp2", tmp_path)
    assert other.stats["compiled"] > 0 and other.stats["loaded"] == 0
    # A file copied under another fingerprint's name is not taken.
    (tmp_path / "fp3").mkdir()
    (tmp_path / "fp3" / LIBRARY_FILE).write_bytes((tmp_path / "fp1" / LIBRARY_FILE).read_bytes())
    assert BaselineLibrary(_options(), "fp3", tmp_path).stats["loaded"] == 0

    path = tmp_path / "fp1" / LIBRARY_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    corrupt = BaselineLibrary(_options(), "fp1", tmp_path)
    assert corrupt.stats["loaded"] == 0 and corrupt.stats["compiled"] > 0
    path.write_bytes(b"LLVMTCGB")  # truncated
    assert BaselineLibrary(_options(), "fp1", tmp_path).stats["loaded"] == 0


def run_counting_loop(stencil_dir: Path) -> BaselineLibrary:
    """Run the counting loop with its stencil library in ``stencil_dir``; the library."""
    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, stencil_dir=stencil_dir)
    cpu.state.set("r", 10, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT and cpu.state.get("r", 0) == 10
    library = cpu.tbs.baseline.library
    cpu.close()
    return library


def test_a_run_with_a_warm_library_compiles_no_stencil(tmp_path: Path) -> None:
    def run() -> dict:
        return dict(run_counting_loop(tmp_path).stats)

    # (The process keeps one library per fingerprint and directory: drop it to see
    # what a new process reading the file does.)
    from llvmtcg.runtime.native import baseline

    baseline._LIBRARIES.clear()
    assert run()["compiled"] > 0
    baseline._LIBRARIES.clear()
    stats = run()
    assert stats["compiled"] == 0 and stats["loaded"] > 0


def test_op_emitters_are_stored_with_the_library_and_a_bad_file_is_ignored(
        tmp_path: Path) -> None:
    from llvmtcg.runtime.native import baseline

    def run() -> baseline.BaselineLibrary:
        return run_counting_loop(tmp_path)

    baseline._LIBRARIES.clear()  # (as a new process: see the test above)
    first = run()
    files = list(tmp_path.glob(f"*/{baseline.EMITTERS_FILE}"))
    assert len(files) == 1 and first.emitter_code
    baseline._LIBRARIES.clear()
    # A new process reads the code objects: the same emitters, none compiled again.
    reread = baseline.BaselineLibrary(first.options, first.fingerprint, tmp_path)
    assert reread.emitter_code.keys() == first.emitter_code.keys()
    stored = files[0].read_bytes()
    assert run().emitter_code.keys() == first.emitter_code.keys()
    assert files[0].read_bytes() == stored  # (nothing new to store)

    for bad in (b"", b"junk" * 20, files[0].read_bytes()[:-1] + b"x"):
        files[0].write_bytes(bad)
        baseline._LIBRARIES.clear()
        assert not baseline.BaselineLibrary(first.options, first.fingerprint,
                                            tmp_path).emitter_code
        assert run().emitter_code.keys() == first.emitter_code.keys()  # (and rewritten)
        assert files[0].read_bytes() != bad


@pytest.mark.parametrize("value", [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF,
                                   0xFFFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000])
def test_constant_holes_take_every_64_bit_value(value: int) -> None:
    fe = HandFrontend()

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[1], c64(value))
        b.mov(PC, c64(value))
        b.mov(R[2], PC)
        halt_at(b, CODE + 4)

    cpu = make_cpu(fe)
    cpu.state.set("r", 3, 1)
    cpu.pc = CODE
    assert cpu.run().reason is ExitReason.HALT
    assert cpu.state.get("r", 0) == (value + 3) & (1 << 64) - 1
    assert cpu.state.get("r", 2) == value


# -- generated op emitters -------------------------------------------------------------

def _emit_generically(codegen, block, emitted) -> bytes:
    """``block`` emitted the way the tier did before op emitters were generated: each
    stencil's operands found by walking its plan, one kind at a time. Data addresses
    (slots, counter, targets) are ``emitted``'s, so the bytes must match exactly."""
    from llvmtcg.ir.lower.stencil_function import shape_key, stencil_name
    from llvmtcg.ir.ops import OPS, OpFlag
    from llvmtcg.ir.types import TempKind
    from llvmtcg.runtime.native.baseline import _NOPS, acc_plan
    from llvmtcg.runtime.native.emit import Assembler, Label

    asm = Assembler()
    codegen.stencil("entry").stencil.emit(asm)
    n_insns = block.n_insns if codegen.count_insns else 0
    head = "head" + ("_c" if emitted.counter else "") + ("_i" if n_insns else "")
    operands = [block.pc] + ([emitted.counter] if emitted.counter else []) \
        + ([n_insns] if n_insns else [])
    codegen.stencil(head).stencil.emit(asm, *operands)
    locals_ = {t.name: codegen.scratch_offset + 8 * i for i, t in enumerate(block.locals)}
    labels: dict[int, Label] = {}
    faults: dict[int, Label] = {}
    insn_pc, dead = block.pc, False
    jumped: set[int] = set()
    for op, take, store in zip(block.ops, *acc_plan(block.ops), strict=True):
        if op.name == "set_label":
            asm.bind(labels.setdefault(op.args[0].index, Label()))
            dead = False
            continue
        if dead:
            continue
        if op.name == "insn_start":
            insn_pc = op.args[0]
            continue
        if op.name == "br":
            codegen.stencil("goto").stencil.emit(asm, labels.setdefault(op.args[0].index,
                                                                        Label()))
            dead = True
            continue
        if op.name == "goto_tb" and op.args[0] not in jumped:  # (the direct jump a
            jumped.add(op.args[0])  # link patches, rel32 aligned; one per slot)
            asm.code += _NOPS[-(len(asm.code) + 1) % 4] + b"\xe9\0\0\0\0"
        bound = codegen.stencil(stencil_name(shape_key(op, take, store)))
        temps = (*op.outputs, *op.inputs)
        values: list[object] = []
        for kind, index in bound.plan:
            if kind == "t":
                t = temps[index]
                values.append(t.offset if t.kind is TempKind.GLOBAL else
                              t.value if t.kind is TempKind.CONST else locals_[t.name])
            elif kind == "L":
                values.append(labels.setdefault(op.args[index].index, Label()))
            elif kind == "fault":
                values.append(faults.setdefault(insn_pc, Label()))
            else:
                values.append({"dest": op.args[1] if len(op.args) > 1 else None,
                               "slot": emitted.slots.get(op.args[0]) if op.args else None,
                               "counter": emitted.counter,
                               "targets": emitted.targets}[kind])
        bound.emit(asm, *values)
        dead = bool(OPS[op.name].flags & OpFlag.TERMINATOR)
    for pc, label in faults.items():
        asm.bind(label)
        codegen.stencil("exit").stencil.emit(asm, pc, int(ExitReason.EXCEPTION))
    return bytes(codegen.arena.read(asm.finish(codegen.arena), len(asm.code)))


def test_generated_op_emitters_give_the_bytes_of_the_generic_operand_walk() -> None:
    from llvmtcg.ir import MemOp
    from llvmtcg.ir.types import I32

    fe = HandFrontend()
    counting_loop(fe)
    cpu = make_cpu(fe, hot_threshold=1000)
    cpu.state.set("r", 3, 1)
    cpu.pc = CODE
    cpu.run()  # (the codegen, bound to this process)
    codegen = cpu.tbs.baseline

    b = Builder(CODE + 0x100, LAYOUT.globals())
    b.insn_start(CODE + 0x100)
    t = b.temp()
    b.add(t, R[1], c64(0x1234_5678_9ABC))  # a local, a global, a constant
    b.qemu_ld(R[2], t, MemOp(3), 0)  # a fault exit
    b.insn_start(CODE + 0x104)
    w = b.temp(I32)
    b.extr_i64_i32(w, R[2])
    b.ext_i32_i64(R[7], w)
    b.ext32s(R[3], R[2])
    b.qemu_st(R[3], t, MemOp(2), 0)
    b.insn_start(CODE + 0x108)
    skip, other = b.label(), b.label()
    b.brcond(Cond.LTU, R[1], R[3], skip)  # labels
    b.sub(R[4], c64(7), R[0])
    b.br(other)
    b.set_label(skip)
    b.setcond(Cond.EQ, R[5], R[4], c64(0))
    b.set_label(other)
    b.insn_start(CODE + 0x10C)
    done = b.label()
    b.brcond(Cond.EQ, R[5], c64(1), done)
    b.goto_tb(0, CODE)  # a slot and a destination
    b.set_label(done)
    b.mov(PC, R[6])
    b.lookup_and_goto_ptr()  # the counter and the target profile
    block = b.finish()

    emitted = codegen.emit(block, codegen.prepare(block))
    assert emitted.counter and emitted.targets and emitted.slots
    generated = bytes(codegen.arena.read(emitted.entry, emitted.size))
    assert generated == _emit_generically(codegen, block, emitted)


# -- results kept in %acc, stores no one can see dropped -----------------------------

def test_acc_plan_drops_only_stores_no_one_can_see() -> None:
    from llvmtcg.ir import MemOp
    from llvmtcg.runtime.native.baseline import acc_plan

    b = Builder(CODE, LAYOUT.globals())  # (ops numbered without the insn_starts)
    b.insn_start(CODE)
    b.shl(R[1], R[0], c64(13))  # 0: overwritten by the next op, which takes it: dropped
    b.xor(R[1], R[1], R[0])  # 1: read from its slot by op 3: stored
    b.insn_start(CODE + 4)
    b.add(R[4], R[0], c64(1))  # 2: read from %acc by op 3, overwritten by op 4: dropped
    b.add(R[5], R[4], R[1])  # 3: op 4 takes it but does not overwrite it: stored
    b.add(R[4], R[5], c64(1))  # 4: the load below may fault: stored
    b.qemu_ld(R[6], R[4], MemOp(3))  # 5: overwritten by op 7, read by op 6 only: dropped
    b.insn_start(CODE + 8)
    t = b.temp()
    b.add(t, R[6], c64(1))  # 6: a local read once, from %acc: dropped
    b.ext32s(R[6], t)  # 7: the branch below reads it: stored
    b.add(R[2], R[0], c64(1))  # 8: read from its slot by op 10 (not the next op): stored
    b.add(R[3], R[0], c64(2))  # 9
    b.add(R[2], R[2], R[3])  # 10
    done = b.label()
    b.brcond(Cond.EQ, R[6], c64(0), done)
    b.set_label(done)
    halt_at(b, CODE + 12)
    block = b.finish()
    takes, stores = acc_plan(block.ops)
    numbered = [i for i, op in enumerate(block.ops) if op.name != "insn_start"]
    dropped = [numbered.index(i) for i, stored in enumerate(stores) if not stored]
    assert dropped == [0, 2, 5, 6]
    assert [takes[numbered[i]] for i in (1, 3, 4, 6, 7, 10)] == [0, 0, 0, 0, 0, 1]


def test_dropped_stores_leave_precise_state_at_a_fault() -> None:
    from llvmtcg.ir import MemOp

    fe = HandFrontend()

    @fe.define(CODE, size=12)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.shl(R[1], R[0], c64(13))  # (its store dropped: the xor overwrites r1)
        b.xor(R[1], R[1], R[0])
        b.add(R[2], R[1], c64(5))  # (dropped: the ext32s overwrites r2)
        b.ext32s(R[2], R[2])
        b.insn_start(CODE + 4)
        b.add(R[3], R[2], c64(1))  # (stored: the load may fault)
        b.qemu_ld(R[3], R[3], MemOp(3))  # faults: r3 must hold the address
        b.insn_start(CODE + 8)
        b.movi(R[4], 9)
        halt_at(b, CODE + 12)

    cpu = make_cpu(fe)
    x = 0x0000_0123_4567_89AB
    cpu.state.set("r", x, 0)
    cpu.pc = CODE
    exit_ = cpu.run()
    assert exit_.reason is ExitReason.EXCEPTION and exit_.pc == CODE + 4
    r1 = ((x << 13) ^ x) & (1 << 64) - 1
    r2 = (r1 + 5) & 0xFFFF_FFFF
    r2 = r2 - (1 << 32) if r2 >> 31 else r2
    assert cpu.state.get("r", 1) == r1
    assert cpu.state.get("r", 2) == r2 & (1 << 64) - 1
    assert cpu.state.get("r", 3) == (r2 + 1) & (1 << 64) - 1  # the faulting address
    assert exit_.fault.addr == (r2 + 1) & (1 << 64) - 1
    assert cpu.state.get("r", 4) == 0
    assert cpu.tbs.stats["baseline_blocks"] == 1


def test_acc_plan_keeps_a_store_a_global_of_another_name_reads() -> None:
    from llvmtcg.ir.types import I32, Temp, TempKind
    from llvmtcg.runtime.native.baseline import acc_plan

    # A 32-bit view of r1's upper half (fields of other names may overlap: AArch64's
    # q[n] and v[2n]).
    high = Temp(TempKind.GLOBAL, I32, "r1.high", offset=R[1].offset + 4)
    shl = Op("shl", (R[1],), (R[0], c64(3)), ())
    ops = [shl, Op("extu_i32_i64", (R[7],), (high,), ()), Op("xor", (R[1],), (R[0], R[0]), ())]
    assert acc_plan(ops)[1][0]  # (the view reads the slot: stored)
    ops[1] = Op("extu_i32_i64", (R[7],), (Temp(TempKind.GLOBAL, I32, "r2.low",
                                                offset=R[2].offset),), ())
    assert not acc_plan(ops)[1][0]  # (nothing reads it before the xor: dropped)
