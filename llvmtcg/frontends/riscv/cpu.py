"""RISC-V CPU model: state layout, register names, extensions, exception causes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from llvmtcg.arch.contract import CpuModelError as _ArchCpuModelError
from llvmtcg.frontends.riscv.priv.state import ExcCause
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.ir.types import I32, I64

# Guest registers after the runtime's fields. FP registers hold NaN-boxed singles.
RISCV_FIELDS = (
    ("x", I64, 32),
    ("f", I64, 32),
    ("frm", I32),  # dynamic rounding mode (fcsr[7:5])
    ("fflags", I32),  # accrued exception flags (fcsr[4:0])
    ("load_res", I64),  # LR/SC reservation address (-1: none)
    ("load_val", I64),  # the value LR read, which SC compares against
    ("badinsn", I64),  # the instruction word of the last illegal-instruction trap
    # System mode only (frontends/riscv/system.py): mstatus itself (the CsrFile reads and
    # writes it here, so translated code toggles sstatus.SIE inline), and the interrupts
    # pending in mip and enabled in mie, which Python keeps up to date (nonzero: setting
    # SIE inline asks for an exit, as the interrupt may now be taken).
    ("mstatus", I64),
    ("irq_pending", I64),
    ("sscratch", I64),  # (likewise shared: Linux swaps it with tp at every trap)
    # The S-mode trap CSRs and the interrupt enables, likewise shared (read and written
    # inline; Linux reads and writes them at every trap).
    ("sepc", I64),
    ("scause", I64),
    ("stval", I64),
    ("stvec", I64),
    ("mie", I64),
    ("mideleg", I64),
    ("priv", I64),  # the privilege level (0 U, 1 S, 3 M): an inline sret changes it
    # The time CSR in native code (native_time.py): bit p of time_access set = a read
    # at privilege p is legal and computed natively from the host clock as
    # (host_ns - time_epoch) // time_div + time_delta.
    ("time_access", I64),
    ("time_epoch", I64),
    ("time_div", I64),
    ("time_delta", I64),
)

LAYOUT = CpuLayout(RISCV_FIELDS, n_mmu_idx=1, tlb_bits=10)
MMU_USER = 0

ABI_NAMES = ("zero ra sp gp tp t0 t1 t2 s0 s1 a0 a1 a2 a3 a4 a5 a6 a7 "
             "s2 s3 s4 s5 s6 s7 s8 s9 s10 s11 t3 t4 t5 t6").split()
FP_ABI_NAMES = ("ft0 ft1 ft2 ft3 ft4 ft5 ft6 ft7 fs0 fs1 fa0 fa1 fa2 fa3 fa4 fa5 fa6 fa7 "
                "fs2 fs3 fs4 fs5 fs6 fs7 fs8 fs9 fs10 fs11 ft8 ft9 ft10 ft11").split()

# Register numbers as gdb's RISC-V target numbers them (riscv-64bit-cpu.xml /
# riscv-64bit-fpu.xml): x0-x31, pc, f0-f31, then CSRs at 65 + the CSR number.
REG_PC = 32
REG_F0 = 33
REG_CSR0 = 65
CSR_FFLAGS, CSR_FRM, CSR_FCSR = 0x001, 0x002, 0x003


def _register_members() -> list[tuple[str, int]]:
    # ABI names first: they are the canonical names (as gdb shows them); xN, fN and
    # fp (s0) are aliases.
    members = [(name.upper(), i) for i, name in enumerate(ABI_NAMES)]
    members += [(name.upper(), REG_F0 + i) for i, name in enumerate(FP_ABI_NAMES)]
    members += [("PC", REG_PC), ("FFLAGS", REG_CSR0 + CSR_FFLAGS),
                ("FRM", REG_CSR0 + CSR_FRM), ("FCSR", REG_CSR0 + CSR_FCSR)]
    members += [(f"X{i}", i) for i in range(32)] + [("FP", 8)]
    members += [(f"F{i}", REG_F0 + i) for i in range(32)]
    return members


Reg = enum.IntEnum("Reg", _register_members(), module=__name__)
Reg.__doc__ = """RISC-V architectural registers (numbered as gdb does): ``Reg.A0 is Reg.X10``,
``Reg.FA0 is Reg.F10``; ``Reg.FCSR`` is frm and fflags together."""


# Synchronous exception causes (mcause values), used as exception_index: declared once,
# with the privileged architecture's other causes.
Cause = ExcCause


# Extensions a model may enable, with QEMU's -cpu property spellings.
KNOWN_EXTENSIONS = ("i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "zba", "zbb", "zbs")
RV64GC = frozenset({"i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "zba", "zbb", "zbs"})


class CpuModelError(_ArchCpuModelError):
    """A bad ``-cpu`` model or property for RISC-V."""


@dataclass(frozen=True, slots=True)
class CpuModel:
    """Which extensions the guest CPU implements (QEMU: ``-cpu rv64,zba=false``)."""

    name: str = "rv64"
    extensions: frozenset[str] = field(default=RV64GC)

    def has(self, ext: str) -> bool:
        return ext in self.extensions

    def __repr__(self) -> str:
        # Sorted, so the text is the same in every process (a frozenset's order follows
        # string hash randomisation); the code cache fingerprints this.
        return f"CpuModel(name={self.name!r}, extensions={sorted(self.extensions)!r})"

    @classmethod
    def parse(cls, spec: str) -> CpuModel:
        """Parse ``rv64[,ext=on|off|true|false]...``."""
        name, *props = [p.strip() for p in spec.split(",") if p.strip()] or ["rv64"]
        if name not in ("rv64", "any", "max"):
            raise CpuModelError(f"unknown CPU model {name!r} (try rv64)")
        exts = set(RV64GC)
        for prop in props:
            key, _, value = prop.partition("=")
            key = key.lower()
            if key not in KNOWN_EXTENSIONS:
                raise CpuModelError(f"unknown CPU property {key!r} "
                                    f"(known: {', '.join(KNOWN_EXTENSIONS)})")
            if value.lower() in ("", "on", "true", "yes"):
                exts.add(key)
            elif value.lower() in ("off", "false", "no"):
                exts.discard(key)
            else:
                raise CpuModelError(f"bad value {value!r} for CPU property {key!r}")
        if "d" in exts and "f" not in exts:
            raise CpuModelError("extension d requires f")
        return cls(name, frozenset(exts))

    @property
    def hwcap(self) -> int:
        """AT_HWCAP: one bit per single-letter extension (Linux's riscv convention)."""
        return sum(1 << (ord(e) - ord("a")) for e in self.extensions if len(e) == 1)
