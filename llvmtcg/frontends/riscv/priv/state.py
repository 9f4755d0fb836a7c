"""Privilege levels, trap causes, mstatus fields, MMU indices and translation-block flags.

Everything here is a pure function of integers (the privilege level, ``mstatus``,
``satp``), so the CSR model, the page-table walker and the translator agree on one
definition of each fact. Spec references are to the RISC-V Privileged Architecture,
version 20211203.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

MASK64 = (1 << 64) - 1
INTERRUPT_BIT = 1 << 63  # set in mcause/scause for interrupts


class Priv(enum.IntEnum):
    """Privilege modes with their encodings (2 is reserved: H-mode in old drafts)."""

    U = 0
    S = 1
    M = 3


class ExcCause(enum.IntEnum):
    """Synchronous exception codes (mcause with the interrupt bit clear)."""

    INSN_ADDR_MISALIGNED = 0
    INSN_ACCESS_FAULT = 1
    ILLEGAL_INSN = 2
    BREAKPOINT = 3
    LOAD_ADDR_MISALIGNED = 4
    LOAD_ACCESS_FAULT = 5
    STORE_ADDR_MISALIGNED = 6  # also AMO
    STORE_ACCESS_FAULT = 7  # also AMO
    U_ECALL = 8
    S_ECALL = 9
    M_ECALL = 11
    INSN_PAGE_FAULT = 12
    LOAD_PAGE_FAULT = 13
    STORE_PAGE_FAULT = 15  # also AMO


class IrqCause(enum.IntEnum):
    """Interrupt codes (mcause with the interrupt bit set); bit ``i`` of mip/mie."""

    SSI = 1
    MSI = 3
    STI = 5
    MTI = 7
    SEI = 9
    MEI = 11


# Bit masks of the interrupts in mip/mie/mideleg.
SSIP, MSIP = 1 << IrqCause.SSI, 1 << IrqCause.MSI
STIP, MTIP = 1 << IrqCause.STI, 1 << IrqCause.MTI
SEIP, MEIP = 1 << IrqCause.SEI, 1 << IrqCause.MEI
S_INTERRUPTS = SSIP | STIP | SEIP
M_INTERRUPTS = MSIP | MTIP | MEIP


# -- synchronous exceptions as Python exceptions --------------------------------------------

class Trap(Exception):
    """A synchronous exception the hart must take: ``take_trap(hart, cause, False, tval,
    pc)`` with the pc of the instruction that raised it."""

    def __init__(self, cause: ExcCause, tval: int = 0, reason: str = "") -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"{cause.name.lower()} (tval {tval & MASK64:#x}){detail}")
        self.cause = cause
        self.tval = tval & MASK64
        self.reason = reason


class IllegalInstruction(Trap):
    """An illegal-instruction exception. ``tval`` is 0 here; the helper that executes the
    instruction knows its encoding and may put it in mtval/stval instead."""

    def __init__(self, reason: str = "", tval: int = 0) -> None:
        super().__init__(ExcCause.ILLEGAL_INSN, tval, reason)


class PageFault(Trap):
    """An instruction, load or store/AMO page fault; ``tval`` is the faulting virtual
    address."""


class AccessFault(Trap):
    """An instruction, load or store/AMO access fault (PMP or PMA); ``tval`` is the
    faulting virtual address."""


# -- mstatus ---------------------------------------------------------------------------------

class Mstatus:
    """Field masks of mstatus (RV64)."""

    SIE = 1 << 1
    MIE = 1 << 3
    SPIE = 1 << 5
    UBE = 1 << 6
    MPIE = 1 << 7
    SPP = 1 << 8
    VS = 3 << 9
    MPP = 3 << 11
    FS = 3 << 13
    XS = 3 << 15
    MPRV = 1 << 17
    SUM = 1 << 18
    MXR = 1 << 19
    TVM = 1 << 20
    TW = 1 << 21
    TSR = 1 << 22
    UXL = 3 << 32
    SXL = 3 << 34
    SBE = 1 << 36
    MBE = 1 << 37
    SD = 1 << 63


class FsState(enum.IntEnum):
    """mstatus.FS: whether the FP state exists and has been written since the last save."""

    OFF = 0
    INITIAL = 1
    CLEAN = 2
    DIRTY = 3


def get_field(value: int, mask: int) -> int:
    """The field ``mask`` of ``value``, shifted down (QEMU's get_field)."""
    return (value & mask) >> ((mask & -mask).bit_length() - 1)


def set_field(value: int, mask: int, field: int) -> int:
    """``value`` with field ``mask`` replaced by ``field``."""
    shift = (mask & -mask).bit_length() - 1
    return (value & ~mask) | ((field << shift) & mask)


# -- satp --------------------------------------------------------------------------------------

class SatpMode(enum.IntEnum):
    """satp.MODE encodings for SXLEN=64 (Table 4.4)."""

    BARE = 0
    SV39 = 8
    SV48 = 9
    SV57 = 10


SATP_MODE_SHIFT = 60
SATP_ASID_SHIFT = 44
SATP_ASID_MASK = 0xFFFF << SATP_ASID_SHIFT
SATP_PPN_MASK = (1 << 44) - 1


def satp_mode(satp: int) -> int:
    return satp >> SATP_MODE_SHIFT


# -- MMU indices -------------------------------------------------------------------------------

class MmuIdx(enum.IntEnum):
    """Softmmu TLB indices: one per combination of the inputs a data access's
    translation depends on, so changing SUM, MXR, MPRV or MPP switches TLBs instead of
    flushing one. The low two bits are QEMU's numbering (U, S, S with SUM, M); bit 2 is
    MXR, which only matters for S and U (M never translates). Instruction fetches use
    the plain privilege index (U, S or M): SUM and MXR never apply to fetches.
    """

    U = 0
    S = 1
    S_SUM = 2
    M = 3
    U_MXR = 4
    S_MXR = 5
    S_SUM_MXR = 6


N_MMU_IDX = len(MmuIdx)
_MXR_BIT = 4


@dataclass(frozen=True, slots=True)
class MmuContext:
    """What a translation at one MMU index depends on: the effective privilege and the
    SUM/MXR bits that were in force when the index was chosen."""

    priv: Priv
    sum: bool
    mxr: bool


MMU_CONTEXTS = {
    MmuIdx.U: MmuContext(Priv.U, False, False),
    MmuIdx.S: MmuContext(Priv.S, False, False),
    MmuIdx.S_SUM: MmuContext(Priv.S, True, False),
    MmuIdx.M: MmuContext(Priv.M, False, False),
    MmuIdx.U_MXR: MmuContext(Priv.U, False, True),
    MmuIdx.S_MXR: MmuContext(Priv.S, False, True),
    MmuIdx.S_SUM_MXR: MmuContext(Priv.S, True, True),
}


def data_mmu_index(priv: Priv, mstatus: int) -> MmuIdx:
    """The MMU index of loads and stores (QEMU's riscv_cpu_mmu_index).

    §3.1.6.3: "When MPRV=1, load and store memory addresses are translated and
    protected ... as though the current privilege mode were set to MPP." SUM is in
    effect for S-mode accesses, including M-mode ones with MPRV=1 and MPP=S.
    """
    if priv == Priv.M and mstatus & Mstatus.MPRV:
        priv = Priv(get_field(mstatus, Mstatus.MPP))
    if priv == Priv.M:
        return MmuIdx.M
    idx = MmuIdx.S_SUM if priv == Priv.S and mstatus & Mstatus.SUM else MmuIdx(priv)
    return MmuIdx(idx | _MXR_BIT) if mstatus & Mstatus.MXR else idx


def fetch_mmu_index(priv: Priv) -> MmuIdx:
    """The MMU index of instruction fetches: "Instruction address-translation and
    protection are unaffected by the setting of MPRV" (§3.1.6.3)."""
    return _FETCH_MMU_INDEX[priv]


# (Indexed by the privilege's encoding: U, S and M's indices have its value. A table,
# since the code lookup asks at every exit to the run loop and enum calls are slow.)
_FETCH_MMU_INDEX = (MmuIdx.U, MmuIdx.S, None, MmuIdx.M)


# -- translation-block flags ------------------------------------------------------------------

class TbFlags:
    """The bits of :func:`tb_flags`: everything translated code depends on besides the
    pc, so blocks are keyed by (pc, flags).

    ======  =======  ==================================================================
    bits    field    meaning
    ======  =======  ==================================================================
    1:0     PRIV     the privilege level (0 U, 1 S, 3 M): privileged instructions and
                     the fetch MMU index (:func:`fetch_mmu_index`)
    4:2     MMU_IDX  the MMU index of loads and stores (:class:`MmuIdx`), which folds
                     in MPRV/MPP, SUM and MXR
    6:5     FS       mstatus.FS: OFF makes FP instructions and CSRs illegal; any other
                     state but DIRTY makes FP writes set FS to DIRTY
    7       PAGING   instruction fetches are translated (priv < M and satp.MODE is
                     not Bare), so the pc is virtual
    ======  =======  ==================================================================
    """

    PRIV_SHIFT, PRIV_MASK = 0, 0x3
    MMU_IDX_SHIFT, MMU_IDX_MASK = 2, 0x7 << 2
    FS_SHIFT, FS_MASK = 5, 0x3 << 5
    PAGING = 1 << 7

    @staticmethod
    def priv(flags: int) -> Priv:
        return Priv(flags & TbFlags.PRIV_MASK)

    @staticmethod
    def mmu_idx(flags: int) -> MmuIdx:
        return MmuIdx((flags & TbFlags.MMU_IDX_MASK) >> TbFlags.MMU_IDX_SHIFT)

    @staticmethod
    def fs(flags: int) -> FsState:
        return FsState((flags & TbFlags.FS_MASK) >> TbFlags.FS_SHIFT)


# The mstatus bits the flags depend on (data_mmu_index: MPRV, MPP, SUM, MXR; FS).
FLAGS_MSTATUS = Mstatus.MPRV | Mstatus.MPP | Mstatus.SUM | Mstatus.MXR | Mstatus.FS


def tb_flags(priv: Priv, mstatus: int, satp: int) -> int:
    """The translation-block flags of a hart in this state (layout: :class:`TbFlags`)."""
    # (Computed at every CSR write, several times: memoised on what they depend on.)
    return _tb_flags(int(priv), mstatus & FLAGS_MSTATUS,
                     satp_mode(satp) != SatpMode.BARE)


@functools.lru_cache(maxsize=1024)
def _tb_flags(priv: int, mstatus: int, paging: bool) -> int:
    flags = priv | (data_mmu_index(Priv(priv), mstatus) << TbFlags.MMU_IDX_SHIFT)
    flags |= get_field(mstatus, Mstatus.FS) << TbFlags.FS_SHIFT
    if priv != Priv.M and paging:
        flags |= TbFlags.PAGING
    return flags
