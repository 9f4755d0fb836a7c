"""The gate between the guest's new file descriptors and the emulator's own files."""

from __future__ import annotations

import os
import threading
import time

from llvmtcg.runtime.host_fds import EmulatorFiles, FdGate
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


def test_emulator_files_of_a_threaded_guest_never_take_a_guest_number(tmp_path) -> None:
    """Once the guest has a second thread, the emulator's file work runs on a thread
    with a private descriptor table: a guest open while the emulator holds a file
    open still gets the lowest free number (with the work on the guest's table it got
    the next one)."""
    files = EmulatorFiles()
    path = tmp_path / "f"
    path.write_bytes(b"x")
    assert files.run(threading.current_thread) is threading.current_thread()  # (alone)
    files.guest_threads_started()
    lowest = os.open(path, os.O_RDONLY)
    os.close(lowest)
    opened = threading.Event()
    guest_opened = threading.Event()
    got: list[int] = []

    def emulator_work() -> bytes:
        with open(path, "rb") as f:
            opened.set()
            assert guest_opened.wait(5)
            return f.read()

    def guest() -> None:
        assert opened.wait(5)
        got.append(os.open(path, os.O_RDONLY))
        guest_opened.set()

    guest_thread = threading.Thread(target=guest)
    guest_thread.start()
    assert files.run(emulator_work) == b"x"
    guest_thread.join(5)
    assert got == [lowest]
    os.close(got[0])
    assert files.calls == 1
    assert files.run(threading.current_thread) is not threading.current_thread()


def test_emulator_files_thread_keeps_no_copy_of_the_guests_descriptors() -> None:
    """unshare copies the table: the copies are closed, so a pipe the guest closes
    reads EOF (a copy of its write end would keep the reader waiting), and an error
    in the work is raised in the caller."""
    files = EmulatorFiles()
    r, w = os.pipe()
    files.guest_threads_started()
    assert not files.run(os.path.exists, f"/proc/thread-self/fd/{w}")
    os.close(w)
    assert os.read(r, 1) == b""
    os.close(r)
    try:
        files.run(os.fstat, r)
    except OSError:
        pass
    else:
        raise AssertionError("fstat of a closed descriptor succeeded")


def test_code_cache_file_work_goes_through_emulator_files(tmp_path, monkeypatch) -> None:
    """The code cache's reads and writes are emulator file work (run loops of every
    guest thread do them)."""
    from llvmtcg.runtime.codecache import CodeCache
    from llvmtcg.runtime.host_fds import EMULATOR_FILES

    monkeypatch.setattr(EMULATOR_FILES, "shared", True)
    before = EMULATOR_FILES.calls
    cache = CodeCache(tmp_path, "fp")
    cache.store_module("k", b"object")
    assert CodeCache(tmp_path, "fp").lookup_module("k") == b"object"
    assert EMULATOR_FILES.calls - before >= 2


def test_emulator_files_thread_takes_no_signal() -> None:
    """Process signals are the guest threads' (their blocking calls must see them):
    the private-table thread has every signal blocked."""
    import signal

    files = EmulatorFiles()
    files.guest_threads_started()
    blocked = files.run(signal.pthread_sigmask, signal.SIG_BLOCK, [])
    assert set(signal.valid_signals()) - set(blocked) <= {signal.SIGKILL, signal.SIGSTOP}
