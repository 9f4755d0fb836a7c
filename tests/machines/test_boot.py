"""Boot helpers: the ELF reader against pyelftools, the reset vector against capstone's
disassembly and QEMU's source, QEMU's placement arithmetic, ROM-blob overlap checks."""

from __future__ import annotations

import struct

import capstone
import pytest

from llvmtcg.runtime.physmem import PhysicalAddressSpace
from machines import boot
from machines.boot import BootError, BootImages
from tests.machines.support import image, needs_images

MiB = 1 << 20


def test_reset_vector_disassembles_to_qemus_code() -> None:
    words = boot.reset_vector(0x80000000, 0x8FE00000)
    code = struct.pack("<6I", *words[:6])
    md = capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64)
    listing = [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(code, 0x1000)]
    assert listing == ["auipc t0, 0", "addi a2, t0, 0x28", "csrr a0, mhartid",
                       "ld a1, 0x20(t0)", "ld t0, 0x18(t0)", "jr t0"]
    # Then the .dwords the two loads read: start (t0 + 24) and the fdt (t0 + 32); a2 =
    # t0 + 40 is the fw_dynamic_info that follows.
    assert words[6:] == [0x80000000, 0, 0x8FE00000, 0]


def test_fw_dynamic_info_is_opensbis_struct() -> None:
    magic, version, next_addr, next_mode, options, boot_hart = struct.unpack(
        "<6Q", boot.fw_dynamic_info(0x80200000))
    assert (magic, version, next_addr, next_mode, options, boot_hart) == (
        0x4942534F, 2, 0x80200000, 1, 0, 0)


def test_placement_arithmetic_is_qemus() -> None:
    assert boot.kernel_start_addr(0x80000000) == 0x80000000  # -bios none
    assert boot.kernel_start_addr(0x8001C280) == 0x80200000
    assert boot.initrd_start(0x80200000, 256 * MiB) == 0x88200000  # 128 MiB above
    assert boot.initrd_start(0x80200000, 64 * MiB) == 0x82200000  # half of RAM
    assert boot.fdt_address(0x80000000, 256 * MiB, 0x100000) == 0x8FE00000
    assert boot.fdt_address(0x80000000, 4096 * MiB, 0x100000) == 0xBFE00000  # below 3 GiB
    assert boot.fdt_address(0xC0000000, 256 * MiB, 0x100000) == 0xCFE00000
    assert boot.loaded_fdt_size(4327) == 28654


@needs_images
@pytest.mark.parametrize("name", ["fw_jump.elf", "vmlinux", "u-boot-qemu-riscv64/uboot.elf"])
def test_elf_reader_agrees_with_pyelftools(name: str) -> None:
    from elftools.elf.elffile import ELFFile
    data = open(image(name), "rb").read()
    ours = boot.parse_elf(data, name)
    assert ours is not None
    with open(image(name), "rb") as f:
        elf = ELFFile(f)
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD" and s["p_memsz"]]
        assert [(s.paddr, s.data[:64], s.memsz) for s in ours.segments] == [
            (s["p_paddr"], s.data()[:64], s["p_memsz"]) for s in loads]
        symtab = elf.get_section_by_name(".symtab")
        if symtab is not None:
            names = {sym.name for sym in symtab.iter_symbols() if sym.name}
            assert set(ours.symbols) == names
        entry = elf.header["e_entry"]
    text = next(s for s in loads if s["p_flags"] & 1)
    if text["p_vaddr"] != text["p_paddr"]:  # QEMU moves the entry to its physical address
        entry = entry - text["p_vaddr"] + text["p_paddr"]
    assert ours.entry == entry
    assert ours.low == min(s.paddr for s in ours.segments)


def test_elf_errors_are_one_line() -> None:
    assert boot.parse_elf(b"not an elf", "x") is None
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<HH", header, 16, 2, 62)  # x86-64
    with pytest.raises(BootError, match="not a RISC-V ELF file"):
        boot.parse_elf(bytes(header), "x86.elf")
    with pytest.raises(BootError, match="truncated ELF file"):
        boot.parse_elf(b"\x7fELF\x02\x01\x01", "short.elf")


def test_uimages_are_refused_with_a_reason() -> None:
    images = BootImages()
    with pytest.raises(BootError, match="U-Boot uImage files are not supported"):
        boot.load_elf_or_raw(images, "k.uimg", b"\x27\x05\x19\x56" + bytes(60), 0x80200000,
                             1 << 30, "kernel")
    with pytest.raises(BootError, match="could not load kernel 'big'"):
        boot.load_elf_or_raw(images, "big", bytes(100), 0x80200000, 99, "kernel")


def test_blobs_may_not_overlap_and_must_land_in_memory() -> None:
    images = BootImages()
    images.add("a", 0x80000000, b"x" * 0x20)
    images.add("b", 0x80000010, b"y")
    with pytest.raises(BootError, match=r"Some ROM regions are overlapping: a \(addresses "
                                        r"0x0000000080000000 - 0x0000000080000020\) and b"):
        images.check()
    space = PhysicalAddressSpace(size=1 << 32)
    try:
        space.add_ram("ram", 0x80000000, 0x1000)
        outside = BootImages()
        outside.add("tail", 0x80000FF0, b"z" * 0x20)
        with pytest.raises(BootError, match=r"rom tail \[0x80000ff0, 0x80001010\) is not inside"):
            outside.install(space)
        bss = BootImages()
        bss.add("elf", 0x80000000, b"\x01\x02", size=0x10)
        space.load(0x80000000, b"\xff" * 0x10)
        bss.install(space)
        assert space.read(0x80000000, 0x10) == b"\x01\x02" + bytes(14)  # zero-filled tail
    finally:
        space.close()
