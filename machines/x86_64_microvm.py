"""QEMU 7.2's ``microvm`` x86-64 machine (hw/i386/microvm.c) under KVM.

The layout is QEMU's with ``acpi=off`` (one IOAPIC, eight virtio-mmio transports on
GSIs 5-12): llvmtcg writes no ACPI tables, so it does not have QEMU's default ACPI
layout (a second IOAPIC at 0xfec10000 carrying 24 transports, the GED device). The
PIC, IOAPIC, LAPIC and PIT are KVM's in-kernel ones (QEMU's microvm under KVM uses the
in-kernel PIT too); the 16550 is the same device model the RISC-V machines use, on
the port bus. Not here (QEMU has them): fw_cfg (so QEMU's default firmware, qboot,
cannot run: ``-bios FILE`` is required), kvmclock, the RTC (off under KVM in QEMU too).
QEMU 7.2's microvm has no i8042 either (its ``info mtree`` lists none), so a guest
resets by triple fault.

Guest RAM is one anonymous host mapping; the firmware another (RAM-backed, writable,
as QEMU's microvm maps it: ``isapc_ram_fw``), registered at the top of 4 GiB and with
its last 128 KiB (at most) aliased below 1 MiB over RAM (QEMU's ``isa-bios``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from devices import isa_debug_exit, uart16550
from devices.base import GuestMemoryError
from devices.bus import BusOverlap, DeviceBus
from devices.virtio import VirtioMmio
from launcher.accel import kvm
from launcher.accel.kvm_cpu import KvmCpu
from launcher.accel.x86_cpuid import guest_cpuid, missing_features
from machines import x86_64_trees as trees
from machines.loop import MachineClock, MachineLoop, SerialInput
from machines.virtio_devices import DeviceOptionError, build_virtio_devices, open_drives
from machines.x86_64_boot import (
    BootError,
    KernelEntry,
    LinuxBoot,
    is_elf,
    plan_linux_boot,
    plan_pvh_boot,
)
from machines.x86_64_trees import MicrovmLayout

if TYPE_CHECKING:
    from machines.loop import Resettable
    from machines.machine import DeviceOptions, DriveOptions

# -- memory map ---------------------------------------------------------------------------
LOWMEM_LIMIT = 0xC0000000  # RAM above 3 GiB goes above 4 GiB (microvm_memory_init)
HIGHMEM_BASE = 1 << 32
ISA_BIOS_END = 0x100000  # the firmware's alias ends at 1 MiB
ISA_BIOS_MAX = 128 << 10
VIRTIO_BASE, VIRTIO_STRIDE, VIRTIO_COUNT = 0xFEB00000, 0x200, 8
# -- ports and interrupts (GSIs of the in-kernel PIC/IOAPIC) -------------------------------
COM1_PORT, COM1_IRQ = 0x3F8, 4
ISA_SERIAL_BAUDBASE = 115200  # QEMU's isa-serial
VIRTIO_IRQ_BASE = 5  # slot i uses GSI 5 + i

DEFAULT_RAM_SIZE = 128 << 20


class MicrovmError(Exception):
    """The machine cannot be built as asked; ``option`` is the option it is about."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True, slots=True)
class DebugExitOptions:
    iobase: int = isa_debug_exit.DEFAULT_IOBASE
    iosize: int = isa_debug_exit.DEFAULT_IOSIZE


@dataclass(frozen=True, slots=True)
class MicrovmOptions:
    """What the command line says about the machine."""

    ram_size: int | None = None
    bios: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    virtio_devices: tuple[DeviceOptions, ...] = ()  # for the virtio-mmio slots
    drives: tuple[DriveOptions, ...] = ()
    debug_exit: tuple[DebugExitOptions, ...] = ()
    serial_out: Callable[[bytes], object] | None = None
    guest_error: Callable[[str], None] | None = None
    kvm_path: str = kvm.KVM_DEVICE


@dataclass(frozen=True, slots=True)
class RamRange:
    """Guest-physical [gpa, gpa + size) backed by ``memory`` from ``offset``."""

    gpa: int
    size: int
    memory: kvm.HostMemory
    offset: int

    @property
    def end(self) -> int:
        return self.gpa + self.size


class GuestRamMap:
    """devices.base.GuestRam over the KVM memory slots (virtio DMA)."""

    def __init__(self) -> None:
        self.ranges: list[RamRange] = []

    def add(self, gpa: int, size: int, memory: kvm.HostMemory, offset: int) -> None:
        self.ranges.append(RamRange(gpa, size, memory, offset))

    def _find(self, addr: int, size: int) -> RamRange:
        for ram in self.ranges:
            if ram.gpa <= addr and addr + size <= ram.end:
                return ram
        raise GuestMemoryError(f"DMA of {size} bytes at {addr:#x} is outside guest RAM")

    def read(self, addr: int, size: int) -> bytes:
        ram = self._find(addr, size)
        return ram.memory.read(ram.offset + addr - ram.gpa, size)

    def write(self, addr: int, data: bytes) -> None:
        ram = self._find(addr, len(data))
        ram.memory.write(ram.offset + addr - ram.gpa, data)


@dataclass(slots=True)
class Buses:
    """The two buses KVM exits are dispatched to (launcher.accel.kvm_cpu.IoBuses)."""

    pio: DeviceBus
    mmio: DeviceBus

    def pio_read(self, port: int, size: int) -> int:
        return self.pio.read(port, size)

    def pio_write(self, port: int, size: int, value: int) -> None:
        self.pio.write(port, size, value)

    def mmio_read(self, addr: int, size: int) -> int:
        return self.mmio.read(addr, size)

    def mmio_write(self, addr: int, size: int, value: int) -> None:
        self.mmio.write(addr, size, value)


@dataclass(slots=True)
class X86Machine:
    """A built microvm: the VM, its memory and devices; ``reset``, ``make_loop``."""

    kvm_handle: kvm.Kvm
    vm: kvm.KvmVm
    clock: MachineClock
    buses: Buses
    ram: GuestRamMap
    memories: list[kvm.HostMemory]
    firmware: tuple[kvm.HostMemory, bytes] | None
    resettables: list[Resettable] = field(default_factory=list)
    serial_input: SerialInput = field(default_factory=SerialInput)
    serial_break: Callable[[], None] | None = None
    cpu: KvmCpu | None = None
    loop: MachineLoop | None = None
    linux: LinuxBoot | None = None  # -kernel: images and the long-mode entry
    warnings: list[str] = field(default_factory=list)
    ram_size: int = 0
    virtio_slots: list[VirtioMmio] = field(default_factory=list)
    debug_exits: list[tuple[int, int]] = field(default_factory=list)  # (iobase, iosize)

    # -- the monitor's views ----------------------------------------------------------------
    def _layout(self) -> MicrovmLayout:
        bios_size = len(self.firmware[1]) if self.firmware is not None else 0
        return MicrovmLayout(self.ram_size, LOWMEM_LIMIT, HIGHMEM_BASE, bios_size,
                             min(bios_size, ISA_BIOS_MAX), ISA_BIOS_END,
                             self.buses.mmio.entries(), self.buses.pio.entries())

    def mtree(self) -> str:
        """``info mtree``."""
        return trees.mtree(self._layout())

    def qtree(self) -> str:
        """``info qtree``."""
        children = [slot.device.name if slot.device is not None else None
                    for slot in self.virtio_slots]
        return trees.qtree(self._layout(), children, self.debug_exits, COM1_PORT, COM1_IRQ)

    def on_poweroff(self, status: int) -> None:
        if self.loop is not None:
            self.loop.request_shutdown(status)

    def on_reset(self) -> None:
        if self.loop is not None:
            self.loop.request_reset()

    def create_cpu(self) -> KvmCpu:
        """The vCPU, with the model's CPUID (after the irqchip: the kernel's order)."""
        vcpu = self.vm.create_vcpu(0)
        supported = self.kvm_handle.supported_cpuid()
        self.warnings += [f"host doesn't support requested feature: {feature}"
                          for feature in missing_features(supported)]
        cpuid = guest_cpuid(supported, apic_id=0)
        vcpu.set_cpuid(cpuid)
        version = next((e.eax for e in cpuid if (e.function, e.index) == (1, 0)), 0)
        self.cpu = KvmCpu(vcpu, self.buses, on_reset=self.on_reset,
                          on_poweroff=self.on_poweroff, cpuid_version=version)
        return self.cpu

    def reset(self) -> None:
        """QEMU's system reset: devices, the firmware image copied again (QEMU's ROM
        blobs are re-installed on reset), the vCPU to its power-on state."""
        for device in self.resettables:
            device.reset()
        if self.firmware is not None:
            memory, data = self.firmware
            memory.write(0, data)
        if self.linux is not None:
            for image in self.linux.images:
                self.ram.write(image.addr, image.data)
        if self.cpu is not None:
            self.cpu.reset()
            if self.linux is not None:
                enter_kernel(self.cpu.vcpu, self.linux.entry)

    def make_loop(self, cpu: KvmCpu, *, no_reboot: bool = False) -> MachineLoop:
        self.loop = MachineLoop(cpu, self.clock, self.reset, no_reboot=no_reboot)
        return self.loop

    def close(self) -> None:
        if self.cpu is not None:
            self.cpu.close()
            self.cpu = None
        self.vm.close()
        self.kvm_handle.close()
        for memory in self.memories:
            memory.close()
        self.memories.clear()


def read_bios(path: str) -> bytes:
    """The -bios file; QEMU's rule: a non-empty multiple of 64 KiB."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise MicrovmError(f"could not load PC BIOS '{path}'") from None
    if not data or len(data) % 0x10000 or len(data) > 16 << 20:
        raise MicrovmError(f"could not load PC BIOS '{path}'")
    return data


def build(options: MicrovmOptions) -> X86Machine:
    """Open KVM, create the VM, map memory and devices (kvm.KvmError if KVM fails)."""
    if options.bios is None and options.kernel is None:
        raise MicrovmError("microvm needs -bios FILE or -kernel FILE: QEMU's default "
                           "firmware (qboot.rom) reads fw_cfg, which llvmtcg's microvm does "
                           "not have")
    bios = read_bios(options.bios) if options.bios is not None else None
    ram_size = options.ram_size or DEFAULT_RAM_SIZE
    linux = _plan_kernel(options, ram_size) if options.kernel is not None else None
    handle = kvm.Kvm(options.kvm_path)
    memories: list[kvm.HostMemory] = []
    try:
        vm = handle.create_vm()
        try:
            machine = _build(options, handle, vm, bios, ram_size, memories)
            machine.linux = linux
            return machine
        except BaseException:
            vm.close()
            raise
    except BaseException:
        for memory in memories:
            memory.close()
        handle.close()
        raise


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise MicrovmError(f"could not load {what} '{path}': {exc.strerror}") from None


def _plan_kernel(options: MicrovmOptions, ram_size: int) -> LinuxBoot:
    assert options.kernel is not None
    kernel = _read(options.kernel, "kernel")
    initrd = _read(options.initrd, "initrd") if options.initrd is not None else None
    below_4g = min(ram_size, LOWMEM_LIMIT)
    cmdline = (options.append or "") + virtio_cmdline(len(options.virtio_devices))
    plan = plan_pvh_boot if is_elf(kernel) else plan_linux_boot
    try:
        return plan(kernel, cmdline, initrd, below_4g=below_4g, above_4g=ram_size - below_4g)
    except BootError as exc:
        raise MicrovmError(str(exc)) from None


def virtio_cmdline(plugged: int) -> str:
    """QEMU's auto-kernel-cmdline: `` virtio_mmio.device=512@BASE:GSI`` for each
    transport with a device, in the order QEMU walks them (the last created first,
    which is where the first -device goes)."""
    slots = range(VIRTIO_COUNT - 1, VIRTIO_COUNT - 1 - min(plugged, VIRTIO_COUNT), -1)
    return "".join(f" virtio_mmio.device={VIRTIO_STRIDE}@{VIRTIO_BASE + i * VIRTIO_STRIDE:#x}"
                   f":{VIRTIO_IRQ_BASE + i}" for i in slots)


def enter_kernel(vcpu: kvm.KvmVcpu, entry: KernelEntry) -> None:
    """The vCPU at a kernel's entry: flat code (64-bit, or 32-bit for PVH) and data
    segments from the boot GDT, control registers as ``entry`` says, interrupts off."""
    sregs = vcpu.get_sregs()
    long_mode = int(entry.long_mode)
    code = kvm.KvmSegment(base=0, limit=0xFFFFFFFF, selector=entry.code_selector, type=0xB,
                          present=1, dpl=0, db=1 - long_mode, s=1, l=long_mode, g=1)
    data = kvm.KvmSegment(base=0, limit=0xFFFFFFFF, selector=entry.data_selector, type=0x3,
                          present=1, dpl=0, db=1, s=1, l=0, g=1)
    sregs.cs = code
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data
    sregs.gdt.base, sregs.gdt.limit = entry.gdt_base, entry.gdt_limit
    sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer = entry.cr0, entry.cr3, entry.cr4, entry.efer
    vcpu.set_sregs(sregs)
    regs = kvm.KvmRegs(rip=entry.rip, rsi=entry.rsi, rbx=entry.rbx, rsp=entry.rsp,
                       rbp=entry.rsp, rflags=0x2)
    vcpu.set_regs(regs)


def _build(options: MicrovmOptions, handle: kvm.Kvm, vm: kvm.KvmVm, bios: bytes | None,
           ram_size: int, memories: list[kvm.HostMemory]) -> X86Machine:
    log = options.guest_error
    vm.setup_x86()

    # -- memory --------------------------------------------------------------------------
    try:
        ram = kvm.HostMemory(ram_size)
    except OSError:
        raise MicrovmError("cannot set up guest memory 'microvm.ram': Cannot allocate "
                           "memory") from None
    memories.append(ram)
    ram_map = GuestRamMap()
    below_4g = min(ram_size, LOWMEM_LIMIT)
    isa_size = min(len(bios), ISA_BIOS_MAX) if bios is not None else 0
    isa_base = ISA_BIOS_END - isa_size
    for gpa, end in _carve(0, below_4g, isa_base, ISA_BIOS_END):
        vm.map_memory(gpa, end - gpa, ram.address + gpa)
        ram_map.add(gpa, end - gpa, ram, gpa)
    if ram_size > below_4g:
        vm.map_memory(HIGHMEM_BASE, ram_size - below_4g, ram.address + below_4g)
        ram_map.add(HIGHMEM_BASE, ram_size - below_4g, ram, below_4g)
    firmware_image: tuple[kvm.HostMemory, bytes] | None = None
    if bios is not None:
        firmware = kvm.HostMemory(len(bios))
        memories.append(firmware)
        firmware.write(0, bios)
        firmware_image = (firmware, bios)
        bios_offset = len(bios) - isa_size
        vm.map_memory(isa_base, isa_size, firmware.address + bios_offset)
        ram_map.add(isa_base, isa_size, firmware, bios_offset)
        vm.map_memory(HIGHMEM_BASE - len(bios), len(bios), firmware.address)
        ram_map.add(HIGHMEM_BASE - len(bios), len(bios), firmware, 0)

    clock = MachineClock()
    buses = Buses(DeviceBus("ioport", unassigned=(1 << 64) - 1, log=log),
                  DeviceBus("mmio", log=log))
    machine = X86Machine(handle, vm, clock, buses, ram_map, memories, firmware_image,
                         ram_size=ram_size)

    def irq_line(gsi: int) -> Callable[[bool], None]:
        return lambda level: vm.set_irq_line(gsi, level)

    # -- devices ----------------------------------------------------------------------------
    uart = uart16550.Uart16550(clock, irq_line(COM1_IRQ),
                               options.serial_out or (lambda data: None),
                               baudbase=ISA_SERIAL_BAUDBASE,
                               accept_input=lambda: machine.serial_input.pump(), log=log)
    machine.serial_input.frontend = uart
    machine.serial_break = uart.receive_break
    buses.pio.add(COM1_PORT, uart, "serial")
    for spec in options.debug_exit:
        device = isa_debug_exit.IsaDebugExit(machine.on_poweroff, size=spec.iosize, log=log)
        try:
            buses.pio.add(spec.iobase, device)
        except BusOverlap as exc:
            raise MicrovmError(str(exc), "-device isa-debug-exit") from None
        machine.debug_exits.append((spec.iobase, spec.iosize))
    try:
        drives = open_drives(options.drives)
        plugged = build_virtio_devices(options.virtio_devices, drives, slots=VIRTIO_COUNT)
    except DeviceOptionError as exc:
        raise MicrovmError(str(exc), exc.option) from None
    slots = []
    for i in range(VIRTIO_COUNT):
        # QEMU plugs -device virtio devices into the last-created transport first.
        slot = VirtioMmio(irq_line(VIRTIO_IRQ_BASE + i), ram_map,
                          plugged.get(VIRTIO_COUNT - 1 - i))
        buses.mmio.add(VIRTIO_BASE + i * VIRTIO_STRIDE, slot, "virtio-mmio",
                       size=VIRTIO_STRIDE)
        slots.append(slot)
    machine.virtio_slots = slots
    machine.resettables += [uart, *slots]
    return machine


def _carve(start: int, end: int, hole_start: int, hole_end: int) -> Sequence[tuple[int, int]]:
    """[start, end) without [hole_start, hole_end), as at most two ranges."""
    pieces = []
    if start < min(end, hole_start):
        pieces.append((start, min(end, hole_start)))
    if max(start, hole_end) < end:
        pieces.append((max(start, hole_end), end))
    return pieces


def kvm_available(path: str = kvm.KVM_DEVICE) -> str | None:
    """None if KVM can be used here, else the reason (for tests that skip)."""
    if not os.path.exists(path):
        return f"{path} does not exist"
    try:
        kvm.Kvm(path).close()
    except kvm.KvmError as exc:
        return str(exc)
    return None
