"""The CPUID a KVM guest sees: KVM_GET_SUPPORTED_CPUID filtered to a stable model.

The model is QEMU 7.2's default ``qemu64`` as it runs under KVM (features the host
lacks dropped, x2apic and the hypervisor bit added, KVM's paravirtual leaves kept) with
one departure: CX16 is hidden. The nested software KVM of the development machines
(no VT-x/AMD-V) cannot run ``cmpxchg16b`` in guest kernel mode, and qemu64 has no
XSAVE either, so a Linux guest never reaches ``xrstor``. Identity comes from the
model, not the host (family 15, model 107, stepping 1, QEMU's brand string), so a
guest sees the same CPU whatever the host is; the vendor stays the host's, as QEMU
does under KVM.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from launcher.accel.kvm import CpuidEntry


def _bits(*positions: int) -> int:
    mask = 0
    for bit in positions:
        mask |= 1 << bit
    return mask


# CPUID.01H:EDX — PPRO_FEATURES (FPU DE PSE TSC MSR PAE MCE CX8 APIC SEP PGE CMOV PAT
# MMX FXSR SSE SSE2) | MTRR CLFLUSH MCA PSE36, as qemu64 declares them.
QEMU64_1_EDX = _bits(0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 23, 24, 25, 26)
ECX_SSE3, ECX_CX16, ECX_X2APIC, ECX_XSAVE, ECX_OSXSAVE, ECX_HYPERVISOR = 0, 13, 21, 26, 27, 31
# qemu64's SSE3, plus what QEMU adds under KVM (x2apic, hypervisor); CX16 hidden (above).
MODEL_1_ECX = _bits(ECX_SSE3, ECX_X2APIC, ECX_HYPERVISOR)
# CPUID.80000001H: EDX SYSCALL NX LM; ECX LAHF_LM (qemu64's SVM is not offered by KVM).
MODEL_80000001_EDX = _bits(11, 20, 29)
MODEL_80000001_ECX = _bits(0)

MODEL_FAMILY, MODEL_MODEL, MODEL_STEPPING = 15, 107, 1
MODEL_BRAND = "QEMU Virtual CPU version 2.5+"
MAX_BASIC_LEAF = 0xD  # qemu64's level
MAX_EXTENDED_LEAF = 0x8000000A  # qemu64's xlevel
CLFLUSH_LINE_QWORDS = 8  # CPUID.01H:EBX[15:8], in 8-byte units: 64-byte lines


def signature(family: int, model: int, stepping: int) -> int:
    """CPUID.01H:EAX for a family/model/stepping (extended fields as Intel/AMD define)."""
    eax = stepping & 0xF
    eax |= (model & 0xF) << 4
    eax |= (min(family, 0xF) & 0xF) << 8
    eax |= ((model >> 4) & 0xF) << 16
    if family > 0xF:
        eax |= ((family - 0xF) & 0xFF) << 20
    return eax


def _brand_words(brand: str) -> list[int]:
    raw = brand.encode("ascii").ljust(48, b"\0")
    return [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 48, 4)]


@dataclass(frozen=True, slots=True)
class CpuidModel:
    leaf1_edx: int = QEMU64_1_EDX
    leaf1_ecx: int = MODEL_1_ECX
    ext1_edx: int = MODEL_80000001_EDX
    ext1_ecx: int = MODEL_80000001_ECX
    family: int = MODEL_FAMILY
    model: int = MODEL_MODEL
    stepping: int = MODEL_STEPPING
    brand: str = MODEL_BRAND
    max_basic: int = MAX_BASIC_LEAF
    max_extended: int = MAX_EXTENDED_LEAF


DEFAULT_MODEL = CpuidModel()


def guest_cpuid(supported: Iterable[CpuidEntry], apic_id: int,
                model: CpuidModel = DEFAULT_MODEL) -> list[CpuidEntry]:
    """The entries for KVM_SET_CPUID2: ``supported`` (KVM_GET_SUPPORTED_CPUID) cut
    down to ``model``; features are the model's AND what KVM supports."""
    entries = list(supported)
    by_leaf = {(e.function, e.index): e for e in entries}
    max_basic = min(model.max_basic, by_leaf[(0, 0)].eax if (0, 0) in by_leaf else 0)
    ext_top = by_leaf.get((0x80000000, 0))
    max_extended = min(model.max_extended, ext_top.eax) if ext_top else 0
    brand = _brand_words(model.brand)
    out: list[CpuidEntry] = []
    for entry in entries:
        leaf = entry.function
        if leaf < 0x40000000 and leaf > max_basic:
            continue
        if leaf >= 0x80000000 and leaf > max_extended:
            continue
        if leaf == 0xD and not model.leaf1_ecx & (1 << ECX_XSAVE):
            continue  # XSAVE state enumeration, for a CPU without XSAVE
        match leaf:
            case 0:
                entry = replace(entry, eax=max_basic)
            case 1:
                ebx = (apic_id << 24) | (1 << 16) | (CLFLUSH_LINE_QWORDS << 8)
                entry = replace(entry, eax=signature(model.family, model.model,
                                                     model.stepping),
                                ebx=ebx, ecx=_features(entry.ecx, model.leaf1_ecx),
                                edx=entry.edx & model.leaf1_edx)
            case 7:
                # qemu64 has no structured extended features.
                entry = replace(entry, eax=0, ebx=0, ecx=0, edx=0)
            case 0xB | 0x1F:
                entry = replace(entry, edx=apic_id)  # x2APIC id of this vCPU
            case 0x80000000:
                entry = replace(entry, eax=max_extended)
            case 0x80000001:
                entry = replace(entry, ecx=entry.ecx & model.ext1_ecx,
                                edx=entry.edx & model.ext1_edx)
            case 0x80000002 | 0x80000003 | 0x80000004:
                continue  # the model's brand string, below
        out.append(entry)
    if max_extended >= 0x80000004:
        for i, function in enumerate((0x80000002, 0x80000003, 0x80000004)):
            out.append(CpuidEntry(function, 0, 0, *brand[4 * i:4 * i + 4]))
    return out


# QEMU's names of the model's feature bits, for its "host doesn't support" warning.
FEATURE_NAMES = {
    (1, "edx"): {0: "fpu", 2: "de", 3: "pse", 4: "tsc", 5: "msr", 6: "pae", 7: "mce",
                 8: "cx8", 9: "apic", 11: "sep", 12: "mtrr", 13: "pge", 14: "mca",
                 15: "cmov", 16: "pat", 17: "pse36", 19: "clflush", 23: "mmx", 24: "fxsr",
                 25: "sse", 26: "sse2"},
    (1, "ecx"): {0: "pni", 21: "x2apic"},
    (0x80000001, "edx"): {11: "syscall", 20: "nx", 29: "lm"},
    (0x80000001, "ecx"): {0: "lahf-lm"},
}


def missing_features(supported: Sequence[CpuidEntry],
                     model: CpuidModel = DEFAULT_MODEL) -> list[str]:
    """QEMU's warning text for each model feature KVM does not offer, e.g.
    ``CPUID.01H:ECX.pni [bit 0]``."""
    wanted = {(1, "edx"): model.leaf1_edx, (1, "ecx"): model.leaf1_ecx,
              (0x80000001, "edx"): model.ext1_edx, (0x80000001, "ecx"): model.ext1_ecx}
    lines = []
    for (leaf, register), names in FEATURE_NAMES.items():
        have = feature_set(supported, leaf, register)
        for bit, name in sorted(names.items()):
            if wanted[(leaf, register)] & (1 << bit) and not have & (1 << bit):
                label = f"{leaf:02X}H" if leaf < 0x100 else f"{leaf:08X}H"
                lines.append(f"CPUID.{label}:{register.upper()}.{name} [bit {bit}]")
    return lines


def _features(supported: int, wanted: int) -> int:
    """The model's feature bits KVM supports; the hypervisor bit is set even when the
    host's CPUID lacks it (KVM always lets it through)."""
    return (supported & wanted) | (wanted & (1 << ECX_HYPERVISOR))


def feature_set(entries: Sequence[CpuidEntry], leaf: int, register: str) -> int:
    """One register of one leaf (subleaf 0), 0 when absent (for tests and -cpu help)."""
    for entry in entries:
        if entry.function == leaf and entry.index == 0:
            value: int = getattr(entry, register)
            return value
    return 0
