"""The KVM ABI as launcher/accel/kvm.py declares it, checked against the kernel's own
headers: a C program compiled with the host compiler prints every ioctl number, struct
size and field offset we rely on."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess

import pytest

from launcher.accel import kvm

HEADERS = ("/usr/include/linux/kvm.h",)

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or not all(os.path.exists(h) for h in HEADERS),
    reason="needs gcc and the Linux UAPI headers (linux-libc-dev) to compare with")

IOCTLS = ("KVM_GET_API_VERSION", "KVM_CREATE_VM", "KVM_CHECK_EXTENSION",
          "KVM_GET_VCPU_MMAP_SIZE", "KVM_GET_SUPPORTED_CPUID", "KVM_CREATE_VCPU",
          "KVM_SET_USER_MEMORY_REGION", "KVM_SET_TSS_ADDR", "KVM_SET_IDENTITY_MAP_ADDR",
          "KVM_CREATE_IRQCHIP", "KVM_IRQ_LINE", "KVM_CREATE_PIT2", "KVM_RUN", "KVM_GET_REGS",
          "KVM_SET_REGS", "KVM_GET_SREGS", "KVM_SET_SREGS", "KVM_SET_SIGNAL_MASK",
          "KVM_SET_CPUID2", "KVM_SET_GUEST_DEBUG", "KVM_GET_FPU", "KVM_SET_FPU",
          "KVM_GET_DEBUGREGS", "KVM_GET_MP_STATE")

# (C expression, our value)
LAYOUT = {
    "sizeof(struct kvm_regs)": ctypes.sizeof(kvm.KvmRegs),
    "sizeof(struct kvm_sregs)": ctypes.sizeof(kvm.KvmSregs),
    "sizeof(struct kvm_segment)": ctypes.sizeof(kvm.KvmSegment),
    "sizeof(struct kvm_dtable)": ctypes.sizeof(kvm.KvmDtable),
    "sizeof(struct kvm_cpuid_entry2)": ctypes.sizeof(kvm.KvmCpuidEntry2),
    "sizeof(struct kvm_cpuid2)": ctypes.sizeof(kvm.KvmCpuid2),
    "sizeof(struct kvm_userspace_memory_region)":
        ctypes.sizeof(kvm.KvmUserspaceMemoryRegion),
    "sizeof(struct kvm_guest_debug)": ctypes.sizeof(kvm.KvmGuestDebug),
    "sizeof(struct kvm_fpu)": ctypes.sizeof(kvm.KvmFpu),
    "offsetof(struct kvm_fpu, mxcsr)": kvm.KvmFpu.mxcsr.offset,
    "sizeof(struct kvm_debugregs)": ctypes.sizeof(kvm.KvmDebugregs),
    "offsetof(struct kvm_sregs, efer)": kvm.KvmSregs.efer.offset,
    "offsetof(struct kvm_sregs, interrupt_bitmap)": kvm.KvmSregs.interrupt_bitmap.offset,
    "offsetof(struct kvm_regs, rip)": kvm.KvmRegs.rip.offset,
    "offsetof(struct kvm_run, immediate_exit)": kvm.KvmRun.immediate_exit.offset,
    "offsetof(struct kvm_run, exit_reason)": kvm.KvmRun.exit_reason.offset,
    "offsetof(struct kvm_run, apic_base)": kvm.KvmRun.apic_base.offset,
    "offsetof(struct kvm_run, io)": kvm.KvmRun.exit.offset,
    "offsetof(struct kvm_run, io.data_offset)":
        kvm.KvmRun.exit.offset + kvm.KvmRunIo.data_offset.offset,
    "offsetof(struct kvm_run, mmio.len)": kvm.KvmRun.exit.offset + kvm.KvmRunMmio.len.offset,
    "offsetof(struct kvm_run, mmio.is_write)":
        kvm.KvmRun.exit.offset + kvm.KvmRunMmio.is_write.offset,
    "offsetof(struct kvm_run, internal.data)":
        kvm.KvmRun.exit.offset + kvm.KvmRunInternal.data.offset,
    "offsetof(struct kvm_run, system_event.data)":
        kvm.KvmRun.exit.offset + kvm.KvmRunSystemEvent.data.offset,
    "offsetof(struct kvm_run, debug.arch.pc)":
        kvm.KvmRun.exit.offset + kvm.KvmRunDebug.pc.offset,
    "offsetof(struct kvm_run, fail_entry.cpu)":
        kvm.KvmRun.exit.offset + kvm.KvmRunFailEntry.cpu.offset,
    "KVM_EXIT_IO": kvm.ExitReason.IO, "KVM_EXIT_MMIO": kvm.ExitReason.MMIO,
    "KVM_EXIT_HLT": kvm.ExitReason.HLT, "KVM_EXIT_SHUTDOWN": kvm.ExitReason.SHUTDOWN,
    "KVM_EXIT_FAIL_ENTRY": kvm.ExitReason.FAIL_ENTRY, "KVM_EXIT_INTR": kvm.ExitReason.INTR,
    "KVM_EXIT_INTERNAL_ERROR": kvm.ExitReason.INTERNAL_ERROR,
    "KVM_EXIT_SYSTEM_EVENT": kvm.ExitReason.SYSTEM_EVENT,
    "KVM_EXIT_DEBUG": kvm.ExitReason.DEBUG,
    "KVM_SYSTEM_EVENT_SHUTDOWN": kvm.SystemEventType.SHUTDOWN,
    "KVM_SYSTEM_EVENT_RESET": kvm.SystemEventType.RESET,
    "KVM_SYSTEM_EVENT_CRASH": kvm.SystemEventType.CRASH,
    "KVM_MEM_READONLY": kvm.KVM_MEM_READONLY, "KVM_API_VERSION": kvm.KVM_API_VERSION,
    "KVM_EXIT_IO_OUT": kvm.KVM_EXIT_IO_OUT, "KVM_PIT_SPEAKER_DUMMY": kvm.KVM_PIT_SPEAKER_DUMMY,
    **{f"KVM_CAP_{cap.name}": int(cap) for cap in kvm.Cap},
}


@pytest.fixture(scope="module")
def kernel_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    exprs = [*IOCTLS, *LAYOUT]
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/kvm.h>",
             "int main(void) {"]
    lines += [f'  printf("%llu\\n", (unsigned long long)({expr}));' for expr in exprs]
    lines += ["  return 0;", "}"]
    work = tmp_path_factory.mktemp("kvmabi")
    (work / "abi.c").write_text("\n".join(lines))
    subprocess.run(["gcc", "-o", str(work / "abi"), str(work / "abi.c")], check=True)
    out = subprocess.run([str(work / "abi")], check=True, capture_output=True, text=True)
    return dict(zip(exprs, (int(v) for v in out.stdout.split()), strict=True))


@pytest.mark.parametrize("name", IOCTLS)
def test_ioctl_numbers_are_the_kernels(kernel_values: dict[str, int], name: str) -> None:
    assert getattr(kvm, name).code == kernel_values[name]


@pytest.mark.parametrize("expr", list(LAYOUT))
def test_layouts_are_the_kernels(kernel_values: dict[str, int], expr: str) -> None:
    assert LAYOUT[expr] == kernel_values[expr]
