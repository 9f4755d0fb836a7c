"""Event notification fds: epoll, inotify, timerfd, fanotify.

inotify's and fanotify's records, ``itimerspec`` and the fds themselves are the host's.
``struct epoll_event`` is not: x86-64 packs it (12 bytes: u32 events, u64 data), the
generic ABI does not (16 bytes, the data 8-aligned), so events are converted both ways.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.syscalls.table import syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess

_GUEST_EVENT = struct.Struct("<I4xQ")  # generic struct epoll_event (16 bytes)
_HOST_EVENT = struct.Struct("<IQ")  # x86-64's packed one (12 bytes)
EP_MAX_EVENTS = 0x7FFFFFFF // 12  # Linux's limit: INT_MAX / sizeof(struct epoll_event)
_EPOLL_CTL_DEL = 2


@syscall("epoll_create1", "oflags")
def sys_epoll_create1(proc: GuestProcess, flags):
    return host.call("epoll_create1", flags)


@syscall("epoll_ctl", "fd int fd ptr")
def sys_epoll_ctl(proc: GuestProcess, epfd, op, fd, event):
    if op == _EPOLL_CTL_DEL and not event:
        return host.call("epoll_ctl", epfd, op, fd, 0)
    events, data = _GUEST_EVENT.unpack(proc.read(event, 16))
    buf = ctypes.create_string_buffer(_HOST_EVENT.pack(events, data), 12)
    return host.call("epoll_ctl", epfd, op, fd, ctypes.addressof(buf))


def _wait(proc: GuestProcess, name: str, epfd: int, events: int, maxevents: int,
          timeout_arg: int, sigmask: int, sigsetsize: int) -> int:
    if maxevents <= 0 or maxevents > EP_MAX_EVENTS:
        return -errno.EINVAL
    proc.check(events, 16 * maxevents, Access.WRITE)
    count = min(maxevents, 1 << 16)  # (a larger array would only be partly filled)
    buf, addr = host.buffer(12 * count)
    mask = proc.check(sigmask, 8) if sigmask else 0
    result = host.call(name, epfd, addr, count, timeout_arg, mask, sigsetsize)
    if result > 0:
        raw = buf.raw
        proc.write(events, b"".join(_GUEST_EVENT.pack(*_HOST_EVENT.unpack_from(raw, 12 * i))
                                    for i in range(result)))
    return result


@syscall("epoll_pwait", "fd ptr int int ptr uint")
def sys_epoll_pwait(proc: GuestProcess, epfd, events, maxevents, timeout, sigmask,
                    sigsetsize):
    timeout = timeout - (1 << 32) if timeout & 0x8000_0000 else timeout & 0xFFFF_FFFF
    return _wait(proc, "epoll_pwait", epfd, events, _int(maxevents), timeout, sigmask,
                 sigsetsize)


@syscall("epoll_pwait2", "fd ptr int ptr ptr uint")
def sys_epoll_pwait2(proc: GuestProcess, epfd, events, maxevents, timeout, sigmask,
                     sigsetsize):
    return _wait(proc, "epoll_pwait2", epfd, events, _int(maxevents),
                 proc.check(timeout, 16) if timeout else 0, sigmask, sigsetsize)


def _int(value: int) -> int:
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value


@syscall("inotify_init1", "oflags")
def sys_inotify_init1(proc: GuestProcess, flags):
    return host.call("inotify_init1", flags)


@syscall("inotify_add_watch", "fd path hex")
def sys_inotify_add_watch(proc: GuestProcess, fd, pathname, mask):
    return host.call("inotify_add_watch", fd, proc.read_path(pathname), mask)


@syscall("inotify_rm_watch", "fd int")
def sys_inotify_rm_watch(proc: GuestProcess, fd, wd):
    return host.call("inotify_rm_watch", fd, wd)


@syscall("timerfd_create", "clock oflags")
def sys_timerfd_create(proc: GuestProcess, clockid, flags):
    return host.call("timerfd_create", clockid, flags)


@syscall("timerfd_settime", "fd hex ptr ptr")
def sys_timerfd_settime(proc: GuestProcess, fd, flags, new, old):
    result = host.call("timerfd_settime", fd, flags, proc.check(new, 32),
                       proc.check(old, 32, Access.WRITE) if old else 0)
    if result == 0 and old:
        proc.wrote(old, 32)
    return result


@syscall("timerfd_gettime", "fd ptr")
def sys_timerfd_gettime(proc: GuestProcess, fd, value):
    return host.call("timerfd_gettime", fd, proc.check(value, 32, Access.WRITE))


@syscall("fanotify_init", "hex oflags")
def sys_fanotify_init(proc: GuestProcess, flags, event_f_flags):
    return host.call("fanotify_init", flags, event_f_flags)


@syscall("fanotify_mark", "fd hex hex dirfd path")
def sys_fanotify_mark(proc: GuestProcess, fd, flags, mask, dirfd, pathname):
    return host.call("fanotify_mark", fd, flags, mask, dirfd,
                     proc.read_path(pathname) if pathname else None)
