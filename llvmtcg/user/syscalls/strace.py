"""``-strace``: each syscall with decoded arguments and its result, in QEMU's format
(``PID name(arg,arg) = result``, errors as ``-1 errno=N (message)``)."""

from __future__ import annotations

import signal
import sys
from typing import Protocol, TextIO

from llvmtcg.runtime.exits import GuestFault
from llvmtcg.user.syscalls.table import SyscallDef, strerror

AT_FDCWD = -100
_OPEN_FLAGS = [(0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
               (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o10000, "O_DSYNC"),
               (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"),
               (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"),
               (0o2000000, "O_CLOEXEC"), (0o4010000, "O_SYNC"), (0o10000000, "O_PATH"),
               (0o20200000, "O_TMPFILE")]
_PROT = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")]
_MAP = [(0x01, "MAP_SHARED"), (0x02, "MAP_PRIVATE"), (0x10, "MAP_FIXED"),
        (0x20, "MAP_ANONYMOUS"), (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"),
        (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"),
        (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"),
        (0x40000, "MAP_HUGETLB"), (0x100000, "MAP_FIXED_NOREPLACE")]
_AT = [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR|AT_EACCESS"),
       (0x400, "AT_SYMLINK_FOLLOW"), (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH")]
_CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
           3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
           6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME"}
_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}


def _signed(value: int) -> int:
    value &= 0xFFFF_FFFF_FFFF_FFFF
    return value - (1 << 64) if value >> 63 else value


def _flags(value: int, table: list[tuple[int, str]], zero: str = "0") -> str:
    names = []
    for bit, name in table:
        if value & bit == bit:
            names.append(name)
            value &= ~bit
    if value:
        names.append(f"{value:#x}")
    return "|".join(names) or zero


def open_flags(value: int) -> str:
    access = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(value & 3, "O_ACCMODE")
    rest = _flags(value & ~3, _OPEN_FLAGS, "")
    return access + ("|" + rest if rest else "")


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIGRTMIN+{sig - 34}" if 34 <= sig <= 64 else str(sig)


class Traced(Protocol):
    """What a trace line needs of the process (:class:`llvmtcg.user.guest.GuestProcess`
    has it; that module imports this one)."""

    @property
    def pid(self) -> int: ...

    def read_str(self, addr: int, limit: int = ...) -> bytes: ...

    def open_flags_to_host(self, flags: int) -> int: ...


class Strace:
    """Writes syscall traces (to the -D file or stderr)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text)
        stream.flush()

    def format_call(self, proc: Traced, entry: SyscallDef, args: tuple[int, ...]) -> str:
        parts = [self.format_arg(proc, kind, value) for kind, value in zip(entry.args, args,
                                                                            strict=False)]
        return f"{proc.pid} {entry.name}({','.join(parts)})"

    def format_arg(self, proc: Traced, kind: str, value: int) -> str:
        match kind:
            case "int" | "fd":
                return str(_signed(value) if kind == "int" else _signed32(value))
            case "uint":
                return str(value)
            case "hex":
                return f"{value:#x}"
            case "ptr":
                return "NULL" if value == 0 else f"0x{value:016x}"
            case "dirfd":
                v = _signed32(value)
                return "AT_FDCWD" if v == AT_FDCWD else str(v)
            case "path":
                if value == 0:
                    return "NULL"
                try:
                    return '"' + proc.read_str(value, 4096).decode("utf-8", "replace") + '"'
                except GuestFault:
                    return f"0x{value:016x}"
            case "oflags":  # named by their host (asm-generic) values: arm64's differ
                return open_flags(proc.open_flags_to_host(value))
            case "mode":
                return f"0{value & 0o7777:o}"
            case "prot":
                return _flags(value, _PROT, "PROT_NONE")
            case "mflags":
                return _flags(value, _MAP)
            case "atflags":
                return _flags(value, _AT)
            case "sig":
                return signal_name(value)
            case "clock":
                return _CLOCKS.get(value, str(value))
            case "how":
                return _HOW.get(value, str(value))
        return str(value)

    @staticmethod
    def format_result(kind: str, result: int) -> str:
        r = _signed(result)
        if -4096 < r < 0:
            return f"-1 errno={-r} ({strerror(-r)})"
        if kind == "ptr":
            return f"0x{result & 0xFFFF_FFFF_FFFF_FFFF:016x}"
        if kind == "hex":
            return f"{result:#x}"
        return str(r)


def _signed32(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value
