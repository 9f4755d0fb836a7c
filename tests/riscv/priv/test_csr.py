"""CSR access rules, WARL fields and views (Privileged Spec 20211203 chapters 2-4, Sstc)."""

from __future__ import annotations

import pytest

from llvmtcg.frontends.riscv.cpu import CpuModel
from llvmtcg.frontends.riscv.priv.csr import (
    MENVCFG_STCE,
    Csr,
    CsrEffect,
    CsrFile,
    HartConfig,
    csr_name,
)
from llvmtcg.frontends.riscv.priv.state import (
    MEIP,
    MSIP,
    MTIP,
    SEIP,
    SSIP,
    STIP,
    IllegalInstruction,
    IrqCause,
    Mstatus,
    Priv,
    SatpMode,
)

ALL = (1 << 64) - 1
U, S, M = Priv.U, Priv.S, Priv.M


class Counters:
    """The hart's counter and timer sources, advanced by the tests."""

    def __init__(self) -> None:
        self.cycles = 1000
        self.instret = 500
        self.time = 10_000


def make(config: HartConfig | None = None, *, with_time: bool = True,
         counters: Counters | None = None) -> CsrFile:
    c = counters or Counters()
    return CsrFile(config, cycles=lambda: c.cycles, instret=lambda: c.instret,
                   time=(lambda: c.time) if with_time else None)


def illegal(h: CsrFile, csrno: int, priv: Priv, *, value: int | None = None) -> None:
    with pytest.raises(IllegalInstruction):
        if value is None:
            h.read(csrno, priv)
        else:
            h.write(csrno, value, priv)


# -- existence, read-only, privilege ---------------------------------------------------------

def test_nonexistent_csrs_are_illegal() -> None:
    h = make()
    for csrno in (0x7C0, 0x600, 0x7B0, 0x3A1, 0xFFF, 0x5A8):
        illegal(h, csrno, M)
    assert csr_name(0x7C0) == "csr_0x7c0" and csr_name(Csr.SATP) == "satp"


def test_read_only_csrs_trap_on_write() -> None:
    # "Attempts to access a CSR without appropriate privilege level or to write a
    # read-only register raise illegal instruction exceptions." Bits 11:10 = 3.
    h = make()
    for csrno in (Csr.MHARTID, Csr.MVENDORID, Csr.MCONFIGPTR, Csr.CYCLE, Csr.TIME):
        h.read(csrno, M)
        illegal(h, csrno, M, value=0)


def test_csrrs_with_a_zero_register_still_writes() -> None:
    # "if rs1 specifies a register holding a zero value other than x0, the instruction
    # will still attempt to write the unmodified value back to the CSR"
    h = make()
    assert h.rmw(Csr.MHARTID, ALL, 0, M, writes=False)[0] == 0  # csrrs rd, mhartid, x0
    with pytest.raises(IllegalInstruction):
        h.rmw(Csr.MHARTID, ALL, 0, M, writes=True)  # csrrs rd, mhartid, t0 (t0 = 0)


def test_privilege_from_the_csr_number() -> None:
    # "The next two bits (csr[9:8]) encode the lowest privilege level that can access
    # the CSR."
    h = make()
    illegal(h, Csr.MSTATUS, S)
    illegal(h, Csr.MSCRATCH, S, value=1)
    illegal(h, Csr.SSTATUS, U)
    h.write(Csr.SSCRATCH, 5, S)
    assert h.read(Csr.SSCRATCH, S) == 5 and h.read(Csr.SSCRATCH, M) == 5


def test_default_privilege_is_the_current_one() -> None:
    h = make()
    h.priv = Priv.S
    with pytest.raises(IllegalInstruction):
        h.read(Csr.MEPC)
    h.priv = Priv.M
    h.read(Csr.MEPC)


def test_identification() -> None:
    h = make(HartConfig(hartid=3, model=CpuModel.parse("rv64,c=off")))
    assert h.read(Csr.MHARTID) == 3
    assert h.read(Csr.MARCHID) == 0x70200 and h.read(Csr.MIMPID) == 0x70200
    assert h.read(Csr.MVENDORID) == 0 and h.read(Csr.MCONFIGPTR) == 0


# -- misa, mstatus, sstatus -----------------------------------------------------------------

def test_misa_rv64_imafdc_su_and_writes_ignored() -> None:
    h = make()
    letters = "imafdcsu"
    expected = (2 << 62) | sum(1 << (ord(c) - ord("a")) for c in letters)
    assert h.read(Csr.MISA) == expected
    assert h.write(Csr.MISA, 0) == CsrEffect.NONE
    assert h.read(Csr.MISA) == expected


def test_mstatus_xlen_fields_and_read_only_bits() -> None:
    h = make()
    h.write(Csr.MSTATUS, ALL)
    status = h.read(Csr.MSTATUS)
    assert (status >> 32) & 0xF == 0b1010  # UXL = SXL = 2 (64-bit)
    # MBE/SBE/UBE little-endian only, VS and XS absent.
    assert status & (Mstatus.MBE | Mstatus.SBE | Mstatus.UBE | Mstatus.VS | Mstatus.XS) == 0
    assert status & Mstatus.MPP == Mstatus.MPP  # M
    for bit in (Mstatus.SIE, Mstatus.MIE, Mstatus.SPIE, Mstatus.MPIE, Mstatus.SPP,
                Mstatus.MPRV, Mstatus.SUM, Mstatus.MXR, Mstatus.TVM, Mstatus.TW, Mstatus.TSR):
        assert status & bit
    h.write(Csr.MSTATUS, 0)
    assert h.read(Csr.MSTATUS) == 0b1010 << 32


def test_mpp_is_warl() -> None:
    # "xPP fields are WARL fields that can hold only privilege mode x and any implemented
    # privilege mode lower than x": 2 is not a mode, so the field keeps its value.
    h = make()
    h.write(Csr.MSTATUS, 1 << 11)
    h.write(Csr.MSTATUS, 2 << 11)
    assert (h.read(Csr.MSTATUS) >> 11) & 3 == 1


def test_sd_summarises_dirty_fs() -> None:
    # "The SD bit is a read-only bit that summarizes whether either the FS, VS, or XS
    # fields signal the presence of some dirty state"
    h = make()
    h.write(Csr.MSTATUS, 2 << 13)
    assert not h.read(Csr.MSTATUS) >> 63
    h.mark_fs_dirty()
    assert h.read(Csr.MSTATUS) >> 63 and h.read(Csr.SSTATUS) >> 63
    h.write(Csr.MSTATUS, ALL & ~Mstatus.FS)
    assert not h.read(Csr.MSTATUS) >> 63


def test_fs_is_read_only_zero_without_f() -> None:
    h = make(HartConfig(model=CpuModel.parse("rv64,f=off,d=off")))
    h.write(Csr.MSTATUS, Mstatus.FS)
    assert h.read(Csr.MSTATUS) & Mstatus.FS == 0
    assert h.read(Csr.MISA) & (1 << 5) == 0


def test_sstatus_is_a_restricted_view() -> None:
    # "The sstatus register is a subset of the mstatus register."
    h = make()
    h.write(Csr.MSTATUS, Mstatus.MIE | Mstatus.MPIE | Mstatus.TVM | Mstatus.SUM | (3 << 11))
    assert h.read(Csr.SSTATUS) == Mstatus.SUM | (2 << 32)  # plus UXL
    h.write(Csr.SSTATUS, ALL, S)
    status = h.read(Csr.MSTATUS)
    assert status & (Mstatus.SIE | Mstatus.SPIE | Mstatus.SPP | Mstatus.FS | Mstatus.MXR)
    assert status & Mstatus.MPP == 3 << 11 and status & Mstatus.TVM and status & Mstatus.MIE
    assert not status & Mstatus.TW and not status & Mstatus.MPRV
    h.write(Csr.SSTATUS, 0, S)
    assert h.read(Csr.MSTATUS) & (Mstatus.MIE | Mstatus.MPIE | Mstatus.TVM) == (
        Mstatus.MIE | Mstatus.MPIE | Mstatus.TVM)


# -- trap setup -------------------------------------------------------------------------------

@pytest.mark.parametrize("csrno", [Csr.MTVEC, Csr.STVEC], ids=["mtvec", "stvec"])
def test_tvec_modes_are_warl(csrno: int) -> None:
    # MODE 0 Direct, 1 Vectored, >= 2 Reserved; a reserved mode leaves the register as
    # it was (QEMU).
    h = make()
    h.write(csrno, 0x8000_0100)
    assert h.read(csrno) == 0x8000_0100
    h.write(csrno, 0x8000_0201)
    assert h.read(csrno) == 0x8000_0201
    h.write(csrno, 0x8000_0302)
    h.write(csrno, 0x8000_0403)
    assert h.read(csrno) == 0x8000_0201


def test_medeleg_and_mideleg_writable_bits() -> None:
    # "medeleg[11] is read-only zero"; mideleg delegates only the S-level interrupts.
    h = make()
    h.write(Csr.MEDELEG, ALL)
    assert h.read(Csr.MEDELEG) == sum(1 << c for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 15))
    h.write(Csr.MIDELEG, ALL)
    assert h.read(Csr.MIDELEG) == SSIP | STIP | SEIP


@pytest.mark.parametrize("csrno", [Csr.MEPC, Csr.SEPC], ids=["mepc", "sepc"])
def test_epc_low_bits(csrno: int) -> None:
    # "mepc[0] is always zero"; with IALIGN=32 (no C) bit 1 reads as 0 as well.
    h = make()
    h.write(csrno, 0x8000_0003)
    assert h.read(csrno) == 0x8000_0002
    no_c = make(HartConfig(model=CpuModel.parse("rv64,c=off")))
    no_c.write(csrno, 0x8000_0003)
    assert no_c.read(csrno) == 0x8000_0000


def test_plain_registers_hold_64_bits() -> None:
    h = make()
    for csrno in (Csr.MSCRATCH, Csr.SSCRATCH, Csr.MCAUSE, Csr.SCAUSE, Csr.MTVAL, Csr.STVAL):
        h.write(csrno, 0xDEAD_BEEF_0123_4567)
        assert h.read(csrno) == 0xDEAD_BEEF_0123_4567


# -- interrupt registers --------------------------------------------------------------------

def test_mie_and_sie() -> None:
    # "If an interrupt is delegated to S-mode by setting a bit in the mideleg register,
    # it becomes visible in the sip register and is maskable using the sie register.
    # Otherwise, the corresponding bits in sip and sie are read-only zero."
    h = make()
    h.write(Csr.MIE, ALL)
    assert h.read(Csr.MIE) == 0xAAA
    assert h.read(Csr.SIE, S) == 0
    h.write(Csr.MIDELEG, STIP)
    assert h.read(Csr.SIE, S) == STIP
    h.write(Csr.SIE, 0, S)
    assert h.read(Csr.MIE) == 0xAAA & ~STIP
    h.write(Csr.SIE, ALL, S)
    assert h.read(Csr.MIE) == 0xAAA


def test_mip_writable_bits_and_device_lines() -> None:
    # "MEIP is read-only in mip", "MTIP is read-only in mip", "MSIP is read-only in mip";
    # SSIP, STIP (without Sstc) and SEIP are writable.
    h = make()
    h.write(Csr.MIP, ALL)
    assert h.read(Csr.MIP) == SSIP | STIP | SEIP
    h.write(Csr.MIP, 0)
    raised = []
    h._on_interrupt = lambda: raised.append(True)
    for irq in (IrqCause.MSI, IrqCause.MTI, IrqCause.MEI):
        h.set_irq_line(irq, True)
    assert h.read(Csr.MIP) == MSIP | MTIP | MEIP and len(raised) == 3
    h.set_irq_line(IrqCause.MTI, True)  # no change, no notification
    assert len(raised) == 3
    h.write(Csr.MIP, 0)
    assert h.read(Csr.MIP) == MSIP | MTIP | MEIP
    h.set_irq_line(IrqCause.MTI, False)
    assert h.read(Csr.MIP) == MSIP | MEIP


def test_seip_is_software_bit_or_external_line() -> None:
    # "if we name the software-writable SEIP bit B and the signal from the external
    # interrupt controller E, then if csrrs t0, mip, t1 is executed, t0[9] is written
    # with B || E, then B is written with B || t1[9]. If csrrw t0, mip, t1 is executed,
    # then t0[9] is written with B || E, and B is simply written with t1[9]."
    h = make()
    h.set_irq_line(IrqCause.SEI, True)  # E = 1, B = 0
    old, _ = h.rmw(Csr.MIP, ALL, SSIP, M)  # csrrs with t1 = SSIP: B stays 0
    assert old & SEIP
    h.set_irq_line(IrqCause.SEI, False)
    assert not h.read(Csr.MIP) & SEIP  # B was not set from E
    h.write(Csr.MIP, SEIP)  # B = 1
    h.set_irq_line(IrqCause.SEI, True)
    old, _ = h.rmw(Csr.MIP, 0, 0, M)  # csrrc with t1 = 0 writes B back unchanged
    h.set_irq_line(IrqCause.SEI, False)
    assert h.read(Csr.MIP) & SEIP
    old = h.rmw(Csr.MIP, 0, ALL, M)[0]  # csrrw t0, mip, zero
    assert old & SEIP and not h.read(Csr.MIP) & SEIP


def test_sip_only_ssip_is_writable_when_delegated() -> None:
    # "SEIP is read-only in sip", "STIP is read-only in sip", "SSIP is writable in sip"
    h = make()
    h.write(Csr.SIP, SSIP, S)
    assert h.read(Csr.MIP) == 0  # not delegated: read-only zero
    h.write(Csr.MIDELEG, SSIP | STIP | SEIP)
    h.write(Csr.SIP, ALL, S)
    assert h.read(Csr.MIP) == SSIP
    h.write(Csr.MIP, STIP)
    assert h.read(Csr.SIP, S) == STIP
    h.write(Csr.SIP, 0, S)
    assert h.read(Csr.SIP, S) == STIP


def test_interrupt_csr_writes_report_interrupts() -> None:
    h = make()
    for csrno in (Csr.MSTATUS, Csr.MIE, Csr.MIP, Csr.MIDELEG, Csr.SSTATUS, Csr.SIE, Csr.SIP):
        assert h.write(csrno, 0) & CsrEffect.INTERRUPTS
    assert h.write(Csr.MSCRATCH, 1) == CsrEffect.NONE


# -- Sstc -----------------------------------------------------------------------------------

def sstc_hart(counters: Counters) -> CsrFile:
    h = make(counters=counters)
    h.write(Csr.MENVCFG, MENVCFG_STCE)
    h.write(Csr.MCOUNTEREN, 0b010)  # TM
    return h


def test_stimecmp_drives_stip() -> None:
    # "A supervisor timer interrupt becomes pending, as reflected in the STIP bit in the
    # mip and sip registers whenever time contains a value greater than or equal to
    # stimecmp ... The interrupt remains posted until stimecmp becomes greater than time"
    c = Counters()
    h = sstc_hart(c)
    effect = h.write(Csr.STIMECMP, c.time + 100, S)
    assert effect & CsrEffect.TIMER and effect & CsrEffect.INTERRUPTS
    assert not h.read(Csr.MIP) & STIP and h.timer_deadline == c.time + 100
    c.time += 100
    assert h.read(Csr.MIP) & STIP and h.timer_deadline is None
    h.write(Csr.STIMECMP, c.time + 1, S)
    assert not h.read(Csr.MIP) & STIP


def test_stip_is_read_only_in_mip_while_sstc_drives_it() -> None:
    # "If the stimecmp register is implemented, STIP is read-only in mip" - and with
    # STCE=0 "STIP in mip and sip reverts to its defined behavior as if this extension
    # is not implemented".
    c = Counters()
    h = sstc_hart(c)
    h.write(Csr.STIMECMP, c.time + 50)
    h.write(Csr.MIP, STIP)
    assert not h.read(Csr.MIP) & STIP
    h.write(Csr.MENVCFG, 0)
    assert h.timer_deadline is None
    assert not h.read(Csr.MIP) & STIP  # the write under Sstc had no effect
    h.write(Csr.MIP, STIP)
    assert h.read(Csr.MIP) & STIP


def test_stimecmp_access_rules() -> None:
    # "When STCE in menvcfg is zero, an attempt to access stimecmp in a mode other than
    # M-mode raises an illegal-instruction exception"; likewise "when the TM bit in the
    # mcounteren register is clear".
    c = Counters()
    h = make(counters=c)
    h.write(Csr.STIMECMP, 5)  # M may always
    illegal(h, Csr.STIMECMP, S)
    h.write(Csr.MENVCFG, MENVCFG_STCE)
    illegal(h, Csr.STIMECMP, S)
    h.write(Csr.MCOUNTEREN, 0b010)
    assert h.read(Csr.STIMECMP, S) == 5
    illegal(h, Csr.STIMECMP, U)
    h.write(Csr.MCOUNTEREN, 0)
    illegal(h, Csr.STIMECMP, S)


def test_without_sstc_stimecmp_and_stce_do_not_exist() -> None:
    h = make(HartConfig(sstc=False))
    illegal(h, Csr.STIMECMP, M)
    h.write(Csr.MENVCFG, ALL)
    assert h.read(Csr.MENVCFG) == 1  # FIOM only
    no_time = make(with_time=False)
    illegal(no_time, Csr.STIMECMP, M)
    illegal(no_time, Csr.TIME, M)


def test_envcfg_writable_bits() -> None:
    h = make()
    h.write(Csr.MENVCFG, ALL)
    assert h.read(Csr.MENVCFG) == MENVCFG_STCE | 1  # PBMTE, CBZE... read-only zero
    h.write(Csr.SENVCFG, ALL, S)
    assert h.read(Csr.SENVCFG, S) == 1


# -- counters -------------------------------------------------------------------------------

def test_counters_follow_their_sources_and_writes() -> None:
    c = Counters()
    h = make(counters=c)
    assert h.read(Csr.MCYCLE) == 1000 and h.read(Csr.CYCLE) == 1000
    assert h.read(Csr.MINSTRET) == 500 and h.read(Csr.TIME) == 10_000
    h.write(Csr.MCYCLE, 7)
    c.cycles += 10
    assert h.read(Csr.MCYCLE) == 17 and h.read(Csr.CYCLE) == 17
    h.write(Csr.MINSTRET, 0)
    c.instret += 3
    assert h.read(Csr.INSTRET) == 3


def test_mcountinhibit_freezes_counters() -> None:
    # "When the CY, IR, or HPMn bit is set, the corresponding counter does not
    # increment." Bit 1 (time) is read-only zero.
    c = Counters()
    h = make(counters=c)
    h.write(Csr.MCOUNTINHIBIT, ALL)
    assert h.read(Csr.MCOUNTINHIBIT) == 0b101
    c.cycles += 100
    c.instret += 100
    assert h.read(Csr.MCYCLE) == 1000 and h.read(Csr.MINSTRET) == 500
    h.write(Csr.MCYCLE, 42)
    c.cycles += 5
    assert h.read(Csr.MCYCLE) == 42
    h.write(Csr.MCOUNTINHIBIT, 0)
    c.cycles += 5
    c.instret += 1
    assert h.read(Csr.MCYCLE) == 47 and h.read(Csr.MINSTRET) == 501


def test_counter_enable_gating() -> None:
    # "When the CY, TM, IR, or HPMn bit in the mcounteren register is clear, attempts to
    # read the cycle, time, instret, or hpmcountern register while executing in S-mode
    # or U-mode will cause an illegal instruction exception." scounteren does the same
    # for U-mode.
    h = make()
    for csrno, bit in ((Csr.CYCLE, 0), (Csr.TIME, 1), (Csr.INSTRET, 2), (0xC03 + 7, 10)):
        h.read(csrno, M)
        illegal(h, csrno, S)
        illegal(h, csrno, U)
        h.write(Csr.MCOUNTEREN, 1 << bit)
        h.read(csrno, S)
        illegal(h, csrno, U)
        h.write(Csr.SCOUNTEREN, 1 << bit, S)
        h.read(csrno, U)
        h.write(Csr.MCOUNTEREN, 0)
        illegal(h, csrno, U)
        h.write(Csr.SCOUNTEREN, 0)


def test_hpm_counters_read_zero() -> None:
    # "A legal implementation is to make both the counter and its corresponding event
    # selector be read-only 0."
    h = make()
    for csrno in (0xB03, 0xB1F, 0x323, 0x33F):
        assert h.write(csrno, ALL) == CsrEffect.NONE
        assert h.read(csrno) == 0
    assert h.read(0xC03) == 0 and h.read(0xC1F) == 0
    h.write(Csr.MCOUNTEREN, ALL)
    assert h.read(Csr.MCOUNTEREN) == 0xFFFF_FFFF  # a 32-bit register


# -- satp -----------------------------------------------------------------------------------

def test_satp_modes_are_warl() -> None:
    # "if satp is written with an unsupported MODE, the entire write has no effect; no
    # fields in satp are modified."
    h = make()
    sv39 = (8 << 60) | (0x1234 << 44) | 0x80042
    assert h.write(Csr.SATP, sv39) & CsrEffect.TLB_FLUSH
    assert h.read(Csr.SATP) == sv39
    for bad_mode in (1, 7, 11, 12, 15):
        assert h.write(Csr.SATP, (bad_mode << 60) | 5) == CsrEffect.NONE
        assert h.read(Csr.SATP) == sv39
    sv57 = (10 << 60) | 0x80001
    h.write(Csr.SATP, sv57)
    assert h.read(Csr.SATP) == sv57
    assert h.write(Csr.SATP, sv57) == CsrEffect.NONE  # unchanged: nothing to flush
    sv39_only = make(HartConfig(max_satp_mode=SatpMode.SV39))
    sv39_only.write(Csr.SATP, (9 << 60) | 1)
    assert sv39_only.read(Csr.SATP) == 0


def test_satp_asid_bits() -> None:
    # "The number of implemented ASID bits, termed ASIDLEN, may be determined by
    # writing one to every bit position in the ASID field"; low bits first.
    h = make(HartConfig(asid_bits=9))
    h.write(Csr.SATP, (8 << 60) | (0xFFFF << 44))
    assert h.read(Csr.SATP) == (8 << 60) | (0x1FF << 44)


def test_tvm_traps_satp_in_s_mode() -> None:
    # "When TVM=1, attempts to read or write the satp CSR ... while executing in S-mode
    # will raise an illegal instruction exception."
    h = make()
    h.write(Csr.SATP, (8 << 60) | 1, S)
    h.write(Csr.MSTATUS, Mstatus.TVM)
    illegal(h, Csr.SATP, S)
    illegal(h, Csr.SATP, S, value=0)
    assert h.read(Csr.SATP, M) == (8 << 60) | 1
    illegal(h, Csr.SATP, U)


def test_tb_flags_effect() -> None:
    h = make()
    assert h.write(Csr.MSTATUS, 3 << 13) & CsrEffect.TB_FLAGS  # FS Off -> Dirty
    assert not h.write(Csr.MSTATUS, 3 << 13) & CsrEffect.TB_FLAGS
    h.write(Csr.MSTATUS, (3 << 13) | (1 << 11))  # MPP = S
    assert h.write(Csr.MSTATUS, (3 << 13) | (1 << 11) | Mstatus.MPRV) & CsrEffect.TB_FLAGS
    h.priv = Priv.S
    assert h.write(Csr.SSTATUS, Mstatus.SUM) & CsrEffect.TB_FLAGS
    assert h.write(Csr.SATP, 8 << 60) & CsrEffect.TB_FLAGS
