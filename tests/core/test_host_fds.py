"""The gate between the guest's new file descriptors and the emulator's own files."""

from __future__ import annotations

import os
import threading
import time

from llvmtcg.runtime.host_fds import FdGate
from llvmtcg.user.syscalls import _MAKE_FDS


def test_a_guest_call_waits_for_the_emulators_files_and_gets_the_lowest_number(
        tmp_path) -> None:
    """While the emulator has a file open (a compile thread importing llvmlite), a
    guest open waits; once it is closed, the guest gets the number Linux would give
    with the emulator's file never opened."""
    gate = FdGate()
    opened = threading.Event()
    release = threading.Event()
    path = tmp_path / "f"
    path.write_bytes(b"x")
    lowest = os.open(path, os.O_RDONLY)
    os.close(lowest)  # (the lowest free number now)

    def emulator() -> None:
        with gate.emulator_files():
            fd = os.open(path, os.O_RDONLY)
            opened.set()
            release.wait(5)
            os.close(fd)

    thread = threading.Thread(target=emulator)
    thread.start()
    assert opened.wait(5)
    got: list[int] = []

    def guest() -> None:
        with gate.guest_call():
            got.append(os.open(path, os.O_RDONLY))

    guest_thread = threading.Thread(target=guest)
    guest_thread.start()
    time.sleep(0.1)
    assert not got  # (waiting at the gate)
    release.set()
    guest_thread.join(5)
    thread.join(5)
    assert got == [lowest]
    os.close(got[0])


def test_guest_calls_never_wait_for_one_another(tmp_path) -> None:
    """A FIFO's two ends open in two guest calls that must both be inside at once
    (the reader's open blocks until the writer's); the emulator's side waits."""
    gate = FdGate()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fds: list[int] = []

    def open_end(flags: int) -> None:
        with gate.guest_call():
            fds.append(os.open(fifo, flags))

    reader = threading.Thread(target=open_end, args=(os.O_RDONLY,))
    reader.start()
    time.sleep(0.1)  # (the reader is blocked inside the gate)
    emulator_in = threading.Event()

    def emulator() -> None:
        with gate.emulator_files():
            emulator_in.set()

    waiting = threading.Thread(target=emulator)
    waiting.start()
    time.sleep(0.1)
    assert not emulator_in.is_set()  # (a guest call is inside)
    writer = threading.Thread(target=open_end, args=(os.O_WRONLY,))
    writer.start()
    writer.join(5)
    reader.join(5)
    assert len(fds) == 2
    assert emulator_in.wait(5)
    waiting.join(5)
    for fd in fds:
        os.close(fd)


def test_the_descriptor_making_calls_pass_the_gate() -> None:
    for name in ("openat", "dup", "dup3", "pipe2", "socket", "socketpair", "accept4",
                 "eventfd2", "memfd_create", "fcntl"):
        assert name in _MAKE_FDS
    assert "read" not in _MAKE_FDS and "close" not in _MAKE_FDS
