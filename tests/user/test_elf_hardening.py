"""Malformed ELF programs (the issue's fuzzing findings, and a fuzz test over mutated
headers): each gives one error line and exit status 1, never a traceback; and the
pages of a loaded segment show what Linux's file mapping shows."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llvmtcg.ir.cpu_layout import PAGE_SIZE
from llvmtcg.runtime.softmmu import GuestMemory
from llvmtcg.user.elf import ElfError, parse_elf
from llvmtcg.user.loader import load_program
from llvmtcg.user.mm import AddressSpace
from tests.user.support import REPO

PT_LOAD, PT_INTERP = 1, 3
R, W, X = 4, 2, 1
BASE = 0x10000


def make_elf(phdrs: list[tuple[int, int, int, int, int, int]], payload: bytes = b"",
             machine: int = 243, e_type: int = 2, entry: int = BASE + 0x1000) -> bytes:
    """An ELF64 file: header, ``phdrs`` (type, flags, offset, vaddr, filesz, memsz)
    right after it, then ``payload`` at file offset 0x1000."""
    header = (b"\x7fELF" + bytes((2, 1, 1, 0)) + bytes(8)
              + struct.pack("<HHIQQQIHHHHHH", e_type, machine, 1, entry, 64, 0, 0, 64, 56,
                            len(phdrs), 64, 0, 0))
    table = b"".join(struct.pack("<IIQQQQQQ", kind, flags, offset, vaddr, vaddr, filesz,
                                 memsz, PAGE_SIZE)
                     for kind, flags, offset, vaddr, filesz, memsz in phdrs)
    head = header + table
    return head.ljust(0x1000, b"\0") + payload


CODE = bytes.fromhex("9308d005" "13050000" "73000000")  # li a7, 93; li a0, 0; ecall
FSZ = 0x1000 + len(CODE)  # the file's size with CODE as the payload
GOOD = [(PT_LOAD, R | X, 0, BASE, FSZ, FSZ)]


def load(data: bytes, sysroot: str | None = None) -> GuestMemory:
    memory = GuestMemory(1 << 38)
    image = parse_elf(data, "prog")
    load_program(AddressSpace(memory), image, [b"prog"], [], "prog", 0, "riscv64", sysroot)
    return memory


def run_cli(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llvmtcg.user", path], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


CASES = {
    "empty file": b"",
    "truncated header": make_elf(GOOD, CODE)[:40],
    "truncated program headers": make_elf(GOOD, CODE)[:100],
    "wrong machine (x86-64)": make_elf(GOOD, CODE, machine=62),
    "relocatable object": make_elf(GOOD, CODE, e_type=1),
    "segment past the end of the file": make_elf(
        [(PT_LOAD, R | X, 0, BASE, 0x100000, 0x100000)], CODE),
    "segment outside the address space": make_elf(
        [(PT_LOAD, R | X, 0, 1 << 40, FSZ, FSZ)], CODE, entry=(1 << 40) + 0x1000),
    "segment wrapping the address space": make_elf(
        [(PT_LOAD, R | X, 0, BASE, FSZ, (1 << 64) - BASE - 1)], CODE),
    "PIE wrapping past its load bias": make_elf(
        [(PT_LOAD, R | X, 0, 0, FSZ, (1 << 64) - 1)], CODE, e_type=3, entry=0x1000),
    "huge bss (64 GiB beyond the space)": make_elf(
        [(PT_LOAD, R | W, 0, BASE, FSZ, 1 << 38)], CODE),
    "overlapping segments out of order": make_elf(
        [(PT_LOAD, R | X, 0, BASE + 0x2000, FSZ, FSZ),
         (PT_LOAD, R | W, 0, BASE, FSZ, 0x3000)], CODE),
    "interpreter path with an embedded NUL": make_elf(
        GOOD + [(PT_INTERP, R, 0x1000 + len(CODE), 0, 13, 13)], CODE + b"/nonexist\0ab\0"),
    "interpreter that is not a regular file": make_elf(
        GOOD + [(PT_INTERP, R, 0x1000 + len(CODE), 0, 10, 10)], CODE + b"/dev/zero\0"),
    "interpreter without a NUL": make_elf(
        GOOD + [(PT_INTERP, R, 0x1000 + len(CODE), 0, 4, 4)], CODE + b"/bin"),
    "no loadable segments": make_elf([(PT_INTERP, R, 0x1000, 0, 4, 4)], b"/ab\0"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_program_gives_one_line(tmp_path, case):
    path = tmp_path / "prog"
    path.write_bytes(CASES[case])
    result = run_cli(str(path))
    assert result.returncode == 1, (case, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("llvmtcg-user: "), (case, result.stderr)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "extends past the end of the file" not in lines[0] or "past the end" in case \
        or "truncated" in case, lines[0]  # (each case fails for its own reason)


def test_the_well_formed_one_runs(tmp_path):
    path = tmp_path / "prog"
    path.write_bytes(make_elf(GOOD, CODE))
    assert run_cli(str(path)).returncode == 0


def test_embedded_nul_opens_the_prefix():
    """Linux opens the interpreter path up to its first NUL (the prefix here does not
    exist: ENOENT, in one line naming it)."""
    with pytest.raises(ElfError, match="/nonexist: cannot open ELF interpreter: No such"):
        load(CASES["interpreter path with an embedded NUL"])


def test_file_pages_as_linux_maps_them():
    """Past p_filesz, a segment without bss shows the rest of its last file page (Linux
    maps the file page); one with a bss shows zeros there (padzero). A write-only
    segment is readable (Linux has no write-only pages)."""
    payload = CODE + b"\x11" * 64
    data = make_elf([(PT_LOAD, R | X, 0, BASE, 0x1000 + len(CODE), 0x1000 + len(CODE)),
                     (PT_LOAD, W, 0x1000, BASE + 0x10000, len(CODE), 0x2000)], payload)
    memory = load(data)
    try:
        end = BASE + 0x1000 + len(CODE)
        assert memory.read(end, 64) == b"\x11" * 64  # the file's bytes, as mmap shows them
        assert memory.read(BASE, 4) == b"\x7fELF"  # the page before p_vaddr's offset too
        assert memory.read(BASE + 0x10000 + len(CODE), 64) == bytes(64)  # bss: zero
        region = memory.region(BASE + 0x10000)
        assert region.perms & 1 and region.perms & 2  # W implies R
    finally:
        memory.close()


_GOOD_DYN = make_elf([(PT_LOAD, R | X, 0, 0, 0x1000 + len(CODE), 0x1000 + len(CODE)),
                      (PT_LOAD, R | W, 0x1000, 0x3000, len(CODE), 0x2000)],
                     CODE, e_type=3, entry=0x1000)
_FIELDS = [(4, "<I"), (8, "<Q"), (16, "<Q"), (32, "<Q"), (40, "<Q")]  # phdr fields
_EDGES = [0, 1, PAGE_SIZE - 1, PAGE_SIZE, 1 << 31, 1 << 32, 1 << 38, (1 << 38) - PAGE_SIZE,
          1 << 63, (1 << 64) - 1, (1 << 64) - PAGE_SIZE]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from([make_elf(GOOD, CODE), _GOOD_DYN]),
       edits=st.lists(st.tuples(st.integers(0, 1), st.sampled_from(_FIELDS),
                                st.one_of(st.sampled_from(_EDGES),
                                          st.integers(0, (1 << 64) - 1))),
                      min_size=1, max_size=4),
       header=st.lists(st.tuples(st.sampled_from([(16, "<H"), (18, "<H"), (24, "<Q"),
                                                  (32, "<Q"), (54, "<H"), (56, "<H")]),
                                 st.integers(0, (1 << 64) - 1)), max_size=2),
       cut=st.one_of(st.none(), st.integers(0, 0x1100)))
def test_mutated_headers_load_or_fail_cleanly(base, edits, header, cut):
    """Whatever the header fields say, loading either works or raises ElfError."""
    data = bytearray(base)
    phnum = struct.unpack_from("<H", data, 56)[0]
    for index, (offset, fmt), value in edits:
        where = 64 + 56 * min(index, phnum - 1) + offset
        struct.pack_into(fmt, data, where, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
    for (offset, fmt), value in header:
        struct.pack_into(fmt, data, offset, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
    if cut is not None:
        data = data[:cut]
    try:
        memory = load(bytes(data))
    except ElfError:
        return
    memory.close()
