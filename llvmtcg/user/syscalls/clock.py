"""Time: clocks, sleeps, timers (timespec, timeval, itimerval and tms share the host's
64-bit layouts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.syscalls.table import syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess


@syscall("clock_gettime", "clock ptr")
def sys_clock_gettime(proc: GuestProcess, clock, tp):
    result = host.call("clock_gettime", clock, proc.check(tp, 16, Access.WRITE))
    return result


@syscall("clock_getres", "clock ptr")
def sys_clock_getres(proc: GuestProcess, clock, res):
    return host.call("clock_getres", clock, proc.check(res, 16, Access.WRITE) if res else 0)


@syscall("gettimeofday", "ptr ptr")
def sys_gettimeofday(proc: GuestProcess, tv, tz):
    return host.call("gettimeofday", proc.check(tv, 16, Access.WRITE) if tv else 0,
                     proc.check(tz, 8, Access.WRITE) if tz else 0)


@syscall("nanosleep", "ptr ptr")
def sys_nanosleep(proc: GuestProcess, req, rem):
    return host.call("nanosleep", proc.check(req, 16),
                     proc.check(rem, 16, Access.WRITE) if rem else 0)


@syscall("clock_nanosleep", "clock hex ptr ptr")
def sys_clock_nanosleep(proc: GuestProcess, clock, flags, req, rem):
    # clock_nanosleep returns a positive error number, not -1/errno.
    return host.call("clock_nanosleep", clock, flags, proc.check(req, 16),
                     proc.check(rem, 16, Access.WRITE) if rem else 0)


@syscall("times", "ptr")
def sys_times(proc: GuestProcess, buf):
    return host.call("times", proc.check(buf, 32, Access.WRITE) if buf else 0)


@syscall("getitimer", "int ptr")
def sys_getitimer(proc: GuestProcess, which, value):
    return host.call("getitimer", which, proc.check(value, 32, Access.WRITE))


@syscall("setitimer", "int ptr ptr")
def sys_setitimer(proc: GuestProcess, which, new, old):
    return host.call("setitimer", which, proc.check(new, 32) if new else 0,
                     proc.check(old, 32, Access.WRITE) if old else 0)


# POSIX timers: struct sigevent (64 bytes), itimerspec (32) and the int timer id have the
# host's layout; a timer's signal comes to the process like any host signal.
@syscall("timer_create", "clock ptr ptr")
def sys_timer_create(proc: GuestProcess, clockid, sevp, timerid):
    result = host.call("timer_create", clockid, proc.check(sevp, 64) if sevp else 0,
                       proc.check(timerid, 4, Access.WRITE))
    if result == 0:
        proc.wrote(timerid, 4)
    return result


@syscall("timer_settime", "int hex ptr ptr")
def sys_timer_settime(proc: GuestProcess, timerid, flags, new, old):
    return host.call("timer_settime", timerid, flags, proc.check(new, 32),
                     proc.check(old, 32, Access.WRITE) if old else 0)


@syscall("timer_gettime", "int ptr")
def sys_timer_gettime(proc: GuestProcess, timerid, value):
    return host.call("timer_gettime", timerid, proc.check(value, 32, Access.WRITE))


@syscall("timer_getoverrun", "int")
def sys_timer_getoverrun(proc: GuestProcess, timerid):
    return host.call("timer_getoverrun", timerid)


@syscall("timer_delete", "int")
def sys_timer_delete(proc: GuestProcess, timerid):
    return host.call("timer_delete", timerid)


# Setting the clock: the host's (root only, as on Linux). struct timex is the host's.
@syscall("clock_settime", "clock ptr")
def sys_clock_settime(proc: GuestProcess, clockid, tp):
    return host.call("clock_settime", clockid, proc.check(tp, 16))


@syscall("settimeofday", "ptr ptr")
def sys_settimeofday(proc: GuestProcess, tv, tz):
    return host.call("settimeofday", proc.check(tv, 16) if tv else 0,
                     proc.check(tz, 8) if tz else 0)


@syscall("adjtimex", "ptr")
def sys_adjtimex(proc: GuestProcess, buf):
    return host.call("adjtimex", proc.check(buf, 208, Access.WRITE))


@syscall("clock_adjtime", "clock ptr")
def sys_clock_adjtime(proc: GuestProcess, clockid, buf):
    return host.call("clock_adjtime", clockid, proc.check(buf, 208, Access.WRITE))
