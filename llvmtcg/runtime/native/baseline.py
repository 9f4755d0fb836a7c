"""The baseline tier: guest blocks emitted by copy-and-patch from stencils of the IR ops.

Every translated block is built here first (no LLVM at run time once the stencils
exist); blocks that turn hot go to the LLVM hot-region tier (``runtime/tiering.py``).

- **Stencils** are the lowering rules' own LLVM functions for one op shape
  (``ir/lower/stencil_function.py``), compiled by llvmlite the first time a shape is
  needed and kept in a library per translator fingerprint
  (``<cache>/<fingerprint>/xbaseline.bin``; in memory, shared by the process's CPUs,
  without a cache directory). The library grows by the shapes a run meets, so a warm
  run compiles nothing; a missing, corrupt or stale file is rebuilt. A shape LLVM
  compiles into something a stencil cannot hold (a constant pool, a jump table) is
  recorded as unsupported, and a block using it goes to the LLVM block tier.
- **A block** is ``entry`` (C convention, ``i64 fn(ptr cpu, ptr mem)`` like LLVM
  blocks; it saves the callee-saved registers and calls the body), ``head`` (the
  exit-request check, the HOT counter, the instruction count), one stencil per op,
  and one exit per guest instruction that can fault (stores its pc, returns
  EXCEPTION). Globals are CPU-state fields, block locals are fixed slots in a scratch
  area after the CPU state (:data:`SCRATCH_SLOTS`); every op reads its operands from
  and writes its result to the state, so guest state is precise at every exit.
- **Leaving a block** for other translated code (a linked ``goto_tb`` slot, a jump
  cache hit) returns the target's entry address tagged with ``TAIL_JUMP_TAG`` to the
  entry adapter, which pops its frame and jumps there: baseline and LLVM blocks chain
  into each other through the same slots and jump cache, in constant stack.
- Exit slots, the HOT counter and the indirect-target profile live in the arena's
  data zone; an emitted block is placed in the arena's code zone in one copy (W^X).
  :class:`ArenaFull` goes to the caller, which flushes every translation (QEMU's
  tb_flush) and resets the arena.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import marshal
import operator
import struct
import sys
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from llvmtcg.ir.block import Block, Op
from llvmtcg.ir.cpu_layout import PAGE_BITS
from llvmtcg.ir.lower.emitter import LoweringOptions
from llvmtcg.ir.lower.stencil_function import (
    ARENA_BASE,
    ARENA_BODY,
    ARENA_OUTSIDE,
    ARENA_PAGES,
    ARENA_SIZE,
    ARGS,
    LITERAL_COUNT_OPS,
    TAIL_JUMP_TAG,
    OperandSpec,
    StencilSource,
    shape_key,
    stencil_name,
    stencil_source,
)
from llvmtcg.ir.lower.symbols import INDIRECT_TARGETS
from llvmtcg.ir.ops import OPS, ExitReason, OpFlag
from llvmtcg.ir.types import I64, V128, Temp, TempKind
from llvmtcg.runtime.cachefile import replace_file
from llvmtcg.runtime.cpu_state import SCRATCH_SLOTS
from llvmtcg.runtime.native import elfobj
from llvmtcg.runtime.native.arena import ArenaFull, CodeArena
from llvmtcg.runtime.native.emit import Assembler, Label
from llvmtcg.runtime.native.stencils import (
    U31_LIMIT,
    Hole,
    HoleKind,
    Operand,
    OperandKind,
    Stencil,
    StencilError,
    StencilSpec,
    _extract,
    emitter_body,
)

__all__ = ["ArenaFull", "BaselineCodegen", "BaselineLibrary", "EmittedBlock",
           "Prepared", "SCRATCH_SLOTS", "Unsupported"]

FORMAT_VERSION = 1
LIBRARY_FILE = "xbaseline.bin"
# The op emitters' code objects (see _op_emitter), by generated source, marshalled:
# compiling them cost ~8 ms of every start. marshal's format is the interpreter's own,
# hence its cache tag in the name.
EMITTERS_FILE = f"xemitters.{sys.implementation.cache_tag}.marshal"
_MAGIC = b"LLVMTCGB"
_HEADER = struct.Struct("<8sI")
_KINDS = {"u31": OperandKind.U31, "i64": OperandKind.I64, "label": OperandKind.LABEL}
_TERMINATOR = {name for name, d in OPS.items() if d.flags & OpFlag.TERMINATOR}
_SELF_EMITTED = frozenset({"set_label", "br", "insn_start"})
_DEST_ARGS = frozenset({"brcond", "goto_tb"})  # (the label, the destination: holes)
_CONST = TempKind.CONST
_LOCAL = TempKind.LOCAL
_GLOBAL = TempKind.GLOBAL
# Arena constants that are the same for every process of one layout (layout_key)
_LAYOUT_CONSTANTS = frozenset({ARENA_SIZE, ARENA_BODY, ARENA_OUTSIDE})
_EXCEPTION = int(ExitReason.EXCEPTION)
_I32 = ctypes.c_int32
_U64 = ctypes.c_uint64
_SHAPE = operator.attrgetter("shape")  # (Temp.shape: width and whether a constant)
ARENA_ENTRIES = "arena.entries"  # the entry adapter's counter cell (a process constant)
# A block's body starts this aligned after its entry adapter (padded with NOPs), so a
# body address has TAIL_JUMP_TAG's bits clear (BaselineCodegen.chain_value).
BODY_ALIGN = 16
# x86 multi-byte NOPs (Intel SDM, "Recommended Multi-Byte Sequence of NOP"), by length.
_JMP_NEXT = b"\xe9\x00\x00\x00\x00"  # jmp rel32 to the next instruction
_NOPS = (b"", b"\x90", b"\x66\x90", b"\x0f\x1f\x00", b"\x0f\x1f\x40\x00",
         b"\x0f\x1f\x44\x00\x00", b"\x66\x0f\x1f\x44\x00\x00",
         b"\x0f\x1f\x80\x00\x00\x00\x00", b"\x0f\x1f\x84\x00\x00\x00\x00\x00",
         b"\x66\x0f\x1f\x84\x00\x00\x00\x00\x00")


class Unsupported(Exception):
    """A block the baseline cannot emit (a shape without a stencil, too many locals):
    it goes to the LLVM block tier."""


# -- the fixed stencils (block structure) ------------------------------------------------

def _fixed_sources(options: LoweringOptions) -> list[StencilSource]:
    layout = options.layout
    pc = layout.offset("pc")
    er = layout.offset("exit_request")
    # The entry adapter counts its entries (one add to a per-process cell: an
    # observable for tests and stats that chained hops do not come back through it).
    out = [StencilSource("entry", (OperandSpec(ARENA_ENTRIES, "i64"),), f"""\
define i64 @"stencil.entry"(ptr %cpu, ptr %mem) nounwind {{
entry:
  %entries = load i64, ptr @"hole.{ARENA_ENTRIES}", align 8
  %entries.1 = add i64 %entries, 1
  store i64 %entries.1, ptr @"hole.{ARENA_ENTRIES}", align 8
  %r = call ghccc i64 @"hole.next"(ptr %cpu, ptr %mem, i64 undef)
  %tag = and i64 %r, {TAIL_JUMP_TAG}
  %jump = icmp eq i64 %tag, {TAIL_JUMP_TAG}
  br i1 %jump, label %go, label %done
go:
  %a = and i64 %r, -8
  %f = inttoptr i64 %a to ptr
  %t = musttail call i64 %f(ptr %cpu, ptr %mem)
  ret i64 %t
done:
  ret i64 %r
}}
""", ())]
    for counter in (False, True):
        for count in (False, True):
            name = f"head{'_c' if counter else ''}{'_i' if count else ''}"
            operands = [OperandSpec("dest", "i64")]
            lines = [f"  %erp = getelementptr i8, ptr %cpu, i64 {er}",
                     "  %er = load atomic i32, ptr %erp monotonic, align 4",
                     "  %set = icmp ne i32 %er, 0",
                     "  br i1 %set, label %req, label %body, "
                     '!prof !{!"branch_weights", i32 1, i32 2000}',
                     "req:",
                     f"  %pcp = getelementptr i8, ptr %cpu, i64 {pc}",
                     '  store i64 ptrtoint (ptr @"hole.dest" to i64), ptr %pcp, align 8',
                     f"  ret i64 {int(ExitReason.REQUESTED)}",
                     "body:"]
            if counter:
                operands.append(OperandSpec("counter", "i64"))
                lines += ['  %hc = load i32, ptr @"hole.counter", align 4',
                          "  %hn = add i32 %hc, -1",
                          '  store i32 %hn, ptr @"hole.counter", align 4',
                          "  %hz = icmp eq i32 %hn, 0",
                          "  br i1 %hz, label %hot, label %counted, "
                          '!prof !{!"branch_weights", i32 1, i32 2000}',
                          "hot:",
                          f"  %pch = getelementptr i8, ptr %cpu, i64 {pc}",
                          '  store i64 ptrtoint (ptr @"hole.dest" to i64), ptr %pch, align 8',
                          f"  ret i64 {int(ExitReason.HOT)}",
                          "counted:"]
            if count:
                operands.append(OperandSpec("icount", "u31"))
                ic = layout.offset("insn_count")
                lines += [f"  %icp = getelementptr i8, ptr %cpu, i64 {ic}",
                          "  %ic = load i64, ptr %icp, align 8",
                          '  %icn = add i64 %ic, ptrtoint (ptr @"hole.icount" to i64)',
                          "  store i64 %icn, ptr %icp, align 8"]
            lines += [f'  %n = musttail call ghccc i64 @"hole.next"({ARGS})',
                      "  ret i64 %n"]
            out.append(StencilSource(name, tuple(operands), _ghc(name, lines), ()))
    out.append(StencilSource("exit", (OperandSpec("dest", "i64"), OperandSpec("code", "u31")),
                             _ghc("exit", [
                                 f"  %pcp = getelementptr i8, ptr %cpu, i64 {pc}",
                                 '  store i64 ptrtoint (ptr @"hole.dest" to i64), ptr %pcp, '
                                 "align 8",
                                 '  ret i64 ptrtoint (ptr @"hole.code" to i64)']), ()))
    out.append(StencilSource("goto", (OperandSpec("target", "label"),), _ghc("goto", [
        f'  %t = musttail call ghccc i64 @"hole.target"({ARGS})',
        "  ret i64 %t"]), ()))
    return out


def _ghc(name: str, lines: list[str]) -> str:
    return (f'define ghccc i64 @"stencil.{name}"({ARGS}) nounwind {{\n'
            "entry:\n" + "\n".join(lines) + "\n}\n")


# -- compiling stencils ------------------------------------------------------------------

def _module(sources: Iterable[StencilSource]) -> str:
    declarations = {'declare ghccc i64 @"hole.next"(ptr, ptr, i64)'}
    functions = []
    for source in sources:
        for operand in source.operands:
            symbol = f'@"hole.{operand.name}"'
            if operand.kind == "label":
                declarations.add(f"declare ghccc i64 {symbol}(ptr, ptr, i64)")
            else:
                model = "small" if operand.kind == "u31" else "large"
                declarations.add(f'{symbol} = external dso_local global i8, align 1, '
                                 f'code_model "{model}"')
        functions.append(source.function)
    return "\n".join(sorted(declarations)) + "\n\n" + "\n".join(functions)


_LLVM_LOCK = threading.Lock()


def _compile(sources: list[StencilSource], rodata: dict[tuple[str, str], bytes]
             ) -> tuple[dict[str, Stencil], set[str]]:
    """Compile ``sources`` in one module; returns the stencils and the names of those
    that cannot be stencils (tried one by one when the module as a whole fails). The
    constant pools they refer to go to ``rodata``: (stencil, "rodata.<section>") ->
    bytes."""
    from llvmtcg.runtime.jit import llvm_binding, llvmlite_lock  # noqa: PLC0415

    llvm = llvm_binding()  # (initialised with the asm parser: inline asm in FP stencils)
    with llvmlite_lock(), _LLVM_LOCK:
        machine = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
            opt=2, reloc="static", codemodel="medium")

        def build(batch: list[StencilSource]) -> dict[str, Stencil]:
            module = llvm.parse_assembly(_module(batch))
            module.verify()
            elf = elfobj.parse(machine.emit_object(module))
            # Constant pools (FP constants): their section symbols become holes
            # "rodata.<section>", placed in the arena's data zone by each process.
            for symbol in elf.symbols:
                if (symbol.type in (elfobj.STT_SECTION, elfobj.STT_NOTYPE, elfobj.STT_OBJECT)
                        and 0 < symbol.shndx < len(elf.sections)
                        and elf.sections[symbol.shndx].name.startswith(".rodata")):
                    symbol.name = f"hole.rodata.{symbol.shndx}.{symbol.value}"
            functions = {s.name[len("stencil."):]: s for s in elf.symbols
                         if s.type == elfobj.STT_FUNC and s.name.startswith("stencil.")}
            out = {}
            for source in batch:
                function = functions[source.name]
                section = elf.sections[function.shndx]
                pools = sorted({elf.symbols[i].name[len("hole."):]
                                for offset, _, i, _ in elf.relocations(section.index)
                                if function.value <= offset < function.value + function.size
                                and elf.symbols[i].name.startswith("hole.rodata.")})
                spec = StencilSpec(source.name, tuple(
                    Operand(o.name, _KINDS[o.kind]) for o in source.operands) + tuple(
                    Operand(p, OperandKind.LABEL) for p in pools), "")
                stencil = _extract(elf, spec, function)
                if any(h.addend and stencil.operands[h.operand].name[0] == "k"
                       for h in stencil.holes):
                    # (a small constant with an addend folded in may leave the range
                    # its 4-byte field holds: the shape is left to the LLVM tier)
                    raise StencilError(f"stencil {source.name}: a constant hole with "
                                       "an addend")
                for pool in pools:
                    rodata[(source.name, _pool(pool))] = elf.section_bytes(
                        elf.sections[int(pool.split(".")[1])])
                out[source.name] = stencil
            return out

        try:
            return build(sources), set()
        except (RuntimeError, StencilError, KeyError):
            if len(sources) == 1:
                return {}, {sources[0].name}
        stencils, failed = {}, set()
        for source in sources:
            try:
                stencils.update(build([source]))
            except (RuntimeError, StencilError, KeyError):
                failed.add(source.name)
        return stencils, failed


# -- the library -------------------------------------------------------------------------

class BaselineLibrary:
    """The stencils of one translator (fingerprint): fixed ones plus one per op shape
    met so far, read from and written back to ``cache_dir`` when given."""

    def __init__(self, options: LoweringOptions, fingerprint: str,
                 cache_dir: Path | None = None) -> None:
        self.options = options
        self.fingerprint = fingerprint
        self.path = Path(cache_dir) / fingerprint / LIBRARY_FILE if cache_dir else None
        # (as read from the file, a stencil's parts: see _read)
        self.stencils: dict[str, Stencil | _StencilParts] = {}
        self.unsupported: set[str] = set()
        self.rodata: dict[tuple[str, str], bytes] = {}  # see _compile
        self.lock = threading.Lock()
        self.stats = {"compiled": 0, "compile_seconds": 0.0, "loaded": 0}
        # Generated op emitter source -> its compiled code (shared by the process's
        # codegens; stored next to the library when it has a file).
        self.emitter_code: dict[str, types.CodeType] = {}
        self._emitters_stored = 0  # how many of them the file holds
        if self.path is not None:
            self._read()
            self._read_emitters()
        if "entry" not in self.stencils:
            self._add(_fixed_sources(options))

    def _add(self, sources: list[StencilSource]) -> None:
        import time  # noqa: PLC0415

        start = time.perf_counter()
        stencils, failed = _compile(sources, self.rodata)
        self.stats["compile_seconds"] += time.perf_counter() - start
        self.stats["compiled"] += len(stencils)
        self.stencils.update(stencils)
        self.unsupported |= failed
        if self.path is not None:
            self._write()

    def ensure(self, ops: Iterable[Op | tuple[Op, int | None]
                                   | tuple[Op, int | None, bool]]) -> None:
        """Compile the stencils of the shapes of ``ops`` not in the library yet (an op,
        an (op, input taken from %acc) pair or an (op, take, result stored) triple:
        see :func:`acc_plan`)."""
        missing: dict[str, tuple[Op, int | None, bool]] = {}
        for item in ops:
            if isinstance(item, Op):
                op, take, store = item, None, True
            elif len(item) == 2:
                (op, take), store = item, True
            else:
                op, take, store = item
            name = stencil_name(shape_key(op, take, store))
            if (name not in self.stencils and name not in self.unsupported
                    and name not in missing):
                missing[name] = (op, take, store)
        if not missing:
            return
        with self.lock:
            sources = []
            for name, (op, take, store) in missing.items():
                if name in self.stencils:
                    continue
                try:
                    sources.append(stencil_source(self.options, op, take, store))
                except Exception:  # noqa: BLE001 - a rule that cannot take holes
                    self.unsupported.add(name)
            if sources:
                self._add(sources)

    def store_emitters(self) -> None:
        """Write the op emitters' code to the library's directory if new ones were
        compiled since it was read or last written (best effort, atomic)."""
        if self.path is None or len(self.emitter_code) == self._emitters_stored:
            return
        with self.lock:
            codes = dict(self.emitter_code)
            body = marshal.dumps(codes)
            replace_file(self.path.with_name(EMITTERS_FILE), (body,), checksum=True)
            self._emitters_stored = len(codes)

    def _read_emitters(self) -> None:
        try:
            data = self.path.with_name(EMITTERS_FILE).read_bytes()
            body = data[:-32]
            if len(data) < 32 or hashlib.sha256(body).digest() != data[-32:]:
                return
            codes = marshal.loads(body)
        except (OSError, ValueError, EOFError, TypeError):
            return
        if type(codes) is dict and all(type(k) is str and type(v) is types.CodeType
                                       for k, v in codes.items()):
            self.emitter_code.update(codes)
            self._emitters_stored = len(self.emitter_code)

    # -- persistence ---------------------------------------------------------------------
    def _write(self) -> None:
        stencils = list(self.stencils.values())
        pools = {f"{name}|{pool}": data.hex() for (name, pool), data in self.rodata.items()}
        meta = {"format": FORMAT_VERSION, "fingerprint": self.fingerprint,
                "unsupported": sorted(self.unsupported), "rodata": pools,
                "stencils": [{"name": s.name,
                              "operands": [[o.name, o.kind.value] for o in s.operands],
                              "size": len(s.code), "falls_through": s.falls_through,
                              "holes": [[h.offset, h.operand, h.kind.value, h.addend]
                                        for h in s.holes]} for s in stencils]}
        encoded = json.dumps(meta, separators=(",", ":")).encode()
        body = _HEADER.pack(_MAGIC, len(encoded)) + encoded + b"".join(s.code for s in stencils)
        replace_file(self.path, (body,), checksum=True)

    def _read(self) -> None:
        try:
            data = self.path.read_bytes()
            magic, meta_len = _HEADER.unpack_from(data)
            if magic != _MAGIC or len(data) < _HEADER.size + meta_len + 32:
                return
            body = data[:-32]
            if hashlib.sha256(body).digest() != data[-32:]:
                return
            meta = json.loads(body[_HEADER.size:_HEADER.size + meta_len])
            if meta["format"] != FORMAT_VERSION or meta["fingerprint"] != self.fingerprint:
                return
            # Read as parts, not Stencils: a Stencil compiles an emitter of its own
            # when made (~50 µs each; 500 stencils were 30 ms of every start), and only
            # the few _fixed_emitters use one (made when bound: _Bound.stencil).
            stencils: dict[str, Stencil | _StencilParts] = {}
            position = _HEADER.size + meta_len
            kinds = {k.value: k for k in OperandKind}
            hole_kinds = {k.value: k for k in HoleKind}
            operand_of: dict[tuple[str, str], Operand] = {}  # (equal ones shared)
            hole_of: dict[tuple[int, int, str, int], Hole] = {}
            for entry in meta["stencils"]:
                size = entry["size"]
                code = body[position:position + size]
                position += size
                operands = []
                for n, k in entry["operands"]:
                    operand = operand_of.get((n, k))
                    if operand is None:
                        operand = operand_of[(n, k)] = Operand(n, kinds[k])
                    operands.append(operand)
                holes = []
                for o, i, k, a in entry["holes"]:
                    hole = hole_of.get((o, i, k, a))
                    if hole is None:
                        hole = hole_of[(o, i, k, a)] = Hole(o, i, hole_kinds[k], a)
                    holes.append(hole)
                name = entry["name"]
                stencils[name] = _StencilParts(name, tuple(operands), code, tuple(holes),
                                               entry["falls_through"])
            if position != len(body):
                return
        except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
            return
        self.rodata = {tuple(key.split("|")): bytes.fromhex(data)
                       for key, data in meta["rodata"].items()}
        self.stencils = stencils
        self.unsupported = set(meta["unsupported"])
        self.stats["loaded"] = len(stencils)


_LIBRARIES: dict[tuple[str, Path | None], BaselineLibrary] = {}
_LIBRARIES_LOCK = threading.Lock()


def library_for(options: LoweringOptions, fingerprint: str,
                cache_dir: Path | None) -> BaselineLibrary:
    """The process's library for this fingerprint (one per cache directory)."""
    key = (fingerprint, cache_dir)
    with _LIBRARIES_LOCK:
        library = _LIBRARIES.get(key)
        if library is None:
            library = _LIBRARIES[key] = BaselineLibrary(options, fingerprint, cache_dir)
        return library


# -- emission ----------------------------------------------------------------------------

# Ops whose stencils may take an input from %acc, and ops that change no CPU-state
# field but their outputs (so %acc still holds the temp it held before them). Helper
# calls, float ops (the guest FP environment), host stores (raw addresses) and the FP
# environment ops are neither, nor are vector ops (a v128 output overlaps i64 fields
# of other names: AArch64's q[n] is v[2n] and v[2n+1]); an op leaving its one i64
# result in %acc is always followed correctly (the stencil reloads it last).
_ACC_OPS = frozenset(name for name, d in OPS.items()
                     if not d.flags & (OpFlag.FLOAT | OpFlag.TERMINATOR | OpFlag.VECTOR)
                     and name not in ("call", "host_st", "host_ld", "fpenv_flags",
                                      "fpenv_round", "set_label", "br", "insn_start"))


# Ops that cannot fault, call out or leave: nothing can see the CPU state while they run.
_PURE_ACC_OPS = frozenset(name for name in _ACC_OPS
                          if not OPS[name].flags & OpFlag.SIDE_EFFECTS)


# How many ops (guest instruction starts included) after a global's write acc_plan
# looks for a pure overwrite.
_OVERWRITE_WINDOW = 6


def acc_plan(ops: list[Op]) -> tuple[list[int | None], list[bool]]:
    """For each op, the input its stencil takes from %acc (the register the previous
    stencil left its i64 result in), or None: the first input that is the temp %acc
    holds at that point. %acc holds nothing known at a label (several predecessors)
    and after an op that may change CPU state behind its outputs.

    And for each op whether its result is stored to its slot. Not when no one can see
    the slot before it is written again, so guest state stays precise at every exit
    and fault:

    - a global the ops after it overwrite (within :data:`_OVERWRITE_WINDOW` ops)
      while none of them can fault, call out or leave (pure) and none reads it but
      the very next op, from %acc (``slli a4,a4,13; xor a4,a4,a6`` stores a4 once;
      ``lw a5; addw a5,a5,a7`` stores a5 once);
    - a block local whose one read is the very next op's, from %acc (``addw``'s sum
      before its sign extension)."""
    takes: list[int | None] = []
    stores: list[bool] = []
    acc = None
    producer = -1  # the op whose result %acc holds, while no other op came after it
    local_reads: dict[str, int] | None = None  # reads of each local in the block
    # i64 globals written and not stored yet, by CPU-state offset (globals of other
    # names may overlap them: AArch64's q[n] is v[2n] and v[2n+1]):
    # offset -> (the op that wrote it, the last op index that may overwrite it).
    pending: dict[int, tuple[int, int]] = {}
    for index, op in enumerate(ops):
        name = op.name
        inputs = op.inputs
        take = None
        if acc is not None and name in _ACC_OPS:
            acc_name, acc_kind = acc.name, acc.kind
            uses = 0
            for i, t in enumerate(inputs):
                if t is acc or (t.name == acc_name and t.kind is acc_kind):
                    uses += 1
                    if take is None:
                        take = i
            if producer >= 0 and uses == 1 and acc_kind is _LOCAL:
                if local_reads is None:
                    local_reads = _local_reads(ops)
                if local_reads[acc_name] == 1:
                    stores[producer] = False
        takes.append(take)
        stores.append(True)
        if name == "insn_start":
            continue
        if pending:
            if name in _PURE_ACC_OPS:
                for i, t in enumerate(inputs):
                    if t.kind is _GLOBAL:
                        start, end = t.offset, t.offset + t.type.bits // 8
                        for offset in [o for o in pending if o < end and start < o + 8]:
                            # Only the very next op may read it, from %acc.
                            if i != take or offset != start \
                                    or pending[offset][0] != producer:
                                del pending[offset]
                for t in op.outputs:
                    if t.kind is _GLOBAL and t.type is I64:
                        written = pending.pop(t.offset, None)
                        if written is not None and index <= written[1]:
                            stores[written[0]] = False
            else:
                pending.clear()
        producer = -1
        outputs = op.outputs
        if len(outputs) == 1 and outputs[0].type is I64:
            acc = outputs[0]  # (its stencil gives it)
            if name in _ACC_OPS:
                producer = index
                if acc.kind is _GLOBAL:
                    pending[acc.offset] = (index, index + _OVERWRITE_WINDOW)
        elif acc is not None and (name not in _ACC_OPS
                                  or any(t.name == acc.name or t.type is V128
                                         for t in outputs)):
            # (a v128 output — a 16-byte qemu_ld — may overlap the i64 %acc holds)
            acc = None
    return takes, stores


def _local_reads(ops: list[Op]) -> dict[str, int]:
    reads: dict[str, int] = {}
    for op in ops:
        for t in op.inputs:
            if t.kind is _LOCAL:
                reads[t.name] = reads.get(t.name, 0) + 1
    return reads

class _StencilParts(NamedTuple):
    """A bound stencil's bytes and remaining holes, as ``stencils.emitter_body`` reads
    them (a :class:`Stencil` compiles an emitter of its own when made, which op
    stencils never call: their op emitters inline the same code)."""

    name: str
    operands: tuple[Operand, ...]
    code: bytes
    holes: tuple[Hole, ...]
    falls_through: bool


class _Bound:
    """A stencil with its import holes filled for this process (``parts``), and how
    each of its remaining operands is found (``plan``: (kind, index) per operand;
    ``pools``: the addresses of its constant pools, appended to the operands).
    ``stencil``: the same as a :class:`Stencil` (made when first asked for)."""

    __slots__ = ("parts", "plan", "pools", "_stencil")

    def __init__(self, parts: _StencilParts, plan: tuple[tuple[str, int], ...],
                 pools: tuple[int, ...]) -> None:
        self.parts = parts
        self.plan = plan
        self.pools = pools
        self._stencil: Stencil | None = None

    @property
    def stencil(self) -> Stencil:
        if self._stencil is None:
            self._stencil = Stencil(*self.parts)
        return self._stencil

    def emit(self, asm: Assembler, *operands: object) -> None:
        self.stencil.emit(asm, *operands, *self.pools)


def _op_emitter(bound: _Bound, op: Op, codes: dict[str, types.CodeType]
                ) -> Callable[..., bool]:
    """The function that emits ops of ``op``'s shape with ``bound``'s stencil:
    ``f(asm, op, locals, labels, faults, insn_pc, slots, counter, targets) ->
    ends the block``. Generated straight-line code reads each operand from where the
    shape says it is (a constant's value, a slot's CPU-state offset, a label, ...) and
    then appends the stencil with its holes filled (the stencil's own emitter code,
    ``stencils.emitter_body``, inlined): no per-operand dispatch and one call per op.
    Ops of one shape agree on everything the generated code depends on (the number of
    outputs and which operands are constants are part of the shape key)."""
    n_out = len(op.outputs)
    lines = ["def emit_op(asm, op, lo, labels, faults, pc, slots, counter, targets):"]
    names = [o.name for o in bound.parts.operands]
    for n, (kind, index) in enumerate(bound.plan):
        v = f"o{n}"
        if kind == "t":
            where = (f"op.outputs[{index}]" if index < n_out
                     else f"op.inputs[{index - n_out}]")
            if names[n][0] in "ck":
                lines.append(f"    {v} = {where}.value")
            else:
                lines += [f"    t = {where}",
                          f"    {v} = t.offset if t.kind is _GLOBAL else lo[t.name]"]
        elif kind == "L":
            lines += [f"    a = op.args[{index}].index",
                      f"    {v} = labels.get(a)",
                      f"    if {v} is None:",
                      f"        {v} = labels[a] = _Label()"]
        elif kind == "fault":
            lines += [f"    {v} = faults.get(pc)",
                      f"    if {v} is None:",
                      f"        {v} = faults[pc] = _Label()"]
        elif kind == "dest":
            lines.append(f"    {v} = op.args[1]")
        elif kind == "slot":
            lines.append(f"    {v} = slots[op.args[0]]")
        elif kind == "counter":
            lines.append(f"    {v} = counter")
        else:  # targets
            lines.append(f"    {v} = targets")
    for i in range(len(bound.pools)):  # (constant pools: the stencil's last operands)
        lines.append(f"    o{len(bound.plan) + i} = _p{i}")
    body, env = emitter_body(bound.parts)
    lines += body
    lines.append(f"    return {op.name in _TERMINATOR}")
    source = "\n".join(lines)
    env.update({"_GLOBAL": TempKind.GLOBAL, "_Label": Label})
    env.update({f"_p{i}": pool for i, pool in enumerate(bound.pools)})
    code = codes.get(source)  # (code objects by source: the library's, see EMITTERS_FILE)
    if code is None:
        namespace: dict[str, object] = {}
        exec(source, env, namespace)  # noqa: S102 - generated from trusted parts
        code = codes[source] = namespace["emit_op"].__code__  # type: ignore[union-attr]
    return types.FunctionType(code, env, "emit_op")


@dataclass(slots=True)
class Prepared:
    """A block ready to emit (:meth:`BaselineCodegen.prepare`): the emitter of each op
    (None: one ``emit`` handles itself), each exit slot's destination (``goto_tb``)
    and whether the block ends in an indirect jump (``lookup_and_goto_ptr``)."""

    emitters: list[Callable[..., bool] | None]
    exits: dict[int, int]
    indirect: bool


@dataclass(slots=True)
class EmittedBlock:
    """An emitted block: its entry and size, its exit slots' addresses by slot number
    and their destinations (``exits``), its HOT counter and target profile (0: none)."""

    entry: int  # its code chunk in the arena (``size`` bytes)
    size: int
    slots: dict[int, int]
    counter: int
    targets: int
    exits: dict[int, int] = field(default_factory=dict)


class BaselineCodegen:
    """Emits blocks of one CPU into a :class:`CodeArena`.

    Args:
        library: the stencils.
        arena: where code and block data go.
        imports: symbol -> address of what stencils call (helpers, thunks, accessors);
            looked up when a stencil is first used.
        scratch_offset: CPU-state offset of the block-local slots.
        compile_accessors: called with accessor symbols a stencil calls that are not
            in ``imports`` yet (they are compiled on demand).
        page_table, page_count: flat guest memory's page-flag table and size in pages
            (the CPU state's fields of the same names, fixed for the lifetime of the
            CPUs sharing this code; unused by stencils of the TLB form).
    """

    def __init__(self, library: BaselineLibrary, arena: CodeArena, imports: Mapping[str, int],
                 scratch_offset: int, compile_accessors=None, page_table: int = 0,
                 page_count: int = 0) -> None:
        self.library = library
        self.arena = arena
        self.imports = imports
        self.scratch_offset = scratch_offset
        self.compile_accessors = compile_accessors
        self.layout = library.options.layout
        self.hot_threshold = library.options.hot_threshold
        self.count_insns = library.options.count_insns
        self._bound: dict[str, _Bound] = {}
        # an op's shape (a tuple, cheap to build) -> its generated op emitter
        self._by_key: dict[tuple, Callable[..., bool]] = {}
        # stencil name -> its op emitter (keys of several constant values, a shift's
        # count aside, share one stencil)
        self._by_name: dict[str, Callable[..., bool]] = {}
        self._cells: dict[str, int] = {}
        self._cell_arrays: list[ctypes.Array] = []
        # Constant pools placed in the arena's data zone, bytes -> address: one copy of
        # each (stencils compiled in one batch share a pool section; stored blocks
        # reach the same copies, see pool_copy).
        self._pool_copies: dict[bytes, int] = {}
        self.generation = 0  # (reset() counts: pools placed before it are gone)
        self._pc_offset = self.layout.offset("pc")
        self._fixed: tuple | None = None  # see _fixed_emitters
        entry_size = len(library.stencils["entry"].code)
        # Where a block's body starts: after its entry adapter, padded to BODY_ALIGN.
        self.body_offset = -(-entry_size // BODY_ALIGN) * BODY_ALIGN
        self._entries = (ctypes.c_uint64 * 1)()
        # The per-process constants stencils take (see stencil_function.ARENA_BASE).
        self._arena_constants = {ARENA_BASE: arena.code_start, ARENA_SIZE: arena.code_size,
                                 ARENA_BODY: self.body_offset,
                                 ARENA_ENTRIES: ctypes.addressof(self._entries),
                                 ARENA_PAGES: page_table,
                                 ARENA_OUTSIDE: ~((page_count << PAGE_BITS) - 1)}

    @property
    def adapter_entries(self) -> int:
        """How many times code entered a block through its C entry adapter: from the
        run loop, from LLVM code, or a baseline block leaving for LLVM code and back.
        A hop from one baseline block to another does not count (it jumps body to
        body). Not exact with several threads running (a plain add)."""
        return self._entries[0]

    def chain_value(self, entry: int, baseline: bool) -> int:
        """What a baseline block's exit slot holds to jump to the code at ``entry``:
        a baseline block's body (its bits of TAIL_JUMP_TAG clear) or another entry
        tagged, which the stencil returns to its adapter (stencil_function.chain_jump)."""
        return entry + self.body_offset if baseline else entry | TAIL_JUMP_TAG

    def reset(self) -> None:
        """After the arena was reset: constant pools placed there are gone."""
        self._bound = {k: b for k, b in self._bound.items() if not b.pools}
        self._by_key = {}
        self._by_name = {}
        self._pool_copies = {}
        self.generation += 1

    def _cell(self, symbol: str) -> int:
        """Address of a cell holding ``symbol``'s address (stencils call through it)."""
        cell = self._cells.get(symbol)
        if cell is None:
            address = self.imports.get(symbol)
            if address is None and self.compile_accessors is not None:
                self.compile_accessors({symbol})
                address = self.imports.get(symbol)
            if address is None:
                raise Unsupported(f"stencil import {symbol!r} is not defined")
            array = (ctypes.c_uint64 * 1)(address)
            self._cell_arrays.append(array)
            cell = self._cells[symbol] = ctypes.addressof(array)
        return cell

    def _bind(self, name: str) -> _Bound:
        stencil = self.library.stencils[name]
        code = bytearray(stencil.code)
        keep, plan = [], []
        n_kept = 0
        remap = {}
        pools: list[int] = []
        placed: dict[str, int] = {}
        for i, operand in enumerate(stencil.operands):
            if operand.name.startswith(("imp.", "arena.")):
                continue
            remap[i] = n_kept
            n_kept += 1
            keep.append(operand)
            if operand.name.startswith("rodata."):
                pool = _pool(operand.name)
                address = placed.get(pool)
                if address is None:
                    address = placed[pool] = self.pool_copy(self.library.rodata[(name, pool)])
                pools.append(address + int(operand.name.split(".")[2]))
            else:
                plan.append(_plan(operand.name))
        holes = []
        for hole in stencil.holes:
            operand = stencil.operands[hole.operand]
            if operand.name.startswith("imp."):
                value = self._cell(operand.name[4:]) + hole.addend
                if hole.kind is HoleKind.ABS64:
                    struct.pack_into("<Q", code, hole.offset, value & (1 << 64) - 1)
                else:
                    raise Unsupported(f"stencil {name}: import {operand.name} is not 64-bit")
            elif operand.name.startswith("arena."):
                value = self._arena_constants[operand.name] + hole.addend
                if hole.kind is HoleKind.ABS64:
                    struct.pack_into("<Q", code, hole.offset, value & (1 << 64) - 1)
                elif hole.kind is HoleKind.ABS32 and 0 <= value < U31_LIMIT:
                    struct.pack_into("<I", code, hole.offset, value)
                else:
                    raise Unsupported(f"stencil {name}: {operand.name} = {value:#x} does "
                                      f"not fit its {hole.kind.value} hole")
            else:
                holes.append(Hole(hole.offset, remap[hole.operand], hole.kind, hole.addend))
        if name == "entry":  # (its call of the body lands on the NOPs)
            code += _nops(self.body_offset - len(code))
        parts = _StencilParts(name, tuple(keep), bytes(code), tuple(holes),
                              stencil.falls_through)
        bound = _Bound(parts, tuple(plan), tuple(pools))
        self._bound[name] = bound
        return bound

    def stencil(self, name: str) -> _Bound:
        bound = self._bound.get(name)
        return bound if bound is not None else self._bind(name)

    def prepare(self, block: Block) -> Prepared:
        """The emitter of each op of ``block`` (None for ops :meth:`emit` handles
        itself), compiling the shapes the library lacks, and what :meth:`emit` and the
        block's install need from its ops: its exit slots and their destinations, and
        whether it ends in an indirect jump. :func:`acc_plan` decides the input each
        stencil takes from %acc and whether it stores its result (both are part of
        its shape); one more pass selects the emitters and finds the exits.

        Raises:
            Unsupported: one cannot be a stencil, or the block has too many locals.
        """
        if len(block.locals) > SCRATCH_SLOTS // 2 and \
                sum(_local_slots(t) for t in block.locals) > SCRATCH_SLOTS:
            raise Unsupported(f"{block.name}: {len(block.locals)} locals")
        by_key = self._by_key
        emitters: list[Callable[..., bool] | None] = []
        append = emitters.append
        missing = []
        exits: dict[int, int] = {}
        indirect = False
        takes, stores = acc_plan(block.ops)
        for op, take, store in zip(block.ops, takes, stores, strict=True):
            name = op.name
            if name in _SELF_EMITTED:
                append(None)
                continue
            if name in _DEST_ARGS:
                args = op.args[:1]
                if name == "goto_tb":
                    exits[op.args[0]] = op.args[1]  # (the last goto_tb of a slot wins)
            elif name in LITERAL_COUNT_OPS and op.inputs[1].kind is _CONST:
                args = op.inputs[1].value  # (its stencil has the count: literal_input)
            else:
                if name == "lookup_and_goto_ptr":
                    indirect = True
                args = op.args
            key = (name, args, *map(_SHAPE, op.outputs), take, store,
                   *map(_SHAPE, op.inputs))
            emitter = by_key.get(key)
            if emitter is None:
                missing.append((len(emitters), key, op, take, store))
            append(emitter)
        if missing:
            self.library.ensure((op, take, store) for _, _, op, take, store in missing)
            for i, key, op, take, store in missing:
                emitter = by_key.get(key)
                if emitter is None:
                    name = stencil_name(shape_key(op, take, store))
                    if name in self.library.unsupported:
                        raise Unsupported(f"{block.name}: no stencil for "
                                          f"{shape_key(op, take, store)}")
                    emitter = self._by_name.get(name)
                    if emitter is None:
                        emitter = self._by_name[name] = _op_emitter(
                            self.stencil(name), op, self.library.emitter_code)
                    by_key[key] = emitter
                emitters[i] = emitter
            self.library.store_emitters()
        return Prepared(emitters, exits, indirect)

    def emit(self, block: Block, prepared: Prepared) -> EmittedBlock:
        """Emit ``block`` with the emitters :meth:`prepare` chose into the arena.

        Raises:
            ArenaFull: no room (nothing of the block was placed).
        """
        slots, counter, targets = self.block_data(sorted(prepared.exits), prepared.indirect)
        asm = Assembler()
        fixed = self._fixed
        if fixed is None:
            fixed = self._fixed = self._fixed_emitters()
        entry, heads, goto, exit_stencil = fixed
        entry(asm)
        n_insns = block.n_insns if self.count_insns else 0
        head = heads[(bool(counter), bool(n_insns))]
        if counter:
            if n_insns:
                head(asm, block.pc, counter, n_insns)
            else:
                head(asm, block.pc, counter)
        elif n_insns:
            head(asm, block.pc, n_insns)
        else:
            head(asm, block.pc)
        labels: dict[int, Label] = {}
        faults: dict[int, Label] = {}
        scratch = self.scratch_offset
        lo = _local_offsets(block, scratch)
        insn_pc = block.pc
        dead = False
        jumps: dict[int, int] = {}  # slot n -> offset of its direct jump's rel32
        for op, emit_op in zip(block.ops, prepared.emitters, strict=True):
            if emit_op is not None:
                if not dead:
                    if op.name == "goto_tb" and op.args[0] not in jumps:
                        # The direct jump a link patches (see patch_jump): its rel32
                        # 4-byte aligned, so one store retargets it; 0 goes on to
                        # the stencil (through the exit slot).
                        code = asm.code
                        code += _NOPS[-(len(code) + 1) % 4] + _JMP_NEXT
                        jumps[op.args[0]] = len(code) - 4
                    dead = emit_op(asm, op, lo, labels, faults, insn_pc, slots, counter,
                                   targets)
                continue
            name = op.name
            if name == "set_label":
                index = op.args[0].index
                label = labels.get(index)
                if label is None:
                    label = labels[index] = Label()
                asm.bind(label)
                dead = False
            elif dead:
                continue
            elif name == "insn_start":
                insn_pc = op.args[0]
            else:  # br
                index = op.args[0].index
                label = labels.get(index)
                if label is None:
                    label = labels[index] = Label()
                goto(asm, label)
                dead = True
        for pc, label in faults.items():
            asm.bind(label)
            exit_stencil(asm, pc, _EXCEPTION)
        entry = asm.finish(self.arena)
        for n, offset in jumps.items():
            _U64.from_address(slots[n] + 8).value = entry + offset
        return EmittedBlock(entry, len(asm.code), slots, counter, targets, prepared.exits)

    def block_data(self, slot_numbers: list[int], indirect: bool
                   ) -> tuple[dict[int, int], int, int]:
        """A block's data in the arena's data zone, initialised: its exit slots (slot n
        -> address), HOT counter and indirect-target profile (0: none). Each exit slot
        is followed by the address of its direct jump's rel32 (0: none), read back by
        the linker (:meth:`jump_of`): nothing kept per block in Python."""
        n_slots = len(slot_numbers)
        hot = self.hot_threshold
        data_size = 16 * n_slots + (8 if hot else 0) \
            + (8 * INDIRECT_TARGETS if hot and indirect else 0)
        # (exit slots, then the counter, then the targets: see free())
        data = self.arena.alloc_data(data_size, 8) if data_size else 0
        slots = {n: data + 16 * i for i, n in enumerate(slot_numbers)}
        counter = targets = 0  # (the slots are zero: fresh data-zone bytes read as zero)
        if hot:
            counter = data + 16 * n_slots
            _I32.from_address(counter).value = hot
            if indirect:
                targets = counter + 8
                ctypes.memset(targets, 0xFF, 8 * INDIRECT_TARGETS)
        return slots, counter, targets

    # -- what the baseline block cache (baseline_cache.py) needs to move code between
    # processes: the per-process values emitted code holds, by name.
    def process_values(self) -> dict[int, str]:
        """Every per-process 64-bit value the stencils bound so far put into code
        (import cells, arena constants), by value -> name (see :meth:`process_value`;
        "" for a value that two names have).
        Constant pools are not included: they are reached PC-relative (see
        :meth:`pool_ranges`)."""
        out: dict[int, str] = {}
        for name in self._bound:
            stencil = self.library.stencils[name]
            for hole in stencil.holes:
                operand = stencil.operands[hole.operand].name
                if operand.startswith("imp."):
                    base = self._cells[operand[4:]]
                elif operand.startswith("arena.") and operand not in _LAYOUT_CONSTANTS:
                    base = self._arena_constants[operand]
                else:
                    continue
                value = (base + hole.addend) & (1 << 64) - 1
                name = f"{operand}@{hole.addend}"
                # (two names of one value here may be two values elsewhere: "" says so)
                out[value] = name if out.get(value, name) == name else ""
        return out

    def process_value(self, name: str) -> int | None:
        """The value named by :meth:`process_values` in this process (None: unknown
        here). May compile a memory accessor an import cell needs."""
        operand, _, addend = name.rpartition("@")
        try:
            offset = int(addend)
        except ValueError:
            return None
        if operand.startswith("imp."):
            try:
                base = self._cell(operand[4:])
            except Unsupported:
                return None
        elif operand in self._arena_constants:
            base = self._arena_constants[operand]
        else:
            return None
        return (base + offset) & (1 << 64) - 1

    def pool_ranges(self) -> list[tuple[int, int]]:
        """Around each constant-pool address stencils reference (a pool's start plus
        the offset used), [start, end) wide enough for any PC-relative addend."""
        return [(address - 64, address + 64) for bound in self._bound.values()
                for address in bound.pools]

    def pools(self) -> list[tuple[int, bytes]]:
        """(address, bytes) of every constant pool the stencils bound so far placed."""
        return [(address, data) for data, address in self._pool_copies.items()]

    def pool_copy(self, data: bytes) -> int:
        """The address of the copy of constant-pool bytes ``data`` in the data zone
        (placed once per process and arena reset, 64-byte aligned). Stencils reach
        their pools there, and so do stored blocks that reached a pool in the process
        that emitted them (baseline_cache relocates their rel32 fields).

        Raises:
            ArenaFull: no room in the data zone.
        """
        address = self._pool_copies.get(data)
        if address is None:
            address = self.arena.alloc_data(max(len(data), 1), 64)
            self.arena.write(address, data)
            self._pool_copies[data] = address
        return address

    def layout_key(self) -> tuple:
        """What placed code relies on beyond the translator fingerprint: the entry
        adapter (its length fixes where bodies start, chain_value), the arena's code
        size and the flat-memory bounds (constants in code, not relocated)."""
        entry = self.library.stencils["entry"].code
        return (hashlib.sha256(entry).hexdigest()[:16], self.body_offset,
                self._arena_constants[ARENA_SIZE], self._arena_constants[ARENA_OUTSIDE],
                self.scratch_offset, self.hot_threshold, self.count_insns)

    def place(self, code: bytes | bytearray) -> int:
        """Copy a block's finished code into the arena (one piece); its address.

        Raises:
            ArenaFull: no room (nothing was written).
        """
        address = self.arena.alloc_code(len(code), 16)
        self.arena.write(address, code)
        return address

    def free(self, entry: int, size: int, slots: Mapping[int, int], counter: int,
             targets: int) -> None:
        """Give the code and data chunks of a block :meth:`emit` or :meth:`place` and
        :meth:`block_data` placed (its :class:`EmittedBlock`'s fields) back to the arena
        for reuse. Only when nothing
        can enter the block any more: unlinked, out of every lookup table and jump
        cache, no native frame running."""
        self.arena.free_code(entry, size)
        data_size = 16 * len(slots) + (8 if counter else 0) \
            + (8 * INDIRECT_TARGETS if targets else 0)
        if data_size:
            self.arena.free_data(min(slots.values()) if slots else counter, data_size)

    @staticmethod
    def jump_of(slot: int) -> int:
        """The address of the rel32 field of the direct jump of the exit whose slot is
        at ``slot`` (0: none; a second goto_tb of one slot goes through the slot)."""
        return _U64.from_address(slot + 8).value

    def patch_jump(self, address: int, body: int | None) -> None:
        """Point the direct jump whose rel32 field is at ``address`` to a baseline
        block's ``body``, or (None) back to its exit-slot path. One aligned 4-byte
        store through the arena's writable alias: code running on another thread sees
        the old jump or the new one (as QEMU's tb_set_jmp_target)."""
        _I32.from_address(address + self.arena.alias_delta).value = (
            0 if body is None else body - (address + 4))

    def _fixed_emitters(self) -> tuple:
        """The block-structure stencils' emitters: entry, heads by (counter, count),
        goto, exit."""
        stencil = self.stencil
        heads = {(counter, count): stencil("head" + ("_c" if counter else "")
                                           + ("_i" if count else "")).stencil.emit
                 for counter in (False, True) for count in (False, True)}
        return (stencil("entry").stencil.emit, heads, stencil("goto").stencil.emit,
                stencil("exit").stencil.emit)

    def disassemble(self, name: str, block: EmittedBlock) -> str:
        """``-d out_asm`` text of an emitted block (capstone)."""
        import capstone  # noqa: PLC0415 - only when logging

        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        code = self.arena.read(block.entry, block.size)
        lines = [f"OUT: host code for {name} [baseline, {block.size} bytes at "
                 f"{block.entry:#x}]"]
        lines += [f"  {i.address:#x}:  {i.mnemonic} {i.op_str}".rstrip()
                  for i in md.disasm(code, block.entry)]
        return "\n".join(lines) + "\n"


def _local_slots(t: Temp) -> int:
    """How many 8-byte scratch slots a block local takes (a v128 two)."""
    return t.type.bits // 64 or 1


def _local_offsets(block: Block, scratch: int) -> dict[str, int]:
    """Each block local's CPU-state offset in the scratch area: 8-byte slots in order,
    two for a v128 (the same as one slot each when the block has no vectors)."""
    offsets: dict[str, int] = {}
    offset = scratch
    for t in block.locals:
        offsets[t.name] = offset
        offset += 8 * _local_slots(t)
    return offsets


def _nops(n: int) -> bytes:
    """``n`` bytes of NOP instructions."""
    longest = len(_NOPS) - 1
    return _NOPS[longest] * (n // longest) + _NOPS[n % longest]


def _pool(operand: str) -> str:
    """'rodata.<section>' of a constant-pool hole 'rodata.<section>.<offset>'."""
    return operand.rsplit(".", 1)[0]


def _plan(name: str) -> tuple[str, int]:
    if name[0] in "sck" and name[1:].isdigit():
        return ("t", int(name[1:]))
    if name[0] == "L" and name[1:].isdigit():
        return ("L", int(name[1:]))
    return (name, 0)
