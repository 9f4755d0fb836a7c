"""Trap entry, delegation, xRET, interrupt priority, WFI and SFENCE.VMA legality."""

from __future__ import annotations

import pytest

from llvmtcg.frontends.riscv.priv.csr import MENVCFG_STCE, Csr, CsrFile
from llvmtcg.frontends.riscv.priv.state import (
    INTERRUPT_BIT,
    M_INTERRUPTS,
    S_INTERRUPTS,
    SEIP,
    SSIP,
    STIP,
    ExcCause,
    IllegalInstruction,
    IrqCause,
    Mstatus,
    Priv,
)
from llvmtcg.frontends.riscv.priv.trap import (
    check_sfence_vma,
    check_wfi,
    ecall_cause,
    mret,
    pending_interrupt,
    sret,
    take_trap,
    wfi_wakes,
)

MTVEC, STVEC = 0x8000_0000, 0x8020_0000


class Clock:
    def __init__(self) -> None:
        self.time = 1000


def make(priv: Priv = Priv.M, clock: Clock | None = None) -> CsrFile:
    clock = clock or Clock()
    h = CsrFile(cycles=lambda: 0, instret=lambda: 0, time=lambda: clock.time)
    h.write(Csr.MTVEC, MTVEC)
    h.write(Csr.STVEC, STVEC)
    h.priv = priv
    return h


def status(h: CsrFile, field: int) -> int:
    return (h.mstatus & field) >> ((field & -field).bit_length() - 1)


# -- exceptions and delegation -----------------------------------------------------------------

def test_user_ecall_delegated_to_s() -> None:
    # "setting a bit in medeleg ... will delegate the corresponding trap, when occurring
    # in S-mode or U-mode, to the S-mode trap handler." "the SPP field of mstatus is
    # written with the active privilege mode at the time of the trap; the SPIE field ...
    # with the value of the SIE field ...; and the SIE field of mstatus is cleared. The
    # mcause, mepc, and mtval registers and the MPP and MPIE fields of mstatus are not
    # written."
    h = make(Priv.U)
    h.write(Csr.MEDELEG, 1 << ExcCause.U_ECALL, Priv.M)
    h.mstatus |= Mstatus.SIE | Mstatus.MPIE | (3 << 11)
    h.mepc, h.mcause = 0x111, 0x222
    pc = take_trap(h, ecall_cause(Priv.U), False, 0, 0x1_0000)
    assert pc == STVEC and h.priv == Priv.S
    assert h.scause == ExcCause.U_ECALL and h.sepc == 0x1_0000 and h.stval == 0
    assert status(h, Mstatus.SPP) == 0 and status(h, Mstatus.SPIE) == 1
    assert status(h, Mstatus.SIE) == 0
    assert h.mepc == 0x110 and h.mcause == 0x222
    assert status(h, Mstatus.MPIE) == 1 and status(h, Mstatus.MPP) == 3


def test_supervisor_ecall_not_delegated_goes_to_m() -> None:
    # "When a trap is taken from privilege mode y into privilege mode x, xPIE is set to
    # the value of xIE; xIE is set to 0; and xPP is set to y."
    h = make(Priv.S)
    h.write(Csr.MEDELEG, 1 << ExcCause.U_ECALL, Priv.M)
    h.mstatus |= Mstatus.MIE | Mstatus.SIE
    pc = take_trap(h, ecall_cause(Priv.S), False, 0, 0x8020_1000)
    assert pc == MTVEC and h.priv == Priv.M
    assert h.mcause == ExcCause.S_ECALL == 9 and h.mepc == 0x8020_1000
    assert status(h, Mstatus.MPP) == 1 and status(h, Mstatus.MPIE) == 1
    assert status(h, Mstatus.MIE) == 0 and status(h, Mstatus.SIE) == 1


def test_delegated_exception_in_m_mode_stays_in_m() -> None:
    # "Traps never transition from a more-privileged mode to a less-privileged mode. For
    # example, if M-mode has delegated illegal instruction exceptions to S-mode, and
    # M-mode software later executes an illegal instruction, the trap is taken in
    # M-mode"; "traps may be taken horizontally": from S-mode it goes to S.
    h = make(Priv.M)
    h.write(Csr.MEDELEG, 1 << ExcCause.ILLEGAL_INSN)
    assert take_trap(h, ExcCause.ILLEGAL_INSN, False, 0x0000_0073, 0x8000_0040) == MTVEC
    assert h.priv == Priv.M and h.mtval == 0x73 and h.mcause == 2
    h.priv = Priv.S
    assert take_trap(h, ExcCause.ILLEGAL_INSN, False, 0x1234, 0x8020_0040) == STVEC
    assert h.priv == Priv.S and h.stval == 0x1234 and status(h, Mstatus.SPP) == 1


def test_page_fault_tval_and_cause() -> None:
    h = make(Priv.U)
    h.write(Csr.MEDELEG, 1 << ExcCause.STORE_PAGE_FAULT, Priv.M)
    take_trap(h, ExcCause.STORE_PAGE_FAULT, False, 0xFFFF_FFFF_DEAD_0000, 0x1000)
    assert h.scause == 15 and h.stval == 0xFFFF_FFFF_DEAD_0000


def test_ecall_causes() -> None:
    # "it generates an environment-call-from-U-mode exception, environment-call-from-S-
    # mode exception, or environment-call-from-M-mode exception, respectively"
    assert [ecall_cause(p) for p in (Priv.U, Priv.S, Priv.M)] == [8, 9, 11]


# -- interrupts --------------------------------------------------------------------------------

def test_vectored_interrupt_addresses() -> None:
    # "a machine-mode timer interrupt ... causes the pc to be set to BASE+0x1c";
    # "all synchronous exceptions into machine mode cause the pc to be set to the
    # address in the BASE field".
    h = make(Priv.U)
    h.write(Csr.MTVEC, MTVEC | 1, Priv.M)
    assert take_trap(h, IrqCause.MTI, True, 0, 0x1000) == MTVEC + 0x1C
    assert h.mcause == INTERRUPT_BIT | 7
    h.priv = Priv.U
    assert take_trap(h, ExcCause.BREAKPOINT, False, 0, 0x1000) == MTVEC
    h.priv = Priv.U
    h.write(Csr.STVEC, STVEC | 1, Priv.M)
    h.write(Csr.MIDELEG, SEIP, Priv.M)
    assert take_trap(h, IrqCause.SEI, True, 0, 0x1000) == STVEC + 4 * 9
    assert h.scause == INTERRUPT_BIT | 9 and h.priv == Priv.S


def test_interrupt_delegated_to_s_is_masked_in_m() -> None:
    # "if the supervisor timer interrupt (STI) is delegated to S-mode by setting
    # mideleg[5], STIs will not be taken when executing in M-mode. By contrast, if
    # mideleg[5] is clear, STIs can be taken in any mode and regardless of current mode
    # will transfer control to M-mode."
    h = make(Priv.M)
    h.mstatus |= Mstatus.MIE | Mstatus.SIE
    h.write(Csr.MIE, STIP)
    h.write(Csr.MIP, STIP)
    h.write(Csr.MIDELEG, STIP)
    assert pending_interrupt(h) is None
    h.priv = Priv.S
    assert pending_interrupt(h) == IrqCause.STI
    h.write(Csr.MIDELEG, 0, Priv.M)
    h.priv = Priv.M
    assert pending_interrupt(h) == IrqCause.STI
    assert take_trap(h, IrqCause.STI, True, 0, 0x100) == MTVEC and h.priv == Priv.M


def test_global_enables_per_privilege() -> None:
    # "Interrupts for lower-privilege modes, w<x, are always globally disabled
    # regardless of the setting of any global wIE bit for the lower-privilege mode.
    # Interrupts for higher-privilege modes, y>x, are always globally enabled regardless
    # of the setting of the global yIE bit for the higher-privilege mode."
    h = make(Priv.M)
    h.write(Csr.MIE, M_INTERRUPTS | S_INTERRUPTS)
    h.write(Csr.MIDELEG, SSIP)
    h.set_irq_line(IrqCause.MTI, True)
    assert pending_interrupt(h) is None  # M with MIE=0
    h.mstatus |= Mstatus.MIE
    assert pending_interrupt(h) == IrqCause.MTI
    h.mstatus &= ~Mstatus.MIE
    h.priv = Priv.S
    assert pending_interrupt(h) == IrqCause.MTI  # M interrupts always enabled below M
    h.set_irq_line(IrqCause.MTI, False)
    h.write(Csr.MIP, SSIP, Priv.M)
    assert pending_interrupt(h) is None  # S with SIE=0
    h.mstatus |= Mstatus.SIE
    assert pending_interrupt(h) == IrqCause.SSI
    h.mstatus &= ~Mstatus.SIE
    h.priv = Priv.U
    assert pending_interrupt(h) == IrqCause.SSI  # S interrupts always enabled in U
    h.write(Csr.MIE, M_INTERRUPTS, Priv.M)
    assert pending_interrupt(h) is None  # pending but not enabled in mie


def test_interrupt_priority_order() -> None:
    # "Multiple simultaneous interrupts destined for M-mode are handled in the following
    # decreasing priority order: MEI, MSI, MTI, SEI, SSI, STI."
    h = make(Priv.U)
    h.write(Csr.MIE, M_INTERRUPTS | S_INTERRUPTS, Priv.M)
    for irq in (IrqCause.MEI, IrqCause.MSI, IrqCause.MTI):
        h.set_irq_line(irq, True)
    h.write(Csr.MIP, SEIP | SSIP | STIP, Priv.M)
    taken = []
    while (irq := pending_interrupt(h)) is not None:
        taken.append(irq)
        if irq in (IrqCause.MEI, IrqCause.MSI, IrqCause.MTI):
            h.set_irq_line(irq, False)
        else:
            h.write(Csr.MIP, h.read(Csr.MIP, Priv.M) & ~(1 << irq), Priv.M)
    assert taken == [IrqCause.MEI, IrqCause.MSI, IrqCause.MTI,
                     IrqCause.SEI, IrqCause.SSI, IrqCause.STI]


def test_m_destined_interrupts_beat_delegated_ones() -> None:
    # "Interrupts to M-mode take priority over any interrupts to lower privilege modes."
    # A non-delegated STI (to M) comes before a delegated SEI (to S).
    h = make(Priv.U)
    h.write(Csr.MIE, S_INTERRUPTS, Priv.M)
    h.write(Csr.MIDELEG, SEIP, Priv.M)
    h.write(Csr.MIP, SEIP | STIP, Priv.M)
    assert pending_interrupt(h) == IrqCause.STI
    h.write(Csr.MIDELEG, SEIP | STIP, Priv.M)
    assert pending_interrupt(h) == IrqCause.SEI  # both to S: "SEI, SSI, STI"


def test_sstc_timer_interrupt_to_s() -> None:
    clock = Clock()
    h = make(Priv.M, clock)
    h.write(Csr.MENVCFG, MENVCFG_STCE)
    h.write(Csr.MIDELEG, STIP)
    h.write(Csr.MIE, STIP)
    h.write(Csr.MCOUNTEREN, 0b010)
    h.priv = Priv.S
    h.mstatus |= Mstatus.SIE
    h.write(Csr.STIMECMP, clock.time + 10)
    assert pending_interrupt(h) is None and h.timer_deadline == clock.time + 10
    clock.time += 10
    assert pending_interrupt(h) == IrqCause.STI
    assert take_trap(h, IrqCause.STI, True, 0, 0x8020_0000) == STVEC
    assert h.scause == INTERRUPT_BIT | 5


# -- trap return -------------------------------------------------------------------------------

def test_mret_restores_the_stack() -> None:
    # "xIE is set to xPIE; the privilege mode is changed to y; xPIE is set to 1; and xPP
    # is set to the least-privileged supported mode (U ...). If xPP≠M, xRET also sets
    # MPRV=0."
    h = make(Priv.M)
    h.mstatus |= Mstatus.MPIE | (1 << 11) | Mstatus.MPRV
    h.mepc = 0x8020_0000
    assert mret(h) == 0x8020_0000
    assert h.priv == Priv.S
    assert status(h, Mstatus.MIE) == 1 and status(h, Mstatus.MPIE) == 1
    assert status(h, Mstatus.MPP) == 0 and status(h, Mstatus.MPRV) == 0


def test_mret_to_m_keeps_mprv() -> None:
    h = make(Priv.M)
    h.mstatus |= (3 << 11) | Mstatus.MPRV | Mstatus.MIE
    h.mepc = 0x8000_0100
    assert mret(h) == 0x8000_0100 and h.priv == Priv.M
    assert status(h, Mstatus.MPRV) == 1 and status(h, Mstatus.MIE) == 0
    assert status(h, Mstatus.MPP) == 0


def test_trap_then_return_round_trip() -> None:
    h = make(Priv.U)
    h.mstatus |= Mstatus.MIE
    take_trap(h, ExcCause.U_ECALL, False, 0, 0x4000)
    assert status(h, Mstatus.MPIE) == 1 and status(h, Mstatus.MIE) == 0
    h.mepc = h.mepc + 4
    assert mret(h) == 0x4004 and h.priv == Priv.U and status(h, Mstatus.MIE) == 1


def test_sret() -> None:
    h = make(Priv.S)
    h.mstatus |= Mstatus.SPIE | Mstatus.SPP | Mstatus.MPRV
    h.sepc = 0x8020_0100
    assert sret(h) == 0x8020_0100 and h.priv == Priv.S
    assert status(h, Mstatus.SIE) == 1 and status(h, Mstatus.SPIE) == 1
    assert status(h, Mstatus.SPP) == 0 and status(h, Mstatus.MPRV) == 0
    h.sepc = 0x1000
    assert sret(h) == 0x1000 and h.priv == Priv.U
    # "An xRET instruction can be executed in privilege mode x or higher"
    h.priv = Priv.M
    assert sret(h) == 0x1000 and h.priv == Priv.U


def test_xret_legality() -> None:
    # "When TSR=1, attempts to execute SRET while executing in S-mode will raise an
    # illegal instruction exception."
    for priv in (Priv.S, Priv.U):
        with pytest.raises(IllegalInstruction):
            mret(make(priv))
    with pytest.raises(IllegalInstruction):
        sret(make(Priv.U))
    h = make(Priv.S)
    h.mstatus |= Mstatus.TSR
    with pytest.raises(IllegalInstruction):
        sret(h)
    h.priv = Priv.M
    sret(h)  # TSR does not apply to M-mode


# -- wfi and sfence.vma ------------------------------------------------------------------------

def test_wfi_legality() -> None:
    # "When S-mode is implemented, then executing WFI in U-mode causes an illegal
    # instruction exception"; TW=1: "WFI always causes an illegal instruction exception
    # in less-privileged modes" (time limit 0).
    with pytest.raises(IllegalInstruction):
        check_wfi(make(Priv.U))
    h = make(Priv.S)
    check_wfi(h)
    h.mstatus |= Mstatus.TW
    with pytest.raises(IllegalInstruction):
        check_wfi(h)
    h.priv = Priv.M
    check_wfi(h)


def test_wfi_wakes_on_locally_enabled_interrupts_only() -> None:
    # "the hart must resume if a locally enabled interrupt becomes pending, even if it
    # has been delegated to a less-privileged mode", "unaffected by the global interrupt
    # bits in mstatus", but "implementations should avoid resuming the hart if the
    # interrupt is pending but not individually enabled".
    h = make(Priv.M)
    h.write(Csr.MIP, SSIP)
    assert not wfi_wakes(h)
    h.write(Csr.MIDELEG, SSIP)
    h.write(Csr.MIE, SSIP)
    assert wfi_wakes(h) and pending_interrupt(h) is None


def test_sfence_vma_legality() -> None:
    # "When TVM=1, attempts to ... execute an SFENCE.VMA ... while executing in S-mode
    # will raise an illegal instruction exception."
    with pytest.raises(IllegalInstruction):
        check_sfence_vma(make(Priv.U))
    h = make(Priv.S)
    check_sfence_vma(h)
    h.mstatus |= Mstatus.TVM
    with pytest.raises(IllegalInstruction):
        check_sfence_vma(h)
    h.priv = Priv.M
    check_sfence_vma(h)
