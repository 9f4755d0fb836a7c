"""The debug-register programming behind the KVM gdbstub's breakpoints and watchpoints
(launcher/accel/kvm_gdb.py), checked against the Intel SDM vol. 3 §18.2 layout of DR7
(Ln enable bits 2n, RWn at 16 + 4n, LENn at 18 + 4n; LEN 00/01/11/10 = 1/2/4/8 bytes;
RW 00 execute, 01 write, 11 read or write) and DR6 (Bn: condition n hit).

This host's nested KVM never reports data breakpoints, so the watchpoint path is
checked here on the KVM_SET_GUEST_DEBUG arguments the vCPU receives and on the DR6 a
debug exit carries, and end to end against qemu-system-x86_64 in
test_kvm_monitor_gdb.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from launcher.accel.kvm import Debug
from launcher.accel.kvm_gdb import (
    GUESTDBG_ENABLE,
    GUESTDBG_SINGLESTEP,
    GUESTDBG_USE_HW_BP,
    KvmDebugCpu,
)
from llvmtcg.runtime.exits import Access, FaultKind, MemFault


@dataclass
class RecordingVcpu:
    """Records KVM_SET_GUEST_DEBUG's arguments (the ioctl itself is tested on /dev/kvm
    by the gdb tests)."""

    calls: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)

    def set_guest_debug(self, control: int, registers: object) -> None:
        self.calls.append((control, tuple(registers)))


@dataclass
class FakeKvmCpu:
    vcpu: RecordingVcpu = field(default_factory=RecordingVcpu)


def debug_cpu() -> tuple[KvmDebugCpu, RecordingVcpu]:
    cpu = FakeKvmCpu()
    return KvmDebugCpu(cpu, lambda a, n: bytes(n), lambda a, d: None), cpu.vcpu  # type: ignore[arg-type]


def test_watchpoints_are_split_into_aligned_pieces_and_encoded_in_dr7() -> None:
    target, vcpu = debug_cpu()
    target.set_breakpoints(frozenset({0xF0026}))
    # 6 bytes at 0x1002 (write): 2 bytes at 0x1002, then 4 at 0x1004
    target.set_watchpoints(((0x1002, 0x1008, Access.WRITE),))
    assert target.slots() == [(0xF0026, 0b00, 1), (0x1002, 0b01, 2), (0x1004, 0b01, 4)]
    target.apply(step=False)
    control, registers = vcpu.calls[-1]
    assert control == GUESTDBG_ENABLE | GUESTDBG_USE_HW_BP
    assert registers[:4] == (0xF0026, 0x1002, 0x1004, 0)
    dr7 = registers[7]
    assert dr7 & 0x400  # bit 10 reads as one
    assert [dr7 >> 2 * n & 1 for n in range(4)] == [1, 1, 1, 0]
    assert [dr7 >> 16 + 4 * n & 3 for n in range(3)] == [0b00, 0b01, 0b01]  # RW
    assert [dr7 >> 18 + 4 * n & 3 for n in range(3)] == [0b00, 0b01, 0b11]  # LEN 1, 2, 4


def test_read_and_access_watchpoints_use_rw_11_and_eight_byte_pieces() -> None:
    target, vcpu = debug_cpu()
    target.set_watchpoints(((0x2000, 0x2008, Access.READ), (0x3000, 0x3001, None)))
    target.apply(step=True)
    control, registers = vcpu.calls[-1]
    assert control == GUESTDBG_ENABLE | GUESTDBG_USE_HW_BP | GUESTDBG_SINGLESTEP
    dr7 = registers[7]
    assert (dr7 >> 16 & 3, dr7 >> 18 & 3) == (0b11, 0b10)  # read: RW 11, LEN 8 bytes
    assert (dr7 >> 20 & 3, dr7 >> 22 & 3) == (0b11, 0b00)  # access: RW 11, 1 byte


def test_a_fifth_debug_register_is_refused_and_the_old_set_kept() -> None:
    target, _ = debug_cpu()
    target.set_breakpoints(frozenset({1, 2, 3}))
    try:
        target.set_watchpoints(((0x1001, 0x1004, Access.WRITE),))  # 1 + 2 bytes: two more
    except ValueError:
        pass
    else:
        raise AssertionError("five debug registers were accepted")
    assert target.watchpoints == ()


def test_a_debug_exit_names_the_watchpoint_its_dr6_reports() -> None:
    target, _ = debug_cpu()
    target.set_breakpoints(frozenset({0xF0000}))
    target.set_watchpoints(((0x500, 0x501, Access.WRITE),))
    assert target.hit(Debug(pc=0xF0010, exception=1, dr6=0xFFFF0FF0 | 1 << 1, dr7=0)) == \
        MemFault(0x500, Access.WRITE, FaultKind.WATCHPOINT)
    # B0 is the execution breakpoint, not a watchpoint; no exit, no hit
    assert target.hit(Debug(pc=0xF0000, exception=1, dr6=0xFFFF0FF1, dr7=0)) is None
    assert target.hit(None) is None


def test_without_any_slot_the_debug_registers_are_released() -> None:
    target, vcpu = debug_cpu()
    target.apply(step=False)
    assert vcpu.calls[-1] == (0, ())
