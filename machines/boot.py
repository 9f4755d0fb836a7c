"""Putting firmware, kernel, initrd and device tree into guest memory, as QEMU 7.2 does.

QEMU's loaders register *ROM blobs* (``rom_add_blob``, ``rom_add_elf_program``) that
are copied into memory at every system reset, and refuse blobs that overlap. A
:class:`BootImages` is that list: the machine fills it once, ``install`` writes it and
runs again on reset. Unlike QEMU, a blob that falls outside RAM and ROM is an error here
(QEMU drops such writes silently).

The RISC-V placement rules (hw/riscv/boot.c): firmware as ELF at its physical addresses
or raw at the start of RAM; a kernel as ELF (entry = lowest loaded address) or raw at
``riscv_calc_kernel_start_addr`` (the firmware's end rounded up to 2 MiB on RV64); the
initrd at kernel + min(RAM/2, 128 MiB); the device tree 2 MiB-aligned below the end of
RAM or 3 GiB; the reset vector and ``fw_dynamic_info`` in the boot ROM.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llvmtcg.runtime.physmem import BusError, PhysicalAddressSpace

MiB = 1 << 20
GiB = 1 << 30

EM_RISCV = 243
_PT_LOAD = 1
_PF_X = 1
_SHT_SYMTAB = 2
_ELF_MAGIC = b"\x7fELF"
_UIMAGE_MAGIC = b"\x27\x05\x19\x56"


class BootError(Exception):
    """An image that cannot be loaded; the message is one line in QEMU's wording."""


# -- ELF ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ElfSegment:
    paddr: int
    data: bytes  # p_filesz bytes from the file
    memsz: int  # bytes in memory (the rest is zero), after QEMU's overlap truncation


@dataclass(frozen=True, slots=True)
class ElfImage:
    """A RISC-V ELF as QEMU's load_elf sees it (physical addresses)."""

    entry: int  # e_entry, moved to its physical address when the segments say so
    low: int  # lowest loaded physical address
    high: int  # end of the highest loaded segment
    segments: tuple[ElfSegment, ...]
    symbols: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (value, size)


def _signed64(value: int) -> int:
    """QEMU stores ELF addresses as (elf_sword) casts: sign-extended to 64 bits."""
    return value & 0xFFFF_FFFF_FFFF_FFFF


def parse_elf(data: bytes, name: str) -> ElfImage | None:
    """The RISC-V ELF in ``data``, or None when ``data`` is not an ELF file at all.
    Raises BootError for an ELF that is not a little-endian RISC-V executable or is
    truncated (QEMU would fall back to loading the file raw; that is never wanted)."""
    if not data.startswith(_ELF_MAGIC):
        return None
    try:
        return _parse_elf(data, name)
    except struct.error:
        raise BootError(f"{name}: truncated ELF file") from None


def _parse_elf(data: bytes, name: str) -> ElfImage:
    ei_class, ei_data = data[4], data[5]
    if ei_data != 1:
        raise BootError(f"{name}: not a little-endian ELF file")
    is64 = ei_class == 2
    if ei_class not in (1, 2):
        raise BootError(f"{name}: bad ELF class {ei_class}")
    if is64:
        (_, machine, _, entry, phoff, shoff, _, _, phentsize, phnum, shentsize,
         shnum, _) = struct.unpack_from("<HHIQQQIHHHHHH", data, 16)
    else:
        (_, machine, _, entry, phoff, shoff, _, _, phentsize, phnum, shentsize,
         shnum, _) = struct.unpack_from("<HHIIIIIHHHHHH", data, 16)
    if machine != EM_RISCV:
        raise BootError(f"{name}: not a RISC-V ELF file (e_machine {machine})")
    headers = []
    for i in range(phnum):
        off = phoff + i * phentsize
        if is64:
            p_type, flags, offset, vaddr, paddr, filesz, memsz, _ = struct.unpack_from(
                "<IIQQQQQQ", data, off)
        else:
            p_type, offset, vaddr, paddr, filesz, memsz, flags, _ = struct.unpack_from(
                "<IIIIIIII", data, off)
        headers.append((p_type, flags, offset, vaddr, paddr, filesz, memsz))
    loads = [h for h in headers if h[0] == _PT_LOAD]
    segments: list[ElfSegment] = []
    low, high, pentry = 1 << 64, 0, entry
    for index, (_, flags, offset, vaddr, paddr, filesz, memsz) in enumerate(loads):
        if offset + filesz > len(data):
            raise BootError(f"{name}: ELF segment {index} is beyond the end of the file")
        if memsz > filesz:
            # QEMU: a zero-fill tail that runs into another segment is a load-time
            # layout (ROM image with relocation at run time): load only the file bytes.
            zero_start, zero_end = paddr + filesz, paddr + memsz
            for other_index, other in enumerate(loads):
                if other_index != index and not (other[4] >= zero_end
                                                 or zero_start >= other[4] + other[6]):
                    memsz = filesz
                    break
        if vaddr != paddr and vaddr <= entry < vaddr + filesz and flags & _PF_X:
            pentry = entry - vaddr + paddr
        if memsz:
            segments.append(ElfSegment(paddr, bytes(data[offset:offset + filesz]), memsz))
            low, high = min(low, paddr), max(high, paddr + memsz)
    if not segments:
        raise BootError(f"{name}: ELF file has nothing to load")
    symbols = _elf_symbols(data, is64, shoff, shentsize, shnum)
    return ElfImage(_signed64(pentry), _signed64(low), _signed64(high), tuple(segments),
                    symbols)


def _elf_symbols(data: bytes, is64: bool, shoff: int, shentsize: int,
                 shnum: int) -> dict[str, tuple[int, int]]:
    """Every symbol of the first SHT_SYMTAB (what QEMU's sym_cb sees)."""
    sections = []
    for i in range(shnum if shoff else 0):
        off = shoff + i * shentsize
        if is64:
            _, sh_type, _, _, offset, size, link, _, _, entsize = struct.unpack_from(
                "<IIQQQQIIQQ", data, off)
        else:
            _, sh_type, _, _, offset, size, link, _, _, entsize = struct.unpack_from(
                "<IIIIIIIIII", data, off)
        sections.append((sh_type, offset, size, link))
    symtab = next((s for s in sections if s[0] == _SHT_SYMTAB), None)
    if symtab is None or symtab[3] >= len(sections):
        return {}
    _, offset, size, link = symtab
    _, str_offset, str_size, _ = sections[link]
    strings = data[str_offset:str_offset + str_size]
    entry = struct.Struct("<IBBHQQ" if is64 else "<IIIBBH")
    symbols: dict[str, tuple[int, int]] = {}
    for pos in range(offset, offset + size - entry.size + 1, entry.size):
        if is64:
            name_off, _, _, _, value, sym_size = entry.unpack_from(data, pos)
        else:
            name_off, value, sym_size, _, _, _ = entry.unpack_from(data, pos)
        end = strings.find(b"\0", name_off)
        sym_name = strings[name_off:end if end >= 0 else None].decode("latin-1")
        if sym_name:
            symbols[sym_name] = (value, sym_size)
    return symbols


# -- ROM blobs --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Blob:
    name: str
    addr: int
    data: bytes
    size: int  # bytes it covers (data, then zeros: an ELF segment's bss)

    @property
    def end(self) -> int:
        return self.addr + self.size


class BootImages:
    """The ROM blobs of a machine, re-written into memory at every reset."""

    def __init__(self) -> None:
        self.blobs: list[Blob] = []

    def add(self, name: str, addr: int, data: bytes, size: int | None = None) -> Blob:
        blob = Blob(name, addr, bytes(data), len(data) if size is None else size)
        self.blobs.append(blob)
        return blob

    def check(self) -> None:
        """QEMU's rom_check_and_register_reset: blobs may not overlap."""
        previous: Blob | None = None
        for blob in sorted(self.blobs, key=lambda b: b.addr):
            if previous is not None and previous.end > blob.addr:
                raise BootError(f"Some ROM regions are overlapping: {_span(previous)} and "
                                f"{_span(blob)}")
            if previous is None or blob.end > previous.end:
                previous = blob

    def install(self, memory: PhysicalAddressSpace) -> None:
        """Write every blob (data, then zeros up to its size)."""
        for blob in self.blobs:
            try:
                memory.load(blob.addr, blob.data + bytes(blob.size - len(blob.data)))
            except BusError:
                raise BootError(f"rom {blob.name} [{blob.addr:#x}, {blob.end:#x}) is not "
                                f"inside RAM or ROM") from None


def _span(blob: Blob) -> str:
    return f"{blob.name} (addresses 0x{blob.addr:016x} - 0x{blob.end:016x})"


# -- files --------------------------------------------------------------------------------
def read_file(path: str | os.PathLike[str], what: str) -> bytes:
    """The contents of a file the user named; BootError in QEMU's words if unreadable."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BootError(f"could not load {what} '{path}': {exc.strerror}") from None


SymbolSink = Callable[[str, int, int], None]


def load_elf_or_raw(images: BootImages, path: str, data: bytes, raw_addr: int,
                    max_size: int, what: str,
                    symbols: SymbolSink | None = None) -> tuple[int, int, bool]:
    """Load ``data`` as an ELF (segments at their physical addresses) or raw at
    ``raw_addr``. Returns (start, end, is_elf): for an ELF the lowest and highest
    loaded addresses and QEMU's entry rules are the caller's; raw: the image span."""
    elf = parse_elf(data, path)
    if elf is not None:
        for index, segment in enumerate(elf.segments):
            images.add(f"{path} ELF program header segment {index}", segment.paddr,
                       segment.data, segment.memsz)
        if symbols is not None:
            for name, (value, size) in elf.symbols.items():
                symbols(name, value, size)
        return elf.low, elf.high, True
    if data.startswith(_UIMAGE_MAGIC):
        raise BootError(f"could not load {what} '{path}': U-Boot uImage files are not "
                        f"supported (use the raw Image or the ELF)")
    if not data or len(data) > max_size:
        raise BootError(f"could not load {what} '{path}'")
    images.add(path, raw_addr, data)
    return raw_addr, raw_addr + len(data), False


# -- RISC-V boot (hw/riscv/boot.c) -------------------------------------------------------
KERNEL_ALIGN_RV64 = 2 * MiB
FDT_ALIGN = 2 * MiB
FDT_GENERATED_SIZE = 0x100000  # QEMU's FDT_MAX_SIZE: the buffer a generated tree lives in

FW_DYNAMIC_INFO_MAGIC = 0x4942534F  # "OSBI"
FW_DYNAMIC_INFO_VERSION = 2
FW_DYNAMIC_INFO_NEXT_MODE_S = 1


def align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment


def kernel_start_addr(firmware_end: int) -> int:
    """riscv_calc_kernel_start_addr for RV64: after the firmware, 2 MiB aligned."""
    return align_up(firmware_end, KERNEL_ALIGN_RV64)


def initrd_start(kernel_entry: int, ram_size: int) -> int:
    """riscv_load_initrd: far enough above the kernel for it to decompress, low enough
    to stay in lowmem."""
    return kernel_entry + min(ram_size // 2, 128 * MiB)


def fdt_address(dram_base: int, ram_size: int, fdt_size: int) -> int:
    """riscv_load_fdt: 2 MiB aligned, ``fdt_size`` below the end of RAM or 3 GiB,
    whichever is lower (so 32-bit guests reach it)."""
    dram_end = dram_base + ram_size
    top = min(dram_end, 3 * GiB) if dram_base < 3 * GiB else dram_end
    return align_down(top - fdt_size, FDT_ALIGN)


def loaded_fdt_size(file_size: int) -> int:
    """The buffer QEMU's load_device_tree gives a ``-dtb`` file: twice (size + 10000)."""
    return (file_size + 10000) * 2


def reset_vector(start_addr: int, fdt_addr: int) -> list[int]:
    """The ten 32-bit words riscv_setup_rom_reset_vec puts at the boot ROM's base (RV64):
    a0 = mhartid, a1 = the device tree, a2 = the fw_dynamic_info after these words,
    then a jump to ``start_addr``."""
    return [
        0x00000297,  # 1: auipc t0, %pcrel_hi(fw_dyn)
        0x02828613,  #    addi  a2, t0, %pcrel_lo(1b)
        0xF1402573,  #    csrr  a0, mhartid
        0x0202B583,  #    ld    a1, 32(t0)
        0x0182B283,  #    ld    t0, 24(t0)
        0x00028067,  #    jr    t0
        start_addr & 0xFFFF_FFFF, start_addr >> 32,  # start: .dword
        fdt_addr & 0xFFFF_FFFF, fdt_addr >> 32,  # fdt_laddr: .dword
    ]


def fw_dynamic_info(next_addr: int, boot_hart: int = 0) -> bytes:
    """OpenSBI's struct fw_dynamic_info (RV64: six 64-bit fields) as QEMU fills it:
    the next stage runs in S-mode at ``next_addr``."""
    return struct.pack("<6Q", FW_DYNAMIC_INFO_MAGIC, FW_DYNAMIC_INFO_VERSION, next_addr,
                       FW_DYNAMIC_INFO_NEXT_MODE_S, 0, boot_hart)


def add_boot_rom(images: BootImages, rom_base: int, start_addr: int, fdt_addr: int,
                 kernel_entry: int) -> None:
    """riscv_setup_rom_reset_vec: the reset vector, then fw_dynamic_info after it."""
    words = reset_vector(start_addr, fdt_addr)
    images.add("mrom.reset", rom_base, struct.pack(f"<{len(words)}I", *words))
    images.add("mrom.finfo", rom_base + 4 * len(words), fw_dynamic_info(kernel_entry))
