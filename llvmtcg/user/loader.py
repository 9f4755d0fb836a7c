"""Load a program (and its ELF interpreter) and build the initial stack as Linux does.

Stack, from the top down (fs/binfmt_elf.c ``create_elf_tables``): a null word, the
exec file name, the environment strings, the argument strings; then, 16-byte aligned,
the platform string and 16 random bytes; then argc, argv[], NULL, envp[], NULL and the
auxiliary vector, with the stack pointer 16-byte aligned (the RISC-V psABI).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from llvmtcg.runtime.softmmu import GuestMemory
from llvmtcg.user.elf import ElfError, ElfImage, LoadedImage, load_segments, read_elf
from llvmtcg.user.mm import AddressSpace

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, \
    7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_EXECFN = 23, 25, 31
AT_NAMES = {AT_NULL: "AT_NULL", AT_PHDR: "AT_PHDR", AT_PHENT: "AT_PHENT", AT_PHNUM: "AT_PHNUM",
            AT_PAGESZ: "AT_PAGESZ", AT_BASE: "AT_BASE", AT_FLAGS: "AT_FLAGS",
            AT_ENTRY: "AT_ENTRY", AT_UID: "AT_UID", AT_EUID: "AT_EUID", AT_GID: "AT_GID",
            AT_EGID: "AT_EGID", AT_PLATFORM: "AT_PLATFORM", AT_HWCAP: "AT_HWCAP",
            AT_CLKTCK: "AT_CLKTCK", AT_SECURE: "AT_SECURE", AT_RANDOM: "AT_RANDOM",
            AT_EXECFN: "AT_EXECFN"}


@dataclass(frozen=True, slots=True)
class Program:
    """What the loader set up: where to start and what the auxv said."""

    main: LoadedImage
    interp: LoadedImage | None
    pc: int  # the interpreter's entry, or the program's
    sp: int
    auxv: tuple[tuple[int, int], ...]
    execfn: str


def sysroot_path(path: str, sysroot: str | None) -> str:
    """QEMU's -L rule: an absolute path that exists under the sysroot is taken from there."""
    if sysroot and path.startswith("/"):
        candidate = os.path.join(sysroot, path.lstrip("/"))
        if os.path.lexists(candidate):
            return candidate
    return path


def load_program(space: AddressSpace, image: ElfImage, argv: list[bytes], envp: list[bytes],
                 execfn: str, hwcap: int, platform: str, sysroot: str | None = None
                 ) -> Program:
    """Load ``image`` (and its PT_INTERP from ``sysroot``), map the stack and build it;
    ``hwcap`` and ``platform`` are the architecture's AT_HWCAP and AT_PLATFORM.

    Raises:
        ElfError: the interpreter is missing or malformed, or a segment does not fit.
    """
    memory = space.memory
    bias = space.pie_base - image.low if image.is_dyn else 0
    main = load_segments(memory, image, bias)
    space.set_brk_start(main.end)
    interp = None
    if image.interp is not None:
        interp_path = sysroot_path(image.interp, sysroot)
        interp_image = read_elf(interp_path, "ELF interpreter")
        if interp_image.arch != image.arch:
            raise ElfError(f"{interp_path}: interpreter is {interp_image.arch}, "
                           f"program is {image.arch}")
        if not interp_image.is_dyn:
            base = 0
        else:
            base = space.find_free(interp_image.high - interp_image.low)
            if base is None:
                raise ElfError(f"{interp_path}: no room for the ELF interpreter")
        interp = load_segments(memory, interp_image, base - interp_image.low if base else 0)
    space.map_stack()
    auxv = [
        (AT_HWCAP, hwcap),
        (AT_PAGESZ, 4096),
        (AT_CLKTCK, os.sysconf("SC_CLK_TCK")),
        (AT_PHDR, main.phdr),
        (AT_PHENT, 56),
        (AT_PHNUM, image.phnum),
        (AT_BASE, interp.bias if interp else 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, main.entry),
        (AT_UID, os.getuid()),
        (AT_EUID, os.geteuid()),
        (AT_GID, os.getgid()),
        (AT_EGID, os.getegid()),
        (AT_SECURE, 0),
        (AT_RANDOM, 0),  # filled in by build_stack
        (AT_EXECFN, 0),
        (AT_PLATFORM, 0),
        (AT_NULL, 0),
    ]
    sp, auxv = build_stack(memory, space.stack_top, argv, envp, execfn.encode(), auxv,
                           platform.encode(), os.urandom(16))
    pc = interp.entry if interp else main.entry
    return Program(main, interp, pc, sp, tuple(auxv), execfn)


def build_stack(memory: GuestMemory, top: int, argv: list[bytes], envp: list[bytes],
                execfn: bytes, auxv: list[tuple[int, int]], platform: bytes,
                random: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Write the initial stack below ``top``; returns the stack pointer and the final
    auxv (with AT_EXECFN, AT_PLATFORM and AT_RANDOM pointing at their strings)."""
    p = top - 8  # Linux leaves a null word at the very top
    memory.write(p, b"\0" * 8, check=None)

    def push(data: bytes) -> int:
        nonlocal p
        p -= len(data)
        memory.write(p, data, check=None)
        return p

    execfn_addr = push(execfn + b"\0")
    env_addrs = [push(s + b"\0") for s in reversed(envp)][::-1]
    arg_addrs = [push(s + b"\0") for s in reversed(argv)][::-1]
    p &= ~15
    platform_addr = push(platform + b"\0")
    random_addr = push(random)
    values = {AT_EXECFN: execfn_addr, AT_PLATFORM: platform_addr, AT_RANDOM: random_addr}
    auxv = [(key, values.get(key, value)) for key, value in auxv]
    words = [len(argv), *arg_addrs, 0, *env_addrs, 0]
    for key, value in auxv:
        words += [key, value]
    sp = (p - 8 * len(words)) & ~15
    memory.write(sp, struct.pack(f"<{len(words)}Q", *words), check=None)
    return sp, auxv
