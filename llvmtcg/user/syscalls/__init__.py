"""The system call table: one handler per generic Linux syscall number.

Handlers are plain functions ``handler(proc, *args) -> int`` registered with
:func:`syscall`, which names the call and the kinds of its arguments (used by
``-strace``). A handler returns the result or a negative errno; it may also raise
:class:`SyscallError`, ``OSError`` (host errno) or ``GuestFault`` (a bad guest pointer:
-EFAULT). Numbers without a handler return -ENOSYS, with a one-line warning under
``-strace`` (each call) or ``-d unimp`` (once per number).

Argument kinds: ``int`` (signed), ``uint``, ``hex``, ``ptr``, ``fd``, ``dirfd``,
``path`` (a guest string), ``oflags``, ``mode``, ``prot``, ``mflags``, ``sig``,
``atflags``, ``clock``, ``how``. Result kinds: ``int``, ``ptr``, ``hex``, ``noreturn``.
"""

from __future__ import annotations

import errno as errno_mod
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import GuestFault
from llvmtcg.runtime.host_fds import FD_GATE
from llvmtcg.user.syscalls.numbers import ABSENT, NAMES
from llvmtcg.user.syscalls.table import TABLE, SyscallDef, SyscallError, strerror, syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess

__all__ = ["TABLE", "SyscallDef", "SyscallError", "dispatch", "load_handlers", "strerror",
           "syscall"]


_WARNED: set[int] = set()  # unimplemented numbers already reported under -d unimp

# The calls that make a host file descriptor the guest sees (fcntl: F_DUPFD): they
# pass the gate, so a file the emulator opens on another thread meanwhile does not
# take the number Linux would give the guest (see llvmtcg.runtime.host_fds).
_MAKE_FDS = frozenset({
    "accept", "accept4", "dup", "dup3", "epoll_create1", "eventfd2", "fanotify_init",
    "fcntl", "inotify_init1", "memfd_create", "mq_open", "open_by_handle_at", "openat",
    "openat2", "pidfd_getfd", "pidfd_open", "pipe2", "signalfd4", "socket", "socketpair",
    "timerfd_create", "perf_event_open", "userfaultfd", "open_tree", "fsopen", "fsmount",
})


def dispatch(proc: GuestProcess, nr: int, args: tuple[int, ...]) -> int:
    """Run syscall ``nr``; the value for the guest's a0 (negative errno on failure)."""
    entry = TABLE.get(nr)
    strace = proc.strace
    if entry is None or nr in ABSENT.get(proc.machine, ()):
        name = NAMES.get(nr, f"syscall_{nr}")
        # -strace traces every call; -d unimp says it once per number.
        if strace is not None or (nr not in _WARNED and proc.log.enabled("unimp")):
            _WARNED.add(nr)
            proc.log.write(f"{proc.pid} {name}: unimplemented syscall {nr}, returning -ENOSYS")
        return -errno_mod.ENOSYS
    call_args = args[:len(entry.args)]
    prefix = strace.format_call(proc, entry, call_args) if strace is not None else ""
    if strace is not None and entry.ret == "noreturn":
        strace.write(prefix + "\n")
    try:
        if entry.name in _MAKE_FDS:
            with FD_GATE.guest_call():
                result = entry.handler(proc, *call_args)
        else:
            result = entry.handler(proc, *call_args)
    except SyscallError as e:
        result = -e.errno
    except GuestFault:
        result = -errno_mod.EFAULT
    except OSError as e:
        result = -(e.errno or errno_mod.EIO)
    if strace is not None:
        if entry.ret == "noreturn":
            strace.write(f"{proc.pid} {entry.name} = {strace.format_result('int', result)}\n")
        else:
            strace.write(f"{prefix} = {strace.format_result(entry.ret, result)}\n")
    return result


def load_handlers() -> None:
    """Import the handler modules (each registers its syscalls)."""
    from llvmtcg.user.syscalls import (  # noqa: F401
        clock,
        events,
        files,
        ipc,
        memory,
        misc,
        net,
        proc,
        signals,
    )
