"""A hand-written 'frontend' for core tests: IR built by Python functions per pc."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llvmtcg.ir import I64, Block, Builder, Cond, ExitReason, const
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.helpers import HelperRegistry
from llvmtcg.runtime.softmmu import GuestMemory, Perm

LAYOUT = CpuLayout([("r", I64, 8)], n_mmu_idx=2, tlb_bits=8)
CODE = 0x10000  # where test "code" lives (bytes are never decoded, only fetched)
DATA = 0x40000


@dataclass
class HandFrontend:
    """Blocks keyed by pc; each builder function emits the block's IR.

    Translation fetches ``size`` guest bytes at the pc like a real frontend, so code
    pages, fetch faults and self-modifying-code invalidation apply.
    """

    blocks: dict[int, tuple[Callable[[Builder], None], int]] = field(default_factory=dict)
    translations: list[int] = field(default_factory=list)

    def define(self, pc: int, size: int = 4) -> Callable[[Callable[[Builder], None]], None]:
        def register(fn: Callable[[Builder], None]) -> None:
            self.blocks[pc] = (fn, size)
        return register

    def translate(self, pc: int, fetch: Callable[[int, int], bytes]) -> Block:
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
    return Cpu(LAYOUT, frontend, memory, helpers, options=RuntimeOptions(**kwargs), log=log)


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
