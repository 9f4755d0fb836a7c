"""ELF executables: parse and validate the ELF header and program headers, then load
the PT_LOAD segments into a guest address space.

Only the headers matter for loading, and they are read with ``struct`` and checked
against the file's size. (lief, the project's ELF library, takes 0.7 s to import, which
every process and every execve would pay; tests use it as the oracle for this parser.)

Everything a user can get wrong (a missing file, a truncated or foreign ELF, bad program
headers) raises :class:`ElfError` with one line saying what is wrong.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

from llvmtcg.arch import ELFCLASS64, ELFDATA2LSB, UnknownArchError, arch_by_elf_machine
from llvmtcg.ir.cpu_layout import PAGE_SIZE
from llvmtcg.runtime.softmmu import GuestMemory, Perm, page_ceil, page_floor
from llvmtcg.user.arch import user_arch_names

ET_EXEC, ET_DYN = 2, 3
PT_LOAD, PT_INTERP, PT_PHDR, PT_GNU_STACK = 1, 3, 6, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
PHDR_SIZE = 56
MAX_PHDRS_BYTES = 65536  # Linux refuses larger program header tables
_MASK64 = (1 << 64) - 1

# Machines we can name in an error message; which ones run is the architecture
# registry's business (llvmtcg.arch) and user mode's (llvmtcg.user.arch).
MACHINE_NAMES = {3: "i386", 8: "mips", 20: "ppc", 21: "ppc64", 22: "s390x", 40: "arm",
                 62: "x86-64", 183: "aarch64", 243: "riscv64", 258: "loongarch64"}
_ET_NAMES = {0: "no file type", 1: "a relocatable object", 4: "a core dump"}


class ElfError(Exception):
    """A program that cannot be run; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Segment:
    vaddr: int
    memsz: int
    offset: int
    filesz: int
    perms: int  # Perm bits

    @property
    def end(self) -> int:
        return self.vaddr + self.memsz


@dataclass(frozen=True, slots=True)
class ElfImage:
    """A validated ELF executable (or interpreter), not yet loaded."""

    path: str
    data: bytes
    arch: str  # the guest architecture's registry name
    is_dyn: bool
    entry: int
    phoff: int
    phnum: int
    loads: tuple[Segment, ...]
    phdr_vaddr: int | None  # PT_PHDR, if present
    interp: str | None
    flags: int  # e_flags (RVC, float ABI)

    @property
    def low(self) -> int:
        return page_floor(self.loads[0].vaddr)

    @property
    def high(self) -> int:
        return page_ceil(max(s.end for s in self.loads))


@dataclass(frozen=True, slots=True)
class LoadedImage:
    image: ElfImage
    bias: int
    entry: int
    phdr: int  # guest address of the program headers (AT_PHDR)
    end: int  # page-aligned end of the highest segment (where brk starts)


def machine_of(data: bytes) -> int | None:
    """e_machine of an ELF image's first bytes, or None if it is not a 64-bit LSB ELF."""
    if len(data) < 20 or data[:4] != b"\x7fELF" or data[4] != ELFCLASS64 \
            or data[5] != ELFDATA2LSB:
        return None
    return struct.unpack_from("<H", data, 18)[0]


def guest_arch_name(e_machine: int) -> str | None:
    """The architecture user mode runs ELF programs of machine ``e_machine`` (64-bit,
    little-endian) as, or None."""
    try:
        name = arch_by_elf_machine(e_machine, ELFCLASS64, ELFDATA2LSB).name
    except UnknownArchError:
        return None
    return name if name in user_arch_names() else None


def is_guest_elf(data: bytes) -> bool:
    """Do these first bytes of a file start an ELF program user mode runs?"""
    machine = machine_of(data)
    return machine is not None and guest_arch_name(machine) is not None


def read_elf(path: str, what: str = "program") -> ElfImage:
    """Read and validate ``path``; raises ElfError naming the problem."""
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                # (Linux's open_exec: EACCES. Reading /dev/zero would never end.)
                raise ElfError(f"{path}: cannot open {what}: not a regular file")
            data = f.read()
    except IsADirectoryError:
        raise ElfError(f"{path}: is a directory") from None
    except ValueError:  # a NUL in the path
        raise ElfError(f"{path!r}: cannot open {what}: invalid path") from None
    except OSError as e:
        raise ElfError(f"{path}: cannot open {what}: {e.strerror}") from None
    return parse_elf(data, path)


def parse_elf(data: bytes, path: str = "<memory>") -> ElfImage:
    """Validate an ELF image in memory (see :func:`read_elf`): a 64-bit little-endian
    executable of an architecture user mode runs."""
    def fail(msg: str) -> ElfError:
        return ElfError(f"{path}: {msg}")

    if len(data) < 4 or data[:4] != b"\x7fELF":
        raise fail("not an ELF file")
    if len(data) < 64:
        raise fail("truncated ELF header")
    runs = f"llvmtcg-user runs {', '.join(user_arch_names())} programs"
    if data[4] != ELFCLASS64:
        raise fail(f"32-bit ELF files are not supported ({runs})")
    if data[5] != ELFDATA2LSB:
        raise fail("big-endian ELF files are not supported")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    arch = guest_arch_name(e_machine)
    if arch is None:
        name = MACHINE_NAMES.get(e_machine, f"machine {e_machine}")
        raise fail(f"wrong architecture: a {name} ELF ({runs})")
    if e_type not in (ET_EXEC, ET_DYN):
        raise fail(f"not an executable: {_ET_NAMES.get(e_type, f'ELF type {e_type}')}")
    e_entry, e_phoff = struct.unpack_from("<QQ", data, 24)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    if e_phentsize != PHDR_SIZE:
        raise fail(f"bad program header size {e_phentsize} (expected {PHDR_SIZE})")
    if e_phnum == 0 or e_phnum * PHDR_SIZE > MAX_PHDRS_BYTES:
        raise fail(f"bad program header count {e_phnum}")
    if e_phoff + e_phnum * PHDR_SIZE > len(data):
        raise fail("program headers extend past the end of the file (truncated?)")

    loads: list[Segment] = []
    interp = None
    phdr_vaddr = None
    for index in range(e_phnum):
        kind, flags, offset, vaddr, _paddr, filesz, memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, e_phoff + index * PHDR_SIZE)
        if kind in (PT_LOAD, PT_INTERP) and offset + filesz > len(data):
            raise fail(f"program header {index} extends past the end of the file (truncated?)")
        if kind == PT_LOAD:
            if filesz > memsz:
                raise fail(f"program header {index}: file size {filesz:#x} exceeds "
                           f"memory size {memsz:#x}")
            if (vaddr - offset) % PAGE_SIZE:
                raise fail(f"program header {index}: address {vaddr:#x} and offset "
                           f"{offset:#x} differ modulo the page size")
            if vaddr + memsz >= 1 << 64:
                raise fail(f"program header {index}: segment wraps around the address space")
            if loads and vaddr < loads[-1].vaddr:
                raise fail(f"program header {index}: PT_LOAD segments are not in address order")
            # (Linux maps a writable segment readable too: no write-only pages.)
            perms = ((Perm.R if flags & (PF_R | PF_W) else 0)
                     | (Perm.W if flags & PF_W else 0) | (Perm.X if flags & PF_X else 0))
            if memsz:
                loads.append(Segment(vaddr, memsz, offset, filesz, perms))
        elif kind == PT_INTERP:
            raw = data[offset:offset + filesz]
            if not raw.endswith(b"\0") or len(raw) < 2:
                raise fail("malformed PT_INTERP (interpreter path is not NUL-terminated)")
            if interp is not None:
                raise fail("more than one PT_INTERP")
            # (Linux opens the string up to its first NUL: an embedded one ends it.)
            interp = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if not interp:
                raise fail("malformed PT_INTERP (empty interpreter path)")
        elif kind == PT_PHDR:
            phdr_vaddr = vaddr
    if not loads:
        raise fail("no loadable segments")
    return ElfImage(path=path, data=data, arch=arch,
                    is_dyn=e_type == ET_DYN, entry=e_entry, phoff=e_phoff,
                    phnum=e_phnum, loads=tuple(loads), phdr_vaddr=phdr_vaddr, interp=interp,
                    flags=struct.unpack_from("<I", data, 48)[0])


def _file_pages(image: ElfImage, seg: Segment, bias: int) -> tuple[int, bytes]:
    """(guest address, bytes) a segment's file mapping shows, as Linux's mmap of the
    file pages does: the file's bytes from the start of the segment's first page, and
    past p_filesz to the end of its last page — unless the segment has a bss, whose
    part of that page Linux clears (padzero)."""
    data = image.data
    address = seg.vaddr + bias
    before = address & (PAGE_SIZE - 1)
    end = seg.offset + seg.filesz
    if seg.memsz == seg.filesz:
        end += page_ceil(address + seg.filesz) - (address + seg.filesz)
    return address - before, data[seg.offset - before:min(end, len(data))]


def load_segments(memory: GuestMemory, image: ElfImage, bias: int) -> LoadedImage:
    """Map and fill the PT_LOAD segments of ``image`` at ``bias``.

    Segments sharing a page get the union of their permissions (as with Linux's
    page-granular mappings); the pages show the file as Linux maps it (see
    :func:`_file_pages`), and the bss is zero.
    """
    mapped_end = 0
    for seg in image.loads:
        start, end = page_floor(seg.vaddr + bias), page_ceil(seg.end + bias)
        if seg.end + bias > memory.size or seg.vaddr + bias < 0:  # (before any wrap)
            raise ElfError(f"{image.path}: segment at {seg.vaddr + bias:#x} lies outside the "
                           f"guest address space")
        if start < mapped_end:  # shares its first page(s) with the previous segment
            shared_end = min(mapped_end, end)
            for page in range(start, shared_end, PAGE_SIZE):
                region = memory.region(page)
                memory.protect(page, PAGE_SIZE, (region.perms if region else 0) | seg.perms)
            start = shared_end
        if start < end:
            try:
                memory.map(start, end - start, seg.perms)
            except OSError as e:
                raise ElfError(f"{image.path}: cannot map segment at {seg.vaddr + bias:#x} "
                               f"({seg.memsz:#x} bytes): {e.strerror}") from None
        mapped_end = max(mapped_end, end)
        if seg.filesz:
            memory.write(*_file_pages(image, seg, bias), check=None)
    if image.phdr_vaddr is not None:
        phdr = image.phdr_vaddr + bias
    else:
        phdr = 0
        for seg in image.loads:
            if seg.offset <= image.phoff < seg.offset + seg.filesz:
                phdr = seg.vaddr + (image.phoff - seg.offset) + bias
                break
    # (Addresses wrap as Linux's unsigned longs do: a PIE whose entry lies past the end
    # of the address space starts there and faults.)
    return LoadedImage(image=image, bias=bias, entry=(image.entry + bias) & _MASK64,
                       phdr=phdr & _MASK64,
                       end=page_ceil(max(s.end for s in image.loads) + bias))
