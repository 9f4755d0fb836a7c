"""The loader and the address-space policy, without running guest code."""

from __future__ import annotations

import errno
import struct

import pytest

from llvmtcg.runtime.softmmu import GuestMemory, Perm
from llvmtcg.user.elf import ElfError, parse_elf
from llvmtcg.user.loader import AT_EXECFN, AT_NULL, AT_PAGESZ, AT_PLATFORM, AT_RANDOM, build_stack
from llvmtcg.user.mm import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    PROT_READ,
    PROT_WRITE,
    AddressSpace,
)
from llvmtcg.user.syscalls.strace import open_flags


@pytest.fixture
def space():
    memory = GuestMemory(1 << 32)
    yield AddressSpace(memory)
    memory.close()


def _cstr(memory, addr):
    out = b""
    while (c := memory.read(addr, 1)) != b"\0":
        out += c
        addr += 1
    return out


def test_initial_stack_layout(space):
    memory = space.memory
    low, top = space.map_stack()
    argv, envp = [b"prog", b"a b", b""], [b"X=1", b"EMPTY="]
    auxv = [(AT_PAGESZ, 4096), (AT_RANDOM, 0), (AT_EXECFN, 0), (AT_PLATFORM, 0), (AT_NULL, 0)]
    sp, final = build_stack(memory, top, argv, envp, b"/bin/prog", auxv, b"riscv64",
                            bytes(range(16)))
    assert sp % 16 == 0 and low < sp < top
    words = struct.unpack(f"<{3 + 1 + 1 + 2 + 1 + 10}Q", memory.read(sp, 8 * 18))
    assert words[0] == 3
    assert [_cstr(memory, p) for p in words[1:4]] == argv and words[4] == 0
    assert [_cstr(memory, p) for p in words[5:7]] == envp and words[7] == 0
    pairs = list(zip(words[8::2], words[9::2], strict=True))
    assert pairs == final
    values = dict(final)
    assert memory.read(values[AT_RANDOM], 16) == bytes(range(16))
    assert _cstr(memory, values[AT_EXECFN]) == b"/bin/prog"
    assert _cstr(memory, values[AT_PLATFORM]) == b"riscv64"
    # Strings in Linux's order: argv, then envp, then the file name, under a null word.
    assert words[1] < words[2] < words[3] < words[5] < words[6] < values[AT_EXECFN]
    assert memory.read(top - 8, 8) == b"\0" * 8
    assert values[AT_EXECFN] + len(b"/bin/prog") + 1 == top - 8


def test_brk_grows_shrinks_and_refuses_overlap(space):
    space.set_brk_start(0x10_0000)
    assert space.do_brk(0) == 0x10_0000
    assert space.do_brk(0x10_2345) == 0x10_2345
    space.memory.write(0x10_2000, b"x")
    assert space.do_brk(0x10_1000) == 0x10_1000
    assert space.memory.region(0x10_2000) is None
    space.memory.map(0x20_0000, 0x1000, Perm.RW)
    assert space.do_brk(0x20_0800) == 0x10_1000  # would overlap a mapping: unchanged


def test_mmap_placement_and_errors(space):
    anon = MAP_PRIVATE | MAP_ANONYMOUS
    a = space.mmap(0, 0x3000, PROT_READ | PROT_WRITE, anon, -1, 0)
    b = space.mmap(0, 0x1000, PROT_READ, anon, -1, 0)
    assert a % 0x1000 == 0 and b == a - 0x1000  # top-down below mmap_base
    assert a + 0x3000 <= space.mmap_base
    assert space.mmap(0x4000_0000, 0x1000, PROT_READ, anon, -1, 0) == 0x4000_0000  # hint
    assert space.mmap(a, 0x1000, PROT_READ, anon | MAP_FIXED, -1, 0) == a
    assert space.memory.region(a).perms == Perm.R
    assert space.mmap(0, 0, PROT_READ, anon, -1, 0) == -errno.EINVAL
    assert space.mmap(0x1001, 0x1000, PROT_READ, anon | MAP_FIXED, -1, 0) == -errno.EINVAL
    assert space.mmap(0, 0x1000, PROT_READ, MAP_ANONYMOUS, -1, 0) == -errno.EINVAL
    assert space.mprotect(0x7000_0000, 0x1000, PROT_READ) == -errno.ENOMEM
    assert space.munmap(a + 1, 0x1000) == -errno.EINVAL


def test_mremap_moves_contents(space):
    anon = MAP_PRIVATE | MAP_ANONYMOUS
    a = space.mmap(0, 0x2000, PROT_READ | PROT_WRITE, anon, -1, 0)
    space.memory.write(a, b"keep me")
    space.mmap(a + 0x2000, 0x1000, PROT_READ, anon | MAP_FIXED, -1, 0)  # blocks growth
    assert space.mremap(a, 0x2000, 0x8000, 0, 0) == -errno.ENOMEM
    moved = space.mremap(a, 0x2000, 0x8000, 1, 0)  # MREMAP_MAYMOVE
    assert moved > 0 and moved != a
    assert space.memory.read(moved, 7) == b"keep me"
    assert space.memory.region(a) is None


def test_find_free_top_down():
    memory = GuestMemory(1 << 24)
    memory.map(0xF0_0000, 0x10_0000, Perm.RW)
    assert memory.find_free(0x2000, 0x1000, 1 << 24) == 0xEF_E000
    assert memory.is_free(0xEF_E000, 0x2000) and not memory.is_free(0xEF_F000, 0x2000)
    assert memory.find_free(1 << 24, 0, 1 << 24) is None
    memory.close()


def _minimal_elf(**overrides) -> bytes:
    fields = {"machine": 243, "type": 2, "phentsize": 56, "phnum": 1, "filesz": 0x78,
              "memsz": 0x1000, "vaddr": 0x10000, "offset": 0}
    fields.update(overrides)
    header = bytearray(64)
    header[:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<HHIQQQIHHHHHH", header, 16, fields["type"], fields["machine"], 1,
                     0x10078, 64, 0, 0, 64, fields["phentsize"], fields["phnum"], 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, fields["offset"], fields["vaddr"], fields["vaddr"],
                       fields["filesz"], fields["memsz"], 0x1000)
    return bytes(header) + phdr + b"\x73\x00\x10\x00" * 2  # ebreak, ebreak


def test_parse_minimal_elf():
    image = parse_elf(_minimal_elf())
    assert image.entry == 0x10078 and not image.is_dyn and image.interp is None
    assert image.loads[0].perms == Perm.RX


@pytest.mark.parametrize("overrides,message", [
    ({"machine": 62}, "wrong architecture: a x86-64 ELF"),
    ({"type": 4}, "a core dump"),
    ({"phnum": 0}, "program header count"),
    ({"phnum": 3}, "past the end of the file"),
    ({"filesz": 0x2000}, "past the end of the file"),
    ({"memsz": 0x10}, "exceeds memory size"),
    ({"vaddr": 0x10010}, "modulo the page size"),
])
def test_malformed_elf_messages(overrides, message):
    with pytest.raises(ElfError, match=message):
        parse_elf(_minimal_elf(**overrides), "prog")


def test_open_flags_format():
    assert open_flags(0) == "O_RDONLY"
    assert open_flags(0o2 | 0o100 | 0o1000 | 0o2000000) == "O_RDWR|O_CREAT|O_TRUNC|O_CLOEXEC"


@pytest.mark.parametrize("flavour", ["static", "dynamic", "nolibc", "asm-pie"])
def test_parser_agrees_with_lief(guest_build, flavour):
    """Our struct-based parser against lief (the project's ELF library)."""
    lief = pytest.importorskip("lief")
    from tests.user.support import build, have_cc

    if not have_cc:
        pytest.skip("no riscv64 cross compiler")
    path = build(guest_build, "hello_asm.S" if flavour == "asm-pie" else "hello.c", flavour)
    image = parse_elf(path.read_bytes(), str(path))
    binary = lief.ELF.parse(str(path))
    assert image.entry == binary.header.entrypoint
    assert image.is_dyn == (binary.header.file_type == lief.ELF.Header.FILE_TYPE.DYN)
    assert image.interp == (binary.interpreter if binary.has_interpreter else None)
    loads = [s for s in binary.segments if s.type == lief.ELF.Segment.TYPE.LOAD]
    assert [(s.vaddr, s.memsz, s.offset, s.filesz) for s in image.loads] == \
        [(s.virtual_address, s.virtual_size, s.file_offset, s.physical_size) for s in loads]
