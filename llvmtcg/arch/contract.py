"""The guest-architecture contract: everything the generic engine needs from a guest ISA.

Modelled on QEMU's ``TCGCPUOps``: one typed table per architecture instead of attributes
the runtime probes for. An architecture subclasses :class:`GuestArch`; an instance is
the architecture configured for one CPU model (which extensions exist), and one
instance may serve several CPUs. The runtime (``runtime/cpu_exec.py``: :class:`Cpu`,
the translation cache, tiering) only ever calls these methods; it never imports a
particular ISA.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from llvmtcg.ir.types import FFlag, RoundingMode

if TYPE_CHECKING:
    from llvmtcg.ir.block import Block
    from llvmtcg.ir.cpu_layout import CpuLayout
    from llvmtcg.log import Log
    from llvmtcg.runtime.cpu_state import CpuState
    from llvmtcg.runtime.exits import Access, MemFault
    from llvmtcg.runtime.helpers import HelperRegistry
    from llvmtcg.runtime.softmmu import GuestMemory

# fetch(addr, size) -> guest code bytes; raises GuestFault when they are not executable.
Fetch = Callable[[int, int], bytes]

# ELF identification (e_ident[EI_CLASS], e_ident[EI_DATA]).
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2


class CpuModelError(ValueError):
    """A CPU model or property the architecture does not have (``-cpu``); the message
    is one line for the user."""


class UnknownRegisterError(KeyError):
    """A register name the architecture does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


# The translation flags (tb_flags) of a state are an architecture-defined integer of at
# most this many bits: the engine only compares them (a block runs only under the flags
# it was translated for) and keys on them; what the bits mean is the architecture's
# (RISC-V: frontends/riscv/priv/state.py, TbFlags).
TB_FLAGS_BITS = 32


@dataclass(frozen=True, slots=True)
class PageTranslation:
    """What :meth:`GuestArch.tlb_fill` found for one access: the physical address and
    the permissions (``softmmu.Perm`` bits) the TLB may keep for the whole page at that
    MMU index until the next flush. ``page_size`` is the size of the guest mapping
    (a superpage is cached as 4 KiB entries, and flushing one address of it must drop
    them all, as QEMU's large-page tracking does)."""

    paddr: int
    perms: int
    page_size: int = 4096


@dataclass(frozen=True, slots=True)
class ExceptionEvents:
    """Which of an architecture's exception numbers (its ``exception_index`` values) are
    the events embedders tell apart (the library API's INTR and invalid-instruction
    hooks): an illegal instruction, a breakpoint instruction, and the INTR number and
    length of the system-call instruction (a SYSCALL exit reports the instruction's pc)."""

    illegal_insn: int
    breakpoint: int
    syscall: int
    syscall_length: int


@dataclass(frozen=True, slots=True)
class DebugRegister:
    """One register as a debugger sees it: an entry of gdb's target description.

    ``number`` is the register's number in the GDB remote protocol (``p``/``P``; the
    ``regnum`` of the description), ``type`` a gdb type name (``int``, ``code_ptr``,
    ``data_ptr``, ``ieee_double``, or one the feature defines), ``group`` gdb's
    register group (None: gdb's default for the type)."""

    number: int
    name: str
    bits: int
    type: str = "int"
    group: str | None = None


@dataclass(frozen=True, slots=True)
class DebugFeature:
    """A feature of gdb's target description (``org.gnu.gdb.riscv.cpu``): its
    registers and the XML of the types they use that gdb does not predefine."""

    name: str
    registers: tuple[DebugRegister, ...]
    types_xml: str = ""


class GuestArch(abc.ABC):
    """A guest instruction-set architecture, configured for one CPU model.

    Class attributes every architecture sets:
        name: the registry name (``"riscv64"``), also what ``-d``/errors print.
        elf_machine: ELF ``e_machine`` of its programs (243 = EM_RISCV).
        elf_class, elf_data: ELF class (ELFCLASS64) and byte order (ELFDATA2LSB).
        layout: the CPU-state layout (the runtime's fields plus the guest registers).
        registers: an ``IntEnum`` of the architectural registers; aliases (ABI names)
            are enum aliases. Its values are the numbers a debugger uses (gdb's).
        counts_insns: blocks add their instruction count to ``insn_count`` on entry
            (the guest reads an instruction counter).
        exception_events: the exception numbers of :class:`ExceptionEvents` (None: the
            architecture does not name them; embedders then see only raw numbers).
        fp_control: the CPU-state field :meth:`fp_rounding` depends on alone (RISC-V:
            ``frm``): the run loop asks :meth:`fp_rounding` again only when that field
            changed. None: it asks before every entry to native code.

    Methods without a default are what a new architecture must write; the defaults
    describe a user-mode guest without floating point.
    """

    name: ClassVar[str]
    elf_machine: ClassVar[int]
    elf_class: ClassVar[int] = ELFCLASS64
    elf_data: ClassVar[int] = ELFDATA2LSB
    layout: ClassVar[CpuLayout]
    registers: ClassVar[type[enum.IntEnum]]
    counts_insns: ClassVar[bool] = False
    exception_events: ClassVar[ExceptionEvents | None] = None
    fp_control: ClassVar[str | None] = None
    # System mode: the MMU translates addresses (tlb_fill), the guest takes its own
    # exceptions (do_interrupt) and interrupts (exec_interrupt). User mode: False.
    system_mode: bool = False

    # -- translation ----------------------------------------------------------------------
    @abc.abstractmethod
    def helpers(self) -> HelperRegistry:
        """A new registry holding every helper this architecture's IR calls."""

    @abc.abstractmethod
    def translate(self, pc: int, flags: int, fetch: Fetch, log: Log | None = None) -> Block:
        """The IR of the block at ``pc`` for translation flags ``flags`` (see
        :meth:`tb_flags`). ``fetch(addr, size)`` reads guest code and raises GuestFault
        when it is not executable: a fault on the block's first instruction propagates
        (the guest takes it), a later one ends the block before that instruction.
        ``log`` receives ``-d in_asm`` output (None: not logged). Called from the
        run loop's thread and from the tiering compile thread: it must not keep
        per-translation state on ``self``."""

    @abc.abstractmethod
    def fingerprint(self) -> tuple:
        """What distinguishes the code this instance translates from another's: the
        architecture and the CPU model (the code cache keys on it, together with the
        state layout, the helpers and the runtime's options). Stable across processes:
        no ids, no hash-randomised ordering."""

    def insn_length(self, first_parcel: int) -> int:
        """Bytes of the instruction whose first 16 bits (little-endian) are
        ``first_parcel``. The default is a fixed 4-byte encoding."""
        return 4

    def tb_flags(self, state: CpuState) -> int:
        """The translation-relevant part of the state (privilege, MMU mode, FP unit
        state, …) packed into a non-negative integer below ``2**TB_FLAGS_BITS``, in
        the architecture's own layout. A guest whose translation never depends on its
        state returns 0."""
        return 0

    def mmu_index(self, state: CpuState) -> int:
        """The MMU index (TLB table) data accesses use in the current state."""
        return 0

    def fetch_mmu_index(self, flags: int) -> int:
        """The MMU index instruction fetches of a block translated for ``flags`` use."""
        return 0

    def tlb_fill(self, state: CpuState, vaddr: int, access: Access,
                 mmu_idx: int) -> PageTranslation:
        """System mode (QEMU's ``tlb_fill``): translate ``vaddr`` for ``access`` at
        ``mmu_idx`` (page-table walk, protection), or raise ``GuestFault`` with a
        PAGE_FAULT or ACCESS_FAULT :class:`MemFault` the guest then takes."""
        raise NotImplementedError(f"{self.name}: no system-mode MMU")

    # -- state ----------------------------------------------------------------------------
    def reset(self, state: CpuState) -> None:
        """Put the architectural registers in their reset state (the CPU-state buffer
        starts zeroed; :class:`Cpu` calls this once when it creates the state)."""
        return None  # an architecture whose registers all reset to zero

    @abc.abstractmethod
    def reg_read(self, state: CpuState, reg: enum.IntEnum | int | str) -> int:
        """The value of register ``reg`` (anything :meth:`register` accepts) as an
        unsigned integer of the register's width."""

    @abc.abstractmethod
    def reg_write(self, state: CpuState, reg: enum.IntEnum | int | str, value: int) -> None:
        """Write register ``reg`` as the architecture does (a hard-wired zero register
        ignores writes; values are truncated to the register's width)."""

    def register_global(self, reg: enum.IntEnum) -> str | None:
        """The IR global (a name of ``layout.globals()``) that holds register ``reg``
        whole, or None if no single global does (a flag word assembled from several
        fields, a hard-wired zero). The embedding API compiles predicates on registers
        (conditional hooks) against it. Default: none."""
        return None

    def register(self, reg: enum.IntEnum | int | str) -> enum.IntEnum:
        """The member of :attr:`registers` that ``reg`` names: a member, a register
        number, or a name (matched without regard to case; aliases give their register).

        Raises:
            UnknownRegisterError: no register of this architecture has that name.
        """
        if isinstance(reg, self.registers):
            return reg
        try:
            if isinstance(reg, str):
                return self.registers[reg.upper()]
            if isinstance(reg, int):
                return self.registers(reg)
        except (KeyError, ValueError):
            pass
        raise UnknownRegisterError(f"{self.name} has no register {reg!r}")

    # -- what a debugger sees (the gdbstub, llvmtcg/gdbstub.py) ----------------------------
    # gdb's name of the architecture (``set architecture``), None: no debugger support.
    gdb_architecture: ClassVar[str | None] = None
    # A watchpoint stops before the access (gdb then steps over it with watchpoints
    # removed: its "nonsteppable" watchpoints, QEMU's gdb_stop_before_watchpoint), or
    # after the accessing instruction.
    gdb_stop_before_watchpoint: ClassVar[bool] = False

    def debug_features(self) -> tuple[DebugFeature, ...]:
        """The target description, feature by feature; the registers of the first
        feature are those of the ``g`` packet, in order."""
        return ()

    def debug_reg_read(self, state: CpuState, number: int) -> int | None:
        """The value of debugger register ``number`` (see :meth:`debug_features`), or
        None if there is none such. Default: :meth:`reg_read` of that member of
        :attr:`registers`."""
        try:
            return self.reg_read(state, self.register(number))
        except UnknownRegisterError:
            return None

    def debug_reg_write(self, state: CpuState, number: int, value: int) -> bool:
        """Write debugger register ``number`` as the debugger asks (no guest exception
        is ever raised); False if there is no such register."""
        try:
            self.reg_write(state, self.register(number), value)
        except UnknownRegisterError:
            return False
        return True

    # -- the guest's floating-point environment -------------------------------------------
    def fp_rounding(self, state: CpuState) -> RoundingMode:
        """The rounding mode of float ops in the dynamic mode (DYN): loaded into the
        host FP environment on every entry to native code."""
        return RoundingMode.RNE

    def fp_accrue(self, state: CpuState, flags: FFlag) -> None:
        """Receive the IEEE exception flags guest float ops raised (after every return
        from native code that raised any)."""
        return None  # a guest without floating point has nowhere to keep them

    # -- system mode (issue #11) ----------------------------------------------------------
    def exec_interrupt(self, state: CpuState) -> bool:
        """Between blocks, when an interrupt may be pending: if one is pending *and*
        enabled in the current state (privilege, global and per-source enables), take
        it — do what :meth:`do_interrupt` does for it — and return True; the run loop
        then looks up code again (pc and tb_flags changed). Return False to keep
        running. User mode has no interrupts: False."""
        return False

    def do_interrupt(self, state: CpuState, exception_index: int,
                     fault: MemFault | None = None) -> None:
        """System mode: deliver the exception or interrupt ``exception_index`` (a
        block's EXCEPTION exit, or what :meth:`exec_interrupt` took) to the guest: save
        the pc and cause in the trap registers, switch privilege, and set the pc to the
        trap vector (and ``state.tb_flags``). ``fault`` is the memory fault behind
        EXCP_MEM_FAULT / EXCP_MISALIGNED (its kind and address give cause and tval).
        User mode never calls it (the user-mode loop turns exceptions into signals)."""
        raise NotImplementedError(f"{self.name}: no system-mode exception delivery")

    def attach_memory(self, state: CpuState, memory: GuestMemory,
                      invalidate: Callable[[int, int], int]) -> None:
        """System mode: the physical address space ``state``'s MMU walks page tables
        in; ``invalidate(start, end)`` drops translated code of a physical range the
        MMU itself writes (A/D updates)."""
        raise NotImplementedError(f"{self.name}: no system mode")

    def set_irq(self, state: CpuState, line: int, level: bool) -> None:
        """System mode: a device drives interrupt input ``line`` (the architecture's
        numbering) to ``level``; an interrupt that may now be taken requests an exit."""
        raise NotImplementedError(f"{self.name}: no system mode")

    def on_timer_change(self, state: CpuState,
                        listener: Callable[[int | None], None]) -> None:
        """System mode: the CPU's own timer (RISC-V Sstc): ``listener(deadline)`` now
        and whenever the deadline (in ``time`` units, None: none) may have moved."""
        listener(None)  # an architecture without a CPU timer

    def save_state(self, state: CpuState) -> dict[str, object]:
        """System mode (savevm): the architecture's state outside the CPU-state buffer
        (RISC-V: privilege and CSRs), as plain data (ints, strings, lists, dicts)."""
        return {}

    def load_state(self, state: CpuState, saved: dict[str, object]) -> None:
        """System mode (loadvm): the inverse of :meth:`save_state`; KeyError,
        TypeError or ValueError when ``saved`` does not fit, before any change."""
        return None

    def wakes(self, state: CpuState) -> bool:
        """System mode: whether a CPU waiting for an interrupt (RISC-V WFI) resumes."""
        return True

    def counters(self, state: CpuState) -> dict[str, int]:
        """System mode: how often the architecture's own model was entered from
        translated code, by kind (CSR accesses, traps, interrupts, page walks), for
        ``$LLVMTCG_STATS``."""
        return {}
