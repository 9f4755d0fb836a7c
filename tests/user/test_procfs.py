"""Which paths name the guest's own /proc files (llvmtcg.user.procfs.ProcFs.own_entry):
every spelling of the process's directory, relative paths through a directory fd or
the working directory, and nothing else."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from llvmtcg.user.procfs import AT_FDCWD, ProcessImage, ProcFs


@dataclass
class _Proc:
    pid: int

    def thread_ids(self) -> frozenset[int]:
        return frozenset((self.pid,))


@pytest.fixture
def procfs() -> ProcFs:
    return ProcFs(ProcessImage("/bin/prog", (b"prog",), (), (), (), 0))


PID = os.getpid()


@pytest.mark.parametrize("path,entry", [
    ("/proc/self/maps", "maps"),
    (f"/proc/{PID}/mem", "mem"),
    ("/proc/thread-self/exe", "exe"),
    (f"/proc/self/task/{PID}/maps", "maps"),
    (f"/proc/{PID}/task/{PID}/auxv", "auxv"),
    ("/proc/self/../self/./cmdline", "cmdline"),
    ("/proc/self/map_files/1000-2000", "map_files"),
    ("/proc/1/maps", None),  # another process
    (f"/proc/self/task/{PID + 1}/maps", None),
    ("/proc/self", None),
    ("/proc/cpuinfo", None),
    ("/etc/passwd", None),
    ("/proc/self/fd/1", None),
])
def test_absolute_paths(procfs, path, entry):
    assert procfs.own_entry(_Proc(PID), AT_FDCWD, path.encode()) == entry


def test_relative_to_a_directory_fd(procfs):
    fd = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert procfs.own_entry(_Proc(PID), fd, b"maps") == "maps"
        assert procfs.own_entry(_Proc(PID), fd, b"task/../exe") == "exe"
    finally:
        os.close(fd)
    fd = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert procfs.own_entry(_Proc(PID), fd, b"maps") is None
    finally:
        os.close(fd)


def test_relative_to_the_working_directory(procfs):
    old = os.getcwd()
    os.chdir(f"/proc/{PID}")
    try:
        assert procfs.own_entry(_Proc(PID), AT_FDCWD & 0xFFFF_FFFF_FFFF_FFFF, b"mem") == "mem"
    finally:
        os.chdir(old)


def test_task_directory_and_emulator_threads(procfs):
    """The task directory is recognised (its listing is filtered); a thread of this
    host process that runs no guest code (here: a Python thread) does not exist for the
    guest, by task/TID or /proc/TID; a guest thread's files are the guest's."""
    import threading

    from llvmtcg.user.procfs import NO_ENTRY, TASK_DIR

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        other = thread.native_id
        proc = _Proc(PID)
        assert procfs.own_entry(proc, AT_FDCWD, b"/proc/self/task") == TASK_DIR
        assert procfs.own_entry(proc, AT_FDCWD, f"/proc/{PID}/task/".encode()) == TASK_DIR
        for path in (f"/proc/self/task/{other}/maps", f"/proc/{other}/maps",
                     f"/proc/self/task/{other}"):
            assert procfs.own_entry(proc, AT_FDCWD, path.encode()) == NO_ENTRY, path
        assert procfs.open(proc, NO_ENTRY, os.O_RDONLY) == -2  # ENOENT

        @dataclass
        class _Threaded(_Proc):
            def thread_ids(self) -> frozenset[int]:
                return frozenset((self.pid, other))

        threaded = _Threaded(PID)
        assert procfs.own_entry(threaded, AT_FDCWD, f"/proc/{other}/maps".encode()) == "maps"
        assert procfs.own_entry(threaded, AT_FDCWD,
                                f"/proc/self/task/{other}/mem".encode()) == "mem"
    finally:
        stop.set()
        thread.join()


def test_task_listing_filter(procfs):
    """getdents64 records of a task directory keep ., .. and guest tids only."""
    import struct

    def record(name: bytes) -> bytes:
        size = (19 + len(name) + 1 + 7) & ~7
        return struct.pack("<QqHB", 1, 0, size, 4) + name.ljust(size - 19, b"\0")

    data = b"".join(record(n) for n in (b".", b"..", str(PID).encode(), b"999999999"))
    kept = procfs.filter_task_entries(_Proc(PID), data)
    assert kept == b"".join(record(n) for n in (b".", b"..", str(PID).encode()))
