"""A hand-written guest architecture for core tests: IR built by Python functions per pc."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from llvmtcg.arch import GuestArch
from llvmtcg.ir import I64, Block, Builder, Cond, ExitReason, const
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.log import Log
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.helpers import HelperRegistry
from llvmtcg.runtime.softmmu import GuestMemory, Perm

LAYOUT = CpuLayout([("r", I64, 8)], n_mmu_idx=2, tlb_bits=8)
CODE = 0x10000  # where test "code" lives (bytes are never decoded, only fetched)
DATA = 0x40000


HandReg = enum.IntEnum("HandReg", [*((f"R{i}", i) for i in range(8)), ("PC", 8)])


@dataclass(eq=False)
class HandFrontend(GuestArch):
    """A guest architecture whose blocks are keyed by pc; each builder function emits
    the block's IR. Registers r[0..7] and pc; helpers are whatever ``registry`` holds.

    Translation fetches ``size`` guest bytes at the pc like a real frontend, so code
    pages, fetch faults and self-modifying-code invalidation apply.
    """

    name = "hand"
    elf_machine = 0
    layout = LAYOUT
    registers = HandReg

    blocks: dict[int, tuple[Callable[[Builder], None], int]] = field(default_factory=dict)
    translations: list[int] = field(default_factory=list)
    registry: HelperRegistry = field(default_factory=HelperRegistry)

    def helpers(self) -> HelperRegistry:
        return self.registry

    def fingerprint(self) -> tuple:
        return (self.name,)

    def reg_read(self, state: CpuState, reg) -> int:
        reg = self.register(reg)
        return state.pc if reg is HandReg.PC else state.get("r", reg)

    def reg_write(self, state: CpuState, reg, value: int) -> None:
        reg = self.register(reg)
        if reg is HandReg.PC:
            state.pc = value
        else:
            state.set("r", value, reg)

    def define(self, pc: int, size: int = 4) -> Callable[[Callable[[Builder], None]], None]:
        def register(fn: Callable[[Builder], None]) -> None:
            self.blocks[pc] = (fn, size)
        return register

    def translate(self, pc: int, flags: int, fetch: Callable[[int, int], bytes],
                  log: Log | None = None) -> Block:
        fetch(pc, 1)  # raises GuestFault if pc is not executable
        fn, size = self.blocks[pc]
        b = Builder(pc, LAYOUT.globals())
        fn(b)
        block = b.finish()
        block.guest_size = size
        self.translations.append(pc)
        return block


def make_cpu(frontend: HandFrontend, helpers: HelperRegistry | None = None,
             **kwargs) -> Cpu:
    """A CPU over CODE (rx) and DATA (rw). Tiering is off unless ``hot_threshold`` is
    given: most core tests count exits and translations of the cheap tier."""
    kwargs.setdefault("hot_threshold", 0)
    log = kwargs.pop("log", None)
    memory = GuestMemory(1 << 24)
    memory.map(CODE, 0x10000, Perm.RX)
    memory.map(DATA, 0x10000, Perm.RW)
    if helpers is not None:
        frontend.registry = helpers
    return Cpu(frontend, memory, options=RuntimeOptions(**kwargs), log=log)


def r(i: int) -> str:
    return f"r[{i}]"


# Registers of LAYOUT and small IR builders shared by the core tests.
G = LAYOUT.globals()
R = [G[f"r[{i}]"] for i in range(8)]
PC = G["pc"]


def c64(v: int):
    return const(I64, v)


def halt_at(b: Builder, pc: int) -> None:
    b.mov(PC, c64(pc))
    b.exit_tb(ExitReason.HALT)


def define_byte_adder(fe: HandFrontend, cpu_of: Callable[[], Cpu], at: int) -> None:
    """Generated "code" at ``at`` (a self-modifying-code target): the instruction is its
    byte, read from guest memory when translated, so a rewrite must retranslate it:
    r2 += byte; loop back to CODE while r0 < r1, else halt at CODE+4."""

    def generated(b: Builder) -> None:
        byte = cpu_of().memory.read(at, 1)[0]
        b.insn_start(at)
        b.add(R[2], R[2], c64(byte))
        done = b.label()
        b.brcond(Cond.GEU, R[0], R[1], done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 4)

    fe.blocks[at] = (generated, 4)


def counting_loop(fe: HandFrontend) -> None:
    """CODE: r0 += 1; goto CODE+4.  CODE+4: if r0 >= r1 halt else goto CODE."""

    @fe.define(CODE)
    def _(b: Builder) -> None:
        b.insn_start(CODE)
        b.add(R[0], R[0], c64(1))
        b.goto_tb(0, CODE + 4)

    @fe.define(CODE + 4)
    def _(b: Builder) -> None:
        b.insn_start(CODE + 4)
        done = b.label()
        b.brcond(Cond.GEU, R[0], R[1], done)
        b.goto_tb(0, CODE)
        b.set_label(done)
        halt_at(b, CODE + 8)
