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
