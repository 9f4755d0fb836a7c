"""What a machine needs from a system-mode CPU, and where it gets one.

The machine owns memory, devices, the clock and the run loop (machines/loop.py); the
CPU owns guest execution. They meet in three places:

- :class:`HartWiring`: what the machine hands a hart when it creates it — the
  physical address space, the CPU model options, the hart id, the platform timer
  (``time``: the CLINT's mtime, for the ``time`` CSR and Sstc) with its frequency, and
  the Clock on which the CPU arms its own Sstc timer (QEMU's ``riscv_timer_init``);
- :class:`SystemCpu`: reset, interrupt lines, run, stop;
- :func:`create_system_cpu`: the one function that builds a CPU.

Interrupt lines are the mip bits a device drives (:class:`IrqBit`): the CLINT drives
MSIP and MTIP, the PLIC MEIP and SEIP. ``set_irq`` may be called from inside ``run``
(a device register written by the guest) and must make ``run`` return or take the
interrupt at the next block boundary, as QEMU's ``cpu_interrupt`` does.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from devices.base import Clock

if TYPE_CHECKING:
    from llvmtcg.log import Log
    from llvmtcg.runtime.physmem import PhysicalAddressSpace
    from machines.riscv_cpu import RiscvCpuConfig


class IrqBit(enum.IntEnum):
    """RISC-V interrupt numbers: the bit of mip each line sets."""

    SSIP = 1
    MSIP = 3
    STIP = 5
    MTIP = 7
    SEIP = 9
    MEIP = 11


@dataclass(frozen=True, slots=True)
class Idle:
    """The hart executed WFI with no interrupt pending: the loop sleeps until a timer
    deadline or I/O, then calls ``run`` again (which returns Idle again at once if
    still nothing is pending)."""


@dataclass(frozen=True, slots=True)
class Stopped:
    """``stop()`` was called (by the loop's I/O thread, a timer deadline, a device
    asking for shutdown or reset): the loop services what is due and runs again."""


@dataclass(frozen=True, slots=True)
class DebugStop:
    """A debugger's breakpoint was reached, or its single step is done (only with a
    gdbstub: ``machines/gdb.py``); ``watch``: the watchpoint (a ``MemFault``) an access
    stopped before, instead; ``hart``: which hart of a :class:`HartGroup` (its index)."""

    watch: object = None
    hart: int = 0


CpuEvent = Idle | Stopped | DebugStop


class SystemCpu(Protocol):
    """One hart of a system-mode machine."""

    def reset(self, pc: int, a0: int = 0, a1: int = 0, a2: int = 0) -> None:
        """Reset the hart as QEMU's riscv_cpu_reset leaves it: M-mode, mstatus.MIE and
        MPRV clear, misa from the model, mcause 0, PMP entries unlocked and off,
        no reservation, satp bare, mip lines as the devices drive them; then
        pc = ``pc`` and a0..a2 (x10..x12) as given (QEMU zeroes them; the boot ROM
        sets them from mhartid and its data)."""
        ...

    def set_irq(self, irq: IrqBit, level: bool) -> None:
        """A device drives an interrupt line (see the module docstring)."""
        ...

    def run(self) -> CpuEvent:
        """Execute until an event: WFI with nothing pending, or ``stop()``. Guest
        exceptions and interrupts are handled inside; a Python exception from the
        translator or a device propagates."""
        ...

    def stop(self) -> None:
        """Make ``run`` return Stopped at the next block boundary, soon. Callable from
        any thread; if the hart is not running, the next ``run`` returns at once."""
        ...


@dataclass(frozen=True, slots=True)
class HartWiring:
    """What a machine gives the CPU it creates."""

    hartid: int
    memory: PhysicalAddressSpace
    config: RiscvCpuConfig
    clock: Clock  # for the CPU's own timers (Sstc); fire inside the loop's run_due
    time: Callable[[], int] | None  # the platform timer, or None (no time CSR, no Sstc)
    timebase_hz: int
    guest_error: Callable[[str], None] | None = None  # -d guest_errors sink
    log: Log | None = None  # the other -d items (in_asm, int, ...) and -D


class HartLines:
    """A hart's interrupt inputs as device IrqLines, before and after its CPU exists.

    Devices are built (and reset, which drives their lines) before the CPU; the levels
    are kept here and replayed when the CPU is attached, and every later change is
    forwarded. A line driven to the level it has is not forwarded again.
    """

    def __init__(self) -> None:
        self.levels: dict[IrqBit, bool] = {}
        self._cpu: SystemCpu | None = None

    def line(self, irq: IrqBit) -> Callable[[bool], None]:
        def drive(level: bool) -> None:
            level = bool(level)
            if self.levels.get(irq) == level:
                return
            self.levels[irq] = level
            if self._cpu is not None:
                self._cpu.set_irq(irq, level)
        return drive

    def attach(self, cpu: SystemCpu) -> None:
        self._cpu = cpu
        for irq, level in self.levels.items():
            cpu.set_irq(irq, level)


class SystemCpuUnavailable(Exception):
    """No system-mode CPU can be built here."""


# The -cpu properties that name an extension the translator implements.
_TRANSLATED_EXTENSIONS = {"i": "i", "m": "m", "a": "a", "f": "f", "d": "d", "c": "c",
                          "Zicsr": "zicsr", "Zifencei": "zifencei", "zba": "zba",
                          "zbb": "zbb", "zbs": "zbs"}


class LlvmtcgHart:
    """:class:`SystemCpu` over llvmtcg's translator (``llvmtcg.system.SystemCpu`` with
    ``Riscv64SystemArch``): maps its events to :data:`CpuEvent`, arms the Sstc timer on
    the machine's clock, and invalidates translated code that DMA overwrites."""

    def __init__(self, wiring: HartWiring) -> None:
        from llvmtcg.frontends.riscv.cpu import CpuModel
        from llvmtcg.frontends.riscv.system import Riscv64SystemArch
        from llvmtcg.log import TRANSLATION_LOG_ITEMS
        from llvmtcg.options import default_cache_dir, default_stencil_dir
        from llvmtcg.runtime.native.baseline_cache import program_key
        from llvmtcg.system import SYSTEM_OPTIONS
        from llvmtcg.system import SystemCpu as TranslatedCpu

        extensions = frozenset(ext for prop, ext in _TRANSLATED_EXTENSIONS.items()
                               if wiring.config.enabled(prop))
        arch = Riscv64SystemArch(CpuModel("rv64", extensions), hartid=wiring.hartid,
                                 time=wiring.time)
        self._wiring = wiring
        # The baseline tier's stencils persist across boots (built once per translator),
        # and so do the baseline blocks boots translate (one file for this CPU model's
        # system mode: blocks are keyed by pc, flags and guest bytes, so firmware,
        # kernels and user space of every boot share it; $LLVMTCG_CACHE_DIR moves it).
        logs_translation = wiring.log is not None and wiring.log.items & TRANSLATION_LOG_ITEMS
        options = dataclasses.replace(SYSTEM_OPTIONS,
                                      stencil_dir=default_stencil_dir(os.environ),
                                      cache_dir=default_cache_dir(os.environ),
                                      program=None if logs_translation else
                                      program_key("system", arch.fingerprint()))
        self._cpu = TranslatedCpu(arch, wiring.memory.memory, options=options, log=wiring.log)
        wiring.memory.on_code_write.append(self._cpu.cpu.invalidate_range)
        wiring.memory.on_dma_write.append(self._dma_written)
        self._timer = None
        self._cpu.on_timer_change(self._arm_timer)

    def reset(self, pc: int, a0: int = 0, a1: int = 0, a2: int = 0) -> None:
        self._cpu.reset(pc, a0, a1, a2)
        self._cpu.on_timer_change(self._arm_timer)

    def save_translations(self) -> None:
        """Keep the baseline blocks this boot translated for the next one (best effort:
        a cache, written when the machine closes)."""
        self._cpu.cpu.save_translations()

    def set_irq(self, irq: IrqBit, level: bool) -> None:
        self._cpu.set_irq(int(irq), level)

    def save_state(self) -> dict[str, object]:
        """savevm: the hart's state as plain data (llvmtcg.system.SystemCpu.save_state)."""
        return self._cpu.save_state()

    def load_state(self, saved: dict[str, object]) -> None:
        """loadvm: restores :meth:`save_state`'s data (its Sstc timer re-armed, its
        translated code dropped); ValueError when it does not fit."""
        self._cpu.load_state(saved)

    def ready(self) -> bool:
        """Whether ``run`` would execute guest code (not waiting in WFI)."""
        return self._cpu.ready()

    def stop(self) -> None:
        self._cpu.stop()

    def drop_reservation(self) -> None:
        """Forget the LR reservation: another hart is about to run (see HartGroup)."""
        self._cpu.state.set("load_res", _NO_RESERVATION)

    def _dma_written(self, start: int, end: int) -> None:
        """A device writes physical [start, end): an LR reservation there is lost, as
        for a store by another hart ("an SC must fail if a store to the reservation
        set from another hart can be observed to occur between the LR and the SC";
        device writes are such stores). SC compares with the value LR read, which a
        DMA write of the same bytes would not change, so the reservation is dropped
        here. Its physical address comes from the TLB entry LR filled; without one it
        is dropped anyway (an SC may always fail)."""
        state = self._cpu.state
        reserved = state.get("load_res")
        if reserved == _NO_RESERVATION:
            return
        cpu = self._cpu.cpu
        phys = cpu.softmmu.cached_read_phys(reserved, self._cpu.arch.mmu_index(state))
        # The reservation set: the naturally aligned doubleword (LR.D; LR.W's word is
        # inside it), as QEMU's and most hardware's granule is at least that.
        if phys is None or (start < (phys | 7) + 1 and phys & ~7 < end):
            state.set("load_res", _NO_RESERVATION)

    @property
    def translated(self):  # -> llvmtcg.system.SystemCpu (imported lazily, as above)
        """The translating CPU underneath: its ``state`` and ``arch`` are what the
        monitor and debugger read registers from; harts link their translated code
        through it (-smp)."""
        return self._cpu

    def run(self) -> CpuEvent:
        from llvmtcg.system import CpuEvent as TranslatedEvent

        event = self._cpu.run()
        if event is TranslatedEvent.DEBUG:
            return DebugStop(self._cpu.watch_hit)
        return Idle() if event is TranslatedEvent.IDLE else Stopped()

    # -- for the gdbstub (machines/gdb.py) ----------------------------------------------
    @property
    def debug_cpu(self):
        """The runtime CPU a debugger reads and writes (``llvmtcg.runtime.Cpu``)."""
        return self._cpu.cpu

    def set_breakpoints(self, pcs: frozenset[int]) -> None:
        self._cpu.set_breakpoints(pcs)

    def step(self, over_watchpoint: bool = False) -> CpuEvent:
        """One instruction (interrupts masked); always DebugStop (with the watchpoint
        that stopped it, if one did)."""
        self._cpu.step(over_watchpoint)
        return DebugStop(self._cpu.watch_hit)

    def _arm_timer(self, deadline: int | None) -> None:
        """Sstc: fire when ``time`` reaches ``deadline`` (STIP then reads as pending)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wiring = self._wiring
        if deadline is None or wiring.time is None:
            return
        ticks = max(0, deadline - wiring.time())
        now = wiring.clock.now_ns()
        self._timer = wiring.clock.set_timer(
            now + -(-ticks * 1_000_000_000 // wiring.timebase_hz), self._cpu.stop)


_NO_RESERVATION = (1 << 64) - 1  # load_res of a hart holding none (RISC-V cpu.py)

# QEMU's single-threaded TCG kicks the running vCPU every 100 ms (TCG_KICK_PERIOD); a
# shorter slice keeps IPIs and spin-waits between harts quick at llvmtcg's speed.
TIME_SLICE_NS = 10_000_000


class HartGroup:
    """Several harts as one :class:`SystemCpu` for the main loop: they run round-robin
    on the loop's thread, as QEMU's single-threaded TCG runs vCPUs. A hart runs until
    it waits for an interrupt (WFI with nothing pending: the next hart runs at once)
    or its time slice ends (a timer on the machine clock, whose deadline makes the
    loop's I/O thread kick: ``stop``), then the next one gets its turn. ``run`` returns
    Idle only when every hart waits, Stopped when a kick stopped the running hart.

    Interrupt lines are wired to each hart directly (``HartLines`` per hart);
    ``set_irq`` here drives the boot hart's (hart 0).

    LR/SC: a hart's SC must fail if another hart stored to its reservation set since
    its LR, even a store of the value memory already held, which the SC's
    compare-and-swap against the loaded value cannot see. Harts only interleave at
    turns, so every other hart drops its reservation when a hart starts a turn after
    a different one: a store by that hart can then not go unnoticed. (An SC may fail
    for other reasons; a retry within the same turn succeeds, which keeps the spec's
    forward-progress guarantee for constrained LR/SC loops.)
    """

    def __init__(self, harts: list[LlvmtcgHart], clock: Clock, *,
                 time_slice_ns: int = TIME_SLICE_NS) -> None:
        if not harts:
            raise ValueError("a hart group needs harts")
        import threading
        self.harts = harts
        self._clock = clock
        self._slice = time_slice_ns
        self._lock = threading.Lock()
        self._running: LlvmtcgHart | None = None
        self._stop = False
        self._next = 0  # the hart whose turn is next
        self._favoured: tuple[int, int, int] | None = None  # (hart, pc, turns): run_next
        self._last: LlvmtcgHart | None = None  # the hart that had the last turn
        self.stats = {"slices": 0, "switches": 0}

    @property
    def translated(self):  # -> llvmtcg.system.SystemCpu
        """Hart 0's translating CPU: what the monitor shows (it reports one CPU)."""
        return self.harts[0].translated

    def reset(self, pc: int, a0: int = 0, a1: int = 0, a2: int = 0) -> None:
        for hart in self.harts:
            hart.reset(pc, a0, a1, a2)
        self._next = 0

    def set_irq(self, irq: IrqBit, level: bool) -> None:
        self.harts[0].set_irq(irq, level)

    def run_next(self, index: int) -> None:
        """Give hart ``index`` the next turn, and more turns while a stop (a kick,
        the time slice ending during a translation) comes before it executed anything:
        a debugger resumes the hart it steps first (gdb steps by inserting a
        breakpoint after the instruction and continuing every thread)."""
        self._next = index
        self._favoured = (index, self.harts[index].translated.state.pc, _FAVOURED_TURNS)

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            running = self._running
        if running is not None:
            running.stop()

    def run(self) -> CpuEvent:
        idle_in_a_row = 0
        while True:
            with self._lock:
                if self._stop:
                    self._stop = False
                    return Stopped()
                index = self._next
                hart = self.harts[index]
                self._running = hart
            self._next = (index + 1) % len(self.harts)
            self.stats["switches"] += 1
            if self._last is not hart:
                for other in self.harts:
                    if other is not hart:
                        other.drop_reservation()
                self._last = hart
            timer = self._clock.set_timer(self._clock.now_ns() + self._slice, _no_op)
            try:
                event = hart.run()
            finally:
                timer.cancel()
                with self._lock:
                    self._running = None
            if isinstance(event, Stopped):
                self.stats["slices"] += 1
                with self._lock:
                    self._stop = False  # this return served it
                favoured = self._favoured
                if favoured is not None:
                    hart_index, pc, turns = favoured
                    if hart_index == index and turns and hart.translated.state.pc == pc:
                        self._next = index  # (no progress yet: its turn again)
                        self._favoured = (hart_index, pc, turns - 1)
                    else:
                        self._favoured = None
                return event
            self._favoured = None
            if isinstance(event, DebugStop):  # (a gdbstub's breakpoint: machines/gdb.py)
                self._next = index  # (the hart resumes first)
                return DebugStop(event.watch, index)
            idle_in_a_row += 1
            if idle_in_a_row >= len(self.harts):
                # A hart that ran before going idle may have woken another (an IPI).
                if not any(hart.ready() for hart in self.harts):
                    return Idle()
                idle_in_a_row = 0


_FAVOURED_TURNS = 8  # (a hart spinning on one instruction does not keep the turn)


def _no_op() -> None:
    """A time slice's end: the deadline itself makes the I/O thread kick."""


def create_system_cpu(wiring: HartWiring) -> SystemCpu:
    """The system-mode RISC-V hart for ``wiring``: llvmtcg's translator with the
    privileged architecture (M/S/U, traps, interrupts between blocks, Sv39/48/57)."""
    return LlvmtcgHart(wiring)
