"""CPUID filtering: KVM's supported leaves cut down to the qemu64-like model, checked
against the bit positions of the Intel SDM (vol. 2A, CPUID) and AMD APM vol. 3."""

from __future__ import annotations

from launcher.accel.kvm import CpuidEntry
from launcher.accel.x86_cpuid import guest_cpuid, missing_features, signature

ALL = 0xFFFFFFFF


def host_like() -> list[CpuidEntry]:
    """What a KVM with every feature would report (vendor AuthenticAMD)."""
    amd = (0x68747541, 0x444D4163, 0x69746E65)  # "Auth" "cAMD" "enti" as ebx, ecx, edx
    return [
        CpuidEntry(0, 0, 0, 0x1F, amd[0], amd[1], amd[2]),
        CpuidEntry(1, 0, 0, 0x00A50F00, 0x00200800, ALL, ALL),
        CpuidEntry(7, 0, 1, 1, ALL, ALL, ALL),
        CpuidEntry(0xB, 0, 1, 1, 1, 0x100, 5),
        CpuidEntry(0xD, 0, 1, 7, 0x340, 0x988, 0),
        CpuidEntry(0x14, 0, 1, 0, 0, 0, 0),
        CpuidEntry(0x40000000, 0, 0, 0x40000001, 0x4B4D564B, 0x564B4D56, 0x4D),
        CpuidEntry(0x80000000, 0, 0, 0x80000021, *amd),
        CpuidEntry(0x80000001, 0, 0, 0, 0, ALL, ALL),
        CpuidEntry(0x80000002, 0, 0, 1, 2, 3, 4),
        CpuidEntry(0x80000008, 0, 0, 0x3030, 0, 0, 0),
        CpuidEntry(0x8000001F, 0, 0, 1, 1, 1, 1),
    ]


def leaf(entries: list[CpuidEntry], function: int) -> CpuidEntry:
    matches = [e for e in entries if e.function == function and e.index == 0]
    assert len(matches) == 1, f"leaf {function:#x}"
    return matches[0]


def test_cx16_and_xsave_are_hidden_and_hypervisor_shown() -> None:
    ecx = leaf(guest_cpuid(host_like(), apic_id=0), 1).ecx
    assert not ecx & (1 << 13)  # CMPXCHG16B
    assert not ecx & (1 << 26)  # XSAVE
    assert not ecx & (1 << 27)  # OSXSAVE
    assert ecx & (1 << 31)  # hypervisor present
    assert ecx & 1  # SSE3, supported here
    assert ecx & (1 << 21)  # x2APIC


def test_leaf1_edx_is_qemu64s_list() -> None:
    edx = leaf(guest_cpuid(host_like(), apic_id=0), 1).edx
    for bit in (0, 4, 5, 6, 8, 9, 15, 19, 23, 24, 25, 26):  # FPU TSC MSR PAE CX8 APIC CMOV
        assert edx & (1 << bit), bit  # CLFSH MMX FXSR SSE SSE2
    for bit in (1, 10, 18, 20, 21, 22, 27, 28, 29, 31):  # VME, reserved, PSN, DS, ACPI,
        assert not edx & (1 << bit), bit  # SS, HTT, TM, PBE: not in qemu64


def test_a_feature_kvm_lacks_stays_off() -> None:
    entries = host_like()
    entries[1] = CpuidEntry(1, 0, 0, 0, 0, ALL & ~1, ALL & ~(1 << 26))  # no SSE3, SSE2
    one = leaf(guest_cpuid(entries, apic_id=0), 1)
    assert not one.ecx & 1
    assert not one.edx & (1 << 26)


def test_identity_is_the_models_and_apic_id_the_vcpus() -> None:
    entries = guest_cpuid(host_like(), apic_id=3)
    one = leaf(entries, 1)
    assert one.eax == signature(15, 107, 1) == 0x00060FB1
    assert one.ebx >> 24 == 3  # initial APIC id
    assert (one.ebx >> 8) & 0xFF == 8  # CLFLUSH line size 8 * 8 = 64 bytes
    assert leaf(entries, 0xB).edx == 3  # x2APIC id
    brand = b"".join(r.to_bytes(4, "little") for f in (0x80000002, 0x80000003, 0x80000004)
                     for r in (leaf(entries, f).eax, leaf(entries, f).ebx,
                               leaf(entries, f).ecx, leaf(entries, f).edx))
    assert brand.rstrip(b"\0") == b"QEMU Virtual CPU version 2.5+"
    assert leaf(entries, 0).ebx == 0x68747541  # the host's vendor is kept


def test_levels_are_clamped_and_xsave_leaf_dropped() -> None:
    entries = guest_cpuid(host_like(), apic_id=0)
    functions = {e.function for e in entries}
    assert leaf(entries, 0).eax == 0xD
    assert leaf(entries, 0x80000000).eax == 0x8000000A
    assert 0x14 not in functions and 0x8000001F not in functions
    assert 0xD not in functions
    assert 0x40000000 in functions  # KVM's paravirtual signature leaf is kept
    seven = leaf(entries, 7)
    assert (seven.ebx, seven.ecx, seven.edx) == (0, 0, 0)


def test_extended_features_are_syscall_nx_lm_lahf() -> None:
    ext = leaf(guest_cpuid(host_like(), apic_id=0), 0x80000001)
    assert ext.edx == (1 << 11) | (1 << 20) | (1 << 29)
    assert ext.ecx == 1


def test_missing_features_are_named_as_qemu_warns() -> None:
    entries = host_like()
    assert missing_features(entries) == []
    entries[1] = CpuidEntry(1, 0, 0, 0, 0, ALL & ~1, ALL & ~(1 << 26))
    assert missing_features(entries) == ["CPUID.01H:EDX.sse2 [bit 26]",
                                         "CPUID.01H:ECX.pni [bit 0]"]
