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
- hooks: a helper call (into Python) before each instruction in a CODE hook's range, at
  the start of each block in a BLOCK hook's range, before each load and store (and
  after each load, for MEM_READ_AFTER) when memory hooks exist. Without hooks nothing
  is emitted.

The configuration is part of :meth:`InstrumentedArch.fingerprint`; the emulator flushes
translations when it changes between runs, so a hook added or removed takes effect on
the next run, also in code translated before.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from llvmtcg.arch import Fetch, GuestArch
from llvmtcg.ir import I64, Block, Builder, Cond, ExitReason, Temp, const
from llvmtcg.ir.cpu_layout import RUNTIME_FIELDS, RUNTIME_TAIL_FIELDS, CpuLayout
from llvmtcg.ir.helper_decl import HelperDecl, HelperFlag
from llvmtcg.ir.types import FFlag, RoundingMode
from llvmtcg.log import Log
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.exits import Access, FaultKind, GuestFault, MemFault
from llvmtcg.runtime.helpers import HelperRegistry

# The exception index a block leaves with when the instruction budget is exhausted or
# a hook stopped the run (or moved pc): the emulator's own, beside the runtime's.
EXCP_API_STOP = 0x7FFF_0100
BUDGET_FIELD = "api_budget"  # instructions left to run (only read when counting)

# One range of guest addresses, inclusive at both ends as Unicorn's hook ranges are.
Range = tuple[int, int]
# The helpers instrumentation calls; the emulator implements them (HookTarget).
HELPER_CODE = HelperDecl("api_code", None, (I64, I64),
                         HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)
HELPER_BLOCK = HelperDecl("api_block", None, (I64, I64),
                          HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)
HELPER_MEM = HelperDecl("api_mem", None, (I64, I64, I64, I64),
                        HelperFlag.TAKES_CPU | HelperFlag.MAY_RAISE)
# api_mem's info argument: the access size | MEM_INFO_WRITE for stores, MEM_INFO_AFTER
# for a call after a load (with the value loaded).
MEM_INFO_WRITE, MEM_INFO_AFTER = 1 << 8, 1 << 9
MEMORY_READS, MEMORY_WRITES, MEMORY_READS_AFTER = 1, 2, 4  # TranslationConfig.memory_hooks


@dataclass(frozen=True, slots=True)
class TranslationConfig:
    """What the translator inserts into code (the part of the hook set and run
    arguments that changes translations)."""

    until: int | None = None
    counting: bool = False
    code_ranges: tuple[Range, ...] = ()
    block_ranges: tuple[Range, ...] = ()
    memory_hooks: int = 0  # MEMORY_* bits: which accesses call a hook


def in_ranges(ranges: tuple[Range, ...], address: int) -> bool:
    """Whether ``address`` is in one of ``ranges`` (begin > end: every address)."""
    return any(begin > end or begin <= address <= end for begin, end in ranges)


class HookTarget(enum.Enum):
    """Which handler a helper calls (the emulator implements them)."""

    CODE = "code"
    BLOCK = "block"
    MEM = "mem"


def extended_layout(layout: CpuLayout) -> CpuLayout:
    """``layout`` with the budget field appended: every existing field keeps its
    offset, so the frontend's globals (made from ``layout``) stay valid."""
    runtime = {name for name, _ in (*RUNTIME_FIELDS, *RUNTIME_TAIL_FIELDS)}
    guest = [(f.name, f.type, f.count) for f in layout.fields.values() if f.name not in runtime]
    extended = CpuLayout(guest, n_mmu_idx=layout.n_mmu_idx, tlb_bits=layout.tlb_bits,
                         extra_fields=[(BUDGET_FIELD, I64, 1)])
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
        registry.register(HELPER_CODE, self._handlers[HookTarget.CODE])
        registry.register(HELPER_BLOCK, self._handlers[HookTarget.BLOCK])
        registry.register(HELPER_MEM, self._handlers[HookTarget.MEM])
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
        if (until is not None or config.counting or config.code_ranges
                or config.block_ranges or config.memory_hooks):
            self._instrument(block, config)
        return block

    def _instrument(self, block: Block, config: TranslationConfig) -> None:
        """Insert the budget check and hook calls into ``block``'s ops."""
        starts = [op.args[0] for op in block.ops if op.name == "insn_start"]
        ends = [*starts[1:], block.pc + block.guest_size]
        size_of = {start: end - start for start, end in zip(starts, ends, strict=True)}
        b = Builder(block.pc, self._globals)
        b.block = block  # emit into the block itself (its temps and labels stay unique)
        budget = self._globals[BUDGET_FIELD]
        ops, block.ops = block.ops, []
        first = True
        pc = block.pc
        for op in ops:
            if op.name == "goto_tb" and op.args[1] == config.until:
                # Stop at `until` without a lookup there (which would fault, slowly).
                b.mov(self._globals["pc"], const(I64, config.until))
                b.exit_tb(ExitReason.HALT)
                continue
            after_load = None
            if op.name == "qemu_ld":
                if config.memory_hooks & MEMORY_READS:
                    self._mem_hook_call(b, pc, op.args[0].size, op.inputs[0], const(I64, 0))
                if config.memory_hooks & MEMORY_READS_AFTER:
                    after_load = b.temp(I64)  # the address (the load may overwrite it)
                    b.mov(after_load, op.inputs[0])
            elif op.name == "qemu_st" and config.memory_hooks & MEMORY_WRITES:
                value, addr = op.inputs
                self._mem_hook_call(b, pc, op.args[0].size | MEM_INFO_WRITE, addr, value)
            block.ops.append(op)
            if after_load is not None:
                self._mem_hook_call(b, pc, op.args[0].size | MEM_INFO_AFTER, after_load,
                                    op.outputs[0])
            if op.name != "insn_start":
                continue
            pc = op.args[0]
            # Unicorn's order: the block hook, then the budget (a block whose first
            # instruction is not run still reports itself), then the code hook.
            if first and in_ranges(config.block_ranges, pc):
                b.call(HELPER_BLOCK.name, (), (const(I64, pc), const(I64, block.guest_size)))
            if config.counting:
                go_on = b.label()
                b.brcond(Cond.NE, budget, const(I64, 0), go_on)
                b.raise_exception(EXCP_API_STOP, pc)
                b.set_label(go_on)
                b.sub(budget, budget, const(I64, 1))
            if in_ranges(config.code_ranges, pc):
                b.call(HELPER_CODE.name, (), (const(I64, pc), const(I64, size_of[pc])))
            first = False

    @staticmethod
    def _mem_hook_call(b: Builder, pc: int, info: int, addr: Temp, value: Temp) -> None:
        """Call api_mem(pc, info, addr, value) (info: access size and MEM_INFO_* bits)."""
        if value.type is not I64:
            wide = b.temp(I64)
            b.ext_i32_i64(wide, value, signed=False)
            value = wide
        b.call(HELPER_MEM.name, (), (const(I64, pc), const(I64, info), addr, value))

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
