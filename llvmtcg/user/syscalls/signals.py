"""Signal syscalls: dispositions (mirrored on the host, see :mod:`llvmtcg.user.signals`),
the mask (the host's too, so the host keeps blocked signals pending), waiting for
signals, the alternate stack and rt_sigreturn. Delivery itself is the process's."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from llvmtcg.runtime.exits import Access
from llvmtcg.user import host
from llvmtcg.user.signals import (
    NSIG,
    SI_TKILL,
    SI_USER,
    SS_DISABLE,
    SS_ONSTACK,
    SYNCHRONOUS,
    UNCATCHABLE,
    SigAction,
)
from llvmtcg.user.syscalls.table import syscall

if TYPE_CHECKING:
    from llvmtcg.user.guest import GuestProcess

SIGSET_SIZE = 8
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2


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
        if new.handler == 1:  # SIG_IGN discards what waits (Linux: sigaction)
            state.queued.pop(sig, None)
    return 0


@syscall("rt_sigprocmask", "how ptr ptr uint")
def sys_rt_sigprocmask(proc: GuestProcess, how, set_addr, oldset, sigsetsize):
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    old = proc.signals.mask
    mask = old
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
    if oldset:
        proc.check(oldset, 8, Access.WRITE)
        proc.write_u64(oldset, old)
    proc.set_mask(mask)  # an unblocked signal the host kept is caught right here
    return 0


@syscall("rt_sigpending", "ptr uint")
def sys_rt_sigpending(proc: GuestProcess, setp, sigsetsize):
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    buf, addr = host.buffer(8)
    result = host.call("rt_sigpending", addr, 8)
    if result < 0:
        return result
    pending = struct.unpack("<Q", buf.raw[:8])[0] | proc.signals.pending_mask()
    proc.check(setp, 8, Access.WRITE)
    proc.write_u64(setp, pending & proc.signals.mask)
    return 0


@syscall("rt_sigtimedwait", "ptr ptr ptr uint")
def sys_rt_sigtimedwait(proc: GuestProcess, setp, info, timeout, sigsetsize):
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    wanted = proc.read_u64(setp)
    for sig in sorted(proc.signals.queued):  # raised without the host
        if wanted & 1 << (sig - 1):
            siginfo = proc.signals.queued.pop(sig)
            if info:
                proc.write(info, siginfo)
            return sig
    # siginfo_t and timespec have the host's layout.
    info_addr = proc.check(info, 128, Access.WRITE) if info else 0
    timeout_addr = proc.check(timeout, 16) if timeout else 0
    result = host.call("rt_sigtimedwait", proc.check(setp, 8), info_addr, timeout_addr, 8)
    if result > 0 and info:
        proc.wrote(info, 128)
    return result


@syscall("rt_sigsuspend", "ptr uint")
def sys_rt_sigsuspend(proc: GuestProcess, setp, sigsetsize):
    if sigsetsize != SIGSET_SIZE:
        return -errno.EINVAL
    state = proc.signals
    temporary = proc.read_u64(setp) & ~((1 << 8) | (1 << 18))  # never SIGKILL, SIGSTOP
    buf, addr = host.buffer(8)
    struct.pack_into("<Q", buf, 0, temporary)
    # Wait with the temporary mask until a signal comes that the process delivers (the
    # host catcher took it); the handler's frame saves the mask to restore.
    while not proc.signal_waiting:
        host.call("rt_sigsuspend", addr, 8)
    state.restore_mask = state.mask
    state.mask = temporary
    return -errno.EINTR


@syscall("sigaltstack", "ptr ptr")
def sys_sigaltstack(proc: GuestProcess, ss, old_ss):
    ss_sp, ss_flags, ss_size = proc.signals.altstack
    if ss_size:
        ss_flags = (ss_flags & ~SS_DISABLE) | (SS_ONSTACK if proc.on_alt_stack(
            proc.stack_pointer) else 0)
    else:
        ss_flags = SS_DISABLE
    old = struct.pack("<QIiQ", ss_sp, ss_flags, 0, ss_size)
    if ss:
        sp, flags, _pad, size = struct.unpack("<QIiQ", proc.read(ss, 24))
        result = proc.set_altstack(sp, flags, size)
        if result < 0:
            return result
    if old_ss:
        proc.check(old_ss, 24, Access.WRITE)
        proc.write(old_ss, old)
    return 0


@syscall("rt_sigreturn", "")
def sys_rt_sigreturn(proc: GuestProcess):
    return proc.sigreturn()


@syscall("rt_sigqueueinfo", "int sig ptr")
def sys_rt_sigqueueinfo(proc: GuestProcess, pid, sig, info):
    # siginfo_t has the host's layout; the host checks si_code as Linux does.
    return host.call("rt_sigqueueinfo", pid, sig, proc.check(info, 128))


@syscall("rt_tgsigqueueinfo", "int int sig ptr")
def sys_rt_tgsigqueueinfo(proc: GuestProcess, tgid, tid, sig, info):
    return host.call("rt_tgsigqueueinfo", tgid, tid, sig, proc.check(info, 128))


def send_to_self(proc: GuestProcess, sig: int, code: int) -> bool:
    """A synchronous signal the guest sends itself while it has a handler for it goes to
    the process directly: the host must keep SIG_DFL for those numbers (see
    llvmtcg.user.signals). True if it was queued so."""
    if sig in SYNCHRONOUS and proc.signals.action(sig).is_handler:
        import os

        from llvmtcg.user.signals import make_siginfo

        proc.queue_signal(sig, make_siginfo(sig, code, pid=proc.pid, uid=os.getuid()))
        return True
    return False


@syscall("kill", "int sig")
def sys_kill(proc: GuestProcess, pid, sig):
    if pid == proc.pid and send_to_self(proc, sig, SI_USER):
        return 0
    return host.call("kill", pid, sig)


@syscall("tkill", "int sig")
def sys_tkill(proc: GuestProcess, tid, sig):
    if tid == proc.pid and send_to_self(proc, sig, SI_TKILL):
        return 0
    return host.call("tkill", tid, sig)


@syscall("tgkill", "int int sig")
def sys_tgkill(proc: GuestProcess, tgid, tid, sig):
    if tgid == proc.pid and tid == proc.pid and send_to_self(proc, sig, SI_TKILL):
        return 0
    return host.call("tgkill", tgid, tid, sig)


@syscall("signalfd4", "fd ptr uint oflags")
def sys_signalfd4(proc: GuestProcess, fd, mask, sizemask, flags):
    # The guest blocks the signals it reads this way, so the host keeps them pending
    # for the fd; struct signalfd_siginfo is the same everywhere.
    if sizemask != SIGSET_SIZE:
        return -errno.EINVAL
    return host.call("signalfd4", fd, proc.check(mask, 8), 8, flags)
