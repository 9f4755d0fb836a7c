"""The syscall table and how handlers register in it (a leaf module: handlers and
``-strace`` import it, and it imports neither of them nor the process)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from llvmtcg.user.syscalls.numbers import NUMBERS


class SyscallError(Exception):
    """Return ``-errno`` to the guest."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


@dataclass(frozen=True, slots=True)
class SyscallDef:
    nr: int
    name: str
    args: tuple[str, ...]
    ret: str
    handler: Callable[..., int]


TABLE: dict[int, SyscallDef] = {}


def syscall(name: str, args: str = "", ret: str = "int") -> Callable:
    """Register the decorated function as the handler of syscall ``name``."""
    nr = NUMBERS[name]

    def register(fn: Callable[..., int]) -> Callable[..., int]:
        if nr in TABLE:
            raise ValueError(f"syscall {name} registered twice")
        TABLE[nr] = SyscallDef(nr, name, tuple(args.split()), ret, fn)
        return fn

    return register


def strerror(err: int) -> str:
    try:
        return os.strerror(err)
    except ValueError:
        return f"errno {err}"
