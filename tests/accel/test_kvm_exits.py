"""The vCPU loop without a VM: kvm_run pages built by hand are decoded into typed exits
(launcher.accel.kvm.decode_exit), and handle_exit turns each into an action, with the
machine's real devices on real buses."""

from __future__ import annotations

import ctypes

import pytest

from devices import isa_debug_exit, uart16550
from devices.base import ByteRam, IrqRecorder, VirtualClock
from devices.bus import BusOverlap, DeviceBus
from devices.virtio import VirtioMmio, VirtioRng
from devices.virtio.mmio import MAGIC_VALUE
from launcher.accel import kvm
from launcher.accel.kvm import (
    Debug,
    ExitReason,
    FailEntry,
    Hlt,
    InternalError,
    Interrupted,
    IoIn,
    IoOut,
    MmioRead,
    MmioWrite,
    Shutdown,
    SystemEvent,
    Unhandled,
    decode_exit,
)
from launcher.accel.kvm_cpu import (
    CheckStop,
    DebugStop,
    Fatal,
    GoIdle,
    PowerOff,
    ReplyIo,
    ReplyMmio,
    ResetMachine,
    Resume,
    handle_exit,
)
from machines.x86_64_microvm import Buses

PAGE = 12288  # KVM_GET_VCPU_MMAP_SIZE on x86 (3 pages); data_offset points past kvm_run


def page_with(reason: int) -> tuple[bytearray, kvm.KvmRun]:
    page = bytearray(PAGE)
    run = kvm.KvmRun.from_buffer(page)
    run.exit_reason = reason
    return page, run


# -- decode_exit ----------------------------------------------------------------------------
def test_port_output_carries_its_bytes_from_data_offset() -> None:
    page, run = page_with(ExitReason.IO)
    io = run.exit.io
    io.direction, io.size, io.port, io.count, io.data_offset = 1, 1, 0x3F8, 3, 4096
    page[4096:4099] = b"abc"
    assert decode_exit(run, memoryview(page)) == IoOut(0x3F8, 1, 3, b"abc")


def test_port_input_names_where_the_answer_goes() -> None:
    page, run = page_with(ExitReason.IO)
    io = run.exit.io
    io.direction, io.size, io.port, io.count, io.data_offset = 0, 2, 0x3FD, 1, 4096
    assert decode_exit(run, memoryview(page)) == IoIn(0x3FD, 2, 1, 4096)


def test_mmio_write_value_is_little_endian_of_len_bytes() -> None:
    page, run = page_with(ExitReason.MMIO)
    mmio = run.exit.mmio
    mmio.phys_addr, mmio.len, mmio.is_write = 0xFEB00070, 4, 1
    mmio.data[:] = list(b"\x0f\x00\x00\x00\xff\xff\xff\xff")  # stale bytes past len
    assert decode_exit(run, memoryview(page)) == MmioWrite(0xFEB00070, 4, 0xF)


def test_mmio_read() -> None:
    page, run = page_with(ExitReason.MMIO)
    run.exit.mmio.phys_addr, run.exit.mmio.len = 0xFEB00000, 4
    assert decode_exit(run, memoryview(page)) == MmioRead(0xFEB00000, 4)


def test_argumentless_exits() -> None:
    for reason, expected in ((ExitReason.HLT, Hlt()), (ExitReason.SHUTDOWN, Shutdown()),
                             (ExitReason.INTR, Interrupted())):
        page, run = page_with(reason)
        assert decode_exit(run, memoryview(page)) == expected


def test_internal_error_keeps_ndata_words() -> None:
    page, run = page_with(ExitReason.INTERNAL_ERROR)
    internal = run.exit.internal
    internal.suberror, internal.ndata = 1, 2
    internal.data[0], internal.data[1], internal.data[2] = 0x80000021, 0x5, 0x99
    assert decode_exit(run, memoryview(page)) == InternalError(1, (0x80000021, 0x5))


def test_fail_entry_system_event_debug_and_unknown() -> None:
    page, run = page_with(ExitReason.FAIL_ENTRY)
    run.exit.fail_entry.hardware_entry_failure_reason, run.exit.fail_entry.cpu = 0x21, 0
    assert decode_exit(run, memoryview(page)) == FailEntry(0x21, 0)
    page, run = page_with(ExitReason.SYSTEM_EVENT)
    run.exit.system_event.type, run.exit.system_event.ndata = 2, 1
    run.exit.system_event.data[0] = 7
    assert decode_exit(run, memoryview(page)) == SystemEvent(2, (7,))
    page, run = page_with(ExitReason.DEBUG)
    run.exit.debug.pc, run.exit.debug.exception = 0xFFF0, 1
    assert decode_exit(run, memoryview(page)) == Debug(0xFFF0, 1, 0, 0)
    page, run = page_with(ExitReason.UNKNOWN)
    run.exit.hw.hardware_exit_reason = 0x30
    assert decode_exit(run, memoryview(page)) == Unhandled(0, 0x30)
    page, run = page_with(ExitReason.IRQ_WINDOW_OPEN)
    assert decode_exit(run, memoryview(page)) == Unhandled(ExitReason.IRQ_WINDOW_OPEN)


def test_kvm_run_fields_sit_where_the_kernel_puts_them() -> None:
    assert kvm.KvmRun.exit_reason.offset == 8
    assert kvm.KvmRun.exit.offset == 32
    assert ctypes.sizeof(kvm.KvmRunExit) == 256


# -- handle_exit with real devices ------------------------------------------------------------
class Machine:
    """A microvm's buses: COM1 and isa-debug-exit on ports, one virtio-rng transport."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.exits: list[int] = []
        self.irq = IrqRecorder()
        pio = DeviceBus("ioport", unassigned=(1 << 64) - 1)
        mmio = DeviceBus("mmio")
        self.uart = uart16550.Uart16550(VirtualClock.manual(), self.irq, self.output.extend,
                                        baudbase=115200)
        pio.add(0x3F8, self.uart)
        pio.add(0xF4, isa_debug_exit.IsaDebugExit(self.exits.append, size=4))
        mmio.add(0xFEB00000, VirtioMmio(IrqRecorder(), ByteRam(4096), VirtioRng()),
                 size=0x200)
        self.buses = Buses(pio, mmio)


def test_out_to_com1_transmits_each_byte_of_a_string_output() -> None:
    machine = Machine()
    assert handle_exit(IoOut(0x3F8, 1, 4, b"DONE"), machine.buses) == Resume()
    assert machine.output == b"DONE"


def test_in_from_lsr_answers_thre_and_temt() -> None:
    machine = Machine()
    action = handle_exit(IoIn(0x3FD, 1, 1, 4096), machine.buses)
    assert action == ReplyIo(4096, bytes([uart16550.LSR_THRE | uart16550.LSR_TEMT]))


def test_unassigned_ports_read_all_ones_and_ignore_writes() -> None:
    machine = Machine()
    assert handle_exit(IoIn(0x80, 2, 2, 100), machine.buses) == ReplyIo(100, b"\xff" * 4)
    assert handle_exit(IoOut(0x80, 1, 1, b"\x12"), machine.buses) == Resume()


def test_debug_exit_reports_status_value_shifted_or_one() -> None:
    machine = Machine()
    handle_exit(IoOut(0xF4, 4, 1, (0x10).to_bytes(4, "little")), machine.buses)
    assert machine.exits == [33]
    handle_exit(IoOut(0xF7, 1, 1, b"\x00"), machine.buses)  # last byte of iosize=4
    assert machine.exits == [33, 1]
    assert isa_debug_exit.exit_status(0x80) == 1  # 0x101 truncated to 8 bits, as exit()


def test_mmio_reads_and_writes_reach_virtio_registers() -> None:
    machine = Machine()
    assert handle_exit(MmioRead(0xFEB00000, 4), machine.buses) == \
        ReplyMmio(MAGIC_VALUE.to_bytes(4, "little"))
    assert handle_exit(MmioRead(0xFEB00008, 4), machine.buses) == \
        ReplyMmio((4).to_bytes(4, "little"))  # DeviceID: entropy source
    assert handle_exit(MmioWrite(0xFEB00070, 4, 1), machine.buses) == Resume()  # ACK
    assert handle_exit(MmioRead(0xFEB00070, 4), machine.buses) == \
        ReplyMmio((1).to_bytes(4, "little"))
    assert handle_exit(MmioRead(0xFEC00000, 4), machine.buses) == ReplyMmio(bytes(4))


@pytest.mark.parametrize(("exit_", "action"), [
    (Hlt(), GoIdle()),
    (Interrupted(), CheckStop()),
    (Shutdown(), ResetMachine()),
    (SystemEvent(2, ()), ResetMachine()),
    (SystemEvent(1, ()), PowerOff(0)),
    (Debug(0x1000, 1, 0, 0), DebugStop(0x1000)),
])
def test_control_exits(exit_: kvm.VcpuExit, action: object) -> None:
    assert handle_exit(exit_, Machine().buses) == action


def test_fatal_exits_say_what_happened() -> None:
    buses = Machine().buses
    assert handle_exit(InternalError(1, (0x80000021,)), buses) == Fatal(
        "KVM internal error. Suberror: 1\nextra data[0]: 0x0000000080000021")
    assert handle_exit(FailEntry(0x21, 0), buses) == Fatal(
        "KVM: entry failed, hardware error 0x21 (cpu 0)")
    assert handle_exit(SystemEvent(3, ()), buses) == Fatal(
        "KVM: guest crashed (KVM_SYSTEM_EVENT_CRASH)")
    assert handle_exit(Unhandled(7), buses) == Fatal("KVM: unhandled exit reason 7")


def test_bus_refuses_overlaps_naming_both() -> None:
    bus = DeviceBus("ioport")
    bus.add(0x3F8, isa_debug_exit.IsaDebugExit(lambda s: None, size=8), "serial")
    with pytest.raises(BusOverlap, match=r"isa-debug-exit \[0x3fc, 0x3fe\) overlaps serial"):
        bus.add(0x3FC, isa_debug_exit.IsaDebugExit(lambda s: None))


def test_access_past_a_device_end_is_unassigned() -> None:
    bus = DeviceBus("ioport", unassigned=(1 << 64) - 1)
    exits: list[int] = []
    bus.add(0xF4, isa_debug_exit.IsaDebugExit(exits.append, size=2))
    bus.write(0xF5, 2, 1)  # crosses 0xF6
    assert exits == []
    assert bus.read(0xF5, 2) == 0xFFFF
