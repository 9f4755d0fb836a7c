"""A system-mode CPU a machine drives: reset, interrupt lines, run until idle or stop.

The machine (``machines/``) owns memory, devices and the clock; this owns guest
execution. :meth:`SystemCpu.run` runs translated code — the guest takes its own
exceptions and interrupts inside the run loop — and returns only when the hart waits
for an interrupt with none pending (WFI: the machine sleeps until its next timer
deadline or I/O, then calls ``run`` again) or when :meth:`stop` was called.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from llvmtcg.arch import GuestArch
from llvmtcg.ir.cpu_layout import RUNTIME_FIELDS, RUNTIME_TAIL_FIELDS
from llvmtcg.ir.ops import ExitReason
from llvmtcg.log import Log
from llvmtcg.options import RuntimeOptions
from llvmtcg.runtime.cpu_exec import Cpu
from llvmtcg.runtime.cpu_state import CpuState
from llvmtcg.runtime.exits import EXCP_DEBUG, MemFault
from llvmtcg.runtime.softmmu import GuestMemory

# System mode: the address space is not flat (hot code must probe the TLB), and the
# code cache and hot tier key on fixed flags (user mode's), so neither is used yet.
SYSTEM_OPTIONS = RuntimeOptions(hot_threshold=0, flat_memory=False)


class CpuEvent(enum.Enum):
    """Why :meth:`SystemCpu.run` returned."""

    IDLE = "idle"  # waiting for an interrupt (WFI) with none pending
    STOPPED = "stopped"  # stop() was called
    DEBUG = "debug"  # a debugger breakpoint was reached, or step() is done


class SystemCpu:
    """One hart of a system-mode machine.

    Args:
        arch: a system-mode architecture (``arch.system_mode``), e.g.
            ``Riscv64SystemArch(time=clint.mtime)``.
        memory: the physical address space (RAM and device regions).
        options: runtime options (default :data:`SYSTEM_OPTIONS`).
        log: ``-d`` logging.
    """

    def __init__(self, arch: GuestArch, memory: GuestMemory,
                 options: RuntimeOptions = SYSTEM_OPTIONS, log: Log | None = None) -> None:
        if not arch.system_mode:
            raise ValueError(f"{arch!r} is not a system-mode architecture")
        self.arch = arch
        self.cpu = Cpu(arch, memory, options, log)
        self.state = self.cpu.state
        self.halted = False  # in WFI
        self.watch_hit: MemFault | None = None  # the watchpoint of the last DEBUG event
        self._lines: dict[int, bool] = {}

    def reset(self, pc: int, a0: int = 0, a1: int = 0, a2: int = 0) -> None:
        """Architectural reset (RISC-V: M-mode, MIE/MPRV clear, satp Bare, PMP off),
        then pc and the first three argument registers (RISC-V a0..a2). Interrupt lines
        keep the levels the devices drive."""
        state = self.state
        for i in range(32):
            state.set("x", 0, i)
        self.arch.reset(state)
        for line, level in self._lines.items():
            self.arch.set_irq(state, line, level)
        self.cpu.tlb_flush()
        self.halted = False
        state.pc = pc
        for reg, value in zip(("a0", "a1", "a2"), (a0, a1, a2), strict=True):
            self.arch.reg_write(state, reg, value)

    # -- savevm/loadvm ------------------------------------------------------------------
    def save_state(self) -> dict[str, object]:
        """The hart's architectural state as plain data (ints, lists, dicts): the
        registers of the state buffer (the guest's, pc, the retired-instruction count
        behind the counters, the guest FP environment), WFI, and the architecture's
        own (``GuestArch.save_state``). Interrupt lines are the devices' state."""
        state = self.state
        registers: dict[str, list[int]] = {}
        for name in _saved_fields(state, self.arch):
            count = state.layout.fields[name].count
            registers[name] = [state.get(name, i) for i in range(count)]
        return {"registers": registers, "halted": self.halted,
                "arch": self.arch.save_state(state)}

    def load_state(self, saved: dict[str, object]) -> None:
        """Restores :meth:`save_state`'s data; every translated block and cached address
        translation is dropped (memory was restored too). ValueError when ``saved``
        does not fit this CPU (nothing is changed then)."""
        state = self.state
        try:
            registers = saved["registers"]
            values: list[tuple[str, int, int]] = []
            for name in _saved_fields(state, self.arch):
                cells = registers[name]  # type: ignore[index]
                if len(cells) != state.layout.fields[name].count:
                    raise ValueError(f"register {name}: {len(cells)} values saved")
                values += [(name, i, int(v)) for i, v in enumerate(cells)]
            halted = bool(saved["halted"])
            arch_state = saved["arch"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"saved CPU state does not fit: {exc}") from None
        try:
            self.arch.load_state(state, arch_state)  # type: ignore[arg-type]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"saved CPU state does not fit: {exc}") from None
        for name, index, value in values:
            state.set(name, value, index)
        self.halted = halted
        self.cpu.flush()
        self.cpu.tlb_flush()
        state.request_exit()

    def set_irq(self, line: int, level: bool) -> None:
        """A device drives interrupt input ``line`` (RISC-V: the mip bit number, e.g.
        7 for MTIP); a change that may need the hart's attention makes it leave
        translated code at the next block boundary."""
        self._lines[line] = bool(level)
        self.arch.set_irq(self.state, line, bool(level))

    def on_timer_change(self, listener) -> None:
        """Call ``listener(deadline)`` whenever the CPU's own timer (RISC-V Sstc
        stimecmp) changes: the ``time`` value at which it fires, or None."""
        self.arch.on_timer_change(self.state, listener)

    def ready(self) -> bool:
        """Whether :meth:`run` would execute guest code: not in WFI, or woken."""
        return not self.halted or self.arch.wakes(self.state)

    def stop(self) -> None:
        """Make :meth:`run` return STOPPED at the next block boundary (any thread)."""
        self.cpu.stop()

    def run(self) -> CpuEvent:
        """Run until the hart waits for an interrupt (IDLE), :meth:`stop` (STOPPED) or
        a breakpoint (DEBUG, see :meth:`set_breakpoints`).

        Raises:
            Exception: a Python error from a helper or a device callback.
        """
        state = self.state
        while True:
            if self.halted:
                if not self.arch.wakes(state):
                    return CpuEvent.IDLE
                self.halted = False
            state.request_exit()  # an interrupt pending now is taken first
            exit_ = self.cpu.run()
            if exit_.reason is ExitReason.HALT:
                self.halted = True
                continue
            if exit_.reason is ExitReason.REQUESTED:
                return CpuEvent.STOPPED
            if exit_.exception_index == EXCP_DEBUG:
                self.watch_hit = exit_.fault  # (None: a breakpoint)
                return CpuEvent.DEBUG
            raise RuntimeError(f"system-mode run loop returned {exit_}")  # never: guests
            # take their exceptions in system mode

    # -- debugging (the gdbstub) ------------------------------------------------------
    def set_breakpoints(self, pcs: frozenset[int]) -> None:
        """Make :meth:`run` return DEBUG when pc reaches one of ``pcs`` (virtual)."""
        self.cpu.set_breakpoints(pcs)

    def step(self, over_watchpoint: bool = False) -> CpuEvent:
        """Execute one instruction with interrupts masked (QEMU's single-step default);
        an exception it raises is entered (the step ends at the handler). A hart in WFI
        only leaves it when an interrupt is pending (then steps on). Returns DEBUG.
        ``over_watchpoint``: the instruction's access a watchpoint stopped is made."""
        self.watch_hit = None
        if self.halted:
            if not self.arch.wakes(self.state):
                return CpuEvent.DEBUG
            self.halted = False
        exit_ = self.cpu.step_over_watchpoint() if over_watchpoint else self.cpu.step()
        if exit_.exception_index == EXCP_DEBUG and exit_.fault is not None:
            self.watch_hit = exit_.fault  # (another watchpoint, stepping)
        if exit_.reason is ExitReason.HALT:
            self.halted = True
        return CpuEvent.DEBUG

    def counters(self) -> dict[str, object]:
        """The runtime's counters (``Cpu.counters``), the softmmu's slow paths and the
        architecture's (``GuestArch.counters``), for ``$LLVMTCG_STATS``."""
        return {**self.cpu.counters(), "softmmu": self.cpu.softmmu.counters(),
                "arch": self.arch.counters(self.state)}

    def close(self) -> None:
        self.cpu.close()


# The runtime fields that are guest state: the pc, the instruction count the cycle and
# instret counters derive from, and the guest FP environment.
_SAVED_RUNTIME_FIELDS = ("pc", "insn_count", "fp_env")


def _saved_fields(state: CpuState, arch: GuestArch) -> list[str]:
    """The fields of ``state``'s layout savevm keeps: the guest's registers (every field
    that is not the runtime's own) and :data:`_SAVED_RUNTIME_FIELDS`, but not those
    the architecture derives from the machine at every load (``arch.derived_fields``:
    RISC-V's native time base, which names this process's host clock)."""
    runtime = {spec[0] for spec in (*RUNTIME_FIELDS, *RUNTIME_TAIL_FIELDS)}
    runtime.update(getattr(arch, "derived_fields", ()))
    return [name for name in state.layout.fields
            if name not in runtime or name in _SAVED_RUNTIME_FIELDS]


class SharedCode:
    """Several harts over one physical memory, as an SMP machine has them: each hart
    translates into its own block cache, and a store by any hart (or a page-table A/D
    update) to a page from which any hart translated code invalidates that code in
    every hart. A page's first block in any hart flushes every hart's TLB, so stores to
    it from all harts take the slow path that checks (the one-hart rule, shared)."""

    def __init__(self, cpus: Sequence[SystemCpu]) -> None:
        self.cpus = list(cpus)
        for cpu in self.cpus:
            cpu.cpu.softmmu.code = self
            if len(self.cpus) > 1 and cpu.cpu.softmmu.walker is not None:
                # (the physical page-flag table's code bits are one hart's: a page
                # another hart still has code on may lose its bit)
                cpu.cpu.softmmu.walker.block("smp", True)
            cpu.arch.attach_memory(cpu.state, cpu.cpu.memory, self.invalidate_range)
            cpu.cpu.tbs.new_code_page.append(self._flush_tlbs)

    def page_has_code(self, page: int) -> bool:
        return any(cpu.cpu.tbs.page_has_code(page) for cpu in self.cpus)

    def invalidate_range(self, start: int, end: int) -> int:
        return sum(cpu.cpu.tbs.invalidate_range(start, end) for cpu in self.cpus)

    def _flush_tlbs(self, page: int) -> None:
        for cpu in self.cpus:
            cpu.state.tlb_flush()
