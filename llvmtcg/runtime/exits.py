"""What the run loop reports back: typed exits and the runtime's own exception codes."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from llvmtcg.ir.ops import ExitReason

# exception_index values the runtime itself raises; frontends use small numbers.
EXCP_HELPER_ERROR = 0x7FFF_0000  # a Python helper raised; the run loop re-raises it
EXCP_MEM_FAULT = 0x7FFF_0001  # a guest access to unmapped or protected memory
EXCP_MISALIGNED = 0x7FFF_0002  # an access that required alignment was misaligned
# A debugger stop (QEMU's EXCP_DEBUG): pc reached a breakpoint, or one instruction was
# single-stepped; never a guest exception (the guest does not see it).
EXCP_DEBUG = 0x7FFF_0003


class Access(enum.IntEnum):
    READ = 0
    WRITE = 1
    FETCH = 2


class FaultKind(enum.Enum):
    UNMAPPED = "unmapped"
    PROTECTION = "protection"
    MISALIGNED = "misaligned"
    MMIO_ATOMIC = "atomic access to MMIO"
    # System mode: what the guest's MMU reports (the architecture maps them to causes).
    PAGE_FAULT = "page fault"
    ACCESS_FAULT = "access fault"
    # A debugger's watchpoint: the access has not happened (RunLoop: EXCP_DEBUG).
    WATCHPOINT = "watchpoint"


@dataclass(frozen=True, slots=True)
class MemFault:
    addr: int
    access: Access
    kind: FaultKind

    def __str__(self) -> str:
        return f"{self.kind.value} {self.access.name.lower()} at {self.addr:#x}"


class GuestFault(Exception):
    """Raised inside the runtime for a faulting guest access; becomes an EXCEPTION exit."""

    def __init__(self, fault: MemFault) -> None:
        super().__init__(str(fault))
        self.fault = fault


@dataclass(frozen=True, slots=True)
class CpuExit:
    """Why :meth:`Cpu.run` returned.

    ``pc`` is the guest pc to resume at (for EXCEPTION: the faulting instruction; for
    SYSCALL: as the frontend set it). ``fault`` is set for memory faults.
    """

    reason: ExitReason
    pc: int
    exception_index: int = -1
    fault: MemFault | None = None
