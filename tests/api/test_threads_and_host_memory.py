"""Guest memory backed by the caller's buffer (mem_map_ptr), and several emulators in
one process: independent, and running in parallel threads (native code runs without
the GIL)."""

from __future__ import annotations

import mmap
import threading
import time

import pytest

from llvmtcg import Emulator, EmulatorError, ErrorKind, Perm
from tests.api.support import CODE, assemble, needs_cross

pytestmark = needs_cross
# Counts in memory forever (memory, unlike registers kept in host registers by hot
# code, shows progress while native code runs).
SPIN = "lui s0, 0x20\n1: addi a0, a0, 1\nsd a0, 0(s0)\nj 1b"


def test_mem_map_ptr_with_an_mmap_buffer() -> None:
    shared = mmap.mmap(-1, 0x1000)
    with Emulator("riscv64") as emu:
        emu.mem_map(CODE, 0x1000)
        code = assemble("lui a0, 0x30\nld a1, 0(a0)\nslli a1, a1, 1\nsd a1, 8(a0)")
        emu.mem_write(CODE, code)
        emu.mem_map_ptr(0x30000, 0x1000, Perm.READ | Perm.WRITE, shared)
        shared[0:8] = (21).to_bytes(8, "little")
        emu.emu_start(CODE, CODE + len(code))
        assert shared[8:16] == (42).to_bytes(8, "little")
        shared.close()  # the guest's mapping keeps the pages
        assert emu.mem_read(0x30008, 8) == (42).to_bytes(8, "little")
        snap = emu.snapshot()
        emu.mem_write(0x30008, bytes(8))
        emu.restore(snap)
        assert emu.mem_read(0x30008, 8) == (42).to_bytes(8, "little")


def test_mem_map_ptr_errors() -> None:
    with Emulator("riscv64") as emu:
        emu.mem_map(CODE, 0x1000)
        shared = mmap.mmap(-1, 0x2000)
        unaligned = memoryview(shared)[1:]
        for size, buffer in ((0x1000, bytearray(0x1000)),  # not shared memory
                             (0x2000, bytes(0x2000)),  # read-only
                             (0x4000, shared),  # too small
                             (0x1000, unaligned)):
            with pytest.raises(EmulatorError) as info:
                emu.mem_map_ptr(0x30000, size, Perm.ALL, buffer)
            assert info.value.kind is ErrorKind.ARG
        unaligned.release()
        with pytest.raises(EmulatorError) as info:
            emu.mem_map_ptr(CODE, 0x1000, Perm.ALL, shared)
        assert info.value.kind is ErrorKind.MAP
        assert emu.mem_regions() == [(CODE, CODE + 0xFFF, 7)]
        shared.close()


def test_emulators_are_independent() -> None:
    first, second = Emulator("riscv64"), Emulator("riscv64")
    try:
        for emu, value in ((first, 1), (second, 2)):
            emu.mem_map(CODE, 0x1000)
            emu.mem_write(CODE, assemble(f"li a0, {value}\nnop"))
        for _ in range(2):
            for emu, value in ((first, 1), (second, 2)):
                emu.emu_start(CODE, CODE + 8)
                assert emu.reg_read("a0") == value
    finally:
        first.close()
        second.close()


def test_two_threads_run_guest_code_at_the_same_time() -> None:
    # One emulator spins in guest code on a thread; meanwhile another runs a loop to
    # completion on this thread, which could not run at all if the spinning native
    # code held the GIL. Then the spinner is stopped from here.
    spinner, worker = Emulator("riscv64"), Emulator("riscv64")
    try:
        spinner.mem_map(CODE, 0x1000)
        spinner.mem_map(0x20000, 0x1000)
        spinner.mem_write(CODE, assemble(SPIN))
        worker.mem_map(CODE, 0x1000)
        loop = assemble("li t0, 3000000\n1: addi t0, t0, -1\nbnez t0, 1b\nnop")
        worker.mem_write(CODE, loop)
        worker.emu_start(CODE, CODE + len(loop))  # (translated before the race)
        errors: list[BaseException] = []

        def spin() -> None:
            try:
                spinner.emu_start(CODE, CODE + 0x100)
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)

        thread = threading.Thread(target=spin)
        thread.start()
        def progress() -> int:
            return int.from_bytes(spinner.mem_read(0x20000, 8), "little")

        deadline = time.monotonic() + 60
        while progress() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # (until the spinner is in guest code)
        before = progress()
        worker.emu_start(CODE, CODE + len(loop))
        assert worker.reg_read("t0") == 0
        while progress() == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert progress() > before and thread.is_alive(), "the spinner made no progress"
        spinner.emu_stop()
        thread.join(60)
        assert not thread.is_alive() and not errors
        assert CODE + 4 <= spinner.reg_read("pc") <= CODE + 12
    finally:
        spinner.close()
        worker.close()
