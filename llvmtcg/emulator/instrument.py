"""Instrumentation compiled into translated code: the guest architecture as the
embedding API runs it.

:class:`InstrumentedArch` wraps a :class:`GuestArch` and rewrites the IR of every block
it translates, as the current :class:`TranslationConfig` asks:

- ``until``: the fetch the translator sees ends at ``until``, so no block runs past it;
  a direct jump to ``until`` becomes a HALT exit with pc = ``until``, and an indirect
  one finds no code there (the lookup faults at ``until``): the emulator takes both as
  the normal end. No Python runs per block.
- ``count``: before each instruction, native code tests and decrements a budget in the
  CPU state (a field appended to the arch's layout) and leaves with
  :data:`EXCP_API_STOP` when it is exhausted: exact, and no Python per instruction.
- hooks: a helper call (into Python) before each instruction in a CODE (or MEM_FETCH)
  hook's range, at the start of each block in a BLOCK hook's range, before each load
  and store (and after each load, for MEM_READ_AFTER) when memory hooks exist; when no
  memory hook covers every address, the call is guarded by a compiled test of the
  access address against the hooks' ranges. With memory hooks, an atomic (RISC-V AMO
  and SC, AArch64 store-exclusive, LSE, CAS and the 128-bit pair) runs as Unicorn runs it — QEMU's
  single-threaded expansion: a load, the operation, a store, each access reported (the
  store's value is the one written, a failing compare-and-swap writes back what it
  read); a misaligned one faults as the atomic would. A legality probe alone
  (a failing RISC-V SC: ``is_store_probe``) is no access and reports nothing. A
  conditional hook (``when=``) gets its own call, guarded by a compiled compare of a
  register with a value. Without hooks nothing is emitted.
- dirty pages (for snapshots): before each store and atomic, the pages of its first
  and last byte are marked in a byte map and, when newly marked, appended to a list,
  so a restore copies back only what the guest wrote.
- inline instrumentation (no Python at all): an AFL-style edge-coverage map (at each
  block start ``map[cur ^ prev] += 1; prev = cur >> 1`` with ``cur`` the block's
  :func:`coverage_location`; repeated hits of one edge are combined, see
  ``_cover_edge``), 64-bit execution counters per block and per instruction
  (slots of a counter array the emulator grows), and a comparison log (the pc, operands
  and condition of every ``brcond``/``setcond`` of guest code, written to a ring
  buffer). They are ``host_ld``/``host_st`` ops on buffers whose addresses live in CPU
  state fields appended to the layout, so the emulator can move or swap a buffer
  without retranslating.

The configuration is part of :meth:`InstrumentedArch.fingerprint`; the emulator flushes
translations when it changes between runs, so a hook added or removed takes effect on
the next run, also in code translated before.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from llvmtcg.arch import Fetch, GuestArch
from llvmtcg.ir import I64, Block, Builder, Cond, ExitReason, IRError, Op, Temp, const
from llvmtcg.ir.builder import is_store_probe
from llvmtcg.ir.cpu_layout import PAGE_BITS, RUNTIME_FIELDS, RUNTIME_TAIL_FIELDS, CpuLayout
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.ir.types import V128, AtomicOp, FFlag, IRType, MemOp, RoundingMode, TempKind
from llvmtcg.log import Log
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.exits import Access, FaultKind, GuestFault, MemFault
from llvmtcg.runtime.helpers import HelperRegistry

# The exception index a block leaves with when the instruction budget is exhausted or
# a hook stopped the run (or moved pc): the emulator's own, beside the runtime's.
EXCP_API_STOP = 0x7FFF_0100
BUDGET_FIELD = "api_budget"  # instructions left to run (only read when counting)
# Instrumentation buffers (host addresses) and their cursors, appended to the layout.
COVERAGE_MAP_FIELD = "api_cov_map"  # the edge-coverage map's address
COVERAGE_PREV_FIELD = "api_cov_prev"  # AFL's prev_loc: the last block's location >> 1
# The coverage map's write combining: the last edge's cell and the hits not yet added
# to it (see InstrumentedArch._cover_edge).
COVERAGE_CELL_FIELD = "api_cov_cell"
COVERAGE_COUNT_FIELD = "api_cov_count"
COUNTS_FIELD = "api_counts"  # the counter array's address (u64 per slot)
CMPLOG_FIELD = "api_cmp_ring"  # the comparison log's address (CMPLOG_ENTRY bytes each)
CMPLOG_HEAD_FIELD = "api_cmp_head"  # records written since the log was reset
# Dirty-page tracking for snapshots: a byte per guest page (1: written since the last
# snapshot or restore) and the list of those pages, in the order first written.
DIRTY_MAP_FIELD = "api_dirty_map"
DIRTY_LIST_FIELD = "api_dirty_list"
DIRTY_COUNT_FIELD = "api_dirty_count"  # pages listed; DIRTY_LIST_CAPACITY: overflowed
DIRTY_LIST_CAPACITY = 4096
API_FIELDS = (BUDGET_FIELD, COVERAGE_MAP_FIELD, COVERAGE_PREV_FIELD, COVERAGE_CELL_FIELD,
              COVERAGE_COUNT_FIELD, COUNTS_FIELD,
              CMPLOG_FIELD, CMPLOG_HEAD_FIELD, DIRTY_MAP_FIELD, DIRTY_LIST_FIELD,
              DIRTY_COUNT_FIELD)
# A comparison-log record: pc, first operand, second operand, info (u64 each); info is
# the condition's index in CONDITIONS | the operands' width in bits << 8.
CMPLOG_ENTRY = 32
CONDITIONS = tuple(Cond)
_INVERSE = {Cond.EQ: Cond.NE, Cond.NE: Cond.EQ, Cond.LT: Cond.GE, Cond.GE: Cond.LT,
            Cond.LE: Cond.GT, Cond.GT: Cond.LE, Cond.LTU: Cond.GEU, Cond.GEU: Cond.LTU,
            Cond.LEU: Cond.GTU, Cond.GTU: Cond.LEU}

# One range of guest addresses, inclusive at both ends as Unicorn's hook ranges are.
Range = tuple[int, int]
# The helpers instrumentation calls; the emulator implements them (HookTarget).
HELPER_CODE = HelperDecl("api_code", None, (I64, I64),
                         HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)
HELPER_BLOCK = HelperDecl("api_block", None, (I64, I64),
                          HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)
HELPER_MEM = HelperDecl("api_mem", None, (I64, I64, I64, I64),
                        HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)
# A conditional hook's call: (hook handle, pc, size).
HELPER_WHEN = HelperDecl("api_when", None, (I64, I64, I64),
                         HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)
# api_mem's info argument: the access size | MEM_INFO_WRITE for stores, MEM_INFO_AFTER
# for a call after a load (with the value loaded), MEM_INFO_FETCH for an instruction
# fetch.
MEM_INFO_WRITE, MEM_INFO_AFTER, MEM_INFO_FETCH = 1 << 8, 1 << 9, 1 << 10


@dataclass(frozen=True, slots=True)
class WhenHook:
    """A conditional CODE or BLOCK hook as the translator compiles it: call
    ``api_when(handle, pc, size)`` at the instructions (blocks) in [begin, end] when
    ``register_global cond value`` holds."""

    handle: int
    block: bool  # at block starts (BLOCK), else before instructions (CODE)
    begin: int
    end: int
    register_global: str
    cond: Cond
    value: int


@dataclass(frozen=True, slots=True)
class TranslationConfig:
    """What the translator inserts into code (the part of the hook set and run
    arguments that changes translations)."""

    until: int | None = None
    counting: bool = False
    code_ranges: tuple[Range, ...] = ()
    block_ranges: tuple[Range, ...] = ()
    # Memory hooks by access: the address ranges (empty: no hook; ((1, 0),): all).
    read_ranges: tuple[Range, ...] = ()
    write_ranges: tuple[Range, ...] = ()
    read_after_ranges: tuple[Range, ...] = ()
    fetch_ranges: tuple[Range, ...] = ()
    when_hooks: tuple[WhenHook, ...] = ()
    coverage_bits: int = 0  # log2 of the coverage map's size; 0: no coverage
    block_count_ranges: tuple[Range, ...] = ()
    insn_count_ranges: tuple[Range, ...] = ()
    cmplog_bits: int = 0  # log2 of the comparison log's records; 0: no log
    dirty_pages: int = 0  # pages the dirty map covers (a power of two); 0: no tracking

    @property
    def instruments(self) -> bool:
        """Whether blocks are rewritten at all."""
        return self != _PLAIN


def coverage_location(pc: int, bits: int) -> int:
    """A block's location in a coverage map of ``1 << bits`` bytes (AFL's QEMU mode:
    ``(pc >> 4) ^ (pc << 8)``, masked); the edge A -> B increments
    ``map[location(B) ^ (location(A) >> 1)]``."""
    return ((pc >> 4) ^ (pc << 8)) & ((1 << bits) - 1)


_PLAIN = TranslationConfig()
# The guest stores: op -> (address, memop).
_STORES: dict[str, Callable[[Op], tuple[Temp, MemOp]]] = {
    "qemu_st": lambda op: (op.inputs[1], op.args[0]),
    "atomic_cmpxchg": lambda op: (op.inputs[0], op.args[0]),
    "atomic_rmw": lambda op: (op.inputs[0], op.args[1]),
    "atomic_cmpxchg_pair": lambda op: (op.inputs[0], op.args[0]),  # (one page: aligned)
}


# An atomic read-modify-write's operation on (memory, operand), as the hooked expansion
# computes it: a plain op, or the condition a min/max selects memory's value on (the
# operands extended as signed or unsigned from the access size first).
_RMW_OPS = {AtomicOp.ADD: "add", AtomicOp.AND: "and_", AtomicOp.OR: "or_",
            AtomicOp.XOR: "xor"}
_RMW_SELECT = {AtomicOp.SMIN: (Cond.LT, True), AtomicOp.SMAX: (Cond.GT, True),
               AtomicOp.UMIN: (Cond.LTU, False), AtomicOp.UMAX: (Cond.GTU, False)}
_EXTEND = {(0, True): "ext8s", (1, True): "ext16s", (2, True): "ext32s",
           (0, False): "ext8u", (1, False): "ext16u", (2, False): "ext32u"}


def in_ranges(ranges: tuple[Range, ...], address: int) -> bool:
    """Whether ``address`` is in one of ``ranges`` (begin > end: every address)."""
    return any(begin > end or begin <= address <= end for begin, end in ranges)


def _covers(begin: int, end: int, address: int) -> bool:
    return begin > end or begin <= address <= end


class HookTarget(enum.Enum):
    """Which handler a helper calls (the emulator implements them)."""

    CODE = "code"
    BLOCK = "block"
    MEM = "mem"
    WHEN = "when"
    COUNTER_SLOT = "counter_slot"  # (block: bool, pc) -> the slot of its counter


def extended_layout(layout: CpuLayout) -> CpuLayout:
    """``layout`` with the budget field appended: every existing field keeps its
    offset, so the frontend's globals (made from ``layout``) stay valid."""
    runtime = {name for name, _ in (*RUNTIME_FIELDS, *RUNTIME_TAIL_FIELDS)}
    guest = [(f.name, f.type, f.count) for f in layout.fields.values() if f.name not in runtime]
    extended = CpuLayout(guest, n_mmu_idx=layout.n_mmu_idx, tlb_bits=layout.tlb_bits,
                         extra_fields=[(name, I64, 1) for name in API_FIELDS])
    for name, field_ in layout.fields.items():
        if extended.fields[name].offset != field_.offset:
            raise AssertionError(f"extending the layout moved field {name!r}")
    return extended


class InstrumentedArch(GuestArch):
    """``base`` with the emulator's instrumentation (see the module docstring).

    Args:
        base: the architecture and CPU model to run.
        handlers: the emulator's hook handlers, called from native code through helpers:
            CODE and BLOCK get ``(cpu, pc, size)``, MEM gets ``(cpu, pc, info, addr,
            value)``.
    """

    def __init__(self, base: GuestArch,
                 handlers: dict[HookTarget, Callable[..., None]]) -> None:
        self.base = base
        self.name = base.name  # type: ignore[misc] - per instance, not per class
        self.elf_machine = base.elf_machine  # type: ignore[misc]
        self.elf_class = base.elf_class  # type: ignore[misc]
        self.elf_data = base.elf_data  # type: ignore[misc]
        self.registers = base.registers  # type: ignore[misc]
        self.counts_insns = base.counts_insns  # type: ignore[misc]
        self.exception_events = base.exception_events  # type: ignore[misc]
        self.fp_control = base.fp_control  # type: ignore[misc]
        self.layout = extended_layout(base.layout)  # type: ignore[misc]
        self._globals = self.layout.globals()
        self._handlers = handlers
        self.config = TranslationConfig()
        # The last fetch that faulted, (address, size): a MEM_FETCH_* hook's arguments.
        self.last_fetch_fault: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"InstrumentedArch({self.base!r})"

    # -- translation ----------------------------------------------------------------------
    def insn_length(self, first_parcel: int) -> int:
        return self.base.insn_length(first_parcel)

    def helpers(self) -> HelperRegistry:
        registry = self.base.helpers()
        # (raw: the handlers are the ctypes callbacks, one Python frame per event)
        registry.register(HELPER_CODE, self._handlers[HookTarget.CODE], raw=True)
        registry.register(HELPER_BLOCK, self._handlers[HookTarget.BLOCK], raw=True)
        registry.register(HELPER_MEM, self._handlers[HookTarget.MEM], raw=True)
        registry.register(HELPER_WHEN, self._handlers[HookTarget.WHEN], raw=True)
        return registry

    def fingerprint(self) -> tuple:
        return (*self.base.fingerprint(), "api", self.config)

    def translate(self, pc: int, flags: int, fetch: Fetch, log: Log | None = None) -> Block:
        config = self.config
        until = config.until

        def fetch_before_until(addr: int, size: int) -> bytes:
            if until is not None and addr <= until < addr + size:
                # The code at `until` is never translated: the run stops before it.
                self.last_fetch_fault = (addr, size)
                raise GuestFault(MemFault(until, Access.FETCH, FaultKind.UNMAPPED))
            try:
                return fetch(addr, size)
            except GuestFault:
                self.last_fetch_fault = (addr, size)
                raise

        block = self.base.translate(pc, flags, fetch_before_until, log)
        if config.instruments:
            self._instrument(block, config)
        return block

    def register_global(self, reg: enum.IntEnum) -> str | None:
        return self.base.register_global(reg)

    def _split_v128_accesses(self, b: Builder, block: Block) -> None:
        """Rewrite 16-byte accesses (qemu_ld/qemu_st of a v128 global) as the two
        doubleword accesses they are made of, so memory hooks and dirty-page marking
        see each 8-byte access as before the 16-byte op existed (a load's halves are
        written after both loads succeeded)."""
        if not any(op.name in ("qemu_ld", "qemu_st") and (op.outputs or op.inputs)[0].type
                   is V128 for op in block.ops):
            return
        halves = {t.offset: t for t in self._globals.values()
                  if t.type is I64 and t.kind is TempKind.GLOBAL}
        lo, hi, addr_hi = b.temp(I64), b.temp(I64), b.temp(I64)
        ops, block.ops = block.ops, []
        for op in ops:
            if op.name not in ("qemu_ld", "qemu_st") \
                    or (vector := (op.outputs or op.inputs)[0]).type is not V128:
                block.ops.append(op)
                continue
            if vector.kind is not TempKind.GLOBAL or vector.offset + 8 not in halves:
                raise IRError(f"{op}: a 16-byte access of a block-local vector "
                                      "cannot be split for memory hooks")
            low, high = halves[vector.offset], halves[vector.offset + 8]
            memop, mmu_idx = op.args
            addr = op.inputs[-1]
            if op.name == "qemu_ld":
                b.qemu_ld(lo, addr, memop, mmu_idx)
                b.add(addr_hi, addr, const(I64, 8))
                b.qemu_ld(hi, addr_hi, memop, mmu_idx)
                b.mov(low, lo)
                b.mov(high, hi)
            else:
                b.qemu_st(low, addr, memop, mmu_idx)
                b.add(addr_hi, addr, const(I64, 8))
                b.qemu_st(high, addr_hi, memop, mmu_idx)

    def _instrument(self, block: Block, config: TranslationConfig) -> None:
        """Insert the budget check, inline instrumentation and hook calls into
        ``block``'s ops."""
        starts = [op.args[0] for op in block.ops if op.name == "insn_start"]
        ends = [*starts[1:], block.pc + block.guest_size]
        size_of = {start: end - start for start, end in zip(starts, ends, strict=True)}
        b = Builder(block.pc, self._globals)
        b.block = block  # emit into the block itself (its temps and labels stay unique)
        g = self._globals
        budget = g[BUDGET_FIELD]
        # Scratch temps shared by every insertion (a baseline block has a bounded number
        # of local slots): two for the instrumentation, one for the address after a load.
        scratch = (b.temp(I64), b.temp(I64))
        saved_address = b.temp(I64)
        page = b.temp(I64)  # (dirty-page marking; a third scratch for the coverage map)
        mem_hooks = bool(config.read_ranges or config.write_ranges or config.read_after_ranges)
        atomic_temps: dict[IRType, tuple[Temp, Temp, Temp]] = {}  # (hooked atomics)
        if mem_hooks or config.dirty_pages:
            self._split_v128_accesses(b, block)
        ops, block.ops = block.ops, []
        first = True
        pc = block.pc
        for op in ops:
            if op.name == "goto_tb" and op.args[1] == config.until:
                # Stop at `until` without a lookup there (which would fault, slowly).
                b.mov(g["pc"], const(I64, config.until))
                b.exit_tb(ExitReason.HALT)
                continue
            after_load = None
            if op.name == "qemu_ld":
                if config.read_ranges:
                    self._mem_hook_call(b, scratch, pc, op.args[0].size, op.inputs[0],
                                        const(I64, 0), config.read_ranges)
                if config.read_after_ranges:
                    after_load = saved_address  # (the load may overwrite its address)
                    b.mov(after_load, op.inputs[0])
            elif op.name == "qemu_st" and config.write_ranges:
                value, addr = op.inputs
                self._mem_hook_call(b, scratch, pc, op.args[0].size | MEM_INFO_WRITE, addr,
                                    value, config.write_ranges)
            elif op.name in ("brcond", "setcond") and config.cmplog_bits:
                self._log_compare(b, scratch, pc, op, config.cmplog_bits)
            if config.dirty_pages and op.name in _STORES:
                addr, memop = _STORES[op.name](op)
                self._mark_dirty(b, scratch, page, addr, 0, config.dirty_pages)
                if memop.size > 1:  # (a store crossing into the next page)
                    self._mark_dirty(b, scratch, page, addr, memop.size - 1,
                                     config.dirty_pages)
            if mem_hooks and op.name == "atomic_cmpxchg_pair":
                if I64 not in atomic_temps:
                    atomic_temps[I64] = (b.temp(I64), b.temp(I64), b.temp(I64))
                self._hooked_pair(b, scratch, saved_address, atomic_temps[I64], page, pc, op,
                                  config)
                continue
            if (mem_hooks and op.name in ("atomic_rmw", "atomic_cmpxchg")
                    and not is_store_probe(op)):
                type_ = op.outputs[0].type
                if type_ not in atomic_temps:
                    atomic_temps[type_] = (b.temp(type_), b.temp(type_), b.temp(type_))
                self._hooked_atomic(b, scratch, saved_address, atomic_temps[type_], pc, op,
                                    config)
                continue
            block.ops.append(op)
            if after_load is not None:
                self._mem_hook_call(b, scratch, pc, op.args[0].size | MEM_INFO_AFTER,
                                    after_load, op.outputs[0], config.read_after_ranges)
            if op.name != "insn_start":
                continue
            pc = op.args[0]
            size = size_of[pc]
            # Unicorn's order: the block hook, then the budget (a block whose first
            # instruction is not run still reports itself), then the code hook.
            if first:
                if config.coverage_bits:
                    self._cover_edge(b, scratch, page,
                                     coverage_location(pc, config.coverage_bits))
                if in_ranges(config.block_count_ranges, pc):
                    self._count(b, scratch, self._handlers[HookTarget.COUNTER_SLOT](True, pc))
                if in_ranges(config.block_ranges, pc):
                    self._hook_call(b, pc, HELPER_BLOCK, (const(I64, pc),
                                                          const(I64, block.guest_size)))
                for hook in config.when_hooks:
                    if hook.block and _covers(hook.begin, hook.end, pc):
                        self._when_call(b, hook, pc, block.guest_size)
            if config.counting:
                go_on = b.label()
                b.brcond(Cond.NE, budget, const(I64, 0), go_on)
                b.raise_exception(EXCP_API_STOP, pc)
                b.set_label(go_on)
                b.sub(budget, budget, const(I64, 1))
            if in_ranges(config.insn_count_ranges, pc):
                self._count(b, scratch, self._handlers[HookTarget.COUNTER_SLOT](False, pc))
            if in_ranges(config.fetch_ranges, pc):
                b.call(HELPER_MEM.name, (), (const(I64, pc), const(I64, size | MEM_INFO_FETCH),
                                             const(I64, pc), const(I64, 0)))
            if in_ranges(config.code_ranges, pc):
                self._hook_call(b, pc, HELPER_CODE, (const(I64, pc), const(I64, size)))
            for hook in config.when_hooks:
                if not hook.block and _covers(hook.begin, hook.end, pc):
                    self._when_call(b, hook, pc, size)
            first = False

    def _cover_edge(self, b: Builder, scratch: tuple[Temp, Temp], spare: Temp,
                    location: int) -> None:
        """AFL's edge count, map[location ^ prev] += 1 (wrapping), then prev =
        location >> 1 — write-combined: hits of the same edge as the last one are
        counted in a CPU-state field, added to the map when another edge comes (and by
        the emulator after the run, and before it calls Python). In a hot region the
        fields are registers, so a loop that takes one edge keeps no chain of
        read-modify-writes of one map byte (each waiting for the last store)."""
        g = self._globals
        prev, base = g[COVERAGE_PREV_FIELD], g[COVERAGE_MAP_FIELD]
        last, count = g[COVERAGE_CELL_FIELD], g[COVERAGE_COUNT_FIELD]
        edge, address = scratch
        same = b.label()
        b.xor(edge, prev, const(I64, location))
        b.brcond(Cond.EQ, edge, last, same)
        b.add(address, last, base)
        b.host_ld(spare, address, 1)
        b.add(spare, spare, count)
        b.host_st(spare, address, 1)
        b.mov(last, edge)
        b.mov(count, const(I64, 0))
        b.set_label(same)
        b.add(count, count, const(I64, 1))
        b.mov(prev, const(I64, location >> 1))

    def _mark_dirty(self, b: Builder, scratch: tuple[Temp, Temp], page: Temp, addr: Temp,
                    offset: int, pages: int) -> None:
        """If the page of addr + offset is not marked dirty, mark it and list it (the
        list saturates at DIRTY_LIST_CAPACITY: the restore then copies everything)."""
        g = self._globals
        cell, value = scratch
        done = b.label()
        if offset:
            b.add(page, addr, const(I64, offset))
            b.shr(page, page, const(I64, PAGE_BITS))
        else:
            b.shr(page, addr, const(I64, PAGE_BITS))
        b.and_(page, page, const(I64, pages - 1))  # (a wild address: a harmless mark)
        b.add(cell, page, g[DIRTY_MAP_FIELD])
        b.host_ld(value, cell, 1)
        b.brcond(Cond.NE, value, const(I64, 0), done)
        b.host_st(const(I64, 1), cell, 1)
        count = g[DIRTY_COUNT_FIELD]
        b.brcond(Cond.GEU, count, const(I64, DIRTY_LIST_CAPACITY), done)
        b.shl(cell, count, const(I64, 3))
        b.add(cell, cell, g[DIRTY_LIST_FIELD])
        b.host_st(page, cell, 8)
        b.add(count, count, const(I64, 1))
        b.set_label(done)

    def _count(self, b: Builder, scratch: tuple[Temp, Temp], slot: int) -> None:
        """counts[slot] += 1 (the slot's offset is a constant operand, not an op
        argument, so the baseline tier needs one stencil whatever the slot)."""
        cell, count = scratch
        b.add(cell, self._globals[COUNTS_FIELD], const(I64, slot * 8))
        b.host_ld(count, cell, 8)
        b.add(count, count, const(I64, 1))
        b.host_st(count, cell, 8)

    def _log_compare(self, b: Builder, scratch: tuple[Temp, Temp], pc: int, op: Op,
                     bits: int) -> None:
        """Append (pc, a, b, info) to the comparison log's ring (oldest overwritten)."""
        g = self._globals
        head, ring = g[CMPLOG_HEAD_FIELD], g[CMPLOG_FIELD]
        a, c = op.inputs[0], op.inputs[1]
        width = a.type.bits
        cond = op.args[0]
        record, wide = scratch
        b.and_(record, head, const(I64, (1 << bits) - 1))
        b.shl(record, record, const(I64, CMPLOG_ENTRY.bit_length() - 1))
        b.add(record, record, ring)
        b.host_st(const(I64, pc), record, 8, 0)
        for temp, offset in ((a, 8), (c, 16)):
            if temp.type is not I64:
                b.ext_i32_i64(wide, temp, signed=False)
                temp = wide
            b.host_st(temp, record, 8, offset)
        b.host_st(const(I64, CONDITIONS.index(cond) | width << 8), record, 8, 24)
        b.add(head, head, const(I64, 1))

    def _when_call(self, b: Builder, hook: WhenHook, pc: int, size: int) -> None:
        """Call api_when(handle, pc, size) if the hook's predicate holds."""
        register = self._globals[hook.register_global]
        skip = b.label()
        b.brcond(_INVERSE[hook.cond], register,
                 const(register.type, hook.value & register.type.mask), skip)
        self._hook_call(b, pc, HELPER_WHEN,
                        (const(I64, hook.handle), const(I64, pc), const(I64, size)))
        b.set_label(skip)

    def _hook_call(self, b: Builder, pc: int, helper: HelperDecl, args: tuple[Temp, ...]) -> None:
        """Call a CODE/BLOCK hook helper with the guest's pc stored first (what the
        callback reads); if the callback moved pc, leave for the run loop, which
        continues there (a stop leaves through the helper's raised exception)."""
        pc_global = self._globals["pc"]
        b.mov(pc_global, const(I64, pc))
        b.call(helper.name, (), args)
        same = b.label()
        b.brcond(Cond.EQ, pc_global, const(I64, pc), same)
        b.exit_tb(ExitReason.LOOKUP)
        b.set_label(same)

    def _hooked_atomic(self, b: Builder, scratch: tuple[Temp, Temp], address: Temp,
                       temps: tuple[Temp, Temp, Temp], pc: int, op: Op,
                       config: TranslationConfig) -> None:
        """``op`` (an atomic) as Unicorn runs it, its accesses reported: the read hook,
        the load (and the read-after hook), the new value, the write hook, the store;
        a misaligned address faults as the atomic would (before the load)."""
        old = op.outputs[0]
        if op.name == "atomic_rmw":
            kind, memop, mmu_idx = op.args
            value, expected = op.inputs[1], None
        else:
            memop, mmu_idx = op.args
            expected, value = op.inputs[1], op.inputs[2]
        new, x, y = temps
        size = memop.size
        b.mov(address, op.inputs[0])  # (the load may overwrite the register it came from)
        if config.read_ranges:
            self._mem_hook_call(b, scratch, pc, size, address, const(I64, 0),
                                config.read_ranges)
        if size > 1:  # misaligned: fault as the atomic does (the load would as a load)
            aligned = b.label()
            b.and_(scratch[0], address, const(I64, size - 1))
            b.brcond(Cond.EQ, scratch[0], const(I64, 0), aligned)
            b.probe_store(new, address, memop, mmu_idx)
            b.set_label(aligned)
        b.qemu_ld(old, address, memop, mmu_idx)
        if config.read_after_ranges:
            self._mem_hook_call(b, scratch, pc, size | MEM_INFO_AFTER, address, old,
                                config.read_after_ranges)
        if expected is not None:  # compare at the access width; a mismatch writes back
            self._extend(b, x, old, memop.size_log2, signed=False)
            self._extend(b, y, expected, memop.size_log2, signed=False)
            b.movcond(Cond.EQ, new, x, y, value, old)
        elif kind is AtomicOp.XCHG:
            b.mov(new, value)
        elif kind in _RMW_OPS:
            getattr(b, _RMW_OPS[kind])(new, old, value)
        else:
            cond, signed = _RMW_SELECT[kind]
            self._extend(b, x, old, memop.size_log2, signed)
            self._extend(b, y, value, memop.size_log2, signed)
            b.movcond(cond, new, x, y, x, y)
        if config.write_ranges:
            self._mem_hook_call(b, scratch, pc, size | MEM_INFO_WRITE, address, new,
                                config.write_ranges)
        b.qemu_st(new, address, memop, mmu_idx)

    def _hooked_pair(self, b: Builder, scratch: tuple[Temp, Temp], address: Temp,
                     temps: tuple[Temp, Temp, Temp], spare: Temp, pc: int, op: Op,
                     config: TranslationConfig) -> None:
        """A 128-bit compare-and-swap as Unicorn runs it: two doubleword loads, then two
        stores (of the new pair, or of what was read), each reported; a misaligned
        address faults as the atomic does (which then runs, and faults)."""
        old_lo, old_hi = op.outputs
        expected_lo, expected_hi, new_lo, new_hi = op.inputs[1:]
        memop, mmu_idx = op.args
        half = MemOp(3, big_endian=memop.big_endian)
        high, out_lo, out_hi = temps
        aligned = b.label()
        b.and_(scratch[0], op.inputs[0], const(I64, 15))
        b.brcond(Cond.EQ, scratch[0], const(I64, 0), aligned)
        b.block.ops.append(op)  # (misaligned: faults before any access)
        b.set_label(aligned)
        b.mov(address, op.inputs[0])
        b.add(high, address, const(I64, 8))
        for where, old in ((address, old_lo), (high, old_hi)):
            if config.read_ranges:
                self._mem_hook_call(b, scratch, pc, 8, where, const(I64, 0), config.read_ranges)
            b.qemu_ld(old, where, half, mmu_idx)
            if config.read_after_ranges:
                self._mem_hook_call(b, scratch, pc, 8 | MEM_INFO_AFTER, where, old,
                                    config.read_after_ranges)
        b.xor(spare, old_lo, expected_lo)
        b.xor(scratch[1], old_hi, expected_hi)
        b.or_(spare, spare, scratch[1])
        b.movcond(Cond.EQ, out_lo, spare, const(I64, 0), new_lo, old_lo)
        b.movcond(Cond.EQ, out_hi, spare, const(I64, 0), new_hi, old_hi)
        for where, out in ((address, out_lo), (high, out_hi)):
            if config.write_ranges:
                self._mem_hook_call(b, scratch, pc, 8 | MEM_INFO_WRITE, where, out,
                                    config.write_ranges)
            b.qemu_st(out, where, half, mmu_idx)

    @staticmethod
    def _extend(b: Builder, dst: Temp, src: Temp, size_log2: int, signed: bool) -> None:
        """dst = the low ``1 << size_log2`` bytes of src, extended."""
        if 8 << size_log2 >= dst.type.bits:
            b.mov(dst, src)
        else:
            getattr(b, _EXTEND[size_log2, signed])(dst, src)

    @staticmethod
    def _mem_hook_call(b: Builder, scratch: tuple[Temp, Temp], pc: int, info: int,
                       addr: Temp, value: Temp, ranges: tuple[Range, ...]) -> None:
        """Call api_mem(pc, info, addr, value) (info: access size and MEM_INFO_* bits),
        only for an address in ``ranges`` unless one of them covers every address."""
        offset, wide = scratch
        if value.type is not I64:
            b.ext_i32_i64(wide, value, signed=False)
            value = wide
        everything = any(begin > end for begin, end in ranges)
        skip = None
        if not everything:
            hit, skip = b.label(), b.label()
            for begin, end in ranges:
                b.sub(offset, addr, const(I64, begin))
                b.brcond(Cond.LEU, offset, const(I64, end - begin), hit)
            b.br(skip)
            b.set_label(hit)
        b.call(HELPER_MEM.name, (), (const(I64, pc), const(I64, info), addr, value))
        if skip is not None:
            b.set_label(skip)

    # -- everything else is the base architecture's ------------------------------------
    def tb_flags(self, state: CpuState) -> int:
        return self.base.tb_flags(state)

    def mmu_index(self, state: CpuState) -> int:
        return self.base.mmu_index(state)

    def reset(self, state: CpuState) -> None:
        self.base.reset(state)

    def reg_read(self, state: CpuState, reg: enum.IntEnum | int | str) -> int:
        return self.base.reg_read(state, reg)

    def reg_write(self, state: CpuState, reg: enum.IntEnum | int | str, value: int) -> None:
        self.base.reg_write(state, reg, value)

    def fp_rounding(self, state: CpuState) -> RoundingMode:
        return self.base.fp_rounding(state)

    def fp_accrue(self, state: CpuState, flags: FFlag) -> None:
        self.base.fp_accrue(state, flags)

    def exec_interrupt(self, state: CpuState) -> bool:
        return self.base.exec_interrupt(state)

    def do_interrupt(self, state: CpuState, exception_index: int) -> None:
        self.base.do_interrupt(state, exception_index)
