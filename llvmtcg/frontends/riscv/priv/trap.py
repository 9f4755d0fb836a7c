"""Trap entry and return, interrupt selection, and the legality of privileged
instructions (ecall, mret, sret, wfi, sfence.vma), on a :class:`CsrFile`.

The caller (the translator's helpers and the run loop) decides *when*: a synchronous
exception at the instruction that raised it, an interrupt between instructions when
:func:`pending_interrupt` returns a cause. These functions do the architectural state
changes and return the next pc.
"""

from __future__ import annotations

from llvmtcg.frontends.riscv.priv.csr import CsrFile
from llvmtcg.frontends.riscv.priv.state import (
    INTERRUPT_BIT,
    MASK64,
    ExcCause,
    IllegalInstruction,
    IrqCause,
    Mstatus,
    Priv,
    get_field,
    set_field,
)

# "Multiple simultaneous interrupts destined for M-mode are handled in the following
# decreasing priority order: MEI, MSI, MTI, SEI, SSI, STI." (§3.1.9)
INTERRUPT_PRIORITY = (IrqCause.MEI, IrqCause.MSI, IrqCause.MTI,
                      IrqCause.SEI, IrqCause.SSI, IrqCause.STI)

_TVEC_VECTORED = 1


def take_trap(hart: CsrFile, cause: int, is_interrupt: bool, tval: int, pc: int) -> int:
    """Enter the trap handler for ``cause``; return the handler's address.

    ``pc`` is the address of the instruction that trapped (for an interrupt: the one
    that would have run next). The trap goes to S-mode when its bit is set in medeleg
    (exceptions) or mideleg (interrupts) and the hart is in S or U: "Traps never
    transition from a more-privileged mode to a less-privileged mode" (§3.1.8). The
    target mode's xcause/xepc/xtval are written and mstatus stacks: "xPIE is set to
    the value of xIE; xIE is set to 0; and xPP is set to y" (§3.1.6.1).
    """
    delegation = hart.mideleg if is_interrupt else hart.medeleg
    xcause = cause | (INTERRUPT_BIT if is_interrupt else 0)
    status = hart.mstatus
    if hart.priv <= Priv.S and (delegation >> cause) & 1:
        hart.scause, hart.sepc, hart.stval = xcause, pc, tval & MASK64
        status = set_field(status, Mstatus.SPIE, get_field(status, Mstatus.SIE))
        status = set_field(status, Mstatus.SPP, int(hart.priv))
        status &= ~Mstatus.SIE
        hart.priv = Priv.S
        tvec = hart.stvec
    else:
        hart.mcause, hart.mepc, hart.mtval = xcause, pc, tval & MASK64
        status = set_field(status, Mstatus.MPIE, get_field(status, Mstatus.MIE))
        status = set_field(status, Mstatus.MPP, int(hart.priv))
        status &= ~Mstatus.MIE
        hart.priv = Priv.M
        tvec = hart.mtvec
    hart.mstatus = status
    base = tvec & ~3 & MASK64
    # Vectored mode: "Asynchronous interrupts set pc to BASE+4×cause" (§3.1.7).
    if is_interrupt and tvec & 3 == _TVEC_VECTORED:
        return (base + 4 * cause) & MASK64
    return base


def mret(hart: CsrFile) -> int:
    """Execute MRET; return the pc to continue at (mepc).

    Raises:
        IllegalInstruction: below M-mode.
    """
    if hart.priv != Priv.M:
        raise IllegalInstruction(f"mret in {hart.priv.name}-mode")
    status = hart.mstatus
    target = Priv(get_field(status, Mstatus.MPP))
    status = set_field(status, Mstatus.MIE, get_field(status, Mstatus.MPIE))
    status |= Mstatus.MPIE
    status = set_field(status, Mstatus.MPP, Priv.U)  # the least-privileged mode
    if target != Priv.M:  # "If xPP≠M, xRET also sets MPRV=0."
        status &= ~Mstatus.MPRV
    hart.mstatus = status
    hart.priv = target
    return hart.mepc


def sret(hart: CsrFile) -> int:
    """Execute SRET; return the pc to continue at (sepc).

    Raises:
        IllegalInstruction: in U-mode, or in S-mode with mstatus.TSR=1 (§3.1.6.5).
    """
    if hart.priv == Priv.U:
        raise IllegalInstruction("sret in U-mode")
    if hart.priv == Priv.S and hart.mstatus & Mstatus.TSR:
        raise IllegalInstruction("sret with mstatus.TSR=1")
    status = hart.mstatus
    target = Priv(get_field(status, Mstatus.SPP))
    status = set_field(status, Mstatus.SIE, get_field(status, Mstatus.SPIE))
    status |= Mstatus.SPIE
    status &= ~Mstatus.SPP  # U
    status &= ~Mstatus.MPRV  # SPP is never M
    hart.mstatus = status
    hart.priv = target
    return hart.sepc


def _highest(pending: int) -> IrqCause | None:
    for irq in INTERRUPT_PRIORITY:
        if pending >> irq & 1:
            return irq
    return None


def pending_interrupt(hart: CsrFile) -> IrqCause | None:
    """The interrupt the hart takes now, or None.

    An interrupt traps to M if it is pending and enabled in mip/mie, not delegated, and
    "either the current privilege mode is M and the MIE bit in the mstatus register is
    set, or the current privilege mode has less privilege than M-mode" (§3.1.9); to S
    if delegated and "either the current privilege mode is S and the SIE bit in the
    sstatus register is set, or the current privilege mode has less privilege than
    S-mode" (§4.1.3). "Interrupts to M-mode take priority over any interrupts to lower
    privilege modes"; within a mode the order is INTERRUPT_PRIORITY.
    """
    priv, status, mideleg = hart.priv, hart.mstatus, hart.mideleg
    # The enabled interrupts first: with none (S-mode with SIE clear, most of the
    # time), mip — which reads the timer for Sstc — is not needed.
    enabled = 0
    if priv < Priv.M or status & Mstatus.MIE:
        enabled = ~mideleg
    if priv < Priv.S or (priv == Priv.S and status & Mstatus.SIE):
        enabled |= mideleg
    enabled &= hart.mie
    if not enabled:
        return None
    pending = hart.mip & enabled
    if not pending:
        return None
    return _highest(pending & ~mideleg) or _highest(pending & mideleg)


def wfi_wakes(hart: CsrFile) -> bool:
    """Whether a stalled WFI resumes: "the hart must resume if a locally enabled
    interrupt becomes pending, even if it has been delegated", regardless of MIE/SIE
    (§3.3.3)."""
    return bool(hart.mip & hart.mie)


def check_wfi(hart: CsrFile) -> None:
    """Raise IllegalInstruction if WFI may not execute here.

    U-mode: "When S-mode is implemented, then executing WFI in U-mode causes an illegal
    instruction exception" (we take the bounded time limit as 0). S-mode with TW=1:
    likewise, "The time limit may always be 0". M-mode may always wait.
    """
    if hart.priv == Priv.U:
        raise IllegalInstruction("wfi in U-mode")
    if hart.priv == Priv.S and hart.mstatus & Mstatus.TW:
        raise IllegalInstruction("wfi with mstatus.TW=1")


def check_sfence_vma(hart: CsrFile) -> None:
    """Raise IllegalInstruction if SFENCE.VMA may not execute here: in U-mode, and in
    S-mode with TVM=1 (§3.1.6.5)."""
    if hart.priv == Priv.U:
        raise IllegalInstruction("sfence.vma in U-mode")
    if hart.priv == Priv.S and hart.mstatus & Mstatus.TVM:
        raise IllegalInstruction("sfence.vma with mstatus.TVM=1")


_ECALL_CAUSE = {Priv.U: ExcCause.U_ECALL, Priv.S: ExcCause.S_ECALL, Priv.M: ExcCause.M_ECALL}


def ecall_cause(priv: Priv) -> ExcCause:
    """ECALL "generates an environment-call-from-U-mode exception, environment-call-
    from-S-mode exception, or environment-call-from-M-mode exception, respectively"."""
    return _ECALL_CAUSE[priv]
