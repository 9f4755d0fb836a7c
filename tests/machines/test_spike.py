"""QEMU 7.2's spike board: device tree and boot ROM against QEMU's, HTIF found at the
ELF's tohost/fromhost symbols, and the ISA-test exit protocol ending the emulator."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest

from machines import riscv64_spike as spike
from machines.boot import BootError, parse_elf
from machines.machine import DeviceOptions, Machine, MachineError, MachineOptions
from tests.machines.support import (
    CROSS_GCC,
    ScriptedCpu,
    image,
    needs_cross_gcc,
    needs_images,
    needs_qemu,
    phys_read,
    phys_write,
    qemu_dumpdtb,
    qemu_rom_words,
    tree_as_dict,
)

# An ISA-test-shaped program: code at 0x80000000, tohost/fromhost in their own page.
TEST_SOURCE = r"""
    .section .text.init, "ax"
    .globl _start
_start:
    li a0, 1
    la t0, tohost
    sd a0, 0(t0)
1:  j 1b

    .section .tohost, "aw", @progbits
    .align 6
    .globl tohost
tohost: .dword 0
    .size tohost, 8
    .align 6
    .globl fromhost
fromhost: .dword 0
    .size fromhost, 8
"""
LINKER_SCRIPT = """
OUTPUT_ARCH("riscv")
ENTRY(_start)
SECTIONS {
  . = 0x80000000;
  .text.init : { *(.text.init) }
  . = ALIGN(0x1000);
  .tohost : { *(.tohost) }
  . = ALIGN(0x1000);
  .text : { *(.text) }
  .data : { *(.data) }
  .bss : { *(.bss) }
  _end = .;
}
"""


@pytest.fixture(scope="module")
def isa_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CROSS_GCC is None:
        pytest.skip("riscv64-linux-gnu-gcc not installed (scripts/setup.sh)")
    work = tmp_path_factory.mktemp("isa-test")
    (work / "test.S").write_text(TEST_SOURCE)
    (work / "link.ld").write_text(LINKER_SCRIPT)
    elf = work / "test.elf"
    subprocess.run([CROSS_GCC, "-nostdlib", "-nostartfiles", "-static", "-march=rv64gc",
                    "-mabi=lp64d", "-Wl,--build-id=none", "-T", str(work / "link.ld"),
                    str(work / "test.S"), "-o", str(elf)], check=True, capture_output=True)
    return elf


@pytest.fixture
def machines() -> list[Machine]:
    built: list[Machine] = []
    yield built
    for machine in built:
        machine.close()


def build(machines: list[Machine], **kwargs: object) -> Machine:
    machine = spike.build(MachineOptions(**kwargs))  # type: ignore[arg-type]
    machines.append(machine)
    return machine


def symbol(elf: Path, name: str) -> int:
    out = subprocess.run(["riscv64-linux-gnu-nm", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    return int(re.search(rf"^([0-9a-f]+) \w {name}$", out, re.M).group(1), 16)


def test_htif_sits_at_the_elfs_symbols_and_tohost_ends_the_emulator(
        isa_test: Path, machines: list[Machine]) -> None:
    output: list[bytes] = []
    machine = build(machines, bios="none", kernel=str(isa_test), serial_out=output.append)
    tohost, fromhost = symbol(isa_test, "tohost"), symbol(isa_test, "fromhost")
    region = machine.memory.region_at(tohost)
    assert region is not None and region.name == "riscv.htif.uart" and region.overlay
    assert region.base == tohost and region.end == fromhost + 8
    assert "reg" not in tree_as_dict(machine.dtb())["/htif"]  # QEMU: no reg with symbols
    # The ELF is in RAM, the code beside the mailboxes too.
    elf = parse_elf(isa_test.read_bytes(), "test.elf")
    assert elf is not None and elf.entry == 0x80000000
    assert machine.memory.read(0x80000000, 8) == elf.segments[0].data[:8]

    # putchar, then the test's exit: (code << 1) | 1 in tohost
    phys_write(machine.memory, tohost, 8, (1 << 56) | (1 << 48) | ord("K"))
    assert output == [b"K"]
    cpu = ScriptedCpu([lambda cpu: phys_write(machine.memory, tohost, 8, (13 << 1) | 1)])
    assert machine.make_loop(cpu).run() == 13


def test_a_passing_isa_test_exits_with_status_0(isa_test: Path, machines: list[Machine]) -> None:
    machine = build(machines, bios="none", kernel=str(isa_test))
    tohost = symbol(isa_test, "tohost")
    # Two 32-bit stores, low half first, as RV32 tests write it.
    cpu = ScriptedCpu([lambda cpu: phys_write(machine.memory, tohost, 4, 1),
                       lambda cpu: phys_write(machine.memory, tohost + 4, 4, 0)])
    assert machine.make_loop(cpu).run() == 0


def test_without_symbols_htif_is_at_its_fixed_address(machines: list[Machine]) -> None:
    machine = build(machines, bios="none")
    region = machine.memory.region_at(spike.HTIF_BASE)
    assert region is not None and region.name == "riscv.htif.uart" and not region.overlay
    cpu = ScriptedCpu([lambda cpu: phys_write(machine.memory, spike.HTIF_BASE + 8, 8, 7)])
    assert machine.make_loop(cpu).run() == 3
    reg = tree_as_dict(machine.dtb())["/htif"]["reg"]
    assert reg == struct.pack(">4I", 0, spike.HTIF_BASE, 0, 0x1000)


def test_htif_console_input_is_given_when_the_guest_asks(machines: list[Machine]) -> None:
    machine = build(machines, bios="none")
    machine.serial_input.push(b"q")
    memory, base = machine.memory, spike.HTIF_BASE
    assert phys_read(memory, base, 8) == 0  # nothing until a getchar request
    phys_write(memory, base + 8, 8, 1 << 56)  # device 1, command 0: getchar
    assert phys_read(memory, base, 8) == (1 << 56) | 0x100 | ord("q")


def test_htif_symbols_must_be_eight_bytes() -> None:
    symbols = spike.HtifSymbols()
    symbols("tohost", 0x80001000, 8)
    with pytest.raises(BootError, match="HTIF fromhost must be 8 bytes"):
        symbols("fromhost", 0x80001040, 4)
    symbols("other", 0, 1)
    assert symbols.layout() is None
    symbols("fromhost", 0x80001040, 8)
    layout = symbols.layout()
    assert layout is not None and (layout.base, layout.size) == (0x80001000, 0x48)


def test_spike_has_no_virtio_or_drives(machines: list[Machine]) -> None:
    with pytest.raises(MachineError, match="No 'virtio-bus' bus found for device "
                                           "'virtio-rng-device'"):
        build(machines, bios="none", devices=(DeviceOptions("virtio-rng-device"),))


@needs_images
@needs_qemu
def test_device_tree_and_rom_match_qemu(tmp_path: Path, machines: list[Machine]) -> None:
    args = ["-m", "256M", "-bios", image("fw_jump.bin"), "-kernel", image("Image"),
            "-initrd", image("initramfs.cpio.gz"), "-append", "console=hvc0"]
    qemu = tree_as_dict(qemu_dumpdtb(tmp_path, "spike", *args))
    machine = build(machines, ram_size=256 << 20, bios=image("fw_jump.bin"),
                    kernel=image("Image"), initrd=image("initramfs.cpio.gz"),
                    append="console=hvc0")
    assert tree_as_dict(machine.dtb()) == qemu
    words = qemu_rom_words("-M", "spike", *args)
    assert list(struct.unpack("<22I", machine.memory.read(spike.MROM_BASE, 88))) == words


@needs_cross_gcc
@needs_qemu
def test_isa_test_boot_matches_qemu(isa_test: Path, tmp_path: Path,
                                    machines: list[Machine]) -> None:
    args = ["-bios", "none", "-kernel", str(isa_test)]
    qemu = tree_as_dict(qemu_dumpdtb(tmp_path, "spike", *args))
    machine = build(machines, bios="none", kernel=str(isa_test))
    assert tree_as_dict(machine.dtb()) == qemu
    words = qemu_rom_words("-M", "spike", *args)
    assert list(struct.unpack("<22I", machine.memory.read(spike.MROM_BASE, 88))) == words
