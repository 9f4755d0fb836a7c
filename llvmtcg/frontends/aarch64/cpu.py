"""AArch64 CPU state layout, register numbering, exception numbers and CPU model.

The flags are kept as QEMU keeps them, so that a flag-setting instruction is a few
plain moves LLVM drops when no reader follows in the block: ``nf`` and ``vf`` hold N and
V in bit 63, ``zf`` is zero exactly when Z is set, ``cf`` is 0 or 1. 32-bit operations
store sign-extended values, so the same tests serve both widths.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from llvmtcg.arch.contract import CpuModelError as _ArchCpuModelError
from llvmtcg.ir.cpu_layout import CpuLayout
from llvmtcg.ir.types import I32, I64

# Guest registers after the runtime's fields. x[31] is SP (the zero register is a
# constant in the translator). V registers are two 64-bit halves: v[2n] the low,
# v[2n+1] the high one.
AARCH64_FIELDS = (
    ("x", I64, 32),
    ("nf", I64),
    ("zf", I64),
    ("cf", I64),
    ("vf", I64),
    ("v", I64, 64),
    ("fpcr", I32),
    ("fpsr", I32),  # cumulative exception flags (IOC DZC OFC UFC IXC IDC) and QC
    ("tpidr_el0", I64),
    ("tpidrro_el0", I64),
    ("excl_addr", I64),  # exclusive monitor: address (-1: open), values read
    ("excl_val", I64),
    ("excl_val2", I64),
    ("badinsn", I64),  # the instruction word of the last UNDEF
)

LAYOUT = CpuLayout(AARCH64_FIELDS, n_mmu_idx=1, tlb_bits=10)
MMU_USER = 0
SP_INDEX = 31  # x[31] holds SP


class Excp(enum.IntEnum):
    """Exception numbers (QEMU's EXCP_* for Arm), used as ``exception_index``."""

    UDEF = 1  # undefined instruction
    SWI = 2  # svc
    BKPT = 7  # brk


# Register numbers as gdb's aarch64 target numbers them (aarch64-core.xml,
# aarch64-fpu.xml): x0-x30, sp, pc, cpsr, v0-v31, fpsr, fpcr.
REG_SP = 31
REG_PC = 32
REG_CPSR = 33
REG_V0 = 34
REG_FPSR = 66
REG_FPCR = 67
REG_TPIDR = 68  # not a gdb core register: after the FPU ones, for the embedding API


def _register_members() -> list[tuple[str, int]]:
    members = [(f"X{i}", i) for i in range(31)]
    members += [("SP", REG_SP), ("PC", REG_PC), ("CPSR", REG_CPSR)]
    members += [(f"V{i}", REG_V0 + i) for i in range(32)]
    members += [("FPSR", REG_FPSR), ("FPCR", REG_FPCR), ("TPIDR_EL0", REG_TPIDR)]
    members += [("FP", 29), ("LR", 30), ("NZCV", REG_CPSR)]
    return members


Reg = enum.IntEnum("Reg", _register_members(), module=__name__)
Reg.__doc__ = """AArch64 registers numbered as gdb does: ``Reg.LR is Reg.X30``, ``Reg.V0`` is
the 128-bit vector register, ``Reg.CPSR`` (alias NZCV) holds the flags in bits 31:28."""


class CpuModelError(_ArchCpuModelError):
    """A bad ``-cpu`` model or property for AArch64."""


# AT_HWCAP bits (Linux arch/arm64/include/uapi/asm/hwcap.h) for what is implemented.
HWCAP_FP = 1 << 0
HWCAP_ASIMD = 1 << 1
HWCAP_EVTSTRM = 1 << 2
HWCAP_AES = 1 << 3
HWCAP_PMULL = 1 << 4
HWCAP_SHA1 = 1 << 5
HWCAP_SHA2 = 1 << 6
HWCAP_CRC32 = 1 << 7
HWCAP_ATOMICS = 1 << 8
HWCAP_CPUID = 1 << 11

# Optional features a model has: name -> (HWCAP bit, ID_AA64ISAR0_EL1 field value).
FEATURE_HWCAP = {"crc32": HWCAP_CRC32, "aes": HWCAP_AES | HWCAP_PMULL, "sha1": HWCAP_SHA1,
                 "sha2": HWCAP_SHA2, "lse": HWCAP_ATOMICS}
FEATURE_ISAR0 = {"aes": 2 << 4, "sha1": 1 << 8, "sha2": 1 << 12, "crc32": 1 << 16,
                 "lse": 2 << 20}
ARMV8_0_CRYPTO = ("aes", "crc32", "sha1", "sha2")  # sorted: the repr is a cache key


@dataclass(frozen=True, slots=True)
class CpuModel:
    """The CPU model (``-cpu``): which optional features exist, what the ID registers
    say and so what AT_HWCAP advertises (only what is implemented)."""

    name: str = "max"
    midr: int = 0x000F0510  # QEMU's "max"/"any" CPU in user mode (implementer 0)
    features: tuple[str, ...] = (*ARMV8_0_CRYPTO, "lse")
    ctr: int = 0x8444_C004  # CTR_EL0 of a Cortex-A57: 64-byte lines, PIPT I-cache
    dczid: int = 4  # DCZID_EL0: DC ZVA allowed, 64-byte blocks

    @property
    def id_registers(self) -> dict[int, int]:
        """The ID registers Linux shows EL0 (op0:op1:CRn:CRm:op2 -> value): MIDR,
        MPIDR, REVIDR and the ID_AA64 registers sanitised to what is implemented
        (AArch64 EL0/EL1, FP and AdvSIMD, and the model's optional features)."""
        isar0 = 0
        for feature in self.features:
            isar0 |= FEATURE_ISAR0[feature]
        return {
            0xC000: self.midr,  # MIDR_EL1
            0xC005: 0x8000_0000,  # MPIDR_EL1
            0xC006: 0,  # REVIDR_EL1
            0xC020: 0x11,  # ID_AA64PFR0_EL1: EL0, EL1 AArch64; FP, AdvSIMD implemented
            0xC030: isar0,  # ID_AA64ISAR0_EL1
            0xC038: 0xFF00_0000,  # ID_AA64MMFR0_EL1: as Linux shows it
        }

    @property
    def has_crypto(self) -> bool:
        """AES, PMULL (64 x 64), SHA-1 and SHA-256: together in every model here."""
        return "aes" in self.features

    @property
    def has_lse(self) -> bool:
        """The Armv8.1 atomics (CAS, CASP, SWP, LD<op>) and LDLAR/STLLR."""
        return "lse" in self.features

    @property
    def hwcap(self) -> int:
        value = HWCAP_FP | HWCAP_ASIMD | HWCAP_CPUID
        for feature in self.features:
            value |= FEATURE_HWCAP[feature]
        return value

    @classmethod
    def parse(cls, spec: str) -> CpuModel:
        name = (spec.split(",")[0].strip() or "max").lower()
        if name in NOT_IMPLEMENTED:
            raise CpuModelError(f"CPU model {name!r} needs {NOT_IMPLEMENTED[name]}, which "
                                "is not implemented (try max or cortex-a72)")
        model = MODELS.get("max" if name == "any" else name)
        if model is None:
            raise CpuModelError(f"unknown CPU model {name!r} (-cpu help lists them)")
        if "," in spec:
            raise CpuModelError("AArch64 CPU models take no properties yet")
        return model


# The models qemu-aarch64 also knows, with their MIDR_EL1 (the cores' TRMs).
MODELS = {
    "max": CpuModel(),
    "cortex-a35": CpuModel("cortex-a35", 0x410F_D040, ARMV8_0_CRYPTO),
    "cortex-a53": CpuModel("cortex-a53", 0x410F_D034, ARMV8_0_CRYPTO),
    "cortex-a57": CpuModel("cortex-a57", 0x411F_D070, ARMV8_0_CRYPTO),
    "cortex-a72": CpuModel("cortex-a72", 0x410F_D083, ARMV8_0_CRYPTO),
}
NOT_IMPLEMENTED = {"cortex-a76": "FEAT_FP16 and FEAT_DotProd",
                   "neoverse-n1": "FEAT_FP16 and FEAT_DotProd", "a64fx": "SVE"}
