"""The executable code arena: W^X dual mapping, bump allocation, reuse of freed chunks,
exhaustion, reset, fork."""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from llvmtcg.runtime.native.arena import ALIAS_DROP_STEP, PAGE_SIZE, ArenaFull, CodeArena

ROOT = Path(__file__).resolve().parents[2]
VOID_FN = ctypes.CFUNCTYPE(ctypes.c_int64)
INT_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
LEA_RET = bytes.fromhex("488d0437c3")  # lea rax, [rdi + rsi]; ret


def call_through(target: int) -> bytes:
    """Machine code that calls ``target`` (keeping its own frame live) and returns."""
    return (bytes.fromhex("4883ec08")  # sub rsp, 8 (16-byte alignment at the call)
            + b"\x48\xb8" + struct.pack("<Q", target)  # movabs rax, target
            + bytes.fromhex("ffd0")  # call rax
            + bytes.fromhex("4883c408c3"))  # add rsp, 8; ret


def mappings_of(arena: CodeArena) -> list[tuple[int, int, str]]:
    """(start, end, permissions) of every mapping overlapping the arena's reservation."""
    found = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split()[:2]
            start, end = (int(x, 16) for x in span.split("-"))
            if start < arena.base + arena.reservation_size and end > arena.base:
                found.append((start, end, perms))
    return found


def test_code_runs_from_the_arena_and_no_page_is_writable_and_executable() -> None:
    with CodeArena(1 << 20, 1 << 16) as arena:
        seen: list[list[tuple[int, int, str]]] = []

        def read_maps() -> int:
            seen.append(mappings_of(arena))  # while the arena's code is on the stack
            return 1234

        callback = VOID_FN(read_maps)
        address = arena.alloc_code(64)
        arena.write(address, call_through(ctypes.cast(callback, ctypes.c_void_p).value))
        assert VOID_FN(address)() == 1234
        (maps,) = seen
        assert maps, "the arena's mappings are listed"
        for start, _end, perms in maps:
            assert not ("w" in perms and "x" in perms), (hex(start), perms)
        by_start = {start: perms for start, _end, perms in maps}
        assert by_start[arena.code_start].startswith("r-x")
        assert by_start[arena.data_start].startswith("rw-")
        assert by_start[arena.code_start + arena.alias_delta].startswith("rw-")
        add = arena.alloc_code(len(LEA_RET))
        arena.write(add, LEA_RET)
        assert INT_FN(add)(40, 2) == 42


def test_code_zone_is_not_writable_where_it_executes() -> None:
    script = (
        "import ctypes\n"
        "from llvmtcg.runtime.native.arena import CodeArena\n"
        "arena = CodeArena(1 << 20, 1 << 16)\n"
        "address = arena.alloc_code(16)\n"
        "print('writing', flush=True)\n"
        "ctypes.memmove(address, b'\\xc3', 1)\n"
        "print('wrote')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout == "writing\n"
    assert result.returncode == -11  # SIGSEGV: the r-x view refuses writes


def test_native_code_writes_the_data_zone() -> None:
    with CodeArena(1 << 20, 1 << 16) as arena:
        data = arena.alloc_data(8, align=8)
        assert arena.read(data, 8) == bytes(8)  # fresh chunks read as zero
        store = (b"\x48\xb8" + struct.pack("<Q", data)  # movabs rax, data
                 + bytes.fromhex("48c7002a000000c3"))  # mov qword [rax], 42; ret
        code = arena.alloc_code(len(store))
        arena.write(code, store)
        VOID_FN(code)()
        assert struct.unpack("<q", arena.read(data, 8)) == (42,)


def test_allocation_alignment_and_bounds() -> None:
    with CodeArena(1 << 16, 1 << 12) as arena:
        a = arena.alloc_code(3)
        b = arena.alloc_code(5, align=64)
        assert a == arena.code_start and b % 64 == 0 and b >= a + 3
        c = arena.alloc_data(1)
        d = arena.alloc_data(8, align=8)
        assert c == arena.data_start and d == c + 8
        assert arena.data_start - arena.code_start == arena.code_size
        assert arena.contains(b) and arena.contains(d) and not arena.contains(arena.base - 1)
        with pytest.raises(ValueError):
            arena.alloc_code(8, align=3)
        with pytest.raises(ValueError):
            arena.write(arena.code_start + arena.code_size - 2, b"1234")  # crosses the end
        with pytest.raises(ValueError):
            arena.write(arena.base - 16, b"x")


def test_exhaustion_raises_arena_full_and_reset_empties_it() -> None:
    with CodeArena(4 * PAGE_SIZE, PAGE_SIZE) as arena:
        chunks = []
        with pytest.raises(ArenaFull):
            while True:
                address = arena.alloc_code(1000)
                arena.write(address, bytes([0xC3]) * 1000)
                chunks.append(address)
        assert len(chunks) == 4 * PAGE_SIZE // 1008  # 1000 bytes, 16-aligned
        used = arena.code_used
        with pytest.raises(ArenaFull):
            arena.alloc_code(1000)
        assert arena.code_used == used  # a failed allocation takes nothing
        with pytest.raises(ArenaFull):
            arena.alloc_data(PAGE_SIZE + 1)
        generation = arena.generation
        arena.reset()
        assert arena.generation == generation + 1
        assert arena.code_used == 0 and arena.data_used == 0
        assert arena.read(chunks[0], 16) == bytes(16)  # the pages were given back
        assert arena.alloc_code(1000) == chunks[0]
        arena.write(chunks[0], LEA_RET)
        assert INT_FN(chunks[0])(1, 2) == 3


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        CodeArena(0, 1 << 12)
    with pytest.raises(ValueError):
        CodeArena(1 << 31, 1 << 12)  # code + data beyond rel32 reach


def test_closed_arena_refuses_allocation() -> None:
    arena = CodeArena(1 << 16, 1 << 12)
    arena.close()
    arena.close()  # idempotent
    with pytest.raises(ValueError):
        arena.alloc_code(16)


def test_forked_child_gets_a_private_copy() -> None:
    with CodeArena(1 << 20, 1 << 16) as arena:
        code = arena.alloc_code(len(LEA_RET))
        arena.write(code, LEA_RET)
        data = arena.alloc_data(8)
        arena.write(data, b"parent!!")
        pid = os.fork()
        if pid == 0:  # the child: sees the parent's bytes, then changes its own copy
            status = 0
            try:
                if INT_FN(code)(5, 6) != 11 or arena.read(data, 8) != b"parent!!":
                    status = 2
                arena.write(data, b"child!!!")
                arena.write(code, bytes.fromhex("4889f8c3"))  # mov rax, rdi; ret
                if INT_FN(code)(5, 6) != 5:
                    status = 3
            except BaseException:  # noqa: BLE001 - report through the exit status
                status = 4
            os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert arena.read(data, 8) == b"parent!!"
        assert INT_FN(code)(5, 6) == 11


def test_forked_child_copy_is_the_arena_at_the_fork() -> None:
    """The parent writes its arena right after fork() (as a user-mode parent chains
    exit slots to code it translates next): the child's copy must be the arena as it
    was at the fork, never mixed with those writes (it was once copied by the child,
    racing them: forked shells died of SIGSEGV jumping through such slots)."""
    size = 8 << 20
    with CodeArena(size + (1 << 20), 1 << 20) as arena:
        code = arena.alloc_code(size)
        arena.write(code, b"\xaa" * size)
        data = arena.alloc_data(1 << 16)
        arena.write(data, b"\xaa" * (1 << 16))
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                import time

                time.sleep(0.3)  # (until the parent is done writing)
                if arena.read(code, size) != b"\xaa" * size:
                    status = 2
                if arena.read(data, 1 << 16) != b"\xaa" * (1 << 16):
                    status = 3
            except BaseException:  # noqa: BLE001 - report through the exit status
                status = 4
            os._exit(status)
        for offset in range(size - (1 << 16), -1, -(1 << 16)):  # at once, from the end
            arena.write(code + offset, b"\x55" * (1 << 16))
        arena.write(data, b"\x55" * (1 << 16))
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert arena.read(data, 4) == b"\x55" * 4


def test_freed_chunks_are_reused_by_requests_of_their_size() -> None:
    with CodeArena(1 << 20, 1 << 16) as arena:
        code = arena.alloc_code(100)
        data = arena.alloc_data(40, 8)
        ctypes.memset(data, 0xAB, 40)
        arena.alloc_code(16)  # (something after them: the bump pointer moved on)
        used = arena.code_used, arena.data_used
        arena.free_code(code, 100)
        arena.free_data(data, 40)
        assert arena.free_bytes == 104 + 40
        assert arena.alloc_code(200) != code  # another size: from the bump pointer
        assert arena.alloc_code(97) == code  # (the same 8-byte granules)
        again = arena.alloc_data(40, 8)
        assert again == data and arena.read(data, 40) == bytes(40)  # zeroed again
        assert arena.data_used == used[1] and arena.free_bytes == 0
        arena.write(code, LEA_RET)
        assert INT_FN(code)(40, 2) == 42
        with pytest.raises(ValueError):
            arena.free_code(arena.code_start + arena.code_used, 16)  # never allocated
        arena.free_code(code, 100)
        arena.reset()  # (forgets the free lists with everything else)
        assert arena.free_bytes == 0


def _resident_kb(start: int, end: int) -> int:
    """Resident KiB of the mappings inside [start, end) (/proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split()[0]
            if "-" in first and not first.endswith(":"):
                lo, hi = (int(x, 16) for x in first.split("-"))
                inside = start <= lo and hi <= end
            elif inside and first == "Rss:":
                total += int(line.split()[1])
    return total


def test_the_writable_alias_does_not_stay_resident_beside_the_code() -> None:
    with CodeArena(8 * ALIAS_DROP_STEP, 1 << 16) as arena:
        chunks = []
        for i in range(3 * ALIAS_DROP_STEP // 4096):
            address = arena.alloc_code(4096)
            arena.write(address, LEA_RET + bytes([i & 0xFF]) * 11)
            chunks.append(address)
        alias = arena.code_start + arena.alias_delta
        # Written through the alias, 3 MiB: at most the last MiB (and a page) stays
        # mapped there; the bytes are all still in the arena.
        assert _resident_kb(alias, alias + arena.code_size) <= ALIAS_DROP_STEP // 1024 + 4
        assert INT_FN(chunks[0])(2, 3) == 5 and INT_FN(chunks[-1])(4, 5) == 9
        assert arena.read(chunks[1], 6) == LEA_RET + b"\x01"
