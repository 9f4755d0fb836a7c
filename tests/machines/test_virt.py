"""QEMU 7.2's virt board: device tree, boot ROM, placement and memory map against QEMU's,
and the board's devices reached through the physical address space."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest

from devices.sifive_test import FINISHER_FAIL, FINISHER_PASS, FINISHER_RESET
from machines import riscv64_virt as virt
from machines.machine import DeviceOptions, DriveOptions, Machine, MachineError, MachineOptions
from machines.riscv_cpu import RiscvCpuConfig
from tests.machines.support import (
    IMAGES,
    QEMU,
    ScriptedCpu,
    image,
    needs_images,
    needs_qemu,
    phys_read,
    phys_write,
    qemu_dumpdtb,
    qemu_rom_words,
    tree_as_dict,
)

QEMU_DTB = IMAGES / "qemu-virt-256M.dtb"
# Nodes of QEMU's tree for devices llvmtcg's virt does not have.
NOT_EMULATED = ("/fw-cfg@10100000", "/platform-bus@4000000", "/soc/pci@30000000")


@pytest.fixture
def machines() -> list[Machine]:
    built: list[Machine] = []
    yield built
    for machine in built:
        machine.close()


def build(machines: list[Machine], **kwargs: object) -> Machine:
    kwargs.setdefault("rng_seed", lambda n: bytes(range(n)))
    machine = virt.build(MachineOptions(**kwargs))  # type: ignore[arg-type]
    machines.append(machine)
    return machine


def boot_256m(**kwargs: object) -> dict[str, object]:
    return dict(ram_size=256 << 20, bios=image("fw_jump.bin"), kernel=image("Image"),
                initrd=image("initramfs-poweroff.cpio.gz"), append="console=ttyS0", **kwargs)


def without(tree: dict[str, dict], paths: tuple[str, ...]) -> dict[str, dict]:
    return {p: v for p, v in tree.items() if not any(p.startswith(x) for x in paths)}


@needs_images
def test_device_tree_matches_qemus_for_the_same_boot(machines: list[Machine]) -> None:
    ours = tree_as_dict(build(machines, **boot_256m()).dtb())
    qemu = tree_as_dict(QEMU_DTB.read_bytes())
    assert without(qemu, NOT_EMULATED) == ours
    assert set(qemu) - set(ours) == set(NOT_EMULATED)
    chosen = ours["/chosen"]
    assert chosen["linux,initrd-start"] == struct.pack(">I", 0x88200000)
    assert chosen["stdout-path"] == b"/soc/serial@10000000\0"


@needs_images
@needs_qemu
@pytest.mark.parametrize("args,options", [
    (["-m", "512M", "-bios", "none", "-append", "root=/dev/vda rw"],
     dict(ram_size=512 << 20, bios="none", append="root=/dev/vda rw")),
    (["-m", "64M", "-cpu", "rv64,h=off,zba=off,Zifencei=off,mmu=off"],
     dict(ram_size=64 << 20, cpu=RiscvCpuConfig.parse(
         "rv64", [("h", "off"), ("zba", "off"), ("Zifencei", "off"), ("mmu", "off")]))),
    (["-cpu", "rv64,pmu-num=4"], dict(cpu=RiscvCpuConfig.parse("rv64", [("pmu-num", "4")]))),
    (["-smp", "3"], dict(smp=3)),
])
def test_device_tree_matches_live_qemu(tmp_path: Path, machines: list[Machine], args: list[str],
                                       options: dict[str, object]) -> None:
    kernel = ["-kernel", image("Image"), "-initrd", image("initramfs.cpio.gz")]
    if "-bios" not in args:
        args = [*args, "-bios", image("fw_jump.bin")]
        options.setdefault("bios", image("fw_jump.bin"))
    qemu = tree_as_dict(qemu_dumpdtb(tmp_path, "virt", *args, *kernel))
    ours = tree_as_dict(build(machines, kernel=image("Image"),
                              initrd=image("initramfs.cpio.gz"), **options).dtb())
    assert without(qemu, NOT_EMULATED) == ours


ROM_CASES = [
    (["-m", "256M", "-bios", "fw_jump.bin", "-kernel", "Image"],
     dict(ram_size=256 << 20, bios="fw_jump.bin", kernel="Image")),
    (["-m", "128M", "-bios", "none", "-kernel", "Image", "-initrd", "initramfs.cpio.gz"],
     dict(ram_size=128 << 20, bios="none", kernel="Image", initrd="initramfs.cpio.gz")),
    (["-m", "4G", "-bios", "fw_jump.elf", "-kernel", "Image"],
     dict(ram_size=4 << 30, bios="fw_jump.elf", kernel="Image")),
    (["-m", "256M", "-bios", "fw_dynamic.bin"], dict(ram_size=256 << 20, bios="fw_dynamic.bin")),
]


def _with_images(values: dict[str, object]) -> dict[str, object]:
    return {k: image(v) if isinstance(v, str) and k in ("bios", "kernel", "initrd") and v != "none"
            else v for k, v in values.items()}


@needs_images
@needs_qemu
@pytest.mark.parametrize("args,options", ROM_CASES)
def test_boot_rom_is_qemus_word_for_word(machines: list[Machine], args: list[str],
                                         options: dict[str, object]) -> None:
    """Reset vector, start address, device-tree address and fw_dynamic_info (next_addr
    is where QEMU put the kernel) as QEMU's monitor shows them before the CPU runs."""
    qemu_args = [image(a) if (IMAGES / a).is_file() else a for a in args]
    expected = qemu_rom_words("-M", "virt", *qemu_args)
    machine = build(machines, **_with_images(options))
    ours = list(struct.unpack("<22I", machine.memory.read(virt.MROM_BASE, 88)))
    assert ours == expected


@needs_images
def test_placement_follows_qemus_rules(machines: list[Machine]) -> None:
    machine = build(machines, **boot_256m())
    words = struct.unpack("<22I", machine.memory.read(virt.MROM_BASE, 88))
    start, fdt, next_addr = words[6], words[8], words[14]
    assert start == 0x80000000  # the firmware
    assert next_addr == 0x80200000  # fw_jump.bin ends below 2 MiB: the kernel at +2 MiB
    assert fdt == 0x8FE00000  # 2 MiB aligned, 1 MiB (the tree's buffer) below the end
    assert machine.memory.read(fdt, 4) == b"\xd0\x0d\xfe\xed"
    assert machine.memory.read(0x80200000, 64) == Path(image("Image")).read_bytes()[:64]
    initrd = Path(image("initramfs-poweroff.cpio.gz")).read_bytes()
    assert machine.memory.read(0x88200000, len(initrd)) == initrd


@needs_images
@needs_qemu
def test_memory_map_matches_qemus_info_mtree(machines: list[Machine]) -> None:
    result = subprocess.run(
        [QEMU, "-M", "virt", "-m", "256M", "-display", "none", "-S", "-monitor", "stdio",
         "-serial", "null", "-bios", "none"],
        input="info mtree\nquit\n", capture_output=True, text=True, timeout=60)
    section = result.stdout.split("address-space: memory")[1].split("address-space:")[0]
    qemu = set(re.findall(r"^    ([0-9a-f]{16}-[0-9a-f]{16}) \(prio 0, \S+\): (\S+)$", section,
                          re.M))
    missing = {(span, name) for span, name in qemu
               if name.startswith(("fwcfg", "gpex", "platform", "alias"))}
    ours = build(machines, ram_size=256 << 20, bios="none").memory.mtree()
    assert set(re.findall(r"^    ([0-9a-f]{16}-[0-9a-f]{16}) \(prio 0, \S+\): (\S+)$", ours,
                          re.M)) == qemu - missing


def run_script(machine: Machine, *steps, no_reboot: bool = False) -> tuple[int, ScriptedCpu]:
    cpu = ScriptedCpu(list(steps))
    return machine.make_loop(cpu, no_reboot=no_reboot).run(), cpu


def test_sifive_test_powers_off_with_the_guests_status(machines: list[Machine]) -> None:
    machine = build(machines, bios="none")
    status, _ = run_script(machine, lambda cpu: phys_write(
        machine.memory, virt.TEST_BASE, 4, FINISHER_FAIL | 5 << 16))
    assert status == 5
    machine = build(machines, bios="none")
    status, _ = run_script(machine, lambda cpu: phys_write(
        machine.memory, virt.TEST_BASE, 4, FINISHER_PASS))
    assert status == 0


@needs_images
def test_a_guest_reset_reloads_the_boot_images_and_resets_the_cpu(
        machines: list[Machine]) -> None:
    seeds = iter(range(1, 100))
    machine = build(machines, **boot_256m(), rng_seed=lambda n: bytes([next(seeds)]) * n)
    kernel = machine.memory.read(0x80200000, 16)

    def scribble_and_reset(cpu: ScriptedCpu) -> None:
        machine.memory.load(0x80200000, bytes(16))
        phys_write(machine.memory, virt.TEST_BASE, 4, FINISHER_RESET)

    def check_and_stop(cpu: ScriptedCpu) -> None:
        assert machine.memory.read(0x80200000, 16) == kernel
        phys_write(machine.memory, virt.TEST_BASE, 4, FINISHER_PASS)

    status, cpu = run_script(machine, scribble_and_reset, check_and_stop)
    assert status == 0
    assert cpu.resets == [(virt.MROM_BASE, 0, 0, 0)] * 2
    seed = machine.fdt.get_node("/chosen").raw("rng-seed")  # type: ignore[union-attr]
    assert seed == bytes([3]) * 32  # build, first reset, second reset: a new one each time


def test_no_reboot_ends_on_a_guest_reset(machines: list[Machine]) -> None:
    machine = build(machines, bios="none")
    status, cpu = run_script(
        machine, lambda cpu: phys_write(machine.memory, virt.TEST_BASE, 4, FINISHER_RESET),
        no_reboot=True)
    assert status == 0 and len(cpu.resets) == 1


def test_uart_output_and_input(machines: list[Machine]) -> None:
    output: list[bytes] = []
    machine = build(machines, bios="none", serial_out=output.append)
    phys_write(machine.memory, virt.UART0_BASE, 1, ord("A"))
    assert b"".join(output) == b"A"
    machine.serial_input.push(b"xy")
    assert phys_read(machine.memory, virt.UART0_BASE + 5, 1) & 1  # LSR.DR
    assert phys_read(machine.memory, virt.UART0_BASE, 1) == ord("x")
    assert phys_read(machine.memory, virt.UART0_BASE, 1) == ord("y")


def test_uart_interrupt_reaches_the_hart_through_the_plic(machines: list[Machine]) -> None:
    machine = build(machines, bios="none")
    cpu = ScriptedCpu()
    machine.attach_cpu(cpu)
    memory = machine.memory
    phys_write(memory, virt.PLIC_BASE + 4 * virt.UART0_IRQ, 4, 1)  # priority
    phys_write(memory, virt.PLIC_BASE + 0x2000, 4, 1 << virt.UART0_IRQ)  # M context enable
    phys_write(memory, virt.UART0_BASE + 1, 1, 1)  # IER: received data
    machine.serial_input.push(b"!")
    from machines.cpu import IrqBit
    assert cpu.irqs[IrqBit.MEIP] is True
    assert phys_read(memory, virt.PLIC_BASE + 0x200004, 4) == virt.UART0_IRQ  # claim


def test_devices_plug_into_the_last_virtio_slot_first(tmp_path: Path,
                                                      machines: list[Machine]) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4096))
    machine = build(machines, bios="none",
                    drives=(DriveOptions(str(disk), "none", "raw", "d0"),),
                    devices=(DeviceOptions("virtio-rng-device"),
                             DeviceOptions("virtio-blk-device", (("drive", "d0"),))))
    device_ids = [phys_read(machine.memory, virt.VIRTIO_BASE + i * virt.VIRTIO_STRIDE + 8, 4)
                  for i in range(virt.VIRTIO_COUNT)]
    assert device_ids == [0, 0, 0, 0, 0, 0, 2, 4]  # as QEMU: first -device at 0x10008000


def test_device_and_drive_errors_name_the_option(tmp_path: Path, machines: list[Machine]) -> None:
    cases = [
        (dict(devices=(DeviceOptions("virtio-blk-device", spec="-device virtio-blk-device"),)),
         "drive property not set"),
        (dict(devices=(DeviceOptions("virtio-blk-device", (("drive", "nope"),), spec="-d x"),)),
         "Property 'virtio-blk-device.drive' can't find value 'nope'"),
        (dict(devices=(DeviceOptions("virtio-rng-device", (("foo", "1"),)),)),
         "Property 'virtio-rng-device.foo' not found"),
        (dict(devices=(DeviceOptions("e1000"),)), "'e1000' is not a valid device model name"),
        (dict(devices=tuple(DeviceOptions("virtio-rng-device") for _ in range(9))),
         "No 'virtio-bus' bus found for device 'virtio-rng-device'"),
        (dict(drives=(DriveOptions("/nonexistent.img", "none", "raw", "d0", spec="-drive x"),)),
         "Could not open '/nonexistent.img': No such file or directory"),
        (dict(drives=(DriveOptions(str(tmp_path), "ide"),)),
         "machine type does not support if=ide,bus=0,unit=0"),
        (dict(drives=(DriveOptions(str(tmp_path), "pflash"),)),
         "booting from pflash is not supported yet"),
    ]
    for options, message in cases:
        with pytest.raises(MachineError, match=re.escape(message)):
            build(machines, bios="none", **options)


@needs_images
def test_boot_image_errors(tmp_path: Path, machines: list[Machine]) -> None:
    big = tmp_path / "big.initrd"
    big.write_bytes(bytes(10 << 20))
    cases = [
        # vmlinux's segments have physical address 0: over the boot ROM, as in QEMU
        (dict(bios="none", kernel=image("vmlinux")),
         "Some ROM regions are overlapping: " + image("vmlinux") + " ELF program header "
         "segment 0 (addresses 0x0000000000000000 - 0x0000000000209186) and mrom.reset "
         "(addresses 0x0000000000001000 - 0x0000000000001028)"),
        (dict(bios=image("fw_jump.elf"), kernel=image("fw_jump.elf")),
         "Some ROM regions are overlapping"),
        (dict(ram_size=16 << 20, kernel=image("Image"), initrd=str(big)), "do not fit in RAM"),
        (dict(bios="/nonexistent/fw.bin"), 'Unable to load the RISC-V firmware "/nonexistent'),
        (dict(default_bios="/nonexistent/fw_dynamic.bin"), "apt-get install opensbi"),
        (dict(bios="none", kernel="/nonexistent"),
         "could not load kernel '/nonexistent': No such file or directory"),
        (dict(bios="none", kernel=image("Image"), initrd="/nonexistent"),
         "could not load ramdisk '/nonexistent'"),
        (dict(bios="none", dtb="/nonexistent.dtb"),
         "Unable to get size of device tree file '/nonexistent.dtb'"),
        (dict(bios="none", dtb=image("Image")), "FDT_ERR_BADMAGIC"),
    ]
    for options, message in cases:
        with pytest.raises(MachineError, match=re.escape(message)):
            build(machines, **options)


@needs_images
def test_dtb_option_replaces_the_generated_tree(tmp_path: Path, machines: list[Machine]) -> None:
    machine = build(machines, ram_size=256 << 20, bios="none", kernel=image("Image"),
                    dtb=str(QEMU_DTB), append="console=hvc0")
    tree = tree_as_dict(machine.dtb())
    assert tree["/chosen"]["bootargs"] == b"console=hvc0\0"
    assert "linux,initrd-start" in tree["/chosen"]  # the file's, kept: no -initrd given
    size = (QEMU_DTB.stat().st_size + 10000) * 2  # QEMU's load_device_tree buffer
    expected = (0x90000000 - size) // (2 << 20) * (2 << 20)
    assert machine.fdt_addr == expected
    assert machine.memory.read(expected, 4) == b"\xd0\x0d\xfe\xed"
