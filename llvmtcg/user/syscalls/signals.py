"""Signal syscalls: dispositions and masks are recorded (and mirrored on the host; see
:mod:`llvmtcg.user.signals`); guest handlers are not delivered yet."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.signals import NSIG, UNCATCHABLE, SigAction, set_host_mask
from llvmtcg.user.syscalls.table import syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess

SIGSET_SIZE = 8
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
_UNBLOCKABLE = (1 << (9 - 1)) | (1 << (19 - 1))  # SIGKILL, SIGSTOP


@syscall("rt_sigaction", "sig ptr ptr uint")
def sys_rt_sigaction(proc: GuestProcess, sig, act, oldact, sigsetsize):
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    if not 1 <= sig <= NSIG:
        return -errno.EINVAL
    state = proc.signals
    old = state.action(sig)
    new = None
    if act:
        handler, flags, mask = struct.unpack("<QQQ", proc.read(act, 24))
        if sig in UNCATCHABLE:
            return -errno.EINVAL
        new = SigAction(handler, flags, mask)
    if oldact:
        proc.check(oldact, 24, Access.WRITE)
        proc.write(oldact, old.pack())
    if new is not None:
        state.set_action(sig, new)
        if new.handler > 1 and (proc.log.enabled("unimp") or proc.strace is not None):
            proc.log.write(f"{proc.pid} rt_sigaction: handler for signal {sig} recorded; "
                           f"guest signal handlers are not delivered yet")
    return 0


@syscall("rt_sigprocmask", "how ptr ptr uint")
def sys_rt_sigprocmask(proc: GuestProcess, how, set_addr, oldset, sigsetsize):
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    state = proc.signals
    old = state.mask
    if set_addr:
        value = struct.unpack("<Q", proc.read(set_addr, 8))[0]
        if how == SIG_BLOCK:
            mask = old | value
        elif how == SIG_UNBLOCK:
            mask = old & ~value
        elif how == SIG_SETMASK:
            mask = value
        else:
            return -errno.EINVAL
        state.mask = mask & ~_UNBLOCKABLE
    if oldset:
        proc.check(oldset, 8, Access.WRITE)
        proc.write_u64(oldset, old)
    if state.mask != old:
        set_host_mask(state.mask)
    return 0


@syscall("rt_sigpending", "ptr uint")
def sys_rt_sigpending(proc: GuestProcess, setp, sigsetsize):
    return host.call("rt_sigpending", proc.check(setp, 8, Access.WRITE), sigsetsize)


@syscall("rt_sigtimedwait", "ptr ptr ptr uint")
def sys_rt_sigtimedwait(proc: GuestProcess, setp, info, timeout, sigsetsize):
    import signal

    wanted = struct.unpack("<Q", proc.read(setp, 8))[0]
    sigs = {s for s in range(1, NSIG + 1) if wanted >> (s - 1) & 1}
    seconds = None
    if timeout:
        sec, nsec = struct.unpack("<qq", proc.read(timeout, 16))
        seconds = sec + nsec / 1e9
    try:
        got = signal.sigtimedwait(sigs, seconds) if seconds is not None \
            else signal.sigwaitinfo(sigs)
    except InterruptedError:
        return -errno.EINTR
    if got is None:
        return -errno.EAGAIN
    if info:
        siginfo = struct.pack("<iii4xiI", got.si_signo, got.si_errno, got.si_code, got.si_pid,
                              got.si_uid).ljust(128, b"\0")
        proc.write(info, siginfo)
    return got.si_signo


@syscall("rt_sigsuspend", "ptr uint")
def sys_rt_sigsuspend(proc: GuestProcess, setp, sigsetsize):
    import signal

    mask = struct.unpack("<Q", proc.read(setp, 8))[0]
    old = proc.signals.mask
    set_host_mask(mask)
    try:
        signal.pause()  # returns after a signal whose (host) handler ran
    finally:
        set_host_mask(old)
    return -errno.EINTR


@syscall("sigaltstack", "ptr ptr")
def sys_sigaltstack(proc: GuestProcess, ss, old_ss):
    state = proc.signals
    if old_ss:
        sp, flags, size = state.altstack
        proc.check(old_ss, 24, Access.WRITE)
        proc.write(old_ss, struct.pack("<QiiQ", sp, flags, 0, size))
    if ss:
        sp, flags, _pad, size = struct.unpack("<QiiQ", proc.read(ss, 24))
        if flags & ~(2 | (1 << 31)):
            return -errno.EINVAL
        if not flags & 2 and size < 2048:
            return -errno.ENOMEM
        state.altstack = (sp, flags, size)
    return 0


@syscall("rt_sigreturn", "")
def sys_rt_sigreturn(proc: GuestProcess):
    return -errno.ENOSYS  # no signal frame was ever pushed
