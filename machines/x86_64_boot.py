"""Direct Linux boot on x86-64: the 64-bit boot protocol (Documentation/arch/x86/boot.rst).

``-kernel bzImage`` is loaded as a boot loader would: the protected-mode part at 1 MiB,
a zero page (``struct boot_params``) built from the image's setup header with the
command line, the initrd and an e820 map, and the CPU entered in long mode at
``startup_64`` (load address + 0x200) with ``rsi`` = the zero page, ``CS`` = 0x10 and
data segments 0x18 from a flat GDT, and identity-mapped page tables for the first
4 GiB. This is what Firecracker and QEMU's PVH path do; QEMU's microvm itself boots
through qboot and fw_cfg, which llvmtcg does not have.

An ELF kernel with a PVH note (an uncompressed ``vmlinux`` built with CONFIG_PVH) is
booted as QEMU boots one: :func:`plan_pvh_boot` (32-bit entry, ``hvm_start_info``).

Everything here is pure: :func:`plan_linux_boot` returns the bytes to place and the
register state to start with; the machine writes them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# Guest-physical layout of the boot data (below the EBDA, as Firecracker places it).
GDT_ADDR = 0x500
ZERO_PAGE_ADDR = 0x7000
BOOT_STACK = 0x8FF0
PML4_ADDR = 0x9000  # then the PDPT at +0x1000 and four page directories after it
CMDLINE_ADDR = 0x20000
KERNEL_LOAD_ADDR = 0x100000
EBDA_START = 0x9FC00  # RAM below 1 MiB ends here in the e820 map
HIGH_MEMORY = 0x100000

# struct boot_params / setup_header offsets (boot.rst, "THE REAL-MODE KERNEL HEADER"
# and zero-page.rst).
EXT_RAMDISK_IMAGE, EXT_RAMDISK_SIZE, EXT_CMD_LINE_PTR = 0x0C0, 0x0C4, 0x0C8
E820_ENTRIES, E820_TABLE, E820_MAX = 0x1E8, 0x2D0, 128
SETUP_SECTS, VID_MODE, BOOT_FLAG = 0x1F1, 0x1FA, 0x1FE
HEADER_MAGIC, VERSION, TYPE_OF_LOADER, LOADFLAGS = 0x202, 0x206, 0x210, 0x211
RAMDISK_IMAGE, RAMDISK_SIZE, HEAP_END_PTR = 0x218, 0x21C, 0x224
CMD_LINE_PTR, INITRD_ADDR_MAX, XLOADFLAGS, CMDLINE_SIZE = 0x228, 0x22C, 0x236, 0x238
HDRS = 0x53726448  # "HdrS"
LOADED_HIGH, CAN_USE_HEAP = 0x01, 0x80
XLF_KERNEL_64 = 0x01
MIN_VERSION = 0x020C  # xloadflags, hence a declared 64-bit entry point

E820_RAM, E820_RESERVED = 1, 2

# The flat GDT: null, null, __BOOT_CS (64-bit code), __BOOT_DS (data).
BOOT_CS, BOOT_DS = 0x10, 0x18
GDT = (0, 0, 0x00AF9B000000FFFF, 0x00CF93000000FFFF)

CR0_PE, CR0_ET, CR0_PG = 1 << 0, 1 << 4, 1 << 31
CR4_PAE = 1 << 5
EFER_LME, EFER_LMA = 1 << 8, 1 << 10


class BootError(Exception):
    """A kernel, initrd or command line that cannot be booted; one line."""


@dataclass(frozen=True, slots=True)
class E820Entry:
    addr: int
    size: int
    type: int

    def pack(self) -> bytes:
        return struct.pack("<QQI", self.addr, self.size, self.type)


@dataclass(frozen=True, slots=True)
class BootImage:
    """Bytes to copy to guest-physical ``addr``."""

    name: str
    addr: int
    data: bytes


@dataclass(frozen=True, slots=True)
class KernelEntry:
    """The vCPU state at a kernel's entry: 64-bit (the boot protocol's startup_64,
    paging on) or 32-bit protected mode with paging off (PVH)."""

    rip: int
    long_mode: bool = True
    rsi: int = 0
    rbx: int = 0
    rsp: int = 0
    cr0: int = CR0_PE | CR0_ET | CR0_PG
    cr3: int = PML4_ADDR
    cr4: int = CR4_PAE
    efer: int = EFER_LME | EFER_LMA
    gdt_base: int = GDT_ADDR
    gdt_limit: int = len(GDT) * 8 - 1
    code_selector: int = BOOT_CS
    data_selector: int = BOOT_DS


@dataclass(frozen=True, slots=True)
class LinuxBoot:
    images: tuple[BootImage, ...]
    entry: KernelEntry
    e820: tuple[E820Entry, ...]


def e820_map(below_4g: int, above_4g: int) -> list[E820Entry]:
    """RAM below the EBDA, RAM from 1 MiB to the end of low memory, RAM above 4 GiB."""
    entries = [E820Entry(0, min(below_4g, EBDA_START), E820_RAM)]
    if below_4g > HIGH_MEMORY:
        entries.append(E820Entry(HIGH_MEMORY, below_4g - HIGH_MEMORY, E820_RAM))
    if above_4g:
        entries.append(E820Entry(1 << 32, above_4g, E820_RAM))
    return entries


def page_tables() -> bytes:
    """PML4 → one PDPT → four page directories of 2 MiB pages: 4 GiB identity-mapped
    (present, writable; the kernel builds its own tables at once)."""
    pdpt = PML4_ADDR + 0x1000
    pml4 = struct.pack("<Q", pdpt | 0x3).ljust(0x1000, b"\0")
    directories = [pdpt + 0x1000 * (1 + i) for i in range(4)]
    pdpt_page = b"".join(struct.pack("<Q", pd | 0x3) for pd in directories).ljust(0x1000, b"\0")
    pds = b"".join(struct.pack("<Q", (i << 21) | 0x83) for i in range(4 * 512))  # PS|RW|P
    return pml4 + pdpt_page + pds


def plan_linux_boot(kernel: bytes, cmdline: str, initrd: bytes | None, *, below_4g: int,
                    above_4g: int = 0) -> LinuxBoot:
    """What to load for ``kernel`` (a bzImage) and how to enter it."""
    if len(kernel) < 0x250 or struct.unpack_from("<I", kernel, HEADER_MAGIC)[0] != HDRS:
        raise BootError("the kernel is not a bzImage (no 'HdrS' setup header); "
                        "llvmtcg's microvm boots bzImages with the 64-bit boot protocol")
    version = struct.unpack_from("<H", kernel, VERSION)[0]
    if version < MIN_VERSION:
        raise BootError(f"boot protocol {version >> 8}.{version & 0xFF:02d} is too old "
                        "(2.12 or newer is needed for the 64-bit entry)")
    if not kernel[XLOADFLAGS] & XLF_KERNEL_64:
        raise BootError("the kernel has no 64-bit entry point (xloadflags.XLF_KERNEL_64)")
    setup_sects = kernel[SETUP_SECTS] or 4
    setup_size = (setup_sects + 1) * 512
    if not kernel[LOADFLAGS] & LOADED_HIGH or len(kernel) <= setup_size:
        raise BootError("the kernel is not a bzImage loaded high (loadflags.LOADED_HIGH)")
    payload = kernel[setup_size:]
    if KERNEL_LOAD_ADDR + len(payload) > below_4g:
        raise BootError(f"the kernel ({len(payload)} bytes at 1 MiB) does not fit in RAM")

    cmdline_bytes = cmdline.encode() + b"\0"
    cmdline_max = struct.unpack_from("<I", kernel, CMDLINE_SIZE)[0]
    if len(cmdline_bytes) - 1 > cmdline_max:
        raise BootError(f"the kernel command line is {len(cmdline_bytes) - 1} bytes; "
                        f"this kernel takes at most {cmdline_max}")

    zero_page = bytearray(0x1000)
    header_end = 0x202 + kernel[0x201]  # the header's size is in its own jump
    zero_page[SETUP_SECTS:header_end] = kernel[SETUP_SECTS:header_end]
    struct.pack_into("<H", zero_page, VID_MODE, 0xFFFF)  # "normal"
    zero_page[TYPE_OF_LOADER] = 0xFF  # no assigned loader id
    zero_page[LOADFLAGS] |= CAN_USE_HEAP
    struct.pack_into("<H", zero_page, HEAP_END_PTR, 0xFE00)
    struct.pack_into("<I", zero_page, CMD_LINE_PTR, CMDLINE_ADDR)
    struct.pack_into("<I", zero_page, EXT_CMD_LINE_PTR, CMDLINE_ADDR >> 32)

    images = [BootImage("kernel", KERNEL_LOAD_ADDR, payload),
              BootImage("cmdline", CMDLINE_ADDR, cmdline_bytes)]
    if initrd:
        limit = min(below_4g, struct.unpack_from("<I", kernel, INITRD_ADDR_MAX)[0] + 1)
        start = (limit - len(initrd)) & ~0xFFF
        if start < KERNEL_LOAD_ADDR + len(payload):
            raise BootError(f"the initrd ({len(initrd)} bytes) does not fit in RAM above "
                            "the kernel")
        struct.pack_into("<I", zero_page, RAMDISK_IMAGE, start & 0xFFFFFFFF)
        struct.pack_into("<I", zero_page, RAMDISK_SIZE, len(initrd) & 0xFFFFFFFF)
        struct.pack_into("<I", zero_page, EXT_RAMDISK_IMAGE, start >> 32)
        struct.pack_into("<I", zero_page, EXT_RAMDISK_SIZE, len(initrd) >> 32)
        images.append(BootImage("initrd", start, initrd))

    e820 = e820_map(below_4g, above_4g)
    zero_page[E820_ENTRIES] = len(e820)
    for i, entry in enumerate(e820):
        offset = E820_TABLE + 20 * i
        zero_page[offset:offset + 20] = entry.pack()

    images += [BootImage("zero page", ZERO_PAGE_ADDR, bytes(zero_page)),
               BootImage("gdt", GDT_ADDR, struct.pack(f"<{len(GDT)}Q", *GDT)),
               BootImage("page tables", PML4_ADDR, page_tables())]
    entry = KernelEntry(rip=KERNEL_LOAD_ADDR + 0x200, rsi=ZERO_PAGE_ADDR, rsp=BOOT_STACK)
    return LinuxBoot(tuple(images), entry, tuple(e820))


# -- PVH: an ELF kernel with XEN_ELFNOTE_PHYS32_ENTRY (xen/include/public/elfnote.h,
# arch/x86/include/asm/xen/hvm/start_info.h) -------------------------------------------
PVH_NOTE_NAME = b"Xen"
XEN_ELFNOTE_PHYS32_ENTRY = 18
START_INFO_MAGIC = 0x336EC578  # "xEn3" with the top bit set
START_INFO_ADDR = 0x6000  # struct hvm_start_info (56 bytes), then the memory map
MEMMAP_ADDR = START_INFO_ADDR + 0x40
MODLIST_ADDR = START_INFO_ADDR + 0x800
PT_LOAD, PT_NOTE = 1, 4
# A flat GDT for 32-bit entry: null, null, code32 (0x10), data (0x18).
GDT32 = (0, 0, 0x00CF9B000000FFFF, 0x00CF93000000FFFF)


def is_elf(kernel: bytes) -> bool:
    return kernel[:4] == b"\x7fELF"


def _segments(elf: bytes) -> list[tuple[int, int, int, int, int]]:
    """(type, offset, paddr, filesz, memsz) of each program header."""
    if len(elf) < 64 or elf[5] != 1:
        raise BootError("the kernel is not a little-endian ELF file")
    is64 = elf[4] == 2
    if is64:
        phoff, = struct.unpack_from("<Q", elf, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    else:
        phoff, = struct.unpack_from("<I", elf, 0x1C)
        phentsize, phnum = struct.unpack_from("<HH", elf, 0x2A)
    segments = []
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + phentsize > len(elf):
            raise BootError("the kernel's ELF program headers are truncated")
        if is64:
            p_type, _, offset, _, paddr, filesz, memsz = struct.unpack_from("<IIQQQQQ", elf, at)
        else:
            p_type, offset, _, paddr, filesz, memsz = struct.unpack_from("<IIIIII", elf, at)
        if offset + filesz > len(elf):
            raise BootError("an ELF segment of the kernel lies past the end of the file")
        segments.append((p_type, offset, paddr, filesz, memsz))
    return segments


def pvh_entry_point(elf: bytes) -> int | None:
    """The physical 32-bit entry of XEN_ELFNOTE_PHYS32_ENTRY, or None."""
    for p_type, offset, _, filesz, _ in _segments(elf):
        if p_type != PT_NOTE:
            continue
        at, end = offset, offset + filesz
        while at + 12 <= end:
            namesz, descsz, note_type = struct.unpack_from("<III", elf, at)
            name = elf[at + 12:at + 12 + namesz].rstrip(b"\0")
            desc_at = at + 12 + (namesz + 3) // 4 * 4
            if name == PVH_NOTE_NAME and note_type == XEN_ELFNOTE_PHYS32_ENTRY:
                size = 8 if descsz >= 8 else 4
                return int.from_bytes(elf[desc_at:desc_at + size], "little")
            at = desc_at + (descsz + 3) // 4 * 4
    return None


def plan_pvh_boot(elf: bytes, cmdline: str, initrd: bytes | None, *, below_4g: int,
                  above_4g: int = 0) -> LinuxBoot:
    """What to load for an ELF kernel with a PVH entry note (an uncompressed vmlinux
    with CONFIG_PVH, as QEMU boots one) and how to enter it: segments at their physical
    addresses, ``hvm_start_info`` (version 1: command line, memory map, the initrd as
    module 0) in ``ebx``, 32-bit protected mode, paging off."""
    entry_point = pvh_entry_point(elf)
    if entry_point is None:
        raise BootError("the ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
                        "build it with CONFIG_PVH or boot its bzImage")
    images: list[BootImage] = []
    top = 0
    for p_type, offset, paddr, filesz, memsz in _segments(elf):
        if p_type != PT_LOAD or memsz == 0:
            continue
        if paddr + memsz > below_4g:
            raise BootError(f"the kernel's segment at {paddr:#x} ({memsz} bytes) does not "
                            "fit in RAM")
        data = elf[offset:offset + filesz] + bytes(memsz - filesz)
        images.append(BootImage(f"segment@{paddr:#x}", paddr, data))
        top = max(top, paddr + memsz)
    cmdline_bytes = cmdline.encode() + b"\0"
    images.append(BootImage("cmdline", CMDLINE_ADDR, cmdline_bytes))
    e820 = e820_map(below_4g, above_4g)
    memmap = b"".join(struct.pack("<QQII", e.addr, e.size, e.type, 0) for e in e820)
    modules = 0
    if initrd:
        start = (below_4g - len(initrd)) & ~0xFFF
        if start < top:
            raise BootError(f"the initrd ({len(initrd)} bytes) does not fit in RAM above "
                            "the kernel")
        images.append(BootImage("initrd", start, initrd))
        images.append(BootImage("modlist", MODLIST_ADDR,
                                struct.pack("<QQQQ", start, len(initrd), 0, 0)))
        modules = 1
    start_info = struct.pack("<IIIIQQQQII", START_INFO_MAGIC, 1, 0, modules,
                             MODLIST_ADDR if modules else 0, CMDLINE_ADDR, 0, MEMMAP_ADDR,
                             len(e820), 0)
    images += [BootImage("hvm_start_info", START_INFO_ADDR, start_info),
               BootImage("memmap", MEMMAP_ADDR, memmap),
               BootImage("gdt", GDT_ADDR, struct.pack(f"<{len(GDT32)}Q", *GDT32))]
    entry = KernelEntry(rip=entry_point, long_mode=False, rbx=START_INFO_ADDR,
                        cr0=CR0_PE | CR0_ET, cr3=0, cr4=0, efer=0,
                        gdt_limit=len(GDT32) * 8 - 1)
    return LinuxBoot(tuple(images), entry, tuple(e820))
