"""The machine- and supervisor-level CSRs of one hart, with the spec's access rules.

:class:`CsrFile` holds the privilege level and every privileged CSR of an RV64 hart
with M, S and U modes (Privileged Architecture 20211203, plus Sstc). CSR instructions
go through :meth:`CsrFile.rmw`, which raises :class:`IllegalInstruction` for every
access the spec forbids:

- a CSR that does not exist (unknown number, an H-extension or debug CSR, pmpcfg1/3 on
  RV64, PMP registers past the implemented entries);
- a write to a read-only CSR (number bits 11:10 == 3), including csrrs/csrrc whose
  rs1 is not x0 but holds 0 ("will still attempt to write");
- a CSR whose number needs more privilege (bits 9:8) than the current mode;
- satp in S-mode with mstatus.TVM=1; cycle/time/instret/hpmcounterN in S or U mode
  without their mcounteren (and in U also scounteren) bit; stimecmp below M without
  mcounteren.TM and menvcfg.STCE.

Writes report a :class:`CsrEffect` telling the caller what else must happen (end the
block because the translation flags changed, flush the TLB, check interrupts, re-arm
the timer). The FP CSRs (fflags, frm, fcsr) are translated inline and are not here.
"""

from __future__ import annotations

import ctypes
import enum
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from llvmtcg.frontends.riscv.cpu import CpuModel
from llvmtcg.frontends.riscv.priv.pmp import Pmp
from llvmtcg.frontends.riscv.priv.state import (
    FLAGS_MSTATUS,
    M_INTERRUPTS,
    MASK64,
    MEIP,
    MSIP,
    MTIP,
    S_INTERRUPTS,
    SATP_ASID_MASK,
    SATP_ASID_SHIFT,
    SATP_MODE_SHIFT,
    SATP_PPN_MASK,
    SEIP,
    SSIP,
    STIP,
    FsState,
    IllegalInstruction,
    IrqCause,
    MmuIdx,
    Mstatus,
    Priv,
    SatpMode,
    data_mmu_index,
    fetch_mmu_index,
    get_field,
    satp_mode,
    set_field,
    tb_flags,
)


class Csr(enum.IntEnum):
    """Numbers of the single CSRs; the numbered families are ranges below."""

    CYCLE = 0xC00
    TIME = 0xC01
    INSTRET = 0xC02
    SSTATUS = 0x100
    SIE = 0x104
    STVEC = 0x105
    SCOUNTEREN = 0x106
    SENVCFG = 0x10A
    SSCRATCH = 0x140
    SEPC = 0x141
    SCAUSE = 0x142
    STVAL = 0x143
    SIP = 0x144
    STIMECMP = 0x14D
    SATP = 0x180
    MSTATUS = 0x300
    MISA = 0x301
    MEDELEG = 0x302
    MIDELEG = 0x303
    MIE = 0x304
    MTVEC = 0x305
    MCOUNTEREN = 0x306
    MENVCFG = 0x30A
    MCOUNTINHIBIT = 0x320
    MSCRATCH = 0x340
    MEPC = 0x341
    MCAUSE = 0x342
    MTVAL = 0x343
    MIP = 0x344
    PMPCFG0 = 0x3A0
    PMPADDR0 = 0x3B0
    MCYCLE = 0xB00
    MINSTRET = 0xB02
    MVENDORID = 0xF11
    MARCHID = 0xF12
    MIMPID = 0xF13
    MHARTID = 0xF14
    MCONFIGPTR = 0xF15


HPMCOUNTER3, MHPMCOUNTER3, MHPMEVENT3 = 0xC03, 0xB03, 0x323  # ... through counter 31


class CsrEffect:
    """What a CSR write requires of the caller besides the write itself: bits of an
    int, tested with ``&``. (Plain ints: every CSR instruction reaches this model, and
    an ``enum.Flag`` operation costs a microsecond or two in Python.)"""

    NONE = 0
    TB_FLAGS = 1 << 0  # tb_flags() changed: look the next block up afresh
    TLB_FLUSH = 1 << 1  # cached translations are stale (satp, PMP changed)
    INTERRUPTS = 1 << 2  # an interrupt may now be pending: check before going on
    TIMER = 1 << 3  # timer_deadline may have changed: re-arm the host timer


# mstatus bits CSR writes may change (UXL/SXL are read-only 2, endianness read-only 0,
# VS and XS read-only 0: no vector unit and no other extension state). FS is added when
# the F extension exists, as in QEMU.
_MSTATUS_WRITABLE = (Mstatus.SIE | Mstatus.MIE | Mstatus.SPIE | Mstatus.MPIE | Mstatus.SPP
                     | Mstatus.MPP | Mstatus.MPRV | Mstatus.SUM | Mstatus.MXR | Mstatus.TVM
                     | Mstatus.TW | Mstatus.TSR)
# sstatus is a view of these mstatus fields (§4.1.1)...
SSTATUS_VISIBLE = (Mstatus.SIE | Mstatus.SPIE | Mstatus.UBE | Mstatus.SPP | Mstatus.VS
                    | Mstatus.FS | Mstatus.XS | Mstatus.SUM | Mstatus.MXR | Mstatus.UXL
                    | Mstatus.SD)
# ... of which S-mode may write these.
SSTATUS_WRITABLE = (Mstatus.SIE | Mstatus.SPIE | Mstatus.SPP | Mstatus.FS | Mstatus.SUM
                     | Mstatus.MXR)
_XLEN_64 = 2  # UXL/SXL encoding of XLEN=64
_FS, _VS, _XS = Mstatus.FS, Mstatus.VS, Mstatus.XS

# medeleg: every exception that can happen below M. "medeleg[11] is read-only zero"
# (an M-mode ecall never comes from S or U); 10 and 14 are reserved.
_MEDELEG_WRITABLE = sum(1 << c for c in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 15))
_MIDELEG_WRITABLE = S_INTERRUPTS  # QEMU: SSIP, STIP, SEIP; M-level ones stay in M
_MIE_WRITABLE = S_INTERRUPTS | M_INTERRUPTS

# Counter-enable and inhibit bits.
CY, TM, IR = 1 << 0, 1 << 1, 1 << 2
_COUNTEREN_MASK = 0xFFFF_FFFF  # 32-bit registers, every bit writable (QEMU)
_COUNTINHIBIT_WRITABLE = CY | IR  # bit 1 is read-only 0 (time cannot be inhibited);
# the hpm counters read 0 and never count, so their inhibit bits are read-only 0 too.

# menvcfg / senvcfg.
ENVCFG_FIOM = 1 << 0
MENVCFG_PBMTE = 1 << 62  # read-only 0: no Svpbmt
MENVCFG_STCE = 1 << 63

_TVEC_RESERVED_MODES = 2  # mtvec/stvec MODE >= 2 is reserved


@dataclass(frozen=True, slots=True)
class HartConfig:
    """What is fixed about a hart's privileged architecture.

    The identification values default to QEMU 7.2's (marchid and mimpid encode its
    version 7.2.0 as 0x070200), so guests print the same /proc/cpuinfo.
    """

    hartid: int = 0
    model: CpuModel = field(default_factory=CpuModel)
    mvendorid: int = 0
    marchid: int = 0x70200
    mimpid: int = 0x70200
    sstc: bool = True  # the stimecmp CSR and menvcfg.STCE (QEMU 7.2's default)
    max_satp_mode: SatpMode = SatpMode.SV57  # Sv57 implies Sv48 and Sv39 (§4.5, §4.6)
    pmp_entries: int = 16
    asid_bits: int = 16

    def __post_init__(self) -> None:
        if self.max_satp_mode not in (SatpMode.BARE, SatpMode.SV39, SatpMode.SV48,
                                      SatpMode.SV57):
            raise ValueError(f"unsupported satp mode {self.max_satp_mode!r}")
        if not 0 <= self.asid_bits <= 16:
            raise ValueError(f"ASIDLEN is 0..16 for Sv39/48/57, not {self.asid_bits}")

    @property
    def misa(self) -> int:
        """MXL=2 (64-bit), the single-letter extensions of the model, S and U."""
        letters = {e for e in self.model.extensions if len(e) == 1} | {"s", "u"}
        return (2 << 62) | sum(1 << (ord(e) - ord("a")) for e in letters)

    def satp_mode_supported(self, mode: int) -> bool:
        if mode == SatpMode.BARE:
            return True
        return SatpMode.SV39 <= mode <= self.max_satp_mode


# The value a read returns / what a write does / an extra access rule (raises).
Reader = Callable[["CsrFile"], int]
Writer = Callable[["CsrFile", int], int]  # returns CsrEffect bits
Check = Callable[["CsrFile", Priv, int], None]


@dataclass(frozen=True, slots=True)
class CsrDef:
    name: str
    read: Reader
    write: Writer | None  # None: writes are ignored (WARL read-only value)
    check: Check | None = None
    rmw_base: Reader | None = None  # what csrrs/csrrc modify, when not the read value


class CsrFile:
    """The privileged state of one hart: its privilege level and CSRs.

    Args:
        config: the fixed parameters (identity, extensions, MMU modes, PMP entries).
        cycles: the hart's cycle count (mcycle/cycle add a guest-written offset).
        instret: the count of retired instructions (likewise minstret/instret).
        time: the platform timer (the CLINT's mtime), or None if there is none; then
            the ``time`` CSR and Sstc do not exist.
        on_interrupt: called when a device changes an interrupt line through
            :meth:`set_irq_line` (the machine sets the CPU's exit request there).
        mstatus_cell: where mstatus lives: a 64-bit ctypes view of the CPU state's
            ``mstatus`` field in system mode, so that translated code reads and writes
            it directly (trans_system's inline sstatus.SIE path); default: a cell of
            its own.
        sscratch_cell: likewise for sscratch (read and written inline).
        cells: likewise for the registers of :data:`CELL_FIELDS` (sepc, scause,
            stval, stvec, mie, mideleg), the privilege level (an inline sret sets
            it) and ``time_access``, the privileges at which
            translated code reads ``time`` natively (bit p: legal at privilege p and
            :attr:`native_time`); each missing one gets a cell of its own.
    """

    # The CPU-state fields (system mode) that hold registers of this model.
    CELL_FIELDS = ("sepc", "scause", "stval", "stvec", "mie", "mideleg", "priv",
                   "time_access")

    __slots__ = ("config", "_c_priv", "_mstatus_cell", "misa", "medeleg", "_c_mideleg", "_c_mie",
                 "_mip_sw", "_irq_lines", "mtvec", "_c_stvec", "_mepc", "_c_sepc", "mcause",
                 "_c_scause", "mtval", "_c_stval", "mscratch", "_sscratch_cell",
                 "_mcounteren", "_scounteren", "_c_time_access", "_native_time",
                 "menvcfg", "senvcfg", "mcountinhibit", "stimecmp", "satp",
                 "pmp", "_cycles", "_instret", "_time", "_on_interrupt", "_counter_offset",
                 "_counter_frozen", "_pc_mask", "_mstatus_writable", "_sstc", "_asid_mask")

    def __init__(self, config: HartConfig | None = None, *, cycles: Callable[[], int],
                 instret: Callable[[], int], time: Callable[[], int] | None = None,
                 on_interrupt: Callable[[], None] | None = None,
                 mstatus_cell: ctypes.c_uint64 | None = None,
                 sscratch_cell: ctypes.c_uint64 | None = None,
                 cells: Mapping[str, ctypes.c_uint64] | None = None) -> None:
        self.config = config = config or HartConfig()
        self._mstatus_cell = ctypes.c_uint64() if mstatus_cell is None else mstatus_cell
        self._sscratch_cell = ctypes.c_uint64() if sscratch_cell is None else sscratch_cell
        cells = cells or {}
        for name in self.CELL_FIELDS:
            cell = cells.get(name)  # (not `or`: a ctypes cell holding 0 is false)
            setattr(self, f"_c_{name}", ctypes.c_uint64() if cell is None else cell)
        self._native_time = False
        self._mcounteren = self._scounteren = 0
        self._cycles = cycles
        self._instret = instret
        self._time = time
        self._on_interrupt = on_interrupt
        self._sstc = config.sstc and time is not None
        # IALIGN=16 with C: only epc bit 0 is always zero (§3.1.14).
        self._pc_mask = MASK64 & ~(1 if config.model.has("c") else 3)
        self._mstatus_writable = _MSTATUS_WRITABLE | (Mstatus.FS if config.model.has("f") else 0)
        self._asid_mask = ((1 << config.asid_bits) - 1) << SATP_ASID_SHIFT
        self.misa = config.misa
        self.pmp = Pmp(config.pmp_entries)
        self.reset()

    def reset(self) -> None:
        """The state after reset (§3.4): M-mode, MIE and MPRV clear, PMP A and L clear.
        Everything else also starts at 0, as QEMU has it (FS is Off)."""
        self.priv = Priv.M
        self.mstatus = (_XLEN_64 << 32) | (_XLEN_64 << 34)  # UXL = SXL = 64 bits
        self.medeleg = self.mideleg = self.mie = 0
        self._mip_sw = 0  # the software-writable mip bits: SSIP, STIP, SEIP
        self._irq_lines = 0  # the interrupt lines devices drive: MSIP MTIP MEIP SEIP
        self.mtvec = self.stvec = 0
        self._mepc = self._sepc = 0
        self.mcause = self.scause = self.mtval = self.stval = 0
        self.mscratch = self.sscratch = 0
        self.mcounteren = self.scounteren = 0
        self.menvcfg = self.senvcfg = 0
        self.mcountinhibit = 0
        self.stimecmp = 0  # unspecified by Sstc; QEMU's is zero-initialised too
        self.satp = 0
        self._counter_offset = {CY: 0, IR: 0}
        self._counter_frozen = {CY: 0, IR: 0}
        self.pmp.reset()

    # -- savevm -----------------------------------------------------------------------------
    # The interrupt lines (_irq_lines) are not saved: the devices driving them restore
    # their levels.
    _SAVED = ("mstatus", "misa", "medeleg", "mideleg", "mie", "_mip_sw", "mtvec", "stvec",
              "_mepc", "_sepc", "mcause", "scause", "mtval", "stval", "mscratch",
              "sscratch", "mcounteren", "scounteren", "menvcfg", "senvcfg", "mcountinhibit",
              "stimecmp", "satp")

    def save_state(self) -> dict[str, object]:
        """Privilege, every CSR and the counters' offsets, as plain data."""
        state: dict[str, object] = {name: getattr(self, name) for name in self._SAVED}
        state["priv"] = int(self.priv)
        state["counter_offset"] = [self._counter_offset[CY], self._counter_offset[IR]]
        state["counter_frozen"] = [self._counter_frozen[CY], self._counter_frozen[IR]]
        state["pmp"] = self.pmp.save_state()
        return state

    def load_state(self, saved: dict[str, object]) -> None:
        """The inverse of :meth:`save_state` (KeyError/TypeError/ValueError when
        ``saved`` does not fit; nothing is changed then)."""
        values = {name: int(saved[name]) for name in self._SAVED}  # type: ignore[call-overload]
        priv = Priv(int(saved["priv"]))  # type: ignore[call-overload]
        offset = [int(v) for v in saved["counter_offset"]]  # type: ignore[attr-defined]
        frozen = [int(v) for v in saved["counter_frozen"]]  # type: ignore[attr-defined]
        if len(offset) != 2 or len(frozen) != 2:
            raise ValueError("saved counters are not [cycle, instret]")
        self.pmp.load_state(saved["pmp"])  # type: ignore[arg-type]
        for name, value in values.items():
            setattr(self, name, value)
        self.priv = priv
        self._counter_offset = {CY: offset[0], IR: offset[1]}
        self._counter_frozen = {CY: frozen[0], IR: frozen[1]}

    # -- the CSR instruction interface ---------------------------------------------------
    def rmw(self, csrno: int, value: int, mask: int, priv: Priv | None = None, *,
            writes: bool = True) -> tuple[int, int]:
        """One CSR instruction: return the old value and set the bits in ``mask`` to
        those of ``value`` (csrrw: mask = all ones; csrrs: value = all ones, mask =
        rs1; csrrc: value = 0, mask = rs1). ``writes`` is False for csrrs/csrrc with
        rs1 = x0, which only read. ``priv`` defaults to the current privilege.

        Raises:
            IllegalInstruction: the access is not allowed (see the module docstring).
        """
        priv = self.priv if priv is None else Priv(priv)
        entry = self._lookup(csrno, priv, writes)
        old = entry.read(self)
        if not writes or entry.write is None:
            return old, CsrEffect.NONE
        base = old if entry.rmw_base is None else entry.rmw_base(self)
        mstatus, satp = self.mstatus, self.satp
        effect = entry.write(self, ((base & ~mask) | (value & mask)) & MASK64)
        # (The flags depend on a few mstatus bits and satp.MODE: most writes change
        # neither, and then need not compute them twice.)
        if (((mstatus ^ self.mstatus) & FLAGS_MSTATUS or (satp ^ self.satp) >> SATP_MODE_SHIFT)
                and tb_flags(self.priv, mstatus, satp) != self.tb_flags()):
            effect |= CsrEffect.TB_FLAGS
        return old, effect

    def read(self, csrno: int, priv: Priv | None = None) -> int:
        """Read a CSR as csrrs rd, csr, x0 does (raises IllegalInstruction)."""
        return self.rmw(csrno, 0, 0, priv, writes=False)[0]

    def write(self, csrno: int, value: int, priv: Priv | None = None) -> int:
        """Write a CSR as csrrw x0, csr, rs1 does (raises IllegalInstruction)."""
        return self.rmw(csrno, value, MASK64, priv)[1]

    def _lookup(self, csrno: int, priv: Priv, writes: bool) -> CsrDef:
        entry = _CSRS.get(csrno)
        if entry is None or not self._exists(csrno):
            raise IllegalInstruction(f"CSR {csrno:#05x} does not exist")
        if writes and csrno >> 10 == 3:
            raise IllegalInstruction(f"CSR {entry.name} is read-only")
        if priv < (csrno >> 8) & 3:
            raise IllegalInstruction(f"CSR {entry.name} needs more privilege than {priv.name}")
        if entry.check is not None:
            entry.check(self, priv, csrno)
        return entry

    def exists(self, csrno: int) -> bool:
        """Whether this hart has CSR ``csrno`` (a debugger lists those)."""
        return csrno in _CSRS and self._exists(csrno)

    def _exists(self, csrno: int) -> bool:
        if csrno == Csr.STIMECMP:
            return self._sstc
        if csrno == Csr.TIME:
            return self._time is not None
        if Csr.PMPADDR0 <= csrno < Csr.PMPADDR0 + 64:
            return csrno - Csr.PMPADDR0 < self.pmp.entries
        if Csr.PMPCFG0 <= csrno < Csr.PMPCFG0 + 16:
            return (csrno - Csr.PMPCFG0) * 4 < self.pmp.entries
        return True

    # -- views the rest of the model uses ------------------------------------------------
    @property
    def mstatus(self) -> int:
        return self._mstatus_cell.value

    @mstatus.setter
    def mstatus(self, value: int) -> None:
        self._mstatus_cell.value = value

    @property
    def sscratch(self) -> int:
        return self._sscratch_cell.value

    @sscratch.setter
    def sscratch(self, value: int) -> None:
        self._sscratch_cell.value = value

    @property
    def priv(self) -> Priv:
        """The privilege level (a CPU-state cell: translated sret changes it)."""
        return _PRIVS[self._c_priv.value]

    @priv.setter
    def priv(self, value: Priv) -> None:
        self._c_priv.value = value

    # (cell-backed registers: properties over the ctypes cells, made below the class)
    _sepc: int  # sepc as written (bit 0 clear); reads mask it with the pc alignment
    scause: int
    stval: int
    stvec: int
    mie: int
    mideleg: int

    @property
    def mcounteren(self) -> int:
        return self._mcounteren

    @mcounteren.setter
    def mcounteren(self, value: int) -> None:
        self._mcounteren = value
        self._publish_time_access()

    @property
    def scounteren(self) -> int:
        return self._scounteren

    @scounteren.setter
    def scounteren(self, value: int) -> None:
        self._scounteren = value
        self._publish_time_access()

    @property
    def native_time(self) -> bool:
        """Whether translated code may compute ``time`` natively (the machine's timer
        is a linear function of the host clock whose parameters are published)."""
        return self._native_time

    @native_time.setter
    def native_time(self, value: bool) -> None:
        self._native_time = value
        self._publish_time_access()

    def _publish_time_access(self) -> None:
        """time_access: bit p set where a read of ``time`` is legal (_check_counter)
        and native; the other privileges take the helper, which raises."""
        bits = 0
        if self._native_time and self._time is not None:
            bits = 1 << Priv.M
            if self._mcounteren & TM:
                bits |= 1 << Priv.S
                if self._scounteren & TM:
                    bits |= 1 << Priv.U
        self._c_time_access.value = bits

    @property
    def mip(self) -> int:
        """The pending interrupts as mip reads: software bits, device lines, and with
        Sstc active STIP from ``time >= stimecmp`` (§3.1.9, Sstc)."""
        mip = self._mip_sw | self._irq_lines
        if self._sstc_active():
            mip &= ~STIP
            if self._time() >= self.stimecmp:
                mip |= STIP
        return mip

    @property
    def mepc(self) -> int:
        return self._mepc & self._pc_mask

    @mepc.setter
    def mepc(self, value: int) -> None:
        self._mepc = value & MASK64 & ~1

    @property
    def sepc(self) -> int:
        return self._c_sepc.value & self._pc_mask

    @sepc.setter
    def sepc(self, value: int) -> None:
        self._c_sepc.value = value & MASK64 & ~1

    @property
    def fs(self) -> FsState:
        return FsState(get_field(self.mstatus, Mstatus.FS))

    def mark_fs_dirty(self) -> None:
        """An instruction wrote FP state (registers or fcsr): FS becomes Dirty."""
        self.mstatus |= Mstatus.FS

    def data_mmu_index(self) -> MmuIdx:
        return data_mmu_index(self.priv, self.mstatus)

    def fetch_mmu_index(self) -> MmuIdx:
        return fetch_mmu_index(self.priv)

    def tb_flags(self) -> int:
        """The flags translated blocks are keyed by (layout: :class:`TbFlags`)."""
        return tb_flags(self.priv, self.mstatus, self.satp)

    # -- interrupt lines and the Sstc timer ----------------------------------------------
    def set_irq_line(self, irq: IrqCause, level: bool) -> None:
        """A device drives an interrupt line. MSIP, MTIP and MEIP are read-only in mip
        and exist only as lines; the SEIP line is ORed with the software-writable SEIP
        bit ("the logical-OR of the software-writable SEIP bit and the signal from the
        external interrupt controller"); SSIP and STIP set or clear the mip bit itself,
        as QEMU's riscv_cpu_update_mip does for an ACLINT SSWI or a firmware timer."""
        bit = 1 << irq
        if bit & (MSIP | MTIP | MEIP | SEIP):
            lines = self._irq_lines | bit if level else self._irq_lines & ~bit
            changed = lines != self._irq_lines
            self._irq_lines = lines
        else:
            sw = self._mip_sw | bit if level else self._mip_sw & ~bit
            changed = sw != self._mip_sw
            self._mip_sw = sw
        if changed and self._on_interrupt is not None:
            self._on_interrupt()

    def _sstc_active(self) -> bool:
        return self._sstc and bool(self.menvcfg & MENVCFG_STCE)

    @property
    def timer_deadline(self) -> int | None:
        """The ``time`` value at which the Sstc timer will raise STIP, or None when it
        will not (Sstc off or disabled by menvcfg.STCE, or STIP already pending). The
        machine arms a host timer for it and sets the exit request when it fires;
        :attr:`mip` then shows STIP."""
        if not self._sstc_active() or self._time() >= self.stimecmp:
            return None
        return self.stimecmp

    # -- counters -------------------------------------------------------------------------
    def _counter_source(self, which: int) -> int:
        return self._cycles() if which == CY else self._instret()

    def _counter(self, which: int) -> int:
        if self.mcountinhibit & which:
            return self._counter_frozen[which]
        return (self._counter_source(which) + self._counter_offset[which]) & MASK64

    def _set_counter(self, which: int, value: int) -> None:
        if self.mcountinhibit & which:
            self._counter_frozen[which] = value
        else:
            self._counter_offset[which] = value - self._counter_source(which)


_PRIVS = (Priv.U, Priv.S, None, Priv.M)  # (by encoding: 2 is reserved)


def _cell_property(name: str) -> property:
    cell = operator.attrgetter(f"_c_{name}")

    def get(hart: CsrFile) -> int:
        return cell(hart).value

    def set_(hart: CsrFile, value: int) -> None:
        cell(hart).value = value
    return property(get, set_)


for _name in ("scause", "stval", "stvec", "mie", "mideleg"):
    setattr(CsrFile, _name, _cell_property(_name))
CsrFile._sepc = _cell_property("sepc")  # type: ignore[misc]


# -- access rules beyond number-encoded privilege ----------------------------------------------

def _check_counter(hart: CsrFile, priv: Priv, csrno: int) -> None:
    """§3.1.11/§4.1.4: below M, cycle/time/instret/hpmcounterN need their bit in
    mcounteren, and in U-mode also in scounteren."""
    bit = 1 << (csrno & 0x1F)
    if priv < Priv.M and not hart.mcounteren & bit:
        raise IllegalInstruction(f"CSR {csrno:#05x}: mcounteren bit clear")
    if priv < Priv.S and not hart.scounteren & bit:
        raise IllegalInstruction(f"CSR {csrno:#05x}: scounteren bit clear")


def _check_satp(hart: CsrFile, priv: Priv, csrno: int) -> None:
    """§3.1.6.5: "When TVM=1, attempts to read or write the satp CSR ... while executing
    in S-mode will raise an illegal instruction exception." """
    if priv == Priv.S and hart.mstatus & Mstatus.TVM:
        raise IllegalInstruction("satp with mstatus.TVM=1")


def _check_stimecmp(hart: CsrFile, priv: Priv, csrno: int) -> None:
    """Sstc: below M, stimecmp needs mcounteren.TM and menvcfg.STCE."""
    if priv < Priv.M and not (hart.mcounteren & TM and hart.menvcfg & MENVCFG_STCE):
        raise IllegalInstruction("stimecmp without mcounteren.TM and menvcfg.STCE")


# -- readers and writers --------------------------------------------------------------------

def _read_mstatus(hart: CsrFile) -> int:
    status = hart.mstatus
    # SD: FS, VS or XS is Dirty (3, both bits of the field set).
    if (status & _FS == _FS or status & _VS == _VS or status & _XS == _XS):
        return status | Mstatus.SD
    return status


def _write_mstatus(hart: CsrFile, value: int) -> int:
    # MPP is WARL over the implemented modes; the reserved encoding 2 keeps the old value.
    if get_field(value, Mstatus.MPP) == 2:
        value = set_field(value, Mstatus.MPP, get_field(hart.mstatus, Mstatus.MPP))
    mask = hart._mstatus_writable
    hart.mstatus = (hart.mstatus & ~mask) | (value & mask)
    return CsrEffect.INTERRUPTS


def _write_sstatus(hart: CsrFile, value: int) -> int:
    mask = SSTATUS_WRITABLE & hart._mstatus_writable
    hart.mstatus = (hart.mstatus & ~mask) | (value & mask)
    return CsrEffect.INTERRUPTS


def _write_tvec(name: str) -> Writer:
    def write(hart: CsrFile, value: int) -> int:
        # MODE is WARL: a reserved mode (>= 2) leaves the register unchanged, as in QEMU.
        if value & 3 < _TVEC_RESERVED_MODES:
            setattr(hart, name, value)
        return CsrEffect.NONE
    return write


def _write_plain(name: str, mask: int = MASK64) -> Writer:
    def write(hart: CsrFile, value: int) -> int:
        setattr(hart, name, value & mask)
        return CsrEffect.NONE
    return write


def _read_attr(name: str) -> Reader:
    return lambda hart: getattr(hart, name)


def _write_medeleg(hart: CsrFile, value: int) -> int:
    hart.medeleg = value & _MEDELEG_WRITABLE
    return CsrEffect.NONE


def _write_mideleg(hart: CsrFile, value: int) -> int:
    hart.mideleg = value & _MIDELEG_WRITABLE
    return CsrEffect.INTERRUPTS


def _write_mie(hart: CsrFile, value: int) -> int:
    hart.mie = value & _MIE_WRITABLE
    return CsrEffect.INTERRUPTS


def _mip_writable(hart: CsrFile) -> int:
    """SSIP, SEIP and STIP are writable in mip; STIP is read-only while Sstc drives it
    ("If the stimecmp register is implemented, STIP is read-only in mip")."""
    return SSIP | SEIP | (0 if hart._sstc_active() else STIP)


def _mip_rmw_base(hart: CsrFile) -> int:
    """"Only the software-writable SEIP bit participates in the read-modify-write
    sequence of a CSRRS or CSRRC instruction." """
    return (hart.mip & ~SEIP) | (hart._mip_sw & SEIP)


def _write_mip(hart: CsrFile, value: int) -> int:
    mask = _mip_writable(hart)
    hart._mip_sw = (hart._mip_sw & ~mask) | (value & mask)
    return CsrEffect.INTERRUPTS


def _read_sie(hart: CsrFile) -> int:
    return hart.mie & hart.mideleg


def _write_sie(hart: CsrFile, value: int) -> int:
    """Bits of interrupts not delegated to S are read-only zero in sie (§4.1.3)."""
    mask = hart.mideleg & _MIE_WRITABLE
    hart.mie = (hart.mie & ~mask) | (value & mask)
    return CsrEffect.INTERRUPTS


def _read_sip(hart: CsrFile) -> int:
    return hart.mip & hart.mideleg


def _sip_rmw_base(hart: CsrFile) -> int:
    return _mip_rmw_base(hart) & hart.mideleg


def _write_sip(hart: CsrFile, value: int) -> int:
    """Only SSIP is writable in sip ("SEIP is read-only in sip", "STIP is read-only in
    sip"), and only when delegated."""
    mask = SSIP & hart.mideleg
    hart._mip_sw = (hart._mip_sw & ~mask) | (value & mask)
    return CsrEffect.INTERRUPTS


def _read_sstatus(hart: CsrFile) -> int:
    return _read_mstatus(hart) & SSTATUS_VISIBLE


def _write_mepc(hart: CsrFile, value: int) -> int:
    hart.mepc = value
    return CsrEffect.NONE


def _write_sepc(hart: CsrFile, value: int) -> int:
    hart.sepc = value
    return CsrEffect.NONE


def _write_menvcfg(hart: CsrFile, value: int) -> int:
    mask = ENVCFG_FIOM | (MENVCFG_STCE if hart._sstc else 0)
    hart.menvcfg = value & mask
    return CsrEffect.INTERRUPTS | CsrEffect.TIMER


def _write_stimecmp(hart: CsrFile, value: int) -> int:
    hart.stimecmp = value
    return CsrEffect.INTERRUPTS | CsrEffect.TIMER


def _write_satp(hart: CsrFile, value: int) -> int:
    """§4.1.11: "if satp is written with an unsupported MODE, the entire write has no
    effect". ASID bits above ASIDLEN are read-only zero. The TLB is flushed when satp
    changes: it caches translations without an ASID tag (QEMU does the same)."""
    if not hart.config.satp_mode_supported(satp_mode(value)):
        return CsrEffect.NONE
    value &= ~SATP_ASID_MASK | hart._asid_mask
    value &= (0xF << 60) | SATP_ASID_MASK | SATP_PPN_MASK
    if value == hart.satp:
        return CsrEffect.NONE
    hart.satp = value
    return CsrEffect.TLB_FLUSH


def _counter_reader(which: int) -> Reader:
    return lambda hart: hart._counter(which)


def _counter_writer(which: int) -> Writer:
    def write(hart: CsrFile, value: int) -> int:
        hart._set_counter(which, value)
        return CsrEffect.NONE
    return write


def _write_mcountinhibit(hart: CsrFile, value: int) -> int:
    value &= _COUNTINHIBIT_WRITABLE
    for which in (CY, IR):
        now = hart._counter(which)
        if (value ^ hart.mcountinhibit) & which:
            hart._counter_frozen[which] = now  # frozen at the value it had
            if not value & which:  # counting again from there
                hart._counter_offset[which] = now - hart._counter_source(which)
    hart.mcountinhibit = value
    return CsrEffect.NONE


def _read_time(hart: CsrFile) -> int:
    return hart._time() & MASK64


def _pmpcfg_def(index: int) -> CsrDef:
    def write(hart: CsrFile, value: int) -> int:
        return CsrEffect.TLB_FLUSH if hart.pmp.write_cfg_csr(index, value) else CsrEffect.NONE
    return CsrDef(f"pmpcfg{index}", lambda hart: hart.pmp.read_cfg_csr(index), write)


def _pmpaddr_def(i: int) -> CsrDef:
    def write(hart: CsrFile, value: int) -> int:
        return CsrEffect.TLB_FLUSH if hart.pmp.write_addr(i, value) else CsrEffect.NONE
    return CsrDef(f"pmpaddr{i}", lambda hart: hart.pmp.read_addr(i), write)


def _zero(hart: CsrFile) -> int:
    return 0


def _build_table() -> dict[int, CsrDef]:
    t: dict[int, CsrDef] = {
        # unprivileged counters (read-only shadows)
        Csr.CYCLE: CsrDef("cycle", _counter_reader(CY), None, _check_counter),
        Csr.TIME: CsrDef("time", _read_time, None, _check_counter),
        Csr.INSTRET: CsrDef("instret", _counter_reader(IR), None, _check_counter),
        # supervisor
        Csr.SSTATUS: CsrDef("sstatus", _read_sstatus, _write_sstatus),
        Csr.SIE: CsrDef("sie", _read_sie, _write_sie),
        Csr.STVEC: CsrDef("stvec", _read_attr("stvec"), _write_tvec("stvec")),
        Csr.SCOUNTEREN: CsrDef("scounteren", _read_attr("scounteren"),
                               _write_plain("scounteren", _COUNTEREN_MASK)),
        Csr.SENVCFG: CsrDef("senvcfg", _read_attr("senvcfg"), _write_plain("senvcfg", ENVCFG_FIOM)),
        Csr.SSCRATCH: CsrDef("sscratch", _read_attr("sscratch"), _write_plain("sscratch")),
        Csr.SEPC: CsrDef("sepc", _read_attr("sepc"), _write_sepc),
        Csr.SCAUSE: CsrDef("scause", _read_attr("scause"), _write_plain("scause")),
        Csr.STVAL: CsrDef("stval", _read_attr("stval"), _write_plain("stval")),
        Csr.SIP: CsrDef("sip", _read_sip, _write_sip, rmw_base=_sip_rmw_base),
        Csr.STIMECMP: CsrDef("stimecmp", _read_attr("stimecmp"), _write_stimecmp,
                             _check_stimecmp),
        Csr.SATP: CsrDef("satp", _read_attr("satp"), _write_satp, _check_satp),
        # machine
        Csr.MSTATUS: CsrDef("mstatus", _read_mstatus, _write_mstatus),
        Csr.MISA: CsrDef("misa", _read_attr("misa"), None),  # WARL: writes ignored (QEMU)
        Csr.MEDELEG: CsrDef("medeleg", _read_attr("medeleg"), _write_medeleg),
        Csr.MIDELEG: CsrDef("mideleg", _read_attr("mideleg"), _write_mideleg),
        Csr.MIE: CsrDef("mie", _read_attr("mie"), _write_mie),
        Csr.MTVEC: CsrDef("mtvec", _read_attr("mtvec"), _write_tvec("mtvec")),
        Csr.MCOUNTEREN: CsrDef("mcounteren", _read_attr("mcounteren"),
                               _write_plain("mcounteren", _COUNTEREN_MASK)),
        Csr.MENVCFG: CsrDef("menvcfg", _read_attr("menvcfg"), _write_menvcfg),
        Csr.MCOUNTINHIBIT: CsrDef("mcountinhibit", _read_attr("mcountinhibit"),
                                  _write_mcountinhibit),
        Csr.MSCRATCH: CsrDef("mscratch", _read_attr("mscratch"), _write_plain("mscratch")),
        Csr.MEPC: CsrDef("mepc", _read_attr("mepc"), _write_mepc),
        Csr.MCAUSE: CsrDef("mcause", _read_attr("mcause"), _write_plain("mcause")),
        Csr.MTVAL: CsrDef("mtval", _read_attr("mtval"), _write_plain("mtval")),
        Csr.MIP: CsrDef("mip", _read_attr("mip"), _write_mip, rmw_base=_mip_rmw_base),
        Csr.MCYCLE: CsrDef("mcycle", _counter_reader(CY), _counter_writer(CY)),
        Csr.MINSTRET: CsrDef("minstret", _counter_reader(IR), _counter_writer(IR)),
        Csr.MVENDORID: CsrDef("mvendorid", lambda hart: hart.config.mvendorid, None),
        Csr.MARCHID: CsrDef("marchid", lambda hart: hart.config.marchid, None),
        Csr.MIMPID: CsrDef("mimpid", lambda hart: hart.config.mimpid, None),
        Csr.MHARTID: CsrDef("mhartid", lambda hart: hart.config.hartid, None),
        Csr.MCONFIGPTR: CsrDef("mconfigptr", _zero, None),
    }
    # "A legal implementation is to make both the counter and its corresponding event
    # selector be read-only 0" (§3.1.10): hpmcounter3..31 exist, read 0, never count.
    for n in range(3, 32):
        t[HPMCOUNTER3 + n - 3] = CsrDef(f"hpmcounter{n}", _zero, None, _check_counter)
        t[MHPMCOUNTER3 + n - 3] = CsrDef(f"mhpmcounter{n}", _zero, None)
        t[MHPMEVENT3 + n - 3] = CsrDef(f"mhpmevent{n}", _zero, None)
    # RV64: only even pmpcfg registers exist ("pmpcfg1, pmpcfg3, ..., are illegal").
    for index in range(0, 16, 2):
        t[Csr.PMPCFG0 + index] = _pmpcfg_def(index)
    for i in range(64):
        t[Csr.PMPADDR0 + i] = _pmpaddr_def(i)
    return t


_CSRS = _build_table()


def csr_numbers() -> list[int]:
    """Every CSR number the model knows, ascending (some exist only on some harts:
    :meth:`CsrFile.exists`)."""
    return sorted(_CSRS)


def csr_name(csrno: int) -> str:
    """The CSR's name for logs (``csr_0x7c0`` for numbers the model does not know)."""
    entry = _CSRS.get(csrno)
    return entry.name if entry is not None else f"csr_{csrno:#05x}"
