"""The 64-bit Linux boot protocol (machines/x86_64_boot.py) against
Documentation/arch/x86/boot.rst and zero-page.rst: the zero page's fields at their
documented offsets, the e820 map, the page tables, and a synthetic bzImage whose 64-bit
entry reads the zero page on real KVM."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from machines.x86_64_boot import (
    START_INFO_MAGIC,
    BootError,
    E820Entry,
    e820_map,
    page_tables,
    plan_linux_boot,
    plan_pvh_boot,
    pvh_entry_point,
)
from machines.x86_64_microvm import kvm_available

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20

# 64-bit code at the entry (load address + 0x200): print the command line the zero page
# points to on COM1, then write the e820 entry count to isa-debug-exit.
ENTRY_CODE = bytes([
    0x48, 0x89, 0xF3,                    # mov rbx, rsi       (REX.W: long mode only)
    0x8B, 0xB3, 0x28, 0x02, 0x00, 0x00,  # mov esi, [rbx+0x228]  cmd_line_ptr
    0x66, 0xBA, 0xF8, 0x03,              # mov dx, 0x3f8
    0xAC,                                # next: lodsb
    0x84, 0xC0,                          # test al, al
    0x74, 0x03,                          # jz done
    0xEE,                                # out dx, al
    0xEB, 0xF8,                          # jmp next
    0x8A, 0x83, 0xE8, 0x01, 0x00, 0x00,  # done: mov al, [rbx+0x1e8]  e820_entries
    0xE6, 0xF4,                          # out 0xf4, al
    0xF4])                               # hlt


# 32-bit code at a PVH entry: print the command line hvm_start_info points to, then
# write its memmap_entries to isa-debug-exit.
PVH_CODE = bytes([
    0x8B, 0x73, 0x18,                    # mov esi, [ebx+0x18]  cmdline_paddr
    0x66, 0xBA, 0xF8, 0x03,              # mov dx, 0x3f8
    0xAC,                                # next: lodsb
    0x84, 0xC0,                          # test al, al
    0x74, 0x03,                          # jz done
    0xEE,                                # out dx, al
    0xEB, 0xF8,                          # jmp next
    0x8A, 0x43, 0x30,                    # done: mov al, [ebx+0x30]  memmap_entries
    0xE6, 0xF4,                          # out 0xf4, al
    0xF4])                               # hlt


def pvh_elf(code: bytes, *, entry: int = 0x100000, note: bool = True) -> bytes:
    """An ELF64 executable: one PT_LOAD of ``code`` at ``entry`` (physical) and a
    PT_NOTE holding Xen's PHYS32_ENTRY note (name "Xen", type 18, 4-byte address)."""
    note_bytes = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", entry)
    phoff, phnum = 64, 2
    data_at = phoff + 56 * phnum
    header = bytearray(64)
    header[:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", header, 16, 2, 62, 1, entry, phoff, 0, 0, 64, 56,
                     phnum, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 5, data_at, 0xFFFFFFFF80000000 + entry, entry,
                       len(code), len(code) + 0x1000, 0x1000)
    note_type = 4 if note else 6  # PT_PHDR instead: no note
    notes = struct.pack("<IIQQQQQQ", note_type, 4, data_at + len(code), 0, 0, len(note_bytes),
                        len(note_bytes), 4)
    return bytes(header) + load + notes + code + note_bytes


def bzimage(*, version: int = 0x020F, xloadflags: int = 1, setup_sects: int = 1,
            payload: bytes = b"", cmdline_size: int = 2047) -> bytes:
    """A minimal bzImage: the setup sectors with a real-mode header, then the
    protected-mode part (whose offset 0x200 is the 64-bit entry)."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x1FE:0x200] = b"\x55\xaa"
    setup[0x200:0x202] = b"\xeb\x66"  # jmp over the header: header ends at 0x268
    struct.pack_into("<I", setup, 0x202, 0x53726448)
    struct.pack_into("<H", setup, 0x206, version)
    setup[0x211] = 0x01  # LOADED_HIGH
    struct.pack_into("<I", setup, 0x214, 0x100000)
    struct.pack_into("<I", setup, 0x22C, 0x37FFFFFF)  # initrd_addr_max
    setup[0x236] = xloadflags
    struct.pack_into("<I", setup, 0x238, cmdline_size)
    body = bytearray(0x400)
    body[0x200:0x200 + len(payload)] = payload
    return bytes(setup) + bytes(body)


def image(boot, name: str) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    (found,) = [i for i in boot.images if i.name == name]
    return found.addr, found.data


def test_zero_page_fields_at_their_documented_offsets() -> None:
    kernel = bzimage()
    boot = plan_linux_boot(kernel, "console=ttyS0", b"\x01" * 5000, below_4g=64 * MiB)
    addr, zero = image(boot, "zero page")
    assert addr == boot.entry.rsi == 0x7000
    assert zero[0x1F1:0x268] != bytes(0x77)  # the setup header was copied
    assert struct.unpack_from("<I", zero, 0x202)[0] == 0x53726448
    assert zero[0x210] == 0xFF  # type_of_loader: undefined
    assert zero[0x211] & 0x81 == 0x81  # LOADED_HIGH kept, CAN_USE_HEAP set
    cmd_addr, cmd = image(boot, "cmdline")
    assert struct.unpack_from("<I", zero, 0x228)[0] == cmd_addr
    assert cmd == b"console=ttyS0\0"
    initrd_addr, initrd = image(boot, "initrd")
    assert struct.unpack_from("<II", zero, 0x218) == (initrd_addr, 5000)
    assert initrd_addr % 4096 == 0 and initrd_addr + 5000 <= 64 * MiB
    assert zero[0x1E8] == 2
    assert zero[0x2D0:0x2D0 + 40] == E820Entry(0, 0x9FC00, 1).pack() + \
        E820Entry(MiB, 63 * MiB, 1).pack()
    kernel_addr, payload = image(boot, "kernel")
    assert (kernel_addr, payload) == (MiB, kernel[1024:])
    assert boot.entry.rip == MiB + 0x200


def test_e820_entries_are_20_bytes_and_high_ram_goes_above_4g() -> None:
    assert len(E820Entry(0, 1, 1).pack()) == 20
    assert e820_map(3 << 30, 1 << 30) == [E820Entry(0, 0x9FC00, 1),
                                          E820Entry(MiB, (3 << 30) - MiB, 1),
                                          E820Entry(1 << 32, 1 << 30, 1)]


def test_identity_map_covers_4g_with_2m_pages() -> None:
    tables = page_tables()
    pml4 = struct.unpack_from("<Q", tables, 0)[0]
    assert pml4 == 0xA000 | 3
    pdpt = struct.unpack_from("<4Q", tables, 0x1000)
    assert pdpt == tuple((0xB000 + 0x1000 * i) | 3 for i in range(4))
    last = struct.unpack_from("<Q", tables, 0x2000 + 8 * 2047)[0]
    assert last == (4 << 30) - (2 << 20) | 0x83


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"version": 0x0206}, "boot protocol 2.06 is too old"),
    ({"xloadflags": 0}, "no 64-bit entry point"),
])
def test_kernels_that_cannot_be_entered_in_long_mode(kwargs: dict, message: str) -> None:
    with pytest.raises(BootError, match=message):
        plan_linux_boot(bzimage(**kwargs), "", None, below_4g=64 * MiB)


def test_not_a_bzimage_and_too_long_a_command_line() -> None:
    with pytest.raises(BootError, match="not a bzImage"):
        plan_linux_boot(b"\x7fELF" + bytes(4096), "", None, below_4g=64 * MiB)
    with pytest.raises(BootError, match="command line is 20 bytes; this kernel takes at "
                                        "most 10"):
        plan_linux_boot(bzimage(cmdline_size=10), "x" * 20, None, below_4g=64 * MiB)


_reason = kvm_available()


@pytest.mark.skipif(_reason is not None, reason=f"KVM unusable here: {_reason}")
def test_synthetic_kernel_runs_in_long_mode_and_reads_the_zero_page(tmp_path: Path) -> None:
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(bzimage(payload=ENTRY_CODE))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "launcher.system_x86_64", "-accel", "kvm", "-M", "microvm",
         "-m", "64M", "-nodefaults", "-display", "none", "-serial", "stdio", "-kernel",
         str(kernel), "-append", "root=/dev/vda console=ttyS0",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=4"],
        capture_output=True, text=True, timeout=60, env=env)
    assert result.stdout == "root=/dev/vda console=ttyS0"
    assert result.returncode == (2 << 1) | 1  # two e820 entries
    # QEMU's auto-kernel-cmdline names the transports that have a device.
    result = subprocess.run(
        [sys.executable, "-m", "launcher.system_x86_64", "-accel", "kvm", "-M", "microvm",
         "-m", "64M", "-nodefaults", "-display", "none", "-serial", "stdio", "-kernel",
         str(kernel), "-append", "quiet", "-device", "virtio-rng-device",
         "-device", "virtio-rng-device", "-device", "isa-debug-exit,iobase=0xf4,iosize=4"],
        capture_output=True, text=True, timeout=60, env=env)
    assert result.stdout == ("quiet virtio_mmio.device=512@0xfeb00e00:12 "
                             "virtio_mmio.device=512@0xfeb00c00:11")


def test_pvh_start_info_and_memory_map_at_their_documented_offsets() -> None:
    elf = pvh_elf(PVH_CODE)
    assert pvh_entry_point(elf) == 0x100000
    boot = plan_pvh_boot(elf, "console=ttyS0", b"\x02" * 100, below_4g=64 * MiB)
    assert not boot.entry.long_mode
    assert (boot.entry.rip, boot.entry.cr0 & 0x80000001, boot.entry.efer) == (0x100000, 1, 0)
    info_addr, info = image(boot, "hvm_start_info")
    assert info_addr == boot.entry.rbx
    magic, version, flags, modules, modlist, cmdline, rsdp, memmap, entries, _ = \
        struct.unpack("<IIIIQQQQII", info)
    assert (magic, version, flags, modules, rsdp, entries) == (START_INFO_MAGIC, 1, 0, 1, 0, 2)
    assert image(boot, "cmdline") == (cmdline, b"console=ttyS0\0")
    memmap_addr, table = image(boot, "memmap")
    assert memmap_addr == memmap
    assert struct.unpack("<QQII", table[24:48]) == (MiB, 63 * MiB, 1, 0)
    initrd_addr, _ = image(boot, "initrd")
    assert image(boot, "modlist") == (modlist, struct.pack("<QQQQ", initrd_addr, 100, 0, 0))
    segment_addr, segment = image(boot, "segment@0x100000")
    assert segment == PVH_CODE + bytes(0x1000)  # memsz past filesz is zeroed


def test_elf_without_pvh_note_is_refused() -> None:
    with pytest.raises(BootError, match="no PVH entry note"):
        plan_pvh_boot(pvh_elf(PVH_CODE, note=False), "", None, below_4g=64 * MiB)


@pytest.mark.skipif(_reason is not None, reason=f"KVM unusable here: {_reason}")
def test_synthetic_pvh_kernel_runs_in_protected_mode(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(pvh_elf(PVH_CODE))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "launcher.system_x86_64", "-accel", "kvm", "-M", "microvm",
         "-m", "64M", "-nodefaults", "-display", "none", "-serial", "stdio", "-kernel",
         str(kernel), "-append", "pvh console=ttyS0",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=4"],
        capture_output=True, text=True, timeout=60, env=env)
    assert (result.stdout, result.returncode) == ("pvh console=ttyS0", (2 << 1) | 1)
