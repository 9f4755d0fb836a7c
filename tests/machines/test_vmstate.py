"""The VM state stream (machines/vmstate.py) and internal snapshots (machines/snapshots.py)
on a built virt machine, without running it: every device, the hart and memory are put
in a state, saved with the disk, changed, and loaded back exactly; a state that does not
fit is refused before anything changes."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devices import uart16550
from devices.base import StateError, VirtualClock, nonzero_pages, restore_pages
from llvmtcg.frontends.riscv.system import hart_of
from machines import riscv64_virt as virt
from machines import snapshots, vmstate
from machines.machine import DeviceOptions, DriveOptions, Machine, MachineOptions

PLIC = virt.PLIC_BASE
UART = virt.UART0_BASE
CLINT_MTIMECMP = virt.CLINT_BASE + 0x4000
RTC = virt.RTC_BASE

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-utils")


@pytest.fixture
def make(tmp_path: Path) -> Iterator:
    built: list[Machine] = []

    def build(image: Path | None = None, ram_size: int | None = None) -> Machine:
        drives, devices = (), ()
        if image is not None:
            drives = (DriveOptions(str(image), interface="none", format="qcow2", id="d0"),)
            devices = (DeviceOptions("virtio-blk-device", (("drive", "d0"),)),)
        machine = virt.build(MachineOptions(bios="none", drives=drives, devices=devices,
                                            ram_size=ram_size))
        built.append(machine)
        machine.create_cpu()
        machine.reset()
        return machine

    yield build
    for machine in built:
        machine.close()


def qcow2(path: Path) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "4M"], check=True)
    return path


def mmio_write(machine: Machine, addr: int, size: int, value: int) -> None:
    region = machine.memory.region_at(addr)
    assert region is not None and region.handler is not None
    region.handler.write(addr - region.base, size, value)


def mmio_read(machine: Machine, addr: int, size: int) -> int:
    region = machine.memory.region_at(addr)
    assert region is not None and region.handler is not None
    return region.handler.read(addr - region.base, size)


def guest_state(machine: Machine) -> dict[str, object]:
    """What the guest could observe of the machine (and the timers it has armed)."""
    state = machine.harts[0].translated.state
    csr = hart_of(state).csr
    uart = machine.stateful[f"serial@{UART:x}"]
    return {
        "x": [state.get("x", i) for i in range(32)],
        "f": [state.get("f", i) for i in range(32)],
        "pc": state.pc, "priv": csr.priv, "mscratch": csr.mscratch, "satp": csr.satp,
        "pmpaddr0": csr.pmp.addr[0], "mtvec": csr.mtvec,
        "ram": machine.memory.read(virt.DRAM_BASE + 0x1000, 16),
        "uart": [mmio_read(machine, UART + r, 1) for r in (uart16550.IER, uart16550.LCR,
                                                           uart16550.SCR)],
        "uart_rx": uart.can_receive(),
        "plic_priority": mmio_read(machine, PLIC + 4 * 10, 4),
        "mtimecmp": mmio_read(machine, CLINT_MTIMECMP, 8),
        "rtc_irq_enabled": mmio_read(machine, RTC + 0x10, 4),
    }


def dirty(machine: Machine, n: int) -> None:
    """Changes every part of guest_state (``n`` makes each change distinct)."""
    state = machine.harts[0].translated.state
    csr = hart_of(state).csr
    for i in range(1, 32):
        state.set("x", i * 1000 + n, i)
        state.set("f", (i << 40) + n, i)
    state.pc = virt.DRAM_BASE + 4 * n
    csr.mscratch = 0x5CA7C4 + n
    csr.satp = (8 << 60) | n
    csr.mtvec = virt.DRAM_BASE + 0x100 * n
    csr.pmp.write_addr(0, 0x1000 + n)
    machine.memory.load(virt.DRAM_BASE + 0x1000, bytes([n]) * 16)
    mmio_write(machine, UART + uart16550.IER, 1, n & 0x0F)
    mmio_write(machine, UART + uart16550.SCR, 1, n)
    mmio_write(machine, UART + uart16550.FCR, 1, 0x01)  # FIFOs on
    machine.stateful[f"serial@{UART:x}"].receive(bytes(range(n % 4 + 1)))
    mmio_write(machine, PLIC + 4 * 10, 4, n % 8)
    mmio_write(machine, CLINT_MTIMECMP, 8, 10**9 + n)
    mmio_write(machine, RTC + 0x10, 4, n & 1)


@needs_qemu_img
def test_loadvm_restores_the_machine_and_the_disk(make, tmp_path: Path) -> None:
    machine = make(qcow2(tmp_path / "d.qcow2"))
    disk = machine.block.drives["d0"].backend
    disk.write(0, b"\x11" * 4096)
    dirty(machine, 3)
    saved = guest_state(machine)
    assert snapshots.save_vm(machine, "s1") == "s1"
    dirty(machine, 6)
    disk.write(0, b"\x22" * 4096)
    assert guest_state(machine) != saved
    snapshots.load_vm(machine, "s1")
    assert guest_state(machine) == saved
    assert disk.read(0, 4096) == b"\x11" * 4096
    # The snapshot table entry: the VM state on this (the only) disk, icount unrecorded.
    (entry,) = disk.snapshots
    assert (entry.name, entry.icount) == ("s1", -1)
    assert entry.vm_state_size > 0 and entry.vm_clock_nsec > 0
    machine.close()
    check = subprocess.run(["qemu-img", "check", str(tmp_path / "d.qcow2")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


@needs_qemu_img
def test_savevm_replaces_a_snapshot_of_the_same_name(make, tmp_path: Path) -> None:
    machine = make(qcow2(tmp_path / "d.qcow2"))
    dirty(machine, 1)
    snapshots.save_vm(machine, "s")
    dirty(machine, 2)
    second = guest_state(machine)
    snapshots.save_vm(machine, "s")
    with pytest.raises(snapshots.SnapshotError, match="already exists in one or more"):
        snapshots.save_vm(machine, "s", overwrite=False)
    dirty(machine, 5)
    snapshots.load_vm(machine, "s")
    assert guest_state(machine) == second
    assert [sn.name for sn in machine.block.drives["d0"].backend.snapshots] == ["s"]
    snapshots.delete_vm(machine, "s")
    with pytest.raises(snapshots.SnapshotError, match="Snapshot 's' does not exist"):
        snapshots.load_vm(machine, "s")


def test_a_state_for_another_machine_is_refused_before_any_change(make) -> None:
    data = vmstate.save(make(ram_size=64 << 20))
    other = make()
    dirty(other, 7)
    before = guest_state(other)
    with pytest.raises(vmstate.VmStateError, match="another machine configuration"):
        vmstate.load(other, data)
    assert guest_state(other) == before


def test_bad_streams_are_refused(make) -> None:
    machine = make()
    data = vmstate.save(machine)
    with pytest.raises(vmstate.VmStateError, match="not saved by llvmtcg"):
        vmstate.load(machine, b"QEVM" + data[4:])
    newer = data[:16] + struct.pack("<I", vmstate.FORMAT_VERSION + 1) + data[20:]
    with pytest.raises(vmstate.VmStateError, match="format version 2 is not supported"):
        vmstate.load(machine, newer)
    with pytest.raises(vmstate.VmStateError, match="truncated or corrupt"):
        vmstate.load(machine, data[:-5])
    state = vmstate.decode(data[20:])
    state["devices"]["serial@10000000"]["version"] = 99
    with pytest.raises(vmstate.VmStateError,
                       match="unsupported version 99 for 'serial@10000000' v1"):
        vmstate.load(machine, data[:20] + vmstate.encode(state))
    state = vmstate.decode(data[20:])
    state["devices"]["ide@0"] = {"version": 1, "state": {}}
    with pytest.raises(vmstate.VmStateError, match="Unknown savevm section or instance "
                       "'ide@0' 0. Make sure that your current VM setup matches"):
        vmstate.load(machine, data[:20] + vmstate.encode(state))
    vmstate.load(machine, data)  # (the stream itself is fine)


def test_value_encoding_round_trips() -> None:
    value = {"a": [0, -1, 1 << 64, (1 << 64) - 1, True, False, None], "b": b"\x00\xff" * 3,
             "c": {"nested": "text é"}, "d": []}
    assert vmstate.decode(vmstate.encode(value)) == value
    with pytest.raises(TypeError):
        vmstate.encode({"x": 1.5})
    with pytest.raises(vmstate.VmStateError, match="trailing"):
        vmstate.decode(vmstate.encode(1) + b"N")


def test_nonzero_pages_round_trip() -> None:
    data = bytearray(5 * 4096 + 100)
    data[4096 + 7] = 1
    data[-1] = 2
    runs = nonzero_pages(data)
    assert [run[0] for run in runs] == [4096, 5 * 4096]
    out = bytearray(b"\xff" * len(data))
    restore_pages(out, runs)
    assert out == data
    with pytest.raises(StateError):
        restore_pages(out, [[len(data), b"x"]])


def test_uart_fifo_and_timeout_come_back() -> None:
    clock = VirtualClock.manual()
    irqs: list[bool] = []
    uart = uart16550.Uart16550(clock, irqs.append, lambda data: len(data))
    uart.write(uart16550.FCR, 1, 0x41)  # FIFOs on, receive trigger level 4
    uart.write(uart16550.IER, 1, 0x01)
    uart.receive(b"ab")  # below the trigger level: the character timeout is armed
    saved = uart.save_state()
    clock.advance(10**9)  # the timeout fires: CTI
    assert uart.read(uart16550.IIR, 1) & 0x0F == uart16550.IIR_CTI
    uart.load_state(saved)
    assert uart.read(uart16550.IIR, 1) & 0x0F == uart16550.IIR_NO_INT
    clock.advance(10**9)  # ...and fires again on the restored timer
    assert uart.read(uart16550.IIR, 1) & 0x0F == uart16550.IIR_CTI
    assert bytes(uart.read(uart16550.RBR, 1) for _ in range(2)) == b"ab"
    with pytest.raises(StateError):
        uart.load_state({**saved, "rx": b"x" * 17})


@pytest.mark.parametrize(("value", "text"), [
    (0, "0 B"), (999, "999 B"), (1000, "0.977 KiB"), (1536, "1.5 KiB"),
    (470_000, "459 KiB"), (1 << 20, "1 MiB"), (3 << 30, "3 GiB")])
def test_size_to_str_is_qemus(value: int, text: str) -> None:
    assert snapshots.size_to_str(value) == text
